// Plain data shared by the SMTP reply parser, the client session and the verdict policy.
// No behaviour here beyond formatting: the three modules meet on these types only.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mxp::smtp {

// Stages of a verification session, in order (StartTls, added later, comes between EHLO and MAIL
// on the wire but last here so that the numbers of the others stay). Tables indexed by Stage
// (names, timeouts) are sized by kStageCount and static_assert'ed against it.
enum class Stage : uint8_t { Connect, Banner, Ehlo, Helo, MailFrom, RcptTo, Rset, Quit, StartTls };
inline constexpr int kStageCount = 9;

// StartTls covers the reply to STARTTLS and the TLS handshake after it (RFC 3207).
inline constexpr std::array<std::string_view, kStageCount> kStageNames = {
    "connect", "banner", "ehlo", "helo", "mail_from", "rcpt_to", "rset", "quit", "starttls"};
static_assert(kStageNames.size() == kStageCount);

constexpr std::string_view to_string(Stage s) {
  return kStageNames[static_cast<int>(s)];
}

// RFC 3463 enhanced status code "class.subject.detail"; present == false when the reply had none.
struct EnhancedCode {
  bool present = false;
  uint8_t cls = 0;          // 2, 4 or 5
  uint16_t subject = 0;     // 0..999
  uint16_t detail = 0;      // 0..999
  std::string str() const;  // "5.1.1", or "" when absent
  bool operator==(const EnhancedCode&) const = default;
};

// One complete (possibly multi-line) SMTP reply.
struct Reply {
  int code = 0;                    // 200..599
  EnhancedCode enhanced;           // taken from the first line that carries one
  std::vector<std::string> lines;  // text of each line after "NNN-"/"NNN " (and after the
                                   // enhanced code on lines that carry it), CR/LF removed
  std::string text() const;        // lines joined with a single space
};

// How a session ended for one recipient when no reply decided it.
enum class Failure : uint8_t {
  None,           // a reply decided: see Outcome::reply
  ConnectFailed,  // TCP connect refused/unreachable (reported by the loop)
  Timeout,        // the stage's timer expired
  Closed,         // the server closed or reset the connection
  ProtocolError,  // unparseable, mismatched or oversized reply
  LocalError,     // we refused to send (e.g. an argument that would not be one SMTP argument)
  // TLS was required (starttls = require, or the server's "530 Must issue a STARTTLS command
  // first") and is not to be had: STARTTLS not offered, or refused.
  TlsUnavailable,
  TlsFailed,  // the server said 220 to STARTTLS and the TLS handshake failed
};
inline constexpr std::array<std::string_view, 8> kFailureNames = {
    "none",           "connect_failed", "timeout",         "closed",
    "protocol_error", "local_error",    "tls_unavailable", "tls_failed"};
constexpr std::string_view to_string(Failure f) {
  return kFailureNames[static_cast<int>(f)];
}

// What decided one recipient: the stage we were in, and either the reply or the failure.
// A 421 or a 5xx at banner/EHLO/MAIL decides every recipient of that session with that reply.
struct Outcome {
  Stage stage = Stage::Connect;
  Failure failure = Failure::None;
  Reply reply;  // meaningful when failure == None
};

}  // namespace mxp::smtp
