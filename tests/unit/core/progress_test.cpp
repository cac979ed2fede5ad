// Progress lines: what an operator reads, computed from state, width and time alone.
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

TEST(Progress, KnownTotalShowsPercentEtaAndRate) {
  ProgressState s;
  s.done = 250;
  s.total = 1000;
  s.counts = {{"ok", 200}};
  std::string line = render_progress(s, 10.0, "lines", true);
  EXPECT_EQ(
      line,
      "[######..................] 25.0% 250/1.0k lines  ETA 0:30  25/s  ok 200  elapsed 0:10");
}

TEST(Progress, BytesWhenItemsUnknown) {
  ProgressState s;
  s.done = 5000;
  s.bytes_done = 50;
  s.bytes_total = 100;
  std::string line = render_progress(s, 2.0, "lines", false);
  EXPECT_EQ(line, "50.0% 5.0k lines  ETA 0:02  2.5k/s  elapsed 0:02");
}

TEST(Progress, UnknownTotalHasNoEta) {
  ProgressState s;
  s.done = 7;
  std::string line = render_progress(s, 1.0, "lines", true);
  EXPECT_EQ(line.find("ETA"), std::string::npos);
  EXPECT_EQ(line.substr(0, 26), "[????????????????????????]");
}

// A verify run as a user sees it: every figure there is, and long verdict names.
ProgressState busy() {
  ProgressState s;
  s.done = 123'456;
  s.total = 1'000'000;
  s.counts = {
      {"deliverable", 100'000}, {"undeliverable", 20'000}, {"risky", 3'000}, {"unknown", 456}};
  s.sessions = 187;
  s.waiting = 46;
  s.next_retry_s = 252;
  s.last_retry_s = 1790;
  return s;
}

// The line redrawn with \r must never reach the last column, or the terminal wraps it and each
// redraw adds a line: every width gets a line of at most width - 1 columns.
TEST(Progress, NeverWiderThanTheTerminal) {
  const ProgressState s = busy();
  for (size_t width = 1; width <= 300; ++width) {
    std::string line = render_progress(s, 3600.0, "verified", true, width);
    EXPECT_LE(line.size(), width - 1) << "width " << width << ": " << line;
  }
  EXPECT_GT(render_progress(s, 3600.0, "verified", true, 0).size(), 140u);  // no limit: all
}

// Narrow: the most important figures stay (percent and counts, ETA, the next retry); the bar,
// elapsed and the per-verdict counts go first.
TEST(Progress, NarrowKeepsTheMostImportantFigures) {
  const ProgressState s = busy();
  std::string line = render_progress(s, 3600.0, "verified", true, 80);
  EXPECT_NE(line.find("12.3% 123.5k/1.0M verified"), std::string::npos) << line;
  EXPECT_NE(line.find("ETA "), std::string::npos) << line;
  EXPECT_NE(line.find("46 waiting, next retry 4:12"), std::string::npos) << line;
  EXPECT_NE(line.find("/s"), std::string::npos) << line;
  EXPECT_EQ(line.find("elapsed"), std::string::npos) << line;
  line = render_progress(s, 3600.0, "verified", true, 40);
  EXPECT_EQ(line.rfind("12.3% 123.5k/1.0M verified", 0), 0u) << line;
  line = render_progress(s, 3600.0, "verified", true, 200);
  EXPECT_EQ(line[0], '[') << line;  // room for the bar
  EXPECT_NE(line.find("unknown 456"), std::string::npos) << line;
  EXPECT_NE(line.find("elapsed 1:00:00"), std::string::npos) << line;
}

// 46 addresses wait out a 30-minute retry schedule: the rate says a few seconds, but the run
// cannot end before the last retry is due.
TEST(Progress, EtaCountsTheWaitingRetries) {
  ProgressState s;
  s.done = 954;
  s.total = 1000;
  s.waiting = 46;
  s.next_retry_s = 60;
  s.last_retry_s = 1800;
  std::string line = render_progress(s, 60.0, "verified", false);
  EXPECT_NE(line.find("ETA >=30:00"), std::string::npos) << line;
  EXPECT_NE(line.find("46 waiting, next retry 1:00"), std::string::npos) << line;
  // Everything else done: still an ETA (the waits), not none.
  s.done = 1000 - 46;
  s.total = 0;
  s.bytes_done = s.bytes_total = 0;
  line = render_progress(s, 60.0, "verified", false);
  EXPECT_NE(line.find("ETA >=30:00"), std::string::npos) << line;
  // Waits shorter than the rate's estimate leave it alone.
  s.total = 10'000;
  s.done = 1000;
  s.last_retry_s = 5;
  line = render_progress(s, 60.0, "verified", false);
  EXPECT_NE(line.find("ETA 9:00"), std::string::npos) << line;
}

}  // namespace
}  // namespace mxp
