// RedisClient: RedisConnection on the engine's loop (see redis_client.hpp).
#include "cluster/redis_client.hpp"

#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>

namespace mxp::cluster {
namespace {

// The host's addresses, in getaddrinfo's order (RFC 6724), without duplicates.
core::Expected<std::vector<loop::Endpoint>, std::string> resolve(const RedisUrl& url) {
  if (auto ep = loop::Endpoint::parse(url.host, url.port)) return std::vector<loop::Endpoint>{*ep};
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const int rc = getaddrinfo(url.host.c_str(), nullptr, &hints, &res);
  if (rc != 0) {
    return core::unexpected("Redis host " + url.host + " does not resolve: " + gai_strerror(rc));
  }
  std::vector<loop::Endpoint> out;
  for (const addrinfo* a = res; a != nullptr; a = a->ai_next) {
    auto ep = loop::Endpoint::from_sockaddr(a->ai_addr, a->ai_addrlen);
    if (!ep) continue;
    ep->set_port(url.port);
    if (std::find(out.begin(), out.end(), *ep) == out.end()) out.push_back(*ep);
  }
  freeaddrinfo(res);
  if (out.empty()) return core::unexpected("Redis host " + url.host + " has no IP address");
  return out;
}

ConnectionOptions connection_options(const ClientOptions& o) {
  ConnectionOptions c;
  c.user = o.url.user;
  c.password = o.url.password;
  c.db = o.url.db;
  c.client_name = o.client_name;
  c.setup = o.setup;
  c.command_timeout = o.command_timeout;
  c.max_queued = o.max_queued;
  return c;
}

}  // namespace

core::Expected<std::unique_ptr<RedisClient>, std::string> RedisClient::create(loop::Loop& loop,
                                                                              ClientOptions options,
                                                                              StateFn on_state) {
  auto endpoints = resolve(options.url);
  if (!endpoints) return core::unexpected(endpoints.error());
  std::unique_ptr<RedisClient> c(
      new RedisClient(loop, std::move(options), std::move(on_state), std::move(*endpoints)));
  c->attempt();
  return c;
}

RedisClient::RedisClient(loop::Loop& loop, ClientOptions options, StateFn on_state,
                         std::vector<loop::Endpoint> endpoints)
    : loop_(loop),
      opts_(std::move(options)),
      on_state_(std::move(on_state)),
      endpoints_(std::move(endpoints)),
      display_(opts_.url.display()),
      conn_(connection_options(opts_)) {}

RedisClient::~RedisClient() {
  if (deadline_armed_) loop_.cancel_timer(deadline_timer_);
  if (check_at_) loop_.cancel_timer(check_timer_);
  if (reconnect_armed_) loop_.cancel_timer(reconnect_timer_);
  if (flush_armed_) loop_.cancel_timer(flush_timer_);
  if (id_.value != 0) loop_.close(id_, loop::CloseMode::Abort);
}

void RedisClient::close() {
  if (closed_) return;
  closed_ = true;
  if (reconnect_armed_) loop_.cancel_timer(reconnect_timer_);
  reconnect_armed_ = false;
  if (id_.value != 0) loop_.close(id_, loop::CloseMode::Graceful);
  id_ = {};
  connected_ = false;
  conn_.shutdown(loop_.now());
  rearm_deadline();
}

void RedisClient::command(std::initializer_list<std::string_view> argv, Done done,
                          std::optional<Duration> timeout) {
  conn_.command(argv, std::move(done), loop_.now(), timeout);
  after_command();
}

void RedisClient::command(std::span<const std::string_view> argv, Done done,
                          std::optional<Duration> timeout) {
  conn_.command(argv, std::move(done), loop_.now(), timeout);
  after_command();
}

void RedisClient::command(const std::vector<std::string>& argv, Done done,
                          std::optional<Duration> timeout) {
  conn_.command(argv, std::move(done), loop_.now(), timeout);
  after_command();
}

void RedisClient::after_command() {
  // The bytes leave at the next iteration, together with the others issued meanwhile.
  if (!conn_.pending_output().empty() && !flush_armed_) {
    flush_timer_ = loop_.add_timer(loop_.now(), *this, kFlush);
    flush_armed_ = true;
  }
  rearm_deadline();
}

void RedisClient::attempt() {
  if (closed_) return;
  peer_ = endpoints_[attempts_ % endpoints_.size()];
  ++attempts_;
  loop::ConnectOptions o;
  o.peer = peer_;
  o.timeout = opts_.connect_timeout;
  const auto r = loop_.connect(o, *this);
  if (r.status != loop::Status::Ok) {
    const std::string why = "connect: " + std::string(loop::to_string(r.status));
    conn_.on_closed(why, loop_.now());
    went_down(why);
    return;
  }
  id_ = r.id;
  connected_ = false;
}

void RedisClient::on_connect(loop::ConnId id, loop::Status status) {
  if (id != id_) return;
  if (status != loop::Status::Ok) {
    id_ = {};
    const std::string why = "connect: " + std::string(loop::to_string(status));
    conn_.on_closed(why, loop_.now());
    went_down(why);
    rearm_deadline();
    return;
  }
  connected_ = true;
  conn_.on_connected(loop_.now());
  after();
}

void RedisClient::on_data(loop::ConnId id, std::string_view bytes) {
  if (id != id_) return;
  conn_.on_bytes(bytes, loop_.now());
  after();
}

void RedisClient::on_closed(loop::ConnId id, loop::Status status) {
  if (id != id_) return;
  id_ = {};
  connected_ = false;
  const std::string why = status == loop::Status::PeerClosed
                              ? "the server closed the connection"
                              : "connection lost: " + std::string(loop::to_string(status));
  conn_.on_closed(why, loop_.now());
  went_down(conn_.down_reason());
  rearm_deadline();
}

void RedisClient::on_timer(loop::TimerId id, uint64_t cookie) {
  (void)id;
  switch (cookie) {
    case kDeadline: {
      // Both backends run due timers before they look at the sockets, so after the loop was
      // busy (a long batch of results, a starved process) a reply may sit unread behind a
      // deadline that has passed: judging now would drop a healthy connection and call Redis
      // down. The deadlines passed now are judged once the loop has had as long as it was late
      // (20 ms at least, 2 s at most) to read what came meanwhile.
      const TimePoint now = loop_.now();
      const Duration late = deadline_armed_ ? now - *deadline_armed_ : Duration(0);
      deadline_armed_.reset();
      check_at_ = now;
      check_timer_ = loop_.add_timer(
          now + std::clamp<Duration>(late, std::chrono::milliseconds(20), std::chrono::seconds(2)),
          *this, kDeadlineCheck);
      break;
    }
    case kDeadlineCheck: {
      const TimePoint at = *check_at_;
      check_at_.reset();
      conn_.on_timeout(at);
      after();
      break;
    }
    case kReconnect:
      reconnect_armed_ = false;
      attempt();
      break;
    case kFlush:
      flush_armed_ = false;
      flush();
      break;
    default:
      break;
  }
}

void RedisClient::flush() {
  if (id_.value == 0 || !connected_) return;
  const std::string_view out = conn_.pending_output();
  if (out.empty()) return;
  // The loop copies what it is given (or errors later through on_closed): all of it is taken.
  loop_.send(id_, out);
  conn_.consume_output(out.size());
}

void RedisClient::after() {
  flush();
  if (conn_.want_close()) {
    if (id_.value != 0) loop_.close(id_, loop::CloseMode::Abort);
    id_ = {};
    connected_ = false;
    conn_.on_closed({}, loop_.now());
    went_down(conn_.down_reason());
  } else if (!reported_up_ && up()) {
    reported_up_ = true;
    failures_ = 0;
    if (on_state_) on_state_(StateEvent{true, peer_.to_string(), {}, 0, Duration(0)});
  }
  rearm_deadline();
}

void RedisClient::went_down(const std::string& reason) {
  reported_up_ = false;
  if (closed_) return;
  ++failures_;
  // backoff_initial * 2^(failures-1), capped, then drawn in [d/2, d].
  Duration d = opts_.backoff_initial;
  for (uint32_t i = 1; i < failures_ && d < opts_.backoff_max; ++i)
    d *= 2;
  d = std::min(d, opts_.backoff_max);
  const auto half = d.count() / 2;
  std::uniform_int_distribution<int64_t> dist(0, std::max<int64_t>(0, d.count() - half));
  const Duration delay(half + dist(rng_));
  if (reconnect_armed_) loop_.cancel_timer(reconnect_timer_);
  reconnect_timer_ = loop_.add_timer(loop_.now() + delay, *this, kReconnect);
  reconnect_armed_ = true;
  if (on_state_) on_state_(StateEvent{false, peer_.to_string(), reason, failures_, delay});
}

void RedisClient::rearm_deadline() {
  if (check_at_) return;  // the check re-arms (after()) once it has judged
  const auto next = conn_.next_deadline();
  if (next == deadline_armed_) return;
  if (deadline_armed_) loop_.cancel_timer(deadline_timer_);
  deadline_armed_ = next;
  if (next) deadline_timer_ = loop_.add_timer(*next, *this, kDeadline);
}

}  // namespace mxp::cluster
