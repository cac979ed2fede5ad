// The command-line values become the policy's last layer: given ones replace [global]/[defaults]
// values of the file, unset ones leave the policy alone, and a bad file is a clear error.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "app/engine_options.hpp"

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
  std::string err;
  auto p = load_engine_policy(o, err);
  ASSERT_TRUE(p) << err;
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
  std::string err;
  auto p = load_engine_policy(o, err);
  std::remove(path);
  ASSERT_TRUE(p) << err;
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
  std::string err;
  EXPECT_FALSE(load_engine_policy(o, err));
  std::remove(path);
  EXPECT_NE(err.find(path), std::string::npos) << err;
  EXPECT_NE(err.find("per_mx.sessions"), std::string::npos) << err;
  o.policy_file = "/nonexistent/policy.toml";
  EXPECT_FALSE(load_engine_policy(o, err));
  EXPECT_NE(err.find("cannot open"), std::string::npos) << err;
}

}  // namespace
}  // namespace mxp::app
