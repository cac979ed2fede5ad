// Warm-up of a source IP: its share of every MX group's per-source budget climbs a ladder of
// levels (policy [warmup] shares) one step per `step` of clean time with at least
// `min_sessions` clean sessions, and drops a level on each block. The state is a small value
// that round-trips through text so that a later issue can persist it across runs.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "sched/clock.hpp"
#include "sched/policy.hpp"

namespace mxp::sched {

struct WarmupState {
  uint32_t level = 0;           // index into [warmup] shares
  Duration clean_for{};         // clean time spent at this level
  uint32_t clean_sessions = 0;  // clean sessions at this level
  bool operator==(const WarmupState&) const = default;
};

// "warmup/1 level=2 clean_ms=3600000 clean_sessions=12"
std::string to_string(const WarmupState& s);
std::optional<WarmupState> parse_warmup_state(std::string_view text);

class Warmup {
 public:
  // A source with no saved state starts cold (level 0) when warm-up is enabled, else fully warm.
  Warmup(const WarmupSettings& settings, std::optional<WarmupState> saved, TimePoint now);

  // The share of a group's per-source budget this source may use at now (climbs if due).
  double share(TimePoint now);
  // Bumped whenever share() may have changed, so that users can cache derived limits.
  uint64_t epoch() const { return epoch_; }

  void on_clean_session() { ++clean_sessions_; }
  void on_trouble(TimePoint now);  // a back-off reply: restart the clean clock at this level
  void on_block(TimePoint now);    // a block reply: down one level, restart the clock

  void set_settings(const WarmupSettings& settings, TimePoint now);
  WarmupState state(TimePoint now) const;
  uint32_t level() const { return level_; }

 private:
  void climb(TimePoint now);
  WarmupSettings s_;
  uint32_t level_ = 0;
  TimePoint since_{};  // start of the clean time at this level
  uint32_t clean_sessions_ = 0;
  uint64_t epoch_ = 0;
};

}  // namespace mxp::sched
