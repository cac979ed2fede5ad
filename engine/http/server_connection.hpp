// Sans-I/O HTTP/1.1 server connection (RFC 9112) with a WebSocket upgrade (RFC 6455; the frames
// after it go through WebSocketCodec, websocket.hpp): bytes in via feed(), bytes out via
// pending_output()/consume_output(), timers via next_deadline() and on_timeout(). It never
// touches a socket: engine/server's HttpServer owns the I/O.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/clock.hpp"
#include "core/strings.hpp"
#include "http/websocket.hpp"

namespace mxp::http {

using Clock = core::Clock;
using TimePoint = Clock::time_point;

struct Limits {
  size_t max_header_bytes = 16 * 1024;  // request line + all header fields (431 / 414 past it)
  size_t max_headers = 64;              // header field count (431)
  size_t max_url_bytes = 4096;          // request target (414)
  size_t max_body_bytes = 1 << 20;      // decoded body (413)
  // A streamed body (see ServerConnection::stream_bodies): handed over as it arrives, never
  // held whole, so only this bounds it (413). Its header_timeout restarts with every piece,
  // and it must also keep up min_body_rate on average (408 once it falls behind).
  uint64_t max_stream_body_bytes = uint64_t{4} << 30;
  // Bytes per second a streamed body must average after a grace of header_timeout: a body
  // trickled one byte per header_timeout would otherwise hold its connection for ever.
  uint64_t min_body_rate = 4096;
  size_t max_pipelined = 16;                         // requests handed out but not yet answered
  std::chrono::milliseconds header_timeout{10'000};  // first byte of a request to its last (408)
  // Between requests on a keep-alive connection. A new connection gets min(idle_timeout,
  // header_timeout) for its first byte: an accepted socket that says nothing is not kept long.
  std::chrono::milliseconds idle_timeout{60'000};
  size_t max_ws_message = 1 << 20;  // reassembled WebSocket message (close 1009 past it)
};

struct Header {
  std::string name;  // lower-cased on input; as given on output
  std::string value;
};

struct Request {
  std::string method;  // "GET", "POST", ...
  std::string target;  // raw request target, e.g. "/api/jobs?id=4%2F2"
  std::string path;    // percent-decoded path, e.g. "/api/jobs"
  std::string query;   // raw query string without '?'
  std::vector<std::pair<std::string, std::string>> params;  // decoded query params, in order
  std::vector<Header> headers;
  std::string body;        // empty when `streamed`: the body comes through take_body()
  bool streamed = false;   // handed out at the end of its header, before its body
  int version_minor = 1;   // HTTP/1.x
  bool keep_alive = true;  // per RFC 9112 §9.3 (Connection header and version)
  bool upgrade = false;    // an Upgrade request; answer with accept_websocket() or respond()

  // Case-insensitive lookup of the first header with this name; nullptr when absent.
  const std::string* header(std::string_view name) const;
  // First query parameter with this (decoded) name; nullptr when absent.
  const std::string* param(std::string_view name) const;
};

struct Response {
  int status = 200;
  std::vector<Header> headers;  // Content-Length and Connection are added by the codec
  std::string body;

  static Response json(int status, std::string body);
  static Response text(int status, std::string body);
};

// Reason phrase for a status code ("Not Found"); "Unknown" for codes we never send.
std::string_view reason_phrase(int status);

// Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 §4.2.2: base64(SHA-1(key + GUID))).
std::string websocket_accept(std::string_view key);

// Percent-decodes `in` (and '+' as space when `plus_is_space`); nullopt on a bad escape.
using core::percent_decode;  // %XX (and + in queries) decoded: core/strings.hpp

class ServerConnection {
 public:
  enum class State {
    http,       // parsing requests
    websocket,  // upgraded: frames through the WebSocket codec (websocket.hpp)
    closing,    // flush pending_output(), then close the socket
  };

  explicit ServerConnection(Limits limits, TimePoint now);
  ~ServerConnection();
  ServerConnection(const ServerConnection&) = delete;
  ServerConnection& operator=(const ServerConnection&) = delete;

  // Bytes received from the peer. Complete requests (or WebSocket messages) become available
  // through next_request() (next_ws_message()); answers appear in pending_output().
  void feed(std::string_view bytes, TimePoint now);
  // The peer closed its sending side: a partial request is dropped and the connection closes
  // once the answers owed are written.
  void feed_eof();

  std::optional<Request> next_request();

  // Requests for which `pred` (method and path are set) says yes are handed out by
  // next_request() as soon as their header is complete, with `streamed` set; their body then
  // comes through take_body() in pieces, bounded by what one feed() brought. Answering such a
  // request before its body ended closes the connection after the answer.
  void stream_bodies(std::function<bool(const Request&)> pred) { stream_pred_ = std::move(pred); }
  enum class Body : uint8_t {
    none,      // no streamed body in progress
    arriving,  // more may come
    ended,     // all of it was handed out by take_body(); call body_taken()
    failed,    // cut short (client gone, timeout, size, bad chunking): the codec answers, if anyone
  };
  // The streamed body of the request last handed out (`none` while it still waits in line).
  Body body_state() const;
  // The streamed body's bytes received since the last call (once body_state() is not none).
  std::string take_body();
  // The owner saw `ended` or `failed`: the codec reads the requests that follow.
  void body_taken(TimePoint now);
  // Answers the oldest request handed out and not yet answered (pipelined answers go in order).
  // Returns false when nothing is owed or a chunked answer is in progress.
  bool respond(const Response& r, TimePoint now);
  // A chunked answer (RFC 9112 §7.1) to the oldest owed request, for large downloads.
  bool begin_chunked(int status, const std::vector<Header>& headers);
  bool write_chunk(std::string_view data);
  bool end_chunked(TimePoint now);

  // True when `req` is a valid RFC 6455 §4.2.1 opening handshake.
  static bool is_websocket_handshake(const Request& req);
  // Subprotocols the client offered in Sec-WebSocket-Protocol, in order.
  static std::vector<std::string> offered_subprotocols(const Request& req);
  // Answers the oldest owed request (which must be `req`, an upgrade) with 101 and switches to
  // WebSocket framing; `subprotocol` must be empty or one the client offered. On an invalid
  // handshake it answers 400 (426 for a wrong version, RFC 6455 §4.4), closes and returns false.
  bool accept_websocket(const Request& req, std::string_view subprotocol, TimePoint now);

  std::optional<WsMessage> next_ws_message();
  bool ws_send_text(std::string_view data);
  bool ws_send_binary(std::string_view data);
  bool ws_ping(std::string_view data = {});
  bool ws_close(uint16_t code = 1000, std::string_view reason = {});
  // Close code the peer sent (0 before any close frame arrived) and the one we sent.
  uint16_t ws_close_code_received() const { return ws_ ? ws_->close_code_received() : 0; }
  uint16_t ws_close_code_sent() const;

  std::string_view pending_output() const { return std::string_view(out_).substr(out_pos_); }
  void consume_output(size_t n);

  // When the owner must call on_timeout(); nullopt when no timer is needed (WebSocket, or the
  // application still owes answers).
  std::optional<TimePoint> next_deadline() const;
  void on_timeout(TimePoint now);

  State state() const { return state_; }
  // False while max_pipelined answers are owed: the owner may stop reading until respond().
  bool wants_read() const {
    return state_ != State::closing && owed_.size() < limits_.max_pipelined;
  }
  // Flush pending_output() and close: the codec will not read or write anything more.
  bool should_close() const { return state_ == State::closing && pending_output().empty(); }
  // Status of the error answer the codec produced itself (400, 408, 413, ...), 0 if none.
  int error_status() const { return error_status_; }
  // Holds nothing of value: idle between requests or still reading a request's header (no
  // answer owed, no body streaming, nothing to write). The owner may close it to make room.
  bool awaiting_request() const {
    return state_ == State::http && owed_.empty() && ready_.empty() && body_ == Body::none &&
           !chunking_ && pending_output().empty();
  }

 private:
  struct Impl;  // http_parser glue, in server_connection.cpp
  struct Owed {
    bool head = false;
    bool keep_alive = true;
    bool upgrade = false;
    bool http10 = false;
  };

  void pump(TimePoint now);
  void fail(int status);
  void fail_body();
  // The answer just taken off owed_ was the streamed request's, with its body still coming.
  bool answer_cuts_body() {
    if (!stream_answer_owed_ || !owed_.empty()) return false;
    stream_answer_owed_ = false;
    return body_ == Body::arriving;
  }
  void maybe_send_error();
  void write_head(int status, const std::vector<Header>& headers, bool close, bool chunked,
                  size_t content_length);
  void after_answer(bool close, TimePoint now);
  void ws_sync();

  Limits limits_;
  State state_ = State::http;
  std::unique_ptr<Impl> impl_;
  std::string in_;  // received, not yet parsed
  std::string out_;
  size_t out_pos_ = 0;
  std::deque<Request> ready_;  // complete, not yet handed out
  std::deque<Owed> owed_;      // handed out (or ready), not yet answered
  bool chunking_ = false;
  bool chunk_close_ = false;
  bool stop_parsing_ = false;  // after an error, Connection: close or an upgrade
  bool peer_eof_ = false;
  int pending_error_ = 0;  // error answer queued behind the owed answers
  int error_status_ = 0;
  std::optional<TimePoint> request_deadline_;
  std::optional<TimePoint> idle_deadline_;
  std::unique_ptr<WebSocketCodec> ws_;  // after the upgrade: the frames' own codec
  std::function<bool(const Request&)> stream_pred_;
  Body body_ = Body::none;
  bool stream_answer_owed_ = false;  // the streamed request (owed_.back()) is not answered yet
  std::string body_in_;              // streamed body bytes not yet taken
  TimePoint now_{};                  // of the current feed(): restarts a streamed body's deadline
  TimePoint body_start_{};           // when the streamed body's header was complete
};

}  // namespace mxp::http
