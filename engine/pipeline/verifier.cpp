#include "pipeline/verifier.hpp"

#include <algorithm>

namespace mxp::pipeline {

using loop::TimePoint;

struct Verifier::Item {
  uint64_t id = 0, line = 0;
  std::string email;
  address::Address addr;
  std::string wire;  // addr.normalized(), what RCPT TO carries
  bool probe = false;
  uint32_t attempts = 0;
  bool started = false;
  TimePoint first_attempt{};
  verdict::Classification cls;
  Result result;
};

struct Verifier::Domain {
  enum class State : uint8_t { New, Resolving, Ready, Failed };
  enum class Probe : uint8_t { NotStarted, InFlight, Done };
  std::string name;
  State state = State::New;
  dns::MxAnswer answer;
  size_t target = 0;  // the answer's target in use; past the end: every server failed
  std::deque<std::unique_ptr<Item>> queue;
  uint32_t active = 0;
  bool in_runnable = false;
  bool idle = false;
  std::list<Domain*>::iterator idle_it;
  Probe probe = Probe::NotStarted;
  verdict::Classification probe_cls;
  std::vector<std::unique_ptr<Item>> held;  // waiting for the catch-all probe
  // Why the domain cannot be verified (DNS failure, or the last server's failure).
  verdict::Classification failure;
  smtp::Outcome failure_outcome;
  bool failure_has_outcome = false;
};

// One SMTP connection: drives an smtp::Session with the loop's events, and hands each
// recipient's outcome back to the Verifier.
class Verifier::SessionSlot final : public loop::ConnHandler, public loop::TimerHandler {
 public:
  SessionSlot(Verifier& v, Domain& d, size_t target, std::optional<loop::Endpoint> source)
      : v_(v), d_(d), target_(target), source_(source), session_(v.cfg_.session) {
    if (v.cfg_.transcripts) session_.set_transcript(&transcript_);
  }

  Domain& domain() { return d_; }
  const dns::MxTarget& target() const { return d_.answer.targets[target_]; }
  size_t target_index() const { return target_; }
  const std::string& source_ip() const { return source_ip_; }
  const std::string& transcript() const { return transcript_.text; }

  void begin() {
    TimePoint now = v_.loop_.now();
    take_recipients(now);
    session_.start(now);
    loop::ConnectOptions co;
    co.peer = target().address;
    co.peer.set_port(v_.cfg_.smtp_port);
    co.source = source_;
    if (source_) source_ip_ = source_->ip_string();
    // The session's own deadline is the connect timeout; the loop's is a backstop.
    co.timeout = v_.cfg_.session.timeouts[0] + std::chrono::seconds(5);
    auto r = v_.loop_.connect(co, *this);
    if (r.status != loop::Status::Ok) {
      session_.on_closed(now);
    } else {
      conn_ = r.id;
      conn_open_ = true;
    }
    pump();
  }

  void abort() {
    if (conn_open_) v_.loop_.close(conn_, loop::CloseMode::Abort);
    conn_open_ = false;
    if (timer_armed_) v_.loop_.cancel_timer(timer_);
    timer_armed_ = false;
  }

  // Items are owned here while their RCPT is in flight; the session knows them by index.
  std::unique_ptr<Item> take_item(uint64_t index) { return std::move(items_[index]); }

 private:
  void take_recipients(TimePoint now) {
    while (rcpts_ < v_.cfg_.rcpts_per_session && !d_.queue.empty() && d_.target == target_ &&
           session_.accepting()) {
      auto item = std::move(d_.queue.front());
      d_.queue.pop_front();
      ++item->attempts;
      if (!item->started) item->started = true, item->first_attempt = now;
      uint64_t index = items_.size();
      std::string_view wire = item->wire;
      items_.push_back(std::move(item));
      ++rcpts_;
      session_.add_recipient(wire, index, now);
    }
  }

  void on_connect(loop::ConnId, loop::Status status) override {
    TimePoint now = v_.loop_.now();
    if (status == loop::Status::Ok) {
      session_.on_connected(now);
    } else {
      conn_open_ = false;
      ++v_.stats_.connect_failures;
      session_.on_closed(now);
    }
    pump();
  }
  void on_data(loop::ConnId, std::string_view bytes) override {
    session_.on_bytes(bytes, v_.loop_.now());
    pump();
  }
  void on_closed(loop::ConnId, loop::Status) override {
    conn_open_ = false;
    session_.on_closed(v_.loop_.now());
    pump();
  }
  void on_timer(loop::TimerId, uint64_t) override {
    timer_armed_ = false;
    session_.on_timeout(v_.loop_.now());
    pump();
  }

  // Carries out what the session asks for, after every event.
  void pump() {
    if (ended_) return;
    TimePoint now = v_.loop_.now();
    while (auto r = session_.pop_result())
      v_.on_outcome(*this, take_item(r->id).release(), r->outcome);
    // Every recipient decided: reuse the connection for more of the domain, or say goodbye.
    if (session_.undecided() == 0 && session_.accepting()) {
      take_recipients(now);
      if (session_.undecided() == 0) session_.finish(now);
    }
    if (conn_open_) {
      std::string_view out = session_.pending_output();
      if (!out.empty()) {
        v_.loop_.send(conn_, out);
        session_.consume_output(out.size());
      }
    }
    if (session_.done() || (!conn_open_ && session_.want_close())) {
      if (conn_open_) v_.loop_.close(conn_, loop::CloseMode::Graceful);
      conn_open_ = false;
      if (timer_armed_) v_.loop_.cancel_timer(timer_);
      timer_armed_ = false;
      ended_ = true;
      // Recipients the session did not decide cannot exist; be safe and requeue any.
      for (auto& it : items_)
        if (it) d_.queue.push_front(std::move(it));
      v_.session_done(this);
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

  Verifier& v_;
  Domain& d_;
  size_t target_;
  std::optional<loop::Endpoint> source_;
  std::string source_ip_;
  smtp::Session session_;
  smtp::TranscriptBuffer transcript_;
  std::vector<std::unique_ptr<Item>> items_;
  loop::ConnId conn_{};
  loop::TimerId timer_{};
  std::optional<TimePoint> armed_for_;
  uint32_t rcpts_ = 0;
  bool conn_open_ = false, timer_armed_ = false, ended_ = false;

 public:
  size_t index = 0;  // position in Verifier::sessions_
};

Verifier::Verifier(loop::Loop& loop, dns::MxResolver& resolver, VerifierConfig config, Emit emit)
    : loop_(loop),
      resolver_(resolver),
      cfg_(std::move(config)),
      emit_(std::move(emit)),
      rng_(std::random_device{}()) {
  if (cfg_.rcpts_per_session == 0) cfg_.rcpts_per_session = 1;
  if (cfg_.max_sessions == 0) cfg_.max_sessions = 1;
  if (cfg_.max_sessions_per_domain == 0) cfg_.max_sessions_per_domain = 1;
}

Verifier::~Verifier() {
  for (auto& s : sessions_)
    s->abort();
  if (kick_armed_) loop_.cancel_timer(kick_timer_);
}

void Verifier::submit(uint64_t id, uint64_t line, std::string email, address::Address addr) {
  auto item = std::make_unique<Item>();
  item->id = id;
  item->line = line;
  item->email = std::move(email);
  item->wire = addr.normalized();
  item->addr = std::move(addr);
  auto& slot = domains_[item->addr.domain];
  if (!slot) {
    slot = std::make_unique<Domain>();
    slot->name = item->addr.domain;
  } else if (slot->idle) {
    idle_.erase(slot->idle_it);
    slot->idle = false;
  }
  slot->queue.push_back(std::move(item));
  ++stats_.submitted;
  make_runnable(*slot);
  kick();
}

void Verifier::maybe_idle(Domain& d) {
  bool settled = d.state == Domain::State::Ready || d.state == Domain::State::Failed;
  if (d.idle || !settled || !d.queue.empty() || d.active || !d.held.empty() ||
      d.probe == Domain::Probe::InFlight)
    return;
  d.idle = true;
  d.idle_it = idle_.insert(idle_.end(), &d);
  if (domains_.size() > cfg_.max_domains) kick();  // evicted from the kick, not from here
}

void Verifier::evict_idle() {
  for (auto it = idle_.begin(); it != idle_.end() && domains_.size() > cfg_.max_domains;) {
    Domain* d = *it;
    if (d->in_runnable) {  // still referenced by runnable_: it leaves on the next schedule()
      ++it;
      continue;
    }
    it = idle_.erase(it);
    ++stats_.domains_evicted;
    domains_.erase(d->name);
  }
}

void Verifier::make_runnable(Domain& d) {
  if (d.in_runnable) return;
  d.in_runnable = true;
  runnable_.push_back(&d);
}

void Verifier::kick() {
  if (kick_armed_) return;
  kick_armed_ = true;
  kick_timer_ = loop_.add_timer(loop_.now(), *this);
}

void Verifier::on_timer(loop::TimerId, uint64_t) {
  kick_armed_ = false;
  graveyard_.clear();
  // Here and only here: no Domain reference is held up the stack.
  if (domains_.size() > cfg_.max_domains) evict_idle();
  schedule();
}

void Verifier::schedule() {
  while (!runnable_.empty()) {
    Domain* d = runnable_.front();
    if (d->state == Domain::State::New) {
      runnable_.pop_front();
      d->in_runnable = false;
      d->state = Domain::State::Resolving;
      resolver_.resolve(d->name, [this, d](const dns::MxAnswer& a) { on_resolved(*d, a); });
      continue;
    }
    bool exhausted = d->state == Domain::State::Ready && d->target >= d->answer.targets.size();
    if (d->state == Domain::State::Failed || exhausted) {
      runnable_.pop_front();
      d->in_runnable = false;
      fail_domain_queue(*d, d->failure, d->failure_has_outcome ? &d->failure_outcome : nullptr);
      maybe_idle(*d);
      continue;
    }
    if (d->state != Domain::State::Ready || d->queue.empty() ||
        d->active >= cfg_.max_sessions_per_domain) {
      runnable_.pop_front();
      d->in_runnable = false;
      maybe_idle(*d);
      continue;
    }
    if (stats_.active_sessions >= cfg_.max_sessions) break;
    runnable_.pop_front();
    d->in_runnable = false;
    start_session(*d);
    if (!d->queue.empty() && d->active < cfg_.max_sessions_per_domain) make_runnable(*d);
  }
}

void Verifier::on_resolved(Domain& d, const dns::MxAnswer& answer) {
  d.answer = answer;
  if (!answer.ok || answer.targets.empty()) {
    d.state = Domain::State::Failed;
    d.failure =
        verdict::classify_dns(answer.ok ? verdict::DnsStatus::NoMailServer : answer.failure);
  } else {
    d.state = Domain::State::Ready;
    if (cfg_.catch_all_probe && d.probe == Domain::Probe::NotStarted) {
      auto probe = std::make_unique<Item>();
      probe->probe = true;
      probe->addr.local = random_local_part();
      probe->addr.domain = d.name;
      probe->wire = probe->addr.normalized();
      d.queue.push_front(std::move(probe));
      d.probe = Domain::Probe::InFlight;
    }
  }
  make_runnable(d);
  kick();
}

void Verifier::start_session(Domain& d) {
  std::optional<loop::Endpoint> source;
  if (!cfg_.source_ips.empty()) {
    // Only a source of the target's family can reach it.
    int family = d.answer.targets[d.target].address.family();
    for (size_t i = 0; i < cfg_.source_ips.size(); ++i) {
      const auto& s = cfg_.source_ips[(next_source_ + i) % cfg_.source_ips.size()];
      if (s.family() == family) {
        source = s;
        next_source_ = (next_source_ + i + 1) % cfg_.source_ips.size();
        break;
      }
    }
  }
  auto slot = std::make_unique<SessionSlot>(*this, d, d.target, source);
  SessionSlot* s = slot.get();
  s->index = sessions_.size();
  sessions_.push_back(std::move(slot));
  ++d.active;
  ++stats_.active_sessions;
  ++stats_.sessions_started;
  s->begin();
}

void Verifier::session_done(SessionSlot* s) {
  Domain& d = s->domain();
  --d.active;
  --stats_.active_sessions;
  size_t i = s->index;
  graveyard_.push_back(std::move(sessions_[i]));
  if (i != sessions_.size() - 1) {
    sessions_[i] = std::move(sessions_.back());
    sessions_[i]->index = i;
  }
  sessions_.pop_back();
  if (!d.queue.empty()) make_runnable(d);
  maybe_idle(d);
  kick();
}

// RFC 5321 §5.1: a client tries the next MX when it cannot connect or gets a 4xx greeting.
static bool server_unreachable(const smtp::Outcome& o) {
  if (o.stage == smtp::Stage::Connect) return true;
  if (o.stage != smtp::Stage::Banner) return false;
  return o.failure != smtp::Failure::None || (o.reply.code >= 400 && o.reply.code < 500);
}

void Verifier::on_outcome(SessionSlot& s, Item* raw, const smtp::Outcome& outcome) {
  std::unique_ptr<Item> item(raw);
  Domain& d = s.domain();
  auto c = verdict::classify(outcome);
  if (c.recipient_limit) {  // not judged: ask again in a fresh transaction
    d.queue.push_front(std::move(item));
    make_runnable(d);
    return;
  }
  if (server_unreachable(outcome) && outcome.failure != smtp::Failure::LocalError) {
    if (d.target == s.target_index()) {
      ++d.target;
      ++stats_.failovers;
      d.failure = c;
      d.failure_outcome = outcome;
      d.failure_has_outcome = true;
    }
    if (d.target < d.answer.targets.size()) {
      d.queue.push_front(std::move(item));
      make_runnable(d);
      return;
    }
  }
  Result& r = item->result;
  r.mx = s.target().host;
  r.mx_ip = s.target().address.ip_string();
  r.source_ip = s.source_ip();
  if (cfg_.transcripts) r.transcript = s.transcript();
  finish_item(d, item.release(), c, &outcome);
}

void Verifier::finish_item(Domain& d, Item* raw, const verdict::Classification& c,
                           const smtp::Outcome* outcome) {
  std::unique_ptr<Item> item(raw);
  item->cls = c;
  if (outcome && outcome->failure == smtp::Failure::None && !item->result.has_smtp) {
    item->result.has_smtp = true;
    item->result.code = outcome->reply.code;
    item->result.enhanced = outcome->reply.enhanced.str();
    item->result.message = outcome->reply.text();
  }
  if (item->probe) {
    d.probe = Domain::Probe::Done;
    d.probe_cls = c;
    release_held(d);
    return;
  }
  if (cfg_.catch_all_probe && d.probe == Domain::Probe::InFlight) {
    d.held.push_back(std::move(item));
    return;
  }
  emit_item(d, item.release());
}

void Verifier::release_held(Domain& d) {
  auto held = std::move(d.held);
  d.held.clear();
  for (auto& it : held)
    emit_item(d, it.release());
}

void Verifier::emit_item(Domain& d, Item* raw) {
  std::unique_ptr<Item> item(raw);
  Result& r = item->result;
  verdict::Classification c = item->cls;
  if (cfg_.catch_all_probe && d.probe == Domain::Probe::Done) {
    auto combined = verdict::combine_catch_all(c, d.probe_cls);
    c = combined.result;
    r.catch_all = verdict::to_optional(combined.catch_all);
  }
  r.id = item->id;
  r.line = item->line;
  r.email = std::move(item->email);
  r.normalized = std::move(item->wire);
  r.verdict = c.verdict;
  r.reason = c.reason;
  r.domain = d.name;
  r.role = item->addr.role;
  r.attempts = item->attempts;
  if (item->started)
    r.elapsed_ms =
        std::chrono::duration<double, std::milli>(loop_.now() - item->first_attempt).count();
  r.checked_at = std::chrono::system_clock::now();
  ++stats_.finished;
  emit_(std::move(r));
}

void Verifier::fail_domain_queue(Domain& d, const verdict::Classification& c,
                                 const smtp::Outcome* outcome) {
  auto queue = std::move(d.queue);
  d.queue.clear();
  for (auto& it : queue)
    finish_item(d, it.release(), c, outcome);
}

std::string Verifier::random_local_part() {
  // Looks like a person's mailbox that nobody has: 12 lower-case letters and digits.
  static constexpr char kAlnum[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::string s;
  for (int i = 0; i < 12; ++i)
    s.push_back(kAlnum[rng_() % 36]);
  s[0] = kAlnum[rng_() % 26];  // start with a letter
  return s;
}

}  // namespace mxp::pipeline
