// Timer wheel tests against a plain reference (a multimap): random timers from 1 ms to years,
// random cancels, random advances; every timer fires on the first advance at or after its time
// rounded up to the millisecond (never early, never late), next_deadline is a lower bound that
// converges, and cancel is exact.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>
#include <vector>

#include "sched/timer_wheel.hpp"

namespace mxp::sched {
namespace {

using namespace std::chrono_literals;

TEST(TimerWheel, FiresAtTheMillisecondNeverEarly) {
  const TimePoint t0 = TimePoint{} + 5s;
  TimerWheel w(t0);
  std::vector<uint64_t> fired;
  auto fire = [&](uint64_t p) { fired.push_back(p); };
  w.add(t0 + 1500us, 1);  // rounds up to t0 + 2 ms
  w.add(t0 + 2ms, 2);
  w.add(t0 + 90s, 3);
  w.add(t0 - 1s, 4);  // already past: next advance
  EXPECT_EQ(w.size(), 4u);
  EXPECT_EQ(w.next_deadline(), t0);
  w.advance(t0, fire);
  EXPECT_EQ(fired, std::vector<uint64_t>{4});
  EXPECT_EQ(w.next_deadline(), t0 + 2ms);
  w.advance(t0 + 1999us, fire);
  EXPECT_EQ(fired.size(), 1u);
  w.advance(t0 + 2ms, fire);
  EXPECT_EQ(fired.size(), 3u);
  // The 90 s timer sits on a higher level: the deadline is a lower bound that converges.
  int wakes = 0;
  while (fired.size() < 4) {
    auto d = w.next_deadline();
    ASSERT_TRUE(d);
    ASSERT_LE(*d, t0 + 90s);
    w.advance(*d, fire);
    ASSERT_LE(++wakes, TimerWheel::kLevels + 1);
  }
  EXPECT_EQ(fired.back(), 3u);
  EXPECT_FALSE(w.next_deadline());
  EXPECT_EQ(w.size(), 0u);
}

TEST(TimerWheel, CancelIsExactAndStaleIdsAreRefused) {
  TimerWheel w(TimePoint{});
  auto a = w.add(TimePoint{} + 10ms, 1);
  auto b = w.add(TimePoint{} + 10ms, 2);
  EXPECT_TRUE(w.cancel(a));
  EXPECT_FALSE(w.cancel(a));
  std::vector<uint64_t> fired;
  w.advance(TimePoint{} + 1s, [&](uint64_t p) { fired.push_back(p); });
  EXPECT_EQ(fired, std::vector<uint64_t>{2});
  EXPECT_FALSE(w.cancel(b));            // already fired
  auto c = w.add(TimePoint{} + 2s, 3);  // reuses a's or b's slot: old ids stay dead
  EXPECT_FALSE(w.cancel(a));
  EXPECT_TRUE(w.cancel(c));
}

TEST(TimerWheel, MatchesReferenceUnderRandomLoad) {
  std::mt19937_64 rng(7);
  const TimePoint t0 = TimePoint{} + 123456789us;
  TimerWheel w(t0);
  std::map<uint64_t, TimePoint> pending;  // payload -> when
  std::map<uint64_t, TimerId> ids;
  TimePoint now = t0;
  uint64_t next_payload = 0;
  // Delays spread over every level and the overflow list.
  const std::vector<Duration> scales = {1ms, 50ms, 3s, 4min, 5h, 12 * 24h, 3 * 365 * 24h};
  auto due_tick = [](TimePoint t) {  // rounded up to the ms
    const int64_t ns = std::chrono::duration_cast<Duration>(t.time_since_epoch()).count();
    return (ns + 999'999) / 1'000'000;
  };
  for (int round = 0; round < 3000; ++round) {
    const int adds = static_cast<int>(rng() % 4);
    for (int i = 0; i < adds; ++i) {
      const Duration scale = scales[rng() % scales.size()];
      const auto delay =
          Duration(static_cast<int64_t>(rng() % static_cast<uint64_t>(scale.count())));
      const uint64_t p = next_payload++;
      const TimePoint when = now + delay - (rng() % 8 == 0 ? 2ms : 0ms);
      pending[p] = when;
      ids[p] = w.add(when, p);
    }
    if (!ids.empty() && rng() % 3 == 0) {  // cancel one
      auto it = std::next(ids.begin(), static_cast<long>(rng() % ids.size()));
      ASSERT_TRUE(w.cancel(it->second));
      pending.erase(it->first);
      ids.erase(it);
    }
    ASSERT_EQ(w.size(), pending.size());
    // Advance: either to the wheel's own deadline or by a random amount.
    auto d = w.next_deadline();
    if (d) {
      // A lower bound: no pending timer is due before it (past ones are due now).
      const int64_t cur =
          std::chrono::duration_cast<Duration>(now.time_since_epoch()).count() / 1'000'000;
      for (auto& [p, when] : pending)
        ASSERT_GE(std::max(due_tick(when), cur), due_tick(*d)) << p;
    }
    TimePoint target =
        now +
        Duration(static_cast<int64_t>(rng() % static_cast<uint64_t>(scales[rng() % 5].count())));
    if (d && rng() % 2) target = std::max(now, *d);
    std::set<uint64_t> fired;
    w.advance(target, [&](uint64_t p) { fired.insert(p); });
    now = std::max(now, target);
    const int64_t now_tick =
        std::chrono::duration_cast<Duration>(now.time_since_epoch()).count() / 1'000'000;
    std::set<uint64_t> expected;
    for (auto& [p, when] : pending)
      if (due_tick(when) <= now_tick) expected.insert(p);
    ASSERT_EQ(fired, expected) << "round " << round;
    for (uint64_t p : fired) {
      pending.erase(p);
      ids.erase(p);
    }
  }
  // Drain by following next_deadline only: every timer fires, in at most kLevels+1 wakes each.
  size_t wakes = 0;
  while (auto d = w.next_deadline()) {
    w.advance(*d, [&](uint64_t p) {
      ASSERT_TRUE(pending.count(p));
      ASSERT_LE(due_tick(pending[p]), due_tick(*d));
      pending.erase(p);
    });
    ASSERT_LT(++wakes, 100000u);
  }
  EXPECT_TRUE(pending.empty());
}

TEST(TimerWheel, CallbacksMayAddAndCancel) {
  TimerWheel w(TimePoint{});
  std::vector<uint64_t> fired;
  TimerId victim = w.add(TimePoint{} + 5ms, 99);
  w.add(TimePoint{} + 5ms, 1);
  w.advance(TimePoint{} + 5ms, [&](uint64_t p) {
    fired.push_back(p);
    if (p == 1) {
      w.cancel(victim);              // may or may not have fired already
      w.add(TimePoint{} + 1ms, 2);   // past: fires in this same advance
      w.add(TimePoint{} + 10ms, 3);  // future
    }
  });
  EXPECT_NE(std::find(fired.begin(), fired.end(), 2u), fired.end());
  EXPECT_EQ(std::find(fired.begin(), fired.end(), 3u), fired.end());
  EXPECT_EQ(w.size(), 1u);
}

}  // namespace
}  // namespace mxp::sched
