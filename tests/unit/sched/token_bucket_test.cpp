// Token bucket tests: a greedy taker polled at arbitrary instants never gets more than
// burst + rate * T grants in any window of length T, and gets exactly that many when polled
// often enough; ready_at is exact; retuning keeps the tokens held; unlimited buckets.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "sched/token_bucket.hpp"

namespace mxp::sched {
namespace {

using namespace std::chrono_literals;

const TimePoint t0 = TimePoint{} + 1000s;

// Checks every window bounded by two grants (the worst windows start and end at grants).
void expect_window_bound(const std::vector<TimePoint>& grants, double rate, uint32_t burst) {
  for (size_t i = 0; i < grants.size(); ++i) {
    for (size_t j = i; j < grants.size(); ++j) {
      const double secs = std::chrono::duration<double>(grants[j] - grants[i]).count();
      ASSERT_LE(static_cast<double>(j - i + 1), burst + rate * secs + 1e-9)
          << "window " << i << ".." << j << " of " << secs << " s";
    }
  }
}

TEST(TokenBucket, StartsFullAndRefillsAtRate) {
  TokenBucket b(2.0, 3, t0);  // one token per 500 ms
  EXPECT_EQ(b.available(t0), 3u);
  EXPECT_TRUE(b.try_take(3, t0));
  EXPECT_FALSE(b.try_take(1, t0));
  EXPECT_EQ(b.ready_at(1, t0), t0 + 500ms);
  EXPECT_FALSE(b.can_take(1, t0 + 499ms));
  EXPECT_TRUE(b.can_take(1, t0 + 500ms));
  EXPECT_EQ(b.available(t0 + 1400ms), 2u);
  EXPECT_EQ(b.available(t0 + 10s), 3u);   // never above the burst
  EXPECT_FALSE(b.try_take(4, t0 + 10s));  // more than a full bucket: never
  EXPECT_TRUE(b.try_take(2, t0 + 10s));
  EXPECT_EQ(b.ready_at(3, t0 + 10s), t0 + 11s);
}

TEST(TokenBucket, GreedyTakerGetsExactlyBurstPlusRateInAnyWindow) {
  struct Case {
    double rate;
    uint32_t burst;
  };
  std::mt19937_64 rng(42);
  for (Case c : {Case{5, 1}, Case{5, 10}, Case{0.5, 2}, Case{1000, 20}, Case{3, 7}}) {
    SCOPED_TRACE(testing::Message() << "rate " << c.rate << " burst " << c.burst);
    TokenBucket b(c.rate, c.burst, t0);
    std::vector<TimePoint> grants;
    TimePoint now = t0;
    const auto horizon = t0 + 20s;
    // Poll at irregular instants, sometimes taking several tokens at once.
    std::uniform_int_distribution<int64_t> step_us(1, 40'000);
    std::uniform_int_distribution<uint32_t> want(1, std::min<uint32_t>(c.burst, 3));
    while (now <= horizon) {
      const uint32_t n = want(rng);
      if (b.try_take(n, now))
        for (uint32_t i = 0; i < n; ++i)
          grants.push_back(now);
      now += std::chrono::microseconds(step_us(rng));
    }
    expect_window_bound(grants, c.rate, c.burst);
  }
}

TEST(TokenBucket, PollingAtReadyAtReachesTheBoundExactly) {
  TokenBucket b(4.0, 5, t0);  // 250 ms per token
  std::vector<TimePoint> grants;
  TimePoint now = t0;
  while (now <= t0 + 10s) {
    if (b.try_take(1, now)) {
      grants.push_back(now);
      continue;
    }
    now = b.ready_at(1, now);
  }
  // burst at t0, then one per 250 ms through t0 + 10 s inclusive.
  EXPECT_EQ(grants.size(), 5u + 40u);
  expect_window_bound(grants, 4.0, 5);
}

TEST(TokenBucket, RetuningKeepsTokensAndNeverRefillsTheBurst) {
  TokenBucket b(1.0, 10, t0);
  EXPECT_TRUE(b.try_take(10, t0));
  b.configure(100.0, 10, t0);  // faster, but the bucket is still empty
  EXPECT_EQ(b.available(t0), 0u);
  EXPECT_EQ(b.available(t0 + 50ms), 5u);
  b.configure(0.5, 4, t0 + 50ms);  // slower and smaller: 5 tokens clamp to 4
  EXPECT_EQ(b.available(t0 + 50ms), 4u);
  EXPECT_TRUE(b.try_take(4, t0 + 50ms));
  EXPECT_EQ(b.ready_at(1, t0 + 50ms), t0 + 2050ms);
  EXPECT_DOUBLE_EQ(b.rate(), 0.5);
}

TEST(TokenBucket, Unlimited) {
  TokenBucket b;
  EXPECT_TRUE(b.unlimited());
  EXPECT_TRUE(b.try_take(1'000'000, t0));
  EXPECT_EQ(b.available(t0), TokenBucket::kUnlimited);
  EXPECT_EQ(b.ready_at(5, t0), t0);
  b.configure(0, 5, t0);
  EXPECT_TRUE(b.unlimited());
  b.configure(2, 3, t0);  // limited now, and full
  EXPECT_EQ(b.available(t0), 3u);
  b.configure(0, 3, t0);
  EXPECT_TRUE(b.unlimited());
}

}  // namespace
}  // namespace mxp::sched
