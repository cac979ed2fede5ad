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
  // The quote's line is reported; every line after it is a record of its own.
  ASSERT_EQ(got.size(), 101u);
  EXPECT_EQ(got[0], (Got{2, "\"never closed", RecordIssue::UnclosedQuote}));
  for (size_t i = 1; i < got.size(); ++i)
    EXPECT_EQ(got[i], (Got{i + 2, "filler line of text that goes on", RecordIssue::None}));
}

// A quoted local part written as is (`"john"@d1.test`, not RFC 4180's `"""john""@d1.test"`):
// the closing quote is followed by more of the field. libcsv kept reading it as quoted and
// swallowed every line after it (2 records for 2,002 lines).
TEST(Records, StrayQuoteInAFieldSwallowsNoLine) {
  std::string input = "email,n\n\"john\"@d1.test,1\n";
  for (int i = 0; i < 2000; ++i)
    input += "user" + std::to_string(i) + "@d1.test," + std::to_string(i) + "\n";
  for (size_t chunk : {size_t{0}, size_t{1}, size_t{7}, size_t{4096}}) {
    auto got = read_all(input, {}, chunk);
    ASSERT_EQ(got.size(), 2001u) << "chunk " << chunk;
    EXPECT_EQ(got[0], (Got{2, "\"john\"@d1.test", RecordIssue::None}));
    EXPECT_EQ(got[1], (Got{3, "user0@d1.test", RecordIssue::None}));
    EXPECT_EQ(got[2000], (Got{2002, "user1999@d1.test", RecordIssue::None}));
  }
  // Quoted as RFC 4180 says, the same address.
  auto got = read_all("email\n\"\"\"john\"\"@d1.test\"\nb@d1.test\n");
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0], (Got{2, "\"john\"@d1.test", RecordIssue::None}));
}

// A quote opened at a field's start and followed, lines later, by a stray one: no field spans
// those lines; the opening line is reported and the others are records again.
TEST(Records, StrayQuoteInsideAnOpenFieldEndsIt) {
  std::string input = "email,n\n\"a@x.example,1\nb@x.example,2\nc\"d@x.example,3\ne@x.example,4\n";
  for (size_t chunk : {size_t{0}, size_t{1}, size_t{5}}) {
    auto got = read_all(input, {}, chunk);
    ASSERT_EQ(got.size(), 4u) << "chunk " << chunk;
    EXPECT_EQ(got[0], (Got{2, "\"a@x.example", RecordIssue::UnclosedQuote}));
    EXPECT_EQ(got[1], (Got{3, "b@x.example", RecordIssue::None}));
    EXPECT_EQ(got[2], (Got{4, "c\"d@x.example", RecordIssue::None}));
    EXPECT_EQ(got[3], (Got{5, "e@x.example", RecordIssue::None}));
  }
  // A field that does span lines and is closed stays one record.
  auto got = read_all("email,note\na@x.example,\"two\nlines\"\nb@x.example,x\n");
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1], (Got{3, "b@x.example", RecordIssue::None}));
}

TEST(Records, ForcedLinesFormatKeepsHeaderLine) {
  RecordOptions o;
  o.format = InputFormat::Lines;
  auto got = read_all("email\na@x.example\n", o);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].field, "email");
}

// Raw record text: what the output needs to carry the user's own columns.
struct Raw {
  uint64_t number;
  std::string field, raw;
  RecordIssue issue;
  bool operator==(const Raw&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Raw& r) {
  return os << "{" << r.number << ",'" << r.field << "','" << r.raw << "'," << to_string(r.issue)
            << "}";
}

struct RawRun {
  std::vector<Raw> got;
  std::string header;
  unsigned char delimiter = 0;
  InputFormat format = InputFormat::Auto;
};

RawRun read_raw(std::string_view input, RecordOptions opts = {}, size_t chunk = 0) {
  RawRun run;
  RecordReader r(opts, [&](const Record& rec) {
    run.got.push_back({rec.number, std::string(rec.field), std::string(rec.raw), rec.issue});
  });
  bool ok = true;
  if (chunk == 0) chunk = input.size() ? input.size() : 1;
  for (size_t i = 0; i < input.size() && ok; i += chunk)
    ok = r.feed(input.substr(i, chunk));
  if (ok) ok = r.finish();
  EXPECT_TRUE(ok) << r.error();
  run.header = std::string(r.header());
  run.delimiter = r.delimiter();
  run.format = r.format();
  return run;
}

void expect_raw_split_invariant(std::string_view input, RecordOptions opts = {}) {
  auto whole = read_raw(input, opts);
  for (size_t chunk = 1; chunk <= input.size(); ++chunk) {
    auto part = read_raw(input, opts, chunk);
    ASSERT_EQ(part.got, whole.got) << "chunk " << chunk;
    ASSERT_EQ(part.header, whole.header) << "chunk " << chunk;
  }
}

TEST(RecordsRaw, CsvRecordsComeWithTheirRawText) {
  std::string input =
      "\xEF\xBB\xBF"
      "name,Email,note\r\n"
      "\"Bob, Jr\",bob@x.example,\"said \"\"hi\"\"\"\r\n"
      "Ann,ann@x.example,\"two\r\nlines, \"\"quoted\"\"\"\r\n"
      "\r\n"
      "   \n"
      "Carl\r\n"
      "  Dan , dan@x.example ,x\n"
      "last,l@x.example,end";
  auto run = read_raw(input);
  EXPECT_EQ(run.format, InputFormat::Csv);
  EXPECT_EQ(run.header, "name,Email,note");  // no BOM, no CR
  EXPECT_EQ(run.delimiter, ',');
  std::vector<Raw> want = {
      {2, "bob@x.example", "\"Bob, Jr\",bob@x.example,\"said \"\"hi\"\"\"", RecordIssue::None},
      {3, "ann@x.example", "Ann,ann@x.example,\"two\r\nlines, \"\"quoted\"\"\"", RecordIssue::None},
      {4, "", "Carl", RecordIssue::MissingColumn},  // blank lines are no records
      {5, "dan@x.example", "  Dan , dan@x.example ,x", RecordIssue::None},
      {6, "l@x.example", "last,l@x.example,end", RecordIssue::None}};
  EXPECT_EQ(run.got, want);
  expect_raw_split_invariant(input);
}

TEST(RecordsRaw, MultiLineQuotedAddressKeepsItsLineEndings) {
  auto run = read_raw("id,email\n1,\"a\r\nb\"\r\n2,\"c\nd\"\n");
  std::vector<Raw> want = {{2, "a\r\nb", "1,\"a\r\nb\"", RecordIssue::None},
                           {3, "c\nd", "2,\"c\nd\"", RecordIssue::None}};
  EXPECT_EQ(run.got, want);
}

TEST(RecordsRaw, SemicolonAndTabDelimiters) {
  std::string semi = "x;\"E-mail\";email\n\"1;2\";y;a@x.example\n";
  auto run = read_raw(semi);
  EXPECT_EQ(run.delimiter, ';');
  EXPECT_EQ(run.header, "x;\"E-mail\";email");
  ASSERT_EQ(run.got.size(), 1u);
  EXPECT_EQ(run.got[0], (Raw{2, "a@x.example", "\"1;2\";y;a@x.example", RecordIssue::None}));
  expect_raw_split_invariant(semi);

  auto tab = read_raw("email\tname\r\nb@x.example\t\tB\r\n");
  EXPECT_EQ(tab.delimiter, '\t');
  EXPECT_EQ(tab.header, "email\tname");
  ASSERT_EQ(tab.got.size(), 1u);
  EXPECT_EQ(tab.got[0].raw, "b@x.example\t\tB");
}

TEST(RecordsRaw, BareCarriageReturnDoesNotSplitACsvRecord) {
  // One line, one record: a CR alone is no line ending (plain lists agree).
  auto run = read_raw("email,n\na@x.example\rb,1\nc@x.example,2\n");
  std::vector<Raw> want = {{2, "a@x.example\rb", "a@x.example\rb,1", RecordIssue::None},
                           {3, "c@x.example", "c@x.example,2", RecordIssue::None}};
  EXPECT_EQ(run.got, want);
}

TEST(RecordsRaw, PlainListRawIsTheField) {
  RecordOptions o;
  o.max_line = 16;
  std::string input =
      "\xEF\xBB\xBF"
      "a@x.example\r\n\"q,\"@x.example\n" +
      std::string(40, 'z') + "\nlast";
  auto run = read_raw(input, o);
  EXPECT_EQ(run.format, InputFormat::Lines);
  EXPECT_EQ(run.header, "");
  EXPECT_EQ(run.delimiter, ',');
  std::vector<Raw> want = {
      {1, "a@x.example", "a@x.example", RecordIssue::None},
      {2, "\"q,\"@x.example", "\"q,\"@x.example", RecordIssue::None},
      {3, std::string(16, 'z'), std::string(16, 'z'), RecordIssue::LineTooLong},
      {4, "last", "last", RecordIssue::None}};
  EXPECT_EQ(run.got, want);
  expect_raw_split_invariant(input, o);
}

TEST(RecordsRaw, OverlongCsvRecordsCarryTheirFirstMaxRecordBytes) {
  RecordOptions o;
  o.max_record = 100;
  // A runaway quote: the record's lines so far, cut at max_record.
  std::string runaway = "email,n\n\"never closed";
  for (int i = 0; i < 20; ++i)
    runaway += "\nfiller line";
  runaway += "\"\n";
  auto run = read_raw(runaway, o);
  ASSERT_EQ(run.got.size(), 21u);  // the quote's line reported, each line after it a record
  EXPECT_EQ(run.got[0].issue, RecordIssue::UnclosedQuote);
  EXPECT_EQ(run.got[0].raw, "\"never closed");
  EXPECT_EQ(run.got[20].raw, "filler line\"");
  expect_raw_split_invariant(runaway, o);

  // One overlong line: its first max_record bytes; reading goes on.
  std::string line = "email,n\n" + std::string(300, 'y') + ",1\nb@x.example,2\n";
  run = read_raw(line, o);
  ASSERT_EQ(run.got.size(), 2u);
  EXPECT_EQ(run.got[0], (Raw{2, "", std::string(100, 'y'), RecordIssue::RecordTooLong}));
  EXPECT_EQ(run.got[1], (Raw{3, "b@x.example", "b@x.example,2", RecordIssue::None}));
}

TEST(RecordsRaw, QuoteOpenAtTheEndStillGivesItsRecord) {
  auto run = read_raw("email\n\"a@x.example\nmore");
  ASSERT_EQ(run.got.size(), 2u);
  EXPECT_EQ(run.got[0], (Raw{2, "\"a@x.example", "\"a@x.example", RecordIssue::UnclosedQuote}));
  EXPECT_EQ(run.got[1], (Raw{3, "more", "more", RecordIssue::None}));
}

}  // namespace
}  // namespace mxp::app
