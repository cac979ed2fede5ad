// RedisConnection (sans-I/O) fed scripted bytes on a hand-set clock: the handshake first (AUTH,
// SELECT, CLIENT SETNAME, setup) and awaited, pipelined replies in order, replies split at every
// byte, a 1 MiB bulk reply, error replies, garbage, unsolicited replies, timeouts (sent and
// waiting), a lost connection, the bounded queue, shutdown, round-trip times.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "cluster/redis_connection.hpp"

namespace mxp::cluster {
namespace {

using namespace std::chrono_literals;

// RESP2 of a command, written by hand (independent of hiredis' formatter).
std::string resp(std::initializer_list<std::string_view> argv) {
  std::string s = "*" + std::to_string(argv.size()) + "\r\n";
  for (auto a : argv)
    s += "$" + std::to_string(a.size()) + "\r\n" + std::string(a) + "\r\n";
  return s;
}

struct Recorder {
  std::vector<Result> results;
  Done cb() {
    return [this](Result&& r) { results.push_back(std::move(r)); };
  }
  const Reply& reply(size_t i) const {
    EXPECT_LT(i, results.size());
    EXPECT_TRUE(results[i].ok()) << results[i].error().message;
    return results[i].value();
  }
  const CommandError& error(size_t i) const {
    EXPECT_LT(i, results.size());
    EXPECT_FALSE(results[i].ok()) << to_string(results[i].value());
    return results[i].error();
  }
};

class RedisConnectionTest : public ::testing::Test {
 protected:
  const TimePoint t0 = TimePoint(1000s);

  // What the connection wants sent, consumed.
  static std::string take(RedisConnection& c) {
    std::string out(c.pending_output());
    c.consume_output(out.size());
    return out;
  }
  Recorder rec;
};

TEST_F(RedisConnectionTest, NothingToSayIsReadyAtOnce) {
  RedisConnection c({});
  EXPECT_EQ(c.state(), RedisConnection::State::Down);
  c.on_connected(t0);
  EXPECT_EQ(c.state(), RedisConnection::State::Ready);
  EXPECT_EQ(take(c), "");
  c.command({"GET", "foo"}, rec.cb(), t0);
  EXPECT_EQ(take(c), resp({"GET", "foo"}));
  c.on_bytes("$3\r\nbar\r\n", t0 + 1ms);
  ASSERT_EQ(rec.results.size(), 1u);
  EXPECT_EQ(rec.reply(0).type, Reply::Type::String);
  EXPECT_EQ(rec.reply(0).str, "bar");
  EXPECT_EQ(c.stats().handshakes, 1u);
}

TEST_F(RedisConnectionTest, CommandsBeforeConnectWaitThenGoOutInOrder) {
  RedisConnection c({});
  c.command({"SET", "a", "1"}, rec.cb(), t0);
  c.command({"GET", "a"}, rec.cb(), t0);
  EXPECT_EQ(take(c), "");
  EXPECT_EQ(c.waiting(), 2u);
  c.on_connected(t0 + 1ms);
  EXPECT_EQ(take(c), resp({"SET", "a", "1"}) + resp({"GET", "a"}));
  EXPECT_EQ(c.waiting(), 0u);
  EXPECT_EQ(c.in_flight(), 2u);
  c.on_bytes("+OK\r\n$1\r\n1\r\n", t0 + 2ms);
  ASSERT_EQ(rec.results.size(), 2u);
  EXPECT_TRUE(rec.reply(0).is_ok());
  EXPECT_EQ(rec.reply(1).str, "1");
}

TEST_F(RedisConnectionTest, AuthSelectSetnameFirstAndAwaited) {
  ConnectionOptions o;
  o.password = "pw";
  o.db = 3;
  o.client_name = "node-a";
  RedisConnection c(o);
  c.command({"SET", "k", "v"}, rec.cb(), t0);
  c.on_connected(t0);
  EXPECT_EQ(c.state(), RedisConnection::State::Handshake);
  EXPECT_EQ(take(c),
            resp({"AUTH", "pw"}) + resp({"SELECT", "3"}) + resp({"CLIENT", "SETNAME", "node-a"}));
  c.on_bytes("+OK\r\n+OK\r\n", t0 + 1ms);
  EXPECT_EQ(take(c), "") << "a user command went out before the handshake finished";
  c.command({"GET", "k"}, rec.cb(), t0 + 1ms);  // issued during the handshake: waits too
  EXPECT_EQ(take(c), "");
  c.on_bytes("+OK\r\n", t0 + 2ms);
  EXPECT_EQ(c.state(), RedisConnection::State::Ready);
  EXPECT_EQ(take(c), resp({"SET", "k", "v"}) + resp({"GET", "k"}));
  c.on_bytes("+OK\r\n$1\r\nv\r\n", t0 + 3ms);
  ASSERT_EQ(rec.results.size(), 2u);
  EXPECT_TRUE(rec.reply(0).is_ok());
  EXPECT_EQ(rec.reply(1).str, "v");
}

TEST_F(RedisConnectionTest, AclUserAuthAndSetupCommands) {
  ConnectionOptions o;
  o.user = "mxprobe";
  o.password = "pw";
  o.setup = {{"FUNCTION", "LOAD", "REPLACE", "#!lua name=x\n"}};
  RedisConnection c(o);
  c.on_connected(t0);
  EXPECT_EQ(take(c), resp({"AUTH", "mxprobe", "pw"}) +
                         resp({"FUNCTION", "LOAD", "REPLACE", "#!lua name=x\n"}));
  c.on_bytes("+OK\r\n$1\r\nx\r\n", t0 + 1ms);
  EXPECT_EQ(c.state(), RedisConnection::State::Ready);
}

TEST_F(RedisConnectionTest, AuthRefusedFailsWaitingCommandsAndAsksToClose) {
  ConnectionOptions o;
  o.password = "hunter2";
  RedisConnection c(o);
  c.command({"GET", "k"}, rec.cb(), t0);
  c.on_connected(t0);
  take(c);
  c.on_bytes("-WRONGPASS invalid username-password pair or user is disabled.\r\n", t0 + 1ms);
  EXPECT_TRUE(c.want_close());
  EXPECT_EQ(c.state(), RedisConnection::State::Down);
  EXPECT_EQ(c.down_reason(),
            "AUTH refused: WRONGPASS invalid username-password pair or user is disabled.");
  ASSERT_EQ(rec.results.size(), 1u);
  EXPECT_EQ(rec.error(0).failure, Failure::HandshakeFailed);
  EXPECT_NE(rec.error(0).message.find("WRONGPASS"), std::string::npos);
  EXPECT_EQ(rec.error(0).message.find("hunter2"), std::string::npos);
  c.on_closed("closed by us", t0 + 1ms);
  EXPECT_FALSE(c.want_close());
  EXPECT_NE(c.down_reason().find("AUTH refused"), std::string::npos);  // our reason is kept
  // The next connection tries again from the start.
  c.on_connected(t0 + 1s);
  EXPECT_EQ(take(c), resp({"AUTH", "hunter2"}));
}

TEST_F(RedisConnectionTest, TransientRefusalKeepsCommandsWaiting) {
  ConnectionOptions o;
  o.db = 1;
  RedisConnection c(o);
  c.command({"GET", "k"}, rec.cb(), t0);
  c.on_connected(t0);
  take(c);
  c.on_bytes("-LOADING Redis is loading the dataset in memory\r\n", t0 + 1ms);
  EXPECT_TRUE(c.want_close());
  EXPECT_TRUE(rec.results.empty());
  EXPECT_EQ(c.waiting(), 1u);
  c.on_closed("", t0 + 1ms);
  c.on_connected(t0 + 100ms);
  EXPECT_EQ(take(c), resp({"SELECT", "1"}));
  c.on_bytes("+OK\r\n", t0 + 101ms);
  EXPECT_EQ(take(c), resp({"GET", "k"}));
}

TEST_F(RedisConnectionTest, PipelinedRepliesReachTheirCommandsInOrder) {
  RedisConnection c({});
  c.on_connected(t0);
  constexpr int kN = 1000;
  std::string want_out, replies;
  std::vector<std::string> keys(kN);
  for (int i = 0; i < kN; ++i) {
    keys[i] = "k" + std::to_string(i);
    c.command({"INCRBY", keys[i], "7"}, rec.cb(), t0);
    want_out += resp({"INCRBY", keys[i], "7"});
    replies += ":" + std::to_string(i * 10) + "\r\n";
  }
  EXPECT_EQ(c.in_flight(), static_cast<size_t>(kN));
  EXPECT_EQ(take(c), want_out);
  c.on_bytes(replies, t0 + 1ms);
  ASSERT_EQ(rec.results.size(), static_cast<size_t>(kN));
  for (int i = 0; i < kN; ++i)
    EXPECT_EQ(rec.reply(i).integer, i * 10);
  EXPECT_EQ(c.in_flight(), 0u);
}

TEST_F(RedisConnectionTest, ErrorReplyIsAReplyAndTheNextCommandGoesOn) {
  RedisConnection c({});
  c.on_connected(t0);
  c.command({"INCR", "s"}, rec.cb(), t0);
  c.command({"PING"}, rec.cb(), t0);
  c.on_bytes("-ERR value is not an integer or out of range\r\n+PONG\r\n", t0 + 1ms);
  ASSERT_EQ(rec.results.size(), 2u);
  EXPECT_TRUE(rec.reply(0).is_error());
  EXPECT_EQ(rec.reply(0).str, "ERR value is not an integer or out of range");
  EXPECT_EQ(rec.reply(1).str, "PONG");
  EXPECT_EQ(c.state(), RedisConnection::State::Ready);
  EXPECT_FALSE(c.want_close());
}

// Every RESP2 shape hiredis reads, including a bulk string holding CRLF and nested arrays.
const std::string kReplies =
    "+OK\r\n"
    "-ERR no\r\n"
    ":-42\r\n"
    "$-1\r\n"
    "$0\r\n\r\n"
    "$6\r\na\r\nb\r\n\r\n"
    "*-1\r\n"
    "*0\r\n"
    "*3\r\n:1\r\n*2\r\n$1\r\nx\r\n$-1\r\n+in\r\n";

void check_replies(const Recorder& rec) {
  ASSERT_EQ(rec.results.size(), 9u);
  EXPECT_TRUE(rec.reply(0).is_ok());
  EXPECT_EQ(rec.reply(1).type, Reply::Type::Error);
  EXPECT_EQ(rec.reply(1).str, "ERR no");
  EXPECT_EQ(rec.reply(2).integer, -42);
  EXPECT_EQ(rec.reply(3).type, Reply::Type::Nil);
  EXPECT_EQ(rec.reply(4).type, Reply::Type::String);
  EXPECT_EQ(rec.reply(4).str, "");
  EXPECT_EQ(rec.reply(5).str, "a\r\nb\r\n");
  EXPECT_EQ(rec.reply(6).type, Reply::Type::Nil);
  EXPECT_EQ(rec.reply(7).type, Reply::Type::Array);
  EXPECT_TRUE(rec.reply(7).elements.empty());
  const Reply& a = rec.reply(8);
  ASSERT_EQ(a.type, Reply::Type::Array);
  ASSERT_EQ(a.elements.size(), 3u);
  EXPECT_EQ(a.elements[0].integer, 1);
  ASSERT_EQ(a.elements[1].elements.size(), 2u);
  EXPECT_EQ(a.elements[1].elements[0].str, "x");
  EXPECT_EQ(a.elements[1].elements[1].type, Reply::Type::Nil);
  EXPECT_EQ(a.elements[2].type, Reply::Type::Status);
  EXPECT_EQ(to_string(a), "[(integer) 1, [\"x\", (nil)], in]");
}

TEST_F(RedisConnectionTest, RepliesSplitAtEveryByte) {
  for (size_t cut = 0; cut <= kReplies.size(); ++cut) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    Recorder r;
    RedisConnection c({});
    c.on_connected(t0);
    for (int i = 0; i < 9; ++i)
      c.command({"X"}, r.cb(), t0);
    c.on_bytes(std::string_view(kReplies).substr(0, cut), t0);
    c.on_bytes(std::string_view(kReplies).substr(cut), t0);
    check_replies(r);
    EXPECT_FALSE(c.want_close());
  }
  // And one byte at a time: nothing is delivered before its last byte.
  Recorder r;
  RedisConnection c({});
  c.on_connected(t0);
  for (int i = 0; i < 9; ++i)
    c.command({"X"}, r.cb(), t0);
  for (size_t i = 0; i < kReplies.size(); ++i) {
    c.on_bytes(std::string_view(kReplies).substr(i, 1), t0);
    if (i + 1 < 5) {
      EXPECT_TRUE(r.results.empty());  // "+OK\r\n" is the first 5 bytes
    }
  }
  check_replies(r);
}

TEST_F(RedisConnectionTest, OneMegabyteBulkReply) {
  std::string payload(1 << 20, '\0');
  for (size_t i = 0; i < payload.size(); ++i)
    payload[i] = static_cast<char>((i * 131) % 256);  // every byte value, CR and LF included
  const std::string wire = "$" + std::to_string(payload.size()) + "\r\n" + payload + "\r\n:5\r\n";
  RedisConnection c({});
  c.on_connected(t0);
  c.command({"GET", "big"}, rec.cb(), t0);
  c.command({"INCR", "n"}, rec.cb(), t0);
  // All but the bulk's final CRLF and the integer, in 4 KiB reads: nothing is delivered yet.
  const size_t head = wire.size() - 6;
  for (size_t off = 0; off < head; off += 4096)
    c.on_bytes(std::string_view(wire).substr(off, std::min<size_t>(4096, head - off)), t0);
  EXPECT_TRUE(rec.results.empty());
  c.on_bytes(std::string_view(wire).substr(head), t0);
  ASSERT_EQ(rec.results.size(), 2u);
  EXPECT_EQ(rec.reply(0).str.size(), payload.size());
  EXPECT_TRUE(rec.reply(0).str == payload);
  EXPECT_EQ(rec.reply(1).integer, 5);
}

TEST_F(RedisConnectionTest, GarbageIsAProtocolErrorThatEndsTheConnection) {
  for (std::string garbage : {std::string("hello\r\n"), std::string("\xff\x00\x01", 3),
                              std::string("HTTP/1.1 400 Bad Request\r\n")}) {
    SCOPED_TRACE(garbage);
    Recorder r;
    RedisConnection c({});
    c.on_connected(t0);
    c.command({"GET", "a"}, r.cb(), t0);
    c.command({"GET", "b"}, r.cb(), t0);
    c.on_bytes(garbage, t0 + 1ms);
    EXPECT_TRUE(c.want_close());
    EXPECT_EQ(c.state(), RedisConnection::State::Down);
    EXPECT_NE(c.down_reason().find("protocol error"), std::string::npos) << c.down_reason();
    ASSERT_EQ(r.results.size(), 2u);
    EXPECT_EQ(r.error(0).failure, Failure::ProtocolError);
    EXPECT_EQ(r.error(1).failure, Failure::ProtocolError);
    EXPECT_NE(r.error(0).message.find("protocol error"), std::string::npos);
    // Bytes after it are ignored; a new command waits for the next connection.
    c.on_bytes("+OK\r\n", t0 + 2ms);
    c.command({"GET", "c"}, r.cb(), t0 + 2ms);
    EXPECT_EQ(c.waiting(), 1u);
    EXPECT_EQ(take(c), "");
    c.on_closed("", t0 + 2ms);
    c.on_connected(t0 + 3ms);
    EXPECT_EQ(take(c), resp({"GET", "c"}));
    c.on_bytes("$1\r\nc\r\n", t0 + 4ms);
    ASSERT_EQ(r.results.size(), 3u);
    EXPECT_EQ(r.reply(2).str, "c");
  }
}

TEST_F(RedisConnectionTest, ReplyWithoutACommandIsAProtocolError) {
  RedisConnection c({});
  c.on_connected(t0);
  c.on_bytes("+OK\r\n", t0);
  EXPECT_TRUE(c.want_close());
  EXPECT_NE(c.down_reason().find("no command was waiting"), std::string::npos);
  // One reply too many in a pipelined batch: the commands before it still got theirs.
  RedisConnection d({});
  d.on_connected(t0);
  d.command({"PING"}, rec.cb(), t0);
  d.on_bytes("+PONG\r\n+PONG\r\n", t0);
  ASSERT_EQ(rec.results.size(), 1u);
  EXPECT_EQ(rec.reply(0).str, "PONG");
  EXPECT_TRUE(d.want_close());
}

TEST_F(RedisConnectionTest, SentCommandTimeoutEndsTheConnection) {
  ConnectionOptions o;
  o.command_timeout = 2s;
  RedisConnection c(o);
  c.on_connected(t0);
  c.command({"GET", "a"}, rec.cb(), t0);
  c.command({"GET", "b"}, rec.cb(), t0 + 1s);
  EXPECT_EQ(c.next_deadline(), t0 + 2s);
  c.on_timeout(t0 + 1999ms);
  EXPECT_TRUE(rec.results.empty());
  c.on_timeout(t0 + 2s);
  ASSERT_EQ(rec.results.size(), 2u);
  EXPECT_EQ(rec.error(0).failure, Failure::Timeout);
  EXPECT_NE(rec.error(0).message.find("no reply to GET within 2 s"), std::string::npos)
      << rec.error(0).message;
  EXPECT_EQ(rec.error(1).failure, Failure::ConnectionLost);
  EXPECT_NE(rec.error(1).message.find("it may have run"), std::string::npos);
  EXPECT_TRUE(c.want_close());
  EXPECT_EQ(c.next_deadline(), std::nullopt);
  EXPECT_EQ(c.stats().timeouts, 1u);
  // A late reply on the dead connection is ignored.
  c.on_bytes("$1\r\na\r\n", t0 + 3s);
  EXPECT_EQ(rec.results.size(), 2u);
}

TEST_F(RedisConnectionTest, PerCommandTimeout) {
  RedisConnection c({});  // default 5 s
  c.on_connected(t0);
  c.command({"GET", "a"}, rec.cb(), t0);
  c.command({"BLPOP", "q", "0"}, rec.cb(), t0, 250ms);
  EXPECT_EQ(c.next_deadline(), t0 + 250ms);
  c.on_timeout(t0 + 250ms);
  ASSERT_EQ(rec.results.size(), 2u);
  EXPECT_EQ(rec.error(0).failure, Failure::ConnectionLost);  // GET was ahead of it, in flight
  EXPECT_EQ(rec.error(1).failure, Failure::Timeout);
  EXPECT_NE(rec.error(1).message.find("BLPOP within 250 ms"), std::string::npos);
}

TEST_F(RedisConnectionTest, WaitingCommandTimesOutWithTheDownReason) {
  ConnectionOptions o;
  o.command_timeout = 1s;
  RedisConnection c(o);
  c.on_closed("connect: connection_refused", t0);  // a failed attempt
  c.command({"GET", "a"}, rec.cb(), t0);
  c.command({"GET", "b"}, rec.cb(), t0 + 500ms);
  c.on_timeout(t0 + 1s);
  ASSERT_EQ(rec.results.size(), 1u);
  EXPECT_EQ(rec.error(0).failure, Failure::Timeout);
  EXPECT_EQ(rec.error(0).message,
            "Redis: GET not sent within 1 s (down: connect: connection_refused)");
  EXPECT_EQ(c.waiting(), 1u);
  EXPECT_EQ(c.next_deadline(), t0 + 1500ms);
  EXPECT_FALSE(c.want_close());
}

TEST_F(RedisConnectionTest, LostConnectionFailsSentCommandsKeepsWaitingOnes) {
  ConnectionOptions o;
  o.password = "pw";
  RedisConnection c(o);
  c.on_connected(t0);
  c.on_bytes("+OK\r\n", t0);
  take(c);
  c.command({"INCR", "n"}, rec.cb(), t0);
  take(c);
  c.on_closed("connection_reset", t0 + 1ms);
  EXPECT_EQ(c.state(), RedisConnection::State::Down);
  ASSERT_EQ(rec.results.size(), 1u);
  EXPECT_EQ(rec.error(0).failure, Failure::ConnectionLost);
  EXPECT_NE(rec.error(0).message.find("connection_reset"), std::string::npos);
  c.command({"INCR", "n"}, rec.cb(), t0 + 2ms);
  c.on_connected(t0 + 3ms);
  EXPECT_EQ(take(c), resp({"AUTH", "pw"}));
  c.on_bytes("+OK\r\n", t0 + 4ms);
  EXPECT_EQ(take(c), resp({"INCR", "n"}));
  c.on_bytes(":2\r\n", t0 + 5ms);
  ASSERT_EQ(rec.results.size(), 2u);
  EXPECT_EQ(rec.reply(1).integer, 2);
  EXPECT_EQ(c.stats().handshakes, 2u);
}

TEST_F(RedisConnectionTest, BoundedQueue) {
  ConnectionOptions o;
  o.max_queued = 2;
  RedisConnection c(o);
  c.command({"A"}, rec.cb(), t0);
  c.command({"B"}, rec.cb(), t0);
  c.command({"C"}, rec.cb(), t0);  // refused at once, inside command()
  ASSERT_EQ(rec.results.size(), 1u);
  EXPECT_EQ(rec.error(0).failure, Failure::QueueFull);
  EXPECT_EQ(c.waiting(), 2u);
  c.command(std::vector<std::string>{}, rec.cb(), t0);
  EXPECT_EQ(rec.error(1).failure, Failure::BadCommand);
}

TEST_F(RedisConnectionTest, ShutdownFailsEverythingAndLaterCommands) {
  RedisConnection c({});
  c.on_connected(t0);
  c.command({"GET", "a"}, rec.cb(), t0);  // in flight
  c.on_closed("reset", t0);
  c.command({"GET", "b"}, rec.cb(), t0);  // waiting
  c.shutdown(t0);
  ASSERT_EQ(rec.results.size(), 2u);
  EXPECT_EQ(rec.error(0).failure, Failure::ConnectionLost);
  EXPECT_EQ(rec.error(1).failure, Failure::Closed);
  c.command({"GET", "c"}, rec.cb(), t0);
  ASSERT_EQ(rec.results.size(), 3u);
  EXPECT_EQ(rec.error(2).failure, Failure::Closed);
  c.on_connected(t0);
  EXPECT_EQ(c.state(), RedisConnection::State::Down);
}

TEST_F(RedisConnectionTest, RoundTripTimes) {
  RedisConnection c({});
  std::vector<Duration> seen;
  c.set_rtt_observer([&](Duration d) { seen.push_back(d); });
  c.command({"GET", "w"}, rec.cb(), t0);  // waits 5 ms for the connection: not a round trip
  c.on_connected(t0 + 5ms);
  c.command({"GET", "x"}, rec.cb(), t0 + 6ms);
  c.on_bytes("$-1\r\n", t0 + 8ms);
  c.on_bytes("$-1\r\n", t0 + 13ms);
  EXPECT_EQ(seen, (std::vector<Duration>{3ms, 7ms}));
  EXPECT_EQ(c.stats().rtt_count, 2u);
  EXPECT_EQ(c.stats().rtt_total, 10ms);
  EXPECT_EQ(c.stats().rtt_max, 7ms);
}

TEST_F(RedisConnectionTest, CallbackMayIssueCommands) {
  RedisConnection c({});
  c.on_connected(t0);
  c.command(
      {"GET", "a"},
      [&](Result&& r) {
        rec.results.push_back(std::move(r));
        c.command({"GET", "c"}, rec.cb(), t0);
      },
      t0);
  c.command({"GET", "b"}, rec.cb(), t0);
  take(c);
  c.on_bytes("$1\r\na\r\n$1\r\nb\r\n", t0);
  EXPECT_EQ(take(c), resp({"GET", "c"}));
  c.on_bytes("$1\r\nc\r\n", t0);
  ASSERT_EQ(rec.results.size(), 3u);
  EXPECT_EQ(rec.reply(0).str, "a");
  EXPECT_EQ(rec.reply(1).str, "b");
  EXPECT_EQ(rec.reply(2).str, "c");
}

TEST_F(RedisConnectionTest, CallbackThatShutsDownStopsTheRest) {
  RedisConnection c({});
  c.on_connected(t0);
  c.command(
      {"GET", "a"},
      [&](Result&& r) {
        rec.results.push_back(std::move(r));
        c.shutdown(t0);
      },
      t0);
  c.command({"GET", "b"}, rec.cb(), t0);
  c.on_bytes("$1\r\na\r\n$1\r\nb\r\n", t0);
  ASSERT_EQ(rec.results.size(), 2u);
  EXPECT_EQ(rec.reply(0).str, "a");
  EXPECT_EQ(rec.error(1).failure, Failure::Closed);  // its reply bytes came, but after shutdown
}

TEST_F(RedisConnectionTest, SetupErrorFailsTheHandshake) {
  ConnectionOptions o;
  o.setup = {{"FUNCTION", "LOAD", "REPLACE", "bad"}};
  RedisConnection c(o);
  c.command({"PING"}, rec.cb(), t0);
  c.on_connected(t0);
  c.on_bytes("-ERR Missing library metadata\r\n", t0);
  EXPECT_TRUE(c.want_close());
  EXPECT_EQ(c.down_reason(), "FUNCTION refused: ERR Missing library metadata");
  ASSERT_EQ(rec.results.size(), 1u);
  EXPECT_EQ(rec.error(0).failure, Failure::HandshakeFailed);
}

TEST_F(RedisConnectionTest, HandshakeTimeout) {
  ConnectionOptions o;
  o.password = "pw";
  o.command_timeout = 1s;
  RedisConnection c(o);
  c.on_connected(t0);
  c.command({"PING"}, rec.cb(), t0 + 500ms, 10s);
  c.on_timeout(t0 + 1s);
  EXPECT_TRUE(c.want_close());
  EXPECT_EQ(c.down_reason(), "no reply to AUTH within 1 s");
  EXPECT_TRUE(rec.results.empty());  // PING waits for the next connection
  EXPECT_EQ(c.waiting(), 1u);
}

}  // namespace
}  // namespace mxp::cluster
