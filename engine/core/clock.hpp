// The engine's one clock: steady_clock time points. Protocol code never reads it; callers read
// it once and hand the time in ("now"), so tests drive every codec and scheduler by hand.
#pragma once

#include <chrono>
#include <cstdint>

namespace mxp::core {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
using Duration = std::chrono::nanoseconds;

// Nanoseconds since the clock's epoch, for storing a time point as an integer (and back).
inline int64_t to_ns(TimePoint t) {
  return std::chrono::duration_cast<Duration>(t.time_since_epoch()).count();
}
inline TimePoint from_ns(int64_t ns) {
  return TimePoint(std::chrono::duration_cast<Clock::duration>(Duration(ns)));
}

}  // namespace mxp::core
