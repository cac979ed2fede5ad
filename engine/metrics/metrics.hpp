// Metrics for `mxprobe serve`: counters, per-second rate windows and latency histograms whose
// cost does not grow with the number of sessions (a few integer updates per event), exported in
// the Prometheus text format (version 0.0.4) and summarised for the WebSocket snapshots.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.hpp"

namespace mxp::metrics {

using Clock = core::Clock;

// Latency histogram with fixed buckets (seconds): 1 ms .. 60 s, roughly 1-2-5 steps.
class Histogram {
 public:
  static constexpr std::array<double, 16> kBounds = {
      0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 60};
  void observe(double seconds);
  uint64_t count() const { return count_; }
  double sum() const { return sum_; }
  // The q-quantile (0..1) by linear interpolation inside its bucket; 0 when empty. Values past
  // the last bound report that bound.
  double quantile(double q) const;
  // Appends _bucket/_sum/_count lines; `labels` like `stage="rcpt_to"` (may be empty).
  void append_prometheus(std::string& out, std::string_view name, std::string_view labels) const;

 private:
  std::array<uint64_t, kBounds.size() + 1> buckets_{};  // last: +Inf
  uint64_t count_ = 0;
  double sum_ = 0;
};

// Events per whole second over the last `kSeconds` seconds: rates and plot series.
class RateWindow {
 public:
  static constexpr size_t kSeconds = 120;
  void add(Clock::time_point now, uint64_t n = 1);
  // Mean events/s over the `seconds` full seconds before now (the current one excluded).
  double rate(Clock::time_point now, size_t seconds = 5) const;
  // Counts of the last `n` full seconds, oldest first.
  std::vector<uint64_t> series(Clock::time_point now, size_t n) const;

 private:
  void roll(int64_t sec) const;
  mutable std::array<uint64_t, kSeconds> slots_{};
  mutable int64_t head_ = INT64_MIN;  // the second slots_[head_ % kSeconds] counts
};

// Appends the standard process metrics (Linux /proc): process_cpu_seconds_total,
// process_resident_memory_bytes, process_virtual_memory_bytes, process_open_fds,
// process_max_fds, process_start_time_seconds. A value that cannot be read is left out.
void append_process_metrics(std::string& out);

// Escapes a Prometheus label value (backslash, quote, newline).
std::string label_value(std::string_view v);

}  // namespace mxp::metrics
