// The limits that belong to the remote side of a session, behind one seam: per MX group the
// session cap (with its AIMD window), the connection and RCPT token buckets and the AIMD back-off
// itself; per recipient domain the session cap and its connection and RCPT buckets. The scheduler
// asks a RemoteLimits before it grants a session and tells it what it took; the limits of our
// own side (per source IP x MX group, warm-up, blocks, the global cap) and all the queueing stay
// in the scheduler. LocalRemoteLimits, the default, keeps them in this process. A cluster of
// nodes that share one budget per MX group and domain implements the same calls over a shared
// store, holding a local lease (a batch of tokens, a few sessions) so that every answer still
// comes from local state (docs/architecture.md, "Seams").
//
// The contract, for any implementation:
//   - Sans-I/O and non-blocking: every call answers at once from local state and never calls
//     back into the scheduler. A lease that runs low is refilled by the implementation's owner;
//     when more has arrived, the owner calls Scheduler::remote_limits_changed() from the loop.
//   - A refusal says when to ask again: at a time (tokens refill), or after an event (a session
//     of that group or domain ends, or remote_limits_changed()). Asking early is harmless; a
//     refusal must not leave the scheduler waiting for an event that never comes.
//   - session_opened() and take_rcpts() follow an admission and rcpt_available() of the same
//     decision and never take more than they allowed, so they cannot fail.
//   - Ids are the scheduler's dense ids; configure_*() names them with keys that are the same on
//     every node ("provider:NAME" or the MX host for a group, the domain name for a domain).
#pragma once

#include <algorithm>
#include <cstdint>
#include <string_view>
#include <vector>

#include "sched/aimd.hpp"
#include "sched/clock.hpp"
#include "sched/ids.hpp"
#include "sched/policy.hpp"
#include "sched/token_bucket.hpp"

namespace mxp::sched {

// An answer to "may a session open now?" for an MX group or a recipient domain (16 bytes: it
// comes back in registers, on every decision).
struct Admission {
  enum class Kind : uint8_t {
    Open,   // a session may open now, with one connection and at least one RCPT token
    Until,  // refused: ask again at `until` (tokens refill)
    Event,  // refused: ask again after one of its sessions ends or remote_limits_changed()
  };
  Kind kind = Kind::Open;
  TimePoint until{};
  bool open() const { return kind == Kind::Open; }
  static Admission until_time(TimePoint t) { return {Kind::Until, t}; }
  static Admission event() { return {Kind::Event, {}}; }
};

// What the scheduler wanted and was not given (a hint for an implementation that fetches leases).
struct Demand {
  uint32_t sessions = 0, connects = 0, rcpts = 0;
};

// The remote limits of an MX group as they stand (GroupView carries them to logs and metrics).
struct RemoteGroupView {
  uint32_t session_limit = 0;  // min(per_mx.sessions, AIMD window)
  AimdView aimd;
  double connect_rate = 0, rcpt_rate = 0;  // effective, after AIMD (0 = unlimited)
  // Tokens in the group's buckets now, and their bursts; all 0 for an unlimited bucket.
  uint32_t connect_tokens = 0, connect_burst = 0, rcpt_tokens = 0, rcpt_burst = 0;
};

class RemoteLimits {
 public:
  virtual ~RemoteLimits() = default;

  // --- Registry ---
  // Group g's settings (per_mx, backoff): a new group, or a policy swap. Sessions counted and
  // tokens held are kept across a swap, so a reload never hands out a fresh burst.
  virtual void configure_group(GroupId g, std::string_view key, const GroupSettings& s,
                               TimePoint now) = 0;
  // Domain d's per_domain limits: a new domain, a new MX group (provider overrides) or a swap.
  virtual void configure_domain(DomainId d, std::string_view name, const LevelLimits& l,
                                TimePoint now) = 0;
  // Domain d is idle (no session open) and forgotten; its id comes back for another name, whose
  // buckets start full.
  virtual void release_domain(DomainId d) = 0;

  // --- Decisions (from local state) ---
  // The group's session cap and buckets; then, once a source IP and a domain are picked, the
  // domain's.
  virtual Admission admit_group(GroupId g, TimePoint now) const = 0;
  virtual Admission admit_domain(DomainId d, TimePoint now) const = 0;
  // RCPT tokens that the group and the domain both have now (TokenBucket::kUnlimited: no limit).
  virtual uint32_t rcpt_available(GroupId g, DomainId d, TimePoint now) const = 0;
  // The scheduler was refused (an admission: d is kNone when the group refused before a domain
  // was picked) or was given fewer RCPT tokens than a session's budget. An implementation that
  // holds leases fetches more for that key; the local one refills with time and ignores it.
  virtual void wants(GroupId g, DomainId d, const Demand& more, TimePoint now) {
    (void)g, (void)d, (void)more, (void)now;
  }

  // --- What was taken (one call per event: each is a virtual call on every decision) ---
  // A session for domain d to group g opened: it took one connection token and rcpts RCPT tokens
  // from both, and counts against both session caps until session_ended() with the same ids.
  virtual void session_opened(GroupId g, DomainId d, uint32_t rcpts, TimePoint now) = 0;
  // An open session took rcpts more RCPT tokens from both (a refill).
  virtual void take_rcpts(GroupId g, DomainId d, uint32_t rcpts, TimePoint now) = 0;
  // clean: the session decided a recipient and saw no back-off signal (AIMD grows). True when
  // that brought the group's rates back to the policy's (the scheduler reports it: Recovered).
  virtual bool session_ended(GroupId g, DomainId d, bool clean, TimePoint now) = 0;
  // A back-off signal from a session to g (a 421, a 4.7.x rate limit, a refused or dropped
  // connection). True when it counted (outside the hold-off): the group's window and rates
  // dropped (the scheduler reports it: BackOff).
  virtual bool backoff(GroupId g, TimePoint now) = 0;

  // --- State ---
  virtual RemoteGroupView group_view(GroupId g, TimePoint now) const = 0;
};

// Today's remote limits, in this process: per MX group a session count, two token buckets and the
// AIMD state; per domain a session count and two token buckets. Vectors indexed by id; what every
// decision reads (counts, caps, buckets) is one cache line per group and per domain, the AIMD
// state and the policy's numbers, needed only on feedback, are kept apart.
class LocalRemoteLimits final : public RemoteLimits {
 public:
  void configure_group(GroupId g, std::string_view key, const GroupSettings& s,
                       TimePoint now) override;
  void configure_domain(DomainId d, std::string_view name, const LevelLimits& l,
                        TimePoint now) override;
  void release_domain(DomainId d) override;
  Admission admit_group(GroupId g, TimePoint now) const override;
  Admission admit_domain(DomainId d, TimePoint now) const override;
  uint32_t rcpt_available(GroupId g, DomainId d, TimePoint now) const override;
  void session_opened(GroupId g, DomainId d, uint32_t rcpts, TimePoint now) override;
  void take_rcpts(GroupId g, DomainId d, uint32_t rcpts, TimePoint now) override;
  bool session_ended(GroupId g, DomainId d, bool clean, TimePoint now) override;
  bool backoff(GroupId g, TimePoint now) override;
  RemoteGroupView group_view(GroupId g, TimePoint now) const override;

 private:
  struct alignas(64) Counted {  // an MX group or a domain: sessions open, the cap, the buckets
    uint32_t sessions = 0, session_limit = 0;
    TokenBucket connect, rcpt;
  };
  struct GroupState {  // a group's AIMD state and the per_mx numbers it scales
    LevelLimits mx;
    Aimd aimd;
  };
  // After the AIMD state or the settings changed: the group's cap and bucket rates.
  void retune(GroupId g, TimePoint now);
  std::vector<Counted> groups_, domains_;
  std::vector<GroupState> group_state_;
};

}  // namespace mxp::sched
