// A token bucket (rate + burst) kept as one time stamp, GCRA style: the instant at which the
// bucket would be full again. Integer nanoseconds throughout, so "at most burst + rate * T grants
// in any window of length T" holds exactly, with no floating-point drift.
#pragma once

#include <cstdint>
#include <limits>

#include "sched/clock.hpp"

namespace mxp::sched {

class TokenBucket {
 public:
  static constexpr uint32_t kUnlimited = std::numeric_limits<uint32_t>::max();

  TokenBucket() = default;  // unlimited until configured
  TokenBucket(double rate_per_second, uint32_t burst, TimePoint now) {
    configure(rate_per_second, burst, now);
  }

  // rate_per_second <= 0 means unlimited. A bucket that was unlimited starts full; otherwise
  // the tokens it holds now are kept (clamped to the new burst), so retuning (AIMD, a policy
  // reload) never hands out a fresh burst.
  void configure(double rate_per_second, uint32_t burst, TimePoint now);

  bool unlimited() const { return interval_ns_ == 0; }
  uint32_t burst() const { return burst_; }
  double rate() const { return unlimited() ? 0.0 : 1e9 / static_cast<double>(interval_ns_); }

  // Whole tokens available at now (kUnlimited when unlimited).
  uint32_t available(TimePoint now) const;
  bool can_take(uint32_t n, TimePoint now) const { return available(now) >= n; }
  // Takes n tokens if there are that many; false (and nothing taken) otherwise.
  bool try_take(uint32_t n, TimePoint now);
  // The earliest instant at which n tokens (n <= burst) will be available.
  TimePoint ready_at(uint32_t n, TimePoint now) const;

 private:
  int64_t interval_ns_ = 0;  // time to earn one token, rounded up (so never faster than rate)
  uint32_t burst_ = 0;
  int64_t full_at_ns_ = std::numeric_limits<int64_t>::min();  // when the bucket is full again
};

}  // namespace mxp::sched
