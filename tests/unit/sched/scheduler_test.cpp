// Scheduler tests, time driven by hand (the clock only moves to next_deadline() or to a session's
// scripted end): every bucket level lets through exactly rate + burst in any window; caps are
// never exceeded; a tarpit or token-less group never holds up others; DRR shares; greylisting
// retries pinned to the same source and ending after N attempts; AIMD drop and recovery; block
// -> rotation -> all blocked -> final; warm-up shares; rejection budgets; policy swap keeps work.
#include <gtest/gtest.h>

#include <map>
#include <queue>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "sched/catch_all.hpp"
#include "sched/scheduler.hpp"

namespace mxp::sched {
namespace {

using namespace std::chrono_literals;
using verdict::Classification;
using Kind = Disposition::Kind;

const TimePoint t0 = TimePoint{} + 3600s;

// A policy with every limit open, then `set` (dotted key -> TOML value) on top; `extra` is
// appended verbatim ([provider.*], [domain.*] tables).
std::shared_ptr<const Policy> make_policy(const std::map<std::string, std::string>& set = {},
                                          const std::string& extra = "") {
  std::map<std::string, std::string> kv = {
      {"global.max_sessions", "100000"},
      {"global.builtin_providers", "false"},
      {"per_domain.sessions", "100000"},
      {"per_domain.connect_rate", "0"},
      {"per_domain.rcpt_rate", "0"},
      {"per_mx.sessions", "100000"},
      {"per_mx.connect_rate", "0"},
      {"per_mx.rcpt_rate", "0"},
      {"per_source.sessions", "100000"},
      {"per_source.connect_rate", "0"},
      {"per_source.rcpt_rate", "0"},
      {"session.recipients", "10"},
      {"session.rejections", "10"},
      {"backoff.initial_sessions", "100000"},
      {"retry.schedule", "[\"10s\", \"20s\", \"40s\"]"},
      {"retry.attempts", "4"},
  };
  for (const auto& [k, v] : set)
    kv[k] = v;
  std::string global = "[global]\n", warmup = "[warmup]\n", defaults = "[defaults]\n";
  for (const auto& [k, v] : kv) {
    if (k.rfind("global.", 0) == 0)
      global += k.substr(7) + " = " + v + "\n";
    else if (k.rfind("warmup.", 0) == 0)
      warmup += k.substr(7) + " = " + v + "\n";
    else
      defaults += k + " = " + v + "\n";
  }
  auto p = parse_policy(global + warmup + defaults + extra, "test policy");
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
const Classification kRejected = make(Verdict::Undeliverable, Reason::MailboxNotFound);
Classification greylisted() {
  auto c = make(Verdict::Unknown, Reason::Greylisted);
  c.retry_later = true;
  return c;
}
Classification blocked_reply() {
  auto c = make(Verdict::Unknown, Reason::Blocked);
  c.scope = verdict::Scope::Session;
  c.source_blocked = true;
  c.session_fatal = true;
  return c;
}
Classification too_busy() {  // 421 4.7.0: back off
  auto c = make(Verdict::Unknown, Reason::RateLimited);
  c.scope = verdict::Scope::Session;
  c.retry_later = c.back_off = c.session_fatal = true;
  return c;
}

std::vector<SourceSpec> sources(int n) {
  std::vector<SourceSpec> v;
  for (int i = 0; i < n; ++i)
    v.push_back({"192.0.2." + std::to_string(i + 1), std::nullopt});
  return v;
}

struct Harness {
  Scheduler s;
  TimePoint now = t0;
  uint64_t next_key = 1;
  Grant g;

  Harness(std::shared_ptr<const Policy> p, int n_sources = 1)
      : s(std::move(p), sources(n_sources), t0) {}

  DomainId add(const std::string& domain, const std::string& mx, int items,
               TimePoint not_before = TimePoint{}) {
    const DomainId d = s.domain(domain);
    s.set_domain_group(d, s.group_for_mx(mx), now);
    for (int i = 0; i < items; ++i)
      s.enqueue(next_key++, d, now, not_before);
    return d;
  }
  std::vector<Grant> grant_all() {
    std::vector<Grant> out;
    while (s.next_ready(now, g)) {
      out.push_back(g);
      if (out.size() > 1'000'000) {  // a broken limit must fail the test, not hang it
        ADD_FAILURE() << "unbounded grants";
        break;
      }
    }
    return out;
  }
  void finish(const Grant& gr, const Classification& c = kAccepted) {
    for (const auto& it : gr.items)
      EXPECT_NE(s.on_outcome(gr.session, it.id, c, now).kind, Kind::Invalid);
    s.on_session_ended(gr.session, now);
  }
  // Grants greedily until `until`, each session ending at once with every recipient accepted;
  // the clock only moves to next_deadline(). on_grant sees each grant first.
  template <class F>
  void run_greedy(TimePoint until, F&& on_grant) {
    size_t guard = 0;  // a broken limit must fail the test, not hang it
    while (true) {
      while (s.next_ready(now, g)) {
        ASSERT_LT(++guard, 1'000'000u);
        on_grant(g);
        finish(g);
      }
      auto d = s.next_deadline();
      if (!d || *d > until) break;
      ASSERT_GT(*d, now - 1ms);
      now = std::max(now, *d);
    }
  }
};

// Every window bounded by two events (the worst ones) holds at most burst + rate * length.
void expect_window_bound(const std::vector<TimePoint>& ev, double rate, uint32_t burst) {
  for (size_t i = 0; i < ev.size(); ++i)
    for (size_t j = i; j < ev.size(); ++j) {
      const double secs = std::chrono::duration<double>(ev[j] - ev[i]).count();
      ASSERT_LE(static_cast<double>(j - i + 1), burst + rate * secs + 1e-9)
          << "events " << i << ".." << j << " within " << secs << " s";
    }
}

// --- Bucket levels -----------------------------------------------------------------------

enum class Level { Domain, Mx, Source };
std::string prefix(Level l) {
  return l == Level::Domain ? "per_domain" : l == Level::Mx ? "per_mx" : "per_source";
}

class BucketLevel : public ::testing::TestWithParam<Level> {};

TEST_P(BucketLevel, ConnectRateIsExactlyRatePlusBurstInAnyWindow) {
  const Level level = GetParam();
  const std::string p = prefix(level);
  Harness h(make_policy({{p + ".connect_rate", "4"}, {p + ".connect_burst", "3"}}),
            level == Level::Source ? 2 : 1);
  // Domain level: two domains on one MX, each limited on its own. MX level: three domains on
  // one MX, limited together. Source level: two source IPs, each limited on its own.
  std::vector<DomainId> doms;
  const int n_domains = level == Level::Domain ? 2 : level == Level::Mx ? 3 : 1;
  for (int i = 0; i < n_domains; ++i)
    doms.push_back(h.add("d" + std::to_string(i) + ".test", "mx.shared.test", 2000));
  std::map<uint32_t, std::vector<TimePoint>> per;  // limited entity -> grant times
  h.run_greedy(t0 + 10s, [&](const Grant& g) {
    const uint32_t who = level == Level::Domain ? g.domain : level == Level::Mx ? 0 : g.source;
    per[who].push_back(h.now);
  });
  const size_t entities = level == Level::Domain ? 2 : level == Level::Mx ? 1 : 2;
  ASSERT_EQ(per.size(), entities);
  for (auto& [who, times] : per) {
    SCOPED_TRACE(who);
    expect_window_bound(times, 4.0, 3);
    // 3 at once, then one per 250 ms through t0 + 10 s: the limit is reached, not just kept.
    EXPECT_EQ(times.size(), 3u + 40u);
  }
}

TEST_P(BucketLevel, RcptRateIsExactlyRatePlusBurstInAnyWindow) {
  const Level level = GetParam();
  const std::string p = prefix(level);
  Harness h(make_policy({{p + ".rcpt_rate", "20"},
                         {p + ".rcpt_burst", "10"},
                         {"session.recipients", "8"},
                         {"session.rejections", "8"}}));
  h.add("a.test", "mx.shared.test", 5000);
  std::vector<TimePoint> rcpts;
  uint32_t max_batch = 0;
  h.run_greedy(t0 + 10s, [&](const Grant& g) {
    for (size_t i = 0; i < g.items.size(); ++i)
      rcpts.push_back(h.now);
    max_batch = std::max<uint32_t>(max_batch, static_cast<uint32_t>(g.items.size()));
  });
  expect_window_bound(rcpts, 20.0, 10);
  EXPECT_EQ(rcpts.size(), 10u + 200u);
  EXPECT_EQ(max_batch, 8u);  // the first session carried a full batch out of the burst
}

INSTANTIATE_TEST_SUITE_P(Levels, BucketLevel,
                         ::testing::Values(Level::Domain, Level::Mx, Level::Source),
                         [](const auto& info) { return prefix(info.param); });

// --- Caps ----------------------------------------------------------------------------------

TEST(Scheduler, CapsAreNeverExceededAndAreReached) {
  Harness h(make_policy({{"global.max_sessions", "12"},
                         {"per_mx.sessions", "4"},
                         {"per_domain.sessions", "2"},
                         {"per_source.sessions", "2"},
                         {"session.recipients", "3"}}),
            3);
  std::mt19937_64 rng(1);
  for (int d = 0; d < 20; ++d)
    h.add("d" + std::to_string(d) + ".test", "mx" + std::to_string(d % 5) + ".test", 60);
  struct Open {
    TimePoint end;
    Grant g;
    bool operator>(const Open& o) const { return end > o.end; }
  };
  std::priority_queue<Open, std::vector<Open>, std::greater<>> open;
  std::map<uint32_t, int> per_domain, per_group;
  std::map<std::pair<uint32_t, uint32_t>, int> per_source_group;
  int global = 0, max_global = 0, max_group = 0;
  size_t decided = 0;
  for (int step = 0; step < 100000 && decided < 20 * 60; ++step) {
    for (auto& g : h.grant_all()) {
      ++global, ++per_domain[g.domain], ++per_group[g.group],
          ++per_source_group[{g.source, g.group}];
      ASSERT_LE(global, 12);
      ASSERT_LE(per_group[g.group], 4);
      ASSERT_LE(per_domain[g.domain], 2);
      ASSERT_LE((per_source_group[{g.source, g.group}]), 2);
      max_global = std::max(max_global, global);
      max_group = std::max(max_group, per_group[g.group]);
      open.push({h.now + std::chrono::milliseconds(rng() % 500), g});
    }
    ASSERT_EQ(static_cast<int>(h.s.stats().sessions), global);
    if (open.empty()) break;
    // Next event: the earliest session end (nothing here waits on time otherwise).
    Open o = open.top();
    open.pop();
    h.now = std::max(h.now, o.end);
    decided += o.g.items.size();
    h.finish(o.g);
    --global, --per_domain[o.g.domain], --per_group[o.g.group],
        --per_source_group[{o.g.source, o.g.group}];
  }
  EXPECT_EQ(decided, 20u * 60u);
  EXPECT_EQ(max_global, 12);
  EXPECT_EQ(max_group, 4);
}

TEST(Scheduler, GlobalCapHoldsUntilASessionEnds) {
  Harness h(make_policy({{"global.max_sessions", "3"}, {"session.recipients", "1"}}));
  for (int i = 0; i < 5; ++i)
    h.add("d" + std::to_string(i) + ".test", "mx" + std::to_string(i) + ".test", 2);
  auto first = h.grant_all();
  EXPECT_EQ(first.size(), 3u);
  EXPECT_TRUE(h.grant_all().empty());
  h.finish(first[0]);
  EXPECT_EQ(h.grant_all().size(), 1u);
}

// --- Fairness ------------------------------------------------------------------------------

// Time (simulated) until all fast domains finish, sessions ending 50 ms after they start; the
// tarpit's sessions never end. Mirrors the issue's fairness test.
Duration fast_finish_time(bool with_tarpit) {
  Harness h(make_policy({{"per_mx.sessions", "2"},
                         {"per_mx.connect_rate", "5"},
                         {"per_mx.connect_burst", "2"},
                         {"global.max_sessions", "200"}}));
  if (with_tarpit) h.add("tarpit.test", "mx.tarpit.test", 5000);
  for (int d = 0; d < 50; ++d)
    h.add("fast" + std::to_string(d) + ".test", "mx.fast" + std::to_string(d) + ".test", 200);
  const GroupId tarpit = h.s.group_for_mx("mx.tarpit.test");
  std::multimap<TimePoint, Grant> open;
  size_t fast_left = 50 * 200;
  while (fast_left > 0) {
    for (auto& g : h.grant_all()) {
      if (g.group == tarpit) continue;  // held open forever
      open.emplace(h.now + 50ms, g);
    }
    auto d = h.s.next_deadline();
    TimePoint next = d ? *d : TimePoint::max();
    if (!open.empty()) next = std::min(next, open.begin()->first);
    if (next == TimePoint::max()) break;
    h.now = std::max(h.now, next);
    while (!open.empty() && open.begin()->first <= h.now) {
      fast_left -= open.begin()->second.items.size();
      h.finish(open.begin()->second);
      open.erase(open.begin());
    }
  }
  EXPECT_EQ(fast_left, 0u);
  if (with_tarpit) {
    EXPECT_EQ(h.s.group_view(tarpit, h.now).sessions, 2u);  // the tarpit still holds its cap
    EXPECT_GT(h.s.group_view(tarpit, h.now).ready, 4900u);
  }
  return h.now - t0;
}

TEST(Scheduler, TarpitGroupNeverSlowsTheOthers) {
  const Duration alone = fast_finish_time(false);
  const Duration with = fast_finish_time(true);
  EXPECT_GT(alone, 0s);
  // The issue asks for >= 90% of the rate; per-group queues make it the same.
  EXPECT_LE(with.count(), alone.count() * 100 / 90);
  EXPECT_EQ(with, alone);
}

TEST(Scheduler, TokenlessGroupNeverBlocksOthers) {
  Harness h(make_policy({}, R"(
[provider.slow]
match = ["*.slow.test"]
per_mx = { connect_rate = 0.01, connect_burst = 1 }
)"));
  h.add("slow.example", "mx.slow.test", 1000);
  for (int d = 0; d < 20; ++d)
    h.add("f" + std::to_string(d) + ".test", "mx.f" + std::to_string(d) + ".test", 50);
  const GroupId slow = h.s.group_for_mx("MX.Slow.Test.");
  EXPECT_EQ(h.s.group_name(slow), "slow");
  size_t slow_grants = 0, fast_items = 0;
  for (auto& g : h.grant_all()) {
    (g.group == slow ? slow_grants : fast_items) += g.group == slow ? 1 : g.items.size();
    h.finish(g);
  }
  for (auto& g : h.grant_all()) {  // sessions ended: more of the fast ones, none of slow
    (g.group == slow ? slow_grants : fast_items) += g.group == slow ? 1 : g.items.size();
    h.finish(g);
  }
  EXPECT_EQ(slow_grants, 1u);
  EXPECT_EQ(fast_items, 20u * 50u);
  const GroupView v = h.s.group_view(slow, h.now);
  EXPECT_TRUE(v.parked_on_timer);
  EXPECT_FALSE(v.active);
  // Its next token comes 100 s later: following next_deadline() gets there exactly.
  size_t wakes = 0;
  while (true) {
    auto d = h.s.next_deadline();
    ASSERT_TRUE(d);
    ASSERT_LE(*d, t0 + 100s);
    h.now = *d;
    ++wakes;
    auto gs = h.grant_all();
    if (gs.empty()) continue;
    ASSERT_EQ(gs.size(), 1u);
    EXPECT_EQ(gs[0].group, slow);
    EXPECT_EQ(h.now, t0 + 100s);
    break;
  }
  EXPECT_LE(wakes, static_cast<size_t>(TimerWheel::kLevels));
}

TEST(Scheduler, DeficitRoundRobinSharesFollowWeights) {
  Harness h(make_policy({{"session.recipients", "5"}, {"session.rejections", "5"}}, R"(
[provider.heavy]
match = ["*.heavy.test"]
weight = 3
[provider.light]
match = ["*.light.test"]
[provider.other]
match = ["*.other.test"]
)"));
  h.add("h.example", "mx.heavy.test", 5000);
  h.add("l.example", "mx.light.test", 5000);
  h.add("o.example", "mx.other.test", 5000);
  std::map<std::string, size_t> rcpts;
  std::vector<std::string> order;
  for (int i = 0; i < 500; ++i) {
    ASSERT_TRUE(h.s.next_ready(h.now, h.g));
    rcpts[h.s.group_name(h.g.group)] += h.g.items.size();
    order.push_back(h.s.group_name(h.g.group));
    h.finish(h.g);
  }
  EXPECT_NEAR(static_cast<double>(rcpts["heavy"]) / rcpts["light"], 3.0, 0.05);
  EXPECT_NEAR(static_cast<double>(rcpts["other"]) / rcpts["light"], 1.0, 0.05);
  // Equal weights interleave: light and other never get two turns in a row.
  for (size_t i = 1; i < order.size(); ++i)
    if (order[i] != "heavy") {
      EXPECT_NE(order[i], order[i - 1]) << i;
    }
}

// --- Greylisting ---------------------------------------------------------------------------

TEST(Scheduler, GreylistRetryComesFromTheSameSourceAndEndsAfterAttempts) {
  Harness h(make_policy({{"session.recipients", "1"}}), 3);
  const DomainId d = h.add("grey.test", "mx.grey.test", 2);
  auto first = h.grant_all();
  ASSERT_EQ(first.size(), 2u);
  // Item A keeps being greylisted; item B passes on its first retry.
  const Grant a = first[0], b = first[1];
  EXPECT_NE(a.source, b.source);  // rotation spreads sessions over the pool
  const uint64_t key_a = a.items[0].key, key_b = b.items[0].key;
  std::map<uint64_t, SourceId> pinned = {{key_a, a.source}, {key_b, b.source}};
  auto da = h.s.on_outcome(a.session, a.items[0].id, greylisted(), h.now);
  auto db = h.s.on_outcome(b.session, b.items[0].id, greylisted(), h.now);
  h.s.on_session_ended(a.session, h.now);
  h.s.on_session_ended(b.session, h.now);
  ASSERT_EQ(da.kind, Kind::Retry);
  EXPECT_EQ(da.pinned, a.source);
  EXPECT_EQ(da.not_before, t0 + 10s);
  EXPECT_EQ(da.tries, 1u);
  EXPECT_EQ(db.pinned, b.source);
  // Other work for the domain keeps flowing meanwhile, from any source.
  for (int i = 0; i < 6; ++i)
    h.s.enqueue(h.next_key++, d, h.now);
  const std::vector<Duration> delays = {10s, 20s, 40s};
  std::map<uint64_t, int> tries;
  tries[key_a] = tries[key_b] = 1;
  std::optional<Disposition> final_a, final_b;
  while (!final_a || !final_b) {
    for (auto& g : h.grant_all()) {
      for (auto& it : g.items) {
        if (!pinned.count(it.key)) {
          ASSERT_EQ(h.s.on_outcome(g.session, it.id, kAccepted, h.now).kind, Kind::Final);
          continue;
        }
        EXPECT_EQ(g.source, pinned[it.key]) << "retry from another source IP";
        EXPECT_EQ(it.tries, static_cast<uint32_t>(tries[it.key]));
        const Classification c = it.key == key_a ? greylisted() : kAccepted;
        const TimePoint before = h.now;
        auto disp = h.s.on_outcome(g.session, it.id, c, h.now);
        ++tries[it.key];
        if (disp.kind == Kind::Final) {
          (it.key == key_a ? final_a : final_b) = disp;
        } else {
          ASSERT_EQ(disp.kind, Kind::Retry);
          EXPECT_EQ(disp.not_before - before, delays[std::min<size_t>(tries[it.key] - 1, 2)]);
          EXPECT_EQ(disp.pinned, pinned[it.key]);
        }
      }
      h.s.on_session_ended(g.session, h.now);
    }
    auto next = h.s.next_deadline();
    ASSERT_TRUE(next || (final_a && final_b));
    if (next) h.now = std::max(h.now, *next);
  }
  EXPECT_EQ(final_b->result.verdict, Verdict::Deliverable);
  EXPECT_EQ(final_b->tries, 2u);
  EXPECT_EQ(final_a->result.reason, Reason::Greylisted);  // attempts ran out: unknown/greylisted
  EXPECT_EQ(final_a->result.verdict, Verdict::Unknown);
  EXPECT_EQ(final_a->tries, 4u);  // retry.attempts
  // 10 + 20 + 40 s after the first try.
  EXPECT_GE(h.now - t0, 70s);
  EXPECT_EQ(h.s.stats().greylist_retries, 3u + 1u);
}

// The status line's "46 waiting, next retry in 4:12" and its ETA: how many addresses wait for
// a retry time, and when the first and the last of them are due, as retries come and go.
TEST(Scheduler, WaitingSpanSaysWhenTheRetriesAreDue) {
  Harness h(make_policy({{"session.recipients", "1"}}));
  EXPECT_EQ(h.s.waiting_span().count, 0u);
  h.add("a.test", "mx.a.test", 2, t0 + 30min);
  h.add("b.test", "mx.b.test", 1, t0 + 4min);
  h.add("c.test", "mx.c.test", 3);  // due now: not waiting
  auto w = h.s.waiting_span();
  EXPECT_EQ(w.count, 3u);
  EXPECT_EQ(w.first, t0 + 4min);
  EXPECT_EQ(w.last, t0 + 30min);
  // A greylisted answer adds a wait of retry.schedule[0] (10 s) from now.
  auto granted = h.grant_all();
  ASSERT_EQ(granted.size(), 3u);
  EXPECT_EQ(h.s.on_outcome(granted[0].session, granted[0].items[0].id, greylisted(), h.now).kind,
            Kind::Retry);
  w = h.s.waiting_span();
  EXPECT_EQ(w.count, 4u);
  EXPECT_EQ(w.first, t0 + 10s);
  EXPECT_EQ(w.last, t0 + 30min);
  // Time passes: those due leave the span.
  h.now = t0 + 5min;
  h.s.advance(h.now);
  w = h.s.waiting_span();
  EXPECT_EQ(w.count, 2u);
  EXPECT_EQ(w.first, t0 + 30min);
  EXPECT_EQ(w.last, t0 + 30min);
}

TEST(Scheduler, PinnedRetryMovesOnWhenItsSourceIsBlocked) {
  Harness h(make_policy({{"session.recipients", "1"}, {"block_cooldown", "\"1h\""}}), 2);
  const DomainId d = h.add("grey.test", "mx.grey.test", 1);
  auto g1 = h.grant_all();
  ASSERT_EQ(g1.size(), 1u);
  const SourceId s = g1[0].source;
  h.s.on_outcome(g1[0].session, g1[0].items[0].id, greylisted(), h.now);
  h.s.on_session_ended(g1[0].session, h.now);
  // Another address of the group gets a block reply on the same source.
  h.s.enqueue(h.next_key++, d, h.now);
  auto g2 = h.grant_all();
  ASSERT_EQ(g2.size(), 1u);
  ASSERT_EQ(g2[0].source, 1 - s);  // round-robin moved on
  h.finish(g2[0]);
  h.s.enqueue(h.next_key++, d, h.now);
  auto g3 = h.grant_all();
  ASSERT_EQ(g3.size(), 1u);
  ASSERT_EQ(g3[0].source, s);
  auto disp = h.s.on_outcome(g3[0].session, g3[0].items[0].id, blocked_reply(), h.now);
  EXPECT_EQ(disp.kind, Kind::Retry);
  h.s.on_session_ended(g3[0].session, h.now);
  EXPECT_TRUE(h.s.blocked(s, g1[0].group, h.now));
  // The greylisted one is due in 10 s; its source is blocked, so another IP takes it.
  h.now = t0 + 10s;
  std::set<SourceId> used;
  for (auto& g : h.grant_all()) {
    used.insert(g.source);
    h.finish(g);
  }
  EXPECT_EQ(used, std::set<SourceId>{1 - s});
  EXPECT_EQ(h.s.stats().ready + h.s.stats().waiting + h.s.stats().in_flight, 0u);
}

TEST(Scheduler, PinnedOnlyWorkOnABlockedSourceIsNeverStranded) {
  // The round-robin looks at the blocked source last (its own session was the last one), and
  // the only due address is pinned to it: another source must still take it.
  Harness h(make_policy({{"session.recipients", "1"}}), 3);
  const DomainId d = h.add("p.test", "mx.p.test", 1);
  const GroupId grp = h.s.group_for_mx("mx.p.test");
  auto g1 = h.grant_all();
  ASSERT_EQ(g1.size(), 1u);
  const SourceId s = g1[0].source;
  const uint64_t pinned_key = g1[0].items[0].key;
  h.s.on_outcome(g1[0].session, g1[0].items[0].id, greylisted(), h.now);
  h.s.on_session_ended(g1[0].session, h.now);
  for (int guard = 0;; ++guard) {  // turn the round-robin until s serves again, then block s
    ASSERT_LT(guard, 10);
    h.s.enqueue(h.next_key++, d, h.now);
    auto gs = h.grant_all();
    ASSERT_EQ(gs.size(), 1u);
    if (gs[0].source != s) {
      h.finish(gs[0]);
      continue;
    }
    auto disp = h.s.on_outcome(gs[0].session, gs[0].items[0].id, blocked_reply(), h.now);
    ASSERT_EQ(disp.kind, Kind::Retry);
    h.s.on_session_ended(gs[0].session, h.now);
    ASSERT_TRUE(h.s.remove(gs[0].items[0].id));  // the pipeline gave up on that one
    break;
  }
  ASSERT_TRUE(h.s.blocked(s, grp, h.now));
  ASSERT_EQ(h.s.stats().ready + h.s.stats().in_flight, 0u);
  h.now = t0 + 10s;
  auto gs = h.grant_all();
  ASSERT_EQ(gs.size(), 1u);
  EXPECT_EQ(gs[0].items[0].key, pinned_key);
  EXPECT_NE(gs[0].source, s);
}

// --- Back-off ------------------------------------------------------------------------------

TEST(Scheduler, BackoffDropsMultiplicativelyAndRecoversAdditively) {
  Harness h(make_policy({{"per_mx.sessions", "8"},
                         {"per_mx.connect_rate", "10"},
                         {"per_mx.connect_burst", "100"},
                         {"backoff.initial_sessions", "8"},
                         {"backoff.decrease", "0.5"},
                         {"backoff.rate_increase", "0.1"},
                         {"backoff.window_increase", "1"},
                         {"backoff.min_factor", "0.1"},
                         {"backoff.holdoff", "\"1s\""},
                         {"session.recipients", "1"}}));
  h.add("busy.test", "mx.busy.test", 10000);
  const GroupId g = h.s.group_for_mx("mx.busy.test");
  auto open = h.grant_all();
  ASSERT_EQ(open.size(), 8u);  // the cap
  EXPECT_EQ(h.s.group_view(g, h.now).aimd.window, 8.0);
  // A 421 storm: every session gets one. Within the hold-off it counts once.
  for (auto& gr : open)
    h.finish(gr, too_busy());
  GroupView v = h.s.group_view(g, h.now);
  EXPECT_EQ(v.aimd.signals, 8u);
  EXPECT_EQ(v.aimd.decreases, 1u);
  EXPECT_DOUBLE_EQ(v.aimd.window, 4.0);
  EXPECT_DOUBLE_EQ(v.aimd.rate_factor, 0.5);
  EXPECT_DOUBLE_EQ(v.connect_rate, 5.0);
  EXPECT_EQ(v.session_limit, 4u);
  open = h.grant_all();
  EXPECT_EQ(open.size(), 4u);  // concurrency follows the window
  // A second storm after the hold-off: halves again; a refused connection counts too.
  h.now += 1s;
  h.s.on_session_ended(open[0].session, h.now, SessionEnd::ConnectFailed);
  v = h.s.group_view(g, h.now);
  EXPECT_DOUBLE_EQ(v.aimd.window, 2.0);
  EXPECT_DOUBLE_EQ(v.aimd.rate_factor, 0.25);
  for (size_t i = 1; i < open.size(); ++i)
    h.finish(open[i], too_busy());  // within the hold-off: no further drop
  EXPECT_DOUBLE_EQ(h.s.group_view(g, h.now).aimd.window, 2.0);
  // Clean sessions: the window grows by 1/window each, the rate factor by 0.1 each.
  double window = 2.0, factor = 0.25;
  for (int i = 0; i < 40; ++i) {
    Grant gr;
    if (!h.s.next_ready(h.now, gr)) {
      h.now = *h.s.next_deadline();
      --i;
      continue;
    }
    h.finish(gr);
    window = std::min(8.0, window + 1.0 / window);
    factor = std::min(1.0, factor + 0.1);
    v = h.s.group_view(g, h.now);
    ASSERT_NEAR(v.aimd.window, window, 1e-9) << i;
    ASSERT_NEAR(v.aimd.rate_factor, factor, 1e-9) << i;
  }
  EXPECT_DOUBLE_EQ(v.aimd.rate_factor, 1.0);
  EXPECT_DOUBLE_EQ(v.connect_rate, 10.0);
  EXPECT_GT(v.aimd.window, 7.0);
}

// --- Source blocks -------------------------------------------------------------------------

TEST(Scheduler, BlockRotatesToAnotherSourceAndAllBlockedIsFinal) {
  Harness h(make_policy({{"session.recipients", "1"}, {"block_cooldown", "\"60s\""}}), 2);
  const DomainId d = h.add("b.test", "mx.b.test", 5);
  const GroupId grp = h.s.group_for_mx("mx.b.test");
  Grant g1;
  ASSERT_TRUE(h.s.next_ready(h.now, g1));
  const uint64_t key = g1.items[0].key;
  auto disp = h.s.on_outcome(g1.session, g1.items[0].id, blocked_reply(), h.now);
  h.s.on_session_ended(g1.session, h.now);
  ASSERT_EQ(disp.kind, Kind::Retry);  // another IP may still get an answer
  EXPECT_TRUE(h.s.blocked(g1.source, grp, h.now));
  EXPECT_FALSE(h.s.blocked(1 - g1.source, grp, h.now));
  // The blocked address goes first, from the other source.
  Grant g2;
  ASSERT_TRUE(h.s.next_ready(h.now, g2));
  EXPECT_EQ(g2.items[0].key, key);
  EXPECT_EQ(g2.source, 1 - g1.source);
  disp = h.s.on_outcome(g2.session, g2.items[0].id, blocked_reply(), h.now);
  h.s.on_session_ended(g2.session, h.now);
  ASSERT_EQ(disp.kind, Kind::Final);  // every source refused it
  EXPECT_EQ(disp.result.reason, Reason::Blocked);
  // Every source is blocked for the group now: the rest of its queue ends unknown/blocked.
  Grant g3;
  EXPECT_FALSE(h.s.next_ready(h.now, g3));
  std::set<uint64_t> finals;
  while (auto f = h.s.pop_final()) {
    EXPECT_EQ(f->result.verdict, Verdict::Unknown);
    EXPECT_EQ(f->result.reason, Reason::Blocked);
    finals.insert(f->key);
  }
  EXPECT_EQ(finals.size(), 4u);
  EXPECT_EQ(h.s.stats().rotations, 1u);
  // After the cool-down the group is served again.
  h.now += 60s;
  h.s.enqueue(h.next_key++, d, h.now);
  EXPECT_TRUE(h.s.next_ready(h.now, g3));
}

// A provider's source pool (policy `sources`, docs/identity.md): its sessions come only from the
// pool's addresses, other groups use every source; when the pool's one address is blocked, the
// group's addresses end unknown/blocked rather than go out from outside the pool.
TEST(Scheduler, SourcePoolRestrictsTheGroupOnly) {
  Harness h(make_policy({{"session.recipients", "1"}, {"block_cooldown", "\"60s\""}},
                        "[provider.pool]\nmatch = [\"mx.pool.test\"]\nsources = [\"192.0.2.2\"]\n"),
            3);
  h.add("pool.test", "mx.pool.test", 30);
  h.add("free.test", "mx.free.test", 30);
  const GroupId pool = h.s.group_for_mx("mx.pool.test");
  std::set<SourceId> pool_sources, free_sources;
  for (const Grant& g : h.grant_all())
    (g.group == pool ? pool_sources : free_sources).insert(g.source);
  EXPECT_EQ(pool_sources, (std::set<SourceId>{1}));  // 192.0.2.2 only
  EXPECT_EQ(free_sources, (std::set<SourceId>{0, 1, 2}));
}

TEST(Scheduler, SourcePoolAllBlockedIsFinal) {
  Harness h(make_policy({{"session.recipients", "1"}, {"block_cooldown", "\"60s\""}},
                        "[provider.pool]\nmatch = [\"mx.pool.test\"]\nsources = [\"192.0.2.2\"]\n"),
            2);
  h.add("pool.test", "mx.pool.test", 3);
  Grant g1;
  ASSERT_TRUE(h.s.next_ready(h.now, g1));
  EXPECT_EQ(g1.source, 1u);
  const auto disp = h.s.on_outcome(g1.session, g1.items[0].id, blocked_reply(), h.now);
  h.s.on_session_ended(g1.session, h.now);
  EXPECT_EQ(disp.kind, Kind::Final);  // the only source of the pool refused it
  Grant g2;
  EXPECT_FALSE(h.s.next_ready(h.now, g2));  // never from 192.0.2.1, outside the pool
  size_t finals = 0;
  while (auto f = h.s.pop_final()) {
    EXPECT_EQ(f->result.reason, Reason::Blocked);
    ++finals;
  }
  EXPECT_EQ(finals, 2u);
}

// One block reply among recipients the same session judged normally is about that recipient
// (an echoed "<spamhaus@...>" once rested a whole MX group for 5 minutes): the source is not
// rested for the group, whichever order the replies come in; the blocked address itself ends.
TEST(Scheduler, OneBlockAmongJudgedRecipientsDoesNotRestTheGroup) {
  for (int block_at : {0, 1, 2}) {
    SCOPED_TRACE(block_at);
    Harness h(make_policy({{"session.recipients", "3"}, {"block_cooldown", "\"300s\""}}), 1);
    h.add("b.test", "mx.b.test", 6);
    const GroupId grp = h.s.group_for_mx("mx.b.test");
    Grant g;
    ASSERT_TRUE(h.s.next_ready(h.now, g));
    ASSERT_EQ(g.items.size(), 3u);
    for (int i = 0; i < 3; ++i) {
      const Classification c = i == block_at ? blocked_reply() : i % 2 ? kRejected : kAccepted;
      const auto disp = h.s.on_outcome(g.session, g.items[i].id, c, h.now);
      EXPECT_EQ(disp.kind, Kind::Final);
      if (i == block_at) {
        EXPECT_EQ(disp.result.reason, Reason::Blocked);
      }
    }
    h.s.on_session_ended(g.session, h.now);
    EXPECT_FALSE(h.s.blocked(g.source, grp, h.now));
    EXPECT_FALSE(h.s.pop_final());  // nobody else ends unknown/blocked
    Grant g2;
    ASSERT_TRUE(h.s.next_ready(h.now, g2));  // the group goes on at once
    EXPECT_EQ(g2.items.size(), 3u);
    while (auto e = h.s.pop_event())
      EXPECT_NE(e->kind, SchedEvent::Kind::Blocked);
  }
}

// A session whose every recipient is refused as blocked rests the source, outstanding replies
// first (pipelined): one Blocked event when the last one is in.
TEST(Scheduler, BlockOfEveryRecipientRestsTheSourceOnceTheyAreIn) {
  Harness h(make_policy({{"session.recipients", "3"}, {"block_cooldown", "\"300s\""}}), 1);
  h.add("b.test", "mx.b.test", 6);
  const GroupId grp = h.s.group_for_mx("mx.b.test");
  Grant g;
  ASSERT_TRUE(h.s.next_ready(h.now, g));
  h.s.on_outcome(g.session, g.items[0].id, blocked_reply(), h.now);
  EXPECT_FALSE(h.s.blocked(g.source, grp, h.now));  // two replies still to come
  h.s.on_outcome(g.session, g.items[1].id, blocked_reply(), h.now);
  h.s.on_outcome(g.session, g.items[2].id, blocked_reply(), h.now);
  EXPECT_TRUE(h.s.blocked(g.source, grp, h.now));
  h.s.on_session_ended(g.session, h.now);
  Grant g2;
  EXPECT_FALSE(h.s.next_ready(h.now, g2));
  size_t finals = 0;
  while (auto f = h.s.pop_final())
    finals += f->result.reason == Reason::Blocked;
  EXPECT_EQ(finals, 3u);
}

// Our own limit (file descriptors) caps sessions below the policy's max_sessions, across a
// policy swap; lifting it lets the rest start.
TEST(Scheduler, SessionCapHoldsBelowThePolicyAcrossASwap) {
  Harness h(make_policy({{"global.max_sessions", "10"}, {"session.recipients", "1"}}));
  for (int i = 0; i < 5; ++i)
    h.add("d" + std::to_string(i) + ".test", "mx" + std::to_string(i) + ".test", 4);
  h.s.set_session_cap(3);
  EXPECT_EQ(h.s.max_sessions(), 3u);
  EXPECT_EQ(h.grant_all().size(), 3u);
  h.s.set_policy(make_policy({{"global.max_sessions", "12"}, {"session.recipients", "1"}}), h.now);
  EXPECT_EQ(h.grant_all().size(), 0u);
  h.s.set_session_cap(0);
  EXPECT_EQ(h.s.max_sessions(), 12u);
  EXPECT_EQ(h.grant_all().size(), 9u);
}

TEST(Scheduler, BlockOnOneSourceThenSuccessOnAnother) {
  Harness h(make_policy({{"session.recipients", "1"}}), 3);
  h.add("b.test", "mx.b.test", 1);
  Grant g;
  ASSERT_TRUE(h.s.next_ready(h.now, g));
  h.s.on_outcome(g.session, g.items[0].id, blocked_reply(), h.now);
  h.s.on_session_ended(g.session, h.now);
  Grant g2;
  ASSERT_TRUE(h.s.next_ready(h.now, g2));
  EXPECT_NE(g2.source, g.source);
  auto disp = h.s.on_outcome(g2.session, g2.items[0].id, kAccepted, h.now);
  EXPECT_EQ(disp.kind, Kind::Final);
  EXPECT_EQ(disp.result.verdict, Verdict::Deliverable);
  EXPECT_EQ(disp.tries, 2u);
}

// A source that is down (a dead SOCKS5 proxy) is skipped by every group; a session ended by its
// failure gives its addresses back untouched and is no back-off signal for the MX group; with
// every source down the due addresses end with the reason given; up again, work resumes.
TEST(Scheduler, DownSourceIsSkippedAndAllDownEndsWithItsReason) {
  Harness h(make_policy({{"session.recipients", "2"},
                         {"backoff.initial_sessions", "4"},
                         {"per_mx.sessions", "4"}}),
            2);
  const DomainId d = h.add("p.test", "mx.p.test", 8);
  const GroupId grp = h.s.group_for_mx("mx.p.test");
  const auto why = make(Verdict::Unknown, Reason::ProxyFailed);
  Grant g1;
  ASSERT_TRUE(h.s.next_ready(h.now, g1));
  const SourceId dead = g1.source, alive = 1 - g1.source;
  const double window = h.s.group_view(grp, h.now).aimd.window;
  // The proxy dies under the session: its addresses come back without a try, no back-off.
  h.s.set_source_down(dead, true, h.now, why);
  EXPECT_TRUE(h.s.source_down(dead));
  h.s.on_session_ended(g1.session, h.now, SessionEnd::SourceFailed);
  EXPECT_EQ(h.s.group_view(grp, h.now).aimd.window, window);
  EXPECT_EQ(h.s.stats().backoffs, 0u);
  std::set<uint64_t> keys;
  for (const Grant& g : h.grant_all()) {
    EXPECT_EQ(g.source, alive);
    for (const auto& it : g.items) {
      EXPECT_EQ(it.tries, 0u);
      keys.insert(it.key);
    }
    h.finish(g);
  }
  EXPECT_EQ(keys.size(), 8u);  // every address, the given-back ones included, from the other
  // Both down: what is queued ends with the reason, nothing is granted.
  h.s.set_source_down(alive, true, h.now, why);
  for (int i = 0; i < 3; ++i)
    h.s.enqueue(h.next_key++, d, h.now);
  Grant g;
  EXPECT_FALSE(h.s.next_ready(h.now, g));
  int finals = 0;
  while (auto f = h.s.pop_final()) {
    EXPECT_EQ(f->result.reason, Reason::ProxyFailed);
    ++finals;
  }
  EXPECT_EQ(finals, 3);
  // One comes back: new work is granted from it.
  h.s.set_source_down(dead, false, h.now, why);
  h.s.enqueue(h.next_key++, d, h.now);
  ASSERT_TRUE(h.s.next_ready(h.now, g));
  EXPECT_EQ(g.source, dead);
  EXPECT_EQ(h.s.stats().backoffs, 0u);
}

// A source IP the start-up checks take out of rotation before any work (listed on a blocklist:
// Verifier::set_source_out) is never granted, and every address goes through the other; back in
// rotation after a re-check, it is granted again.
TEST(Scheduler, SourceOutOfRotationFromTheStartIsNeverGranted) {
  Harness h(make_policy({{"session.recipients", "1"}, {"per_mx.sessions", "8"}}), 2);
  auto listed = make(Verdict::Unknown, Reason::Blocked);
  listed.source_blocked = true;
  h.s.set_source_down(1, true, h.now, listed);
  h.add("r.test", "mx.r.test", 12);
  size_t grants = 0;
  for (const Grant& g : h.grant_all()) {
    EXPECT_EQ(g.source, 0u);
    ++grants;
    h.finish(g);
  }
  for (const Grant& g : h.grant_all()) {  // what the first round's caps held back
    EXPECT_EQ(g.source, 0u);
    ++grants;
    h.finish(g);
  }
  EXPECT_GT(grants, 0u);
  EXPECT_FALSE(h.s.pop_final());  // one source is left: nothing ends on its own
  h.s.set_source_down(1, false, h.now, listed);
  h.add("r2.test", "mx.r2.test", 16);
  bool from_one = false;
  for (const Grant& g : h.grant_all()) {
    from_one = from_one || g.source == 1;
    h.finish(g);
  }
  EXPECT_TRUE(from_one);
}

// A greylisted address is pinned to its source; when that source goes down, the retry comes
// from another source instead of waiting for it.
TEST(Scheduler, PinnedRetryMovesOnWhenItsSourceGoesDown) {
  Harness h(make_policy({{"session.recipients", "1"}}), 2);
  h.add("g.test", "mx.g.test", 1);
  Grant g1;
  ASSERT_TRUE(h.s.next_ready(h.now, g1));
  auto disp = h.s.on_outcome(g1.session, g1.items[0].id, greylisted(), h.now);
  h.s.on_session_ended(g1.session, h.now);
  ASSERT_EQ(disp.kind, Kind::Retry);
  EXPECT_EQ(disp.pinned, g1.source);
  h.s.set_source_down(g1.source, true, h.now, make(Verdict::Unknown, Reason::ProxyFailed));
  h.now = disp.not_before;
  Grant g2;
  ASSERT_TRUE(h.s.next_ready(h.now, g2));
  EXPECT_EQ(g2.source, 1 - g1.source);
  EXPECT_EQ(g2.items[0].key, g1.items[0].key);
  EXPECT_FALSE(h.s.pop_final());
}

// --- Warm-up -------------------------------------------------------------------------------

TEST(Scheduler, WarmupShareFollowsTheSchedule) {
  auto policy = make_policy({{"warmup.enabled", "true"},
                             {"warmup.shares", "[0.1, 0.5, 1.0]"},
                             {"warmup.step", "\"10s\""},
                             {"warmup.min_sessions", "2"},
                             {"per_source.connect_rate", "10"},
                             {"per_source.connect_burst", "10"},
                             {"per_source.sessions", "10"},
                             {"session.recipients", "1"}});
  std::vector<SourceSpec> pool = {{"192.0.2.1", WarmupState{2, 0s, 0}},  // warm
                                  {"192.0.2.2", std::nullopt}};          // new: cold
  Scheduler s(policy, pool, t0);
  TimePoint now = t0;
  const DomainId d = s.domain("w.test");
  const GroupId grp = s.group_for_mx("mx.w.test");
  s.set_domain_group(d, grp, now);
  for (int i = 0; i < 2000; ++i)
    s.enqueue(static_cast<uint64_t>(i), d, now);
  SourceGroupView cold = s.source_group_view(1, grp, now);
  EXPECT_DOUBLE_EQ(cold.share, 0.1);
  EXPECT_DOUBLE_EQ(cold.connect_rate, 1.0);
  EXPECT_EQ(cold.session_limit, 1u);
  EXPECT_DOUBLE_EQ(s.source_group_view(0, grp, now).share, 1.0);
  std::map<SourceId, std::vector<TimePoint>> grants;
  auto run_until = [&](TimePoint until) {
    Grant g;
    while (true) {
      while (s.next_ready(now, g)) {
        ASSERT_LT(grants[0].size() + grants[1].size(), 100'000u);
        grants[g.source].push_back(now);
        for (auto& it : g.items)
          s.on_outcome(g.session, it.id, kAccepted, now);
        s.on_session_ended(g.session, now);
      }
      auto next = s.next_deadline();
      if (!next || *next > until) break;
      now = *next;
    }
    now = std::max(now, until);
  };
  run_until(t0 + 5s);
  // The cold source gets 1 + 1/s, the warm one 10 + 10/s.
  EXPECT_EQ(grants[1].size(), 1u + 5u);
  EXPECT_EQ(grants[0].size(), 10u + 50u);
  expect_window_bound(grants[1], 1.0, 1);
  // Ten clean seconds with enough clean sessions: up one level.
  run_until(t0 + 10s);
  EXPECT_DOUBLE_EQ(s.source_group_view(1, grp, now).share, 0.5);
  EXPECT_DOUBLE_EQ(s.source_group_view(1, grp, now).connect_rate, 5.0);
  EXPECT_EQ(s.source_group_view(1, grp, now).session_limit, 5u);
  grants.clear();
  run_until(t0 + 15s);  // 5 s at half share: ~5/s (the bucket was retuned, not refilled)
  EXPECT_GE(grants[1].size(), 24u);
  EXPECT_LE(grants[1].size(), 5u + 25u + 1u);
  // Not yet the next level: the clock restarted when it climbed.
  EXPECT_DOUBLE_EQ(s.source_group_view(1, grp, now).share, 0.5);
  // A block drops it a level.
  Grant g;
  for (int guard = 0;; ++guard) {
    ASSERT_LT(guard, 1000);
    if (!s.next_ready(now, g)) {
      now = *s.next_deadline();
      continue;
    }
    if (g.source == 1) break;
    for (auto& it : g.items)
      s.on_outcome(g.session, it.id, kAccepted, now);
    s.on_session_ended(g.session, now);
  }
  s.on_outcome(g.session, g.items[0].id, blocked_reply(), now);
  s.on_session_ended(g.session, now);
  EXPECT_DOUBLE_EQ(s.source_group_view(1, grp, now).share, 0.1);
  // The state survives a round trip through text.
  const WarmupState st = s.warmup_state(1, now);
  EXPECT_EQ(st.level, 0u);
  EXPECT_EQ(parse_warmup_state(to_string(st)), st);
  EXPECT_EQ(s.warmup_state(0, now).level, 2u);
}

TEST(Warmup, StateRoundTripAndLadder) {
  WarmupSettings ws;
  ws.enabled = true;
  ws.shares = {0.25, 0.5, 1.0};
  ws.step = 60s;
  ws.min_sessions = 1;
  Warmup w(ws, std::nullopt, t0);
  EXPECT_EQ(w.share(t0), 0.25);
  EXPECT_EQ(w.share(t0 + 120s), 0.25);  // time alone is not enough: no clean session yet
  w.on_clean_session();
  EXPECT_EQ(w.share(t0 + 120s), 0.5);
  w.on_clean_session();
  EXPECT_EQ(w.share(t0 + 150s), 0.5);  // the clock restarted at the climb
  w.on_trouble(t0 + 170s);             // a back-off reply restarts it again
  w.on_clean_session();
  EXPECT_EQ(w.share(t0 + 200s), 0.5);
  EXPECT_EQ(w.share(t0 + 230s), 1.0);
  w.on_block(t0 + 231s);
  EXPECT_EQ(w.share(t0 + 231s), 0.5);
  const WarmupState st = w.state(t0 + 241s);
  EXPECT_EQ(st, (WarmupState{1, 10s, 0}));
  EXPECT_EQ(to_string(st), "warmup/1 level=1 clean_ms=10000 clean_sessions=0");
  EXPECT_EQ(parse_warmup_state(to_string(st)), st);
  EXPECT_FALSE(parse_warmup_state("warmup/1 level=1"));
  EXPECT_FALSE(parse_warmup_state("warmup/2 level=1 clean_ms=0 clean_sessions=0"));
  EXPECT_FALSE(parse_warmup_state("warmup/1 level=x clean_ms=0 clean_sessions=0"));
  Warmup restored(ws, st, t0 + 1000s);
  EXPECT_EQ(restored.share(t0 + 1000s), 0.5);
  EXPECT_EQ(restored.state(t0 + 1000s), st);
  ws.enabled = false;
  EXPECT_EQ(Warmup(ws, std::nullopt, t0).share(t0), 1.0);
}

// --- Session budgets -----------------------------------------------------------------------

TEST(Scheduler, RejectionBudgetBoundsEverySession) {
  Harness h(make_policy({{"session.recipients", "10"}, {"session.rejections", "3"}}));
  h.add("r.test", "mx.r.test", 20);
  Grant g;
  ASSERT_TRUE(h.s.next_ready(h.now, g));
  ASSERT_EQ(g.items.size(), 3u);  // a batch that all fails still stays within the budget
  h.s.on_outcome(g.session, g.items[0].id, kRejected, h.now);
  h.s.on_outcome(g.session, g.items[1].id, kRejected, h.now);
  h.s.on_outcome(g.session, g.items[2].id, kAccepted, h.now);
  std::vector<ItemRef> more;
  ASSERT_EQ(h.s.refill(g.session, h.now, more), 1u);  // 3 - 2 rejections
  h.s.on_outcome(g.session, more[0].id, kAccepted, h.now);
  more.clear();
  ASSERT_EQ(h.s.refill(g.session, h.now, more), 1u);
  h.s.on_outcome(g.session, more[0].id, kRejected, h.now);
  more.clear();
  EXPECT_EQ(h.s.refill(g.session, h.now, more), 0u);  // 3 rejections: rotate
  h.s.on_session_ended(g.session, h.now);
  // The recipient budget: 10 per session, however clean.
  Grant g2;
  ASSERT_TRUE(h.s.next_ready(h.now, g2));
  size_t total = g2.items.size();
  for (auto& it : g2.items)
    h.s.on_outcome(g2.session, it.id, kAccepted, h.now);
  while (true) {
    more.clear();
    const size_t n = h.s.refill(g2.session, h.now, more);
    if (!n) break;
    total += n;
    for (auto& it : more)
      h.s.on_outcome(g2.session, it.id, kAccepted, h.now);
  }
  EXPECT_EQ(total, 10u);
}

TEST(Scheduler, RecipientLimitAndSessionEndRequeueWithoutATry) {
  Harness h(make_policy({{"session.recipients", "3"}}));
  h.add("q.test", "mx.q.test", 3);
  Grant g;
  ASSERT_TRUE(h.s.next_ready(h.now, g));
  ASSERT_EQ(g.items.size(), 3u);
  Classification limit = make(Verdict::Unknown, Reason::RateLimited);
  limit.recipient_limit = limit.retry_later = true;
  limit.scope = verdict::Scope::Transaction;
  auto disp = h.s.on_outcome(g.session, g.items[0].id, limit, h.now);
  EXPECT_EQ(disp.kind, Kind::Retry);
  EXPECT_EQ(disp.not_before, h.now);
  // Session over with one recipient undecided: it is requeued too.
  h.s.on_outcome(g.session, g.items[1].id, kAccepted, h.now);
  h.s.on_session_ended(g.session, h.now);
  EXPECT_EQ(h.s.on_outcome(g.session, g.items[2].id, kAccepted, h.now).kind, Kind::Invalid);
  Grant g2;
  ASSERT_TRUE(h.s.next_ready(h.now, g2));
  std::set<uint64_t> keys;
  for (auto& it : g2.items)
    keys.insert(it.key);
  EXPECT_EQ(keys, (std::set<uint64_t>{g.items[0].key, g.items[2].key}));
}

TEST(Scheduler, RequeueRemoveDrainAndFailover) {
  Harness h(make_policy({{"session.recipients", "2"}}));
  const DomainId d = h.s.domain("f.test");
  // Queued before DNS answered: nothing is scheduled without a group.
  for (int i = 0; i < 4; ++i)
    h.s.enqueue(h.next_key++, d, h.now);
  const ItemId later = h.s.enqueue(h.next_key++, d, h.now, h.now + 30s);
  Grant g;
  EXPECT_FALSE(h.s.next_ready(h.now, g));
  // DNS answered: the catch-all probe goes ahead of everything queued.
  const uint64_t probe = h.next_key++;
  h.s.enqueue(probe, d, h.now, TimePoint{}, true);
  const GroupId mx1 = h.s.group_for_mx("mx1.f.test");
  h.s.set_domain_group(d, mx1, h.now);
  ASSERT_TRUE(h.s.next_ready(h.now, g));
  EXPECT_EQ(g.group, mx1);
  EXPECT_EQ(g.items[0].key, probe);
  // mx1 refuses the connection: fail over to mx2, with the same addresses.
  const GroupId mx2 = h.s.group_for_mx("mx2.f.test");
  h.s.set_domain_group(d, mx2, h.now);
  for (auto it = g.items.rbegin(); it != g.items.rend(); ++it)  // each to the front
    EXPECT_TRUE(h.s.requeue(it->id, h.now));
  h.s.on_session_ended(g.session, h.now, SessionEnd::ConnectFailed);
  EXPECT_EQ(h.s.group_view(mx1, h.now).aimd.decreases, 1u);
  Grant g2;
  ASSERT_TRUE(h.s.next_ready(h.now, g2));
  EXPECT_EQ(g2.group, mx2);
  EXPECT_EQ(g2.items[0].key, g.items[0].key);  // requeued at the front, order kept
  EXPECT_EQ(g2.items[0].tries, 0u);
  EXPECT_TRUE(h.s.remove(g2.items[1].id));
  EXPECT_FALSE(h.s.remove(g2.items[1].id));
  h.s.on_session_ended(g2.session, h.now);
  std::vector<uint64_t> drained;
  // The in-flight one went back to the queue when its session ended: 4 due + 1 waiting.
  EXPECT_EQ(h.s.drain_domain(d, drained), 5u);
  EXPECT_FALSE(h.s.remove(later));
  EXPECT_EQ(h.s.stats().ready + h.s.stats().waiting + h.s.stats().in_flight, 0u);
  EXPECT_FALSE(h.s.next_deadline());  // the waiting item's timer went with it
  EXPECT_FALSE(h.s.next_ready(h.now, g));
}

// --- Policy swap ---------------------------------------------------------------------------

TEST(Scheduler, PolicySwapKeepsQueuedWorkAndAppliesNewLimits) {
  Harness h(make_policy({{"per_domain.sessions", "1"},
                         {"session.recipients", "2"},
                         {"per_mx.connect_rate", "0.1"},
                         {"per_mx.connect_burst", "2"}}));
  h.add("a.test", "mx.a.test", 30);
  h.add("b.test", "mx.b.test", 30, h.now + 30s);
  auto first = h.grant_all();
  EXPECT_EQ(first.size(), 1u);  // a.test only (b.test is not due), one session per domain
  const GroupId ga = h.s.group_for_mx("mx.a.test");
  h.now += 1s;
  h.finish(first[0]);
  EXPECT_EQ(h.grant_all().size(), 1u);  // the group's second token
  EXPECT_TRUE(h.grant_all().empty());
  EXPECT_TRUE(h.s.group_view(ga, h.now).parked_on_timer ||
              h.s.group_view(ga, h.now).parked_on_sessions);
  // SIGHUP: wider limits. Nothing queued is lost, the parked group is looked at again.
  h.s.set_policy(make_policy({{"per_domain.sessions", "3"}, {"session.recipients", "2"}}), h.now);
  auto more = h.grant_all();
  EXPECT_EQ(more.size(), 2u);  // a.test: 3 sessions now (one already open)
  std::set<uint64_t> seen;
  for (auto& g : first)
    for (auto& it : g.items)
      seen.insert(it.key);
  size_t finals = first[0].items.size();
  std::vector<Grant> open = more;
  while (true) {
    for (auto& g : open) {
      for (auto& it : g.items) {
        EXPECT_TRUE(seen.insert(it.key).second) << "handed out twice";
        ASSERT_EQ(h.s.on_outcome(g.session, it.id, kAccepted, h.now).kind, Kind::Final);
        ++finals;
      }
      h.s.on_session_ended(g.session, h.now);
    }
    open = h.grant_all();
    if (open.empty()) {
      auto d = h.s.next_deadline();
      if (!d) break;
      h.now = std::max(h.now, *d);
    }
  }
  // The session granted before the swap is still open: its items are its own.
  EXPECT_EQ(h.s.stats().in_flight, 2u);
  EXPECT_EQ(finals + 2, 60u);
  EXPECT_EQ(h.s.stats().ready + h.s.stats().waiting, 0u);
}

// --- Events and domain release --------------------------------------------------------------

TEST(Scheduler, EventsTellBackoffRecoveryAndBlocksOnce) {
  Harness h(make_policy({{"per_mx.sessions", "4"},
                         {"backoff.initial_sessions", "4"},
                         {"backoff.rate_increase", "0.5"},
                         {"backoff.holdoff", "\"1s\""},
                         {"block_cooldown", "\"60s\""},
                         {"session.recipients", "1"}}),
            2);
  h.add("busy.test", "mx.busy.test", 100);
  const GroupId g = h.s.group_for_mx("mx.busy.test");
  auto open = h.grant_all();
  ASSERT_EQ(open.size(), 4u);
  for (auto& gr : open)
    h.finish(gr, too_busy());  // one storm: one counted back-off, one event
  auto e = h.s.pop_event();
  ASSERT_TRUE(e);
  EXPECT_EQ(e->kind, SchedEvent::Kind::BackOff);
  EXPECT_EQ(e->group, g);
  EXPECT_DOUBLE_EQ(e->aimd.rate_factor, 0.5);
  EXPECT_EQ(e->reason, "rate_limited");
  EXPECT_FALSE(h.s.pop_event());
  // Clean sessions: the factor climbs 0.5 -> 1.0 in one step; one Recovered event.
  Grant gr;
  ASSERT_TRUE(h.s.next_ready(h.now, gr));
  h.finish(gr);
  e = h.s.pop_event();
  ASSERT_TRUE(e);
  EXPECT_EQ(e->kind, SchedEvent::Kind::Recovered);
  EXPECT_DOUBLE_EQ(e->aimd.rate_factor, 1.0);
  ASSERT_TRUE(h.s.next_ready(h.now, gr));
  h.finish(gr);
  EXPECT_FALSE(h.s.pop_event());  // already at 1: nothing new
  // A session whose every recipient is blocked: one Blocked event, resting until +60 s.
  ASSERT_TRUE(h.s.next_ready(h.now, gr));
  const SourceId src = gr.source;
  h.finish(gr, blocked_reply());
  e = h.s.pop_event();
  ASSERT_TRUE(e);
  EXPECT_EQ(e->kind, SchedEvent::Kind::Blocked);
  EXPECT_EQ(e->source, src);
  EXPECT_EQ(e->until, h.now + 60s);
  EXPECT_FALSE(h.s.pop_event());
}

TEST(Scheduler, ReleaseDomainRecyclesIdleDomainsOnly) {
  Harness h(make_policy({{"per_domain.connect_rate", "1"}, {"per_domain.connect_burst", "1"}}));
  const DomainId a = h.add("a.test", "mx.test", 1);
  EXPECT_FALSE(h.s.release_domain(a));  // queued work
  Grant gr;
  ASSERT_TRUE(h.s.next_ready(h.now, gr));
  EXPECT_FALSE(h.s.release_domain(a));  // in flight
  h.finish(gr);
  EXPECT_EQ(h.s.stats().domains, 1u);
  EXPECT_TRUE(h.s.release_domain(a));
  EXPECT_FALSE(h.s.release_domain(a));  // already gone
  EXPECT_EQ(h.s.stats().domains, 0u);
  // The id is reused by the next domain, which starts clean: no group, full buckets.
  const DomainId b = h.s.domain("b.test");
  EXPECT_EQ(b, a);
  EXPECT_EQ(h.s.domain_name(b), "b.test");
  EXPECT_EQ(h.s.domain_group(b), kNone);
  h.s.set_domain_group(b, h.s.group_for_mx("mx.test"), h.now);
  h.s.enqueue(99, b, h.now);
  ASSERT_TRUE(h.s.next_ready(h.now, gr));  // a.test's spent token is not b.test's
  ASSERT_EQ(gr.items.size(), 1u);
  EXPECT_EQ(gr.items[0].key, 99u);
  // "a.test" seen again gets a fresh id: the old name was forgotten.
  EXPECT_NE(h.s.domain("a.test"), b);
}

TEST(Scheduler, NewProviderPatternChangesAHostGroupWithoutSplittingIt) {
  Harness h(make_policy({{"per_mx.sessions", "10"}}));
  const GroupId g = h.s.group_for_mx("mx1.farm.test");
  EXPECT_EQ(h.s.group_settings(g).mx.sessions, 10u);
  // A live change for that one host (what `serve` does): a provider matching it exactly.
  h.s.set_policy(make_policy({{"per_mx.sessions", "10"}},
                             "[provider.live_0]\nmatch = [\"mx1.farm.test\"]\n"
                             "per_mx = { sessions = 2 }\n"),
                 h.now);
  EXPECT_EQ(h.s.group_for_mx("mx1.farm.test"), g);  // still one group for the host
  EXPECT_EQ(h.s.group_settings(g).mx.sessions, 2u);
  EXPECT_EQ(h.s.group_count(), 1u);
}

// --- Catch-all cache -----------------------------------------------------------------------

TEST(CatchAllCache, OneProbePerDomainThenTheFact) {
  CatchAllCache c;
  EXPECT_EQ(c.state("a.test"), CatchAllCache::State::Unknown);
  EXPECT_TRUE(c.begin_probe("a.test"));
  EXPECT_FALSE(c.begin_probe("a.test"));  // in flight: nobody else probes
  EXPECT_EQ(c.state("a.test"), CatchAllCache::State::Probing);
  EXPECT_EQ(c.fact("a.test"), verdict::CatchAll::Unknown);
  c.record("a.test", kAccepted);  // the random address was accepted: catch-all
  EXPECT_EQ(c.fact("a.test"), verdict::CatchAll::Yes);
  EXPECT_FALSE(c.begin_probe("a.test"));
  EXPECT_TRUE(c.begin_probe("b.test"));
  c.record("b.test", kRejected);
  EXPECT_EQ(c.fact("b.test"), verdict::CatchAll::No);
  EXPECT_TRUE(c.begin_probe("c.test"));
  c.forget("c.test");  // could not probe: may try again
  EXPECT_TRUE(c.begin_probe("c.test"));
  auto saved = c.entries();
  EXPECT_EQ(saved.size(), 2u);
  CatchAllCache d;
  d.restore(saved);
  EXPECT_EQ(d.fact("a.test"), verdict::CatchAll::Yes);
  EXPECT_EQ(d.probe("b.test"), kRejected);
}

}  // namespace
}  // namespace mxp::sched
