// Progress lines: what an operator reads, computed from state and time alone.
#include "core/progress.hpp"

#include <gtest/gtest.h>

namespace mxp {
namespace {

TEST(Progress, HumanNumbers) {
  EXPECT_EQ(human_count(999), "999");
  EXPECT_EQ(human_count(1500), "1.5k");
  EXPECT_EQ(human_count(2'340'000), "2.3M");
  EXPECT_EQ(human_duration(59), "0:59");
  EXPECT_EQ(human_duration(3723), "1:02:03");
}

TEST(Progress, KnownTotalShowsPercentRateAndEta) {
  ProgressState s;
  s.done = 250;
  s.total = 1000;
  s.extra = "ok 200";
  std::string line = render_progress(s, 10.0, "lines", true);
  EXPECT_EQ(
      line,
      "[######..................]  25.0% 250/1.0k lines 25/s  ok 200  elapsed 0:10  ETA 0:30");
}

TEST(Progress, BytesWhenItemsUnknown) {
  ProgressState s;
  s.done = 5000;
  s.bytes_done = 50;
  s.bytes_total = 100;
  std::string line = render_progress(s, 2.0, "lines", false);
  EXPECT_EQ(line, " 50.0% 5.0k lines 2.5k/s  elapsed 0:02  ETA 0:02");
}

TEST(Progress, UnknownTotalHasNoEta) {
  ProgressState s;
  s.done = 7;
  std::string line = render_progress(s, 1.0, "lines", true);
  EXPECT_EQ(line.find("ETA"), std::string::npos);
  EXPECT_EQ(line.substr(0, 26), "[????????????????????????]");
}

}  // namespace
}  // namespace mxp
