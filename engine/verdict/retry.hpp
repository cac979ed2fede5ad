// The record's `retry_after`: for an `unknown` that is worth asking again, how long to wait
// before asking (docs/verdicts.md, "When to ask again"). Pure: the reason and what the engine
// knew when the address ended in, a delay out. The caller adds it to the record's checked_at.
#pragma once

#include <chrono>
#include <optional>

#include "core/verdict.hpp"

namespace mxp::verdict {

struct RetryEvidence {
  Verdict verdict = Verdict::Unknown;
  Reason reason = Reason::ProtocolError;
  int code = 0;  // the reply that decided (0: none, a timeout or a failed connection)
  // The wait the domain's retry.schedule (docs/policy.md) gives after the tries this address
  // had: the retry the engine would have made next had its tries not run out.
  std::chrono::seconds next_wait{0};
  // With reason `blocked`: how long our source still rests for the MX group (the scheduler's
  // block), nullopt when it does not rest.
  std::optional<std::chrono::seconds> blocked_for;
};

// Floors of the delay per reason; docs/verdicts.md gives the reasoning for each.
inline constexpr std::chrono::seconds kRateLimitFloor{15 * 60};
inline constexpr std::chrono::seconds kUnreachableFloor{60 * 60};
inline constexpr std::chrono::seconds kDnsFloor{15 * 60};
inline constexpr std::chrono::seconds kBlockedFloor{60 * 60};

// nullopt: nothing to ask again (a verdict other than unknown, or an unknown that asking again
// will not change: a protocol error, TLS or sender configuration, a permanent block).
std::optional<std::chrono::seconds> retry_delay(const RetryEvidence& e);

}  // namespace mxp::verdict
