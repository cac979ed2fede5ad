// Tests of the SOCKS5 client codec: each exchange is a table row (what the proxy sends, what the
// client must send, how it ends, which bytes are left for SMTP), run with the proxy's bytes
// whole, split at every position and byte by byte; then hostile replies and proxy URLs.
#include "proxy/socks5.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace mxp::proxy {
namespace {

using namespace std::string_literals;

struct Exchange {
  std::string sent;  // everything the client wrote
  std::string rest;  // bytes handed on to the tunnel
  Client::State state;
  Error error;
  std::string bound;
};

Exchange exchange(const Target& target, const Credentials* creds,
                  const std::vector<std::string>& chunks, bool close_at_end) {
  Client c(target, creds);
  Exchange r;
  auto drain = [&] {
    r.sent += c.pending_output();
    c.consume_output(c.pending_output().size());
  };
  drain();
  for (const auto& chunk : chunks) {
    std::string_view b = chunk;
    if (c.done()) {
      r.rest += b;
      continue;
    }
    const size_t used = c.feed(b);
    EXPECT_LE(used, b.size());
    if (c.done()) r.rest += b.substr(used);
    drain();
  }
  if (close_at_end) c.on_closed();
  r.state = c.state();
  r.error = c.error();
  r.bound = c.bound();
  return r;
}

const Target kV4 = Target::ip(*loop::Endpoint::parse("192.0.2.10", 25));
const Target kV6 = Target::ip(*loop::Endpoint::parse("2001:db8::25", 25));
const Target kName = Target::name("mx.example.test", 25);
const Credentials kCreds{"alice", "s3cret"};

// What the client sends.
const std::string kHelloNoAuth = "\x05\x01\x00"s;
const std::string kHelloAuth = "\x05\x02\x00\x02"s;
const std::string kAuth = "\x01\x05"s + "alice" + "\x06"s + "s3cret";
const std::string kConnV4 = "\x05\x01\x00\x01\xc0\x00\x02\x0a\x00\x19"s;
const std::string kConnV6 =
    "\x05\x01\x00\x04\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x25\x00\x19"s;
const std::string kConnName = "\x05\x01\x00\x03\x0f"s + "mx.example.test" + "\x00\x19"s;
// What the proxy answers.
const std::string kOkV4 = "\x05\x00\x00\x01\x7f\x00\x00\x01\x11\xd7"s;  // 127.0.0.1:4567
const std::string kOkV6 = "\x05\x00\x00\x04"s + std::string(15, '\0') + "\x01\x00\x50"s;
const std::string kOkName = "\x05\x00\x00\x03\x05proxy\x04\x38"s;  // proxy:1080
const std::string kBanner = "220 mx.example.test ESMTP\r\n";

struct Row {
  const char* name;
  const Target* target;
  const Credentials* creds;
  std::string server;  // the proxy's bytes
  bool close_at_end;   // the proxy closes after them
  Client::State state;
  Error error;
  std::string sent;  // what the client must have sent
  std::string rest;  // bytes for SMTP
  std::string bound;
};

std::vector<Row> rows() {
  using S = Client::State;
  return {
      {"no auth, IPv4, banner in the same read", &kV4, nullptr, "\x05\x00"s + kOkV4 + kBanner,
       false, S::Done, Error::None, kHelloNoAuth + kConnV4, kBanner, "127.0.0.1:4567"},
      {"user/pass, IPv6", &kV6, &kCreds, "\x05\x02\x01\x00"s + kOkV6, false, S::Done, Error::None,
       kHelloAuth + kAuth + kConnV6, "", "[::1]:80"},
      {"credentials offered, proxy wants none", &kV4, &kCreds, "\x05\x00"s + kOkV4 + "2", false,
       S::Done, Error::None, kHelloAuth + kConnV4, "2", "127.0.0.1:4567"},
      {"domain-name target and bound address", &kName, &kCreds,
       "\x05\x02\x01\x00"s + kOkName + kBanner, false, S::Done, Error::None,
       kHelloAuth + kAuth + kConnName, kBanner, "proxy:1080"},
      {"auth refused", &kV4, &kCreds, "\x05\x02\x01\x01"s, true, S::Failed, Error::AuthRefused,
       kHelloAuth + kAuth, "", ""},
      {"auth reply of the wrong version", &kV4, &kCreds, "\x05\x02\x05\x00"s, false, S::Failed,
       Error::AuthBadVersion, kHelloAuth + kAuth, "", ""},
      {"no acceptable method", &kV4, &kCreds, "\x05\xff"s, true, S::Failed,
       Error::NoAcceptableMethod, kHelloAuth, "", ""},
      {"user/pass chosen though not offered", &kV4, nullptr, "\x05\x02"s, false, S::Failed,
       Error::BadMethod, kHelloNoAuth, "", ""},
      {"GSSAPI chosen", &kV4, &kCreds, "\x05\x01"s, false, S::Failed, Error::BadMethod, kHelloAuth,
       "", ""},
      {"SOCKS4 reply", &kV4, nullptr, "\x04\x5a"s, false, S::Failed, Error::BadVersion,
       kHelloNoAuth, "", ""},
      {"an HTTP proxy", &kV4, nullptr, "HTTP/1.1 400 Bad Request\r\n\r\n", true, S::Failed,
       Error::BadVersion, kHelloNoAuth, "", ""},
      {"an SMTP server instead of a proxy", &kV4, nullptr, kBanner, false, S::Failed,
       Error::BadVersion, kHelloNoAuth, "", ""},
      {"CONNECT reply of the wrong version", &kV4, nullptr, "\x05\x00\x04\x00\x00\x01"s, false,
       S::Failed, Error::BadVersion, kHelloNoAuth + kConnV4, "", ""},
      {"unknown address type in the reply", &kV4, nullptr, "\x05\x00\x05\x00\x00\x07\x00\x00"s,
       false, S::Failed, Error::BadAddressType, kHelloNoAuth + kConnV4, "", ""},
      {"closed before any reply", &kV4, nullptr, "", true, S::Failed, Error::Closed, kHelloNoAuth,
       "", ""},
      {"closed after half a method reply", &kV4, nullptr, "\x05"s, true, S::Failed, Error::Closed,
       kHelloNoAuth, "", ""},
      {"closed in the middle of the CONNECT reply", &kV4, nullptr, "\x05\x00"s + kOkV4.substr(0, 7),
       true, S::Failed, Error::Closed, kHelloNoAuth + kConnV4, "", ""},
      {"still waiting (short reply, no close)", &kV4, nullptr, "\x05\x00\x05\x00\x00\x03\x09"s,
       false, S::Request, Error::None, kHelloNoAuth + kConnV4, "", ""},
  };
}

TEST(Socks5, ExchangesWholeSplitAndByteByByte) {
  for (const Row& row : rows()) {
    SCOPED_TRACE(row.name);
    auto check = [&](const Exchange& r, const std::string& how) {
      SCOPED_TRACE(how);
      EXPECT_EQ(r.state, row.state);
      EXPECT_EQ(r.error, row.error) << to_string(r.error);
      EXPECT_EQ(r.sent, row.sent);
      EXPECT_EQ(r.rest, row.rest);
      EXPECT_EQ(r.bound, row.bound);
    };
    check(exchange(*row.target, row.creds, {row.server}, row.close_at_end), "whole");
    for (size_t k = 0; k <= row.server.size(); ++k)
      check(exchange(*row.target, row.creds, {row.server.substr(0, k), row.server.substr(k)},
                     row.close_at_end),
            "split at " + std::to_string(k));
    std::vector<std::string> bytes;
    for (char c : row.server)
      bytes.emplace_back(1, c);
    check(exchange(*row.target, row.creds, bytes, row.close_at_end), "byte by byte");
  }
}

TEST(Socks5, EveryReplyCode) {
  struct Code {
    uint8_t rep;
    Error error;
    Fault fault;
  };
  const std::vector<Code> codes = {
      {1, Error::GeneralFailure, Fault::Target},
      {2, Error::NotAllowed, Fault::Proxy},
      {3, Error::NetworkUnreachable, Fault::Target},
      {4, Error::HostUnreachable, Fault::Target},
      {5, Error::ConnectionRefused, Fault::Target},
      {6, Error::TtlExpired, Fault::Target},
      {7, Error::CommandNotSupported, Fault::Proxy},
      {8, Error::AddressTypeNotSupported, Fault::Proxy},
      {9, Error::UnknownReply, Fault::Proxy},
      {0xFF, Error::UnknownReply, Fault::Proxy},
  };
  for (const auto& code : codes) {
    SCOPED_TRACE(int(code.rep));
    // Decided on REP alone: the rest of the reply (often absent) is not awaited.
    std::string reply = "\x05\x00\x05"s + static_cast<char>(code.rep);
    Exchange r = exchange(kV4, nullptr, {reply}, false);
    EXPECT_EQ(r.state, Client::State::Failed);
    EXPECT_EQ(r.error, code.error);
    EXPECT_EQ(fault_of(r.error), code.fault);
    EXPECT_FALSE(describe(r.error).empty());
  }
  EXPECT_EQ(fault_of(Error::AuthRefused), Fault::Proxy);
  EXPECT_EQ(fault_of(Error::Closed), Fault::Proxy);
}

TEST(Socks5, StatesAndFeedAfterTheEnd) {
  Client c(kV4, &kCreds);
  EXPECT_EQ(c.state(), Client::State::Greeting);
  EXPECT_FALSE(c.accepted());
  c.consume_output(c.pending_output().size());
  EXPECT_EQ(c.feed("\x05\x02"s), 2u);
  EXPECT_EQ(c.state(), Client::State::Auth);
  EXPECT_EQ(c.pending_output(), kAuth);
  c.consume_output(3);  // partial writes
  EXPECT_EQ(c.pending_output(), kAuth.substr(3));
  c.consume_output(100);
  EXPECT_TRUE(c.pending_output().empty());
  EXPECT_EQ(c.feed("\x01\x00"s), 2u);
  EXPECT_TRUE(c.accepted());  // what a health check needs
  EXPECT_EQ(c.feed(kOkV4 + "220"), kOkV4.size());
  EXPECT_TRUE(c.done());
  EXPECT_EQ(c.feed("more"), 0u);  // all the tunnel's
  c.on_closed();                  // after done: not a handshake failure
  EXPECT_TRUE(c.done());
  EXPECT_EQ(c.error(), Error::None);
}

TEST(Socks5, GarbageAfterFailureIsSwallowed) {
  Client c(kV4, nullptr);
  std::string junk(10'000, '\xAA');
  EXPECT_EQ(c.feed(junk), junk.size());
  EXPECT_TRUE(c.failed());
  EXPECT_EQ(c.feed(junk), junk.size());
  EXPECT_EQ(c.error(), Error::BadVersion);
}

TEST(Socks5, RequestsThatCannotBeEncodedFailAtOnce) {
  Credentials long_user{std::string(256, 'u'), "p"};
  Client a(kV4, &long_user);
  EXPECT_TRUE(a.failed());
  EXPECT_EQ(a.error(), Error::BadRequest);
  EXPECT_TRUE(a.pending_output().empty());
  Client b(Target::name(std::string(256, 'h'), 25), nullptr);
  EXPECT_TRUE(b.failed());
  Client c(Target{}, nullptr);  // no address at all
  EXPECT_TRUE(c.failed());
}

TEST(ProxyUrl, Forms) {
  auto a = parse_proxy_url("socks5://127.0.0.1:1080");
  ASSERT_TRUE(a) << a.error();
  EXPECT_EQ(a->display, "socks5://127.0.0.1:1080");
  EXPECT_FALSE(a->credentials);
  EXPECT_EQ(a->endpoint.port(), 1080);

  auto b = parse_proxy_url("socks5://us%40er:p%3Ass@w@[::1]:9050/");
  ASSERT_TRUE(b) << b.error();
  EXPECT_EQ(b->display, "socks5://[::1]:9050");
  ASSERT_TRUE(b->credentials);
  EXPECT_EQ(b->credentials->user, "us@er");
  EXPECT_EQ(b->credentials->password, "p:ss@w");
}

TEST(ProxyUrl, RejectedWithoutEchoingSecrets) {
  for (const char* bad :
       {"http://127.0.0.1:3128", "socks5://127.0.0.1", "socks5://127.0.0.1:0",
        "socks5://proxy.example:1080", "socks5://user@127.0.0.1:1080", "socks5://:pw@127.0.0.1:1",
        "socks5://u:%zz@127.0.0.1:1", "socks5://u:%4@127.0.0.1:1", "socks5://u:TOPSECRET@host:1",
        "socks4://1.2.3.4:1080", ""}) {
    SCOPED_TRACE(bad);
    auto url = parse_proxy_url(bad);
    ASSERT_FALSE(url);
    EXPECT_FALSE(url.error().empty());
    EXPECT_EQ(url.error().find("TOPSECRET"), std::string::npos);
  }
  std::string long_pw = "socks5://u:" + std::string(256, 'p') + "@127.0.0.1:1";
  EXPECT_FALSE(parse_proxy_url(long_pw));
}

}  // namespace
}  // namespace mxp::proxy
