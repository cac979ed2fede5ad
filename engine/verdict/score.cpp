#include "verdict/score.hpp"

namespace mxp::verdict {
namespace {

// The first factor: what the server's answer (or its absence) says, one weight per reason.
// docs/score.md gives the reasoning for each number; keep the two in step.
int base_of(Reason r) {
  switch (r) {
    // 250 at RCPT. catch_all and unverifiable are a 250 too, with what undermines it as a
    // factor of its own (catch_all, provider_accepts_all).
    case Reason::Accepted:
    case Reason::CatchAll:
    case Reason::Unverifiable:
      return 90;
    case Reason::MailboxFull:
      return 30;
    case Reason::MailboxNotFound:
      return 2;
    case Reason::MailboxDisabled:
      return 2;
    case Reason::NoMailServer:
      return 1;
    case Reason::InvalidSyntax:
    case Reason::NoSuchDomain:
    case Reason::NullMx:
      return 0;
    case Reason::Greylisted:
    case Reason::RateLimited:
    case Reason::Blocked:
    case Reason::ProxyFailed:
    case Reason::TlsRequired:
    case Reason::SenderRefused:  // our MAIL FROM refused: nothing about the mailbox
      return 50;
    case Reason::TemporaryFailure:
    case Reason::ProtocolError:
      return 45;
    case Reason::Timeout:
    case Reason::DnsError:
      return 40;
    case Reason::ConnectionFailed:
      return 30;
    // Answered from the deny or allow list: never asked, nothing is known either way.
    case Reason::Denied:
    case Reason::NotAllowed:
      return 40;
  }
  return 40;
}

// The name of the first factor: the reason, except that every 250 is "accepted".
std::string_view base_name(Reason r) {
  switch (r) {
    case Reason::CatchAll:
    case Reason::Unverifiable:
      return "accepted";
    default:
      return to_string(r);
  }
}

// Cached answers: a mailbox that existed may since have been closed. Lists lose a fifth or more
// of their addresses a year; these steps spread about that over the year (docs/score.md).
int age_effect(std::chrono::seconds age) {
  using std::chrono::days;
  if (age >= days(365)) return -22;
  if (age >= days(180)) return -12;
  if (age >= days(90)) return -7;
  if (age >= days(30)) return -3;
  if (age >= days(7)) return -1;
  return 0;
}

}  // namespace

Score score(const ScoreEvidence& e) {
  Score s;
  auto add = [&](std::string_view f, int effect) {
    if (effect != 0) s.factors.push_back({f, effect});
  };
  s.factors.push_back({base_name(e.reason), base_of(e.reason)});
  const bool accepted = e.reason == Reason::Accepted || e.reason == Reason::CatchAll ||
                        e.reason == Reason::Unverifiable;
  if (accepted) {
    if (e.reason == Reason::CatchAll)
      add("catch_all", -35);
    else if (e.reason == Reason::Unverifiable)
      add("provider_accepts_all", -40);
    else if (e.catch_all == false)
      add("catch_all_rejected", 5);
    else
      add("catch_all_unknown", -5);
    if (e.greylist_cleared) add("greylisting_cleared", 2);
    if (e.tls) add("starttls", 2);
    if (e.mx_agreed > 0) add("mx_agreed", 3);
  }
  // The rest lower every verdict alike (a rejection is near 0 already), so that a step towards
  // "the mailbox exists" can never lower the score.
  if (e.role == true) add("role", -10);
  if (e.disposable == true) add("disposable", -30);
  if (e.mx_disagreed > 0) add("mx_disagreed", -20);
  if (e.age) add("cache_age", age_effect(*e.age));
  int sum = 0;
  for (const auto& f : s.factors)
    sum += f.effect;
  s.score = sum < 0 ? 0 : sum > 100 ? 100 : sum;
  return s;
}

std::string factors_string(const std::vector<ScoreFactor>& factors) {
  std::string out;
  for (const auto& f : factors) {
    if (!out.empty()) out.push_back(';');
    out.append(f.factor).push_back(':');
    out.append(std::to_string(f.effect));
  }
  return out;
}

}  // namespace mxp::verdict
