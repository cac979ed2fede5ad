// SqliteStore round trips: jobs, rows, result batches (atomic, and what a dropped batch leaves),
// resume, streaming order, counts, the results cache TTL, domain facts and schema versioning.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <chrono>
#include <string>
#include <vector>

#include "store/sqlite_store.hpp"
#include "temp_db.hpp"

namespace mxp::store {
namespace {

using namespace std::chrono_literals;
using test::TempDb;

std::unique_ptr<SqliteStore> open_ok(const std::string& path) {
  auto s = SqliteStore::open(path);
  EXPECT_TRUE(s.ok()) << (s ? "" : s.error().message);
  return s ? std::move(s).value() : nullptr;
}

std::vector<RowIn> make_rows(uint64_t first, uint64_t n) {
  std::vector<RowIn> rows;
  for (uint64_t i = first; i < first + n; ++i)
    rows.push_back({i, "User" + std::to_string(i) + "@Example.TEST",
                    "User" + std::to_string(i) + "@example.test"});
  return rows;
}

ResultRecord make_result(uint64_t line, std::string verdict = "deliverable",
                         UnixSeconds at = 1'800'000'000) {
  ResultRecord r;
  r.line = line;
  r.verdict = std::move(verdict);
  r.reason = r.verdict == "deliverable" ? "accepted" : "mailbox_not_found";
  r.checked_at = at;
  r.json = "{\"line\":" + std::to_string(line) + ",\"verdict\":\"" + r.verdict + "\"}";
  return r;
}

int64_t query_int(sqlite3* db, const char* sql) {
  sqlite3_stmt* q = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql, -1, &q, nullptr), SQLITE_OK) << sql;
  int64_t v = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_int64(q, 0) : -1;
  sqlite3_finalize(q);
  return v;
}

TEST(SqliteStore, OpensInWalModeWithSchemaVersion) {
  TempDb tmp;
  ASSERT_TRUE(tmp.ok());
  auto s = open_ok(tmp.path());
  ASSERT_TRUE(s);
  sqlite3_stmt* q = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(s->handle(), "PRAGMA journal_mode", -1, &q, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(q), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(q, 0)), "wal");
  sqlite3_finalize(q);
  EXPECT_EQ(query_int(s->handle(), "PRAGMA synchronous"), 1);  // NORMAL
  EXPECT_EQ(query_int(s->handle(), "SELECT value FROM meta WHERE key='schema_version'"),
            kSchemaVersion);
}

TEST(SqliteStore, JobRoundTrip) {
  TempDb tmp;
  auto s = open_ok(tmp.path());
  ASSERT_TRUE(s);
  auto id = s->create_job("in/list.csv", R"({"concurrency":64})");
  ASSERT_TRUE(id) << id.error().message;
  auto id2 = s->create_job("stdin", "{}");
  ASSERT_TRUE(id2);
  EXPECT_NE(*id, *id2);
  ASSERT_TRUE(s->set_job_state(*id, "running").ok());
  s.reset();
  s = open_ok(tmp.path());  // survives a reopen
  auto j = s->get_job(*id);
  ASSERT_TRUE(j) << j.error().message;
  EXPECT_EQ(j->input, "in/list.csv");
  EXPECT_EQ(j->options_json, R"({"concurrency":64})");
  EXPECT_EQ(j->state, "running");
  EXPECT_GT(j->created, 1'600'000'000);
  EXPECT_FALSE(s->get_job(9999));
  EXPECT_FALSE(s->set_job_state(9999, "x").ok());
}

TEST(SqliteStore, RowsStreamInLineOrderAcrossChunks) {
  TempDb tmp;
  auto s = open_ok(tmp.path());
  auto job = *s->create_job("x", "{}");
  // Chunks arrive out of order; iteration is by line.
  ASSERT_TRUE(s->add_rows(job, make_rows(101, 100)).ok());
  ASSERT_TRUE(s->add_rows(job, make_rows(1, 100)).ok());
  std::vector<uint64_t> seen;
  ASSERT_TRUE(s->for_each_pending(
                   job,
                   [&](const Row& r) {
                     EXPECT_EQ(r.raw, "User" + std::to_string(r.line) + "@Example.TEST");
                     EXPECT_EQ(r.normalized, "User" + std::to_string(r.line) + "@example.test");
                     seen.push_back(r.line);
                     return true;
                   },
                   7)  // a page size that does not divide 200
                  .ok());
  ASSERT_EQ(seen.size(), 200u);
  for (size_t i = 0; i < seen.size(); ++i)
    EXPECT_EQ(seen[i], i + 1);
  // A duplicate line rolls back its whole chunk.
  auto dup = make_rows(300, 5);
  dup.push_back({150, "dup", "dup"});
  auto st = s->add_rows(job, dup);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("UNIQUE"), std::string::npos) << st.error().message;
  EXPECT_EQ(s->count_by_state(job)->total(), 200u);
  EXPECT_FALSE(s->add_rows(job, std::vector<RowIn>{{0, "a", "a"}}).ok());
  // Rows are per job.
  auto other = *s->create_job("y", "{}");
  ASSERT_TRUE(s->add_rows(other, make_rows(1, 3)).ok());
  EXPECT_EQ(s->count_by_state(other)->pending, 3u);
}

TEST(SqliteStore, ResultsMarkRowsDoneAndStreamInOrder) {
  TempDb tmp;
  auto s = open_ok(tmp.path());
  auto job = *s->create_job("x", "{}");
  ASSERT_TRUE(s->add_rows(job, make_rows(1, 10)).ok());
  std::vector<uint64_t> flying{2, 3, 4, 5};
  ASSERT_TRUE(s->mark_in_flight(job, flying).ok());
  auto c = *s->count_by_state(job);
  EXPECT_EQ(c.pending, 6u);
  EXPECT_EQ(c.in_flight, 4u);
  std::vector<ResultRecord> rs{make_result(5), make_result(3, "undeliverable"), make_result(2)};
  ASSERT_TRUE(s->record_results(job, rs).ok());
  c = *s->count_by_state(job);
  EXPECT_EQ(c.pending, 6u);
  EXPECT_EQ(c.in_flight, 1u);
  EXPECT_EQ(c.done, 3u);
  auto v = *s->count_by_verdict(job);
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0], (std::pair<std::string, uint64_t>{"deliverable", 2}));
  EXPECT_EQ(v[1], (std::pair<std::string, uint64_t>{"undeliverable", 1}));
  std::vector<std::pair<uint64_t, std::string>> out;
  ASSERT_TRUE(s->for_each_result(
                   job,
                   [&](uint64_t line, std::string_view json) {
                     out.emplace_back(line, std::string(json));
                     return true;
                   },
                   2)
                  .ok());
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].first, 2u);
  EXPECT_EQ(out[1].first, 3u);
  EXPECT_EQ(out[2].first, 5u);
  EXPECT_EQ(out[1].second, make_result(3, "undeliverable").json);
  // Pending iteration skips done and in-flight rows.
  std::vector<uint64_t> pend;
  ASSERT_TRUE(s->for_each_pending(job, [&](const Row& r) {
                 pend.push_back(r.line);
                 return true;
               }).ok());
  EXPECT_EQ(pend, (std::vector<uint64_t>{1, 6, 7, 8, 9, 10}));
}

TEST(SqliteStore, BadResultRollsBackTheWholeBatch) {
  TempDb tmp;
  auto s = open_ok(tmp.path());
  auto job = *s->create_job("x", "{}");
  ASSERT_TRUE(s->add_rows(job, make_rows(1, 10)).ok());
  ASSERT_TRUE(s->record_results(job, std::vector{make_result(1)}).ok());
  // A second result for line 1, in the middle of a batch: nothing of the batch stays.
  auto st = s->record_results(job, std::vector{make_result(2), make_result(1), make_result(3)});
  EXPECT_FALSE(st.ok());
  // A line without a row.
  EXPECT_FALSE(s->record_results(job, std::vector{make_result(4), make_result(99)}).ok());
  auto c = *s->count_by_state(job);
  EXPECT_EQ(c.done, 1u);
  EXPECT_EQ(c.pending, 9u);
  EXPECT_EQ(query_int(s->handle(), "SELECT count(*) FROM results"), 1);
  // The store is still usable after the failures.
  ASSERT_TRUE(s->record_results(job, std::vector{make_result(2)}).ok());
  EXPECT_EQ(s->count_by_state(job)->done, 2u);
}

TEST(SqliteStore, ResultBatchCommitsBySizeAndAge) {
  TempDb tmp;
  auto s = open_ok(tmp.path());
  auto job = *s->create_job("x", "{}");
  ASSERT_TRUE(s->add_rows(job, make_rows(1, 20)).ok());
  ResultBatch b(*s, job, 4, 50ms);
  const auto t0 = ResultBatch::Clock::time_point{} + 1h;
  for (uint64_t i = 1; i <= 3; ++i)
    ASSERT_TRUE(b.add(make_result(i), t0).ok());
  EXPECT_EQ(b.buffered(), 3u);
  EXPECT_EQ(s->count_by_state(job)->done, 0u);
  ASSERT_TRUE(b.add(make_result(4), t0).ok());  // 4th: full -> one commit
  EXPECT_EQ(b.buffered(), 0u);
  EXPECT_EQ(s->count_by_state(job)->done, 4u);
  ASSERT_TRUE(b.add(make_result(5), t0 + 10ms).ok());
  ASSERT_TRUE(b.poll(t0 + 59ms).ok());  // 49 ms old: kept
  EXPECT_EQ(b.buffered(), 1u);
  ASSERT_TRUE(b.poll(t0 + 60ms).ok());  // 50 ms old: committed
  EXPECT_EQ(b.buffered(), 0u);
  EXPECT_EQ(b.committed(), 5u);
  EXPECT_EQ(s->count_by_state(job)->done, 5u);
  ASSERT_TRUE(b.add(make_result(6), t0 + 1s).ok());
  ASSERT_TRUE(b.add(make_result(7), t0 + 1s + 50ms).ok());  // add() also checks the age
  EXPECT_EQ(b.buffered(), 0u);
  EXPECT_EQ(s->count_by_state(job)->done, 7u);
}

TEST(SqliteStore, UncommittedBatchIsRedoneAfterReopen) {
  TempDb tmp;
  JobId job;
  {
    auto s = open_ok(tmp.path());
    job = *s->create_job("x", "{}");
    ASSERT_TRUE(s->add_rows(job, make_rows(1, 10)).ok());
    std::vector<uint64_t> lines{1, 2, 3, 4, 5, 6};
    ASSERT_TRUE(s->mark_in_flight(job, lines).ok());
    ResultBatch b(*s, job, 3, 1h);
    for (uint64_t i = 1; i <= 5; ++i)
      ASSERT_TRUE(b.add(make_result(i)).ok());
    EXPECT_EQ(b.buffered(), 2u);  // 4 and 5 are never committed: the "crash"
  }
  {
    // Also a transaction left open by a connection that goes away (the file-level crash).
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open(tmp.path().c_str(), &raw), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(raw,
                           "BEGIN; INSERT INTO results(job,line,verdict,reason,checked_at,"
                           "record) VALUES(1,6,'deliverable','accepted',0,'{}'); UPDATE rows SET "
                           "state=2 WHERE job=1 AND line=6;",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close_v2(raw);  // closing with an open transaction rolls it back
  }
  auto s = open_ok(tmp.path());
  auto c = *s->count_by_state(job);
  EXPECT_EQ(c.done, 3u);
  EXPECT_EQ(c.in_flight, 3u);  // 4, 5, 6
  EXPECT_EQ(query_int(s->handle(), "SELECT count(*) FROM results"), 3);
  EXPECT_EQ(query_int(s->handle(), "SELECT max(line) FROM results"), 3);
  auto reset = s->reset_in_flight(job);
  ASSERT_TRUE(reset);
  EXPECT_EQ(*reset, 3u);
  std::vector<uint64_t> pend;
  ASSERT_TRUE(s->for_each_pending(job, [&](const Row& r) {
                 pend.push_back(r.line);
                 return true;
               }).ok());
  EXPECT_EQ(pend, (std::vector<uint64_t>{4, 5, 6, 7, 8, 9, 10}));
}

TEST(SqliteStore, ForEachStopsWhenAsked) {
  TempDb tmp;
  auto s = open_ok(tmp.path());
  auto job = *s->create_job("x", "{}");
  ASSERT_TRUE(s->add_rows(job, make_rows(1, 50)).ok());
  int n = 0;
  ASSERT_TRUE(s->for_each_pending(
                   job, [&](const Row&) { return ++n < 12; }, 5)
                  .ok());
  EXPECT_EQ(n, 12);
}

TEST(SqliteStore, ResultsCacheHonoursMaxAge) {
  TempDb tmp;
  auto s = open_ok(tmp.path());
  const std::string a = "dup@example.test", b = "once@example.test";
  // The same address in two rows of one job and in another job; a syntax failure (no address).
  auto job1 = *s->create_job("x", "{}");
  auto job2 = *s->create_job("y", "{}");
  ASSERT_TRUE(s->add_rows(job1, std::vector<RowIn>{{1, "Dup@example.test", a},
                                                   {2, "dup@example.test", a},
                                                   {3, "bad@@", ""},
                                                   {4, "once@example.test", b}})
                  .ok());
  ASSERT_TRUE(s->add_rows(job2, std::vector<RowIn>{{1, a, a}}).ok());
  const UnixSeconds now = 1'800'000'000;
  auto old = make_result(1, "undeliverable", now - 7200);
  auto unparsed = make_result(3, "unknown", now);
  auto once = make_result(4, "deliverable", now - 7200);
  ASSERT_TRUE(s->record_results(job1, std::vector{old, unparsed, once}).ok());
  auto fresh = make_result(1, "deliverable", now - 60);
  fresh.json = "{\"fresh\":true}";
  ASSERT_TRUE(s->record_results(job2, std::vector{fresh}).ok());
  // (job1, line 2) has no result yet and must not make a hit.

  auto hit = s->lookup_cached_at(a, 1h, now);
  ASSERT_TRUE(hit) << hit.error().message;
  ASSERT_TRUE(hit->has_value());
  EXPECT_EQ((*hit)->json, fresh.json);  // the newest, from the other job
  EXPECT_EQ((*hit)->checked_at, now - 60);
  auto stale = s->lookup_cached_at(a, 59s, now);
  ASSERT_TRUE(stale);
  EXPECT_FALSE(stale->has_value());
  auto edge = s->lookup_cached_at(a, 60s, now);  // exactly max_age old: still valid
  ASSERT_TRUE(edge);
  EXPECT_TRUE(edge->has_value());
  auto b_new = s->lookup_cached_at(b, 1h, now);
  ASSERT_TRUE(b_new);
  EXPECT_FALSE(b_new->has_value());
  auto b_old = s->lookup_cached_at(b, 3h, now);
  ASSERT_TRUE(b_old && b_old->has_value());
  EXPECT_EQ((*b_old)->json, once.json);
  EXPECT_EQ((*b_old)->checked_at, now - 7200);
  auto none = s->lookup_cached_at("", 100h, now);
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->has_value());
  auto miss = s->lookup_cached_at("nobody@example.test", 100h, now);
  ASSERT_TRUE(miss);
  EXPECT_FALSE(miss->has_value());
}

TEST(SqliteStore, DomainFactsRoundTripAndExpire) {
  TempDb tmp;
  auto s = open_ok(tmp.path());
  const UnixSeconds now = 1'800'000'000;
  DomainFacts f;
  f.domain = "example.test";
  f.mx_json = R"([{"pref":10,"host":"mx1.example.test"}])";
  f.catch_all = true;
  f.greylisting_seen = true;
  f.last_contact = now - 5;
  f.expires = now + 300;
  ASSERT_TRUE(s->put_domain_facts(f).ok());
  DomainFacts g = f;
  g.domain = "other.test";
  g.catch_all.reset();  // unknown is kept apart from false
  g.greylisting_seen = false;
  ASSERT_TRUE(s->put_domain_facts(g).ok());

  auto got = s->get_domain_facts_at("example.test", now);
  ASSERT_TRUE(got && got->has_value());
  EXPECT_EQ((*got)->mx_json, f.mx_json);
  EXPECT_EQ((*got)->catch_all, std::optional<bool>(true));
  EXPECT_TRUE((*got)->greylisting_seen);
  EXPECT_EQ((*got)->last_contact, now - 5);
  EXPECT_EQ((*got)->expires, now + 300);
  auto og = s->get_domain_facts_at("other.test", now);
  ASSERT_TRUE(og && og->has_value());
  EXPECT_FALSE((*og)->catch_all.has_value());
  EXPECT_FALSE((*og)->greylisting_seen);

  auto expired = s->get_domain_facts_at("example.test", now + 300);
  ASSERT_TRUE(expired);
  EXPECT_FALSE(expired->has_value());
  // Replacing updates in place.
  f.catch_all = false;
  f.expires = now + 1000;
  ASSERT_TRUE(s->put_domain_facts(f).ok());
  got = s->get_domain_facts_at("example.test", now + 500);
  ASSERT_TRUE(got && got->has_value());
  EXPECT_EQ((*got)->catch_all, std::optional<bool>(false));
  EXPECT_EQ(query_int(s->handle(), "SELECT count(*) FROM domain_facts"), 2);
}

TEST(SqliteStore, NewerSchemaVersionIsAClearError) {
  TempDb tmp;
  { ASSERT_TRUE(open_ok(tmp.path())); }
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(tmp.path().c_str(), &raw), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(raw, "UPDATE meta SET value='99' WHERE key='schema_version'", nullptr,
                         nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(raw);
  auto s = SqliteStore::open(tmp.path());
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("schema version 99 is newer"), std::string::npos)
      << s.error().message;
}

TEST(SqliteStore, VersionOneFilesAreUpgradedKeepingTheirJobs) {
  TempDb tmp;
  JobId job;
  {
    auto s = open_ok(tmp.path());
    ASSERT_TRUE(s);
    job = *s->create_job("in.txt", "{}");
    RowIn r{1, "a@x.test", "a@x.test"};
    ASSERT_TRUE(s->add_rows(job, {&r, 1}).ok());
  }
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(tmp.path().c_str(), &raw), SQLITE_OK);
  ASSERT_EQ(
      sqlite3_exec(raw, "DROP TABLE cache; UPDATE meta SET value='1' WHERE key='schema_version'",
                   nullptr, nullptr, nullptr),
      SQLITE_OK);
  sqlite3_close(raw);
  auto s = open_ok(tmp.path());
  ASSERT_TRUE(s);
  EXPECT_EQ(query_int(s->handle(), "SELECT value FROM meta WHERE key='schema_version'"), 2);
  EXPECT_EQ(*s->max_line(job), 1u);
  CacheEntry e{"a@x.test", 100, "{}"};
  EXPECT_TRUE(s->put_cache({&e, 1}).ok());
}

TEST(SqliteStore, CacheKeepsTheNewestAndHonoursTheTtl) {
  TempDb tmp;
  auto s = open_ok(tmp.path());
  ASSERT_TRUE(s);
  std::vector<CacheEntry> v = {{"a@x.test", 1000, "old"}, {"b@x.test", 1500, "b"}};
  ASSERT_TRUE(s->put_cache(v).ok());
  CacheEntry newer{"a@x.test", 1800, "new"};
  ASSERT_TRUE(s->put_cache({&newer, 1}).ok());
  auto got = s->get_cache_at("a@x.test", std::chrono::seconds(300), 2000);
  ASSERT_TRUE(got && got->has_value());
  EXPECT_EQ((*got)->json, "new");
  EXPECT_EQ((*got)->checked_at, 1800);
  got = s->get_cache_at("a@x.test", std::chrono::seconds(100), 2000);  // 200 s old: expired
  ASSERT_TRUE(got);
  EXPECT_FALSE(got->has_value());
  got = s->get_cache_at("nobody@x.test", std::chrono::seconds(1000), 2000);
  ASSERT_TRUE(got);
  EXPECT_FALSE(got->has_value());
  auto pruned = s->prune_cache(1600);  // b (1500) goes, a (1800) stays
  ASSERT_TRUE(pruned);
  EXPECT_EQ(*pruned, 1u);
  EXPECT_EQ(query_int(s->handle(), "SELECT count(*) FROM cache"), 1);
}

TEST(SqliteStore, DonePagesJoinInputAndRecordInLineOrder) {
  TempDb tmp;
  auto s = open_ok(tmp.path());
  ASSERT_TRUE(s);
  EXPECT_FALSE(s->latest_job()->has_value());
  JobId job = *s->create_job("in.csv", "{}");
  std::vector<RowIn> rows;
  for (uint64_t l = 2; l <= 9; ++l)
    rows.push_back({l, "raw" + std::to_string(l), "a" + std::to_string(l) + "@x.test"});
  ASSERT_TRUE(s->add_rows(job, rows).ok());
  EXPECT_EQ(*s->max_line(job), 9u);
  std::vector<ResultRecord> res = {{7, "deliverable", "accepted", 1, "r7"},
                                   {3, "risky", "catch_all", 1, "r3"},
                                   {5, "unknown", "timeout", 1, "r5"}};
  ASSERT_TRUE(s->record_results(job, res).ok());
  auto p1 = s->done_page(job, 0, 2);
  ASSERT_TRUE(p1);
  ASSERT_EQ(p1->size(), 2u);
  EXPECT_EQ((*p1)[0].line, 3u);
  EXPECT_EQ((*p1)[0].raw, "raw3");
  EXPECT_EQ((*p1)[0].record, "r3");
  EXPECT_EQ((*p1)[1].line, 5u);
  auto p2 = s->done_page(job, 5, 10);
  ASSERT_TRUE(p2);
  ASSERT_EQ(p2->size(), 1u);
  EXPECT_EQ((*p2)[0].record, "r7");
  auto latest = s->latest_job();
  ASSERT_TRUE(latest && latest->has_value());
  EXPECT_EQ((*latest)->id, job);
  EXPECT_EQ((*latest)->input, "in.csv");
}

TEST(SqliteStore, ForeignDatabaseIsRefused) {
  TempDb tmp;
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(tmp.path().c_str(), &raw), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(raw, "CREATE TABLE t(x)", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(raw);
  auto s = SqliteStore::open(tmp.path());
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("not an mxprobe store"), std::string::npos);
}

TEST(SqliteStore, UnopenablePathIsAnError) {
  auto s = SqliteStore::open("/nonexistent-dir-mxp/x.db");
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().code, 0);
  EXPECT_NE(s.error().message.find("/nonexistent-dir-mxp/x.db"), std::string::npos);
}

TEST(SqliteStore, BusyWriterWaitsForTheLockThenFailsCleanly) {
  TempDb tmp;
  auto s = SqliteStore::open(tmp.path(), SqliteOptions{.busy_timeout_ms = 20});
  ASSERT_TRUE(s);
  auto job = *(*s)->create_job("x", "{}");
  // Another connection holds the write lock: our write gives up with SQLITE_BUSY as a value.
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(tmp.path().c_str(), &raw), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(raw, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  auto st = (*s)->add_rows(job, make_rows(1, 2));
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code & 0xff, SQLITE_BUSY) << st.error().message;
  ASSERT_EQ(sqlite3_exec(raw, "COMMIT", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(raw);
  EXPECT_TRUE((*s)->add_rows(job, make_rows(1, 2)).ok());
}

}  // namespace
}  // namespace mxp::store
