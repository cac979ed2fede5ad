// The chunk queue's line encoding (chunk_queue.hpp), without Redis: any bytes survive the round
// trip (newlines, spaces, colons, empty records), and malformed input is refused, never read
// past its end.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "cluster/chunk_queue.hpp"

namespace mxp::cluster {
namespace {

TEST(ChunkCodec, RoundTripsAnyBytes) {
  const std::vector<ChunkLine> lines = {{1, "a@example.com"},
                                        {2, ""},
                                        {7, "x y:z\r\n\ttail"},
                                        {18446744073709551615ull, std::string("\0nul", 4)}};
  const std::string s = encode_lines(lines);
  EXPECT_EQ(s.substr(0, 17), "1 13:a@example.co");
  const auto back = decode_lines(s);
  ASSERT_TRUE(back.ok()) << back.error();
  EXPECT_EQ(*back, lines);
  const auto none = decode_lines("");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST(ChunkCodec, RefusesMalformedInput) {
  for (const std::string bad : {"1", "1 ", "1 5:abc", "x 1:a", "1 -1:a", "1 1a:b", "1 2:ab3 1",
                                "1 99999999999999999999:a"}) {
    EXPECT_FALSE(decode_lines(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace mxp::cluster
