// HttpServer's core: the listening socket and accept (with the per-client and total connection
// limits), reading, writing and closing accepted sockets, the codec's timers, and dispatch.
// Routing is in routing.cpp, the access checks (token, Host, Origin, cross-site writes) in
// access.cpp, static files in static_files.cpp, Responder and WebSocket clients in responder.cpp.
// [SECTION] set-up  [SECTION] I/O  [SECTION] dispatch
//
// Flow of one connection: readable -> read() -> codec.feed() -> service(): hand requests to
// handlers (dispatch), move their answers into the codec in request order (flush_answers), write()
// what the codec produced, then close it or re-arm its watch and its codec timer (rearm). A
// Responder answering later re-enters service(). service() is not re-entrant per connection: a
// nested call (a handler answering synchronously) only marks the connection dirty.
#include "server/server.hpp"

#include "server/conn.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/json_out.hpp"

namespace mxp::server {

namespace {

constexpr auto kLinger = std::chrono::seconds(2);              // graceful close: wait for EOF
constexpr auto kAcceptPause = std::chrono::milliseconds(100);  // after EMFILE
constexpr size_t kReadBuffer = 64 * 1024;
constexpr int kReadsPerWakeup = 8;
constexpr int kAcceptsPerWakeup = 64;

// RFC 9110 §5.6.2 tchar: what a WebSocket subprotocol name may contain.
bool token_char(char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

}  // namespace

using detail::Answer;
using detail::Conn;
using detail::is_loopback;
using detail::sha256;

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

}  // namespace mxp::server
