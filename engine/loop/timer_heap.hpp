// Timers of the loop: an indexed binary min-heap (deadline, then insertion order) with O(log n)
// add and cancel, O(1) earliest. Shared by both backends; 10k armed timers cost ~480 KiB.
// A hashed wheel would make add O(1) but needs a tick; at our scale (one timer per session) the
// heap's log n is ~14 compares and deadlines stay exact to the nanosecond.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <vector>

#include "core/clock.hpp"

namespace mxp::loop {

using Clock = core::Clock;
using TimePoint = Clock::time_point;
using Duration = Clock::duration;

// A timer: slot (low 32 bits) and generation (high 32 bits, >= 1), so cancelling an id whose
// timer already fired does nothing even after the slot is reused.
struct TimerId {
  uint64_t value = 0;  // 0 is never a live timer
  bool operator==(const TimerId&) const = default;
};

class TimerHandler {
 public:
  virtual void on_timer(TimerId id, uint64_t cookie) = 0;

 protected:
  ~TimerHandler() = default;
};

class TimerHeap {
 public:
  struct Fired {
    TimerId id;
    TimerHandler* handler = nullptr;
    uint64_t cookie = 0;
  };

  TimerId add(TimePoint deadline, TimerHandler* handler, uint64_t cookie);
  bool cancel(TimerId id);
  // Removes and returns the earliest timer if its deadline <= now and it was added before
  // sequence number seq_limit (see next_seq()).
  bool pop_due(TimePoint now, uint64_t seq_limit, Fired& out);
  std::optional<TimePoint> earliest() const;
  size_t size() const { return heap_.size(); }
  uint64_t next_seq() const { return next_seq_; }

 private:
  struct Node {
    TimePoint deadline;
    uint64_t seq;
    uint32_t slot;
  };
  struct Slot {
    TimerHandler* handler = nullptr;
    uint64_t cookie = 0;
    uint32_t gen = 1;
    uint32_t pos = kNotArmed;  // index in heap_
  };
  static constexpr uint32_t kNotArmed = UINT32_MAX;

  static bool before(const Node& a, const Node& b) {
    return a.deadline < b.deadline || (a.deadline == b.deadline && a.seq < b.seq);
  }
  void place(size_t pos, const Node& n);
  void sift_up(size_t pos);
  void sift_down(size_t pos);
  void remove_at(size_t pos);
  void release(uint32_t slot);

  std::vector<Node> heap_;
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_;
  uint64_t next_seq_ = 0;
};

}  // namespace mxp::loop
