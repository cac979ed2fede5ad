// tls::Client against an OpenSSL server in the same process: both sides behind memory BIOs, the
// test moves the ciphertext between them, so handshakes, failures and close_notify are exact.
#include "tls/client.hpp"

#include <gtest/gtest.h>

#include "tls_test_server.hpp"

#include <memory>
#include <string>

namespace mxp::tls {
namespace {

using testing::Server;
using testing::TestCert;

// Moves bytes both ways until neither side has anything more to say.
void shuttle(Client& c, Server& s) {
  for (int i = 0; i < 20; ++i) {
    std::string to_server(c.pending_cipher());
    c.consume_cipher(to_server.size());
    s.feed(to_server);
    s.step();
    std::string to_client = s.take();
    if (to_server.empty() && to_client.empty()) return;
    c.feed_cipher(to_client);
  }
}

std::shared_ptr<const ClientContext> context(ClientOptions o = {}) {
  auto ctx = ClientContext::create(o);
  EXPECT_TRUE(ctx) << ctx.error();
  return ctx ? *ctx : nullptr;
}

TEST(TlsClient, HandshakeThenPlaintextBothWays) {
  TestCert cert;
  Server server(cert);
  Client c(context(), "mx.tls.test");
  EXPECT_EQ(c.state(), Client::State::Idle);
  EXPECT_FALSE(c.write_plain("EHLO x\r\n"));  // nothing before the handshake
  c.start();
  EXPECT_EQ(c.state(), Client::State::Handshaking);
  EXPECT_FALSE(c.pending_cipher().empty());                            // the ClientHello
  EXPECT_EQ(static_cast<unsigned char>(c.pending_cipher()[0]), 0x16);  // a handshake record
  shuttle(c, server);
  ASSERT_TRUE(c.established()) << c.error();
  EXPECT_TRUE(server.done());
  EXPECT_EQ(c.version(), "TLSv1.3");
  EXPECT_FALSE(c.cipher().empty());
  EXPECT_TRUE(c.cipher().rfind("TLS_", 0) == 0) << c.cipher();

  ASSERT_TRUE(c.write_plain("EHLO probe.test\r\n"));
  EXPECT_EQ(c.pending_cipher().find("EHLO"), std::string_view::npos);  // encrypted
  shuttle(c, server);
  EXPECT_EQ(server.received, "EHLO probe.test\r\n");
  server.write("250-mx.tls.test\r\n250 PIPELINING\r\n");
  c.feed_cipher(server.take());
  EXPECT_EQ(c.plain(), "250-mx.tls.test\r\n250 PIPELINING\r\n");
  c.consume_plain(4);
  EXPECT_EQ(c.plain(), "mx.tls.test\r\n250 PIPELINING\r\n");
  c.consume_plain(c.plain().size());
  EXPECT_EQ(c.plain(), "");

  server.close_notify();
  c.feed_cipher(server.take());
  EXPECT_EQ(c.state(), Client::State::Closed);
}

TEST(TlsClient, TicketsResumeTheNextConnectionToTheSamePeer) {
  TestCert cert;
  auto ctx = context();
  Server first(cert);
  {
    Client a(ctx, "mx.tls.test", "192.0.2.1|mx.tls.test");
    a.start();
    shuttle(a, first);
    ASSERT_TRUE(a.established()) << a.error();
    EXPECT_FALSE(a.resumed());
    // Freed without a TLS close_notify, as after QUIT: OpenSSL then marks the connection's
    // current session not resumable; the cache's copies must not care.
  }
  EXPECT_EQ(ctx->tickets(), 2u);  // OpenSSL servers send two TLS 1.3 tickets
  // Each connection resumes with a ticket, and brings a new one.
  for (int i = 0; i < 3; ++i) {
    SCOPED_TRACE(i);
    Server next(first);
    Client b(ctx, "mx.tls.test", "192.0.2.1|mx.tls.test");
    b.start();
    shuttle(b, next);
    ASSERT_TRUE(b.established()) << b.error();
    EXPECT_TRUE(b.resumed());
    EXPECT_EQ(b.version(), "TLSv1.3");
  }

  // Another peer key, or none: a full handshake.
  Server third(first);
  Client c(ctx, "mx.tls.test", "192.0.2.2|mx.tls.test");
  c.start();
  shuttle(c, third);
  ASSERT_TRUE(c.established());
  EXPECT_FALSE(c.resumed());
  Server fourth(first);
  Client d(ctx, "mx.tls.test");
  d.start();
  shuttle(d, fourth);
  EXPECT_FALSE(d.resumed());
}

TEST(TlsClient, TicketCacheIsBounded) {
  auto ctx = context();
  TestCert cert;
  Server s(cert);
  Client c(ctx, "mx.tls.test", "p");
  c.start();
  shuttle(c, s);
  ASSERT_TRUE(c.established());
  // More tickets than kept per peer: the oldest go.
  for (size_t i = 0; i < ClientContext::kTicketsPerPeer + 2; ++i) {
    Server again(s);
    Client k(ctx, "mx.tls.test", "p");
    k.start();
    shuttle(k, again);
  }
  EXPECT_LE(ctx->tickets(), ClientContext::kTicketsPerPeer);
}

TEST(TlsClient, Tls12Negotiated) {
  TestCert cert;
  Server server(cert, TLS1_2_VERSION);
  Client c(context(), "mx.tls.test");
  c.start();
  shuttle(c, server);
  ASSERT_TRUE(c.established()) << c.error();
  EXPECT_EQ(c.version(), "TLSv1.2");
  EXPECT_NE(c.cipher().find("ECDHE"), std::string::npos) << c.cipher();
}

TEST(TlsClient, ByteAtATimeDelivery) {
  TestCert cert;
  Server server(cert);
  Client c(context(), "127.0.0.1");  // an IP literal: no SNI, still fine
  c.start();
  for (int round = 0; round < 10 && !c.established(); ++round) {
    std::string to_server(c.pending_cipher());
    c.consume_cipher(to_server.size());
    server.feed(to_server);
    server.step();
    for (char ch : server.take())
      c.feed_cipher(std::string_view(&ch, 1));
  }
  EXPECT_TRUE(c.established()) << c.error();
}

TEST(TlsClient, PlaintextInsteadOfServerHelloFails) {
  Client c(context(), "mx.tls.test");
  c.start();
  c.consume_cipher(c.pending_cipher().size());
  // A server that did not switch to TLS (or an injected clear-text reply, RFC 3207 §4.2).
  c.feed_cipher("250 2.0.0 Ok\r\n");
  EXPECT_TRUE(c.failed());
  EXPECT_NE(c.error().find("TLS handshake failed"), std::string::npos) << c.error();
  EXPECT_FALSE(c.write_plain("x"));
  c.feed_cipher("more");  // ignored once failed
  EXPECT_TRUE(c.failed());
}

TEST(TlsClient, VerificationOnRefusesSelfSigned) {
  TestCert cert;
  Server server(cert);
  ClientOptions o;
  o.verify_peer = true;
  Client c(context(o), "mx.tls.test");
  c.start();
  shuttle(c, server);
  EXPECT_TRUE(c.failed());
  EXPECT_NE(c.error().find("certificate"), std::string::npos) << c.error();
}

TEST(TlsClient, UnreadableCaFileIsAnError) {
  ClientOptions o;
  o.verify_peer = true;
  o.ca_file = "/nonexistent/ca.pem";
  auto ctx = ClientContext::create(o);
  ASSERT_FALSE(ctx);
  EXPECT_NE(ctx.error().find("/nonexistent/ca.pem"), std::string::npos) << ctx.error();
}

TEST(TlsClient, DestroyedMidHandshakeFreesEverything) {
  // Nothing to assert here beyond ASan/LSan: a session abandoned half-way frees its SSL.
  auto ctx = context();
  for (int i = 0; i < 3; ++i) {
    Client c(ctx, "mx.tls.test");
    c.start();
  }
  Client never_started(ctx, "mx.tls.test");
  SUCCEED();
}

}  // namespace
}  // namespace mxp::tls
