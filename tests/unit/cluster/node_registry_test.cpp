// NodeRegistry against a real redis-server on both loop backends: records listed with their
// fields, leave() removing a node at once, a live duplicate name refused (and the name taken
// back once its holder's record expired), the heartbeat keeping a node listed far past its TTL
// while a silent node disappears at its TTL, load figures carried by the heartbeat, and
// compare() naming who joined and who left. Waits are loop timers until a condition or deadline.
#include "cluster/node_registry.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "cluster/functions.hpp"
#include "redis_fixture.hpp"

namespace mxp::cluster {
namespace {

using namespace std::chrono_literals;

class NodeRegistryTest : public testing::LoopFixture {
 protected:
  void SetUp() override {
    LoopFixture::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    server_ = start_server();
    ASSERT_TRUE(server_->ok());
  }
  void TearDown() override {
    regs_.clear();
    clients_.clear();
    server_.reset();
  }

  // A node with its own connection, as separate processes would have.
  NodeRegistry& node(const std::string& name, RegistryOptions o = {}) {
    ClientOptions co;
    co.setup = {functions::load_command()};
    co.client_name = name;
    clients_.push_back(client(server_->url(), co));
    NodeInfo self;
    self.name = name;
    self.addresses = {"192.0.2." + std::to_string(regs_.size() + 1), "2001:db8::1"};
    self.version = "0.9.1";
    self.role = regs_.empty() ? "serve" : "worker";
    self.load = {{"sessions", 3}};
    regs_.push_back(std::make_unique<NodeRegistry>(*loop_, *clients_.back(), o, self));
    return *regs_.back();
  }

  core::Expected<void, std::string> join(NodeRegistry& r) {
    std::optional<core::Expected<void, std::string>> out;
    r.join([&](core::Expected<void, std::string> e) {
      out = std::move(e);
      poke();
    });
    EXPECT_TRUE(run_until([&] { return out.has_value(); }, 10s));
    return out ? *out : core::Expected<void, std::string>(core::unexpected(std::string("none")));
  }

  std::vector<NodeInfo> list(NodeRegistry& r) {
    std::optional<core::Expected<std::vector<NodeInfo>, std::string>> out;
    r.nodes([&](core::Expected<std::vector<NodeInfo>, std::string> e) {
      out = std::move(e);
      poke();
    });
    EXPECT_TRUE(run_until([&] { return out.has_value(); }, 10s));
    if (!out || !out->ok()) {
      ADD_FAILURE() << (out ? out->error() : "no answer");
      return {};
    }
    return **out;
  }

  static std::vector<std::string> names(const std::vector<NodeInfo>& v) {
    std::vector<std::string> out;
    for (const auto& n : v)
      out.push_back(n.name);
    return out;
  }

  std::unique_ptr<testing::RedisServer> server_;
  std::vector<std::unique_ptr<RedisClient>> clients_;
  std::vector<std::unique_ptr<NodeRegistry>> regs_;
};

TEST_P(NodeRegistryTest, JoinListLeave) {
  NodeRegistry& a = node("alpha");
  NodeRegistry& b = node("beta");
  ASSERT_TRUE(join(a).ok());
  ASSERT_TRUE(join(b).ok());
  const auto both = list(a);
  ASSERT_EQ(names(both), (std::vector<std::string>{"alpha", "beta"}));
  const NodeInfo& n = both[0];
  EXPECT_EQ(n.addresses, (std::vector<std::string>{"192.0.2.1", "2001:db8::1"}));
  EXPECT_EQ(n.version, "0.9.1");
  EXPECT_EQ(n.role, "serve");
  EXPECT_EQ(both[1].role, "worker");
  EXPECT_EQ(n.instance, a.self().instance);
  EXPECT_EQ(n.instance.size(), 16u);
  EXPECT_NE(n.instance, b.self().instance);
  EXPECT_GT(n.started_at_ms, 1'600'000'000'000);
  EXPECT_EQ(n.load.at("sessions"), 3);
  // The record expires by itself unless renewed.
  const Reply ttl = reply(*clients_[0], {"PTTL", a.record_key("alpha")});
  EXPECT_GT(ttl.integer, 0);
  EXPECT_LE(ttl.integer, 10'000);

  std::optional<bool> left;
  b.leave([&](bool ok) {
    left = ok;
    poke();
  });
  ASSERT_TRUE(run_until([&] { return left.has_value(); }, 10s));
  EXPECT_TRUE(*left);
  const auto after = list(a);
  EXPECT_EQ(names(after), (std::vector<std::string>{"alpha"}));
  const NodeChanges c = compare(both, after);
  EXPECT_TRUE(c.joined.empty());
  EXPECT_EQ(c.gone, (std::vector<std::string>{"beta"}));
  EXPECT_EQ(reply(*clients_[0], {"SISMEMBER", a.index_key(), "beta"}).integer, 0);
}

TEST_P(NodeRegistryTest, LiveDuplicateNameRefused) {
  RegistryOptions o;
  o.heartbeat = 50ms;
  o.ttl = 400ms;
  NodeRegistry& first = node("gamma", o);
  NodeRegistry& second = node("gamma", o);
  ASSERT_TRUE(join(first).ok());
  const auto dup = join(second);
  ASSERT_FALSE(dup.ok());
  EXPECT_NE(dup.error().find("node name gamma is held by a live node"), std::string::npos)
      << dup.error();
  EXPECT_FALSE(second.joined());
  // Still refused after several heartbeats of the first (it stays live).
  const uint64_t beats = first.beats();
  ASSERT_TRUE(eventually([&] { return first.beats() >= beats + 10; }, 10s));
  EXPECT_FALSE(join(second).ok());
  // Its leave() by the refused instance deletes nothing.
  std::optional<bool> left;
  second.leave([&](bool ok) {
    left = ok;
    poke();
  });
  ASSERT_TRUE(run_until([&] { return left.has_value(); }, 10s));
  EXPECT_FALSE(*left);
  EXPECT_EQ(names(list(second)), (std::vector<std::string>{"gamma"}));
  EXPECT_EQ(list(second)[0].instance, first.self().instance);
  // The first stops (crashed): once its record expired, the name is free again.
  regs_[0].reset();
  ASSERT_TRUE(eventually(
      [&] {
        return reply(*clients_[1], {"EXISTS", second.record_key("gamma")}).integer == 0;
      },
      10s));
  ASSERT_TRUE(join(second).ok());
  EXPECT_EQ(list(second)[0].instance, second.self().instance);
}

TEST_P(NodeRegistryTest, HeartbeatKeepsNodeAliveAndSilentNodeExpires) {
  RegistryOptions o;
  o.heartbeat = 100ms;
  o.ttl = 500ms;
  NodeRegistry& live = node("live", o);
  NodeRegistry& silent = node("silent", o);
  ASSERT_TRUE(join(live).ok());
  ASSERT_TRUE(join(silent).ok());
  const auto before = list(live);
  ASSERT_EQ(names(before), (std::vector<std::string>{"live", "silent"}));

  regs_[1].reset();  // "silent" stops beating without leaving (kill -9)
  const auto stopped = loop_->now();
  std::vector<NodeInfo> now;
  ASSERT_TRUE(eventually(
      [&] {
        now = list(live);
        return now.size() == 1;
      },
      10s));
  // Gone at its TTL, not before (one beat interval of slack: its last beat may have been late).
  EXPECT_GE(loop_->now() - stopped, o.ttl - o.heartbeat);
  EXPECT_EQ(names(now), (std::vector<std::string>{"live"}));
  EXPECT_EQ(compare(before, now).gone, (std::vector<std::string>{"silent"}));
  // The live one is still listed well past several TTLs, renewed by its heartbeat.
  run_for(3 * o.ttl);
  EXPECT_EQ(names(list(live)), (std::vector<std::string>{"live"}));
  EXPECT_GE(live.beats(), 10u);
}

TEST_P(NodeRegistryTest, HeartbeatCarriesLoadAndNewNodesShowAsJoined) {
  RegistryOptions o;
  o.heartbeat = 50ms;
  NodeRegistry& a = node("a", o);
  ASSERT_TRUE(join(a).ok());
  const auto before = list(a);
  a.set_load({{"sessions", 42}, {"chunks", 2}});
  const uint64_t beats = a.beats();
  ASSERT_TRUE(eventually([&] { return a.beats() >= beats + 2; }, 10s));
  NodeRegistry& b = node("b", o);
  ASSERT_TRUE(join(b).ok());
  const auto after = list(a);
  ASSERT_EQ(after.size(), 2u);
  EXPECT_EQ(after[0].load.at("sessions"), 42);
  EXPECT_EQ(after[0].load.at("chunks"), 2);
  const NodeChanges c = compare(before, after);
  ASSERT_EQ(c.joined.size(), 1u);
  EXPECT_EQ(c.joined[0].name, "b");
  EXPECT_TRUE(c.gone.empty());
}

TEST_P(NodeRegistryTest, BadNameRefusedBeforeRedis) {
  NodeRegistry& r = node("two words");
  const auto e = join(r);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.error().find("without spaces"), std::string::npos) << e.error();
}

INSTANTIATE_TEST_SUITE_P(Backends, NodeRegistryTest,
                         ::testing::Values(loop::Backend::Uring, loop::Backend::Uv),
                         testing::backend_name);

}  // namespace
}  // namespace mxp::cluster
