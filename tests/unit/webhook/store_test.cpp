// Tests of the webhook deliveries kept in a real journal (webhook/store.hpp): results committed
// by the job store are queued by the trigger, batches are ranges of that queue with the
// journal's records, attempts and acknowledgements outlive a reopen, the end comes once.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "webhook/store.hpp"

namespace mxp::webhook {
namespace {

using namespace std::chrono_literals;

struct Dir {
  Dir() {
    std::string t = (std::filesystem::temp_directory_path() / "mxp-webhook-XXXXXX").string();
    path = mkdtemp(t.data()) ? t : "";
  }
  ~Dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string db() const { return path + "/journal.db"; }
  std::string path;
};

// `n` rows, of which the lines in `done` get results (in that order: commit order).
void results(store::SqliteStore& s, store::JobId job, const std::vector<uint64_t>& done) {
  std::vector<store::ResultRecord> rs;
  for (uint64_t line : done)
    rs.push_back({line, "deliverable", "accepted", 1,
                  R"({"line":)" + std::to_string(line) + R"(,"verdict":"deliverable"})"});
  ASSERT_TRUE(s.record_results(job, rs).ok());
}

store::JobId make_job(store::SqliteStore& s, uint64_t rows) {
  auto job = *s.create_job("input", "{}");
  std::vector<store::RowIn> in;
  for (uint64_t i = 1; i <= rows; ++i)
    in.push_back({i, "a" + std::to_string(i) + "@x.test", "a" + std::to_string(i) + "@x.test"});
  EXPECT_TRUE(s.add_rows(job, in).ok());
  return job;
}

TEST(WebhookStore, NoWebhookUntilConfigured) {
  Dir d;
  auto w = Store::open(d.db());
  ASSERT_TRUE(w) << w.error().message;
  auto c = (*w)->config();
  ASSERT_TRUE(c);
  EXPECT_FALSE(*c);
  auto t = (*w)->totals();
  ASSERT_TRUE(t);
  EXPECT_EQ(t->deliveries, 0u);
}

TEST(WebhookStore, BatchesAreRangesOfCommittedResultsAndSurviveAReopen) {
  Dir d;
  Config cfg{"http://127.0.0.1:9/h", "0123456789abcdef", 3, 1500ms};
  {
    auto w = Store::open(d.db());
    ASSERT_TRUE(w);
    ASSERT_TRUE((*w)->configure(cfg).ok());
    // The job's own connection commits results; the trigger queues them.
    auto j = store::SqliteStore::open(d.db());
    ASSERT_TRUE(j);
    auto job = make_job(**j, 10);
    results(**j, job, {5, 2, 9, 1});
    EXPECT_EQ(*(*w)->unbatched(), 4u);
    EXPECT_EQ(*(*w)->make_batches(3, false, 1000ms), 1u);  // one full batch, one record waits
    EXPECT_EQ(*(*w)->unbatched(), 1u);
    EXPECT_EQ(*(*w)->make_batches(3, false, 1000ms), 0u);
    auto next = (*w)->next_pending();
    ASSERT_TRUE(next && *next);
    EXPECT_EQ((*next)->seq, 1);
    EXPECT_EQ((*next)->first, 1);
    EXPECT_EQ((*next)->last, 3);
    auto body = nlohmann::json::parse(*(*w)->body(**next, 7));
    EXPECT_EQ(body["delivery"], "7-1");
    EXPECT_EQ(body["from"], 1);
    EXPECT_EQ(body["to"], 3);
    EXPECT_EQ(body["count"], 3);
    ASSERT_EQ(body["records"].size(), 3u);
    EXPECT_EQ(body["records"][0]["line"], 5);  // commit order, not line order
    EXPECT_EQ(body["records"][2]["line"], 9);
    // Refused once, then acknowledged.
    ASSERT_TRUE((*w)->record_attempt(1, 2000ms, 500, "HTTP 500", false, 3000ms).ok());
    next = (*w)->next_pending();
    EXPECT_EQ((*next)->attempts, 1u);
    EXPECT_EQ((*next)->last_status, 500);
    EXPECT_EQ((*next)->next_try, 3000ms);
    ASSERT_TRUE((*w)->record_attempt(1, 3000ms, 200, "", true, 0ms).ok());
    next = (*w)->next_pending();
    ASSERT_TRUE(next);
    EXPECT_FALSE(*next);
  }
  // Reopened (a restart): the acknowledged batch stays acknowledged, its attempts are kept, the
  // waiting record is still waiting, and new results join the queue after it.
  auto w = Store::open(d.db());
  ASSERT_TRUE(w);
  auto c = (*w)->config();
  ASSERT_TRUE(c && *c);
  EXPECT_EQ((*c)->batch, 3u);
  EXPECT_EQ((*c)->interval, 1500ms);
  EXPECT_EQ((*c)->secret, cfg.secret);
  auto log = (*w)->deliveries(10);
  ASSERT_EQ(log->size(), 1u);
  EXPECT_EQ((*log)[0].acked, 3000ms);
  auto att = (*w)->attempts(1, 10);
  ASSERT_EQ(att->size(), 2u);
  EXPECT_EQ((*att)[0].status, 500);
  EXPECT_EQ((*att)[0].error, "HTTP 500");
  EXPECT_EQ((*att)[1].n, 2u);
  EXPECT_EQ((*att)[1].status, 200);
  EXPECT_EQ(*(*w)->unbatched(), 1u);
  auto j = store::SqliteStore::open(d.db());
  results(**j, 1, {3, 4});
  // The end: the rest in a last batch, then the end event, once.
  ASSERT_TRUE((*w)->end(7, 3, R"({"state":"finished"})", 5000ms).ok());
  ASSERT_TRUE((*w)->end(7, 3, R"({"state":"other"})", 6000ms).ok());
  EXPECT_TRUE(*(*w)->ended());
  log = (*w)->deliveries(10);
  ASSERT_EQ(log->size(), 3u);
  EXPECT_EQ((*log)[1].kind, "records");
  EXPECT_EQ((*log)[1].first, 4);
  EXPECT_EQ((*log)[1].last, 6);
  EXPECT_EQ((*log)[2].kind, "job.ended");
  auto end = nlohmann::json::parse(*(*w)->body((*log)[2], 7));
  EXPECT_EQ(end["event"], "job.ended");
  EXPECT_EQ(end["delivery"], "7-3");
  EXPECT_EQ(end["batches"], 2);
  EXPECT_EQ(end["batched_records"], 6);
  EXPECT_EQ(end["summary"]["state"], "finished");
  // Retries ran out: failed, and the next one is up.
  ASSERT_TRUE((*w)->record_attempt(2, 7000ms, 0, "connect: connection_refused", false, 0ms).ok());
  auto next = (*w)->next_pending();
  EXPECT_EQ((*next)->seq, 3);
  auto t = (*w)->totals();
  EXPECT_EQ(t->deliveries, 3u);
  EXPECT_EQ(t->acked, 1u);
  EXPECT_EQ(t->failed, 1u);
  EXPECT_EQ(t->pending, 1u);
  EXPECT_EQ(t->queued_records, 0u);
}

TEST(WebhookStore, WithoutBatchesOnlyTheEndEvent) {
  Dir d;
  auto w = Store::open(d.db());
  ASSERT_TRUE((*w)->configure({"http://127.0.0.1:9/h", "0123456789abcdef", 0, 0ms}).ok());
  auto j = store::SqliteStore::open(d.db());
  auto job = make_job(**j, 3);
  results(**j, job, {1, 2, 3});
  EXPECT_EQ(*(*w)->unbatched(), 0u);  // no trigger: nothing queued
  ASSERT_TRUE((*w)->end(1, 0, "{}", 1000ms).ok());
  auto log = (*w)->deliveries(10);
  ASSERT_EQ(log->size(), 1u);
  EXPECT_EQ((*log)[0].kind, "job.ended");
  EXPECT_EQ((*log)[0].seq, 1);
}

}  // namespace
}  // namespace mxp::webhook
