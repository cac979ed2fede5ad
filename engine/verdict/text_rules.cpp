// The phrase table of the verdict policy and a one-pass multi-phrase matcher: at every position
// of the text a Bloom filter of the phrases' first three bytes rejects almost all positions; at
// the rest, three precomputed bit sets (rules by byte at offset 0, 1, 2) leave the few phrases
// that can start there, and only those are compared.
#include "verdict/text_rules.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstring>

namespace mxp::verdict {

namespace {

using C = TextClass;

// Priority order: the earliest rule whose phrase occurs wins, so narrower phrases come before
// broader ones and strong classes before weak ones. Every phrase is documented (with its class)
// in docs/verdicts.md; a unit test keeps the two in step.
constexpr TextRule kRules[] = {
    // --- greylisting (postgrey, sqlgrey, milter-greylist, greylistd, Stalwart...) ---
    {"greylist", C::Greylisted},  // greylisted, greylisting
    {"graylist", C::Greylisted},
    {"grey list", C::Greylisted},
    {"gray list", C::Greylisted},
    {"grey-list", C::Greylisted},
    {"not yet authorized to deliver mail from", C::Greylisted},  // greylistd (Exim)
    // --- recipient limits (before "too many recipients": Postfix's per-client rate limit says
    // "too many recipients from <ip>", which asks us to slow down, not to split a transaction) ---
    {"too many recipients from", C::ServerRateLimit},
    {"too many recipients", C::TooManyRecipients},
    {"too many rcpt", C::TooManyRecipients},
    {"recipients per message", C::TooManyRecipients},
    {"recipient limit", C::TooManyRecipients},
    {"per transaction", C::TooManyRecipients},       // Gmail 4.3.0 / 4.5.3
    {"separate transaction", C::TooManyRecipients},  // Gmail 4.5.3
    // --- TLS demanded ---
    {"starttls", C::TlsRequired},
    {"tls required", C::TlsRequired},
    {"requires tls", C::TlsRequired},
    // --- our sender refused (before the blocklists: "Sender address rejected: ... blocked
    // using dbl.spamhaus.org" is about the sender's domain, which another sender avoids) ---
    {"sender address rejected", C::SenderRefused},  // Postfix reports it at RCPT (delay_reject)
    {"sender verify failed", C::SenderRefused},     // Exim callout on our MAIL FROM
    {"sender verification", C::SenderRefused},
    {"sender rejected", C::SenderRefused},
    {"sender domain", C::SenderRefused},
    {"null sender", C::SenderRefused},   // "null sender not accepted"
    {"null reverse", C::SenderRefused},  // "null reverse-path not allowed"
    {"empty sender", C::SenderRefused},
    {"empty envelope sender", C::SenderRefused},
    {"bogus mail from", C::SenderRefused},  // Ipswitch IMail's "Refuse NULL <> Senders": 501
    // --- our IP / PTR / HELO refused, blocklists, reputation ---
    {"spamhaus", C::SourceBlocked},
    {"spamcop", C::SourceBlocked},
    {"sorbs", C::SourceBlocked},
    {"barracudacentral", C::SourceBlocked},
    {"abusix", C::SourceBlocked},
    {"uceprotect", C::SourceBlocked},
    {"dnsbl", C::SourceBlocked},
    {" rbl", C::SourceBlocked},
    {" sbl", C::SourceBlocked},
    {" pbl", C::SourceBlocked},
    {" xbl", C::SourceBlocked},
    {"blacklist", C::SourceBlocked},
    {"black list", C::SourceBlocked},
    {"blocklist", C::SourceBlocked},
    {"block list", C::SourceBlocked},  // also "block listed"
    {"blocked using", C::SourceBlocked},
    {"is listed", C::SourceBlocked},
    {"listed at", C::SourceBlocked},
    {"listed on", C::SourceBlocked},
    {"listed by", C::SourceBlocked},
    {"reputation", C::SourceBlocked},
    {"unsolicited", C::SourceBlocked},  // Gmail 421-4.7.0 "unusual rate of unsolicited mail"
    {"[ts0", C::SourceBlocked},         // Yahoo [TS01] [TS02] [TS03]
    {"[tss0", C::SourceBlocked},        // Yahoo [TSS04] [TSS05] [TSS09]
    {"(s3140)", C::SourceBlocked},      // Outlook.com network block lists
    {"(s3150)", C::SourceBlocked},
    {"banned sending", C::SourceBlocked},  // Office 365 5.7.606
    {"banned sender", C::SourceBlocked},   // Office 365 5.7.511
    {"your ip", C::SourceBlocked},
    {"ip you're using", C::SourceBlocked},  // Gmail 5.7.1 direct-to-MX from a consumer IP
    {"?ip=", C::SourceBlocked},             // lookup links keyed by our IP (Proofpoint...)
    {"dynamic ip", C::SourceBlocked},
    {"not in whitelist", C::SourceBlocked},
    {"not whitelisted", C::SourceBlocked},
    {"client host rejected", C::SourceBlocked},  // Postfix client restrictions
    {"connection rejected", C::SourceBlocked},
    {"administratively denied", C::SourceBlocked},
    {"junkmail rejected", C::SourceBlocked},
    {"sbrs", C::SourceBlocked},  // Cisco SenderBase score
    {"reverse dns", C::SourceBlocked},
    {"reverse hostname", C::SourceBlocked},
    {"cannot find your hostname", C::SourceBlocked},
    {"ip name possibly forged", C::SourceBlocked},  // sendmail PTR check, says "Relaying denied"
    {"ip name lookup failed", C::SourceBlocked},
    {"helo command rejected", C::SourceBlocked},
    {"invalid helo", C::SourceBlocked},
    {"bad helo", C::SourceBlocked},
    {"helo name", C::SourceBlocked},
    // --- rate limits ---
    {"receiving mail at a rate", C::MailboxRateLimit},  // Gmail 4.2.1
    {"receiving mail too quickly", C::MailboxRateLimit},
    {"too many connections", C::ServerRateLimit},
    {"concurrent", C::ServerRateLimit},  // Exim smtp_accept_max, Exchange 4.3.2
    {"connection limit", C::ServerRateLimit},
    {"connection rate", C::ServerRateLimit},
    {"rate limit", C::ServerRateLimit},                    // also "rate limited", "rate limiting"
    {"too many errors", C::ServerRateLimit},               // Postfix smtpd_hard_error_limit
    {"excessive unknown recipients", C::ServerRateLimit},  // Yahoo VS1-IP / VS1-MF
    {"too many sessions", C::ServerRateLimit},
    {"too fast", C::ServerRateLimit},
    {"throttl", C::ServerRateLimit},
    {"slow down", C::ServerRateLimit},
    // --- weak: this server does not take mail for the domain ---
    {"relaying", C::RelayDenied},
    {"relay access", C::RelayDenied},
    {"relay denied", C::RelayDenied},
    {"relay not permitted", C::RelayDenied},
    {"unable to relay", C::RelayDenied},
    {"not permitted to relay", C::RelayDenied},
    {"relay prohibited", C::RelayDenied},
    {"rcpthosts", C::RelayDenied},  // qmail
    // --- weak: mailbox disabled ---
    {"disabled", C::MailboxDisabled},
    {"inactive", C::MailboxDisabled},
    {"suspended", C::MailboxDisabled},
    {"deactivated", C::MailboxDisabled},
    {"discontinued", C::MailboxDisabled},
    {"not enabled", C::MailboxDisabled},
    // --- weak: mailbox full ---
    {"mailbox full", C::MailboxFull},
    {"mailbox is full", C::MailboxFull},
    {"inbox is full", C::MailboxFull},
    {"inbox full", C::MailboxFull},
    {"full mailbox", C::MailboxFull},
    {"mailbox has exceeded", C::MailboxFull},
    {"over quota", C::MailboxFull},
    {"quota exceeded", C::MailboxFull},
    {"exceeded storage", C::MailboxFull},
    {"storage allocation", C::MailboxFull},
    {"too many messages", C::MailboxFull},
    {"quota", C::MailboxFull},
    // --- weak: no such mailbox ---
    {"user unknown", C::MailboxNotFound},
    {"unknown user", C::MailboxNotFound},
    {"unknown recipient", C::MailboxNotFound},
    {"recipient unknown", C::MailboxNotFound},
    {"unknown local part", C::MailboxNotFound},
    {"unknown address", C::MailboxNotFound},
    {"address unknown", C::MailboxNotFound},
    {"addressee unknown", C::MailboxNotFound},
    {"no such user", C::MailboxNotFound},
    {"no such recipient", C::MailboxNotFound},
    {"no such mailbox", C::MailboxNotFound},
    {"no such person", C::MailboxNotFound},
    {"no mailbox", C::MailboxNotFound},
    {"not exist", C::MailboxNotFound},       // does not exist, do not exist
    {"n't exist", C::MailboxNotFound},       // doesn't exist
    {"doesn't have a", C::MailboxNotFound},  // Yahoo "user doesn't have a yahoo.com account"
    {"invalid recipient", C::MailboxNotFound},
    {"recipient invalid", C::MailboxNotFound},
    {"invalid mailbox", C::MailboxNotFound},
    {"not a valid mailbox", C::MailboxNotFound},
    {"invalid address", C::MailboxNotFound},
    {"invalid email address", C::MailboxNotFound},
    {"mailbox not found", C::MailboxNotFound},
    {"recipient not found", C::MailboxNotFound},
    {"user not found", C::MailboxNotFound},
    {"address not found", C::MailboxNotFound},
    {"account not found", C::MailboxNotFound},
    {"could not be found", C::MailboxNotFound},
    {"recipnotfound", C::MailboxNotFound},      // Exchange RESOLVER.ADR.RecipNotFound
    {"recipientnotfound", C::MailboxNotFound},  // Exchange RESOLVER.ADR.RecipientNotFound
    {"as(201806281)", C::MailboxNotFound},      // Office 365 directory-based edge blocking
    {"mailbox unavailable", C::MailboxNotFound},
    {"mailbox is unavailable", C::MailboxNotFound},
    {"mailbox not available", C::MailboxNotFound},
    {"unrouteable address", C::MailboxNotFound},  // Exim
    {"unroutable address", C::MailboxNotFound},
    {"not our customer", C::MailboxNotFound},
    {"user not local", C::MailboxNotFound},
    {"no longer", C::MailboxNotFound},
    {"recipient rejected", C::MailboxNotFound},
    {"#5.1.1", C::MailboxNotFound},  // qmail-style "(#5.1.1)" at the end of the text
    {"#5.1.0", C::MailboxNotFound},  // Cisco IronPort "550 #5.1.0 Address rejected."
    // --- weak: refused by some policy ---
    {"denied", C::Policy},
    {"not authorized", C::Policy},
    {"not authorised", C::Policy},
    {"not permitted", C::Policy},
    {"prohibited", C::Policy},
    {"blocked", C::Policy},
    {"refused", C::Policy},
    {"policy", C::Policy},
    {"spam", C::Policy},
    {"#5.7.1", C::Policy},
    // --- weak: come back later ---
    {"try again", C::RetryLater},
    {"try later", C::RetryLater},
    {"retry", C::RetryLater},
    {"come back", C::RetryLater},
};

constexpr int kRuleCount = static_cast<int>(std::size(kRules));
constexpr int kWords = (kRuleCount + 63) / 64;

constexpr bool phrases_well_formed() {
  for (const auto& r : kRules) {
    if (r.phrase.size() < 3 || r.cls == C::None) return false;
    for (char c : r.phrase) {
      if (c >= 'A' && c <= 'Z') return false;  // the text is lower-cased, so would never match
      if (c == '\t' || c == '\r' || c == '\n') return false;
    }
  }
  return true;
}
static_assert(phrases_well_formed(), "phrases must be lower-case, 3+ bytes, no control whitespace");

using Bits = std::array<uint64_t, kWords>;

// at[k][b]: the rules whose phrase has byte b at offset k (k < 3). ANDing the three sets selected
// by the bytes at a text position leaves the (usually zero) rules that can start there.
struct Index {
  std::array<std::array<Bits, 256>, 3> at{};
};

constexpr Index build_index() {
  Index ix;
  for (int i = 0; i < kRuleCount; ++i) {
    for (size_t k = 0; k < 3; ++k) {
      const auto b = static_cast<unsigned char>(kRules[i].phrase[k]);
      ix.at[k][b][static_cast<size_t>(i / 64)] |= uint64_t{1} << (i % 64);
    }
  }
  return ix;
}
constexpr Index kIndex = build_index();

// A 4096-bit Bloom filter of the phrases' first three bytes: one multiply, one load and a
// predictable branch reject almost every text position before the bit sets are touched.
constexpr uint32_t trigram_slot(uint32_t three_bytes_le) {
  return ((three_bytes_le & 0xFFFFFFu) * 0x9E3779B1u) >> 20;
}
constexpr uint32_t trigram(unsigned char a, unsigned char b, unsigned char c) {
  return uint32_t{a} | (uint32_t{b} << 8) | (uint32_t{c} << 16);
}

constexpr std::array<uint64_t, 64> build_prefix_filter() {
  std::array<uint64_t, 64> f{};
  for (const auto& r : kRules) {
    const uint32_t slot = trigram_slot(trigram(static_cast<unsigned char>(r.phrase[0]),
                                               static_cast<unsigned char>(r.phrase[1]),
                                               static_cast<unsigned char>(r.phrase[2])));
    f[slot / 64] |= uint64_t{1} << (slot % 64);
  }
  return f;
}
constexpr std::array<uint64_t, 64> kPrefixFilter = build_prefix_filter();

// The rules with an index below `limit`, as a bit set.
constexpr Bits rules_below(int limit) {
  Bits b{};
  for (int w = 0; w < kWords; ++w) {
    const int lo = w * 64;
    if (limit >= lo + 64) {
      b[static_cast<size_t>(w)] = ~uint64_t{0};
    } else if (limit > lo) {
      b[static_cast<size_t>(w)] = (uint64_t{1} << (limit - lo)) - 1;
    }
  }
  return b;
}

constexpr std::array<std::string_view, kTextClassCount> kClassNames = {
    "none",         "too_many_recipients", "server_rate_limit", "mailbox_rate_limit",
    "greylisted",   "tls_required",        "source_blocked",    "sender_refused",
    "relay_denied", "mailbox_disabled",    "mailbox_full",      "mailbox_not_found",
    "policy",       "retry_later"};
static_assert(static_cast<int>(TextClass::RetryLater) + 1 == kTextClassCount);

// Byte folding for the text: ASCII upper to lower case, every whitespace byte to a space.
constexpr std::array<char, 256> build_fold() {
  std::array<char, 256> t{};
  for (int i = 0; i < 256; ++i) {
    char c = static_cast<char>(i);
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
    if (c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f') c = ' ';
    t[static_cast<size_t>(i)] = c;
  }
  return t;
}
constexpr std::array<char, 256> kFold = build_fold();

}  // namespace

std::string_view to_string(TextClass c) {
  return kClassNames[static_cast<size_t>(c)];
}

std::span<const TextRule> text_rules() {
  return kRules;
}

namespace {

// Bytes around a word that are not part of what it names: "<a@b>:", "[192.0.2.1]", "x.org.".
constexpr std::array<bool, 256> kPunct = [] {
  std::array<bool, 256> t{};
  for (unsigned char c : std::string_view("<>[]()\"'`,;:.!?"))
    t[c] = true;
  return t;
}();

std::string_view trim_word(std::string_view w) {
  while (!w.empty() && kPunct[static_cast<unsigned char>(w.front())])
    w.remove_prefix(1);
  while (!w.empty() && kPunct[static_cast<unsigned char>(w.back())])
    w.remove_suffix(1);
  return w;
}

// `lower` is already folded; `other` may be in any case.
bool same_word(std::string_view lower, std::string_view other) {
  other = trim_word(other);
  if (other.empty() || other.size() != lower.size()) return false;
  for (size_t i = 0; i < other.size(); ++i)
    if (kFold[static_cast<unsigned char>(other[i])] != lower[i]) return false;
  return true;
}

bool echoed_word(std::string_view w, const Echoes& e) {
  w = trim_word(w);
  if (w.empty()) return false;
  if (w.find('@') != std::string_view::npos) return true;  // a bare address, ours or not
  for (std::string_view a : {e.recipient, e.sender}) {
    if (a.empty()) continue;
    if (same_word(w, a)) return true;
    if (const size_t at = a.rfind('@');
        at != std::string_view::npos && same_word(w, a.substr(at + 1)))
      return true;  // the address's domain
  }
  return !e.helo.empty() && same_word(w, e.helo);
}

// Removes the echoes (text_rules.hpp, Echoes) from normalized text, in place; returns the new
// length. The text keeps its form: single spaces, one at each end.
size_t strip_echoes(char* s, size_t n, const Echoes& e) {
  // 1. "<...>" that is not a URL: a path (RCPT/MAIL argument), a host name, our HELO name.
  size_t w = 0;
  for (size_t r = 0; r < n;) {
    if (s[r] == '<') {
      const std::string_view rest(s + r, n - r);
      const size_t close = rest.find('>');
      if (close != std::string_view::npos &&
          rest.substr(0, close).find("://") == std::string_view::npos) {
        if (w == 0 || s[w - 1] != ' ') s[w++] = ' ';
        r += close + 1;
        continue;
      }
    }
    if (s[r] == ' ' && w > 0 && s[w - 1] == ' ') {
      ++r;
      continue;
    }
    s[w++] = s[r++];
  }
  n = w;
  // 2. Words: bare addresses, our addresses' domains, our HELO name.
  w = 0;
  for (size_t r = 0; r < n;) {
    if (s[r] == ' ') {
      if (w == 0 || s[w - 1] != ' ') s[w++] = ' ';
      ++r;
      continue;
    }
    size_t end = r;
    while (end < n && s[end] != ' ')
      ++end;
    if (!echoed_word(std::string_view(s + r, end - r), e)) {
      std::memmove(s + w, s + r, end - r);
      w += end - r;
    }
    r = end;
  }
  if (w == 0 || s[w - 1] != ' ') s[w++] = ' ';  // room: at least the removed bytes
  return w;
}

}  // namespace

std::string_view normalize_text(const smtp::Reply& reply, std::span<char> buf,
                                const Echoes& echoes) {
  if (buf.size() < 2) return {};
  const size_t cap = buf.size() - 1;  // keep room for the closing space
  char* out = buf.data();
  size_t n = 0;
  out[n++] = ' ';
  for (const auto& line : reply.lines) {
    // Each input byte yields at most one output byte, so bounding the input bounds the output.
    const size_t take = std::min(line.size(), cap - n);
    for (size_t k = 0; k < take; ++k) {
      const char f = kFold[static_cast<unsigned char>(line[k])];
      if (f == ' ' && out[n - 1] == ' ') continue;
      out[n++] = f;
    }
    if (n >= cap) break;
    if (out[n - 1] != ' ') out[n++] = ' ';  // lines join with one space
  }
  if (out[n - 1] != ' ') out[n++] = ' ';
  return {out, strip_echoes(out, n, echoes)};
}

namespace {

// The earliest rule (index below `allowed`'s bound) that starts at s[i]; -1 if none.
int rule_at(std::string_view s, size_t i, const Bits& allowed) {
  const auto& b0 = kIndex.at[0][static_cast<unsigned char>(s[i])];
  const auto& b1 = kIndex.at[1][static_cast<unsigned char>(s[i + 1])];
  const auto& b2 = kIndex.at[2][static_cast<unsigned char>(s[i + 2])];
  const std::string_view rest = s.substr(i);
  for (size_t w = 0; w < kWords; ++w) {
    // Bits are visited in rule order: the first hit is the best at this position.
    for (uint64_t bits = b0[w] & b1[w] & b2[w] & allowed[w]; bits != 0; bits &= bits - 1) {
      const int r = static_cast<int>(w) * 64 + std::countr_zero(bits);
      if (rest.starts_with(kRules[r].phrase)) return r;
    }
  }
  return -1;
}

}  // namespace

TextMatch match_text(std::string_view s) {
  int best = kRuleCount;
  Bits allowed = rules_below(kRuleCount);
  const size_t n = s.size();
  for (size_t i = 0; i + 2 < n; ++i) {
    uint32_t x;
    if (i + 3 < n) {
      std::memcpy(&x, s.data() + i, 4);  // one unaligned load; the 4th byte is masked off
      if constexpr (std::endian::native == std::endian::big) x = __builtin_bswap32(x);
    } else {
      x = trigram(static_cast<unsigned char>(s[i]), static_cast<unsigned char>(s[i + 1]),
                  static_cast<unsigned char>(s[i + 2]));
    }
    const uint32_t slot = trigram_slot(x);
    if (((kPrefixFilter[slot / 64] >> (slot % 64)) & 1u) == 0) continue;  // the common case
    const int hit = rule_at(s, i, allowed);
    if (hit < 0) continue;
    best = hit;  // lower than any earlier hit: `allowed` only admits lower rules
    if (best == 0) break;
    allowed = rules_below(best);
  }
  if (best == kRuleCount) return {};
  return {kRules[best].cls, best};
}

TextMatch match_reply(const smtp::Reply& reply, const Echoes& echoes) {
  std::array<char, kNormalizedCap> buf;
  return match_text(normalize_text(reply, buf, echoes));
}

}  // namespace mxp::verdict
