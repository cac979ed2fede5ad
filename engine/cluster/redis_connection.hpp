// Sans-I/O Redis client connection (RESP2): commands in, bytes out; bytes in, each command's
// reply out to its callback, in order. hiredis supplies only its two sans-I/O pieces, the reply
// reader (redisReaderFeed/GetReply) and the command formatter (redisFormatCommandArgv); the
// socket, the timers and the reconnecting belong to the owner (RedisClient on the engine's loop,
// engine/cluster/redis_client.hpp), so tests drive it with scripted bytes and a hand-set clock.
//
// One object lives across many TCP connections: the owner reports each connection's start
// (on_connected) and end (on_closed), and the object runs the handshake on each: AUTH (with the
// ACL user when given), SELECT db, CLIENT SETNAME, then the owner's setup commands (the cluster
// loads its Redis functions there), each awaited before any user command is sent, so a refused
// AUTH never has pipelined commands behind it running as nobody.
//
// Commands issued while there is no ready connection WAIT, in one bounded queue, and go out in
// issue order once the next handshake completes. Waiting rather than failing fast because the
// cluster's callers (leases, chunk claims, heartbeats) would otherwise each need their own retry
// loop, and a Redis restart should pause the work, not fail it; the bound (max_queued) and each
// command's own timeout keep a long outage from piling up memory or holding a caller forever.
// Commands already sent when a connection ends fail with ConnectionLost: Redis may or may not
// have run them, and only the caller knows whether running one twice is harmless.
//
// A command that gets no reply within its timeout fails with Timeout and the connection is
// given up (want_close): RESP has no request ids, so the only way past a reply that never comes
// is a new connection (hiredis' own blocking client does the same). The others in flight then
// fail with ConnectionLost; those still waiting stay queued for the next connection.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <initializer_list>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.hpp"
#include "core/expected.hpp"

struct redisReader;  // hiredis/read.h, kept out of this header

namespace mxp::cluster {

using Clock = core::Clock;
using TimePoint = core::TimePoint;
using Duration = core::Duration;

// A RESP2 reply, owned (copied out of hiredis' reply tree).
struct Reply {
  enum class Type : uint8_t { String, Array, Integer, Nil, Status, Error };
  Type type = Type::Nil;
  std::string str;              // String (bulk), Status ("OK"), Error ("ERR ...")
  int64_t integer = 0;          // Integer
  std::vector<Reply> elements;  // Array

  bool is_error() const { return type == Type::Error; }
  bool is_ok() const { return type == Type::Status && str == "OK"; }
};
// Compact text for logs and test messages: "OK", "(error) ERR x", "(integer) 3", "\"bulk\"",
// "(nil)", "[a, b]". Long strings are cut.
std::string to_string(const Reply& r);

// Why a command got no reply. A Redis error reply (-ERR ...) is not one of these: it is a Reply
// of type Error, delivered like any other reply.
enum class Failure : uint8_t {
  Timeout,          // no reply within the command's timeout (waiting or sent)
  ConnectionLost,   // the connection ended after the command was sent: it may have run
  ProtocolError,    // the server's bytes were not RESP: the connection was given up
  HandshakeFailed,  // AUTH, SELECT or a setup command was refused (not a transient refusal)
  QueueFull,        // max_queued commands already waiting or in flight
  Closed,           // the owner shut the client down
  BadCommand,       // no arguments
};
std::string_view to_string(Failure f);

struct CommandError {
  Failure failure = Failure::ConnectionLost;
  std::string message;  // for logs: what happened and, while down, why the connection is down
};
using Result = core::Expected<Reply, CommandError>;
// Called exactly once per command: from on_bytes/on_timeout/on_closed/shutdown, or inside
// command() itself for QueueFull, BadCommand and Closed. It may issue new commands; it must not
// destroy the connection.
using Done = std::function<void(Result&&)>;

struct ConnectionOptions {
  std::string user;         // ACL user (Redis 6+); empty: AUTH <password> alone
  std::string password;     // empty: no AUTH
  int db = 0;               // SELECT when not 0
  std::string client_name;  // CLIENT SETNAME when not empty (CLIENT LIST shows the node)
  // Sent after AUTH/SELECT/SETNAME on every connection, before any user command, each awaited;
  // an error reply fails the handshake. The cluster's FUNCTION LOAD REPLACE goes here, so a
  // Redis restarted without persistence gets the functions back before the first FCALL.
  std::vector<std::vector<std::string>> setup;
  Duration command_timeout = std::chrono::seconds(5);  // default per command
  size_t max_queued = 100'000;  // waiting + in flight; past it, command() fails with QueueFull
};

struct ConnectionStats {
  uint64_t issued = 0;      // command() calls
  uint64_t replies = 0;     // replies delivered (error replies included)
  uint64_t failed = 0;      // commands that ended with a CommandError
  uint64_t timeouts = 0;    // of which Timeout
  uint64_t handshakes = 0;  // connections that became ready
  uint64_t bytes_in = 0, bytes_out = 0;
  // Round trips: from the moment a command's bytes were handed to the owner (pending_output)
  // to its whole reply, so queueing behind earlier pipelined replies counts, as callers feel it.
  uint64_t rtt_count = 0;
  Duration rtt_total{0};
  Duration rtt_max{0};
};

class RedisConnection {
 public:
  enum class State : uint8_t {
    Down,       // no connection; commands wait
    Handshake,  // connected, AUTH/SELECT/setup in flight; commands wait
    Ready,      // commands go out at once, pipelined
  };

  explicit RedisConnection(ConnectionOptions options);
  ~RedisConnection();  // callbacks still pending are dropped without being called
  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;

  // ---- transport events ----
  // The TCP connection is up: the handshake goes out (or, with nothing to say, Ready at once).
  void on_connected(TimePoint now);
  void on_bytes(std::string_view bytes, TimePoint now);
  // next_deadline() passed: commands past their timeout fail (earlier calls do nothing).
  void on_timeout(TimePoint now);
  // The connection ended (reset, EOF, or the owner closed it after want_close()): commands in
  // flight fail with ConnectionLost, waiting ones stay. `why` is kept for error messages unless
  // the connection had already given up for a reason of its own.
  void on_closed(std::string_view why, TimePoint now);
  // The owner stops for good: every command fails with Closed, later ones too.
  void shutdown(TimePoint now);

  // ---- commands ----
  // Queues one command (its arguments are copied). timeout: this command's own, else
  // ConnectionOptions::command_timeout, counted from now whether it waits or goes out at once.
  void command(std::span<const std::string_view> argv, Done done, TimePoint now,
               std::optional<Duration> timeout = std::nullopt);
  void command(std::initializer_list<std::string_view> argv, Done done, TimePoint now,
               std::optional<Duration> timeout = std::nullopt) {
    command(std::span<const std::string_view>(argv.begin(), argv.size()), std::move(done), now,
            timeout);
  }
  void command(const std::vector<std::string>& argv, Done done, TimePoint now,
               std::optional<Duration> timeout = std::nullopt);

  // ---- outputs ----
  std::string_view pending_output() const { return std::string_view(out_).substr(out_off_); }
  void consume_output(size_t n);
  // The earliest command deadline; the owner arms one timer for it and calls on_timeout.
  std::optional<TimePoint> next_deadline() const;
  // The connection gave up (protocol error, handshake refused, a sent command timed out): the
  // owner closes the socket, then calls on_closed (which clears this).
  bool want_close() const { return want_close_; }
  // Why the last connection ended or could not be used, e.g. "AUTH refused: WRONGPASS ...",
  // "protocol error: ...", "no reply to GET within 5 s". Empty before any failure.
  const std::string& down_reason() const { return down_reason_; }

  State state() const { return state_; }
  size_t waiting() const { return waiting_.size(); }
  size_t in_flight() const { return inflight_.size(); }
  const ConnectionStats& stats() const { return stats_; }
  // Called with each command's round trip (for a latency histogram); may be empty.
  void set_rtt_observer(std::function<void(Duration)> fn) { on_rtt_ = std::move(fn); }

 private:
  enum class Kind : uint8_t { User, Auth, Select, SetName, Setup };
  struct Pending {
    Kind kind = Kind::User;
    Done done;
    std::string name;  // the command's name, for messages ("GET", "FCALL")
    std::string wire;  // formatted bytes while waiting; empty once sent
    TimePoint issued{};
    TimePoint deadline{};
    TimePoint sent{};  // when its bytes went into pending_output()
    std::multiset<TimePoint>::iterator deadline_it;
  };

  void enqueue(Pending p, std::span<const std::string_view> argv, TimePoint now);
  bool format(std::span<const std::string_view> argv, std::string& out);
  void start_handshake(TimePoint now);
  void handshake_reply(Pending& p, Reply&& reply, TimePoint now);
  void become_ready(TimePoint now);
  // Marks the connection down and takes the commands in flight out (their callbacks not yet
  // called, so a callback that issues a command finds the state already Down).
  std::deque<Pending> take_down(std::string reason);
  // Ends the current connection from inside: fails what is in flight, keeps what waits, asks
  // the owner to close.
  void give_up(std::string reason, Failure inflight_failure);
  // Fails them in order with `f`; with timed_out_at, those whose deadline had passed by then
  // with Timeout instead.
  void fail_inflight(std::deque<Pending>& gone, Failure f,
                     std::optional<TimePoint> timed_out_at = std::nullopt);
  void fail_waiting(Failure f, const std::string& message);
  void finish(Pending& p, Result&& r);
  void reset_reader();

  ConnectionOptions opts_;
  redisReader* reader_ = nullptr;
  State state_ = State::Down;
  std::string out_;
  size_t out_off_ = 0;
  std::deque<Pending> inflight_;        // sent, awaiting replies in this order
  std::deque<Pending> waiting_;         // not sent yet (no ready connection)
  std::multiset<TimePoint> deadlines_;  // of every pending command, for next_deadline()
  size_t setup_sent_ = 0;               // handshake commands still awaited
  std::string down_reason_;
  bool want_close_ = false;
  bool shut_down_ = false;
  uint64_t epoch_ = 0;  // +1 whenever a connection ends, so on_bytes notices it from a callback
  ConnectionStats stats_;
  std::function<void(Duration)> on_rtt_;
};

}  // namespace mxp::cluster
