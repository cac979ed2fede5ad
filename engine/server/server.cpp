// HttpServer: sockets, timers and dispatch around mxp::http::ServerConnection.
// [SECTION] helpers  [SECTION] Responder / WsClient  [SECTION] set-up  [SECTION] I/O
// [SECTION] dispatch  [SECTION] routing, auth, static files
//
// Flow of one connection: readable -> read() -> codec.feed() -> service(): hand requests to
// handlers (dispatch), move their answers into the codec in request order (flush_answers), write()
// what the codec produced, then close it or re-arm its watch and its codec timer (rearm). A
// Responder answering later re-enters service(). service() is not re-entrant per connection: a
// nested call (a handler answering synchronously) only marks the connection dirty.
#include "server/server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <optional>

#include "core/json_out.hpp"
#include "core/strings.hpp"

namespace mxp::server {

// [SECTION] helpers ---------------------------------------------------------------------------

namespace {

constexpr std::string_view kSubprotocol = "mxprobe.v1";
constexpr std::string_view kBearerPrefix = "bearer.";
constexpr auto kLinger = std::chrono::seconds(2);              // graceful close: wait for EOF
constexpr auto kAcceptPause = std::chrono::milliseconds(100);  // after EMFILE
constexpr size_t kReadBuffer = 64 * 1024;
constexpr int kReadsPerWakeup = 8;
constexpr int kAcceptsPerWakeup = 64;
constexpr off_t kMaxStaticFile = 64 << 20;

using core::istarts_with;
using core::lower;
using core::trim;

// RFC 9110 §5.6.2 tchar: what a WebSocket subprotocol name may contain.
bool token_char(char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

std::array<unsigned char, 32> sha256(std::string_view s) {
  std::array<unsigned char, 32> d{};
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), d.data());
  return d;
}

bool is_loopback(const loop::Endpoint& ep) {
  if (ep.family() == AF_INET) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(ep.sa());
    return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
  }
  const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(ep.sa());
  if (IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr)) return true;
  return IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr) && sin6->sin6_addr.s6_addr[12] == 127;
}

std::string_view content_type(std::string_view path) {
  const size_t dot = path.rfind('.');
  const size_t slash = path.rfind('/');
  if (dot == std::string_view::npos || (slash != std::string_view::npos && dot < slash))
    return "application/octet-stream";
  std::string ext;
  for (const char c : path.substr(dot + 1))
    ext += lower(c);
  if (ext == "html" || ext == "htm") return "text/html; charset=utf-8";
  if (ext == "js" || ext == "mjs") return "text/javascript; charset=utf-8";
  if (ext == "wasm") return "application/wasm";
  if (ext == "css") return "text/css; charset=utf-8";
  if (ext == "png") return "image/png";
  if (ext == "json") return "application/json";
  if (ext == "svg") return "image/svg+xml";
  if (ext == "ico") return "image/x-icon";
  if (ext == "txt") return "text/plain; charset=utf-8";
  return "application/octet-stream";
}

// Access-Control-* are never sent (no CORS), whoever set them.
void strip_cors(std::vector<http::Header>& headers) {
  std::erase_if(headers,
                [](const http::Header& h) { return istarts_with(h.name, "access-control-"); });
}

bool read_file(const std::string& path, std::string& out) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > kMaxStaticFile) {
    ::close(fd);
    return false;
  }
  out.resize(static_cast<size_t>(st.st_size));
  size_t got = 0;
  while (got < out.size()) {
    const ssize_t n = ::read(fd, out.data() + got, out.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  out.resize(got);
  return true;
}

}  // namespace

namespace detail {

// An answer a Responder gave (or the server decided), waiting for its turn.
struct Answer {
  enum class Kind : uint8_t { full, chunked, ws_accept } kind = Kind::full;
  http::Response response;  // full
  int status = 200;         // chunked
  std::vector<http::Header> headers;
  std::deque<std::string> chunks;
  bool started = false;  // chunked: begin_chunked went to the codec
  bool ended = false;
  bool abandoned = false;    // the Responder died mid-body: close after what was written
  http::Request ws_request;  // ws_accept
  std::string ws_protocol;
  WsHandler* ws_handler = nullptr;
};

struct Conn : std::enable_shared_from_this<Conn> {
  Conn(HttpServer* s, int f, uint64_t i, std::string p, const http::Limits& limits,
       http::TimePoint now)
      : server(s), fd(f), id(i), peer(std::move(p)), codec(limits, now), client(this, i) {}

  HttpServer* server;
  int fd;
  uint64_t id;
  std::string peer;
  http::ServerConnection codec;
  WsClient client;

  bool watch_r = false, watch_w = false;
  loop::TimerId timer;
  std::optional<http::TimePoint> timer_at;

  bool closed = false;     // as far as handlers are concerned: gone
  bool lingering = false;  // FIN sent, reading until the peer's EOF
  bool peer_eof = false;
  bool busy = false;  // inside service()
  bool dirty = false;
  bool broken = false;  // an abandoned chunked answer reached the front: close
  int seen_error_status = 0;

  uint64_t next_seq = 0;  // sequence number of the next request handed to a handler
  uint64_t head_seq = 0;  // oldest request not answered in the codec yet
  std::map<uint64_t, Answer> answers;

  WsHandler* ws = nullptr;
  bool ws_open = false;

  std::unique_ptr<BodySink> sink;  // a streamed request's body goes here as it arrives

  std::string ip;                     // peer address without the port (per-client connection limit)
  std::optional<std::string> latest;  // send_latest(): the newest message, waiting for room
};

}  // namespace detail

using detail::Answer;
using detail::Conn;

// [SECTION] Responder / WsClient ----------------------------------------------------------------

Responder::Responder(Responder&& o) noexcept
    : conn_(std::move(o.conn_)), seq_(o.seq_), peer_(std::move(o.peer_)), phase_(o.phase_) {
  o.conn_.reset();
  o.phase_ = Phase::done;
}

Responder& Responder::operator=(Responder&& o) noexcept {
  if (this != &o) {
    release();
    conn_ = std::move(o.conn_);
    seq_ = o.seq_;
    peer_ = std::move(o.peer_);
    phase_ = o.phase_;
    o.conn_.reset();
    o.phase_ = Phase::done;
  }
  return *this;
}

Responder::~Responder() {
  release();
}

void Responder::release() {
  if (phase_ == Phase::open) {
    respond(HttpServer::json_error(500, "internal", "the handler did not answer"));
  } else if (phase_ == Phase::chunking) {
    phase_ = Phase::done;
    auto c = conn_.lock();
    if (!c || c->closed) return;
    c->answers[seq_].abandoned = true;
    c->server->service(c);
  }
  conn_.reset();
}

void Responder::respond(http::Response r) {
  if (phase_ != Phase::open) return;
  phase_ = Phase::done;
  auto c = conn_.lock();
  if (!c || c->closed) return;
  strip_cors(r.headers);
  Answer& a = c->answers[seq_];
  a.kind = Answer::Kind::full;
  a.response = std::move(r);
  c->server->service(c);
}

void Responder::begin_chunked(int status, std::vector<http::Header> headers) {
  if (phase_ != Phase::open) return;
  phase_ = Phase::chunking;
  auto c = conn_.lock();
  if (!c || c->closed) return;
  strip_cors(headers);
  Answer& a = c->answers[seq_];
  a.kind = Answer::Kind::chunked;
  a.status = status;
  a.headers = std::move(headers);
  c->server->service(c);
}

void Responder::write_chunk(std::string_view data) {
  if (phase_ != Phase::chunking || data.empty()) return;
  auto c = conn_.lock();
  if (!c || c->closed) return;
  c->answers[seq_].chunks.emplace_back(data);
  c->server->service(c);
}

void Responder::end_chunked() {
  if (phase_ != Phase::chunking) return;
  phase_ = Phase::done;
  auto c = conn_.lock();
  if (!c || c->closed) return;
  c->answers[seq_].ended = true;
  c->server->service(c);
}

bool Responder::alive() const {
  if (phase_ == Phase::done) return false;
  const auto c = conn_.lock();
  return c && !c->closed;
}

size_t Responder::pending_output() const {
  const auto c = conn_.lock();
  if (!c || c->closed) return 0;
  size_t n = c->codec.pending_output().size();
  const auto it = c->answers.find(seq_);
  if (it != c->answers.end())
    for (const auto& chunk : it->second.chunks)
      n += chunk.size();
  return n;
}

std::string WsClient::peer() const {
  return conn_->peer;
}

bool WsClient::send_text(std::string_view data) {
  Conn& c = *conn_;
  if (c.closed || !c.ws_open || c.codec.state() != http::ServerConnection::State::websocket)
    return false;
  HttpServer& s = *c.server;
  if (c.codec.pending_output().size() > s.options_.ws_max_pending) {
    ++s.stats_.ws_dropped;
    return false;
  }
  if (!c.codec.ws_send_text(data)) return false;
  ++s.stats_.ws_messages_out;
  s.service(c.shared_from_this());
  return true;
}

bool WsClient::send_latest(std::string_view data) {
  Conn& c = *conn_;
  if (c.closed || !c.ws_open || c.codec.state() != http::ServerConnection::State::websocket)
    return false;
  HttpServer& s = *c.server;
  if (c.codec.pending_output().size() <= s.options_.ws_latest_above) {
    if (c.latest) {  // caught up before the one kept went out: this newer one replaces it
      ++s.stats_.ws_coalesced;
      c.latest.reset();
    }
    if (!c.codec.ws_send_text(data)) return false;
    ++s.stats_.ws_messages_out;
    s.service(c.shared_from_this());
    return true;
  }
  // Behind: only the newest waits, however many come meanwhile.
  if (c.latest) ++s.stats_.ws_coalesced;
  c.latest = std::string(data);
  return true;
}

size_t WsClient::pending_output() const {
  return conn_->closed ? 0 : conn_->codec.pending_output().size();
}

void WsClient::close(uint16_t code, std::string_view reason) {
  Conn& c = *conn_;
  if (c.closed || !c.codec.ws_close(code, reason)) return;
  c.server->service(c.shared_from_this());
}

// [SECTION] set-up ----------------------------------------------------------------------------

http::Response HttpServer::json_error(int status, std::string_view code, std::string_view message) {
  std::string body = "{\"error\":";
  json::append_string(body, code);
  body += ",\"message\":";
  json::append_string(body, message);
  body += "}";
  return http::Response::json(status, std::move(body));
}

HttpServer::HttpServer(loop::Loop& loop, ServerOptions options)
    : loop_(loop), options_(std::move(options)) {}

core::Expected<std::unique_ptr<HttpServer>, std::string> HttpServer::create(loop::Loop& loop,
                                                                            ServerOptions options) {
  const auto ep = loop::Endpoint::parse_host_port(options.listen, 8025);
  if (!ep || !ep->valid()) {
    return core::unexpected("invalid listen address '" + options.listen +
                            "' (want IPv4 \"IP:PORT\" or \"[IPv6]:PORT\")");
  }
  if (!options.token.empty() &&
      !std::all_of(options.token.begin(), options.token.end(), token_char)) {
    return core::unexpected(
        "invalid token: only letters, digits and !#$%&'*+-.^_`|~ are allowed (it travels in a "
        "WebSocket subprotocol)");
  }
  if (options.token.empty() && !is_loopback(*ep)) {
    return core::unexpected("refusing to listen on non-loopback address " + ep->to_string() +
                            " without a token: set a bearer token or listen on 127.0.0.1 / [::1]");
  }
  if (options.max_connections == 0) options.max_connections = 1;
  std::unique_ptr<HttpServer> s(new HttpServer(loop, std::move(options)));
  s->endpoint_ = *ep;
  if (!s->options_.token.empty()) s->token_digest_ = sha256(s->options_.token);
  if (auto opened = s->open_listener(); !opened) {
    return core::unexpected(opened.error());
  }
  return s;
}

core::Expected<void, std::string> HttpServer::open_listener() {
  const auto fail = [&](const char* what) -> core::Expected<void, std::string> {
    std::string err = std::string(what) + " " + endpoint_.to_string() + ": " + std::strerror(errno);
    if (listen_fd_ >= 0) ::close(listen_fd_);
    listen_fd_ = -1;
    return core::unexpected(std::move(err));
  };
  listen_fd_ = ::socket(endpoint_.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) return fail("socket");
  const int one = 1;
  if (::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0)
    return fail("SO_REUSEADDR");
  if (endpoint_.family() == AF_INET6)
    ::setsockopt(listen_fd_, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (::bind(listen_fd_, endpoint_.sa(), endpoint_.len()) != 0) return fail("bind");
  if (::listen(listen_fd_, SOMAXCONN) != 0) return fail("listen");
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&ss), &len) != 0)
    return fail("getsockname");
  if (auto bound = loop::Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len))
    endpoint_ = *bound;
  port_ = endpoint_.port();
  if (loop_.watch_fd(listen_fd_, true, false, *this) != loop::Status::Ok) {
    errno = EINVAL;
    return fail("watch");
  }
  return {};
}

HttpServer::~HttpServer() {
  std::vector<std::shared_ptr<Conn>> all;
  all.reserve(by_id_.size());
  for (auto& [id, c] : by_id_)
    all.push_back(c);
  for (auto& c : all)
    close_now(c);
  if (accept_timer_.value != 0) loop_.cancel_timer(accept_timer_);
  if (listen_fd_ >= 0) {
    loop_.unwatch_fd(listen_fd_);
    ::close(listen_fd_);
  }
}

void HttpServer::route(std::string method, std::string path, Handler h) {
  if (!path.empty() && path.back() == '*') {
    path.pop_back();
    prefix_[path].push_back(Route{std::move(method), std::move(h), nullptr});
  } else {
    exact_[path].push_back(Route{std::move(method), std::move(h), nullptr});
  }
}

void HttpServer::route_streamed(std::string method, std::string path, StreamHandler h) {
  exact_[std::move(path)].push_back(Route{std::move(method), nullptr, std::move(h)});
}

bool HttpServer::streamed(const http::Request& req) const {
  const auto e = exact_.find(req.path);
  if (e == exact_.end()) return false;
  return std::any_of(e->second.begin(), e->second.end(),
                     [&](const Route& r) { return r.stream && r.method == req.method; });
}

// Hands what arrived of a streamed body to its sink, and its end or failure.
void HttpServer::pump_body(Conn& c) {
  using Body = http::ServerConnection::Body;
  const Body state = c.codec.body_state();
  if (state == Body::none) return;
  const std::string bytes = c.codec.take_body();
  if (c.sink && !bytes.empty() && !c.sink->on_body(bytes)) c.sink.reset();  // it answered
  if (state == Body::arriving) return;
  if (auto sink = std::move(c.sink)) {
    if (state == Body::ended)
      sink->on_body_end();
    else
      sink->on_body_error();
  }
  c.codec.body_taken(loop_.now());
}

// The connection ends with a body half-read: its sink hears so.
void HttpServer::drop_body(Conn& c) {
  if (auto sink = std::move(c.sink)) sink->on_body_error();
}

void HttpServer::websocket(std::string path, WsHandler& h) {
  ws_paths_[std::move(path)] = &h;
}

void HttpServer::static_dir(std::string root) {
  char* real = ::realpath(root.c_str(), nullptr);
  static_root_ = real != nullptr ? real : "";
  std::free(real);
  if (static_root_ == "/") static_root_.clear();  // serving the whole file system: no
}

size_t HttpServer::broadcast_latest(std::string_view data) {
  std::vector<std::shared_ptr<Conn>> targets;
  for (auto& [id, c] : by_id_)
    if (c->ws_open && !c->closed) targets.push_back(c);
  size_t sent = 0;
  for (auto& c : targets)
    sent += c->client.send_latest(data) ? 1 : 0;
  return sent;
}

// The client caught up: the newest send_latest() message goes out.
void HttpServer::send_latest_if_room(Conn& c) {
  if (!c.latest || !c.ws_open || c.closed ||
      c.codec.pending_output().size() > options_.ws_latest_above)
    return;
  const std::string data = std::move(*c.latest);
  c.latest.reset();
  if (c.codec.ws_send_text(data)) ++stats_.ws_messages_out;
}

size_t HttpServer::broadcast_text(std::string_view data) {
  std::vector<std::shared_ptr<Conn>> targets;
  for (auto& [id, c] : by_id_)
    if (c->ws_open && !c->closed) targets.push_back(c);
  size_t sent = 0;
  for (auto& c : targets)
    sent += c->client.send_text(data) ? 1 : 0;
  return sent;
}

// [SECTION] I/O -------------------------------------------------------------------------------

void HttpServer::on_fd_ready(int fd, bool readable, bool /*writable*/) {
  if (fd == listen_fd_) {
    accept_ready();
    return;
  }
  const auto it = by_fd_.find(fd);
  if (it == by_fd_.end()) return;
  const std::shared_ptr<Conn> c = it->second;
  if (c->lingering) {
    linger_ready(c);
    return;
  }
  // libuv stops a poll handle that saw POLLERR (and io_uring's poll is one-shot): re-arm the
  // watch after every report instead of trusting it to still be armed.
  c->watch_r = c->watch_w = false;
  if (readable)
    read_ready(c);  // ends in service(), which also writes
  else
    service(c);
}

void HttpServer::on_timer(loop::TimerId id, uint64_t cookie) {
  if (cookie == 0) {  // the accept pause after EMFILE
    if (id != accept_timer_) return;
    accept_timer_ = {};
    accept_paused_ = false;
    loop_.watch_fd(listen_fd_, true, false, *this);
    return;
  }
  const auto it = by_id_.find(cookie);
  if (it == by_id_.end()) return;
  const std::shared_ptr<Conn> c = it->second;
  if (id != c->timer) return;
  c->timer = {};
  c->timer_at.reset();
  if (c->lingering) {
    close_now(c);
    return;
  }
  c->codec.on_timeout(loop_.now());
  if (c->codec.state() == http::ServerConnection::State::closing) ++stats_.timeouts;
  service(c);
}

void HttpServer::accept_ready() {
  for (int i = 0; i < kAcceptsPerWakeup; ++i) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    const int fd =
        ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // Level-triggered readiness would spin: stop accepting for a moment.
        if (!accept_paused_) {
          accept_paused_ = true;
          loop_.unwatch_fd(listen_fd_);
          accept_timer_ = loop_.add_timer(loop_.now() + kAcceptPause, *this, 0);
        }
      }
      return;  // EAGAIN and anything else
    }
    ++stats_.connections_accepted;
    const auto peer = loop::Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
    std::string ip = peer ? peer->to_string() : std::string();
    if (peer) ip.erase(ip.rfind(':'));  // "1.2.3.4:5" -> "1.2.3.4", "[::1]:5" -> "[::1]"
    if (!make_room(ip)) {
      ++stats_.connections_rejected;
      ::close(fd);
      continue;
    }
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    const uint64_t id = next_id_++;
    auto c = std::make_shared<Conn>(this, fd, id, peer ? peer->to_string() : std::string(),
                                    options_.limits, loop_.now());
    c->ip = std::move(ip);
    ++per_ip_[c->ip];
    c->codec.stream_bodies([this](const http::Request& r) { return streamed(r); });
    by_fd_[fd] = c;
    by_id_[id] = c;
    stats_.connections_open = by_id_.size();
    rearm(*c);
  }
}

// Slowloris: with the server (or this client's share) full, the oldest connection that holds no
// work (idle, still sending its request header, or already closing) makes room; answers owed,
// uploads and WebSocket clients are never closed for it.
bool HttpServer::make_room(const std::string& ip) {
  const auto ip_it = per_ip_.find(ip);
  const bool ip_full =
      ip_it != per_ip_.end() && ip_it->second >= options_.max_connections_per_client;
  const bool all_full = by_id_.size() >= options_.max_connections;
  if (!ip_full && !all_full) return true;
  std::shared_ptr<Conn> victim;
  for (const auto& [id, c] : by_id_) {
    if (ip_full && c->ip != ip) continue;
    const bool idle = c->lingering || (!c->closed && c->next_seq == c->head_seq && !c->sink &&
                                       c->codec.awaiting_request());
    if (idle && (!victim || c->id < victim->id)) victim = c;
  }
  if (!victim) return false;
  ++stats_.connections_evicted;
  close_now(victim);
  return true;
}

void HttpServer::read_ready(const std::shared_ptr<Conn>& c) {
  thread_local std::array<char, kReadBuffer> buf;
  for (int i = 0; i < kReadsPerWakeup && !c->peer_eof && c->codec.wants_read(); ++i) {
    const ssize_t n = ::read(c->fd, buf.data(), buf.size());
    if (n > 0) {
      c->codec.feed(std::string_view(buf.data(), static_cast<size_t>(n)), loop_.now());
      if (static_cast<size_t>(n) < buf.size()) break;
      continue;
    }
    if (n == 0) {
      c->peer_eof = true;
      c->codec.feed_eof();
      break;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    close_now(c);  // ECONNRESET and friends: nothing more can be written either
    return;
  }
  service(c);
}

void HttpServer::linger_ready(const std::shared_ptr<Conn>& c) {
  thread_local std::array<char, 4096> sink;
  for (int i = 0; i < kReadsPerWakeup; ++i) {
    const ssize_t n = ::read(c->fd, sink.data(), sink.size());
    if (n > 0) continue;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      loop_.watch_fd(c->fd, true, false, *this);  // re-arm (see on_fd_ready)
      return;
    }
    break;  // EOF or error
  }
  close_now(c);
}

bool HttpServer::write_out(Conn& c) {
  for (;;) {
    const std::string_view out = c.codec.pending_output();
    if (out.empty()) return true;
    // send() with MSG_NOSIGNAL is write() that never raises SIGPIPE.
    const ssize_t n = ::send(c.fd, out.data(), out.size(), MSG_NOSIGNAL);
    if (n > 0) {
      c.codec.consume_output(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    return false;  // EPIPE, ECONNRESET, ...
  }
}

void HttpServer::rearm(Conn& c) {
  const bool r = !c.peer_eof && !c.broken && c.codec.wants_read();
  const bool w = !c.codec.pending_output().empty();
  if (r != c.watch_r || w != c.watch_w) {
    if (!r && !w)
      loop_.unwatch_fd(c.fd);
    else
      loop_.watch_fd(c.fd, r, w, *this);
    c.watch_r = r;
    c.watch_w = w;
  }
  const auto deadline = c.codec.next_deadline();
  if (deadline != c.timer_at) {
    if (c.timer.value != 0) loop_.cancel_timer(c.timer);
    c.timer = {};
    if (deadline) c.timer = loop_.add_timer(*deadline, *this, c.id);
    c.timer_at = deadline;
  }
}

void HttpServer::ws_closed(Conn& c) {
  if (!c.ws_open) return;
  c.ws_open = false;
  --stats_.ws_clients;
  c.ws->on_close(c.client);
}

// Graceful: the codec's last bytes are out; FIN, then read until the peer's EOF so unread input
// does not turn our close into an RST that could destroy the answer in flight.
void HttpServer::begin_close(const std::shared_ptr<Conn>& c) {
  if (c->closed) return;
  c->closed = true;
  c->answers.clear();
  ws_closed(*c);
  drop_body(*c);
  if (c->peer_eof) {
    close_now(c);
    return;
  }
  ::shutdown(c->fd, SHUT_WR);
  c->lingering = true;
  if (!c->watch_r || c->watch_w) loop_.watch_fd(c->fd, true, false, *this);
  c->watch_r = true;
  c->watch_w = false;
  if (c->timer.value != 0) loop_.cancel_timer(c->timer);
  c->timer = loop_.add_timer(loop_.now() + kLinger, *this, c->id);
  c->timer_at.reset();
}

void HttpServer::close_now(const std::shared_ptr<Conn>& c) {
  if (c->fd < 0) return;
  if (!c->closed) {
    c->closed = true;
    c->answers.clear();
    ws_closed(*c);
    drop_body(*c);
  }
  if (c->timer.value != 0) loop_.cancel_timer(c->timer);
  c->timer = {};
  // Always: a watch the loop still holds (libuv keeps it after an error) would make the fd
  // number, once reused by an SMTP connect, refuse to register.
  loop_.unwatch_fd(c->fd);
  c->watch_r = c->watch_w = false;
  by_fd_.erase(c->fd);
  by_id_.erase(c->id);
  if (const auto it = per_ip_.find(c->ip); it != per_ip_.end() && --it->second == 0)
    per_ip_.erase(it);
  ::close(c->fd);
  c->fd = -1;
  stats_.connections_open = by_id_.size();
}

// [SECTION] dispatch --------------------------------------------------------------------------

void HttpServer::service(const std::shared_ptr<Conn>& c) {
  if (c->closed) return;
  if (c->busy) {
    c->dirty = true;
    return;
  }
  c->busy = true;
  do {
    c->dirty = false;
    dispatch(c);
  } while (c->dirty && !c->closed);
  c->busy = false;
  if (c->closed) return;
  if (const int e = c->codec.error_status(); e != 0 && e != c->seen_error_status) {
    c->seen_error_status = e;  // an answer the codec produced itself (400, 408, 413, ...)
    count_response(e);
  }
  if (!write_out(*c)) {
    close_now(c);
    return;
  }
  if (c->latest) {
    send_latest_if_room(*c);
    if (!write_out(*c)) {
      close_now(c);
      return;
    }
  }
  // An abandoned chunked answer ends the connection once what was written is out.
  if (c->codec.should_close() || (c->broken && c->codec.pending_output().empty())) {
    begin_close(c);
    return;
  }
  rearm(*c);
}

void HttpServer::dispatch(const std::shared_ptr<Conn>& c) {
  using State = http::ServerConnection::State;
  flush_answers(*c);
  while (!c->closed && !c->broken) {
    if (c->codec.state() == State::websocket) {
      if (!c->ws_open) break;
      auto m = c->codec.next_ws_message();
      if (!m) break;
      ++stats_.ws_messages_in;
      c->ws->on_message(c->client, *m);
      continue;
    }
    pump_body(*c);
    flush_answers(*c);
    if (c->closed || c->broken) break;
    auto r = c->codec.next_request();
    if (!r) break;
    ++stats_.requests;
    handle_request(c, std::move(*r));
    flush_answers(*c);
  }
}

void HttpServer::flush_answers(Conn& c) {
  const auto now = loop_.now();
  while (!c.closed && !c.broken) {
    const auto it = c.answers.find(c.head_seq);
    if (it == c.answers.end()) return;
    Answer& a = it->second;
    switch (a.kind) {
      case Answer::Kind::full:
        if (c.codec.respond(a.response, now)) count_response(a.response.status);
        break;
      case Answer::Kind::chunked:
        if (!a.started) {
          a.started = true;
          if (c.codec.begin_chunked(a.status, a.headers)) count_response(a.status);
        }
        for (const auto& chunk : a.chunks)
          c.codec.write_chunk(chunk);
        a.chunks.clear();
        if (a.abandoned) {
          c.broken = true;
          return;
        }
        if (!a.ended) return;  // later answers wait behind this one
        c.codec.end_chunked(now);
        break;
      case Answer::Kind::ws_accept: {
        const http::Request req = std::move(a.ws_request);
        const std::string proto = std::move(a.ws_protocol);
        WsHandler* h = a.ws_handler;
        c.answers.erase(it);
        ++c.head_seq;
        if (!c.codec.accept_websocket(req, proto, now)) continue;  // the codec answered 400/426
        count_response(101);
        c.ws = h;
        c.ws_open = true;
        ++stats_.ws_clients;
        ++stats_.ws_opened;
        h->on_open(c.client);
        continue;
      }
    }
    c.answers.erase(it);
    ++c.head_seq;
  }
}

void HttpServer::count_response(int status) {
  if (status >= 100 && status < 600) ++stats_.responses[static_cast<size_t>(status / 100)];
  if (status == 401) ++stats_.unauthorized;
}

void HttpServer::answer(Conn& c, uint64_t seq, http::Response r) {
  Answer& a = c.answers[seq];
  a.kind = Answer::Kind::full;
  a.response = std::move(r);
}

// [SECTION] routing, auth, static files -------------------------------------------------------

void HttpServer::handle_request(const std::shared_ptr<Conn>& c, http::Request req) {
  const uint64_t seq = c->next_seq++;
  const std::string& path = req.path;
  const bool get = req.method == "GET" || req.method == "HEAD";
  const auto unauthorized = [&] {
    http::Response r = json_error(401, "unauthorized", "missing or wrong bearer token");
    r.headers.push_back({"WWW-Authenticate", "Bearer"});
    answer(*c, seq, std::move(r));
  };
  const auto refuse = [&](int status, std::string_view code, std::string_view message) {
    ++stats_.cross_site;
    answer(*c, seq, json_error(status, code, message));
  };
  if (!host_allowed(req))
    return refuse(421, "misdirected",
                  "Host must name this server (a loopback address or localhost): DNS rebinding "
                  "protection");
  const auto cross_origin = [&] {
    refuse(403, "cross_origin",
           "Origin does not match Host: the API only answers pages this server serves");
  };

  if (const auto ws = ws_paths_.find(path); ws != ws_paths_.end()) {
    if (!req.upgrade) {
      if (!authorized(req)) return unauthorized();
      http::Response r = json_error(426, "upgrade_required", "this is a WebSocket endpoint");
      r.headers.push_back({"Upgrade", "websocket"});
      return answer(*c, seq, std::move(r));
    }
    if (!origin_allowed(req)) return cross_origin();
    if (!ws_authorized(req)) return unauthorized();
    const auto offered = http::ServerConnection::offered_subprotocols(req);
    std::string proto;
    if (!offered.empty()) {
      if (std::find(offered.begin(), offered.end(), kSubprotocol) == offered.end())
        return answer(*c, seq,
                      json_error(400, "unsupported_subprotocol",
                                 "offer the WebSocket subprotocol " + std::string(kSubprotocol)));
      proto = kSubprotocol;
    }
    Answer& a = c->answers[seq];
    a.kind = Answer::Kind::ws_accept;
    a.ws_request = std::move(req);
    a.ws_protocol = std::move(proto);
    a.ws_handler = ws->second;
    return;
  }

  const std::vector<Route>* routes = nullptr;
  if (const auto e = exact_.find(path); e != exact_.end()) {
    routes = &e->second;
  } else {
    size_t best = 0;
    for (const auto& [prefix, list] : prefix_) {
      if (path.compare(0, prefix.size(), prefix) == 0 && (!routes || prefix.size() > best)) {
        routes = &list;
        best = prefix.size();
      }
    }
  }
  const bool healthz = path == "/healthz" && get;
  if (routes == nullptr && healthz)
    return answer(*c, seq, http::Response::json(200, "{\"status\":\"ok\"}"));

  if (routes != nullptr) {
    if (!healthz && !origin_allowed(req)) return cross_origin();
    if (!healthz && !authorized(req)) return unauthorized();
    const Route* match = nullptr;
    for (const auto& r : *routes)
      if (r.method == req.method) match = &r;
    if (match == nullptr && req.method == "HEAD")
      for (const auto& r : *routes)
        if (r.method == "GET") match = &r;
    if (match == nullptr) {
      std::vector<std::string> allow;
      for (const auto& r : *routes) {
        allow.push_back(r.method);
        if (r.method == "GET") allow.push_back("HEAD");
      }
      std::sort(allow.begin(), allow.end());
      allow.erase(std::unique(allow.begin(), allow.end()), allow.end());
      std::string allow_text;
      for (const auto& m : allow)
        allow_text += (allow_text.empty() ? "" : ", ") + m;
      http::Response r =
          json_error(405, "method_not_allowed",
                     req.method + " is not allowed on " + path + " (" + allow_text + ")");
      r.headers.push_back({"Allow", allow_text});
      return answer(*c, seq, std::move(r));
    }
    if (!write_allowed(req))
      return refuse(403, "cross_site",
                    req.method +
                        " needs the header X-Mxprobe: 1 (or a Content-Type such as "
                        "application/json, or the bearer token): cross-site request protection");
    // Reserve the slot first: a handler that answers synchronously fills it in.
    Responder responder(c, seq, c->peer);
    if (match->stream)
      c->sink = match->stream(req, std::move(responder));
    else
      match->handler(req, std::move(responder));
    return;
  }

  if (get && !static_root_.empty()) {
    http::Response r;
    if (serve_static(req, r)) return answer(*c, seq, std::move(r));
  }
  answer(*c, seq, json_error(404, "not_found", "no such resource: " + path));
}

bool HttpServer::authorized(const http::Request& req) const {
  if (options_.token.empty()) return true;
  const std::string* h = req.header("authorization");
  if (h == nullptr) return false;
  std::string_view v = trim(*h);
  if (!istarts_with(v, "bearer ")) return false;
  v = trim(v.substr(7));
  const auto d = sha256(v);  // fixed-size digests: the comparison leaks neither length nor bytes
  return CRYPTO_memcmp(d.data(), token_digest_.data(), d.size()) == 0;
}

namespace {

// "host:port", "[v6]:port" or "host" -> lower-cased host without brackets and port.
std::string host_only(std::string_view authority) {
  std::string_view h = trim(authority);
  if (!h.empty() && h.front() == '[') {
    const size_t close = h.find(']');
    h = close == h.npos ? std::string_view{} : h.substr(1, close - 1);
  } else if (const size_t colon = h.rfind(':'); colon != h.npos) {
    h = h.substr(0, colon);
  }
  std::string out;
  for (const char ch : h)
    out += lower(ch);
  if (!out.empty() && out.back() == '.') out.pop_back();
  return out;
}

bool loopback_name(const std::string& h) {
  if (h == "localhost" || (h.size() > 10 && h.compare(h.size() - 10, 10, ".localhost") == 0))
    return true;
  in_addr a{};
  if (::inet_pton(AF_INET, h.c_str(), &a) == 1) return (ntohl(a.s_addr) >> 24) == 127;
  in6_addr a6{};
  return ::inet_pton(AF_INET6, h.c_str(), &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

bool simple_content_type(const std::string* ct) {
  if (ct == nullptr) return true;  // a body without a type is what a form or no-cors fetch sends
  std::string_view v = trim(*ct);
  v = trim(v.substr(0, v.find(';')));
  const auto is = [&](std::string_view t) { return v.size() == t.size() && istarts_with(v, t); };
  // The CORS-safelisted types (Fetch standard): a page may send them without a preflight.
  return v.empty() || is("text/plain") || is("application/x-www-form-urlencoded") ||
         is("multipart/form-data");
}

}  // namespace

bool HttpServer::host_allowed(const http::Request& req) const {
  if (!is_loopback(endpoint_)) return true;  // a token guards it (create() insists)
  const std::string* h = req.header("host");
  if (h == nullptr) return true;  // HTTP/1.0 without Host: not a browser
  const std::string host = host_only(*h);
  if (loopback_name(host)) return true;
  return std::find(options_.allowed_hosts.begin(), options_.allowed_hosts.end(), host) !=
         options_.allowed_hosts.end();
}

bool HttpServer::origin_allowed(const http::Request& req) const {
  const std::string* o = req.header("origin");
  if (o == nullptr) return true;  // not a browser's request (curl, scripts)
  std::string_view v = trim(*o);
  const size_t scheme = v.find("://");
  if (scheme == v.npos) return false;  // "null" (sandboxed pages, file:) and garbage
  std::string_view authority = v.substr(scheme + 3);
  authority = authority.substr(0, authority.find('/'));
  const std::string* h = req.header("host");
  if (h == nullptr) return false;
  std::string a(authority), b(trim(*h));
  for (auto& ch : a)
    ch = lower(ch);
  for (auto& ch : b)
    ch = lower(ch);
  // The default port may be written in one and not the other.
  const std::string_view sch = v.substr(0, scheme);
  const std::string dflt = istarts_with(sch, "https") && sch.size() == 5 ? ":443" : ":80";
  const auto strip = [&](std::string& x) {
    if (x.size() > dflt.size() && x.compare(x.size() - dflt.size(), dflt.size(), dflt) == 0)
      x.resize(x.size() - dflt.size());
  };
  strip(a);
  strip(b);
  return a == b;
}

bool HttpServer::write_allowed(const http::Request& req) const {
  if (req.method == "GET" || req.method == "HEAD" || req.method == "OPTIONS") return true;
  if (req.header("x-mxprobe") != nullptr) return true;
  if (!simple_content_type(req.header("content-type"))) return true;
  return !options_.token.empty() && authorized(req);
}

bool HttpServer::ws_authorized(const http::Request& req) const {
  if (options_.token.empty() || authorized(req)) return true;
  bool ok = false;
  for (const auto& p : http::ServerConnection::offered_subprotocols(req)) {
    if (!istarts_with(p, kBearerPrefix)) continue;
    const auto d = sha256(std::string_view(p).substr(kBearerPrefix.size()));
    ok |= CRYPTO_memcmp(d.data(), token_digest_.data(), d.size()) == 0;
  }
  return ok;
}

bool HttpServer::serve_static(const http::Request& req, http::Response& out) const {
  std::string_view path = req.path;
  if (path.empty() || path.front() != '/' || path.find('\0') != std::string_view::npos)
    return false;
  // No "..", and no hidden files (".env", ".git/"): refuse any segment starting with a dot.
  for (size_t i = 1; i < path.size(); ++i)
    if (path[i] == '.' && path[i - 1] == '/') return false;
  if (path.find('\\') != std::string_view::npos) return false;
  std::string want = static_root_;
  want += path;
  if (want.back() == '/') want += "index.html";
  char* real = ::realpath(want.c_str(), nullptr);
  if (real == nullptr) return false;
  std::string resolved = real;
  std::free(real);
  // The resolved file (symlinks followed) must still be inside the root.
  if (resolved.size() <= static_root_.size() ||
      resolved.compare(0, static_root_.size(), static_root_) != 0 ||
      resolved[static_root_.size()] != '/')
    return false;
  struct stat st {};
  if (::stat(resolved.c_str(), &st) != 0) return false;
  if (S_ISDIR(st.st_mode)) return false;  // directories: only "dir/" gets its index.html
  std::string body;
  if (!read_file(resolved, body)) return false;
  out.status = 200;
  out.headers = {{"Content-Type", std::string(content_type(resolved))},
                 {"X-Content-Type-Options", "nosniff"},
                 {"Cache-Control", "no-cache"}};
  out.body = std::move(body);
  return true;
}

}  // namespace mxp::server
