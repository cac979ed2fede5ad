#include "doctor/doctor.hpp"

#include <gtest/gtest.h>

#include <sstream>

namespace mxp::doctor {
namespace {

using O = Port25Attempt::Outcome;

SourceFacts ip(std::string name) {
  SourceFacts f;
  f.name = std::move(name);
  f.identity_checked = true;
  f.helo = "mx1.example.org";
  f.helo_fqdn = true;
  f.ptr = "mx1.example.org";
  f.fcrdns = true;
  f.dnsbl = {{"bl.example", {DnsblResult::Clean, {}}}};
  f.port25 = {{"mx.example", "192.0.2.25:25", O::Banner, 220, "220 mx.example ESMTP"}};
  return f;
}

GlobalFacts global() {
  GlobalFacts g;
  g.resolver = "127.0.0.1:53";
  g.now_unix = 1'800'000'000;
  g.build_unix = 1'790'000'000;
  g.fd_checked = true;
  g.fd_soft = g.fd_hard = 65536;
  g.fd_in_use = 10;
  g.concurrency = 200;
  return g;
}

const Check* find(const SourceReport& s, std::string_view name) {
  for (const auto& c : s.checks)
    if (c.name == name) return &c;
  return nullptr;
}

TEST(Dnsbl, QueryNameReversesTheOctets) {
  EXPECT_EQ(dnsbl_query_name("127.42.0.11", "bl.farm.test"), "11.0.42.127.bl.farm.test");
  EXPECT_EQ(dnsbl_query_name("192.0.2.1", "zen.spamhaus.org."), "1.2.0.192.zen.spamhaus.org");
  EXPECT_FALSE(dnsbl_query_name("2001:db8::1", "zen.spamhaus.org"));
  EXPECT_FALSE(dnsbl_query_name("nonsense", "zen.spamhaus.org"));
}

TEST(Dnsbl, AnswersMeanListedCleanOrCouldNotCheck) {
  EXPECT_EQ(interpret_dnsbl(true, {}).result, DnsblResult::Clean);  // NXDOMAIN / NODATA
  auto l = interpret_dnsbl(true, {"127.0.0.2"});
  EXPECT_EQ(l.result, DnsblResult::Listed);
  EXPECT_EQ(l.answer, "127.0.0.2");
  EXPECT_EQ(interpret_dnsbl(true, {"127.0.0.11"}).result, DnsblResult::Listed);
  // Spamhaus's error codes: the querier is refused, the address is not judged.
  for (const char* code :
       {"127.255.255.252", "127.255.255.254", "127.255.255.255", "127.255.255.1"})
    EXPECT_EQ(interpret_dnsbl(true, {code}).result, DnsblResult::Refused) << code;
  // An error code among listing codes still means "could not check".
  EXPECT_EQ(interpret_dnsbl(true, {"127.0.0.2", "127.255.255.254"}).result, DnsblResult::Refused);
  // A resolver that rewrites NXDOMAIN to a web server's address; a list listing the world.
  EXPECT_EQ(interpret_dnsbl(true, {"198.51.100.7"}).result, DnsblResult::Unexpected);
  EXPECT_EQ(interpret_dnsbl(true, {"127.0.0.1"}).result, DnsblResult::Unexpected);
  auto f = interpret_dnsbl(false, {}, "dns: SERVFAIL from 127.0.0.1:53");
  EXPECT_EQ(f.result, DnsblResult::Failed);
  EXPECT_EQ(f.answer, "dns: SERVFAIL from 127.0.0.1:53");
}

TEST(Port25, Summary) {
  EXPECT_EQ(summarize_port25({}), Port25::NotChecked);
  EXPECT_EQ(summarize_port25({{"a", "", O::Timeout, 0, ""}, {"b", "", O::Banner, 554, ""}}),
            Port25::Ok);
  EXPECT_EQ(summarize_port25({{"a", "", O::Timeout, 0, ""}, {"b", "", O::Refused, 0, ""}}),
            Port25::Blocked);
  EXPECT_EQ(summarize_port25({{"a", "", O::Refused, 0, ""}, {"b", "", O::Reset, 0, ""}}),
            Port25::Refused);
  // Names that do not resolve say nothing about port 25.
  EXPECT_EQ(summarize_port25({{"a", "", O::Unresolved, 0, ""}}), Port25::CouldNotCheck);
  EXPECT_EQ(summarize_port25({{"a", "", O::Unresolved, 0, ""}, {"b", "", O::LocalError, 0, ""}}),
            Port25::CouldNotCheck);
  EXPECT_EQ(to_string(Port25::CouldNotCheck), "could_not_check");
}

TEST(Evaluate, AllGoodIsExitZero) {
  auto r = evaluate({ip("192.0.2.1")}, global(), {});
  EXPECT_EQ(r.exit_code, 0);
  ASSERT_EQ(r.sources.size(), 1u);
  EXPECT_TRUE(r.sources[0].in_rotation);
  EXPECT_TRUE(r.sources[0].problems.empty());
  EXPECT_EQ(r.sources[0].port25, Port25::Ok);
  EXPECT_TRUE(r.warnings.empty());
}

TEST(Evaluate, AListedSourceIsOutOfRotationButAnotherKeepsTheExitAtZero) {
  auto bad = ip("192.0.2.2");
  bad.dnsbl = {{"bl.example", {DnsblResult::Listed, "127.0.0.2"}},
               {"refused.example", {DnsblResult::Refused, "127.255.255.254"}}};
  auto r = evaluate({ip("192.0.2.1"), bad}, global(), {});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(r.sources[0].in_rotation);
  EXPECT_FALSE(r.sources[1].in_rotation);
  EXPECT_EQ(r.sources[1].out_reason, "listed on bl.example (127.0.0.2)");
  EXPECT_EQ(r.sources[1].dnsbl_listed, std::vector<std::string>{"bl.example"});
  EXPECT_EQ(r.sources[1].dnsbl_unchecked, std::vector<std::string>{"refused.example"});
  // Kept on request: in rotation, still not "usable".
  Options keep;
  keep.keep_unhealthy = true;
  auto k = evaluate({ip("192.0.2.1"), bad}, global(), keep);
  EXPECT_TRUE(k.sources[1].in_rotation);
  EXPECT_FALSE(k.sources[1].usable);
}

TEST(Evaluate, EverySourceListedFails) {
  auto bad = ip("192.0.2.2");
  bad.dnsbl = {{"bl.example", {DnsblResult::Listed, "127.0.0.2"}}};
  auto r = evaluate({bad}, global(), {});
  EXPECT_EQ(r.exit_code, 1);
  ASSERT_EQ(r.failures.size(), 1u);
  EXPECT_NE(r.failures[0].find("no usable source"), std::string::npos);
}

TEST(Evaluate, RefusedAnswersAreNeverClean) {
  auto s = ip("192.0.2.1");
  s.dnsbl = {{"zen.spamhaus.org", {DnsblResult::Refused, "127.255.255.254"}}};
  auto r = evaluate({s}, global(), {});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(r.sources[0].in_rotation);
  const Check* c = find(r.sources[0], "dnsbl");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->status, Status::Unchecked);
  EXPECT_NE(c->detail.find("zen.spamhaus.org"), std::string::npos);
}

TEST(Evaluate, Port25BlockedEverywhereFails) {
  auto a = ip("192.0.2.1"), b = ip("192.0.2.2");
  a.port25 = {{"mx.example", "192.0.2.25:25", O::Timeout, 0, "connect_timeout"}};
  b.port25 = {{"mx.example", "192.0.2.25:25", O::Refused, 0, "connection_refused"}};
  auto r = evaluate({a, b}, global(), {});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.sources[0].port25, Port25::Blocked);
  EXPECT_EQ(r.sources[1].port25, Port25::Refused);
  EXPECT_FALSE(r.sources[0].in_rotation);
  EXPECT_NE(find(r.sources[0], "port 25")
                ->detail.find("port 25 looks blocked: use --proxy or "
                              "another network"),
            std::string::npos);
  EXPECT_NE(r.failures[0].find("does not work from any source"), std::string::npos);
}

TEST(Evaluate, UnresolvedTargetsAreNotBlocked) {
  auto a = ip("192.0.2.1");
  a.port25 = {{"gmail-smtp-in.l.google.com", "", O::Unresolved, 0, "dns: refused"}};
  a.dnsbl = {{"zen.spamhaus.org", {DnsblResult::Failed, "dns: refused"}}};
  auto r = evaluate({a}, global(), {});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(r.sources[0].in_rotation);
  EXPECT_EQ(r.sources[0].port25, Port25::CouldNotCheck);
  // One short start-up line for all that could not be checked.
  auto lines = short_lines(r);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("warning: doctor could not check port 25 and 1 blocklist(s)"),
            std::string::npos);
}

TEST(Evaluate, DeadResolverFails) {
  auto g = global();
  g.resolver_answers = false;
  auto r = evaluate({ip("192.0.2.1")}, g, {});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.global[0].status, Status::Fail);
  EXPECT_NE(r.global[0].detail.find("the resolver 127.0.0.1:53 does not answer"),
            std::string::npos);
}

TEST(Evaluate, BindFailureAndNonFqdnHelo) {
  auto a = ip("192.0.2.1");
  a.binds = false;
  a.bind_error = "Cannot assign requested address";
  auto b = ip("192.0.2.2");
  b.helo = "vm";
  b.helo_fqdn = false;
  b.ptr.reset();
  b.fcrdns = false;
  auto r = evaluate({a, b}, global(), Options{true, 0});
  EXPECT_FALSE(r.sources[0].in_rotation);  // not even --keep-unhealthy-sources keeps it
  EXPECT_TRUE(r.sources[1].in_rotation);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(find(r.sources[1], "helo")->status, Status::Warn);
  EXPECT_EQ(find(r.sources[1], "ptr")->status, Status::Warn);
  EXPECT_EQ(r.sources[1].problems.size(), 2u);
}

TEST(Evaluate, OpenFileLimit) {
  auto g = global();
  g.fd_soft = g.fd_hard = 64;
  g.fd_in_use = 8;  // room: 64 - 8 - 24 = 32
  auto r = evaluate({ip("192.0.2.1")}, g, {});
  EXPECT_EQ(r.exit_code, 0);  // verify lowers its concurrency: a warning
  EXPECT_EQ(r.global[2].status, Status::Warn);
  g.fd_soft = g.fd_hard = 32;  // room: 0
  r = evaluate({ip("192.0.2.1")}, g, {});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.global[2].status, Status::Fail);
  EXPECT_EQ(fd_room(1024, 10), 1024u - 10 - 128);
}

TEST(Evaluate, Clock) {
  auto g = global();
  g.now_unix = g.build_unix - 2 * 86400;
  auto r = evaluate({ip("192.0.2.1")}, g, {});
  EXPECT_EQ(r.global[1].status, Status::Warn);
  g = global();
  g.skew = 900;
  g.skew_source = "mx.example";
  r = evaluate({ip("192.0.2.1")}, g, {});
  EXPECT_EQ(r.global[1].status, Status::Warn);
  EXPECT_NE(r.global[1].detail.find("900 s ahead of mx.example"), std::string::npos);
  EXPECT_EQ(r.exit_code, 0);
}

TEST(Format, EveryLineFitsEightyColumns) {
  auto bad = ip("192.0.2.2");
  bad.dnsbl = {{"a-rather-long-zone-name.blocklist.example", {DnsblResult::Listed, "127.0.0.2"}},
               {"zen.spamhaus.org", {DnsblResult::Refused, "127.255.255.254"}},
               {"bl.spamcop.net",
                {DnsblResult::Failed,
                 "dns: no answer from 127.0.0.1:53 in 2 "
                 "tries of 5.0 s (A lookup of x)"}}};
  bad.port25 = {{"gmail-smtp-in.l.google.com", "", O::Timeout, 0, "connect_timeout"}};
  auto r = evaluate({ip("192.0.2.1"), bad}, global(), {});
  std::string t = format_table(r);
  std::istringstream in(t);
  std::string line;
  size_t n = 0;
  while (std::getline(in, line)) {
    EXPECT_LE(line.size(), 80u) << line;
    ++n;
  }
  EXPECT_GT(n, 10u);
  EXPECT_NE(t.find("source 192.0.2.2"), std::string::npos);
  EXPECT_NE(t.find("FAIL"), std::string::npos);
  EXPECT_NE(t.find("could not check"), std::string::npos);
  EXPECT_NE(t.find("out of rotation"), std::string::npos);
  for (const auto& l : short_lines(r))
    EXPECT_LE(l.size(), 80u) << l;
}

TEST(Json, SnapshotObjectHasTheContractsKeys) {
  auto r = evaluate({ip("192.0.2.1")}, global(), Options{false, 1234});
  auto j = source_json(r.sources[0]);
  for (const char* k : {"helo", "helo_fqdn", "ptr", "fcrdns", "dnsbl_listed", "dnsbl_unchecked",
                        "port25", "in_rotation", "checked_at_ms", "problems"})
    EXPECT_TRUE(j.contains(k)) << k;
  EXPECT_EQ(j.size(), 10u);
  EXPECT_EQ(j["checked_at_ms"], 1234);
  EXPECT_EQ(j["port25"], "ok");
  auto full = to_json(r);
  EXPECT_EQ(full["exit_code"], 0);
  EXPECT_EQ(full["sources"][0]["source"], "192.0.2.1");
  EXPECT_EQ(full["global"][0]["check"], "resolver");
}

TEST(Dates, GreetingAndBuild) {
  auto t = greeting_date("220 mx.example ESMTP Postfix; Mon, 7 Dec 2026 05:01:02 +0100");
  ASSERT_TRUE(t);
  EXPECT_EQ(*t, build_date("Dec  7 2026") + 4 * 3600 + 62);
  EXPECT_FALSE(greeting_date("220 mx.google.com ESMTP ready"));
  EXPECT_EQ(build_date("nonsense"), 0);
}

}  // namespace
}  // namespace mxp::doctor
