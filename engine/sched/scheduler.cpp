// The scheduler's core bookkeeping: construction, the registries of MX groups and domains,
// addresses (queued, waiting, in flight, finished), finals and events, and time (the timer
// wheel's expiries). The layout of its state is described in scheduler_detail.hpp; granting,
// feedback, rings, limits and views live in the scheduler_*.cpp files beside this one.
#include "sched/scheduler.hpp"

#include <algorithm>

#include "core/strings.hpp"
#include "sched/scheduler_detail.hpp"

namespace mxp::sched {

using detail::bit;
using detail::payload;
using detail::TimerKind;

namespace {

std::string lower_host(std::string_view s) {
  std::string out = core::lower(s);
  if (!out.empty() && out.back() == '.') out.pop_back();
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Construction, registries

Scheduler::Scheduler(std::shared_ptr<const Policy> policy, std::vector<SourceSpec> sources,
                     TimePoint now, std::unique_ptr<RemoteLimits> limits)
    : policy_(std::move(policy)), limits_(std::move(limits)), wheel_(now), last_now_(now) {
  if (!policy_) policy_ = std::make_shared<Policy>(Policy::builtin());
  if (!limits_) limits_ = std::make_unique<LocalRemoteLimits>();
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
  limits_->release_domain(d);
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

}  // namespace mxp::sched
