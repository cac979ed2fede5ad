// A delivery attempt's bytes, in clear or inside TLS (exchange.hpp): plaintext moves between
// tls::Client and http::ClientExchange here; neither knows of the other.
#include "webhook/exchange.hpp"

namespace mxp::webhook {

Exchange::Exchange(std::unique_ptr<http::ClientExchange> http) : http_(std::move(http)) {}

Exchange::Exchange(std::unique_ptr<http::ClientExchange> http, std::unique_ptr<tls::Client> tls)
    : http_(std::move(http)), tls_(std::move(tls)) {
  tls_->start();
  pump();  // a client that could not even start fails now
}

Exchange::~Exchange() = default;

// Failed, TLS may still have an alert to send (e.g. bad_certificate): the server learns why.
std::string_view Exchange::pending_output() const {
  return tls_ ? tls_->pending_cipher() : http_->pending_output();
}

void Exchange::consume_output(size_t n) {
  if (tls_) {
    tls_->consume_cipher(n);
  } else {
    http_->consume_output(n);
  }
}

void Exchange::fail(std::string why) {
  if (finished()) return;
  failed_ = true;
  error_ = std::move(why);
}

void Exchange::feed(std::string_view bytes) {
  if (finished()) return;
  if (!tls_) return http_->feed(bytes);
  tls_->feed_cipher(bytes);
  pump();
}

void Exchange::pump() {
  // The request is encrypted only once the handshake is done (write_plain refuses before).
  if (tls_->established()) {
    const std::string_view out = http_->pending_output();
    if (!out.empty() && tls_->write_plain(out)) http_->consume_output(out.size());
  }
  if (const std::string_view in = tls_->plain(); !in.empty()) {
    http_->feed(in);
    tls_->consume_plain(in.size());
  }
  // close_notify: the server's end of the response, as the close is in clear.
  if (tls_->state() == tls::Client::State::Closed) http_->eof();
  if (!tls_->failed()) return;
  // After the answer, a broken record changes nothing (fail() ignores it). A certificate that
  // did not verify says so in OpenSSL's words; anything else (a server that does not speak TLS,
  // an alert, a broken record) as tls::Client reports it.
  if (!tls_->verify_error().empty())
    return fail("tls: certificate verify failed: " + tls_->verify_error());
  std::string_view why = tls_->error();
  if (why.starts_with("TLS ")) why.remove_prefix(4);
  fail("tls: " + std::string(why));
}

void Exchange::eof() {
  if (finished()) return;
  if (handshaking()) return fail("tls: connection closed during the handshake");
  http_->eof();
}

}  // namespace mxp::webhook
