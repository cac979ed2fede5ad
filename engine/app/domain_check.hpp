// `mxprobe check --domain` (docs/usage.md, "Domain checks"): what a domain does with mail, from
// its DNS and one session through the engine's scheduler (pipeline::Verifier::check_domain).
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "app/engine_options.hpp"
#include "core/expected.hpp"
#include "pipeline/domain_report.hpp"

namespace mxp::app {

// The domain as the engine compares it (lower case, IDN as A-labels), or why it is not one
// ("not a domain (domain_not_fqdn)").
core::Expected<std::string, std::string> normalize_domain(std::string_view text);

// Checks each domain; prints a readable report (80 columns) or, with `json`, one JSON object
// per line. Exit status: 0 when every domain takes mail or could not be judged, 4 when one
// takes none (null MX, no such domain, no mail server, every server refuses), 2 for a domain
// that is not one, 3 when the engine cannot start.
int run_check_domains(const std::vector<std::string>& domains, bool json, bool verbose,
                      const EngineOptions& eng, std::FILE* out, std::FILE* diag);

// The readable report of one domain check, every outside text escaped for a terminal.
std::string domain_report_text(const pipeline::DomainReport& r);

// True when the report says the domain takes no mail (exit status 4).
bool takes_no_mail(const pipeline::DomainReport& r);

}  // namespace mxp::app
