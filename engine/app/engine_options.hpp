// Options shared by the commands that talk to mail servers (check, verify, later serve), their
// CLI11 registration, and building the loop, resolver and verifier configuration from them.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "dns/resolver.hpp"
#include "loop/loop.hpp"
#include "pipeline/verifier.hpp"

namespace mxp::app {

struct EngineOptions {
  std::string backend = "auto";
  std::vector<std::string> dns;  // resolvers "IP[:PORT]"; empty: /etc/resolv.conf
  uint16_t smtp_port = 25;
  std::vector<std::string> source_ips;
  double timeout_connect = 10, timeout_banner = 30, timeout_command = 30;  // seconds
  double timeout_dns = 5;
  std::string helo;       // default: this host's name
  std::string mail_from;  // default: the null sender <> (docs/usage.md says why)
  uint32_t concurrency = 100;
  uint32_t domain_concurrency = 4;
  uint32_t rcpts_per_session = 8;
  size_t max_domains = 50'000;
  bool no_catch_all = false;
  bool no_pipelining = false;
};

void add_engine_options(CLI::App& cmd, EngineOptions& o);

// Everything a command needs to verify: built in order, torn down in reverse.
struct Engine {
  std::unique_ptr<loop::Loop> loop;
  std::unique_ptr<dns::Resolver> resolver;
  pipeline::VerifierConfig config;
  std::string loop_why;  // which backend and why
};

// Builds the engine; on failure prints a clear message to diag and returns false.
bool make_engine(const EngineOptions& o, bool transcripts, Engine& e, std::FILE* diag);

}  // namespace mxp::app
