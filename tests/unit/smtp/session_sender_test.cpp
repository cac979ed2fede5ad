// Tests of the session's sender fallback and of the catch-all probe's own transaction: a server
// that refuses our MAIL FROM (at MAIL, or at RCPT as Postfix reports it with smtpd_delay_reject)
// is asked again with the next sender in a new transaction, and a refusal of the sender never
// decides a recipient while another sender is left; a recipient added `alone` never shares
// MAIL FROM..RCPT with another. The verdict policy's own predicate (verdict::refuses_sender)
// decides what a sender refusal is, as in the Verifier.
#include <gtest/gtest.h>

#include "session_harness.hpp"
#include "smtp/session.hpp"
#include "verdict/classify.hpp"

namespace mxp::smtp {
namespace {

using testing::Harness;

constexpr std::string_view kBanner = "220 mx.example.org ESMTP\r\n";
constexpr std::string_view kEhloPipe =
    "250-mx.example.org\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n250 8BITMIME\r\n";
constexpr std::string_view kEhloPlain = "250-mx.example.org\r\n250 8BITMIME\r\n";
constexpr std::string_view kNullMail = "MAIL FROM:<>\r\n";
constexpr std::string_view kRealMail = "MAIL FROM:<verify@mxprobe.test>\r\n";

std::string rcpt(std::string_view a) {
  return "RCPT TO:<" + std::string(a) + ">\r\n";
}

// The null sender first, then verify@mxprobe.test, with the verdict policy's predicate.
SessionConfig two_senders() {
  SessionConfig c = testing::default_config();
  c.mail_from = "";
  c.fallback_senders = {"verify@mxprobe.test"};
  c.sender_refused = &verdict::refuses_sender;
  return c;
}

void greet(Harness& h, std::string_view ehlo = kEhloPipe) {
  h.connect();
  h.server(kBanner);
  EXPECT_EQ(h.take_writes(), "EHLO probe.mxprobe.test\r\n");
  h.server(ehlo);
}

TEST(SessionSender, NullSenderRefusedAtMailIsAskedAgainWithTheNextSender) {
  Harness h(two_senders());
  h.add("a@example.org", 1);
  h.add("b@example.org", 2);
  h.finish();
  greet(h);
  EXPECT_EQ(h.take_writes(),
            std::string(kNullMail) + rcpt("a@example.org") + rcpt("b@example.org"));
  // The pipelined RCPTs are answered 503: they decide nothing, and no transaction is open.
  h.server(
      "550 5.7.1 <>: null sender not accepted\r\n503 5.5.1 Error: need MAIL command\r\n"
      "503 5.5.1 Error: need MAIL command\r\n");
  EXPECT_TRUE(h.results.empty());
  EXPECT_EQ(h.take_writes(),
            std::string(kRealMail) + rcpt("a@example.org") + rcpt("b@example.org"));
  EXPECT_EQ(h.s.sender_index(), 1u);
  h.server("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 <b@example.org>: User unknown\r\n");
  EXPECT_EQ(h.outcome(1).reply.code, 250);
  EXPECT_EQ(h.outcome(1).sender, 1);
  EXPECT_EQ(h.outcome(2).reply.code, 550);
  EXPECT_EQ(h.outcome(2).sender, 1);
  EXPECT_EQ(h.take_writes(), "QUIT\r\n");
  EXPECT_EQ(h.s.stats().sender_retries, 1u);
  EXPECT_EQ(h.s.stats().transactions, 2u);
}

TEST(SessionSender, WithoutPipeliningTheNextSenderFollowsTheRefusal) {
  Harness h(two_senders());
  h.add("a@example.org", 1);
  greet(h, kEhloPlain);
  EXPECT_EQ(h.take_writes(), kNullMail);
  // Ipswitch IMail with "Refuse NULL <> Senders".
  h.server("501 bogus mail from\r\n");
  EXPECT_EQ(h.take_writes(), kRealMail);
  h.server("250 ok\r\n");
  EXPECT_EQ(h.take_writes(), rcpt("a@example.org"));
  h.server("250 ok\r\n");
  EXPECT_EQ(h.outcome(1).reply.code, 250);
  EXPECT_EQ(h.outcome(1).sender, 1);
}

TEST(SessionSender, SenderRefusedAtRcptEndsTheTransactionAndAsksAgain) {
  // Postfix with smtpd_delay_reject = yes (its default): MAIL is accepted, and the sender
  // restriction answers each RCPT.
  Harness h(two_senders());
  h.add("a@example.org", 1);
  h.add("b@example.org", 2);
  h.add("c@example.org", 3);
  h.finish();
  greet(h);
  h.take_writes();
  h.server(
      "250 2.1.0 Ok\r\n554 5.7.1 <>: Sender address rejected: Access denied\r\n"
      "554 5.7.1 <>: Sender address rejected: Access denied\r\n"
      "554 5.7.1 <>: Sender address rejected: Access denied\r\n");
  EXPECT_TRUE(h.results.empty());
  EXPECT_EQ(h.take_writes(), "RSET\r\n" + std::string(kRealMail) + rcpt("a@example.org") +
                                 rcpt("b@example.org") + rcpt("c@example.org"));
  h.server(
      "250 2.0.0 Ok\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 User unknown\r\n"
      "250 2.1.5 Ok\r\n");
  for (uint64_t id : {1, 2, 3}) {
    EXPECT_EQ(h.outcome(id).stage, Stage::RcptTo);
    EXPECT_EQ(h.outcome(id).sender, 1);
  }
  EXPECT_EQ(h.outcome(2).reply.code, 550);
  EXPECT_EQ(h.take_writes(), "QUIT\r\n");
}

TEST(SessionSender, OnlyTheRecipientsWhoseReplyRefusedTheSenderGoAgain) {
  Harness h(two_senders());
  h.add("a@example.org", 1);
  h.add("b@example.org", 2);
  greet(h);
  h.take_writes();
  h.server("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n553 5.1.8 <>: Sender address rejected\r\n");
  EXPECT_EQ(h.outcome(1).reply.code, 250);
  EXPECT_EQ(h.outcome(1).sender, 0);
  EXPECT_EQ(h.results.count(2), 0u);
  EXPECT_EQ(h.take_writes(), "RSET\r\n" + std::string(kRealMail) + rcpt("b@example.org"));
}

TEST(SessionSender, EverySenderRefusedDecidesWithTheLastRefusal) {
  Harness h(two_senders());
  h.add("a@example.org", 1);
  h.add("b@example.org", 2, /*alone=*/true);  // queued behind: decided by the same refusal
  greet(h, kEhloPlain);
  EXPECT_EQ(h.take_writes(), kNullMail);
  h.server("550 5.7.1 <>: null sender not accepted\r\n");
  EXPECT_EQ(h.take_writes(), kRealMail);
  h.server("553 5.7.1 <verify@mxprobe.test>: Sender address rejected: Domain not found\r\n");
  EXPECT_EQ(h.outcome(1).stage, Stage::MailFrom);
  EXPECT_EQ(h.outcome(1).reply.code, 553);
  EXPECT_EQ(h.outcome(1).sender, 1);
  EXPECT_EQ(h.outcome(2).reply.code, 553);
  EXPECT_EQ(h.outcome(2).sender, 1);
  EXPECT_EQ(h.take_writes(), "QUIT\r\n");
  const auto c = verdict::classify(h.outcome(1), {"a@example.org", "verify@mxprobe.test", ""});
  EXPECT_EQ(c.verdict, Verdict::Unknown);
  EXPECT_EQ(c.reason, Reason::SenderRefused);
  EXPECT_TRUE(c.sender_refused);
  EXPECT_FALSE(c.source_blocked);
}

TEST(SessionSender, WithoutAFallbackTheRefusalDecides) {
  SessionConfig cfg = two_senders();
  cfg.fallback_senders.clear();
  Harness h(cfg);
  h.add("a@example.org", 1);
  greet(h, kEhloPlain);
  EXPECT_EQ(h.take_writes(), kNullMail);
  h.server("550 5.7.1 <>: null sender not accepted\r\n");
  EXPECT_EQ(h.outcome(1).reply.code, 550);
  EXPECT_EQ(h.outcome(1).sender, 0);
  EXPECT_EQ(h.take_writes(), "QUIT\r\n");
}

TEST(SessionSender, AMailboxRefusalIsNeverAskedAgain) {
  Harness h(two_senders());
  h.add("a@example.org", 1);
  h.add("b@example.org", 2);
  h.add("c@example.org", 3);
  greet(h);
  h.take_writes();
  h.server(
      "250 2.1.0 Ok\r\n550 5.1.1 <a@example.org>: Recipient address rejected: User unknown\r\n"
      "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org\r\n"
      "452 4.5.3 Recipients belong to multiple regions ATTR38\r\n");
  for (uint64_t id : {1, 2, 3})
    EXPECT_EQ(h.outcome(id).sender, 0);
  EXPECT_EQ(h.s.stats().sender_retries, 0u);
  EXPECT_EQ(h.s.sender_index(), 0u);
}

TEST(SessionSender, StartsWithTheSenderGiven) {
  Harness h(two_senders());
  h.s.set_sender(1);
  h.add("a@example.org", 1);
  greet(h);
  EXPECT_EQ(h.take_writes(), std::string(kRealMail) + rcpt("a@example.org"));
  h.s.set_sender(0);  // too late: the session has begun
  EXPECT_EQ(h.s.sender_index(), 1u);
}

TEST(SessionSender, UnsafeFallbackSenderRefusesEverything) {
  SessionConfig cfg = two_senders();
  cfg.fallback_senders = {"bad sender@example.org"};
  Harness h(cfg);
  EXPECT_EQ(h.add("a@example.org", 1), Session::AddResult::Refused);
  EXPECT_EQ(h.outcome(1).failure, Failure::LocalError);
  EXPECT_EQ(h.outcome(1).stage, Stage::MailFrom);
}

// What each MAIL FROM..RSET transaction of the output held, as "RCPT,RCPT" strings.
std::vector<std::string> transactions(std::string_view out) {
  std::vector<std::string> t;
  size_t pos = 0;
  while (pos < out.size()) {
    const size_t end = out.find("\r\n", pos);
    const std::string_view line = out.substr(pos, end - pos);
    pos = end + 2;
    if (line.rfind("MAIL FROM:", 0) == 0) t.emplace_back();
    if (line.rfind("RCPT TO:<", 0) == 0 && !t.empty())
      t.back() += (t.back().empty() ? "" : ",") + std::string(line.substr(9, line.size() - 10));
  }
  return t;
}

TEST(SessionAlone, TheProbeHasATransactionOfItsOwn) {
  Harness h;
  h.add("a@example.org", 1);
  h.add("probe@example.org", 2, /*alone=*/true);
  h.add("b@example.org", 3);
  h.add("c@example.org", 4);
  h.finish();
  greet(h);
  std::string w = h.take_writes();
  EXPECT_EQ(w, "MAIL FROM:<verify@mxprobe.test>\r\n" + rcpt("a@example.org"));
  h.server("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n");
  // RSET ends a's transaction before the probe, and the probe's before b and c.
  EXPECT_EQ(h.take_writes(),
            "RSET\r\nMAIL FROM:<verify@mxprobe.test>\r\n" + rcpt("probe@example.org"));
  h.server("250 2.0.0 Ok\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n");
  EXPECT_EQ(h.take_writes(), "RSET\r\nMAIL FROM:<verify@mxprobe.test>\r\n" + rcpt("b@example.org") +
                                 rcpt("c@example.org"));
  h.server("250 2.0.0 Ok\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n");
  EXPECT_EQ(h.take_writes(), "QUIT\r\n");
  EXPECT_EQ(transactions(h.all_output),
            (std::vector<std::string>{"a@example.org", "probe@example.org",
                                      "b@example.org,c@example.org"}));
  EXPECT_EQ(h.results.size(), 4u);
}

TEST(SessionAlone, ProbeFirstThenTheRestTogetherWithoutPipelining) {
  Harness h;
  h.add("probe@example.org", 1, /*alone=*/true);
  h.add("a@example.org", 2);
  h.add("b@example.org", 3);
  h.finish();
  greet(h, kEhloPlain);
  for (int i = 0; i < 12 && !h.s.done(); ++i)
    h.server("250 ok\r\n");
  EXPECT_EQ(transactions(h.all_output),
            (std::vector<std::string>{"probe@example.org", "a@example.org,b@example.org"}));
  EXPECT_NE(h.all_output.find("RCPT TO:<probe@example.org>\r\nRSET\r\n"), std::string::npos);
  EXPECT_EQ(h.results.size(), 3u);
}

TEST(SessionAlone, ASenderRetryKeepsTheProbeAlone) {
  Harness h(two_senders());
  h.add("probe@example.org", 1, /*alone=*/true);
  h.add("a@example.org", 2);
  h.finish();
  greet(h);
  EXPECT_EQ(h.take_writes(), std::string(kNullMail) + rcpt("probe@example.org"));
  h.server("250 2.1.0 Ok\r\n554 5.7.1 <>: Sender address rejected: Access denied\r\n");
  EXPECT_EQ(h.take_writes(), "RSET\r\n" + std::string(kRealMail) + rcpt("probe@example.org"));
  h.server("250 2.0.0 Ok\r\n250 2.1.0 Ok\r\n550 5.1.1 User unknown\r\n");
  EXPECT_EQ(h.take_writes(), "RSET\r\n" + std::string(kRealMail) + rcpt("a@example.org"));
  EXPECT_EQ(h.outcome(1).sender, 1);
}

}  // namespace
}  // namespace mxp::smtp
