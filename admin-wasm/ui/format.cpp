// Number formatting for the console (format.hpp).
#include "format.hpp"

#include <cmath>
#include <cstdio>

namespace mxc {

namespace {
std::string printf_str(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}
}  // namespace

std::string fmt_count(uint64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string fmt_short(double n) {
  if (!std::isfinite(n)) return "-";
  const double a = std::fabs(n);
  if (a < 1000) return a == std::floor(a) ? printf_str("%.0f", n) : printf_str("%.1f", n);
  if (a < 10e3) return printf_str("%.2fk", n / 1e3);
  if (a < 1e6) return printf_str("%.1fk", n / 1e3);
  if (a < 10e6) return printf_str("%.2fM", n / 1e6);
  return printf_str("%.1fM", n / 1e6);
}

std::string fmt_rate(double per_s) {
  if (!std::isfinite(per_s) || per_s <= 0) return "0/s";
  if (per_s < 10) return printf_str("%.2g/s", per_s);
  if (per_s < 1000) return printf_str("%.0f/s", per_s);
  return fmt_short(per_s) + "/s";
}

std::string fmt_ms(double ms) {
  if (!std::isfinite(ms) || ms < 0) return "-";
  if (ms < 10) return printf_str("%.2f ms", ms);
  if (ms < 1000) return printf_str("%.0f ms", ms);
  if (ms < 60000) return printf_str("%.2f s", ms / 1000);
  return fmt_duration(ms / 1000);
}

std::string fmt_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "-";
  char buf[64];
  if (s < 10) {
    std::snprintf(buf, sizeof buf, "%.1f s", s);
  } else if (s < 60) {
    std::snprintf(buf, sizeof buf, "%.0f s", s);
  } else if (s < 3600) {
    const long m = static_cast<long>(s / 60), r = static_cast<long>(s) % 60;
    std::snprintf(buf, sizeof buf, "%ld min %02ld s", m, r);
  } else {
    const long h = static_cast<long>(s / 3600), m = (static_cast<long>(s) % 3600) / 60;
    std::snprintf(buf, sizeof buf, "%ld h %02ld min", h, m);
  }
  return buf;
}

std::string fmt_percent(double f) {
  if (!std::isfinite(f)) return "-";
  return printf_str(f * 100 < 10 ? "%.1f %%" : "%.0f %%", f * 100);
}

std::string fmt_limit(double rate_per_s) {
  return rate_per_s <= 0 ? std::string("unlimited") : fmt_rate(rate_per_s);
}

std::string fmt_bytes(uint64_t b) {
  if (b < 1024) return std::to_string(b) + " B";
  if (b < 1024 * 1024) return printf_str("%.1f KiB", double(b) / 1024);
  return printf_str("%.1f MiB", double(b) / (1024 * 1024));
}

}  // namespace mxc
