#include "verdict/retry.hpp"

#include <algorithm>

namespace mxp::verdict {

std::optional<std::chrono::seconds> retry_delay(const RetryEvidence& e) {
  if (e.verdict != Verdict::Unknown) return std::nullopt;
  const std::chrono::seconds wait = std::max(e.next_wait, std::chrono::seconds(1));
  switch (e.reason) {
    // The greylisting had not passed when the tries ran out; it passes on its own, so the
    // engine's own next retry is the time to ask.
    case Reason::Greylisted:
      return wait;
    // Rate limits and other 4xx answers that did not judge the mailbox: throttling windows last
    // minutes to an hour, so asking at the next step of a short schedule only meets them again.
    case Reason::RateLimited:
    case Reason::TemporaryFailure:
      return std::max(wait, kRateLimitFloor);
    // No server answered in time or accepted a connection: servers that are down are mostly
    // down for maintenance or an outage, which takes an hour rather than minutes.
    case Reason::Timeout:
    case Reason::ConnectionFailed:
      return std::max(wait, kUnreachableFloor);
    // SERVFAIL or no answer from DNS: a broken zone or resolver is usually mended within minutes.
    case Reason::DnsError:
      return std::max(wait, kDnsFloor);
    // Our source refused: worth asking again only when the refusal was temporary (a 4xx, or the
    // scheduler rests the source and will try it again), once the rest is over. A 5xx block (a
    // blocklist listing) stays until someone has the address delisted.
    case Reason::Blocked:
      if (e.code >= 500) return std::nullopt;
      return std::max({wait, kBlockedFloor, e.blocked_for.value_or(std::chrono::seconds(0))});
    default:
      return std::nullopt;
  }
}

}  // namespace mxp::verdict
