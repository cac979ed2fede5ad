// The cluster's Redis functions (functions.lua) against a real redis-server, on both loop
// backends: loaded on every connection (again after a restart without persistence), the rate
// lease's batch grants and its rate over time by Redis' own clock, fractional rates, bad
// arguments; concurrency slots: capacity held, release, renew, expiry freeing a dead holder's
// slot, and a renewing holder keeping it; shared catch-all facts and their probe claims (taken,
// refused, released, expired); the results cache's put. Waits are loop timers until a condition
// or deadline.
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "cluster/functions.hpp"
#include "redis_fixture.hpp"

namespace mxp::cluster {
namespace {

using namespace std::chrono_literals;
namespace fn = functions;

class FunctionsTest : public testing::LoopFixture {
 protected:
  void SetUp() override {
    LoopFixture::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    server_ = start_server();
    ASSERT_TRUE(server_->ok());
    ClientOptions o;
    o.setup = {fn::load_command()};
    o.backoff_initial = 20ms;
    c_ = client(server_->url(), o);
    ASSERT_TRUE(c_);
  }
  void TearDown() override {
    c_.reset();
    server_.reset();
  }

  fn::RateLease lease(const std::string& key, int64_t want, double rate, int64_t burst) {
    auto r = fn::parse_rate_lease(reply(*c_, fn::rate_lease(key, want, rate, burst)));
    EXPECT_TRUE(r.ok()) << r.error();
    return r.ok() ? *r : fn::RateLease{-1, {}};
  }
  fn::SlotGrant acquire(const std::string& key, const std::string& holder, int64_t capacity,
                        Duration ttl) {
    auto r = fn::parse_slot_acquire(reply(*c_, fn::slot_acquire(key, holder, capacity, ttl)));
    EXPECT_TRUE(r.ok()) << r.error();
    return r.ok() ? *r : fn::SlotGrant{};
  }

  // Runs the loop for `d` (a timer whose firing is the condition).
  void pass(Duration d) {
    struct Fire : loop::TimerHandler {
      FunctionsTest* self = nullptr;
      bool fired = false;
      void on_timer(loop::TimerId, uint64_t) override {
        fired = true;
        self->poke();
      }
    } f;
    f.self = this;
    const auto id = loop_->add_timer(loop_->now() + d, f);
    const bool ok =
        run_until([&] { return f.fired; }, std::chrono::ceil<std::chrono::milliseconds>(d) + 10s);
    if (!ok) loop_->cancel_timer(id);
    ASSERT_TRUE(ok);
  }

  std::unique_ptr<testing::RedisServer> server_;
  std::unique_ptr<RedisClient> c_;
};

TEST_P(FunctionsTest, LoadedOnEveryConnection) {
  const Reply list = reply(*c_, {"FUNCTION", "LIST", "LIBRARYNAME", std::string(fn::kLibrary)});
  ASSERT_EQ(list.type, Reply::Type::Array);
  ASSERT_EQ(list.elements.size(), 1u) << to_string(list);
  EXPECT_EQ(lease("k:load", 1, 10, 1).granted, 1);
  // Restarted without persistence, Redis has no functions: the handshake loads them again.
  server_->kill();
  // (A command sent before the client sees the connection end would fail with ConnectionLost:
  // it may have run. Wait for the loss, so this one waits for the new server instead.)
  ASSERT_TRUE(run_until([&] { return !c_->up(); }, 10s));
  ASSERT_TRUE(server_->start()) << server_->error();
  EXPECT_EQ(lease("k:load", 1, 10, 1).granted, 1);  // a fresh bucket on the fresh server
  EXPECT_EQ(c_->connection().stats().handshakes, 2u);
}

TEST_P(FunctionsTest, RateLeaseGrantsBatchesUpToTheBurst) {
  // 10 per second, burst 20: an idle bucket grants 20 at once, then one per 100 ms.
  const auto a = lease("k:batch", 8, 10, 20);
  EXPECT_EQ(a.granted, 8);
  EXPECT_EQ(a.wait, 0us);
  const auto b = lease("k:batch", 20, 10, 20);
  EXPECT_EQ(b.granted, 12);  // what was left of the burst
  EXPECT_GT(b.wait, 0us);
  EXPECT_LE(b.wait, 100ms);
  const auto c = lease("k:batch", 5, 10, 20);
  EXPECT_EQ(c.granted, 0);
  EXPECT_GT(c.wait, 0us);
  EXPECT_LE(c.wait, b.wait);
  // want 0 only asks when the next token comes; it takes nothing.
  const auto d = lease("k:batch", 0, 10, 20);
  EXPECT_EQ(d.granted, 0);
  EXPECT_GT(d.wait, 0us);
  // The bucket is a key that lives until its theoretical arrival time passes (~2 s here).
  const Reply pttl = reply(*c_, {"PTTL", "k:batch"});
  EXPECT_GT(pttl.integer, 1000);
  EXPECT_LE(pttl.integer, 2001);
  // Other keys are other buckets.
  EXPECT_EQ(lease("k:other", 20, 10, 20).granted, 20);
}

TEST_P(FunctionsTest, FractionalRate) {
  // One per 2 s, burst 1.
  const auto a = lease("k:slow", 3, 0.5, 1);
  EXPECT_EQ(a.granted, 1);
  EXPECT_EQ(a.wait, 2s);
  const auto b = lease("k:slow", 3, 0.5, 1);
  EXPECT_EQ(b.granted, 0);
  EXPECT_GT(b.wait, 1500ms);
  EXPECT_LE(b.wait, 2s);
}

TEST_P(FunctionsTest, RateHonouredOverTimeByRedisClock) {
  // 50 per second, burst 10, asked for 1000 at a time whenever the last answer says a token
  // fits, for a second of Redis time: at most burst + rate * elapsed tokens (GCRA's bound),
  // and close to it (the loop asks on time; tokens accrue up to the burst if it is late).
  constexpr double kRate = 50;
  constexpr int64_t kBurst = 10;
  const int64_t start_us = redis_time_us(*c_);
  int64_t granted = 0;
  int calls = 0;
  int64_t now_us = start_us;
  while (now_us - start_us < 1'000'000) {
    const auto l = lease("k:rate", 1000, kRate, kBurst);
    ASSERT_GE(l.granted, 0);
    granted += l.granted;
    ++calls;
    pass(std::max<Duration>(l.wait, 1ms));
    now_us = redis_time_us(*c_);
  }
  const double elapsed = static_cast<double>(now_us - start_us) / 1e6;
  EXPECT_LE(granted, kBurst + static_cast<int64_t>(kRate * elapsed) + 1)
      << "elapsed " << elapsed << " s, " << calls << " calls";
  EXPECT_GE(granted, static_cast<int64_t>(kRate * elapsed * 0.7))
      << "elapsed " << elapsed << " s, " << calls << " calls";
}

TEST_P(FunctionsTest, BadArgumentsAreErrors) {
  auto r = fn::parse_rate_lease(reply(*c_, fn::rate_lease("k:bad", 1, 0, 1)));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("rate > 0"), std::string::npos) << r.error();
  auto s = fn::parse_slot_acquire(reply(*c_, fn::slot_acquire("k:bad2", "h", 0, 1s)));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().find("capacity >= 1"), std::string::npos) << s.error();
}

TEST_P(FunctionsTest, SlotCapacityReleaseRenew) {
  const std::string key = "k:slots";
  for (const char* h : {"n1:1", "n1:2", "n2:1"}) {
    const auto g = acquire(key, h, 3, 10s);
    EXPECT_TRUE(g.granted) << h;
  }
  const auto full = acquire(key, "n3:1", 3, 10s);
  EXPECT_FALSE(full.granted);
  EXPECT_EQ(full.held, 3);
  EXPECT_GT(full.wait, 9s);  // the earliest hold ends in ~10 s
  EXPECT_LE(full.wait, 10s);
  // A holder asking again keeps its one slot.
  const auto again = acquire(key, "n1:1", 3, 10s);
  EXPECT_TRUE(again.granted);
  EXPECT_EQ(again.held, 3);
  // Release frees a slot for another.
  const std::vector<std::string> gone = {"n1:2", "never-held"};
  auto released = fn::parse_slot_release(reply(*c_, fn::slot_release(key, gone)));
  ASSERT_TRUE(released.ok()) << released.error();
  EXPECT_EQ(*released, 1);
  EXPECT_TRUE(acquire(key, "n3:1", 3, 10s).granted);
  // Renew: the holders that hold are extended, a stranger is not made one.
  const std::vector<std::string> renew = {"n1:1", "n9:9", "n3:1"};
  auto renewed = fn::parse_slot_renew(reply(*c_, fn::slot_renew(key, 20s, renew)));
  ASSERT_TRUE(renewed.ok()) << renewed.error();
  EXPECT_EQ(*renewed, (std::vector<bool>{true, false, true}));
  EXPECT_FALSE(acquire(key, "n9:9", 3, 10s).granted);
  // The set lives as long as its longest hold (20 s now).
  const Reply pttl = reply(*c_, {"PTTL", key});
  EXPECT_GT(pttl.integer, 19'000);
  EXPECT_LE(pttl.integer, 20'001);
}

TEST_P(FunctionsTest, ExpiryFreesADeadHoldersSlot) {
  const std::string key = "k:expiry";
  const auto t0 = loop_->now();
  ASSERT_TRUE(acquire(key, "dead-node:1", 1, 300ms).granted);
  // The dead node never renews. Another asks again whenever the answer says a hold may end.
  fn::SlotGrant g = acquire(key, "live-node:1", 1, 5s);
  EXPECT_FALSE(g.granted);
  EXPECT_LE(g.wait, 300ms);
  while (!g.granted && loop_->now() - t0 < 10s) {
    pass(std::max<Duration>(g.wait, 1ms));
    g = acquire(key, "live-node:1", 1, 5s);
  }
  EXPECT_TRUE(g.granted);
  EXPECT_GE(loop_->now() - t0, 250ms) << "the slot was free before the hold expired";
  EXPECT_EQ(g.held, 1);  // the dead holder is gone, not counted
  const Reply holders = reply(*c_, {"ZRANGE", key, "0", "-1"});
  ASSERT_EQ(holders.elements.size(), 1u);
  EXPECT_EQ(holders.elements[0].str, "live-node:1");
  // Released, the key goes away at once (nothing left to expire).
  const std::vector<std::string> mine = {"live-node:1"};
  EXPECT_EQ(*fn::parse_slot_release(reply(*c_, fn::slot_release(key, mine))), 1);
  EXPECT_EQ(reply(*c_, {"EXISTS", key}).integer, 0);
}

TEST_P(FunctionsTest, RenewingHolderKeepsItsSlot) {
  // Hold 1 s, renewed every 100 ms for 2.5 s (2.5 hold times): the other never gets in.
  const std::string key = "k:renew";
  const std::vector<std::string> mine = {"live:1"};
  ASSERT_TRUE(acquire(key, "live:1", 1, 1s).granted);
  const auto t0 = loop_->now();
  while (loop_->now() - t0 < 2500ms) {
    pass(100ms);
    auto r = fn::parse_slot_renew(reply(*c_, fn::slot_renew(key, 1s, mine)));
    ASSERT_TRUE(r.ok()) << r.error();
    ASSERT_EQ(*r, std::vector<bool>{true}) << "lost the hold while renewing";
    ASSERT_FALSE(acquire(key, "other:1", 1, 1s).granted);
  }
  // It stops renewing: within its hold time the other gets the slot.
  fn::SlotGrant g = acquire(key, "other:1", 1, 1s);
  const auto t1 = loop_->now();
  while (!g.granted && loop_->now() - t1 < 10s) {
    pass(std::max<Duration>(g.wait, 1ms));
    g = acquire(key, "other:1", 1, 1s);
  }
  EXPECT_TRUE(g.granted);
  auto r = fn::parse_slot_renew(reply(*c_, fn::slot_renew(key, 1s, mine)));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, std::vector<bool>{false}) << "an expired hold came back";
}

TEST_P(FunctionsTest, LeaseTakesTokensAndSlotsInOneCall) {
  const fn::LeaseKeys k{"k:lc", "k:lr", "k:lbo", "k:ls"};
  fn::LeaseAsk a;
  a.want_connects = 3;
  a.connect_rate = 10;
  a.connect_burst = 2;
  a.want_rcpts = 50;
  a.rcpt_rate = 0;  // unlimited: granted as asked, no key written
  a.capacity = 2;
  a.window = 2;
  a.ttl = 10s;
  a.holders = {"n:1", "n:2", "n:3"};
  auto l = fn::parse_lease(reply(*c_, fn::lease(k, a)));
  ASSERT_TRUE(l.ok()) << l.error();
  EXPECT_EQ(l->connects, 2);  // the burst
  EXPECT_GT(l->connect_wait, 0us);
  EXPECT_EQ(l->rcpts, 50);
  EXPECT_EQ(l->slots, 2);  // the capacity: n:1 and n:2
  EXPECT_GT(l->slot_wait, 0ms);
  EXPECT_DOUBLE_EQ(l->factor, 1.0);
  EXPECT_EQ(reply(*c_, {"EXISTS", "k:lr"}).integer, 0);
  EXPECT_EQ(reply(*c_, {"ZCARD", "k:ls"}).integer, 2);
  EXPECT_EQ(reply(*c_, {"ZSCORE", "k:ls", "n:3"}).type, Reply::Type::Nil);
}

// A fresh bucket grants its whole burst at any rate, whatever the clock says: times near
// 1.7e15 us lose a double's precision, and a rate whose interval is not a whole number of
// microseconds once made a full bucket grant nothing with a wait of 0.
TEST_P(FunctionsTest, FreshBucketGrantsItsBurstAtAnyRate) {
  const double rates[] = {5.00005, 7, 3.3, 0.3, 1000, 123.456};
  int key = 0;
  for (double rate : rates) {
    for (int burst : {1, 2, 5}) {
      for (int i = 0; i < 10; ++i) {
        const std::string k = "k:fresh:" + std::to_string(key++);
        auto l = lease(k, burst + 1, rate, burst);
        EXPECT_EQ(l.granted, burst) << "rate " << rate << " burst " << burst;
        EXPECT_GT(l.wait, 0us) << "rate " << rate << " burst " << burst;
      }
    }
  }
}

TEST_P(FunctionsTest, SharedBackOffScalesLeasesAndCountsOncePerHoldOff) {
  auto b1 = fn::parse_backoff(reply(*c_, fn::backoff("k:bo", 0.5, 0.1, 0.001, 2s)));
  ASSERT_TRUE(b1.ok()) << b1.error();
  EXPECT_TRUE(b1->counted);
  EXPECT_NEAR(b1->factor, 0.5, 0.001);
  // Another node, the same storm: within the hold-off it does not count again.
  auto b2 = fn::parse_backoff(reply(*c_, fn::backoff("k:bo", 0.5, 0.1, 0.001, 2s)));
  ASSERT_TRUE(b2.ok());
  EXPECT_FALSE(b2->counted);
  EXPECT_NEAR(b2->factor, 0.5, 0.001);
  // A lease of the group: capacity 4 x 0.5, rates x 0.5 (10/s burst 1: one token, the next in
  // about 200 ms rather than 100 ms).
  fn::LeaseAsk a;
  a.want_connects = 2;
  a.connect_rate = 10;
  a.connect_burst = 1;
  a.capacity = 4;
  a.window = 4;
  a.holders = {"n:1", "n:2", "n:3"};
  auto l = fn::parse_lease(reply(*c_, fn::lease({"k:bc", "k:br", "k:bo", "k:bs"}, a)));
  ASSERT_TRUE(l.ok()) << l.error();
  EXPECT_NEAR(l->factor, 0.5, 0.001);
  EXPECT_EQ(l->slots, 2);
  EXPECT_EQ(l->connects, 1);
  EXPECT_GT(l->connect_wait, 150ms);
}

// What the whole cluster uses of a group, read in one call: the slots two nodes hold through
// their leases (an expired hold no longer counts), how far each bucket runs ahead, the shared
// back-off; an idle group is all zeros with factor 1, and nothing is written.
TEST_P(FunctionsTest, GroupUseSumsEveryNodesLeases) {
  const std::string prefix = "mxp:";
  const auto keys = [&](const std::string& g) {
    return fn::LeaseKeys{prefix + "rl:c:g:" + g, prefix + "rl:r:g:" + g, prefix + "rl:bo:g:" + g,
                         prefix + "rl:s:g:" + g};
  };
  fn::LeaseAsk a;
  a.want_connects = 4;
  a.connect_rate = 2;  // 4 tokens at 2/s: the bucket runs about 2 s ahead
  a.connect_burst = 10;
  a.want_rcpts = 0;
  a.rcpt_rate = 5;
  a.rcpt_burst = 5;
  a.capacity = 5;
  a.window = 5;
  a.ttl = 10s;
  a.holders = {"node-a:1", "node-a:2"};
  ASSERT_TRUE(fn::parse_lease(reply(*c_, fn::lease(keys("provider:google"), a))).ok());
  a.want_connects = 0;
  a.want_rcpts = 3;  // 3 RCPTs at 5/s: 600 ms ahead
  a.holders = {"node-b:1"};
  ASSERT_TRUE(fn::parse_lease(reply(*c_, fn::lease(keys("provider:google"), a))).ok());
  // A third node whose hold expires at once (ttl 1 ms) must not count once it has.
  a.want_rcpts = 0;
  a.ttl = 1ms;
  a.holders = {"node-c:1"};
  ASSERT_TRUE(fn::parse_lease(reply(*c_, fn::lease(keys("provider:google"), a))).ok());
  ASSERT_TRUE(
      fn::parse_backoff(reply(*c_, fn::backoff(prefix + "rl:bo:g:mx.example", 0.5, 0.1, 0.001, 0s)))
          .ok());
  pass(5ms);

  const std::vector<std::string> groups = {"provider:google", "mx.example", "idle.example"};
  const Reply before = reply(*c_, {"DBSIZE"});
  auto u = fn::parse_group_use(reply(*c_, fn::group_use(prefix, groups)), groups.size());
  ASSERT_TRUE(u.ok()) << u.error();
  ASSERT_EQ(u->size(), 3u);
  const auto& g = (*u)[0];
  EXPECT_EQ(g.slots, 2 + 1);  // node-a's two and node-b's one; node-c's expired
  EXPECT_GT(g.connect_ahead, 1900ms);
  EXPECT_LE(g.connect_ahead, 2000ms);
  EXPECT_GT(g.rcpt_ahead, 500ms);
  EXPECT_LE(g.rcpt_ahead, 600ms);
  EXPECT_DOUBLE_EQ(g.factor, 1.0);
  EXPECT_EQ((*u)[1].slots, 0);
  EXPECT_NEAR((*u)[1].factor, 0.5, 0.001);
  EXPECT_EQ((*u)[2].slots, 0);
  EXPECT_EQ((*u)[2].connect_ahead, 0us);
  EXPECT_EQ((*u)[2].rcpt_ahead, 0us);
  EXPECT_DOUBLE_EQ((*u)[2].factor, 1.0);
  EXPECT_EQ(reply(*c_, {"DBSIZE"}).integer, before.integer);  // read only

  // A released slot no longer counts.
  ASSERT_EQ(
      fn::parse_slot_release(reply(*c_, fn::slot_release(prefix + "rl:s:g:provider:google",
                                                         std::vector<std::string>{"node-a:1"})))
          .value(),
      1);
  u = fn::parse_group_use(reply(*c_, fn::group_use(prefix, groups)), groups.size());
  ASSERT_TRUE(u.ok()) << u.error();
  EXPECT_EQ((*u)[0].slots, 2);
  // No group: an empty answer, not an error.
  u = fn::parse_group_use(reply(*c_, fn::group_use(prefix, {})), 0);
  ASSERT_TRUE(u.ok()) << u.error();
  EXPECT_TRUE(u->empty());
}

// The chunk queue's figures: a missing stream is zeros; entries pushed, then some claimed by a
// consumer (pending in the group), then one completed (acked and deleted).
TEST_P(FunctionsTest, ChunkCountsSeeWaitingAndClaimedEntries) {
  const std::string stream = "mxp:chunks";
  auto counts = [&] {
    auto c = fn::parse_chunk_counts(reply(*c_, fn::chunk_counts(stream, "workers")));
    EXPECT_TRUE(c.ok()) << c.error();
    return c.ok() ? *c : fn::ChunkCounts{-1, -1, -1};
  };
  auto c = counts();
  EXPECT_EQ(c.entries, 0);
  EXPECT_EQ(c.claimed, 0);
  for (int i = 0; i < 5; ++i)
    ASSERT_EQ(reply(*c_, {"XADD", stream, "*", "seq", std::to_string(i)}).type,
              Reply::Type::String);
  c = counts();  // a stream without the group yet
  EXPECT_EQ(c.entries, 5);
  EXPECT_EQ(c.claimed, 0);
  ASSERT_TRUE(reply(*c_, {"XGROUP", "CREATE", stream, "workers", "0"}).is_ok());
  const Reply got =
      reply(*c_, {"XREADGROUP", "GROUP", "workers", "w1", "COUNT", "2", "STREAMS", stream, ">"});
  ASSERT_EQ(got.type, Reply::Type::Array) << to_string(got);
  c = counts();
  EXPECT_EQ(c.entries, 5);
  EXPECT_EQ(c.claimed, 2);
  EXPECT_EQ(c.consumers, 1);
  const std::string first = got.elements.at(0).elements.at(1).elements.at(0).elements.at(0).str;
  ASSERT_EQ(reply(*c_, {"XACK", stream, "workers", first}).integer, 1);
  ASSERT_EQ(reply(*c_, {"XDEL", stream, first}).integer, 1);
  c = counts();
  EXPECT_EQ(c.entries, 4);  // 3 waiting, 1 claimed
  EXPECT_EQ(c.claimed, 1);
  // A key of another type is no stream: zeros, not an error.
  ASSERT_TRUE(reply(*c_, {"SET", "mxp:other", "x"}).is_ok());
  auto o = fn::parse_chunk_counts(reply(*c_, fn::chunk_counts("mxp:other", "workers")));
  ASSERT_TRUE(o.ok()) << o.error();
  EXPECT_EQ(o->entries, 0);
}

TEST_P(FunctionsTest, CatchAllFactsAndClaims) {
  auto ask = [&](const std::string& holder, const std::string& ttl_ms) {
    std::vector<int64_t> out;
    const Reply r =
        reply(*c_, {"FCALL", "mxp1_catch_all", "3", "ca:a", "ca:b", "ca:c", holder, ttl_ms});
    for (const Reply& e : r.elements)
      out.push_back(e.integer);
    return out;
  };
  // Nothing known: the first asker holds all three claims; another sees them being probed.
  EXPECT_EQ(ask("n1", "200"), (std::vector<int64_t>{2, 2, 2}));
  EXPECT_EQ(ask("n2", "200"), (std::vector<int64_t>{3, 3, 3}));
  // n1 learns a (yes) and b (no), cannot tell about c (its claim goes).
  EXPECT_EQ(reply(*c_, {"FCALL", "mxp1_catch_all_learned", "3", "ca:a", "ca:b", "ca:c", "n1",
                        "60000", "1", "0", ""})
                .integer,
            3);
  EXPECT_EQ(ask("n2", "200"), (std::vector<int64_t>{1, 0, 2}));
  EXPECT_GT(reply(*c_, {"PTTL", "ca:a"}).integer, 50'000);
  // n2 holds c now; n1's release of c is not n1's to make.
  EXPECT_EQ(reply(*c_, {"FCALL", "mxp1_catch_all_learned", "1", "ca:c", "n1", "60000", ""}).integer,
            0);
  EXPECT_EQ(reply(*c_, {"GET", "ca:c"}).str, "p:n2");
  // A claim that is not renewed expires: the next asker takes it.
  ASSERT_TRUE(eventually([&] { return ask("n3", "200")[2] == 2; }, 2s));
  EXPECT_EQ(reply(*c_, {"GET", "ca:c"}).str, "p:n3");
  EXPECT_TRUE(reply(*c_, {"FCALL", "mxp1_catch_all", "0", "n1", "200"}).is_error());
}

TEST_P(FunctionsTest, ResultsPutSetsEachKeyWithItsTtl) {
  EXPECT_EQ(reply(*c_, {"FCALL", "mxp1_results_put", "2", "rc:a", "rc:b", "30000", "{\"x\":1}",
                        "{\"y\":2}"})
                .integer,
            2);
  const Reply got = reply(*c_, {"MGET", "rc:a", "rc:b", "rc:none"});
  ASSERT_EQ(got.elements.size(), 3u);
  EXPECT_EQ(got.elements[0].str, "{\"x\":1}");
  EXPECT_EQ(got.elements[1].str, "{\"y\":2}");
  EXPECT_EQ(got.elements[2].type, Reply::Type::Nil);
  const int64_t ttl = reply(*c_, {"PTTL", "rc:b"}).integer;
  EXPECT_GT(ttl, 25'000);
  EXPECT_LE(ttl, 30'000);
  EXPECT_TRUE(reply(*c_, {"FCALL", "mxp1_results_put", "1", "rc:a", "30000"}).is_error());
}

INSTANTIATE_TEST_SUITE_P(Backends, FunctionsTest,
                         ::testing::Values(loop::Backend::Uring, loop::Backend::Uv),
                         testing::backend_name);

}  // namespace
}  // namespace mxp::cluster
