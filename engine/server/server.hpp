// The socket glue of `mxprobe serve`: an HTTP/1.1 API and a WebSocket endpoint on the engine's
// own event loop. mxp::http::ServerConnection (sans-I/O) parses and frames; this file owns the
// listening socket and the accepted sockets (non-blocking, watched with Loop::watch_fd, read and
// written with plain syscalls, so it works on either loop backend), the codec timers, routing,
// authentication and static files. One thread, never blocks (except reading a static file).
//
// Security model:
// - Without a token the server only listens on a loopback address (127.0.0.0/8, ::1); create()
//   refuses anything else.
// - With a token, the API (every route() and websocket() path, any method) requires
//   `Authorization: Bearer <token>`, compared in constant time (SHA-256 of both, CRYPTO_memcmp);
//   otherwise 401 {"error":"unauthorized",...} with `WWW-Authenticate: Bearer`.
//   Exceptions, on purpose: `GET`/`HEAD /healthz`, and the static files of static_dir(): the
//   console page must load before the user can type the token into it. Static files are public;
//   the API and the WebSocket are not. Paths that match nothing get 404 without authentication.
// - WebSocket: browsers cannot set headers, so the client offers the subprotocols `mxprobe.v1`
//   and `bearer.<token>`; the server checks the bearer one and answers `mxprobe.v1` (the token
//   is never echoed). An Authorization header is accepted too (non-browser clients). Without a
//   token the client offers `mxprobe.v1` or no subprotocol at all. Subprotocols offered without
//   `mxprobe.v1` get 400.
// - No CORS: Access-Control-* headers are never sent (stripped from handler answers), so a page
//   from another origin cannot read the API's answers.
// - Cross-site requests: a loopback server checks `Host` (a loopback IP literal, "localhost",
//   "*.localhost" or one of allowed_hosts, any port; else 421), so a DNS-rebinding page whose
//   name resolves to 127.0.0.1 is refused. On the API and the WebSocket, an `Origin` header must
//   name the same host:port as `Host` (else 403 cross_origin; "null" included). Writes (any
//   method but GET/HEAD/OPTIONS) on the API must carry `X-Mxprobe: 1`, a Content-Type a form
//   cannot send (not text/plain, application/x-www-form-urlencoded or multipart/form-data) or
//   the right bearer token (else 403 cross_site): a page can only send those after a CORS
//   preflight, which is never granted.
// - Limits: max_connections in all and max_connections_per_client per peer address; when full,
//   the oldest connection that is idle or still sending its request header is closed to make
//   room, so slow clients cannot lock others out. Header deadline, minimum upload rate and sizes
//   are in http::Limits. A WebSocket client that reads slowly gets only the newest snapshot
//   (send_latest) and at most ws_max_pending bytes of other messages.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/expected.hpp"
#include "http/server_connection.hpp"
#include "loop/loop.hpp"

namespace mxp::server {

namespace detail {
struct Conn;
}

struct ServerOptions {
  // "IP:PORT" (IPv4) or "[IPv6]:PORT"; port 0 picks an ephemeral port (see HttpServer::port()).
  std::string listen = "127.0.0.1:8025";
  // Bearer token; empty = none (then only a loopback listen address is allowed). Must consist of
  // RFC 9110 token characters (it travels inside a WebSocket subprotocol name).
  std::string token;
  http::Limits limits;  // per connection: header/body sizes, header_timeout, idle_timeout, ...
  // Beyond it a new connection closes the oldest one that holds no work (idle or in the middle
  // of its request header), or, with none, is closed itself at once.
  size_t max_connections = 1024;
  size_t max_connections_per_client = 256;  // per peer IP address, the same way
  // A WebSocket client whose unsent output exceeds this loses messages (send_text() is false).
  size_t ws_max_pending = 256 << 10;
  // send_latest(): above this much unsent output a client is behind, and only the newest
  // message waits (one, replaced by each later one) until its output drains below it.
  size_t ws_latest_above = 32 << 10;
  // Host names (lower case, no port) accepted besides loopback literals and localhost when
  // the listen address is a loopback one.
  std::vector<std::string> allowed_hosts;
};

// Answers one request, now or later (after the handler returned). Move-only. Answers on a
// connection go out in request order whatever order the Responders answer in. A Responder whose
// connection closed (or whose server is gone) is harmless: its calls do nothing.
// Destroying a Responder that never answered answers 500; one destroyed in the middle of a
// chunked answer closes the connection (the client sees a truncated body, not a complete one).
class Responder {
 public:
  Responder() = default;
  Responder(Responder&&) noexcept;
  Responder& operator=(Responder&&) noexcept;
  Responder(const Responder&) = delete;
  Responder& operator=(const Responder&) = delete;
  ~Responder();

  // Content-Length, Connection and Access-Control-* headers are the server's business.
  void respond(http::Response r);
  // A chunked answer (streamed downloads): begin once, any number of chunks, end once.
  void begin_chunked(int status, std::vector<http::Header> headers);
  void write_chunk(std::string_view data);
  void end_chunked();
  // The connection is still open and this answer not finished.
  bool alive() const;
  // "ip:port" of the client ("" when empty).
  std::string peer() const { return peer_; }
  // Unsent bytes of this connection (flow control for streamed downloads); 0 when closed.
  size_t pending_output() const;

 private:
  friend class HttpServer;
  Responder(std::weak_ptr<detail::Conn> c, uint64_t seq, std::string peer)
      : conn_(std::move(c)), seq_(seq), peer_(std::move(peer)), phase_(Phase::open) {}
  void release();

  std::weak_ptr<detail::Conn> conn_;
  uint64_t seq_ = 0;
  std::string peer_;
  enum class Phase : uint8_t { open, chunking, done } phase_ = Phase::done;
};

using Handler = std::function<void(const http::Request&, Responder)>;

// The body of a streamed request (route_streamed), handed over as it arrives: uploads larger
// than memory go to disk piece by piece.
class BodySink {
 public:
  virtual ~BodySink() = default;
  // A piece of the body. False: stop here (the sink has answered, e.g. 500 on a full disk); the
  // rest is not read and the connection closes after the answer.
  virtual bool on_body(std::string_view bytes) = 0;
  // All of it arrived: answer through the Responder the handler was given.
  virtual void on_body_end() = 0;
  // It never will (client gone, too slow, too large, broken chunked coding): the server answers
  // the error, if anyone is left to read it; the Responder is dead.
  virtual void on_body_error() = 0;
};
// Returns the sink for the body, or null after answering at once (a bad parameter: the body is
// then not read, and the connection closes after the answer).
using StreamHandler = std::function<std::unique_ptr<BodySink>(const http::Request&, Responder)>;

// One WebSocket connection, from WsHandler::on_open until on_close returns (do not keep the
// reference longer).
class WsClient {
 public:
  uint64_t id() const { return id_; }
  std::string peer() const;
  // Queues a text message. False (message dropped) when the connection is closing or its unsent
  // output exceeds ServerOptions::ws_max_pending: a slow client must not grow memory.
  bool send_text(std::string_view data);
  // For messages where only the newest counts (snapshots): sent now when the client keeps up,
  // otherwise kept (replacing any earlier one) and sent once its output drained below
  // ServerOptions::ws_latest_above. False when the connection is closing.
  bool send_latest(std::string_view data);
  // Unsent bytes of this connection.
  size_t pending_output() const;
  // Sends a close frame; on_close follows once the connection is gone.
  void close(uint16_t code = 1000, std::string_view reason = {});

 private:
  friend class HttpServer;
  friend struct detail::Conn;
  explicit WsClient(detail::Conn* c, uint64_t id) : conn_(c), id_(id) {}
  detail::Conn* conn_;
  uint64_t id_;
};

class WsHandler {
 public:
  virtual void on_open(WsClient& client) = 0;
  virtual void on_message(WsClient& client, const http::WsMessage& msg) = 0;
  // The connection is gone (either side closed, error, or server shut down); send_text is false.
  virtual void on_close(WsClient& client) = 0;

 protected:
  ~WsHandler() = default;
};

struct ServerStats {
  uint64_t connections_accepted = 0;
  uint64_t connections_rejected = 0;  // over max_connections (or per client), none to evict
  uint64_t connections_evicted = 0;   // idle or half-sent requests closed to make room
  uint64_t cross_site = 0;            // 421 (Host) and 403 (Origin, write without header)
  uint64_t connections_open = 0;
  uint64_t requests = 0;                // complete requests parsed (WebSocket handshakes included)
  std::array<uint64_t, 6> responses{};  // by class: [1] 1xx ... [5] 5xx ([0] unused)
  uint64_t unauthorized = 0;            // 401s sent
  uint64_t timeouts = 0;                // connections closed by the codec's deadlines
  uint64_t ws_clients = 0;              // open WebSocket connections
  uint64_t ws_opened = 0;
  uint64_t ws_messages_in = 0;
  uint64_t ws_messages_out = 0;
  uint64_t ws_dropped = 0;    // send_text refused because the client was too slow
  uint64_t ws_coalesced = 0;  // send_latest messages replaced by a newer one before going out
};

class HttpServer final : private loop::FdHandler, private loop::TimerHandler {
 public:
  // Binds and listens (SO_REUSEADDR). Fails, saying why, on a bad address, a non-loopback
  // address without a token, an invalid token, or a socket error.
  static core::Expected<std::unique_ptr<HttpServer>, std::string> create(loop::Loop& loop,
                                                                         ServerOptions options);
  // Closes every connection (WebSocket handlers get on_close) and the listening socket. With
  // io_uring the kernel lets go of the sockets when the loop next runs (its polls are removed
  // then). Do not destroy the server from inside one of its own handlers.
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  uint16_t port() const { return port_; }
  const loop::Endpoint& endpoint() const { return endpoint_; }

  // Exact path, or a prefix when `path` ends with '*' ("/v1/jobs/*" matches "/v1/jobs/42");
  // exact routes win, then the longest prefix. A GET route also answers HEAD. A path known with
  // another method gets 405 with Allow.
  void route(std::string method, std::string path, Handler h);
  // An exact path whose requests are handed to `h` at the end of their header, their body then
  // streamed to the sink it returns (bounded by Limits::max_stream_body_bytes, not
  // max_body_bytes). Authentication and routing are as for route().
  void route_streamed(std::string method, std::string path, StreamHandler h);
  // A WebSocket endpoint (exact path). Non-upgrade requests to it get 426.
  void websocket(std::string path, WsHandler& h);
  // Serves GET/HEAD of files under `root` ("/" is index.html), publicly (see above). Traversal
  // is refused: ".." segments and any path whose realpath leaves the root get 404.
  void static_dir(std::string root);

  // Sends to every open WebSocket client; returns how many took it.
  size_t broadcast_text(std::string_view data);
  // send_latest() to every open WebSocket client (snapshots); returns how many took it.
  size_t broadcast_latest(std::string_view data);
  size_t ws_clients() const { return stats_.ws_clients; }
  const ServerStats& stats() const { return stats_; }

  // {"error":"<code>","message":"<message>"} with the status.
  static http::Response json_error(int status, std::string_view code, std::string_view message);

 private:
  friend class Responder;
  friend class WsClient;
  struct Route {
    std::string method;
    Handler handler;
    StreamHandler stream;  // set instead of `handler` for route_streamed()
  };
  bool streamed(const http::Request& req) const;
  void pump_body(detail::Conn& c);
  void drop_body(detail::Conn& c);

  HttpServer(loop::Loop& loop, ServerOptions options);
  // The listening socket, bound and watched; the error names the step and errno.
  core::Expected<void, std::string> open_listener();

  void on_fd_ready(int fd, bool readable, bool writable) override;
  void on_timer(loop::TimerId id, uint64_t cookie) override;

  void accept_ready();
  void read_ready(const std::shared_ptr<detail::Conn>& c);
  void linger_ready(const std::shared_ptr<detail::Conn>& c);
  // Runs handlers and the codec for a connection, then writes, closes or re-arms it.
  void service(const std::shared_ptr<detail::Conn>& c);
  void dispatch(const std::shared_ptr<detail::Conn>& c);
  void handle_request(const std::shared_ptr<detail::Conn>& c, http::Request req);
  void flush_answers(detail::Conn& c);
  bool write_out(detail::Conn& c);
  void rearm(detail::Conn& c);
  void begin_close(const std::shared_ptr<detail::Conn>& c);
  void close_now(const std::shared_ptr<detail::Conn>& c);
  void ws_closed(detail::Conn& c);
  void count_response(int status);
  void answer(detail::Conn& c, uint64_t seq, http::Response r);
  bool authorized(const http::Request& req) const;
  bool host_allowed(const http::Request& req) const;
  bool origin_allowed(const http::Request& req) const;
  bool write_allowed(const http::Request& req) const;
  // Makes room for a connection from `ip`; false when nothing can be closed.
  bool make_room(const std::string& ip);
  void send_latest_if_room(detail::Conn& c);
  bool ws_authorized(const http::Request& req) const;
  bool serve_static(const http::Request& req, http::Response& out) const;

  loop::Loop& loop_;
  ServerOptions options_;
  loop::Endpoint endpoint_;
  uint16_t port_ = 0;
  int listen_fd_ = -1;
  bool accept_paused_ = false;
  loop::TimerId accept_timer_;
  std::array<unsigned char, 32> token_digest_{};
  std::map<std::string, std::vector<Route>> exact_;
  std::map<std::string, std::vector<Route>> prefix_;  // key without the '*'
  std::map<std::string, WsHandler*> ws_paths_;
  std::string static_root_;  // realpath of static_dir(), "" = none
  uint64_t next_id_ = 1;
  std::unordered_map<int, std::shared_ptr<detail::Conn>> by_fd_;
  std::unordered_map<uint64_t, std::shared_ptr<detail::Conn>> by_id_;
  std::unordered_map<std::string, size_t> per_ip_;  // open connections by peer address
  ServerStats stats_;
};

}  // namespace mxp::server
