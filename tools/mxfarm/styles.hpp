// Reply texts of the farm's SMTP servers, modelled on what Postfix, Exchange (Online), Gmail and
// Yahoo really answer, so that a verifier's classifier meets the variety it will meet outside.
// Templates hold placeholders ({host}, {ip}, {rcpt}, {domain}, {from}, {id}) filled per reply.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "scenario.hpp"

namespace mxfarm {

enum class Rk : uint8_t {
  Banner,
  BannerBlocked,  // 5xx greeting to a blocked client (RFC 5321 section 3.1)
  TooManyConns,   // 421 at connect: per-IP concurrency limit
  TooFastConns,   // 421 at connect: per-IP connection-rate limit
  EhloGreeting,   // first line of the EHLO reply, without "250-"
  Helo,
  MailOk,
  RcptOk,
  RcptUnknown,
  RcptFull,      // temporary: over quota
  RcptFullPerm,  // permanent: over quota
  RcptDisabled,
  Greylisted,
  Blocked,      // blocklist reply at HELO/MAIL/RCPT
  RelayDenied,  // recipient domain not served by this host
  TooManyRcpts,
  TooManyErrors,
  RsetOk,
  NoopOk,
  QuitOk,
  DataStart,
  DataOk,
  DataNoRcpt,
  NeedHelo,
  NeedMail,
  NestedMail,
  BadSequence,  // any command after a 5xx greeting, except QUIT (RFC 5321 section 3.1)
  SyntaxHelo,
  SyntaxMail,
  SyntaxRcpt,
  Unrecognized,
  NotImplemented,
  TlsUnavailable,
  TlsReady,     // 220 to STARTTLS: the handshake follows (RFC 3207 section 4)
  TlsRequired,  // 530 to MAIL before TLS on a host that requires it
  TlsActive,    // STARTTLS inside TLS
  Vrfy,
  LineTooLong,
  NullSenderRefused,  // MAIL FROM:<> refused at MAIL (refuse_sender.null)
  SenderRefused,      // a refused sender, at MAIL or (Postfix smtpd_delay_reject) at RCPT
  Count
};
inline constexpr int kReplyKinds = static_cast<int>(Rk::Count);

// The template (without the final CRLF; multi-line replies have CRLF between lines).
std::string_view reply_template(Style s, Rk k);

// The EHLO extension keywords a host of this style advertises, PIPELINING and STARTTLS
// included only when the host offers them, as "250-..." lines after the greeting line.
std::string ehlo_template(Style s, bool pipelining, bool starttls);

// Values for the placeholders.
struct ReplyVars {
  std::string_view host, ip, rcpt, domain, from, id;
};

// Appends the expanded template and CRLF to out. Returns the reply code (the template's first
// three digits).
int expand_reply(std::string& out, std::string_view tmpl, const ReplyVars& v);

// Bytes that are not an SMTP reply at all (no code), for the "garbage" behaviour.
inline constexpr std::string_view kGarbage = "*** \x01\x02\x7f garbage, not SMTP \xfe\xff ***\r\n";

}  // namespace mxfarm
