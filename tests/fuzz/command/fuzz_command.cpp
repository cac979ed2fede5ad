// libFuzzer target for the way `mxprobe serve` takes a WebSocket command: the input is the text
// of one message, sent as a masked frame (split in fragments when the first byte says so)
// through an upgraded mxp::http::ServerConnection with the server's default limits, then
// parsed by mxp::json::parse_bounded with kCommandLimits, and answered the way serve answers
// (the "id" copied into an ack, the ack dumped and sent back). A tree deeper than the limit
// must never be built (copying or dumping one recurses: a 60,000-deep "id" crashed serve), and
// the checker and nlohmann's parser must agree on what is JSON.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/json_in.hpp"
#include "http/server_connection.hpp"

using namespace mxp::http;
using ordered = nlohmann::ordered_json;

namespace {

std::string masked_frame(uint8_t opcode, bool fin, std::string_view payload) {
  std::string f;
  f += static_cast<char>((fin ? 0x80 : 0) | opcode);
  if (payload.size() < 126) {
    f += static_cast<char>(0x80 | payload.size());
  } else if (payload.size() < 65536) {
    f += static_cast<char>(0x80 | 126);
    f += static_cast<char>(payload.size() >> 8);
    f += static_cast<char>(payload.size() & 0xff);
  } else {
    f += static_cast<char>(0x80 | 127);
    for (int i = 7; i >= 0; --i)
      f += static_cast<char>((uint64_t{payload.size()} >> (8 * i)) & 0xff);
  }
  const char key[4] = {0x21, 0x43, 0x65, 0x07};
  f.append(key, 4);
  for (size_t i = 0; i < payload.size(); ++i)
    f += static_cast<char>(payload[i] ^ key[i % 4]);
  return f;
}

size_t depth_of(const ordered& j) {  // recursion is fine here: j is within the limit
  size_t d = 0;
  if (j.is_structured())
    for (const auto& v : j)
      d = std::max(d, depth_of(v));
  return j.is_structured() ? d + 1 : 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t pieces = 1 + data[0] % 4;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  const TimePoint t0{};
  ServerConnection c(Limits{}, t0);  // serve keeps the codec's default WebSocket limits
  c.feed(
      "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
      t0);
  auto req = c.next_request();
  if (!req || !c.accept_websocket(*req, {}, t0)) abort();
  c.consume_output(c.pending_output().size());
  const size_t step = text.size() / pieces + 1;
  for (size_t at = 0, i = 0; at < text.size() || i == 0; at += step, ++i) {
    const bool last = at + step >= text.size();
    c.feed(masked_frame(i == 0 ? 0x1 : 0x0, last, text.substr(at, step)), t0);
  }
  while (auto m = c.next_ws_message()) {
    auto parsed = mxp::json::parse_bounded<ordered>(m->data, mxp::json::kCommandLimits);
    const bool ok = parsed.ok();
    ordered cmd;
    std::string err;
    if (ok)
      cmd = std::move(*parsed);
    else
      err = parsed.error();
    // Whatever the checker accepts, nlohmann's parser accepts and it is within the bounds.
    if (ok && (cmd.is_discarded() || depth_of(cmd) > mxp::json::kCommandLimits.max_depth)) abort();
    if (!ok && err.empty()) abort();  // a refusal always says why
    // Small shallow JSON that nlohmann takes is never refused by the checker.
    if (!ok && m->data.size() < 256) {
      const ordered plain = ordered::parse(m->data, nullptr, false);
      if (!plain.is_discarded() && depth_of(plain) <= 8) abort();
    }
    ordered id = ok && cmd.is_object() && cmd.contains("id") ? cmd["id"] : ordered();
    ordered ack = {{"type", "ack"}, {"id", id}, {"ok", ok}};
    if (!ok) ack["error"] = err;
    c.ws_send_text(ack.dump(-1, ' ', false, ordered::error_handler_t::replace));
  }
  return 0;
}
