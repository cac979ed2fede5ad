// Table-driven tests of the address parser: one table of refused inputs (every error code must
// appear in it, checked below), one of accepted inputs with their normal form and flags, and the
// RFC 5321 length limits at and one past each boundary.
#include "address/address.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

namespace mxp::address {
namespace {

using namespace std::string_literals;

// A domain of exactly n octets (n >= 8): labels of 'a' split by a dot every 50 octets, ending
// in a letters-only TLD.
std::string domain_of(size_t n) {
  std::string d(n, 'a');
  for (size_t i = 49; i + 2 < n; i += 50)
    d[i] = '.';
  return d;
}

struct Bad {
  std::string input;
  Error error;
};

// Every error code needs at least one row here (see EveryErrorCodeIsTested).
const std::vector<Bad>& bad_cases() {
  static const std::vector<Bad> cases = {
      {"", Error::Empty},
      {"   ", Error::Empty},
      {" \t ", Error::Empty},
      // Bytes that could split an SMTP command: refused everywhere, quotes or not.
      {"a\r\nb@example.com", Error::ControlChar},
      {"a@example.com\r\nRCPT TO:<b@example.org>", Error::ControlChar},
      {"a@example.com\n", Error::ControlChar},
      {"a@example.com\r", Error::ControlChar},
      {"a\0b@example.com"s, Error::ControlChar},
      {"\"a\0b\"@example.com"s, Error::ControlChar},
      {"\"a\r\nb\"@example.com", Error::ControlChar},
      {"\"a\x01\"@example.com", Error::ControlChar},
      {"a@exa\x7fmple.com", Error::ControlChar},
      {"\"a\tb\"@example.com", Error::ControlChar},    // TAB inside quotes
      {"\"a\\\tb\"@example.com", Error::ControlChar},  // ... even escaped
      {"a\xc2\x85@example.com", Error::ControlChar},   // U+0085 NEL, a C1 control
      {"<a@example.com>", Error::AngleBracket},
      {"a@example.com>", Error::AngleBracket},
      {"\"a<b\"@example.com", Error::AngleBracket},
      {"\"a>\"@example.com", Error::AngleBracket},
      {"a\xff@example.com", Error::InvalidUtf8},
      {"a@b\xc3.example.com", Error::InvalidUtf8},           // truncated sequence
      {"\xc0\xaf@example.com", Error::InvalidUtf8},          // overlong '/'
      {"\xc0\x8d\xc0\x8a@example.com", Error::InvalidUtf8},  // overlong CR LF
      {"\xed\xa0\x80@example.com", Error::InvalidUtf8},      // surrogate
      {"\xf4\x90\x80\x80@example.com", Error::InvalidUtf8},  // past U+10FFFF
      {"a\xe2\x82@example.com", Error::InvalidUtf8},
      {"a b@example.com", Error::Whitespace},
      {"a @example.com", Error::Whitespace},
      {"a\t@example.com", Error::Whitespace},
      {"a@ example.com", Error::Whitespace},
      {"a@example .com", Error::Whitespace},
      {"\"a\" @example.com", Error::Whitespace},
      {"abc", Error::NoAt},
      {"www.example.com", Error::NoAt},
      {"\"a@b\"", Error::NoAt},
      {"a@b@example.com", Error::MultipleAt},
      {"\"a\"@b@example.com", Error::MultipleAt},
      {"@example.com", Error::LocalEmpty},
      {"@", Error::LocalEmpty},
      {"\"\"@example.com", Error::LocalEmpty},
      {".a@example.com", Error::LocalDot},
      {"a.@example.com", Error::LocalDot},
      {"a..b@example.com", Error::LocalDot},
      {".@example.com", Error::LocalDot},
      {"a(b)@example.com", Error::LocalInvalidChar},
      {"a,b@example.com", Error::LocalInvalidChar},
      {"a:b@example.com", Error::LocalInvalidChar},
      {"a;b@example.com", Error::LocalInvalidChar},
      {"a[b]@example.com", Error::LocalInvalidChar},
      {"a\\b@example.com", Error::LocalInvalidChar},
      {"\"a\\\xc3\xa9\"@example.com", Error::LocalInvalidChar},  // quoted-pair is ASCII only
      {"a\"b\"@example.com", Error::QuoteMisplaced},
      {"\"a\"b@example.com", Error::QuoteMisplaced},
      {"\"a\".b@example.com", Error::QuoteMisplaced},
      {"\"a\"\"b\"@example.com", Error::QuoteMisplaced},
      {"\"abc@example.com", Error::UnterminatedQuote},
      {"\"abc\\", Error::UnterminatedQuote},
      {"\"abc\\\"@example.com", Error::UnterminatedQuote},
      {std::string(65, 'a') + "@example.com", Error::LocalTooLong},
      {"\"" + std::string(62, 'a') + " \"@example.com", Error::LocalTooLong},  // 65 quoted
      {"a@", Error::DomainEmpty},
      {"\"a\"@", Error::DomainEmpty},
      {"a@[192.0.2.1]", Error::AddressLiteral},
      {"a@[IPv6:2001:db8::1]", Error::AddressLiteral},
      {"a@x_y.example.com", Error::DomainInvalidChar},
      {"a@example.com,b@example.org", Error::DomainInvalidChar},
      {"a@example.com\"", Error::DomainInvalidChar},
      {"a@exa!mple.com", Error::DomainInvalidChar},
      {"a@x\xef\xbc\x9cy.example", Error::DomainInvalidChar},  // fullwidth '<' maps to '<'
      {"a@x\xef\xbc\xbfy.example", Error::DomainInvalidChar},  // fullwidth '_' maps to '_'
      {"a@" + domain_of(256), Error::DomainTooLong},
      {"a@" + std::string(1100, 'a') + "\xc3\xbc.example", Error::DomainTooLong},
      {"a@.example.com", Error::DomainEmptyLabel},
      {"a@example..com", Error::DomainEmptyLabel},
      {"a@example.com.", Error::DomainEmptyLabel},
      {"a@.", Error::DomainEmptyLabel},
      {"a@b\xc3\xbc..example", Error::DomainEmptyLabel},  // found after IDN conversion
      {"a@" + std::string(64, 'a') + ".example", Error::DomainLabelTooLong},
      {"a@b\xc3\xbc" + std::string(70, 'a') + ".example", Error::DomainLabelTooLong},
      {"a@-example.com", Error::DomainLabelHyphen},
      {"a@example-.com", Error::DomainLabelHyphen},
      {"a@example.com-", Error::DomainLabelHyphen},
      {"a@example.-com", Error::DomainLabelHyphen},
      {"a@-b\xc3\xbc.example", Error::DomainLabelHyphen},
      {"user@localhost", Error::DomainNotFqdn},
      {"a@COM", Error::DomainNotFqdn},
      {"a@b\xc3\xbc", Error::DomainNotFqdn},
      {"a@192.0.2.1", Error::DomainNumericTld},
      {"a@example.123", Error::DomainNumericTld},
      {"a@\xcc\x81x.example", Error::IdnInvalid},         // leading combining mark
      {"a@\xe2\x92\x88.example", Error::IdnInvalid},      // U+2488 DIGIT ONE FULL STOP
      {"a@ab--\xc3\xbc.example", Error::IdnInvalid},      // '--' in positions 3-4
      {"a@xn--zz.b\xc3\xbc.example", Error::IdnInvalid},  // bad A-label beside a U-label
      {std::string(64, 'a') + "@" + domain_of(190), Error::TooLong},  // path 255
      {"a@" + domain_of(255), Error::TooLong},  // a legal domain length, but the path is 257
  };
  return cases;
}

TEST(AddressParse, RefusesWithPreciseError) {
  for (const auto& c : bad_cases()) {
    ParseResult r = parse(c.input);
    EXPECT_EQ(to_string(r.error), to_string(c.error)) << "input: \"" << c.input << "\"";
    EXPECT_FALSE(r.ok());
    // Nothing from a refused input leaks into the result.
    EXPECT_TRUE(r.address.local.empty() && r.address.domain.empty()) << c.input;
  }
}

TEST(AddressParse, EveryErrorCodeIsTested) {
  std::set<Error> covered;
  for (const auto& c : bad_cases())
    covered.insert(c.error);
  for (int i = 1; i < kErrorCount; ++i) {  // 0 is Error::None, covered by the valid table
    Error e = static_cast<Error>(i);
    EXPECT_TRUE(covered.count(e)) << "no test produces error " << to_string(e);
  }
}

TEST(AddressErrors, NamesAreUniqueSnakeCase) {
  EXPECT_EQ(to_string(Error::None), "none");
  std::set<std::string_view> names;
  for (int i = 0; i < kErrorCount; ++i) {
    std::string_view n = to_string(static_cast<Error>(i));
    ASSERT_FALSE(n.empty());
    EXPECT_TRUE(names.insert(n).second) << n;
    for (char c : n)
      EXPECT_TRUE((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_') << n;
  }
  EXPECT_EQ(to_string(static_cast<Error>(kErrorCount)), "?");
}

struct Good {
  std::string input;
  std::string normalized;
  std::string local;
  std::string domain_unicode = "";
  bool quoted = false;
  bool smtputf8 = false;
  bool role = false;
};

const std::vector<Good>& good_cases() {
  static const std::vector<Good> cases = {
      {"user@example.com", "user@example.com", "user"},
      {"a@b.co", "a@b.co", "a"},
      {"User.Name+tag@Example.COM", "User.Name+tag@example.com", "User.Name+tag"},
      {"  john@example.com\t ", "john@example.com", "john"},
      {"!#$%&'*+-/=?^_`{|}~@example.com", "!#$%&'*+-/=?^_`{|}~@example.com", "!#$%&'*+-/=?^_`{|}~"},
      {"a@x-y.1.example", "a@x-y.1.example", "a"},
      {"a@example.xn--p1ai", "a@example.xn--p1ai", "a"},
      {"a@EXAMPLE.A1", "a@example.a1", "a"},
      // Quoted local parts: unquoted when the content is a dot-string, else minimally quoted.
      {"\"john.doe\"@example.com", "john.doe@example.com", "john.doe"},
      {"\"a\\b\"@example.com", "ab@example.com", "ab"},
      {"\"john doe\"@example.com", "\"john doe\"@example.com", "john doe", "", true},
      {"\"a\\\"b\"@example.com", "\"a\\\"b\"@example.com", "a\"b", "", true},
      {"\"a\\\\b\"@example.com", "\"a\\\\b\"@example.com", "a\\b", "", true},
      {"\"a@b\"@example.com", "\"a@b\"@example.com", "a@b", "", true},
      {"\"a..b\"@example.com", "\"a..b\"@example.com", "a..b", "", true},
      {"\" \"@example.com", "\" \"@example.com", " ", "", true},
      {"\"(comment)\"@example.com", "\"(comment)\"@example.com", "(comment)", "", true},
      // IDN: A-labels, lower case; U-label form kept for display.
      {"user@b\xc3\xbc"
       "cher.example",
       "user@xn--bcher-kva.example", "user",
       "b\xc3\xbc"
       "cher.example"},
      {"user@B\xc3\x9c"
       "CHER.Example",
       "user@xn--bcher-kva.example", "user",
       "b\xc3\xbc"
       "cher.example"},
      {"user@b\xc3\xbc"
       "cher\xe3\x80\x82"
       "example",
       "user@xn--bcher-kva.example", "user",
       "b\xc3\xbc"
       "cher.example"},  // ideographic full stop is a dot (UTS #46)
      {"user@fa\xc3\x9f.de", "user@xn--fa-hia.de", "user", "fa\xc3\x9f.de"},  // non-transitional
      {"user@\xe2\x98\x83.example", "user@xn--n3h.example", "user",
       "\xe2\x98\x83.example"},  // refused non-transitionally, accepted by the fallback
      {"user@\xef\xbd\x98y.example", "user@xy.example", "user"},  // fullwidth x: same as ASCII
      {"user@XN--BCHER-KVA.example", "user@xn--bcher-kva.example", "user"},
      // UTF-8 local parts need SMTPUTF8 (RFC 6531).
      {"j\xc3\xb6hn@example.com", "j\xc3\xb6hn@example.com", "j\xc3\xb6hn", "", false, true},
      {"\"j\xc3\xb6hn\"@example.com", "j\xc3\xb6hn@example.com", "j\xc3\xb6hn", "", false, true},
      {"\"j\xc3\xb6 hn\"@example.com", "\"j\xc3\xb6 hn\"@example.com", "j\xc3\xb6 hn", "", true,
       true},
      {"\xe7\x94\xa8\xe6\x88\xb7@b\xc3\xbc"
       "cher.example",
       "\xe7\x94\xa8\xe6\x88\xb7@xn--bcher-kva.example", "\xe7\x94\xa8\xe6\x88\xb7",
       "b\xc3\xbc"
       "cher.example",
       false, true},
      // Role accounts.
      {"postmaster@example.com", "postmaster@example.com", "postmaster", "", false, false, true},
      {"PostMaster@example.com", "PostMaster@example.com", "PostMaster", "", false, false, true},
      {"info@example.com", "info@example.com", "info", "", false, false, true},
      {"sales+emea@example.com", "sales+emea@example.com", "sales+emea", "", false, false, true},
      {"no-reply@example.com", "no-reply@example.com", "no-reply", "", false, false, true},
      {"\"abuse\"@example.com", "abuse@example.com", "abuse", "", false, false, true},
      {"information@example.com", "information@example.com", "information"},
      {"john.sales@example.com", "john.sales@example.com", "john.sales"},
  };
  return cases;
}

void expect_good(const Good& c) {
  SCOPED_TRACE("input: \"" + c.input + "\"");
  ParseResult r = parse(c.input);
  ASSERT_EQ(to_string(r.error), "none");
  ASSERT_TRUE(r.ok());
  const Address& a = r.address;
  EXPECT_EQ(a.normalized(), c.normalized);
  EXPECT_EQ(a.local, c.local);
  EXPECT_EQ(a.domain, c.normalized.substr(c.normalized.rfind('@') + 1));
  EXPECT_EQ(a.domain_unicode, c.domain_unicode);
  EXPECT_EQ(a.quoted, c.quoted);
  EXPECT_EQ(a.smtputf8, c.smtputf8);
  EXPECT_EQ(a.role, c.role);
  // Normalisation is idempotent: the normal form parses to itself with the same flags.
  ParseResult again = parse(a.normalized());
  ASSERT_TRUE(again.ok()) << to_string(again.error);
  EXPECT_EQ(again.address.normalized(), c.normalized);
  EXPECT_EQ(again.address.local, a.local);
  EXPECT_EQ(again.address.quoted, a.quoted);
  EXPECT_EQ(again.address.smtputf8, a.smtputf8);
  EXPECT_EQ(again.address.role, a.role);
}

TEST(AddressParse, AcceptsAndNormalises) {
  for (const auto& c : good_cases())
    expect_good(c);
}

// RFC 5321 §4.5.3.1 limits, exactly at and one past each.
TEST(AddressLimits, LocalPart64) {
  std::string l64(64, 'a');
  expect_good({l64 + "@example.com", l64 + "@example.com", l64});
  EXPECT_EQ(parse(l64 + "b@example.com").error, Error::LocalTooLong);
  // The limit applies to the wire form: quotes and needed escapes count, dropped ones do not.
  std::string q62 = std::string(61, 'a') + " ";
  expect_good({"\"" + q62 + "\"@example.com", "\"" + q62 + "\"@example.com", q62, "", true});
  EXPECT_EQ(parse("\"" + q62 + "a\"@example.com").error, Error::LocalTooLong);
  // 60 'a' + an escaped DQUOTE: 61 octets + 1 backslash + 2 quotes = 64.
  EXPECT_TRUE(parse("\"" + std::string(60, 'a') + "\\\"\"@example.com").ok());
  EXPECT_EQ(parse("\"" + std::string(61, 'a') + "\\\"\"@example.com").error, Error::LocalTooLong);
  std::string escaped64;  // 128 input octets, 64 on the wire once needless escapes go
  for (int i = 0; i < 64; ++i)
    escaped64 += "\\a";
  expect_good({"\"" + escaped64 + "\"@example.com", l64 + "@example.com", l64});
}

TEST(AddressLimits, Label63) {
  std::string l63(63, 'b');
  expect_good({"a@" + l63 + ".example", "a@" + l63 + ".example", "a"});
  expect_good({"a@example." + l63, "a@example." + l63, "a"});
  EXPECT_EQ(parse("a@" + l63 + "b.example").error, Error::DomainLabelTooLong);
  EXPECT_EQ(parse("a@example." + l63 + "b").error, Error::DomainLabelTooLong);
}

TEST(AddressLimits, Domain255AndPath254) {
  // The 254-octet path limit is the binding one: the longest domain that fits is 252 octets.
  std::string d252 = domain_of(252);
  ASSERT_EQ(d252.size(), 252u);
  expect_good({"a@" + d252, "a@" + d252, "a"});
  EXPECT_EQ(parse("a@" + domain_of(253)).error, Error::TooLong);
  EXPECT_EQ(parse("a@" + domain_of(255)).error, Error::TooLong);
  EXPECT_EQ(parse("a@" + domain_of(256)).error, Error::DomainTooLong);
  // Path exactly 254 with a full 64-octet local part, then 255.
  std::string l64(64, 'a');
  std::string d189 = domain_of(189);
  expect_good({l64 + "@" + d189, l64 + "@" + d189, l64});
  EXPECT_EQ((l64 + "@" + d189).size(), 254u);
  EXPECT_EQ(parse(l64 + "@" + domain_of(190)).error, Error::TooLong);
}

TEST(AddressLimits, IdnLengthCountsTheALabel) {
  // 55 'a' + 'u-umlaut' is a 56-octet U-label whose A-label "xn--" + 55 'a' + "-8yf" is exactly
  // 63 octets; one more 'a' pushes the A-label past the limit.
  std::string u55 = std::string(55, 'a') + "\xc3\xbc";
  std::string a55 = "xn--" + std::string(55, 'a') + "-8yf";
  ASSERT_EQ(a55.size(), 63u);
  expect_good({"x@" + u55 + ".example", "x@" + a55 + ".example", "x", u55 + ".example"});
  EXPECT_EQ(parse("x@a" + u55 + ".example").error, Error::DomainLabelTooLong);
}

TEST(AddressRole, ListAndTagStripping) {
  EXPECT_TRUE(is_role_account("postmaster"));
  EXPECT_TRUE(is_role_account("POSTMASTER"));
  EXPECT_TRUE(is_role_account("abuse+reports"));
  EXPECT_TRUE(is_role_account("hostmaster"));
  EXPECT_TRUE(is_role_account("webmaster"));
  EXPECT_TRUE(is_role_account("noreply"));
  EXPECT_TRUE(is_role_account("support"));
  EXPECT_FALSE(is_role_account(""));
  EXPECT_FALSE(is_role_account("+sales"));
  EXPECT_FALSE(is_role_account("postmasters"));
  EXPECT_FALSE(is_role_account("jane"));
  EXPECT_FALSE(is_role_account("i"));
  EXPECT_FALSE(is_role_account(std::string(200, 'a')));
}

TEST(AddressNormalized, QuotesOnlyWhatMustBe) {
  Address a;
  a.local = "a\"b\\c d";
  a.domain = "example.com";
  a.quoted = true;
  EXPECT_EQ(a.normalized(), "\"a\\\"b\\\\c d\"@example.com");
  a.local = "plain";
  a.quoted = false;
  EXPECT_EQ(a.normalized(), "plain@example.com");
}

// tag, base and canonical (docs/records.md, "Address fields"): "+" only, Gmail's documented
// equivalences only, from the parser's own normal form.
TEST(Forms, TagBaseCanonical) {
  struct Case {
    const char* input;
    bool has_tag;
    const char* tag;
    const char* base;
    const char* canonical;
  } cases[] = {
      {"alice@example.com", false, "", "alice@example.com", ""},
      {"alice+news@example.com", true, "news", "alice@example.com", ""},
      {"alice+@example.com", true, "", "alice@example.com", ""},
      {"alice+a+b@example.com", true, "a+b", "alice@example.com", ""},
      // "-" is not split: a name far more often than a tag (Yahoo's disposable addresses aside).
      {"john-smith@yahoo.com", false, "", "john-smith@yahoo.com", ""},
      // A leading "+" leaves no mailbox to be a tag of.
      {"+alice@example.com", false, "", "+alice@example.com", ""},
      {"\"al ice+x\"@example.com", false, "", "\"al ice+x\"@example.com", ""},
      // Gmail: dots and case do not matter, "+tag" reaches the same inbox, googlemail = gmail.
      {"John.Smith@gmail.com", false, "", "John.Smith@gmail.com", "johnsmith@gmail.com"},
      {"j.o.h.n.smith+shop@GMAIL.com", true, "shop", "j.o.h.n.smith@gmail.com",
       "johnsmith@gmail.com"},
      {"john.smith@googlemail.com", false, "", "john.smith@googlemail.com", "johnsmith@gmail.com"},
      // A Google Workspace domain: dots do matter there, so no canonical form.
      {"john.smith@example.com", false, "", "john.smith@example.com", ""},
      // Other providers document no such rules.
      {"John.Smith@outlook.com", false, "", "John.Smith@outlook.com", ""},
  };
  for (const auto& c : cases) {
    auto p = parse(c.input);
    ASSERT_TRUE(p.ok()) << c.input;
    const Forms f = forms(p.address.normalized());
    EXPECT_EQ(f.has_tag, c.has_tag) << c.input;
    EXPECT_EQ(f.tag, c.tag) << c.input;
    EXPECT_EQ(f.base, c.base) << c.input;
    EXPECT_EQ(f.canonical, c.canonical) << c.input;
  }
  EXPECT_EQ(forms("").base, "");
}

}  // namespace
}  // namespace mxp::address
