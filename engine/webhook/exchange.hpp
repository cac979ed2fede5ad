// One delivery attempt's bytes on its connection: the HTTP/1.1 exchange (http::ClientExchange)
// in clear for an http:// URL, or inside TLS (tls::Client) for an https:// one. Sans-I/O like
// both: the sender writes pending_output() to the socket and feeds what it reads; the outcome is
// the response's status or an error. With TLS, the request is encrypted only once the handshake
// is done, so nothing of a delivery reaches a server whose certificate did not verify.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "http/client.hpp"
#include "tls/client.hpp"

namespace mxp::webhook {

class Exchange {
 public:
  // In clear: the request is the first output.
  explicit Exchange(std::unique_ptr<http::ClientExchange> http);
  // Inside TLS: `tls` is started here (its ClientHello is the first output); the request goes
  // once the handshake is done.
  Exchange(std::unique_ptr<http::ClientExchange> http, std::unique_ptr<tls::Client> tls);
  ~Exchange();
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;

  // Bytes for the socket: the request, or TLS records.
  std::string_view pending_output() const;
  void consume_output(size_t n);
  // What the socket gave.
  void feed(std::string_view bytes);
  // The server closed the connection (TCP). Inside TLS, a close without TLS's close_notify ends
  // a response as the close does in clear: most HTTPS servers close so, and only the status,
  // authenticated by TLS like every byte before the close, is used, never the body that a
  // forged close could cut short.
  void eof();

  bool finished() const { return failed_ || http_->finished(); }
  // Finished with a response: its status (any class).
  bool answered() const { return !failed_ && http_->state() == http::ClientExchange::State::Done; }
  int status() const { return http_->status(); }
  // Finished without one: why, e.g. "connection closed without a response" or
  // "tls: certificate verify failed: self-signed certificate".
  std::string error() const { return failed_ ? error_ : http_->error(); }
  // TLS whose handshake is not done (for the timeout's message).
  bool handshaking() const { return tls_ && !tls_->established() && !failed_; }
  const tls::Client* tls() const { return tls_.get(); }

 private:
  void pump();  // moves plaintext between TLS and HTTP, after any input
  void fail(std::string why);

  std::unique_ptr<http::ClientExchange> http_;
  std::unique_ptr<tls::Client> tls_;
  bool failed_ = false;
  std::string error_;
};

}  // namespace mxp::webhook
