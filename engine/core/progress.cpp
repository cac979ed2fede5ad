#include "core/progress.hpp"

#include <cmath>

namespace mxp {

std::string human_count(double v) {
  char buf[32];
  if (v < 1000) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else if (v < 1e6) {
    std::snprintf(buf, sizeof buf, "%.1fk", v / 1e3);
  } else if (v < 1e9) {
    std::snprintf(buf, sizeof buf, "%.1fM", v / 1e6);
  } else {
    std::snprintf(buf, sizeof buf, "%.1fG", v / 1e9);
  }
  return buf;
}

std::string human_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  // NOLINTNEXTLINE(bugprone-incorrect-roundings): seconds >= 0 here, so + 0.5 rounds right
  auto s = static_cast<uint64_t>(seconds + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%llu:%02llu:%02llu", (unsigned long long)(s / 3600),
                  (unsigned long long)(s / 60 % 60), (unsigned long long)(s % 60));
  else
    std::snprintf(buf, sizeof buf, "%llu:%02llu", (unsigned long long)(s / 60),
                  (unsigned long long)(s % 60));
  return buf;
}

std::string render_progress(const ProgressState& s, double elapsed_s, std::string_view unit,
                            bool bar) {
  // Fraction done: by items when the total is known, else by input bytes, else unknown.
  double frac = -1;
  if (s.total > 0)
    frac = static_cast<double>(s.done) / static_cast<double>(s.total);
  else if (s.bytes_total > 0)
    frac = static_cast<double>(s.bytes_done) / static_cast<double>(s.bytes_total);
  if (frac > 1) frac = 1;
  double rate = elapsed_s > 0 ? static_cast<double>(s.done) / elapsed_s : 0;

  std::string line;
  if (bar) {
    constexpr int kWidth = 24;
    int filled = frac < 0 ? 0 : static_cast<int>(frac * kWidth);
    line += '[';
    line.append(filled, '#');
    line.append(kWidth - filled, frac < 0 ? '?' : '.');
    line += "] ";
  }
  char buf[64];
  if (frac >= 0) {
    std::snprintf(buf, sizeof buf, "%5.1f%% ", frac * 100);
    line += buf;
  }
  line += human_count(static_cast<double>(s.done));
  if (s.total > 0) line += "/" + human_count(static_cast<double>(s.total));
  line += ' ';
  line += unit;
  line += ' ';
  line += human_count(rate);
  line += "/s";
  if (!s.extra.empty()) line += "  " + s.extra;
  line += "  elapsed " + human_duration(elapsed_s);
  if (frac > 0 && frac < 1) line += "  ETA " + human_duration(elapsed_s * (1 - frac) / frac);
  return line;
}

Progress::Progress(std::FILE* out, bool tty, std::string unit, std::chrono::milliseconds interval)
    : out_(out), tty_(tty), unit_(std::move(unit)), interval_(interval) {}

void Progress::maybe_draw(const ProgressState& s, bool force) {
  auto now = Clock::now();
  auto due = tty_ ? std::chrono::milliseconds(100) : interval_;
  if (!force && now - last_ < due) return;
  last_ = now;
  double elapsed = std::chrono::duration<double>(now - start_).count();
  std::string line = render_progress(s, elapsed, unit_, tty_);
  if (tty_)
    std::fprintf(out_, "\r\033[K%s", line.c_str());  // erase the previous line, redraw
  else
    std::fprintf(out_, "progress: %s\n", line.c_str());
  std::fflush(out_);
  drawn_ = true;
}

void Progress::finish(const ProgressState& s) {
  if (!tty_ && !drawn_) return;  // short runs stay quiet in logs
  maybe_draw(s, true);
  if (tty_) std::fputc('\n', out_);
  std::fflush(out_);
}

}  // namespace mxp
