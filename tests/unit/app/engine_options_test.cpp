// The command-line values become the policy's last layer: given ones replace [global]/[defaults]
// values of the file, unset ones leave the policy alone, and a bad file is a clear error.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "app/engine_options.hpp"
#include "identity/identity.hpp"

namespace mxp::app {
namespace {

using smtp::Stage;
using namespace std::chrono_literals;

std::chrono::nanoseconds timeout(const sched::DomainSettings& d, Stage s) {
  return d.timeouts[static_cast<int>(s)];
}

TEST(EngineOptions, UnsetValuesLeaveThePolicyAlone) {
  EngineOptions o;
  EXPECT_EQ(policy_overrides(o), "");
  auto loaded = load_engine_policy(o);
  ASSERT_TRUE(loaded) << loaded.error();
  const auto& p = *loaded;
  const auto& b = sched::Policy::builtin();
  EXPECT_EQ(p->max_sessions(), b.max_sessions());
  EXPECT_EQ(p->domain_settings("a.test", std::nullopt), b.domain_settings("a.test", std::nullopt));
}

TEST(EngineOptions, GivenValuesBeatTheFileDefaults) {
  char path[] = "/tmp/mxp-policy-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  std::ofstream(path) << "[global]\nmax_sessions = 40\n[defaults]\nper_domain.sessions = 3\n"
                         "session.recipients = 9\ntimeouts.rcpt_to = \"45s\"\n";
  EngineOptions o;
  o.policy_file = path;
  o.concurrency = 12;
  o.timeout_command = 2.5;
  o.timeout_connect = 1;
  o.no_catch_all = true;
  auto loaded = load_engine_policy(o);
  std::remove(path);
  ASSERT_TRUE(loaded) << loaded.error();
  const auto& p = *loaded;
  EXPECT_EQ(p->max_sessions(), 12u);  // command line
  const auto& d = p->domain_settings("a.test", std::nullopt);
  EXPECT_EQ(d.domain.sessions, 3u);              // file
  EXPECT_EQ(d.recipients, 9u);                   // file
  EXPECT_EQ(timeout(d, Stage::RcptTo), 2500ms);  // command line beats the file
  EXPECT_EQ(timeout(d, Stage::Ehlo), 2500ms);
  EXPECT_EQ(timeout(d, Stage::Connect), 1000ms);
  EXPECT_EQ(timeout(d, Stage::Banner), 60s);  // neither: built-in
  EXPECT_FALSE(d.catch_all_probe);
}

TEST(EngineOptions, BadPolicyFileIsAClearError) {
  char path[] = "/tmp/mxp-policy-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  std::ofstream(path) << "[defaults]\nper_mx.sessions = -4\n";
  EngineOptions o;
  o.policy_file = path;
  auto bad = load_engine_policy(o);
  std::remove(path);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().find(path), std::string::npos) << bad.error();
  EXPECT_NE(bad.error().find("per_mx.sessions"), std::string::npos) << bad.error();
  o.policy_file = "/nonexistent/policy.toml";
  auto missing = load_engine_policy(o);
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().find("cannot open"), std::string::npos) << missing.error();
}

}  // namespace
}  // namespace mxp::app

namespace mxp::app {
namespace {

// make_engine with proxies: --proxy and --proxy-file (comments, blanks) fill the pool; a bad
// URL is an error that names the place but never the password; --source-ip cannot be combined.
struct Made {
  bool ok = false;
  Engine e;
  std::string diag;
};
Made make(EngineOptions o) {
  o.dns = {"127.0.0.1:1"};
  Made m;
  char* buf = nullptr;
  size_t len = 0;
  std::FILE* f = open_memstream(&buf, &len);
  m.ok = make_engine(o, false, m.e, f);
  std::fclose(f);
  m.diag.assign(buf, len);
  std::free(buf);
  return m;
}

// --mail-from: an ordered list, "<>" the null sender, duplicates dropped; the first is the
// session's mail_from, the rest its fallbacks (docs/identity.md, "MAIL FROM").
TEST(EngineOptions, MailFromList) {
  EngineOptions o;
  Made m = make(o);
  ASSERT_TRUE(m.ok) << m.diag;
  EXPECT_EQ(m.e.config.session.mail_from, "");  // the default: <> alone
  EXPECT_TRUE(m.e.config.session.fallback_senders.empty());
  o.mail_from = {"<>", "Verify@Example.COM", "<>"};
  m = make(o);
  ASSERT_TRUE(m.ok) << m.diag;
  EXPECT_EQ(m.e.config.session.mail_from, "");
  EXPECT_EQ(m.e.config.session.fallback_senders, std::vector<std::string>{"Verify@example.com"});
  o.mail_from = {"bounce@example.org"};
  m = make(o);
  ASSERT_TRUE(m.ok) << m.diag;
  EXPECT_EQ(m.e.config.session.mail_from, "bounce@example.org");
  o.mail_from = {"<>", "not an address"};
  m = make(o);
  EXPECT_FALSE(m.ok);
  EXPECT_NE(m.diag.find("--mail-from 'not an address' is not a valid address"), std::string::npos)
      << m.diag;
}

TEST(EngineOptions, ProxiesFromFlagsAndFiles) {
  char path[] = "/tmp/mxp-proxies-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  std::ofstream(path) << "# pool\n\n  socks5://u:p%40ss@192.0.2.2:1080  # second\n"
                         "socks5://[2001:db8::3]:9050\r\n";
  EngineOptions o;
  o.proxies = {"socks5://192.0.2.1:1080"};
  o.proxy_files = {path};
  o.proxy_timeout = 3;
  o.proxy_recheck = 20;
  Made m = make(o);
  ASSERT_TRUE(m.ok) << m.diag;
  const auto& px = m.e.config.proxies;
  ASSERT_EQ(px.size(), 3u);
  EXPECT_EQ(px[0].display, "socks5://192.0.2.1:1080");
  EXPECT_EQ(px[1].display, "socks5://192.0.2.2:1080");
  ASSERT_TRUE(px[1].credentials);
  EXPECT_EQ(px[1].credentials->password, "p@ss");
  EXPECT_EQ(px[2].display, "socks5://[2001:db8::3]:9050");
  EXPECT_EQ(m.e.config.proxy_check_timeout, 3s);
  EXPECT_EQ(m.e.config.proxy_health.max, 20s);

  std::ofstream(path) << "socks5://192.0.2.1:1080\nsocks5://user:HUSH@not-an-ip:1080\n";
  o.proxies.clear();
  m = make(o);
  std::remove(path);
  EXPECT_FALSE(m.ok);
  EXPECT_NE(m.diag.find(std::string(path) + ":2"), std::string::npos) << m.diag;
  EXPECT_EQ(m.diag.find("HUSH"), std::string::npos) << m.diag;

  EngineOptions both;
  both.proxies = {"socks5://192.0.2.1:1080"};
  both.source_ips = {"127.0.0.1"};
  m = make(both);
  EXPECT_FALSE(m.ok);
  EXPECT_NE(m.diag.find("cannot be combined"), std::string::npos) << m.diag;
}

}  // namespace
// The HELO name per source address (docs/identity.md): --helo for every source; without it a
// source whose PTR cannot be asked (the resolver here answers nothing) gets this host's name,
// with the start-up warning exactly when servers would refuse that name.
TEST(EngineOptions, HeloPerSourceAndTheWarning) {
  EngineOptions o;
  o.source_ips = {"127.0.0.1"};
  o.helo = "probe.example.test";
  Made m = make(o);
  ASSERT_TRUE(m.ok) << m.diag;
  EXPECT_EQ(m.e.config.session.helo_name, "probe.example.test");
  EXPECT_EQ(m.e.config.sources[0].helo, "");  // the session's, i.e. --helo
  EXPECT_EQ(m.diag.find("warning: HELO"), std::string::npos) << m.diag;

  o.helo.clear();
  m = make(o);
  ASSERT_TRUE(m.ok) << m.diag;
  const std::string host = identity::host_name();
  EXPECT_EQ(m.e.config.sources[0].helo, host);
  const bool warned =
      m.diag.find("warning: HELO name '" + host + "' for 127.0.0.1") != std::string::npos;
  EXPECT_EQ(warned, !identity::acceptable_helo(host)) << m.diag;

  o.helo = "vm";  // given, but not fully-qualified: used, and warned about
  m = make(o);
  ASSERT_TRUE(m.ok) << m.diag;
  EXPECT_EQ(m.e.config.session.helo_name, "vm");
  EXPECT_NE(m.diag.find("warning: HELO name 'vm' for every source address"), std::string::npos)
      << m.diag;
}

TEST(EngineOptions, SourcePoolsMustNameOurSources) {
  char path[] = "/tmp/mxp-pool-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  std::ofstream(path) << "[provider.p]\nmatch = [\"mx.p.test\"]\nsources = [\"192.0.2.99\"]\n";
  EngineOptions o;
  o.policy_file = path;
  o.source_ips = {"127.0.0.1"};
  Made m = make(o);
  EXPECT_FALSE(m.ok);
  EXPECT_NE(m.diag.find("[provider.p] sources: 192.0.2.99 is not one of our sources"),
            std::string::npos)
      << m.diag;
  o.source_ips.push_back("192.0.2.99");
  m = make(o);
  std::remove(path);
  EXPECT_TRUE(m.ok) << m.diag;
}

}  // namespace mxp::app
