// identity: is_fqdn and address literals, the HELO decision, and check_ptrs (PTR, then A/AAAA
// of each PTR name) against a real dnsmasq on both loop backends.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "dns_servers.hpp"
#include "identity/identity.hpp"
#include "loop/loop.hpp"

namespace mxp::identity {
namespace {

TEST(IsFqdn, AcceptsHostNames) {
  for (const char* n : {"mx-probe.example.test", "probe1.farm.test", "a.b", "a-1.b2.example.",
                        "MAIL.Example.COM", "xn--bcher-kva.example"})
    EXPECT_TRUE(is_fqdn(n)) << n;
}

TEST(IsFqdn, RefusesWhatServersRefuse) {
  for (const char* n : {"", "vm", "vm.", "localhost", "localhost.localdomain", "foo.localhost",
                        "192.0.2.1", "[192.0.2.1]", "a..b", ".a.b", "-a.b", "a-.b", "a_b.example",
                        "a b.example", "host.123", "a.b/c"})
    EXPECT_FALSE(is_fqdn(n)) << n;
  EXPECT_FALSE(is_fqdn(std::string(64, 'a') + ".example"));  // a label of 64
  EXPECT_TRUE(is_fqdn(std::string(63, 'a') + ".example"));
  std::string long_name;
  while (long_name.size() < 250)
    long_name += "abcdefghi.";
  EXPECT_FALSE(is_fqdn(long_name + "example"));  // over 253
}

TEST(AddressLiteral, AcceptedAsHeloButNotFqdn) {
  EXPECT_TRUE(is_address_literal("[192.0.2.1]"));
  EXPECT_TRUE(is_address_literal("[IPv6:2001:db8::1]"));
  EXPECT_FALSE(is_address_literal("[2001:db8::1]"));  // RFC 5321 wants the IPv6: tag
  EXPECT_FALSE(is_address_literal("[192.0.2]"));
  EXPECT_FALSE(is_address_literal("192.0.2.1"));
  EXPECT_TRUE(acceptable_helo("[192.0.2.1]"));
  EXPECT_TRUE(acceptable_helo("probe.example.test"));
  EXPECT_FALSE(acceptable_helo("vm"));
}

TEST(HostName, IsANameWithoutTrailingDot) {
  const std::string h = host_name();
  ASSERT_FALSE(h.empty());
  EXPECT_NE(h.back(), '.');
  EXPECT_EQ(h.find(' '), std::string::npos);
}

PtrCheck check(const char* ip, PtrStatus s, std::vector<std::string> names = {},
               std::string confirmed = {}, std::string detail = "detail") {
  return {*loop::Endpoint::parse(ip, 0), s, std::move(names), std::move(confirmed),
          std::move(detail)};
}

TEST(ChooseHelo, OptionWinsOverEverything) {
  auto p = check("127.0.0.10", PtrStatus::Confirmed, {"p.test"}, "p.test");
  auto c = choose_helo("mx-probe.example.test", &p, "vm");
  EXPECT_EQ(c.name, "mx-probe.example.test");
  EXPECT_EQ(c.source, HeloSource::Option);
  EXPECT_TRUE(c.acceptable);
  EXPECT_EQ(helo_warning(c, "127.0.0.10"), "");
  // An option that is not an FQDN is still used (the user's choice), but warned about.
  auto bare = choose_helo("vm", &p, "host.example.test");
  EXPECT_EQ(bare.name, "vm");
  EXPECT_FALSE(bare.acceptable);
  EXPECT_NE(helo_warning(bare, "127.0.0.10").find("'vm' for 127.0.0.10"), std::string::npos);
  // An address literal passes reject_non_fqdn_helo_hostname: no warning.
  auto lit = choose_helo("[127.0.0.10]", &p, "vm");
  EXPECT_TRUE(lit.acceptable);
  EXPECT_EQ(helo_warning(lit, "127.0.0.10"), "");
}

TEST(ChooseHelo, ConfirmedPtrNameElseHostName) {
  auto ok = check("127.0.0.10", PtrStatus::Confirmed, {"p.test"}, "p.test");
  auto c = choose_helo("", &ok, "vm");
  EXPECT_EQ(c.name, "p.test");
  EXPECT_EQ(c.source, HeloSource::Ptr);
  EXPECT_TRUE(c.acceptable);

  for (auto s : {PtrStatus::NoPtr, PtrStatus::NotConfirmed, PtrStatus::LookupFailed}) {
    auto p = check("127.0.0.11", s, {"q.test"}, "", "why it failed");
    auto h = choose_helo("", &p, "host.example.test");
    EXPECT_EQ(h.name, "host.example.test") << to_string(s);
    EXPECT_EQ(h.source, HeloSource::HostName);
    EXPECT_TRUE(h.acceptable);
    EXPECT_NE(h.why.find("why it failed"), std::string::npos) << h.why;
    auto bare = choose_helo("", &p, "vm");
    EXPECT_FALSE(bare.acceptable);
    const auto w = helo_warning(bare, "127.0.0.11");
    EXPECT_NE(w.find("reject_non_fqdn_helo_hostname"), std::string::npos) << w;
    EXPECT_NE(w.find("PTR"), std::string::npos) << w;
  }
  // A confirmed PTR name that is no FQDN ("localhost") is not used.
  auto lh = check("127.0.0.1", PtrStatus::Confirmed, {"localhost"}, "localhost");
  EXPECT_EQ(choose_helo("", &lh, "host.example.test").name, "host.example.test");
  // No address to look up (proxies, kernel-chosen source): the host name.
  EXPECT_EQ(choose_helo("", nullptr, "host.example.test").source, HeloSource::HostName);
  EXPECT_EQ(choose_helo("", nullptr, "").name, "localhost");
}

// check_ptrs against dnsmasq: host-record gives A + PTR (confirmed), ptr-record a PTR alone.
class PtrTest : public ::testing::TestWithParam<loop::Backend> {
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
    dnsmasq_ = std::make_unique<dns::testing::Dnsmasq>(std::vector<std::string>{
        // Reverse zones answered here: an address without a record is NXDOMAIN, not REFUSED.
        "local=/127.in-addr.arpa/", "local=/ip6.arpa/", "host-record=probe1.farm.test,127.0.0.10",
        "ptr-record=11.0.0.127.in-addr.arpa,lonely.farm.test",  // no A record at all
        "ptr-record=12.0.0.127.in-addr.arpa,elsewhere.farm.test",
        "host-record=elsewhere.farm.test,127.0.0.99",  // its A is another address
        "host-record=Probe6.Farm.Test,2001:db8::6",    // AAAA + PTR, mixed case
    });
    ASSERT_TRUE(dnsmasq_->ok()) << "dnsmasq did not start";
  }

  std::unique_ptr<dns::Resolver> resolver(const std::string& server) {
    dns::ResolverOptions o;
    o.servers = {server};
    o.timeout = std::chrono::milliseconds(300);
    o.tries = 1;
    auto r = dns::Resolver::create(*loop_, o);
    EXPECT_TRUE(r) << r.error();
    return r ? std::move(r).value() : nullptr;
  }

  static std::vector<loop::Endpoint> ips(std::vector<const char*> v) {
    std::vector<loop::Endpoint> out;
    for (auto* s : v)
      out.push_back(*loop::Endpoint::parse(s, 0));
    return out;
  }

  std::unique_ptr<loop::Loop> loop_;
  std::unique_ptr<dns::testing::Dnsmasq> dnsmasq_;
};

TEST_P(PtrTest, ConfirmedNotConfirmedAndAbsent) {
  auto r = resolver(dnsmasq_->server());
  const auto got = check_ptrs_now(
      *loop_, *r, ips({"127.0.0.10", "127.0.0.11", "127.0.0.12", "127.0.0.13", "2001:db8::6"}));
  ASSERT_EQ(got.size(), 5u);

  EXPECT_EQ(got[0].status, PtrStatus::Confirmed) << got[0].detail;
  EXPECT_EQ(got[0].confirmed, "probe1.farm.test");
  EXPECT_EQ(got[0].names, std::vector<std::string>{"probe1.farm.test"});

  EXPECT_EQ(got[1].status, PtrStatus::NotConfirmed) << got[1].detail;
  EXPECT_EQ(got[1].names, std::vector<std::string>{"lonely.farm.test"});
  EXPECT_EQ(got[1].confirmed, "");
  EXPECT_NE(got[1].detail.find("lonely.farm.test (its A records: none)"), std::string::npos)
      << got[1].detail;

  EXPECT_EQ(got[2].status, PtrStatus::NotConfirmed) << got[2].detail;
  EXPECT_NE(got[2].detail.find("127.0.0.99"), std::string::npos) << got[2].detail;

  EXPECT_EQ(got[3].status, PtrStatus::NoPtr) << got[3].detail;
  EXPECT_NE(got[3].detail.find("13.0.0.127.in-addr.arpa"), std::string::npos) << got[3].detail;

  EXPECT_EQ(got[4].status, PtrStatus::Confirmed) << got[4].detail;
  EXPECT_EQ(got[4].confirmed, "probe6.farm.test");  // lower case

  // The decision on these facts.
  EXPECT_EQ(choose_helo("", &got[0], "vm").name, "probe1.farm.test");
  EXPECT_EQ(choose_helo("", &got[1], "vm").name, "vm");
}

TEST_P(PtrTest, ResolverFailureIsLookupFailedWithTheCause) {
  dns::testing::RcodeServer servfail(2);
  auto r = resolver(servfail.server());
  const auto got = check_ptrs_now(*loop_, *r, ips({"127.0.0.10"}));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].status, PtrStatus::LookupFailed);
  EXPECT_NE(got[0].detail.find("SERVFAIL"), std::string::npos) << got[0].detail;
  EXPECT_NE(got[0].detail.find("PTR lookup of 10.0.0.127.in-addr.arpa"), std::string::npos)
      << got[0].detail;

  // Nothing listens: a timeout, said as such.
  auto dead = resolver("127.0.0.1:" + std::to_string(dns::testing::free_udp_port()));
  const auto none = check_ptrs_now(*loop_, *dead, ips({"127.0.0.10"}));
  EXPECT_EQ(none[0].status, PtrStatus::LookupFailed);
  EXPECT_NE(none[0].detail.find("dns: "), std::string::npos) << none[0].detail;
}

TEST_P(PtrTest, NoAddressAnswersAtOnceAndTheLoopStillRuns) {
  auto r = resolver(dnsmasq_->server());
  EXPECT_TRUE(check_ptrs_now(*loop_, *r, {}).empty());
  // The loop was not left stopped: a lookup after it still completes.
  EXPECT_EQ(check_ptrs_now(*loop_, *r, ips({"127.0.0.10"}))[0].status, PtrStatus::Confirmed);
}

INSTANTIATE_TEST_SUITE_P(Backends, PtrTest,
                         ::testing::Values(loop::Backend::Uv, loop::Backend::Uring),
                         [](const auto& info) { return std::string(loop::to_string(info.param)); });

}  // namespace
}  // namespace mxp::identity
