// Warm-up ladder arithmetic and the state's text form.
#include "sched/warmup.hpp"

#include <algorithm>
#include <charconv>

namespace mxp::sched {

std::string to_string(const WarmupState& s) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(s.clean_for).count();
  return "warmup/1 level=" + std::to_string(s.level) + " clean_ms=" + std::to_string(ms) +
         " clean_sessions=" + std::to_string(s.clean_sessions);
}

std::optional<WarmupState> parse_warmup_state(std::string_view t) {
  constexpr std::string_view kMagic = "warmup/1";
  if (t.substr(0, kMagic.size()) != kMagic) return std::nullopt;
  t.remove_prefix(kMagic.size());
  WarmupState s;
  bool have[3] = {false, false, false};
  while (!t.empty()) {
    if (t.front() != ' ') return std::nullopt;
    t.remove_prefix(1);
    const size_t eq = t.find('=');
    if (eq == std::string_view::npos) return std::nullopt;
    const std::string_view name = t.substr(0, eq);
    t.remove_prefix(eq + 1);
    const size_t end = std::min(t.find(' '), t.size());
    uint64_t v = 0;
    auto [p, ec] = std::from_chars(t.data(), t.data() + end, v);
    if (ec != std::errc() || p != t.data() + end) return std::nullopt;
    t.remove_prefix(end);
    if (name == "level" && v <= UINT32_MAX) {
      s.level = static_cast<uint32_t>(v), have[0] = true;
    } else if (name == "clean_ms") {
      s.clean_for = std::chrono::milliseconds(v), have[1] = true;
    } else if (name == "clean_sessions" && v <= UINT32_MAX) {
      s.clean_sessions = static_cast<uint32_t>(v), have[2] = true;
    } else {
      return std::nullopt;
    }
  }
  if (!have[0] || !have[1] || !have[2]) return std::nullopt;
  return s;
}

Warmup::Warmup(const WarmupSettings& settings, std::optional<WarmupState> saved, TimePoint now)
    : s_(settings), since_(now) {
  const uint32_t top = s_.shares.empty() ? 0 : static_cast<uint32_t>(s_.shares.size() - 1);
  if (saved) {
    level_ = std::min(saved->level, top);
    since_ = now - saved->clean_for;
    clean_sessions_ = saved->clean_sessions;
  } else {
    level_ = s_.enabled ? 0 : top;
  }
}

void Warmup::climb(TimePoint now) {
  if (s_.shares.empty() || level_ + 1 >= s_.shares.size()) return;
  if (now - since_ >= s_.step && clean_sessions_ >= s_.min_sessions) {
    ++level_;
    since_ = now;
    clean_sessions_ = 0;
    ++epoch_;
  }
}

double Warmup::share(TimePoint now) {
  if (!s_.enabled || s_.shares.empty()) return 1.0;
  climb(now);
  return s_.shares[level_];
}

void Warmup::on_trouble(TimePoint now) {
  since_ = now;
  clean_sessions_ = 0;
}

void Warmup::on_block(TimePoint now) {
  if (level_ > 0) --level_;
  since_ = now;
  clean_sessions_ = 0;
  ++epoch_;
}

void Warmup::set_settings(const WarmupSettings& settings, TimePoint now) {
  (void)now;
  s_ = settings;
  if (!s_.shares.empty()) level_ = std::min<uint32_t>(level_, s_.shares.size() - 1);
  ++epoch_;
}

WarmupState Warmup::state(TimePoint now) const {
  return {level_, std::chrono::duration_cast<Duration>(now - since_), clean_sessions_};
}

}  // namespace mxp::sched
