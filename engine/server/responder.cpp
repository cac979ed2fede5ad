// Answers and WebSocket clients: Responder (an answer given now or later, whole or chunked,
// queued on its connection until its turn) and WsClient (send_text, send_latest's newest-only
// snapshots for slow readers, close), and the server's broadcasts to every WebSocket client.
#include "server/conn.hpp"

#include "core/strings.hpp"

namespace mxp::server {

namespace {

using core::istarts_with;

// Access-Control-* are never sent (no CORS), whoever set them.
void strip_cors(std::vector<http::Header>& headers) {
  std::erase_if(headers,
                [](const http::Header& h) { return istarts_with(h.name, "access-control-"); });
}

}  // namespace

using detail::Answer;
using detail::Conn;

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

}  // namespace mxp::server
