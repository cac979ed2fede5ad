// `mxfarm run`: every listening MX host of a scenario served by one libuv loop, plus dnsmasq
// for the scenario's names. Prints "ready dns=IP:PORT listeners=N" once everything answers.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "scenario.hpp"

namespace mxfarm {

struct RunOptions {
  std::optional<std::string> dns_ip;  // overrides the scenario's
  std::optional<uint16_t> dns_port;   // overrides the scenario's
  std::string report_path;            // empty: the report goes to stderr
  std::string ready_file;             // also write the ready line here (atomically)
  std::string dnsmasq = "/usr/sbin/dnsmasq";
  bool log = false;                  // one stderr line per connection, command and reply
  bool log_dns = false;              // dnsmasq logs queries to stderr
  uint32_t ready_timeout_ms = 5000;  // dnsmasq must answer within this
  size_t rcpt_map_cap = 1'000'000;   // distinct addresses counted in rcpt_by_address
  // Transactions kept in the report's "transactions" (MX, client, MAIL FROM, RCPTs); 0: none.
  size_t transactions = 0;
  // PEM files for STARTTLS (both or neither). Without them starttls hosts answer 454.
  std::string tls_cert, tls_key;
  bool tls_no_tickets = false;  // issue no session tickets: every handshake is a full one
};

// Runs until SIGINT/SIGTERM (exit code 0) or a failure (non-zero, message on stderr).
int run_farm(const Scenario& sc, const RunOptions& opt);

}  // namespace mxfarm
