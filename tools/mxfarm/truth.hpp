// Ground truth: the verdict and reason a correct, polite verifier should reach for an address
// of a scenario (vocabulary of docs/verdicts.md; the rules are in docs/mxfarm.md).
#pragma once

#include <cstdint>
#include <ostream>
#include <string_view>

#include "scenario.hpp"

namespace mxfarm {

struct Truth {
  std::string_view verdict;  // deliverable | undeliverable | risky | unknown
  std::string_view reason;
};

struct TruthOptions {
  uint32_t timeout_ms = 10000;      // a reply slower than this is a timeout for the verifier
  uint32_t client_ip = 0x7f000001;  // the verifier's source address (for blocklists)
};

Truth truth_for(const Scenario& sc, const Domain& d, std::string_view local, const TruthOptions& o);

// Writes "email,verdict,reason" lines: every domain's mailboxes and unknown addresses; with
// count > 0, exactly count addresses taken round-robin over the domains (so even a short list
// covers every domain); then up to 10 syntactically invalid addresses (`invalid`).
void write_truth_csv(const Scenario& sc, std::ostream& out, size_t count, size_t invalid,
                     const TruthOptions& o);

}  // namespace mxfarm
