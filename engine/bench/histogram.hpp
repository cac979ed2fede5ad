// A log-bucketed latency histogram with a bounded relative error, in the manner of HdrHistogram
// (Gil Tene's design: every power of two split into the same number of linear sub-buckets).
// No such C or C++ library is packaged in Debian, and the idea fits in a page, so bench-server
// keeps its own rather than vendoring one.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace mxp::bench {

// Values are microseconds. Below 2 * kSubBuckets every value has a bucket of its own (exact);
// above, each power of two [2^k, 2^(k+1)) is split into kSubBuckets equal buckets, so a bucket
// is at most 1/kSubBuckets of its lower edge wide. A percentile is reported as its bucket's
// midpoint (clamped to the exact minimum and maximum), hence off by at most half a bucket:
// kRelativeError = 1 / (2 * kSubBuckets) = 0.39 % of the true value. Minimum, maximum, count and
// mean are exact.
class Histogram {
 public:
  static constexpr int kSubBits = 7;
  static constexpr uint64_t kSubBuckets = uint64_t{1} << kSubBits;  // 128
  static constexpr double kRelativeError = 1.0 / (2.0 * kSubBuckets);
  // Values beyond about 19 hours (2^36 us) are counted at that ceiling.
  static constexpr int kMaxBits = 36;

  void record(uint64_t us);
  void merge(const Histogram& other);
  uint64_t count() const { return count_; }
  uint64_t min() const { return count_ ? min_ : 0; }
  uint64_t max() const { return max_; }
  double mean() const { return count_ ? static_cast<double>(sum_) / count_ : 0; }
  // The value at rank ceil(q * count) of the sorted values (q in [0, 1]; 1 is the maximum),
  // within kRelativeError; 0 when empty.
  uint64_t percentile(double q) const;

  // Bucket arithmetic, public for the tests.
  static size_t index_of(uint64_t us);
  static uint64_t lower_of(size_t index);
  static uint64_t width_of(size_t index);

 private:
  std::vector<uint64_t> counts_;  // grown on demand: a quick server's histogram stays small
  uint64_t count_ = 0, min_ = 0, max_ = 0, sum_ = 0;
};

}  // namespace mxp::bench
