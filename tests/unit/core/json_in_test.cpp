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
  nlohmann::ordered_json j;
  std::string err;
  const ParseLimits l{1 << 20, 16, 1 << 16};
  EXPECT_TRUE(parse_bounded(nested(16), l, j, err)) << err;
  EXPECT_FALSE(parse_bounded(nested(17), l, j, err));
  EXPECT_EQ(err, "nested deeper than 16 levels");
  // 300,000 levels: the check is iterative, so this neither crashes nor builds anything.
  const ParseLimits big{1 << 21, 16, 1 << 16};
  EXPECT_FALSE(parse_bounded(nested(300'000), big, j, err));
  EXPECT_EQ(err, "nested deeper than 16 levels");
  const std::string deep_id = "{\"cmd\":\"ping\",\"id\":" + nested(60'000) + "}";
  EXPECT_FALSE(parse_bounded(deep_id, kCommandLimits, j, err));
  EXPECT_NE(err.find("bytes"), std::string::npos) << err;  // 120 KB > 64 KiB
}

TEST(JsonIn, SizeAndValueCountAreBounded) {
  nlohmann::json j;
  std::string err;
  const ParseLimits l{100, 8, 10};
  EXPECT_FALSE(parse_bounded(std::string(101, ' '), l, j, err));
  EXPECT_EQ(err, "JSON text larger than 100 bytes");
  EXPECT_FALSE(parse_bounded("[1,2,3,4,5,6,7,8,9,10]", l, j, err));
  EXPECT_EQ(err, "more than 10 JSON values");
  EXPECT_TRUE(parse_bounded("[1,2,3,4,5,6,7,8,9]", l, j, err)) << err;
  EXPECT_EQ(j.size(), 9u);
}

TEST(JsonIn, BadJsonSaysWhereAndLeavesTheOutputAlone) {
  nlohmann::ordered_json j = "before";
  std::string err;
  EXPECT_FALSE(parse_bounded("{\"a\":", kBodyLimits, j, err));
  EXPECT_EQ(err.rfind("not JSON", 0), 0u) << err;
  EXPECT_EQ(j, "before");
  EXPECT_FALSE(parse_bounded("{} {}", kBodyLimits, j, err));
  EXPECT_TRUE(parse_bounded(R"({"cmd":"ping","id":[1,{"x":"y"}]})", kCommandLimits, j, err));
  EXPECT_EQ(j["id"][1]["x"], "y");
  EXPECT_EQ(j.begin().key(), "cmd");  // ordered_json keeps the order
}

}  // namespace
}  // namespace mxp::json
