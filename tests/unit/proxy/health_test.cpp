// Tests of the proxy health decisions: down at the first failure, re-checks backing off from
// `first` to `max`, one check at a time per proxy, up again on a passing check, and a session's
// doubt answered by a check at once.
#include "proxy/health.hpp"

#include <gtest/gtest.h>

namespace mxp::proxy {
namespace {

using namespace std::chrono_literals;
const TimePoint t0 = TimePoint{} + 1000s;

TEST(ProxyHealth, DownRecheckedWithBackoffThenUp) {
  Health h(2, {1s, 4s});
  EXPECT_EQ(h.up_count(), 2u);
  EXPECT_FALSE(h.next_deadline());
  EXPECT_EQ(h.on_failure(0, t0, "connect: connection_refused"), Health::Change::WentDown);
  EXPECT_EQ(h.on_failure(0, t0, "again"), Health::Change::None);  // the same death, seen twice
  EXPECT_FALSE(h.up(0));
  EXPECT_TRUE(h.up(1));
  EXPECT_EQ(h.last_error(0), "again");
  ASSERT_TRUE(h.next_deadline());
  EXPECT_EQ(*h.next_deadline(), t0 + 1s);
  std::vector<size_t> due;
  h.due(t0 + 999ms, due);
  EXPECT_TRUE(due.empty());
  // Failing checks: 1 s, 2 s, 4 s, 4 s apart.
  TimePoint now = t0 + 1s;
  for (auto gap : {2s, 4s, 4s}) {
    due.clear();
    h.due(now, due);
    ASSERT_EQ(due, std::vector<size_t>{0});
    EXPECT_TRUE(h.checking(0));
    EXPECT_FALSE(h.next_deadline());  // the check is running: nothing else to time
    due.clear();
    h.due(now + 1h, due);
    EXPECT_TRUE(due.empty());  // one check at a time
    EXPECT_EQ(h.on_check(0, false, now, "auth_refused"), Health::Change::None);
    EXPECT_EQ(*h.next_deadline(), now + gap);
    now += gap;
  }
  due.clear();
  h.due(now, due);
  EXPECT_EQ(h.on_check(0, true, now, ""), Health::Change::CameUp);
  EXPECT_TRUE(h.up(0));
  EXPECT_FALSE(h.next_deadline());
  EXPECT_EQ(h.checks(0), 4u);
  // Down again: back to the first interval.
  EXPECT_EQ(h.on_failure(0, now, "closed"), Health::Change::WentDown);
  EXPECT_EQ(*h.next_deadline(), now + 1s);
}

TEST(ProxyHealth, DoubtIsCheckedAtOnce) {
  Health h(2);
  h.want_check(1);
  ASSERT_TRUE(h.next_deadline());
  std::vector<size_t> due;
  h.due(t0, due);
  EXPECT_EQ(due, std::vector<size_t>{1});
  EXPECT_TRUE(h.up(1));  // in rotation while the check runs
  EXPECT_EQ(h.on_check(1, false, t0, "closed"), Health::Change::WentDown);
  EXPECT_EQ(h.up_count(), 1u);
}

}  // namespace
}  // namespace mxp::proxy
