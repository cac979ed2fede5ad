// The open-loop arithmetic with made-up clocks: rates, the arrival schedule and its
// --max-sessions queue, a step's figures, the knee, and the JSON that --compare reads.
#include "bench/run.hpp"

#include <gtest/gtest.h>

#include "bench/report.hpp"

namespace mxp::bench {
namespace {

using std::chrono::milliseconds;

TEST(Rates, ListsAndRamps) {
  EXPECT_EQ(parse_rates("100,200,400"), (std::vector<double>{100, 200, 400}));
  EXPECT_EQ(parse_rates("2.5"), (std::vector<double>{2.5}));
  EXPECT_FALSE(parse_rates(""));
  EXPECT_FALSE(parse_rates("100,"));
  EXPECT_FALSE(parse_rates("100,0"));
  EXPECT_FALSE(parse_rates("100,abc"));
  EXPECT_EQ(parse_ramp("100:2000:x2"), (std::vector<double>{100, 200, 400, 800, 1600, 2000}));
  EXPECT_EQ(parse_ramp("100:400:+100"), (std::vector<double>{100, 200, 300, 400}));
  EXPECT_EQ(parse_ramp("50:50:x2"), (std::vector<double>{50}));
  EXPECT_FALSE(parse_ramp("100:2000:x1"));
  EXPECT_FALSE(parse_ramp("100:2000:2"));
  EXPECT_FALSE(parse_ramp("2000:100:x2"));
  EXPECT_FALSE(parse_ramp("100:2000"));
  EXPECT_FALSE(parse_ramp("1:100000:+1"));  // thousands of steps: a typo
}

TEST(Rates, PrivateAddressesForData) {
  for (const char* ip : {"127.0.0.1", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1",
                         "::1", "fd00::1", "fc00::5"})
    EXPECT_TRUE(is_private(*core::Endpoint::parse(ip, 25))) << ip;
  for (const char* ip :
       {"8.8.8.8", "172.32.0.1", "172.15.0.1", "192.169.0.1", "11.0.0.1", "2001:db8::1", "fe80::1"})
    EXPECT_FALSE(is_private(*core::Endpoint::parse(ip, 25))) << ip;
}

TEST(OpenLoop, ArrivalsAtIntendedTimesAndLateOnesQueued) {
  const TimePoint t0{};
  OpenLoop l(10, 5, t0, 2);  // 10/s: every 100 ms; at most 2 at once
  EXPECT_EQ(l.next_due(), t0);
  EXPECT_EQ(l.take(t0), t0);
  EXPECT_FALSE(l.take(t0 + milliseconds(99)));  // not due yet
  EXPECT_EQ(l.next_due(), t0 + milliseconds(100));
  // The generator ran late (250 ms): both due arrivals start now, each with its own intended time.
  EXPECT_EQ(l.take(t0 + milliseconds(250)), t0 + milliseconds(100));
  EXPECT_EQ(l.active(), 2u);
  // Two running: the third, due at 200 ms, waits for a slot; nothing is skipped.
  EXPECT_FALSE(l.take(t0 + milliseconds(250)));
  EXPECT_FALSE(l.next_due());
  l.ended();
  EXPECT_EQ(l.take(t0 + milliseconds(600)), t0 + milliseconds(200));
  l.ended();
  EXPECT_EQ(l.take(t0 + milliseconds(600)), t0 + milliseconds(300));
  l.ended();
  EXPECT_EQ(l.take(t0 + milliseconds(600)), t0 + milliseconds(400));
  EXPECT_TRUE(l.all_taken());
  EXPECT_EQ(l.taken(), 5u);
  EXPECT_FALSE(l.next_due());
}

// A session that started `late` ms after its intended time and took `each` ms per reply.
SessionOutcome session(TimePoint intended, int late, int each, int rcpt_code = 250) {
  SessionOutcome s;
  s.intended = intended;
  s.started = intended + milliseconds(late);
  s.connected = s.started + milliseconds(1);
  TimePoint t = *s.connected;
  for (Stage st : {Stage::Greeting, Stage::Ehlo, Stage::Mail, Stage::Rcpt, Stage::Quit}) {
    s.measures.push_back({st, st == Stage::Rcpt ? rcpt_code : 250, t, t + milliseconds(each)});
    t += milliseconds(each);
  }
  s.ended = t;
  s.ok = true;
  s.rcpt_replies = 1;
  return s;
}

// A step of `n` sessions at `rate`, each taking `each` ms per reply; `queue_ms`: how much later
// each successive session completes than the one before beyond 1/rate (a server falling behind).
StepStats step(double rate, int n, int each, double queue_ms = 0, int failed = 0) {
  StepStats st;
  st.offered = rate;
  st.seconds = n / rate;
  const TimePoint t0{};
  for (int i = 0; i < n; ++i) {
    const TimePoint intended = t0 + std::chrono::microseconds(int64_t(i * 1e6 / rate));
    SessionOutcome s = session(intended, 0, each);
    s.measures.back().received += std::chrono::microseconds(int64_t(i * queue_ms * 1000));
    s.ended = s.measures.back().received;
    if (failed > 0 && i % (n / failed) == 0) {  // spread over the step
      s.ok = false;
      s.failure = Failure::Refused;
      s.connected.reset();
      s.measures.clear();
    }
    st.add(s);
  }
  return st;
}

TEST(StepStats, LatencyFromIntendedStartAndFromEachCommand) {
  StepStats st;
  st.offered = 1;
  st.seconds = 1;
  st.add(session(TimePoint{}, 30, 10, 550));
  const auto& connect = st.from_start[static_cast<int>(Stage::Connect)];
  EXPECT_EQ(connect.max(), 31000u);  // 30 ms late start + 1 ms connect: the queueing counts
  EXPECT_EQ(st.from_send[static_cast<int>(Stage::Connect)].max(), 1000u);
  EXPECT_EQ(st.from_send[static_cast<int>(Stage::Rcpt)].max(), 10000u);
  EXPECT_EQ(st.from_start[static_cast<int>(Stage::Rcpt)].max(), 71000u);
  EXPECT_EQ(st.from_start[static_cast<int>(Stage::Session)].max(), 81000u);
  EXPECT_EQ(st.behind.max(), 30000u);
  EXPECT_EQ(st.replies[static_cast<int>(Stage::Rcpt)][static_cast<int>(ReplyClass::C5xx)], 1u);
  EXPECT_EQ(st.completed, 1u);
  EXPECT_EQ(st.rcpts, 1u);
}

TEST(StepStats, AchievedRateIgnoresLatencyButNotFallingBehind) {
  // 100/s for 2 s with 200 ms sessions: the server keeps up.
  EXPECT_NEAR(step(100, 200, 40).achieved(), 100, 1);
  // Each session completes 5 ms later than the one before beyond its 10 ms slot: 15 ms apart,
  // about 67/s.
  EXPECT_NEAR(step(100, 200, 1, 5).achieved(), 66.7, 1);
  StepStats f = step(100, 200, 1, 0, 20);
  EXPECT_EQ(f.failed, 20u);
  EXPECT_EQ(f.failures[static_cast<int>(Failure::Refused)], 20u);
  EXPECT_NEAR(f.error_share(), 0.1, 1e-9);
  EXPECT_NEAR(f.achieved(), 90, 1);
}

TEST(Knee, FirstStepPastAnyCriterion) {
  std::vector<StepStats> steps = {step(50, 100, 2), step(100, 200, 2), step(200, 400, 2, 5)};
  Knee k = find_knee(steps);
  ASSERT_TRUE(k.found);
  EXPECT_EQ(k.step, 2u);
  EXPECT_EQ(k.rate, 200);
  EXPECT_NE(k.criterion.find("achieved < 95% of offered"), std::string::npos);
  EXPECT_EQ(k.last_good_rate, 100);

  // Latency alone: p99 more than 3x the first step's, the rate still achieved.
  steps = {step(50, 100, 2), step(100, 200, 7)};
  k = find_knee(steps);
  ASSERT_TRUE(k.found);
  EXPECT_EQ(k.step, 1u);
  EXPECT_EQ(k.criterion, "session p99 > 3x the first step's");

  // Errors alone, on the very first step: no good rate before it.
  steps = {step(50, 100, 2, 0, 2)};
  k = find_knee(steps);
  ASSERT_TRUE(k.found);
  EXPECT_EQ(k.step, 0u);
  EXPECT_NE(k.criterion.find("errors > 1% of sessions"), std::string::npos);
  EXPECT_FALSE(k.last_good_rate);

  steps = {step(50, 100, 2), step(100, 200, 2)};
  EXPECT_FALSE(find_knee(steps).found);
  EXPECT_FALSE(fell_over(steps[1]));
  EXPECT_TRUE(fell_over(step(100, 200, 1, 0, 150)));
}

// Sessions that each take `us` microseconds from their intended start, at `rate` for 1 s.
StepStats quick_step(double rate, int us) {
  StepStats st;
  st.offered = rate;
  st.seconds = 1;
  for (int i = 0; i < rate; ++i) {
    SessionOutcome s;
    s.intended = TimePoint{} + std::chrono::microseconds(int64_t(i * 1e6 / rate));
    s.started = s.intended;
    s.ended = s.intended + std::chrono::microseconds(us);
    s.ok = true;
    st.add(s);
  }
  return st;
}

TEST(Knee, LatencyCriterionIgnoresSubMillisecondNoise) {
  // 0.3 ms -> 0.95 ms is over 3x but under 1 ms more: noise on a loopback sink, no knee.
  std::vector<StepStats> steps = {quick_step(100, 300), quick_step(200, 950)};
  EXPECT_FALSE(find_knee(steps).found);
  steps.push_back(quick_step(400, 1400));  // 3x and 1.1 ms more
  const Knee k = find_knee(steps);
  ASSERT_TRUE(k.found);
  EXPECT_EQ(k.step, 2u);
  EXPECT_EQ(k.criterion, "session p99 > 3x the first step's");
}

TEST(Report, JsonTextAndCompare) {
  RunInfo info;
  info.target = "127.0.0.1:2525";
  info.address = "127.0.0.1:2525";
  info.backend = "uring";
  const std::vector<StepStats> a = {step(50, 100, 2), step(100, 200, 2)};
  const std::vector<StepStats> b = {step(50, 100, 4), step(100, 200, 4, 5)};
  const auto ja = to_json(info, a);
  const auto jb = to_json(info, b);
  EXPECT_FALSE(check_run(ja));
  EXPECT_EQ(ja["steps"].size(), 2u);
  EXPECT_EQ(ja["steps"][0]["stages"]["rcpt"]["replies"]["2xx"], 100);
  EXPECT_DOUBLE_EQ(ja["steps"][0]["stages"]["rcpt"]["service_ms"]["p50"].get<double>(), 2.0);
  EXPECT_EQ(ja["knee"]["found"], false);
  EXPECT_EQ(jb["knee"]["step"], 2);
  // The JSON as text and back, as --compare reads it.
  const auto ra = nlohmann::json::parse(ja.dump());
  const auto rb = nlohmann::json::parse(jb.dump());
  const std::string c = compare_text(ra, rb, "a.json", "b.json");
  EXPECT_NE(c.find("rcpt p50 ms"), std::string::npos) << c;
  EXPECT_NE(c.find("2.00"), std::string::npos) << c;  // 4 ms against 2 ms
  EXPECT_NE(c.find("Step 2"), std::string::npos);
  // Anything else is refused with a reason.
  EXPECT_TRUE(check_run(nlohmann::json::parse(R"({"tool": "other"})")));
  EXPECT_TRUE(check_run(nlohmann::json::parse(R"({"tool": "mxprobe bench-server"})")));
  EXPECT_TRUE(check_run(nlohmann::json::parse("[1, 2]")));
  // The text report fits 80 columns, with a knee and a stop too.
  auto jc = jb;
  jc["stopped_early"] =
      "the server fell over at 400 sessions/s (achieved 12.5/s, 3999 of 4000 sessions failed): "
      "the higher rates were not tried";
  jc["knee"]["criterion"] =
      "achieved < 95% of offered; session p99 > 3x the first step's; errors > 1% of sessions";
  const std::string t = to_text(ja) + to_text(jc);
  EXPECT_NE(t.find("Stopped early:\n  the server fell over"), std::string::npos) << t;
  size_t start = 0;
  while (start < t.size()) {
    const size_t end = t.find('\n', start);
    EXPECT_LE((end == std::string::npos ? t.size() : end) - start, 80u)
        << t.substr(start, end - start);
    start = end == std::string::npos ? t.size() : end + 1;
  }
  EXPECT_NE(chart_script(ja, "/tmp/a.dat", "x.svg").find("set terminal svg"), std::string::npos);
  EXPECT_NE(chart_data(ja).find("\n50 50"), std::string::npos) << chart_data(ja);
}

}  // namespace
}  // namespace mxp::bench
