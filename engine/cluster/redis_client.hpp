// A Redis client on the engine's own loop: RedisConnection (sans-I/O, redis_connection.hpp)
// carried over a TCP connection made with Loop::connect, so it runs the same on the io_uring and
// the libuv backend, on the loop's thread, with no hiredis event loop, adapter or thread.
//
// - Connects at once (non-blocking, the loop's connect timer), runs the handshake (AUTH from the
//   URL, SELECT, CLIENT SETNAME, the setup commands), then sends commands pipelined.
// - When the connection fails or the server goes away it reconnects after an exponential
//   back-off: backoff_initial doubling per consecutive failure, capped at backoff_max, each delay
//   drawn in [d/2, d] ("equal jitter") so nodes that lost the same Redis do not all come back in
//   the same millisecond. A connection that completes its handshake resets the back-off.
// - Commands issued while there is no ready connection wait in RedisConnection's bounded queue
//   (its header says why waiting, not failing fast) and go out after the next handshake.
// - Every change is reported to the state callback: up once per handshake, down once per failed
//   attempt or lost connection, with the reason and the delay before the next attempt (for log
//   lines and /metrics; a caller that logs only transitions keeps the first down).
// - Commands issued in one loop iteration leave in one send (a zero-delay timer flushes them),
//   as the loop coalesces sends itself on io_uring but not on libuv.
//
// The host name is resolved once, when the client is created (getaddrinfo blocks; a node does
// this at start-up, before it serves anything); each reconnect takes the next of its addresses.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "cluster/redis_connection.hpp"
#include "cluster/redis_url.hpp"
#include "core/expected.hpp"
#include "loop/loop.hpp"

namespace mxp::cluster {

struct ClientOptions {
  RedisUrl url;
  std::string client_name;                      // CLIENT SETNAME (e.g. the node's name)
  std::vector<std::vector<std::string>> setup;  // sent after AUTH on every connection
  Duration connect_timeout = std::chrono::seconds(5);
  Duration command_timeout = std::chrono::seconds(5);  // default per command
  size_t max_queued = 100'000;                         // commands waiting + in flight
  Duration backoff_initial = std::chrono::milliseconds(200);
  Duration backoff_max = std::chrono::seconds(10);
};

struct StateEvent {
  bool up = false;
  std::string peer;       // "127.0.0.1:6379": the address connected to, or tried
  std::string reason;     // down: "connect: connection_refused", "AUTH refused: WRONGPASS ...", ...
  uint32_t failures = 0;  // down: consecutive failed attempts, this one included
  Duration retry_in{0};   // down: the delay before the next attempt
};
using StateFn = std::function<void(const StateEvent&)>;

class RedisClient final : private loop::ConnHandler, private loop::TimerHandler {
 public:
  // Resolves the URL's host and starts connecting (callbacks come from the loop's run()).
  // Fails only when the host name does not resolve.
  static core::Expected<std::unique_ptr<RedisClient>, std::string> create(loop::Loop& loop,
                                                                          ClientOptions options,
                                                                          StateFn on_state = {});
  // Closes the connection; callbacks still pending are dropped without being called (close()
  // first to have them fail with Closed). Must not run inside one of this client's callbacks.
  ~RedisClient();
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  // Queues a command; `done` runs exactly once, from the loop (or at once, inside this call, for
  // QueueFull/BadCommand/Closed). See RedisConnection::command.
  void command(std::initializer_list<std::string_view> argv, Done done,
               std::optional<Duration> timeout = std::nullopt);
  void command(std::span<const std::string_view> argv, Done done,
               std::optional<Duration> timeout = std::nullopt);
  void command(const std::vector<std::string>& argv, Done done,
               std::optional<Duration> timeout = std::nullopt);

  // Fails every command with Closed, closes the connection, stops reconnecting. Later commands
  // fail with Closed at once.
  void close();

  bool up() const { return conn_.state() == RedisConnection::State::Ready; }
  const RedisConnection& connection() const { return conn_; }
  const std::string& display() const { return display_; }  // the URL without its password
  uint64_t connect_attempts() const { return attempts_; }
  // Each command's round trip (RedisConnection's definition), e.g. into a metrics::Histogram.
  void set_rtt_observer(std::function<void(Duration)> fn) { conn_.set_rtt_observer(std::move(fn)); }

 private:
  enum Cookie : uint64_t { kDeadline = 1, kReconnect = 2, kFlush = 3, kDeadlineCheck = 4 };

  RedisClient(loop::Loop& loop, ClientOptions options, StateFn on_state,
              std::vector<loop::Endpoint> endpoints);

  void on_connect(loop::ConnId id, loop::Status status) override;
  void on_data(loop::ConnId id, std::string_view bytes) override;
  void on_closed(loop::ConnId id, loop::Status status) override;
  void on_timer(loop::TimerId id, uint64_t cookie) override;

  void attempt();
  void after();  // carries out what the connection asks: send, close, timer, up/down events
  void flush();
  void went_down(const std::string& reason);
  void rearm_deadline();
  void after_command();

  loop::Loop& loop_;
  ClientOptions opts_;
  StateFn on_state_;
  std::vector<loop::Endpoint> endpoints_;
  std::string display_;
  RedisConnection conn_;
  loop::ConnId id_{};
  loop::Endpoint peer_;
  bool connected_ = false;    // id_ names a connected socket (not still connecting)
  bool reported_up_ = false;  // the last event sent was "up"
  bool closed_ = false;
  uint64_t attempts_ = 0;
  uint32_t failures_ = 0;
  loop::TimerId deadline_timer_{}, reconnect_timer_{}, flush_timer_{}, check_timer_{};
  std::optional<TimePoint> deadline_armed_;
  // A deadline passed at this time, judged once the loop has had time to read (on_timer).
  std::optional<TimePoint> check_at_;
  bool reconnect_armed_ = false;
  bool flush_armed_ = false;
  std::mt19937_64 rng_{std::random_device{}()};
};

}  // namespace mxp::cluster
