// The Verifier's frame: set-up, submissions and their slab of items, the operator's views, the
// kick and the scheduling pass that turns the scheduler's grants into sessions, domain eviction,
// and the limits of our own host (open files, out-of-resource pauses). DNS answers and the
// resolver's health are in verifier_dns.cpp; outcomes, catch-all and results in
// verifier_results.cpp; one session on the loop in session_slot.cpp.
#include "pipeline/verifier.hpp"

#include "pipeline/session_slot.hpp"

#include <dirent.h>
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>

namespace mxp::pipeline {

using loop::TimePoint;

namespace {
std::vector<sched::SourceSpec> source_specs(const VerifierConfig& cfg) {
  const std::vector<SourceAddress>& sources = cfg.sources;
  std::vector<sched::SourceSpec> specs;
  // Proxies are the pool when given: "socks5://host:port" names them in logs and views.
  for (const auto& p : cfg.proxies)
    specs.push_back({p.display, sched::WarmupState{UINT32_MAX, {}, 0}});
  if (!cfg.proxies.empty()) return specs;
  for (const auto& s : sources) {
    sched::SourceSpec spec;
    spec.name = s.endpoint.ip_string();
    // An established address is at the top of the warm-up ladder (the level is clamped); a new
    // one starts at the bottom. Saved state comes with the jobs journal.
    spec.warmup = sched::WarmupState{s.warming ? 0u : UINT32_MAX, {}, 0};
    specs.push_back(std::move(spec));
  }
  return specs;
}

std::shared_ptr<const sched::Policy> or_builtin(std::shared_ptr<const sched::Policy> p) {
  return p ? p : std::make_shared<sched::Policy>(sched::Policy::builtin());
}
}  // namespace

Verifier::Verifier(loop::Loop& loop, dns::MxResolver& resolver, VerifierConfig config, Emit emit)
    : loop_(loop),
      resolver_(resolver),
      cfg_(std::move(config)),
      emit_(std::move(emit)),
      sched_(or_builtin(cfg_.policy), source_specs(cfg_), loop.now(),
             cfg_.remote_limits ? cfg_.remote_limits() : nullptr),
      policy_(or_builtin(cfg_.policy)),
      rng_(std::random_device{}()) {
  if (cfg_.sources.size() > sched::kMaxSources) cfg_.sources.resize(sched::kMaxSources);
  if (cfg_.proxies.size() > sched::kMaxSources) cfg_.proxies.resize(sched::kMaxSources);
  if (!cfg_.proxies.empty())
    proxies_ = std::make_unique<ProxyPool>(
        loop_, cfg_.proxies, cfg_.proxy_check_timeout, cfg_.proxy_health,
        [this](size_t i, bool up, const std::string& why) { on_proxy_change(i, up, why); });
  size_to_fd_limit();
}

// A proxy left or rejoined the rotation: the scheduler stops or resumes granting it; with no
// proxy left, what is queued ends unknown/proxy_failed (nothing can reach a mail server).
void Verifier::on_proxy_change(size_t i, bool up, const std::string& why) {
  sched_.set_source_down(static_cast<sched::SourceId>(i), !up, loop_.now(),
                         verdict::classify_proxy_failure());
  if (cfg_.log) {
    const std::string& name = cfg_.proxies[i].display;
    const size_t n = proxies_->health().up_count();
    if (up)
      cfg_.log("proxy " + name + " is back in rotation (" + std::to_string(n) + " of " +
               std::to_string(cfg_.proxies.size()) + " up)");
    else
      cfg_.log("proxy " + name + " is out of rotation: " + why + " (" + std::to_string(n) + " of " +
               std::to_string(cfg_.proxies.size()) + " up; re-checked until it answers)");
  }
  kick();
}

void Verifier::set_source_out(size_t i, bool out) {
  if (proxies_ || i >= cfg_.sources.size()) return;
  verdict::Classification why;
  why.verdict = Verdict::Unknown;
  why.reason = Reason::Blocked;
  why.scope = verdict::Scope::Session;
  why.source_blocked = true;
  sched_.set_source_down(static_cast<sched::SourceId>(i), out, loop_.now(), why);
  kick();
}

Verifier::~Verifier() {
  for (auto& s : sessions_)
    s->abort();
  if (kick_armed_) loop_.cancel_timer(kick_timer_);
  if (deadline_armed_) loop_.cancel_timer(deadline_timer_);
  if (dns_timer_armed_) loop_.cancel_timer(dns_timer_);
}

void Verifier::set_policy(std::shared_ptr<const sched::Policy> policy) {
  if (!policy) return;
  // Sessions keep pointers to their configuration: retire, do not free.
  for (auto* m : {&configs_, &clear_configs_}) {
    for (auto& [ds, c] : *m)
      retired_configs_.push_back(std::move(c));
    m->clear();
  }
  policy_ = policy;
  sched_.set_policy(std::move(policy), loop_.now());
  kick();
}

const smtp::SessionConfig& Verifier::session_config(const sched::DomainSettings& ds,
                                                    sched::SourceId source, bool clear_text) {
  auto& slot = (clear_text ? clear_configs_ : configs_)[{&ds, source}];
  if (!slot) {
    slot = std::make_unique<smtp::SessionConfig>(cfg_.session);
    // The identity (docs/identity.md): the policy's for the domain, else the source's HELO.
    if (!ds.helo.empty())
      slot->helo_name = ds.helo;
    else if (cfg_.proxies.empty() && source < cfg_.sources.size() &&
             !cfg_.sources[source].helo.empty())
      slot->helo_name = cfg_.sources[source].helo;
    if (ds.mail_from) slot->mail_from = *ds.mail_from;
    slot->timeouts = ds.timeouts;
    // Per transaction: the policy's session.recipients_per_transaction, else the session's.
    const uint32_t per_txn = ds.recipients_per_transaction > 0
                                 ? std::min(ds.recipients_per_transaction, ds.recipients)
                                 : ds.recipients;
    slot->max_rcpts_per_transaction = std::max<uint32_t>(1, per_txn);
    slot->starttls = clear_text ? smtp::StartTlsMode::Never : ds.starttls;
    // A reply that refuses our sender is asked again with the next one (docs/identity.md).
    slot->sender_refused = &verdict::refuses_sender;
  }
  return *slot;
}

std::shared_ptr<const tls::ClientContext> Verifier::tls_context() {
  if (!cfg_.tls) {
    // Without a context every handshake fails (and auto falls back to clear text).
    if (auto made = tls::ClientContext::create({}))
      cfg_.tls = std::move(made).value();
    else if (cfg_.log)
      cfg_.log("TLS client context: " + made.error());
  }
  return cfg_.tls;
}

Verifier::Item* Verifier::new_item() {
  uint32_t slot;
  if (!free_items_.empty()) {
    slot = free_items_.back();
    free_items_.pop_back();
  } else {
    slot = static_cast<uint32_t>(items_.size());
    items_.emplace_back();
  }
  items_[slot] = std::make_unique<Item>();
  items_[slot]->slot = slot;
  return items_[slot].get();
}

void Verifier::free_item(Item* item) {
  uint32_t slot = item->slot;
  items_[slot].reset();
  free_items_.push_back(slot);
}

void Verifier::submit(uint64_t id, uint64_t line, std::string email, address::Address addr) {
  if (cfg_.lists) {
    std::string why;
    if (auto l = cfg_.lists->check(addr, &why); l != flags::Listed::No)
      return answer_listed(id, line, std::move(email), addr, l == flags::Listed::Denied,
                           std::move(why));
  }
  Item* item = new_item();
  item->id = id;
  item->line = line;
  item->email = std::move(email);
  if (std::string n = addr.normalized(); n != item->email) item->normalized = std::move(n);
  item->role = addr.role;
  item->submitted = loop_.now();
  auto& slot = domains_[addr.domain];
  if (!slot) {
    slot = std::make_unique<Domain>();
    slot->name = std::move(addr.domain);
    slot->sid = sched_.domain(slot->name);
    if (by_sched_id_.size() <= slot->sid) by_sched_id_.resize(slot->sid + 1, nullptr);
    by_sched_id_[slot->sid] = slot.get();
  } else if (slot->idle) {
    idle_.erase(slot->idle_it);
    slot->idle = false;
  }
  Domain& d = *slot;
  item->domain = &d;
  ++d.live;
  ++stats_.submitted;
  if (d.state == Domain::State::Failed) {
    d.unqueued.push_back(item);
    if (!d.failing) {
      d.failing = true;
      to_fail_.push_back(&d);
    }
  } else {
    item->sid = sched_.enqueue(item->slot, d.sid, loop_.now());
    if (d.state == Domain::State::New) resolve_domain(d);
  }
  kick();
}

void Verifier::answer_listed(uint64_t id, uint64_t line, std::string email,
                             const address::Address& addr, bool denied, std::string why) {
  const auto c = verdict::classify_listed(denied);
  Result r;
  r.id = id;
  r.line = line;
  r.email = std::move(email);
  r.normalized = addr.normalized();
  r.domain = addr.domain;
  r.verdict = c.verdict;
  r.reason = c.reason;
  r.role = addr.role;
  set_domain_flags(r, flags::domain_flags(cfg_.domain_data.get(), addr.domain), r.normalized);
  r.error = std::move(why);
  r.checked_at = std::chrono::system_clock::now();
  listed_.push_back(std::move(r));
  ++stats_.submitted;
  kick();
}

std::string awaited_name(smtp::Stage stage) {
  switch (stage) {
    case smtp::Stage::Connect:
      return "the TCP connection";
    case smtp::Stage::Banner:
      return "the banner";
    case smtp::Stage::Ehlo:
      return "the EHLO reply";
    case smtp::Stage::Helo:
      return "the HELO reply";
    case smtp::Stage::MailFrom:
      return "the MAIL FROM reply";
    case smtp::Stage::RcptTo:
      return "the RCPT TO reply";
    case smtp::Stage::Rset:
      return "the RSET reply";
    case smtp::Stage::Quit:
      return "the QUIT reply";
    case smtp::Stage::StartTls:
      return "the STARTTLS reply and the TLS handshake";
  }
  return "a reply";
}

std::vector<Verifier::WaitView> Verifier::waiting() const {
  std::vector<WaitView> out;
  for (const auto& s : sessions_) {
    if (!s || s->ended()) continue;
    out.push_back({s->target().host, s->peer(), s->stage(), s->stage_started()});
  }
  return out;
}

std::vector<Verifier::DomainView> Verifier::busiest_domains(size_t n) const {
  std::vector<const Domain*> all;
  for (const auto& [name, d] : domains_)
    if (d->live || d->active) all.push_back(d.get());
  n = std::min(n, all.size());
  std::partial_sort(all.begin(), all.begin() + static_cast<long>(n), all.end(),
                    [](const Domain* a, const Domain* b) { return a->live > b->live; });
  std::vector<DomainView> out;
  for (size_t i = 0; i < n; ++i) {
    const Domain& d = *all[i];
    DomainView v;
    v.name = d.name;
    const auto g = sched_.domain_group(d.sid);
    if (g != sched::kNone) v.group = sched_.group_name(g);
    v.pending = d.live;
    v.sessions = d.active;
    if (d.probe == Domain::Probe::Done) {
      auto fact = verdict::catch_all_from_probe(d.probe_cls);
      if (fact != verdict::CatchAll::Unknown) v.catch_all = fact == verdict::CatchAll::Yes;
    }
    out.push_back(std::move(v));
  }
  return out;
}

size_t Verifier::withdraw(uint64_t lo, uint64_t hi, std::vector<uint64_t>& out) {
  size_t n = 0;
  for (auto& slot : items_) {
    Item* it = slot.get();
    if (!it || it->probe || it->id < lo || it->id >= hi) continue;
    Domain* d = it->domain;
    const bool unqueued =
        std::find(d->unqueued.begin(), d->unqueued.end(), it) != d->unqueued.end();
    if (unqueued) continue;                 // finished on the next kick: let it
    if (!sched_.queued(it->sid)) continue;  // in a session, or finished and held
    sched_.remove(it->sid);
    out.push_back(it->id);
    --d->live;
    ++stats_.withdrawn;
    free_item(it);
    maybe_idle(*d);
    ++n;
  }
  if (n) kick();
  return n;
}

void Verifier::maybe_idle(Domain& d) {
  bool settled = d.state == Domain::State::Ready || d.state == Domain::State::Failed;
  if (d.idle || !settled || d.live || d.active || d.failing || d.probe == Domain::Probe::InFlight)
    return;
  d.idle = true;
  d.idle_it = idle_.insert(idle_.end(), &d);
  if (domains_.size() > cfg_.max_domains) kick();  // evicted from the kick, not from here
}

void Verifier::evict_idle() {
  for (auto it = idle_.begin(); it != idle_.end() && domains_.size() > cfg_.max_domains;) {
    Domain* d = *it;
    if (!sched_.release_domain(d->sid)) {  // cannot happen for an idle domain; be safe
      ++it;
      continue;
    }
    it = idle_.erase(it);
    ++stats_.domains_evicted;
    by_sched_id_[d->sid] = nullptr;
    domains_.erase(d->name);
  }
}

void Verifier::remote_limits_changed(sched::GroupId g, sched::DomainId d) {
  sched_.remote_limits_changed(g, d, loop_.now());
  kick();
}

void Verifier::kick() {
  if (kick_armed_) return;
  kick_armed_ = true;
  kick_timer_ = loop_.add_timer(loop_.now(), *this, kKickCookie);
}

void Verifier::on_timer(loop::TimerId, uint64_t cookie) {
  if (cookie == kResolverCookie) {
    dns_timer_armed_ = false;
    if (dns_down_ && !dns_checking_) {
      dns_checking_ = true;
      dns_answers_ = 0;
      std::weak_ptr<bool> alive = alive_;
      resolver_.check([this, alive](bool ok) {
        if (alive.lock()) on_resolver_check(ok);
      });
    }
    return;
  }
  if (cookie == kKickCookie)
    kick_armed_ = false;
  else
    deadline_armed_ = false;
  graveyard_.clear();
  // Here and only here: no Domain reference is held up the stack.
  auto failing = std::move(to_fail_);
  to_fail_.clear();
  for (Domain* d : failing) {
    d->failing = false;
    fail_domain(*d);
  }
  if (!listed_.empty()) {
    auto listed = std::move(listed_);  // emit_ may submit more
    listed_.clear();
    for (Result& r : listed) {
      ++stats_.finished;
      emit_(std::move(r));
    }
  }
  if (!listed_domains_.empty()) {
    auto listed = std::move(listed_domains_);
    listed_domains_.clear();
    for (DomainReport& r : listed)
      if (cfg_.on_domain_report) cfg_.on_domain_report(std::move(r));
  }
  schedule();
  if (domains_.size() > cfg_.max_domains) evict_idle();
}

void Verifier::schedule() {
  TimePoint now = loop_.now();
  // After our own socket failure (out of file descriptors) nothing new starts for a moment.
  while (now >= local_pause_until_ && sched_.next_ready(now, grant_))
    start_session(grant_);
  if (now < local_pause_until_ && (!deadline_armed_ || local_pause_until_ < deadline_at_)) {
    if (deadline_armed_) loop_.cancel_timer(deadline_timer_);
    deadline_timer_ = loop_.add_timer(local_pause_until_, *this, kDeadlineCookie);
    deadline_armed_ = true;
    deadline_at_ = local_pause_until_;
  }
  const bool starved = stats_.active_sessions < sched_.max_sessions() && resolving_ == 0;
  // Addresses the scheduler finished itself (every source IP blocked for their MX group).
  while (auto f = sched_.pop_final()) {
    Item* item = items_[f->key].get();
    Domain& d = *item->domain;
    if (f->result.source_blocked) {
      // Never sent: what decided is another address's block of our source by this MX group.
      Result& r = item->result();
      const auto g = sched_.domain_group(d.sid);
      if (auto it = block_cause_.find(g); it != block_cause_.end()) {
        r.mx = it->second.mx;
        r.mx_ip = it->second.mx_ip;
        r.source_ip = it->second.source_ip;
        r.proxy = it->second.proxy;
        r.helo = it->second.helo;
      }
      r.error = block_error(g);
    }
    finish_item(d, item, f->result, nullptr);
    maybe_idle(d);
  }
  log_events();
  // Wake up when the scheduler's next not-before time (retry, token refill) comes.
  auto deadline = sched_.next_deadline();
  if (deadline && (!deadline_armed_ || *deadline < deadline_at_)) {
    if (deadline_armed_) loop_.cancel_timer(deadline_timer_);
    deadline_timer_ = loop_.add_timer(*deadline, *this, kDeadlineCookie);
    deadline_armed_ = true;
    deadline_at_ = *deadline;
  }
  if (starved && cfg_.on_starved) cfg_.on_starved();
}

void Verifier::log_events() {
  while (auto e = sched_.pop_event()) {
    if (cfg_.on_event) cfg_.on_event(*e);
    if (!cfg_.log) continue;
    char buf[512];
    const std::string& group = sched_.group_name(e->group);
    const std::string& source = sched_.source_name(e->source);
    switch (e->kind) {
      case sched::SchedEvent::Kind::BackOff:
        std::snprintf(buf, sizeof buf,
                      "back-off: MX group %s (%s, from %s): window %.2f of %u, rate x%.3f",
                      group.c_str(), e->reason.c_str(), source.empty() ? "-" : source.c_str(),
                      e->aimd.window, e->aimd.cap, e->aimd.rate_factor);
        break;
      case sched::SchedEvent::Kind::Recovered:
        std::snprintf(buf, sizeof buf, "recovered: MX group %s: window %.2f of %u, rate x%.3f",
                      group.c_str(), e->aimd.window, e->aimd.cap, e->aimd.rate_factor);
        break;
      case sched::SchedEvent::Kind::Blocked: {
        auto secs = std::chrono::duration_cast<std::chrono::seconds>(e->until - loop_.now());
        std::snprintf(buf, sizeof buf, "blocked: source %s by MX group %s (%s), resting %llds",
                      source.empty() ? "-" : source.c_str(), group.c_str(), e->reason.c_str(),
                      static_cast<long long>(secs.count()));
        break;
      }
    }
    cfg_.log(buf);
  }
}

void Verifier::start_session(const sched::Grant& g) {
  Domain& d = *by_sched_id_[g.domain];
  const bool clear_text =
      !no_tls_.empty() && no_tls_.count(d.answer.targets[d.target].address.ip_string()) > 0;
  auto slot = std::make_unique<SessionSlot>(
      *this, d, g, session_config(sched_.domain_settings(d.sid), g.source, clear_text));
  SessionSlot* s = slot.get();
  s->index = sessions_.size();
  sessions_.push_back(std::move(slot));
  ++d.active;
  ++stats_.active_sessions;
  ++stats_.sessions_started;
  s->begin(g.items);
}

void Verifier::session_done(SessionSlot* s, sched::SessionEnd how) {
  Domain& d = s->domain();
  sched_.on_session_ended(s->id(), loop_.now(), how);
  --d.active;
  --stats_.active_sessions;
  size_t i = s->index;
  graveyard_.push_back(std::move(sessions_[i]));
  if (i != sessions_.size() - 1) {
    sessions_[i] = std::move(sessions_.back());
    sessions_[i]->index = i;
  }
  sessions_.pop_back();
  maybe_idle(d);
  kick();
}

// Our own socket could not be made (EMFILE/ENFILE, ENOMEM): fewer sessions at once from now on,
// and a short pause before the next one starts. Never a server's failure, never a verdict.
void Verifier::on_local_failure(loop::Status status) {
  const uint32_t open = stats_.active_sessions > 0 ? stats_.active_sessions - 1 : 0;  // not this
  const uint32_t before = sched_.max_sessions();
  const uint32_t cap = std::max<uint32_t>(1, std::min(before, open));
  sched_.set_session_cap(cap);
  local_pause_until_ = loop_.now() + std::chrono::milliseconds(100);
  ++stats_.local_failures;
  if (cfg_.log && cap < before)
    cfg_.log("out of local resources (" + std::string(loop::to_string(status)) + ") with " +
             std::to_string(open) + " SMTP sessions open: concurrency lowered from " +
             std::to_string(before) + " to " + std::to_string(cap) +
             "; the addresses wait, nothing is held against the servers");
}

// At start: as many sessions at once as the open-file limit leaves room for (docs/usage.md,
// "Open-file limit"). The soft limit is raised to the hard one first.
void Verifier::size_to_fd_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  if (rl.rlim_cur < rl.rlim_max) {
    rlimit up = rl;
    up.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &up) == 0) rl = up;
  }
  if (rl.rlim_cur == RLIM_INFINITY) return;
  uint64_t in_use = 0;
  if (DIR* dir = opendir("/proc/self/fd")) {
    while (dirent* e = readdir(dir))
      if (e->d_name[0] != '.') ++in_use;
    closedir(dir);
  }
  // Kept free for what else needs descriptors while sessions run: DNS sockets, the journal and
  // cache, output files, HTTP clients of serve, proxy health checks.
  const uint64_t limit = rl.rlim_cur;
  const uint64_t reserve = std::max<uint64_t>(24, limit / 8);
  const uint64_t room = limit > in_use + reserve ? limit - in_use - reserve : 1;
  const uint32_t want = sched_.max_sessions();
  if (room >= want) return;
  const auto cap = static_cast<uint32_t>(std::max<uint64_t>(1, room));
  sched_.set_session_cap(cap);
  if (cfg_.log)
    cfg_.log("open-file limit (ulimit -n) is " + std::to_string(limit) + " with " +
             std::to_string(in_use) + " in use: concurrency lowered from " + std::to_string(want) +
             " to " + std::to_string(cap) + " SMTP sessions at once");
}

}  // namespace mxp::pipeline
