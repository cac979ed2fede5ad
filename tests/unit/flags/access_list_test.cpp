// Deny and allow lists (flags/access_list.hpp): the file format (comments, blank lines, case,
// IDN, wildcards, bad lines with their line number) and what matches what.
#include "flags/access_list.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

namespace mxp::flags {
namespace {

address::Address addr(const std::string& text) {
  auto p = address::parse(text);
  EXPECT_TRUE(p.ok()) << text;
  return p.address;
}

TEST(AccessList, ParsesEntriesCommentsAndBlankLines) {
  AccessList l;
  auto n = l.add(
      "# our own domains\n"
      "\n"
      "Example.COM\n"
      "  *.corp.example.net   # every subdomain\n"
      "\tAlice@Shop.Example\r\n"
      "\"a#b\"@quoted.example\n"
      "   \n",
      "deny.txt");
  ASSERT_TRUE(n) << n.error();
  EXPECT_EQ(*n, 4u);
  EXPECT_EQ(l.size(), 4u);
  const auto* o = l.match(addr("bob@example.com"));
  ASSERT_NE(o, nullptr);
  EXPECT_EQ(l.where(*o), "deny.txt:3");
  o = l.match(addr("x@a.corp.example.net"));
  ASSERT_NE(o, nullptr);
  EXPECT_EQ(l.where(*o), "deny.txt:4");
  o = l.match(addr("alice@shop.example"));
  ASSERT_NE(o, nullptr);
  EXPECT_EQ(l.where(*o), "deny.txt:5");
  // A # inside a quoted local part is not a comment.
  EXPECT_NE(l.match(addr("\"a#b\"@quoted.example")), nullptr);
}

TEST(AccessList, MatchesDomainsExactlyAndWildcardsBelow) {
  AccessList l;
  ASSERT_TRUE(l.add("example.com\n*.example.net\n", "l"));
  EXPECT_NE(l.match(addr("a@example.com")), nullptr);
  EXPECT_EQ(l.match(addr("a@sub.example.com")), nullptr);  // a domain entry is that domain only
  EXPECT_EQ(l.match(addr("a@example.net")), nullptr);      // a wildcard is its subdomains only
  EXPECT_NE(l.match(addr("a@x.example.net")), nullptr);
  EXPECT_NE(l.match(addr("a@y.x.example.net")), nullptr);
  EXPECT_EQ(l.match(addr("a@notexample.net")), nullptr);
  EXPECT_NE(l.match_domain("example.com"), nullptr);
  EXPECT_NE(l.match_domain("deep.sub.example.net"), nullptr);
  EXPECT_EQ(l.match_domain("example.org"), nullptr);
}

TEST(AccessList, AddressesIgnoreCaseAndOnlyCoverThemselves) {
  AccessList l;
  ASSERT_TRUE(l.add("Alice@Example.COM\n", "l"));
  EXPECT_NE(l.match(addr("alice@example.com")), nullptr);
  EXPECT_NE(l.match(addr("ALICE@EXAMPLE.com")), nullptr);
  EXPECT_EQ(l.match(addr("bob@example.com")), nullptr);
  // An address entry is about one mailbox: a domain check of its domain is not covered.
  EXPECT_EQ(l.match_domain("example.com"), nullptr);
}

TEST(AccessList, IdnDomainsCompareAsALabels) {
  AccessList l;
  ASSERT_TRUE(l.add("bücher.example\n*.münchen.example\n", "l"));
  EXPECT_NE(l.match(addr("a@xn--bcher-kva.example")), nullptr);
  EXPECT_NE(l.match(addr("a@BÜCHER.example")), nullptr);
  EXPECT_NE(l.match_domain("xn--bcher-kva.example"), nullptr);
  EXPECT_NE(l.match(addr("a@x.münchen.example")), nullptr);
  AccessList a;
  ASSERT_TRUE(a.add("xn--bcher-kva.example\n", "l"));
  EXPECT_NE(a.match(addr("a@bücher.example")), nullptr);
}

TEST(AccessList, BadLinesNameTheFileLineAndWhy) {
  struct Case {
    const char* text;
    const char* error;
  } cases[] = {
      {"ok.example\nx..y\n", "f.txt:2: 'x..y' is not a domain (domain_empty_label)"},
      {"localhost\n", "f.txt:1: 'localhost' is not a domain (domain_not_fqdn)"},
      {"# c\n\nnot an@address.example\n",
       "f.txt:3: 'not an@address.example' is not an address (whitespace)"},
      {"@example.com\n", "f.txt:1: '@example.com' is not an address: write the domain alone"},
      {"a@b@example.com\n", "f.txt:1: 'a@b@example.com' is not an address (multiple_at)"},
      {"*example.com\n", "f.txt:1: '*example.com' is not a domain: a wildcard is '*.'"},
      {"a.*.example.com\n", "f.txt:1: 'a.*.example.com' is not a domain: a wildcard is '*.'"},
      {"*.\n", "f.txt:1: '*.' is not a domain: a wildcard is '*.'"},
  };
  for (const auto& c : cases) {
    AccessList l;
    auto r = l.add(c.text, "f.txt");
    ASSERT_FALSE(r) << c.text;
    EXPECT_EQ(r.error().rfind(c.error, 0), 0u) << r.error();
  }
}

TEST(AccessLists, DenyWinsThenTheAllowListDecides) {
  AccessLists l;
  ASSERT_TRUE(l.deny.add("bad.example\nboss@good.example\n", "deny.txt"));
  std::string why;
  EXPECT_EQ(l.check(addr("a@bad.example"), &why), Listed::Denied);
  EXPECT_EQ(why, "on the deny list (deny.txt:1): this address is never contacted");
  EXPECT_EQ(l.check(addr("boss@good.example")), Listed::Denied);
  EXPECT_EQ(l.check(addr("a@good.example")), Listed::No);  // no allow list: the rest is fine
  EXPECT_EQ(l.check_domain("good.example"), Listed::No);
  EXPECT_EQ(l.check_domain("bad.example", &why), Listed::Denied);
  EXPECT_EQ(why, "on the deny list (deny.txt:1): this domain is never contacted");

  ASSERT_TRUE(l.allow.add("good.example\nbad.example\nsolo@other.example\n", "allow.txt"));
  l.has_allow = true;
  EXPECT_EQ(l.check(addr("a@bad.example")), Listed::Denied);  // deny first
  EXPECT_EQ(l.check(addr("a@good.example")), Listed::No);
  EXPECT_EQ(l.check(addr("solo@other.example")), Listed::No);
  EXPECT_EQ(l.check(addr("a@other.example"), &why), Listed::NotAllowed);
  EXPECT_EQ(why, "not on the allow list: this address is never contacted");
  EXPECT_EQ(l.check_domain("other.example"), Listed::NotAllowed);  // one mailbox, not the domain
  // An empty allow list allows nothing.
  AccessLists none;
  none.has_allow = true;
  EXPECT_EQ(none.check(addr("a@good.example")), Listed::NotAllowed);
}

TEST(AccessLists, LoadsFilesAndSaysWhichOneFailed) {
  char dir[] = "/tmp/access-list-test.XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string d1 = std::string(dir) + "/deny1.txt", d2 = std::string(dir) + "/deny2.txt",
                    al = std::string(dir) + "/allow.txt", bad = std::string(dir) + "/bad.txt";
  std::ofstream(d1) << "one.example\n";
  std::ofstream(d2) << "# empty but for a comment\n";
  std::ofstream(al) << "two.example\n";
  std::ofstream(bad) << "fine.example\nno good\n";
  auto l = load_access_lists({d1, d2}, {al});
  ASSERT_TRUE(l) << l.error();
  EXPECT_EQ((*l)->deny.size(), 1u);
  EXPECT_EQ((*l)->allow.size(), 1u);
  EXPECT_TRUE((*l)->has_allow);
  EXPECT_EQ((*l)->check(addr("a@one.example")), Listed::Denied);
  EXPECT_EQ((*l)->check(addr("a@two.example")), Listed::No);
  auto b = load_access_lists({bad}, {});
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error(), "--deny " + bad + ":2: 'no good' is not a domain (whitespace)");
  auto m = load_access_lists({}, {std::string(dir) + "/missing.txt"});
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error(), "--allow " + std::string(dir) + "/missing.txt: cannot read it");
  for (const auto& f : {d1, d2, al, bad})
    std::remove(f.c_str());
  rmdir(dir);
}

}  // namespace
}  // namespace mxp::flags
