// store::Writer: one thread with its own SQLite connection that runs a store's writes (journal
// rows and results, cache entries) in the order they were posted, so that a transaction of
// thousands of rows never holds the event loop. The loop hears of finished work through an
// eventfd (watch it, then reap()): no locks on the loop's side beyond one short queue swap.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/clock.hpp"
#include "store/sqlite_store.hpp"

namespace mxp::store {

class Writer {
 public:
  // Work runs on the writer's thread with the writer's own connection.
  using Work = std::function<Status(SqliteStore&)>;
  struct Done {
    uint64_t ticket = 0;
    Status status;
  };

  // Opens a second connection to the database at `path` (WAL: the owner's connection reads
  // what the writer committed) and starts the thread. Failures of detached work are written to
  // `log` as "PREFIX: message".
  static Expected<std::unique_ptr<Writer>> open(const std::string& path, std::FILE* log,
                                                std::string prefix, SqliteOptions opts = {});
  // Runs what was posted, then stops the thread.
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // Queues work; tickets count up from 1 and finish in that order.
  uint64_t post(Work w);
  // Queues work nobody waits for (the results cache): no ticket; a failure is only logged.
  void post_detached(Work w);
  // Readable when work has finished since the last reap() (an eventfd; level: not edge).
  int event_fd() const { return efd_; }
  // The work finished since the last call, in ticket order (clears the eventfd).
  std::vector<Done> reap();
  // Blocks until everything posted so far has run (the end of a job, a test).
  void drain();
  // Tickets posted and not yet reaped.
  uint64_t outstanding() const { return posted_ - reaped_; }
  // Called now and then by the owner (its timer): work waiting too long raises the writer's
  // priority (see run()). post() does it too.
  void keep_up();

 private:
  Writer(std::unique_ptr<SqliteStore> db, int efd, std::FILE* log, std::string prefix);
  void run();
  void enqueue(uint64_t ticket, Work w);
  bool lower_priority();  // this thread to SCHED_IDLE

  struct Queued {
    uint64_t ticket;  // 0: detached
    Work work;
    core::TimePoint at;
  };
  // Work that waited this long lifts the thread's priority (keep_up()).
  static constexpr auto kBoostAfter = std::chrono::milliseconds(300);

  std::unique_ptr<SqliteStore> db_;
  int efd_ = -1;
  std::FILE* log_;
  std::string prefix_;
  std::mutex mu_;
  std::condition_variable cv_, idle_cv_;
  std::deque<Queued> queue_;             // guarded by mu_
  std::vector<Done> done_;               // guarded by mu_
  size_t queued_ = 0;                    // guarded by mu_: posted, not yet run
  bool stop_ = false;                    // guarded by mu_
  uint64_t posted_ = 0, reaped_ = 0;     // the owner's thread only
  std::atomic<bool> idle_class_{false};  // the thread runs SCHED_IDLE now
  std::thread thread_;
};

}  // namespace mxp::store
