// Untrusted bytes on a terminal: `check`'s report escapes every text that came from a server
// (ESC sequences, OSC titles, C1 controls, invalid UTF-8), and keeps valid UTF-8 readable.
#include <gtest/gtest.h>

#include <string>

#include "app/io.hpp"
#include "app/verify.hpp"

namespace mxp::app {
namespace {

bool has_control(const std::string& s) {
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '\n') continue;
    if (c < 0x20 || c == 0x7f) return true;
    if (c == 0xc2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) < 0xa0)
      return true;  // C1 as UTF-8
  }
  return false;
}

TEST(Terminal, PrintableEscapesControlsAndInvalidUtf8) {
  EXPECT_EQ(printable("plain text"), "plain text");
  EXPECT_EQ(printable("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
            "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  EXPECT_EQ(printable("\x1b[2J\x1b]0;owned\x07"), "\\x1b[2J\\x1b]0;owned\\x07");
  EXPECT_EQ(printable("a\tb\r\nc\x7f"), "a\\tb\\r\\nc\\x7f");
  EXPECT_EQ(printable("\xc2\x9b"
                      "31m"),
            "\\xc2\\x9b31m");                                                 // C1 CSI
  EXPECT_EQ(printable("\xff\xc3"), "\\xff\\xc3");                             // invalid, truncated
  EXPECT_EQ(printable("\xc0\xaf\xed\xa0\x80"), "\\xc0\\xaf\\xed\\xa0\\x80");  // overlong, surrogate
  EXPECT_EQ(printable("a\\x1b"), "a\\x5cx1b");  // a backslash cannot fake an escape
}

TEST(Terminal, CheckReportEscapesServerText) {
  pipeline::Result r;
  r.email = "user@d1.test";
  r.normalized = "user@d1.test";
  r.mx = "mx\x1b]0;title\x07.d1.test";
  r.mx_ip = "127.0.0.1";
  r.has_smtp = true;
  r.code = 550;
  r.enhanced = "5.1.1";
  r.message = "no such user \x1b[31mred\x1b[0m \xff\xfe";
  r.transcript = "S: 220 \x1b]2;pwned\x1b\\ hello\nC: EHLO x\nS: 250 ok\xc2\x9b";
  const std::string out = check_report(r, true);
  EXPECT_FALSE(has_control(out)) << out;
  EXPECT_NE(out.find("no such user \\x1b[31mred\\x1b[0m \\xff\\xfe"), std::string::npos) << out;
  EXPECT_NE(out.find("    S: 220 \\x1b]2;pwned\\x1b\\x5c hello\n"), std::string::npos) << out;
  EXPECT_NE(out.find("    C: EHLO x\n"), std::string::npos) << out;
}

// A record that no mail server judged says what decided (a dead resolver, a block of our
// address): `check`'s report shows the record's `error`, escaped like every outside text.
TEST(Terminal, CheckReportSaysWhatDecided) {
  pipeline::Result r;
  r.email = "alice@example.org";
  r.normalized = "alice@example.org";
  r.verdict = Verdict::Unknown;
  r.reason = Reason::DnsError;
  r.error = "dns: 127.0.0.1:9 does not answer (MX lookup of example.org)\x1b[2J";
  const std::string out = check_report(r, false);
  EXPECT_NE(
      out.find("  why: dns: 127.0.0.1:9 does not answer (MX lookup of example.org)\\x1b[2J\n"),
      std::string::npos)
      << out;
  r.error.clear();
  EXPECT_EQ(check_report(r, false).find("why:"), std::string::npos);
  // The score with its factors, and the provider.
  EXPECT_NE(check_report(r, false).find("  score: 40 (dns_error +40)  provider: unknown\n"),
            std::string::npos)
      << check_report(r, false);
  r.provider = "gmail";
  EXPECT_NE(check_report(r, false).find("provider: gmail\n"), std::string::npos);
}

// More than one try: each, in order, escaped; an unknown worth asking again says when.
TEST(Terminal, CheckReportListsTriesAndWhenToAskAgain) {
  pipeline::Result r;
  r.email = r.normalized = "bob@example.org";
  r.verdict = Verdict::Unknown;
  r.reason = Reason::Greylisted;
  pipeline::MxTry refused;
  refused.mx = "mx1.example.org";
  refused.ip = "192.0.2.1";
  refused.stage = "connect";
  refused.error = "connection refused";
  pipeline::add_mx_try(r, refused);
  EXPECT_EQ(check_report(r, false).find("try 1:"), std::string::npos);  // one try: mx says it
  pipeline::MxTry grey;
  grey.mx = "mx2.example.org";
  grey.ip = "192.0.2.2";
  grey.stage = "rcpt_to";
  grey.code = 451;
  grey.enhanced = "4.7.1";
  grey.message = "greylisted\x1b[2J";
  pipeline::add_mx_try(r, grey);
  r.retry_after = std::chrono::system_clock::from_time_t(1795811467);
  const std::string out = check_report(r, false);
  EXPECT_FALSE(has_control(out)) << out;
  EXPECT_NE(out.find("  try 1: mx1.example.org [192.0.2.1] connect: connection refused\n"
                     "  try 2: mx2.example.org [192.0.2.2] rcpt_to: 451 4.7.1 greylisted\\x1b[2J\n"
                     "  ask again after: 2026-11-27T20:31:07Z\n"),
            std::string::npos)
      << out;
}

}  // namespace
}  // namespace mxp::app
