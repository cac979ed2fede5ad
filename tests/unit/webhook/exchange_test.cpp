// Tests of a delivery attempt's bytes (webhook/exchange.hpp) against an OpenSSL server in the
// same process (memory BIOs, tests/common/tls_test_server.hpp): the request goes only after the
// handshake, a certificate that does not verify fails with OpenSSL's reason before any byte of
// the request, and the response ends by its length, by close_notify or by the TCP close.
#include "webhook/exchange.hpp"

#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>

#include "tls_test_server.hpp"

namespace mxp::webhook {
namespace {

using tls::testing::Server;
using tls::testing::TestCert;

const std::string kRequest =
    "POST /hook HTTP/1.1\r\nHost: mx.tls.test\r\nContent-Length: 2\r\n\r\n{}";

// The test's certificate as a CA file: it is self-signed, so trusting it verifies it.
struct CaFile {
  std::string path;
  explicit CaFile(const TestCert& c) {
    char name[] = "/tmp/mxp-exchange-ca-XXXXXX";
    const int fd = mkstemp(name);
    path = name;
    FILE* f = fdopen(fd, "w");
    PEM_write_X509(f, c.cert);
    std::fclose(f);
  }
  ~CaFile() { std::remove(path.c_str()); }
};

std::shared_ptr<const tls::ClientContext> verifying(const std::string& ca_file = {}) {
  tls::ClientOptions o;
  o.verify_peer = true;
  o.ca_file = ca_file;
  auto ctx = tls::ClientContext::create(o);
  EXPECT_TRUE(ctx) << ctx.error();
  return ctx ? *ctx : nullptr;
}

Exchange over_tls(std::shared_ptr<const tls::ClientContext> ctx, const std::string& name) {
  return Exchange(std::make_unique<http::ClientExchange>(kRequest),
                  std::make_unique<tls::Client>(std::move(ctx), name));
}

// Moves bytes both ways until neither side has more to say; what the client sent is kept.
void shuttle(Exchange& x, Server& s, std::string* sent = nullptr) {
  for (int i = 0; i < 20; ++i) {
    std::string to_server(x.pending_output());
    x.consume_output(to_server.size());
    if (sent) *sent += to_server;
    s.feed(to_server);
    s.step();
    std::string to_client = s.take();
    if (to_server.empty() && to_client.empty()) return;
    x.feed(to_client);
  }
}

TEST(WebhookExchange, InClearTheRequestGoesAtOnce) {
  Exchange x(std::make_unique<http::ClientExchange>(kRequest));
  EXPECT_EQ(x.pending_output(), kRequest);
  EXPECT_EQ(x.tls(), nullptr);
  EXPECT_FALSE(x.handshaking());
  x.consume_output(kRequest.size());
  x.feed("HTTP/1.1 204 No Content\r\n\r\n");
  ASSERT_TRUE(x.answered());
  EXPECT_EQ(x.status(), 204);
}

TEST(WebhookExchange, TheRequestWaitsForTheHandshake) {
  TestCert cert;
  CaFile ca(cert);
  Server server(cert);
  Exchange x = over_tls(verifying(ca.path), "mx.tls.test");
  EXPECT_TRUE(x.handshaking());
  // The first bytes are the ClientHello, not the request.
  ASSERT_FALSE(x.pending_output().empty());
  EXPECT_EQ(static_cast<unsigned char>(x.pending_output()[0]), 0x16);
  EXPECT_EQ(x.pending_output().find("POST"), std::string_view::npos);
  // The server's first flight: the handshake ends, and the request goes encrypted after it.
  std::string sent;
  shuttle(x, server, &sent);
  ASSERT_FALSE(x.finished()) << x.error();
  EXPECT_FALSE(x.handshaking());
  EXPECT_TRUE(x.tls()->established());
  EXPECT_EQ(server.received, kRequest);
  EXPECT_EQ(sent.find("POST"), std::string::npos);  // never in clear
  server.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  x.feed(server.take());
  ASSERT_TRUE(x.answered()) << x.error();
  EXPECT_EQ(x.status(), 200);
}

TEST(WebhookExchange, AnUntrustedCertificateFailsBeforeTheRequest) {
  TestCert cert;
  Server server(cert);
  Exchange x = over_tls(verifying(), "mx.tls.test");  // the system's store: not this cert
  shuttle(x, server);
  ASSERT_TRUE(x.finished());
  EXPECT_FALSE(x.answered());
  EXPECT_EQ(x.error(), "tls: certificate verify failed: self-signed certificate");
  EXPECT_EQ(server.received, "");
  EXPECT_FALSE(x.handshaking());
}

TEST(WebhookExchange, ACertificateForAnotherNameFails) {
  TestCert cert;  // for mx.tls.test
  CaFile ca(cert);
  Server server(cert);
  Exchange x = over_tls(verifying(ca.path), "hooks.other.test");
  shuttle(x, server);
  ASSERT_TRUE(x.finished());
  EXPECT_EQ(x.error(), "tls: certificate verify failed: hostname mismatch");
  EXPECT_EQ(server.received, "");
}

TEST(WebhookExchange, APlaintextServerFails) {
  Exchange x = over_tls(verifying(), "mx.tls.test");
  x.consume_output(x.pending_output().size());
  x.feed("HTTP/1.1 400 Bad Request\r\n\r\n");
  ASSERT_TRUE(x.finished());
  EXPECT_FALSE(x.answered());
  EXPECT_EQ(x.error().rfind("tls: handshake failed", 0), 0u) << x.error();
}

TEST(WebhookExchange, AServerThatClosesDuringTheHandshake) {
  Exchange x = over_tls(verifying(), "mx.tls.test");
  x.consume_output(x.pending_output().size());
  x.eof();
  ASSERT_TRUE(x.finished());
  EXPECT_EQ(x.error(), "tls: connection closed during the handshake");
}

TEST(WebhookExchange, CloseNotifyOrTheCloseEndsABodyWithoutLength) {
  TestCert cert;
  CaFile ca(cert);
  auto ctx = verifying(ca.path);
  {
    Server server(cert);
    Exchange x = over_tls(ctx, "mx.tls.test");
    shuttle(x, server);
    server.write("HTTP/1.0 202 Accepted\r\n\r\nto the end");
    x.feed(server.take());
    EXPECT_FALSE(x.finished());  // the body runs until the server says it is over
    server.close_notify();
    x.feed(server.take());
    ASSERT_TRUE(x.answered()) << x.error();
    EXPECT_EQ(x.status(), 202);
  }
  {
    // Most servers close TCP without close_notify: the status, authenticated like every byte
    // before the close, still counts (the body is never used).
    Server server(cert);
    Exchange x = over_tls(ctx, "mx.tls.test");
    shuttle(x, server);
    server.write("HTTP/1.0 201 Created\r\n\r\nto the end");
    x.feed(server.take());
    EXPECT_FALSE(x.finished());
    x.eof();
    ASSERT_TRUE(x.answered()) << x.error();
    EXPECT_EQ(x.status(), 201);
  }
  {
    // Closed before the answer: as in clear.
    Server server(cert);
    Exchange x = over_tls(ctx, "mx.tls.test");
    shuttle(x, server);
    server.close_notify();
    x.feed(server.take());
    ASSERT_TRUE(x.finished());
    EXPECT_EQ(x.error(), "connection closed without a response");
  }
}

}  // namespace
}  // namespace mxp::webhook
