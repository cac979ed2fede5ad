// The RFC 6455 upgrade of a ServerConnection: the handshake check, the subprotocols offered,
// the 101 answer (Sec-WebSocket-Accept computed with OpenSSL) and the hand-over of the
// connection's bytes to the WebSocket codec (websocket.cpp), whose frames the ws_* calls then
// pass through. The HTTP side of the connection is server_connection.cpp.
#include "http/server_connection.hpp"

#include <openssl/evp.h>
#include <openssl/sha.h>

#include <algorithm>
#include <array>

#include "core/strings.hpp"

namespace mxp::http {

namespace {

using core::iequals;
using core::trim;

// Calls f(token) for each element of a comma-separated list header (RFC 9110 §5.6.1), over
// every field line with this name.
template <typename F>
void for_each_token(const Request& req, std::string_view name, F&& f) {
  for (const auto& h : req.headers) {
    if (!iequals(h.name, name)) continue;
    std::string_view v = h.value;
    while (!v.empty()) {
      const size_t comma = v.find(',');
      const std::string_view tok = trim(v.substr(0, comma));
      if (!tok.empty()) f(tok);
      if (comma == std::string_view::npos) break;
      v.remove_prefix(comma + 1);
    }
  }
}

bool has_token(const Request& req, std::string_view name, std::string_view token) {
  bool found = false;
  for_each_token(req, name, [&](std::string_view t) { found = found || iequals(t, token); });
  return found;
}

constexpr std::string_view kWsGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";  // RFC 6455 §1.3

}  // namespace

std::string websocket_accept(std::string_view key) {
  std::string in(key);
  in += kWsGuid;
  std::array<unsigned char, SHA_DIGEST_LENGTH> digest{};
  SHA1(reinterpret_cast<const unsigned char*>(in.data()), in.size(), digest.data());
  std::array<unsigned char, 4 * ((SHA_DIGEST_LENGTH + 2) / 3) + 1> b64{};
  const int n = EVP_EncodeBlock(b64.data(), digest.data(), SHA_DIGEST_LENGTH);
  return std::string(reinterpret_cast<const char*>(b64.data()), static_cast<size_t>(n));
}

// [SECTION] WebSocket -------------------------------------------------------------------------

bool ServerConnection::is_websocket_handshake(const Request& req) {
  // RFC 6455 §4.2.1: GET, HTTP/1.1+, Upgrade: websocket, Connection: upgrade, a 16-byte key
  // in base64, version 13.
  if (req.method != "GET" || req.version_minor < 1 || !req.upgrade) return false;
  if (!has_token(req, "upgrade", "websocket") || !has_token(req, "connection", "upgrade"))
    return false;
  const std::string* key = req.header("sec-websocket-key");
  const std::string* version = req.header("sec-websocket-version");
  if (key == nullptr || version == nullptr || trim(*version) != "13") return false;
  const std::string_view k = trim(*key);
  if (k.size() != 24 || k.substr(22) != "==") return false;
  std::array<unsigned char, 18> raw{};
  return EVP_DecodeBlock(raw.data(), reinterpret_cast<const unsigned char*>(k.data()), 24) == 18;
}

std::vector<std::string> ServerConnection::offered_subprotocols(const Request& req) {
  std::vector<std::string> out;
  for_each_token(req, "sec-websocket-protocol", [&](std::string_view t) { out.emplace_back(t); });
  return out;
}

bool ServerConnection::accept_websocket(const Request& req, std::string_view subprotocol,
                                        TimePoint now) {
  if (state_ != State::http || chunking_ || owed_.size() <= ready_.size() || !owed_.front().upgrade)
    return false;
  const auto offered = offered_subprotocols(req);
  const bool proto_ok = subprotocol.empty() ||
                        std::find(offered.begin(), offered.end(), subprotocol) != offered.end();
  if (!is_websocket_handshake(req) || !proto_ok) {
    const std::string* v = req.header("sec-websocket-version");
    const bool bad_version =
        req.header("sec-websocket-key") != nullptr && v != nullptr && trim(*v) != "13";
    owed_.pop_front();
    error_status_ = bad_version ? 426 : 400;
    std::string body(reason_phrase(error_status_));
    body += '\n';
    std::vector<Header> hs{{"Content-Type", "text/plain; charset=utf-8"}};
    if (bad_version) hs.push_back({"Sec-WebSocket-Version", "13"});  // RFC 6455 §4.4
    write_head(error_status_, hs, true, false, body.size());
    out_ += body;
    after_answer(true, now);
    return false;
  }
  owed_.pop_front();
  out_ += "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n";
  out_ += "Sec-WebSocket-Accept: ";
  out_ += websocket_accept(trim(*req.header("sec-websocket-key")));
  out_ += "\r\n";
  if (!subprotocol.empty()) {
    out_ += "Sec-WebSocket-Protocol: ";
    out_ += subprotocol;
    out_ += "\r\n";
  }
  out_ += "\r\n";

  ws_ = WebSocketCodec::create(limits_.max_ws_message, out_);
  if (!ws_) {
    state_ = State::closing;
    return false;
  }
  state_ = State::websocket;
  request_deadline_.reset();
  idle_deadline_.reset();
  ready_.clear();
  owed_.clear();
  // Frames the client sent right behind its handshake were left unparsed by http_parser.
  const std::string early = std::move(in_);
  in_.clear();
  ws_->feed(early);
  ws_sync();
  return true;
}

// The WebSocket codec decides when the connection is done; the connection then closes.
void ServerConnection::ws_sync() {
  if (state_ == State::websocket && ws_->done()) state_ = State::closing;
}

std::optional<WsMessage> ServerConnection::next_ws_message() {
  return ws_ ? ws_->next_message() : std::nullopt;
}

bool ServerConnection::ws_send_text(std::string_view data) {
  if (state_ != State::websocket || !ws_->send_text(data)) return false;
  ws_sync();
  return true;
}

bool ServerConnection::ws_send_binary(std::string_view data) {
  if (state_ != State::websocket || !ws_->send_binary(data)) return false;
  ws_sync();
  return true;
}

bool ServerConnection::ws_ping(std::string_view data) {
  if (state_ != State::websocket || !ws_->ping(data)) return false;
  ws_sync();
  return true;
}

bool ServerConnection::ws_close(uint16_t code, std::string_view reason) {
  if (state_ != State::websocket || !ws_->close(code, reason)) return false;
  ws_sync();
  return true;
}

uint16_t ServerConnection::ws_close_code_sent() const {
  return ws_ ? ws_->close_code_sent() : 0;
}

}  // namespace mxp::http
