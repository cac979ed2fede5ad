// Email address parser: splits one input address into local part and domain, normalises it
// (domain lower case, IDN to A-labels) or names the precise reason it is refused. Nothing it
// accepts can put more than one SMTP argument on the wire (no CR, LF, NUL, controls, `<`, `>`).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace mxp::address {

// Every reason parse() can refuse an input. One list, so names, counts and the tests' coverage
// check cannot drift apart.
#define MXP_ADDRESS_ERRORS(X)                    \
  X(None, "none")                                \
  X(Empty, "empty")                              \
  X(ControlChar, "control_char")                 \
  X(AngleBracket, "angle_bracket")               \
  X(InvalidUtf8, "invalid_utf8")                 \
  X(Whitespace, "whitespace")                    \
  X(NoAt, "no_at")                               \
  X(MultipleAt, "multiple_at")                   \
  X(LocalEmpty, "local_empty")                   \
  X(LocalDot, "local_dot")                       \
  X(LocalInvalidChar, "local_invalid_char")      \
  X(QuoteMisplaced, "quote_misplaced")           \
  X(UnterminatedQuote, "unterminated_quote")     \
  X(LocalTooLong, "local_too_long")              \
  X(DomainEmpty, "domain_empty")                 \
  X(AddressLiteral, "address_literal")           \
  X(DomainInvalidChar, "domain_invalid_char")    \
  X(DomainTooLong, "domain_too_long")            \
  X(DomainEmptyLabel, "domain_empty_label")      \
  X(DomainLabelTooLong, "domain_label_too_long") \
  X(DomainLabelHyphen, "domain_label_hyphen")    \
  X(DomainNotFqdn, "domain_not_fqdn")            \
  X(DomainNumericTld, "domain_numeric_tld")      \
  X(IdnInvalid, "idn_invalid")                   \
  X(TooLong, "too_long")

enum class Error : uint8_t {
#define MXP_X(id, name) id,
  MXP_ADDRESS_ERRORS(MXP_X)
#undef MXP_X
};

inline constexpr int kErrorCount = 0
#define MXP_X(id, name) +1
    MXP_ADDRESS_ERRORS(MXP_X)
#undef MXP_X
    ;

// snake_case name of an error ("none" for success); "?" for a value outside the list.
std::string_view to_string(Error e);

// RFC 5321 §4.5.3.1: limits on what goes on the wire.
inline constexpr size_t kMaxLocalOctets = 64;    // §4.5.3.1.1
inline constexpr size_t kMaxDomainOctets = 255;  // §4.5.3.1.2
inline constexpr size_t kMaxPathOctets = 254;    // §4.5.3.1.3 (256 less the angle brackets)
inline constexpr size_t kMaxLabelOctets = 63;    // RFC 1035 §2.3.4

struct Address {
  // The local part as the mailbox sees it: unquoted content, case kept (RFC 5321 §2.4).
  std::string local;
  // ASCII: lower case, IDN converted to punycode (A-labels).
  std::string domain;
  // U-label form for display; "" if the same as `domain` (always "" for an ASCII input domain).
  std::string domain_unicode;
  bool smtputf8 = false;  // local part has UTF-8: needs SMTPUTF8 (RFC 6531)
  bool role = false;      // role account (postmaster@, info@, ...), see is_role_account()
  bool quoted = false;    // `local` is not a dot-string, so it must be sent as a quoted-string
  // local@domain, local quoted (only `"` and `\` escaped) if it must be.
  std::string normalized() const;
};

struct ParseResult {
  Error error = Error::None;
  Address address;  // filled only when ok()
  bool ok() const { return error == Error::None; }
};

// Parses and normalises one address. Outer spaces/tabs are trimmed; nothing else is forgiven.
// ASCII input costs no heap allocation beyond the local and domain strings; libidn2 is called
// only when the domain has non-ASCII bytes.
ParseResult parse(std::string_view input);

// The spellings of one normalized address (docs/records.md, "Address fields").
struct Forms {
  // RFC 5233 sub-address: the text after the first "+" of an unquoted local part that does not
  // start with "+". Other separators are not split: "-" is a sub-address separator only where a
  // server is configured so (Postfix recipient_delimiter, Yahoo's disposable addresses), and
  // "john-smith" is far more often a name than a tag.
  bool has_tag = false;
  std::string tag;  // may be empty ("user+@example.com")
  // The address without "+tag" (the address itself when it has none).
  std::string base;
  // The one spelling every equivalent spelling reaches, where the provider documents such
  // equivalences: Gmail only (dots ignored, case ignored, "+tag" ignored, googlemail.com =
  // gmail.com). "" elsewhere.
  std::string canonical;
};
Forms forms(std::string_view normalized);

// True if `local` (before any "+tag") names a role rather than a person, case-insensitively.
bool is_role_account(std::string_view local);

}  // namespace mxp::address
