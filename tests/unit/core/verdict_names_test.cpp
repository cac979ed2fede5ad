// The verdict and reason vocabulary round-trips through its names (docs/verdicts.md).
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "core/verdict.hpp"

namespace mxp {
namespace {

TEST(VerdictNames, RoundTripAndUnique) {
  std::set<std::string> seen;
  for (int i = 0; i < kReasonCount; ++i) {
    auto r = static_cast<Reason>(i);
    EXPECT_EQ(parse_reason(to_string(r)), r);
    EXPECT_TRUE(seen.insert(std::string(to_string(r))).second);
  }
  EXPECT_EQ(kReasonCount, 23);
  for (int i = 0; i < kVerdictCount; ++i) {
    auto v = static_cast<Verdict>(i);
    EXPECT_EQ(parse_verdict(to_string(v)), v);
  }
  EXPECT_EQ(kVerdictCount, 4);
  EXPECT_FALSE(parse_reason("nope").has_value());
  EXPECT_FALSE(parse_verdict("").has_value());
}

}  // namespace
}  // namespace mxp
