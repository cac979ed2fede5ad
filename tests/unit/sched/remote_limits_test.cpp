// The scheduler's RemoteLimits seam, driven by a fake limiter that refuses or allows on command
// and records every call: no grant while it refuses (at the group or at the domain), grants
// resume when it allows (at its retry time, or when told by remote_limits_changed), takes carry
// the counts the grants and refills really used, every session opened is ended exactly once with
// the same ids, and back-off / recovery answers become the scheduler's events.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "sched/remote_limits.hpp"
#include "sched/scheduler.hpp"

namespace mxp::sched {
namespace {

using namespace std::chrono_literals;
using verdict::Classification;

const TimePoint t0 = TimePoint{} + 3600s;

// Every limit of our own side open, so that only the fake limiter can say no.
std::shared_ptr<const Policy> open_policy(uint32_t recipients) {
  const std::string text = R"(
[global]
max_sessions = 100000
builtin_providers = false
[defaults]
per_source = { sessions = 100000, connect_rate = 0, rcpt_rate = 0 }
retry = { schedule = ["10s"], attempts = 3 }
session = { recipients = )" +
                           std::to_string(recipients) +
                           R"(, rejections = 100 }
[provider.big]
match = ["*.big.test"]
)";
  auto p = parse_policy(text, "test policy");
  EXPECT_TRUE(p) << p.error().to_string();
  return std::make_shared<const Policy>(p ? std::move(*p) : Policy::builtin());
}

Classification make(Verdict v, Reason r) {
  Classification c;
  c.verdict = v;
  c.reason = r;
  return c;
}
const Classification kAccepted = make(Verdict::Deliverable, Reason::Accepted);
Classification too_busy() {  // 421 4.7.0: back off
  auto c = make(Verdict::Unknown, Reason::RateLimited);
  c.scope = verdict::Scope::Session;
  c.retry_later = c.back_off = c.session_fatal = true;
  return c;
}

class FakeLimits : public RemoteLimits {
 public:
  struct Take {
    GroupId g;
    DomainId d;
    uint32_t connects, rcpts;
  };
  struct Ended {
    GroupId g;
    DomainId d;
    bool clean;
  };
  struct Want {
    GroupId g;
    DomainId d;
    Demand more;
  };

  // What the fake answers.
  bool refuse_group = false;
  std::map<DomainId, bool> refuse_domain;
  std::optional<TimePoint> retry_at;              // with a refusal; none: wait for an event
  uint32_t rcpts = TokenBucket::kUnlimited;       // rcpt_available, and the lease left after takes
  bool backoff_counts = false, recovers = false;  // backoff() and session_ended() answers

  // What the scheduler told it.
  std::map<GroupId, std::string> group_keys;
  std::map<DomainId, std::string> domain_names;
  std::vector<DomainId> released;
  mutable uint32_t group_asks = 0, domain_asks = 0;
  std::vector<Want> wanted;
  std::vector<Take> takes;
  std::map<std::pair<GroupId, DomainId>, int> open;  // sessions open by (group, domain)
  std::vector<Ended> ended;
  std::vector<GroupId> backoffs;

  void configure_group(GroupId g, std::string_view key, const GroupSettings&, TimePoint) override {
    group_keys[g] = std::string(key);
  }
  void configure_domain(DomainId d, std::string_view name, const LevelLimits&, TimePoint) override {
    domain_names[d] = std::string(name);
  }
  void release_domain(DomainId d) override { released.push_back(d); }
  Admission admit_group(GroupId, TimePoint) const override {
    ++group_asks;
    return refuse_group ? refusal() : Admission{};
  }
  Admission admit_domain(DomainId d, TimePoint) const override {
    ++domain_asks;
    auto it = refuse_domain.find(d);
    return it != refuse_domain.end() && it->second ? refusal() : Admission{};
  }
  uint32_t rcpt_available(GroupId, DomainId, TimePoint) const override { return rcpts; }
  void wants(GroupId g, DomainId d, const Demand& more, TimePoint) override {
    wanted.push_back({g, d, more});
  }
  Admission refusal() const {
    return retry_at ? Admission::until_time(*retry_at) : Admission::event();
  }
  void session_opened(GroupId g, DomainId d, uint32_t n, TimePoint now) override {
    ++open[{g, d}];
    take(g, d, 1, n, now);
  }
  void take_rcpts(GroupId g, DomainId d, uint32_t n, TimePoint now) override {
    take(g, d, 0, n, now);
  }
  void take(GroupId g, DomainId d, uint32_t connects, uint32_t n, TimePoint) {
    takes.push_back({g, d, connects, n});
    if (rcpts != TokenBucket::kUnlimited) {
      EXPECT_LE(n, rcpts) << "took more RCPT tokens than available";
      rcpts -= std::min(n, rcpts);
    }
  }
  bool session_ended(GroupId g, DomainId d, bool clean, TimePoint) override {
    EXPECT_GT((open[{g, d}]), 0) << "ended a session never opened";
    --open[{g, d}];
    ended.push_back({g, d, clean});
    return clean && recovers;
  }
  bool backoff(GroupId g, TimePoint) override {
    backoffs.push_back(g);
    return backoff_counts;
  }
  RemoteGroupView group_view(GroupId, TimePoint) const override {
    RemoteGroupView v;
    v.session_limit = 7;
    v.aimd.rate_factor = backoff_counts ? 0.5 : 1.0;
    return v;
  }
  int open_total() const {
    int n = 0;
    for (const auto& [k, v] : open)
      n += v;
    return n;
  }
};

struct Harness {
  FakeLimits* fake;  // owned by s
  Scheduler s;
  TimePoint now = t0;
  uint64_t next_key = 1;

  explicit Harness(uint32_t recipients = 1, int n_sources = 1)
      : Harness(std::make_unique<FakeLimits>(), recipients, n_sources) {}
  Harness(std::unique_ptr<FakeLimits> f, uint32_t recipients, int n_sources)
      : fake(f.get()), s(open_policy(recipients), sources(n_sources), t0, std::move(f)) {}

  static std::vector<SourceSpec> sources(int n) {
    std::vector<SourceSpec> v;
    for (int i = 0; i < n; ++i)
      v.push_back({"192.0.2." + std::to_string(i + 1), std::nullopt});
    return v;
  }
  DomainId add(const std::string& domain, const std::string& mx, int items) {
    const DomainId d = s.domain(domain);
    s.set_domain_group(d, s.group_for_mx(mx), now);
    for (int i = 0; i < items; ++i)
      s.enqueue(next_key++, d, now);
    return d;
  }
  std::vector<Grant> grant_all() {
    std::vector<Grant> out;
    Grant g;
    while (s.next_ready(now, g)) {
      out.push_back(g);
      if (out.size() > 100'000) {  // a broken limit must fail the test, not hang it
        ADD_FAILURE() << "unbounded grants";
        break;
      }
    }
    return out;
  }
  void finish(const Grant& gr, const Classification& c = kAccepted) {
    for (const auto& it : gr.items)
      s.on_outcome(gr.session, it.id, c, now);
    s.on_session_ended(gr.session, now);
  }
};

TEST(RemoteLimits, SchedulerNamesGroupsAndDomainsWithStableKeys) {
  Harness h;
  const DomainId a = h.add("a.test", "MX1.a.test.", 0);
  const DomainId b = h.add("b.test", "mx.big.test", 0);
  const GroupId ga = h.s.domain_group(a), gb = h.s.domain_group(b);
  EXPECT_EQ(h.fake->group_keys.at(ga), "mx1.a.test");    // the host, lower case, no dot
  EXPECT_EQ(h.fake->group_keys.at(gb), "provider:big");  // a provider by name
  EXPECT_EQ(h.fake->domain_names.at(a), "a.test");
  EXPECT_EQ(h.fake->domain_names.at(b), "b.test");
  ASSERT_TRUE(h.s.release_domain(a));
  EXPECT_EQ(h.fake->released, std::vector<DomainId>{a});
  // A policy swap hands every group its settings again, under the same key.
  h.fake->group_keys.clear();
  h.s.set_policy(open_policy(2), h.now);
  EXPECT_EQ(h.fake->group_keys.at(ga), "mx1.a.test");
  EXPECT_EQ(h.fake->group_keys.at(gb), "provider:big");
}

TEST(RemoteLimits, GroupRefusedWithoutATimeWaitsUntilTold) {
  Harness h;
  const DomainId d = h.add("a.test", "mx.a.test", 5);
  const GroupId g = h.s.domain_group(d);
  h.fake->refuse_group = true;
  EXPECT_TRUE(h.grant_all().empty());
  EXPECT_GE(h.fake->group_asks, 1u);
  EXPECT_TRUE(h.fake->takes.empty());
  EXPECT_EQ(h.fake->open_total(), 0);
  ASSERT_EQ(h.fake->wanted.size(), 1u);  // the refusal is reported as demand
  EXPECT_EQ(h.fake->wanted[0].g, g);
  EXPECT_EQ(h.fake->wanted[0].d, kNone);
  EXPECT_EQ(h.fake->wanted[0].more.sessions, 1u);
  EXPECT_FALSE(h.s.next_deadline());  // parked on an event, not on a timer
  // Allowed again, but nobody said so: the group stays parked (no busy asking).
  h.fake->refuse_group = false;
  const uint32_t asks = h.fake->group_asks;
  EXPECT_TRUE(h.grant_all().empty());
  EXPECT_EQ(h.fake->group_asks, asks);
  // Told: all five go.
  h.s.remote_limits_changed(g, kNone, h.now);
  EXPECT_EQ(h.grant_all().size(), 5u);
  EXPECT_EQ(h.fake->open_total(), 5);
}

TEST(RemoteLimits, GroupRefusedUntilATimeComesBackThen) {
  Harness h;
  h.add("a.test", "mx.a.test", 3);
  h.fake->refuse_group = true;
  h.fake->retry_at = h.now + 5s;
  EXPECT_TRUE(h.grant_all().empty());
  ASSERT_TRUE(h.s.next_deadline());
  EXPECT_LE(*h.s.next_deadline(), h.now + 5s);
  h.now += 4s;
  EXPECT_TRUE(h.grant_all().empty());
  h.fake->refuse_group = false;
  h.now = t0 + 5s;
  EXPECT_EQ(h.grant_all().size(), 3u);
}

TEST(RemoteLimits, RefusedDomainHoldsOnlyItselfNotItsGroup) {
  Harness h;
  const DomainId a = h.add("a.test", "mx.shared.test", 4);
  const DomainId b = h.add("b.test", "mx.shared.test", 4);
  const GroupId g = h.s.domain_group(a);
  h.fake->refuse_domain[a] = true;
  auto gs = h.grant_all();
  ASSERT_EQ(gs.size(), 4u);
  for (const auto& gr : gs)
    EXPECT_EQ(gr.domain, b);
  bool wanted_a = false;
  for (const auto& w : h.fake->wanted)
    wanted_a |= w.g == g && w.d == a && w.more.sessions == 1;
  EXPECT_TRUE(wanted_a);
  h.fake->refuse_domain[a] = false;
  EXPECT_TRUE(h.grant_all().empty());  // a waits to be told
  h.s.remote_limits_changed(kNone, a, h.now);
  gs = h.grant_all();
  ASSERT_EQ(gs.size(), 4u);
  for (const auto& gr : gs)
    EXPECT_EQ(gr.domain, a);
}

TEST(RemoteLimits, TakesCarryTheCountsGrantsAndRefillsUsed) {
  Harness h(/*recipients=*/10);
  const DomainId d = h.add("a.test", "mx.a.test", 20);
  const GroupId g = h.s.domain_group(d);
  h.fake->rcpts = 3;  // a lease of three RCPT tokens
  Grant gr;
  ASSERT_TRUE(h.s.next_ready(h.now, gr));
  EXPECT_EQ(gr.items.size(), 3u);
  ASSERT_EQ(h.fake->takes.size(), 1u);
  EXPECT_EQ(h.fake->takes[0].g, g);
  EXPECT_EQ(h.fake->takes[0].d, d);
  EXPECT_EQ(h.fake->takes[0].connects, 1u);
  EXPECT_EQ(h.fake->takes[0].rcpts, 3u);
  EXPECT_EQ((h.fake->open[{g, d}]), 1);
  // The session's budget was 10: seven more are wanted.
  ASSERT_FALSE(h.fake->wanted.empty());
  EXPECT_EQ(h.fake->wanted.back().more.rcpts, 7u);
  // Lease spent: a refill takes nothing and reports nothing taken.
  for (const auto& it : gr.items)
    h.s.on_outcome(gr.session, it.id, kAccepted, h.now);
  std::vector<ItemRef> more;
  EXPECT_EQ(h.s.refill(gr.session, h.now, more), 0u);
  EXPECT_EQ(h.fake->takes.size(), 1u);
  // Two more tokens arrive: the refill takes exactly those, with no connection.
  h.fake->rcpts = 2;
  EXPECT_EQ(h.s.refill(gr.session, h.now, more), 2u);
  ASSERT_EQ(h.fake->takes.size(), 2u);
  EXPECT_EQ(h.fake->takes[1].connects, 0u);
  EXPECT_EQ(h.fake->takes[1].rcpts, 2u);
  EXPECT_EQ(h.fake->wanted.back().more.rcpts, 5u);  // budget 7 left, 2 available
  for (const auto& it : more)
    h.s.on_outcome(gr.session, it.id, kAccepted, h.now);
  h.s.on_session_ended(gr.session, h.now);
  ASSERT_EQ(h.fake->ended.size(), 1u);
  EXPECT_TRUE(h.fake->ended[0].clean);
  EXPECT_EQ((h.fake->open[{g, d}]), 0);
}

TEST(RemoteLimits, BackoffAndRecoveryAnswersBecomeEvents) {
  Harness h;
  const DomainId d = h.add("a.test", "mx.a.test", 4);
  const GroupId g = h.s.domain_group(d);
  auto gs = h.grant_all();
  ASSERT_EQ(gs.size(), 4u);
  // A 421 that does not count (hold-off): the limiter hears it, no event.
  h.finish(gs[0], too_busy());
  EXPECT_EQ(h.fake->backoffs, std::vector<GroupId>{g});
  EXPECT_FALSE(h.fake->ended.back().clean);
  EXPECT_FALSE(h.s.pop_event());
  // One that counts: a BackOff event with the limiter's view.
  h.fake->backoff_counts = true;
  h.s.on_session_ended(gs[1].session, h.now, SessionEnd::ConnectFailed);
  EXPECT_EQ(h.fake->backoffs.size(), 2u);
  auto e = h.s.pop_event();
  ASSERT_TRUE(e);
  EXPECT_EQ(e->kind, SchedEvent::Kind::BackOff);
  EXPECT_EQ(e->group, g);
  EXPECT_DOUBLE_EQ(e->aimd.rate_factor, 0.5);
  EXPECT_EQ(h.s.stats().backoffs, 1u);
  // A source failure is nobody's fault: no back-off, and not clean either.
  h.s.on_session_ended(gs[2].session, h.now, SessionEnd::SourceFailed);
  EXPECT_EQ(h.fake->backoffs.size(), 2u);
  EXPECT_FALSE(h.fake->ended.back().clean);
  // A clean session that the limiter says brought the group back: a Recovered event.
  h.fake->recovers = true;
  h.finish(gs[3]);
  EXPECT_TRUE(h.fake->ended.back().clean);
  e = h.s.pop_event();
  ASSERT_TRUE(e);
  EXPECT_EQ(e->kind, SchedEvent::Kind::Recovered);
  EXPECT_EQ(h.fake->open_total(), 0);
  // The group's view comes from the limiter.
  EXPECT_EQ(h.s.group_view(g, h.now).session_limit, 7u);
}

// Random grants, refills, outcomes, session ends, refusals and domain moves: every session the
// limiter saw open is ended once, with the ids it was opened with, and no grant or refill comes
// while it refuses.
TEST(RemoteLimits, EverySessionOpenedIsEndedOnceWithItsIds) {
  Harness h(/*recipients=*/3, /*n_sources=*/2);
  std::vector<DomainId> doms;
  for (int i = 0; i < 6; ++i)
    doms.push_back(
        h.add("d" + std::to_string(i) + ".test", "mx" + std::to_string(i % 3) + ".test", 30));
  std::mt19937 rng(7);
  std::vector<Grant> open;
  size_t opened = 0;
  for (int step = 0; step < 3000; ++step) {
    const int what = static_cast<int>(rng() % 10);
    if (what < 4) {
      const bool refusing = rng() % 4 == 0;
      h.fake->refuse_group = refusing;
      const size_t takes = h.fake->takes.size();
      Grant gr;
      const bool granted = h.s.next_ready(h.now, gr);
      if (refusing) {
        EXPECT_FALSE(granted);
        EXPECT_EQ(h.fake->takes.size(), takes);
      }
      if (granted) {
        ++opened;
        open.push_back(gr);
      }
      if (rng() % 2) h.s.remote_limits_changed(static_cast<GroupId>(rng() % 3), kNone, h.now);
    } else if (what < 8 && !open.empty()) {
      const size_t i = rng() % open.size();
      const Grant gr = open[i];
      open.erase(open.begin() + static_cast<std::ptrdiff_t>(i));
      const int how = static_cast<int>(rng() % 4);
      for (const auto& it : gr.items)
        h.s.on_outcome(gr.session, it.id, how == 0 ? too_busy() : kAccepted, h.now);
      std::vector<ItemRef> more;
      h.s.refill(gr.session, h.now, more);  // requeued on the session end below
      h.s.on_session_ended(gr.session, h.now,
                           how == 3 ? SessionEnd::ConnectFailed : SessionEnd::Normal);
    } else if (what == 8) {
      const DomainId d = doms[rng() % doms.size()];
      h.s.set_domain_group(d, h.s.group_for_mx("mx" + std::to_string(rng() % 3) + ".test"), h.now);
    } else {
      h.now += 1s;
      for (const DomainId d : doms)
        h.s.enqueue(h.next_key++, d, h.now);
    }
    ASSERT_EQ(h.fake->open_total(), static_cast<int>(open.size())) << "step " << step;
  }
  for (const auto& gr : open)
    h.s.on_session_ended(gr.session, h.now);
  EXPECT_EQ(h.fake->open_total(), 0);
  EXPECT_EQ(h.fake->ended.size(), opened);
  EXPECT_GT(opened, 100u);
  for (const auto& [key, n] : h.fake->open)
    EXPECT_EQ(n, 0) << key.first << "/" << key.second;
}

}  // namespace
}  // namespace mxp::sched
