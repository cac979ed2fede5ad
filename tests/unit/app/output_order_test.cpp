// The output's order: records that finish out of order come out in read order; a head that
// never answers holds back at most the window (records or bytes), then is given up on and its
// record is written when it comes; the end writes everything held.
#include "app/output_order.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace mxp::app {
namespace {

std::string rec(uint64_t line) {
  return std::to_string(line) + "\n";
}

TEST(OutputOrder, OutOfOrderRecordsComeOutInReadOrder) {
  OutputOrder o;
  for (uint64_t l : {2, 3, 5, 9})
    o.expect(l);  // read order, gaps in the numbering
  std::string out;
  o.push(5, rec(5), out);
  o.push(9, rec(9), out);
  EXPECT_EQ(out, "");
  EXPECT_EQ(o.held(), 2u);
  o.push(2, rec(2), out);
  EXPECT_EQ(out, "2\n");
  o.push(3, rec(3), out);
  EXPECT_EQ(out, "2\n3\n5\n9\n");
  EXPECT_EQ(o.held(), 0u);
  EXPECT_EQ(o.waiting_lines(), 0u);
  EXPECT_EQ(o.given_up(), 0u);
}

TEST(OutputOrder, CompletionOrderWritesAtOnce) {
  OutputOrder o(false);
  o.expect(1);
  o.expect(2);
  std::string out;
  o.push(2, rec(2), out);
  o.push(1, rec(1), out);
  EXPECT_EQ(out, "2\n1\n");
  EXPECT_EQ(o.waiting_lines(), 0u);
}

TEST(OutputOrder, LongWaitingHeadHoldsAtMostTheWindow) {
  OutputOrder o(true, 3, 1 << 20);
  for (uint64_t l = 1; l <= 8; ++l)
    o.expect(l);
  std::string out;
  // Line 1 (greylisted) does not answer; 2..4 fit in the window.
  for (uint64_t l = 2; l <= 4; ++l)
    o.push(l, rec(l), out);
  EXPECT_EQ(out, "");
  EXPECT_EQ(o.held(), 3u);
  // A fourth overflows it: line 1 is given up on, 2..5 go out in order.
  o.push(5, rec(5), out);
  EXPECT_EQ(out, "2\n3\n4\n5\n");
  EXPECT_EQ(o.given_up(), 1u);
  EXPECT_EQ(o.held(), 0u);
  // Line 1's record comes at last: written at once, not lost, not held.
  o.push(1, rec(1), out);
  EXPECT_EQ(out, "2\n3\n4\n5\n1\n");
  o.push(7, rec(7), out);
  o.push(6, rec(6), out);
  EXPECT_EQ(out, "2\n3\n4\n5\n1\n6\n7\n");
}

TEST(OutputOrder, ByteCapGivesUpOnTheHead) {
  OutputOrder o(true, 1000, 10);
  for (uint64_t l = 1; l <= 4; ++l)
    o.expect(l);
  std::string out;
  o.push(2, std::string(6, 'a'), out);
  EXPECT_EQ(out, "");
  o.push(3, std::string(6, 'b'), out);  // 12 bytes held > 10
  EXPECT_EQ(out, "aaaaaabbbbbb");
  EXPECT_EQ(o.given_up(), 1u);
  EXPECT_EQ(o.held_bytes(), 0u);
}

TEST(OutputOrder, GivingUpStopsAtTheNextUnansweredLine) {
  OutputOrder o(true, 2, 1 << 20);
  for (uint64_t l = 1; l <= 6; ++l)
    o.expect(l);
  std::string out;
  o.push(2, rec(2), out);
  o.push(4, rec(4), out);
  o.push(5, rec(5), out);  // 3 held > 2: give up 1 -> 2 out; 3 is the head, 4 and 5 held (2)
  EXPECT_EQ(out, "2\n");
  EXPECT_EQ(o.given_up(), 1u);
  EXPECT_EQ(o.held(), 2u);
  o.push(3, rec(3), out);
  EXPECT_EQ(out, "2\n3\n4\n5\n");
}

TEST(OutputOrder, DrainWritesWhatWasAnsweredAroundTheGaps) {
  OutputOrder o;
  for (uint64_t l = 1; l <= 5; ++l)
    o.expect(l);
  std::string out;
  o.push(4, rec(4), out);
  o.push(2, rec(2), out);
  EXPECT_EQ(out, "");
  // Ctrl-C: lines 1, 3 and 5 never answer (the journal keeps them for --resume).
  o.drain(out);
  EXPECT_EQ(out, "2\n4\n");
  EXPECT_EQ(o.held(), 0u);
  EXPECT_EQ(o.waiting_lines(), 0u);
  // A late record after the drain is not lost.
  o.push(3, rec(3), out);
  EXPECT_EQ(out, "2\n4\n3\n");
}

TEST(OutputOrder, EveryRecordExactlyOnceWhateverTheOrder) {
  // Many lines finishing in a scrambled order with a small window: the output holds each
  // record exactly once, and with nothing given up, in read order.
  for (size_t window : {size_t{1}, size_t{7}, size_t{100000}}) {
    OutputOrder o(true, window, 1 << 20);
    const uint64_t n = 500;
    for (uint64_t l = 1; l <= n; ++l)
      o.expect(l);
    std::string out;
    for (uint64_t i = 0; i < n; ++i) {
      const uint64_t l = (i * 211) % n + 1;  // a permutation of 1..n (211 is prime to 500)
      o.push(l, rec(l), out);
    }
    o.drain(out);
    std::vector<int> seen(n + 1, 0);
    size_t pos = 0, lines = 0;
    while (pos < out.size()) {
      size_t nl = out.find('\n', pos);
      ++seen[std::stoul(out.substr(pos, nl - pos))];
      pos = nl + 1;
      ++lines;
    }
    EXPECT_EQ(lines, n);
    for (uint64_t l = 1; l <= n; ++l)
      EXPECT_EQ(seen[l], 1) << l;
    if (o.given_up() == 0) {
      std::string want;
      for (uint64_t l = 1; l <= n; ++l)
        want += rec(l);
      EXPECT_EQ(out, want);
    }
    if (window == 100000) {
      EXPECT_EQ(o.given_up(), 0u);
    }
    if (window == 1) {
      EXPECT_GT(o.given_up(), 0u);
    }
  }
}

}  // namespace
}  // namespace mxp::app
