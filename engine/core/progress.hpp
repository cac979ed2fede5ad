// Progress for long work: a redrawn bar on a terminal, a one-line status every few seconds
// otherwise (logs, CI). Rendering is a pure function of the state, the width and the clock so it
// is tested without a terminal; Progress only decides when to write.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/clock.hpp"

namespace mxp {

struct ProgressState {
  uint64_t done = 0;         // items finished (lines, verifications)
  uint64_t total = 0;        // items expected, 0 when unknown
  uint64_t bytes_done = 0;   // input consumed, used for the ratio when total is unknown
  uint64_t bytes_total = 0;  // input size, 0 when unknown (a pipe)
  // Counts shown after the rate, in this order ("deliverable 12"); on a narrow terminal the
  // last ones are left out first.
  std::vector<std::pair<std::string, uint64_t>> counts;
  int64_t sessions = -1;  // open SMTP sessions; -1: not shown
  // Items waiting for a retry time (greylisting, 4xx): how many, and in how many seconds the
  // first and the last of them are due (-1: none). The ETA is never before the last one.
  uint64_t waiting = 0;
  double next_retry_s = -1, last_retry_s = -1;
};

// "1.2k", "3.4M": short human numbers for a status line.
std::string human_count(double v);
// "1:02:03" / "2:03": durations for ETA and elapsed.
std::string human_duration(double seconds);

// One status line, at most width - 1 columns (0: no limit), so that a terminal never wraps it.
// The figures come most important first: percent and items, ETA, the next retry, rate, counts,
// sessions, elapsed; what does not fit is left out from the end of that list. `bar` draws a
// [####....] bar in the columns left over (terminal); `unit` names the items ("lines").
std::string render_progress(const ProgressState& s, double elapsed_s, std::string_view unit,
                            bool bar, size_t width = 0);

// Columns of the terminal behind `f` (TIOCGWINSZ), else $COLUMNS, else 80.
size_t terminal_width(std::FILE* f);

class Progress {
 public:
  using Clock = core::Clock;
  // tty: redraw in place about 10 times a second, fitted to the terminal's width; otherwise
  // print a line every `interval`.
  Progress(std::FILE* out, bool tty, std::string unit,
           std::chrono::milliseconds interval = std::chrono::seconds(5));
  // Cheap enough to call per item: it looks at the clock only every 1024 calls.
  void tick(const ProgressState& s) {
    if ((++calls_ & 1023) == 0) maybe_draw(s, false);
  }
  void maybe_draw(const ProgressState& s, bool force);
  void finish(const ProgressState& s);  // final line, newline on a terminal

 private:
  std::FILE* out_;
  bool tty_;
  std::string unit_;
  std::chrono::milliseconds interval_;
  Clock::time_point start_ = Clock::now(), last_ = start_;
  uint64_t calls_ = 0;
  bool drawn_ = false;
};

}  // namespace mxp
