// The shared vocabulary: Expected, the clock's integer round trip, the ASCII string helpers.
#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>

#include "core/clock.hpp"
#include "core/expected.hpp"
#include "core/strings.hpp"

namespace mxp::core {
namespace {

Expected<int, std::string> parse_digit(char c) {
  if (c < '0' || c > '9') return unexpected(std::string("not a digit: ") + c);
  return c - '0';
}

TEST(Expected, HoldsAValue) {
  auto r = parse_digit('7');
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(static_cast<bool>(r));
  EXPECT_EQ(r.value(), 7);
  EXPECT_EQ(*r, 7);
}

TEST(Expected, HoldsAnError) {
  auto r = parse_digit('x');
  ASSERT_FALSE(r.ok());
  EXPECT_FALSE(static_cast<bool>(r));
  EXPECT_EQ(r.error(), "not a digit: x");
}

TEST(Expected, SameValueAndErrorTypeIsNotAmbiguous) {
  Expected<std::string, std::string> good = std::string("value");
  Expected<std::string, std::string> bad = unexpected(std::string("error"));
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(good.value(), "value");
  EXPECT_EQ(good->size(), 5u);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error(), "error");
}

TEST(Expected, MovesTheValueOut) {
  Expected<std::string, int> r = std::string(100, 'a');
  std::string s = std::move(r).value();
  EXPECT_EQ(s.size(), 100u);
}

struct Base {
  virtual ~Base() = default;
  virtual int id() const { return 1; }
};
struct Derived : Base {
  int id() const override { return 2; }
};

// What converts to the value type is a value: a derived pointer, a literal for a string.
Expected<std::shared_ptr<const Base>, std::string> make(bool fail) {
  if (fail) return unexpected("no");
  return std::make_shared<Derived>();
}

TEST(Expected, TakesWhatConvertsToTheValue) {
  auto r = make(false);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)->id(), 2);
  EXPECT_EQ(make(true).error(), "no");
  Expected<std::string, std::string> s = "text";
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s, "text");
  Expected<std::optional<int>, std::string> none = std::nullopt;
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
}

TEST(Expected, VoidSuccessOrError) {
  Expected<void, std::string> fine;
  EXPECT_TRUE(fine.ok());
  Expected<void, std::string> failed = unexpected("disk full");
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error(), "disk full");
}

TEST(Clock, NanosecondsRoundTrip) {
  const TimePoint t = Clock::now();
  EXPECT_EQ(from_ns(to_ns(t)), t);
  EXPECT_EQ(to_ns(TimePoint{} + std::chrono::milliseconds(3)), 3'000'000);
}

TEST(Strings, LowerFoldsAsciiOnly) {
  EXPECT_EQ(lower('A'), 'a');
  EXPECT_EQ(lower('z'), 'z');
  EXPECT_EQ(lower('['), '[');
  EXPECT_EQ(lower("MX.Example.ORG"), "mx.example.org");
  EXPECT_EQ(lower("\xC3\x84"), "\xC3\x84");  // UTF-8 bytes pass through
}

TEST(Strings, UpperFoldsAsciiOnly) {
  EXPECT_EQ(upper('a'), 'A');
  EXPECT_EQ(upper('Z'), 'Z');
  EXPECT_EQ(upper('{'), '{');
  EXPECT_EQ(upper("8bitmime Pipelining"), "8BITMIME PIPELINING");
  EXPECT_EQ(upper("\xC3\xA4"), "\xC3\xA4");  // UTF-8 bytes pass through
}

TEST(Strings, TrimDropsSpaceAndTabByDefault) {
  EXPECT_EQ(trim(" \t value \t"), "value");
  EXPECT_EQ(trim("   "), "");
  EXPECT_EQ(trim("a b"), "a b");
  EXPECT_EQ(trim(" x\r"), "x\r");
  EXPECT_EQ(trim(" x\r", " \t\r"), "x");
  EXPECT_EQ(trim_back(" x\t "), " x");
}

TEST(Strings, CaseInsensitiveComparisons) {
  EXPECT_TRUE(iequals("Upgrade", "upgrade"));
  EXPECT_FALSE(iequals("Upgrade", "upgrades"));
  EXPECT_FALSE(iequals("a", "b"));
  EXPECT_TRUE(istarts_with("Bearer abc", "bearer "));
  EXPECT_FALSE(istarts_with("Bear", "bearer"));
  EXPECT_TRUE(icontains("530 Must issue a STARTTLS command", "starttls"));
  EXPECT_FALSE(icontains("530", "starttls"));
  EXPECT_TRUE(icontains("x", ""));
}

// One decoder for URLs' escapes (HTTP paths and queries, proxy and Redis URLs' userinfo).
TEST(Strings, PercentDecode) {
  EXPECT_EQ(percent_decode("p%40ss%3Aw%2fd"), "p@ss:w/d");
  EXPECT_EQ(percent_decode("a+b"), "a+b");
  EXPECT_EQ(percent_decode("a+b", true), "a b");
  EXPECT_EQ(percent_decode("%00x").value().size(), 2u);
  EXPECT_FALSE(percent_decode("%"));
  EXPECT_FALSE(percent_decode("ab%4"));
  EXPECT_FALSE(percent_decode("%g1"));
  EXPECT_EQ(hex_digit('F'), 15);
  EXPECT_EQ(hex_digit('x'), -1);
}

}  // namespace
}  // namespace mxp::core
