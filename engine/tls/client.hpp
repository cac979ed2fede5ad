// Sans-I/O TLS client for STARTTLS (RFC 3207) over OpenSSL memory BIOs: the owner feeds the
// ciphertext it read from the socket and writes the ciphertext this object produces; the SMTP
// session above sees plaintext only. It owns no socket and reads no clock (nghttp2 shape).
#pragma once

#include <openssl/types.h>

#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/expected.hpp"

// As <openssl/ssl.h> declares it (not in <openssl/types.h>); the header stays light.
typedef struct ssl_session_st SSL_SESSION;

namespace mxp::tls {

struct ClientOptions {
  // Verify the server's certificate chain (system trust store, or `ca_file`) and its name. Off
  // by default: we verify mailboxes, not certificates, and an MX's certificate rarely matches its
  // name (RFC 7672 §1.3: opportunistic TLS between MTAs does not authenticate). With it on, a
  // certificate that does not verify fails the handshake.
  bool verify_peer = false;
  std::string ca_file;  // PEM bundle; empty: OpenSSL's default paths
  // With `ca_file`: trust OpenSSL's default paths (the system's store) as well, so that a private
  // CA adds to the public ones instead of replacing them (webhooks to many endpoints).
  bool default_paths_too = false;
};

// The one SSL_CTX of a process (or of a Verifier): sessions share it, and the TLS session tickets
// that servers hand out, so that the next connection to the same MX resumes (RFC 8446 §2.2)
// instead of a full handshake: no certificate to decode and no signature to check, which is
// most of a handshake's client CPU with OpenSSL 3 (docs/performance.md). Used from one thread.
class ClientContext {
 public:
  // Fails, saying why, when OpenSSL refuses the options (e.g. an unreadable ca_file).
  static core::Expected<std::shared_ptr<const ClientContext>, std::string> create(
      const ClientOptions& opt);
  ~ClientContext();
  ClientContext(const ClientContext&) = delete;
  ClientContext& operator=(const ClientContext&) = delete;
  SSL_CTX* native() const { return ctx_; }
  const ClientOptions& options() const { return opt_; }

  // Ticket cache, by peer key (address and server name). Each ticket is used once (RFC 8446
  // §C.4), so a peer needs about as many as sessions open to it at once (a full handshake
  // brings two, a resumed one one); the whole cache is bounded (a session is ~1-2 KiB).
  static constexpr size_t kTicketsPerPeer = 64;
  static constexpr size_t kMaxTickets = 4096;
  SSL_SESSION* take_ticket(const std::string& peer) const;  // owned by the caller; or null
  void keep_ticket(const std::string& peer, SSL_SESSION* ticket) const;  // takes ownership
  size_t tickets() const;

 private:
  ClientContext(SSL_CTX* ctx, ClientOptions opt) : ctx_(ctx), opt_(std::move(opt)) {}
  SSL_CTX* ctx_;
  ClientOptions opt_;
  // Mutable: a cache behind a const context (sessions hold it as const; one thread).
  mutable std::unordered_map<std::string, std::deque<SSL_SESSION*>> tickets_;
  mutable size_t ticket_count_ = 0;
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
  // checked against the certificate when verification is on. `peer`: the key of the ticket
  // cache (e.g. "192.0.2.1|mx.example.org"); empty: no resumption.
  Client(std::shared_ptr<const ClientContext> ctx, std::string_view server_name,
         std::string peer = {});
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
  // Failed because the certificate did not verify (verify_peer): why, in OpenSSL's words
  // ("self-signed certificate", "hostname mismatch"); empty otherwise.
  const std::string& verify_error() const { return verify_error_; }
  // Negotiated protocol ("TLSv1.3") and cipher suite ("TLS_AES_256_GCM_SHA384"); empty before
  // the handshake completes.
  const std::string& version() const { return version_; }
  const std::string& cipher() const { return cipher_name_; }
  bool resumed() const { return resumed_; }  // an abbreviated handshake with a cached ticket

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
  std::string error_, verify_error_, version_, cipher_name_;
  std::string peer_;
  State state_ = State::Idle;
  bool resumed_ = false;

  friend int on_new_session(SSL* ssl, SSL_SESSION* session);
};

}  // namespace mxp::tls
