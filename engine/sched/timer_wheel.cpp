// The timer wheel's placement, cascading and deadline search (see timer_wheel.hpp for the
// invariant). Lists are intrusive and doubly linked over nodes_, so cancel is O(1).
#include "sched/timer_wheel.hpp"

#include <bit>

namespace mxp::sched {

TimerWheel::TimerWheel(TimePoint start) : cur_(tick_floor(start)) {}

int64_t TimerWheel::tick_ceil(TimePoint t) {
  const int64_t ns = to_ns(t);
  if (ns <= 0) return 0;
  return (ns + kTickNs - 1) / kTickNs;
}

int64_t TimerWheel::tick_floor(TimePoint t) {
  const int64_t ns = to_ns(t);
  return ns <= 0 ? 0 : ns / kTickNs;
}

TimerWheel::List& TimerWheel::list_of(uint16_t where) {
  if (where == kWhereDue) return due_;
  if (where == kWhereOverflow) return overflow_;
  return slots_[where / kSlots][where % kSlots];
}

void TimerWheel::link(uint32_t i, uint16_t where) {
  Node& n = nodes_[i];
  List& l = list_of(where);
  n.where = where;
  n.prev = kNil;
  n.next = l.head;
  if (l.head != kNil) nodes_[l.head].prev = i;
  l.head = i;
  if (where < kLevels * kSlots) occupied_[where / kSlots] |= uint64_t{1} << (where % kSlots);
}

void TimerWheel::unlink(uint32_t i) {
  Node& n = nodes_[i];
  List& l = list_of(n.where);
  if (n.prev != kNil)
    nodes_[n.prev].next = n.next;
  else
    l.head = n.next;
  if (n.next != kNil) nodes_[n.next].prev = n.prev;
  if (l.head == kNil && n.where < kLevels * kSlots)
    occupied_[n.where / kSlots] &= ~(uint64_t{1} << (n.where % kSlots));
  n.prev = n.next = kNil;
}

void TimerWheel::release(uint32_t i) {
  Node& n = nodes_[i];
  n.where = kWhereFree;
  ++n.gen;
  free_.push_back(i);
  --size_;
}

// Puts node i where the invariant says, relative to cur_.
void TimerWheel::place(uint32_t i) {
  const int64_t t = nodes_[i].tick;
  if (t <= cur_) return link(i, kWhereDue);
  const uint64_t diff = static_cast<uint64_t>(t ^ cur_);
  const int level = (63 - std::countl_zero(diff)) / kLevelBits;
  if (level >= kLevels) return link(i, kWhereOverflow);
  const int slot = static_cast<int>((t >> (level * kLevelBits)) & (kSlots - 1));
  link(i, static_cast<uint16_t>(level * kSlots + slot));
}

TimerId TimerWheel::add(TimePoint when, uint64_t payload) {
  uint32_t i;
  if (!free_.empty()) {
    i = free_.back();
    free_.pop_back();
  } else {
    i = static_cast<uint32_t>(nodes_.size());
    nodes_.emplace_back();
  }
  Node& n = nodes_[i];
  n.tick = tick_ceil(when);
  n.payload = payload;
  ++size_;
  place(i);
  return TimerId{i, n.gen};
}

bool TimerWheel::cancel(TimerId id) {
  if (!id.valid() || id.index >= nodes_.size()) return false;
  Node& n = nodes_[id.index];
  if (n.gen != id.gen || n.where == kWhereFree) return false;
  unlink(id.index);
  release(id.index);
  return true;
}

std::optional<TimePoint> TimerWheel::when(TimerId id) const {
  if (!id.valid() || id.index >= nodes_.size()) return std::nullopt;
  const Node& n = nodes_[id.index];
  if (n.gen != id.gen || n.where == kWhereFree) return std::nullopt;
  return tick_time(n.tick);
}

void TimerWheel::collect(TimePoint now) {
  const int64_t next = tick_floor(now);
  if (next <= cur_) return;
  // Gather every slot whose range the move from cur_ to next enters; re-placing those timers
  // relative to next either makes them due or drops them to a lower level.
  uint32_t gathered = kNil;
  auto take_list = [&](List& l) {
    while (l.head != kNil) {
      const uint32_t i = l.head;
      unlink(i);
      nodes_[i].next = gathered;
      gathered = i;
    }
  };
  for (int level = 0; level < kLevels; ++level) {
    const int shift = level * kLevelBits;
    const int64_t oc = cur_ >> shift, nc = next >> shift;
    if (oc == nc) break;  // and so on every higher level
    uint64_t mask;
    if (nc - oc >= kSlots) {
      mask = ~uint64_t{0};
    } else {
      const int steps = static_cast<int>(nc - oc);  // slots oc+1 .. oc+steps, cyclically
      mask = std::rotl((uint64_t{1} << steps) - 1, static_cast<int>((oc + 1) & (kSlots - 1)));
    }
    uint64_t pending = mask & occupied_[level];
    while (pending) {
      const int slot = std::countr_zero(pending);
      pending &= pending - 1;
      take_list(slots_[level][slot]);
    }
  }
  if ((cur_ >> (kLevels * kLevelBits)) != (next >> (kLevels * kLevelBits))) take_list(overflow_);
  cur_ = next;
  while (gathered != kNil) {
    const uint32_t i = gathered;
    gathered = nodes_[i].next;
    nodes_[i].next = kNil;
    place(i);
  }
}

std::optional<TimePoint> TimerWheel::next_deadline() const {
  if (due_.head != kNil) return tick_time(cur_);
  for (int level = 0; level < kLevels; ++level) {
    const uint64_t occ = occupied_[level];
    if (!occ) continue;
    const int shift = level * kLevelBits;
    const int here = static_cast<int>((cur_ >> shift) & (kSlots - 1));
    // Every timer on this level has its digit above cur_'s (same higher digits).
    const uint64_t above = here == kSlots - 1 ? 0 : occ & (~uint64_t{0} << (here + 1));
    const int slot = std::countr_zero(above ? above : occ);
    const int64_t base = (cur_ >> (shift + kLevelBits)) << (shift + kLevelBits);
    return tick_time(base | (static_cast<int64_t>(slot) << shift));
  }
  if (overflow_.head != kNil) {
    const int shift = kLevels * kLevelBits;
    return tick_time(((cur_ >> shift) + 1) << shift);
  }
  return std::nullopt;
}

}  // namespace mxp::sched
