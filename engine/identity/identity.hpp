// The sender identity of a source address: the HELO name a mail server sees, and whether
// reverse DNS backs it. Servers check the HELO name (Postfix reject_non_fqdn_helo_hostname,
// reject_unknown_helo_hostname) and the client's PTR record (forward-confirmed reverse DNS,
// "FCrDNS"), so unless --helo is given the HELO of a source IP is its PTR name when the name's
// A/AAAA records contain the IP, else this host's fully-qualified name (docs/identity.md).
//
// Three parts, usable apart (start-up wiring in engine/app, `mxprobe doctor`):
//   - is_fqdn / is_address_literal / acceptable_helo: checks of a name, pure;
//   - check_ptrs: the reverse-DNS facts of source IPs, asked through the engine's resolver on
//     its loop (so --dns is honoured);
//   - choose_helo: the HELO decision from --helo, those facts and this host's name, pure.
// This header is an interface other modules use: keep it stable.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dns/resolver.hpp"
#include "loop/endpoint.hpp"

namespace mxp::identity {

// A fully-qualified host name: at least two labels, each 1-63 letters, digits and hyphens
// (LDH, RFC 1123) not starting or ending with a hyphen, 253 characters at most (one trailing
// dot allowed), a top-level label that is not all digits (so "192.0.2.1" is not one), and not
// "localhost" or a name under it. Address literals ("[192.0.2.1]", "[IPv6:2001:db8::1]") are
// not FQDNs for this check, although RFC 5321 §4.1.4 accepts them as EHLO arguments and
// Postfix's reject_non_fqdn_helo_hostname lets them pass: see acceptable_helo.
bool is_fqdn(std::string_view name);
// "[192.0.2.1]" or "[IPv6:2001:db8::1]" (RFC 5321 §4.1.3) with a valid address inside.
bool is_address_literal(std::string_view name);
// What reject_non_fqdn_helo_hostname accepts: an FQDN or an address literal.
bool acceptable_helo(std::string_view name);

// This host's name for HELO: gethostname(), made fully-qualified through getaddrinfo's
// AI_CANONNAME (the system resolver: /etc/hosts first, as the system is configured) when that
// gives an FQDN; else the bare name ("vm"), which choose_helo then warns about. "localhost" when
// the host has no name at all. Blocking: call it once, at start-up.
std::string host_name();

// What reverse DNS says about one source address.
enum class PtrStatus : uint8_t {
  Confirmed,     // a PTR name whose A/AAAA records contain the address (FCrDNS)
  NoPtr,         // no PTR record (NXDOMAIN or no data)
  NotConfirmed,  // PTR names, but none of them resolves back to the address
  LookupFailed,  // the resolver gave no usable answer (timeout, SERVFAIL, REFUSED)
};
std::string_view to_string(PtrStatus s);  // "confirmed", "no_ptr", "not_confirmed", "lookup_failed"

struct PtrCheck {
  loop::Endpoint ip;  // the source address (port 0)
  PtrStatus status = PtrStatus::LookupFailed;
  std::vector<std::string> names;  // the PTR names, in the answer's order (lower case, no dot)
  std::string confirmed;           // Confirmed: the first name that resolves back; else empty
  // One line for people: "127.31.0.10 has PTR probe1.farm.test, which resolves back to it",
  // "no PTR record for 127.31.0.11 (11.0.31.127.in-addr.arpa)", "PTR probe2.farm.test of
  // 127.31.0.11 does not resolve back to it (its A records: none)", "dns: no answer from ...".
  std::string detail;
};

// For each address: its PTR names (through resolver.lookup_ptr), then the A (IPv4) or AAAA
// (IPv6) records of each name (at most the first 4 names), all at once on the resolver's loop.
// done gets the checks in the order of `ips`, exactly once, from the loop (the loop must run);
// with no address, before returning. The resolver must outlive the call.
using PtrChecksDone = std::function<void(std::vector<PtrCheck>)>;
void check_ptrs(dns::Resolver& resolver, const std::vector<loop::Endpoint>& ips,
                PtrChecksDone done);
// The same, running the resolver's loop until every answer is in (start-up, before any session:
// the loop must have nothing else to do, since it is stopped at the end).
std::vector<PtrCheck> check_ptrs_now(loop::Loop& loop, dns::Resolver& resolver,
                                     const std::vector<loop::Endpoint>& ips);

// Where a HELO name came from.
enum class HeloSource : uint8_t {
  Option,    // --helo (or the policy's `helo` for a group)
  Ptr,       // the source address's forward-confirmed PTR name
  HostName,  // this host's name (no --helo, no confirmed PTR, or no PTR to ask: proxies, no
             // --source-ip)
};
std::string_view to_string(HeloSource s);  // "option", "ptr", "host_name"

struct HeloChoice {
  std::string name;
  HeloSource source = HeloSource::HostName;
  // Would reject_non_fqdn_helo_hostname accept it (acceptable_helo)? False: warn at start-up.
  bool acceptable = false;
  // Why this name, for logs and doctor: "--helo", "PTR of 127.31.0.10, forward-confirmed",
  // "this host's name: no PTR record for 127.31.0.11 (...)".
  std::string why;
};

// The HELO decision: `option` when not empty; else the confirmed PTR name of `ptr` when it is
// an FQDN; else `host` (host_name()). ptr null: no address to look up (proxies, kernel-chosen
// source). The PTR name is used as DNS gives it (lower case, no trailing dot).
HeloChoice choose_helo(std::string_view option, const PtrCheck* ptr, std::string_view host);

// The start-up warning for a HELO that servers checking it will refuse, one line without a
// newline; empty when choice.acceptable. `who`: "127.31.0.10", "proxy socks5://...", "the
// kernel-chosen source address".
std::string helo_warning(const HeloChoice& choice, std::string_view who);

}  // namespace mxp::identity
