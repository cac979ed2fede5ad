// bench-server's open-loop arithmetic, pure: the rates of the steps, the arrival schedule
// (intended start times) with its --max-sessions queue, and each step's figures from the
// sessions' measurements. Times are handed in, so tests drive it with made-up clocks.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bench/dialogue.hpp"
#include "bench/histogram.hpp"
#include "core/endpoint.hpp"

namespace mxp::bench {

// --data is for the user's own server: loopback and private addresses (127/8, 10/8, 172.16/12,
// 192.168/16, ::1, fc00::/7) are taken as such; anything else needs --i-own-this-server.
bool is_private(const core::Endpoint& e);

// "100,200,400" -> {100, 200, 400}; every rate above 0. nullopt on anything else.
std::optional<std::vector<double>> parse_rates(const std::string& list);
// "FROM:TO:xF" (multiply by F > 1) or "FROM:TO:+S" (add S > 0): FROM, then each next rate up
// to TO; TO itself is the last step when the progression steps over it. nullopt when malformed.
std::optional<std::vector<double>> parse_ramp(const std::string& spec);

// One step's arrivals: `count` sessions at `rate` per second from `start`; session i is meant to
// start at start + i / rate. At most `max_sessions` run at once: an arrival due while that many
// run waits for one to end, and its latency still counts from its intended time (open loop:
// nothing is skipped, the wait is the generator's queueing and shows in the figures).
class OpenLoop {
 public:
  OpenLoop(double rate, uint64_t count, TimePoint start, size_t max_sessions);
  TimePoint intended(uint64_t i) const;
  // The next arrival to start now, if one is due and a slot is free: its intended time (the
  // caller starts it and later calls ended()).
  std::optional<TimePoint> take(TimePoint now);
  void ended() { --active_; }
  // When take() may next return something: the next intended time, or nullopt when every
  // arrival was taken or all slots are busy (then an ended() decides).
  std::optional<TimePoint> next_due() const;
  bool all_taken() const { return next_ == count_; }
  size_t active() const { return active_; }
  uint64_t taken() const { return next_; }

 private:
  double rate_;
  uint64_t count_, next_ = 0;
  TimePoint start_;
  size_t max_, active_ = 0;
};

// How one session went, for the step's figures.
struct SessionOutcome {
  TimePoint intended;                  // from the schedule
  TimePoint started;                   // when its connect was issued
  std::optional<TimePoint> connected;  // when the TCP connection was made
  TimePoint ended;
  Failure failure = Failure::None;  // a connection failure, or None
  bool ok = false;                  // Dialogue::ok()
  int rcpt_replies = 0;
  std::vector<Measure> measures;
};

// Reply classes counted per stage; 421 apart from the other 4xx.
enum class ReplyClass : uint8_t { C2xx, C3xx, C4xx, C5xx, C421 };
inline constexpr int kReplyClassCount = 5;

struct StepStats {
  double offered = 0;  // sessions/s
  double seconds = 0;  // the step's scheduled length
  uint64_t started = 0, completed = 0, failed = 0, rcpts = 0;
  std::array<uint64_t, kFailureCount> failures{};
  std::array<std::array<uint64_t, kReplyClassCount>, kStageCount> replies{};
  // Per stage, latency from the session's intended start (the open-loop figure) and from when
  // the stage's command was sent (connect: from the connect call; greeting: from the
  // connection). Session: intended start to end, both histograms.
  std::array<Histogram, kStageCount> from_start, from_send;
  Histogram behind;             // how late each session started against its intended time
  std::vector<TimePoint> ends;  // of the completed sessions

  void add(const SessionOutcome& s);
  // Completed sessions per second: the middle 95% of the completions over the time they took
  // (an overloaded server's own rate; a few slow sessions do not count against it), or, with
  // under 40 completions, all of them over the step's length or their span when longer.
  double achieved() const;
  double achieved_rcpts() const;
  double error_share() const { return started ? double(failed) / started : 0; }
};

struct Knee {
  bool found = false;
  size_t step = 0;  // index of the first step past the knee
  // Every criterion that holds, joined by "; ": "achieved < 95% of offered", "session p99 >
  // 3x the first step's", "errors > 1% of sessions".
  std::string criterion;
  double rate = 0;                       // its offered rate
  std::optional<double> last_good_rate;  // the step before it, if any
};
// The first step where achieved < 95% of offered, or session p99 > 3x the first step's (and
// more than 1 ms above it), or
// more than 1% of sessions failed.
Knee find_knee(const std::vector<StepStats>& steps);
// A step after which more steps would only pile on: achieved below half the offered rate, or
// half the sessions failed.
bool fell_over(const StepStats& s);

}  // namespace mxp::bench
