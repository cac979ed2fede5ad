// The cluster's Redis functions (functions.lua, library mxprobe_1): the command lines that load
// and call them, and their replies read back into plain structs. No I/O: the commands go through
// RedisClient (or any RESP client), so the limits are decided inside Redis, atomically, by
// Redis' own clock. Semantics (docs/cluster.md):
// - rate lease (GCRA): up to `want` tokens for a key at `rate` per second with `burst`, in one
//   call; the answer says how many were granted and when the next one fits. A node takes tokens
//   in small leases, so one Redis call pays for many connections or RCPTs.
// - concurrency slots: a sorted set per key of holders scored by their expiry; acquire up to a
//   capacity, renew while alive, release when done; a dead node's holds expire by themselves.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/redis_connection.hpp"
#include "core/expected.hpp"

namespace mxp::cluster::functions {

inline constexpr std::string_view kLibrary = "mxprobe_1";

// The Lua text (functions.lua, embedded at build time).
std::string_view library_code();
// FUNCTION LOAD REPLACE <code>: put it into ClientOptions::setup so every connection loads it.
std::vector<std::string> load_command();

struct RateLease {
  int64_t granted = 0;
  // How long until one more token fits after this grant (0: at once).
  Duration wait{0};
};
// FCALL mxp1_rate_lease 1 <key> <want> <rate> <burst>
std::vector<std::string> rate_lease(std::string_view key, int64_t want, double rate_per_second,
                                    int64_t burst);
core::Expected<RateLease, std::string> parse_rate_lease(const Reply& reply);

struct SlotGrant {
  bool granted = false;
  int64_t held = 0;  // slots held for the key after the call (all holders)
  // Refused: how long until the earliest hold expires if its holder does not renew it.
  Duration wait{0};
};
// FCALL mxp1_slot_acquire 1 <key> <holder> <capacity> <ttl_ms>
std::vector<std::string> slot_acquire(std::string_view key, std::string_view holder,
                                      int64_t capacity, Duration ttl);
core::Expected<SlotGrant, std::string> parse_slot_acquire(const Reply& reply);

// FCALL mxp1_slot_renew 1 <key> <ttl_ms> <holder>...: one bool per holder, false when its hold
// had expired (the slot may be another's now: stop using it).
std::vector<std::string> slot_renew(std::string_view key, Duration ttl,
                                    std::span<const std::string> holders);
core::Expected<std::vector<bool>, std::string> parse_slot_renew(const Reply& reply);

// FCALL mxp1_slot_release 1 <key> <holder>...: how many of them held a slot.
std::vector<std::string> slot_release(std::string_view key, std::span<const std::string> holders);
core::Expected<int64_t, std::string> parse_slot_release(const Reply& reply);

// One key of a node's politeness limiter in one call (mxp1_lease): its connection and RCPT
// buckets and its concurrency slots, scaled by the group's shared back-off factor.
struct LeaseKeys {
  std::string connect, rcpt, backoff, slots;
};
struct LeaseAsk {
  int64_t want_connects = 0;
  double connect_rate = 0;  // 0: unlimited (nothing taken, `want` granted)
  int64_t connect_burst = 1;
  int64_t want_rcpts = 0;
  double rcpt_rate = 0;
  int64_t rcpt_burst = 1;
  double own_factor = 1;  // the node's own AIMD rate factor
  int64_t capacity = 1;   // sessions (the policy's), scaled by the shared factor
  int64_t window = 1;     // the node's own AIMD window (caps the capacity)
  Duration ttl = std::chrono::seconds(10);
  std::vector<std::string> holders;  // slots wanted (empty: none asked)
};
struct Lease {
  int64_t connects = 0, rcpts = 0;
  Duration connect_wait{0}, rcpt_wait{0};  // until one more token fits (0: now)
  double factor = 1;                       // the group's shared back-off factor
  int64_t slots = 0;                       // the first `slots` holders hold a slot
  Duration slot_wait{0};                   // refused slots: until the earliest hold expires
};
std::vector<std::string> lease(const LeaseKeys& keys, const LeaseAsk& ask);
core::Expected<Lease, std::string> parse_lease(const Reply& reply);

// FCALL mxp1_backoff 1 <key> <decrease> <min_factor> <recover_per_second> <holdoff_ms>
struct Backoff {
  bool counted = false;  // outside the hold-off of the last decrease (by any node)
  double factor = 1;     // the shared factor after the call
};
std::vector<std::string> backoff(std::string_view key, double decrease, double min_factor,
                                 double recover_per_second, Duration holdoff);
core::Expected<Backoff, std::string> parse_backoff(const Reply& reply);

// What the cluster uses of one MX group now (mxp1_group_use), across every node.
struct GroupUse {
  int64_t slots = 0;  // sessions held (slot holds not yet expired)
  // How far each bucket's TAT runs ahead of now: the tokens taken beyond the refill, in time
  // (x rate = tokens; the bucket is empty at burst / rate). 0: idle.
  Duration connect_ahead{0}, rcpt_ahead{0};
  double factor = 1;  // the group's shared back-off factor
};
// FCALL_RO mxp1_group_use 0 <prefix> <group key>...: one GroupUse per group, in order.
std::vector<std::string> group_use(std::string_view prefix, std::span<const std::string> groups);
core::Expected<std::vector<GroupUse>, std::string> parse_group_use(const Reply& reply,
                                                                   size_t groups);

// The chunk queue's figures (mxp1_chunk_counts): entries on the stream, those claimed by a
// worker (the group's pending) and the group's consumers. Waiting = entries - claimed.
struct ChunkCounts {
  int64_t entries = 0, claimed = 0, consumers = 0;
};
// FCALL_RO mxp1_chunk_counts 1 <stream> <group>
std::vector<std::string> chunk_counts(std::string_view stream, std::string_view group);
core::Expected<ChunkCounts, std::string> parse_chunk_counts(const Reply& reply);

}  // namespace mxp::cluster::functions
