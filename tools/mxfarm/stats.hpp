// What the farm counts, for politeness tests: connections, concurrency, connection bursts,
// commands, replies and DATA per (MX, client IP), plus RCPTs per recipient. Counting is a few
// integer updates per event; the JSON report is built only on demand (exit, SIGUSR1).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "scenario.hpp"

namespace mxfarm {

// Timestamps (ms) of recent events in a growable ring: how many fell in the last `span` ms.
class Window {
 public:
  // Records an event at `now` and returns the number of events in (now - span, now].
  size_t add(uint64_t now, uint64_t span);

 private:
  std::vector<uint64_t> ring_;
  size_t head_ = 0;  // oldest
  size_t size_ = 0;
};

// Concurrency and burst numbers, kept at every level (total, client, MX, MX x client) because
// peaks cannot be summed from the levels below.
struct Level {
  uint64_t current = 0;
  uint64_t peak_concurrent = 0;
  uint64_t peak_per_second = 0;
  Window second;
  void open(uint64_t now);
  void close() { --current; }
};

// Counters of one client IP at one MX host; the per-client, per-MX and total figures of the
// report are sums of these.
struct PairStats {
  Level level;
  Window rate;  // for the host's connection-rate limit
  uint64_t connections = 0;
  uint64_t limit_rejects = 0;   // connections answered 421 by a connection limit
  uint64_t data = 0;            // DATA commands received
  uint64_t broken_replies = 0;  // garbage / endless / over-long replies sent
  std::array<uint64_t, kCmdCount> commands{};
  std::vector<std::pair<uint16_t, uint64_t>> replies;  // code -> count, few distinct codes
  void reply(int code);
};

struct HostStats {
  Level level;
  std::unordered_map<uint32_t, PairStats> clients;
};

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using CountMap = std::unordered_map<std::string, uint64_t, StringHash, std::equal_to<>>;

class Stats {
 public:
  explicit Stats(size_t hosts, size_t rcpt_map_cap = 1'000'000)
      : hosts_(hosts), rcpt_cap_(rcpt_map_cap) {}

  // A new connection from `ip` to host `h`; returns its pair counters.
  PairStats& open(int h, uint32_t ip, uint64_t now);
  void close(int h, uint32_t ip, PairStats& p);
  // An RCPT for `addr` (already lower case) of `domain` (lower case, may be empty).
  void rcpt(std::string_view addr, std::string_view domain);

  nlohmann::json report(const Scenario& sc, uint64_t uptime_ms) const;

 private:
  Level total_;
  std::unordered_map<uint32_t, Level> clients_;
  std::vector<HostStats> hosts_;
  CountMap rcpt_by_address_;
  CountMap rcpt_by_domain_;
  size_t rcpt_cap_;
  bool rcpt_truncated_ = false;
};

}  // namespace mxfarm
