// FileSource: the input read a page (chunk) at a time gives every record once, whatever the
// chunk boundaries; a CSV input's header and delimiter are known from its first record; the
// fingerprint is the CRC-32 of the bytes read (what check_input_unchanged compares); a resumed
// job's pending rows come first from a real journal, then the input past what it holds.
#include "app/job/file_source.hpp"

#include <gtest/gtest.h>
#include <zlib.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "job_test_util.hpp"

namespace mxp::app {
namespace {

using test::TempDir;

struct Got {
  uint64_t line;
  std::string field, raw;
  RecordIssue issue;
  bool stored;
  bool operator==(const Got&) const = default;
};

// Reads pages until the source has nothing more; `pages` counts those with records.
std::vector<Got> drain(FileSource& s, int* pages = nullptr) {
  std::vector<Got> out;
  RecordBatch b;
  for (int guard = 0; (!s.ended() || s.pending()) && guard < 100000; ++guard) {
    b.clear();
    auto st = s.next(b);
    EXPECT_TRUE(st.ok());
    if (pages && !b.empty()) ++*pages;
    for (size_t i = 0; i < b.size(); ++i)
      out.push_back(
          {b.line(i), std::string(b.field(i)), std::string(b.raw(i)), b.issue(i), b.stored(i)});
  }
  return out;
}

TEST(FileSource, EveryRecordOnceWhateverTheChunkBoundaries) {
  TempDir dir;
  ASSERT_TRUE(dir.ok());
  std::string text;
  for (int i = 1; i <= 50; ++i)
    text += "user" + std::to_string(i) + "@example.com\n";
  text += "last@example.com";  // no final newline
  const std::string path = dir.write("in.txt", text);
  for (size_t chunk : {size_t{1}, size_t{7}, size_t{64}, size_t{64 * 1024}}) {
    InputFile in;
    ASSERT_TRUE(in.open(path).ok());
    FileSource s(in, RecordOptions{}, path, chunk);
    int pages = 0;
    auto got = drain(s, &pages);
    ASSERT_EQ(got.size(), 51u) << "chunk " << chunk;
    for (int i = 0; i < 50; ++i) {
      EXPECT_EQ(got[i].line, uint64_t(i + 1));
      EXPECT_EQ(got[i].field, "user" + std::to_string(i + 1) + "@example.com");
      EXPECT_EQ(got[i].raw, got[i].field);  // a plain list: the record is the address
      EXPECT_FALSE(got[i].stored);
    }
    EXPECT_EQ(got[50].field, "last@example.com");
    EXPECT_EQ(s.records(), 51u);
    EXPECT_TRUE(s.format_known());
    EXPECT_EQ(s.header(), "");
    EXPECT_EQ(s.bytes_total(), text.size());
    EXPECT_TRUE(s.read_error().empty());
    EXPECT_TRUE(s.input_error().empty());
    // (InputFile returns the two bytes it looked at for the gzip magic on their own.)
    if (chunk == 64 * 1024)
      EXPECT_LE(pages, 2);
    else
      EXPECT_GT(pages, 2);
  }
}

TEST(FileSource, CsvHeaderAndDelimiterKnownFromTheFirstRecord) {
  TempDir dir;
  const std::string path =
      dir.write("in.csv", "name;Email;note\nAnn;ann@example.com;\"x;y\"\nBob;bob@example.com;z\n");
  InputFile in;
  ASSERT_TRUE(in.open(path).ok());
  FileSource s(in, RecordOptions{}, path, 20);  // the header alone fills the first chunk
  RecordBatch b;
  while (b.empty() && !s.ended())
    ASSERT_TRUE(s.next(b).ok());
  EXPECT_TRUE(s.format_known());
  EXPECT_EQ(s.header(), "name;Email;note");
  EXPECT_EQ(s.delimiter(), ';');
  auto rest = drain(s);
  std::vector<Got> all;
  for (size_t i = 0; i < b.size(); ++i)
    all.push_back({b.line(i), std::string(b.field(i)), std::string(b.raw(i)), b.issue(i), false});
  all.insert(all.end(), rest.begin(), rest.end());
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0],
            (Got{2, "ann@example.com", "Ann;ann@example.com;\"x;y\"", RecordIssue::None, false}));
  EXPECT_EQ(all[1].field, "bob@example.com");
  // A stored row's field is found again under the header.
  EXPECT_EQ(s.field_of("Cy;cy@example.com;w"), "cy@example.com");
}

TEST(FileSource, AMissingColumnIsAnInputError) {
  TempDir dir;
  const std::string path = dir.write("in.csv", "name,mail\nAnn,ann@example.com\n");
  InputFile in;
  ASSERT_TRUE(in.open(path).ok());
  RecordOptions ro;
  ro.column = "email";
  ro.column_given = true;
  FileSource s(in, ro, path, 4096);
  EXPECT_TRUE(drain(s).empty());
  EXPECT_TRUE(s.ended());
  EXPECT_FALSE(s.input_error().empty());
  EXPECT_TRUE(s.read_error().empty());
}

TEST(FileSource, FingerprintIsTheCrcOfTheBytesRead) {
  TempDir dir;
  std::string text;
  for (int i = 0; i < 2000; ++i)
    text += "a" + std::to_string(i) + "@example.com\n";
  const std::string path = dir.write("in.txt", text);
  InputFile in;
  ASSERT_TRUE(in.open(path).ok());
  FileSource s(in, RecordOptions{}, path, 1000);
  RecordBatch b;
  ASSERT_TRUE(s.next(b).ok());
  ASSERT_TRUE(s.next(b).ok());
  auto fp = nlohmann::json::parse(s.fingerprint());
  const uint64_t bytes = fp["bytes"];
  EXPECT_GE(bytes, 1000u);  // partway: the bytes read so far
  EXPECT_LT(bytes, text.size());
  EXPECT_EQ(fp["crc32"], crc32_z(0, reinterpret_cast<const Bytef*>(text.data()), bytes));
  EXPECT_EQ(fp["size"], text.size());
  drain(s);
  fp = nlohmann::json::parse(s.fingerprint());
  EXPECT_EQ(fp["bytes"], text.size());
  EXPECT_EQ(fp["crc32"], crc32_z(0, reinterpret_cast<const Bytef*>(text.data()), text.size()));

  // What --resume checks: the same input passes, a changed one is refused.
  auto journal = store::SqliteStore::open(dir.path("journal.db"));
  ASSERT_TRUE(journal);
  auto job = (*journal)->create_job(path, "{}");
  ASSERT_TRUE(job);
  ASSERT_TRUE((*journal)->set_meta("input_fingerprint:" + std::to_string(*job), s.fingerprint()));
  std::FILE* diag = std::tmpfile();
  EXPECT_EQ(check_input_unchanged(**journal, *job, path, diag), 0);
  text[10] ^= 1;
  dir.write("in.txt", text);
  EXPECT_EQ(check_input_unchanged(**journal, *job, path, diag), 2);
  std::fclose(diag);
}

// A resumed job: lines 1-6 were stored, 2 and 4 finished. The pending rows (1, 3, 5, 6) come
// first, marked stored, fields found under the job's header; then the input goes on past line
// 6, the lines before it read again (counted) but not returned.
TEST(FileSource, ResumedPendingRowsFirstThenTheInputPastTheJournal) {
  TempDir dir;
  ASSERT_TRUE(dir.ok());
  std::string text = "id,email\n";
  for (int i = 2; i <= 9; ++i)
    text += std::to_string(i) + ",u" + std::to_string(i) + "@example.com\n";
  const std::string path = dir.write("in.csv", text);
  auto journal = store::SqliteStore::open(dir.path("journal.db"));
  ASSERT_TRUE(journal);
  auto job = (*journal)->create_job(path, "{}");
  ASSERT_TRUE(job);
  std::vector<store::RowIn> rows;
  for (uint64_t l = 2; l <= 6; ++l)
    rows.push_back({l, std::to_string(l) + ",u" + std::to_string(l) + "@example.com",
                    "u" + std::to_string(l) + "@example.com"});
  ASSERT_TRUE((*journal)->add_rows(*job, rows));
  std::vector<store::ResultRecord> done = {{3, "deliverable", "accepted", 1, "{}"},
                                           {5, "deliverable", "accepted", 1, "{}"}};
  ASSERT_TRUE((*journal)->record_results(*job, done));

  InputFile in;
  ASSERT_TRUE(in.open(path).ok());
  FileSource s(in, RecordOptions{}, path, 16);
  s.set_journal(journal->get());
  s.resume(*job, "id,email", ',', 6);
  EXPECT_TRUE(s.pending());
  EXPECT_TRUE(s.catching_up());
  auto got = drain(s);
  std::vector<Got> want = {
      {2, "u2@example.com", "2,u2@example.com", RecordIssue::None, true},
      {4, "u4@example.com", "4,u4@example.com", RecordIssue::None, true},
      {6, "u6@example.com", "6,u6@example.com", RecordIssue::None, true},
      {7, "u7@example.com", "7,u7@example.com", RecordIssue::None, false},
      {8, "u8@example.com", "8,u8@example.com", RecordIssue::None, false},
      {9, "u9@example.com", "9,u9@example.com", RecordIssue::None, false},
  };
  EXPECT_EQ(got, want);
  EXPECT_FALSE(s.pending());
  EXPECT_FALSE(s.catching_up());
  EXPECT_EQ(s.records(), 8u);  // every record of the input, those of the journal too
}

// Paused, a resumed job reads through what its journal holds (catch_up), not its pending rows.
TEST(FileSource, CatchingUpReadsTheInputNotThePendingRows) {
  TempDir dir;
  const std::string path = dir.write("in.txt", "a@example.com\nb@example.com\nc@example.com\n");
  auto journal = store::SqliteStore::open(dir.path("journal.db"));
  ASSERT_TRUE(journal);
  auto job = (*journal)->create_job(path, "{}");
  ASSERT_TRUE(job);
  std::vector<store::RowIn> rows = {{1, "a@example.com", "a@example.com"},
                                    {2, "b@example.com", "b@example.com"}};
  ASSERT_TRUE((*journal)->add_rows(*job, rows));
  InputFile in;
  ASSERT_TRUE(in.open(path).ok());
  FileSource s(in, RecordOptions{}, path, 14);  // one line a chunk
  s.set_journal(journal->get());
  s.resume(*job, "", ',', 2);
  RecordBatch b;
  int reads = 0;
  while (b.empty() && reads < 100) {
    ASSERT_TRUE(s.catching_up()) << "read " << reads;
    s.catch_up(b);
    ++reads;
  }
  ASSERT_EQ(b.size(), 1u);  // lines 1 and 2 are the journal's: read, counted, not returned
  EXPECT_EQ(b.line(0), 3u);
  EXPECT_EQ(b.field(0), "c@example.com");
  EXPECT_FALSE(b.stored(0));
  EXPECT_EQ(s.records(), 3u);
  EXPECT_FALSE(s.catching_up());
  EXPECT_TRUE(s.pending());  // the pending rows still come with next()
}

}  // namespace
}  // namespace mxp::app
