// The event loop: one small interface (mxp::loop::Loop) that moves bytes and fires timers, with an
// io_uring backend and a libuv backend chosen at run time (make_loop). Protocol logic stays out:
// sans-I/O cores are driven through ConnHandler callbacks. See engine/loop/README.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "loop/endpoint.hpp"
#include "loop/status.hpp"
#include "loop/timer_heap.hpp"

namespace mxp::loop {

// A connection: slot index (24 bits) and the slot's generation (32 bits), so an id kept after the
// connection ended never reaches the slot's next user (liburing's {conn_id, generation} idea).
struct ConnId {
  uint64_t value = 0;  // 0 is never a live connection
  bool operator==(const ConnId&) const = default;
};

enum class CloseMode : uint8_t {
  // Queued bytes are still sent, then FIN (shutdown SHUT_WR); the loop keeps reading and
  // discarding until the peer's EOF or LoopOptions::graceful_linger, then closes. Closing with
  // unread data would make the kernel send RST instead of FIN, hence the read-until-EOF.
  Graceful,
  // Queued bytes are dropped and the peer gets RST (SO_LINGER 0).
  Abort,
};

struct ConnectOptions {
  Endpoint peer;                   // IPv4 or IPv6 address and port
  std::optional<Endpoint> source;  // bind() to it before connect(); same family; port 0 = any
  // The connect timer; zero = none (the kernel gives up after its SYN retries, ~2 min).
  Duration timeout = std::chrono::seconds(30);
  bool no_delay = true;  // TCP_NODELAY: small request/response traffic should not wait for ACKs
};

struct ConnectResult {
  Status status = Status::Ok;  // not Ok: nothing was started and no callback will come
  ConnId id;
};

// Callbacks of one connection. All run inside Loop::run(), never inside a Loop call; a callback may
// call any Loop function (send, close, connect, timers, stop). After on_connect with an error,
// on_closed, or the caller's own close(), the handler is never called again for that id, so it
// may be destroyed then; until then it must stay alive.
class ConnHandler {
 public:
  // Ok: connected, data may flow. Otherwise the connect failed and the id is dead.
  virtual void on_connect(ConnId id, Status status) = 0;
  // Received bytes. They live in a buffer shared by all connections: valid during the call only.
  virtual void on_data(ConnId id, std::string_view bytes) = 0;
  // The connection ended without our close(): PeerClosed (EOF), ConnectionReset, BrokenPipe...
  // The loop has already closed the socket; the id is dead.
  virtual void on_closed(ConnId id, Status status) = 0;

 protected:
  ~ConnHandler() = default;
};

// Readiness of a foreign fd (c-ares' sockets). Level-triggered: called again on the next
// iteration while the condition holds. Errors and hang-ups report every direction watched.
class FdHandler {
 public:
  virtual void on_fd_ready(int fd, bool readable, bool writable) = 0;

 protected:
  ~FdHandler() = default;
};

enum class Backend : uint8_t { Auto, Uring, Uv };
std::string_view to_string(Backend b);                   // "auto", "uring", "uv"
std::optional<Backend> parse_backend(std::string_view);  // the same names

struct LoopOptions {
  Backend backend = Backend::Auto;
  // io_uring: submission queue entries (the completion queue gets 8x: multishot receives on
  // thousands of connections may complete at once).
  unsigned uring_entries = 1024;
  // io_uring: provided receive buffers shared by all connections (a power of two, <= 32768) and
  // their size. 256 x 4 KiB = 1 MiB whatever the number of connections.
  unsigned recv_buffer_count = 256;
  unsigned recv_buffer_size = 4096;
  // Test switches for io_uring fallbacks: false forces poll+recv instead of multishot receive
  // with a provided buffer ring, resp. a ring without SINGLE_ISSUER/DEFER_TASKRUN.
  bool uring_allow_buf_ring = true;
  bool uring_allow_defer_taskrun = true;
  // How long a graceful close waits for the peer's EOF before closing anyway.
  Duration graceful_linger = std::chrono::seconds(2);
};

// Create and run a loop on one thread (io_uring's SINGLE_ISSUER ties the ring to its creator).
class Loop {
 public:
  virtual ~Loop() = default;
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  virtual Backend backend() const = 0;
  // What was set up, for logging: e.g. "io_uring (SINGLE_ISSUER|DEFER_TASKRUN, multishot recv,
  // buffer ring 256x4096)".
  virtual const std::string& describe() const = 0;

  // --- connections -------------------------------------------------------------------------
  // Starts a TCP connect (socket, optional bind, connect; on_connect reports the end).
  virtual ConnectResult connect(const ConnectOptions& options, ConnHandler& handler) = 0;
  // Queues bytes for sending. They are copied: the caller may reuse its buffer at once (SMTP
  // commands are small, and a sans-I/O session wants consume_output(n) right after). Sends made
  // in one loop iteration leave in one submission (io_uring) in order. Errors that happen later
  // arrive through on_closed. NotConnected if the id is dead, still connecting, or closing.
  virtual Status send(ConnId id, std::string_view bytes) = 0;
  // Bytes accepted by send() and not yet handed to the kernel (for back-pressure).
  virtual size_t send_queued(ConnId id) const = 0;
  // Ends a connection; no callback follows for it. NotConnected if the id is already dead.
  virtual Status close(ConnId id, CloseMode mode) = 0;
  // Connections connecting, connected, or finishing a graceful close.
  virtual size_t connection_count() const = 0;

  // --- foreign fds (c-ares) ------------------------------------------------------------------
  // Watches fd (adds, or changes what is watched and the handler); both false = unwatch_fd.
  // Unwatch before closing the fd.
  virtual Status watch_fd(int fd, bool readable, bool writable, FdHandler& handler) = 0;
  virtual void unwatch_fd(int fd) = 0;

  // --- timers --------------------------------------------------------------------------------
  // The loop's clock (steady_clock; read live, so it never lags).
  TimePoint now() const { return Clock::now(); }
  // One-shot timer: on_timer runs in run() once now() >= deadline (never earlier), timers in
  // deadline order, equal deadlines in the order they were added. Cost: O(log n) (a heap).
  // The handler must outlive the timer (or cancel it first).
  TimerId add_timer(TimePoint deadline, TimerHandler& handler, uint64_t cookie = 0);
  // False if the timer already fired or was cancelled (harmless).
  bool cancel_timer(TimerId id);
  size_t timer_count() const { return timers_.size(); }

  // --- running -------------------------------------------------------------------------------
  // Runs until stop() or until nothing is left to wait for (no connection, timer or watched fd).
  virtual void run() = 0;
  // run() returns after the current iteration; outside run(), the next run() returns at once.
  virtual void stop() = 0;

 protected:
  Loop() = default;
  // Backends re-arm their wake-up when the earliest deadline may have moved earlier.
  virtual void timers_changed() {}
  // Fires the timers that are due now (those added meanwhile wait for the next iteration).
  void run_due_timers();

  TimerHeap timers_;
};

struct MakeLoopResult {
  std::unique_ptr<Loop> loop;  // null when the requested backend is unavailable
  Status status = Status::Ok;
  std::string why;  // which backend and why, for the log ("io_uring unavailable: ...; using libuv")
};

// Creates a loop. Auto tries io_uring (ring set-up plus a probe of every operation used) and falls
// back to libuv; Uring fails with Unsupported where the kernel or sandbox does not allow it.
// Also ignores SIGPIPE for the process: libuv writes with write(2), and a peer's reset must be an
// error code, not a signal.
MakeLoopResult make_loop(const LoopOptions& options = {});

struct NofileLimit {
  Status status = Status::Ok;
  uint64_t soft = 0;
  uint64_t hard = 0;
};
// Raises RLIMIT_NOFILE's soft limit to the hard limit (each connection is one fd).
NofileLimit raise_nofile_limit();

}  // namespace mxp::loop
