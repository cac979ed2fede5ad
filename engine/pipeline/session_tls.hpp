// The TLS layer of one SMTP connection: between the loop's bytes and the smtp::Session's bytes.
// Until the session asks for TLS (STARTTLS answered 220) bytes pass through untouched; after it,
// what the socket gives is decrypted for the session and what the session writes is encrypted.
// Used by the Verifier's SessionSlot from on_data() and pump(); owns no socket.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "smtp/session.hpp"
#include "tls/client.hpp"

namespace mxp::pipeline {

class SessionTls {
 public:
  // The session waits for a handshake that has not started: call start().
  bool wants_start(const smtp::Session& s) const { return s.want_tls() && !client_; }
  // Begins the handshake (the ClientHello is then in output()). `server_name`: the MX host name,
  // sent as SNI; `peer`: the ticket cache's key for this server (its address and name).
  void start(smtp::Session& s, std::shared_ptr<const tls::ClientContext> ctx,
             std::string_view server_name, std::string peer, smtp::TimePoint now);

  // Bytes read from the socket.
  void on_data(smtp::Session& s, std::string_view bytes, smtp::TimePoint now);
  // The connection closed (or was reset). During the handshake this is a failed handshake (a
  // server that drops the ClientHello), which the pipeline handles as such.
  void on_closed(smtp::Session& s, smtp::TimePoint now);
  // What to write to the socket now (the session's output, encrypted once TLS is up, and
  // handshake records); then consume(n) for the n bytes written.
  std::string_view output(smtp::Session& s);
  void consume(smtp::Session& s, size_t n);

  bool established() const { return client_ && client_->established(); }
  // "TLSv1.3" and the cipher suite once established (empty otherwise).
  const std::string& version() const { return client_ ? client_->version() : empty_; }
  const std::string& cipher() const { return client_ ? client_->cipher() : empty_; }
  const std::string& error() const { return client_ ? client_->error() : empty_; }
  bool resumed() const { return client_ && client_->resumed(); }

 private:
  void deliver(smtp::Session& s, smtp::TimePoint now);  // decrypted bytes to the session

  std::unique_ptr<tls::Client> client_;
  bool reported_ = false;  // the session heard how the handshake ended
  static inline const std::string empty_;
};

}  // namespace mxp::pipeline
