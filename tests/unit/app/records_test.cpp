// Input records: plain lists and CSV, fed in chunks of every size; bad input becomes an error
// record, never a lost or extra record.
#include "app/records.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace mxp::app {
namespace {

struct Got {
  uint64_t number;
  std::string field;
  RecordIssue issue;
  bool operator==(const Got&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Got& g) {
  return os << "{" << g.number << ",'" << g.field << "'," << to_string(g.issue) << "}";
}

// Feeds `input` in chunks of `chunk` bytes (0: all at once).
std::vector<Got> read_all(std::string_view input, RecordOptions opts = {}, size_t chunk = 0,
                          std::string* error = nullptr) {
  std::vector<Got> got;
  RecordReader r(opts, [&](const Record& rec) {
    got.push_back({rec.number, std::string(rec.field), rec.issue});
  });
  bool ok = true;
  if (chunk == 0) chunk = input.size() ? input.size() : 1;
  for (size_t i = 0; i < input.size() && ok; i += chunk)
    ok = r.feed(input.substr(i, chunk));
  if (ok) ok = r.finish();
  if (error)
    *error = r.error();
  else
    EXPECT_TRUE(ok) << r.error();
  return got;
}

// Every chunking of the input gives the same records as feeding it whole.
void expect_split_invariant(std::string_view input, RecordOptions opts = {}) {
  auto whole = read_all(input, opts);
  for (size_t chunk = 1; chunk <= input.size(); ++chunk)
    ASSERT_EQ(read_all(input, opts, chunk), whole) << "chunk " << chunk;
}

TEST(Records, PlainListOneRecordPerLine) {
  auto got = read_all("a@b.example\r\nc@d.example\n\n  e@f.example  \nlast@x.example");
  std::vector<Got> want = {{1, "a@b.example", RecordIssue::None},
                           {2, "c@d.example", RecordIssue::None},
                           {3, "", RecordIssue::None},
                           {4, "  e@f.example  ", RecordIssue::None},
                           {5, "last@x.example", RecordIssue::None}};
  EXPECT_EQ(got, want);
  expect_split_invariant("a@b.example\r\nc@d.example\n\n  e@f.example  \nlast@x.example");
}

TEST(Records, NoTrailingNewlineAndEmptyInput) {
  EXPECT_EQ(read_all("x@y.example").size(), 1u);
  EXPECT_TRUE(read_all("").empty());
  EXPECT_EQ(read_all("\n").size(), 1u);  // one empty line is one record
}

TEST(Records, OverlongLineIsOneErrorRecordAndReadingGoesOn) {
  std::string big(1 << 20, 'a');  // a 1 MB line
  std::string input = "ok@x.example\n" + big + "\nnext@x.example\n";
  for (size_t chunk : {size_t{0}, size_t{7}, size_t{4096}}) {
    auto got = read_all(input, {}, chunk);
    ASSERT_EQ(got.size(), 3u);
    EXPECT_EQ(got[1].issue, RecordIssue::LineTooLong);
    EXPECT_EQ(got[1].number, 2u);
    EXPECT_EQ(got[1].field.size(), RecordOptions{}.max_line);
    EXPECT_EQ(got[2], (Got{3, "next@x.example", RecordIssue::None}));
  }
}

TEST(Records, BinaryGarbageKeepsLineCount) {
  std::string garbage;
  for (int i = 0; i < 256; ++i)
    garbage.push_back(static_cast<char>(i));
  std::string input = garbage + garbage + "\nz@z.example\n";
  int newlines = 0;
  for (char c : input)
    newlines += c == '\n';
  auto got = read_all(input);
  EXPECT_EQ(got.size(), static_cast<size_t>(newlines));
  EXPECT_EQ(got.back().field, "z@z.example");
}

TEST(Records, CsvHeaderDetectedByEmailColumn) {
  std::string input =
      "name,Email,city\r\n"
      "Ann,ann@x.example,Oslo\r\n"
      "\"Bob, Jr\",\"bob@x.example\",Rome\r\n"
      "Carl\r\n";
  std::vector<Got> want = {{2, "ann@x.example", RecordIssue::None},
                           {3, "bob@x.example", RecordIssue::None},
                           {4, "", RecordIssue::MissingColumn}};
  EXPECT_EQ(read_all(input), want);
  expect_split_invariant(input);
}

TEST(Records, CsvQuotedAddressWithCommaAndBom) {
  std::string input =
      "\xEF\xBB\xBF"
      "email;x\n\"\"\"a,b\"\"@x.example\";1\nc@x.example;2\n";
  std::vector<Got> want = {{2, "\"a,b\"@x.example", RecordIssue::None},
                           {3, "c@x.example", RecordIssue::None}};
  EXPECT_EQ(read_all(input), want);
  expect_split_invariant(input);
}

TEST(Records, ColumnByName) {
  RecordOptions o;
  o.column = "Work Mail";
  o.column_given = true;
  auto got = read_all("id\twork mail\n1\tw@x.example\n", o);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].field, "w@x.example");
}

TEST(Records, MissingNamedColumnIsAnUpFrontError) {
  RecordOptions o;
  o.column = "mail";
  o.column_given = true;
  std::string err;
  auto got = read_all("id,email\n1,a@x.example\n", o, 0, &err);
  EXPECT_TRUE(got.empty());
  EXPECT_NE(err.find("no column named 'mail'"), std::string::npos);
}

TEST(Records, PlainListWithCommasIsNotCsv) {
  // No email column in the first line: a plain list, and every line is a record.
  auto got = read_all("\"a,b\"@x.example\nc@x.example\n");
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].field, "\"a,b\"@x.example");
}

TEST(Records, RunawayQuoteIsBoundedAndRecovers) {
  RecordOptions o;
  o.max_record = 1000;
  std::string input = "email\n\"never closed";
  for (int i = 0; i < 100; ++i)
    input += "\nfiller line of text that goes on";
  auto got = read_all(input, o);
  ASSERT_FALSE(got.empty());
  EXPECT_EQ(got[0].issue, RecordIssue::RecordTooLong);
  EXPECT_EQ(got[0].number, 2u);
}

TEST(Records, ForcedLinesFormatKeepsHeaderLine) {
  RecordOptions o;
  o.format = InputFormat::Lines;
  auto got = read_all("email\na@x.example\n", o);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].field, "email");
}

}  // namespace
}  // namespace mxp::app
