// The scheduler's ids: dense indices it hands out for MX groups, recipient domains and source IPs,
// shared by the scheduler and the limiters it asks (remote_limits.hpp).
#pragma once

#include <cstdint>

namespace mxp::sched {

inline constexpr uint32_t kNone = UINT32_MAX;
inline constexpr uint32_t kMaxSources = 64;  // blocked-source sets are 64-bit masks

using GroupId = uint32_t;   // dense, stable for the scheduler's life
using DomainId = uint32_t;  // dense; reused after Scheduler::release_domain
using SourceId = uint32_t;  // index into the source pool given at construction

}  // namespace mxp::sched
