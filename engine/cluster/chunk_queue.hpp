// The cluster's work distribution: a job's owner cuts its input into chunks (about a thousand
// lines each: line numbers and raw records) and puts them on a Redis Stream; worker nodes claim
// them through a consumer group, verify them, and complete them, which publishes the chunk's
// results on the job's results stream and acknowledges the chunk in one atomic step; the owner
// reads the results and writes them out. Every input line's result reaches the owner exactly
// once whoever dies when (docs/cluster.md walks through each failure).
//
// Layout (prefix "mxp:" by default):
// - <prefix>chunks: ONE stream for all jobs, consumer group "workers". One stream rather than
//   one per job because a worker then claims with a single XREADGROUP and reclaims with a single
//   XAUTOCLAIM whatever the number of jobs, needs no list of live jobs to watch, and takes the
//   jobs' chunks in the order they were pushed (fair between owners, whose windows cap each
//   job's share). A completed chunk is acked and deleted at once, so the stream holds only work
//   not yet done.
// - <prefix>job:<id>: the job's key, made by its owner; while it is missing (the job dropped),
//   completing one of its chunks only acks and deletes it.
// - <prefix>job:<id>:results: the job's results, one entry per completed chunk; the owner reads
//   them (XREAD from a cursor it keeps in memory) and deletes each once handed over.
//
// Bounded memory: the owner never has more than `window` chunks outstanding (pushed, result not
// yet read), so a job holds at most `window` chunks plus `window` results in Redis whatever its
// size; it pushes more as results come back (room()).
//
// Exactly once: mxp1_chunk_complete publishes only if its XACK acknowledged the entry (the first
// completion of it), so two nodes that both finished a reclaimed chunk publish once; a worker
// that dies before completing leaves the chunk pending, and another reclaims it after
// `min_idle`. The owner de-duplicates anyway, by chunk and by line number: an owner's push that
// got no answer is pushed again (the first may have landed: two entries, two results), and a
// results entry whose deletion was lost with the connection is read again.
//
// Nothing blocks the loop: XREADGROUP and XREAD are sent without BLOCK (a blocking read would
// hold up every command pipelined behind it on the node's one connection); the worker polls for
// chunks only while it has room, at once after each completion, and with a back-off (poll_min
// doubling to poll_max) while the stream is empty; the owner polls its results likewise while
// it has chunks out. So a busy node spends about one claim and one results read per chunk, and
// an idle one a few commands a second at most.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/redis_client.hpp"
#include "core/expected.hpp"
#include "loop/loop.hpp"

namespace mxp::cluster {

// One input record, or one result, with its line number in the job's input.
struct ChunkLine {
  uint64_t line = 0;
  std::string text;
  bool operator==(const ChunkLine&) const = default;
};

// Lines as one string: "<line> <length>:<bytes>" each, so any bytes (newlines, tabs) survive.
std::string encode_lines(const std::vector<ChunkLine>& lines);
core::Expected<std::vector<ChunkLine>, std::string> decode_lines(std::string_view s);

struct Chunk {
  std::string job;
  uint64_t seq = 0;  // the owner's number for it, unique within the job
  std::vector<ChunkLine> lines;
  // The job's options for its workers, as JSON text (the same for every chunk of a job; "{}"
  // when the entry has none): e.g. {"transcripts": true}. Carried as the entry's "opts" field.
  std::string options = "{}";
  std::string entry_id;  // its stream entry (set by a claim)
};

struct ChunkResult {
  std::string job;
  uint64_t seq = 0;
  std::vector<ChunkLine> lines;  // one result per line, each line at most once
};

struct QueueOptions {
  std::string prefix = "mxp:";
  std::string group = "workers";
};

struct OwnerOptions {
  size_t window = 8;  // chunks outstanding in Redis at most
  // Results are polled from poll_min after each delivery, doubling to poll_max: a chunk takes
  // seconds, and the window keeps the nodes busy whatever the owner's delay in reading.
  Duration poll_min = std::chrono::milliseconds(100);
  Duration poll_max = std::chrono::seconds(2);
  // Results entries (whole chunks, about a thousand records each) per XREAD. One: the owner
  // hands each chunk's records to the job in one callback, and several at once held its loop
  // for seconds under a sanitizer on a loaded machine, past the deadlines of its other Redis
  // commands (heartbeat, slot renewals). A round trip per chunk costs nothing next to it.
  size_t read_count = 1;
  // How often the owner checks that its outstanding chunks are still in Redis (on the chunk
  // stream, or answered on the results stream) and pushes again those that are not: lost with
  // Redis' data (a restart without persistence, or a crash with appendfsync everysec).
  Duration audit_every = std::chrono::seconds(30);
};

struct OwnerStats {
  uint64_t pushed = 0, push_retries = 0;
  uint64_t results = 0;           // chunks delivered
  uint64_t duplicate_chunks = 0;  // results entries for a chunk already delivered
  uint64_t duplicate_lines = 0;   // lines dropped: already delivered, or not in the chunk
  uint64_t polls = 0, empty_polls = 0;
  uint64_t audits = 0, resent = 0;  // chunks pushed again because Redis had lost them
};

// The owner's side of one job.
class ChunkOwner final : private loop::TimerHandler {
 public:
  using ResultFn = std::function<void(ChunkResult&&)>;
  // The client must outlive the owner.
  ChunkOwner(loop::Loop& loop, RedisClient& redis, QueueOptions queue, std::string job,
             OwnerOptions options = {});
  ~ChunkOwner();
  ChunkOwner(const ChunkOwner&) = delete;
  ChunkOwner& operator=(const ChunkOwner&) = delete;

  // Each chunk's results, once, lines already delivered removed (called from the loop).
  void on_results(ResultFn fn) { on_results_ = std::move(fn); }

  // Makes the job's key and the chunk stream's consumer group (if missing); push() may come
  // before its answer (commands keep their order).
  void open(std::function<void(core::Expected<void, std::string>)> done = {});
  // How many more chunks push() takes now.
  size_t room() const {
    return outstanding_.size() < opts_.window ? opts_.window - outstanding_.size() : 0;
  }
  size_t outstanding() const { return outstanding_.size(); }
  // Queues the chunk (its job is set to this one); false when the window is full or its seq is
  // already outstanding. A push that fails in transit is sent again until Redis takes it.
  bool push(Chunk chunk);
  // Deletes the job's key and its results stream: workers then drop its remaining chunks.
  void drop(std::function<void()> done = {});
  // Checks now that the outstanding chunks are still in Redis (also done every audit_every).
  void audit_now() { audit(); }

  const OwnerStats& stats() const { return stats_; }
  std::string job_key() const { return q_.prefix + "job:" + job_; }
  std::string results_key() const { return q_.prefix + "job:" + job_ + ":results"; }
  std::string chunks_key() const { return q_.prefix + "chunks"; }

 private:
  enum Cookie : uint64_t { kPoll = 0, kAudit = 1 };
  struct Out {
    std::set<uint64_t> lines;  // not delivered yet
    std::vector<std::string> argv;
    std::string entry_id;  // from XADD's answer (empty until then)
  };
  void on_timer(loop::TimerId id, uint64_t cookie) override;
  void audit();
  void arm_audit();
  void send(uint64_t seq);
  void schedule(Duration d);
  void poll();
  void deliver(const Reply& entry, std::vector<std::string>& done_ids);

  loop::Loop& loop_;
  RedisClient& redis_;
  QueueOptions q_;
  std::string job_;
  OwnerOptions opts_;
  ResultFn on_results_;
  std::map<uint64_t, Out> outstanding_;
  std::string cursor_ = "0-0";
  Duration interval_;
  bool armed_ = false, polling_ = false, audit_armed_ = false, auditing_ = false;
  loop::TimerId timer_{}, audit_timer_{};
  OwnerStats stats_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

struct WorkerOptions {
  std::string consumer;  // the node's name: unique in the cluster
  size_t capacity = 4;   // chunks held at once
  Duration poll_min = std::chrono::milliseconds(20);
  Duration poll_max = std::chrono::seconds(1);
  // Held chunks are renewed this often; min_idle is how long a chunk whose holder stopped
  // renewing waits before another worker takes it (several renewals must fit in it).
  Duration renew_every = std::chrono::seconds(2);
  Duration min_idle = std::chrono::seconds(12);
  Duration reclaim_every = std::chrono::seconds(3);
};

struct WorkerStats {
  uint64_t claimed = 0, reclaimed = 0, completed = 0, already_done = 0, job_gone = 0, lost = 0;
  uint64_t polls = 0, empty_polls = 0, renewals = 0, complete_retries = 0;
  uint64_t given_back = 0;  // chunks handed back by give_back()
};

enum class CompleteOutcome : uint8_t {
  Published,    // this completion published the results
  AlreadyDone,  // another completion of the chunk came first: nothing published
  JobGone,      // the job was dropped: chunk acked, results discarded
  Failed,       // the client was closed before Redis answered
};

// A worker node's side: claims chunks of every job, renews them while held, completes them.
class ChunkWorker final : private loop::TimerHandler {
 public:
  using ChunkFn = std::function<void(Chunk&&)>;
  ChunkWorker(loop::Loop& loop, RedisClient& redis, QueueOptions queue, WorkerOptions options);
  ~ChunkWorker();  // stops; chunks still held are reclaimed by others after min_idle
  ChunkWorker(const ChunkWorker&) = delete;
  ChunkWorker& operator=(const ChunkWorker&) = delete;

  // A chunk to verify: call complete() with its results (or let it go: it comes back elsewhere).
  void on_chunk(ChunkFn fn) { on_chunk_ = std::move(fn); }
  // A held chunk was taken over by another worker (its renewal found it no longer ours): its
  // work may stop; completing it anyway is harmless (published once, by whoever is first).
  void on_lost(std::function<void(const std::string& entry_id)> fn) { on_lost_ = std::move(fn); }

  void start();
  void stop();  // no more claims or renewals (what is held then expires to others)
  // Stops, and hands every chunk still held (and not being completed) back at once: each stays
  // pending but with a large idle time (XCLAIM ... IDLE), so the other workers' next XAUTOCLAIM
  // pass takes it without waiting for min_idle. `done` runs once Redis answered (or failed).
  void give_back(std::function<void()> done = {});

  // Chunks held at once from now on (at least 1). A larger capacity claims at once.
  void set_capacity(size_t capacity);
  size_t capacity() const { return opts_.capacity; }
  // Claims now if there is room (instead of at the next poll).
  void claim_now();

  // Publishes the results and acks the chunk atomically; retried on transport failures (it is
  // idempotent) until Redis answers.
  void complete(const Chunk& chunk, std::vector<ChunkLine> results,
                std::function<void(CompleteOutcome)> done = {});
  // Renews every held chunk now (also done every renew_every).
  void keep_alive();

  size_t held() const { return held_.size(); }
  const WorkerStats& stats() const { return stats_; }

 private:
  enum Cookie : uint64_t { kClaim = 1, kRenew = 2, kReclaim = 3 };
  struct Held {
    std::string job;
    bool completing = false;
  };
  void on_timer(loop::TimerId id, uint64_t cookie) override;
  void claim();
  void reclaim();
  void ensure_group(std::function<void()> then);
  void take(const std::vector<Reply>& entries, bool reclaimed);
  void schedule_claim(Duration d);
  // XCLAIM argv (5 words, then ids): sends it with IDLE and JUSTID unless it has no id.
  void hand_back(std::vector<std::string> argv, std::function<void()> done);
  void send_complete(std::shared_ptr<std::vector<std::string>> argv, std::string id,
                     std::function<void(CompleteOutcome)> done);
  std::string chunks_key() const { return q_.prefix + "chunks"; }

  loop::Loop& loop_;
  RedisClient& redis_;
  QueueOptions q_;
  WorkerOptions opts_;
  ChunkFn on_chunk_;
  std::function<void(const std::string&)> on_lost_;
  std::map<std::string, Held> held_;  // by entry id
  bool running_ = false, claiming_ = false, reclaiming_ = false, renewing_ = false;
  bool claim_armed_ = false, renew_armed_ = false, reclaim_armed_ = false;
  loop::TimerId claim_timer_{}, renew_timer_{}, reclaim_timer_{};
  Duration interval_;
  std::string reclaim_cursor_ = "0-0";
  WorkerStats stats_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace mxp::cluster
