// A cluster job's Dispatch (job/dispatch.hpp): the addresses its runner submits are cut into
// chunks (`chunk_lines` each, or fewer after `flush_after` without more) and pushed with a
// cluster::ChunkOwner onto the cluster's chunk stream; any node claims them, verifies them and
// publishes one record per address; the records come back here, are parsed and handed to the
// runner by id, as the node's verifier would. The runner keeps everything else of the job: its
// dedupe, its cache, its journal and output, so every input line is written exactly once by the
// job's owner, whichever node verified it (docs/cluster.md).
//
// A chunk line is (the runner's id for the address, the address as given); a result line is
// (the same id, the record's JSON). Bounded memory: the runner keeps appetite() addresses in
// flight (window chunks), and the ChunkOwner has at most `window` chunks in Redis.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "app/job/dispatch.hpp"
#include "cluster/chunk_queue.hpp"
#include "loop/loop.hpp"
#include "pipeline/result.hpp"

namespace mxp::app {

struct DispatchOptions {
  size_t chunk_lines = 1000;
  size_t window = 32;  // chunks outstanding in Redis at most
  std::chrono::milliseconds flush_after{50};
  cluster::QueueOptions queue;
  cluster::OwnerOptions owner;  // its window is set from `window`
};

struct DispatchStats {
  uint64_t submitted = 0, delivered = 0, unreadable = 0, chunks = 0, withdrawn = 0;
};

class ClusterDispatch final : public Dispatch, private loop::TimerHandler {
 public:
  using Deliver = std::function<void(pipeline::Result&&)>;
  // `job`: the job's name in Redis, unique in the cluster and new for each run of the job (an
  // owner restarted with the job names it anew and drops the old name: chunks of a run that
  // died are then discarded by the nodes rather than answered to no one). `options`: JSON the
  // nodes read with each chunk ({"transcripts": bool}). The client must outlive this.
  ClusterDispatch(loop::Loop& loop, cluster::RedisClient& redis, std::string job,
                  std::string options, Deliver deliver, DispatchOptions o = {});
  ~ClusterDispatch() override;

  // Makes the job known to the cluster; submissions may come at once (commands keep order).
  void open();
  // The job ended (finished, cancelled, deleted): the cluster forgets it; nodes drop its chunks.
  void drop();

  void submit(uint64_t id, uint64_t line, std::string email, address::Address a) override;
  size_t withdraw(uint64_t lo, uint64_t hi, std::vector<uint64_t>& out) override;
  uint64_t appetite() const override { return uint64_t(o_.chunk_lines) * o_.window; }

  // Addresses submitted whose records have not come back.
  uint64_t in_flight() const { return stats_.submitted - stats_.delivered - stats_.withdrawn; }
  // Chunks waiting here for room in the window, and those out in the cluster.
  size_t queued_chunks() const { return sealed_.size() + (current_.lines.empty() ? 0 : 1); }
  size_t outstanding_chunks() const { return owner_.outstanding(); }
  const DispatchStats& stats() const { return stats_; }
  const cluster::OwnerStats& owner_stats() const { return owner_.stats(); }
  const std::string& job() const { return job_; }

 private:
  void on_timer(loop::TimerId, uint64_t) override;
  void seal();
  void pump();
  void on_results(cluster::ChunkResult&& r);

  loop::Loop& loop_;
  std::string job_, options_;
  Deliver deliver_;
  DispatchOptions o_;
  cluster::ChunkOwner owner_;
  cluster::Chunk current_;
  std::deque<cluster::Chunk> sealed_;
  uint64_t next_seq_ = 1;
  loop::TimerId flush_{};
  bool flush_armed_ = false, dropped_ = false;
  DispatchStats stats_;
};

}  // namespace mxp::app
