// STARTTLS in the sans-I/O session (RFC 3207), table-driven: each case is a transcript of what the
// server sends ("S:"), what the session must write ("C:", one write or several, commands joined
// by '|'), and what the owner reports about the handshake ("TLS ok" / "TLS failed"); then the
// outcome of every recipient. The owner's TLS is simulated: the session only ever sees plaintext.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "session_harness.hpp"
#include "smtp/session.hpp"

namespace mxp::smtp {
namespace {

using testing::Harness;

struct Case {
  const char* name;
  StartTlsMode mode;
  bool pipelining;  // the client's own switch
  std::vector<const char*> rcpts;
  std::vector<const char*> script;
  // recipient index -> "stage failure code"
  std::map<uint64_t, const char*> outcomes;
  bool tls_active;  // at the end
};

std::string crlf(std::string_view lines) {
  std::string out;
  size_t pos = 0;
  while (pos <= lines.size()) {
    size_t bar = lines.find('|', pos);
    if (bar == std::string_view::npos) bar = lines.size();
    out.append(lines.substr(pos, bar - pos)).append("\r\n");
    pos = bar + 1;
  }
  return out;
}

std::string describe(const Outcome& o) {
  return std::string(to_string(o.stage)) + " " + std::string(to_string(o.failure)) + " " +
         std::to_string(o.reply.code);
}

void play(const Case& c) {
  SCOPED_TRACE(c.name);
  auto cfg = testing::default_config();
  cfg.starttls = c.mode;
  cfg.use_pipelining = c.pipelining;
  Harness h(cfg);
  for (size_t i = 0; i < c.rcpts.size(); ++i)
    h.add(c.rcpts[i], i);
  h.finish();
  h.connect();
  for (std::string_view step : c.script) {
    SCOPED_TRACE(std::string(step));
    if (step.rfind("S: ", 0) == 0) {
      h.server(crlf(step.substr(3)));
    } else if (step.rfind("S~ ", 0) == 0) {  // raw bytes, no CRLF added
      h.server(step.substr(3));
    } else if (step.rfind("C: ", 0) == 0) {
      std::string got;
      for (const auto& w : h.writes)
        got += w;
      h.writes.clear();
      EXPECT_EQ(got, step.size() > 3 ? crlf(step.substr(3)) : "");
    } else if (step == "C:") {
      EXPECT_TRUE(h.writes.empty()) << h.take_writes();
      h.writes.clear();
    } else if (step == "TLS ok") {
      ASSERT_TRUE(h.s.want_tls());
      EXPECT_TRUE(h.s.pending_output().empty());
      h.s.on_tls_established(h.now);
      h.flush();
    } else if (step == "TLS failed") {
      ASSERT_TRUE(h.s.want_tls());
      h.s.on_tls_failed(h.now);
      h.flush();
    } else if (step == "expire") {
      h.expire();
    } else if (step == "closed") {
      h.closed();
    } else {
      FAIL() << "bad step";
    }
  }
  EXPECT_EQ(h.results.size(), c.outcomes.size());
  for (const auto& [id, want] : c.outcomes)
    EXPECT_EQ(describe(h.outcome(id)), want) << "recipient " << id;
  EXPECT_EQ(h.s.tls_active(), c.tls_active);
  EXPECT_FALSE(h.s.want_tls());
}

constexpr const char* kBanner = "S: 220 mx.example.org ESMTP";
constexpr const char* kEhlo = "C: EHLO probe.mxprobe.test";

const std::vector<Case>& cases() {
  static const std::vector<Case> k = {
      {"auto: offered, upgraded, EHLO again, then the transaction inside TLS",
       StartTlsMode::Auto,
       true,
       {"a@example.org", "b@example.org"},
       {kBanner, kEhlo, "S: 250-mx.example.org|250-PIPELINING|250-STARTTLS|250 8BITMIME",
        // STARTTLS goes out alone although recipients wait and PIPELINING is offered.
        "C: STARTTLS", "S: 220 2.0.0 Ready to start TLS", "C:", "TLS ok", kEhlo,
        "S: 250-mx.example.org|250-PIPELINING|250 8BITMIME",
        "C: MAIL FROM:<verify@mxprobe.test>|RCPT TO:<a@example.org>|RCPT TO:<b@example.org>",
        "S: 250 2.1.0 Ok|250 2.1.5 Ok|550 5.1.1 User unknown", "C: QUIT", "S: 221 Bye"},
       {{0, "rcpt_to none 250"}, {1, "rcpt_to none 550"}},
       true},
      {"auto: not offered, clear text",
       StartTlsMode::Auto,
       true,
       {"a@example.org"},
       {kBanner, kEhlo, "S: 250-mx.example.org|250 PIPELINING",
        "C: MAIL FROM:<verify@mxprobe.test>|RCPT TO:<a@example.org>", "S: 250 Ok|250 Ok", "C: QUIT",
        "S: 221 Bye"},
       {{0, "rcpt_to none 250"}},
       false},
      {"auto: offered but refused (454): clear text, no second EHLO (RFC 3207 §4)",
       StartTlsMode::Auto,
       false,
       {"a@example.org"},
       {kBanner, kEhlo, "S: 250-mx.example.org|250 STARTTLS", "C: STARTTLS",
        "S: 454 4.7.0 TLS not available due to local problem", "C: MAIL FROM:<verify@mxprobe.test>",
        "S: 250 Ok", "C: RCPT TO:<a@example.org>", "S: 550 5.1.1 unknown", "C: QUIT", "S: 221 Bye"},
       {{0, "rcpt_to none 550"}},
       false},
      {"never: offered, not used",
       StartTlsMode::Never,
       true,
       {"a@example.org"},
       {kBanner, kEhlo, "S: 250-mx.example.org|250-PIPELINING|250 STARTTLS",
        "C: MAIL FROM:<verify@mxprobe.test>|RCPT TO:<a@example.org>", "S: 250 Ok|250 Ok", "C: QUIT",
        "S: 221 Bye"},
       {{0, "rcpt_to none 250"}},
       false},
      {"require: not offered: every recipient tls_unavailable, QUIT, no MAIL",
       StartTlsMode::Require,
       true,
       {"a@example.org", "b@example.org"},
       {kBanner, kEhlo, "S: 250-mx.example.org|250 PIPELINING", "C: QUIT", "S: 221 Bye"},
       {{0, "starttls tls_unavailable 0"}, {1, "starttls tls_unavailable 0"}},
       false},
      {"require: refused",
       StartTlsMode::Require,
       true,
       {"a@example.org"},
       {kBanner, kEhlo, "S: 250-mx.example.org|250 STARTTLS", "C: STARTTLS",
        "S: 454 4.7.0 TLS not available", "C: QUIT", "S: 221 Bye"},
       {{0, "starttls tls_unavailable 454"}},
       false},
      {"require: HELO-only server has no STARTTLS",
       StartTlsMode::Require,
       true,
       {"a@example.org"},
       {kBanner, kEhlo, "S: 502 5.5.2 Error: command not recognized", "C: HELO probe.mxprobe.test",
        "S: 250 mx.example.org", "C: QUIT", "S: 221 Bye"},
       {{0, "starttls tls_unavailable 0"}},
       false},
      {"require: upgraded",
       StartTlsMode::Require,
       true,
       {"a@example.org"},
       {kBanner, kEhlo, "S: 250-mx.example.org|250 STARTTLS", "C: STARTTLS", "S: 220 Go ahead",
        "TLS ok", kEhlo, "S: 250 mx.example.org", "C: MAIL FROM:<verify@mxprobe.test>", "S: 250 Ok",
        "C: RCPT TO:<a@example.org>", "S: 250 Ok", "C: QUIT", "S: 221 Bye"},
       {{0, "rcpt_to none 250"}},
       true},
      {"auto: handshake failed: tls_failed, no QUIT (the owner retries without TLS)",
       StartTlsMode::Auto,
       true,
       {"a@example.org", "b@example.org"},
       {kBanner, kEhlo, "S: 250-mx.example.org|250 STARTTLS", "C: STARTTLS", "S: 220 Ready",
        "TLS failed", "C:"},
       {{0, "starttls tls_failed 0"}, {1, "starttls tls_failed 0"}},
       false},
      {"injection: replies after the 220 in the same read are dropped (RFC 3207 §4.2)",
       StartTlsMode::Auto,
       true,
       {"a@example.org"},
       {kBanner, kEhlo, "S: 250-mx.example.org|250-PIPELINING|250 STARTTLS", "C: STARTTLS",
        // A man in the middle appends answers for what we will send inside TLS.
        "S: 220 Ready|250-evil.example|250 PIPELINING|250 2.1.0 Ok|250 2.1.5 Ok", "C:", "TLS ok",
        kEhlo, "S: 250-mx.example.org|250 PIPELINING",
        "C: MAIL FROM:<verify@mxprobe.test>|RCPT TO:<a@example.org>",
        "S: 250 2.1.0 Ok|550 5.1.1 User unknown", "C: QUIT", "S: 221 Bye"},
       {{0, "rcpt_to none 550"}},
       true},
      {"injection: a partial line after the 220 does not survive into TLS",
       StartTlsMode::Auto,
       false,
       {"a@example.org"},
       {kBanner, kEhlo, "S: 250-mx.example.org|250 STARTTLS", "C: STARTTLS",
        "S~ 220 Ready\r\n250-inj", "TLS ok", kEhlo, "S: 250 mx.example.org",
        "C: MAIL FROM:<verify@mxprobe.test>", "S: 250 Ok", "C: RCPT TO:<a@example.org>",
        "S: 250 Ok", "C: QUIT", "S: 221 Bye"},
       {{0, "rcpt_to none 250"}},
       true},
      {"530 at MAIL (pipelined, STARTTLS not even offered): STARTTLS, then the batch again",
       StartTlsMode::Auto,
       true,
       {"a@example.org", "b@example.org"},
       {kBanner, kEhlo, "S: 250-mx.example.org|250 PIPELINING",
        "C: MAIL FROM:<verify@mxprobe.test>|RCPT TO:<a@example.org>|RCPT TO:<b@example.org>",
        "S: 530 5.7.0 Must issue a STARTTLS command first",
        "C:", "S: 503 5.5.1 Error: need MAIL command|530 5.7.0 Must issue a STARTTLS command first",
        "C: STARTTLS", "S: 220 2.0.0 Ready to start TLS", "TLS ok", kEhlo,
        "S: 250-mx.example.org|250 PIPELINING",
        "C: MAIL FROM:<verify@mxprobe.test>|RCPT TO:<a@example.org>|RCPT TO:<b@example.org>",
        "S: 250 Ok|250 Ok|550 5.1.1 unknown", "C: QUIT", "S: 221 Bye"},
       {{0, "rcpt_to none 250"}, {1, "rcpt_to none 550"}},
       true},
      {"530 at RCPT after MAIL was accepted: RSET, STARTTLS, the undecided ones again",
       StartTlsMode::Auto,
       false,
       {"a@example.org", "b@example.org"},
       {kBanner,
        kEhlo,
        "S: 250 mx.example.org",
        "C: MAIL FROM:<verify@mxprobe.test>",
        "S: 250 Ok",
        "C: RCPT TO:<a@example.org>",
        "S: 530 5.7.0 Must issue a STARTTLS command first",
        "C: RSET",
        "S: 250 Ok",
        "C: STARTTLS",
        "S: 220 Ready",
        "TLS ok",
        kEhlo,
        "S: 250 mx.example.org",
        "C: MAIL FROM:<verify@mxprobe.test>",
        "S: 250 Ok",
        "C: RCPT TO:<a@example.org>",
        "S: 250 Ok",
        "C: RCPT TO:<b@example.org>",
        "S: 250 Ok",
        "C: QUIT",
        "S: 221 Bye"},
       {{0, "rcpt_to none 250"}, {1, "rcpt_to none 250"}},
       true},
      {"530 with never: the reply decides (the verdict policy says tls_required)",
       StartTlsMode::Never,
       true,
       {"a@example.org"},
       {kBanner, kEhlo, "S: 250-mx.example.org|250 PIPELINING",
        "C: MAIL FROM:<verify@mxprobe.test>|RCPT TO:<a@example.org>",
        "S: 530 5.7.0 Must issue a STARTTLS command first|503 5.5.1 Error: need MAIL command",
        "C: QUIT", "S: 221 Bye"},
       {{0, "mail_from none 530"}},
       false},
      {"530 in auto, STARTTLS not implemented: tls_unavailable",
       StartTlsMode::Auto,
       false,
       {"a@example.org"},
       {kBanner, kEhlo, "S: 250 mx.example.org", "C: MAIL FROM:<verify@mxprobe.test>",
        "S: 530 5.7.0 Must issue a STARTTLS command first", "C: STARTTLS",
        "S: 502 5.5.1 Error: command not implemented", "C: QUIT", "S: 221 Bye"},
       {{0, "starttls tls_unavailable 502"}},
       false},
      {"530 after STARTTLS was refused once: the reply decides, no second STARTTLS",
       StartTlsMode::Auto,
       false,
       {"a@example.org"},
       {kBanner, kEhlo, "S: 250-mx.example.org|250 STARTTLS", "C: STARTTLS",
        "S: 454 4.7.0 TLS not available", "C: MAIL FROM:<verify@mxprobe.test>",
        "S: 530 5.7.0 Must issue a STARTTLS command first", "C: QUIT", "S: 221 Bye"},
       {{0, "mail_from none 530"}},
       false},
      {"530 inside TLS: the reply decides (no loop)",
       StartTlsMode::Auto,
       false,
       {"a@example.org"},
       {kBanner, kEhlo, "S: 250-mx.example.org|250 STARTTLS", "C: STARTTLS", "S: 220 Ready",
        "TLS ok", kEhlo, "S: 250 mx.example.org", "C: MAIL FROM:<verify@mxprobe.test>",
        "S: 530 5.7.0 Must issue a STARTTLS command first", "C: QUIT", "S: 221 Bye"},
       {{0, "mail_from none 530"}},
       true},
      {"\"starttls\" in a rejected address is no TLS demand",
       StartTlsMode::Auto,
       false,
       {"a@starttls.example.org"},
       {kBanner, kEhlo, "S: 250 mx.example.org", "C: MAIL FROM:<verify@mxprobe.test>", "S: 250 Ok",
        "C: RCPT TO:<a@starttls.example.org>",
        "S: 550 5.1.1 <a@starttls.example.org>: Recipient address rejected: User unknown",
        "C: QUIT", "S: 221 Bye"},
       {{0, "rcpt_to none 550"}},
       false},
      {"capabilities are forgotten: PIPELINING before TLS only",
       StartTlsMode::Auto,
       true,
       {"a@example.org"},
       {kBanner, kEhlo, "S: 250-mx.example.org|250-PIPELINING|250 STARTTLS", "C: STARTTLS",
        "S: 220 Ready", "TLS ok", kEhlo, "S: 250 mx.example.org",
        "C: MAIL FROM:<verify@mxprobe.test>", "S: 250 Ok", "C: RCPT TO:<a@example.org>",
        "S: 250 Ok", "C: QUIT", "S: 221 Bye"},
       {{0, "rcpt_to none 250"}},
       true},
      {"handshake timeout",
       StartTlsMode::Auto,
       true,
       {"a@example.org"},
       {kBanner, kEhlo, "S: 250-mx.example.org|250 STARTTLS", "C: STARTTLS", "S: 220 Ready",
        "expire", "C:"},
       {{0, "starttls timeout 0"}},
       false},
      {"closed during the handshake",
       StartTlsMode::Auto,
       true,
       {"a@example.org"},
       {kBanner, kEhlo, "S: 250-mx.example.org|250 STARTTLS", "C: STARTTLS", "S: 220 Ready",
        "closed"},
       {{0, "starttls closed 0"}},
       false},
  };
  return k;
}

TEST(SessionTls, Transcripts) {
  for (const auto& c : cases())
    play(c);
}

TEST(SessionTls, InjectedBytesAreCountedAndClearTextDuringTheHandshakeIsIgnored) {
  auto cfg = testing::default_config();
  cfg.starttls = StartTlsMode::Auto;
  Harness h(cfg);
  h.add("a@example.org", 1);
  h.connect();
  h.server("220 mx ESMTP\r\n");
  h.server("250-mx\r\n250 STARTTLS\r\n");
  EXPECT_EQ(h.take_writes(), "EHLO probe.mxprobe.test\r\n|STARTTLS\r\n");
  const std::string injected = "250 2.1.0 Ok\r\n";
  h.server("220 Ready\r\n" + injected);
  EXPECT_EQ(h.s.stats().tls_discarded_bytes, injected.size());
  EXPECT_TRUE(h.s.want_tls());
  EXPECT_EQ(h.s.stage(), Stage::StartTls);
  ASSERT_TRUE(h.s.next_deadline());
  EXPECT_EQ(*h.s.next_deadline(), h.now + kDefaultStageTimeouts[static_cast<int>(Stage::StartTls)]);
  // An owner that (wrongly) hands clear text to the session now: never parsed.
  h.server("250 fake\r\n");
  EXPECT_EQ(h.s.stats().tls_discarded_bytes, injected.size() + 10);
  EXPECT_EQ(h.take_writes(), "");
  EXPECT_TRUE(h.results.empty());
  EXPECT_FALSE(h.s.idle());
  h.s.on_tls_established(h.now);
  h.flush();
  EXPECT_EQ(h.take_writes(), "EHLO probe.mxprobe.test\r\n");
  EXPECT_TRUE(h.s.capabilities().none());
  // Late or repeated reports change nothing.
  h.s.on_tls_established(h.now);
  h.s.on_tls_failed(h.now);
  h.flush();
  EXPECT_EQ(h.take_writes(), "");
  EXPECT_TRUE(h.results.empty());
  h.server("250 mx\r\n");
  EXPECT_EQ(h.take_writes(), "MAIL FROM:<verify@mxprobe.test>\r\n");
}

TEST(SessionTls, ModeNames) {
  for (auto m : {StartTlsMode::Never, StartTlsMode::Auto, StartTlsMode::Require})
    EXPECT_EQ(parse_starttls_mode(to_string(m)), m);
  EXPECT_FALSE(parse_starttls_mode("yes"));
  EXPECT_FALSE(parse_starttls_mode("AUTO"));
}

}  // namespace
}  // namespace mxp::smtp
