// The verdict policy (decision table in docs/verdicts.md). Order of evidence for a RCPT reply:
// recipient-limit signals, then strong texts (about us, not the mailbox), then 421, then a
// specific RFC 3463 enhanced code, then weak texts, then the bare RFC 5321 reply code.
#include "verdict/classify.hpp"

#include "verdict/text_rules.hpp"

namespace mxp::verdict {

namespace {

using smtp::Failure;
using smtp::Reply;
using smtp::Stage;

Classification make(Verdict v, Reason r, Scope s) {
  Classification c;
  c.verdict = v;
  c.reason = r;
  c.scope = s;
  return c;
}

Classification unknown(Reason r, Scope s) {
  return make(Verdict::Unknown, r, s);
}

// What an RFC 3463 enhanced status code says, reduced to what the policy needs.
enum class Enh : uint8_t {
  Generic,         // absent, X.0.0, X.2.0, X.4.x, X.5.0, X.6.x, unassigned: let the text decide
  NotFound,        // X.1.0 other address status, X.1.1 bad mailbox, X.1.6 moved, X.1.10
  BadSyntax,       // X.1.3 bad destination mailbox address syntax
  NotResponsible,  // X.1.2 bad destination system: this host does not take the domain
  SenderRefused,   // X.1.7 / X.1.8: our MAIL FROM address or its domain
  Disabled,        // X.2.1 mailbox disabled
  Full,            // X.2.2 mailbox full
  TooManyRcpt,     // X.5.3 too many recipients
  Policy,          // X.7.x security or policy status
  Protocol,        // X.5.1 / .2 / .4 / .5 / .6: our command was refused as a command
  System,          // X.3.x mail system (full disk, overload): not about the mailbox
};

Enh kind_of(const smtp::EnhancedCode& e) {
  if (!e.present) return Enh::Generic;
  switch (e.subject) {
    case 1:
      switch (e.detail) {
        case 0:
        case 1:
        case 6:
        case 10:
          return Enh::NotFound;
        case 2:
          return Enh::NotResponsible;
        case 3:
          return Enh::BadSyntax;
        case 7:
        case 8:
          return Enh::SenderRefused;
        default:
          return Enh::Generic;
      }
    case 2:
      if (e.detail == 1) return Enh::Disabled;
      if (e.detail == 2) return Enh::Full;
      return Enh::Generic;
    case 3:
      return Enh::System;
    case 4:
      // X.4.x describes routing between MTAs, which a RCPT reply from the server itself never
      // is; Office 365 puts 5.4.1 on its "user unknown" (directory-based edge blocking) and
      // the text says what is meant.
      return Enh::Generic;
    case 5:
      if (e.detail == 3) return Enh::TooManyRcpt;
      if (e.detail == 0) return Enh::Generic;
      return Enh::Protocol;
    case 7:
      return Enh::Policy;
    default:
      return Enh::Generic;
  }
}

// Classification for a strong text class; `greylist_scope` is who the greylist entry is about.
Classification from_strong(TextClass t, Scope greylist_scope) {
  Classification c;
  switch (t) {
    case TextClass::TooManyRecipients:
      c = unknown(Reason::RateLimited, Scope::Transaction);
      c.recipient_limit = true;
      c.retry_later = true;  // at once, in a new transaction: even when a 552 says it
      break;
    case TextClass::ServerRateLimit:
      c = unknown(Reason::RateLimited, Scope::Session);
      c.back_off = true;
      break;
    case TextClass::MailboxRateLimit:
      c = unknown(Reason::RateLimited, Scope::Recipient);
      break;
    case TextClass::Greylisted:
      c = unknown(Reason::Greylisted, greylist_scope);
      c.retry_later = true;
      break;
    case TextClass::TlsRequired:
      // Reached when the session could not (starttls = never) or did not manage to give the
      // server TLS: the mailbox was not judged.
      c = unknown(Reason::TlsRequired, Scope::Session);
      break;
    case TextClass::SenderRefused:
      // Our MAIL FROM, not the mailbox (docs/identity.md, "MAIL FROM"): the session tries its
      // next sender; rotating the source IP would not help.
      c = unknown(Reason::SenderRefused, Scope::Transaction);
      c.sender_refused = true;
      break;
    case TextClass::SourceBlocked:
    default:
      c = unknown(Reason::Blocked, Scope::Session);
      c.source_blocked = true;
      break;
  }
  return c;
}

// Flags every reply-based classification shares.
Classification finish(Classification c, int code) {
  // A 4xx is by definition a transient answer (RFC 5321 §4.2.1): not final unless it judged the
  // mailbox (full).
  if (code / 100 == 4 && c.verdict == Verdict::Unknown) c.retry_later = true;
  // RFC 5321 §3.8: 421 means the server is closing the channel; it is overloaded or limiting us.
  if (code == 421) {
    c.session_fatal = true;
    c.back_off = true;
    c.scope = Scope::Session;
  }
  return c;
}

bool valid_code(int code) {
  return code >= 200 && code <= 599;
}

// A reply that cannot answer the command (a 354 to RCPT, a 220 deciding a recipient...): client
// and server are out of step, so nothing more on this connection can be trusted.
Classification out_of_step() {
  Classification c = unknown(Reason::ProtocolError, Scope::Session);
  c.session_fatal = true;
  return c;
}

bool is_command_error(int code) {
  // RFC 5321 §4.2.2: syntax / not implemented / bad sequence / parameter errors.
  return (code >= 500 && code <= 504) || code == 555;
}

Classification classify_rcpt(const Reply& r, TextClass t) {
  const int code = r.code;
  const int cls = code / 100;
  if (cls == 2) {
    // RFC 5321 §4.3.2: RCPT answers 250, 251 (will forward) or, rarely, 252 (cannot verify).
    if (code == 250 || code == 251)
      return make(Verdict::Deliverable, Reason::Accepted, Scope::Recipient);
    if (code == 252) return make(Verdict::Risky, Reason::CatchAll, Scope::Recipient);
    return out_of_step();
  }
  if (cls != 4 && cls != 5) return out_of_step();

  const Enh e = kind_of(r.enhanced);
  const bool perm = cls == 5;

  if (e == Enh::TooManyRcpt || t == TextClass::TooManyRecipients)
    return finish(from_strong(TextClass::TooManyRecipients, Scope::Recipient), code);
  if (is_strong(t)) return finish(from_strong(t, Scope::Recipient), code);
  if (code == 421) return finish(unknown(Reason::RateLimited, Scope::Session), code);

  switch (e) {
    case Enh::NotFound:
      return finish(perm ? make(Verdict::Undeliverable, Reason::MailboxNotFound, Scope::Recipient)
                         : unknown(Reason::TemporaryFailure, Scope::Recipient),
                    code);
    case Enh::BadSyntax:
      return finish(perm ? make(Verdict::Undeliverable, Reason::InvalidSyntax, Scope::Recipient)
                         : unknown(Reason::TemporaryFailure, Scope::Recipient),
                    code);
    case Enh::Disabled:
      return finish(perm ? make(Verdict::Undeliverable, Reason::MailboxDisabled, Scope::Recipient)
                         : unknown(Reason::TemporaryFailure, Scope::Recipient),
                    code);
    case Enh::Full:
      return finish(make(Verdict::Risky, Reason::MailboxFull, Scope::Recipient), code);
    case Enh::NotResponsible:
      return finish(unknown(Reason::Blocked, Scope::Domain), code);
    case Enh::SenderRefused:
      return finish(from_strong(TextClass::SenderRefused, Scope::Recipient), code);
    case Enh::Policy: {
      // X.7.x is policy whatever the text says; the text only tells which policy.
      if (t == TextClass::RelayDenied) return finish(unknown(Reason::Blocked, Scope::Domain), code);
      if (t == TextClass::Policy || perm)
        return finish(unknown(Reason::Blocked, Scope::Recipient), code);
      if (r.enhanced.detail == 1)  // 450/451 4.7.1: greylisting (docs/verdicts.md)
        return finish(unknown(Reason::Greylisted, Scope::Recipient), code);
      auto c = unknown(Reason::RateLimited, Scope::Session);  // 4.7.0, 4.7.500...: deferral
      c.back_off = true;
      return finish(c, code);
    }
    case Enh::Protocol:
      return finish(unknown(Reason::ProtocolError, Scope::Session), code);
    case Enh::System:
      return finish(unknown(Reason::TemporaryFailure, Scope::Recipient), code);
    case Enh::TooManyRcpt:  // handled above
    case Enh::Generic:
      break;
  }

  switch (t) {
    case TextClass::RelayDenied:
      return finish(unknown(Reason::Blocked, Scope::Domain), code);
    case TextClass::MailboxDisabled:
      return finish(perm ? make(Verdict::Undeliverable, Reason::MailboxDisabled, Scope::Recipient)
                         : unknown(Reason::TemporaryFailure, Scope::Recipient),
                    code);
    case TextClass::MailboxFull:
      return finish(make(Verdict::Risky, Reason::MailboxFull, Scope::Recipient), code);
    case TextClass::MailboxNotFound:
      return finish(perm ? make(Verdict::Undeliverable, Reason::MailboxNotFound, Scope::Recipient)
                         : unknown(Reason::TemporaryFailure, Scope::Recipient),
                    code);
    case TextClass::Policy:
      return finish(unknown(Reason::Blocked, Scope::Recipient), code);
    case TextClass::RetryLater:
      // What greylisting daemons say (OpenBSD spamd: "451 Temporary failure, please try again
      // later."); retrying from the same IP later is also right for a plain local problem.
      return finish(
          unknown((code == 450 || code == 451) ? Reason::Greylisted : Reason::TemporaryFailure,
                  Scope::Recipient),
          code);
    default:
      break;
  }

  // The bare reply code (RFC 5321 §4.2.2-4.2.3, RFC 7504).
  switch (code) {
    case 550:  // mailbox unavailable
    case 551:  // user not local
    case 553:  // mailbox name not allowed
      return finish(make(Verdict::Undeliverable, Reason::MailboxNotFound, Scope::Recipient), code);
    case 552:  // exceeded storage allocation
      return finish(make(Verdict::Risky, Reason::MailboxFull, Scope::Recipient), code);
    case 554:  // transaction failed: Postfix's default code for policy rejections
      return finish(unknown(Reason::Blocked, Scope::Recipient), code);
    case 556:  // RFC 7504: domain does not accept mail
      return finish(make(Verdict::Undeliverable, Reason::NullMx, Scope::Domain), code);
    default:
      break;
  }
  if (!perm) return finish(unknown(Reason::TemporaryFailure, Scope::Recipient), code);
  return finish(unknown(Reason::ProtocolError, Scope::Session), code);
}

// A reply to MAIL FROM decides every recipient of the transaction; it never judges a mailbox.
Classification classify_mail_from(const Reply& r, TextClass t) {
  const int code = r.code;
  const int cls = code / 100;
  if (cls != 4 && cls != 5) return out_of_step();
  if (is_strong(t)) return finish(from_strong(t, Scope::Transaction), code);
  if (code == 421) return finish(unknown(Reason::RateLimited, Scope::Session), code);
  const Enh e = kind_of(r.enhanced);
  if (cls == 4) {
    if (e == Enh::Policy && r.enhanced.detail == 1)
      return finish(unknown(Reason::Greylisted, Scope::Transaction), code);
    if (e == Enh::Policy) {
      auto c = unknown(Reason::RateLimited, Scope::Session);
      c.back_off = true;
      return finish(c, code);
    }
    if (e == Enh::Generic && t == TextClass::RetryLater && (code == 450 || code == 451))
      return finish(unknown(Reason::Greylisted, Scope::Transaction), code);
    if (e == Enh::SenderRefused)
      return finish(from_strong(TextClass::SenderRefused, Scope::Transaction), code);
    if ((e == Enh::Generic &&
         (t == TextClass::Policy || t == TextClass::RelayDenied ||
          t == TextClass::MailboxNotFound || t == TextClass::MailboxDisabled))) {
      auto c = unknown(Reason::Blocked, Scope::Session);
      c.source_blocked = true;
      return finish(c, code);
    }
    return finish(unknown(Reason::TemporaryFailure, Scope::Transaction), code);
  }
  if (e == Enh::Protocol || (e == Enh::Generic && t == TextClass::None && is_command_error(code)))
    return finish(unknown(Reason::ProtocolError, Scope::Session), code);
  if (e == Enh::SenderRefused)
    return finish(from_strong(TextClass::SenderRefused, Scope::Transaction), code);
  // Any other 5xx: the server refused our sender's address or domain, or us, without saying
  // which. Another sender is tried first (sender_refused); after the last, the source rotates.
  auto c = unknown(Reason::Blocked, Scope::Session);
  c.source_blocked = true;
  c.sender_refused = true;
  return finish(c, code);
}

// Replies at connect/banner, EHLO/HELO, RSET or QUIT: about the whole session, which is over.
Classification classify_session_reply(Stage stage, const Reply& r, TextClass t) {
  const int code = r.code;
  const int cls = code / 100;
  Classification c;
  if (cls != 4 && cls != 5) {
    c = unknown(Reason::ProtocolError, Scope::Session);
  } else if (is_strong(t)) {
    c = finish(from_strong(t, Scope::Session), code);
  } else if (code == 421) {
    c = finish(unknown(Reason::RateLimited, Scope::Session), code);
  } else if (cls == 4) {
    c = finish(unknown(Reason::TemporaryFailure, Scope::Session), code);
  } else if (stage == Stage::Connect || stage == Stage::Banner) {
    // RFC 5321 §3.1: a 554 greeting refuses service to this client. RFC 7504's 521 says the
    // host takes no mail from anyone, so another source would not help.
    c = unknown(Reason::Blocked, Scope::Session);
    c.source_blocked = code != 521;
  } else if ((stage == Stage::Ehlo || stage == Stage::Helo) && kind_of(r.enhanced) == Enh::Policy) {
    c = unknown(Reason::Blocked, Scope::Session);
    c.source_blocked = true;
  } else {
    c = unknown(Reason::ProtocolError, Scope::Session);
  }
  c.scope = Scope::Session;
  c.session_fatal = true;
  return c;
}

Classification classify_failure(Stage stage, Failure f) {
  Classification c = unknown(Reason::ProtocolError, Scope::Session);
  c.session_fatal = true;
  switch (f) {
    case Failure::ConnectFailed:
      c.reason = Reason::ConnectionFailed;
      c.retry_later = true;
      break;
    case Failure::Timeout:
      // A connect that times out is a connection failure (filtered port, host down); a server
      // that accepted us and then went silent is slow or tarpitting: back off.
      c.retry_later = true;
      if (stage == Stage::Connect) {
        c.reason = Reason::ConnectionFailed;
      } else {
        c.reason = Reason::Timeout;
        c.back_off = true;
      }
      break;
    case Failure::Closed:  // dropped mid-session: often an error or connection limit
      c.retry_later = true;
      c.back_off = true;
      break;
    case Failure::ProtocolError:  // a server that speaks garbage will likely do so again
      break;
    case Failure::LocalError:
      // We refused to put the recipient on the wire (it cannot be one SMTP argument): no SMTP
      // server can accept mail for it. Elsewhere it is our own argument: a local problem.
      if (stage == Stage::RcptTo) {
        c = make(Verdict::Undeliverable, Reason::InvalidSyntax, Scope::Recipient);
      }
      break;
    case Failure::TlsUnavailable:  // required, and not offered or refused
    case Failure::TlsFailed:       // the handshake failed (auto retries without TLS first)
      c.reason = Reason::TlsRequired;
      break;
    case Failure::None:
      break;
  }
  return c;
}

// "starttls" also occurs in addresses and host names ("550 5.1.1 <x@starttls.example>: User
// unknown"): the TLS phrases count only on a reply that is about TLS by its code, 530 (RFC 3207
// §4) or an X.7.x security/policy code.
bool tls_coded(const Reply& r) {
  return r.code == 530 || (r.enhanced.present && r.enhanced.subject == 7);
}

Classification classify_reply(Stage stage, const Reply& r, const Echoes& echoes) {
  if (!valid_code(r.code)) return out_of_step();
  // Positive replies at RCPT carry nothing the text could change: skip the scan (hot path).
  TextClass t =
      (r.code / 100 == 2 || r.code / 100 == 3) ? TextClass::None : match_reply(r, echoes).cls;
  if (t == TextClass::TlsRequired && !tls_coded(r)) t = TextClass::None;
  switch (stage) {
    case Stage::RcptTo:
      return classify_rcpt(r, t);
    case Stage::MailFrom:
      return classify_mail_from(r, t);
    default:
      return classify_session_reply(stage, r, t);
  }
}

}  // namespace

Classification classify(const smtp::Outcome& o, const Echoes& echoes) {
  if (o.failure != Failure::None) return classify_failure(o.stage, o.failure);
  return classify_reply(o.stage, o.reply, echoes);
}

Classification ClassifyMemo::classify(const smtp::Outcome& o, const Echoes& echoes) {
  // Failures and positive replies cost little to classify (no phrase matching): not kept.
  if (o.failure != Failure::None || (o.reply.code / 100 != 4 && o.reply.code / 100 != 5))
    return verdict::classify(o, echoes);
  const size_t at = echoes.recipient.rfind('@');
  const std::string_view rcpt_domain =
      at == std::string_view::npos ? echoes.recipient : echoes.recipient.substr(at + 1);
  // Our names end with '\n' (they hold no CR/LF); the reply's lines carry their length first, so
  // no two different replies make one key whatever bytes they hold.
  key_.clear();
  key_.push_back(static_cast<char>('0' + static_cast<int>(o.stage)));
  key_.append(std::to_string(o.reply.code));
  key_.append(o.reply.enhanced.str()).push_back('\n');
  key_.append(echoes.sender).push_back('\n');
  key_.append(echoes.helo).push_back('\n');
  key_.append(rcpt_domain).push_back('\n');
  for (const auto& line : o.reply.lines) {
    const auto len = static_cast<uint32_t>(line.size());
    key_.append(reinterpret_cast<const char*>(&len), sizeof len).append(line);
  }
  Entry& e = entries_[std::hash<std::string_view>{}(key_) % kEntries];
  if (e.key == key_) {
    ++hits_;
    return e.c;
  }
  e.c = verdict::classify(o, echoes);
  e.key = key_;
  return e.c;
}

bool refuses_sender(const smtp::Reply& reply, smtp::Stage stage, std::string_view sender) {
  if (stage != Stage::MailFrom && stage != Stage::RcptTo) return false;
  Echoes echoes;
  echoes.sender = sender;
  return classify_reply(stage, reply, echoes).sender_refused;
}

Classification classify_dns(DnsStatus s) {
  switch (s) {
    case DnsStatus::NxDomain:
      return make(Verdict::Undeliverable, Reason::NoSuchDomain, Scope::Domain);
    case DnsStatus::NullMx:
      return make(Verdict::Undeliverable, Reason::NullMx, Scope::Domain);
    case DnsStatus::NoMailServer:
      return make(Verdict::Undeliverable, Reason::NoMailServer, Scope::Domain);
    case DnsStatus::ServFail:
    case DnsStatus::Refused:
    case DnsStatus::Timeout:
      break;
  }
  // Kept apart in DnsStatus (logs, metrics); one reason for the record, so that "timeout" always
  // means a slow mail server, which the scheduler treats differently from a slow resolver.
  Classification c = unknown(Reason::DnsError, Scope::Domain);
  c.retry_later = true;
  return c;
}

Classification classify_syntax_error() {
  return make(Verdict::Undeliverable, Reason::InvalidSyntax, Scope::Recipient);
}

Classification classify_proxy_failure() {
  return make(Verdict::Unknown, Reason::ProxyFailed, Scope::Session);
}

Classification classify_listed(bool denied) {
  return make(Verdict::Unknown, denied ? Reason::Denied : Reason::NotAllowed, Scope::Recipient);
}

CatchAll catch_all_from_probe(const Classification& p) {
  if (p.verdict == Verdict::Deliverable) return CatchAll::Yes;
  if (p.verdict == Verdict::Risky && p.reason == Reason::CatchAll) return CatchAll::Yes;  // 252
  if (p.verdict == Verdict::Undeliverable &&
      (p.reason == Reason::MailboxNotFound || p.reason == Reason::MailboxDisabled))
    return CatchAll::No;
  return CatchAll::Unknown;  // unknown, mailbox_full for a random name, DNS/syntax results
}

CatchAllResult combine_catch_all(const Classification& a, const std::optional<Classification>& p) {
  const CatchAll from_probe = p ? catch_all_from_probe(*p) : CatchAll::Unknown;
  CatchAllResult out{a, from_probe};
  if (a.verdict == Verdict::Deliverable) {
    if (from_probe == CatchAll::Yes) {
      // The server accepts a name that cannot exist: its 250 for this one proves nothing.
      out.result.verdict = Verdict::Risky;
      out.result.reason = Reason::CatchAll;
    }
    return out;
  }
  if (a.verdict == Verdict::Risky && a.reason == Reason::CatchAll) {
    // 252: the server itself said it accepts without verifying.
    out.catch_all = from_probe == CatchAll::No ? CatchAll::No : CatchAll::Yes;
    return out;
  }
  if (a.verdict == Verdict::Undeliverable &&
      (a.reason == Reason::MailboxNotFound || a.reason == Reason::MailboxDisabled)) {
    // A server that rejects this mailbox is not accepting everything, unless the probe shows
    // it does accept unknown names (then say so; the rejection of this address still stands).
    out.catch_all = from_probe == CatchAll::Yes ? CatchAll::Yes : CatchAll::No;
    return out;
  }
  return out;  // unknown / full / DNS / syntax results stand; catch_all as the probe says
}

Classification apply_rcpt_accepts_all(const Classification& c) {
  if (c.verdict != Verdict::Deliverable || c.reason != Reason::Accepted) return c;
  Classification out = c;
  out.verdict = Verdict::Risky;
  out.reason = Reason::Unverifiable;
  return out;
}

}  // namespace mxp::verdict
