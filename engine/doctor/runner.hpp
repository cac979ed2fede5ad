// `mxprobe doctor`'s checks on the engine's loop: binding each source address (or a proxy's
// handshake), reverse DNS and the HELO decision (engine/identity), DNS blocklists and the port-25
// targets through the configured resolver, a connection to port 25 from each source, the
// resolver itself, the open-file limit and the clock. The raw facts go to doctor::evaluate
// (doctor.hpp), which decides. Everything runs at once; a bound on the whole run turns what has
// not answered by then into "could not check".
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dns/resolver.hpp"
#include "doctor/doctor.hpp"
#include "loop/loop.hpp"
#include "proxy/socks5.hpp"

namespace mxp::doctor {

// The default port-25 targets: inbound MX hosts of the biggest mailbox providers (Gmail,
// Outlook, Yahoo); docs/identity.md lists them.
const std::vector<std::string>& default_port25_targets();

struct RunnerOptions {
  std::vector<loop::Endpoint> sources;  // the source IPs; empty (and no proxy): the kernel's
  std::vector<proxy::ProxyUrl> proxies;
  loop::Duration proxy_timeout = std::chrono::seconds(10);
  std::string helo_option;  // --helo, or empty
  std::string host_name;    // identity::host_name(), for the HELO decision
  std::vector<std::string> dnsbl_zones;
  std::vector<std::string> port25_targets;  // HOST[:PORT] or IP[:PORT]; port 25 by default
  loop::Duration port25_timeout = std::chrono::seconds(5);  // connect, and then the greeting
  bool check_identity = true;
  uint32_t concurrency = 0;  // sessions asked, for the open-file check
  // The whole run at most (zero: no bound): what has not answered by then could not be checked.
  loop::Duration bound{};
};

class Runner {
 public:
  using Done = std::function<void(std::vector<SourceFacts>, GlobalFacts)>;
  // The loop and resolver must outlive the runner; done is called once, from the loop.
  Runner(loop::Loop& loop, dns::Resolver& resolver, RunnerOptions options, Done done);
  ~Runner();
  Runner(const Runner&) = delete;
  Runner& operator=(const Runner&) = delete;
  void start();
  bool finished() const;

  struct State;

 private:
  std::shared_ptr<State> st_;
};

// Runs the checks, running the loop until they are done (a loop with nothing else to do: it is
// stopped at the end).
std::pair<std::vector<SourceFacts>, GlobalFacts> run_now(loop::Loop& loop, dns::Resolver& resolver,
                                                         RunnerOptions options);

}  // namespace mxp::doctor
