// RedisClient on both loop backends against a real redis-server started by each test: SET/GET/
// INCR round trips, SELECT, 10,000 pipelined commands, AUTH right and wrong (and an ACL user), a
// sent command's timeout ending the connection, and the server killed and restarted: the client
// reports down, retries with a growing jittered back-off, and the commands that waited meanwhile
// succeed once it is back.
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "redis_fixture.hpp"

namespace mxp::cluster {
namespace {

using namespace std::chrono_literals;
using testing::RedisServer;

class RedisClientTest : public testing::LoopFixture {};

TEST_P(RedisClientTest, SetGetIncrRoundTrips) {
  auto server = start_server();
  ASSERT_TRUE(server->ok());
  auto c = client(server->url());
  ASSERT_TRUE(c);
  EXPECT_TRUE(reply(*c, {"SET", "k", "v a l"}).is_ok());
  const Reply got = reply(*c, {"GET", "k"});
  EXPECT_EQ(got.type, Reply::Type::String);
  EXPECT_EQ(got.str, "v a l");
  for (int i = 1; i <= 3; ++i)
    EXPECT_EQ(reply(*c, {"INCR", "n"}).integer, i);
  EXPECT_EQ(reply(*c, {"GET", "missing"}).type, Reply::Type::Nil);
  const Reply err = reply(*c, {"INCR", "k"});  // an error reply, not a failure
  EXPECT_TRUE(err.is_error());
  EXPECT_NE(err.str.find("not an integer"), std::string::npos) << err.str;
  EXPECT_EQ(reply(*c, {"PING"}).str, "PONG");  // the connection goes on after it
  ASSERT_FALSE(events_.empty());
  EXPECT_TRUE(events_.front().up);
  EXPECT_EQ(events_.front().peer, "127.0.0.1:" + std::to_string(server->port()));
  EXPECT_EQ(c->connection().stats().handshakes, 1u);
  EXPECT_GE(c->connection().stats().rtt_count, 8u);
}

TEST_P(RedisClientTest, SelectAndClientName) {
  auto server = start_server();
  ASSERT_TRUE(server->ok());
  ClientOptions o;
  o.client_name = "node-test";
  auto db5 = client(server->url("", 5), o);
  auto db0 = client(server->url());
  ASSERT_TRUE(db5 && db0);
  EXPECT_TRUE(reply(*db5, {"SET", "where", "five"}).is_ok());
  EXPECT_EQ(reply(*db0, {"GET", "where"}).type, Reply::Type::Nil);
  EXPECT_EQ(reply(*db5, {"GET", "where"}).str, "five");
  EXPECT_EQ(reply(*db5, {"CLIENT", "GETNAME"}).str, "node-test");
}

TEST_P(RedisClientTest, TenThousandPipelinedCommands) {
  auto server = start_server();
  ASSERT_TRUE(server->ok());
  auto c = client(server->url());
  ASSERT_TRUE(c);
  ASSERT_TRUE(run_until([&] { return c->up(); }, 10s));
  constexpr int kN = 10'000;
  std::vector<int64_t> got;
  got.reserve(kN);
  int failures = 0;
  for (int i = 0; i < kN; ++i) {  // all issued before any reply: one pipeline
    c->command({"INCR", "counter"}, [&](Result&& r) {
      if (r.ok() && r->type == Reply::Type::Integer) {
        got.push_back(r->integer);
      } else {
        ++failures;
      }
      poke();
    });
  }
  EXPECT_EQ(c->connection().in_flight() + c->connection().waiting(), static_cast<size_t>(kN));
  ASSERT_TRUE(run_until([&] { return got.size() + failures == kN; }, 60s));
  EXPECT_EQ(failures, 0);
  for (int i = 0; i < kN; ++i)
    ASSERT_EQ(got[i], i + 1) << "reply " << i << " out of order";
  EXPECT_EQ(reply(*c, {"GET", "counter"}).str, std::to_string(kN));
}

TEST_P(RedisClientTest, AuthRightAndWrongPassword) {
  auto server = start_server({"--requirepass", "s3cret"});
  ASSERT_TRUE(server->ok());
  {
    auto c = client(server->url(":s3cret"));
    ASSERT_TRUE(c);
    EXPECT_TRUE(reply(*c, {"SET", "a", "1"}).is_ok());
    EXPECT_EQ(reply(*c, {"GET", "a"}).str, "1");
  }
  {
    // Redis 6 ACL form: requirepass is the "default" user's password.
    auto c = client(server->url("default:s3cret"));
    ASSERT_TRUE(c);
    EXPECT_EQ(reply(*c, {"GET", "a"}).str, "1");
  }
  {
    events_.clear();
    ClientOptions o;
    o.backoff_initial = 5s;  // one attempt within this test
    auto c = client(server->url(":wrong"), o);
    ASSERT_TRUE(c);
    Result r = call(*c, {"GET", "a"});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().failure, Failure::HandshakeFailed);
    EXPECT_NE(r.error().message.find("WRONGPASS"), std::string::npos) << r.error().message;
    EXPECT_EQ(r.error().message.find("wrong"), std::string::npos) << "the password leaked";
    ASSERT_FALSE(events_.empty());
    EXPECT_FALSE(events_.back().up);
    EXPECT_NE(events_.back().reason.find("AUTH refused: WRONGPASS"), std::string::npos)
        << events_.back().reason;
    EXPECT_EQ(events_.back().failures, 1u);
    EXPECT_FALSE(c->up());
  }
  {
    // No password at all: Redis answers each command with NOAUTH, an error reply.
    auto c = client(server->url());
    ASSERT_TRUE(c);
    const Reply r = reply(*c, {"GET", "a"});
    EXPECT_TRUE(r.is_error());
    EXPECT_EQ(r.str.substr(0, 6), "NOAUTH");
  }
}

TEST_P(RedisClientTest, SentCommandTimeoutDropsTheConnectionAndRecovers) {
  auto server = start_server();
  ASSERT_TRUE(server->ok());
  ClientOptions o;
  o.backoff_initial = 20ms;
  auto c = client(server->url(), o);
  ASSERT_TRUE(c);
  EXPECT_TRUE(reply(*c, {"SET", "x", "1"}).is_ok());
  // The server sleeps 1 s; our patience is 150 ms.
  std::optional<Result> slept;
  c->command(
      {"DEBUG", "SLEEP", "1"},
      [&](Result&& r) {
        slept = std::move(r);
        poke();
      },
      150ms);
  ASSERT_TRUE(run_until([&] { return slept.has_value(); }, 10s));
  ASSERT_FALSE(slept->ok());
  EXPECT_EQ(slept->error().failure, Failure::Timeout);
  EXPECT_NE(slept->error().message.find("no reply to DEBUG within 150 ms"), std::string::npos)
      << slept->error().message;
  // A new connection serves the next command (once the server wakes up).
  EXPECT_EQ(reply(*c, {"GET", "x"}).str, "1");
  EXPECT_EQ(c->connection().stats().handshakes, 2u);
}

// A loop that was busy past a command's deadline (a long batch of work in one callback, a
// starved process) finds the reply waiting in the socket; both backends run due timers before
// they read, and the client must read before it calls the server silent.
TEST_P(RedisClientTest, ABusyLoopIsNotASilentServer) {
  auto server = start_server();
  ASSERT_TRUE(server->ok());
  auto c = client(server->url());
  ASSERT_TRUE(c);
  EXPECT_EQ(reply(*c, {"PING"}).str, "PONG");
  std::optional<Result> got;
  c->command(
      {"PING"},
      [&](Result&& r) {
        got = std::move(r);
        poke();
      },
      100ms);
  // The loop is held for 400 ms by a callback, just after the command goes out (the flush
  // timer runs first: it was added first, at now). Redis answers within that time.
  struct Busy : loop::TimerHandler {
    void on_timer(loop::TimerId, uint64_t) override { std::this_thread::sleep_for(400ms); }
  } busy;
  loop_->add_timer(loop_->now(), busy);
  ASSERT_TRUE(run_until([&] { return got.has_value(); }, 10s));
  ASSERT_TRUE(got->ok()) << got->error().message;
  EXPECT_EQ(got->value().str, "PONG");
  EXPECT_EQ(c->connection().stats().handshakes, 1u);  // the connection was kept
  EXPECT_EQ(c->connection().stats().timeouts, 0u);
}

TEST_P(RedisClientTest, ServerKilledAndRestarted) {
  auto server = start_server();
  ASSERT_TRUE(server->ok());
  ClientOptions o;
  o.backoff_initial = 40ms;
  o.backoff_max = 320ms;
  o.connect_timeout = 2s;
  auto c = client(server->url(), o);
  ASSERT_TRUE(c);
  EXPECT_EQ(reply(*c, {"INCR", "before"}).integer, 1);
  ASSERT_EQ(events_.size(), 1u);

  server->kill();
  // Down, then refused attempts: wait for six of them (the back-off reaches its cap).
  ASSERT_TRUE(run_until([&] { return events_.size() >= 7; }, 20s))
      << "down events seen: " << events_.size() - 1;
  const std::vector<StateEvent> downs(events_.begin() + 1, events_.end());
  // FIN (nothing was unread on the server's side), or RST if the kernel had data it dropped.
  EXPECT_TRUE(downs[0].reason == "the server closed the connection" ||
              downs[0].reason == "connection lost: connection_reset")
      << downs[0].reason;
  Duration base = o.backoff_initial;
  for (size_t i = 0; i < downs.size(); ++i) {
    SCOPED_TRACE("down event " + std::to_string(i));
    EXPECT_FALSE(downs[i].up);
    EXPECT_EQ(downs[i].failures, i + 1);
    if (i > 0) {
      EXPECT_NE(downs[i].reason.find("connection_refused"), std::string::npos) << downs[i].reason;
    }
    // Equal jitter: within [base/2, base], base doubling up to the cap.
    EXPECT_GE(downs[i].retry_in, base / 2);
    EXPECT_LE(downs[i].retry_in, base);
    base = std::min<Duration>(base * 2, o.backoff_max);
  }
  EXPECT_FALSE(c->up());

  // Commands issued while it is down wait for it.
  std::vector<Result> waited;
  for (int i = 0; i < 3; ++i) {
    c->command({"INCR", "after"}, [&](Result&& r) {
      waited.push_back(std::move(r));
      poke();
    });
  }
  EXPECT_EQ(c->connection().waiting(), 3u);

  ASSERT_TRUE(server->start()) << server->error();
  ASSERT_TRUE(run_until([&] { return waited.size() == 3; }, 20s));
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(waited[i].ok()) << waited[i].error().message;
    EXPECT_EQ(waited[i]->integer, i + 1);
  }
  EXPECT_TRUE(c->up());
  EXPECT_TRUE(events_.back().up);
  // A fresh server (no persistence): the old key is gone, new ones work.
  EXPECT_EQ(reply(*c, {"GET", "before"}).type, Reply::Type::Nil);
  EXPECT_TRUE(reply(*c, {"SET", "again", "yes"}).is_ok());
  EXPECT_EQ(reply(*c, {"GET", "again"}).str, "yes");
  EXPECT_EQ(c->connection().stats().handshakes, 2u);
}

TEST_P(RedisClientTest, NothingListeningYetThenItComes) {
  // The server is started after the client: refused attempts, then up on its own.
  auto server = start_server();
  ASSERT_TRUE(server->ok());
  server->kill();
  ClientOptions o;
  o.backoff_initial = 20ms;
  o.backoff_max = 100ms;
  auto c = client(server->url(), o);
  ASSERT_TRUE(c);
  std::optional<Result> r;
  c->command({"PING"}, [&](Result&& x) {
    r = std::move(x);
    poke();
  });
  ASSERT_TRUE(run_until([&] { return events_.size() >= 2; }, 10s));
  EXPECT_FALSE(r.has_value());
  ASSERT_TRUE(server->start()) << server->error();
  ASSERT_TRUE(run_until([&] { return r.has_value(); }, 20s));
  ASSERT_TRUE(r->ok()) << r->error().message;
  EXPECT_EQ((*r)->str, "PONG");
}

TEST_P(RedisClientTest, CloseFailsWaitingCommands) {
  auto server = start_server();
  ASSERT_TRUE(server->ok());
  server->kill();
  auto c = client(server->url());
  ASSERT_TRUE(c);
  std::optional<Result> r;
  c->command({"PING"}, [&](Result&& x) { r = std::move(x); });
  c->close();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->error().failure, Failure::Closed);
  Result later = call(*c, {"PING"});
  EXPECT_EQ(later.error().failure, Failure::Closed);
}

TEST_P(RedisClientTest, UnresolvableHost) {
  ClientOptions o;
  o.url = *parse_redis_url("redis://no-such-host.invalid:6379");
  auto c = RedisClient::create(*loop_, o);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().find("no-such-host.invalid does not resolve"), std::string::npos)
      << c.error();
}

INSTANTIATE_TEST_SUITE_P(Backends, RedisClientTest,
                         ::testing::Values(loop::Backend::Uring, loop::Backend::Uv),
                         testing::backend_name);

}  // namespace
}  // namespace mxp::cluster
