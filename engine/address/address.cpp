// Email address parser (see address.hpp): a byte-class table drives a few short scans; only a
// domain with non-ASCII bytes goes through libidn2. Grammar: RFC 5321 §4.1.2 (Mailbox,
// Dot-string, Quoted-string), RFC 6531 §3.3 (UTF-8 extensions), limits RFC 5321 §4.5.3.1.
#include "address/address.hpp"

#include <idn2.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <unordered_map>

#include "core/strings.hpp"

namespace mxp::address {

std::string_view to_string(Error e) {
  switch (e) {
#define MXP_X(id, name) \
  case Error::id:       \
    return name;
    MXP_ADDRESS_ERRORS(MXP_X)
#undef MXP_X
  }
  return "?";
}

namespace {

// Byte classes. A byte may be in several.
enum : uint8_t {
  kCtl = 1 << 0,    // C0 controls but TAB, and DEL: refused everywhere, even inside quotes
  kAngle = 1 << 1,  // `<` `>`: would end the SMTP path argument early
  kHigh = 1 << 2,   // non-ASCII: UTF-8 to validate
  kAtext = 1 << 3,  // RFC 5322 §3.2.3 atext (ASCII part; RFC 6531 adds UTF8-non-ascii)
  kLdh = 1 << 4,    // letter, digit, hyphen (RFC 1035 §2.3.1)
  kDigit = 1 << 5,
  kQtext = 1 << 6,  // RFC 5321 qtextSMTP: %d32-33 / %d35-91 / %d93-126
};

constexpr std::array<uint8_t, 256> make_classes() {
  std::array<uint8_t, 256> t{};
  for (int c = 0; c < 256; ++c) {
    uint8_t v = 0;
    if ((c < 0x20 && c != '\t') || c == 0x7f) v |= kCtl;
    if (c == '<' || c == '>') v |= kAngle;
    if (c >= 0x80) v |= kHigh;
    bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    bool digit = c >= '0' && c <= '9';
    if (alpha || digit) v |= kAtext | kLdh;
    if (digit) v |= kDigit;
    if (c == '-') v |= kLdh;
    for (char s : std::string_view("!#$%&'*+-/=?^_`{|}~"))
      if (c == static_cast<unsigned char>(s)) v |= kAtext;
    if (c >= 32 && c <= 126 && c != '"' && c != '\\') v |= kQtext;
    t[static_cast<size_t>(c)] = v;
  }
  return t;
}
constexpr std::array<uint8_t, 256> kClass = make_classes();

inline uint8_t cls(char c) {
  return kClass[static_cast<unsigned char>(c)];
}
using core::lower;

// Validates UTF-8 (Unicode 15 Table 3-7: no overlongs, no surrogates, nothing past U+10FFFF)
// and spots C1 controls (U+0080..U+009F), which we refuse like C0 ones.
Error check_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  bool c1 = false;
  while (p < end) {
    unsigned char b = *p;
    if (b < 0x80) {
      ++p;
      continue;
    }
    size_t need;
    unsigned char lo = 0x80, hi = 0xbf;  // allowed range of the second byte
    if (b >= 0xc2 && b <= 0xdf) {
      need = 1;
    } else if (b >= 0xe0 && b <= 0xef) {
      need = 2;
      if (b == 0xe0) lo = 0xa0;
      if (b == 0xed) hi = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3;
      if (b == 0xf0) lo = 0x90;
      if (b == 0xf4) hi = 0x8f;
    } else {
      return Error::InvalidUtf8;
    }
    if (static_cast<size_t>(end - p) <= need) return Error::InvalidUtf8;
    if (p[1] < lo || p[1] > hi) return Error::InvalidUtf8;
    for (size_t k = 2; k <= need; ++k)
      if ((p[k] & 0xc0) != 0x80) return Error::InvalidUtf8;
    if (b == 0xc2 && p[1] <= 0x9f) c1 = true;
    p += need + 1;
  }
  return c1 ? Error::ControlChar : Error::None;
}

// RFC 5321 Dot-string with RFC 6531 UTF-8 atext: atoms of atext joined by single dots.
bool is_dot_string(std::string_view s) {
  if (s.empty() || s.front() == '.' || s.back() == '.') return false;
  char prev = 0;
  for (char c : s) {
    if (c == '.') {
      if (prev == '.') return false;
    } else if (!(cls(c) & (kAtext | kHigh))) {
      return false;
    }
    prev = c;
  }
  return true;
}

// Checks an ASCII domain (RFC 1035 §2.3.1 LDH labels, RFC 5321 §4.5.3.1.2 length, at least two
// labels, a TLD that is not all digits) and writes it lower-cased into `out`.
Error check_ascii_domain(std::string_view d, std::string& out) {
  if (d.size() > kMaxDomainOctets) return Error::DomainTooLong;
  out.resize(d.size());
  char* o = out.data();
  size_t label_start = 0;
  size_t labels = 0;
  bool all_digits = true;
  for (size_t i = 0; i < d.size(); ++i) {
    char c = d[i];
    if (c == '.') {
      if (i == label_start) return Error::DomainEmptyLabel;
      if (d[i - 1] == '-') return Error::DomainLabelHyphen;
      ++labels;
      label_start = i + 1;
      all_digits = true;
      o[i] = '.';
      continue;
    }
    uint8_t k = cls(c);
    if (!(k & kLdh)) return Error::DomainInvalidChar;
    if (i - label_start >= kMaxLabelOctets) return Error::DomainLabelTooLong;
    if (c == '-' && i == label_start) return Error::DomainLabelHyphen;
    if (!(k & kDigit)) all_digits = false;
    o[i] = lower(c);
  }
  if (label_start == d.size()) return Error::DomainEmptyLabel;  // trailing dot
  if (d.back() == '-') return Error::DomainLabelHyphen;
  if (++labels < 2) return Error::DomainNotFqdn;
  if (all_digits) return Error::DomainNumericTld;  // all_digits now describes the last label
  return Error::None;
}

Error idn_error(int rc) {
  switch (rc) {
    case IDN2_TOO_BIG_DOMAIN:
      return Error::DomainTooLong;
    case IDN2_TOO_BIG_LABEL:
    case IDN2_PUNYCODE_BIG_OUTPUT:  // a label whose punycode exceeds 63 octets
      return Error::DomainLabelTooLong;
    case IDN2_HYPHEN_STARTEND:
      return Error::DomainLabelHyphen;
    default:
      return Error::IdnInvalid;
  }
}

// A U-label domain: libidn2 maps it (UTS #46 non-transitional, falling back to transitional for
// names only IDNA2003 allowed, as curl does), then the A-label result passes the same checks as
// an ASCII domain.
Error convert_idn(std::string_view d, Address& a) {
  // Each code point takes at most 4 octets, so a longer input cannot give a domain that fits
  // (bar characters UTS #46 drops); refusing early keeps punycode's quadratic cost bounded.
  constexpr size_t kMaxRaw = 4 * kMaxDomainOctets;
  if (d.size() > kMaxRaw) return Error::DomainTooLong;
  char buf[kMaxRaw + 1];
  std::memcpy(buf, d.data(), d.size());
  buf[d.size()] = '\0';
  // No IDN2_USE_STD3_ASCII_RULES: with it libidn2 2.3 silently drops some mapped characters
  // (fullwidth low line) instead of refusing them. Our own LDH check of the output refuses
  // whatever maps to a non-LDH ASCII byte (a fullwidth `<` becomes `<`).
  constexpr int kFlags = IDN2_NFC_INPUT;
  char* ascii = nullptr;
  int rc = idn2_to_ascii_8z(buf, &ascii, kFlags | IDN2_NONTRANSITIONAL);
  if (rc != IDN2_OK) {
    if (idn2_to_ascii_8z(buf, &ascii, kFlags | IDN2_TRANSITIONAL) != IDN2_OK) return idn_error(rc);
  }
  Error e = check_ascii_domain(ascii, a.domain);
  idn2_free(ascii);
  if (e != Error::None) return e;
  char* uni = nullptr;
  if (idn2_to_unicode_8z8z(a.domain.c_str(), &uni, 0) == IDN2_OK && a.domain != uni)
    a.domain_unicode = uni;
  idn2_free(uni);
  return Error::None;
}

// libidn2 costs microseconds a call (UTS #46 mapping, NFC, punycode) while lists repeat their
// domains heavily, so conversions are remembered per thread. Bounded: cleared when full.
Error convert_idn_cached(std::string_view d, Address& a) {
  struct Entry {
    Error error;
    std::string domain, domain_unicode;
  };
  constexpr size_t kMaxEntries = 4096;
  thread_local std::unordered_map<std::string, Entry> cache;
  std::string key(d);
  if (auto it = cache.find(key); it != cache.end()) {
    a.domain = it->second.domain;
    a.domain_unicode = it->second.domain_unicode;
    return it->second.error;
  }
  Error e = convert_idn(d, a);
  if (cache.size() >= kMaxEntries) cache.clear();
  cache.emplace(std::move(key), Entry{e, a.domain, a.domain_unicode});
  return e;
}

ParseResult fail(Error e) {
  ParseResult r;
  r.error = e;
  return r;
}

// Role names (lower case, no "+tag"), kept sorted for binary search.
// clang-format off
constexpr auto kRoles = std::to_array<std::string_view>({
    "abuse", "accounting", "accounts", "admin", "administrator", "all", "billing", "careers",
    "compliance", "contact", "contactus", "customercare", "customerservice", "do-not-reply",
    "donotreply", "enquire", "enquiries", "enquiry", "feedback", "finance", "hello", "help",
    "helpdesk", "hostmaster", "hr", "info", "inquiries", "inquiry", "jobs", "legal",
    "mailer-daemon", "marketing", "media", "news", "newsletter", "no-reply", "noc", "noreply",
    "office", "orders", "postmaster", "press", "privacy", "recruitment", "root", "sales",
    "security", "service", "support", "team", "webmaster", "www",
});
// clang-format on
static_assert(std::is_sorted(kRoles.begin(), kRoles.end()), "keep kRoles sorted");
constexpr size_t kMaxRoleLen = [] {
  size_t m = 0;
  for (auto r : kRoles)
    m = std::max(m, r.size());
  return m;
}();

}  // namespace

bool is_role_account(std::string_view local) {
  local = local.substr(0, local.find('+'));  // "sales+eu" is still sales
  if (local.empty() || local.size() > kMaxRoleLen) return false;
  char buf[kMaxRoleLen];
  for (size_t i = 0; i < local.size(); ++i)
    buf[i] = lower(local[i]);
  return std::binary_search(kRoles.begin(), kRoles.end(), std::string_view(buf, local.size()));
}

Forms forms(std::string_view normalized) {
  Forms f;
  const size_t at = normalized.rfind('@');
  if (at == std::string_view::npos) return f;
  const std::string_view local = normalized.substr(0, at), domain = normalized.substr(at + 1);
  f.base.assign(normalized);
  if (local.empty() || local.front() == '"') return f;  // a quoted local part is taken as is
  std::string_view base_local = local;
  if (const size_t plus = local.find('+'); plus != std::string_view::npos && plus > 0) {
    f.has_tag = true;
    f.tag.assign(local.substr(plus + 1));
    base_local = local.substr(0, plus);
    f.base.assign(base_local).append(1, '@').append(domain);
  }
  // Google: "Gmail doesn't recognize dots as characters within usernames" and usernames are not
  // case-sensitive ("Dots don't matter in Gmail addresses",
  // https://support.google.com/mail/answer/7436150); googlemail.com addresses are the same
  // accounts as gmail.com ones, and a "+" and any word after the username still reach it (Gmail
  // Help). None of this holds for Google Workspace domains, where dots do matter (the same page).
  if (domain == "gmail.com" || domain == "googlemail.com") {
    for (char c : base_local)
      if (c != '.') f.canonical.push_back(lower(c));
    f.canonical.append("@gmail.com");
  }
  return f;
}

std::string Address::normalized() const {
  std::string out;
  if (!quoted) {
    out.reserve(local.size() + 1 + domain.size());
    out += local;
  } else {
    // RFC 5321 §4.1.2 Quoted-string: only DQUOTE and backslash need a quoted-pair.
    out.reserve(local.size() + 3 + domain.size() + 8);
    out += '"';
    for (char c : local) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  out += '@';
  out += domain;
  return out;
}

ParseResult parse(std::string_view s) {
  // Lists are messy: forgive spaces and tabs around the whole address, nothing inside it.
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  if (s.empty()) return fail(Error::Empty);

  // Bytes that could split or end an SMTP command are refused wherever they are, quotes or not.
  uint8_t seen = 0;
  for (char c : s)
    seen |= cls(c);
  if (seen & kCtl) return fail(Error::ControlChar);
  if (seen & kAngle) return fail(Error::AngleBracket);
  bool utf8 = seen & kHigh;
  if (utf8) {
    if (Error e = check_utf8(s); e != Error::None) return fail(e);
  }

  ParseResult r;
  Address& a = r.address;
  size_t at;              // index of the '@' that ends the local part
  size_t local_wire = 0;  // octets the local part takes on the wire once normalised
  if (s.front() == '"') {
    // Quoted-string: keep the content (quoted-pairs undone); re-quote later only if needed.
    a.local.reserve(kMaxLocalOctets);
    size_t i = 1;
    size_t specials = 0;  // '"' and '\' in the content: each costs a backslash on the wire
    for (;;) {
      if (i >= s.size()) return fail(Error::UnterminatedQuote);
      char c = s[i];
      if (c == '"') break;
      if (c == '\\') {
        // quoted-pairSMTP = %d92 %d32-126
        if (i + 1 >= s.size()) return fail(Error::UnterminatedQuote);
        c = s[i + 1];
        if (c == '\t') return fail(Error::ControlChar);
        if (cls(c) & kHigh) return fail(Error::LocalInvalidChar);
        ++i;
      } else if (c == '\t') {
        return fail(Error::ControlChar);
      }
      if (c == '"' || c == '\\') ++specials;
      // The content alone past the limit means the wire form is too (it only adds octets).
      if (a.local.size() == kMaxLocalOctets) return fail(Error::LocalTooLong);
      a.local += c;
      ++i;
    }
    at = i + 1;
    if (at >= s.size()) return fail(Error::NoAt);
    if (s[at] != '@') {
      return fail((s[at] == ' ' || s[at] == '\t') ? Error::Whitespace : Error::QuoteMisplaced);
    }
    if (a.local.empty()) return fail(Error::LocalEmpty);
    a.quoted = !is_dot_string(a.local);
    local_wire = a.quoted ? a.local.size() + 2 + specials : a.local.size();
  } else {
    // Dot-string: atoms of atext separated by single dots.
    size_t i = 0;
    for (; i < s.size(); ++i) {
      char c = s[i];
      if (c == '@') break;
      if (c == '.') {
        if (i == 0 || s[i - 1] == '.') return fail(Error::LocalDot);
      } else if (!(cls(c) & (kAtext | kHigh))) {
        if (c == ' ' || c == '\t') return fail(Error::Whitespace);
        if (c == '"') return fail(Error::QuoteMisplaced);
        return fail(Error::LocalInvalidChar);
      }
    }
    if (i == s.size()) return fail(Error::NoAt);
    if (i == 0) return fail(Error::LocalEmpty);
    if (s[i - 1] == '.') return fail(Error::LocalDot);
    at = i;
    local_wire = i;
    a.local.assign(s.data(), i);
  }
  if (local_wire > kMaxLocalOctets) return fail(Error::LocalTooLong);
  // RFC 6531 §3.3: a UTF-8 local part can only be sent to a server offering SMTPUTF8.
  a.smtputf8 =
      utf8 && std::any_of(a.local.begin(), a.local.end(), [](char c) { return cls(c) & kHigh; });

  std::string_view d = s.substr(at + 1);
  if (d.empty()) return fail(Error::DomainEmpty);
  // RFC 5321 §4.1.3 address literals ([192.0.2.1], [IPv6:...]): valid SMTP, but no mailbox
  // we verify by MX lives there, and the domain checks below do not apply.
  if (d.front() == '[') return fail(Error::AddressLiteral);
  bool idn = false;
  for (char c : d) {
    uint8_t k = cls(c);
    if (k & (kLdh | kHigh)) {
      idn |= (k & kHigh) != 0;
    } else if (c != '.') {
      if (c == '@') return fail(Error::MultipleAt);
      if (c == ' ' || c == '\t') return fail(Error::Whitespace);
      return fail(Error::DomainInvalidChar);
    }
  }
  Error e = idn ? convert_idn_cached(d, a) : check_ascii_domain(d, a.domain);
  if (e != Error::None) return fail(e);
  if (local_wire + 1 + a.domain.size() > kMaxPathOctets) return fail(Error::TooLong);
  a.role = is_role_account(a.local);
  return r;
}

}  // namespace mxp::address
