// retry_after (verdict/retry.hpp, docs/verdicts.md "When to ask again"): a delay for each unknown
// worth asking again, none for the others.
#include "verdict/retry.hpp"

#include <gtest/gtest.h>

namespace mxp::verdict {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;

RetryEvidence ev(Reason r, seconds next_wait = minutes(5), int code = 0) {
  RetryEvidence e;
  e.verdict = Verdict::Unknown;
  e.reason = r;
  e.next_wait = next_wait;
  e.code = code;
  return e;
}

TEST(RetryAfter, EachReasonWorthAskingAgain) {
  // Greylisting passes on its own: the engine's next retry, however short.
  EXPECT_EQ(retry_delay(ev(Reason::Greylisted)), minutes(5));
  EXPECT_EQ(retry_delay(ev(Reason::Greylisted, seconds(2))), seconds(2));
  // Rate limits and other 4xx: at least 15 minutes; longer schedule waits win.
  EXPECT_EQ(retry_delay(ev(Reason::RateLimited, seconds(60), 421)), minutes(15));
  EXPECT_EQ(retry_delay(ev(Reason::TemporaryFailure, seconds(60), 451)), minutes(15));
  EXPECT_EQ(retry_delay(ev(Reason::RateLimited, hours(2), 421)), hours(2));
  // Nobody answered: an hour.
  EXPECT_EQ(retry_delay(ev(Reason::Timeout)), hours(1));
  EXPECT_EQ(retry_delay(ev(Reason::ConnectionFailed)), hours(1));
  EXPECT_EQ(retry_delay(ev(Reason::DnsError)), minutes(15));
  // Our source refused for a while: when its rest ends, at least an hour on.
  auto blocked = ev(Reason::Blocked, seconds(60), 421);
  EXPECT_EQ(retry_delay(blocked), hours(1));
  blocked.blocked_for = hours(3);
  EXPECT_EQ(retry_delay(blocked), hours(3));
  blocked.code = 0;  // every source down: never sent
  EXPECT_EQ(retry_delay(blocked), hours(3));
  // A zero wait (a policy without a schedule) still gives a time in the future.
  EXPECT_EQ(retry_delay(ev(Reason::Greylisted, seconds(0))), seconds(1));
}

TEST(RetryAfter, NothingToAskAgain) {
  // A 5xx block is a listing: asking again from the same address gets the same answer.
  EXPECT_EQ(retry_delay(ev(Reason::Blocked, seconds(60), 554)), std::nullopt);
  for (Reason r :
       {Reason::ProtocolError, Reason::TlsRequired, Reason::SenderRefused, Reason::ProxyFailed})
    EXPECT_EQ(retry_delay(ev(r)), std::nullopt) << to_string(r);
  // Only unknowns: a verdict is an answer, whatever its reason.
  for (Verdict v : {Verdict::Deliverable, Verdict::Undeliverable, Verdict::Risky}) {
    auto e = ev(Reason::Greylisted);
    e.verdict = v;
    EXPECT_EQ(retry_delay(e), std::nullopt);
  }
  auto full = ev(Reason::MailboxFull);
  full.verdict = Verdict::Risky;
  EXPECT_EQ(retry_delay(full), std::nullopt);
}

}  // namespace
}  // namespace mxp::verdict
