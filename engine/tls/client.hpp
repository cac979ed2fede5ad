// Sans-I/O TLS client for STARTTLS (RFC 3207) over OpenSSL memory BIOs: the owner feeds the
// ciphertext it read from the socket and writes the ciphertext this object produces; the SMTP
// session above sees plaintext only. It owns no socket and reads no clock (nghttp2 shape).
#pragma once

#include <openssl/types.h>

#include <memory>
#include <string>
#include <string_view>

namespace mxp::tls {

struct ClientOptions {
  // Verify the server's certificate chain (system trust store, or `ca_file`) and its name. Off
  // by default: we verify mailboxes, not certificates, and an MX's certificate rarely matches its
  // name (RFC 7672 §1.3: opportunistic TLS between MTAs does not authenticate). With it on, a
  // certificate that does not verify fails the handshake.
  bool verify_peer = false;
  std::string ca_file;  // PEM bundle; empty: OpenSSL's default paths
};

// The one SSL_CTX of a process (or of a Verifier): sessions share it, and share nothing else.
class ClientContext {
 public:
  // Nullptr, with `err`, when OpenSSL refuses the options (e.g. an unreadable ca_file).
  static std::shared_ptr<const ClientContext> create(const ClientOptions& opt, std::string& err);
  ~ClientContext();
  ClientContext(const ClientContext&) = delete;
  ClientContext& operator=(const ClientContext&) = delete;
  SSL_CTX* native() const { return ctx_; }
  const ClientOptions& options() const { return opt_; }

 private:
  ClientContext(SSL_CTX* ctx, ClientOptions opt) : ctx_(ctx), opt_(std::move(opt)) {}
  SSL_CTX* ctx_;
  ClientOptions opt_;
};

// One TLS connection. Cycle: start(); then repeatedly write pending_cipher() to the socket
// (consume_cipher() what was written), feed_cipher() what the socket gave, and once
// established() write_plain() / take the plaintext from plain() (consume_plain()).
class Client {
 public:
  enum class State : uint8_t {
    Idle,         // start() not called yet
    Handshaking,  // ClientHello sent, waiting for the server
    Established,  // plaintext flows both ways
    Closed,       // the server sent close_notify
    Failed,       // handshake or record error: error() says what; the connection is unusable
  };

  // `server_name` is sent as SNI (RFC 6066) when it is a host name (not an IP literal) and
  // checked against the certificate when verification is on.
  Client(std::shared_ptr<const ClientContext> ctx, std::string_view server_name);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  void start();  // produces the ClientHello
  void feed_cipher(std::string_view bytes);
  std::string_view pending_cipher() const { return std::string_view(cipher_).substr(cipher_off_); }
  void consume_cipher(size_t n);
  // Encrypts `bytes` into pending_cipher(). False (nothing queued) unless established().
  bool write_plain(std::string_view bytes);
  std::string_view plain() const { return std::string_view(plain_).substr(plain_off_); }
  void consume_plain(size_t n);

  State state() const { return state_; }
  bool established() const { return state_ == State::Established; }
  bool failed() const { return state_ == State::Failed; }
  const std::string& error() const { return error_; }
  // Negotiated protocol ("TLSv1.3") and cipher suite ("TLS_AES_256_GCM_SHA384"); empty before
  // the handshake completes.
  const std::string& version() const { return version_; }
  const std::string& cipher() const { return cipher_name_; }

 private:
  void drive();  // advances the handshake, decrypts what can be, collects output ciphertext
  void fail(const char* what, int ssl_error);
  void collect_output();

  std::shared_ptr<const ClientContext> ctx_;
  SSL* ssl_ = nullptr;
  BIO* rbio_ = nullptr;  // network -> OpenSSL (owned by ssl_)
  BIO* wbio_ = nullptr;  // OpenSSL -> network (owned by ssl_)
  std::string cipher_;   // ciphertext waiting for the socket
  size_t cipher_off_ = 0;
  std::string plain_;  // decrypted bytes waiting for the session
  size_t plain_off_ = 0;
  std::string error_, version_, cipher_name_;
  State state_ = State::Idle;
};

}  // namespace mxp::tls
