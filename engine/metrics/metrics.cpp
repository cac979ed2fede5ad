#include "metrics/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

namespace mxp::metrics {

void Histogram::observe(double seconds) {
  if (!(seconds >= 0)) seconds = 0;  // NaN or negative: count it in the first bucket
  const auto it = std::lower_bound(kBounds.begin(), kBounds.end(), seconds);
  ++buckets_[static_cast<size_t>(it - kBounds.begin())];
  ++count_;
  sum_ += seconds;
}

double Histogram::quantile(double q) const {
  if (count_ == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  const double rank = q * static_cast<double>(count_);
  uint64_t seen = 0;
  for (size_t i = 0; i < buckets_.size(); ++i) {
    if (buckets_[i] == 0) continue;
    if (static_cast<double>(seen + buckets_[i]) >= rank) {
      if (i == kBounds.size()) return kBounds.back();
      const double lo = i == 0 ? 0 : kBounds[i - 1];
      const double hi = kBounds[i];
      const double within = (rank - static_cast<double>(seen)) / static_cast<double>(buckets_[i]);
      return lo + (hi - lo) * std::clamp(within, 0.0, 1.0);
    }
    seen += buckets_[i];
  }
  return kBounds.back();
}

void Histogram::append_prometheus(std::string& out, std::string_view name,
                                  std::string_view labels) const {
  char buf[128];
  uint64_t cum = 0;
  std::string sep = labels.empty() ? "" : std::string(labels) + ",";
  for (size_t i = 0; i <= kBounds.size(); ++i) {
    cum += buckets_[i];
    out.append(name).append("_bucket{").append(sep).append("le=\"");
    if (i == kBounds.size()) {
      out.append("+Inf");
    } else {
      std::snprintf(buf, sizeof buf, "%g", kBounds[i]);
      out.append(buf);
    }
    std::snprintf(buf, sizeof buf, "\"} %llu\n", static_cast<unsigned long long>(cum));
    out.append(buf);
  }
  std::string lb = labels.empty() ? "" : "{" + std::string(labels) + "}";
  std::snprintf(buf, sizeof buf, "%.6f", sum_);
  out.append(name).append("_sum").append(lb).append(" ").append(buf).append("\n");
  out.append(name).append("_count").append(lb).append(" ").append(std::to_string(count_));
  out.append("\n");
}

void RateWindow::roll(int64_t sec) const {
  if (head_ == INT64_MIN || sec - head_ >= static_cast<int64_t>(kSeconds)) {
    slots_.fill(0);
    head_ = sec;
    return;
  }
  while (head_ < sec) {
    ++head_;
    slots_[static_cast<size_t>(head_ % static_cast<int64_t>(kSeconds))] = 0;
  }
}

static int64_t second_of(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

void RateWindow::add(Clock::time_point now, uint64_t n) {
  const int64_t sec = second_of(now);
  if (head_ != INT64_MIN && sec < head_) return;  // the clock is monotonic; be safe
  roll(sec);
  slots_[static_cast<size_t>(sec % static_cast<int64_t>(kSeconds))] += n;
}

std::vector<uint64_t> RateWindow::series(Clock::time_point now, size_t n) const {
  n = std::min(n, kSeconds - 1);
  const int64_t sec = second_of(now);
  roll(std::max(sec, head_ == INT64_MIN ? sec : head_));
  std::vector<uint64_t> out;
  out.reserve(n);
  for (int64_t s = sec - static_cast<int64_t>(n); s < sec; ++s)
    out.push_back(s < 0 ? 0 : slots_[static_cast<size_t>(s % static_cast<int64_t>(kSeconds))]);
  return out;
}

double RateWindow::rate(Clock::time_point now, size_t seconds) const {
  if (seconds == 0) return 0;
  auto s = series(now, seconds);
  uint64_t total = 0;
  for (auto v : s)
    total += v;
  return static_cast<double>(total) / static_cast<double>(s.size());
}

void append_process_metrics(std::string& out) {
  char buf[64];
  auto metric = [&](const char* name, const char* type, const char* help, double v) {
    std::snprintf(buf, sizeof buf, "%.15g", v);
    out.append("# HELP ").append(name).append(" ").append(help).append("\n# TYPE ");
    out.append(name).append(" ").append(type).append("\n").append(name).append(" ");
    out.append(buf).append("\n");
  };
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(::sysconf(_SC_PAGESIZE));
  // /proc/self/stat: the fields after the command name (which may hold spaces and parentheses).
  std::ifstream st("/proc/self/stat");
  std::string line;
  if (ticks > 0 && std::getline(st, line)) {
    const auto close = line.rfind(')');
    if (close != std::string::npos) {
      std::istringstream in(line.substr(close + 2));
      std::vector<std::string> f;  // f[0] is field 3 (state)
      for (std::string x; in >> x;)
        f.push_back(x);
      if (f.size() > 21) {
        const double utime = std::strtod(f[11].c_str(), nullptr);
        const double stime = std::strtod(f[12].c_str(), nullptr);
        const double start = std::strtod(f[19].c_str(), nullptr);
        metric("process_cpu_seconds_total", "counter", "User and system CPU time spent in seconds.",
               (utime + stime) / ticks);
        metric("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
               std::strtod(f[20].c_str(), nullptr));
        metric("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
               std::strtod(f[21].c_str(), nullptr) * page);
        // Boot time (/proc/stat btime) plus the start in ticks after boot.
        std::ifstream ps("/proc/stat");
        for (std::string l; std::getline(ps, l);)
          if (l.rfind("btime ", 0) == 0) {
            metric("process_start_time_seconds", "gauge",
                   "Start time of the process since the Unix epoch in seconds.",
                   std::strtod(l.c_str() + 6, nullptr) + start / ticks);
            break;
          }
      }
    }
  }
  if (DIR* d = ::opendir("/proc/self/fd")) {
    uint64_t n = 0;
    while (dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') ++n;
    ::closedir(d);
    metric("process_open_fds", "gauge", "Number of open file descriptors.",
           static_cast<double>(n > 0 ? n - 1 : 0));  // less the one reading the directory
  }
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
    metric("process_max_fds", "gauge", "Maximum number of open file descriptors.",
           static_cast<double>(rl.rlim_cur));
}

std::string label_value(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out.append("\\n");
    } else {
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace mxp::metrics
