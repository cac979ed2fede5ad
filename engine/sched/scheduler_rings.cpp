// The scheduler's intrusive lists and rings: FIFOs of addresses over the item table, the rings of
// domains per MX group and of groups in the round-robin, and how domains and groups enter them
// (activation) and leave them until a timer or a session end (parking).
#include "sched/scheduler_detail.hpp"

#include <bit>

namespace mxp::sched {

using detail::bit;
using detail::payload;
using detail::TimerKind;

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

}  // namespace mxp::sched
