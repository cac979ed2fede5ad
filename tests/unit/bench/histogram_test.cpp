// The histogram's percentiles against exact ones from the sorted values: within the stated
// relative error, maximum exact.
#include "bench/histogram.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

namespace mxp::bench {
namespace {

uint64_t exact(const std::vector<uint64_t>& sorted, double q) {
  const auto rank = std::max<uint64_t>(1, static_cast<uint64_t>(std::ceil(q * sorted.size())));
  return sorted[rank - 1];
}

TEST(Histogram, BucketsCoverEveryValueOnceWithBoundedWidth) {
  size_t last = 0;
  for (uint64_t v = 0; v < (uint64_t{1} << 20); v += 1 + v / 50) {
    const size_t i = Histogram::index_of(v);
    EXPECT_GE(i, last) << v;  // monotonic
    last = i;
    EXPECT_LE(Histogram::lower_of(i), v) << v;
    EXPECT_LT(v, Histogram::lower_of(i) + Histogram::width_of(i)) << v;
    EXPECT_LE(static_cast<double>(Histogram::width_of(i)),
              std::max(1.0, Histogram::lower_of(i) * 2 * Histogram::kRelativeError))
        << v;
  }
  // Neighbouring buckets touch: no value falls between two.
  for (size_t i = 0; i < 3000; ++i)
    EXPECT_EQ(Histogram::lower_of(i) + Histogram::width_of(i), Histogram::lower_of(i + 1)) << i;
}

TEST(Histogram, PercentilesWithinTheStatedBoundOfExactOnes) {
  std::mt19937_64 rng(7);
  // Latencies from 1 us to 20 s, log-uniform, plus a cluster and outliers.
  std::vector<uint64_t> v;
  std::uniform_real_distribution<double> e(0, std::log(20e6));
  for (int i = 0; i < 100000; ++i)
    v.push_back(static_cast<uint64_t>(std::exp(e(rng))));
  for (int i = 0; i < 5000; ++i)
    v.push_back(50000 + rng() % 300);
  v.push_back(987654321);
  Histogram h;
  for (uint64_t x : v)
    h.record(x);
  std::sort(v.begin(), v.end());
  EXPECT_EQ(h.count(), v.size());
  EXPECT_EQ(h.max(), v.back());
  EXPECT_EQ(h.min(), v.front());
  EXPECT_EQ(h.percentile(1.0), v.back());
  for (double q : {0.0, 0.01, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999}) {
    const double want = static_cast<double>(exact(v, q));
    const double got = static_cast<double>(h.percentile(q));
    EXPECT_LE(std::abs(got - want), want * Histogram::kRelativeError + 0.5)
        << "q=" << q << " want " << want << " got " << got;
  }
}

TEST(Histogram, SmallValuesAreExactAndMergeAddsUp) {
  Histogram a, b;
  for (uint64_t x = 1; x <= 200; ++x)
    (x % 2 ? a : b).record(x);
  a.merge(b);
  EXPECT_EQ(a.count(), 200u);
  EXPECT_EQ(a.percentile(0.5), 100u);
  EXPECT_EQ(a.percentile(0.99), 198u);
  EXPECT_EQ(a.max(), 200u);
  EXPECT_DOUBLE_EQ(a.mean(), 100.5);
  Histogram empty;
  EXPECT_EQ(empty.percentile(0.5), 0u);
  EXPECT_EQ(empty.max(), 0u);
}

}  // namespace
}  // namespace mxp::bench
