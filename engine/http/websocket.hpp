// Sans-I/O WebSocket framing (RFC 6455) for a connection that has been upgraded: bytes in via
// feed(), frames out appended to the owner's output buffer, whole messages out via
// next_message(). The HTTP/1.1 codec (server_connection.hpp) does the handshake and hands the
// connection over; this codec never sees HTTP and never reads a clock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace mxp::http {

struct WsMessage {
  bool binary = false;
  std::string data;
};

class WebSocketCodec {
 public:
  // Frames are appended to `out` (which must outlive the codec); messages past max_message are
  // refused with close 1009. Null if libwslay cannot set up its context.
  static std::unique_ptr<WebSocketCodec> create(size_t max_message, std::string& out);
  ~WebSocketCodec();
  WebSocketCodec(const WebSocketCodec&) = delete;
  WebSocketCodec& operator=(const WebSocketCodec&) = delete;

  // Bytes received from the peer (may be empty: then only what is queued is written).
  void feed(std::string_view bytes);
  // The connection is done: a framing error, or the close handshake is complete (RFC 6455
  // §7.1.1). The owner flushes its output and closes the socket.
  bool done() const { return done_; }

  std::optional<WsMessage> next_message();
  bool send_text(std::string_view data);
  bool send_binary(std::string_view data);
  bool ping(std::string_view data);
  bool close(uint16_t code, std::string_view reason);
  // Close code the peer sent (0 before any close frame arrived; 1005 for a close without a
  // code) and the one we sent (0 before ours).
  uint16_t close_code_received() const { return close_received_; }
  uint16_t close_code_sent() const;

 private:
  struct Impl;  // libwslay glue, in websocket.cpp
  explicit WebSocketCodec(std::string& out);
  void flush();
  bool queue(uint8_t opcode, std::string_view data);

  std::unique_ptr<Impl> impl_;
  std::string& out_;
  std::deque<WsMessage> ready_;
  uint16_t close_received_ = 0;
  bool done_ = false;
};

}  // namespace mxp::http
