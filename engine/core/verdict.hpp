// Verdicts and reasons: the fixed vocabulary of a verification result (docs/verdicts.md).
// One X-macro list each, so names, parsing and counts cannot drift apart.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace mxp {

#define MXP_VERDICTS(X)             \
  X(Deliverable, "deliverable")     \
  X(Undeliverable, "undeliverable") \
  X(Risky, "risky")                 \
  X(Unknown, "unknown")

// proxy_failed: no SOCKS5 proxy of the pool could be used (docs/proxies.md).
// sender_refused: the server refused every MAIL FROM we have (docs/identity.md, "MAIL FROM").
// denied, not_allowed: answered from --deny / --allow, never contacted (docs/usage.md).
#define MXP_REASONS(X)                     \
  X(Accepted, "accepted")                  \
  X(InvalidSyntax, "invalid_syntax")       \
  X(NoSuchDomain, "no_such_domain")        \
  X(NullMx, "null_mx")                     \
  X(NoMailServer, "no_mail_server")        \
  X(MailboxNotFound, "mailbox_not_found")  \
  X(MailboxDisabled, "mailbox_disabled")   \
  X(CatchAll, "catch_all")                 \
  X(Unverifiable, "unverifiable")          \
  X(MailboxFull, "mailbox_full")           \
  X(Greylisted, "greylisted")              \
  X(RateLimited, "rate_limited")           \
  X(Blocked, "blocked")                    \
  X(Timeout, "timeout")                    \
  X(ConnectionFailed, "connection_failed") \
  X(DnsError, "dns_error")                 \
  X(ProtocolError, "protocol_error")       \
  X(TemporaryFailure, "temporary_failure") \
  X(ProxyFailed, "proxy_failed")           \
  X(TlsRequired, "tls_required")           \
  X(SenderRefused, "sender_refused")       \
  X(Denied, "denied")                      \
  X(NotAllowed, "not_allowed")

enum class Verdict : uint8_t {
#define MXP_X(id, name) id,
  MXP_VERDICTS(MXP_X)
#undef MXP_X
};

enum class Reason : uint8_t {
#define MXP_X(id, name) id,
  MXP_REASONS(MXP_X)
#undef MXP_X
};

inline constexpr int kVerdictCount = 0
#define MXP_X(id, name) +1
    MXP_VERDICTS(MXP_X)
#undef MXP_X
    ;
inline constexpr int kReasonCount = 0
#define MXP_X(id, name) +1
    MXP_REASONS(MXP_X)
#undef MXP_X
    ;

constexpr std::string_view to_string(Verdict v) {
  switch (v) {
#define MXP_X(id, name) \
  case Verdict::id:     \
    return name;
    MXP_VERDICTS(MXP_X)
#undef MXP_X
  }
  return "?";
}

constexpr std::string_view to_string(Reason r) {
  switch (r) {
#define MXP_X(id, name) \
  case Reason::id:      \
    return name;
    MXP_REASONS(MXP_X)
#undef MXP_X
  }
  return "?";
}

std::optional<Verdict> parse_verdict(std::string_view s);
std::optional<Reason> parse_reason(std::string_view s);

}  // namespace mxp
