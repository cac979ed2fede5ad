// Tests of the sans-I/O HTTP/1.1 client exchange (http/client.hpp): URLs, the request's bytes,
// responses fed whole, byte by byte, delimited by the close, malformed or too long.
#include <gtest/gtest.h>

#include <string>

#include "http/client.hpp"

namespace mxp::http {
namespace {

ClientUrl url_of(std::string_view text) {
  std::string err;
  auto u = parse_client_url(text, err);
  EXPECT_TRUE(u) << text << ": " << err;
  return u.value_or(ClientUrl{});
}

std::string refused(std::string_view text) {
  std::string err;
  EXPECT_FALSE(parse_client_url(text, err)) << text;
  return err;
}

TEST(ClientUrl, SplitsHostPortAndTarget) {
  auto u = url_of("http://127.40.0.1:8080/hooks/mx?a=1");
  EXPECT_EQ(u.host, "127.40.0.1");
  EXPECT_EQ(u.port, 8080);
  EXPECT_EQ(u.target, "/hooks/mx?a=1");
  EXPECT_EQ(u.authority(), "127.40.0.1:8080");
  u = url_of("HTTP://Example.COM");
  EXPECT_EQ(u.host, "example.com");
  EXPECT_EQ(u.port, 80);
  EXPECT_EQ(u.target, "/");
  EXPECT_EQ(u.authority(), "example.com");
  u = url_of("http://[::1]:9000?x");
  EXPECT_EQ(u.host, "::1");
  EXPECT_EQ(u.target, "/?x");
  EXPECT_EQ(u.authority(), "[::1]:9000");
  EXPECT_FALSE(u.tls);
}

TEST(ClientUrl, HttpsDefaultsToPort443) {
  auto u = url_of("https://hooks.example.com/in");
  EXPECT_TRUE(u.tls);
  EXPECT_EQ(u.host, "hooks.example.com");
  EXPECT_EQ(u.port, 443);
  EXPECT_EQ(u.target, "/in");
  EXPECT_EQ(u.authority(), "hooks.example.com");  // the default port is not named
  u = url_of("HTTPS://Hooks.Example.com:8443/x");
  EXPECT_TRUE(u.tls);
  EXPECT_EQ(u.host, "hooks.example.com");
  EXPECT_EQ(u.port, 8443);
  EXPECT_EQ(u.target, "/x");
  EXPECT_EQ(u.authority(), "hooks.example.com:8443");
  u = url_of("https://[::1]?q");
  EXPECT_EQ(u.port, 443);
  EXPECT_EQ(u.target, "/?q");
  EXPECT_EQ(u.authority(), "[::1]");
  // Port 80 is not the default of https://: named in the Host header, and the reverse.
  EXPECT_EQ(url_of("https://h:80/").authority(), "h:80");
  EXPECT_EQ(url_of("http://h:443/").authority(), "h:443");
  EXPECT_FALSE(url_of("http://h:443/").tls);
}

TEST(ClientUrl, RefusesWhatItCannotUse) {
  EXPECT_NE(refused("ftp://example.com/").find("an absolute http:// or https:// URL"),
            std::string::npos);
  EXPECT_NE(refused("ws://example.com/").find("http://"), std::string::npos);
  EXPECT_NE(refused("https:/example.com/").find("http://"), std::string::npos);
  EXPECT_NE(refused("example.com/hook").find("http://"), std::string::npos);
  EXPECT_NE(refused("http://user:pw@example.com/").find("user name"), std::string::npos);
  EXPECT_NE(refused("http://example.com/#x").find("fragment"), std::string::npos);
  EXPECT_NE(refused("http:///x").find("no host"), std::string::npos);
  EXPECT_NE(refused("http://h:0/").find("port"), std::string::npos);
  EXPECT_NE(refused("http://h:65536/").find("port"), std::string::npos);
  EXPECT_NE(refused("http://h:/").find("port"), std::string::npos);
  EXPECT_NE(refused("http://h/a b").find("spaces"), std::string::npos);
  EXPECT_NE(refused("http://h\r\nX: y/").find("control"), std::string::npos);
  EXPECT_NE(refused("http://h%41/").find("host may hold"), std::string::npos);
  EXPECT_NE(refused("http://[::1/").find("closing"), std::string::npos);
  EXPECT_NE(refused("http://h/" + std::string(2100, 'a')).find("2048"), std::string::npos);
  // The same refusals for https://.
  EXPECT_NE(refused("https://user@example.com/").find("user name"), std::string::npos);
  EXPECT_NE(refused("https://example.com/#x").find("fragment"), std::string::npos);
  EXPECT_NE(refused("https:///x").find("no host"), std::string::npos);
  EXPECT_NE(refused("https://h:0/").find("port"), std::string::npos);
  EXPECT_NE(refused("https://h:/").find("port"), std::string::npos);
}

TEST(ClientRequest, FramesHeadersLengthAndBody) {
  const auto u = url_of("http://127.0.0.1:81/in?k=v");
  EXPECT_EQ(build_request("POST", u, {{"X-A", "1"}, {"Content-Type", "application/json"}}, "{}"),
            "POST /in?k=v HTTP/1.1\r\nHost: 127.0.0.1:81\r\nX-A: 1\r\n"
            "Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}");
}

TEST(ClientExchange, SendsThenReadsTheStatus) {
  ClientExchange x("REQ");
  EXPECT_EQ(x.state(), ClientExchange::State::Sending);
  EXPECT_EQ(x.pending_output(), "REQ");
  x.consume_output(1);
  EXPECT_EQ(x.pending_output(), "EQ");
  x.consume_output(2);
  EXPECT_EQ(x.state(), ClientExchange::State::Waiting);
  EXPECT_EQ(x.pending_output(), "");
  x.feed("HTTP/1.1 204 No Content\r\n\r\n");
  ASSERT_EQ(x.state(), ClientExchange::State::Done);
  EXPECT_EQ(x.status(), 204);
}

TEST(ClientExchange, ByteByByteWithABodyAndAnInterimAnswer) {
  const std::string resp =
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
  ClientExchange x("R");
  x.consume_output(1);
  for (size_t i = 0; i < resp.size(); ++i) {
    EXPECT_FALSE(x.finished()) << i;
    x.feed(resp.substr(i, 1));
  }
  ASSERT_EQ(x.state(), ClientExchange::State::Done);
  EXPECT_EQ(x.status(), 200);
}

TEST(ClientExchange, ChunkedAndCloseDelimitedBodies) {
  ClientExchange c("R");
  c.feed("HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n");
  EXPECT_FALSE(c.finished());
  c.feed("0\r\n\r\n");
  ASSERT_EQ(c.state(), ClientExchange::State::Done);
  EXPECT_EQ(c.status(), 202);

  ClientExchange e("R");
  e.feed("HTTP/1.0 500 Oops\r\n\r\nthe body runs to the close");
  EXPECT_FALSE(e.finished());
  e.eof();
  ASSERT_EQ(e.state(), ClientExchange::State::Done);
  EXPECT_EQ(e.status(), 500);
}

TEST(ClientExchange, FailuresSayWhy) {
  ClientExchange none("R");
  none.eof();
  EXPECT_EQ(none.state(), ClientExchange::State::Failed);
  EXPECT_EQ(none.error(), "connection closed without a response");

  ClientExchange cut("R");
  cut.feed("HTTP/1.1 200 OK\r\nContent-Len");
  cut.eof();
  EXPECT_EQ(cut.state(), ClientExchange::State::Failed);
  EXPECT_NE(cut.error().find("header"), std::string::npos);

  ClientExchange short_body("R");
  short_body.feed("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
  short_body.eof();
  EXPECT_EQ(short_body.state(), ClientExchange::State::Failed);

  ClientExchange junk("R");
  junk.feed("SMTP 220 hello\r\n");
  EXPECT_EQ(junk.state(), ClientExchange::State::Failed);
  EXPECT_NE(junk.error().find("malformed response"), std::string::npos);

  ClientExchange big_header("R", 100);
  big_header.feed("HTTP/1.1 200 OK\r\nX-Pad: " + std::string(200, 'x') + "\r\n\r\n");
  EXPECT_EQ(big_header.state(), ClientExchange::State::Failed);
  EXPECT_NE(big_header.error().find("header larger than 100"), std::string::npos);
}

TEST(ClientExchange, ALongBodyIsNotReadPastTheLimit) {
  // The status is the answer: a 2xx with a body past the limit is still an acknowledgement.
  ClientExchange big("R", 100);
  big.feed("HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n");
  EXPECT_FALSE(big.finished());
  big.feed(std::string(200, 'x'));
  ASSERT_EQ(big.state(), ClientExchange::State::Done);
  EXPECT_EQ(big.status(), 200);
}

}  // namespace
}  // namespace mxp::http
