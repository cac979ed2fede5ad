// Why DNS gave no mail server: the outcomes that end a verification before any SMTP. Plain data
// (its own header-only target, mxprobe_dns_types) so the verdict policy classifies them without
// linking c-ares or the loop, and the resolver reports them without linking the policy.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace mxp::dns {

enum class DnsStatus : uint8_t {
  NxDomain,      // the domain does not exist (RCODE 3)
  NullMx,        // RFC 7505 "MX 0 ." : the domain accepts no mail
  NoMailServer,  // no MX and no A/AAAA (RFC 5321 §5.1 has nothing to fall back to)
  ServFail,      // the domain's servers failed to answer (RCODE 2)
  Refused,       // the resolver refused the query (RCODE 5) or another resolver error
  Timeout,       // no answer in time
};
inline constexpr std::array<std::string_view, 6> kDnsStatusNames = {
    "nxdomain", "null_mx", "no_mail_server", "servfail", "refused", "timeout"};
constexpr std::string_view to_string(DnsStatus s) {
  return kDnsStatusNames[static_cast<int>(s)];
}

}  // namespace mxp::dns
