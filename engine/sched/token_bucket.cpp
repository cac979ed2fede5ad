// Token bucket arithmetic. Tokens held at t = burst - (full_at - t) / interval, i.e. "debt" is
// measured in time; taking n tokens pushes full_at by n intervals.
#include "sched/token_bucket.hpp"

#include <algorithm>
#include <cmath>

namespace mxp::sched {

void TokenBucket::configure(double rate, uint32_t burst, TimePoint now) {
  const int64_t t = to_ns(now);
  if (!(rate > 0) || !std::isfinite(rate)) {
    interval_ns_ = 0;
    burst_ = 0;
    full_at_ns_ = std::numeric_limits<int64_t>::min();
    return;
  }
  burst = std::max<uint32_t>(burst, 1);
  // Rounded up: the bucket may be a hair slower than asked, never faster.
  const int64_t interval = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(1e9 / rate)));
  double tokens = burst;  // an unlimited bucket becomes a full one
  if (!unlimited()) {
    const int64_t debt = std::max<int64_t>(0, full_at_ns_ - t);
    tokens = static_cast<double>(burst_) - static_cast<double>(debt) / interval_ns_;
  }
  tokens = std::clamp(tokens, 0.0, static_cast<double>(burst));
  interval_ns_ = interval;
  burst_ = burst;
  full_at_ns_ = t + static_cast<int64_t>(std::ceil((burst - tokens) * interval));
}

uint32_t TokenBucket::available(TimePoint now) const {
  if (unlimited()) return kUnlimited;
  const int64_t debt = std::max<int64_t>(0, full_at_ns_ - to_ns(now));
  const int64_t cap = static_cast<int64_t>(burst_) * interval_ns_;
  if (debt >= cap) return 0;
  return static_cast<uint32_t>((cap - debt) / interval_ns_);
}

bool TokenBucket::try_take(uint32_t n, TimePoint now) {
  if (unlimited()) return true;
  if (n > burst_) return false;
  const int64_t t = to_ns(now);
  const int64_t base = std::max(full_at_ns_, t);
  const int64_t next = base + static_cast<int64_t>(n) * interval_ns_;
  if (next - t > static_cast<int64_t>(burst_) * interval_ns_) return false;
  full_at_ns_ = next;
  return true;
}

TimePoint TokenBucket::ready_at(uint32_t n, TimePoint now) const {
  if (unlimited()) return now;
  n = std::min(n, burst_);
  const int64_t t = to_ns(now);
  // n tokens are there once full_at - t <= (burst - n) * interval.
  const int64_t at = full_at_ns_ - static_cast<int64_t>(burst_ - n) * interval_ns_;
  return at <= t ? now : from_ns(at);
}

}  // namespace mxp::sched
