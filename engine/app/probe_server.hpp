// `mxprobe probe-server HOST[:PORT] | DOMAIN`: measures how one mail server behaves, politely
// and in bounded steps (docs/probe.md): latency per SMTP stage, capabilities, catch-all,
// greylisting and its delay, concurrent connections, the connection rate at which it refuses,
// error limits, tarpitting. Never sends DATA.
#pragma once

#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "app/engine_options.hpp"
#include "probe/report.hpp"

namespace mxp::app {

struct ProbeOptions {
  std::string target;  // HOST[:PORT], IP[:PORT] or a domain (its best MX)
  std::string domain;  // the domain of the RCPT probes (default: the target's)
  bool json = false;
  int samples = 5;             // plain sessions for the latency figures
  double greylist_step = 60;   // s between greylisting retries
  double greylist_wait = 900;  // s of retrying at most
  int max_connections = 10;    // concurrency ramp: at most this many held at once
  double max_rate = 8;         // connection-rate ramp: 1, 2, 4... up to this per second
  double rate_step = 2;        // s per ramp step
  int bad_rcpts = 25;          // error-limit test: RCPTs of unknown users in one session
  double tarpit_ms = 2000;     // a greeting or reply this slow is a tarpit
  double timeout = 30;         // s for the connect, the greeting and each reply
  double max_time = 1800;      // s for the whole probe, waits for limits included
  bool no_concurrency = false, no_rate = false, no_error_limit = false;
};

int run_probe_server(const ProbeOptions& opts, const EngineOptions& eng, std::FILE* out,
                     std::FILE* diag);

// Where a probe goes: the server, the source address, the domain of its RCPT probes.
struct ProbeTarget {
  std::string host;  // MX host name (or the address given)
  loop::Endpoint peer;
  std::optional<loop::Endpoint> source;
  std::string domain;
};
// opts.target as an address, or a name through `resolver` (its best MX); `done` may run before
// this returns (a cached answer, an address) and gets nullopt with the reason on failure.
void resolve_probe_target(dns::MxResolver& resolver, const ProbeOptions& opts, uint16_t port,
                          const std::vector<pipeline::SourceAddress>& sources,
                          std::function<void(std::optional<ProbeTarget>, std::string)> done);
// The same for a command about to run: runs `loop` until the answer is in (an address answers
// at once, without running it). The target, or why there is none.
core::Expected<ProbeTarget, std::string> resolve_probe_target_now(
    loop::Loop& loop, dns::MxResolver& resolver, const ProbeOptions& opts, uint16_t port,
    const std::vector<pipeline::SourceAddress>& sources);

// One probe on a loop (the CLI's own, or serve's): start(), then `on_done` runs (on the loop)
// when it has finished; report() then says what it found. Never sends DATA.
class Probe {
 public:
  Probe(loop::Loop& loop, const ProbeOptions& opts, const smtp::SessionConfig& base,
        ProbeTarget target, std::function<void()> on_done);
  ~Probe();
  void start();
  bool done() const;
  probe::Report report() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mxp::app
