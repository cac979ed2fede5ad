// What the farm counts, for politeness tests: connections, concurrency, connection bursts,
// commands, replies, DATA and greylisting per (MX, client IP), RCPTs and rejections per session,
// per-second timelines, plus RCPTs per recipient. Counting is a few integer updates per event;
// the JSON report is built only on demand (exit, SIGUSR1).
#pragma once

#include <algorithm>
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

// Concurrency, burst and per-session numbers, kept at every level (total, client, MX,
// MX x client) because peaks cannot be summed from the levels below.
struct Level {
  uint64_t current = 0;
  uint64_t peak_concurrent = 0;
  uint64_t peak_per_second = 0;
  uint64_t peak_rcpts = 0;            // RCPT commands in one session
  uint64_t peak_rcpt_rejections = 0;  // RCPTs answered >= 400 in one session
  Window second;
  void open(uint64_t now);
  void close() { --current; }
};

// Events per whole second of uptime (index = seconds since the farm started), kept for the
// total, each client IP and each MX. Entries beyond kCap go to the last one, so the sums stay
// equal to the counters.
struct Timeline {
  static constexpr size_t kCap = 3600;
  std::vector<uint64_t> connections;
  std::vector<uint64_t> limit_rejects;
  static void count(std::vector<uint64_t>& v, size_t sec) {
    if (sec >= kCap) sec = kCap - 1;
    if (sec >= v.size()) v.resize(sec + 1);
    ++v[sec];
  }
};

// Counters of one client IP at one MX host; the per-client, per-MX and total figures of the
// report are sums of these.
struct PairStats {
  Level level;
  Window rate;  // for the host's connection-rate limit
  uint64_t connections = 0;
  uint64_t limit_rejects = 0;      // connections answered 421 by a connection limit
  uint64_t data = 0;               // DATA commands received
  uint64_t broken_replies = 0;     // garbage / endless / over-long replies sent
  uint64_t greylist_triplets = 0;  // triplets seen for the first time (and greylisted)
  uint64_t greylist_passed = 0;    // RCPTs of a known triplet once its delay had passed
  uint64_t greylist_early = 0;     // RCPTs of a known triplet refused: delay not over yet
  uint64_t tls_handshakes = 0;     // STARTTLS handshakes completed
  uint64_t tls_failures = 0;       // STARTTLS handshakes that failed
  uint64_t tls_resumed = 0;        // of tls_handshakes: resumed with a session ticket
  std::array<uint64_t, kCmdCount> commands{};
  std::vector<std::pair<uint16_t, uint64_t>> replies;  // code -> count, few distinct codes
  // EHLO/HELO names the client gave -> count (the first kMaxHelo distinct names; more count
  // under "(more)").
  static constexpr size_t kMaxHelo = 32;
  std::vector<std::pair<std::string, uint64_t>> helo_names;
  void helo(std::string_view name);
  // The levels this pair counts in (itself, its MX, its client, the total) and the timelines
  // (MX, client, total): set once when the pair is created, so that no event needs a lookup.
  std::array<Level*, 4> levels{};
  std::array<Timeline*, 3> timelines{};
  void reply(int code);
  // The session has now received `n` RCPTs / had `n` of them refused.
  void session_rcpts(uint64_t n) {
    for (Level* l : levels)
      l->peak_rcpts = std::max(l->peak_rcpts, n);
  }
  void session_rcpt_rejections(uint64_t n) {
    for (Level* l : levels)
      l->peak_rcpt_rejections = std::max(l->peak_rcpt_rejections, n);
  }
};

struct HostStats {
  Level level;
  Timeline timeline;
  std::unordered_map<uint32_t, PairStats> clients;
};

struct ClientStats {
  Level level;
  Timeline timeline;
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

  // Timestamps given to open() and limit_reject() are uv_now() values; the timelines count
  // whole seconds since `now` here.
  void start(uint64_t now) { epoch_ = now; }
  // A new connection from `ip` to host `h`; returns its pair counters.
  PairStats& open(int h, uint32_t ip, uint64_t now);
  void close(PairStats& p);
  // The connection just opened was answered 421 by a connection limit.
  void limit_reject(PairStats& p, uint64_t now);
  // An RCPT for `addr` (already lower case) of `domain` (lower case, may be empty).
  void rcpt(std::string_view addr, std::string_view domain);
  // Transactions for the report (run --transactions N): a MAIL accepted at host `h` from `ip`
  // opens one (its index, or -1 once N are kept); every RCPT received inside it is added.
  void keep_transactions(size_t n) { txn_cap_ = n; }
  int64_t transaction(int h, uint32_t ip, std::string_view mail_from);
  void transaction_rcpt(int64_t t, std::string_view addr) {
    if (t >= 0) txns_[static_cast<size_t>(t)].rcpts.emplace_back(addr);
  }

  nlohmann::json report(const Scenario& sc, uint64_t uptime_ms) const;

 private:
  size_t second(uint64_t now) const { return now > epoch_ ? (now - epoch_) / 1000 : 0; }

  uint64_t epoch_ = 0;
  Level total_;
  Timeline total_timeline_;
  std::unordered_map<uint32_t, ClientStats> clients_;  // node-based: pairs point into it
  std::vector<HostStats> hosts_;
  CountMap rcpt_by_address_;
  CountMap rcpt_by_domain_;
  size_t rcpt_cap_;
  bool rcpt_truncated_ = false;
  struct Transaction {
    int host = 0;
    uint32_t client = 0;
    std::string mail_from;
    std::vector<std::string> rcpts;
  };
  std::vector<Transaction> txns_;
  size_t txn_cap_ = 0;
  bool txn_truncated_ = false;
};

}  // namespace mxfarm
