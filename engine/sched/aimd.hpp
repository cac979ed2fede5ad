// Adaptive back-off for one MX group: a concurrency window and a rate factor that drop
// multiplicatively on trouble (421, 4.7.x rate limits, refused or reset connections) and grow
// additively on clean sessions. The model is Postfix qmgr's per-destination window: "slow open"
// from a small initial concurrency, +1 after a window's worth of good sessions, and a hold-off so
// that one burst of errors from N parallel sessions counts as one congestion event.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "sched/clock.hpp"
#include "sched/policy.hpp"

namespace mxp::sched {

// What the pipeline logs (and the serve issue exports as metrics).
struct AimdView {
  double window = 1;       // concurrent sessions allowed by the window (before the cap)
  uint32_t cap = 1;        // per_mx.sessions
  double rate_factor = 1;  // multiplies per_mx connect and RCPT rates
  uint64_t decreases = 0;  // back-off events counted (after hold-off)
  uint64_t signals = 0;    // back-off signals seen (before hold-off)
  uint64_t increases = 0;  // clean sessions counted
};

class Aimd {
 public:
  void configure(const BackoffSettings& s, uint32_t cap) {
    s_ = s;
    cap_ = std::max<uint32_t>(cap, 1);
    if (!started_) {
      window_ = std::min<double>(std::max<uint32_t>(s.initial_sessions, 1), cap_);
      started_ = true;
    }
    window_ = std::clamp(window_, 1.0, static_cast<double>(cap_));
    factor_ = std::clamp(factor_, s_.min_factor, 1.0);
  }

  // A back-off signal at now. True if it counted (outside the hold-off of the last one).
  bool on_backoff(TimePoint now) {
    ++signals_;
    if (decreased_ && now - last_ < s_.holdoff) return false;
    decreased_ = true;
    last_ = now;
    ++decreases_;
    window_ = std::max(1.0, window_ * s_.decrease);
    factor_ = std::max(s_.min_factor, factor_ * s_.decrease);
    return true;
  }

  // A session that ended with no trouble.
  void on_clean() {
    ++increases_;
    window_ = std::min(static_cast<double>(cap_), window_ + s_.window_increase / window_);
    factor_ = std::min(1.0, factor_ + s_.rate_increase);
  }

  // Sessions allowed now: the window's whole part, at least 1, at most the cap.
  uint32_t limit() const {
    return std::clamp<uint32_t>(static_cast<uint32_t>(std::floor(window_ + 1e-9)), 1, cap_);
  }
  double rate_factor() const { return factor_; }
  AimdView view() const { return {window_, cap_, factor_, decreases_, signals_, increases_}; }

 private:
  BackoffSettings s_;
  uint32_t cap_ = 1;
  double window_ = 1, factor_ = 1;
  bool started_ = false, decreased_ = false;
  TimePoint last_{};
  uint64_t decreases_ = 0, signals_ = 0, increases_ = 0;
};

}  // namespace mxp::sched
