// Tests of the incremental SMTP reply parser: every sample is fed whole, split at every position
// and byte by byte, and must give the same, hand-written result each time.
#include "smtp/reply_parser.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace mxp::smtp {
namespace {

struct Expected {
  int code;
  std::string enhanced;  // "" when absent
  std::vector<std::string> lines;
};

struct Run {
  std::vector<Reply> replies;
  bool failed = false;
  std::string error;
};

// Feeds `chunks` in order through the zero-queue interface.
Run feed_chunks(const std::vector<std::string_view>& chunks, ReplyLimits limits = {}) {
  ReplyParser p(limits);
  Run run;
  for (std::string_view c : chunks) {
    while (auto r = p.next(c))
      run.replies.push_back(std::move(*r));
    if (p.failed()) break;
  }
  run.failed = p.failed();
  run.error = p.error();
  return run;
}

void expect_same(const Run& got, const std::vector<Expected>& want, bool want_error,
                 const std::string& how) {
  SCOPED_TRACE(how);
  ASSERT_EQ(got.replies.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got.replies[i].code, want[i].code) << "reply " << i;
    EXPECT_EQ(got.replies[i].enhanced.str(), want[i].enhanced) << "reply " << i;
    EXPECT_EQ(got.replies[i].lines, want[i].lines) << "reply " << i;
  }
  EXPECT_EQ(got.failed, want_error);
  EXPECT_EQ(got.error.empty(), !want_error);
}

// Whole, every two-way split, every three-way split at (k, k+1..), and byte by byte.
void check_all_splits(std::string_view wire, const std::vector<Expected>& want, bool want_error,
                      ReplyLimits limits = {}) {
  const Run whole = feed_chunks({wire}, limits);
  expect_same(whole, want, want_error, "whole");
  for (size_t k = 0; k <= wire.size(); ++k) {
    const Run two = feed_chunks({wire.substr(0, k), wire.substr(k)}, limits);
    expect_same(two, want, want_error, "split at " + std::to_string(k));
    EXPECT_EQ(two.error, whole.error);
  }
  std::vector<std::string_view> bytes;
  for (size_t i = 0; i < wire.size(); ++i)
    bytes.push_back(wire.substr(i, 1));
  const Run one = feed_chunks(bytes, limits);
  expect_same(one, want, want_error, "byte by byte");
  EXPECT_EQ(one.error, whole.error);
}

struct Sample {
  const char* name;
  std::string wire;
  std::vector<Expected> want;
  bool error;
};

std::vector<Sample> samples() {
  return {
      {"banner",
       "220 mx.example.org ESMTP Postfix (Debian/GNU)\r\n",
       {{220, "", {"mx.example.org ESMTP Postfix (Debian/GNU)"}}},
       false},
      {"ehlo_multiline",
       "250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-ENHANCEDSTATUSCODES\r\n"
       "250-8BITMIME\r\n250 SMTPUTF8\r\n",
       {{250,
         "",
         {"mx.example.org", "PIPELINING", "SIZE 10240000", "ENHANCEDSTATUSCODES", "8BITMIME",
          "SMTPUTF8"}}},
       false},
      {"gmail_nosuchuser",
       "550-5.1.1 The email account that you tried to reach does not exist. Please try\r\n"
       "550-5.1.1 double-checking the recipient's email address for typos or\r\n"
       "550 5.1.1  https://support.google.com/mail/?p=NoSuchUser a1si - gsmtp\r\n",
       {{550,
         "5.1.1",
         {"The email account that you tried to reach does not exist. Please try",
          "double-checking the recipient's email address for typos or",
          " https://support.google.com/mail/?p=NoSuchUser a1si - gsmtp"}}},
       false},
      {"bare_lf", "250-first\n250 2.1.5 second\n", {{250, "2.1.5", {"first", "second"}}}, false},
      {"mixed_terminators", "250-a\r\n250-b\n250 c\r\n", {{250, "", {"a", "b", "c"}}}, false},
      {"code_only", "250\r\n", {{250, "", {""}}}, false},
      {"code_space_only", "250 \r\n", {{250, "", {""}}}, false},
      {"empty_continuation", "250-\r\n250 ok\r\n", {{250, "", {"", "ok"}}}, false},
      {"enhanced_alone", "250 2.0.0\r\n", {{250, "2.0.0", {""}}}, false},
      {"enhanced_three_digits",
       "452 4.5.3 Too many recipients\r\n",
       {{452, "4.5.3", {"Too many recipients"}}},
       false},
      {"enhanced_wide", "550 5.100.999 x\r\n", {{550, "5.100.999", {"x"}}}, false},
      {"enhanced_class_mismatch",
       "550 4.1.1 user unknown\r\n",
       {{550, "", {"4.1.1 user unknown"}}},
       false},
      {"enhanced_glued",
       "550 5.1.1: user unknown\r\n",
       {{550, "", {"5.1.1: user unknown"}}},
       false},
      {"enhanced_too_many_digits", "550 5.1234.1 x\r\n", {{550, "", {"5.1234.1 x"}}}, false},
      {"enhanced_later_line",
       "550-Recipient rejected\r\n550 5.7.1 policy\r\n",
       {{550, "5.7.1", {"Recipient rejected", "policy"}}},
       false},
      {"enhanced_first_wins",
       "451-4.7.1 greylisted\r\n451 4.3.0 try later\r\n",
       {{451, "4.7.1", {"greylisted", "try later"}}},
       false},
      {"pipelined_replies",
       "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 unknown\r\n",
       {{250, "2.1.0", {"Ok"}}, {250, "2.1.5", {"Ok"}}, {550, "5.1.1", {"unknown"}}},
       false},
      {"utf8_text",
       "250 2.1.5 d\xc3\xa9j\xc3\xa0 vu\r\n",
       {{250, "2.1.5", {"d\xc3\xa9j\xc3\xa0 vu"}}},
       false},
      {"incomplete_is_not_error", "250-a\r\n250 b", {}, false},
      // Protocol errors; replies completed before the bad line are still delivered.
      {"garbage", "hello there\r\n", {}, true},
      {"short_code", "25\r\n", {}, true},
      {"four_digits", "2500 x\r\n", {}, true},
      {"bad_separator", "250x ok\r\n", {}, true},
      {"tab_separator", "250\tok\r\n", {}, true},
      {"empty_line", "\r\n", {}, true},
      {"code_below_200", "199 x\r\n", {}, true},
      {"code_1xx", "150 x\r\n", {}, true},
      {"code_above_599", "600 x\r\n", {}, true},
      {"code_zero", "000 x\r\n", {}, true},
      {"mismatched_continuation", "250-a\r\n251 b\r\n", {}, true},
      {"mismatched_after_reply", "220 hi\r\n250-a\r\n550 b\r\n", {{220, "", {"hi"}}}, true},
      {"garbage_in_continuation", "250-a\r\nxyz\r\n", {}, true},
  };
}

TEST(ReplyParser, EverySampleGivesTheSameResultAtEverySplit) {
  for (const Sample& s : samples()) {
    SCOPED_TRACE(s.name);
    check_all_splits(s.wire, s.want, s.error);
  }
}

TEST(ReplyParser, BareLfAndCrlfParseAlike) {
  for (const Sample& s : samples()) {
    if (s.error) continue;
    std::string lf;
    for (size_t i = 0; i < s.wire.size(); ++i)
      if (!(s.wire[i] == '\r' && i + 1 < s.wire.size() && s.wire[i + 1] == '\n')) lf += s.wire[i];
    SCOPED_TRACE(s.name);
    check_all_splits(lf, s.want, false);
  }
}

TEST(ReplyParser, LineLengthCapCountsTheTerminator) {
  ReplyLimits lim;
  lim.max_line_bytes = 16;
  const std::string fits = "250 0123456789\r\n";  // 16 bytes
  ASSERT_EQ(fits.size(), 16u);
  check_all_splits(fits, {{250, "", {"0123456789"}}}, false, lim);
  check_all_splits("250 01234567890\r\n", {}, true, lim);                           // 17 bytes
  check_all_splits("250 0123456789A\n", {{250, "", {"0123456789A"}}}, false, lim);  // 16, bare LF
  check_all_splits("250 0123456789AB\n", {}, true, lim);  // 17 with a bare LF
  EXPECT_NE(feed_chunks({"250 01234567890\r\n"}, lim).error.find("longer than 16"),
            std::string::npos);
}

TEST(ReplyParser, DefaultLimitsFollowTheIssue) {
  ReplyParser p;
  EXPECT_EQ(p.limits().max_line_bytes, 4096u);
  EXPECT_EQ(p.limits().max_lines, 100u);
  const std::string long_ok = "550 " + std::string(4090, 'x') + "\r\n";  // 4096 bytes
  std::string_view in = long_ok;
  auto r = p.next(in);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->lines[0].size(), 4090u);
}

TEST(ReplyParser, FloodWithoutNewlineFailsBeforeTheLimitIsPassed) {
  ReplyParser p;
  const std::string chunk(1000, 'A');
  int fed = 0;
  while (!p.failed() && fed < 100) {
    std::string_view in = chunk;
    EXPECT_FALSE(p.next(in));
    ++fed;
  }
  EXPECT_TRUE(p.failed());
  EXPECT_EQ(fed, 5);  // the 5th kilobyte crosses 4096 bytes
}

TEST(ReplyParser, LinesPerReplyCap) {
  ReplyLimits lim;
  lim.max_lines = 3;
  check_all_splits("250-a\r\n250-b\r\n250 c\r\n", {{250, "", {"a", "b", "c"}}}, false, lim);
  check_all_splits("250-a\r\n250-b\r\n250-c\r\n250 d\r\n", {}, true, lim);
  // The count restarts with every reply.
  check_all_splits("250-a\r\n250 b\r\n250-c\r\n250 d\r\n",
                   {{250, "", {"a", "b"}}, {250, "", {"c", "d"}}}, false, lim);
}

TEST(ReplyParser, LineFloodIsAnErrorNotGrowth) {
  ReplyParser p;
  std::string flood;
  for (int i = 0; i < 1000; ++i)
    flood += "250-x\r\n";
  EXPECT_FALSE(p.feed(flood));
  EXPECT_TRUE(p.failed());
  EXPECT_NE(p.error().find("more than 100 lines"), std::string::npos);
}

TEST(ReplyParser, ErrorIsStickyAndConsumesNothingMore) {
  ReplyParser p;
  std::string_view bad = "xyz\r\n250 ok\r\n";
  EXPECT_FALSE(p.next(bad));
  EXPECT_TRUE(p.failed());
  EXPECT_EQ(bad, "250 ok\r\n");  // left untouched after the bad line
  EXPECT_FALSE(p.next(bad));
  std::string_view good = "250 ok\r\n";
  EXPECT_FALSE(p.next(good));
  EXPECT_EQ(good.size(), 8u);
  EXPECT_FALSE(p.feed("250 ok\r\n"));
  EXPECT_FALSE(p.pop());
  p.reset();
  EXPECT_FALSE(p.failed());
  EXPECT_TRUE(p.error().empty());
  EXPECT_TRUE(p.feed("250 ok\r\n"));
  EXPECT_TRUE(p.pop());
}

TEST(ReplyParser, QueueInterfacePopsInOrder) {
  ReplyParser p;
  EXPECT_TRUE(p.feed("250 2.1.0 Ok\r\n250 2.1"));
  EXPECT_FALSE(p.idle());
  EXPECT_TRUE(p.feed(".5 Ok\r\n550 5.1.1 no\r\n"));
  EXPECT_TRUE(p.idle());
  std::vector<int> codes;
  std::vector<std::string> enh;
  while (auto r = p.pop()) {
    codes.push_back(r->code);
    enh.push_back(r->enhanced.str());
  }
  EXPECT_EQ(codes, (std::vector<int>{250, 250, 550}));
  EXPECT_EQ(enh, (std::vector<std::string>{"2.1.0", "2.1.5", "5.1.1"}));
}

TEST(ReplyParser, IdleOnlyBetweenReplies) {
  ReplyParser p;
  EXPECT_TRUE(p.idle());
  std::string_view in = "250-a\r\n";
  EXPECT_FALSE(p.next(in));
  EXPECT_FALSE(p.idle());  // inside a multi-line reply
  in = "250 b\r\n";
  EXPECT_TRUE(p.next(in));
  EXPECT_TRUE(p.idle());
}

TEST(ReplyParser, LineHookSeesRawLines) {
  std::vector<std::string> seen;
  auto hook = [](void* u, std::string_view l) {
    static_cast<std::vector<std::string>*>(u)->emplace_back(l);
  };
  ReplyParser p;
  std::string_view in = "550-5.1.1 a\r\n55";
  EXPECT_FALSE(p.next(in, hook, &seen));
  in = "0 5.1.1 b\n";
  EXPECT_TRUE(p.next(in, hook, &seen));
  EXPECT_EQ(seen, (std::vector<std::string>{"550-5.1.1 a", "550 5.1.1 b"}));
}

TEST(ParseReply, GmailNoSuchUser) {
  auto r = parse_reply(
      "550-5.1.1 The email account that you tried to reach does not exist...\r\n"
      "550 5.1.1 ... - gsmtp\r\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code, 550);
  EXPECT_EQ(r->enhanced, (EnhancedCode{true, 5, 1, 1}));
  EXPECT_EQ(r->text(), "The email account that you tried to reach does not exist... ... - gsmtp");
}

TEST(ParseReply, FinalTerminatorOptionalButExactlyOneReply) {
  auto r = parse_reply("250 2.1.5 Ok");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code, 250);
  EXPECT_EQ(r->lines, (std::vector<std::string>{"Ok"}));
  EXPECT_TRUE(parse_reply("250-a\r\n250 b"));
  EXPECT_FALSE(parse_reply(""));
  EXPECT_FALSE(parse_reply("250-a\r\n"));           // incomplete
  EXPECT_FALSE(parse_reply("250 a\r\n250 b\r\n"));  // two replies
  EXPECT_FALSE(parse_reply("250 a\r\n\r\n"));       // trailing bytes
  EXPECT_FALSE(parse_reply("hello"));               // garbage
  EXPECT_FALSE(parse_reply("250-a\r\n550 b\r\n"));  // mismatched codes
  EXPECT_FALSE(parse_reply("700 x"));               // out of range
}

TEST(EnhancedCode, TakeFromText) {
  std::string_view t = "5.7.1 Service unavailable";
  auto e = take_enhanced_code(t, 5);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->str(), "5.7.1");
  EXPECT_EQ(t, "Service unavailable");

  std::string_view same = "5.7.1 x";
  EXPECT_FALSE(take_enhanced_code(same, 4));  // class must match the reply code
  EXPECT_EQ(same, "5.7.1 x");                 // untouched
  for (std::string_view bad :
       {"3.1.1 x", "5..1 x", "5.1. x", "5.1 x", "5-1-1 x", "5.1.1x", "55.1.1", "5.1.1000", ""}) {
    std::string_view v = bad;
    EXPECT_FALSE(take_enhanced_code(v, bad.empty() ? 5 : bad[0] - '0')) << bad;
    EXPECT_EQ(v, bad);
  }
}

}  // namespace
}  // namespace mxp::smtp
