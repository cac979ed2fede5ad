// The private half of HttpServer: one accepted connection (detail::Conn) and the answers it
// owes (detail::Answer), which the server's files all read, and the two helpers the set-up
// and the access checks share. Private to engine/server: included by its .cpp files only.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "server/server.hpp"

namespace mxp::server {

namespace detail {

// SHA-256 of `s` (tokens are compared as digests); the address is a loopback one (access.cpp).
std::array<unsigned char, 32> sha256(std::string_view s);
bool is_loopback(const loop::Endpoint& ep);

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

}  // namespace mxp::server
