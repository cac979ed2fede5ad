// The one table of reply-text phrases the verdict policy recognises, and its matcher.
// A reply's text is lower-cased and its whitespace collapsed once, then all phrases are searched
// in a single pass over it (no regex, no allocation). docs/verdicts.md lists every phrase.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "smtp/types.hpp"

namespace mxp::verdict {

// What a phrase says about a reply. "Strong" classes describe the server's treatment of US (our
// IP, HELO name, sender, rate, TLS) or a greylist/recipient limit: they decide even against an
// enhanced status code, because a server that names a blocklist did not judge the mailbox,
// whatever code it picked (docs/verdicts.md). "Weak" classes only decide when the enhanced code is
// absent or generic (X.0.0, X.2.0, X.4.x, X.5.0...), or refine an X.7.x policy code.
enum class TextClass : uint8_t {
  None,
  // strong
  TooManyRecipients,  // per-transaction recipient limit: retry the recipient in a new transaction
  ServerRateLimit,    // connection/recipient rate limits of the server toward us: back off
  MailboxRateLimit,   // this one mailbox receives too fast: retry later, no back-off
  Greylisted,         // greylisting: retry later from the same source IP
  TlsRequired,        // the server wants STARTTLS first
  SourceBlocked,      // blocklists, reputation, our IP/PTR/HELO refused: rotate source
  SenderRefused,      // our MAIL FROM (the address, its domain, the null sender) refused
  // weak
  RelayDenied,      // this server does not take mail for the domain
  MailboxDisabled,  // the mailbox exists but is disabled/suspended
  MailboxFull,      // over quota
  MailboxNotFound,  // no such mailbox
  Policy,           // refused by an unnamed policy
  RetryLater,       // "try again later" and friends
};
inline constexpr int kTextClassCount = 14;

constexpr bool is_strong(TextClass c) {
  return c >= TextClass::TooManyRecipients && c <= TextClass::SenderRefused;
}
std::string_view to_string(TextClass c);

struct TextRule {
  std::string_view phrase;  // lower-case ASCII, at least 2 bytes
  TextClass cls;
};

// The table, in priority order: when several phrases occur, the earliest rule wins.
std::span<const TextRule> text_rules();

struct TextMatch {
  TextClass cls = TextClass::None;
  int rule = -1;  // index into text_rules(), -1 when nothing matched
};

// What a reply may echo back of ours. Phrases are matched in the server's own words only: an
// echoed "<spamhaus@example.org>" or "greylist@..." says nothing about how the server treats us.
// normalize_text removes, before any phrase is looked for: every "<...>" that is not a URL (it
// holds an address, a host name or our HELO argument), every word holding an '@' (a bare
// address), and every word equal to one of these (an address, its domain, our HELO name).
struct Echoes {
  std::string_view recipient;  // the RCPT TO address ("" for none)
  std::string_view sender;     // the MAIL FROM address ("" for the null sender)
  std::string_view helo;       // our EHLO/HELO argument
};

// Writes the reply's lines joined by single spaces into `buf`: ASCII lower-cased, every
// whitespace run collapsed to one space, one space added at each end (so " rbl" also matches at
// the start), echoes removed (above). Stops at buf.size() bytes; replies are capped anyway and
// phrases come early.
std::string_view normalize_text(const smtp::Reply& reply, std::span<char> buf,
                                const Echoes& echoes = {});

// The earliest rule (in table order) whose phrase occurs in `normalized`.
TextMatch match_text(std::string_view normalized);

// normalize_text into a stack buffer of kNormalizedCap bytes, then match_text.
inline constexpr size_t kNormalizedCap = 2048;
TextMatch match_reply(const smtp::Reply& reply, const Echoes& echoes = {});

}  // namespace mxp::verdict
