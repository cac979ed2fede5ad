// Plain data shared by the SMTP reply parser, the client session and the verdict policy.
// No behaviour here beyond formatting: the three modules meet on these types only.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
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
  // Which of our senders the deciding transaction's MAIL FROM carried: 0 is
  // SessionConfig::mail_from, i > 0 is fallback_senders[i - 1]; -1 when no MAIL FROM was sent
  // for this recipient (connect, banner, EHLO, a local refusal).
  int8_t sender = -1;
};

using StageTimeouts = std::array<std::chrono::milliseconds, kStageCount>;

// Time allowed for each stage's reply (for Connect: for the TCP connect). RFC 5321 §4.5.3.2
// suggests minutes (5 min for the greeting, MAIL and RCPT); a verifier gives up sooner, and a
// tarpit must not hold a session for long. Postfix's smtp_connect_timeout is 30 s.
inline constexpr StageTimeouts kDefaultStageTimeouts = {
    std::chrono::seconds(30),  // connect
    std::chrono::seconds(60),  // banner
    std::chrono::seconds(60),  // ehlo
    std::chrono::seconds(60),  // helo
    std::chrono::seconds(60),  // mail_from
    std::chrono::seconds(60),  // rcpt_to
    std::chrono::seconds(30),  // rset
    std::chrono::seconds(10),  // quit
    std::chrono::seconds(30),  // starttls: the reply to STARTTLS, then the TLS handshake
};
static_assert(kDefaultStageTimeouts.size() == kStageCount);

// STARTTLS (RFC 3207): never; auto = when the server offers it in EHLO or demands it ("530 5.7.0
// Must issue a STARTTLS command first"), else in clear text; require = no MAIL FROM without TLS.
enum class StartTlsMode : uint8_t { Never, Auto, Require };
inline constexpr std::array<std::string_view, 3> kStartTlsModeNames = {"never", "auto", "require"};
constexpr std::string_view to_string(StartTlsMode m) {
  return kStartTlsModeNames[static_cast<int>(m)];
}
std::optional<StartTlsMode> parse_starttls_mode(std::string_view s);

}  // namespace mxp::smtp
