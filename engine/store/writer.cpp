// store::Writer: the store's writes on a thread of their own (writer.hpp).
#include "store/writer.hpp"

#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace mxp::store {

Expected<std::unique_ptr<Writer>> Writer::open(const std::string& path, std::FILE* log,
                                               std::string prefix, SqliteOptions opts) {
  auto db = SqliteStore::open(path, opts);
  if (!db) return core::unexpected(db.error());
  int efd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (efd < 0) return core::unexpected(Error{0, std::string("eventfd: ") + std::strerror(errno)});
  return std::unique_ptr<Writer>(new Writer(std::move(*db), efd, log, std::move(prefix)));
}

Writer::Writer(std::unique_ptr<SqliteStore> db, int efd, std::FILE* log, std::string prefix)
    : db_(std::move(db)), efd_(efd), log_(log), prefix_(std::move(prefix)), thread_([this] {
        run();
      }) {}

Writer::~Writer() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_one();
  thread_.join();
  ::close(efd_);
}

uint64_t Writer::post(Work w) {
  const uint64_t ticket = ++posted_;
  enqueue(ticket, std::move(w));
  return ticket;
}

void Writer::post_detached(Work w) {
  enqueue(0, std::move(w));
}

void Writer::enqueue(uint64_t ticket, Work w) {
  {
    std::lock_guard lock(mu_);
    queue_.push_back({ticket, std::move(w), core::Clock::now()});
    ++queued_;
  }
  cv_.notify_one();
  keep_up();
}

void Writer::keep_up() {
  if (!idle_class_.load()) return;
  bool late = false;
  {
    std::lock_guard lock(mu_);
    late = !queue_.empty() && core::Clock::now() - queue_.front().at > kBoostAfter;
  }
  // Work waiting this long means other processes fill the machine and starve an idle-class
  // thread: normal priority until the queue is empty again (run() goes back to idle then).
  sched_param normal{};
  if (late && pthread_setschedparam(thread_.native_handle(), SCHED_OTHER, &normal) == 0)
    idle_class_ = false;
}

bool Writer::lower_priority() {
  sched_param none{};
  if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &none) == 0) {
    idle_class_ = true;
    return true;
  }
  return false;
}

std::vector<Writer::Done> Writer::reap() {
  uint64_t n = 0;
  std::vector<Done> out;
  {
    // Under the lock, as run() signals under it: a completion landing between the read and the
    // swap would otherwise be taken now and leave the eventfd readable with nothing to reap.
    std::lock_guard lock(mu_);
    (void)!::read(efd_, &n, sizeof n);  // EAGAIN when nothing is signalled: fine
    out.swap(done_);
  }
  reaped_ += out.size();
  return out;
}

void Writer::drain() {
  std::unique_lock lock(mu_);
  idle_cv_.wait(lock, [&] { return queued_ == 0; });
}

void Writer::run() {
  // Background work: where it shares a core with the event loop (a pinned process, a busy
  // machine), the loop's latency comes first. SCHED_IDLE yields the core at once when the loop
  // wakes (/metrics max during a 100k job 4.7 ms, against 6-7 ms at nice 5 and 5-9 ms at nice 19)
  // but gets next to nothing while other processes fill the machine (two ASan tests on 2 cores
  // left a journal without a commit for seconds): keep_up() lifts it to normal priority once
  // work has waited kBoostAfter, and it goes back to idle when it has caught up. Where the class
  // cannot be changed (a sandbox), nice 5: a third of the loop's weight.
  const bool idle_ok = lower_priority();
  if (!idle_ok) (void)setpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)), 5);
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stop_ with nothing left to run
    auto [ticket, work, at] = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    Status st = work(*db_);
    work = nullptr;  // what it captured is freed off the loop thread too
    if (!ticket && !st.ok() && log_)
      std::fprintf(log_, "%s: %s\n", prefix_.c_str(), st.error().message.c_str());
    lock.lock();
    --queued_;
    if (ticket) {
      done_.push_back({ticket, std::move(st)});
      const uint64_t one = 1;
      (void)!::write(efd_, &one, sizeof one);
    }
    idle_cv_.notify_all();
    if (idle_ok && queue_.empty() && !idle_class_.load()) lower_priority();  // caught up
  }
}

}  // namespace mxp::store
