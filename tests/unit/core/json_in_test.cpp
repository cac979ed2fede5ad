// mxp::json::parse_bounded: the limits hold before a tree exists, and good JSON still parses.
#include <gtest/gtest.h>

#include <string>

#include "core/json_in.hpp"

namespace mxp::json {
namespace {

std::string nested(size_t depth) {
  return std::string(depth, '[') + std::string(depth, ']');
}

TEST(JsonIn, DepthIsCheckedWithoutRecursion) {
  using J = nlohmann::ordered_json;
  const ParseLimits l{1 << 20, 16, 1 << 16};
  auto ok = parse_bounded<J>(nested(16), l);
  EXPECT_TRUE(ok) << ok.error();
  auto deep = parse_bounded<J>(nested(17), l);
  ASSERT_FALSE(deep);
  EXPECT_EQ(deep.error(), "nested deeper than 16 levels");
  // 300,000 levels: the check is iterative, so this neither crashes nor builds anything.
  const ParseLimits big{1 << 21, 16, 1 << 16};
  auto deeper = parse_bounded<J>(nested(300'000), big);
  ASSERT_FALSE(deeper);
  EXPECT_EQ(deeper.error(), "nested deeper than 16 levels");
  const std::string deep_id = "{\"cmd\":\"ping\",\"id\":" + nested(60'000) + "}";
  auto long_id = parse_bounded<J>(deep_id, kCommandLimits);
  ASSERT_FALSE(long_id);
  EXPECT_NE(long_id.error().find("bytes"), std::string::npos) << long_id.error();  // > 64 KiB
}

TEST(JsonIn, SizeAndValueCountAreBounded) {
  const ParseLimits l{100, 8, 10};
  auto large = parse_bounded(std::string(101, ' '), l);
  ASSERT_FALSE(large);
  EXPECT_EQ(large.error(), "JSON text larger than 100 bytes");
  auto many = parse_bounded("[1,2,3,4,5,6,7,8,9,10]", l);
  ASSERT_FALSE(many);
  EXPECT_EQ(many.error(), "more than 10 JSON values");
  auto j = parse_bounded("[1,2,3,4,5,6,7,8,9]", l);
  ASSERT_TRUE(j) << j.error();
  EXPECT_EQ(j->size(), 9u);
}

TEST(JsonIn, BadJsonSaysWhere) {
  using J = nlohmann::ordered_json;
  auto cut = parse_bounded<J>("{\"a\":", kBodyLimits);
  ASSERT_FALSE(cut);
  EXPECT_EQ(cut.error().rfind("not JSON", 0), 0u) << cut.error();
  auto two = parse_bounded<J>("{} {}", kBodyLimits);
  ASSERT_FALSE(two);
  EXPECT_EQ(two.error().rfind("not JSON", 0), 0u) << two.error();
  auto j = parse_bounded<J>(R"({"cmd":"ping","id":[1,{"x":"y"}]})", kCommandLimits);
  ASSERT_TRUE(j) << j.error();
  EXPECT_EQ((*j)["id"][1]["x"], "y");
  EXPECT_EQ(j->begin().key(), "cmd");  // ordered_json keeps the order
}

}  // namespace
}  // namespace mxp::json
