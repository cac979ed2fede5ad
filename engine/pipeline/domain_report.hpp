// A domain check (`mxprobe check --domain`, GET /v1/domains/{domain}; docs/usage.md, "Domain
// checks"): what DNS says of the domain's mail servers and what one SMTP session with them says
// (greeting, EHLO, one RCPT). Filled by the Verifier (Verifier::check_domain), which runs the
// session through the scheduler like any address; written as JSON here.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/verdict.hpp"

namespace mxp::pipeline {

struct DomainReport {
  uint64_t id = 0;     // the caller's id
  std::string domain;  // as normalised (lower case, IDN as A-labels)
  // What the domain does with mail, in one word (docs/usage.md lists them): "accepts",
  // "rejects", "null_mx", "no_such_domain", "no_mail_server", "unknown", "denied",
  // "not_allowed".
  std::string mail = "unknown";
  struct MxHost {
    std::string host;
    uint16_t preference = 0;
    std::vector<std::string> addresses;  // A and AAAA, in the order they are tried
  };
  std::vector<MxHost> mx;    // by preference; the domain itself for an implicit MX
  bool implicit_mx = false;  // no MX: the domain's own A/AAAA stand in (RFC 5321 §5.1)
  bool null_mx = false;      // "MX 0 ." (RFC 7505): the domain says it takes no mail
  std::string provider;      // verdict/provider.hpp; "" (null) when unknown
  // A server answered our RCPT (whatever it said): the domain takes mail. False: DNS says it
  // takes none, or its servers refuse every session; null: no server could be asked.
  std::optional<bool> accepts_mail;
  // The answer to a random address (docs/verdicts.md, "Catch-all"); null when not probed or
  // the probe could not tell. catch_all_cached: known from an earlier probe (this run, the
  // results cache, the cluster), so no random address was sent this time.
  std::optional<bool> catch_all;
  bool catch_all_cached = false;
  std::optional<bool> starttls;          // offered in EHLO; null when no EHLO was answered
  std::string tls_version, tls_cipher;   // when the session used it
  std::optional<bool> disposable, free;  // engine/flags; null without domain data
  std::string mx_reached, mx_ip;         // the server that answered, "" when none
  std::string banner;                    // its greeting's first line
  std::string rcpt;                      // the address asked at RCPT (random or postmaster)
  bool has_smtp = false;                 // the last reply, as in a record
  int code = 0;
  std::string enhanced, message;
  Verdict verdict = Verdict::Unknown;  // the RCPT's verdict and reason, as for an address
  Reason reason = Reason::ProtocolError;
  std::string error;  // what stopped the check ("dns: ...", the lists), "" otherwise
  double elapsed_ms = 0;
  std::chrono::system_clock::time_point checked_at{};
};

// The JSON object, one line, with a final newline (docs/api.md, GET /v1/domains/{domain}).
void append_json(const DomainReport& r, std::string& out);

}  // namespace mxp::pipeline
