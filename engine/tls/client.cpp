// OpenSSL behind memory BIOs: SSL_do_handshake/SSL_read/SSL_write never touch a socket; the
// network side is two BIO_s_mem buffers that the owner fills and drains.
#include "tls/client.hpp"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <iterator>

namespace mxp::tls {

namespace {

// Drains OpenSSL's thread-local error queue into one line (the queue must be empty before the
// next SSL_* call on this thread, or a later SSL_get_error would report a stale error).
std::string error_queue_text() {
  std::string s;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!s.empty()) s += "; ";
    s += buf;
  }
  return s;
}

bool is_ip_literal(const std::string& name) {
  unsigned char buf[16];
  return inet_pton(AF_INET, name.c_str(), buf) == 1 || inet_pton(AF_INET6, name.c_str(), buf) == 1;
}

}  // namespace

// OpenSSL hands each new session (a TLS 1.3 ticket, or a TLS 1.2 session) here. A copy is kept:
// the object handed over stays the connection's current session, and SSL_free of a connection
// closed without a TLS close_notify (we QUIT and close TCP) marks that object not resumable
// (ssl_clear_bad_session), which would spoil the cache's newest ticket of every connection.
int on_new_session(SSL* ssl, SSL_SESSION* session) {
  auto* c = static_cast<Client*>(SSL_get_app_data(ssl));
  if (c == nullptr || c->peer_.empty() || !SSL_SESSION_is_resumable(session)) return 0;
  if (SSL_SESSION* copy = SSL_SESSION_dup(session)) c->ctx_->keep_ticket(c->peer_, copy);
  return 0;  // the original is not ours
}

SSL_SESSION* ClientContext::take_ticket(const std::string& peer) const {
  auto it = tickets_.find(peer);
  if (it == tickets_.end()) return nullptr;
  SSL_SESSION* s = it->second.back();  // the newest
  it->second.pop_back();
  --ticket_count_;
  if (it->second.empty()) tickets_.erase(it);
  return s;
}

void ClientContext::keep_ticket(const std::string& peer, SSL_SESSION* ticket) const {
  auto& q = tickets_[peer];
  if (q.size() >= kTicketsPerPeer) {  // the oldest of this peer goes
    SSL_SESSION_free(q.front());
    q.pop_front();
    --ticket_count_;
  }
  q.push_back(ticket);
  ++ticket_count_;
  while (ticket_count_ > kMaxTickets) {
    // Full: the oldest ticket of some other peer goes (a bound on memory, not an LRU).
    auto victim = tickets_.begin();
    if (victim->first == peer && tickets_.size() > 1) victim = std::next(victim);
    SSL_SESSION_free(victim->second.front());
    victim->second.pop_front();
    --ticket_count_;
    if (victim->second.empty()) tickets_.erase(victim);
  }
}

size_t ClientContext::tickets() const {
  return ticket_count_;
}

core::Expected<std::shared_ptr<const ClientContext>, std::string> ClientContext::create(
    const ClientOptions& opt) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) return core::unexpected("SSL_CTX_new: " + error_queue_text());
  // Smaller buffers per connection, and no renegotiation surprises from a memory BIO.
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  // Tickets are kept by ClientContext (per MX), not in OpenSSL's internal cache.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx, on_new_session);
  if (opt.verify_peer) {
    bool loaded = opt.ca_file.empty()
                      ? SSL_CTX_set_default_verify_paths(ctx) == 1
                      : SSL_CTX_load_verify_locations(ctx, opt.ca_file.c_str(), nullptr) == 1;
    if (loaded && !opt.ca_file.empty() && opt.default_paths_too)
      loaded = SSL_CTX_set_default_verify_paths(ctx) == 1;
    if (!loaded) {
      std::string err = "cannot load CA certificates" +
                        (opt.ca_file.empty() ? "" : " from " + opt.ca_file) + ": " +
                        error_queue_text();
      SSL_CTX_free(ctx);
      return core::unexpected(std::move(err));
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  } else {
    // Opportunistic TLS (RFC 7435): any encryption beats clear text, so old servers that only
    // speak TLS 1.0/1.1 are accepted (OpenSSL 3 wants security level 0 for those).
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
    SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION);
    SSL_CTX_set_security_level(ctx, 0);
  }
  ERR_clear_error();
  return std::shared_ptr<const ClientContext>(new ClientContext(ctx, opt));
}

ClientContext::~ClientContext() {
  for (auto& [peer, q] : tickets_)
    for (SSL_SESSION* s : q)
      SSL_SESSION_free(s);
  SSL_CTX_free(ctx_);
}

Client::Client(std::shared_ptr<const ClientContext> ctx, std::string_view server_name,
               std::string peer)
    : ctx_(std::move(ctx)), peer_(std::move(peer)) {
  ssl_ = SSL_new(ctx_->native());
  rbio_ = BIO_new(BIO_s_mem());
  wbio_ = BIO_new(BIO_s_mem());
  if (ssl_ == nullptr || rbio_ == nullptr || wbio_ == nullptr) {
    BIO_free(rbio_);
    BIO_free(wbio_);
    rbio_ = wbio_ = nullptr;
    fail("out of memory", 0);
    return;
  }
  // An empty read BIO means "no data yet", not end of file.
  BIO_set_mem_eof_return(rbio_, -1);
  BIO_set_mem_eof_return(wbio_, -1);
  SSL_set_bio(ssl_, rbio_, wbio_);  // ssl_ owns both from here
  SSL_set_connect_state(ssl_);
  SSL_set_app_data(ssl_, this);
  if (!peer_.empty()) {
    if (SSL_SESSION* t = ctx_->take_ticket(peer_)) {
      SSL_set_session(ssl_, t);  // takes its own reference
      SSL_SESSION_free(t);
    }
  }
  const std::string name(server_name);
  if (!name.empty() && !is_ip_literal(name)) SSL_set_tlsext_host_name(ssl_, name.c_str());
  if (ctx_->options().verify_peer && !name.empty()) SSL_set1_host(ssl_, name.c_str());
}

Client::~Client() {
  SSL_free(ssl_);  // frees both BIOs
}

void Client::start() {
  if (state_ != State::Idle) return;
  state_ = State::Handshaking;
  drive();
}

void Client::fail(const char* what, int ssl_error) {
  state_ = State::Failed;
  error_ = what;
  if (ssl_error != 0) error_ += " (SSL error " + std::to_string(ssl_error) + ")";
  std::string q = error_queue_text();
  if (!q.empty()) error_ += ": " + q;
  if (ssl_ != nullptr) {
    const long v = SSL_get_verify_result(ssl_);
    if (ctx_->options().verify_peer && v != X509_V_OK) {
      verify_error_ = X509_verify_cert_error_string(v);
      error_ += ": certificate: " + verify_error_;
    }
  }
}

void Client::collect_output() {
  if (wbio_ == nullptr) return;
  const size_t n = BIO_ctrl_pending(wbio_);
  if (n == 0) return;
  if (cipher_off_ == cipher_.size()) {
    cipher_.clear();
    cipher_off_ = 0;
  }
  const size_t at = cipher_.size();
  cipher_.resize(at + n);
  const int got = BIO_read(wbio_, cipher_.data() + at, static_cast<int>(n));
  cipher_.resize(at + static_cast<size_t>(std::max(got, 0)));
}

void Client::drive() {
  if (state_ == State::Handshaking) {
    ERR_clear_error();
    const int r = SSL_do_handshake(ssl_);
    if (r == 1) {
      state_ = State::Established;
      version_ = SSL_get_version(ssl_);
      cipher_name_ = SSL_CIPHER_get_name(SSL_get_current_cipher(ssl_));
      resumed_ = SSL_session_reused(ssl_) == 1;
    } else {
      const int e = SSL_get_error(ssl_, r);
      if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) fail("TLS handshake failed", e);
    }
  }
  if (state_ == State::Established) {
    // Decrypt everything available (TLS 1.3 session tickets are consumed here too).
    for (;;) {
      char buf[16384];
      ERR_clear_error();
      const int n = SSL_read(ssl_, buf, sizeof buf);
      if (n > 0) {
        if (plain_off_ == plain_.size()) {
          plain_.clear();
          plain_off_ = 0;
        }
        plain_.append(buf, static_cast<size_t>(n));
        continue;
      }
      const int e = SSL_get_error(ssl_, n);
      if (e == SSL_ERROR_ZERO_RETURN) {
        state_ = State::Closed;  // close_notify
      } else if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
        fail("TLS record error", e);
      }
      break;
    }
  }
  collect_output();  // handshake messages, alerts, or a reply to a key update
}

void Client::feed_cipher(std::string_view bytes) {
  if (state_ != State::Handshaking && state_ != State::Established) return;
  while (!bytes.empty()) {
    const int n =
        BIO_write(rbio_, bytes.data(), static_cast<int>(std::min<size_t>(bytes.size(), 1 << 30)));
    if (n <= 0) {
      fail("cannot buffer received bytes", 0);
      return;
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  drive();
}

bool Client::write_plain(std::string_view bytes) {
  if (state_ != State::Established) return false;
  if (bytes.empty()) return true;
  ERR_clear_error();
  // A memory BIO takes everything: SSL_write writes all or fails.
  const int n = SSL_write(ssl_, bytes.data(), static_cast<int>(bytes.size()));
  if (n <= 0) {
    fail("TLS write failed", SSL_get_error(ssl_, n));
    return false;
  }
  collect_output();
  return true;
}

void Client::consume_cipher(size_t n) {
  cipher_off_ += std::min(n, cipher_.size() - cipher_off_);
  if (cipher_off_ == cipher_.size()) {
    cipher_.clear();
    cipher_off_ = 0;
  }
}

void Client::consume_plain(size_t n) {
  plain_off_ += std::min(n, plain_.size() - plain_off_);
  if (plain_off_ == plain_.size()) {
    plain_.clear();
    plain_off_ = 0;
  }
}

}  // namespace mxp::tls
