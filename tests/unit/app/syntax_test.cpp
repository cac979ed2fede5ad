// The `syntax` command's records: one JSON object per input record, valid JSON for any bytes.
#include "app/syntax.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace mxp::app {
namespace {

nlohmann::json format(const Record& r, SyntaxStats& st) {
  std::string out;
  format_syntax_record(r, out, st);
  EXPECT_EQ(out.back(), '\n');
  EXPECT_EQ(out.find('\n'), out.size() - 1);  // exactly one line
  return nlohmann::json::parse(out);
}

TEST(SyntaxRecord, ValidAddress) {
  SyntaxStats st;
  auto j = format({7, "Alice@Known.Example", RecordIssue::None}, st);
  EXPECT_EQ(j["line"], 7);
  EXPECT_EQ(j["email"], "Alice@Known.Example");
  EXPECT_EQ(j["ok"], true);
  EXPECT_EQ(j["normalized"], "Alice@known.example");
  EXPECT_TRUE(j["error"].is_null());
  EXPECT_EQ(j["role"], false);
  EXPECT_EQ(st.ok, 1u);
}

TEST(SyntaxRecord, InvalidAddressHasErrorCodeAndNulls) {
  SyntaxStats st;
  auto j = format({1, "no-at-sign", RecordIssue::None}, st);
  EXPECT_EQ(j["ok"], false);
  EXPECT_TRUE(j["normalized"].is_null());
  EXPECT_TRUE(j["error"].is_string());
  EXPECT_NE(j["error"], "");
  EXPECT_EQ(st.bad, 1u);
}

TEST(SyntaxRecord, GarbageBytesStillGiveValidJson) {
  SyntaxStats st;
  std::string garbage;
  for (int i = 0; i < 256; ++i)
    if (i != '\n') garbage.push_back(static_cast<char>(i));
  auto j = format({3, garbage, RecordIssue::None}, st);
  EXPECT_EQ(j["ok"], false);
  EXPECT_EQ(j["line"], 3);
}

TEST(SyntaxRecord, ReaderIssuesBecomeErrors) {
  SyntaxStats st;
  EXPECT_EQ(format({2, "xxxx", RecordIssue::LineTooLong}, st)["error"], "line_too_long");
  auto j = format({3, {}, RecordIssue::MissingColumn}, st);
  EXPECT_EQ(j["error"], "missing_column");
  EXPECT_TRUE(j["email"].is_null());
}

TEST(SyntaxRecord, CrLfInjectionIsRefused) {
  SyntaxStats st;
  auto j = format({1, "a@b.example\r\nDATA", RecordIssue::None}, st);
  EXPECT_EQ(j["ok"], false);
}

}  // namespace
}  // namespace mxp::app
