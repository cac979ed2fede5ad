// JournalSink: records go out in input order; the output of a batch waits until the journal's
// writer says its transaction is durable; results are committed kCommitCount at a time, rows
// before results; an interrupt's flush writes what was answered around the gaps; a write error
// is reported once, as resumable; a resumed job's output is rebuilt from the journal.
#include "app/job/journal_sink.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "job_test_util.hpp"

namespace mxp::app {
namespace {

using test::slurp;
using test::TempDir;

// Only the fingerprint is asked of the source.
class StubSource final : public JobSource {
 public:
  core::Expected<void, store::Error> next(RecordBatch&) override { return {}; }
  bool ended() const override { return true; }
  bool format_known() const override { return true; }
  std::string_view header() const override { return ""; }
  unsigned char delimiter() const override { return ','; }
  uint64_t records() const override { return 0; }
  uint64_t bytes_done() const override { return 0; }
  uint64_t bytes_total() const override { return 0; }
  std::string fingerprint() const override { return "{\"bytes\":1}"; }
  const std::string& input_error() const override { return none_; }
  const std::string& read_error() const override { return none_; }

 private:
  std::string none_;
};

class Heard final : public ResultSink::Listener {
 public:
  void sink_durable(uint64_t batch) override { durable.push_back(batch); }
  void sink_ready() override { ++ready; }
  void sink_failed(const std::string& what, bool resumable) override {
    failed.push_back(what);
    this->resumable = resumable;
  }
  std::vector<uint64_t> durable;
  int ready = 0;
  std::vector<std::string> failed;
  bool resumable = false;
};

pipeline::Result result(uint64_t line) {
  pipeline::Result r;
  r.line = line;
  r.email = "u" + std::to_string(line) + "@x.test";
  r.normalized = r.email;
  r.verdict = Verdict::Deliverable;
  return r;
}

// A page of plain-list records with these lines.
RecordBatch page(std::vector<uint64_t> lines, std::vector<std::string>& keys) {
  RecordBatch b;
  keys.clear();
  for (uint64_t l : lines) {
    std::string e = "u" + std::to_string(l) + "@x.test";
    b.add(l, e, e, RecordIssue::None, false);
    keys.push_back(e);
  }
  return b;
}

struct Fixture {
  Fixture() : made(loop::make_loop()) {
    opts.order_input = true;
    opts.output = dir.path("out.jsonl");
    EXPECT_TRUE(out.open(opts.output).ok());
  }
  TempDir dir;
  loop::MakeLoopResult made;
  VerifyOptions opts;
  OutputFile out;
  StubSource source;
  Heard heard;
};

std::string line_of(uint64_t l) {
  std::string json;
  pipeline::append_json(result(l), json, false);
  return json;
}

void accept(JournalSink& s, uint64_t l) {
  auto r = result(l);
  std::string json;
  pipeline::append_json(r, json, false);
  s.accept(r, r.email, std::move(json));
}

TEST(JournalSink, WithoutAJournalRecordsGoOutInInputOrder) {
  Fixture f;
  ASSERT_TRUE(f.made.loop);
  JournalSink s(*f.made.loop, f.opts, f.out, f.source, stderr);
  s.set_listener(&f.heard);
  s.input_format("", ',');
  std::vector<std::string> keys;
  auto b = page({1, 2, 3}, keys);
  s.expect(b, keys);
  accept(s, 3);
  accept(s, 2);
  EXPECT_EQ(s.commit(), 0u);            // no journal: no batch
  EXPECT_EQ(slurp(f.opts.output), "");  // 3 and 2 wait for line 1
  EXPECT_FALSE(s.flushed());
  accept(s, 1);
  EXPECT_FALSE(s.wants_commit());
  s.commit();
  EXPECT_EQ(slurp(f.opts.output), line_of(1) + line_of(2) + line_of(3));
  EXPECT_TRUE(s.flushed());
  EXPECT_TRUE(f.heard.failed.empty());
}

TEST(JournalSink, OutputWaitsForItsTransactionRowsGoFirst) {
  Fixture f;
  ASSERT_TRUE(f.made.loop);
  auto reads = store::SqliteStore::open(f.dir.path("journal.db"));
  ASSERT_TRUE(reads);
  auto writes = store::Writer::open(f.dir.path("journal.db"), nullptr, "test");
  ASSERT_TRUE(writes);
  JournalSink s(*f.made.loop, f.opts, f.out, f.source, stderr);
  s.set_listener(&f.heard);
  s.set_journal(reads->get(), std::move(*writes));
  s.input_format("", ',');
  std::vector<std::string> keys;
  auto b = page({1, 2}, keys);
  s.expect(b, keys);
  s.store_read();  // the rows: the job's entry, then one transaction
  ASSERT_NE(s.job(), 0);
  accept(s, 1);
  accept(s, 2);
  const uint64_t sealed = s.commit();
  EXPECT_GT(sealed, 0u);
  // Handed to the writer: nothing is written before the writer says it is durable.
  EXPECT_EQ(slurp(f.opts.output), "");
  EXPECT_FALSE(s.flushed());
  ASSERT_TRUE(s.drain());
  EXPECT_EQ(slurp(f.opts.output), line_of(1) + line_of(2));
  ASSERT_FALSE(f.heard.durable.empty());
  EXPECT_EQ(f.heard.durable.back(), sealed);
  EXPECT_TRUE(s.flushed());
  auto counts = (*reads)->count_by_state(s.job());
  ASSERT_TRUE(counts);
  EXPECT_EQ(counts->done, 2u);
  auto fp = (*reads)->get_meta("input_fingerprint:" + std::to_string(s.job()));
  ASSERT_TRUE(fp);
  EXPECT_EQ(fp->value_or(""), "{\"bytes\":1}");  // the source's, with the rows
  s.set_journal(nullptr, nullptr);
  EXPECT_TRUE(f.heard.failed.empty());
}

TEST(JournalSink, ResultsAreCommittedInBatchesOfKCommitCount) {
  Fixture f;
  ASSERT_TRUE(f.made.loop);
  f.opts.order_input = false;
  auto reads = store::SqliteStore::open(f.dir.path("journal.db"));
  auto writes = store::Writer::open(f.dir.path("journal.db"), nullptr, "test");
  ASSERT_TRUE(reads && writes);
  JournalSink s(*f.made.loop, f.opts, f.out, f.source, stderr);
  s.set_listener(&f.heard);
  s.set_journal(reads->get(), std::move(*writes));
  s.input_format("", ',');
  std::vector<uint64_t> lines;
  for (uint64_t l = 1; l <= kCommitCount + 1; ++l)
    lines.push_back(l);
  std::vector<std::string> keys;
  auto b = page(lines, keys);
  s.expect(b, keys);
  s.store_read();
  for (uint64_t l = 1; l < kCommitCount; ++l)
    accept(s, l);
  EXPECT_FALSE(s.wants_commit());
  accept(s, kCommitCount);
  EXPECT_TRUE(s.wants_commit());
  const uint64_t first = s.commit();
  EXPECT_FALSE(s.wants_commit());
  accept(s, kCommitCount + 1);
  const uint64_t second = s.commit();
  EXPECT_EQ(second, first + 1);  // one transaction each
  ASSERT_TRUE(s.drain());
  auto counts = (*reads)->count_by_state(s.job());
  ASSERT_TRUE(counts);
  EXPECT_EQ(counts->done, kCommitCount + 1);
  s.set_journal(nullptr, nullptr);
}

TEST(JournalSink, AnInterruptWritesWhatWasAnsweredAroundTheGaps) {
  Fixture f;
  ASSERT_TRUE(f.made.loop);
  auto reads = store::SqliteStore::open(f.dir.path("journal.db"));
  auto writes = store::Writer::open(f.dir.path("journal.db"), nullptr, "test");
  ASSERT_TRUE(reads && writes);
  JournalSink s(*f.made.loop, f.opts, f.out, f.source, stderr);
  s.set_listener(&f.heard);
  s.set_journal(reads->get(), std::move(*writes));
  s.input_format("", ',');
  std::vector<std::string> keys;
  auto b = page({1, 2, 3}, keys);
  s.expect(b, keys);
  s.store_read();
  accept(s, 3);
  accept(s, 2);  // line 1 never answers
  s.commit();
  ASSERT_TRUE(s.drain());
  EXPECT_EQ(slurp(f.opts.output), "");  // held for line 1
  s.give_up_order();
  s.commit();
  ASSERT_TRUE(s.drain());
  EXPECT_EQ(slurp(f.opts.output), line_of(2) + line_of(3));
  EXPECT_TRUE(s.flushed());
  s.set_journal(nullptr, nullptr);
}

TEST(JournalSink, AWriteErrorIsSaidOnceAsResumable) {
  Fixture f;
  ASSERT_TRUE(f.made.loop);
  OutputFile full;
  if (!full.open("/dev/full")) GTEST_SKIP() << "no /dev/full";
  JournalSink s(*f.made.loop, f.opts, full, f.source, stderr);
  s.set_listener(&f.heard);
  s.input_format("", ',');
  std::vector<std::string> keys;
  auto b = page({1}, keys);
  s.expect(b, keys);
  accept(s, 1);
  s.commit();
  ASSERT_EQ(f.heard.failed.size(), 1u);
  EXPECT_NE(f.heard.failed[0].find("cannot write /dev/full"), std::string::npos);
  EXPECT_TRUE(f.heard.resumable);
  s.halt();
  s.commit();  // halted: nothing more is tried
  EXPECT_EQ(f.heard.failed.size(), 1u);
}

TEST(JournalSink, ResumeRebuildsTheOutputFromTheJournal) {
  Fixture f;
  ASSERT_TRUE(f.made.loop);
  f.opts.format = OutputFormat::Csv;
  store::JobId job = 0;
  {
    auto reads = store::SqliteStore::open(f.dir.path("journal.db"));
    auto writes = store::Writer::open(f.dir.path("journal.db"), nullptr, "test");
    ASSERT_TRUE(reads && writes);
    OutputFile first;
    ASSERT_TRUE(first.open(f.dir.path("first.csv")).ok());
    JournalSink s(*f.made.loop, f.opts, first, f.source, stderr);
    s.set_listener(&f.heard);
    s.set_journal(reads->get(), std::move(*writes));
    s.input_format("", ',');
    std::vector<std::string> keys;
    auto b = page({1, 2, 3}, keys);
    s.expect(b, keys);
    s.store_read();
    accept(s, 1);
    accept(s, 3);
    s.commit();
    ASSERT_TRUE(s.drain());
    job = s.job();
    s.set_journal(nullptr, nullptr);
  }
  auto reads = store::SqliteStore::open(f.dir.path("journal.db"));
  ASSERT_TRUE(reads);
  JournalSink again(*f.made.loop, f.opts, f.out, f.source, stderr);
  again.set_listener(&f.heard);
  again.set_journal(reads->get(), nullptr);
  std::vector<uint64_t> counted;
  ASSERT_TRUE(again.rebuild(job, [&](const pipeline::Result& r) { counted.push_back(r.line); }));
  EXPECT_EQ(counted, (std::vector<uint64_t>{1, 3}));
  const std::string csv = slurp(f.opts.output);
  EXPECT_EQ(csv.rfind("line,email,", 0), 0u);  // the header, once
  EXPECT_NE(csv.find("\r\n1,u1@x.test,"), std::string::npos);
  EXPECT_NE(csv.find("\r\n3,u3@x.test,"), std::string::npos);
  EXPECT_EQ(csv.find("u2@x.test"), std::string::npos);
  again.set_journal(nullptr, nullptr);
}

}  // namespace
}  // namespace mxp::app
