// RedisRemoteLimits: the remote limits shared by the cluster's nodes through Redis, answered from
// local leases (see redis_limits.hpp; docs/cluster.md, "Global politeness").
#include "cluster/redis_limits.hpp"

#include <algorithm>
#include <cmath>

#include "cluster/functions.hpp"

namespace mxp::cluster {

using sched::Admission;
using sched::DomainId;
using sched::GroupId;
using sched::kNone;
using sched::TokenBucket;

namespace {

constexpr Duration kTick = std::chrono::milliseconds(100);

double seconds(Duration d) {
  return std::chrono::duration<double>(d).count();
}

// Tokens one lease may ask for: what was consumed over the span and what the scheduler was
// refused, at least 1; never more than the span's share of the rate, nor the burst.
uint32_t batch(double consumed_per_s, uint32_t demand, double rate, uint32_t burst, Duration span) {
  const double most = std::min<double>(burst, std::floor(rate * seconds(span)));
  const auto cap = static_cast<uint32_t>(std::max(1.0, most));
  const auto est = static_cast<uint32_t>(std::ceil(consumed_per_s * seconds(span)));
  return std::clamp<uint32_t>(std::max({est, demand, 1u}), 1, cap);
}

}  // namespace

RedisRemoteLimits::RedisRemoteLimits(loop::Loop& loop, RedisClient& redis,
                                     RedisLimitsOptions options)
    : loop_(loop), redis_(redis), opts_(std::move(options)) {
  if (opts_.holder.empty()) opts_.holder = "node";
}

RedisRemoteLimits::~RedisRemoteLimits() {
  *alive_ = false;
  if (timer_armed_) loop_.cancel_timer(timer_);
  for (auto* v : {&groups_, &domains_}) {
    for (Entry& e : *v)
      release_slots(e, 0);
  }
}

std::string RedisRemoteLimits::redis_key(const char* kind, const Entry& e) const {
  return opts_.prefix + "rl:" + kind + ":" + e.key;
}

void RedisRemoteLimits::send(const std::vector<std::string>& argv, Done done) {
  ++stats_.commands;
  redis_.command(argv, std::move(done), opts_.command_timeout);
}

void RedisRemoteLimits::failed() {
  ++stats_.lease_failures;
  state_ = State::Down;
}

// --- Registry ---

void RedisRemoteLimits::configure_group(GroupId g, std::string_view key,
                                        const sched::GroupSettings& s, TimePoint now) {
  (void)now;
  if (g >= groups_.size()) groups_.resize(g + 1);
  Entry& e = groups_[g];
  e.key = "g:" + std::string(key);
  e.live = true;
  e.limits = s.mx;
  e.backoff = s.backoff;
  e.aimd.configure(s.backoff, s.mx.sessions);
  e.slots_mode = Entry::Slots::Global;
}

void RedisRemoteLimits::configure_domain(DomainId d, std::string_view name,
                                         const sched::LevelLimits& l, TimePoint now) {
  (void)now;
  if (d >= domains_.size()) domains_.resize(d + 1);
  Entry& e = domains_[d];
  const std::string key = "d:" + std::string(name);
  if (!e.live || e.key != key) {
    e.key = key;
    e.slots_mode = Entry::Slots::Unknown;
  }
  e.live = true;
  e.domain = true;
  // A swap that tightens the cap below the group's is looked at again at the next wants().
  if (e.slots_mode == Entry::Slots::Local && l.sessions < e.limits.sessions && e.slots.empty())
    e.slots_mode = Entry::Slots::Unknown;
  e.limits = l;
}

void RedisRemoteLimits::release_domain(DomainId d) {
  if (d >= domains_.size()) return;
  Entry& e = domains_[d];
  release_slots(e, 0);
  const uint64_t gen = e.gen + 1;
  e = Entry{};
  e.gen = gen;
}

// --- Decisions ---

double RedisRemoteLimits::factor(const Entry& e) const {
  return e.domain ? 1.0 : std::min(e.aimd.rate_factor(), e.shared);
}

uint32_t RedisRemoteLimits::cap(const Entry& e) const {
  if (e.domain) return e.limits.sessions;
  const auto shared = static_cast<uint32_t>(std::floor(e.limits.sessions * e.shared + 1e-9));
  return std::max<uint32_t>(1, std::min({e.limits.sessions, e.aimd.limit(), shared}));
}

// Every refusal is an event: wants() follows it in the same decision, and the refill it starts
// ends in the notifier (retried until Redis answers), or a session of the key ends.
Admission RedisRemoteLimits::admit(const Entry& e) const {
  if (e.slots_mode == Entry::Slots::Unknown) return Admission::event();
  if (e.sessions >= cap(e)) return Admission::event();
  if (e.slots_mode == Entry::Slots::Global && e.sessions >= e.slots.size())
    return Admission::event();
  if (connects_limited(e) && e.connects == 0) return Admission::event();
  if (rcpts_limited(e) && e.rcpts == 0) return Admission::event();
  return {};
}

Admission RedisRemoteLimits::admit_group(GroupId g, TimePoint now) const {
  (void)now;
  return admit(groups_[g]);
}

Admission RedisRemoteLimits::admit_domain(DomainId d, TimePoint now) const {
  (void)now;
  return admit(domains_[d]);
}

uint32_t RedisRemoteLimits::rcpts_of(const Entry& e) const {
  return rcpts_limited(e) ? e.rcpts : TokenBucket::kUnlimited;
}

uint32_t RedisRemoteLimits::rcpt_available(GroupId g, DomainId d, TimePoint now) const {
  (void)now;
  return std::min(rcpts_of(groups_[g]), rcpts_of(domains_[d]));
}

void RedisRemoteLimits::wants(GroupId g, DomainId d, const sched::Demand& more, TimePoint now) {
  if (d != kNone && d < domains_.size()) {
    Entry& D = domains_[d];
    // A domain's own cap matters across nodes only when it is tighter than its group's, which
    // is global already (every session of the domain is one of the group's).
    if (D.slots_mode == Entry::Slots::Unknown && g < groups_.size()) {
      D.slots_mode = D.limits.sessions < groups_[g].limits.sessions ? Entry::Slots::Global
                                                                    : Entry::Slots::Local;
      D.notify = true;  // told from the loop, never from inside this call
      watch({true, d});
    }
    want({true, d}, more, now);
  }
  if (g != kNone && g < groups_.size() && d == kNone) want({false, g}, more, now);
  // A domain refused at the RCPT tokens may be short at the group too.
  if (g != kNone && g < groups_.size() && d != kNone && more.rcpts > 0)
    want({false, g}, {0, 0, more.rcpts}, now);
}

void RedisRemoteLimits::want(Ref r, const sched::Demand& more, TimePoint now) {
  Entry& e = entry(r);
  if (!e.live) return;
  e.wanted = true;
  e.demand.sessions += more.sessions;
  e.demand.connects += more.connects;
  e.demand.rcpts += more.rcpts;
  if (!e.in_flight && now >= e.retry_at) refill(r, now);
  watch(r);
}

void RedisRemoteLimits::refill(Ref r, TimePoint now) {
  Entry& e = entry(r);
  functions::LeaseAsk ask;
  const double f = factor(e);
  if (connects_limited(e)) {
    const uint32_t want = batch(e.rate_c, e.demand.connects, e.limits.connect.rate * f,
                                e.limits.connect.burst, opts_.lease_span);
    ask.want_connects = want > e.connects ? want - e.connects : 0;
    ask.connect_rate = e.limits.connect.rate;
    ask.connect_burst = e.limits.connect.burst;
  }
  if (rcpts_limited(e)) {
    const uint32_t want = batch(e.rate_r, e.demand.rcpts, e.limits.rcpt.rate * f,
                                e.limits.rcpt.burst, opts_.lease_span);
    ask.want_rcpts = want > e.rcpts ? want - e.rcpts : 0;
    ask.rcpt_rate = e.limits.rcpt.rate;
    ask.rcpt_burst = e.limits.rcpt.burst;
  }
  if (e.slots_mode == Entry::Slots::Global) {
    const uint32_t free =
        static_cast<uint32_t>(e.slots.size()) - std::min<uint32_t>(e.sessions, e.slots.size());
    const uint32_t room =
        cap(e) > e.slots.size() ? cap(e) - static_cast<uint32_t>(e.slots.size()) : 0;
    const uint32_t need = e.demand.sessions > free ? e.demand.sessions - free : 0;
    for (uint32_t i = 0; i < std::min({need, room, opts_.max_slots_per_call}); ++i)
      ask.holders.push_back(opts_.holder + ":" + std::to_string(++next_holder_));
  }
  if (ask.want_connects == 0 && ask.want_rcpts == 0 && ask.holders.empty()) {
    // Nothing Redis could add (the cap is local, or the lease is full): a session's end wakes
    // the scheduler, or, if it was refused and the lease allows now, the notifier.
    if (e.wanted && admit(e).open()) e.notify = true;
    e.demand = {};
    e.wanted = false;
    return;
  }
  ask.own_factor = e.domain ? 1.0 : e.aimd.rate_factor();
  ask.capacity = std::max<uint32_t>(1, e.limits.sessions);
  ask.window = e.domain ? ask.capacity : e.aimd.limit();
  ask.ttl = opts_.slot_ttl;
  e.in_flight = true;
  e.last_batch_c = static_cast<uint32_t>(ask.want_connects) + e.connects;
  e.last_batch_r = static_cast<uint32_t>(ask.want_rcpts) + e.rcpts;
  (void)now;
  const functions::LeaseKeys keys{redis_key("c", e), redis_key("r", e), redis_key("bo", e),
                                  redis_key("s", e)};
  std::weak_ptr<bool> alive = alive_;
  const uint64_t gen = e.gen;
  Asked asked{ask.want_connects, ask.want_rcpts, ask.connect_rate * ask.own_factor,
              ask.rcpt_rate * ask.own_factor, std::move(ask.holders)};
  ask.holders = asked.holders;
  send(functions::lease(keys, ask),
       [this, alive, r, gen, slot_key = keys.slots, asked = std::move(asked)](Result&& res) {
         if (alive.expired() || !*alive.lock()) return;
         on_lease(r, gen, slot_key, asked, std::move(res));
       });
}

void RedisRemoteLimits::on_lease(Ref r, uint64_t gen, const std::string& slot_key,
                                 const Asked& asked, Result&& res) {
  const std::vector<std::string>& holders = asked.holders;
  const TimePoint now = loop_.now();
  Entry& e = entry(r);
  auto lease =
      res ? functions::parse_lease(*res)
          : core::Expected<functions::Lease, std::string>(core::unexpected(res.error().message));
  if (e.gen != gen || !e.live) {  // the domain was released meanwhile: give its slots back
    if (lease && lease->slots > 0) {
      const std::vector<std::string> got(holders.begin(), holders.begin() + lease->slots);
      send(functions::slot_release(slot_key, got), [](Result&&) {});
    }
    return;
  }
  e.in_flight = false;
  if (!lease) {
    failed();
    e.wanted = true;  // asked again after retry_every, until Redis answers
    e.retry_at = now + opts_.retry_every;
    watch(r);
    return;
  }
  state_ = State::Up;
  ++stats_.leases;
  // The consumption rate (tokens per second, smoothed) sizes the next batch.
  if (const double dt = seconds(now - e.last_lease); e.last_lease != TimePoint{} && dt > 0) {
    e.rate_c = 0.5 * e.rate_c + 0.5 * (e.used_c / dt);
    e.rate_r = 0.5 * e.rate_r + 0.5 * (e.used_r / dt);
  }
  e.last_lease = now;
  e.used_c = e.used_r = 0;
  e.connects += static_cast<uint32_t>(lease->connects);
  e.rcpts += static_cast<uint32_t>(lease->rcpts);
  e.shared = lease->factor;
  for (int64_t i = 0; i < lease->slots; ++i) {
    e.slots.push_back(holders[i]);
    e.slot_since.push_back(now);
  }
  stats_.connects_leased += lease->connects;
  stats_.rcpts_leased += lease->rcpts;
  stats_.slots_leased += lease->slots;
  if (lease->connects < asked.connects || lease->rcpts < asked.rcpts ||
      lease->slots < static_cast<int64_t>(holders.size()))
    ++stats_.lease_waits;
  if (lease->slots > 0 && e.sessions < e.slots.size()) e.idle_since = now;
  if (lease->connects > 0 || lease->rcpts > 0 || lease->slots > 0) {
    e.wanted = false;
    e.notify = true;
    e.demand = {};  // the scheduler says again what it still lacks
  }
  // Short of what it asked: the next lease waits until a batch has come in (at most
  // retry_every), rather than taking tokens one at a time as they trickle in; they pile up in
  // Redis meanwhile (up to the burst), so no rate is lost. Slots refused: asked again when the
  // earliest hold expires, or sooner (holders give slots back without telling).
  Duration wait{0};
  const auto short_of = [&](int64_t want, int64_t got, Duration next, double rate) {
    if (got >= want || rate <= 0) return;
    const double rest = static_cast<double>(want - got - 1) / (rate * lease->factor);
    wait = std::max(
        wait, next + std::chrono::duration_cast<Duration>(std::chrono::duration<double>(rest)));
  };
  short_of(asked.connects, lease->connects, lease->connect_wait, asked.connect_rate);
  short_of(asked.rcpts, lease->rcpts, lease->rcpt_wait, asked.rcpt_rate);
  if (lease->slots < static_cast<int64_t>(holders.size()))
    wait = std::max(wait, std::min<Duration>(lease->slot_wait, opts_.retry_every));
  if (e.wanted && wait == Duration{0}) wait = opts_.retry_every;
  // Drawn in [wait/2, wait]: nodes that wait on the same key do not ask in lockstep, where the
  // one a step ahead would take every batch.
  if (wait > Duration{0}) {
    wait = std::clamp<Duration>(wait, std::chrono::milliseconds(2), opts_.retry_every);
    std::uniform_int_distribution<Duration::rep> half(wait.count() / 2, wait.count());
    e.retry_at = now + Duration(half(rng_));
  }
  const bool tell = e.notify;
  e.notify = false;
  watch(r);
  // From the loop (a reply), so the scheduler may be called now.
  if (tell && notify_) r.domain ? notify_(kNone, r.id) : notify_(r.id, kNone);
}

// --- What was taken ---

void RedisRemoteLimits::took(Entry& e, uint32_t connects, uint32_t rcpts) {
  e.connects -= std::min(e.connects, connects);
  e.rcpts -= std::min(e.rcpts, rcpts);
  e.used_c += connects;
  e.used_r += rcpts;
}

// Asks before the lease runs dry (a quarter of its last batch left), so that a busy key rarely
// waits for a round trip.
void RedisRemoteLimits::maybe_prefetch(Ref r, TimePoint now) {
  Entry& e = entry(r);
  if (e.in_flight || now < e.retry_at) return;
  const bool low_c = connects_limited(e) && e.connects <= e.last_batch_c / 4;
  const bool low_r = rcpts_limited(e) && e.rcpts <= e.last_batch_r / 4;
  if (!low_c && !low_r) return;
  refill(r, now);
  watch(r);
}

void RedisRemoteLimits::session_opened(GroupId g, DomainId d, uint32_t rcpts, TimePoint now) {
  Entry& G = groups_[g];
  Entry& D = domains_[d];
  ++G.sessions;
  ++D.sessions;
  took(G, 1, rcpts);
  took(D, 1, rcpts);
  maybe_prefetch({false, g}, now);
  maybe_prefetch({true, d}, now);
}

void RedisRemoteLimits::take_rcpts(GroupId g, DomainId d, uint32_t rcpts, TimePoint now) {
  took(groups_[g], 0, rcpts);
  took(domains_[d], 0, rcpts);
  maybe_prefetch({false, g}, now);
  maybe_prefetch({true, d}, now);
}

bool RedisRemoteLimits::session_ended(GroupId g, DomainId d, bool clean, TimePoint now) {
  Entry& G = groups_[g];
  Entry& D = domains_[d];
  for (auto [e, ref] : {std::pair{&G, Ref{false, g}}, std::pair{&D, Ref{true, d}}}) {
    --e->sessions;
    if (e->slots.empty()) continue;
    // The oldest slot, if held past slot_max_hold, goes back now (the others get a turn);
    // else it stays held a while, for the next session.
    const auto oldest = std::min_element(e->slot_since.begin(), e->slot_since.end());
    if (now - *oldest >= opts_.slot_max_hold && e->sessions < e->slots.size()) {
      const auto i = static_cast<size_t>(oldest - e->slot_since.begin());
      std::swap(e->slots[i], e->slots.back());
      std::swap(e->slot_since[i], e->slot_since.back());
      release_slots(*e, e->slots.size() - 1);
      if (e->sessions >= e->slots.size()) continue;
    }
    e->idle_since = now;
    watch(ref);
  }
  if (!clean) return false;
  const double before = G.aimd.rate_factor();
  G.aimd.on_clean();
  return G.aimd.rate_factor() != before && G.aimd.rate_factor() >= 1.0;
}

bool RedisRemoteLimits::backoff(GroupId g, TimePoint now) {
  Entry& e = groups_[g];
  if (!e.aimd.on_backoff(now)) return false;
  // Every node slows down: the shared factor drops (once per hold-off, whoever reports it) and
  // the other nodes read it with their next lease of the group.
  std::weak_ptr<bool> alive = alive_;
  const uint64_t gen = e.gen;
  send(functions::backoff(redis_key("bo", e), e.backoff.decrease, e.backoff.min_factor,
                          e.backoff.rate_increase, e.backoff.holdoff),
       [this, alive, g, gen](Result&& res) {
         if (alive.expired() || !*alive.lock()) return;
         auto b = res ? functions::parse_backoff(*res)
                      : core::Expected<functions::Backoff, std::string>(
                            core::unexpected(res.error().message));
         if (!b) return failed();
         if (b->counted) ++stats_.backoffs_shared;
         if (groups_[g].gen == gen) groups_[g].shared = b->factor;
       });
  return true;
}

sched::RemoteGroupView RedisRemoteLimits::group_view(GroupId g, TimePoint now) const {
  (void)now;
  const Entry& e = groups_[g];
  sched::RemoteGroupView v;
  v.session_limit = cap(e);
  v.aimd = e.aimd.view();
  v.aimd.rate_factor = factor(e);
  v.connect_rate = e.limits.connect.rate * factor(e);
  v.rcpt_rate = e.limits.rcpt.rate * factor(e);
  if (connects_limited(e)) {
    v.connect_tokens = e.connects;
    v.connect_burst = e.limits.connect.burst;
  }
  if (rcpts_limited(e)) {
    v.rcpt_tokens = e.rcpts;
    v.rcpt_burst = e.limits.rcpt.burst;
  }
  return v;
}

// --- Timer: refills waiting for their time, slot renewals, idle slots given back ---

void RedisRemoteLimits::watch(Ref r) {
  Entry& e = entry(r);
  if (!e.watched) {
    e.watched = true;
    watched_.push_back(r);
  }
  const TimePoint at = e.notify ? loop_.now() : loop_.now() + kTick;
  if (timer_armed_ && timer_at_ <= at) return;
  if (timer_armed_) loop_.cancel_timer(timer_);
  timer_ = loop_.add_timer(at, *this);
  timer_at_ = at;
  timer_armed_ = true;
}

void RedisRemoteLimits::on_timer(loop::TimerId id, uint64_t cookie) {
  (void)id, (void)cookie;
  timer_armed_ = false;
  tick(loop_.now());
}

void RedisRemoteLimits::tick(TimePoint now) {
  const bool renew_now = now - last_renew_ >= opts_.renew_every;
  if (renew_now) last_renew_ = now;
  std::vector<Ref> list;
  list.swap(watched_);
  std::vector<Ref> tell;
  for (const Ref r : list) {
    Entry& e = entry(r);
    e.watched = false;
    if (!e.live) continue;
    if (e.wanted && !e.in_flight && now >= e.retry_at) refill(r, now);
    if (!e.slots.empty()) {
      const size_t used = std::min<size_t>(e.sessions, e.slots.size());
      if (used < e.slots.size() && now - e.idle_since >= opts_.slot_linger) {
        release_slots(e, used);
      } else if (renew_now) {
        renew(r);
      }
    }
    if (e.notify) {
      e.notify = false;
      tell.push_back(r);
    }
    if (!e.watched && (!e.slots.empty() || e.wanted || e.in_flight)) {
      e.watched = true;
      watched_.push_back(r);
    }
  }
  if (!watched_.empty() && !timer_armed_) {
    timer_at_ = now + kTick;
    timer_ = loop_.add_timer(timer_at_, *this);
    timer_armed_ = true;
  }
  for (const Ref r : tell)
    if (notify_) r.domain ? notify_(kNone, r.id) : notify_(r.id, kNone);
}

void RedisRemoteLimits::renew(Ref r) {
  Entry& e = entry(r);
  std::weak_ptr<bool> alive = alive_;
  const uint64_t gen = e.gen;
  auto holders = e.slots;
  send(functions::slot_renew(redis_key("s", e), opts_.slot_ttl, holders), [this, alive, r, gen,
                                                                           holders](Result&& res) {
    if (alive.expired() || !*alive.lock()) return;
    auto kept =
        res ? functions::parse_slot_renew(*res)
            : core::Expected<std::vector<bool>, std::string>(core::unexpected(res.error().message));
    if (!kept) return failed();
    state_ = State::Up;
    Entry& e = entry(r);
    if (e.gen != gen) return;
    // A hold that expired meanwhile (Redis away longer than the TTL) may be another
    // node's now: stop counting it.
    for (size_t i = 0; i < holders.size() && i < kept->size(); ++i) {
      if ((*kept)[i]) continue;
      auto it = std::find(e.slots.begin(), e.slots.end(), holders[i]);
      if (it == e.slots.end()) continue;
      e.slot_since.erase(e.slot_since.begin() + (it - e.slots.begin()));
      e.slots.erase(it);
      ++stats_.slots_lost;
    }
  });
}

void RedisRemoteLimits::release_slots(Entry& e, size_t keep) {
  if (e.slots.size() <= keep) return;
  std::vector<std::string> out(e.slots.begin() + static_cast<ptrdiff_t>(keep), e.slots.end());
  e.slots.resize(keep);
  e.slot_since.resize(keep);
  send(functions::slot_release(redis_key("s", e), out), [](Result&&) {});
}

}  // namespace mxp::cluster
