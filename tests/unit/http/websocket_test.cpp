// Tests of the RFC 6455 side of mxp::http::ServerConnection: the handshake, and frames built
// here the way a browser would (masked) so wslay's answers are checked byte for byte.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "http/server_connection.hpp"

namespace mxp::http {
namespace {

const TimePoint t0{};

std::string drain(ServerConnection& c) {
  std::string out(c.pending_output());
  c.consume_output(out.size());
  return out;
}

// A client frame (RFC 6455 §5.2); client frames must be masked (§5.3).
std::string frame(uint8_t opcode, std::string_view payload, bool fin = true, bool masked = true) {
  std::string f;
  f += static_cast<char>((fin ? 0x80 : 0) | opcode);
  const uint8_t m = masked ? 0x80 : 0;
  if (payload.size() < 126) {
    f += static_cast<char>(m | payload.size());
  } else if (payload.size() < 65536) {
    f += static_cast<char>(m | 126);
    f += static_cast<char>(payload.size() >> 8);
    f += static_cast<char>(payload.size() & 0xff);
  } else {
    f += static_cast<char>(m | 127);
    for (int i = 7; i >= 0; --i)
      f += static_cast<char>((uint64_t{payload.size()} >> (8 * i)) & 0xff);
  }
  const char key[4] = {0x37, static_cast<char>(0xfa), 0x21, 0x3d};
  if (masked) f.append(key, 4);
  for (size_t i = 0; i < payload.size(); ++i)
    f += masked ? static_cast<char>(payload[i] ^ key[i % 4]) : payload[i];
  return f;
}

struct Frame {
  bool fin;
  uint8_t opcode;
  std::string payload;
};

// Parses server frames, which must be unmasked (RFC 6455 §5.1).
std::vector<Frame> parse_frames(std::string_view s) {
  std::vector<Frame> out;
  while (s.size() >= 2) {
    const auto b0 = static_cast<uint8_t>(s[0]), b1 = static_cast<uint8_t>(s[1]);
    EXPECT_EQ(b1 & 0x80, 0) << "server frames are never masked";
    uint64_t len = b1 & 0x7f;
    size_t at = 2;
    if (len == 126) {
      len = (uint64_t{static_cast<uint8_t>(s[2])} << 8) | static_cast<uint8_t>(s[3]);
      at = 4;
    } else if (len == 127) {
      len = 0;
      for (int i = 0; i < 8; ++i)
        len = (len << 8) | static_cast<uint8_t>(s[2 + i]);
      at = 10;
    }
    if (s.size() < at + len) break;
    out.push_back(
        Frame{(b0 & 0x80) != 0, static_cast<uint8_t>(b0 & 0x0f), std::string(s.substr(at, len))});
    s.remove_prefix(at + len);
  }
  EXPECT_TRUE(s.empty()) << "trailing partial frame";
  return out;
}

uint16_t close_code(const Frame& f) {
  return f.payload.size() >= 2 ? static_cast<uint16_t>((static_cast<uint8_t>(f.payload[0]) << 8) |
                                                       static_cast<uint8_t>(f.payload[1]))
                               : 0;
}

const std::string kHandshake =
    "GET /ws HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
    "Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Protocol: chat, mxp.token.abc123\r\nSec-WebSocket-Version: 13\r\n\r\n";

// An upgraded connection with the handshake answer drained.
void upgrade(ServerConnection& c, std::string_view extra = {}) {
  c.feed(kHandshake + std::string(extra), t0);
  auto r = c.next_request();
  ASSERT_TRUE(r);
  ASSERT_TRUE(r->upgrade);
  ASSERT_TRUE(ServerConnection::is_websocket_handshake(*r));
  ASSERT_TRUE(c.accept_websocket(*r, {}, t0));
  ASSERT_EQ(c.state(), ServerConnection::State::websocket);
  drain(c);
}

TEST(WebSocket, AcceptValueFromRfc6455Section1_3) {
  EXPECT_EQ(websocket_accept("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(WebSocket, HandshakeAnswerWithSubprotocol) {
  ServerConnection c({}, t0);
  c.feed(kHandshake, t0);
  auto r = c.next_request();
  ASSERT_TRUE(r);
  EXPECT_EQ(ServerConnection::offered_subprotocols(*r),
            (std::vector<std::string>{"chat", "mxp.token.abc123"}));
  ASSERT_TRUE(c.accept_websocket(*r, "mxp.token.abc123", t0));
  EXPECT_EQ(drain(c),
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
            "Sec-WebSocket-Protocol: mxp.token.abc123\r\n\r\n");
  EXPECT_FALSE(c.next_deadline());
}

struct BadHandshake {
  const char* name;
  std::string from, to;  // replace `from` in kHandshake by `to`
  int status;
  std::string_view subprotocol = {};
};

class WebSocketBadHandshake : public ::testing::TestWithParam<BadHandshake> {};

TEST_P(WebSocketBadHandshake, Rejected) {
  const auto& tc = GetParam();
  std::string h = kHandshake;
  if (!tc.from.empty()) h.replace(h.find(tc.from), tc.from.size(), tc.to);
  ServerConnection c({}, t0);
  c.feed(h, t0);
  auto r = c.next_request();
  ASSERT_TRUE(r);
  EXPECT_FALSE(c.accept_websocket(*r, tc.subprotocol, t0));
  EXPECT_EQ(c.error_status(), tc.status);
  const std::string out = drain(c);
  EXPECT_EQ(out.rfind("HTTP/1.1 " + std::to_string(tc.status) + " ", 0), 0u) << out;
  if (tc.status == 426) {
    EXPECT_NE(out.find("Sec-WebSocket-Version: 13\r\n"), std::string::npos);
  }
  EXPECT_TRUE(c.should_close());
}

INSTANTIATE_TEST_SUITE_P(
    All, WebSocketBadHandshake,
    ::testing::Values(BadHandshake{"post", "GET /ws", "POST /ws", 400},
                      BadHandshake{"upgrade_other", "Upgrade: websocket", "Upgrade: h2c", 400},
                      BadHandshake{"short_key",
                                   "dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZQ==", 400},
                      BadHandshake{"version", "Version: 13", "Version: 8", 426},
                      BadHandshake{"subprotocol_not_offered", "", "", 400, "other"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(WebSocket, NotAnUpgradeRequest) {
  ServerConnection c({}, t0);
  c.feed("GET / HTTP/1.1\r\nHost: h\r\n\r\n", t0);
  auto r = c.next_request();
  ASSERT_TRUE(r);
  EXPECT_FALSE(ServerConnection::is_websocket_handshake(*r));
  EXPECT_FALSE(c.accept_websocket(*r, {}, t0));
  EXPECT_TRUE(c.pending_output().empty());  // nothing owed as an upgrade: no answer written
  EXPECT_TRUE(c.respond(Response{}, t0));
}

TEST(WebSocket, MaskedTextRoundTrip) {
  ServerConnection c({}, t0);
  upgrade(c);
  const std::string f = frame(0x1, "Hello");
  for (char ch : f)
    c.feed(std::string_view(&ch, 1), t0);  // byte by byte
  auto m = c.next_ws_message();
  ASSERT_TRUE(m);
  EXPECT_FALSE(m->binary);
  EXPECT_EQ(m->data, "Hello");
  EXPECT_FALSE(c.next_ws_message());
  ASSERT_TRUE(c.ws_send_text("Hi there"));
  const std::string big(70000, 'b');
  ASSERT_TRUE(c.ws_send_binary(big));
  auto frames = parse_frames(drain(c));
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_TRUE(frames[0].fin);
  EXPECT_EQ(frames[0].opcode, 0x1);
  EXPECT_EQ(frames[0].payload, "Hi there");
  EXPECT_EQ(frames[1].opcode, 0x2);
  EXPECT_EQ(frames[1].payload, big);
}

TEST(WebSocket, FramesRightBehindTheHandshake) {
  ServerConnection c({}, t0);
  upgrade(c, frame(0x2, std::string("\0\1\2", 3)));
  auto m = c.next_ws_message();
  ASSERT_TRUE(m);
  EXPECT_TRUE(m->binary);
  EXPECT_EQ(m->data, std::string("\0\1\2", 3));
}

TEST(WebSocket, FramesArrivingBeforeAcceptAreKept) {
  ServerConnection c({}, t0);
  c.feed(kHandshake, t0);
  c.feed(frame(0x1, "early"), t0);
  auto r = c.next_request();
  ASSERT_TRUE(r);
  ASSERT_TRUE(c.accept_websocket(*r, {}, t0));
  auto m = c.next_ws_message();
  ASSERT_TRUE(m);
  EXPECT_EQ(m->data, "early");
}

TEST(WebSocket, FragmentedMessageWithPingInBetween) {
  ServerConnection c({}, t0);
  upgrade(c);
  c.feed(frame(0x1, "frag", false), t0);
  c.feed(frame(0x9, "p1"), t0);  // control frames may come between fragments (§5.4)
  c.feed(frame(0x0, "men", false) + frame(0x0, "ted"), t0);
  auto m = c.next_ws_message();
  ASSERT_TRUE(m);
  EXPECT_EQ(m->data, "fragmented");
  auto frames = parse_frames(drain(c));
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].opcode, 0xA);
  EXPECT_EQ(frames[0].payload, "p1");
}

TEST(WebSocket, PingAnsweredByPong) {
  ServerConnection c({}, t0);
  upgrade(c);
  c.feed(frame(0x9, "are you there"), t0);
  auto frames = parse_frames(drain(c));
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].opcode, 0xA);
  EXPECT_EQ(frames[0].payload, "are you there");
  EXPECT_EQ(c.state(), ServerConnection::State::websocket);
  ASSERT_TRUE(c.ws_ping("x"));
  frames = parse_frames(drain(c));
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].opcode, 0x9);
}

TEST(WebSocket, OversizedMessageClosesWith1009) {
  Limits l;
  l.max_ws_message = 100;
  ServerConnection c(l, t0);
  upgrade(c);
  c.feed(frame(0x1, std::string(100, 'a')), t0);  // exactly the limit is fine
  ASSERT_TRUE(c.next_ws_message());
  c.feed(frame(0x1, std::string(60, 'a'), false) + frame(0x0, std::string(60, 'a')), t0);
  EXPECT_FALSE(c.next_ws_message());
  auto frames = parse_frames(drain(c));
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].opcode, 0x8);
  EXPECT_EQ(close_code(frames[0]), 1009);
  EXPECT_EQ(c.ws_close_code_sent(), 1009);
  EXPECT_TRUE(c.should_close());
}

TEST(WebSocket, UnmaskedClientFrameClosesWith1002) {
  ServerConnection c({}, t0);
  upgrade(c);
  c.feed(frame(0x1, "naked", true, false), t0);
  EXPECT_FALSE(c.next_ws_message());
  auto frames = parse_frames(drain(c));
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].opcode, 0x8);
  EXPECT_EQ(close_code(frames[0]), 1002);
  EXPECT_TRUE(c.should_close());
}

TEST(WebSocket, InvalidUtf8TextClosesWith1007) {
  ServerConnection c({}, t0);
  upgrade(c);
  c.feed(frame(0x1, "\xff\xfe"), t0);
  EXPECT_FALSE(c.next_ws_message());
  auto frames = parse_frames(drain(c));
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(close_code(frames[0]), 1007);
}

TEST(WebSocket, ClientInitiatedCloseIsEchoed) {
  ServerConnection c({}, t0);
  upgrade(c);
  c.feed(frame(0x8, std::string("\x03\xe8"
                                "bye",
                                5)),
         t0);
  EXPECT_EQ(c.ws_close_code_received(), 1000);
  auto frames = parse_frames(drain(c));
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].opcode, 0x8);
  EXPECT_EQ(close_code(frames[0]), 1000);
  EXPECT_TRUE(c.should_close());
  EXPECT_FALSE(c.ws_send_text("late"));
}

// RFC 6455 §5.5.1: a close payload is empty or a 2-byte code and a reason; 1 byte is neither.
TEST(WebSocket, OneByteClosePayloadGets1002) {
  ServerConnection c({}, t0);
  upgrade(c);
  c.feed(frame(0x8, std::string("\x03", 1)), t0);
  auto frames = parse_frames(drain(c));
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].opcode, 0x8);
  EXPECT_EQ(close_code(frames[0]), 1002);
  EXPECT_EQ(c.ws_close_code_sent(), 1002);
  EXPECT_TRUE(c.should_close());
}

TEST(WebSocket, ServerInitiatedCloseWaitsForPeer) {
  ServerConnection c({}, t0);
  upgrade(c);
  ASSERT_TRUE(c.ws_close(1001, "going away"));
  auto frames = parse_frames(drain(c));
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(close_code(frames[0]), 1001);
  EXPECT_EQ(frames[0].payload.substr(2), "going away");
  EXPECT_EQ(c.state(), ServerConnection::State::websocket);  // RFC 6455 §7.1.1: await the echo
  c.feed(frame(0x1, "still"), t0);  // data after our close is discarded (§5.5.1)
  c.feed(frame(0x8, "\x03\xe9"), t0);
  EXPECT_EQ(c.ws_close_code_received(), 1001);
  EXPECT_TRUE(c.pending_output().empty());
  EXPECT_TRUE(c.should_close());
}

}  // namespace
}  // namespace mxp::http
