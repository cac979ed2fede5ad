// Tests of mxp::http::ServerConnection's HTTP/1.1 side: parsing however the bytes are split,
// keep-alive and pipelining, every limit and error answer, chunked answers and deadlines.
#include <gtest/gtest.h>

#include <string>

#include "http/server_connection.hpp"

namespace mxp::http {
namespace {

using namespace std::chrono_literals;
const TimePoint t0{};  // a fixed origin so deadlines are exact

std::string drain(ServerConnection& c) {
  std::string out(c.pending_output());
  c.consume_output(out.size());
  return out;
}

const std::string kPost =
    "POST /api/x%20y?a=1&b=hello+world&c=%2F&empty=&flag HTTP/1.1\r\n"
    "Host: example.test\r\nX-Foo:  Bar \r\nCONTENT-Length: 5\r\n\r\nhello";

void expect_post(const Request& r) {
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.target, "/api/x%20y?a=1&b=hello+world&c=%2F&empty=&flag");
  EXPECT_EQ(r.path, "/api/x y");
  EXPECT_EQ(r.query, "a=1&b=hello+world&c=%2F&empty=&flag");
  ASSERT_EQ(r.params.size(), 5u);
  EXPECT_EQ(*r.param("a"), "1");
  EXPECT_EQ(*r.param("b"), "hello world");
  EXPECT_EQ(*r.param("c"), "/");
  EXPECT_EQ(*r.param("empty"), "");
  EXPECT_EQ(*r.param("flag"), "");
  EXPECT_EQ(r.param("nope"), nullptr);
  ASSERT_NE(r.header("x-foo"), nullptr);
  EXPECT_EQ(*r.header("X-FOO"), "Bar");
  EXPECT_EQ(*r.header("content-length"), "5");
  EXPECT_EQ(r.headers.size(), 3u);
  EXPECT_EQ(r.body, "hello");
  EXPECT_TRUE(r.keep_alive);
  EXPECT_FALSE(r.upgrade);
  EXPECT_EQ(r.version_minor, 1);
}

TEST(HttpParse, Whole) {
  ServerConnection c({}, t0);
  c.feed(kPost, t0);
  auto r = c.next_request();
  ASSERT_TRUE(r);
  expect_post(*r);
  EXPECT_FALSE(c.next_request());
}

TEST(HttpParse, ByteByByte) {
  ServerConnection c({}, t0);
  for (char ch : kPost) {
    EXPECT_FALSE(c.next_request());
    c.feed(std::string_view(&ch, 1), t0);
  }
  auto r = c.next_request();
  ASSERT_TRUE(r);
  expect_post(*r);
}

TEST(HttpParse, SplitAtEveryPairOfPoints) {
  for (size_t i = 0; i <= kPost.size(); ++i) {
    for (size_t j = i; j <= kPost.size(); ++j) {
      ServerConnection c({}, t0);
      c.feed(std::string_view(kPost).substr(0, i), t0);
      c.feed(std::string_view(kPost).substr(i, j - i), t0);
      c.feed(std::string_view(kPost).substr(j), t0);
      auto r = c.next_request();
      ASSERT_TRUE(r) << i << "," << j;
      EXPECT_EQ(r->body, "hello");
      EXPECT_EQ(r->params.size(), 5u);
      EXPECT_EQ(*r->header("x-foo"), "Bar");
    }
  }
}

TEST(HttpParse, ChunkedRequestBody) {
  ServerConnection c({}, t0);
  c.feed(
      "PUT /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
      "6\r\n world\r\n0\r\n\r\n",
      t0);
  auto r = c.next_request();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "hello world");
}

TEST(HttpParse, AbsoluteFormAndAsterisk) {
  ServerConnection c({}, t0);
  c.feed(
      "GET http://example.test/a%2Fb?x=1 HTTP/1.1\r\nHost: example.test\r\n\r\n"
      "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
      t0);
  auto r = c.next_request();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->path, "/a/b");
  EXPECT_EQ(*r->param("x"), "1");
  ASSERT_TRUE(c.respond(Response::text(200, "ok"), t0));
  r = c.next_request();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->path, "*");
}

TEST(HttpParse, PercentDecode) {
  EXPECT_EQ(percent_decode("a%41+%7e", false), "aA+~");
  EXPECT_EQ(percent_decode("a%41+%7e", true), "aA ~");
  EXPECT_FALSE(percent_decode("%4", true));
  EXPECT_FALSE(percent_decode("%", true));
  EXPECT_FALSE(percent_decode("%zz", true));
}

TEST(HttpKeepAlive, SequentialRequestsAndResponses) {
  ServerConnection c({}, t0);
  EXPECT_FALSE(c.respond(Response{}, t0));  // nothing owed
  for (int i = 0; i < 3; ++i) {
    c.feed("GET /n HTTP/1.1\r\nHost: h\r\n\r\n", t0);
    auto r = c.next_request();
    ASSERT_TRUE(r);
    ASSERT_TRUE(c.respond(Response::json(200, "{\"i\":" + std::to_string(i) + "}"), t0));
    EXPECT_EQ(drain(c),
              "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7"
              "\r\n\r\n{\"i\":" +
                  std::to_string(i) + "}");
    EXPECT_EQ(c.state(), ServerConnection::State::http);
  }
}

TEST(HttpKeepAlive, PipelinedAnswersInOrderAndHeadHasNoBody) {
  ServerConnection c({}, t0);
  c.feed(
      "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nHEAD /2 HTTP/1.1\r\nHost: h\r\n\r\n"
      "GET /3 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET /ignored HTTP/1.1\r\n\r\n",
      t0);
  std::vector<std::string> paths;
  while (auto r = c.next_request())
    paths.push_back(r->path);
  ASSERT_EQ(paths, (std::vector<std::string>{"/1", "/2", "/3"}));
  for (const auto& p : paths)
    ASSERT_TRUE(c.respond(Response::text(200, p), t0));
  EXPECT_FALSE(c.respond(Response{}, t0));
  const std::string out = drain(c);
  EXPECT_EQ(out,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 2\r\n"
            "\r\n/1"
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 2\r\n"
            "\r\n"
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 2\r\n"
            "Connection: close\r\n\r\n/3");
  EXPECT_TRUE(c.should_close());
}

TEST(HttpKeepAlive, PipelineDepthLimitHoldsLaterRequests) {
  Limits l;
  l.max_pipelined = 2;
  ServerConnection c(l, t0);
  std::string three;
  for (int i = 0; i < 3; ++i)
    three += "GET /" + std::to_string(i) + " HTTP/1.1\r\nHost: h\r\n\r\n";
  c.feed(three, t0);
  EXPECT_FALSE(c.wants_read());
  ASSERT_TRUE(c.next_request());
  ASSERT_TRUE(c.next_request());
  EXPECT_FALSE(c.next_request());
  ASSERT_TRUE(c.respond(Response{}, t0));
  auto r = c.next_request();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->path, "/2");
}

TEST(HttpKeepAlive, Http10ClosesUnlessKeepAlive) {
  ServerConnection a({}, t0);
  a.feed("GET / HTTP/1.0\r\n\r\n", t0);
  ASSERT_TRUE(a.next_request());
  a.respond(Response{}, t0);
  EXPECT_NE(drain(a).find("Connection: close\r\n"), std::string::npos);
  EXPECT_TRUE(a.should_close());

  ServerConnection b({}, t0);
  b.feed("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", t0);
  ASSERT_TRUE(b.next_request());
  b.respond(Response{}, t0);
  EXPECT_EQ(drain(b).find("Connection: close"), std::string::npos);
  EXPECT_EQ(b.state(), ServerConnection::State::http);
}

TEST(HttpKeepAlive, ApplicationMayCloseAndCannotInjectFraming) {
  ServerConnection c({}, t0);
  c.feed("GET / HTTP/1.1\r\nHost: h\r\n\r\n", t0);
  ASSERT_TRUE(c.next_request());
  Response r{
      200, {{"Connection", "close"}, {"Content-Length", "99"}, {"X-Evil", "a\r\nSet: b"}}, "x"};
  c.respond(r, t0);
  EXPECT_EQ(drain(c), "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx");
  EXPECT_TRUE(c.should_close());
}

TEST(HttpKeepAlive, ChunkedResponse) {
  ServerConnection c({}, t0);
  c.feed("GET /big HTTP/1.1\r\nHost: h\r\n\r\n", t0);
  ASSERT_TRUE(c.next_request());
  ASSERT_TRUE(c.begin_chunked(200, {{"Content-Type", "text/csv"}}));
  EXPECT_FALSE(c.respond(Response{}, t0));  // the chunked answer is in progress
  ASSERT_TRUE(c.write_chunk("hello"));
  ASSERT_TRUE(c.write_chunk(""));
  ASSERT_TRUE(c.write_chunk(std::string(26, 'z')));
  ASSERT_TRUE(c.end_chunked(t0));
  EXPECT_FALSE(c.write_chunk("late"));
  EXPECT_EQ(drain(c),
            "HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nTransfer-Encoding: chunked\r\n"
            "\r\n5\r\nhello\r\n1a\r\n" +
                std::string(26, 'z') + "\r\n0\r\n\r\n");
  EXPECT_EQ(c.state(), ServerConnection::State::http);
}

TEST(HttpKeepAlive, ChunkedResponseToHttp10IsCloseDelimited) {
  ServerConnection c({}, t0);
  c.feed("GET /big HTTP/1.0\r\n\r\n", t0);
  ASSERT_TRUE(c.next_request());
  ASSERT_TRUE(c.begin_chunked(200, {}));
  c.write_chunk("abc");
  c.end_chunked(t0);
  EXPECT_EQ(drain(c), "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nabc");
  EXPECT_TRUE(c.should_close());
}

TEST(HttpKeepAlive, ExpectContinue) {
  ServerConnection c({}, t0);
  c.feed("POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n", t0);
  EXPECT_EQ(drain(c), "HTTP/1.1 100 Continue\r\n\r\n");
  c.feed("hi", t0);
  auto r = c.next_request();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "hi");
}

struct ErrorCase {
  const char* name;
  std::string input;
  int status;
};

Limits small_limits() {
  Limits l;
  l.max_header_bytes = 512;
  l.max_headers = 8;
  l.max_url_bytes = 64;
  l.max_body_bytes = 16;
  return l;
}

class HttpErrors : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(HttpErrors, AnswersAndCloses) {
  const auto& tc = GetParam();
  // Fed whole and byte by byte: the same answer.
  for (int mode = 0; mode < 2; ++mode) {
    ServerConnection c(small_limits(), t0);
    if (mode == 0) {
      c.feed(tc.input, t0);
    } else {
      for (char ch : tc.input)
        c.feed(std::string_view(&ch, 1), t0);
    }
    EXPECT_FALSE(c.next_request());
    EXPECT_EQ(c.error_status(), tc.status) << tc.name << " mode " << mode;
    const std::string out = drain(c);
    EXPECT_EQ(out.rfind("HTTP/1.1 " + std::to_string(tc.status) + " ", 0), 0u) << out;
    EXPECT_NE(out.find("Connection: close\r\n"), std::string::npos);
    EXPECT_TRUE(c.should_close());
    c.feed("GET / HTTP/1.1\r\nHost: h\r\n\r\n", t0);  // nothing more is read
    EXPECT_FALSE(c.next_request());
    EXPECT_TRUE(c.pending_output().empty());
  }
}

std::string many_headers(int n) {
  std::string s = "GET / HTTP/1.1\r\nHost: h\r\n";
  for (int i = 0; i < n; ++i)
    s += "X-" + std::to_string(i) + ": v\r\n";
  return s + "\r\n";
}

INSTANTIATE_TEST_SUITE_P(
    All, HttpErrors,
    ::testing::Values(
        ErrorCase{"garbage", "\x01\x02 nonsense\r\n\r\n", 400},
        ErrorCase{"bad_request_line", "GET / HTTP/1.1 extra\r\nHost: h\r\n\r\n", 400},
        ErrorCase{"lowercase_method", "get / HTTP/1.1\r\nHost: h\r\n\r\n", 400},
        ErrorCase{"http09", "GET /\r\n\r\n", 505},
        ErrorCase{"no_host", "GET / HTTP/1.1\r\n\r\n", 400},
        ErrorCase{"two_hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
        ErrorCase{"bad_escape", "GET /a%zz HTTP/1.1\r\nHost: h\r\n\r\n", 400},
        ErrorCase{"bad_query_escape", "GET /?a=%4 HTTP/1.1\r\nHost: h\r\n\r\n", 400},
        ErrorCase{"cl_and_te",
                  "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                  400},
        ErrorCase{"header_bytes",
                  "GET / HTTP/1.1\r\nHost: h\r\nX: " + std::string(600, 'a') + "\r\n\r\n", 431},
        ErrorCase{"header_count", many_headers(8), 431},
        ErrorCase{"url_length", "GET /" + std::string(100, 'a') + " HTTP/1.1\r\nHost: h\r\n\r\n",
                  414},
        ErrorCase{"body_cl", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 17\r\n\r\n", 413},
        ErrorCase{"body_chunked",
                  "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "a\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n",
                  413},
        ErrorCase{"unknown_method", "BREW /pot HTTP/1.1\r\nHost: h\r\n\r\n", 501},
        ErrorCase{"unsupported_method", "PROPFIND / HTTP/1.1\r\nHost: h\r\n\r\n", 501},
        ErrorCase{"version", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(HttpErrorsOrder, ErrorWaitsForEarlierAnswers) {
  ServerConnection c({}, t0);
  c.feed("GET /ok HTTP/1.1\r\nHost: h\r\n\r\n\x7f\x7f\r\n\r\n", t0);
  EXPECT_TRUE(c.pending_output().empty());  // the 400 must not overtake the owed answer
  auto r = c.next_request();
  ASSERT_TRUE(r);
  ASSERT_TRUE(c.respond(Response::text(200, "ok"), t0));
  const std::string out = drain(c);
  const size_t ok = out.find("HTTP/1.1 200 OK");
  const size_t bad = out.find("HTTP/1.1 400 Bad Request");
  EXPECT_EQ(ok, 0u);
  ASSERT_NE(bad, std::string::npos);
  EXPECT_GT(bad, ok);
  EXPECT_TRUE(c.should_close());
}

TEST(HttpDeadlines, HeaderTimeoutFromFirstByteGives408) {
  Limits l;
  l.header_timeout = 5s;
  l.idle_timeout = 30s;
  ServerConnection c(l, t0);
  EXPECT_EQ(c.next_deadline(), t0 + 5s);  // before the first byte: the header deadline too
  c.feed("GET / HT", t0 + 1s);
  EXPECT_EQ(c.next_deadline(), t0 + 6s);
  c.feed("TP/1.1\r\n", t0 + 3s);  // trickling bytes do not move the deadline (slowloris)
  EXPECT_EQ(c.next_deadline(), t0 + 6s);
  c.on_timeout(t0 + 5s);  // early wake-up: nothing happens
  EXPECT_EQ(c.state(), ServerConnection::State::http);
  c.on_timeout(t0 + 6s);
  EXPECT_EQ(c.error_status(), 408);
  EXPECT_EQ(drain(c).rfind("HTTP/1.1 408 Request Timeout\r\n", 0), 0u);
  EXPECT_TRUE(c.should_close());
  EXPECT_FALSE(c.next_deadline());
}

TEST(HttpDeadlines, IdleBetweenRequestsClosesSilently) {
  Limits l;
  l.header_timeout = 5s;
  l.idle_timeout = 30s;
  ServerConnection c(l, t0);
  c.feed("GET / HTTP/1.1\r\nHost: h\r\n\r\n", t0 + 1s);
  ASSERT_TRUE(c.next_request());
  EXPECT_FALSE(c.next_deadline());  // the application owes the answer
  c.respond(Response{}, t0 + 2s);
  drain(c);
  EXPECT_EQ(c.next_deadline(), t0 + 32s);
  c.on_timeout(t0 + 31s);
  EXPECT_EQ(c.state(), ServerConnection::State::http);
  c.on_timeout(t0 + 32s);
  EXPECT_TRUE(c.should_close());
  EXPECT_EQ(c.error_status(), 0);
  EXPECT_TRUE(c.pending_output().empty());
}

TEST(HttpDeadlines, EofAfterRequestClosesOnceAnswered) {
  ServerConnection c({}, t0);
  c.feed("GET / HTTP/1.1\r\nHost: h\r\n\r\n", t0);
  c.feed_eof();
  ASSERT_TRUE(c.next_request());
  EXPECT_FALSE(c.should_close());
  c.respond(Response{}, t0);
  EXPECT_FALSE(drain(c).empty());
  EXPECT_TRUE(c.should_close());
}

}  // namespace
}  // namespace mxp::http
