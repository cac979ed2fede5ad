// WebSocket framing on libwslay's event API, fed from and writing to memory buffers.
#include "http/websocket.hpp"

#include <wslay/wslay.h>

#include <algorithm>
#include <cstring>

namespace mxp::http {

struct WebSocketCodec::Impl {
  WebSocketCodec* self = nullptr;
  wslay_event_context_ptr ws = nullptr;
  std::string in;
  size_t in_pos = 0;

  // wslay reads what feed() stored and writes into the owner's output buffer.
  static ssize_t recv(wslay_event_context_ptr ctx, uint8_t* buf, size_t len, int, void* ud) {
    Impl& m = *static_cast<Impl*>(ud);
    const size_t avail = m.in.size() - m.in_pos;
    if (avail == 0) {
      wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
      return -1;
    }
    const size_t n = std::min(avail, len);
    std::memcpy(buf, m.in.data() + m.in_pos, n);
    m.in_pos += n;
    if (m.in_pos == m.in.size()) {
      m.in.clear();
      m.in_pos = 0;
    }
    return static_cast<ssize_t>(n);
  }

  static ssize_t send(wslay_event_context_ptr, const uint8_t* data, size_t len, int, void* ud) {
    static_cast<Impl*>(ud)->self->out_.append(reinterpret_cast<const char*>(data), len);
    return static_cast<ssize_t>(len);
  }

  static void msg(wslay_event_context_ptr, const wslay_event_on_msg_recv_arg* arg, void* ud) {
    WebSocketCodec& c = *static_cast<Impl*>(ud)->self;
    if (arg->opcode == WSLAY_CONNECTION_CLOSE) {
      c.close_received_ = arg->status_code != 0 ? arg->status_code : 1005;
    } else if (arg->opcode == WSLAY_TEXT_FRAME || arg->opcode == WSLAY_BINARY_FRAME) {
      c.ready_.push_back(
          WsMessage{arg->opcode == WSLAY_BINARY_FRAME,
                    std::string(reinterpret_cast<const char*>(arg->msg), arg->msg_length)});
    }
    // Pings are answered by wslay itself (RFC 6455 §5.5.2); pongs need nothing.
  }

  // RFC 6455 §5.5.1: a close frame's payload is empty or starts with a 2-byte code, so a 1-byte
  // payload is a protocol error (1002). wslay would answer it with an empty close; queue 1002
  // first (wslay then leaves the close it owes alone).
  static void frame_start(wslay_event_context_ptr ctx,
                          const wslay_event_on_frame_recv_start_arg* arg, void*) {
    if (arg->opcode == WSLAY_CONNECTION_CLOSE && arg->payload_length == 1)
      wslay_event_queue_close(ctx, WSLAY_CODE_PROTOCOL_ERROR, nullptr, 0);
  }
};

WebSocketCodec::WebSocketCodec(std::string& out) : impl_(std::make_unique<Impl>()), out_(out) {
  impl_->self = this;
}

std::unique_ptr<WebSocketCodec> WebSocketCodec::create(size_t max_message, std::string& out) {
  std::unique_ptr<WebSocketCodec> c(new WebSocketCodec(out));
  wslay_event_callbacks cbs{};
  cbs.recv_callback = &Impl::recv;
  cbs.send_callback = &Impl::send;
  cbs.on_msg_recv_callback = &Impl::msg;
  cbs.on_frame_recv_start_callback = &Impl::frame_start;
  if (wslay_event_context_server_init(&c->impl_->ws, &cbs, c->impl_.get()) != 0) {
    c->impl_->ws = nullptr;
    return nullptr;
  }
  wslay_event_config_set_max_recv_msg_length(c->impl_->ws, max_message);
  return c;
}

WebSocketCodec::~WebSocketCodec() {
  if (impl_->ws != nullptr) wslay_event_context_free(impl_->ws);
}

void WebSocketCodec::feed(std::string_view bytes) {
  impl_->in.append(bytes);
  flush();
}

void WebSocketCodec::flush() {
  if (done_) return;
  wslay_event_context_ptr ws = impl_->ws;
  if (wslay_event_want_read(ws) && !impl_->in.empty() && wslay_event_recv(ws) != 0) {
    done_ = true;
    return;
  }
  if (wslay_event_want_write(ws) && wslay_event_send(ws) != 0) {
    done_ = true;
    return;
  }
  // RFC 6455 §7.1.1: once our close frame is out and the peer's arrived (or we stopped
  // reading, e.g. after 1009 or 1002), the TCP connection is closed.
  if (wslay_event_get_close_sent(ws) &&
      (wslay_event_get_close_received(ws) || !wslay_event_get_read_enabled(ws)))
    done_ = true;
  if (!wslay_event_want_read(ws) && !wslay_event_want_write(ws)) done_ = true;
}

std::optional<WsMessage> WebSocketCodec::next_message() {
  if (ready_.empty()) return std::nullopt;
  WsMessage m = std::move(ready_.front());
  ready_.pop_front();
  return m;
}

bool WebSocketCodec::queue(uint8_t opcode, std::string_view data) {
  if (done_) return false;
  wslay_event_msg msg{opcode, reinterpret_cast<const uint8_t*>(data.data()), data.size()};
  if (wslay_event_queue_msg(impl_->ws, &msg) != 0) return false;  // wslay copies the payload
  flush();
  return true;
}

bool WebSocketCodec::send_text(std::string_view data) {
  return queue(WSLAY_TEXT_FRAME, data);
}

bool WebSocketCodec::send_binary(std::string_view data) {
  return queue(WSLAY_BINARY_FRAME, data);
}

bool WebSocketCodec::ping(std::string_view data) {
  return queue(WSLAY_PING, data);
}

bool WebSocketCodec::close(uint16_t code, std::string_view reason) {
  if (done_) return false;
  if (wslay_event_queue_close(impl_->ws, code, reinterpret_cast<const uint8_t*>(reason.data()),
                              reason.size()) != 0)
    return false;
  flush();
  return true;
}

uint16_t WebSocketCodec::close_code_sent() const {
  if (!wslay_event_get_close_sent(impl_->ws)) return 0;
  return wslay_event_get_status_code_sent(impl_->ws);
}

}  // namespace mxp::http
