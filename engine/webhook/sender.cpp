// A job's webhook deliveries on the engine's loop (sender.hpp). The bytes come from the sans-I/O
// Exchange (HTTP/1.1, inside TLS for https://); this file only connects, moves them and keeps
// the outcome.
#include "webhook/sender.hpp"

#include <sys/socket.h>

#include "dns/resolver.hpp"

namespace mxp::webhook {

Sender::Sender(loop::Loop& loop, dns::Resolver* resolver, std::unique_ptr<Store> store,
               Config config, uint64_t job, SenderOptions options)
    : loop_(loop),
      resolver_(resolver),
      store_(std::move(store)),
      config_(std::move(config)),
      job_(job),
      o_(std::move(options)) {
  std::string err;
  if (auto u = http::parse_client_url(config_.url, err)) url_ = *u;
  path_ = store_->path();
  load_recent();
}

void Sender::load_recent() {
  auto ds = store_->deliveries(kRecent);
  if (!ds) return store_failed(ds.error().message);
  recent_.assign(ds->rbegin(), ds->rend());  // the journal gives them oldest first
}

Expected<Store*> Sender::store() {
  if (!store_) {
    auto st = Store::open(path_);
    if (!st) return core::unexpected(st.error());
    store_ = std::move(*st);
  }
  return store_.get();
}

Expected<Totals> Sender::totals() {
  if (settled_) return final_totals_;
  return store_->totals();
}

Sender::~Sender() {
  *alive_ = false;
  if (conn_.value) loop_.close(conn_, loop::CloseMode::Abort);
}

Millis Sender::unix_now() {
  return std::chrono::duration_cast<Millis>(std::chrono::system_clock::now().time_since_epoch());
}

void Sender::store_failed(const std::string& what) {
  if (store_error_ == what) return;
  store_error_ = what;
  if (o_.log) o_.log("job " + std::to_string(job_) + " webhook: " + what);
}

void Sender::poll() {
  if (settled_) {
    store_.reset();  // opened again for a reader of the log since the last poll
    return;
  }
  if (unrecorded_ && !record_outcome()) return;
  const auto now = loop_.now();
  if (current_) {
    if (now >= deadline_) {
      const std::string s = std::to_string(o_.attempt_timeout.count() / 1000) + " s";
      finish(0, connected_ && exchange_ && exchange_->handshaking()
                    ? "tls: handshake not done in " + s
                    : "no answer in " + s);
    }
    return;
  }
  if (config_.batch) {
    auto ended = store_->ended();
    if (ended && !*ended) {
      auto waiting = store_->unbatched();
      if (!waiting) return store_failed(waiting.error().message);
      if (*waiting == 0) {
        waiting_since_.reset();
      } else if (!waiting_since_) {
        waiting_since_ = now;
      }
      // Full batches always; a smaller one once its first record waited webhook_interval.
      const bool rest = waiting_since_ && config_.interval.count() > 0 &&
                        now - *waiting_since_ >= config_.interval;
      if (*waiting >= config_.batch || rest) {
        auto made = store_->make_batches(config_.batch, rest, unix_now());
        if (!made) return store_failed(made.error().message);
        waiting_since_.reset();
        if (*made) load_recent();
      }
    }
  }
  auto next = store_->next_pending();
  if (!next) return store_failed(next.error().message);
  if (!*next) return settle();
  if ((*next)->next_try > unix_now()) return;
  start(**next);
}

void Sender::settle() {
  auto ended = store_->ended();
  if (!ended || !*ended) return;
  auto t = store_->totals();
  if (!t) return;
  final_totals_ = *t;
  settled_ = true;
  store_.reset();
}

void Sender::job_ended(const std::string& summary_json) {
  if (settled_) return;  // its end event was made (and sent) before
  if (Status st = store_->end(job_, config_.batch, summary_json, unix_now()); !st)
    return store_failed(st.error().message);
  waiting_since_.reset();
  load_recent();
  poll();
}

void Sender::start(const Delivery& d) {
  current_ = d;
  ++attempt_;
  deadline_ = loop_.now() + o_.attempt_timeout;
  auto body = store_->body(d, job_);
  if (!body) {
    store_failed(body.error().message);
    current_.reset();
    return;
  }
  const int64_t t = std::chrono::duration_cast<std::chrono::seconds>(unix_now()).count();
  const std::string id = std::to_string(job_) + "-" + std::to_string(d.seq);
  request_ =
      http::build_request("POST", url_,
                          {{"User-Agent", o_.user_agent},
                           {"Content-Type", "application/json"},
                           {"Mxprobe-Event", d.kind},
                           {"Mxprobe-Delivery", id},
                           {"Mxprobe-Signature", signature_header(config_.secret, t, *body)}},
                          *body);
  if (url_.host.empty()) return finish(0, "webhook_url cannot be read");
  if (url_.tls && !o_.tls) return finish(0, "https:// is not available: no TLS context");
  // An address, or "localhost" (the loopback, whatever the DNS server says), needs no lookup.
  const std::string host = url_.host == "localhost" ? "127.0.0.1" : url_.host;
  if (auto ep = loop::Endpoint::parse(host, url_.port)) return resolved({*ep}, "");
  if (!resolver_) return finish(0, "cannot resolve " + url_.host + ": no resolver");
  lookup(attempt_, AF_INET);
}

// The host's IPv4 addresses, else its IPv6 ones.
// `attempt`: the answer is for that attempt only (a late one after its timeout is dropped).
void Sender::lookup(uint64_t attempt, int family) {
  std::weak_ptr<bool> alive = alive_;
  resolver_->lookup_addresses(url_.host, family,
                              [this, alive, attempt, family](const dns::RecordsAnswer& a) {
                                if (alive.expired() || !current_ || attempt_ != attempt) return;
                                if (a.answered && a.addresses.empty() && family == AF_INET)
                                  return lookup(attempt, AF_INET6);
                                if (!a.answered) return resolved({}, a.error);
                                if (a.addresses.empty())
                                  return resolved({}, "no address for " + url_.host);
                                resolved(a.addresses, "");
                              });
}

void Sender::resolved(const std::vector<loop::Endpoint>& addrs, const std::string& err) {
  if (addrs.empty()) return finish(0, err);
  loop::Endpoint peer = addrs.front();
  peer.set_port(url_.port);
  // The exchange is made for this address: its TLS session tickets are kept by address and name
  // (tls::ClientContext), and the name is the one sent as SNI and checked in the certificate.
  auto request = std::make_unique<http::ClientExchange>(std::move(request_));
  request_.clear();
  if (url_.tls) {
    exchange_ = std::make_unique<Exchange>(
        std::move(request),
        std::make_unique<tls::Client>(o_.tls, url_.host, peer.to_string() + "|" + url_.host));
  } else {
    exchange_ = std::make_unique<Exchange>(std::move(request));
  }
  connected_ = false;
  loop::ConnectOptions co;
  co.peer = peer;
  co.timeout = o_.attempt_timeout;
  const auto r = loop_.connect(co, *this);
  if (r.status != loop::Status::Ok)
    return finish(0,
                  "connect to " + peer.to_string() + ": " + std::string(loop::to_string(r.status)));
  conn_ = r.id;
}

void Sender::on_connect(loop::ConnId id, loop::Status status) {
  if (!(id == conn_)) return;
  if (status != loop::Status::Ok) {
    conn_ = {};
    return finish(0, "connect: " + std::string(loop::to_string(status)));
  }
  connected_ = true;
  flush();
}

// Whatever the exchange has for the socket: the request, or TLS records (the ClientHello, the
// handshake's end and then the request, an alert).
void Sender::flush() {
  const std::string_view out = exchange_->pending_output();
  if (out.empty()) return;
  if (loop_.send(conn_, out) != loop::Status::Ok) {
    loop_.close(std::exchange(conn_, {}), loop::CloseMode::Abort);
    return finish(0, "send failed");
  }
  exchange_->consume_output(out.size());
}

void Sender::on_data(loop::ConnId id, std::string_view bytes) {
  if (!(id == conn_)) return;
  exchange_->feed(bytes);
  flush();  // e.g. the request, once the handshake is done
  if (!(id == conn_) || !exchange_->finished()) return;  // or the send failed: finished
  // A TLS failure's alert (e.g. bad_certificate), just queued, still goes: the server's log
  // then says why the connection ended. Otherwise nothing more is needed of the connection.
  const bool alert = exchange_->tls() && !exchange_->answered();
  loop_.close(std::exchange(conn_, {}), alert ? loop::CloseMode::Graceful : loop::CloseMode::Abort);
  check_finished();
}

void Sender::on_closed(loop::ConnId id, loop::Status status) {
  if (!(id == conn_)) return;
  conn_ = {};
  if (status == loop::Status::PeerClosed) {
    exchange_->eof();
  } else if (!exchange_->finished()) {
    return finish(0, "connection " + std::string(loop::to_string(status)));
  }
  check_finished();
}

// The exchange is over: its status, or why there is none.
void Sender::check_finished() {
  if (exchange_->answered()) return finish(exchange_->status(), "");
  finish(0, exchange_->error());
}

// The attempt's outcome, kept before anything else happens: a 2xx is the acknowledgement.
void Sender::finish(int status, std::string error) {
  if (!current_) return;
  if (conn_.value) loop_.close(std::exchange(conn_, {}), loop::CloseMode::Abort);
  const Delivery d = *current_;
  current_.reset();
  exchange_.reset();
  request_.clear();
  const Millis now = unix_now();
  const bool acked = status >= 200 && status < 300;
  Millis next{0};
  std::string why = error;
  if (!acked && why.empty())
    why = "HTTP " + std::to_string(status) +
          (status >= 300 && status < 400 ? " (redirects are not followed)" : "");
  if (!acked) {
    // Retries are bounded from the delivery's making (kept in the journal, so a restart does
    // not start the clock again).
    if (auto wait = retry_delay(o_.retry, d.attempts + 1, d.created, now)) next = now + *wait;
  }
  unrecorded_ = Outcome{d.seq, now, status, acked ? "" : why, acked, next};
  const bool recorded = record_outcome();
  if (o_.log && !acked) {
    const std::string id = std::to_string(job_) + "-" + std::to_string(d.seq);
    char wait[64];
    std::snprintf(wait, sizeof wait, "; next try in %.1f s", double((next - now).count()) / 1000);
    o_.log("job " + std::to_string(job_) + " webhook " + id + ": " + why +
           (next.count() ? std::string(wait) : std::string("; giving up (retries ran out)")));
  }
  // The next delivery goes at once (not on the next tick): a backlog of batches drains fast.
  if (acked && recorded) poll();
}

bool Sender::record_outcome() {
  const Outcome& o = *unrecorded_;
  if (Status st = store_->record_attempt(o.seq, o.at, o.status, o.error, o.acked, o.next_try);
      !st) {
    store_failed(st.error().message + " (the attempt's outcome is written again on the next tick)");
    return false;
  }
  // The same change as the journal's (store.cpp), if the delivery is among the last ones.
  for (Delivery& r : recent_) {
    if (r.seq != o.seq) continue;
    ++r.attempts;
    r.last_status = o.status;
    r.last_error = o.error;
    r.last_attempt = o.at;
    r.next_try = o.acked ? Millis{0} : o.next_try;
    r.acked = o.acked ? o.at : Millis{0};
    r.failed = !o.acked && o.next_try.count() == 0;
  }
  unrecorded_.reset();
  if (!store_error_.empty() && o_.log)
    o_.log("job " + std::to_string(job_) + " webhook: the journal takes writes again");
  store_error_.clear();
  return true;
}

}  // namespace mxp::webhook
