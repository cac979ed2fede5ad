// The verdict policy: turns how a verification ended (an SMTP reply at some stage, a network
// failure, a DNS answer, a syntax error) into verdict + reason + the signals the scheduler acts
// on. Every row of the decision table is documented, with the why, in docs/verdicts.md.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/verdict.hpp"
#include "dns/status.hpp"
#include "smtp/types.hpp"
#include "verdict/text_rules.hpp"

namespace mxp::verdict {

// Whom a classification is about, i.e. what else shares the same answer.
enum class Scope : uint8_t {
  Recipient,    // this one address; the other recipients of the session are unaffected
  Transaction,  // this mail transaction (MAIL FROM or its recipient limit): RSET and start again
  Session,      // this connection / source identity: every recipient sent this way gets it
  Domain,       // every address at the domain (DNS answers, "relaying denied")
};
inline constexpr std::array<std::string_view, 4> kScopeNames = {"recipient", "transaction",
                                                                "session", "domain"};
constexpr std::string_view to_string(Scope s) {
  return kScopeNames[static_cast<int>(s)];
}

struct Classification {
  Verdict verdict = Verdict::Unknown;
  Reason reason = Reason::ProtocolError;
  Scope scope = Scope::Recipient;
  // Not final: asking again later may give a final answer (4xx replies, timeouts, DNS
  // SERVFAIL). For greylisting, ask again from the SAME source IP: greylists key on it.
  bool retry_later = false;
  // Our identity (source IP, its PTR, our HELO name) was refused: the answer can only change
  // from another source identity. Rotate the source IP.
  bool source_blocked = false;
  // Our MAIL FROM was refused (the address, its domain, the null sender): never a verdict on
  // the mailbox. Another sender may be accepted: the session asks again with the next one it
  // has (SessionConfig::fallback_senders); after the last, unknown/sender_refused. A MAIL FROM
  // refused without saying why also sets source_blocked (it may be about us): the next sender
  // is tried first, and after the last the source IP rotates as for a block.
  bool sender_refused = false;
  // The server is limiting or struggling with our traffic: slow down toward this MX.
  bool back_off = false;
  // The connection is unusable after this (421, timeouts, closed, refused banner): QUIT/close
  // and send nothing more on it.
  bool session_fatal = false;
  // The server's per-transaction recipient limit (452 4.5.3): the recipient was not judged;
  // retry it in a new transaction (RSET, MAIL FROM) on this or another session.
  bool recipient_limit = false;

  bool operator==(const Classification&) const = default;
};

// From (stage, failure, code, enhanced code, text) to a classification. Never allocates.
// `echoes`: what the reply may repeat of ours (the recipient, our sender, our HELO name); it is
// taken out of the text before phrases are matched, so that "<spamhaus@example.org>: User
// unknown" is about a mailbox, not a blocklist (docs/verdicts.md, "Echoed addresses").
Classification classify(const smtp::Outcome& outcome, const Echoes& echoes = {});

// classify() with a memory of recent 4xx/5xx replies. A server answers a run of unknown
// recipients with the same words ("550 5.1.1 User unknown..."), and matching phrases in them is
// most of what classifying costs; a reply seen before with the same stage, code, enhanced code
// and text, from the same sender, HELO name and recipient domain, gets the classification it got
// then. Those are all the inputs: the recipient counts only through its domain, because every
// word holding an '@' is an echo whatever address it is (text_rules.hpp). Direct-mapped, a
// fixed number of entries; not thread-safe (one per verifier).
class ClassifyMemo {
 public:
  Classification classify(const smtp::Outcome& outcome, const Echoes& echoes);
  uint64_t hits() const { return hits_; }

 private:
  struct Entry {
    std::string key;
    Classification c;
  };
  static constexpr size_t kEntries = 128;
  std::array<Entry, kEntries> entries_;
  std::string key_;  // scratch
  uint64_t hits_ = 0;
};

// Whether a reply to MAIL FROM or RCPT TO refuses our sender `sender` ("" for <>) rather than
// judging the mailbox: classify(...).sender_refused. The smtp::Session asks the same
// recipients again with the next sender when this says yes (SessionConfig::sender_refused).
bool refuses_sender(const smtp::Reply& reply, smtp::Stage stage, std::string_view sender);

// DNS outcomes that end a verification before any SMTP (dns/status.hpp).
using dns::DnsStatus;
using dns::kDnsStatusNames;
using dns::to_string;

Classification classify_dns(DnsStatus status);

// The address failed our syntax check (engine/address): undeliverable/invalid_syntax.
Classification classify_syntax_error();
// No SOCKS5 proxy of the pool could be used: unknown, the mailbox was not judged.
Classification classify_proxy_failure();
// On the deny list, or not on the allow list (docs/usage.md, "Deny and allow lists"): never
// contacted, so unknown (denied / not_allowed); the list, not a server, decided.
Classification classify_listed(bool denied);

// Catch-all knowledge about the address's domain, for the record's "catch_all" field.
enum class CatchAll : uint8_t { No, Yes, Unknown };
inline constexpr std::array<std::string_view, 3> kCatchAllNames = {"no", "yes", "unknown"};
constexpr std::string_view to_string(CatchAll c) {
  return kCatchAllNames[static_cast<int>(c)];
}
// The JSON value: false / true / null.
constexpr std::optional<bool> to_optional(CatchAll c) {
  if (c == CatchAll::Unknown) return std::nullopt;
  return c == CatchAll::Yes;
}

// What the classification of a random never-existing address at a domain (the catch-all probe)
// says about the domain: accepted => Yes, rejected as unknown/disabled => No, else Unknown.
// This is what a per-domain cache should store.
CatchAll catch_all_from_probe(const Classification& probe);

struct CatchAllResult {
  Classification result;
  CatchAll catch_all = CatchAll::Unknown;
  bool operator==(const CatchAllResult&) const = default;
};

// Combines the address's classification with the probe's (nullopt: no probe was made).
// Probe accepted => an accepted address becomes risky/catch_all. Probe rejected => the address's
// result stands. Probe unknown (timeout, greylisted, blocked...) => an accepted address stays
// deliverable/accepted with catch_all Unknown. Full rules: docs/verdicts.md.
CatchAllResult combine_catch_all(const Classification& address,
                                 const std::optional<Classification>& probe);

// A provider quirk of the policy (docs/policy.md, `quirks.rcpt_accepts_all`): the provider's
// servers answer 250 at RCPT for every address and reject unknown ones only later (after DATA, or
// by a bounce), so their 250 does not prove the mailbox. deliverable/accepted becomes
// risky/unverifiable; anything else (a rejection, a catch-all, a block) stands.
Classification apply_rcpt_accepts_all(const Classification& c);

}  // namespace mxp::verdict
