// Health of a pool of proxies, sans-I/O: which proxies are in rotation, when a proxy that went
// down is checked again (a back-off from `first` doubling up to `max`), and which checks the
// owner should run now. The owner runs the checks (connect + SOCKS5 greeting and
// authentication) on its loop and reports back; it owns the timers, this owns the decisions.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.hpp"

namespace mxp::proxy {

using Clock = core::Clock;
using TimePoint = Clock::time_point;

struct HealthSettings {
  Clock::duration first = std::chrono::seconds(1);  // first re-check after going down
  Clock::duration max = std::chrono::seconds(30);   // re-checks at most this far apart
};

class Health {
 public:
  enum class Change : uint8_t { None, WentDown, CameUp };

  explicit Health(size_t proxies, HealthSettings settings = {});

  bool up(size_t i) const { return proxies_[i].up; }
  size_t up_count() const;
  size_t size() const { return proxies_.size(); }
  // The latest failure, for logs ("auth_refused: ..."); never holds credentials.
  const std::string& last_error(size_t i) const { return proxies_[i].last_error; }
  uint64_t failures(size_t i) const { return proxies_[i].failures; }
  uint64_t checks(size_t i) const { return proxies_[i].checks; }

  // A session found the proxy unusable (unreachable, closed, refused the handshake or the
  // credentials): out of rotation at once, re-checked from `first` on.
  Change on_failure(size_t i, TimePoint now, std::string why);
  // A session's doubt (its tunnel closed in the middle of SMTP: the proxy or the server?): the
  // proxy is checked as soon as possible; its verdict goes through on_check.
  void want_check(size_t i);
  // Checks to start now (down and due, or wanted); each is marked running until on_check.
  void due(TimePoint now, std::vector<size_t>& out);
  // A check's result: up again, or down with the next check further away.
  Change on_check(size_t i, bool ok, TimePoint now, std::string why);
  bool checking(size_t i) const { return proxies_[i].checking; }
  // When due() has work next, if no new event comes; nullopt: nothing waits on time.
  std::optional<TimePoint> next_deadline() const;

 private:
  struct Proxy {
    bool up = true;
    bool checking = false, wanted = false;
    TimePoint next_check{};
    Clock::duration backoff{};
    std::string last_error;
    uint64_t failures = 0, checks = 0;
  };
  Change go_down(Proxy& p, TimePoint now, std::string why);

  std::vector<Proxy> proxies_;
  HealthSettings settings_;
};

}  // namespace mxp::proxy
