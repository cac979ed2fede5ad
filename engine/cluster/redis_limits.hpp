// RedisRemoteLimits: the remote servers' limits (sched::RemoteLimits) held across every node of a
// cluster. Per MX group and per recipient domain, the connection rate, the RCPT rate and the
// concurrent sessions are one budget in Redis for all nodes, not one per node; back-off is shared
// per MX group. Every call of the seam still answers at once from local state: per key the node
// holds a lease (a batch of connection and RCPT tokens, a few session slots) taken from Redis in
// one call (mxp1_lease, functions.lua) and refilled asynchronously through RedisClient; when a
// refill brings more, the notifier (set_notifier) is told from the loop, and the owner passes it
// on to Scheduler::remote_limits_changed (docs/cluster.md, "Global politeness").
//
// - Batches: a key asks for what the scheduler was refused plus what it consumed in about
//   `lease_span` (its consumption rate, measured), never more than `lease_span` of the global
//   rate nor the burst; it asks again before it runs dry (at a quarter of its last batch).
// - Slots: a session takes a slot the node holds; a slot is acquired in the same call as tokens,
//   renewed every `renew_every` for `slot_ttl` while held (one call per key), kept `slot_linger`
//   after its session for the next one, then released. A node that dies stops renewing: its
//   slots expire within `slot_ttl` and the other nodes take them.
// - Back-off: the node's own AIMD (window and rate factor) stays local, as in LocalRemoteLimits;
//   a back-off that counts also lowers the group's shared factor in Redis (mxp1_backoff), which
//   every node's next lease of that group reads: rates times min(own, shared), the session cap
//   times the shared one. The shared factor recovers by `rate_increase` per second.
// - Redis away: a refill fails or waits; nothing new is granted (the work pauses, nothing
//   fails), tokens and slots already held are used; refills are tried again every
//   `retry_every`, and state() says Down until one succeeds.
// - A domain whose session cap is no tighter than its group's and whose rates are unlimited (the
//   built-in policy's defaults) never touches Redis: its group's global cap bounds it already.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/redis_client.hpp"
#include "loop/loop.hpp"
#include "sched/remote_limits.hpp"

namespace mxp::cluster {

struct RedisLimitsOptions {
  std::string prefix = "mxp:";  // keys: <prefix>rl:{c,r,bo,s}:<g|d>:<key>
  std::string holder;           // this node's unique name for its slots (name and instance)
  Duration lease_span = std::chrono::seconds(1);  // a batch holds at most this much of the rate
  Duration slot_ttl = std::chrono::seconds(10);
  Duration renew_every = std::chrono::seconds(3);
  Duration slot_linger = std::chrono::seconds(1);
  // A slot held this long is given back at the end of a session instead of serving the next
  // one, so that a node with endless work for a group does not keep its slots from the others.
  Duration slot_max_hold = std::chrono::seconds(15);
  Duration retry_every = std::chrono::milliseconds(500);  // refills after a failure or a wait
  Duration command_timeout = std::chrono::seconds(2);
  uint32_t max_slots_per_call = 4;  // slots asked for in one lease
};

class RedisRemoteLimits final : public sched::RemoteLimits, private loop::TimerHandler {
 public:
  enum class State : uint8_t { Up, Down };
  struct Stats {
    uint64_t commands = 0;  // sent to Redis (leases, renewals, releases, back-offs)
    uint64_t leases = 0, lease_failures = 0;
    uint64_t connects_leased = 0, rcpts_leased = 0, slots_leased = 0, slots_lost = 0;
    // Leases that came back short of what they asked (tokens or slots): the cluster's budget
    // for the key was spent, and the node waits for it (docs/cluster.md, "Operating it").
    uint64_t lease_waits = 0;
    uint64_t backoffs_shared = 0;
  };
  using Notifier = std::function<void(sched::GroupId, sched::DomainId)>;

  RedisRemoteLimits(loop::Loop& loop, RedisClient& redis, RedisLimitsOptions options);
  // Releases the slots it holds (a node leaving cleanly); a node that dies leaves them to expire.
  ~RedisRemoteLimits() override;
  RedisRemoteLimits(const RedisRemoteLimits&) = delete;
  RedisRemoteLimits& operator=(const RedisRemoteLimits&) = delete;

  // Told (from the loop, never inside a call of the seam) when a lease brought more for a group
  // or a domain (the other kNone): the owner calls Scheduler::remote_limits_changed with them.
  void set_notifier(Notifier fn) { notify_ = std::move(fn); }
  State state() const { return state_; }
  const Stats& stats() const { return stats_; }

  // sched::RemoteLimits
  void configure_group(sched::GroupId g, std::string_view key, const sched::GroupSettings& s,
                       TimePoint now) override;
  void configure_domain(sched::DomainId d, std::string_view name, const sched::LevelLimits& l,
                        TimePoint now) override;
  void release_domain(sched::DomainId d) override;
  sched::Admission admit_group(sched::GroupId g, TimePoint now) const override;
  sched::Admission admit_domain(sched::DomainId d, TimePoint now) const override;
  uint32_t rcpt_available(sched::GroupId g, sched::DomainId d, TimePoint now) const override;
  void wants(sched::GroupId g, sched::DomainId d, const sched::Demand& more,
             TimePoint now) override;
  void session_opened(sched::GroupId g, sched::DomainId d, uint32_t rcpts, TimePoint now) override;
  void take_rcpts(sched::GroupId g, sched::DomainId d, uint32_t rcpts, TimePoint now) override;
  bool session_ended(sched::GroupId g, sched::DomainId d, bool clean, TimePoint now) override;
  bool backoff(sched::GroupId g, TimePoint now) override;
  sched::RemoteGroupView group_view(sched::GroupId g, TimePoint now) const override;

 private:
  // A group's or a domain's lease and what it is asked for.
  struct Entry {
    std::string key;  // "g:<group key>" or "d:<domain>"
    bool live = false, domain = false;
    // Policy (a domain: its own; a group: per_mx, with the AIMD below).
    sched::LevelLimits limits;
    // Global slots? A domain decides at its first wants() (its group's cap may imply its own).
    enum class Slots : uint8_t { Unknown, Global, Local } slots_mode = Slots::Global;
    // The lease held.
    uint32_t connects = 0, rcpts = 0;
    std::vector<std::string> slots;     // holders held in Redis
    std::vector<TimePoint> slot_since;  // when each was acquired
    uint32_t sessions = 0;              // open here (each uses a slot when Global)
    TimePoint idle_since{};             // a slot was free since
    // Refill.
    bool in_flight = false, wanted = false, notify = false, watched = false;
    sched::Demand demand;
    TimePoint retry_at{};  // no refill before (Redis said wait, or it failed)
    uint32_t last_batch_c = 0, last_batch_r = 0;
    uint32_t used_c = 0, used_r = 0;  // since the last lease
    TimePoint last_lease{};
    double rate_c = 0, rate_r = 0;  // measured consumption, per second
    double shared = 1;              // the group's shared factor, as last read
    uint64_t gen = 0;               // bumped on release: late replies are dropped
    // A group's AIMD (unused for a domain).
    sched::Aimd aimd;
    sched::BackoffSettings backoff;
  };
  struct Ref {
    bool domain;
    uint32_t id;
  };
  struct Asked {  // what a lease asked for (its reply is read against it)
    int64_t connects = 0, rcpts = 0;
    double connect_rate = 0, rcpt_rate = 0;  // with the node's own factor
    std::vector<std::string> holders;
  };

  Entry& entry(Ref r) { return r.domain ? domains_[r.id] : groups_[r.id]; }
  const Entry& entry(Ref r) const { return r.domain ? domains_[r.id] : groups_[r.id]; }
  uint32_t cap(const Entry& e) const;  // sessions allowed now (AIMD window, shared factor)
  bool connects_limited(const Entry& e) const { return e.limits.connect.rate > 0; }
  bool rcpts_limited(const Entry& e) const { return e.limits.rcpt.rate > 0; }
  double factor(const Entry& e) const;  // min(own AIMD factor, shared)
  sched::Admission admit(const Entry& e) const;
  uint32_t rcpts_of(const Entry& e) const;
  void want(Ref r, const sched::Demand& more, TimePoint now);
  void maybe_prefetch(Ref r, TimePoint now);
  void refill(Ref r, TimePoint now);
  void on_lease(Ref r, uint64_t gen, const std::string& slot_key, const Asked& asked, Result&& res);
  void took(Entry& e, uint32_t connects, uint32_t rcpts);
  void watch(Ref r);
  void on_timer(loop::TimerId id, uint64_t cookie) override;
  void tick(TimePoint now);
  void renew(Ref r);
  void release_slots(Entry& e, size_t keep);
  void send(const std::vector<std::string>& argv, Done done);
  void failed();
  std::string redis_key(const char* kind, const Entry& e) const;

  loop::Loop& loop_;
  RedisClient& redis_;
  RedisLimitsOptions opts_;
  Notifier notify_;
  State state_ = State::Up;
  Stats stats_;
  std::vector<Entry> groups_, domains_;
  std::vector<Ref> watched_;  // entries with slots, a refill pending or waiting
  uint64_t next_holder_ = 0;
  TimePoint last_renew_{}, timer_at_{};
  loop::TimerId timer_{};
  bool timer_armed_ = false;
  std::mt19937_64 rng_{std::random_device{}()};
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // replies after destruction
};

}  // namespace mxp::cluster
