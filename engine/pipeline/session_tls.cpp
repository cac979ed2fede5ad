#include "pipeline/session_tls.hpp"

namespace mxp::pipeline {

void SessionTls::start(smtp::Session& s, std::shared_ptr<const tls::ClientContext> ctx,
                       std::string_view server_name, std::string peer, smtp::TimePoint now) {
  if (client_ || !s.want_tls()) return;
  client_ = std::make_unique<tls::Client>(std::move(ctx), server_name, std::move(peer));
  client_->start();
  if (client_->failed()) {
    reported_ = true;
    s.on_tls_failed(now);
  }
}

void SessionTls::on_data(smtp::Session& s, std::string_view bytes, smtp::TimePoint now) {
  if (!client_) {
    s.on_bytes(bytes, now);  // clear text (before STARTTLS, or without it)
    return;
  }
  client_->feed_cipher(bytes);
  deliver(s, now);
}

void SessionTls::deliver(smtp::Session& s, smtp::TimePoint now) {
  using State = tls::Client::State;
  if (!reported_) {
    if (client_->state() == State::Handshaking) return;
    reported_ = true;
    if (client_->established()) {
      s.on_tls_established(now);  // queues the new EHLO
    } else {
      s.on_tls_failed(now);
      return;
    }
  }
  if (!client_->plain().empty()) {
    s.on_bytes(client_->plain(), now);
    client_->consume_plain(client_->plain().size());
  }
  // A broken record or the server's close_notify: the connection is over for the session.
  if (client_->failed() || client_->state() == State::Closed) s.on_closed(now);
}

void SessionTls::on_closed(smtp::Session& s, smtp::TimePoint now) {
  if (client_ && !reported_) {
    reported_ = true;
    s.on_tls_failed(now);
  }
  s.on_closed(now);
}

std::string_view SessionTls::output(smtp::Session& s) {
  if (!client_) return s.pending_output();
  if (client_->established() && !s.pending_output().empty()) {
    if (!client_->write_plain(s.pending_output())) return {};
    s.consume_output(s.pending_output().size());
  }
  return client_->pending_cipher();
}

void SessionTls::consume(smtp::Session& s, size_t n) {
  if (client_)
    client_->consume_cipher(n);
  else
    s.consume_output(n);
}

}  // namespace mxp::pipeline
