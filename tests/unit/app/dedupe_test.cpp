// Dedupe: an address in flight is verified once and its repeats wait for it; a finished one
// answers its repeats from memory until its journal batch is durable, then from the journal
// (a real SqliteStore), which is asked only for addresses this run has seen unless the job was
// resumed; the results cache answers what is fresh; withdrawn ids give their lines back.
#include "app/job/dedupe.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "job_test_util.hpp"

namespace mxp::app {
namespace {

using test::TempDir;

TEST(Dedupe, RepeatsInFlightJoinAndAllGetTheOneResult) {
  Dedupe d;
  EXPECT_FALSE(d.join("a@x.test", 1, "a@x.test", "a@x.test"));
  d.submitted(7, "a@x.test", 1, "a@x.test", "a@x.test");
  EXPECT_TRUE(d.owns(7));
  EXPECT_TRUE(d.join("a@x.test", 3, "A@x.test", "3,A@x.test"));
  EXPECT_TRUE(d.join("a@x.test", 5, "a@x.test", "a@x.test"));
  EXPECT_FALSE(d.join("b@x.test", 4, "b@x.test", "b@x.test"));
  EXPECT_EQ(d.in_flight(), 1u);  // one address verified, three lines waiting

  std::vector<Waiter> lines;
  EXPECT_EQ(d.finish(7, "ignored", lines), "a@x.test");
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0].line, 1u);
  EXPECT_EQ(lines[0].raw, "");  // the record is the address itself
  EXPECT_EQ(lines[1].line, 3u);
  EXPECT_EQ(lines[1].email, "A@x.test");
  EXPECT_EQ(lines[1].record(), "3,A@x.test");
  EXPECT_EQ(lines[2].line, 5u);
  EXPECT_EQ(d.in_flight(), 0u);
  EXPECT_FALSE(d.owns(7));
  EXPECT_FALSE(d.join("a@x.test", 9, "a@x.test", "a@x.test"));  // no longer in flight

  // A result for an id not known here is keyed by its own address.
  lines.clear();
  EXPECT_EQ(d.finish(99, "c@x.test", lines), "c@x.test");
  EXPECT_TRUE(lines.empty());
}

TEST(Dedupe, WithdrawnIdsGiveTheirLinesBackWhenKept) {
  Dedupe d;
  d.submitted(1, "a@x.test", 1, "a@x.test", "a@x.test");
  EXPECT_TRUE(d.join("a@x.test", 2, "a@x.test", "a@x.test"));
  d.submitted(2, "b@x.test", 3, "b@x.test", "b@x.test");
  d.submitted(3, "c@x.test", 4, "c@x.test", "c@x.test");
  std::vector<Waiter> parked;
  d.withdrawn({1, 42}, true, parked);
  ASSERT_EQ(parked.size(), 2u);
  EXPECT_EQ(parked[0].line, 1u);
  EXPECT_EQ(parked[1].line, 2u);
  d.withdrawn({2}, false, parked);
  EXPECT_EQ(parked.size(), 2u);
  EXPECT_EQ(d.in_flight(), 1u);
  EXPECT_TRUE(d.owns(3));
  EXPECT_FALSE(d.owns(1));
}

TEST(Dedupe, WithoutAJournalRecentRecordsAnswerAndStayBounded) {
  Dedupe d;
  d.remember("a@x.test", "{\"a\":1}");
  d.remember("", "{\"syntax\":1}");  // no address: kept nowhere
  auto got = d.find_done("a@x.test");
  ASSERT_TRUE(got.ok());
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ(**got, "{\"a\":1}");
  EXPECT_FALSE(d.find_done("b@x.test")->has_value());
  EXPECT_FALSE(d.find_done("")->has_value());
  for (size_t i = 0; i < kRecentWithoutJournal; ++i)
    d.remember("u" + std::to_string(i) + "@x.test", "{}");
  // Full: the next record starts the memory over.
  EXPECT_FALSE(d.find_done("a@x.test")->has_value());
  EXPECT_TRUE(
      d.find_done("u" + std::to_string(kRecentWithoutJournal - 1) + "@x.test")->has_value());
}

// The journal's side of a finished record: its row and result, as the sink stores them.
void journal_record(store::SqliteStore& j, store::JobId job, uint64_t line, const std::string& addr,
                    const std::string& json) {
  std::vector<store::RowIn> rows = {{line, addr, addr}};
  ASSERT_TRUE(j.add_rows(job, rows));
  std::vector<store::ResultRecord> res = {
      {line, "deliverable", "accepted", store::unix_now(), json}};
  ASSERT_TRUE(j.record_results(job, res));
}

TEST(Dedupe, SealedRecordsAnswerFromMemoryUntilDurableThenFromTheJournal) {
  TempDir dir;
  ASSERT_TRUE(dir.ok());
  auto j = store::SqliteStore::open(dir.path("journal.db"));
  ASSERT_TRUE(j);
  auto job = (*j)->create_job("in", "{}");
  ASSERT_TRUE(job);
  Dedupe d;
  d.set_journal(j->get());
  d.remember("a@x.test", "{\"mem\":1}");
  d.sealed(1);
  EXPECT_EQ(*d.find_done("a@x.test").value(), "{\"mem\":1}");  // handed on, not durable yet
  d.remember("b@x.test", "{\"mem\":2}");
  d.sealed(2);
  d.durable(1);
  // Batch 1 is durable: memory forgets it and the journal is asked, which has not got it here.
  EXPECT_FALSE(d.find_done("a@x.test")->has_value());
  EXPECT_EQ(*d.find_done("b@x.test").value(), "{\"mem\":2}");
  journal_record(**j, *job, 1, "a@x.test", "{\"journal\":1}");
  EXPECT_EQ(*d.find_done("a@x.test").value(), "{\"journal\":1}");
  d.durable(2);
  EXPECT_FALSE(d.find_done("b@x.test")->has_value());
}

TEST(Dedupe, TheJournalIsAskedOnlyForAddressesSeenUnlessResumed) {
  TempDir dir;
  auto j = store::SqliteStore::open(dir.path("journal.db"));
  ASSERT_TRUE(j);
  auto job = (*j)->create_job("in", "{}");
  ASSERT_TRUE(job);
  journal_record(**j, *job, 1, "old@x.test", "{\"earlier\":1}");
  Dedupe d;
  d.set_journal(j->get());
  // Never seen in this run: the seen bits spare the query (a new job's journal has only this
  // run's work).
  EXPECT_FALSE(d.find_done("old@x.test")->has_value());
  d.set_resumed();  // a resumed job's journal holds earlier runs' work: always asked
  EXPECT_EQ(*d.find_done("old@x.test").value(), "{\"earlier\":1}");
}

TEST(Dedupe, TheCacheAnswersWhatIsFresh) {
  TempDir dir;
  auto c = store::SqliteStore::open(dir.path("cache.db"));
  ASSERT_TRUE(c);
  const auto now = store::unix_now();
  std::vector<store::CacheEntry> e = {{"new@x.test", now - 60, "{\"fresh\":1}"},
                                      {"old@x.test", now - 7200, "{\"stale\":1}"}};
  ASSERT_TRUE((*c)->put_cache(e));
  Dedupe d;
  EXPECT_FALSE(d.find_cached("new@x.test")->has_value());  // no cache
  d.set_cache(c->get(), std::chrono::hours(1));
  EXPECT_EQ(*d.find_cached("new@x.test").value(), "{\"fresh\":1}");
  EXPECT_FALSE(d.find_cached("old@x.test")->has_value());
  EXPECT_FALSE(d.find_cached("none@x.test")->has_value());
}

TEST(Dedupe, ReleaseForgetsEverything) {
  Dedupe d;
  d.submitted(1, "a@x.test", 1, "a@x.test", "a@x.test");
  d.remember("b@x.test", "{}");
  d.sealed(1);
  d.remember("c@x.test", "{}");
  d.release();
  EXPECT_EQ(d.in_flight(), 0u);
  EXPECT_FALSE(d.join("a@x.test", 2, "a@x.test", "a@x.test"));
  EXPECT_FALSE(d.find_done("b@x.test")->has_value());
  EXPECT_FALSE(d.find_done("c@x.test")->has_value());
}

}  // namespace
}  // namespace mxp::app
