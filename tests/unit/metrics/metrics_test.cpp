// Histograms (buckets, quantiles, Prometheus lines) and per-second rate windows.
#include "metrics/metrics.hpp"

#include <gtest/gtest.h>

namespace mxp::metrics {
namespace {

TEST(Histogram, QuantilesFallInTheRightBuckets) {
  Histogram h;
  EXPECT_EQ(h.quantile(0.5), 0);
  for (int i = 0; i < 90; ++i)
    h.observe(0.003);  // (0.002, 0.005]
  for (int i = 0; i < 10; ++i)
    h.observe(1.5);  // (1, 2]
  EXPECT_EQ(h.count(), 100u);
  EXPECT_NEAR(h.sum(), 90 * 0.003 + 15, 1e-9);
  EXPECT_GT(h.quantile(0.5), 0.002);
  EXPECT_LE(h.quantile(0.5), 0.005);
  EXPECT_GT(h.quantile(0.95), 1.0);
  EXPECT_LE(h.quantile(0.95), 2.0);
  h.observe(1000);  // past the last bound
  EXPECT_EQ(h.quantile(1.0), 60);
}

TEST(Histogram, PrometheusLinesAreCumulative) {
  Histogram h;
  h.observe(0.0005);
  h.observe(0.5);
  h.observe(100);
  std::string out;
  h.append_prometheus(out, "x_seconds", "stage=\"rcpt_to\"");
  EXPECT_NE(out.find("x_seconds_bucket{stage=\"rcpt_to\",le=\"0.001\"} 1\n"), std::string::npos)
      << out;
  EXPECT_NE(out.find("x_seconds_bucket{stage=\"rcpt_to\",le=\"0.5\"} 2\n"), std::string::npos);
  EXPECT_NE(out.find("x_seconds_bucket{stage=\"rcpt_to\",le=\"60\"} 2\n"), std::string::npos);
  EXPECT_NE(out.find("x_seconds_bucket{stage=\"rcpt_to\",le=\"+Inf\"} 3\n"), std::string::npos);
  EXPECT_NE(out.find("x_seconds_count{stage=\"rcpt_to\"} 3\n"), std::string::npos);
  out.clear();
  h.append_prometheus(out, "y", "");
  EXPECT_NE(out.find("y_bucket{le=\"+Inf\"} 3\n"), std::string::npos) << out;
  EXPECT_NE(out.find("y_count 3\n"), std::string::npos);
}

TEST(RateWindow, CountsWholeSecondsAndForgetsOldOnes) {
  RateWindow w;
  const Clock::time_point t0{std::chrono::seconds(1000)};
  w.add(t0, 5);
  w.add(t0 + std::chrono::milliseconds(900), 5);
  w.add(t0 + std::chrono::seconds(1), 3);
  auto s = w.series(t0 + std::chrono::seconds(2), 3);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0], 0u);
  EXPECT_EQ(s[1], 10u);
  EXPECT_EQ(s[2], 3u);
  EXPECT_DOUBLE_EQ(w.rate(t0 + std::chrono::seconds(2), 2), 6.5);
  // Long after: everything has rolled out.
  EXPECT_DOUBLE_EQ(w.rate(t0 + std::chrono::seconds(500), 10), 0.0);
  w.add(t0 + std::chrono::seconds(500), 7);
  EXPECT_EQ(w.series(t0 + std::chrono::seconds(501), 1)[0], 7u);
}

TEST(Labels, ValuesAreEscaped) {
  EXPECT_EQ(label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

}  // namespace
}  // namespace mxp::metrics
