// The verifier against a resolver that does not answer, on a real loop (both backends) with a
// scripted resolver: lookups that go unanswered are held while the resolver is in doubt; a
// resolver that answers neither them nor the check query is reported once and its addresses are
// held (verify stops, --resume finishes them) or, for check, end unknown/dns_error with the
// stage and cause in `error` and their real elapsed time; a resolver that answers makes an
// unanswered lookup the domain's own dns_error.
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "address/address.hpp"
#include "dns/mx.hpp"
#include "loop/loop.hpp"
#include "pipeline/verifier.hpp"

namespace mxp::pipeline {
namespace {

using namespace std::chrono_literals;

// Answers every lookup with `failure` after `delay`; the check query with `check_answers`.
class ScriptedResolver final : public dns::MxResolver, private loop::TimerHandler {
 public:
  ScriptedResolver(loop::Loop& loop, loop::Duration delay) : loop_(loop), delay_(delay) {}
  bool check_answers = false;
  // Domains answered NXDOMAIN (the resolver works); the others time out.
  std::vector<std::string> nxdomain;
  int checks = 0, lookups = 0;

  void resolve(const std::string& domain, Done done) override {
    ++lookups;
    dns::MxAnswer a;
    a.ok = false;
    a.failure = verdict::DnsStatus::Timeout;
    a.error = "dns: no answer from scripted (MX lookup of " + domain + ")";
    for (const auto& n : nxdomain)
      if (n == domain) a.failure = verdict::DnsStatus::NxDomain, a.error.clear();
    later([a, done = std::move(done)] { done(a); });
  }
  void check(std::function<void(bool)> done) override {
    ++checks;
    const bool ok = check_answers;
    later([ok, done = std::move(done)] { done(ok); });
  }
  std::string describe() const override { return "scripted"; }

 private:
  void later(std::function<void()> f) {
    pending_.push_back(std::move(f));
    loop_.add_timer(loop_.now() + delay_, *this, pending_.size() - 1);
  }
  void on_timer(loop::TimerId, uint64_t i) override {
    auto f = std::move(pending_[i]);
    f();
  }
  loop::Loop& loop_;
  loop::Duration delay_;
  std::vector<std::function<void()>> pending_;
};

struct Watchdog final : loop::TimerHandler {
  loop::Loop* l = nullptr;
  bool fired = false;
  void on_timer(loop::TimerId, uint64_t) override { fired = true, l->stop(); }
};

class VerifierDns : public ::testing::TestWithParam<loop::Backend> {
 protected:
  void SetUp() override {
    loop::LoopOptions lo;
    lo.backend = GetParam();
    made_ = loop::make_loop(lo);
    if (!made_.loop) GTEST_SKIP() << made_.why;
  }
  loop::Loop& loop() { return *made_.loop; }
  void submit(Verifier& v, const std::vector<std::string>& emails) {
    for (size_t i = 0; i < emails.size(); ++i) {
      auto p = address::parse(emails[i]);
      ASSERT_TRUE(p.ok());
      v.submit(i, i + 1, emails[i], std::move(p.address));
    }
  }
  // Runs until stop() or the watchdog.
  bool run(loop::Duration limit = 5s) {
    Watchdog w;
    w.l = &loop();
    const auto t = loop().add_timer(loop().now() + limit, w);
    loop().run();
    if (!w.fired) loop().cancel_timer(t);
    return !w.fired;
  }
  loop::MakeLoopResult made_;
};

TEST_P(VerifierDns, DeadResolverIsReportedOnceAndItsAddressesAreHeld) {
  ScriptedResolver dns(loop(), 20ms);
  VerifierConfig cfg;
  cfg.catch_all_probe = false;
  std::vector<std::string> down;
  cfg.on_resolver_down = [&](const std::string& line) {
    down.push_back(line);
    loop().stop();
  };
  std::vector<Result> out;
  Verifier v(loop(), dns, cfg, [&](Result&& r) { out.push_back(std::move(r)); });
  submit(v, {"a@one.test", "b@two.test", "c@three.test", "d@one.test"});
  ASSERT_TRUE(run());
  ASSERT_EQ(down.size(), 1u);
  EXPECT_NE(down[0].find("DNS resolver scripted does not answer"), std::string::npos) << down[0];
  EXPECT_TRUE(out.empty()) << "a dead resolver's addresses must not end dns_error";
  EXPECT_EQ(v.pending(), 4u);  // held: resumable
  EXPECT_EQ(dns.checks, 1);
}

TEST_P(VerifierDns, DeadResolverWithFailModeEndsDnsErrorWithCauseAndElapsed) {
  ScriptedResolver dns(loop(), 50ms);
  VerifierConfig cfg;
  cfg.catch_all_probe = false;
  cfg.fail_when_resolver_down = true;
  int down = 0;
  cfg.on_resolver_down = [&](const std::string&) { ++down; };
  std::vector<Result> out;
  Verifier v(loop(), dns, cfg, [&](Result&& r) {
    out.push_back(std::move(r));
    if (out.size() == 2) loop().stop();
  });
  submit(v, {"a@one.test", "b@two.test"});
  ASSERT_TRUE(run());
  EXPECT_EQ(down, 1);
  ASSERT_EQ(out.size(), 2u);
  for (const auto& r : out) {
    EXPECT_EQ(r.verdict, Verdict::Unknown);
    EXPECT_EQ(r.reason, Reason::DnsError);
    EXPECT_EQ(r.error, "dns: scripted does not answer (MX lookup of " + r.domain + ")");
    EXPECT_GE(r.elapsed_ms, 45.0);  // from submission: the lookup took 50 ms
  }
}

TEST_P(VerifierDns, AnsweringResolverMakesAnUnansweredLookupTheDomainsDnsError) {
  ScriptedResolver dns(loop(), 20ms);
  dns.check_answers = true;
  dns.nxdomain = {"gone.test"};
  VerifierConfig cfg;
  cfg.catch_all_probe = false;
  int down = 0;
  cfg.on_resolver_down = [&](const std::string&) { ++down; };
  std::vector<Result> out;
  Verifier v(loop(), dns, cfg, [&](Result&& r) {
    out.push_back(std::move(r));
    if (out.size() == 2) loop().stop();
  });
  submit(v, {"a@slow.test", "b@gone.test"});
  ASSERT_TRUE(run());
  EXPECT_EQ(down, 0);
  ASSERT_EQ(out.size(), 2u);
  for (const auto& r : out) {
    if (r.domain == "slow.test") {
      EXPECT_EQ(r.reason, Reason::DnsError);
      EXPECT_EQ(r.error, "dns: no answer from scripted (MX lookup of slow.test)");
    } else {
      EXPECT_EQ(r.reason, Reason::NoSuchDomain);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, VerifierDns,
                         ::testing::Values(loop::Backend::Uring, loop::Backend::Uv),
                         [](const auto& info) {
                           return info.param == loop::Backend::Uring ? "uring" : "uv";
                         });

}  // namespace
}  // namespace mxp::pipeline
