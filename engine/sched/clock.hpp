// Time as the scheduler sees it: steady_clock time points handed in by the caller ("now"), so
// every scheduler object is a plain value that tests drive by hand and that never reads a clock.
#pragma once

#include <chrono>
#include <cstdint>

namespace mxp::sched {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
using Duration = std::chrono::nanoseconds;

inline int64_t to_ns(TimePoint t) {
  return std::chrono::duration_cast<Duration>(t.time_since_epoch()).count();
}
inline TimePoint from_ns(int64_t ns) {
  return TimePoint(std::chrono::duration_cast<Clock::duration>(Duration(ns)));
}

}  // namespace mxp::sched
