// Time as the scheduler sees it: core::Clock time points handed in by the caller ("now"), so
// every scheduler object is a plain value that tests drive by hand and that never reads a clock.
#pragma once

#include "core/clock.hpp"

namespace mxp::sched {

using core::Clock;
using core::Duration;
using core::from_ns;
using core::TimePoint;
using core::to_ns;

}  // namespace mxp::sched
