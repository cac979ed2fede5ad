#include "pipeline/session_slot.hpp"

#include "verdict/provider.hpp"

#include <cstdio>

namespace mxp::pipeline {

using loop::TimePoint;

Verifier::SessionSlot::SessionSlot(Verifier& v, Domain& d, const sched::Grant& g,
                                   const smtp::SessionConfig& cfg)
    : v_(v),
      d_(d),
      sid_(g.session),
      group_(g.group),
      target_(d.target),
      address_(d.target),
      cfg_(cfg),
      session_(cfg),
      source_id_(g.source) {
  if (v.proxies_) {
    loop::Endpoint mx = target().address;
    mx.set_port(v.cfg_.smtp_port);
    leg_ = std::make_unique<ProxyLeg>(v.proxies_->url(g.source), mx);
    proxy_ = g.source;
    v.proxies_->note_session(proxy_);
  } else if (!v.cfg_.sources.empty()) {
    const loop::Endpoint& ep = v.cfg_.sources[g.source].endpoint;
    // Only a source of the target's family can reach it. A pool with both families may be
    // granted a source of the other family: the same host's address of the source's family
    // is used then, if it has one; else the kernel picks the address (docs/usage.md).
    if (ep.family() != target().address.family()) {
      const auto& targets = d.answer.targets;
      for (size_t i = 0; i < targets.size(); ++i)
        if (targets[i].host == target().host && targets[i].address.family() == ep.family()) {
          address_ = i;
          break;
        }
    }
    if (ep.family() == address().address.family()) {
      source_ = ep;
      source_ip_ = ep.ip_string();
    }
  }
  address_ip_ = address().address.ip_string();
  if (v.cfg_.transcripts) session_.set_transcript(&SessionSlot::on_line, this);
  session_.set_sender(v.first_sender(group_));
}

std::string_view Verifier::SessionSlot::provider() {
  // The greeting is in by the first outcome that reached the server; an outcome before it
  // (a failed connect) is not cached, so that a later greeting still counts.
  if (provider_known_) return provider_;
  const std::string_view p = verdict::identify_provider(target().host, banner(), d_.name);
  if (!banner().empty()) {
    provider_ = p;
    provider_known_ = true;
  }
  return p;
}

void Verifier::SessionSlot::begin(const std::vector<sched::ItemRef>& refs) {
  TimePoint now = v_.loop_.now();
  stage_since_ = now;
  if (v_.cfg_.on_session) v_.cfg_.on_session();
  add(refs, now);
  session_.start(now);
  loop::ConnectOptions co;
  co.peer = address().address;
  co.peer.set_port(v_.cfg_.smtp_port);
  co.source = source_;
  if (v_.cfg_.transcripts) {
    started_at_ = now;
    note("connecting to " + address().host + " [" + co.peer.to_string() + "]" +
         (source_ip_.empty() ? "" : " from " + source_ip_) +
         (leg_ ? " through " + leg_->display() : ""));
  }
  if (leg_) co.peer = leg_->proxy_endpoint();  // the connect stage covers the SOCKS5 handshake
  // The session's own deadline is the connect timeout; the loop's is a backstop.
  co.timeout = cfg_.timeouts[0] + std::chrono::seconds(5);
  auto r = v_.loop_.connect(co, *this);
  // Out of file descriptors or memory is ours, neither the server's nor the proxy's: the
  // recipients go back untouched and we open fewer sessions at once (back-pressure on us).
  const bool local =
      r.status == loop::Status::TooManyOpenFiles || r.status == loop::Status::NoMemory;
  if (local) {
    ended_ = true;
    for (Item* item : items_)
      if (item && item->attempts) --item->attempts;
    v_.on_local_failure(r.status);
    v_.session_done(this, sched::SessionEnd::SourceFailed);
    return;
  }
  if (r.status != loop::Status::Ok && leg_) {
    proxy_lost("connect: " + std::string(loop::to_string(r.status)));
    return;
  }
  if (r.status != loop::Status::Ok) {
    connect_failed_ = true;
    connect_status_ = r.status;
    note("connect failed: " + std::string(loop::to_string(r.status)));
    session_.on_closed(now);
  } else {
    conn_ = r.id;
    conn_open_ = true;
  }
  pump();
}

void Verifier::SessionSlot::abort() {
  drop_doubt();
  if (conn_open_) v_.loop_.close(conn_, loop::CloseMode::Abort);
  conn_open_ = false;
  if (timer_armed_) v_.loop_.cancel_timer(timer_);
  timer_armed_ = false;
}

void Verifier::SessionSlot::add(const std::vector<sched::ItemRef>& refs, TimePoint now) {
  for (const auto& ref : refs) {
    Item* item = v_.items_[ref.key].get();
    item->sid = ref.id;
    ++item->attempts;
    if (!item->started) item->started = true, item->first_attempt = now;
    uint64_t index = items_.size();
    items_.push_back(item);
    if (watched(*item) && !transcript_.text.empty()) replay(*item);
    // The catch-all probe goes in a transaction of its own: servers judge a transaction's
    // recipients together (Outlook: "452 4.5.3 Recipients belong to multiple regions").
    session_.add_recipient(item->wire(), index, now, item->probe || item->check);
  }
}

void Verifier::SessionSlot::on_line(void* self, smtp::Direction dir, std::string_view line) {
  auto* slot = static_cast<SessionSlot*>(self);
  slot->note_tls(slot->v_.loop_.now());  // before the EHLO sent inside TLS at once
  const size_t from = slot->transcript_.text.size();
  smtp::TranscriptBuffer::append(&slot->transcript_, dir, line);
  slot->streamed(from);
  slot->time_line(dir, line);
}

void Verifier::SessionSlot::streamed(size_t from) {
  if (!v_.cfg_.on_transcript_line) return;
  std::string_view added = std::string_view(transcript_.text).substr(from);
  if (!added.empty() && added.back() == '\n') added.remove_suffix(1);
  for (Item* item : items_)
    if (item && watched(*item)) v_.cfg_.on_transcript_line(item->id, added);
}

void Verifier::SessionSlot::note(const std::string& text) {
  if (!v_.cfg_.transcripts) return;
  const size_t from = transcript_.text.size();
  transcript_.text += "* ";
  transcript_.text += text;
  transcript_.text += '\n';
  streamed(from);
}

std::string Verifier::SessionSlot::ms_since(TimePoint since, TimePoint now) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f ms",
                std::chrono::duration<double, std::milli>(now - since).count());
  return b;
}

void Verifier::SessionSlot::time_line(smtp::Direction dir, std::string_view line) {
  const TimePoint now = v_.loop_.now();
  if (dir == smtp::Direction::Sent) {
    sent_.push_back({std::string(line.substr(0, line.find(' '))), now});
    return;
  }
  if (line.size() >= 4 && line[3] == '-') return;  // more lines of this reply follow
  if (!greeted_) {
    greeted_ = true;
    return note("greeting after " + ms_since(connected_at_, now));
  }
  if (sent_.empty()) return;
  const auto [verb, at] = std::move(sent_.front());
  sent_.pop_front();
  note(verb + " answered in " + ms_since(at, now));
}

bool Verifier::SessionSlot::watched(const Item& item) const {
  return !item.probe && v_.cfg_.watched && v_.cfg_.on_transcript_line && v_.cfg_.watched(item.id);
}

void Verifier::SessionSlot::replay(const Item& item) {
  std::string_view text = transcript_.text;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    v_.cfg_.on_transcript_line(item.id, text.substr(0, nl));
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
  }
}

void Verifier::SessionSlot::on_connect(loop::ConnId, loop::Status status) {
  TimePoint now = v_.loop_.now();
  if (leg_) {
    if (status != loop::Status::Ok) conn_open_ = false;  // the id is dead
    on_leg(leg_->on_connect(v_.loop_, conn_, status), {});
    return;
  }
  if (status == loop::Status::Ok) {
    connected(now);
  } else {
    conn_open_ = false;
    connect_failed_ = true;
    connect_status_ = status;
    note("connect failed after " + ms_since(started_at_, now) + ": " +
         std::string(loop::to_string(status)));
    ++v_.stats_.connect_failures;
    session_.on_closed(now);
  }
  pump();
}

void Verifier::SessionSlot::on_data(loop::ConnId, std::string_view bytes) {
  if (leg_ && !leg_->ready()) {
    const auto step = leg_->on_data(v_.loop_, conn_, bytes);
    if (!on_leg(step, bytes)) return;
  }
  tls_.on_data(session_, bytes, v_.loop_.now());  // plain, or decrypted once TLS is up
  pump();
}

void Verifier::SessionSlot::on_closed(loop::ConnId, loop::Status status) {
  conn_open_ = false;
  if (leg_ && !leg_->ready()) {
    on_leg(leg_->on_closed(status), {});
    return;
  }
  if (doubt_ != Doubt::None) {  // a check is under way: it decides, as a close now
    doubt_ = Doubt::Closed;
    return;
  }
  if (leg_ && !session_.done() && session_.undecided() > 0) return doubt_proxy(Doubt::Closed);
  if (!session_.done() && !session_.want_close())
    note("closed by the server (" + std::string(loop::to_string(status)) + ") waiting for " +
         awaited_name(session_.stage()));
  tls_.on_closed(session_, v_.loop_.now());
  pump();
}

void Verifier::SessionSlot::on_timer(loop::TimerId, uint64_t) {
  timer_armed_ = false;
  // The connect stage ran out in the proxy's greeting or authentication: the proxy's fault.
  // Waiting for the CONNECT reply is the mail server's connect timeout (the proxy connects).
  if (leg_ && !leg_->ready() && !leg_->awaiting_target())
    return proxy_lost("no SOCKS5 answer within the connect timeout");
  // A silent tunnel: a slow server, or a proxy that hung? The check decides first.
  if (doubt_ != Doubt::None) return;
  if (leg_ && leg_->ready() && !session_.done() && session_.undecided() > 0)
    return doubt_proxy(Doubt::Timeout);
  if (session_.next_deadline() && *session_.next_deadline() <= v_.loop_.now())
    note("timed out after " + ms_since(stage_started(), v_.loop_.now()) + " waiting for " +
         awaited_name(session_.stage()));
  session_.on_timeout(v_.loop_.now());
  pump();
}

bool Verifier::SessionSlot::on_leg(ProxyLeg::Step step, std::string_view rest) {
  TimePoint now = v_.loop_.now();
  switch (step) {
    case ProxyLeg::Step::Pending:
      return false;
    case ProxyLeg::Step::Ready:
      connected(now);
      if (rest.empty()) pump();
      return !rest.empty();
    case ProxyLeg::Step::ProxyFailed:
      proxy_lost(leg_->why());
      return false;
    case ProxyLeg::Step::TargetFailed:  // as if our own connect to the MX had failed
      note("connect through the proxy failed after " + ms_since(started_at_, now));
      if (conn_open_) v_.loop_.close(conn_, loop::CloseMode::Abort);
      conn_open_ = false;
      connect_failed_ = true;
      ++v_.stats_.connect_failures;
      session_.on_closed(now);
      pump();
      return false;
  }
  return false;
}

void Verifier::SessionSlot::doubt_proxy(Doubt kind) {
  if (kind == Doubt::Closed && timer_armed_) v_.loop_.cancel_timer(timer_);
  if (kind == Doubt::Closed) timer_armed_ = false;
  doubt_ = kind;
  ask_ticket_ = v_.proxies_->ask(proxy_, [this](bool up) {
    const Doubt d = doubt_;
    doubt_ = Doubt::None;
    if (!up) return proxy_lost(v_.proxies_->health().last_error(proxy_));
    if (d == Doubt::Closed)
      session_.on_closed(v_.loop_.now());
    else
      session_.on_timeout(v_.loop_.now());  // nothing if a reply moved the deadline on
    pump();
  });
}

void Verifier::SessionSlot::drop_doubt() {
  if (doubt_ != Doubt::None) v_.proxies_->cancel(ask_ticket_);
  doubt_ = Doubt::None;
}

void Verifier::SessionSlot::proxy_lost(const std::string& why) {
  if (conn_open_) v_.loop_.close(conn_, loop::CloseMode::Abort);
  conn_open_ = false;
  if (timer_armed_) v_.loop_.cancel_timer(timer_);
  timer_armed_ = false;
  ended_ = true;
  drop_doubt();
  for (Item* item : items_)
    if (item && item->attempts) --item->attempts;
  v_.proxies_->failed(proxy_, why);
  v_.session_done(this, sched::SessionEnd::SourceFailed);
}

void Verifier::SessionSlot::pump() {
  if (ended_) return;
  TimePoint now = v_.loop_.now();
  // STARTTLS answered 220: the handshake starts before anything else goes out.
  if (conn_open_ && tls_.wants_start(session_)) {
    tls_started_at_ = now;
    tls_noted_ = false;
    note("TLS handshake with " + target().host);
    tls_.start(session_, v_.tls_context(), target().host,
               target().address.ip_string() + "|" + target().host, now);
  }
  note_tls(now);
  if (v_.cfg_.on_stage) {
    const smtp::Stage st = session_.stage();
    if (st != stage_ || session_.done()) {
      v_.cfg_.on_stage(stage_, now - stage_since_);
      stage_ = st;
      stage_since_ = now;
    }
  }
  // A server of this group refused the senders before this one: later sessions start here.
  if (session_.sender_index() > 0) v_.note_sender(group_, session_.sender_index());
  while (auto r = session_.pop_result()) {
    Item* item = items_[r->id];
    items_[r->id] = nullptr;
    v_.on_outcome(*this, item, r->outcome);
  }
  // Every recipient decided: more of the domain on this connection if the scheduler allows
  // (recipient, rejection and RCPT-rate budgets), else say goodbye.
  if (session_.undecided() == 0 && session_.accepting()) {
    auto& refs = v_.refs_;
    refs.clear();
    if (d_.target == target_ && v_.sched_.refill(sid_, now, refs) > 0) add(refs, now);
    if (session_.undecided() == 0) session_.finish(now);
  }
  if (conn_open_) {
    std::string_view out = tls_.output(session_);
    if (!out.empty()) {
      v_.loop_.send(conn_, out);
      tls_.consume(session_, out.size());
    }
  }
  if (session_.done() || (!conn_open_ && session_.want_close())) {
    // After the reply to QUIT the server has closed or is closing: a reset instead of our FIN
    // leaves no TIME_WAIT socket on the server (it closed first, so it would keep one for a
    // minute per session) and saves a segment each way, as Postfix's smtp-source does. Any other
    // end (a timeout, a 421, a local refusal) closes gracefully so that queued bytes still go.
    if (conn_open_)
      v_.loop_.close(conn_,
                     session_.quit_answered() ? loop::CloseMode::Abort : loop::CloseMode::Graceful);
    conn_open_ = false;
    if (timer_armed_) v_.loop_.cancel_timer(timer_);
    timer_armed_ = false;
    ended_ = true;
    drop_doubt();  // a late reply finished the session while its proxy was being checked
    // Undecided recipients cannot exist here; the scheduler requeues any it still has.
    v_.session_done(this,
                    connect_failed_ ? sched::SessionEnd::ConnectFailed : sched::SessionEnd::Normal);
    return;
  }
  auto deadline = session_.next_deadline();
  if (deadline != armed_for_ || !timer_armed_) {
    if (timer_armed_) v_.loop_.cancel_timer(timer_);
    timer_armed_ = false;
    if (deadline) {
      timer_ = v_.loop_.add_timer(*deadline, *this);
      timer_armed_ = true;
      armed_for_ = deadline;
    }
  }
}

void Verifier::SessionSlot::note_tls(TimePoint now) {
  if (tls_noted_ || tls_started_at_ == TimePoint{} || (!tls_.established() && tls_.error().empty()))
    return;
  tls_noted_ = true;
  if (tls_.established())
    note("TLS started: " + tls_.version() + " " + tls_.cipher() + " in " +
         ms_since(tls_started_at_, now) + (tls_.resumed() ? " (resumed)" : ""));
  else
    note("TLS handshake failed after " + ms_since(tls_started_at_, now) + ": " + tls_.error());
}

void Verifier::SessionSlot::connected(TimePoint now) {
  connected_at_ = now;
  note("connected in " + ms_since(started_at_, now));
  session_.on_connected(now);
}

TimePoint Verifier::SessionSlot::stage_started() const {
  const auto d = session_.next_deadline();
  if (!d) return v_.loop_.now();
  return *d - cfg_.timeouts[static_cast<int>(session_.stage())];
}

std::string Verifier::SessionSlot::peer() const {
  loop::Endpoint ep = address().address;
  ep.set_port(v_.cfg_.smtp_port);
  return ep.to_string();
}

}  // namespace mxp::pipeline
