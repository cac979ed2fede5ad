// Indexed binary heap of timers: each slot remembers its heap position so cancel is O(log n).
#include "loop/timer_heap.hpp"

namespace mxp::loop {

TimerId TimerHeap::add(TimePoint deadline, TimerHandler* handler, uint64_t cookie) {
  uint32_t slot;
  if (!free_.empty()) {
    slot = free_.back();
    free_.pop_back();
  } else {
    slot = static_cast<uint32_t>(slots_.size());
    slots_.push_back(Slot{});
  }
  Slot& s = slots_[slot];
  s.handler = handler;
  s.cookie = cookie;
  heap_.push_back(Node{deadline, next_seq_++, slot});
  s.pos = static_cast<uint32_t>(heap_.size() - 1);
  sift_up(heap_.size() - 1);
  return TimerId{(uint64_t{s.gen} << 32) | slot};
}

bool TimerHeap::cancel(TimerId id) {
  const auto slot = static_cast<uint32_t>(id.value & 0xffffffffu);
  const auto gen = static_cast<uint32_t>(id.value >> 32);
  if (gen == 0 || slot >= slots_.size()) return false;
  Slot& s = slots_[slot];
  if (s.gen != gen || s.pos == kNotArmed) return false;
  remove_at(s.pos);
  release(slot);
  return true;
}

bool TimerHeap::pop_due(TimePoint now, uint64_t seq_limit, Fired& out) {
  if (heap_.empty()) return false;
  const Node top = heap_.front();
  if (top.deadline > now || top.seq >= seq_limit) return false;
  const Slot& s = slots_[top.slot];
  out = Fired{TimerId{(uint64_t{s.gen} << 32) | top.slot}, s.handler, s.cookie};
  remove_at(0);
  release(top.slot);
  return true;
}

std::optional<TimePoint> TimerHeap::earliest() const {
  if (heap_.empty()) return std::nullopt;
  return heap_.front().deadline;
}

void TimerHeap::place(size_t pos, const Node& n) {
  heap_[pos] = n;
  slots_[n.slot].pos = static_cast<uint32_t>(pos);
}

void TimerHeap::sift_up(size_t pos) {
  const Node n = heap_[pos];
  while (pos > 0) {
    const size_t parent = (pos - 1) / 2;
    if (!before(n, heap_[parent])) break;
    place(pos, heap_[parent]);
    pos = parent;
  }
  place(pos, n);
}

void TimerHeap::sift_down(size_t pos) {
  const Node n = heap_[pos];
  const size_t count = heap_.size();
  for (;;) {
    size_t child = 2 * pos + 1;
    if (child >= count) break;
    if (child + 1 < count && before(heap_[child + 1], heap_[child])) ++child;
    if (!before(heap_[child], n)) break;
    place(pos, heap_[child]);
    pos = child;
  }
  place(pos, n);
}

void TimerHeap::remove_at(size_t pos) {
  const size_t last = heap_.size() - 1;
  if (pos != last) {
    place(pos, heap_[last]);
    heap_.pop_back();
    // The moved node may belong above or below its new position.
    if (pos > 0 && before(heap_[pos], heap_[(pos - 1) / 2])) {
      sift_up(pos);
    } else {
      sift_down(pos);
    }
  } else {
    heap_.pop_back();
  }
}

void TimerHeap::release(uint32_t slot) {
  Slot& s = slots_[slot];
  s.pos = kNotArmed;
  s.handler = nullptr;
  if (++s.gen == 0) s.gen = 1;  // generation 0 would make a TimerId look invalid
  free_.push_back(slot);
}

}  // namespace mxp::loop
