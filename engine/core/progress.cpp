#include "core/progress.hpp"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>

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

namespace {

struct Piece {
  std::string text;
  int priority;  // 0 most important; the highest is left out first
};

}  // namespace

std::string render_progress(const ProgressState& s, double elapsed_s, std::string_view unit,
                            bool bar, size_t width) {
  // Fraction done: by items when the total is known, else by input bytes, else unknown.
  double frac = -1;
  if (s.total > 0)
    frac = static_cast<double>(s.done) / static_cast<double>(s.total);
  else if (s.bytes_total > 0)
    frac = static_cast<double>(s.bytes_done) / static_cast<double>(s.bytes_total);
  if (frac > 1) frac = 1;
  double rate = elapsed_s > 0 ? static_cast<double>(s.done) / elapsed_s : 0;

  std::vector<Piece> pieces;
  char buf[64];
  std::string items;
  if (frac >= 0) {
    std::snprintf(buf, sizeof buf, "%.1f%% ", frac * 100);
    items = buf;
  }
  items += human_count(static_cast<double>(s.done));
  if (s.total > 0) items += "/" + human_count(static_cast<double>(s.total));
  items += ' ';
  items += unit;
  pieces.push_back({std::move(items), 0});
  // ETA: by the rate so far, but never before the last waiting retry is due (those addresses
  // cannot finish sooner; ">=": a retry may be answered with another wait).
  const bool waits = s.waiting > 0 && s.last_retry_s >= 0;
  if (frac < 1 && (frac > 0 || waits)) {
    double eta = frac > 0 ? elapsed_s * (1 - frac) / frac : 0;
    if (waits && s.last_retry_s >= eta)
      pieces.push_back({"ETA >=" + human_duration(s.last_retry_s), 1});
    else
      pieces.push_back({"ETA " + human_duration(eta), 1});
  }
  if (s.waiting > 0) {
    std::string w = human_count(static_cast<double>(s.waiting)) + " waiting";
    if (s.next_retry_s >= 0) w += ", next retry " + human_duration(s.next_retry_s);
    pieces.push_back({std::move(w), 2});
  }
  pieces.push_back({human_count(rate) + "/s", 3});
  int prio = 4;
  for (const auto& [name, n] : s.counts)
    pieces.push_back({name + " " + human_count(static_cast<double>(n)), prio++});
  if (s.sessions >= 0) pieces.push_back({"sessions " + std::to_string(s.sessions), prio++});
  pieces.push_back({"elapsed " + human_duration(elapsed_s), prio++});

  // Leave out the least important pieces until the line fits (one column spare: a line that
  // fills the last column makes some terminals wrap).
  constexpr size_t kSep = 2;
  const size_t limit = width > 0 ? width - 1 : SIZE_MAX;
  auto length = [&] {
    size_t n = 0;
    for (const auto& p : pieces)
      n += p.text.size() + (n ? kSep : 0);
    return n;
  };
  while (pieces.size() > 1 && length() > limit) {
    auto worst = pieces.begin();
    for (auto it = pieces.begin(); it != pieces.end(); ++it)
      if (it->priority > worst->priority) worst = it;
    pieces.erase(worst);
  }

  std::string line;
  if (bar) {
    // The bar takes what is left, 10 to 30 columns; without room for 10 it is left out.
    constexpr size_t kMin = 10, kMax = 30;
    size_t room = width > 0 && limit > length() + 3 ? limit - length() - 3 : 0;
    size_t w = width == 0 ? 24 : std::min(room, kMax);
    if (width == 0 || room >= kMin) {
      size_t filled = frac < 0 ? 0 : static_cast<size_t>(frac * static_cast<double>(w));
      line += '[';
      line.append(filled, '#');
      line.append(w - filled, frac < 0 ? '?' : '.');
      line += "] ";
    }
  }
  for (size_t i = 0; i < pieces.size(); ++i) {
    if (i) line.append(kSep, ' ');
    line += pieces[i].text;
  }
  if (line.size() > limit) line.resize(limit);  // a very narrow terminal: cut, never wrap
  return line;
}

size_t terminal_width(std::FILE* f) {
  struct winsize ws {};
  if (f && ioctl(fileno(f), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  if (const char* c = std::getenv("COLUMNS"); c && *c) {
    long n = std::strtol(c, nullptr, 10);
    if (n > 0 && n < 10000) return static_cast<size_t>(n);
  }
  return 80;
}

Progress::Progress(std::FILE* out, bool tty, std::string unit, std::chrono::milliseconds interval)
    : out_(out), tty_(tty), unit_(std::move(unit)), interval_(interval) {}

void Progress::maybe_draw(const ProgressState& s, bool force) {
  auto now = Clock::now();
  auto due = tty_ ? std::chrono::milliseconds(100) : interval_;
  if (!force && now - last_ < due) return;
  last_ = now;
  double elapsed = std::chrono::duration<double>(now - start_).count();
  std::string line = render_progress(s, elapsed, unit_, tty_, tty_ ? terminal_width(out_) : 0);
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
