// `mxfarm gen`: builds a scenario from a few numbers: ordinary domains sharing a pool of MX
// hosts, plus one domain (with its own hosts) per special behaviour. Deterministic per seed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "scenario.hpp"

namespace mxfarm {

struct GenOptions {
  uint32_t domains = 10;       // ordinary domains d1.TLD ... dN.TLD
  uint32_t hosts = 4;          // shared MX hosts for them (styles cycle over the four)
  uint32_t mx_per_domain = 2;  // MX records per ordinary domain (preferences 10, 20, ...)
  uint32_t mailboxes = 5;      // user1..userN per domain
  double catch_all_share = 0.1;
  double greylist_share = 0.0;
  double full_share = 0.1;       // share of mailboxes that are full (half 452, half 552)
  double disabled_share = 0.05;  // share of mailboxes that are disabled
  uint64_t seed = 1;
  std::string base_ip = "127.20.0.0";  // hosts get base+1, base+2, ...
  uint16_t port = 25;
  std::string dns_ip = "127.0.0.1";
  uint16_t dns_port = 5353;
  uint32_t ttl = 60;
  std::string tld = "test";
  uint32_t greylist_delay_s = 2;
  uint32_t error_sleep_ms = 1000;  // errlimit special (Postfix: 1 s after 10 errors, drop at 20)
  uint32_t soft_error_limit = 10;
  uint32_t hard_error_limit = 20;
  uint32_t rcpt_limit = 3;             // rcptlimit special
  uint32_t tarpit_byte_ms = 1000;      // tarpit special
  uint64_t endless_bytes = 16u << 20;  // endless special: bytes before the farm gives up
  uint64_t overlong_bytes = 1u << 20;  // overlong special: length of the line
  uint32_t conn_limit = 2;             // connlimit special
  uint32_t rate_count = 3;             // connrate special: rate_count per rate_window_s
  uint32_t rate_window_s = 10;
  std::vector<std::string> specials = {"all"};  // names from special_names(), "all" or "none"
};

// Names of the special behaviours gen knows (each is also the domain's first label).
const std::vector<std::string>& special_names();

// Returns false with *error set on bad options (unknown special, address space exhausted...).
bool generate(const GenOptions& o, Scenario* out, std::string* error);

}  // namespace mxfarm
