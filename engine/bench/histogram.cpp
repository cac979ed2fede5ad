#include "bench/histogram.hpp"

#include <algorithm>
#include <bit>
#include <cmath>

namespace mxp::bench {

size_t Histogram::index_of(uint64_t us) {
  us = std::min(us, (uint64_t{1} << kMaxBits) - 1);
  if (us < 2 * kSubBuckets) return static_cast<size_t>(us);
  const int msb = 63 - std::countl_zero(us);
  const int shift = msb - kSubBits;
  return static_cast<size_t>((shift + 1) * kSubBuckets + ((us >> shift) - kSubBuckets));
}

uint64_t Histogram::lower_of(size_t index) {
  if (index < 2 * kSubBuckets) return index;
  const uint64_t shift = index / kSubBuckets - 1;
  return (kSubBuckets + index % kSubBuckets) << shift;
}

uint64_t Histogram::width_of(size_t index) {
  if (index < 2 * kSubBuckets) return 1;
  return uint64_t{1} << (index / kSubBuckets - 1);
}

void Histogram::record(uint64_t us) {
  const size_t i = index_of(us);
  if (i >= counts_.size()) counts_.resize(i + 1, 0);
  ++counts_[i];
  min_ = count_ ? std::min(min_, us) : us;
  max_ = std::max(max_, us);
  sum_ += us;
  ++count_;
}

void Histogram::merge(const Histogram& o) {
  if (o.count_ == 0) return;
  if (o.counts_.size() > counts_.size()) counts_.resize(o.counts_.size(), 0);
  for (size_t i = 0; i < o.counts_.size(); ++i)
    counts_[i] += o.counts_[i];
  min_ = count_ ? std::min(min_, o.min_) : o.min_;
  max_ = std::max(max_, o.max_);
  sum_ += o.sum_;
  count_ += o.count_;
}

uint64_t Histogram::percentile(double q) const {
  if (count_ == 0) return 0;
  if (q >= 1) return max_;
  const uint64_t rank =
      std::max<uint64_t>(1, static_cast<uint64_t>(std::ceil(std::max(q, 0.0) * count_)));
  uint64_t seen = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      const uint64_t mid = lower_of(i) + width_of(i) / 2;
      return std::clamp(mid, min_, max_);
    }
  }
  return max_;
}

}  // namespace mxp::bench
