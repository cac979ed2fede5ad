// Backend-independent parts of the loop: timers, the backend selector (probe io_uring, fall back
// to libuv), backend names and the RLIMIT_NOFILE helper.
#include "loop/loop.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>

#include "loop/detail.hpp"
#include "loop/uring/loop_uring.hpp"
#include "loop/uv/loop_uv.hpp"

namespace mxp::loop {

std::string_view to_string(Backend b) {
  switch (b) {
    case Backend::Auto:
      return "auto";
    case Backend::Uring:
      return "uring";
    case Backend::Uv:
      return "uv";
  }
  return "invalid";
}

std::optional<Backend> parse_backend(std::string_view name) {
  if (name == "auto") return Backend::Auto;
  if (name == "uring") return Backend::Uring;
  if (name == "uv") return Backend::Uv;
  return std::nullopt;
}

TimerId Loop::add_timer(TimePoint deadline, TimerHandler& handler, uint64_t cookie) {
  const auto before = timers_.earliest();
  const TimerId id = timers_.add(deadline, &handler, cookie);
  if (!before || deadline < *before) timers_changed();
  return id;
}

bool Loop::cancel_timer(TimerId id) {
  if (!timers_.cancel(id)) return false;
  if (timers_.size() == 0) timers_changed();
  return true;
}

void Loop::run_due_timers() {
  const TimePoint now = Clock::now();
  // Timers added by these callbacks wait for the next iteration even when already due: a
  // callback re-arming itself at now() cannot starve I/O.
  const uint64_t limit = timers_.next_seq();
  TimerHeap::Fired fired;
  while (timers_.pop_due(now, limit, fired))
    fired.handler->on_timer(fired.id, fired.cookie);
}

MakeLoopResult make_loop(const LoopOptions& options) {
  // libuv writes with write(2): without this a peer's RST during a send would kill the process.
  std::signal(SIGPIPE, SIG_IGN);
  MakeLoopResult result;
  std::string uring_why;
  if (options.backend == Backend::Auto || options.backend == Backend::Uring) {
    auto uring = create_uring_loop(options);
    if (uring) {
      result.loop = std::move(uring).value();
      result.why = "io_uring: " + result.loop->describe();
      return result;
    }
    uring_why = uring.error();
    if (options.backend == Backend::Uring) {
      result.status = Status::Unsupported;
      result.why = "io_uring unavailable: " + uring_why;
      return result;
    }
  }
  auto uv = create_uv_loop(options);
  if (!uv) {
    result.status = Status::SystemError;
    result.why = "libuv failed: " + uv.error();
    return result;
  }
  result.loop = std::move(uv).value();
  result.why = options.backend == Backend::Uv ? "libuv (requested)"
                                              : "libuv (io_uring unavailable: " + uring_why + ")";
  return result;
}

NofileLimit raise_nofile_limit() {
  NofileLimit out;
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) {
    out.status = status_from_errno(errno);
    return out;
  }
  if (lim.rlim_cur < lim.rlim_max) {
    rlimit raised = lim;
    raised.rlim_cur = lim.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) {
      lim = raised;
    } else {
      out.status = status_from_errno(errno);
    }
  }
  out.soft = lim.rlim_cur;
  out.hard = lim.rlim_max;
  return out;
}

namespace detail {

int open_tcp_socket(const ConnectOptions& options, bool nonblocking) {
  if (!options.peer.valid()) return -EINVAL;
  if (options.source && options.source->family() != options.peer.family()) return -EAFNOSUPPORT;
  const int type = SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0);
  const int fd = ::socket(options.peer.family(), type, IPPROTO_TCP);
  if (fd < 0) return -errno;
  const int one = 1;
  if (options.no_delay) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (options.source) {
    if (options.source->port() == 0) {
      setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    }
    if (::bind(fd, options.source->sa(), options.source->len()) != 0) {
      const int err = errno;
      ::close(fd);
      return -err;
    }
  }
  return fd;
}

void set_linger_zero(int fd) {
  const linger lg{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

}  // namespace detail
}  // namespace mxp::loop
