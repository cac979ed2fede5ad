// bench-server's dialogue, scripted: the commands it sends, the replies it times, HELO after a
// refused EHLO, 4xx/5xx/421, DATA only when asked, and no CR/LF from an option on the wire.
#include "bench/dialogue.hpp"

#include <gtest/gtest.h>

namespace mxp::bench {
namespace {

using std::chrono::milliseconds;

class DialogueTest : public ::testing::Test {
 protected:
  DialogueTest() {
    cfg.helo = "bench.example";
    cfg.mail_from = "";
    cfg.banner_timeout = milliseconds(1000);
    cfg.command_timeout = milliseconds(500);
  }
  TimePoint at(int ms) const { return t0 + milliseconds(ms); }
  // The bytes sent since the last call.
  std::string sent(Dialogue& d) {
    std::string s(d.pending_output());
    d.consume_output(s.size());
    return s;
  }
  DialogueConfig cfg;
  TimePoint t0{};
};

TEST_F(DialogueTest, FullSessionTimesEveryStage) {
  Dialogue d(cfg, {"mxbabc@example.org"});
  d.on_connected(at(0));
  EXPECT_EQ(sent(d), "");
  EXPECT_EQ(d.next_deadline(), at(1000));
  d.on_bytes("220-mx.example ESMTP\r\n220 ", at(5));  // a multi-line greeting, split
  EXPECT_EQ(sent(d), "");
  d.on_bytes("hello\r\n", at(6));
  EXPECT_EQ(sent(d), "EHLO bench.example\r\n");
  EXPECT_EQ(d.next_deadline(), at(506));
  d.on_bytes("250-mx.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n", at(10));
  EXPECT_EQ(sent(d), "MAIL FROM:<>\r\n");
  d.on_bytes("250 2.1.0 Ok\r\n", at(20));
  EXPECT_EQ(sent(d), "RCPT TO:<mxbabc@example.org>\r\n");
  d.on_bytes("550 5.1.1 unknown\r\n", at(35));  // a refused RCPT is an answer, not a failure
  EXPECT_EQ(sent(d), "QUIT\r\n");               // no DATA unless asked
  EXPECT_FALSE(d.done());
  d.on_bytes("221 2.0.0 Bye\r\n", at(36));
  EXPECT_TRUE(d.done());
  EXPECT_TRUE(d.ok());
  EXPECT_EQ(d.failure(), Failure::None);
  EXPECT_EQ(d.rcpt_replies(), 1);
  const auto& m = d.measures();
  ASSERT_EQ(m.size(), 5u);
  EXPECT_EQ(m[0].stage, Stage::Greeting);
  EXPECT_EQ(m[0].sent, at(0));
  EXPECT_EQ(m[0].received, at(6));
  EXPECT_EQ(m[1].stage, Stage::Ehlo);
  EXPECT_EQ(m[1].received - m[1].sent, milliseconds(4));
  EXPECT_EQ(m[3].stage, Stage::Rcpt);
  EXPECT_EQ(m[3].code, 550);
  EXPECT_EQ(m[3].received - m[3].sent, milliseconds(15));
  EXPECT_EQ(m[4].stage, Stage::Quit);
}

TEST_F(DialogueTest, HeloAfterRefusedEhlo) {
  Dialogue d(cfg, {"a@example.org"});
  d.on_connected(at(0));
  d.on_bytes("220 hi\r\n", at(1));
  EXPECT_EQ(sent(d), "EHLO bench.example\r\n");
  d.on_bytes("502 5.5.2 Error: command not recognized\r\n", at(2));
  EXPECT_EQ(sent(d), "HELO bench.example\r\n");
  d.on_bytes("250 mx\r\n", at(3));
  EXPECT_EQ(sent(d), "MAIL FROM:<>\r\n");
  EXPECT_EQ(d.measures().size(), 3u);
  EXPECT_EQ(d.measures()[1].code, 502);
  EXPECT_EQ(d.measures()[2].stage, Stage::Ehlo);
}

TEST_F(DialogueTest, TemporaryRefusalOfMailQuitsAndFails) {
  Dialogue d(cfg, {"a@example.org"});
  d.on_connected(at(0));
  d.on_bytes("220 hi\r\n250 mx\r\n", at(1));  // greeting and the EHLO's reply in one read
  EXPECT_EQ(sent(d), "EHLO bench.example\r\nMAIL FROM:<>\r\n");
  d.on_bytes("451 4.3.0 try later\r\n", at(3));
  EXPECT_EQ(sent(d), "QUIT\r\n");
  d.on_bytes("221 bye\r\n", at(4));
  EXPECT_TRUE(d.done());
  EXPECT_FALSE(d.ok());
  EXPECT_EQ(d.failure(), Failure::None);  // a refusal, not a connection failure
}

TEST_F(DialogueTest, Code421EndsTheSessionWithoutQuit) {
  Dialogue d(cfg, {"a@example.org", "b@example.org"});
  d.on_connected(at(0));
  d.on_bytes("421 4.7.0 too many connections\r\n", at(1));
  EXPECT_TRUE(d.done());
  EXPECT_FALSE(d.ok());
  EXPECT_EQ(sent(d), "");
  ASSERT_EQ(d.measures().size(), 1u);
  EXPECT_EQ(d.measures()[0].code, 421);

  Dialogue e(cfg, {"a@example.org", "b@example.org"});
  e.on_connected(at(0));
  e.on_bytes("220 hi\r\n", at(1));
  e.on_bytes("250 mx\r\n", at(2));
  e.on_bytes("250 ok\r\n", at(3));
  e.on_bytes("250 ok\r\n", at(4));
  e.on_bytes("421 4.4.2 timeout\r\n", at(5));
  EXPECT_TRUE(e.done());
  EXPECT_FALSE(e.ok());
  EXPECT_EQ(e.rcpt_replies(), 2);
}

TEST_F(DialogueTest, DataOnlyWhenAskedAndDotStuffed) {
  cfg.data = true;
  cfg.message = make_message("", "x@example.org", 10);
  Dialogue d(cfg, {"a@example.org"});
  d.on_connected(at(0));
  d.on_bytes("220 hi\r\n", at(1));
  d.on_bytes("250 mx\r\n", at(2));
  d.on_bytes("250 ok\r\n", at(3));
  sent(d);
  d.on_bytes("250 ok\r\n", at(4));
  EXPECT_EQ(sent(d), "DATA\r\n");
  d.on_bytes("354 go ahead\r\n", at(5));
  const std::string msg = sent(d);
  EXPECT_EQ(msg, cfg.message);
  EXPECT_TRUE(msg.ends_with("\r\n.\r\n"));
  d.on_bytes("250 2.0.0 queued\r\n", at(9));
  EXPECT_EQ(sent(d), "QUIT\r\n");
  d.on_bytes("221 bye\r\n", at(10));
  EXPECT_TRUE(d.ok());
  const Measure& data = d.measures()[4];
  EXPECT_EQ(data.stage, Stage::Data);
  EXPECT_EQ(data.code, 250);
  EXPECT_EQ(data.received - data.sent, milliseconds(5));  // from DATA to the final reply

  EXPECT_EQ(dot_stuff(".a\r\nb\r\n.\r\n..c"), "..a\r\nb\r\n..\r\n...c");
}

TEST_F(DialogueTest, DataWithoutAcceptedRecipientIsNotSent) {
  cfg.data = true;
  cfg.message = make_message("", "x@example.org", 10);
  Dialogue d(cfg, {"a@example.org"});
  d.on_connected(at(0));
  d.on_bytes("220 hi\r\n", at(1));
  d.on_bytes("250 mx\r\n", at(2));
  d.on_bytes("250 ok\r\n", at(3));
  sent(d);
  d.on_bytes("550 no\r\n", at(4));
  EXPECT_EQ(sent(d), "QUIT\r\n");
}

TEST_F(DialogueTest, NoCrLfFromOptionsReachesTheWire) {
  cfg.helo = "bench.example\r\nRSET";
  Dialogue d(cfg, {"a@example.org"});
  d.on_connected(at(0));
  d.on_bytes("220 hi\r\n", at(1));
  EXPECT_EQ(sent(d), "");
  EXPECT_TRUE(d.done());
  EXPECT_EQ(d.failure(), Failure::Other);

  cfg.helo = "ok.example";
  Dialogue e(cfg, {"a@example.org\nDATA"});
  e.on_connected(at(0));
  e.on_bytes("220 hi\r\n", at(1));
  e.on_bytes("250 hi\r\n", at(2));
  sent(e);
  e.on_bytes("250 ok\r\n", at(3));
  EXPECT_EQ(sent(e), "");
  EXPECT_EQ(e.failure(), Failure::Other);
}

TEST_F(DialogueTest, TimeoutsAndClosesAreFailures) {
  Dialogue d(cfg, {"a@example.org"});
  d.on_connected(at(0));
  d.on_timeout(at(1000));
  EXPECT_TRUE(d.done());
  EXPECT_EQ(d.failure(), Failure::Timeout);

  Dialogue e(cfg, {"a@example.org"});
  e.on_connected(at(0));
  e.on_bytes("220 hi\r\n", at(1));
  e.on_closed(at(2), false);
  EXPECT_EQ(e.failure(), Failure::ClosedEarly);
  EXPECT_FALSE(e.ok());

  Dialogue f(cfg, {"a@example.org"});
  f.on_connected(at(0));
  f.on_closed(at(2), true);
  EXPECT_EQ(f.failure(), Failure::Reset);

  Dialogue g(cfg, {"a@example.org"});
  g.on_connected(at(0));
  g.on_bytes("not smtp\r\n", at(1));
  EXPECT_EQ(g.failure(), Failure::Protocol);

  // A close after QUIT without a 221 is the end asked for.
  Dialogue h(cfg, {"a@example.org"});
  h.on_connected(at(0));
  for (const char* r : {"220 a\r\n", "250 b\r\n", "250 c\r\n", "250 d\r\n"})
    h.on_bytes(r, at(1));
  h.on_closed(at(2), false);
  EXPECT_TRUE(h.ok());
}

}  // namespace
}  // namespace mxp::bench
