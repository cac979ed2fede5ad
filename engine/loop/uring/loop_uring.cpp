// The io_uring backend. Every kernel operation carries a token {op, slot, generation} in its
// user_data (liburing's examples/proxy.c), so a completion for a slot that was reused is told
// apart. One iteration: timers, queue sends and re-arms (one SQE per connection), one
// io_uring_submit_and_wait_timeout, then completions. Features are probed at set-up; anything
// missing is a fallback (poll+recv, plainer ring flags) or, for essentials, a refusal so that
// make_loop() picks libuv.
//
// [SECTION] set-up and probing   [SECTION] connections   [SECTION] receive   [SECTION] send
// [SECTION] foreign fds          [SECTION] run
//
// Longer than the ~700 lines engine/ files keep to, on purpose: it is one class, private to this
// file, whose parts share one set of invariants: a slot is reused only after the kernel returned
// every operation that named it (ops bits, ops_in_kernel_), a send buffer never moves while the
// kernel reads it, and the receive path (multishot into the buffer ring, or poll + recv) is the
// one set-up chose. Connect, receive, send, close and dispatch each keep those for the others, so
// they read best together; split, the class would have to become a header shared by files that
// each hold half of a state machine. The sections above are the way in.
#include "loop/uring/loop_uring.hpp"

#include <liburing.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <unordered_map>
#include <vector>

#include "loop/detail.hpp"

namespace mxp::loop {
namespace {

using detail::id_gen;
using detail::id_index;
using detail::kIdMask;
using detail::pack_id;

enum class Op : uint8_t {
  Ignore = 0,  // cancels, poll removals: their completions carry nothing we need
  Connect,
  Recv,      // multishot recv with a provided buffer
  RecvPoll,  // fallback: POLLIN, then recv(2) into the loop's buffer
  Send,
  FdPoll,  // foreign fd; the id part is {watch slot, arm sequence}
  Probe,
};

uint64_t token(Op op, uint64_t id) {
  return (uint64_t{static_cast<uint8_t>(op)} << 56) | id;
}

constexpr unsigned kBufGroup = 0;
// Completions handled per iteration beyond the foreign fds (see reap()): about a millisecond.
constexpr unsigned kCompletionsPerIteration = 128;
constexpr uint8_t kOpConnect = 1;
constexpr uint8_t kOpRecv = 2;
constexpr uint8_t kOpSend = 4;

enum class State : uint8_t {
  Connecting,
  Connected,
  Draining,  // graceful close: flushing, then reading until EOF; no handler any more
  Closing,   // socket closed; waiting for in-flight operations before the slot is reused
};

// Bytes waiting to be sent; malloc'ed only while non-empty, so an idle connection holds none.
struct OutBuf {
  char* data = nullptr;
  uint32_t size = 0;
  uint32_t cap = 0;

  bool append(std::string_view bytes) {
    if (bytes.size() > UINT32_MAX - size) return false;
    const uint32_t need = size + static_cast<uint32_t>(bytes.size());
    if (need > cap) {
      uint64_t grown = cap ? uint64_t{cap} * 2 : 256;
      while (grown < need)
        grown *= 2;
      if (grown > UINT32_MAX) grown = UINT32_MAX;
      auto* p = static_cast<char*>(std::realloc(data, grown));
      if (p == nullptr) return false;
      data = p;
      cap = static_cast<uint32_t>(grown);
    }
    std::memcpy(data + size, bytes.data(), bytes.size());
    size = need;
    return true;
  }
  void reset() {
    std::free(data);
    data = nullptr;
    size = cap = 0;
  }
};

struct Conn {
  ConnHandler* handler = nullptr;
  int fd = -1;
  State state = State::Closing;
  uint8_t ops = 0;          // kOp* bits of operations the kernel holds
  bool in_flush = false;    // listed in flush_
  bool recv_rearm = false;  // the multishot receive ended early (ENOBUFS...): re-arm at flush
  TimerId timer;            // connect timeout or graceful linger
  uint32_t sent = 0;        // bytes of `sending` the kernel already took
  OutBuf sending;           // the in-flight send points into this: never grown while in flight
  OutBuf queued;            // send() appends here
  Endpoint peer;            // connect()'s address; the kernel may read it until submission
};

struct Watch {
  int fd = -1;
  bool readable = false;
  bool writable = false;
  bool armed = false;
  uint32_t arm_seq = 0;  // bumped on every arm; kept across slot reuse so stale tokens never match
  FdHandler* handler = nullptr;
};

class UringLoop final : public Loop, private TimerHandler {
 public:
  explicit UringLoop(const LoopOptions& options) : opts_(options) {}
  ~UringLoop() override;

  core::Expected<void, std::string> init();

  Backend backend() const override { return Backend::Uring; }
  const std::string& describe() const override { return describe_; }
  ConnectResult connect(const ConnectOptions& options, ConnHandler& handler) override;
  Status send(ConnId id, std::string_view bytes) override;
  size_t send_queued(ConnId id) const override;
  Status close(ConnId id, CloseMode mode) override;
  size_t connection_count() const override { return live_; }
  Status watch_fd(int fd, bool readable, bool writable, FdHandler& handler) override;
  void unwatch_fd(int fd) override;
  void run() override;
  void stop() override { stop_ = true; }

 private:
  void on_timer(TimerId id, uint64_t cookie) override;

  core::Expected<void, std::string> setup_ring();
  core::Expected<void, std::string> setup_buf_ring();
  core::Expected<void, std::string> probe_multishot_recv();
  void free_buf_ring();

  io_uring_sqe* get_sqe();
  void cancel(uint64_t tok);
  void arm_recv(Conn& c, uint64_t id);
  void start_send(Conn& c, uint64_t id);
  void schedule_flush(Conn& c, uint64_t id);
  void teardown(Conn& c, uint64_t id, bool abort);
  void end_by_peer(Conn& c, uint64_t id, Status status);
  void maybe_release(uint64_t id);
  void op_done(Conn& c, uint8_t op);
  void recycle(unsigned bid);
  char* buffer(unsigned bid) { return bufs_ + size_t{bid} * opts_.recv_buffer_size; }

  void on_connect_done(Conn& c, uint64_t id, int res);
  void on_recv(uint64_t id, int res, unsigned flags);
  void on_recv_ready(Conn& c, uint64_t id, int res);
  void on_send_done(Conn& c, uint64_t id, int res);
  void on_fd_poll(uint64_t tok_id, int res);
  void arm_watch(uint32_t index);

  bool alive() const { return live_ > 0 || timers_.size() > 0 || !watch_by_fd_.empty(); }
  void flush();
  bool wait(bool block);
  void reap(bool all = false);  // all: the whole backlog (teardown)
  void dispatch(uint64_t user_data, int res, unsigned flags);

  LoopOptions opts_;
  std::string describe_;
  io_uring ring_{};
  bool ring_ok_ = false;
  bool stop_ = false;
  bool multishot_ = false;  // multishot recv + provided buffer ring; else poll+recv
  io_uring_buf_ring* br_ = nullptr;
  size_t br_bytes_ = 0;
  char* bufs_ = nullptr;
  size_t bufs_bytes_ = 0;
  std::vector<char> read_buf_;  // poll+recv fallback: one buffer for every connection

  detail::SlotTable<Conn> conns_;
  size_t live_ = 0;           // Connecting, Connected or Draining
  size_t ops_in_kernel_ = 0;  // over all connections: the destructor waits for zero
  std::vector<uint64_t> flush_;
  // Completions taken off the ring and not yet handled: foreign fds (the HTTP API, c-ares)
  // apart, handled first, so that a request never waits behind thousands of SMTP replies.
  struct Completion {
    uint64_t user_data;
    int res;
    unsigned flags;
  };
  std::deque<Completion> fd_ready_, backlog_;

  detail::SlotTable<Watch> watches_;
  std::unordered_map<int, uint32_t> watch_by_fd_;
};

// [SECTION] set-up and probing ----------------------------------------------------------------

core::Expected<void, std::string> UringLoop::init() {
  if (auto ring = setup_ring(); !ring) return ring;
  // Operations this backend issues; IORING_OP_* numbers are stable, the probe says what this
  // kernel implements (connect and async cancel 5.5, send/recv 5.6).
  io_uring_probe* probe = io_uring_get_probe_ring(&ring_);
  if (probe == nullptr)
    return core::unexpected("io_uring_get_probe_ring failed (kernel older than 5.6)");
  struct Needed {
    int op;
    const char* name;
  };
  const Needed needed[] = {{IORING_OP_CONNECT, "CONNECT"},
                           {IORING_OP_SEND, "SEND"},
                           {IORING_OP_RECV, "RECV"},
                           {IORING_OP_POLL_ADD, "POLL_ADD"},
                           {IORING_OP_POLL_REMOVE, "POLL_REMOVE"},
                           {IORING_OP_ASYNC_CANCEL, "ASYNC_CANCEL"}};
  for (const Needed& n : needed) {
    if (!io_uring_opcode_supported(probe, n.op)) {
      io_uring_free_probe(probe);
      return core::unexpected(std::string("kernel lacks IORING_OP_") + n.name);
    }
  }
  io_uring_free_probe(probe);

  std::string recv_why;
  if (opts_.uring_allow_buf_ring) {
    auto recv = setup_buf_ring();
    if (recv) recv = probe_multishot_recv();
    multishot_ = recv.ok();
    if (!recv) recv_why = recv.error();
  }
  if (multishot_) {
    describe_ += ", multishot recv, buffer ring " + std::to_string(opts_.recv_buffer_count) + "x" +
                 std::to_string(opts_.recv_buffer_size);
  } else {
    free_buf_ring();
    read_buf_.resize(64 * 1024);
    describe_ += ", poll+recv (" +
                 (opts_.uring_allow_buf_ring ? recv_why : std::string("buffer ring disabled")) +
                 ")";
  }
  describe_ += ")";
  return {};
}

core::Expected<void, std::string> UringLoop::setup_ring() {
  // Newest first. SINGLE_ISSUER|DEFER_TASKRUN (6.1): completions are processed only when this
  // thread waits, no task-work interrupts. COOP_TASKRUN (5.19) is the milder form. SUBMIT_ALL
  // (5.18) keeps one bad SQE from stalling the rest of a batch. CQSIZE (5.5): 8x the SQ, because
  // multishot receives on thousands of sockets can complete together.
  struct Attempt {
    unsigned flags;
    const char* name;
  };
  const Attempt attempts[] = {
      {IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
       "SINGLE_ISSUER|DEFER_TASKRUN|SUBMIT_ALL"},
      {IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN, "COOP_TASKRUN|SUBMIT_ALL"},
      {0, "no optional flags"},
  };
  int last = 0;
  for (const Attempt& a : attempts) {
    if (!opts_.uring_allow_defer_taskrun && (a.flags & IORING_SETUP_DEFER_TASKRUN)) continue;
    io_uring_params p{};
    p.flags = a.flags | IORING_SETUP_CQSIZE;
    p.cq_entries = opts_.uring_entries * 8;
    last = io_uring_queue_init_params(opts_.uring_entries, &ring_, &p);
    if (last == -EINVAL) continue;  // flag unknown to this kernel: try the next set
    if (last < 0) break;            // EPERM (io_uring_disabled, seccomp), ENOMEM, ENOSYS
    // Without FAST_POLL (5.7) every receive waiting for data parks an io-wq thread: unusable
    // with thousands of idle connections. NODROP (5.5): completions are never lost.
    if (!(p.features & IORING_FEAT_FAST_POLL) || !(p.features & IORING_FEAT_NODROP)) {
      io_uring_queue_exit(&ring_);
      return core::unexpected("kernel lacks IORING_FEAT_FAST_POLL/NODROP (needs 5.7)");
    }
    ring_ok_ = true;
    describe_ = std::string("io_uring (") + a.name;
    return {};
  }
  return core::unexpected(std::string("io_uring_queue_init failed: ") + std::strerror(-last));
}

core::Expected<void, std::string> UringLoop::setup_buf_ring() {
  // liburing 2.3 has no io_uring_setup_buf_ring: map the ring (page aligned), register it, then
  // hand every buffer to the kernel (docs/platform.md).
  const unsigned count = opts_.recv_buffer_count;
  if (count == 0 || count > 32768 || (count & (count - 1)) != 0 || opts_.recv_buffer_size == 0)
    return core::unexpected("recv_buffer_count must be a power of two <= 32768");
  br_bytes_ = count * sizeof(io_uring_buf);
  void* ring_mem =
      mmap(nullptr, br_bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (ring_mem == MAP_FAILED) {
    br_bytes_ = 0;
    return core::unexpected("mmap of the buffer ring failed");
  }
  br_ = static_cast<io_uring_buf_ring*>(ring_mem);
  io_uring_buf_ring_init(br_);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uintptr_t>(br_);
  reg.ring_entries = count;
  reg.bgid = kBufGroup;
  const int r = io_uring_register_buf_ring(&ring_, &reg, 0);
  if (r < 0) {
    munmap(br_, br_bytes_);
    br_ = nullptr;
    br_bytes_ = 0;
    return core::unexpected(std::string("provided buffer rings unsupported (5.19): ") +
                            std::strerror(-r));
  }
  // Buffers are mapped, not malloc'ed: pages become resident only once data lands in them.
  bufs_bytes_ = size_t{count} * opts_.recv_buffer_size;
  void* mem =
      mmap(nullptr, bufs_bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (mem == MAP_FAILED) {
    bufs_bytes_ = 0;
    return core::unexpected("mmap of receive buffers failed");
  }
  bufs_ = static_cast<char*>(mem);
  const int mask = io_uring_buf_ring_mask(count);
  for (unsigned i = 0; i < count; ++i) {
    io_uring_buf_ring_add(br_, buffer(i), opts_.recv_buffer_size, static_cast<unsigned short>(i),
                          mask, static_cast<int>(i));
  }
  io_uring_buf_ring_advance(br_, static_cast<int>(count));
  return {};
}

// Multishot receive (6.0) has no probe bit: try it on a socketpair holding one byte and an EOF.
// Supported: a 1-byte completion with a buffer and F_MORE, then the EOF. Older kernels: -EINVAL.
core::Expected<void, std::string> UringLoop::probe_multishot_recv() {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    return core::unexpected("socketpair failed");
  std::string why;
  const char byte = 'x';
  bool ok = ::write(sv[1], &byte, 1) == 1 && ::shutdown(sv[1], SHUT_WR) == 0;
  bool supported = false;
  if (ok) {
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_recv_multishot(sqe, sv[0], nullptr, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = kBufGroup;
    sqe->user_data = token(Op::Probe, 0);
    bool done = false;
    while (!done) {
      io_uring_cqe* cqe = nullptr;
      __kernel_timespec ts{1, 0};  // a bound only: the data is already there
      if (io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr) < 0 || !cqe) break;
      const int res = cqe->res;
      const unsigned flags = cqe->flags;
      io_uring_cqe_seen(&ring_, cqe);
      if (flags & IORING_CQE_F_BUFFER) recycle(flags >> IORING_CQE_BUFFER_SHIFT);
      if (res == 1 && (flags & IORING_CQE_F_BUFFER) && (flags & IORING_CQE_F_MORE)) {
        supported = true;
      }
      if (res < 0 && !supported) why = std::string("multishot recv: ") + std::strerror(-res);
      done = !(flags & IORING_CQE_F_MORE);
    }
    if (!done) why = "multishot recv probe did not complete";
    ok = done && supported;
    if (done && !supported && why.empty()) why = "multishot recv unsupported";
  }
  ::close(sv[0]);
  ::close(sv[1]);
  if (!ok) return core::unexpected(std::move(why));
  return {};
}

void UringLoop::free_buf_ring() {
  if (br_ != nullptr) {
    if (ring_ok_) io_uring_unregister_buf_ring(&ring_, kBufGroup);
    munmap(br_, br_bytes_);
    br_ = nullptr;
  }
  if (bufs_ != nullptr) {
    munmap(bufs_, bufs_bytes_);
    bufs_ = nullptr;
  }
}

UringLoop::~UringLoop() {
  if (ring_ok_) {
    for (uint32_t i = 0; i < conns_.capacity(); ++i) {
      if (conns_.used(i) && conns_.at(i).state != State::Closing) {
        teardown(conns_.at(i), conns_.id_of(i), /*abort=*/true);
      }
    }
    while (!watch_by_fd_.empty())
      unwatch_fd(watch_by_fd_.begin()->first);
    flush_.clear();
    // The kernel writes into the provided buffers and reads send buffers until each operation
    // completes; cancellations were queued above, so this ends quickly.
    for (int i = 0; ops_in_kernel_ > 0 && i < 500; ++i) {
      io_uring_cqe* cqe = nullptr;
      __kernel_timespec ts{0, 10'000'000};
      io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
      reap(/*all=*/true);
    }
    io_uring_queue_exit(&ring_);
  }
  for (uint32_t i = 0; i < conns_.capacity(); ++i) {
    conns_.at(i).sending.reset();
    conns_.at(i).queued.reset();
  }
  ring_ok_ = false;
  free_buf_ring();
}

io_uring_sqe* UringLoop::get_sqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  while (sqe == nullptr) {  // SQ full: submit what is there (still one syscall per SQ-full batch)
    const int r = io_uring_submit(&ring_);
    if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
      std::fprintf(stderr, "mxp::loop: io_uring_submit failed: %s\n", std::strerror(-r));
      std::abort();
    }
    sqe = io_uring_get_sqe(&ring_);
  }
  return sqe;
}

void UringLoop::cancel(uint64_t tok) {
  io_uring_sqe* sqe = get_sqe();
  io_uring_prep_cancel64(sqe, tok, 0);
  sqe->user_data = token(Op::Ignore, 0);
}

// [SECTION] connections -----------------------------------------------------------------------

ConnectResult UringLoop::connect(const ConnectOptions& options, ConnHandler& handler) {
  // socket() and bind() are cheap synchronous calls; only connect goes through the ring. Sockets
  // stay blocking: io_uring turns EAGAIN into an internal poll either way.
  const int fd = detail::open_tcp_socket(options, /*nonblocking=*/false);
  if (fd < 0) return {status_from_errno(-fd), {}};
  const int64_t index = conns_.acquire();
  if (index < 0) {
    ::close(fd);
    return {Status::NoMemory, {}};
  }
  Conn& c = conns_.at(static_cast<uint32_t>(index));
  c = Conn{};
  c.handler = &handler;
  c.fd = fd;
  c.state = State::Connecting;
  c.peer = options.peer;
  const uint64_t id = conns_.id_of(static_cast<uint32_t>(index));
  io_uring_sqe* sqe = get_sqe();
  io_uring_prep_connect(sqe, fd, c.peer.sa(), c.peer.len());
  sqe->user_data = token(Op::Connect, id);
  c.ops |= kOpConnect;
  ++ops_in_kernel_;
  ++live_;
  if (options.timeout > Duration::zero()) c.timer = add_timer(now() + options.timeout, *this, id);
  return {Status::Ok, ConnId{id}};
}

void UringLoop::on_connect_done(Conn& c, uint64_t id, int res) {
  if (c.state != State::Connecting) return;  // timed out or closed: already settled
  if (res == 0) {
    c.state = State::Connected;
    cancel_timer(c.timer);
    c.timer = {};
    arm_recv(c, id);
    c.handler->on_connect(ConnId{id}, Status::Ok);
    return;
  }
  ConnHandler* handler = c.handler;
  teardown(c, id, /*abort=*/false);
  handler->on_connect(ConnId{id}, status_from_errno(-res));
}

void UringLoop::on_timer(TimerId, uint64_t id) {
  Conn* c = conns_.find(id);
  if (c == nullptr) return;
  c->timer = {};
  if (c->state == State::Connecting) {
    ConnHandler* handler = c->handler;
    teardown(*c, id, /*abort=*/false);  // cancels the connect
    handler->on_connect(ConnId{id}, Status::ConnectTimeout);
  } else if (c->state == State::Draining) {
    teardown(*c, id, /*abort=*/false);  // the peer never sent its EOF
  }
}

Status UringLoop::close(ConnId conn, CloseMode mode) {
  Conn* c = conns_.find(conn.value);
  if (c == nullptr || (c->state != State::Connecting && c->state != State::Connected)) {
    return Status::NotConnected;
  }
  if (mode == CloseMode::Abort || c->state == State::Connecting) {
    teardown(*c, conn.value, mode == CloseMode::Abort);
    return Status::Ok;
  }
  c->state = State::Draining;
  c->handler = nullptr;
  c->timer = add_timer(now() + opts_.graceful_linger, *this, conn.value);
  // FIN now if nothing is waiting to be sent; otherwise on_send_done sends it after the last byte.
  if (!(c->ops & kOpSend) && c->queued.size == 0) ::shutdown(c->fd, SHUT_WR);
  return Status::Ok;
}

// Closes the socket and cancels what the kernel still holds. The slot is reused only when the
// last of those operations has completed (maybe_release), so late completions find it Closing.
void UringLoop::teardown(Conn& c, uint64_t id, bool abort) {
  if (c.timer.value != 0) {
    cancel_timer(c.timer);
    c.timer = {};
  }
  if (c.ops & kOpConnect) cancel(token(Op::Connect, id));
  if (c.ops & kOpRecv) cancel(token(multishot_ ? Op::Recv : Op::RecvPoll, id));
  if (c.ops & kOpSend) cancel(token(Op::Send, id));
  if (abort) detail::set_linger_zero(c.fd);
  // The kernel keeps its own file reference while operations are in flight: the socket really
  // closes (FIN, or RST after SO_LINGER 0) once the cancellations above complete.
  ::close(c.fd);
  c.fd = -1;
  c.state = State::Closing;
  c.handler = nullptr;
  c.recv_rearm = false;
  --live_;
  c.queued.reset();
  if (!(c.ops & kOpSend)) c.sending.reset();
  maybe_release(id);
}

void UringLoop::end_by_peer(Conn& c, uint64_t id, Status status) {
  if (c.state == State::Connected) {
    ConnHandler* handler = c.handler;
    teardown(c, id, /*abort=*/false);
    handler->on_closed(ConnId{id}, status);
  } else if (c.state == State::Draining) {
    teardown(c, id, /*abort=*/false);
  }
}

void UringLoop::maybe_release(uint64_t id) {
  Conn* c = conns_.find(id);
  if (c == nullptr || c->state != State::Closing || c->ops != 0 || c->in_flush) return;
  c->sending.reset();
  c->queued.reset();
  conns_.release(id_index(id));
}

void UringLoop::op_done(Conn& c, uint8_t op) {
  c.ops &= static_cast<uint8_t>(~op);
  --ops_in_kernel_;
}

// [SECTION] receive ---------------------------------------------------------------------------

void UringLoop::arm_recv(Conn& c, uint64_t id) {
  io_uring_sqe* sqe = get_sqe();
  if (multishot_) {
    // One SQE for the connection's lifetime; each completion names a buffer from the shared ring.
    io_uring_prep_recv_multishot(sqe, c.fd, nullptr, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = kBufGroup;
    sqe->user_data = token(Op::Recv, id);
  } else {
    io_uring_prep_poll_add(sqe, c.fd, POLLIN);
    sqe->user_data = token(Op::RecvPoll, id);
  }
  c.ops |= kOpRecv;
  ++ops_in_kernel_;
}

void UringLoop::recycle(unsigned bid) {
  io_uring_buf_ring_add(br_, buffer(bid), opts_.recv_buffer_size, static_cast<unsigned short>(bid),
                        io_uring_buf_ring_mask(opts_.recv_buffer_count), 0);
  io_uring_buf_ring_advance(br_, 1);
}

void UringLoop::on_recv(uint64_t id, int res, unsigned flags) {
  Conn* c = conns_.find(id);
  const bool more = flags & IORING_CQE_F_MORE;
  if (c != nullptr && !more) op_done(*c, kOpRecv);
  if (res > 0) {
    const unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;
    if (c != nullptr && c->state == State::Connected) {
      c->handler->on_data(ConnId{id}, std::string_view(buffer(bid), static_cast<size_t>(res)));
    }
    recycle(bid);  // the bytes were valid during on_data only
    c = conns_.find(id);
    if (c != nullptr && !more && (c->state == State::Connected || c->state == State::Draining)) {
      c->recv_rearm = true;  // the kernel ended the multishot (e.g. CQ pressure): start another
      schedule_flush(*c, id);
    }
    return;
  }
  if (c == nullptr || c->state == State::Closing) return;
  if (res == -ENOBUFS) {
    // Every shared buffer was in use: re-arm at the next flush, after this batch returned them.
    if (!more) {
      c->recv_rearm = true;
      schedule_flush(*c, id);
    }
    return;
  }
  end_by_peer(*c, id, res == 0 ? Status::PeerClosed : status_from_errno(-res));
}

void UringLoop::on_recv_ready(Conn& c, uint64_t id, int res) {
  if (c.state != State::Connected && c.state != State::Draining) return;
  if (res < 0) {
    end_by_peer(c, id, status_from_errno(-res));
    return;
  }
  const ssize_t n = ::recv(c.fd, read_buf_.data(), read_buf_.size(), MSG_DONTWAIT);
  if (n > 0) {
    if (c.state == State::Connected) {
      c.handler->on_data(ConnId{id}, std::string_view(read_buf_.data(), static_cast<size_t>(n)));
    }
    Conn* again = conns_.find(id);
    if (again != nullptr && (again->state == State::Connected || again->state == State::Draining)) {
      arm_recv(*again, id);
    }
  } else if (n == 0) {
    end_by_peer(c, id, Status::PeerClosed);
  } else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
    arm_recv(c, id);
  } else {
    end_by_peer(c, id, status_from_errno(errno));
  }
}

// [SECTION] send ------------------------------------------------------------------------------

Status UringLoop::send(ConnId conn, std::string_view bytes) {
  Conn* c = conns_.find(conn.value);
  if (c == nullptr || c->state != State::Connected) return Status::NotConnected;
  if (bytes.empty()) return Status::Ok;
  if (!c->queued.append(bytes)) return Status::NoMemory;
  if (!(c->ops & kOpSend)) schedule_flush(*c, conn.value);
  return Status::Ok;
}

size_t UringLoop::send_queued(ConnId conn) const {
  const Conn* c = conns_.find(conn.value);
  if (c == nullptr) return 0;
  return size_t{c->queued.size} + (c->sending.size - c->sent);
}

void UringLoop::schedule_flush(Conn& c, uint64_t id) {
  if (c.in_flush) return;
  c.in_flush = true;
  flush_.push_back(id);
}

// Hands the send buffer to the kernel: what is left of `sending`, or else everything queued.
void UringLoop::start_send(Conn& c, uint64_t id) {
  if (c.sent == c.sending.size) {
    if (c.queued.size == 0) return;
    std::swap(c.sending, c.queued);  // the old sending storage is reused for the next appends
    c.queued.size = 0;
    c.sent = 0;
  }
  io_uring_sqe* sqe = get_sqe();
  io_uring_prep_send(sqe, c.fd, c.sending.data + c.sent, c.sending.size - c.sent, MSG_NOSIGNAL);
  sqe->user_data = token(Op::Send, id);
  c.ops |= kOpSend;
  ++ops_in_kernel_;
}

void UringLoop::on_send_done(Conn& c, uint64_t id, int res) {
  if (c.state == State::Closing) {
    c.sending.reset();
    return;
  }
  if (res < 0) {
    if (res == -EINTR || res == -EAGAIN) {
      start_send(c, id);
    } else {
      end_by_peer(c, id, status_from_errno(-res));
    }
    return;
  }
  c.sent += static_cast<uint32_t>(res);
  if (c.sent < c.sending.size || c.queued.size > 0) {
    start_send(c, id);  // a short send, or bytes queued meanwhile
    return;
  }
  c.sending.reset();  // all sent: an idle connection keeps no buffer
  c.queued.reset();
  c.sent = 0;
  if (c.state == State::Draining) ::shutdown(c.fd, SHUT_WR);
}

// [SECTION] foreign fds -----------------------------------------------------------------------

Status UringLoop::watch_fd(int fd, bool readable, bool writable, FdHandler& handler) {
  if (fd < 0) return Status::InvalidArgument;
  if (!readable && !writable) {
    unwatch_fd(fd);
    return Status::Ok;
  }
  const auto it = watch_by_fd_.find(fd);
  if (it == watch_by_fd_.end()) {
    const int64_t index = watches_.acquire();
    if (index < 0) return Status::NoMemory;
    Watch& w = watches_.at(static_cast<uint32_t>(index));
    w.fd = fd;  // arm_seq is deliberately kept from the slot's previous use
    w.readable = readable;
    w.writable = writable;
    w.armed = false;
    w.handler = &handler;
    watch_by_fd_.emplace(fd, static_cast<uint32_t>(index));
    arm_watch(static_cast<uint32_t>(index));
    return Status::Ok;
  }
  Watch& w = watches_.at(it->second);
  w.handler = &handler;
  if (w.readable == readable && w.writable == writable && w.armed) return Status::Ok;
  w.readable = readable;
  w.writable = writable;
  if (w.armed) {
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_poll_remove(sqe, token(Op::FdPoll, pack_id(it->second, w.arm_seq)));
    sqe->user_data = token(Op::Ignore, 0);
    w.armed = false;
  }
  arm_watch(it->second);
  return Status::Ok;
}

void UringLoop::unwatch_fd(int fd) {
  const auto it = watch_by_fd_.find(fd);
  if (it == watch_by_fd_.end()) return;
  Watch& w = watches_.at(it->second);
  if (w.armed) {
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_poll_remove(sqe, token(Op::FdPoll, pack_id(it->second, w.arm_seq)));
    sqe->user_data = token(Op::Ignore, 0);
    w.armed = false;
  }
  ++w.arm_seq;  // a completion already posted for the old poll must not match a later user
  w.handler = nullptr;
  watches_.release(it->second);
  watch_by_fd_.erase(it);
}

// One-shot poll, re-armed after each report: level-triggered, and it works on every kernel.
void UringLoop::arm_watch(uint32_t index) {
  Watch& w = watches_.at(index);
  ++w.arm_seq;
  io_uring_sqe* sqe = get_sqe();
  io_uring_prep_poll_add(sqe, w.fd, (w.readable ? POLLIN : 0) | (w.writable ? POLLOUT : 0));
  sqe->user_data = token(Op::FdPoll, pack_id(index, w.arm_seq));
  w.armed = true;
}

void UringLoop::on_fd_poll(uint64_t tok_id, int res) {
  const uint32_t index = id_index(tok_id);
  const uint32_t seq = id_gen(tok_id);
  if (index >= watches_.capacity() || !watches_.used(index)) return;
  Watch& w = watches_.at(index);
  if (w.arm_seq != seq || !w.armed) return;  // a poll we removed or replaced
  w.armed = false;
  bool readable = w.readable;
  bool writable = w.writable;
  if (res >= 0) {
    const unsigned ev = static_cast<unsigned>(res);
    const unsigned err = POLLERR | POLLHUP | POLLNVAL;
    readable = w.readable && (ev & (POLLIN | err));
    writable = w.writable && (ev & (POLLOUT | err));
  }
  // res < 0 (EBADF: closed without unwatch): report every direction so the owner notices; not
  // re-armed, since polling a dead fd again would spin.
  w.handler->on_fd_ready(w.fd, readable, writable);
  if (res >= 0 && watches_.used(index)) {
    Watch& again = watches_.at(index);
    if (again.arm_seq == seq && !again.armed) arm_watch(index);
  }
}

// [SECTION] run -------------------------------------------------------------------------------

// The phases of one iteration, in order (compare uv_run):
//   1. timers that are due          -> TimerHandler::on_timer
//   2. flush                        -> one SEND (everything queued) / recv re-arm per connection
//   3. submit + wait                -> a single io_uring_submit_and_wait_timeout; the wait ends
//                                      at the first completion or the earliest timer
//   4. completions                  -> on_connect / on_data / on_closed / on_fd_ready
void UringLoop::run() {
  while (!stop_ && alive()) {
    run_due_timers();
    flush();
    if (!wait(/*block=*/!stop_ && alive() && backlog_.empty())) break;
    reap();
  }
  stop_ = false;
  flush();
  io_uring_submit(&ring_);  // leave nothing prepared but unsubmitted between runs
}

void UringLoop::flush() {
  // Handlers cannot run here, so flush_ does not change while we walk it.
  for (const uint64_t id : flush_) {
    Conn* c = conns_.find(id);
    if (c == nullptr) continue;
    c->in_flush = false;
    if (c->state == State::Connected || c->state == State::Draining) {
      if (c->recv_rearm && !(c->ops & kOpRecv)) arm_recv(*c, id);
      if (!(c->ops & kOpSend)) start_send(*c, id);
    }
    c->recv_rearm = false;
    maybe_release(id);
  }
  flush_.clear();
}

bool UringLoop::wait(bool block) {
  __kernel_timespec ts{0, 0};
  __kernel_timespec* tsp = &ts;
  if (block) {
    if (const auto next = timers_.earliest()) {
      const auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(*next - now());
      if (left.count() > 0) {
        ts.tv_sec = left.count() / 1'000'000'000;
        ts.tv_nsec = left.count() % 1'000'000'000;
      }
    } else {
      tsp = nullptr;  // only I/O can wake us
    }
  }
  io_uring_cqe* cqe = nullptr;
  const int r = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, tsp, nullptr);
  if (r < 0 && r != -ETIME && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
    std::fprintf(stderr, "mxp::loop: io_uring wait failed: %s\n", std::strerror(-r));
    return false;
  }
  return true;
}

void UringLoop::reap(bool all) {
  io_uring_cqe* cqe = nullptr;
  while (io_uring_cq_ready(&ring_) > 0 && io_uring_peek_cqe(&ring_, &cqe) == 0) {
    const Completion c{cqe->user_data, cqe->res, cqe->flags};
    io_uring_cqe_seen(&ring_, cqe);
    (static_cast<Op>(c.user_data >> 56) == Op::FdPoll ? fd_ready_ : backlog_).push_back(c);
  }
  // Foreign fds first, all of them: they are few, and an API request or a DNS answer should
  // not wait for the SMTP replies that arrived before it (under load, thousands).
  while (!fd_ready_.empty()) {
    const Completion c = fd_ready_.front();
    fd_ready_.pop_front();
    dispatch(c.user_data, c.res, c.flags);
  }
  // The rest in arrival order, a bounded number per iteration so that timers and foreign fds
  // get their turn every millisecond or so (the ring is drained above, so this costs no
  // kernel-side overflow).
  for (unsigned budget = kCompletionsPerIteration; (all || budget > 0) && !backlog_.empty();
       --budget) {
    const Completion c = backlog_.front();
    backlog_.pop_front();
    dispatch(c.user_data, c.res, c.flags);
  }
}

void UringLoop::dispatch(uint64_t user_data, int res, unsigned flags) {
  const auto op = static_cast<Op>(user_data >> 56);
  const uint64_t id = user_data & kIdMask;
  if (op == Op::FdPoll) {
    on_fd_poll(id, res);
    return;
  }
  if (op == Op::Recv) {
    on_recv(id, res, flags);
    maybe_release(id);
    return;
  }
  if (op != Op::Connect && op != Op::RecvPoll && op != Op::Send) return;
  Conn* c = conns_.find(id);
  if (c == nullptr) return;  // not reached: slots outlive their operations
  switch (op) {
    case Op::Connect:
      op_done(*c, kOpConnect);
      on_connect_done(*c, id, res);
      break;
    case Op::RecvPoll:
      op_done(*c, kOpRecv);
      on_recv_ready(*c, id, res);
      break;
    case Op::Send:
      op_done(*c, kOpSend);
      on_send_done(*c, id, res);
      break;
    default:
      break;
  }
  maybe_release(id);
}

}  // namespace

core::Expected<std::unique_ptr<Loop>, std::string> create_uring_loop(const LoopOptions& options) {
  auto loop = std::make_unique<UringLoop>(options);
  if (auto ok = loop->init(); !ok) return core::unexpected(ok.error());
  return loop;
}

}  // namespace mxp::loop
