// dns::Resolver (c-ares on our loop) against a real dnsmasq, on both loop backends: MX order
// (preference, random among equals), implicit MX, null MX, no mail server, NXDOMAIN, SERVFAIL
// and timeout kept apart, the TTL cache, and lookups in flight shared.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "dns/resolver.hpp"
#include "dns_servers.hpp"
#include "loop/loop.hpp"

namespace mxp::dns {
namespace {

using namespace std::chrono_literals;
using testing::Dnsmasq;
using testing::RcodeServer;

const std::vector<std::string> kZone = {
    "mx-host=multi.test,mx1.multi.test,10",
    "mx-host=multi.test,mx2.multi.test,10",
    "mx-host=multi.test,mx3.multi.test,20",
    "host-record=mx1.multi.test,127.0.0.11",
    "host-record=mx2.multi.test,127.0.0.12",
    "host-record=mx3.multi.test,127.0.0.13,::1",
    "mx-host=nullmx.test,.,0",               // RFC 7505 null MX
    "host-record=implicit.test,127.0.0.21",  // no MX: RFC 5321 §5.1 implicit MX
    "txt-record=nomail.test,\"exists, but no MX and no address\"",
};

constexpr int kSharedDomains = 300;

class ResolverTest : public ::testing::TestWithParam<loop::Backend> {
 protected:
  void SetUp() override {
    loop::LoopOptions o;
    o.backend = GetParam();
    auto made = loop::make_loop(o);
    if (!made.loop) {
      ASSERT_EQ(GetParam(), loop::Backend::Uring) << made.why;
      GTEST_SKIP() << made.why;
    }
    loop_ = std::move(made.loop);
    std::vector<std::string> zone = kZone;
    // Many domains on two shared mail hosts, as thousands of domains share a provider's MX.
    for (int i = 0; i < kSharedDomains; ++i) {
      zone.push_back("mx-host=s" + std::to_string(i) + ".test,mx1.shared.test,10");
      zone.push_back("mx-host=s" + std::to_string(i) + ".test,mx2.shared.test,20");
    }
    zone.push_back("host-record=mx1.shared.test,127.0.0.31");
    zone.push_back("host-record=mx2.shared.test,127.0.0.32");
    // A forward to a port where nothing listens: dnsmasq never answers slow.test.
    zone.push_back("server=/slow.test/127.0.0.1#" + std::to_string(testing::free_udp_port()));
    dnsmasq_ = std::make_unique<Dnsmasq>(zone);
    ASSERT_TRUE(dnsmasq_->ok()) << "dnsmasq did not start";
  }

  std::unique_ptr<Resolver> resolver(ResolverOptions o = {}) {
    if (o.servers.empty()) o.servers = {dnsmasq_->server()};
    auto r = Resolver::create(*loop_, o);
    EXPECT_TRUE(r) << r.error();
    return r ? std::move(r).value() : nullptr;
  }

  // Resolves every name, runs the loop until all answers are in, returns them in call order.
  std::vector<MxAnswer> resolve_all(Resolver& r, const std::vector<std::string>& names) {
    std::vector<MxAnswer> answers(names.size());
    size_t pending = names.size();
    for (size_t i = 0; i < names.size(); ++i) {
      r.resolve(names[i], [&, i](const MxAnswer& a) {
        answers[i] = a;
        if (--pending == 0) loop_->stop();
      });
    }
    if (pending > 0) loop_->run();
    EXPECT_EQ(pending, 0u);
    return answers;
  }

  std::unique_ptr<loop::Loop> loop_;
  std::unique_ptr<Dnsmasq> dnsmasq_;
};

std::vector<std::string> hosts_of(const MxAnswer& a) {
  std::vector<std::string> hosts;
  for (const auto& t : a.targets)
    hosts.push_back(t.host);
  return hosts;
}

TEST_P(ResolverTest, MxByPreferenceRandomAmongEquals) {
  std::set<std::string> first_hosts;
  for (int trial = 0; trial < 30; ++trial) {  // a fresh resolver each time: no cache
    auto r = resolver();
    const auto a = resolve_all(*r, {"multi.test"})[0];
    ASSERT_TRUE(a.ok) << to_string(a.failure);
    EXPECT_FALSE(a.implicit);
    ASSERT_EQ(a.targets.size(), 4u);  // mx1, mx2 (either order), then mx3 over IPv4 and IPv6
    const auto hosts = hosts_of(a);
    EXPECT_EQ(std::set<std::string>(hosts.begin(), hosts.begin() + 2),
              (std::set<std::string>{"mx1.multi.test", "mx2.multi.test"}));
    EXPECT_EQ(hosts[2], "mx3.multi.test");
    EXPECT_EQ(hosts[3], "mx3.multi.test");
    for (const auto& t : a.targets) {
      const std::string ip = t.address.ip_string();
      const std::string want = t.host == "mx1.multi.test"      ? "127.0.0.11"
                               : t.host == "mx2.multi.test"    ? "127.0.0.12"
                               : t.address.family() == AF_INET ? "127.0.0.13"
                                                               : "::1";
      EXPECT_EQ(ip, want) << t.host;
      EXPECT_EQ(t.preference, t.host == "mx3.multi.test" ? 20 : 10);
    }
    first_hosts.insert(hosts[0]);
  }
  // Both equal-preference hosts came first at least once (chance of a false failure: 2^-29).
  EXPECT_EQ(first_hosts.size(), 2u);
}

TEST_P(ResolverTest, ImplicitNullNoMailAndNxdomainAreKeptApart) {
  auto r = resolver();
  const auto answers =
      resolve_all(*r, {"implicit.test", "nullmx.test", "nomail.test", "unknown.test"});
  const MxAnswer& implicit = answers[0];
  ASSERT_TRUE(implicit.ok) << to_string(implicit.failure);
  EXPECT_TRUE(implicit.implicit);
  ASSERT_EQ(implicit.targets.size(), 1u);
  EXPECT_EQ(implicit.targets[0].host, "implicit.test");
  EXPECT_EQ(implicit.targets[0].address.ip_string(), "127.0.0.21");
  EXPECT_FALSE(answers[1].ok);
  EXPECT_EQ(answers[1].failure, DnsStatus::NullMx);
  EXPECT_FALSE(answers[2].ok);
  EXPECT_EQ(answers[2].failure, DnsStatus::NoMailServer);
  EXPECT_FALSE(answers[3].ok);
  EXPECT_EQ(answers[3].failure, DnsStatus::NxDomain);
}

TEST_P(ResolverTest, TimeoutWhenTheServerNeverAnswers) {
  ResolverOptions o;
  o.timeout = 200ms;
  o.tries = 1;
  auto r = resolver(o);
  const auto start = loop_->now();
  const auto a = resolve_all(*r, {"slow.test"})[0];
  EXPECT_FALSE(a.ok);
  EXPECT_EQ(a.failure, DnsStatus::Timeout);
  EXPECT_GE(loop_->now() - start, 200ms);
}

TEST_P(ResolverTest, ServfailIsNeitherNxdomainNorCached) {
  RcodeServer servfail(2);
  ResolverOptions o;
  o.servers = {servfail.server()};
  o.tries = 1;
  auto r = resolver(o);
  const auto first = resolve_all(*r, {"broken.test"})[0];
  EXPECT_FALSE(first.ok);
  EXPECT_EQ(first.failure, DnsStatus::ServFail);
  const uint64_t queries = r->stats().queries;
  const auto second = resolve_all(*r, {"broken.test"})[0];  // asked again: failures are temporary
  EXPECT_EQ(second.failure, DnsStatus::ServFail);
  EXPECT_EQ(r->stats().cache_hits, 0u);
  EXPECT_GT(r->stats().queries, queries);
}

// 300 domains at once through 4 query slots: every answer right, and each shared mail host asked
// once (A and AAAA), however many domains name it.
TEST_P(ResolverTest, BurstsAreQueuedAndSharedHostsAskedOnce) {
  ResolverOptions o;
  o.max_inflight = 4;
  auto r = resolver(o);
  std::vector<std::string> names;
  for (int i = 0; i < kSharedDomains; ++i)
    names.push_back("s" + std::to_string(i) + ".test");
  const auto answers = resolve_all(*r, names);
  for (const auto& a : answers) {
    ASSERT_TRUE(a.ok);
    EXPECT_EQ(hosts_of(a), (std::vector<std::string>{"mx1.shared.test", "mx2.shared.test"}));
  }
  EXPECT_EQ(r->stats().queries, uint64_t(kSharedDomains) + 2 * 2);
  EXPECT_EQ(r->stats().host_hits, uint64_t(kSharedDomains) * 2 - 2);
}

TEST_P(ResolverTest, DomainWhoseMailHostsAreAllCachedFinishesAtOnce) {
  // s1's MX hosts were looked up for s0: its own MX answer finishes the lookup inside the MX
  // callback, which must not touch the lookup afterwards (ASan caught a use after free here).
  auto r = resolver();
  const auto first = resolve_all(*r, {"s0.test"});
  ASSERT_TRUE(first[0].ok);
  const uint64_t host_hits = r->stats().host_hits;
  const auto second = resolve_all(*r, {"s1.test"});
  ASSERT_TRUE(second[0].ok);
  EXPECT_EQ(hosts_of(second[0]), hosts_of(first[0]));
  EXPECT_EQ(r->stats().host_hits, host_hits + 2);  // both hosts from the cache
}

TEST_P(ResolverTest, AnswersAreCachedByTtl) {
  auto r = resolver();
  const auto first = resolve_all(*r, {"multi.test", "nullmx.test"});
  const uint64_t queries = r->stats().queries;
  bool called = false;
  // A cached answer comes at once, before resolve() returns, and sends nothing.
  r->resolve("multi.test", [&](const MxAnswer& a) {
    called = true;
    EXPECT_EQ(hosts_of(a), hosts_of(first[0]));  // the same order, not reshuffled
  });
  EXPECT_TRUE(called);
  r->resolve("nullmx.test", [&](const MxAnswer& a) { EXPECT_EQ(a.failure, DnsStatus::NullMx); });
  EXPECT_EQ(r->stats().cache_hits, 2u);
  EXPECT_EQ(r->stats().queries, queries);

  // With every TTL clamped to zero nothing stays cached: the same names are asked again.
  ResolverOptions o;
  o.min_ttl = o.max_ttl = o.negative_ttl = 0s;
  auto r0 = resolver(o);
  resolve_all(*r0, {"implicit.test"});
  const uint64_t q0 = r0->stats().queries;
  resolve_all(*r0, {"implicit.test"});
  EXPECT_EQ(r0->stats().cache_hits, 0u);
  EXPECT_GT(r0->stats().queries, q0);
}

TEST_P(ResolverTest, LookupsInFlightAreShared) {
  auto r = resolver();
  const auto answers = resolve_all(*r, {"implicit.test", "implicit.test", "implicit.test"});
  EXPECT_EQ(r->stats().lookups, 3u);
  EXPECT_EQ(r->stats().shared, 2u);
  EXPECT_EQ(r->stats().queries, 3u);  // one MX, then A and AAAA for the implicit host
  for (const auto& a : answers) {
    ASSERT_TRUE(a.ok);
    EXPECT_EQ(a.targets[0].address.ip_string(), "127.0.0.21");
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, ResolverTest,
                         ::testing::Values(loop::Backend::Uv, loop::Backend::Uring),
                         [](const auto& info) { return std::string(loop::to_string(info.param)); });

}  // namespace
}  // namespace mxp::dns
