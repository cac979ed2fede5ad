// The scheduler: decides which session the pipeline may open next (MX group, recipient domain,
// source IP, up to K recipients), enforcing token buckets and concurrency caps per (source IP,
// MX group) plus a global session cap, and asking a RemoteLimits (remote_limits.hpp: today's
// buckets, caps and AIMD per MX group and per recipient domain) for the remote side; serves MX
// groups by deficit round-robin so that a slow, tarpitting or token-less group never holds up
// others; keeps not-before times (greylisting retries, token refills) in a timer wheel; retries
// greylisted addresses from the same source IP; backs off an MX group AIMD-style; rotates source
// IPs away from blocks and warms new ones up. Sans-I/O: no sockets, no timers, no clock. The
// pipeline feeds it events with `now`, and arms one loop timer at next_deadline().
//
// Typical use by the pipeline:
//   d = s.domain("example.com");  s.enqueue(id, d, now);          // at submit
//   s.set_domain_group(d, s.group_for_mx(target.host), now);      // once DNS answered
//   while (s.next_ready(now, grant)) open a session (grant.source, grant.items)
//   per recipient decided:  disp = s.on_outcome(grant.session, item, classification, now)
//     Final -> emit it; Retry -> the scheduler keeps it and hands it out again later
//   session over:  s.on_session_ended(grant.session, now);  then next_ready again
//   while (auto f = s.pop_final()) emit f (e.g. every source IP blocked for a group)
//   arm the loop timer at s.next_deadline(); on expiry call next_ready(now)
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "sched/aimd.hpp"
#include "sched/clock.hpp"
#include "sched/ids.hpp"
#include "sched/policy.hpp"
#include "sched/remote_limits.hpp"
#include "sched/timer_wheel.hpp"
#include "sched/token_bucket.hpp"
#include "sched/warmup.hpp"
#include "verdict/classify.hpp"

namespace mxp::sched {

struct ItemId {
  uint32_t index = kNone;
  uint32_t gen = 0;
  bool operator==(const ItemId&) const = default;
};
struct SessionId {
  uint32_t index = kNone;
  uint32_t gen = 0;
  bool operator==(const SessionId&) const = default;
};

// One address handed out in a grant. key is the pipeline's own id, given to enqueue().
struct ItemRef {
  ItemId id;
  uint64_t key = 0;
  uint32_t tries = 0;  // tries before this one
};

// "You may open a session to group G (for domain D's current MX) from source S with these
// recipients now." Connection and RCPT tokens are already taken; the session counts as open.
struct Grant {
  SessionId session;
  GroupId group = kNone;
  DomainId domain = kNone;
  SourceId source = kNone;
  std::vector<ItemRef> items;
};

// What became of an address after an outcome.
struct Disposition {
  enum class Kind : uint8_t {
    Final,    // emit `result`; the scheduler forgot the item
    Retry,    // the scheduler keeps it; it comes back in a grant at or after not_before
    Invalid,  // stale ids: nothing was done
  };
  Kind kind = Kind::Invalid;
  verdict::Classification result;
  uint32_t tries = 0;       // tries made so far, this one included
  TimePoint not_before{};   // Retry: not before this
  SourceId pinned = kNone;  // Retry: only from this source (greylisting)
};

// An address the scheduler finished on its own (every source IP blocked for its group).
struct Final {
  uint64_t key = 0;
  verdict::Classification result;
  uint32_t tries = 0;
};

struct SourceSpec {
  std::string name;                   // the IP as text, for logs and persistence
  std::optional<WarmupState> warmup;  // saved state; none: cold if warm-up is enabled
};

enum class SessionEnd : uint8_t {
  Normal,         // the session ran (whatever the replies were)
  ConnectFailed,  // refused / unreachable: negative feedback for the MX group
  // The source failed, not the server (a SOCKS5 proxy died or refused us): no feedback for the
  // MX group (AIMD), none for the source's warm-up; in-flight addresses go back untouched.
  SourceFailed,
};

// Visible state of an MX group (logs now, metrics later).
struct GroupView {
  std::string name;
  bool provider = false;       // a [provider.NAME] group rather than a single MX host
  uint32_t sessions = 0;       // open now
  uint32_t session_limit = 0;  // min(per_mx.sessions, AIMD window)
  AimdView aimd;
  double connect_rate = 0, rcpt_rate = 0;  // effective, after AIMD (0 = unlimited)
  // Tokens in the group's buckets now, and their bursts; all 0 for an unlimited bucket.
  uint32_t connect_tokens = 0, connect_burst = 0, rcpt_tokens = 0, rcpt_burst = 0;
  uint64_t ready = 0;   // addresses queued and due
  bool active = false;  // in the round-robin now
  bool parked_on_timer = false, parked_on_sessions = false;
  int64_t deficit = 0;
};

struct SourceGroupView {
  uint32_t sessions = 0, session_limit = 0;
  bool blocked = false;
  TimePoint blocked_until{};
  double share = 1;  // warm-up share
  double connect_rate = 0, rcpt_rate = 0;
};

// Something an operator wants to hear about (logs now, WebSocket events later).
struct SchedEvent {
  enum class Kind : uint8_t {
    BackOff,    // an MX group's window and rate dropped (a counted back-off signal)
    Recovered,  // the group's rate factor climbed back to 1
    Blocked,    // a source IP was blocked by the group, resting until `until`
  };
  Kind kind = Kind::BackOff;
  GroupId group = kNone;
  SourceId source = kNone;
  AimdView aimd;       // BackOff, Recovered: the state after the change
  TimePoint until{};   // Blocked
  std::string reason;  // Blocked: why (the verdict reason), BackOff: what signalled
};

struct SchedulerStats {
  uint64_t ready = 0, waiting = 0, in_flight = 0;  // addresses by state
  uint32_t sessions = 0;                           // open now
  uint64_t grants = 0, refills = 0, finals = 0, retries = 0, greylist_retries = 0;
  uint64_t rotations = 0;  // addresses moved off a blocked source IP
  uint64_t blocks = 0, backoffs = 0;
  size_t groups = 0, domains = 0, timers = 0;
};

// Addresses waiting for their not-before time (retries): how many, and when the first and the
// last of them are due (meaningless when count is 0).
struct WaitingSpan {
  uint64_t count = 0;
  TimePoint first{}, last{};
};

class Scheduler {
 public:
  // sources: the pool, in order (SourceId = index); empty means one unnamed source (the
  // system's choice of address). At most kMaxSources.
  // limits: the remote limits (per MX group, per domain); none: a LocalRemoteLimits.
  Scheduler(std::shared_ptr<const Policy> policy, std::vector<SourceSpec> sources, TimePoint now,
            std::unique_ptr<RemoteLimits> limits = nullptr);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // --- Registries (interned names; group ids are never reused, domain ids after release) ---
  // The MX group of an MX host: its provider's group when a [provider] pattern matches, else
  // the host's own group. Cached per host name.
  GroupId group_for_mx(std::string_view mx_host);
  DomainId domain(std::string_view name);
  // Forgets an idle domain (nothing queued, waiting, in flight or open): its id and memory are
  // reused by a later domain(), and its buckets start full if the name comes back. Returns
  // false, doing nothing, when the domain still has work.
  bool release_domain(DomainId d);
  // The domain's work goes to this group from now on (DNS answered, or MX fail-over). Items
  // already queued move along; a domain without a group is never scheduled.
  void set_domain_group(DomainId d, GroupId g, TimePoint now);
  GroupId domain_group(DomainId d) const;
  const std::string& group_name(GroupId g) const;
  const std::string& domain_name(DomainId d) const;
  const std::string& source_name(SourceId s) const;
  size_t source_count() const;
  const GroupSettings& group_settings(GroupId g) const;
  const DomainSettings& domain_settings(DomainId d) const;  // timeouts, catch-all probe...

  // --- Work ---
  // Queues an address (key: the pipeline's id) for a domain, due at not_before (default now);
  // front: ahead of the domain's queue (the catch-all probe, which must go first).
  ItemId enqueue(uint64_t key, DomainId d, TimePoint now, TimePoint not_before = TimePoint{},
                 bool front = false);
  // The next session to open, if any is allowed now; fills out (reusing its vector).
  bool next_ready(TimePoint now, Grant& out);
  // More recipients for an open session (same domain and source), within the session's
  // recipient and rejection budgets and the RCPT buckets. Appends to out; returns how many.
  size_t refill(SessionId s, TimePoint now, std::vector<ItemRef>& out);
  // One recipient of a session was decided.
  Disposition on_outcome(SessionId s, ItemId item, const verdict::Classification& c, TimePoint now);
  // Gives an in-flight address back untouched (never sent, MX fail-over): due now, front of
  // its domain's queue, same pin; no try counted.
  bool requeue(ItemId item, TimePoint now);
  // Forgets an address whatever its state (the pipeline finished it itself).
  bool remove(ItemId item);
  // A source that cannot be used at all (a SOCKS5 proxy that is unreachable or refuses us):
  // no grant uses it until it is up again, addresses pinned to it lose the pin, and an MX
  // group for which every source is down or blocked ends its due addresses with `why` (the
  // latest one given). Up again: the groups are looked at again.
  void set_source_down(SourceId s, bool down, TimePoint now, const verdict::Classification& why);
  bool source_down(SourceId s) const { return s < 64 && (down_mask_ & (uint64_t{1} << s)); }
  // The address is queued (due or waiting for its time), not in a session.
  bool queued(ItemId item) const;
  // Removes every queued (due or waiting) address of a domain, appending their keys (a domain
  // whose DNS failed or whose every MX failed).
  size_t drain_domain(DomainId d, std::vector<uint64_t>& keys);
  // The session is over; addresses still in flight on it are requeued as by requeue().
  void on_session_ended(SessionId s, TimePoint now, SessionEnd how = SessionEnd::Normal);
  std::optional<Final> pop_final();
  // Events since the last call, oldest first (bounded: the oldest are dropped past 1,000).
  std::optional<SchedEvent> pop_event();

  // Moves time forward (next_ready does it too): due retries become ready, parked groups and
  // domains whose tokens refilled come back.
  void advance(TimePoint now);
  // When to call next_ready again at the latest, if nothing else happens (a lower bound: it may
  // wake the caller early, never late). nullopt: nothing is waiting on time.
  std::optional<TimePoint> next_deadline() const;

  // --- Policy ---
  // Swaps the policy (SIGHUP). Queued and in-flight work is kept; limits are re-resolved and
  // every parked group and domain is looked at again. Groups already named keep their name;
  // new group_for_mx() lookups use the new patterns.
  void set_policy(std::shared_ptr<const Policy> policy, TimePoint now);
  const Policy& policy() const { return *policy_; }
  // A cap on sessions at once below the policy's, from our own resources (file descriptors:
  // docs/usage.md, "Open-file limit"); 0: none. Kept across policy swaps.
  void set_session_cap(uint32_t cap) { session_cap_ = cap; }
  uint32_t session_cap() const { return session_cap_; }
  // Sessions at once, all groups: the policy's max_sessions, or the cap when lower.
  uint32_t max_sessions() const {
    return session_cap_ ? std::min(session_cap_, policy_->max_sessions()) : policy_->max_sessions();
  }

  // --- Remote limits ---
  // The remote limits have more for group g and/or domain d than they last answered (a lease of
  // tokens or sessions arrived, a peer gave some back): if parked on them, they are looked at
  // again at the next next_ready(). kNone: not that one.
  void remote_limits_changed(GroupId g, DomainId d, TimePoint now);
  RemoteLimits& remote_limits() { return *limits_; }
  const RemoteLimits& remote_limits() const { return *limits_; }

  // --- State ---
  GroupView group_view(GroupId g, TimePoint now) const;
  SourceGroupView source_group_view(SourceId s, GroupId g, TimePoint now);
  WarmupState warmup_state(SourceId s, TimePoint now) const;
  bool blocked(SourceId s, GroupId g, TimePoint now) const;
  SchedulerStats stats() const;
  // O(domains + waiting addresses): for a status line a few times a second, not per decision.
  WaitingSpan waiting_span() const;
  size_t group_count() const;

 private:
  struct Link {
    uint32_t prev = kNone, next = kNone;
    bool linked() const { return prev != kNone; }
  };
  struct Ring {  // circular doubly-linked list of indices; head is served next
    uint32_t head = kNone;
    uint32_t size = 0;
    bool empty() const { return head == kNone; }
  };
  struct ItemList {  // doubly-linked FIFO over items_
    uint32_t head = kNone, tail = kNone, size = 0;
  };
  enum class ItemState : uint8_t { Free, Ready, Waiting, InFlight };
  struct Item;
  struct Domain;
  struct SourceGroup;
  struct Group;
  struct Session;
  struct Source;

  // Ring helpers (F maps an index to its Link).
  template <class F>
  static void ring_push(Ring& r, uint32_t i, F&& link);
  template <class F>
  static void ring_erase(Ring& r, uint32_t i, F&& link);

  // Item lists.
  void list_push_back(ItemList& l, uint32_t i);
  void list_push_front(ItemList& l, uint32_t i);
  void list_erase(ItemList& l, uint32_t i);

  uint32_t alloc_item();
  void free_item(uint32_t i);
  bool valid(ItemId id) const;
  Session* session_of(SessionId s);

  // Where an item goes when it becomes due / is requeued.
  void make_ready(uint32_t i, bool front, TimePoint now);
  void make_waiting(uint32_t i, TimePoint when);
  void unlink_item(uint32_t i);  // from whatever list it is on (not in-flight bookkeeping)
  ItemList& ready_list(Domain& d, uint8_t pinned);

  // Rings: activation and parking.
  void domain_ring_update(DomainId d);  // put d in / take it out of its group's rings
  void domain_ring_remove(DomainId d);
  void activate_domain(DomainId d);
  void park_domain(DomainId d, std::optional<TimePoint> until);
  void activate_group(GroupId g);
  void deactivate_group(GroupId g);
  void park_group(GroupId g, std::optional<TimePoint> until, bool on_sessions);
  bool group_has_work(const Group& g) const;
  bool has_work_for(const Group& g, SourceId s) const;

  // Limits.
  void configure_group(GroupId g, TimePoint now);
  void configure_domain(DomainId d, TimePoint now);
  void refresh_source_group(Group& g, SourceId s, TimePoint now);
  uint32_t source_session_limit(const Group& g, SourceId s) const;
  bool source_blocked(const Group& g, SourceId s, TimePoint now) const;
  uint64_t blocked_mask(const Group& g, TimePoint now) const;

  // Scheduling steps.
  bool try_group(GroupId g, TimePoint now, Grant& out);
  void unpin_all(Group& g, SourceId s, TimePoint now);
  void fail_group(GroupId g, const verdict::Classification& c);
  uint32_t take_items(Domain& d, SourceId s, uint32_t k, Session& ses, SessionId sid,
                      std::vector<ItemRef>& out);
  void backoff_signal(Session& ses, TimePoint now, std::string_view why);
  // Rests the session's source for its MX group (block_cooldown) after a block reply.
  void apply_block(Session& ses, const verdict::Classification& c, TimePoint now);
  void on_timer(uint64_t payload, TimePoint now);
  void add_final(uint32_t item, const verdict::Classification& c);

  std::shared_ptr<const Policy> policy_;
  std::unique_ptr<RemoteLimits> limits_;
  std::vector<Source> sources_;
  std::vector<Group> groups_;
  std::vector<Domain> domains_;
  std::vector<DomainId> free_domains_;
  std::vector<Item> items_;
  std::vector<uint32_t> free_items_;
  std::vector<Session> sessions_;
  std::vector<uint32_t> free_sessions_;
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, GroupId, Hash, std::equal_to<>> group_by_host_, group_by_name_;
  std::unordered_map<std::string, DomainId, Hash, std::equal_to<>> domain_by_name_;
  TimerWheel wheel_;
  Ring active_;  // groups with work and (as far as known) room: the round-robin
  void add_event(SchedEvent e);
  std::vector<Final> finals_;
  std::deque<SchedEvent> events_;
  size_t finals_head_ = 0;
  uint32_t open_sessions_ = 0;
  uint32_t session_cap_ = 0;
  int64_t quantum_ = 1;
  uint64_t down_mask_ = 0;               // sources down (set_source_down)
  verdict::Classification down_result_;  // what addresses end with when no source is up
  TimePoint last_now_{};
  SchedulerStats stats_;
};

}  // namespace mxp::sched
