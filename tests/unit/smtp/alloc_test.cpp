// Checks the allocation promises of the parser and the session: feeding bytes one at a time
// costs no more heap allocations than feeding them at once, beyond the growth of one line buffer.
// Counts every operator new in this test binary through a replaced global operator new.
#include <gtest/gtest.h>

#include "count_allocations.hpp"

#include "smtp/reply_parser.hpp"
#include "smtp/session.hpp"

namespace mxp::smtp {
namespace {

constexpr std::string_view kEhlo =
    "250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-VRFY\r\n250-ETRN\r\n"
    "250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n"
    "250 CHUNKING\r\n";

long parse_allocations(std::string_view wire, size_t chunk) {
  ReplyParser p;
  const long before = mxp::testing::allocations();
  size_t n = 0;
  for (size_t off = 0; off < wire.size(); off += chunk) {
    std::string_view in = wire.substr(off, chunk);
    while (auto r = p.next(in))
      ++n;
  }
  EXPECT_FALSE(p.failed());
  EXPECT_GT(n, 0u);
  return mxp::testing::allocations() - before;
}

TEST(SmtpAlloc, ParserDoesNotAllocatePerByte) {
  std::string wire(kEhlo);
  for (int i = 0; i < 20; ++i)
    wire += "250 2.1.5 Ok\r\n";
  const long whole = parse_allocations(wire, wire.size());
  const long bytewise = parse_allocations(wire, 1);
  RecordProperty("whole", static_cast<int>(whole));
  RecordProperty("bytewise", static_cast<int>(bytewise));
  // Whole: the reply's line strings and vector growth only (31 lines, 4 over the SSO size).
  EXPECT_LE(whole, 31);
  // Byte by byte: plus the partial-line buffer's geometric growth, once.
  EXPECT_LE(bytewise - whole, 4) << "whole " << whole << " bytewise " << bytewise;
  EXPECT_GT(static_cast<long>(wire.size()), 10 * bytewise);
}

long session_allocations(size_t chunk) {
  SessionConfig cfg;
  cfg.helo_name = "probe.mxprobe.test";
  cfg.mail_from = "verify@mxprobe.test";
  const TimePoint now{};
  std::string rcpts = "250 2.1.0 Ok\r\n";
  for (int i = 0; i < 10; ++i)
    rcpts += "250 2.1.5 Ok\r\n";
  // The server's turns; each is fed whole or in chunks of `chunk` bytes.
  const std::string turns[] = {"220 mx.example.org ESMTP\r\n", std::string(kEhlo), rcpts,
                               "221 2.0.0 Bye\r\n"};
  const long before = mxp::testing::allocations();
  Session s(cfg);
  for (int i = 0; i < 10; ++i)
    s.add_recipient("user@example.org", i, now);
  s.finish(now);
  s.start(now);
  s.on_connected(now);
  for (const std::string& t : turns) {
    for (size_t off = 0; off < t.size(); off += chunk)
      s.on_bytes(std::string_view(t).substr(off, chunk), now);
    EXPECT_EQ(s.pending_output().empty(), &t == &turns[3]);  // nothing answers QUIT's reply
    s.consume_output(s.pending_output().size());
  }
  size_t results = 0;
  while (auto r = s.pop_result())
    results += r->outcome.reply.code == 250;
  EXPECT_EQ(results, 10u);
  EXPECT_TRUE(s.done());
  return mxp::testing::allocations() - before;
}

TEST(SmtpAlloc, SessionDoesNotAllocatePerByte) {
  const long whole = session_allocations(1 << 20);
  const long bytewise = session_allocations(1);
  RecordProperty("whole", static_cast<int>(whole));
  RecordProperty("bytewise", static_cast<int>(bytewise));
  EXPECT_LE(bytewise - whole, 4) << "whole " << whole << " bytewise " << bytewise;
  EXPECT_LT(whole, 120);  // ~4 per recipient (address, slot, result, reply line) plus the dialogue
}

}  // namespace
}  // namespace mxp::smtp
