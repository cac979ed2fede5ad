// Runner: with a source and a sink of the test's own (the seams), a run reads the source's
// pages, has the sink expect each page's lines before any of its records is answered, answers
// a syntax error at once, a repeat from this run's records and the rest from the results cache
// (no DNS asked: nothing reaches the verifier), stores each page, and ends with exit 0 once the
// source has ended and the sink is flushed.
#include "app/runner.hpp"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "job_test_util.hpp"

namespace mxp::app {
namespace {

using test::TempDir;

class PagesSource final : public JobSource {
 public:
  explicit PagesSource(std::vector<std::vector<std::pair<uint64_t, std::string>>> pages)
      : pages_(std::move(pages)) {}
  core::Expected<void, store::Error> next(RecordBatch& out) override {
    if (at_ < pages_.size()) {
      for (const auto& [line, field] : pages_[at_]) {
        out.add(line, field, field, RecordIssue::None, false);
        ++records_;
      }
      ++at_;
    }
    return {};
  }
  bool ended() const override { return at_ == pages_.size(); }
  bool format_known() const override { return at_ > 0; }
  std::string_view header() const override { return ""; }
  unsigned char delimiter() const override { return ','; }
  uint64_t records() const override { return records_; }
  uint64_t bytes_done() const override { return 0; }
  uint64_t bytes_total() const override { return 0; }
  std::string fingerprint() const override { return "{}"; }
  const std::string& input_error() const override { return none_; }
  const std::string& read_error() const override { return none_; }

 private:
  std::vector<std::vector<std::pair<uint64_t, std::string>>> pages_;
  size_t at_ = 0;
  uint64_t records_ = 0;
  std::string none_;
};

// Keeps what it is told, in order, as text ("expect 1 2", "accept 2 deliverable", "store").
class LogSink final : public ResultSink {
 public:
  void input_format(std::string_view, unsigned char) override { log.push_back("format"); }
  void expect(const RecordBatch& page, const std::vector<std::string>& normalized) override {
    std::string e = "expect";
    for (size_t i = 0; i < page.size(); ++i) {
      e += " " + std::to_string(page.line(i));
      keys.push_back(normalized[i]);
    }
    log.push_back(e);
  }
  void store_read() override {
    if (log.empty() || log.back() != "store") log.push_back("store");
  }
  void accept(const pipeline::Result& r, std::string_view, std::string&& json) override {
    log.push_back("accept " + std::to_string(r.line) + " " + std::string(to_string(r.verdict)) +
                  (r.cached ? " cached" : ""));
    ++uncommitted;
    EXPECT_FALSE(json.empty());
  }
  void verified(const std::string&, const pipeline::Result&) override { ++verified_count; }
  bool wants_commit() const override { return false; }
  uint64_t commit() override {
    uncommitted = 0;
    return 0;
  }
  void give_up_order() override {}
  bool drain() override { return true; }
  bool flushed() const override { return uncommitted == 0; }
  bool behind() const override { return false; }
  void halt() override { halted = true; }
  void release() override {}

  std::vector<std::string> log, keys;
  int uncommitted = 0, verified_count = 0;
  bool halted = false;
};

TEST(Runner, PagesAreExpectedThenAnsweredAndTheRunEndsWithTheSource) {
  TempDir dir;
  ASSERT_TRUE(dir.ok());
  // The cache knows both addresses (fresh): nothing goes to the verifier.
  auto cache = store::SqliteStore::open(dir.path("cache.db"));
  ASSERT_TRUE(cache);
  std::vector<store::CacheEntry> entries;
  for (const char* a : {"a@example.com", "b@example.com"}) {
    pipeline::Result r;
    r.email = r.normalized = a;
    r.verdict = Verdict::Deliverable;
    std::string json;
    pipeline::append_json(r, json, false);
    entries.push_back({a, store::unix_now(), json});
  }
  ASSERT_TRUE((*cache)->put_cache(entries));

  EngineOptions eng;
  eng.dns = {"127.0.0.1:9"};  // never asked
  Engine e;
  std::FILE* diag = std::tmpfile();
  ASSERT_TRUE(make_engine(eng, false, e, diag));
  VerifyOptions opts;
  PagesSource source({{{1, "not an address"}, {2, "a@example.com"}, {3, "a@EXAMPLE.com"}},
                      {{4, "b@example.com"}}});
  LogSink sink;
  {
    Runner runner(e, opts, source, sink, diag, nullptr);
    runner.set_cache(cache->get(), nullptr);
    EXPECT_EQ(runner.run(), 0);
    EXPECT_TRUE(runner.finished());
    EXPECT_EQ(runner.written(), 4u);
    EXPECT_EQ(runner.deduped(), 1u);     // line 3: line 2's record
    EXPECT_EQ(runner.from_cache(), 2u);  // lines 2 and 4
    EXPECT_EQ(runner.count_of(Verdict::Deliverable), 3u);
    EXPECT_EQ(runner.count_of(Verdict::Undeliverable), 1u);  // the syntax error
    EXPECT_EQ(runner.stats().submitted, 0u);
    EXPECT_EQ(runner.failure(), "");
  }
  std::fclose(diag);
  const std::vector<std::string> want = {"format",
                                         "expect 1 2 3",
                                         "accept 1 undeliverable",
                                         "accept 2 deliverable cached",
                                         "accept 3 deliverable cached",
                                         "store",
                                         "expect 4",
                                         "accept 4 deliverable cached",
                                         "store"};
  EXPECT_EQ(sink.log, want);
  EXPECT_EQ(sink.keys,
            (std::vector<std::string>{"", "a@example.com", "a@example.com", "b@example.com"}));
  EXPECT_EQ(sink.verified_count, 0);
  EXPECT_FALSE(sink.halted);
}

}  // namespace
}  // namespace mxp::app
