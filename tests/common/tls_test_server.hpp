// Test helpers for TLS: a throwaway certificate made in memory and an OpenSSL server behind
// memory BIOs that a test drives by hand (no socket). Shared by the tls and pipeline tests.
#pragma once

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <string>
#include <string_view>

namespace mxp::tls::testing {

// A throwaway self-signed certificate (P-256) made for the test run.
struct TestCert {
  EVP_PKEY* key = nullptr;
  X509* cert = nullptr;
  TestCert() {
    key = EVP_EC_gen("P-256");
    cert = X509_new();
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    X509_set_pubkey(cert, key);
    X509_NAME* n = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("mx.tls.test"), -1, -1, 0);
    X509_set_issuer_name(cert, n);
    X509_sign(cert, key, EVP_sha256());
  }
  ~TestCert() {
    X509_free(cert);
    EVP_PKEY_free(key);
  }
};

// The server end: an SSL with memory BIOs, driven by hand.
class Server {
 public:
  explicit Server(const TestCert& c, int max_version = 0) {
    ctx_ = SSL_CTX_new(TLS_server_method());
    SSL_CTX_use_certificate(ctx_, c.cert);
    SSL_CTX_use_PrivateKey(ctx_, c.key);
    if (max_version) SSL_CTX_set_max_proto_version(ctx_, max_version);
    init();
  }
  // Another connection to the same server (same ticket keys).
  explicit Server(Server& same) : ctx_(same.ctx_) {
    SSL_CTX_up_ref(ctx_);
    init();
  }
  void init() {
    ssl_ = SSL_new(ctx_);
    in_ = BIO_new(BIO_s_mem());
    out_ = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(in_, -1);
    BIO_set_mem_eof_return(out_, -1);
    SSL_set_bio(ssl_, in_, out_);
    SSL_set_accept_state(ssl_);
  }
  ~Server() {
    SSL_free(ssl_);
    SSL_CTX_free(ctx_);
  }
  void feed(std::string_view b) { BIO_write(in_, b.data(), static_cast<int>(b.size())); }
  void step() {
    if (!SSL_is_init_finished(ssl_)) SSL_do_handshake(ssl_);
    char buf[4096];
    int n;
    while ((n = SSL_read(ssl_, buf, sizeof buf)) > 0)
      received.append(buf, static_cast<size_t>(n));
    ERR_clear_error();
  }
  void write(std::string_view b) { SSL_write(ssl_, b.data(), static_cast<int>(b.size())); }
  void close_notify() { SSL_shutdown(ssl_); }
  std::string take() {
    std::string s(BIO_ctrl_pending(out_), '\0');
    BIO_read(out_, s.data(), static_cast<int>(s.size()));
    return s;
  }
  bool done() const { return SSL_is_init_finished(ssl_); }
  std::string received;

 private:
  SSL_CTX* ctx_;
  SSL* ssl_;
  BIO *in_, *out_;
};

}  // namespace mxp::tls::testing
