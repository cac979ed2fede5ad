// The verifier's deny/allow lists and domain checks that DNS decides, on a real loop (both
// backends) with a table resolver that counts its lookups: a listed address or domain is
// answered from the list, after submit returns, and never looked up; the rest of the list goes
// on; a domain check reports null MX, NXDOMAIN and no mail server from DNS alone.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "address/address.hpp"
#include "dns/mx.hpp"
#include "loop/loop.hpp"
#include "pipeline/verifier.hpp"

namespace mxp::pipeline {
namespace {

using namespace std::chrono_literals;

class CountingResolver final : public dns::TableResolver {
 public:
  std::vector<std::string> asked;
  void resolve(const std::string& domain, Done done) override {
    asked.push_back(domain);
    TableResolver::resolve(domain, std::move(done));
  }
};

struct Watchdog final : loop::TimerHandler {
  loop::Loop* l = nullptr;
  bool fired = false;
  void on_timer(loop::TimerId, uint64_t) override { fired = true, l->stop(); }
};

class VerifierLists : public ::testing::TestWithParam<loop::Backend> {
 protected:
  void SetUp() override {
    loop::LoopOptions lo;
    lo.backend = GetParam();
    made_ = loop::make_loop(lo);
    if (!made_.loop) GTEST_SKIP() << made_.why;
    dns::MxAnswer null_mx;
    null_mx.failure = verdict::DnsStatus::NullMx;
    dns_.set("nullmx.test", null_mx);
    dns::MxAnswer none;
    none.failure = verdict::DnsStatus::NoMailServer;
    dns_.set("nomail.test", none);
  }
  loop::Loop& loop() { return *made_.loop; }
  bool run() {
    Watchdog w;
    w.l = &loop();
    const auto t = loop().add_timer(loop().now() + 5s, w);
    loop().run();
    if (!w.fired) loop().cancel_timer(t);
    return !w.fired;
  }
  static std::shared_ptr<const flags::AccessLists> lists(const char* deny, const char* allow) {
    auto l = std::make_shared<flags::AccessLists>();
    EXPECT_TRUE(l->deny.add(deny, "deny.txt"));
    if (allow) {
      l->has_allow = true;
      EXPECT_TRUE(l->allow.add(allow, "allow.txt"));
    }
    return l;
  }
  loop::MakeLoopResult made_;
  CountingResolver dns_;
};

TEST_P(VerifierLists, ListedAddressesAreAnsweredFromTheListAndNeverLookedUp) {
  VerifierConfig cfg;
  cfg.catch_all_probe = false;
  cfg.lists = lists("own.test\nBoss@Gone.test\n", "gone.test\nown.test\n");
  std::vector<Result> out;
  size_t want = 4;
  Verifier v(loop(), dns_, cfg, [&](Result&& r) {
    out.push_back(std::move(r));
    if (out.size() == want) loop().stop();
  });
  const char* emails[] = {"a@own.test", "boss@gone.test", "c@gone.test", "d@elsewhere.test"};
  for (size_t i = 0; i < 4; ++i) {
    auto p = address::parse(emails[i]);
    ASSERT_TRUE(p.ok());
    v.submit(i, i + 1, emails[i], std::move(p.address));
  }
  EXPECT_TRUE(out.empty()) << "results never come from inside submit";
  ASSERT_TRUE(run());
  ASSERT_EQ(out.size(), 4u);
  std::sort(out.begin(), out.end(), [](const Result& a, const Result& b) { return a.id < b.id; });
  EXPECT_EQ(out[0].reason, Reason::Denied);
  EXPECT_EQ(out[0].verdict, Verdict::Unknown);
  EXPECT_EQ(out[0].error, "on the deny list (deny.txt:1): this address is never contacted");
  EXPECT_EQ(out[0].domain, "own.test");
  EXPECT_EQ(out[0].attempts, 0u);
  EXPECT_EQ(out[1].reason, Reason::Denied);        // the address entry, whatever its case
  EXPECT_EQ(out[2].reason, Reason::NoSuchDomain);  // allowed: looked up (the table: NXDOMAIN)
  EXPECT_EQ(out[3].reason, Reason::NotAllowed);
  EXPECT_EQ(out[3].error, "not on the allow list: this address is never contacted");
  EXPECT_EQ(dns_.asked, std::vector<std::string>{"gone.test"});
  EXPECT_EQ(v.pending(), 0u);
  // New lists (SIGHUP) apply to what comes next: gone.test, looked up before, is now denied.
  v.set_lists(lists("gone.test\n", nullptr));
  out.clear();
  want = 1;
  auto p = address::parse("x@gone.test");
  ASSERT_TRUE(p.ok());
  v.submit(9, 9, "x@gone.test", std::move(p.address));
  ASSERT_TRUE(run());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].reason, Reason::Denied);
  EXPECT_EQ(dns_.asked.size(), 1u);
}

TEST_P(VerifierLists, DomainChecksThatDnsDecides) {
  VerifierConfig cfg;
  cfg.lists = lists("*.corp.test\n", nullptr);
  std::vector<DomainReport> out;
  cfg.on_domain_report = [&](DomainReport&& r) {
    out.push_back(std::move(r));
    if (out.size() == 4) loop().stop();
  };
  Verifier v(loop(), dns_, cfg, [](Result&&) { ADD_FAILURE() << "no address was submitted"; });
  v.check_domain(0, "nullmx.test");
  v.check_domain(1, "gone.test");
  v.check_domain(2, "nomail.test");
  v.check_domain(3, "mail.corp.test");
  EXPECT_TRUE(out.empty()) << "reports never come from inside check_domain";
  ASSERT_TRUE(run());
  ASSERT_EQ(out.size(), 4u);
  std::sort(out.begin(), out.end(),
            [](const DomainReport& a, const DomainReport& b) { return a.id < b.id; });
  EXPECT_EQ(out[0].mail, "null_mx");
  EXPECT_TRUE(out[0].null_mx);
  EXPECT_EQ(out[0].accepts_mail, false);
  EXPECT_EQ(out[0].reason, Reason::NullMx);
  EXPECT_TRUE(out[0].mx.empty());
  EXPECT_EQ(out[1].mail, "no_such_domain");
  EXPECT_FALSE(out[1].null_mx);
  EXPECT_EQ(out[2].mail, "no_mail_server");
  EXPECT_EQ(out[3].mail, "denied");
  EXPECT_EQ(out[3].reason, Reason::Denied);
  EXPECT_EQ(out[3].error, "on the deny list (deny.txt:1): this domain is never contacted");
  for (const auto& r : out) {
    EXPECT_FALSE(r.starttls.has_value()) << r.domain;
    EXPECT_FALSE(r.catch_all.has_value()) << r.domain;
    EXPECT_TRUE(r.mx_reached.empty()) << r.domain;
  }
  EXPECT_EQ(dns_.asked, (std::vector<std::string>{"nullmx.test", "gone.test", "nomail.test"}));
  EXPECT_EQ(v.pending(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Backends, VerifierLists,
                         ::testing::Values(loop::Backend::Uring, loop::Backend::Uv),
                         [](const auto& info) {
                           return info.param == loop::Backend::Uring ? "uring" : "uv";
                         });

}  // namespace
}  // namespace mxp::pipeline
