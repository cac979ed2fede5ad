// Internals of the scheduler shared by its source files (not part of the public interface): the
// private records behind Scheduler's ids, and small helpers. Data layout, from the top:
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
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sched/scheduler.hpp"

namespace mxp::sched {

namespace detail {

enum class TimerKind : uint64_t { Item = 0, Domain = 1, Group = 2 };

inline uint64_t payload(TimerKind k, uint32_t index) {
  return (static_cast<uint64_t>(k) << 32) | index;
}

inline uint64_t bit(uint32_t s) {
  return uint64_t{1} << s;
}

inline uint32_t scaled_burst(uint32_t burst, double share) {
  return std::max<uint32_t>(1, static_cast<uint32_t>(std::floor(burst * share + 1e-9)));
}

}  // namespace detail

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
  ItemList waiting;                      // not due yet (in the wheel)
  uint32_t in_flight = 0, sessions = 0;  // sessions: open for it now (its limits: limits_)
  Link any_link;
  std::vector<Link> pin_links;  // by source, sized with pinned
  uint64_t pin_linked = 0;      // bit s: in the group's pin ring s
  TimerId wake;
  bool cap_wait = false;
  uint64_t ready() const { return any.size + pinned_total; }
  // Due addresses that a session from source s may take.
  uint32_t ready_for(SourceId s) const {
    return any.size + ((pinned_mask & detail::bit(s)) ? pinned[s].size : 0);
  }
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
  // Bit s: source s is outside the group's pool (policy `sources`), never granted for it.
  uint64_t outside = 0;
  uint32_t sessions = 0;  // open to it now (its limits and AIMD state: limits_)
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

// The small helpers that every part of the scheduler calls on each decision, inline here so that
// splitting the scheduler into files did not turn them into calls.

inline bool Scheduler::valid(ItemId id) const {
  return id.index < items_.size() && items_[id.index].gen == id.gen &&
         items_[id.index].state != ItemState::Free;
}

inline Scheduler::Session* Scheduler::session_of(SessionId s) {
  if (s.index >= sessions_.size()) return nullptr;
  Session& ses = sessions_[s.index];
  return ses.live && ses.gen == s.gen ? &ses : nullptr;
}

inline Scheduler::ItemList& Scheduler::ready_list(Domain& D, uint8_t pinned) {
  if (!pinned) return D.any;
  if (D.pinned.empty()) {
    D.pinned.resize(sources_.size());
    D.pin_links.resize(sources_.size());
  }
  return D.pinned[pinned - 1u];
}

inline uint32_t Scheduler::source_session_limit(const Group& G, SourceId s) const {
  return detail::scaled_burst(G.settings->source.sessions, G.per_source[s].share);
}

inline bool Scheduler::source_blocked(const Group& G, SourceId s, TimePoint now) const {
  const SourceGroup& sg = G.per_source[s];
  return sg.blocked && now < sg.blocked_until;
}

inline void Scheduler::list_push_back(ItemList& l, uint32_t i) {
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

inline void Scheduler::list_push_front(ItemList& l, uint32_t i) {
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

inline void Scheduler::list_erase(ItemList& l, uint32_t i) {
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

inline bool Scheduler::group_has_work(const Group& G) const {
  return !G.any_ring.empty() || G.pin_mask != 0;
}

inline bool Scheduler::has_work_for(const Group& G, SourceId s) const {
  return !G.any_ring.empty() || (G.pin_mask & detail::bit(s));
}

// Sources outside the group's pool (policy `sources`) count as blocked by it.
inline uint64_t Scheduler::blocked_mask(const Group& G, TimePoint now) const {
  uint64_t m = 0;
  for (uint32_t s = 0; s < sources_.size(); ++s)
    if (source_blocked(G, s, now) || (G.outside & detail::bit(s))) m |= detail::bit(s);
  return m;
}

}  // namespace mxp::sched
