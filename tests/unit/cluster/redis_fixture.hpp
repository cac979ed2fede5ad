// A real redis-server per test (redis_server.hpp), and a loop test fixture around it that runs
// on the test's backend until a condition holds or a deadline passes: no sleeps.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cluster/redis_client.hpp"
#include "loop/loop.hpp"
#include "redis_server.hpp"

namespace mxp::cluster::testing {

// A loop of the test's backend, and run_until: the loop runs until `done` holds (checked
// whenever a test callback calls poke()) or `limit` passes.
class LoopFixture : public ::testing::TestWithParam<loop::Backend> {
 protected:
  void SetUp() override {
    if (redis_server_path().empty()) {
      GTEST_SKIP() << "redis-server is not installed (Debian package redis-server; "
                      "tools/setup.sh installs it)";
    }
    loop::LoopOptions o;
    o.backend = GetParam();
    auto made = loop::make_loop(o);
    if (!made.loop) {
      ASSERT_EQ(GetParam(), loop::Backend::Uring) << made.why;
      GTEST_SKIP() << made.why;
    }
    loop_ = std::move(made.loop);
  }

  std::unique_ptr<RedisServer> start_server(std::vector<std::string> extra = {}) {
    auto s = std::make_unique<RedisServer>(std::move(extra));
    EXPECT_TRUE(s->ok()) << s->error();
    return s;
  }

  std::unique_ptr<RedisClient> client(const std::string& url, ClientOptions o = {}) {
    auto parsed = parse_redis_url(url);
    EXPECT_TRUE(parsed.ok()) << parsed.error();
    o.url = *parsed;
    auto c = RedisClient::create(*loop_, std::move(o), [this](const StateEvent& e) {
      events_.push_back(e);
      poke();
    });
    EXPECT_TRUE(c.ok()) << c.error();
    return c.ok() ? std::move(*c) : nullptr;
  }

  bool run_until(std::function<bool()> done, std::chrono::milliseconds limit) {
    if (done()) return true;
    struct Stopper : loop::TimerHandler {
      loop::Loop* loop;
      void on_timer(loop::TimerId, uint64_t) override { loop->stop(); }
    } stopper;
    stopper.loop = loop_.get();
    const auto t = loop_->add_timer(loop_->now() + limit, stopper);
    done_ = std::move(done);
    loop_->run();
    loop_->cancel_timer(t);
    const bool ok = done_();
    done_ = nullptr;
    return ok;
  }
  // Runs the loop for `d` (its end is a timer: the loop keeps serving everything meanwhile).
  void run_for(Duration d) {
    struct Fire : loop::TimerHandler {
      bool fired = false;
      LoopFixture* self = nullptr;
      void on_timer(loop::TimerId, uint64_t) override {
        fired = true;
        self->poke();
      }
    } f;
    f.self = this;
    const auto id = loop_->add_timer(loop_->now() + d, f);
    const bool ok =
        run_until([&] { return f.fired; },
                  std::chrono::ceil<std::chrono::milliseconds>(d) + std::chrono::seconds(10));
    if (!ok) loop_->cancel_timer(id);
    EXPECT_TRUE(ok);
  }
  // Checks `cond` (which may run commands itself) every 20 ms of loop time until it holds or
  // `limit` passes.
  bool eventually(const std::function<bool()>& cond, Duration limit) {
    const auto end = loop_->now() + limit;
    while (!cond()) {
      if (loop_->now() > end) return false;
      run_for(std::chrono::milliseconds(20));
    }
    return true;
  }
  void poke() {
    if (done_ && done_()) loop_->stop();
  }

  // One command, run to its end (10 s at most).
  Result call(RedisClient& c, const std::vector<std::string>& argv) {
    std::optional<Result> out;
    c.command(argv, [&](Result&& r) {
      out = std::move(r);
      poke();
    });
    EXPECT_TRUE(run_until([&] { return out.has_value(); }, std::chrono::seconds(10)))
        << argv[0] << " got no answer";
    if (!out) return core::unexpected(CommandError{Failure::Timeout, "test: no answer"});
    return std::move(*out);
  }
  // The reply, or a failed expectation and a Nil reply.
  Reply reply(RedisClient& c, const std::vector<std::string>& argv) {
    Result r = call(c, argv);
    EXPECT_TRUE(r.ok()) << argv[0] << ": " << r.error().message;
    return r.ok() ? std::move(r).value() : Reply{};
  }
  // Redis' clock, in microseconds.
  int64_t redis_time_us(RedisClient& c) {
    const Reply t = reply(c, {"TIME"});
    if (t.elements.size() != 2) return 0;
    return std::stoll(t.elements[0].str) * 1'000'000 + std::stoll(t.elements[1].str);
  }

  std::unique_ptr<loop::Loop> loop_;
  std::vector<StateEvent> events_;
  std::function<bool()> done_;
};

inline std::string backend_name(const ::testing::TestParamInfo<loop::Backend>& info) {
  return std::string(loop::to_string(info.param));
}

}  // namespace mxp::cluster::testing
