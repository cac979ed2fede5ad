// JSON string escaping: every control byte escaped, invalid UTF-8 replaced, valid UTF-8 kept.
#include "core/json_out.hpp"

#include <gtest/gtest.h>

namespace mxp::json {
namespace {

std::string as_json(std::string_view s) {
  std::string out;
  append_string(out, s);
  return out;
}

TEST(JsonOut, PlainAndEscapes) {
  EXPECT_EQ(as_json("a@b.example"), "\"a@b.example\"");
  EXPECT_EQ(as_json("say \"hi\"\\"), R"("say \"hi\"\\")");
  EXPECT_EQ(as_json("a\r\nb\tc"), R"("a\r\nb\tc")");
  EXPECT_EQ(as_json(std::string_view("\0\x01\x1f\x7f", 4)), "\"\\u0000\\u0001\\u001f\x7f\"");
}

TEST(JsonOut, Utf8KeptInvalidReplaced) {
  EXPECT_EQ(as_json("j\xC3\xBCrgen@b\xC3\xBC"
                    "cher.example"),
            "\"j\xC3\xBCrgen@b\xC3\xBC"
            "cher.example\"");
  EXPECT_EQ(as_json("\xF0\x9F\x98\x80"), "\"\xF0\x9F\x98\x80\"");
  const std::string fffd = "\xEF\xBF\xBD";
  EXPECT_EQ(as_json("a\xFF"
                    "b"),
            "\"a" + fffd + "b\"");
  EXPECT_EQ(as_json("\xC3"), "\"" + fffd + "\"");                        // truncated sequence
  EXPECT_EQ(as_json("\xC0\xAF"), "\"" + fffd + fffd + "\"");             // overlong '/'
  EXPECT_EQ(as_json("\xED\xA0\x80"), "\"" + fffd + fffd + fffd + "\"");  // surrogate
  EXPECT_EQ(as_json("\xF4\x90\x80\x80"), "\"" + fffd + fffd + fffd + fffd + "\"");  // > U+10FFFF
}

TEST(JsonOut, ValidUtf8) {
  EXPECT_TRUE(valid_utf8("plain"));
  EXPECT_TRUE(
      valid_utf8("b\xC3\xBC"
                 "cher"));
  EXPECT_FALSE(valid_utf8("\xFF"));
  EXPECT_FALSE(valid_utf8("\xE2\x82"));
}

TEST(JsonOut, EveryByteGivesValidUtf8Output) {
  for (int b = 0; b < 256; ++b) {
    std::string in(1, static_cast<char>(b));
    std::string out = as_json(in);
    EXPECT_TRUE(valid_utf8(out)) << b;
    for (char c : out)
      EXPECT_GE(static_cast<unsigned char>(c), 0x20) << b;
  }
}

TEST(JsonOut, Uint) {
  std::string out;
  append_uint(out, 0);
  out += ',';
  append_uint(out, 18446744073709551615ull);
  EXPECT_EQ(out, "0,18446744073709551615");
}

}  // namespace
}  // namespace mxp::json
