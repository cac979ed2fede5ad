// Tests of the sans-I/O SMTP session: exact bytes written at each step, per-recipient outcomes on
// every stage's success and failure paths, deadlines per stage, and refusal of unsafe arguments.
#include "smtp/session.hpp"

#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include "session_harness.hpp"

namespace mxp::smtp {
namespace {

using testing::Harness;
using namespace std::chrono_literals;

constexpr std::string_view kBanner = "220 mx.example.org ESMTP Postfix (Debian/GNU)\r\n";
constexpr std::string_view kEhloPipe =
    "250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-ENHANCEDSTATUSCODES\r\n"
    "250-8BITMIME\r\n250 SMTPUTF8\r\n";
constexpr std::string_view kEhloPlain =
    "250-mx.example.org\r\n250-SIZE 10240000\r\n250 8BITMIME\r\n";
constexpr std::string_view kEhloCmd = "EHLO probe.mxprobe.test\r\n";
constexpr std::string_view kMail = "MAIL FROM:<verify@mxprobe.test>\r\n";

std::string rcpt(std::string_view a) {
  return "RCPT TO:<" + std::string(a) + ">\r\n";
}

void expect_reply(const Outcome& o, Stage stage, int code, std::string_view enhanced = "") {
  EXPECT_EQ(o.stage, stage);
  EXPECT_EQ(o.failure, Failure::None);
  EXPECT_EQ(o.reply.code, code);
  EXPECT_EQ(o.reply.enhanced.str(), enhanced);
}

void expect_failure(const Outcome& o, Stage stage, Failure f) {
  EXPECT_EQ(o.stage, stage);
  EXPECT_EQ(o.failure, f);
  EXPECT_EQ(o.reply.code, 0);
}

// Banner and EHLO exchange with the given EHLO reply; checks the EHLO line.
void greet(Harness& h, std::string_view ehlo_reply = kEhloPipe) {
  h.connect();
  EXPECT_EQ(h.take_writes(), "");  // the server speaks first (RFC 5321 §3.1)
  h.server(kBanner);
  EXPECT_EQ(h.take_writes(), kEhloCmd);
  h.server(ehlo_reply);
}

TEST(Session, PipeliningSendsMailAndEveryRcptInOneWrite) {
  Harness h;
  h.add("a@example.org", 1);
  h.add("b@example.org", 2);
  h.add("c@example.org", 3);
  h.finish();
  greet(h);
  EXPECT_TRUE(h.s.pipelining());
  ASSERT_EQ(h.writes.size(), 1u);
  EXPECT_EQ(h.take_writes(), std::string(kMail) + rcpt("a@example.org") + rcpt("b@example.org") +
                                 rcpt("c@example.org"));
  EXPECT_EQ(h.s.stage(), Stage::MailFrom);
  h.server("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n");
  EXPECT_EQ(h.results.size(), 1u);  // results come out as replies arrive
  EXPECT_EQ(h.take_writes(), "");
  h.server(
      "550 5.1.1 <b@example.org>: Recipient address rejected: User unknown\r\n"
      "452 4.5.3 Too many recipients\r\n");
  expect_reply(h.outcome(1), Stage::RcptTo, 250, "2.1.5");
  expect_reply(h.outcome(2), Stage::RcptTo, 550, "5.1.1");
  expect_reply(h.outcome(3), Stage::RcptTo, 452, "4.5.3");
  EXPECT_EQ(h.outcome(2).reply.text(), "<b@example.org>: Recipient address rejected: User unknown");
  EXPECT_EQ(h.order, (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_EQ(h.take_writes(), "QUIT\r\n");
  EXPECT_EQ(h.s.stage(), Stage::Quit);
  EXPECT_FALSE(h.s.want_close());
  h.server("221 2.0.0 Bye\r\n");
  EXPECT_TRUE(h.s.want_close());
  EXPECT_TRUE(h.s.done());
  EXPECT_FALSE(h.s.next_deadline());
  h.closed();  // the close after QUIT decides nothing
  EXPECT_EQ(h.results.size(), 3u);
  EXPECT_EQ(h.s.stats().transactions, 1u);
  EXPECT_EQ(h.s.stats().rcpts_sent, 3u);
  EXPECT_EQ(h.s.stats().commands_sent, 6u);
  EXPECT_EQ(h.s.stats().replies_received, 7u);
}

TEST(Session, CapabilitiesSeenInEhlo) {
  Harness h;
  greet(h,
        "250-mx\r\n250-pipelining\r\n250-SIZE 52428800\r\n250-STARTTLS\r\n250-Smtputf8\r\n"
        "250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-AUTH PLAIN LOGIN\r\n250 CHUNKING\r\n");
  const auto& c = h.s.capabilities();
  EXPECT_EQ(c.count(), 6u);
  for (int i = 0; i < kCapabilityCount; ++i)
    EXPECT_TRUE(c.test(i)) << kCapabilityNames[i];

  Harness g;
  greet(g, kEhloPlain);
  EXPECT_TRUE(has(g.s.capabilities(), Capability::Size));
  EXPECT_TRUE(has(g.s.capabilities(), Capability::EightBitMime));
  EXPECT_FALSE(has(g.s.capabilities(), Capability::Pipelining));
  EXPECT_EQ(g.s.capabilities().count(), 2u);
  // The greeting line is not a keyword.
  Harness k;
  greet(k, "250 PIPELINING\r\n");
  EXPECT_EQ(k.s.capabilities().count(), 0u);
}

TEST(Session, WithoutPipeliningOneCommandPerReply) {
  for (bool offered : {false, true}) {
    SCOPED_TRACE(offered ? "offered but disabled" : "not offered");
    auto cfg = testing::default_config();
    cfg.use_pipelining = !offered;  // offered && disabled, or not offered && enabled
    Harness h(cfg);
    h.add("a@example.org", 1);
    h.add("b@example.org", 2);
    h.finish();
    greet(h, offered ? kEhloPipe : kEhloPlain);
    EXPECT_FALSE(h.s.pipelining());
    EXPECT_EQ(h.take_writes(), kMail);
    h.server("250 2.1.0 Ok\r\n");
    EXPECT_EQ(h.take_writes(), rcpt("a@example.org"));
    h.server("250 2.1.5 Ok\r\n");
    EXPECT_EQ(h.take_writes(), rcpt("b@example.org"));
    h.server("550 5.1.1 unknown\r\n");
    EXPECT_EQ(h.take_writes(), "QUIT\r\n");
    h.server("221 Bye\r\n");
    expect_reply(h.outcome(1), Stage::RcptTo, 250, "2.1.5");
    expect_reply(h.outcome(2), Stage::RcptTo, 550, "5.1.1");
    EXPECT_TRUE(h.s.done());
  }
}

TEST(Session, ExtraReplyWithoutPipeliningIsAProtocolError) {
  Harness h;
  h.add("a@example.org", 1);
  greet(h, kEhloPlain);
  EXPECT_EQ(h.take_writes(), kMail);
  h.server("250 Ok\r\n250 Ok\r\n");  // two replies to one command
  expect_failure(h.outcome(1), Stage::MailFrom, Failure::ProtocolError);
  EXPECT_FALSE(h.s.protocol_error().empty());
  EXPECT_TRUE(h.s.want_close());
  EXPECT_EQ(h.take_writes(), "");
}

TEST(Session, ReplyBeforeOurCommandIsAProtocolError) {
  // A reply cannot answer a command not yet sent: EHLO goes out only after the whole read.
  Harness h;
  h.add("a@example.org", 1);
  h.connect();
  h.server("220 mx ESMTP\r\n250 mx\r\n");
  expect_failure(h.outcome(1), Stage::Banner, Failure::ProtocolError);
  EXPECT_EQ(h.all_output, "");
}

TEST(Session, ConnectFailure) {
  Harness h;
  h.add("a@example.org", 1);
  h.add("b@example.org", 2);
  h.s.start(h.now);
  h.closed();
  expect_failure(h.outcome(1), Stage::Connect, Failure::ConnectFailed);
  expect_failure(h.outcome(2), Stage::Connect, Failure::ConnectFailed);
  EXPECT_TRUE(h.s.done());
  EXPECT_EQ(h.all_output, "");
}

TEST(Session, ConnectTimeout) {
  Harness h;
  h.add("a@example.org", 1);
  h.s.start(h.now);
  ASSERT_TRUE(h.s.next_deadline());
  EXPECT_EQ(*h.s.next_deadline(), h.now + 30s);
  h.s.on_timeout(h.now + 29s);  // early: ignored
  h.flush();
  EXPECT_TRUE(h.results.empty());
  h.expire();
  expect_failure(h.outcome(1), Stage::Connect, Failure::Timeout);
  EXPECT_TRUE(h.s.done());
}

TEST(Session, BannerTimeout) {
  Harness h;
  h.add("a@example.org", 1);
  h.connect();
  EXPECT_EQ(h.s.stage(), Stage::Banner);
  EXPECT_EQ(*h.s.next_deadline(), h.now + 60s);
  h.server("220-slow");  // a partial line does not extend the deadline
  EXPECT_EQ(*h.s.next_deadline(), h.now + 60s);
  h.now += 10s;
  h.server(" banner");
  h.expire();
  expect_failure(h.outcome(1), Stage::Banner, Failure::Timeout);
  EXPECT_TRUE(h.s.want_close());
  EXPECT_TRUE(h.s.done());
  EXPECT_EQ(h.all_output, "");
}

TEST(Session, Banner421ClosesWithoutQuit) {
  Harness h;
  h.add("a@example.org", 1);
  h.add("b@example.org", 2);
  h.connect();
  h.server("421 4.7.0 mx.example.org Error: too many connections from 198.51.100.7\r\n");
  expect_reply(h.outcome(1), Stage::Banner, 421, "4.7.0");
  expect_reply(h.outcome(2), Stage::Banner, 421, "4.7.0");
  EXPECT_TRUE(h.s.want_close());
  EXPECT_TRUE(h.s.done());
  EXPECT_EQ(h.all_output, "");
  EXPECT_EQ(h.add("c@example.org", 3), Session::AddResult::Closed);
}

TEST(Session, Banner554IsARejectionFollowedByQuit) {
  Harness h;
  h.add("a@example.org", 1);
  h.connect();
  h.server(
      "554 5.7.1 Service unavailable; Client host [198.51.100.7] blocked using "
      "zen.spamhaus.org\r\n");
  expect_reply(h.outcome(1), Stage::Banner, 554, "5.7.1");
  // RFC 5321 §3.1: after a 554 greeting the server waits for QUIT.
  EXPECT_EQ(h.take_writes(), "QUIT\r\n");
  EXPECT_EQ(h.s.stage(), Stage::Quit);
  EXPECT_FALSE(h.s.accepting());
  h.server("221 Bye\r\n");
  EXPECT_TRUE(h.s.done());
}

TEST(Session, EhloRefusedThenHeloAccepted) {
  Harness h;
  h.add("a@example.org", 1);
  h.add("b@example.org", 2);
  h.finish();
  h.connect();
  h.server(kBanner);
  EXPECT_EQ(h.take_writes(), kEhloCmd);
  h.server("502 5.5.2 Error: command not recognized\r\n");
  EXPECT_EQ(h.take_writes(), "HELO probe.mxprobe.test\r\n");
  EXPECT_EQ(h.s.stage(), Stage::Helo);
  h.server("250 mx.example.org\r\n");
  EXPECT_FALSE(h.s.pipelining());  // no extensions after HELO
  EXPECT_EQ(h.s.capabilities().count(), 0u);
  EXPECT_EQ(h.take_writes(), kMail);
  h.server("250 ok\r\n");
  EXPECT_EQ(h.take_writes(), rcpt("a@example.org"));
  h.server("250 ok\r\n");
  EXPECT_EQ(h.take_writes(), rcpt("b@example.org"));
  h.server("550 no such user\r\n");
  expect_reply(h.outcome(1), Stage::RcptTo, 250);
  expect_reply(h.outcome(2), Stage::RcptTo, 550);
  EXPECT_EQ(h.take_writes(), "QUIT\r\n");
}

TEST(Session, HeloRefused) {
  Harness h;
  h.add("a@example.org", 1);
  h.connect();
  h.server(kBanner);
  h.server("500 5.5.1 unrecognized command\r\n");
  h.take_writes();
  h.server("550 5.7.1 go away\r\n");
  expect_reply(h.outcome(1), Stage::Helo, 550, "5.7.1");
  EXPECT_EQ(h.take_writes(), "QUIT\r\n");
}

TEST(Session, EhloTemporaryFailureDecidesEveryone) {
  Harness h;
  h.add("a@example.org", 1);
  h.connect();
  h.server(kBanner);
  h.server("451 4.3.2 System not accepting network messages\r\n");
  expect_reply(h.outcome(1), Stage::Ehlo, 451, "4.3.2");
  EXPECT_EQ(h.take_writes(), std::string(kEhloCmd) + "|QUIT\r\n");
}

TEST(Session, MailRefusedPipelinedDecidesEveryPendingRecipient) {
  auto cfg = testing::default_config();
  cfg.max_rcpts_per_transaction = 2;
  Harness h(cfg);
  h.add("a@example.org", 1);
  h.add("b@example.org", 2);
  h.add("c@example.org", 3);  // waits for the second batch
  greet(h);
  EXPECT_EQ(h.take_writes(), std::string(kMail) + rcpt("a@example.org") + rcpt("b@example.org"));
  h.server("550 5.7.1 Sender address rejected\r\n");
  for (uint64_t id : {1, 2, 3})
    expect_reply(h.outcome(id), Stage::MailFrom, 550, "5.7.1");
  EXPECT_EQ(h.take_writes(), "");  // the two RCPT replies are still due
  h.server("503 5.5.1 Error: need MAIL command\r\n503 5.5.1 Error: need MAIL command\r\n");
  for (uint64_t id : {1, 2})
    expect_reply(h.outcome(id), Stage::MailFrom, 550, "5.7.1");  // unchanged
  EXPECT_EQ(h.take_writes(), "QUIT\r\n");
  EXPECT_EQ(h.s.undecided(), 0u);
}

TEST(Session, MailRefusedWithoutPipelining) {
  Harness h;
  h.add("a@example.org", 1);
  h.add("b@example.org", 2);
  greet(h, kEhloPlain);
  EXPECT_EQ(h.take_writes(), kMail);
  h.server("553 5.1.8 Domain of sender address does not exist\r\n");
  expect_reply(h.outcome(1), Stage::MailFrom, 553, "5.1.8");
  expect_reply(h.outcome(2), Stage::MailFrom, 553, "5.1.8");
  EXPECT_EQ(h.take_writes(), "QUIT\r\n");
}

TEST(Session, Mail421) {
  Harness h;
  h.add("a@example.org", 1);
  h.add("b@example.org", 2);
  greet(h);
  h.take_writes();
  h.server("421 4.7.0 Try again later, closing connection\r\n");
  expect_reply(h.outcome(1), Stage::MailFrom, 421, "4.7.0");
  expect_reply(h.outcome(2), Stage::MailFrom, 421, "4.7.0");
  EXPECT_TRUE(h.s.want_close());
  EXPECT_TRUE(h.s.done());
  EXPECT_EQ(h.take_writes(), "");
}

// MAIL accepted, then RCPT a answered, then the given event for the rest.
class MidRcpt : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cfg = testing::default_config();
    cfg.max_rcpts_per_transaction = 3;
    cfg.timeouts[static_cast<int>(Stage::RcptTo)] = 7s;
    h = std::make_unique<Harness>(cfg);
    for (uint64_t i = 1; i <= 4; ++i)
      h->add("r" + std::to_string(i) + "@example.org", i);
    greet(*h);
    h->take_writes();
    h->now += 1s;
    h->server("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n");
    expect_reply(h->outcome(1), Stage::RcptTo, 250, "2.1.5");
    EXPECT_EQ(*h->s.next_deadline(), h->now + 7s);  // re-armed by each reply
  }
  std::unique_ptr<Harness> h;
};

TEST_F(MidRcpt, Timeout) {
  h->expire();
  for (uint64_t id : {2, 3, 4})
    expect_failure(h->outcome(id), Stage::RcptTo, Failure::Timeout);
  expect_reply(h->outcome(1), Stage::RcptTo, 250, "2.1.5");
  EXPECT_TRUE(h->s.done());
  EXPECT_EQ(h->take_writes(), "");
}

TEST_F(MidRcpt, CloseMidPipeline) {
  h->server("550 5.1.1 unknown\r\n");  // r2 decided, r3 reply never comes
  h->closed();
  expect_reply(h->outcome(2), Stage::RcptTo, 550, "5.1.1");
  expect_failure(h->outcome(3), Stage::RcptTo, Failure::Closed);
  expect_failure(h->outcome(4), Stage::RcptTo, Failure::Closed);  // the next batch's
  EXPECT_TRUE(h->s.done());
}

TEST_F(MidRcpt, Reply421) {
  h->server("421 4.4.2 mx.example.org Error: timeout exceeded\r\n");
  for (uint64_t id : {2, 3, 4})
    expect_reply(h->outcome(id), Stage::RcptTo, 421, "4.4.2");
  EXPECT_TRUE(h->s.want_close());
  EXPECT_EQ(h->take_writes(), "");
}

TEST_F(MidRcpt, GarbageReply) {
  h->server("HTTP/1.1 400 Bad Request\r\n");
  for (uint64_t id : {2, 3, 4})
    expect_failure(h->outcome(id), Stage::RcptTo, Failure::ProtocolError);
  EXPECT_NE(h->s.protocol_error().find("garbage"), std::string_view::npos);
  EXPECT_TRUE(h->s.want_close());
  EXPECT_TRUE(h->s.done());
  h->server("250 ok\r\n");  // nothing is read after a protocol error
  EXPECT_EQ(h->results.size(), 4u);
}

TEST_F(MidRcpt, OverlongLine) {
  h->server("250 " + std::string(5000, 'x'));
  for (uint64_t id : {2, 3, 4})
    expect_failure(h->outcome(id), Stage::RcptTo, Failure::ProtocolError);
}

TEST_F(MidRcpt, LineFlood) {
  std::string flood;
  for (int i = 0; i < 200; ++i)
    flood += "250-more\r\n";
  h->server(flood);
  for (uint64_t id : {2, 3, 4})
    expect_failure(h->outcome(id), Stage::RcptTo, Failure::ProtocolError);
}

TEST_F(MidRcpt, RsetThenNextBatchThenQuit) {
  h->server("250 ok\r\n");
  EXPECT_EQ(h->take_writes(), "");
  h->server("550 no\r\n");  // last reply of the batch: the queued r4 goes next, after RSET
  EXPECT_EQ(h->take_writes(), "RSET\r\n" + std::string(kMail) + rcpt("r4@example.org"));
  EXPECT_EQ(h->s.stage(), Stage::Rset);
  h->server("250 2.0.0 Ok\r\n250 2.1.0 Ok\r\n");
  h->finish();
  EXPECT_EQ(h->take_writes(), "");  // r4's reply is still due
  h->server("250 2.1.5 Ok\r\n");
  expect_reply(h->outcome(4), Stage::RcptTo, 250, "2.1.5");
  EXPECT_EQ(h->take_writes(), "QUIT\r\n");
  EXPECT_EQ(h->s.stats().transactions, 2u);
}

TEST(Session, RsetBetweenBatchesWithoutPipelining) {
  auto cfg = testing::default_config();
  cfg.max_rcpts_per_transaction = 1;
  Harness h(cfg);
  h.add("a@example.org", 1);
  h.add("b@example.org", 2);
  h.finish();
  greet(h, kEhloPlain);
  EXPECT_EQ(h.take_writes(), kMail);
  h.server("250 ok\r\n");
  EXPECT_EQ(h.take_writes(), rcpt("a@example.org"));
  h.server("250 ok\r\n");
  EXPECT_EQ(h.take_writes(), "RSET\r\n");
  h.server("250 ok\r\n");
  EXPECT_EQ(h.take_writes(), kMail);
  h.server("250 ok\r\n");
  EXPECT_EQ(h.take_writes(), rcpt("b@example.org"));
  h.server("550 no\r\n");
  EXPECT_EQ(h.take_writes(), "QUIT\r\n");
  expect_reply(h.outcome(1), Stage::RcptTo, 250);
  expect_reply(h.outcome(2), Stage::RcptTo, 550);
}

TEST(Session, ManyRecipientsInBatches) {
  auto cfg = testing::default_config();
  cfg.max_rcpts_per_transaction = 4;
  Harness h(cfg);
  for (uint64_t i = 0; i < 10; ++i)
    h.add("u" + std::to_string(i) + "@example.org", i);
  h.finish();
  greet(h);
  for (int batch = 0; batch < 3; ++batch) {
    const std::string w = h.take_writes();
    const size_t n = batch < 2 ? 4 : 2;
    EXPECT_EQ(w.rfind(batch == 0 ? "MAIL" : "RSET\r\nMAIL", 0), 0u) << w;
    std::string replies = batch == 0 ? "" : "250 ok\r\n";
    replies += "250 ok\r\n";
    for (size_t i = 0; i < n; ++i)
      replies += (i % 2 ? "550 no\r\n" : "250 ok\r\n");
    h.server(replies);
  }
  EXPECT_EQ(h.take_writes(), "QUIT\r\n");
  ASSERT_EQ(h.results.size(), 10u);
  for (uint64_t i = 0; i < 10; ++i)
    expect_reply(h.outcome(i), Stage::RcptTo, (i % 4) % 2 ? 550 : 250);
  EXPECT_EQ(h.s.stats().transactions, 3u);
}

TEST(Session, RsetRefusedDecidesTheQueuedRecipients) {
  auto cfg = testing::default_config();
  cfg.max_rcpts_per_transaction = 1;
  Harness h(cfg);
  h.add("a@example.org", 1);
  h.add("b@example.org", 2);
  greet(h);
  h.take_writes();
  h.server("250 ok\r\n250 ok\r\n");
  EXPECT_EQ(h.take_writes(), "RSET\r\n" + std::string(kMail) + rcpt("b@example.org"));
  h.server("503 5.5.1 what\r\n250 ok\r\n250 ok\r\n");
  expect_reply(h.outcome(1), Stage::RcptTo, 250);
  expect_reply(h.outcome(2), Stage::Rset, 503, "5.5.1");  // the later 250s change nothing
  EXPECT_EQ(h.take_writes(), "QUIT\r\n");
}

TEST(Session, PoolReuseAddsRecipientsToAnOpenConnection) {
  Harness h;
  h.add("a@example.org", 1);
  greet(h);
  h.take_writes();
  h.server("250 ok\r\n250 ok\r\n");
  EXPECT_TRUE(h.s.idle());
  EXPECT_TRUE(h.s.accepting());
  EXPECT_FALSE(h.s.next_deadline());  // idle: the owner decides how long to keep it
  EXPECT_EQ(h.take_writes(), "");
  EXPECT_EQ(h.add("b@example.org", 2), Session::AddResult::Queued);
  EXPECT_EQ(h.take_writes(), "RSET\r\n" + std::string(kMail) + rcpt("b@example.org"));
  EXPECT_EQ(*h.s.next_deadline(), h.now + 30s);  // the RSET timeout first
  h.server("250 ok\r\n250 ok\r\n550 no\r\n");
  expect_reply(h.outcome(2), Stage::RcptTo, 550);
  EXPECT_TRUE(h.s.idle());
  h.finish();
  EXPECT_EQ(h.take_writes(), "QUIT\r\n");
  EXPECT_EQ(h.add("c@example.org", 3), Session::AddResult::Closed);
  EXPECT_EQ(h.results.count(3), 0u);
}

TEST(Session, FinishWithNothingQueuedQuitsAfterGreeting) {
  Harness h;
  h.finish();
  greet(h);
  EXPECT_EQ(h.take_writes(), "QUIT\r\n");
  h.server("221 bye\r\n");
  EXPECT_TRUE(h.s.done());
}

TEST(Session, UnsolicitedReplyWhenIdle) {
  Harness h;
  greet(h);
  EXPECT_TRUE(h.s.idle());
  h.server("421 4.4.2 idle timeout\r\n");  // RFC 5321 §3.8: allowed at any time
  EXPECT_TRUE(h.s.want_close());
  EXPECT_TRUE(h.s.protocol_error().empty());
  Harness g;
  greet(g);
  g.server("250 what\r\n");
  EXPECT_TRUE(g.s.want_close());
  EXPECT_FALSE(g.s.protocol_error().empty());
}

TEST(Session, QuitTimeoutOrCloseDecidesNothing) {
  Harness h;
  h.add("a@example.org", 1);
  h.finish();
  greet(h);
  h.server("250 ok\r\n250 ok\r\n");
  EXPECT_EQ(h.take_writes(), std::string(kMail) + rcpt("a@example.org") + "|QUIT\r\n");
  EXPECT_EQ(*h.s.next_deadline(), h.now + 10s);
  h.expire();
  EXPECT_EQ(h.results.size(), 1u);
  EXPECT_TRUE(h.s.done());
}

TEST(Session, DeadlinePerStage) {
  auto cfg = testing::default_config();
  for (int i = 0; i < kStageCount; ++i)
    cfg.timeouts[i] = std::chrono::seconds(i + 1);
  Harness h(cfg);
  h.add("a@example.org", 1);
  h.add("b@example.org", 2);
  h.s.start(h.now);
  EXPECT_EQ(*h.s.next_deadline(), h.now + 1s);
  h.now += 100ms;
  h.s.on_connected(h.now);
  EXPECT_EQ(*h.s.next_deadline(), h.now + 2s);
  h.now += 100ms;
  h.server(kBanner);
  EXPECT_EQ(*h.s.next_deadline(), h.now + 3s);
  h.now += 100ms;
  h.server("502 no\r\n");
  EXPECT_EQ(*h.s.next_deadline(), h.now + 4s);
  h.now += 100ms;
  h.server("250 hi\r\n");
  EXPECT_EQ(*h.s.next_deadline(), h.now + 5s);
  h.now += 100ms;
  h.server("250 ok\r\n");
  EXPECT_EQ(*h.s.next_deadline(), h.now + 6s);
  h.finish();
  h.now += 100ms;
  h.server("250 ok\r\n");
  EXPECT_EQ(*h.s.next_deadline(), h.now + 6s);
  h.now += 100ms;
  h.server("250 ok\r\n");
  EXPECT_EQ(*h.s.next_deadline(), h.now + 8s);  // QUIT
}

TEST(Session, ByteByByteServerGivesTheSameDialogue) {
  auto run = [](bool bytewise) {
    Harness h;
    h.add("a@example.org", 1);
    h.add("b@example.org", 2);
    h.finish();
    h.connect();
    auto feed = [&](std::string_view b) { bytewise ? h.server_bytewise(b) : h.server(b); };
    feed(kBanner);
    feed(kEhloPipe);
    feed("250-2.1.0 Sender\n250 2.1.0 ok\n250 2.1.5 Ok\r\n550-5.1.1 no\r\n550 5.1.1 such user\r\n");
    feed("221 bye\r\n");
    EXPECT_TRUE(h.s.done());
    std::string summary = h.all_output;
    for (auto& [id, o] : h.results)
      summary += std::to_string(id) + ":" + std::to_string(o.reply.code) + o.reply.text() + ";";
    return summary;
  };
  EXPECT_EQ(run(false), run(true));
}

TEST(Session, UnsafeRecipientIsRefusedAndNeverSent) {
  Harness h;
  const std::string bad[] = {"a@example.org\r\nDATA", "a@example.org\nRSET",
                             "a\r@example.org",       std::string("a\0b@example.org", 15),
                             "a b@example.org",       "a<b@example.org",
                             "a>b@example.org",       "a\tb@example.org",
                             "a\x7f@example.org",     "",
                             std::string(300, 'a')};
  uint64_t id = 100;
  for (const auto& b : bad) {
    EXPECT_EQ(h.add(b, id), Session::AddResult::Refused) << b;
    expect_failure(h.outcome(id), Stage::RcptTo, Failure::LocalError);
    ++id;
  }
  h.add("ok@example.org", 1);
  h.finish();
  greet(h);
  EXPECT_EQ(h.take_writes(), std::string(kMail) + rcpt("ok@example.org"));
  EXPECT_EQ(h.s.stats().rcpts_sent, 1u);
}

// `"john doe"@example.org` is valid (the address parser accepts it): it goes on the wire as
// one path; a space outside the quotes (or a quote left open) is still refused.
TEST(Session, QuotedLocalPartWithASpaceIsSent) {
  Harness h;
  EXPECT_EQ(h.add("\"a\\\" b\"@example.org\r\nDATA", 7), Session::AddResult::Refused);
  EXPECT_EQ(h.add("\"a b\"@exa mple.org", 8), Session::AddResult::Refused);
  EXPECT_EQ(h.add("\"a b@example.org", 9), Session::AddResult::Refused);
  EXPECT_NE(h.add("\"john doe\"@example.org", 1), Session::AddResult::Refused);
  h.finish();
  greet(h);
  EXPECT_EQ(h.take_writes(), std::string(kMail) + rcpt("\"john doe\"@example.org"));
}

TEST(Session, UnsafeHeloOrSenderRefusesEverythingAndSendsNothing) {
  for (int which = 0; which < 4; ++which) {
    auto cfg = testing::default_config();
    if (which == 0) cfg.helo_name = "probe.test\r\nMAIL FROM:<x@y>";
    if (which == 1) cfg.helo_name = "";
    if (which == 2) cfg.mail_from = "v@x.test>\r\nRCPT TO:<y@z";
    if (which == 3) cfg.mail_from = "a b@x.test";
    const Stage stage = which < 2 ? Stage::Ehlo : Stage::MailFrom;
    Harness h(cfg);
    EXPECT_EQ(h.add("a@example.org", 1), Session::AddResult::Refused);
    expect_failure(h.outcome(1), stage, Failure::LocalError);
    h.connect();
    h.server(kBanner);
    EXPECT_EQ(h.add("b@example.org", 2), Session::AddResult::Refused);
    expect_failure(h.outcome(2), stage, Failure::LocalError);
    EXPECT_TRUE(h.s.done());
    EXPECT_EQ(h.all_output, "");
  }
}

TEST(Session, NullSender) {
  auto cfg = testing::default_config();
  cfg.mail_from.clear();
  Harness h(cfg);
  h.add("a@example.org", 1);
  greet(h);
  EXPECT_EQ(h.take_writes(), "MAIL FROM:<>\r\n" + rcpt("a@example.org"));
}

TEST(Session, Utf8RecipientNeedsSmtputf8) {
  const std::string utf8 = "j\xc3\xb6rg@example.org";
  Harness h;
  h.add(utf8, 1);
  h.add("a@example.org", 2);
  greet(h);  // offers SMTPUTF8: RFC 6531 §3.4 parameter on MAIL
  EXPECT_EQ(h.take_writes(),
            "MAIL FROM:<verify@mxprobe.test> SMTPUTF8\r\n" + rcpt(utf8) + rcpt("a@example.org"));

  Harness g;
  g.add(utf8, 1);
  g.add("a@example.org", 2);
  greet(g, kEhloPlain);  // no SMTPUTF8: the address must not be sent (RFC 6531 §3.2)
  expect_failure(g.outcome(1), Stage::RcptTo, Failure::LocalError);
  EXPECT_EQ(g.take_writes(), kMail);
  g.server("250 ok\r\n");
  EXPECT_EQ(g.take_writes(), rcpt("a@example.org"));
}

TEST(Session, TranscriptRecordsBothDirections) {
  Harness h;
  TranscriptBuffer t;
  h.s.set_transcript(&t);
  h.add("a@example.org", 1);
  h.finish();
  greet(h, "250-mx\r\n250 PIPELINING\n");
  h.server("250 2.1.0 Ok\r\n550-5.1.1 no\r\n550 5.1.1 user\r\n");
  EXPECT_EQ(t.text,
            "S: 220 mx.example.org ESMTP Postfix (Debian/GNU)\n"
            "C: EHLO probe.mxprobe.test\n"
            "S: 250-mx\nS: 250 PIPELINING\n"
            "C: MAIL FROM:<verify@mxprobe.test>\nC: RCPT TO:<a@example.org>\n"
            "S: 250 2.1.0 Ok\nS: 550-5.1.1 no\nS: 550 5.1.1 user\n"
            "C: QUIT\n");
}

TEST(Session, PartialWritesAreResumed) {
  Harness h;
  h.add("a@example.org", 1);
  h.connect();
  h.s.on_bytes(kBanner, h.now);
  const std::string ehlo(h.s.pending_output());
  h.s.consume_output(3);
  EXPECT_EQ(h.s.pending_output(), ehlo.substr(3));
  h.s.consume_output(1000);  // more than pending: clamps
  EXPECT_EQ(h.s.pending_output(), "");
  h.all_output += ehlo;
}

// The audit that every harness runs on its output must itself catch what it is for.
int audit_failures(std::string_view out) {
  ::testing::TestPartResultArray results;
  {
    ::testing::ScopedFakeTestPartResultReporter r(
        ::testing::ScopedFakeTestPartResultReporter::INTERCEPT_ONLY_CURRENT_THREAD, &results);
    testing::audit_output(out);
  }
  return results.size();
}

TEST(OutputAudit, CatchesDataAndSmuggledLines) {
  EXPECT_EQ(audit_failures("EHLO a\r\nMAIL FROM:<>\r\nRCPT TO:<b@c>\r\nRSET\r\nQUIT\r\n"), 0);
  EXPECT_GT(audit_failures("DATA\r\n"), 0);
  EXPECT_GT(audit_failures("data\r\n"), 0);
  EXPECT_GT(audit_failures("BDAT 10 LAST\r\n"), 0);
  EXPECT_GT(audit_failures("RCPT TO:<a\nDATA>\r\n"), 0);
  EXPECT_GT(audit_failures("RCPT TO:<a b>\r\n"), 0);
  EXPECT_GT(audit_failures("EHLO a b\r\n"), 0);
  EXPECT_GT(audit_failures("QUIT"), 0);
}

TEST(Session, SmallFootprint) {
  // 10,000 sessions live at once: the object itself must stay small.
  EXPECT_LE(sizeof(Session), 400u);
}

}  // namespace
}  // namespace mxp::smtp
