// libFuzzer target for mxp::http::ServerConnection: bytes (in chunks whose size the first byte
// picks) go to feed(); every request is answered or upgraded, every WebSocket message echoed.
// The output must always start as an HTTP/1.1 answer, and nothing is written after close.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "http/server_connection.hpp"

using namespace mxp::http;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t step = 1 + data[0] % 64;
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  Limits l;
  l.max_header_bytes = 1024;
  l.max_headers = 16;
  l.max_body_bytes = 4096;
  l.max_pipelined = 4;
  l.max_ws_message = 4096;
  const TimePoint t0{};
  ServerConnection c(l, t0);
  std::string out;
  while (!in.empty()) {
    const bool closed = c.should_close();
    c.feed(in.substr(0, step), t0);
    in.remove_prefix(std::min(step, in.size()));
    while (auto r = c.next_request()) {
      if (r->upgrade && ServerConnection::is_websocket_handshake(*r)) {
        const auto protos = ServerConnection::offered_subprotocols(*r);
        c.accept_websocket(*r, protos.empty() ? std::string_view{} : protos.back(), t0);
      } else if (r->path.size() % 2 == 0) {
        c.respond(Response::json(200, r->body), t0);
      } else {
        c.begin_chunked(200, {});
        c.write_chunk(r->path);
        c.end_chunked(t0);
      }
    }
    while (auto m = c.next_ws_message())
      m->binary ? c.ws_send_binary(m->data) : c.ws_send_text(m->data);
    if (closed && !c.pending_output().empty()) abort();  // nothing after the end
    out += c.pending_output();
    c.consume_output(c.pending_output().size());
  }
  c.on_timeout(t0 + std::chrono::hours(1));
  out += c.pending_output();
  if (!out.empty() && out.rfind("HTTP/1.1 ", 0) != 0) abort();
  return 0;
}
