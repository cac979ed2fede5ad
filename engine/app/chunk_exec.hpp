// A worker node's side of the cluster's jobs (docs/cluster.md, "The worker side"): ChunkExecutor
// claims chunks through a cluster::ChunkWorker, submits their addresses to this node's verifier
// (through hooks, so that tests can answer them), collects one JSON record per line and
// completes the chunk with them, which hands the results to the job's owner exactly once.
//
// On a chunk's arrival it asks Redis, in one call each, for the shared facts that spare the
// cluster work:
// - the results cache (cache_ttl > 0): the records of its addresses verified by any node within
//   cache_ttl (one MGET); a hit answers the line at once, without a session;
// - the catch-all facts of its domains (mxp1_catch_all): known (yes/no: the verifier uses the
//   fact instead of probing), "probe it" (this node now holds a short claim and its verifier
//   probes), or "being probed elsewhere": those lines are held back and the facts polled (one
//   command for all such domains) until the other node tells, or its claim expires and this
//   node claims the domain itself. So the cluster probes a domain once, not once per node.
// A completed chunk writes its verified, conclusive records back to the cache in one call.
//
// Holding chunks: a chunk is complete only when its last line is, and greylisting holds lines
// back for minutes, so a node holding few chunks would sit idle behind them; the executor holds
// `chunks` chunks plus as many more (up to max_chunks) as the lines waiting for a retry (and
// the lines held back for another node's probe) would fill, re-sized every second.
//
// stop() hands the held chunks back at once (ChunkWorker::give_back): the other nodes' next
// reclaim pass takes them without waiting for min_idle. Results that arrive for them later are
// dropped, as are those of a chunk lost to another node (ChunkWorker::on_lost).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "address/address.hpp"
#include "cluster/chunk_queue.hpp"
#include "cluster/redis_client.hpp"
#include "loop/loop.hpp"
#include "pipeline/result.hpp"

namespace mxp::app {

struct ExecutorHooks {
  // Verify this address: its result must come back through ChunkExecutor::deliver with `id`.
  std::function<void(uint64_t id, std::string email, address::Address addr)> submit;
  // Addresses this node's verifier holds waiting for a retry (greylisting): sizes how many chunks
  // the node holds. Null: 0.
  std::function<size_t()> waiting;
};

struct ExecutorOptions {
  std::string node;      // the consumer name in the chunk stream's group: unique in the cluster
  uint64_t id_base = 0;  // ids submitted are id_base + n, n < 2^40
  size_t chunks = 2;     // chunks held when no line waits for a retry
  size_t max_chunks = 64;
  std::chrono::seconds cache_ttl{0};                  // 0: no shared results cache
  std::chrono::seconds catch_all_ttl{7 * 24 * 3600};  // how long a shared catch-all fact holds
  // A node's claim on probing a domain: renewed while it probes; a node that dies holding one
  // delays that domain's lines elsewhere by this much at most.
  cluster::Duration catch_all_claim = std::chrono::seconds(15);
  cluster::Duration catch_all_poll = std::chrono::milliseconds(500);
  cluster::Duration resize_every = std::chrono::seconds(1);  // how often waiting() is read
  cluster::QueueOptions queue;
  cluster::WorkerOptions timing;  // its consumer and capacity are set from node and chunks
};

struct ExecutorStats {
  uint64_t chunks_claimed = 0, chunks_completed = 0, chunks_given_back = 0, chunks_lost = 0;
  uint64_t chunks_dropped = 0;  // completions that published nothing (done elsewhere, job gone)
  uint64_t lines = 0, lines_verified = 0, lines_invalid = 0, lines_dropped = 0;
  uint64_t cache_hits = 0, cache_puts = 0;
  uint64_t catch_all_probes = 0;  // domains this node claimed to probe
  uint64_t catch_all_shared = 0;  // facts this node learned and wrote for the cluster
  uint64_t catch_all_used = 0;    // domains whose fact came from the cluster
  uint64_t catch_all_waited = 0;  // lines held back while another node probed their domain
  uint64_t redis_commands = 0;    // commands the executor itself sent (not the queue's)
};

class ChunkExecutor final : private loop::TimerHandler {
 public:
  using Hooks = ExecutorHooks;
  using Options = ExecutorOptions;

  // The client must outlive the executor.
  ChunkExecutor(loop::Loop& loop, cluster::RedisClient& redis, ExecutorHooks hooks,
                ExecutorOptions options);
  ~ChunkExecutor();
  ChunkExecutor(const ChunkExecutor&) = delete;
  ChunkExecutor& operator=(const ChunkExecutor&) = delete;

  void start();
  // No more claims; the chunks held are handed back at once (`done` once Redis answered).
  void stop(std::function<void()> done = {});

  // Whether `id` is one of the ids this executor submits.
  bool owns(uint64_t id) const { return id >= opts_.id_base && id - opts_.id_base < kIdSpan; }
  // The verifier's result for an id it submitted (others are ignored).
  void deliver(pipeline::Result&& r);

  // The verifier's catch-all hooks (VerifierConfig::catch_all_known / catch_all_learned).
  std::optional<bool> known_catch_all(const std::string& domain);
  void learned_catch_all(const std::string& domain, std::optional<bool> catch_all);

  size_t held() const { return by_entry_.size(); }
  size_t capacity() const { return worker_.capacity(); }
  const ExecutorStats& stats() const { return stats_; }
  const cluster::ChunkWorker& queue() const { return worker_; }
  // The executor's series for /metrics (mxprobe_cluster_*).
  void append_prometheus(std::string& out) const;

  static constexpr uint64_t kIdSpan = uint64_t{1} << 40;

 private:
  enum Cookie : uint64_t { kPoll = 1, kResize = 2, kFlush = 3 };
  struct Line {
    uint64_t id = 0;
    std::string domain, normalized;
    std::optional<address::Address> addr;  // until submitted
    std::string record;                    // the result's JSON, once it has one
    std::string cache_record;              // verified and conclusive: for the results cache
    bool done = false, submitted = false, held_back = false;
  };
  struct Held {
    uint64_t serial = 0;  // the executor's own key (an entry lost and claimed again is new)
    cluster::Chunk chunk;
    std::vector<Line> lines;
    bool transcripts = false;
    size_t left = 0;           // lines without a record
    size_t inflight = 0;       // lines submitted and not yet delivered
    int answers = 0;           // arrival replies still awaited
    bool lost = false;         // lost or given back: results are dropped, the chunk never completed
    bool dispatching = false;  // arrived() is walking its lines: completion waits for it
  };
  struct Domain {
    bool probing = false;           // this node holds the claim (else: another node probes it)
    size_t live = 0;                // lines of it submitted here and not yet delivered (probing)
    std::vector<uint64_t> waiting;  // ids held back (another node probes)
    cluster::TimePoint renewed{};
  };

  void on_timer(loop::TimerId id, uint64_t cookie) override;
  void on_chunk(cluster::Chunk&& c);
  void arrived(Held& h);  // both arrival answers are in: submit, answer or hold back each line
  void submit(Held& h, Line& l);
  void answer(Held& h, Line& l, std::string record);
  void maybe_complete(Held& h);
  void forget(Held& h);  // erases the chunk and its ids
  void drop(Held& h);    // lost or given back
  void set_fact(const std::string& domain, bool yes);
  void apply_fact_answer(const std::string& domain, int64_t v);
  void release_waiting(const std::string& domain);
  // Gives up this node's claims on probing these domains (sent with the loop's next iteration,
  // one call for all).
  void release_claims(const std::vector<std::string>& domains);
  void flush_releases();
  void poll();
  void resize();
  void arm(uint64_t cookie, cluster::Duration after);
  std::string fact_key(const std::string& domain) const {
    return opts_.queue.prefix + "ca:" + domain;
  }
  std::string cache_key(const std::string& normalized) const {
    return opts_.queue.prefix + "rc:" + normalized;
  }

  loop::Loop& loop_;
  cluster::RedisClient& redis_;
  ExecutorHooks hooks_;
  ExecutorOptions opts_;
  std::string holder_;  // node name + a random suffix: this process' catch-all claims
  cluster::ChunkWorker worker_;
  std::map<uint64_t, std::unique_ptr<Held>> chunks_;  // by serial; lost ones until drained
  std::map<std::string, uint64_t> by_entry_;          // held (not lost) chunks: entry -> serial
  uint64_t next_serial_ = 0;
  std::unordered_map<uint64_t, std::pair<Held*, size_t>> ids_;
  std::unordered_map<std::string, Domain> domains_;  // being probed (here or elsewhere)
  std::unordered_map<std::string, bool> facts_;      // catch-all facts known here
  // Domains this node claimed whose lines all ended without a probe (the policy does not probe
  // them, or their DNS failed): not claimed again.
  std::unordered_set<std::string> unprobed_;
  std::vector<std::string> to_release_;
  cluster::TimePoint facts_since_{};  // when facts_ and unprobed_ last started empty
  size_t held_back_ = 0;              // lines in Domain::waiting
  uint64_t next_id_ = 0;
  double avg_lines_ = 0;  // lines per chunk, a moving average
  bool running_ = false, polling_ = false, poll_armed_ = false, resize_armed_ = false;
  loop::TimerId poll_timer_{}, resize_timer_{}, flush_timer_{};
  bool flush_armed_ = false;
  cluster::TimePoint poll_at_{};
  ExecutorStats stats_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace mxp::app
