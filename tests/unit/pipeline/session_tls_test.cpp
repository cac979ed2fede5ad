// SessionTls between bytes and an smtp::Session, against an in-process OpenSSL server: clear text
// until the 220 to STARTTLS, what followed the 220 in the same read dropped, the handshake, the
// dialogue encrypted both ways; a failed or closed handshake decides every recipient tls_failed.
#include "pipeline/session_tls.hpp"

#include <gtest/gtest.h>

#include <string>

#include "tls_test_server.hpp"

namespace mxp::pipeline {
namespace {

using tls::testing::Server;
using tls::testing::TestCert;

struct Rig {
  Rig() : session(cfg()) {
    auto made = tls::ClientContext::create({});
    EXPECT_TRUE(made) << made.error();
    if (made) ctx = *made;
    session.add_recipient("user@example.org", 1, now);
    session.finish(now);
    session.start(now);
    session.on_connected(now);
  }
  static const smtp::SessionConfig& cfg() {
    static const smtp::SessionConfig c = [] {
      smtp::SessionConfig s;
      s.helo_name = "probe.test";
      s.starttls = smtp::StartTlsMode::Auto;
      return s;
    }();
    return c;
  }
  // What the slot's pump does: start TLS when asked, then take the bytes for the socket.
  std::string out() {
    if (tls.wants_start(session)) tls.start(session, ctx, "mx.tls.test", "127.0.0.1|mx", now);
    std::string o(tls.output(session));
    tls.consume(session, o.size());
    return o;
  }
  smtp::TimePoint now = smtp::TimePoint{} + std::chrono::hours(1);
  std::shared_ptr<const tls::ClientContext> ctx;
  smtp::Session session;
  SessionTls tls;
};

// Up to the 220 to STARTTLS, followed in the same read by an injected reply.
void to_starttls(Rig& r) {
  r.tls.on_data(r.session, "220 mx ESMTP\r\n", r.now);
  EXPECT_EQ(r.out(), "EHLO probe.test\r\n");
  r.tls.on_data(r.session, "250-mx\r\n250-PIPELINING\r\n250 STARTTLS\r\n", r.now);
  EXPECT_EQ(r.out(), "STARTTLS\r\n");
  const std::string injected = "250 2.1.0 injected\r\n";
  r.tls.on_data(r.session, "220 2.0.0 Ready\r\n" + injected, r.now);
  EXPECT_TRUE(r.session.want_tls());
  EXPECT_EQ(r.session.stats().tls_discarded_bytes, injected.size());
}

TEST(SessionTls, ClearTextThenTlsBothWays) {
  TestCert cert;
  Server server(cert);
  Rig r;
  to_starttls(r);
  std::string hello = r.out();
  ASSERT_FALSE(hello.empty());
  EXPECT_EQ(static_cast<unsigned char>(hello[0]), 0x16);  // a TLS handshake record
  server.feed(hello);
  server.step();
  r.tls.on_data(r.session, server.take(), r.now);  // ServerHello ... Finished
  ASSERT_TRUE(r.tls.established()) << r.tls.error();
  EXPECT_TRUE(r.session.tls_active());
  // The client's Finished and the new EHLO, encrypted, in one write.
  std::string wire = r.out();
  EXPECT_EQ(wire.find("EHLO"), std::string::npos);
  server.feed(wire);
  server.step();
  EXPECT_EQ(server.received, "EHLO probe.test\r\n");
  server.received.clear();
  server.write("250-mx\r\n250 PIPELINING\r\n");
  r.tls.on_data(r.session, server.take(), r.now);
  server.feed(r.out());
  server.step();
  EXPECT_EQ(server.received, "MAIL FROM:<>\r\nRCPT TO:<user@example.org>\r\n");
  server.received.clear();
  server.write("250 2.1.0 Ok\r\n550 5.1.1 unknown\r\n");
  r.tls.on_data(r.session, server.take(), r.now);
  auto res = r.session.pop_result();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->outcome.reply.code, 550);
  server.feed(r.out());
  server.step();
  EXPECT_EQ(server.received, "QUIT\r\n");
  EXPECT_EQ(r.tls.version(), "TLSv1.3");
  EXPECT_FALSE(r.tls.cipher().empty());
}

TEST(SessionTls, WithoutStartTlsBytesPassThrough) {
  Rig r;
  r.tls.on_data(r.session, "220 mx ESMTP\r\n", r.now);
  EXPECT_EQ(r.out(), "EHLO probe.test\r\n");
  r.tls.on_data(r.session, "250 mx\r\n", r.now);
  EXPECT_EQ(r.out(), "MAIL FROM:<>\r\n");
  EXPECT_FALSE(r.tls.established());
  EXPECT_TRUE(r.tls.version().empty());
}

TEST(SessionTls, HandshakeGarbageIsATlsFailure) {
  Rig r;
  to_starttls(r);
  EXPECT_FALSE(r.out().empty());  // ClientHello
  r.tls.on_data(r.session, "HTTP/1.1 400 Bad Request\r\n\r\n", r.now);
  auto res = r.session.pop_result();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->outcome.stage, smtp::Stage::StartTls);
  EXPECT_EQ(res->outcome.failure, smtp::Failure::TlsFailed);
  EXPECT_TRUE(r.session.want_close());
  EXPECT_FALSE(r.tls.error().empty());
}

TEST(SessionTls, ClosedDuringTheHandshakeIsATlsFailure) {
  Rig r;
  to_starttls(r);
  r.out();
  r.tls.on_closed(r.session, r.now);
  auto res = r.session.pop_result();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->outcome.failure, smtp::Failure::TlsFailed);
  EXPECT_TRUE(r.session.done());
}

}  // namespace
}  // namespace mxp::pipeline
