// The libuv backend. libuv (1.44: epoll for sockets) already has the loop's phases; we add the
// same connection life cycle as the io_uring backend: ids with generations, reads into one shared
// buffer (alloc_cb), copied sends (uv_try_write first, so most sends allocate nothing), graceful
// and abortive close, and the shared timer heap woken by one uv_timer_t.
#include "loop/uv/loop_uv.hpp"

#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <unordered_map>
#include <vector>

#include "loop/detail.hpp"

namespace mxp::loop {
namespace {

using detail::id_index;

enum class State : uint8_t { Connecting, Connected, Draining, Closing };

struct Conn {
  uv_tcp_t tcp;  // tcp.data points back here; must not move (the slot table is a deque)
  ConnHandler* handler = nullptr;
  uint64_t id = 0;
  State state = State::Closing;
  TimerId timer;
};

// A send that could not be written at once: the request and a copy of the bytes, one allocation.
struct WriteReq {
  uv_write_t req;
  char data[1];
};

struct Watch {
  uv_poll_t poll;
  int fd = -1;
  bool readable = false;
  bool writable = false;
  FdHandler* handler = nullptr;
};

Status uv_status(int uv_err) {
  return status_from_errno(-uv_err);
}

class UvLoop final : public Loop, private TimerHandler {
 public:
  explicit UvLoop(const LoopOptions& options) : opts_(options), read_buf_(64 * 1024) {}
  ~UvLoop() override;

  core::Expected<void, std::string> init();

  Backend backend() const override { return Backend::Uv; }
  const std::string& describe() const override { return describe_; }
  ConnectResult connect(const ConnectOptions& options, ConnHandler& handler) override;
  Status send(ConnId id, std::string_view bytes) override;
  size_t send_queued(ConnId id) const override;
  Status close(ConnId id, CloseMode mode) override;
  size_t connection_count() const override { return live_; }
  Status watch_fd(int fd, bool readable, bool writable, FdHandler& handler) override;
  void unwatch_fd(int fd) override;
  void run() override { uv_run(&loop_, UV_RUN_DEFAULT); }
  void stop() override { uv_stop(&loop_); }

 private:
  static UvLoop& of(const uv_handle_t* h) { return *static_cast<UvLoop*>(h->loop->data); }
  static Conn& conn_of(const uv_handle_t* h) { return *static_cast<Conn*>(h->data); }

  void on_timer(TimerId id, uint64_t cookie) override;
  void timers_changed() override { arm_wakeup(/*from_timer=*/false); }
  void arm_wakeup(bool from_timer);

  void connect_done(Conn& c, int status);
  void teardown(Conn& c, bool abort);
  void end_by_peer(Conn& c, Status status);

  static void on_connect_cb(uv_connect_t* req, int status);
  static void on_alloc_cb(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
  static void on_read_cb(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  static void on_write_cb(uv_write_t* req, int status);
  static void on_shutdown_cb(uv_shutdown_t* req, int status);
  static void on_close_cb(uv_handle_t* handle);
  static void on_wakeup_cb(uv_timer_t* timer);
  static void on_poll_cb(uv_poll_t* poll, int status, int events);

  LoopOptions opts_;
  std::string describe_;
  uv_loop_t loop_{};
  bool loop_ok_ = false;
  uv_timer_t wakeup_{};
  std::vector<char> read_buf_;  // every read lands here and is handed out during on_data only
  detail::SlotTable<Conn> conns_;
  size_t live_ = 0;
  std::unordered_map<int, Watch*> watches_;
};

core::Expected<void, std::string> UvLoop::init() {
  const int r = uv_loop_init(&loop_);
  if (r != 0) return core::unexpected(std::string("uv_loop_init: ") + uv_strerror(r));
  loop_ok_ = true;
  loop_.data = this;
  uv_timer_init(&loop_, &wakeup_);
  describe_ = std::string("libuv ") + uv_version_string() + " (epoll)";
  return {};
}

UvLoop::~UvLoop() {
  if (!loop_ok_) return;
  for (uint32_t i = 0; i < conns_.capacity(); ++i) {
    if (conns_.used(i) && conns_.at(i).state != State::Closing) teardown(conns_.at(i), true);
  }
  while (!watches_.empty())
    unwatch_fd(watches_.begin()->first);
  uv_close(reinterpret_cast<uv_handle_t*>(&wakeup_), nullptr);
  // Close callbacks (and the ECANCELED callbacks of pending writes and connects) run here. A
  // stop() made outside run() (a job answered wholly from the cache stops a loop that never
  // ran) leaves libuv's stop flag set, and the first uv_run only clears it: run again while
  // handles are still closing, or uv_loop_close fails and their memory is lost.
  for (int i = 0; i < 3 && uv_loop_alive(&loop_); ++i)
    uv_run(&loop_, UV_RUN_DEFAULT);
  uv_loop_close(&loop_);
}

// [SECTION] connections -----------------------------------------------------------------------

ConnectResult UvLoop::connect(const ConnectOptions& options, ConnHandler& handler) {
  // We create the socket ourselves (uv_tcp_open) to set IP_BIND_ADDRESS_NO_PORT before bind().
  const int fd = detail::open_tcp_socket(options, /*nonblocking=*/true);
  if (fd < 0) return {status_from_errno(-fd), {}};
  const int64_t index = conns_.acquire();
  if (index < 0) {
    ::close(fd);
    return {Status::NoMemory, {}};
  }
  Conn& c = conns_.at(static_cast<uint32_t>(index));
  c.handler = &handler;
  c.id = conns_.id_of(static_cast<uint32_t>(index));
  c.state = State::Connecting;
  c.timer = {};
  uv_tcp_init(&loop_, &c.tcp);
  c.tcp.data = &c;
  ++live_;
  int r = uv_tcp_open(&c.tcp, fd);
  if (r == 0) {
    auto* req = new uv_connect_t;
    r = uv_tcp_connect(req, &c.tcp, options.peer.sa(), on_connect_cb);
    if (r != 0) delete req;
  } else {
    ::close(fd);  // not adopted by the handle
  }
  if (r != 0) {
    teardown(c, /*abort=*/false);
    return {uv_status(r), {}};
  }
  if (options.timeout > Duration::zero()) {
    c.timer = add_timer(now() + options.timeout, *this, c.id);
  }
  return {Status::Ok, ConnId{c.id}};
}

void UvLoop::on_connect_cb(uv_connect_t* req, int status) {
  Conn& c = conn_of(reinterpret_cast<uv_handle_t*>(req->handle));
  UvLoop& self = of(reinterpret_cast<uv_handle_t*>(req->handle));
  delete req;
  self.connect_done(c, status);
}

void UvLoop::connect_done(Conn& c, int status) {
  if (c.state != State::Connecting) return;  // timed out or closed: already settled
  const ConnId id{c.id};
  if (status == 0) {
    c.state = State::Connected;
    cancel_timer(c.timer);
    c.timer = {};
    uv_read_start(reinterpret_cast<uv_stream_t*>(&c.tcp), on_alloc_cb, on_read_cb);
    c.handler->on_connect(id, Status::Ok);
    return;
  }
  ConnHandler* handler = c.handler;
  teardown(c, /*abort=*/false);
  handler->on_connect(id, uv_status(status));
}

void UvLoop::on_timer(TimerId, uint64_t id) {
  Conn* c = conns_.find(id);
  if (c == nullptr) return;
  c->timer = {};
  if (c->state == State::Connecting) {
    ConnHandler* handler = c->handler;
    teardown(*c, /*abort=*/false);  // uv_close cancels the connect request
    handler->on_connect(ConnId{id}, Status::ConnectTimeout);
  } else if (c->state == State::Draining) {
    teardown(*c, /*abort=*/false);
  }
}

Status UvLoop::close(ConnId conn, CloseMode mode) {
  Conn* c = conns_.find(conn.value);
  if (c == nullptr || (c->state != State::Connecting && c->state != State::Connected)) {
    return Status::NotConnected;
  }
  if (mode == CloseMode::Abort || c->state == State::Connecting) {
    teardown(*c, mode == CloseMode::Abort);
    return Status::Ok;
  }
  // uv_shutdown waits for queued writes, then shutdown(SHUT_WR); reading goes on until EOF.
  c->state = State::Draining;
  c->handler = nullptr;
  c->timer = add_timer(now() + opts_.graceful_linger, *this, conn.value);
  auto* req = new uv_shutdown_t;
  if (uv_shutdown(req, reinterpret_cast<uv_stream_t*>(&c->tcp), on_shutdown_cb) != 0) {
    delete req;
    teardown(*c, /*abort=*/false);
  }
  return Status::Ok;
}

void UvLoop::on_shutdown_cb(uv_shutdown_t* req, int status) {
  Conn& c = conn_of(reinterpret_cast<uv_handle_t*>(req->handle));
  UvLoop& self = of(reinterpret_cast<uv_handle_t*>(req->handle));
  delete req;
  if (status < 0 && c.state == State::Draining) self.teardown(c, /*abort=*/false);
}

void UvLoop::teardown(Conn& c, bool abort) {
  if (c.timer.value != 0) {
    cancel_timer(c.timer);
    c.timer = {};
  }
  if (abort) {
    uv_os_fd_t fd;
    if (uv_fileno(reinterpret_cast<uv_handle_t*>(&c.tcp), &fd) == 0) detail::set_linger_zero(fd);
  }
  c.state = State::Closing;
  c.handler = nullptr;
  --live_;
  // Closes the fd now; pending writes/connect get ECANCELED callbacks, then on_close_cb.
  uv_close(reinterpret_cast<uv_handle_t*>(&c.tcp), on_close_cb);
}

void UvLoop::on_close_cb(uv_handle_t* handle) {
  Conn& c = conn_of(handle);
  of(handle).conns_.release(id_index(c.id));
}

void UvLoop::end_by_peer(Conn& c, Status status) {
  if (c.state == State::Connected) {
    ConnHandler* handler = c.handler;
    const ConnId id{c.id};
    teardown(c, /*abort=*/false);
    handler->on_closed(id, status);
  } else if (c.state == State::Draining) {
    teardown(c, /*abort=*/false);
  }
}

// [SECTION] receive ---------------------------------------------------------------------------

void UvLoop::on_alloc_cb(uv_handle_t* handle, size_t, uv_buf_t* buf) {
  // One buffer for every connection: libuv reads and calls on_read_cb before the next alloc.
  UvLoop& self = of(handle);
  *buf = uv_buf_init(self.read_buf_.data(), static_cast<unsigned>(self.read_buf_.size()));
}

void UvLoop::on_read_cb(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  Conn& c = conn_of(reinterpret_cast<uv_handle_t*>(stream));
  UvLoop& self = of(reinterpret_cast<uv_handle_t*>(stream));
  if (nread > 0) {
    if (c.state == State::Connected) {
      c.handler->on_data(ConnId{c.id}, std::string_view(buf->base, static_cast<size_t>(nread)));
    }
    return;
  }
  if (nread == 0) return;  // EAGAIN
  self.end_by_peer(c, nread == UV_EOF ? Status::PeerClosed : uv_status(static_cast<int>(nread)));
}

// [SECTION] send ------------------------------------------------------------------------------

Status UvLoop::send(ConnId conn, std::string_view bytes) {
  Conn* c = conns_.find(conn.value);
  if (c == nullptr || c->state != State::Connected) return Status::NotConnected;
  if (bytes.empty()) return Status::Ok;
  auto* stream = reinterpret_cast<uv_stream_t*>(&c->tcp);
  // Straight into the socket when nothing is queued (uv_try_write refuses otherwise, keeping
  // order); only the remainder is copied. Errors here resurface through uv_write's callback.
  uv_buf_t buf = uv_buf_init(const_cast<char*>(bytes.data()), static_cast<unsigned>(bytes.size()));
  const int written = uv_try_write(stream, &buf, 1);
  if (written > 0) bytes.remove_prefix(static_cast<size_t>(written));
  if (bytes.empty()) return Status::Ok;
  auto* w = static_cast<WriteReq*>(std::malloc(sizeof(WriteReq) + bytes.size()));
  if (w == nullptr) return Status::NoMemory;
  std::memcpy(w->data, bytes.data(), bytes.size());
  buf = uv_buf_init(w->data, static_cast<unsigned>(bytes.size()));
  const int r = uv_write(&w->req, stream, &buf, 1, on_write_cb);
  if (r != 0) {
    std::free(w);
    return uv_status(r);
  }
  return Status::Ok;
}

void UvLoop::on_write_cb(uv_write_t* req, int status) {
  Conn& c = conn_of(reinterpret_cast<uv_handle_t*>(req->handle));
  UvLoop& self = of(reinterpret_cast<uv_handle_t*>(req->handle));
  std::free(reinterpret_cast<WriteReq*>(req));
  if (status < 0 && status != UV_ECANCELED) self.end_by_peer(c, uv_status(status));
}

size_t UvLoop::send_queued(ConnId conn) const {
  const Conn* c = conns_.find(conn.value);
  if (c == nullptr) return 0;
  return uv_stream_get_write_queue_size(reinterpret_cast<const uv_stream_t*>(&c->tcp));
}

// [SECTION] timers ----------------------------------------------------------------------------

// One uv_timer_t for the earliest deadline of the shared heap. libuv counts time in whole
// milliseconds from a cached clock, so it may wake us a little early: run_due_timers() checks
// the real clock and we simply re-arm for what is left.
void UvLoop::arm_wakeup(bool from_timer) {
  const auto next = timers_.earliest();
  if (!next) {
    uv_timer_stop(&wakeup_);
    return;
  }
  const auto left = *next - now();
  auto ms =
      left <= Duration::zero() ? 0 : std::chrono::ceil<std::chrono::milliseconds>(left).count();
  // libuv 1.44 runs a timer re-armed with 0 ms inside its own callback again in the same pass;
  // 1 ms keeps a self re-arming timer from starving I/O.
  if (from_timer && ms == 0) ms = 1;
  uv_update_time(&loop_);
  uv_timer_start(&wakeup_, on_wakeup_cb, static_cast<uint64_t>(ms), 0);
}

void UvLoop::on_wakeup_cb(uv_timer_t* timer) {
  UvLoop& self = of(reinterpret_cast<uv_handle_t*>(timer));
  self.run_due_timers();
  self.arm_wakeup(/*from_timer=*/true);
}

// [SECTION] foreign fds -----------------------------------------------------------------------

Status UvLoop::watch_fd(int fd, bool readable, bool writable, FdHandler& handler) {
  if (fd < 0) return Status::InvalidArgument;
  if (!readable && !writable) {
    unwatch_fd(fd);
    return Status::Ok;
  }
  Watch* w;
  const auto it = watches_.find(fd);
  if (it == watches_.end()) {
    w = new Watch;
    const int r = uv_poll_init(&loop_, &w->poll, fd);
    if (r != 0) {
      delete w;
      return uv_status(r);
    }
    w->poll.data = w;
    w->fd = fd;
    watches_.emplace(fd, w);
  } else {
    w = it->second;
  }
  w->handler = &handler;
  w->readable = readable;
  w->writable = writable;
  const int events = (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0);
  const int r = uv_poll_start(&w->poll, events, on_poll_cb);
  return r == 0 ? Status::Ok : uv_status(r);
}

void UvLoop::unwatch_fd(int fd) {
  const auto it = watches_.find(fd);
  if (it == watches_.end()) return;
  Watch* w = it->second;
  watches_.erase(it);
  // uv_poll_stop removes the fd from epoll at once, so the owner may close it right after.
  uv_poll_stop(&w->poll);
  uv_close(reinterpret_cast<uv_handle_t*>(&w->poll),
           [](uv_handle_t* h) { delete static_cast<Watch*>(h->data); });
}

void UvLoop::on_poll_cb(uv_poll_t* poll, int status, int events) {
  Watch* w = static_cast<Watch*>(poll->data);
  bool readable = w->readable;
  bool writable = w->writable;
  if (status == 0) {
    readable = w->readable && (events & (UV_READABLE | UV_DISCONNECT));
    writable = w->writable && (events & UV_WRITABLE);
  }
  // status < 0: libuv saw POLLERR and stopped the handle; report every direction watched.
  w->handler->on_fd_ready(w->fd, readable, writable);
}

}  // namespace

core::Expected<std::unique_ptr<Loop>, std::string> create_uv_loop(const LoopOptions& options) {
  auto loop = std::make_unique<UvLoop>(options);
  if (auto ok = loop->init(); !ok) return core::unexpected(ok.error());
  return loop;
}

}  // namespace mxp::loop
