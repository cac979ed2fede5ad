// Streamed request bodies in mxp::http::ServerConnection: handed out at the end of the header,
// the body in pieces however the bytes are split (length or chunked), pipelined requests held
// until the owner took the end, and every way a body can fail (size, slow client, EOF, an early
// answer that closes).
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "http/server_connection.hpp"

namespace mxp::http {
namespace {

using namespace std::chrono_literals;
using Body = ServerConnection::Body;
const TimePoint t0{};

std::string drain(ServerConnection& c) {
  std::string out(c.pending_output());
  c.consume_output(out.size());
  return out;
}

std::unique_ptr<ServerConnection> streaming(Limits l = {}) {
  auto c = std::make_unique<ServerConnection>(l, t0);
  c->stream_bodies([](const Request& r) { return r.method == "POST" && r.path == "/up"; });
  return c;
}

const std::string kHead = "POST /up?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n";

TEST(StreamBody, HandedOutAtTheHeaderThenInPiecesAtAnySplit) {
  const std::string all = kHead + "0123456789" + "GET /next HTTP/1.1\r\nHost: h\r\n\r\n";
  for (size_t i = 0; i <= all.size(); ++i) {
    auto cp = streaming();
    ServerConnection& c = *cp;
    std::string body;
    std::optional<Request> up;
    auto step = [&] {
      if (!up) {
        up = c.next_request();
        if (up) {
          EXPECT_TRUE(up->streamed);
          EXPECT_EQ(up->path, "/up");
          EXPECT_EQ(*up->param("x"), "1");
          EXPECT_TRUE(up->body.empty());
        }
      }
      if (up && c.body_state() != Body::none) body += c.take_body();
    };
    c.feed(std::string_view(all).substr(0, i), t0);
    step();
    c.feed(std::string_view(all).substr(i), t0);
    step();
    ASSERT_TRUE(up) << i;
    EXPECT_EQ(body, "0123456789") << i;
    ASSERT_EQ(c.body_state(), Body::ended) << i;
    // The next request waits until the owner has taken the end.
    EXPECT_FALSE(c.next_request()) << i;
    c.body_taken(t0);
    EXPECT_EQ(c.body_state(), Body::none);
    EXPECT_TRUE(c.respond(Response::text(201, "ok"), t0));
    auto next = c.next_request();
    ASSERT_TRUE(next) << i;
    EXPECT_EQ(next->path, "/next");
    EXPECT_FALSE(next->streamed);
    EXPECT_TRUE(c.respond(Response::text(200, "n"), t0));
    const std::string out = drain(c);
    EXPECT_EQ(out.find("HTTP/1.1 201"), 0u) << out;
    EXPECT_NE(out.find("HTTP/1.1 200"), std::string::npos);
    EXPECT_EQ(out.find("Connection: close"), std::string::npos);
  }
}

TEST(StreamBody, ChunkedBodyBeyondTheInMemoryLimit) {
  Limits l;
  l.max_body_bytes = 16;  // a body held in memory could not be this long
  auto cp = streaming(l);
  ServerConnection& c = *cp;
  c.feed("POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n", t0);
  ASSERT_TRUE(c.next_request());
  std::string body;
  for (int i = 0; i < 100; ++i) {
    c.feed("a\r\n0123456789\r\n", t0);
    ASSERT_EQ(c.body_state(), Body::arriving);
    body += c.take_body();
  }
  c.feed("0\r\n\r\n", t0);
  body += c.take_body();
  EXPECT_EQ(c.body_state(), Body::ended);
  EXPECT_EQ(body.size(), 1000u);
  EXPECT_EQ(c.error_status(), 0);
  // Other paths keep the in-memory limit.
  auto dp = streaming(l);
  ServerConnection& d = *dp;
  d.feed("POST /other HTTP/1.1\r\nHost: h\r\nContent-Length: 17\r\n\r\n", t0);
  EXPECT_EQ(d.error_status(), 413);
}

TEST(StreamBody, StreamLimitByLengthOrAsItGrows) {
  Limits l;
  l.max_stream_body_bytes = 100;
  {
    auto cp = streaming(l);
    ServerConnection& c = *cp;
    c.feed("POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 101\r\n\r\n", t0);
    EXPECT_FALSE(c.next_request()) << "refused before it is handed out";
    EXPECT_EQ(c.error_status(), 413);
    EXPECT_NE(drain(c).find("413"), std::string::npos);
  }
  {
    auto cp = streaming(l);
    ServerConnection& c = *cp;
    c.feed("POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n", t0);
    ASSERT_TRUE(c.next_request());
    c.feed("3c\r\n" + std::string(60, 'x') + "\r\n", t0);
    EXPECT_EQ(c.take_body().size(), 60u);
    c.feed("3c\r\n" + std::string(60, 'x') + "\r\n", t0);
    EXPECT_EQ(c.body_state(), Body::failed);
    EXPECT_TRUE(c.take_body().empty());
    EXPECT_EQ(c.error_status(), 413) << "the codec answers, the owner does not";
    EXPECT_FALSE(c.respond(Response::text(201, "late"), t0)) << "nothing is owed any more";
    EXPECT_NE(drain(c).find("HTTP/1.1 413"), std::string::npos);
    EXPECT_TRUE(c.should_close());
  }
}

TEST(StreamBody, EachPieceRestartsTheClockAndSilenceFails) {
  Limits l;
  l.header_timeout = 10s;
  l.min_body_rate = 1;  // 10 bytes per 8 s keeps up with it
  auto cp = streaming(l);
  ServerConnection& c = *cp;
  c.feed("POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n", t0);
  ASSERT_TRUE(c.next_request());
  // A slow but steady upload lives past the header timeout...
  for (int i = 1; i <= 5; ++i) {
    c.feed("0123456789", t0 + i * 8s);
    ASSERT_EQ(c.next_deadline(), t0 + i * 8s + 10s);
    c.on_timeout(t0 + i * 8s + 9s);
    ASSERT_EQ(c.body_state(), Body::arriving) << i;
    (void)c.take_body();
  }
  // ...a stalled one does not.
  c.on_timeout(t0 + 40s + 10s);
  EXPECT_EQ(c.body_state(), Body::failed);
  EXPECT_EQ(c.error_status(), 408);
}

// A byte every 9 s never leaves a gap of header_timeout, yet it would hold the connection (and a
// slot) for ever: past the grace, the body must average min_body_rate.
TEST(StreamBody, TrickleBelowTheMinimumRateTimesOut) {
  Limits l;
  l.header_timeout = 10s;
  l.min_body_rate = 100;  // bytes per second
  auto cp = streaming(l);
  ServerConnection& c = *cp;
  c.feed("POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 100000\r\n\r\n", t0);
  ASSERT_TRUE(c.next_request());
  TimePoint now = t0;
  int pieces = 0;
  while (c.body_state() == Body::arriving && pieces < 100) {
    now += 9s;
    const auto deadline = c.next_deadline();
    ASSERT_TRUE(deadline);
    if (*deadline <= now) {
      c.on_timeout(*deadline);
      break;
    }
    c.feed("x", now);
    ++pieces;
    (void)c.take_body();
  }
  EXPECT_EQ(c.body_state(), Body::failed);
  EXPECT_EQ(c.error_status(), 408);
  EXPECT_LE(pieces, 2);  // 10 s of grace, then it is behind by far
  // One that keeps the rate (100 bytes a second, sent every 5 s) lives on.
  auto dp = streaming(l);
  ServerConnection& d = *dp;
  d.feed("POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 100000\r\n\r\n", t0);
  ASSERT_TRUE(d.next_request());
  for (int i = 1; i <= 100; ++i) {
    d.feed(std::string(500, 'y'), t0 + i * 5s);
    d.on_timeout(t0 + i * 5s + 4s);
    ASSERT_EQ(d.body_state(), Body::arriving) << i;
    (void)d.take_body();
  }
}

// The first byte of a connection is due within header_timeout, not the (longer) idle timeout.
TEST(StreamBody, SilentNewConnectionGetsTheHeaderDeadline) {
  Limits l;
  l.header_timeout = 2s;
  l.idle_timeout = 60s;
  ServerConnection c(l, t0);
  ASSERT_TRUE(c.next_deadline());
  EXPECT_EQ(*c.next_deadline(), t0 + 2s);
  c.on_timeout(t0 + 2s);
  EXPECT_TRUE(c.should_close());
}

TEST(StreamBody, EofInTheMiddleFails) {
  auto cp = streaming();
  ServerConnection& c = *cp;
  c.feed(kHead + "01234", t0);
  ASSERT_TRUE(c.next_request());
  EXPECT_EQ(c.take_body(), "01234");
  c.feed_eof();
  EXPECT_EQ(c.body_state(), Body::failed);
  EXPECT_TRUE(c.should_close());
}

TEST(StreamBody, AnEarlyAnswerClosesTheConnection) {
  auto cp = streaming();
  ServerConnection& c = *cp;
  c.feed(kHead + "012", t0);
  ASSERT_TRUE(c.next_request());
  EXPECT_TRUE(c.respond(Response::json(400, "{}"), t0));
  const std::string out = drain(c);
  EXPECT_EQ(out.find("HTTP/1.1 400"), 0u);
  EXPECT_NE(out.find("Connection: close"), std::string::npos);
  EXPECT_TRUE(c.should_close());
}

TEST(StreamBody, WaitsBehindAnEarlierPipelinedRequest) {
  auto cp = streaming();
  ServerConnection& c = *cp;
  c.feed("GET /a HTTP/1.1\r\nHost: h\r\n\r\n" + kHead + "0123456789", t0);
  auto a = c.next_request();
  ASSERT_TRUE(a);
  EXPECT_EQ(a->path, "/a");
  EXPECT_EQ(c.body_state(), Body::none) << "its request is not handed out yet";
  auto up = c.next_request();
  ASSERT_TRUE(up);
  EXPECT_TRUE(up->streamed);
  EXPECT_EQ(c.take_body(), "0123456789");
  EXPECT_EQ(c.body_state(), Body::ended);
  c.body_taken(t0);
  EXPECT_TRUE(c.respond(Response::text(200, "a"), t0));
  EXPECT_TRUE(c.respond(Response::text(201, "up"), t0));
  const std::string out = drain(c);
  EXPECT_LT(out.find("HTTP/1.1 200"), out.find("HTTP/1.1 201"));
  EXPECT_FALSE(c.should_close());
}

}  // namespace
}  // namespace mxp::http
