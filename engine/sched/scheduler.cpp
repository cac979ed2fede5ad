// The scheduler's state machine. Data layout, from the top:
//   active_            round-robin ring of MX groups that have due work and, as far as known,
//                      room (deficit round-robin: each turn adds quantum * weight recipients)
//   Group.any_ring     ring of the group's domains with due unpinned addresses
//   Group.pin_rings[s] ring of the group's domains with due addresses pinned to source s
//   Domain.any / pinned[s] / waiting   FIFOs of addresses (intrusive, over items_)
//   wheel_             not-before times of waiting addresses, and wake-ups of parked groups
//                      and domains (token refills)
// A group or domain that cannot be served now is *parked* (taken out of its ring) until the
// event that can change that: a timer at its buckets' refill time, or the end of one of its
// sessions. Every pass of next_ready() either grants a session or parks / retires something
// that an earlier event put in a ring, so a decision costs amortised O(sources), independent of
// the number of queued addresses, domains and groups.
#include "sched/scheduler.hpp"

#include <algorithm>
#include <bit>
#include <cmath>

#include "core/strings.hpp"

namespace mxp::sched {

namespace {

enum class TimerKind : uint64_t { Item = 0, Domain = 1, Group = 2 };

uint64_t payload(TimerKind k, uint32_t index) {
  return (static_cast<uint64_t>(k) << 32) | index;
}

uint64_t bit(uint32_t s) {
  return uint64_t{1} << s;
}

std::string lower_host(std::string_view s) {
  std::string out = core::lower(s);
  if (!out.empty() && out.back() == '.') out.pop_back();
  return out;
}

uint32_t scaled_burst(uint32_t burst, double share) {
  return std::max<uint32_t>(1, static_cast<uint32_t>(std::floor(burst * share + 1e-9)));
}

bool accepted(const verdict::Classification& c) {
  // A 252 "cannot verify, will accept" is not an error reply either.
  return c.verdict == Verdict::Deliverable ||
         (c.verdict == Verdict::Risky && c.reason == Reason::CatchAll);
}

}  // namespace

struct Scheduler::Item {
  uint64_t key = 0;
  DomainId domain = kNone;
  uint32_t prev = kNone, next = kNone;  // on a domain list, or on its session's list
  uint32_t session = kNone;             // in flight: the session's index
  uint32_t gen = 1;
  TimerId timer;
  uint64_t blocked_from = 0;  // sources that answered it with a block
  uint16_t tries = 0;         // tries made
  uint16_t retries = 0;       // of which ended retry_later
  uint8_t pinned = 0;         // source + 1; 0: any source
  ItemState state = ItemState::Free;
};

struct Scheduler::Domain {
  std::string name;
  GroupId group = kNone;
  const DomainSettings* settings = nullptr;
  ItemList any;                  // due, any source
  std::vector<ItemList> pinned;  // due, by source (sized on first use)
  uint64_t pinned_mask = 0;      // bit s: pinned[s] not empty
  uint32_t pinned_total = 0;
  ItemList waiting;  // not due yet (in the wheel)
  uint32_t in_flight = 0, sessions = 0;
  TokenBucket connect, rcpt;
  Link any_link;
  std::vector<Link> pin_links;  // by source, sized with pinned
  uint64_t pin_linked = 0;      // bit s: in the group's pin ring s
  TimerId wake;
  bool cap_wait = false;
  uint64_t ready() const { return any.size + pinned_total; }
};

struct Scheduler::SourceGroup {
  uint32_t sessions = 0;
  TokenBucket connect, rcpt;
  bool blocked = false;
  TimePoint blocked_until{};
  double share = 1;
  uint64_t warm_epoch = 0;
  uint32_t cfg_epoch = 0;  // 0: never configured
};

struct Scheduler::Group {
  std::string name;
  std::string host;  // the first MX host that mapped here
  bool provider = false;
  std::optional<uint32_t> provider_index;
  const GroupSettings* settings = nullptr;
  uint32_t cfg_epoch = 1;
  Ring any_ring;
  std::vector<Ring> pin_rings;  // by source
  uint64_t pin_mask = 0;        // bit s: pin_rings[s] not empty
  uint32_t sessions = 0;
  TokenBucket connect, rcpt;
  Aimd aimd;
  std::vector<SourceGroup> per_source;
  uint32_t rr = 0;  // next source to try
  int64_t deficit = 0;
  Link active_link;
  TimerId wake;
  bool cap_wait = false;
  uint64_t ready = 0;
  verdict::Classification last_block;
};

struct Scheduler::Session {
  GroupId group = kNone;
  DomainId domain = kNone;
  SourceId source = kNone;
  uint32_t gen = 1;
  bool live = false;
  bool trouble = false;  // a back-off signal was seen
  bool decided = false;  // at least one recipient was decided
  // A recipient got a verdict (the server judged a mailbox): a block reply on the same session
  // is about that one recipient, not about our source (docs/verdicts.md, "Echoed addresses").
  bool judged = false;
  // A block reply waits for the session's other outstanding recipients before it rests the
  // source for the MX group: none of them judged, and it does.
  bool block_pending = false;
  verdict::Classification pending_block;
  uint32_t granted = 0, rejections = 0, outstanding = 0;
  ItemList items;  // in flight
};

struct Scheduler::Source {
  std::string name;
  Warmup warm;
};

// ---------------------------------------------------------------------------------------------
// Lists and rings

template <class F>
void Scheduler::ring_push(Ring& r, uint32_t i, F&& link) {
  Link& l = link(i);
  if (r.head == kNone) {
    l.prev = l.next = i;
    r.head = i;
  } else {
    Link& h = link(r.head);
    const uint32_t tail = h.prev;
    l.prev = tail;
    l.next = r.head;
    link(tail).next = i;
    h.prev = i;
  }
  ++r.size;
}

template <class F>
void Scheduler::ring_erase(Ring& r, uint32_t i, F&& link) {
  Link& l = link(i);
  if (l.next == i) {
    r.head = kNone;
  } else {
    link(l.prev).next = l.next;
    link(l.next).prev = l.prev;
    if (r.head == i) r.head = l.next;
  }
  l.prev = l.next = kNone;
  --r.size;
}

void Scheduler::list_push_back(ItemList& l, uint32_t i) {
  Item& it = items_[i];
  it.next = kNone;
  it.prev = l.tail;
  if (l.tail != kNone)
    items_[l.tail].next = i;
  else
    l.head = i;
  l.tail = i;
  ++l.size;
}

void Scheduler::list_push_front(ItemList& l, uint32_t i) {
  Item& it = items_[i];
  it.prev = kNone;
  it.next = l.head;
  if (l.head != kNone)
    items_[l.head].prev = i;
  else
    l.tail = i;
  l.head = i;
  ++l.size;
}

void Scheduler::list_erase(ItemList& l, uint32_t i) {
  Item& it = items_[i];
  if (it.prev != kNone)
    items_[it.prev].next = it.next;
  else
    l.head = it.next;
  if (it.next != kNone)
    items_[it.next].prev = it.prev;
  else
    l.tail = it.prev;
  it.prev = it.next = kNone;
  --l.size;
}

// ---------------------------------------------------------------------------------------------
// Construction, registries

Scheduler::Scheduler(std::shared_ptr<const Policy> policy, std::vector<SourceSpec> sources,
                     TimePoint now)
    : policy_(std::move(policy)), wheel_(now), last_now_(now) {
  if (!policy_) policy_ = std::make_shared<Policy>(Policy::builtin());
  if (sources.empty()) sources.push_back({});
  if (sources.size() > kMaxSources) sources.resize(kMaxSources);
  for (auto& s : sources)
    sources_.push_back({std::move(s.name), Warmup(policy_->warmup(), s.warmup, now)});
  const DomainSettings& d = policy_->domain_settings("", std::nullopt);
  quantum_ = std::max<uint32_t>(1, std::min(d.recipients, d.rejections));
}

Scheduler::~Scheduler() = default;

GroupId Scheduler::group_for_mx(std::string_view mx_host) {
  if (auto it = group_by_host_.find(mx_host); it != group_by_host_.end()) return it->second;
  std::string host = lower_host(mx_host);
  if (auto it = group_by_host_.find(host); it != group_by_host_.end()) {
    group_by_host_.emplace(std::string(mx_host), it->second);
    return it->second;
  }
  const auto provider = policy_->provider_for_mx(host);
  const std::string key = provider ? "provider:" + policy_->provider_name(*provider) : host;
  GroupId g;
  if (auto it = group_by_name_.find(key); it != group_by_name_.end()) {
    g = it->second;
  } else {
    g = static_cast<GroupId>(groups_.size());
    groups_.emplace_back();
    Group& G = groups_.back();
    G.name = provider ? policy_->provider_name(*provider) : host;
    G.host = host;
    G.provider = provider.has_value();
    G.provider_index = provider;
    G.pin_rings.resize(sources_.size());
    G.per_source.resize(sources_.size());
    configure_group(g, last_now_);
    group_by_name_.emplace(key, g);
  }
  group_by_host_.emplace(host, g);
  if (host != mx_host) group_by_host_.emplace(std::string(mx_host), g);
  return g;
}

DomainId Scheduler::domain(std::string_view name) {
  if (auto it = domain_by_name_.find(name); it != domain_by_name_.end()) return it->second;
  DomainId d;
  if (!free_domains_.empty()) {
    d = free_domains_.back();
    free_domains_.pop_back();
  } else {
    d = static_cast<DomainId>(domains_.size());
    domains_.emplace_back();
  }
  domains_[d].name = std::string(name);
  configure_domain(d, last_now_);
  domain_by_name_.emplace(std::string(name), d);
  return d;
}

bool Scheduler::release_domain(DomainId d) {
  if (d >= domains_.size()) return false;
  Domain& D = domains_[d];
  if (D.name.empty() || D.in_flight || D.sessions || D.ready() || D.waiting.size) return false;
  if (D.wake.valid()) wheel_.cancel(D.wake);
  domain_ring_remove(d);
  domain_by_name_.erase(D.name);
  D = Domain{};
  free_domains_.push_back(d);
  return true;
}

void Scheduler::set_domain_group(DomainId d, GroupId g, TimePoint now) {
  Domain& D = domains_[d];
  if (D.group == g) return;
  domain_ring_remove(d);
  if (D.group != kNone) groups_[D.group].ready -= D.ready();
  D.group = g;
  if (g != kNone) groups_[g].ready += D.ready();
  configure_domain(d, now);
  domain_ring_update(d);
}

GroupId Scheduler::domain_group(DomainId d) const {
  return domains_[d].group;
}
const std::string& Scheduler::group_name(GroupId g) const {
  return groups_[g].name;
}
const std::string& Scheduler::domain_name(DomainId d) const {
  return domains_[d].name;
}
size_t Scheduler::source_count() const {
  return sources_.size();
}
size_t Scheduler::group_count() const {
  return groups_.size();
}
const std::string& Scheduler::source_name(SourceId s) const {
  return sources_[s].name;
}
const GroupSettings& Scheduler::group_settings(GroupId g) const {
  return *groups_[g].settings;
}
const DomainSettings& Scheduler::domain_settings(DomainId d) const {
  return *domains_[d].settings;
}

// ---------------------------------------------------------------------------------------------
// Limits

void Scheduler::configure_group(GroupId g, TimePoint now) {
  Group& G = groups_[g];
  G.settings = &policy_->group_settings(G.provider_index);
  const GroupSettings& s = *G.settings;
  G.aimd.configure(s.backoff, s.mx.sessions);
  const double f = G.aimd.rate_factor();
  G.connect.configure(s.mx.connect.rate * f, s.mx.connect.burst, now);
  G.rcpt.configure(s.mx.rcpt.rate * f, s.mx.rcpt.burst, now);
  ++G.cfg_epoch;
}

void Scheduler::configure_domain(DomainId d, TimePoint now) {
  Domain& D = domains_[d];
  const auto provider = D.group == kNone ? std::nullopt : groups_[D.group].provider_index;
  D.settings = &policy_->domain_settings(D.name, provider);
  const LevelLimits& l = D.settings->domain;
  D.connect.configure(l.connect.rate, l.connect.burst, now);
  D.rcpt.configure(l.rcpt.rate, l.rcpt.burst, now);
}

// (Re)derives a (source, group)'s buckets when the group's settings or the source's warm-up
// share changed since they were last set.
void Scheduler::refresh_source_group(Group& G, SourceId s, TimePoint now) {
  SourceGroup& sg = G.per_source[s];
  Warmup& w = sources_[s].warm;
  const double share = w.share(now);
  if (sg.cfg_epoch == G.cfg_epoch && sg.warm_epoch == w.epoch() && sg.share == share) return;
  const LevelLimits& l = G.settings->source;
  sg.share = share;
  sg.connect.configure(l.connect.rate * share, scaled_burst(l.connect.burst, share), now);
  sg.rcpt.configure(l.rcpt.rate * share, scaled_burst(l.rcpt.burst, share), now);
  sg.cfg_epoch = G.cfg_epoch;
  sg.warm_epoch = w.epoch();
}

uint32_t Scheduler::source_session_limit(const Group& G, SourceId s) const {
  return scaled_burst(G.settings->source.sessions, G.per_source[s].share);
}

bool Scheduler::source_blocked(const Group& G, SourceId s, TimePoint now) const {
  const SourceGroup& sg = G.per_source[s];
  return sg.blocked && now < sg.blocked_until;
}

uint64_t Scheduler::blocked_mask(const Group& G, TimePoint now) const {
  uint64_t m = 0;
  for (uint32_t s = 0; s < sources_.size(); ++s)
    if (source_blocked(G, s, now)) m |= bit(s);
  return m;
}

// ---------------------------------------------------------------------------------------------
// Items

uint32_t Scheduler::alloc_item() {
  uint32_t i;
  if (!free_items_.empty()) {
    i = free_items_.back();
    free_items_.pop_back();
  } else {
    i = static_cast<uint32_t>(items_.size());
    items_.emplace_back();
  }
  return i;
}

void Scheduler::free_item(uint32_t i) {
  Item& it = items_[i];
  const uint32_t gen = it.gen + 1;
  it = Item{};
  it.gen = gen;
  free_items_.push_back(i);
}

bool Scheduler::valid(ItemId id) const {
  return id.index < items_.size() && items_[id.index].gen == id.gen &&
         items_[id.index].state != ItemState::Free;
}

Scheduler::Session* Scheduler::session_of(SessionId s) {
  if (s.index >= sessions_.size()) return nullptr;
  Session& ses = sessions_[s.index];
  return ses.live && ses.gen == s.gen ? &ses : nullptr;
}

Scheduler::ItemList& Scheduler::ready_list(Domain& D, uint8_t pinned) {
  if (!pinned) return D.any;
  if (D.pinned.empty()) {
    D.pinned.resize(sources_.size());
    D.pin_links.resize(sources_.size());
  }
  return D.pinned[pinned - 1u];
}

void Scheduler::make_ready(uint32_t i, bool front, TimePoint now) {
  (void)now;
  Item& it = items_[i];
  Domain& D = domains_[it.domain];
  if (it.pinned && source_count() <= it.pinned - 1u) it.pinned = 0;
  ItemList& l = ready_list(D, it.pinned);
  it.state = ItemState::Ready;
  front ? list_push_front(l, i) : list_push_back(l, i);
  if (it.pinned) {
    D.pinned_mask |= bit(it.pinned - 1u);
    ++D.pinned_total;
  }
  if (D.group != kNone) ++groups_[D.group].ready;
  ++stats_.ready;
  domain_ring_update(it.domain);
}

void Scheduler::make_waiting(uint32_t i, TimePoint when) {
  Item& it = items_[i];
  it.state = ItemState::Waiting;
  list_push_back(domains_[it.domain].waiting, i);
  it.timer = wheel_.add(when, payload(TimerKind::Item, i));
  ++stats_.waiting;
}

// Takes a queued item off its domain list (ready or waiting); rings are the caller's.
void Scheduler::unlink_item(uint32_t i) {
  Item& it = items_[i];
  Domain& D = domains_[it.domain];
  if (it.state == ItemState::Waiting) {
    wheel_.cancel(it.timer);
    it.timer = {};
    list_erase(D.waiting, i);
    --stats_.waiting;
  } else if (it.state == ItemState::Ready) {
    if (it.pinned) {
      const uint32_t s = it.pinned - 1u;
      list_erase(D.pinned[s], i);
      if (D.pinned[s].size == 0) D.pinned_mask &= ~bit(s);
      --D.pinned_total;
    } else {
      list_erase(D.any, i);
    }
    if (D.group != kNone) --groups_[D.group].ready;
    --stats_.ready;
  }
}

ItemId Scheduler::enqueue(uint64_t key, DomainId d, TimePoint now, TimePoint not_before,
                          bool front) {
  advance(now);
  const uint32_t i = alloc_item();
  Item& it = items_[i];
  it.key = key;
  it.domain = d;
  const ItemId id{i, it.gen};
  if (not_before > last_now_)
    make_waiting(i, not_before);
  else
    make_ready(i, front, now);
  return id;
}

bool Scheduler::requeue(ItemId id, TimePoint now) {
  if (!valid(id) || items_[id.index].state != ItemState::InFlight) return false;
  Item& it = items_[id.index];
  Session& ses = sessions_[it.session];
  list_erase(ses.items, id.index);
  --ses.outstanding;
  --domains_[it.domain].in_flight;
  --stats_.in_flight;
  it.session = kNone;
  make_ready(id.index, true, now);
  return true;
}

bool Scheduler::remove(ItemId id) {
  if (!valid(id)) return false;
  Item& it = items_[id.index];
  const DomainId d = it.domain;
  if (it.state == ItemState::InFlight) {
    Session& ses = sessions_[it.session];
    list_erase(ses.items, id.index);
    --ses.outstanding;
    --domains_[d].in_flight;
    --stats_.in_flight;
  } else {
    unlink_item(id.index);
  }
  free_item(id.index);
  domain_ring_update(d);
  return true;
}

bool Scheduler::queued(ItemId id) const {
  if (!valid(id)) return false;
  const ItemState st = items_[id.index].state;
  return st == ItemState::Ready || st == ItemState::Waiting;
}

size_t Scheduler::drain_domain(DomainId d, std::vector<uint64_t>& keys) {
  Domain& D = domains_[d];
  size_t n = 0;
  auto drain = [&](ItemList& l) {
    while (l.head != kNone) {
      const uint32_t i = l.head;
      keys.push_back(items_[i].key);
      unlink_item(i);
      free_item(i);
      ++n;
    }
  };
  drain(D.any);
  for (auto& l : D.pinned)
    drain(l);
  drain(D.waiting);
  domain_ring_update(d);
  return n;
}

void Scheduler::add_final(uint32_t i, const verdict::Classification& c) {
  finals_.push_back({items_[i].key, c, items_[i].tries});
  free_item(i);
  ++stats_.finals;
}

std::optional<Final> Scheduler::pop_final() {
  if (finals_head_ == finals_.size()) return std::nullopt;
  Final f = finals_[finals_head_++];
  if (finals_head_ == finals_.size()) {
    finals_.clear();
    finals_head_ = 0;
  }
  return f;
}

void Scheduler::add_event(SchedEvent e) {
  if (events_.size() >= 1000) events_.pop_front();
  events_.push_back(std::move(e));
}

std::optional<SchedEvent> Scheduler::pop_event() {
  if (events_.empty()) return std::nullopt;
  SchedEvent e = std::move(events_.front());
  events_.pop_front();
  return e;
}

// ---------------------------------------------------------------------------------------------
// Rings: which domains and groups are in the round-robin

// Makes the domain's ring membership match its queues (and parked state).
void Scheduler::domain_ring_update(DomainId d) {
  Domain& D = domains_[d];
  if (D.group == kNone) return;
  Group& G = groups_[D.group];
  const bool active = !D.wake.valid() && !D.cap_wait;
  auto any_link = [this](uint32_t i) -> Link& { return domains_[i].any_link; };
  const bool want_any = active && D.any.size > 0;
  if (want_any != D.any_link.linked()) {
    want_any ? ring_push(G.any_ring, d, any_link) : ring_erase(G.any_ring, d, any_link);
  }
  uint64_t todo = D.pinned_mask | D.pin_linked;
  while (todo) {
    const auto s = static_cast<uint32_t>(std::countr_zero(todo));
    todo &= todo - 1;
    auto pin_link = [this, s](uint32_t i) -> Link& { return domains_[i].pin_links[s]; };
    const bool want = active && (D.pinned_mask & bit(s));
    const bool linked = D.pin_linked & bit(s);
    if (want == linked) continue;
    if (want) {
      ring_push(G.pin_rings[s], d, pin_link);
      D.pin_linked |= bit(s);
      G.pin_mask |= bit(s);
    } else {
      ring_erase(G.pin_rings[s], d, pin_link);
      D.pin_linked &= ~bit(s);
      if (G.pin_rings[s].empty()) G.pin_mask &= ~bit(s);
    }
  }
  if (want_any || D.pin_linked) activate_group(D.group);
}

void Scheduler::domain_ring_remove(DomainId d) {
  Domain& D = domains_[d];
  if (D.group == kNone) return;
  Group& G = groups_[D.group];
  auto any_link = [this](uint32_t i) -> Link& { return domains_[i].any_link; };
  if (D.any_link.linked()) ring_erase(G.any_ring, d, any_link);
  while (D.pin_linked) {
    const auto s = static_cast<uint32_t>(std::countr_zero(D.pin_linked));
    D.pin_linked &= D.pin_linked - 1;
    auto pin_link = [this, s](uint32_t i) -> Link& { return domains_[i].pin_links[s]; };
    ring_erase(G.pin_rings[s], d, pin_link);
    if (G.pin_rings[s].empty()) G.pin_mask &= ~bit(s);
  }
}

void Scheduler::activate_domain(DomainId d) {
  domain_ring_update(d);
}

void Scheduler::park_domain(DomainId d, std::optional<TimePoint> until) {
  Domain& D = domains_[d];
  domain_ring_remove(d);
  if (until)
    D.wake = wheel_.add(*until, payload(TimerKind::Domain, d));
  else
    D.cap_wait = true;
}

bool Scheduler::group_has_work(const Group& G) const {
  return !G.any_ring.empty() || G.pin_mask != 0;
}

bool Scheduler::has_work_for(const Group& G, SourceId s) const {
  return !G.any_ring.empty() || (G.pin_mask & bit(s));
}

void Scheduler::activate_group(GroupId g) {
  Group& G = groups_[g];
  if (G.active_link.linked() || G.wake.valid() || G.cap_wait || !group_has_work(G)) return;
  ring_push(active_, g, [this](uint32_t i) -> Link& { return groups_[i].active_link; });
}

void Scheduler::deactivate_group(GroupId g) {
  Group& G = groups_[g];
  if (G.active_link.linked())
    ring_erase(active_, g, [this](uint32_t i) -> Link& { return groups_[i].active_link; });
  G.deficit = std::min<int64_t>(G.deficit, 0);  // no banking of credit while away
}

void Scheduler::park_group(GroupId g, std::optional<TimePoint> until, bool on_sessions) {
  Group& G = groups_[g];
  deactivate_group(g);
  if (until) G.wake = wheel_.add(*until, payload(TimerKind::Group, g));
  if (on_sessions) G.cap_wait = true;
}

// ---------------------------------------------------------------------------------------------
// Time

void Scheduler::advance(TimePoint now) {
  if (now < last_now_) now = last_now_;  // the clock is monotonic; be safe anyway
  last_now_ = now;
  wheel_.advance(now, [this, now](uint64_t p) { on_timer(p, now); });
}

void Scheduler::on_timer(uint64_t p, TimePoint now) {
  const auto kind = static_cast<TimerKind>(p >> 32);
  const auto index = static_cast<uint32_t>(p);
  switch (kind) {
    case TimerKind::Item: {
      Item& it = items_[index];
      it.timer = {};
      list_erase(domains_[it.domain].waiting, index);
      --stats_.waiting;
      make_ready(index, false, now);
      break;
    }
    case TimerKind::Domain: {
      Domain& D = domains_[index];
      D.wake = {};
      D.cap_wait = false;
      activate_domain(index);
      break;
    }
    case TimerKind::Group: {
      Group& G = groups_[index];
      G.wake = {};
      G.cap_wait = false;
      activate_group(index);
      break;
    }
  }
}

std::optional<TimePoint> Scheduler::next_deadline() const {
  return wheel_.next_deadline();
}

// ---------------------------------------------------------------------------------------------
// Decisions

bool Scheduler::next_ready(TimePoint now, Grant& out) {
  advance(now);
  now = last_now_;
  out.items.clear();
  while (!active_.empty()) {
    if (open_sessions_ >= max_sessions()) return false;
    if (try_group(active_.head, now, out)) return true;
  }
  return false;
}

// Moves the items of every domain in the group's pin ring s (s is blocked for the group) to
// their domains' unpinned queues: "retried from another IP".
void Scheduler::unpin_all(Group& G, SourceId s, TimePoint now) {
  (void)now;
  Ring& r = G.pin_rings[s];
  while (!r.empty()) {
    const DomainId d = r.head;
    Domain& D = domains_[d];
    ItemList& l = D.pinned[s];
    while (l.tail != kNone) {  // from the back, pushing to the front: order kept
      const uint32_t i = l.tail;
      list_erase(l, i);
      --D.pinned_total;
      items_[i].pinned = 0;
      list_push_front(D.any, i);
      ++stats_.rotations;
    }
    D.pinned_mask &= ~bit(s);
    domain_ring_update(d);  // leaves pin ring s, joins the any ring
  }
}

// Every source IP is blocked for this group (or down): its due addresses end with c.
void Scheduler::fail_group(GroupId g, const verdict::Classification& c) {
  Group& G = groups_[g];
  auto fail_domain = [&](DomainId d) {
    Domain& D = domains_[d];
    auto drain = [&](ItemList& l) {
      while (l.head != kNone) {
        const uint32_t i = l.head;
        unlink_item(i);
        add_final(i, c);
      }
    };
    drain(D.any);
    for (auto& l : D.pinned)
      drain(l);
    domain_ring_update(d);
  };
  while (!G.any_ring.empty())
    fail_domain(G.any_ring.head);
  while (G.pin_mask) {
    const auto s = static_cast<uint32_t>(std::countr_zero(G.pin_mask));
    fail_domain(G.pin_rings[s].head);
  }
  deactivate_group(g);
}

bool Scheduler::try_group(GroupId g, TimePoint now, Grant& out) {
  Group& G = groups_[g];
  if (!group_has_work(G)) {
    deactivate_group(g);
    return false;
  }
  // MX-group level: sessions (AIMD window) and buckets.
  if (G.sessions >= std::min(G.aimd.limit(), G.settings->mx.sessions)) {
    park_group(g, std::nullopt, true);
    return false;
  }
  if (!G.connect.can_take(1, now) || !G.rcpt.can_take(1, now)) {
    park_group(g, std::max(G.connect.ready_at(1, now), G.rcpt.ready_at(1, now)), false);
    return false;
  }
  // Deficit round-robin: a turn starts with a quantum of recipients.
  if (G.deficit <= 0) {
    G.deficit += quantum_ * G.settings->weight;
    if (G.deficit <= 0) {
      active_.head = G.active_link.next;
      return false;
    }
  }
  // Source IP. First the blocked ones: addresses pinned to them (greylisting) lose the pin,
  // so that every source left has work whenever the group has; all blocked ends the group's
  // queue. Then round-robin over the others for one with room and tokens.
  // A source that is down (a dead proxy) counts as blocked for every group, but ends the
  // addresses with its own reason.
  const auto S = static_cast<uint32_t>(sources_.size());
  const uint64_t all = S == 64 ? ~uint64_t{0} : bit(S) - 1;
  const uint64_t by_group = blocked_mask(G, now);
  const uint64_t blocked = by_group | (down_mask_ & all);
  if (blocked == all) {
    const verdict::Classification c = by_group == all ? G.last_block : down_result_;
    fail_group(g, c);
    return false;
  }
  for (uint64_t pins = G.pin_mask & blocked; pins; pins &= pins - 1)
    unpin_all(G, static_cast<SourceId>(std::countr_zero(pins)), now);
  SourceId pick = kNone;
  std::optional<TimePoint> wake;
  bool on_sessions = false;
  for (uint32_t n = 0; n < S; ++n) {
    const SourceId s = (G.rr + n) % S;
    if ((blocked & bit(s)) || !has_work_for(G, s)) continue;
    refresh_source_group(G, s, now);
    SourceGroup& sg = G.per_source[s];
    if (sg.sessions >= source_session_limit(G, s)) {
      on_sessions = true;
      continue;
    }
    if (!sg.connect.can_take(1, now) || !sg.rcpt.can_take(1, now)) {
      const TimePoint t = std::max(sg.connect.ready_at(1, now), sg.rcpt.ready_at(1, now));
      wake = wake ? std::min(*wake, t) : t;
      continue;
    }
    pick = s;
    break;
  }
  if (pick == kNone) {
    if (!group_has_work(G) || (!wake && !on_sessions)) {
      deactivate_group(g);
      return false;
    }
    park_group(g, wake, on_sessions);
    return false;
  }
  G.rr = (pick + 1) % S;
  SourceGroup& sg = G.per_source[pick];

  // Domain: the head of the pinned lane for this source, else of the unpinned lane.
  const bool pinned_lane = G.pin_mask & bit(pick);
  Ring& lane = pinned_lane ? G.pin_rings[pick] : G.any_ring;
  const DomainId d = lane.head;
  Domain& D = domains_[d];
  const DomainSettings& ds = *D.settings;
  if (D.sessions >= ds.domain.sessions) {
    park_domain(d, std::nullopt);
    return false;
  }
  if (!D.connect.can_take(1, now) || !D.rcpt.can_take(1, now)) {
    park_domain(d, std::max(D.connect.ready_at(1, now), D.rcpt.ready_at(1, now)));
    return false;
  }

  // Grant: up to K recipients, K bounded by the session budget (recipients, and rejections so
  // that even an all-rejected batch stays under the error limit) and every RCPT bucket.
  uint32_t k = std::min(ds.recipients, ds.rejections);
  k = std::min({k, D.rcpt.available(now), G.rcpt.available(now), sg.rcpt.available(now)});
  uint32_t si;
  if (!free_sessions_.empty()) {
    si = free_sessions_.back();
    free_sessions_.pop_back();
  } else {
    si = static_cast<uint32_t>(sessions_.size());
    sessions_.emplace_back();
  }
  Session& ses = sessions_[si];
  const uint32_t gen = ses.gen;
  ses = Session{};
  ses.gen = gen;
  ses.live = true;
  ses.group = g;
  ses.domain = d;
  ses.source = pick;
  const SessionId sid{si, gen};

  out.session = sid;
  out.group = g;
  out.domain = d;
  out.source = pick;
  const uint32_t n = take_items(D, pick, k, ses, sid, out.items);
  D.connect.try_take(1, now);
  G.connect.try_take(1, now);
  sg.connect.try_take(1, now);
  D.rcpt.try_take(n, now);
  G.rcpt.try_take(n, now);
  sg.rcpt.try_take(n, now);
  ++D.sessions;
  ++G.sessions;
  ++sg.sessions;
  ++open_sessions_;
  ++stats_.grants;

  // The domain goes to the back of the lane it was served from (if still there).
  if (lane.head == d) lane.head = pinned_lane ? D.pin_links[pick].next : D.any_link.next;
  domain_ring_update(d);
  G.deficit -= n;
  if (G.deficit <= 0 && active_.head == g) active_.head = G.active_link.next;
  return true;
}

uint32_t Scheduler::take_items(Domain& D, SourceId s, uint32_t k, Session& ses, SessionId sid,
                               std::vector<ItemRef>& out) {
  uint32_t n = 0;
  auto take = [&](ItemList& l) {
    while (n < k && l.head != kNone) {
      const uint32_t i = l.head;
      unlink_item(i);
      Item& it = items_[i];
      it.state = ItemState::InFlight;
      it.session = sid.index;
      list_push_back(ses.items, i);
      out.push_back({ItemId{i, it.gen}, it.key, it.tries});
      ++n;
    }
  };
  if (D.pinned_mask & bit(s)) take(D.pinned[s]);
  take(D.any);
  D.in_flight += n;
  ses.outstanding += n;
  ses.granted += n;
  stats_.in_flight += n;
  return n;
}

size_t Scheduler::refill(SessionId sid, TimePoint now, std::vector<ItemRef>& out) {
  advance(now);
  now = last_now_;
  Session* ses = session_of(sid);
  if (!ses) return 0;
  Domain& D = domains_[ses->domain];
  if (D.group != ses->group) return 0;
  Group& G = groups_[ses->group];
  if (source_blocked(G, ses->source, now) || source_down(ses->source)) return 0;
  const DomainSettings& ds = *D.settings;
  if (ses->granted >= ds.recipients || ses->rejections + ses->outstanding >= ds.rejections)
    return 0;
  refresh_source_group(G, ses->source, now);
  SourceGroup& sg = G.per_source[ses->source];
  uint32_t k =
      std::min(ds.recipients - ses->granted, ds.rejections - ses->rejections - ses->outstanding);
  k = std::min({k, D.rcpt.available(now), G.rcpt.available(now), sg.rcpt.available(now)});
  if (k == 0) return 0;
  const uint32_t n = take_items(D, ses->source, k, *ses, sid, out);
  if (n == 0) return 0;
  D.rcpt.try_take(n, now);
  G.rcpt.try_take(n, now);
  sg.rcpt.try_take(n, now);
  ++stats_.refills;
  domain_ring_update(ses->domain);
  return n;
}

// ---------------------------------------------------------------------------------------------
// Feedback

void Scheduler::backoff_signal(Session& ses, TimePoint now, std::string_view why) {
  ses.trouble = true;
  Group& G = groups_[ses.group];
  sources_[ses.source].warm.on_trouble(now);
  if (G.aimd.on_backoff(now)) {
    ++stats_.backoffs;
    const GroupSettings& s = *G.settings;
    G.connect.configure(s.mx.connect.rate * G.aimd.rate_factor(), s.mx.connect.burst, now);
    G.rcpt.configure(s.mx.rcpt.rate * G.aimd.rate_factor(), s.mx.rcpt.burst, now);
    SchedEvent e;
    e.kind = SchedEvent::Kind::BackOff;
    e.group = ses.group;
    e.source = ses.source;
    e.aimd = G.aimd.view();
    e.reason = std::string(why);
    add_event(std::move(e));
  }
}

Disposition Scheduler::on_outcome(SessionId sid, ItemId id, const verdict::Classification& c,
                                  TimePoint now) {
  advance(now);
  now = last_now_;
  Disposition out;
  Session* ses = session_of(sid);
  if (!ses || !valid(id)) return out;
  const uint32_t i = id.index;
  Item& it = items_[i];
  if (it.state != ItemState::InFlight || it.session != sid.index) return out;

  list_erase(ses->items, i);
  --ses->outstanding;
  ses->decided = true;
  Domain& D = domains_[it.domain];
  --D.in_flight;
  --stats_.in_flight;
  it.session = kNone;
  ++it.tries;
  // Postfix counts every error reply toward smtpd_soft_error_limit.
  if (!accepted(c)) ++ses->rejections;
  if (c.back_off || c.reason == Reason::ConnectionFailed)
    backoff_signal(*ses, now, to_string(c.reason));
  out.tries = it.tries;
  out.result = c;

  if (c.verdict != Verdict::Unknown) {
    ses->judged = true;
    ses->block_pending = false;
  }
  if (!c.source_blocked && ses->block_pending && ses->outstanding == 0)
    apply_block(*ses, ses->pending_block, now);

  if (c.source_blocked) {
    // The answer can only change from another source IP: rest this one for the group, and
    // give the address to another, unless every source is blocked (for it or for the group).
    // Unless the same session's other recipients were judged: then the server judged mailboxes
    // for us, and this reply is about this one recipient. Its other recipients still
    // outstanding decide (the block waits for them).
    ++stats_.blocks;
    it.blocked_from |= bit(ses->source);
    if (!ses->judged) {
      ses->block_pending = true;
      ses->pending_block = c;
      if (ses->outstanding == 0) apply_block(*ses, c, now);
    }
    const Group& target = D.group == kNone ? groups_[ses->group] : groups_[D.group];
    const auto S = static_cast<uint32_t>(sources_.size());
    const uint64_t all = S == 64 ? ~uint64_t{0} : bit(S) - 1;
    if (((it.blocked_from | blocked_mask(target, now)) & all) == all) {
      out.kind = Disposition::Kind::Final;
      free_item(i);
      ++stats_.finals;
      return out;
    }
    it.pinned = 0;
    ++stats_.rotations;
    make_ready(i, true, now);
    out.kind = Disposition::Kind::Retry;
    out.not_before = now;
    return out;
  }
  if (c.recipient_limit) {
    // Not judged: the server's per-transaction limit. Again at once, in a new transaction.
    make_ready(i, true, now);
    out.kind = Disposition::Kind::Retry;
    out.not_before = now;
    out.pinned = it.pinned ? it.pinned - 1u : kNone;
    return out;
  }
  if (c.retry_later) {
    ++it.retries;
    const DomainSettings& ds = *D.settings;
    if (it.retries >= ds.attempts || ds.retry_schedule.empty()) {
      out.kind = Disposition::Kind::Final;
      free_item(i);
      ++stats_.finals;
      return out;
    }
    // Greylisting keys on (client IP, sender, recipient): the retry must come from the same
    // source IP to pass.
    if (c.reason == Reason::Greylisted) {
      it.pinned = static_cast<uint8_t>(ses->source + 1);
      ++stats_.greylist_retries;
    }
    const size_t step = std::min<size_t>(it.retries - 1u, ds.retry_schedule.size() - 1);
    out.not_before = now + std::chrono::duration_cast<Clock::duration>(ds.retry_schedule[step]);
    out.pinned = it.pinned ? it.pinned - 1u : kNone;
    out.kind = Disposition::Kind::Retry;
    ++stats_.retries;
    make_waiting(i, out.not_before);
    return out;
  }
  out.kind = Disposition::Kind::Final;
  free_item(i);
  ++stats_.finals;
  return out;
}

void Scheduler::apply_block(Session& ses, const verdict::Classification& c, TimePoint now) {
  ses.block_pending = false;
  Group& G = groups_[ses.group];
  SourceGroup& sg = G.per_source[ses.source];
  const bool was_blocked = source_blocked(G, ses.source, now);
  sg.blocked = true;
  sg.blocked_until = now + G.settings->block_cooldown;
  G.last_block = c;
  sources_[ses.source].warm.on_block(now);
  if (!was_blocked) {
    SchedEvent e;
    e.kind = SchedEvent::Kind::Blocked;
    e.group = ses.group;
    e.source = ses.source;
    e.until = sg.blocked_until;
    e.reason = std::string(to_string(c.reason));
    add_event(std::move(e));
  }
}

void Scheduler::set_source_down(SourceId s, bool down, TimePoint now,
                                const verdict::Classification& why) {
  advance(now);
  if (s >= sources_.size()) return;
  if (down) down_result_ = why;
  if (down == bool(down_mask_ & bit(s))) return;
  down_mask_ ^= bit(s);
  // Every group is looked at again (a rare event): down, addresses pinned to s lose the pin and
  // an MX group left without a source ends its queue; up, groups without a usable source resume.
  for (GroupId g = 0; g < groups_.size(); ++g)
    activate_group(g);
}

void Scheduler::on_session_ended(SessionId sid, TimePoint now, SessionEnd how) {
  advance(now);
  now = last_now_;
  Session* ses = session_of(sid);
  if (!ses) return;
  if (ses->block_pending) apply_block(*ses, ses->pending_block, now);
  while (ses->items.tail != kNone)  // from the back, each to the front: order kept
    requeue(ItemId{ses->items.tail, items_[ses->items.tail].gen}, now);
  if (how == SessionEnd::ConnectFailed) backoff_signal(*ses, now, "connect_failed");
  if (how == SessionEnd::SourceFailed) ses->decided = false;  // no clean-session credit either
  const GroupId g = ses->group;
  const DomainId d = ses->domain;
  Group& G = groups_[g];
  Domain& D = domains_[d];
  --G.sessions;
  --D.sessions;
  --G.per_source[ses->source].sessions;
  --open_sessions_;
  if (!ses->trouble && ses->decided) {
    const double before = G.aimd.rate_factor();
    G.aimd.on_clean();
    sources_[ses->source].warm.on_clean_session();
    if (G.aimd.rate_factor() != before) {
      const GroupSettings& s = *G.settings;
      G.connect.configure(s.mx.connect.rate * G.aimd.rate_factor(), s.mx.connect.burst, now);
      G.rcpt.configure(s.mx.rcpt.rate * G.aimd.rate_factor(), s.mx.rcpt.burst, now);
      if (G.aimd.rate_factor() >= 1.0) {
        SchedEvent e;
        e.kind = SchedEvent::Kind::Recovered;
        e.group = g;
        e.source = ses->source;
        e.aimd = G.aimd.view();
        add_event(std::move(e));
      }
    }
  }
  ses->live = false;
  ++ses->gen;
  free_sessions_.push_back(sid.index);
  if (D.cap_wait) {
    D.cap_wait = false;
    activate_domain(d);
  }
  if (G.cap_wait) {
    G.cap_wait = false;
    if (G.wake.valid()) wheel_.cancel(G.wake);
    G.wake = {};
    activate_group(g);
  }
}

// ---------------------------------------------------------------------------------------------
// Policy swap

void Scheduler::set_policy(std::shared_ptr<const Policy> policy, TimePoint now) {
  advance(now);
  now = last_now_;
  if (!policy) return;
  policy_ = std::move(policy);
  const DomainSettings& dd = policy_->domain_settings("", std::nullopt);
  quantum_ = std::max<uint32_t>(1, std::min(dd.recipients, dd.rejections));
  // New lookups follow the new patterns; a host that has a group of its own keeps it (a new
  // provider pattern for it changes its settings below, it does not split it in two).
  std::erase_if(group_by_host_, [this](const auto& kv) { return groups_[kv.second].provider; });
  for (auto& s : sources_)
    s.warm.set_settings(policy_->warmup(), now);
  for (GroupId g = 0; g < groups_.size(); ++g) {
    Group& G = groups_[g];
    G.provider_index =
        G.provider ? policy_->provider_by_name(G.name) : policy_->provider_for_mx(G.host);
    configure_group(g, now);
    if (G.wake.valid()) wheel_.cancel(G.wake);
    G.wake = {};
    G.cap_wait = false;
  }
  for (DomainId d = 0; d < domains_.size(); ++d) {
    Domain& D = domains_[d];
    configure_domain(d, now);
    if (D.wake.valid()) wheel_.cancel(D.wake);
    D.wake = {};
    D.cap_wait = false;
    domain_ring_update(d);
  }
  for (GroupId g = 0; g < groups_.size(); ++g)
    activate_group(g);
}

// ---------------------------------------------------------------------------------------------
// State

GroupView Scheduler::group_view(GroupId g, TimePoint now) const {
  const Group& G = groups_[g];
  GroupView v;
  v.name = G.name;
  v.provider = G.provider;
  v.sessions = G.sessions;
  v.session_limit = std::min(G.aimd.limit(), G.settings->mx.sessions);
  v.aimd = G.aimd.view();
  v.connect_rate = G.connect.rate();
  v.rcpt_rate = G.rcpt.rate();
  if (!G.connect.unlimited()) {
    v.connect_tokens = G.connect.available(now);
    v.connect_burst = G.connect.burst();
  }
  if (!G.rcpt.unlimited()) {
    v.rcpt_tokens = G.rcpt.available(now);
    v.rcpt_burst = G.rcpt.burst();
  }
  v.ready = G.ready;
  v.active = G.active_link.linked();
  v.parked_on_timer = G.wake.valid();
  v.parked_on_sessions = G.cap_wait;
  v.deficit = G.deficit;
  return v;
}

SourceGroupView Scheduler::source_group_view(SourceId s, GroupId g, TimePoint now) {
  Group& G = groups_[g];
  refresh_source_group(G, s, now);
  const SourceGroup& sg = G.per_source[s];
  SourceGroupView v;
  v.sessions = sg.sessions;
  v.session_limit = source_session_limit(G, s);
  v.blocked = source_blocked(G, s, now);
  v.blocked_until = sg.blocked_until;
  v.share = sg.share;
  v.connect_rate = sg.connect.rate();
  v.rcpt_rate = sg.rcpt.rate();
  return v;
}

WarmupState Scheduler::warmup_state(SourceId s, TimePoint now) const {
  return sources_[s].warm.state(now);
}

bool Scheduler::blocked(SourceId s, GroupId g, TimePoint now) const {
  return source_blocked(groups_[g], s, now);
}

SchedulerStats Scheduler::stats() const {
  SchedulerStats s = stats_;
  s.sessions = open_sessions_;
  s.groups = groups_.size();
  s.domains = domains_.size() - free_domains_.size();
  s.timers = wheel_.size();
  return s;
}

WaitingSpan Scheduler::waiting_span() const {
  WaitingSpan w;
  for (const Domain& D : domains_)
    for (uint32_t i = D.waiting.head; i != kNone; i = items_[i].next) {
      const auto t = wheel_.when(items_[i].timer);
      if (!t) continue;
      if (w.count == 0 || *t < w.first) w.first = *t;
      if (w.count == 0 || *t > w.last) w.last = *t;
      ++w.count;
    }
  return w;
}

}  // namespace mxp::sched
