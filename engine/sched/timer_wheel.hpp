// A hierarchical timer wheel (6 levels x 64 slots, 1 ms ticks, ~2.2 years before an overflow
// list): O(1) add and cancel, amortised O(1) expiry (a timer cascades down at most 5 times).
// Holds the scheduler's not-before times: greylisting retries, back-off waits, token refills.
// The placement rule (a timer sits at the level of the highest 6-bit digit in which its tick
// differs from the current tick) makes every timer on a lower level due before any timer on a
// higher one, so next_deadline() needs no scan of timers, only of 64-bit occupancy words.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "sched/clock.hpp"

namespace mxp::sched {

struct TimerId {
  uint32_t index = UINT32_MAX;
  uint32_t gen = 0;
  bool valid() const { return index != UINT32_MAX; }
  bool operator==(const TimerId&) const = default;
};

class TimerWheel {
 public:
  static constexpr int kLevelBits = 6;
  static constexpr int kSlots = 1 << kLevelBits;
  static constexpr int kLevels = 6;
  static constexpr int64_t kTickNs = 1'000'000;  // 1 ms

  explicit TimerWheel(TimePoint start = TimePoint{});

  // Schedules payload for `when`. It fires on the first advance() whose now is at or after
  // `when` rounded up to the next millisecond: never early. A time already past fires on the
  // next advance().
  TimerId add(TimePoint when, uint64_t payload);
  // Removes a pending timer; false if it already fired or was cancelled (stale id).
  bool cancel(TimerId id);
  // When a pending timer fires (its time rounded up to the millisecond); nullopt when it already
  // fired or was cancelled.
  std::optional<TimePoint> when(TimerId id) const;

  // Moves the wheel to now and calls fire(payload) for every due timer. fire may add and
  // cancel timers (a timer it adds for a time already past fires in this same call).
  template <class F>
  void advance(TimePoint now, F&& fire) {
    collect(now);
    while (due_.head != kNil) {
      const uint32_t i = due_.head;
      const uint64_t payload = nodes_[i].payload;
      unlink(i);
      release(i);
      fire(payload);
    }
  }

  // A lower bound on the earliest pending timer, never later than it and always after the
  // current tick unless something is already due: waking at it and calling advance() either
  // fires timers or refines the bound (at most kLevels times per timer). nullopt: no timers.
  std::optional<TimePoint> next_deadline() const;

  size_t size() const { return size_; }
  TimePoint now() const { return tick_time(cur_); }

 private:
  static constexpr uint32_t kNil = UINT32_MAX;
  static constexpr uint16_t kWhereFree = 0xffff, kWhereDue = 0xfffe, kWhereOverflow = 0xfffd;

  struct Node {
    int64_t tick = 0;
    uint64_t payload = 0;
    uint32_t prev = kNil, next = kNil;
    uint32_t gen = 1;
    uint16_t where = kWhereFree;  // level * kSlots + slot, or one of the kWhere* values
  };
  struct List {
    uint32_t head = kNil;
  };

  static int64_t tick_ceil(TimePoint t);
  static int64_t tick_floor(TimePoint t);
  static TimePoint tick_time(int64_t tick) { return from_ns(tick * kTickNs); }

  void collect(TimePoint now);
  void place(uint32_t i);
  List& list_of(uint16_t where);
  void link(uint32_t i, uint16_t where);
  void unlink(uint32_t i);
  void release(uint32_t i);

  std::vector<Node> nodes_;
  std::vector<uint32_t> free_;
  std::array<std::array<List, kSlots>, kLevels> slots_{};
  std::array<uint64_t, kLevels> occupied_{};  // bit s set: slots_[level][s] is not empty
  List due_, overflow_;
  int64_t cur_ = 0;  // current tick: everything at or before it has fired
  size_t size_ = 0;
};

}  // namespace mxp::sched
