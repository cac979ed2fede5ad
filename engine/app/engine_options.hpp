// Options shared by the commands that talk to mail servers (check, verify, later serve), their
// CLI11 registration, and building the loop, resolver and verifier configuration from them.
#pragma once

#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "app/cli_fwd.hpp"
#include "app/doctor.hpp"
#include "core/expected.hpp"
#include "dns/resolver.hpp"
#include "loop/loop.hpp"
#include "pipeline/verifier.hpp"

namespace mxp::app {

// Command-line values left unset mean "as the policy says" (docs/policy.md); when given they
// replace the policy's [global]/[defaults] value (provider and domain tables still apply).
struct EngineOptions {
  std::string backend = "auto";
  std::vector<std::string> dns;  // resolvers "IP[:PORT]"; empty: /etc/resolv.conf
  uint16_t smtp_port = 25;
  std::string prefer = "ipv4";  // address family tried first among equal MX preferences
  std::vector<std::string> source_ips;
  std::vector<std::string> new_source_ips;  // warmed up per the policy's [warmup]
  // SOCKS5 proxies (docs/proxies.md): socks5://[user:pass@]host:port, and files of them.
  std::vector<std::string> proxies, proxy_files;
  double proxy_timeout = 10;  // seconds: a health check's connect + greeting + authentication
  double proxy_recheck = 30;  // seconds: a down proxy is re-checked at most this far apart
  std::optional<double> timeout_connect, timeout_banner, timeout_command;  // seconds
  double timeout_dns = 5;
  std::string helo;  // default: per source address (docs/identity.md)
  // MAIL FROM, in the order tried: "<>" is the null sender; default just <> (docs/identity.md,
  // "MAIL FROM", says why). A later one is used where a server refused the ones before.
  std::vector<std::string> mail_from;
  std::optional<uint32_t> concurrency, domain_concurrency, rcpts_per_session;
  std::string policy_file;
  size_t max_domains = 50'000;
  bool no_catch_all = false;
  bool no_pipelining = false;
  std::string domain_data;              // --domain-data PATH; "": the default places (engine/flags)
  std::optional<std::string> starttls;  // never | auto | require; unset: the policy's (auto)
  bool tls_verify = false;  // verify the server's certificate (off: we verify mailboxes)
  std::string tls_ca_file;  // with tls_verify: a PEM bundle instead of the system's
  DoctorOptions doctor;     // the start-up checks (app/doctor.hpp)
  // Deny and allow lists (docs/usage.md, "Deny and allow lists"), reloaded on SIGHUP.
  std::vector<std::string> deny_files, allow_files;
  // Commands that verify nothing (bench-server) do without the domain data, and its warning.
  bool no_domain_data = false;
};

// Which engine options a command takes: all of them, those probe-server uses (its own
// timeouts and no scheduler, policy, proxies or TLS of its own), or bench-server's (probe-server's
// and the --timeout-* options).
enum class EngineOptionSet { All, ProbeServer, BenchServer };
void add_engine_options(CLI::App& cmd, EngineOptions& o,
                        EngineOptionSet set = EngineOptionSet::All);

// Option checks with short messages: a number above 0 ("must be a number above 0, not '0'"), and
// seconds above 0 and at most a day.
CLI::Validator positive_number();
CLI::Validator positive_seconds();

// Everything a command needs to verify: built in order, torn down in reverse.
struct Engine {
  std::unique_ptr<loop::Loop> loop;
  std::unique_ptr<dns::Resolver> resolver;
  pipeline::VerifierConfig config;
  std::string loop_why;   // which backend and why
  EngineOptions options;  // as given, for policy reloads
};

// The policy: built-in, then --policy FILE, then the command-line values. An error ("policy
// FILE:LINE:COLUMN: ...") when the file is missing or wrong.
core::Expected<std::shared_ptr<const sched::Policy>, std::string> load_engine_policy(
    const EngineOptions& o);
// The command-line values as a policy document (the last layer).
std::string policy_overrides(const EngineOptions& o);

// The options' values that are the user's to get right (resolver addresses, the policy file,
// source addresses, proxies, HELO name, sender, TLS CA file): false, with a clear message, when
// one is wrong. A usage error (exit 2), checked before anything starts; make_engine fails on
// the same values the same way, and otherwise only when the engine cannot start (exit 3).
bool check_engine_options(const EngineOptions& o, std::FILE* diag);

// "" when the policy's source pools (`sources`, docs/identity.md) name only sources of c (its
// --source-ip addresses or --proxy URLs); else the message.
std::string check_source_pools(const sched::Policy& p, const pipeline::VerifierConfig& c);

// SIGHUP: the --deny and --allow files again, into v (a bad file keeps the lists in force).
// Says what it did on diag ("mxprobe: SIGHUP: ..."); nothing without lists.
void reload_lists(const EngineOptions& o, pipeline::Verifier& v, std::FILE* diag);

// Builds the engine; on failure prints a clear message to diag and returns false. Before it
// returns, each source address's HELO name is chosen (a PTR lookup on the engine's loop) and a
// name servers would refuse is warned about on diag (docs/identity.md).
bool make_engine(const EngineOptions& o, bool transcripts, Engine& e, std::FILE* diag);

}  // namespace mxp::app
