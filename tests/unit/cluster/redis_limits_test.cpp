// RedisRemoteLimits against a real redis-server on both loop backends: two nodes (a Scheduler
// each, with its own limiter and Redis connection, driven directly: sessions granted, held for a
// while, ended) share one MX group's budget. Their combined grants stay within the global
// connection rate and session cap (not twice it), a node's slots outlive it only until their TTL
// and then go to the other, a back-off at one node lowers the group's rate at the other, the
// Redis commands per verification (INFO commandstats) stay under 1 per 20, and a Redis restart
// pauses the grants and they resume.
#include <gtest/gtest.h>

#include <algorithm>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "cluster/functions.hpp"
#include "cluster/redis_limits.hpp"
#include "redis_fixture.hpp"
#include "sched/scheduler.hpp"

namespace mxp::cluster {
namespace {

using namespace std::chrono_literals;
using sched::DomainId;
using sched::GroupId;

// One provider group (*.big.test) with the given per_mx limits; every other limit open, so only
// the remote limits can say no. per_domain's cap is looser than the group's: domains stay local.
std::shared_ptr<const sched::Policy> policy(uint32_t sessions, double connect_rate,
                                            uint32_t connect_burst, uint32_t recipients) {
  const std::string text = R"(
[global]
max_sessions = 100000
builtin_providers = false
[defaults]
per_source = { sessions = 100000, connect_rate = 0, rcpt_rate = 0 }
per_domain = { sessions = 100000, connect_rate = 0, rcpt_rate = 0 }
retry = { schedule = ["10s"], attempts = 3 }
[provider.big]
match = ["*.big.test"]
per_mx = { sessions = )" + std::to_string(sessions) +
                           ", connect_rate = " + std::to_string(connect_rate) +
                           ", connect_burst = " + std::to_string(connect_burst) +
                           R"(, rcpt_rate = 0 }
session = { recipients = )" +
                           std::to_string(recipients) +
                           R"(, rejections = 1000 }
)";
  auto p = sched::parse_policy(text, "test policy");
  EXPECT_TRUE(p) << p.error().to_string();
  return std::make_shared<const sched::Policy>(p ? std::move(*p) : sched::Policy::builtin());
}

verdict::Classification accepted() {
  verdict::Classification c;
  c.verdict = Verdict::Deliverable;
  c.reason = Reason::Accepted;
  return c;
}

// A node: its Redis connection, and a scheduler with its limiter (declared after the client,
// so destroyed first: the limiter gives its slots back through it).
struct Node {
  std::unique_ptr<RedisClient> redis;
  RedisRemoteLimits* limits = nullptr;
  std::unique_ptr<sched::Scheduler> sched;
  GroupId group = sched::kNone;
  struct Open {
    sched::SessionId id;
    std::vector<sched::ItemRef> items;
    TimePoint end;
  };
  std::vector<Open> open;
  std::vector<TimePoint> grants;
  uint64_t rcpts = 0;
  bool paused = false;  // a "dead" node: no more decisions, its sessions never end
};

class RedisLimitsTest : public testing::LoopFixture, private loop::TimerHandler {
 protected:
  void SetUp() override {
    LoopFixture::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    server_ = start_server();
    ASSERT_TRUE(server_->ok());
    admin_ = connect();
  }
  void TearDown() override {
    if (timer_armed_) loop_->cancel_timer(timer_);
    nodes_.clear();
    admin_.reset();
    server_.reset();
  }

  std::unique_ptr<RedisClient> connect() {
    ClientOptions o;
    o.setup = {functions::load_command()};
    o.backoff_initial = 20ms;
    o.backoff_max = 200ms;
    return client(server_->url(), o);
  }

  // A node with `addresses` queued over 20 domains of the big group.
  Node& add_node(std::shared_ptr<const sched::Policy> p, size_t addresses,
                 RedisLimitsOptions o = {}) {
    auto n = std::make_unique<Node>();
    n->redis = connect();
    o.holder = "node" + std::to_string(nodes_.size());
    auto limits = std::make_unique<RedisRemoteLimits>(*loop_, *n->redis, o);
    n->limits = limits.get();
    const TimePoint now = loop_->now();
    n->sched = std::make_unique<sched::Scheduler>(std::move(p), std::vector<sched::SourceSpec>{},
                                                  now, std::move(limits));
    Node* raw = n.get();
    n->limits->set_notifier([this, raw](GroupId g, DomainId d) {
      raw->sched->remote_limits_changed(g, d, loop_->now());
    });
    n->group = n->sched->group_for_mx("mx.big.test");
    for (size_t i = 0; i < addresses; ++i) {
      const DomainId d = n->sched->domain("d" + std::to_string(i % 20) + ".test");
      n->sched->set_domain_group(d, n->group, now);
      n->sched->enqueue(i, d, now);
    }
    nodes_.push_back(std::move(n));
    return *nodes_.back();
  }

  // Drives every node every 2 ms: ends the sessions due, opens what the scheduler grants.
  void drive(Duration session_length) {
    session_length_ = session_length;
    if (!timer_armed_) arm();
  }
  void arm() {
    timer_ = loop_->add_timer(loop_->now() + 2ms, *this);
    timer_armed_ = true;
  }
  void on_timer(loop::TimerId, uint64_t) override {
    timer_armed_ = false;
    const TimePoint now = loop_->now();
    for (auto& n : nodes_) {
      if (n->paused) continue;
      for (size_t i = 0; i < n->open.size();) {
        if (n->open[i].end > now) {
          ++i;
          continue;
        }
        for (const auto& it : n->open[i].items)
          n->sched->on_outcome(n->open[i].id, it.id, accepted(), now);
        n->sched->on_session_ended(n->open[i].id, now);
        n->open[i] = std::move(n->open.back());
        n->open.pop_back();
      }
      sched::Grant g;
      while (n->sched->next_ready(now, g)) {
        n->grants.push_back(now);
        n->rcpts += g.items.size();
        n->open.push_back({g.session, g.items, now + session_length_});
      }
    }
    size_t open = 0;
    for (auto& n : nodes_)
      open += n->open.size();
    max_open_ = std::max(max_open_, open);
    arm();
    poke();
  }

  static size_t in_window(const Node& n, TimePoint a, TimePoint b) {
    return static_cast<size_t>(std::count_if(n.grants.begin(), n.grants.end(),
                                             [&](TimePoint t) { return t >= a && t < b; }));
  }
  // FCALLs Redis ran (INFO commandstats), the limiter's own commands.
  uint64_t fcalls() {
    const Reply r = reply(*admin_, {"INFO", "commandstats"});
    const auto at = r.str.find("cmdstat_fcall:calls=");
    if (at == std::string::npos) return 0;
    return std::stoull(r.str.substr(at + 20));
  }

  std::unique_ptr<testing::RedisServer> server_;
  std::unique_ptr<RedisClient> admin_;
  std::vector<std::unique_ptr<Node>> nodes_;
  Duration session_length_{};
  size_t max_open_ = 0;
  loop::TimerId timer_{};
  bool timer_armed_ = false;
};

TEST_P(RedisLimitsTest, TwoNodesShareTheConnectionRate) {
  // 10 connections per second (burst 5) for the group, 20 recipients per session; each node has
  // work for far more. Alone, each would open 10 a second; together they must too.
  constexpr double kRate = 10;
  constexpr uint32_t kBurst = 5;
  auto p = policy(100, kRate, kBurst, 20);
  Node& a = add_node(p, 100'000);
  Node& b = add_node(p, 100'000);
  const uint64_t fcalls_before = fcalls();
  drive(20ms);
  const TimePoint start = loop_->now();
  run_for(1s);  // warm-up: the batches adapt to the consumption
  const TimePoint from = loop_->now();
  run_for(3s);
  const TimePoint to = loop_->now();
  const uint64_t fcalls_after = fcalls();
  const size_t ga = in_window(a, from, to), gb = in_window(b, from, to);
  const double T = std::chrono::duration<double>(to - from).count();
  std::cout << "[ grants ] node a " << ga << ", node b " << gb << " in " << T << " s (global rate "
            << kRate << "/s, burst " << kBurst << ")\n";
  // Tokens granted by Redis over [from - 1 s, to] are at most burst + rate x (T + 1): a lease
  // holds at most 1 s of the rate. Two nodes limited each on their own would open ~2 x rate x T.
  EXPECT_LE(static_cast<double>(ga + gb), kBurst + kRate * (T + 1));
  EXPECT_GE(static_cast<double>(ga + gb), 0.7 * kRate * T);  // and the budget is used
  // (How the budget splits between the nodes is not asserted: the limiter makes it global, not
  // even; docs/cluster.md gives the splits measured.)
  // Commands per verification, Redis' own count (every FCALL since the start, warm-up too).
  const uint64_t verifications = a.rcpts + b.rcpts;
  const uint64_t commands = fcalls_after - fcalls_before;
  std::cout << "[ cost   ] " << commands << " FCALLs for " << verifications
            << " verifications: " << static_cast<double>(commands) / verifications
            << " per verification (limiters sent " << a.limits->stats().commands << " + "
            << b.limits->stats().commands << ")\n";
  EXPECT_GT(verifications, 0u);
  EXPECT_LE(commands * 20, verifications);
  EXPECT_EQ(a.limits->state(), RedisRemoteLimits::State::Up);
  // With far more work than the global rate, leases come back short (the nodes wait for the
  // budget): counted for /metrics, and never more than the leases themselves.
  for (const Node* n : {&a, &b}) {
    const auto& st = n->limits->stats();
    EXPECT_LE(st.lease_waits, st.leases);
  }
  EXPECT_GT(a.limits->stats().lease_waits + b.limits->stats().lease_waits, 0u);
  (void)start;
}

TEST_P(RedisLimitsTest, TwoNodesShareTheSessionCap) {
  // A cap of 3 sessions for the group, no rate limit, sessions of 100 ms: each node alone would
  // hold 3 at once.
  auto p = policy(3, 0, 1, 5);
  Node& a = add_node(p, 100'000);
  Node& b = add_node(p, 100'000);
  drive(100ms);
  run_for(4s);
  std::cout << "[ cap    ] most sessions at once " << max_open_ << ", grants a " << a.grants.size()
            << ", b " << b.grants.size() << "\n";
  EXPECT_LE(max_open_, 3u);
  EXPECT_EQ(max_open_, 3u);  // and the cap is used
  EXPECT_GT(a.grants.size() + b.grants.size(), 40u);
  // Slots held too long are given back: both nodes get a turn.
  EXPECT_GT(a.grants.size(), 0u);
  EXPECT_GT(b.grants.size(), 0u);
}

TEST_P(RedisLimitsTest, ADeadNodesSlotsExpireAndGoToTheOther) {
  auto p = policy(2, 0, 1, 5);
  RedisLimitsOptions o;
  o.slot_ttl = 1s;
  o.renew_every = 300ms;
  Node& a = add_node(p, 1'000, o);
  drive(1h);  // a's sessions never end
  ASSERT_TRUE(eventually([&] { return a.open.size() == 2; }, 5s));
  Node& b = add_node(p, 1'000, o);
  // a renews its slots: for three of their TTLs b gets none.
  run_for(3s);
  EXPECT_EQ(b.grants.size(), 0u);
  // a dies: no more renewals (its connection gone, its sessions never end).
  a.paused = true;
  a.redis->close();
  const TimePoint died = loop_->now();
  ASSERT_TRUE(eventually([&] { return b.open.size() == 2; }, 5s));
  EXPECT_GE(loop_->now() - died, 500ms);  // not before a's holds had run out (TTL 1 s)
  EXPECT_LE(max_open_, 4u);               // a's two (dead) and b's two, never more for b
  const Reply held = reply(*admin_, {"ZCARD", "mxp:rl:s:g:provider:big"});
  EXPECT_EQ(held.integer, 2);
}

TEST_P(RedisLimitsTest, BackOffAtOneNodeSlowsTheOther) {
  auto p = policy(100, 10, 5, 20);
  Node& a = add_node(p, 100'000);
  Node& b = add_node(p, 100'000);
  drive(20ms);
  run_for(500ms);
  EXPECT_DOUBLE_EQ(b.sched->remote_limits().group_view(b.group, loop_->now()).connect_rate, 10);
  EXPECT_TRUE(a.limits->backoff(a.group, loop_->now()));
  // b reads the shared factor with its next lease (within about a second at this rate).
  ASSERT_TRUE(eventually(
      [&] { return b.sched->remote_limits().group_view(b.group, loop_->now()).connect_rate < 6; },
      3s));
  EXPECT_EQ(a.limits->stats().backoffs_shared, 1u);
}

TEST_P(RedisLimitsTest, RedisRestartPausesGrantsAndTheyResume) {
  auto p = policy(100, 20, 5, 5);
  Node& a = add_node(p, 100'000);
  drive(10ms);
  run_for(1s);
  ASSERT_GT(a.grants.size(), 0u);
  server_->kill();
  ASSERT_TRUE(run_until([&] { return !a.redis->up(); }, 10s));
  // What the lease held is used up within its span (1 s of the rate at most); then nothing.
  run_for(1500ms);
  const size_t paused = a.grants.size();
  run_for(1500ms);
  EXPECT_EQ(a.grants.size(), paused);
  EXPECT_EQ(a.limits->state(), RedisRemoteLimits::State::Down);
  EXPECT_GT(a.limits->stats().lease_failures, 0u);
  ASSERT_TRUE(server_->start()) << server_->error();
  ASSERT_TRUE(eventually([&] { return a.grants.size() > paused + 10; }, 10s));
  EXPECT_EQ(a.limits->state(), RedisRemoteLimits::State::Up);
}

INSTANTIATE_TEST_SUITE_P(Backends, RedisLimitsTest,
                         ::testing::Values(loop::Backend::Uring, loop::Backend::Uv),
                         testing::backend_name);

}  // namespace
}  // namespace mxp::cluster
