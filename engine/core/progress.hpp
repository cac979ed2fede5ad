// Progress for long work: a redrawn bar on a terminal, a one-line status every few seconds
// otherwise (logs, CI). Rendering is a pure function of the state and the clock so it is tested
// without a terminal; Progress only decides when to write.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace mxp {

struct ProgressState {
  uint64_t done = 0;         // items finished (lines, verifications)
  uint64_t total = 0;        // items expected, 0 when unknown
  uint64_t bytes_done = 0;   // input consumed, used for the ratio when total is unknown
  uint64_t bytes_total = 0;  // input size, 0 when unknown (a pipe)
  std::string extra;         // counts to show after the rate, e.g. "ok 12 bad 3"
};

// "1.2k", "3.4M": short human numbers for a status line.
std::string human_count(double v);
// "1:02:03" / "2:03": durations for ETA and elapsed.
std::string human_duration(double seconds);

// One status line. `bar` draws a [####....] bar (terminal); `unit` names the items ("lines").
std::string render_progress(const ProgressState& s, double elapsed_s, std::string_view unit,
                            bool bar);

class Progress {
 public:
  using Clock = std::chrono::steady_clock;
  // tty: redraw in place about 10 times a second; otherwise print a line every `interval`.
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
