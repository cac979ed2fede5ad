// Process-level crash test: a forked child records results in batches and is killed (SIGKILL by
// the parent at a random point of its progress, or _exit on its own), then the parent reopens
// the store and checks that nothing is lost or doubled, resumes, and finishes the job.
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <random>
#include <string>
#include <vector>

#include "store/sqlite_store.hpp"
#include "temp_db.hpp"

namespace mxp::store {
namespace {

using namespace std::chrono_literals;

constexpr uint64_t kRows = 3000;
constexpr size_t kInFlightChunk = 100;  // the "engine" takes this many rows at a time
constexpr size_t kBatch = 40;           // results per committed transaction

ResultRecord result_for(const Row& r) {
  ResultRecord out;
  out.line = r.line;
  out.verdict = r.line % 3 ? "deliverable" : "undeliverable";
  out.reason = r.line % 3 ? "accepted" : "mailbox_not_found";
  out.checked_at = 1'800'000'000;
  out.json = "{\"line\":" + std::to_string(r.line) + "}";
  return out;
}

// Works through the pending rows like the engine would: marks a chunk in flight, records its
// results through a ResultBatch. Writes one byte to `progress_fd` after each committed batch.
// With exit_after > 0, _exits (no flush, no close) once that many batches have committed.
// Returns false on a store error.
bool work(JobStore& s, JobId job, int progress_fd, int exit_after) {
  ResultBatch batch(s, job, kBatch, 1h);
  int batches = 0;
  uint64_t after = 0;
  for (;;) {
    auto rows = s.pending_rows(job, after, kInFlightChunk);
    if (!rows) return false;
    if (rows->empty()) break;
    std::vector<uint64_t> lines;
    for (const Row& r : *rows)
      lines.push_back(r.line);
    if (!s.mark_in_flight(job, lines).ok()) return false;
    for (const Row& r : *rows) {
      uint64_t before = batch.committed();
      if (!batch.add(result_for(r)).ok()) return false;
      if (batch.committed() != before) {
        ++batches;
        if (progress_fd >= 0) {
          char b = 1;
          if (write(progress_fd, &b, 1) != 1) _exit(3);
        }
        if (exit_after > 0 && batches == exit_after) _exit(0);
      }
      after = r.line;
    }
  }
  return batch.flush().ok();
}

int64_t q(sqlite3* db, const char* sql) {
  sqlite3_stmt* st = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql, -1, &st, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
  sqlite3_finalize(st);
  return v;
}

void check_invariants(sqlite3* db) {
  // Every result's row is done.
  EXPECT_EQ(q(db,
              "SELECT count(*) FROM results r LEFT JOIN rows w ON w.job=r.job AND w.line=r.line "
              "WHERE w.state IS NOT 2"),
            0);
  // Every done row has a result...
  EXPECT_EQ(q(db,
              "SELECT count(*) FROM rows w WHERE w.state=2 AND NOT EXISTS "
              "(SELECT 1 FROM results r WHERE r.job=w.job AND r.line=w.line)"),
            0);
  // ...and exactly one.
  EXPECT_EQ(q(db,
              "SELECT count(*) FROM (SELECT job,line FROM results GROUP BY job,line "
              "HAVING count(*)>1)"),
            0);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)), "ok");
  sqlite3_finalize(st);
}

class CrashTest : public ::testing::TestWithParam<bool> {};  // true: SIGKILL, false: _exit

TEST_P(CrashTest, KilledWriterLosesNothingCommittedAndDoublesNothing) {
  const bool use_sigkill = GetParam();
  std::random_device rd;
  const uint32_t seed = rd();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  constexpr int kTotalBatches = static_cast<int>(kRows / kBatch);

  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    test::TempDb tmp;
    ASSERT_TRUE(tmp.ok());
    JobId job;
    {
      auto s = SqliteStore::open(tmp.path());
      ASSERT_TRUE(s);
      job = *(*s)->create_job("crash", "{}");
      std::vector<RowIn> rows;
      for (uint64_t i = 1; i <= kRows; ++i)
        rows.push_back(
            {i, "u" + std::to_string(i) + "@x.test", "u" + std::to_string(i) + "@x.test"});
      ASSERT_TRUE((*s)->add_rows(job, rows).ok());
    }
    const int stop_at = std::uniform_int_distribution<int>(1, kTotalBatches - 2)(rng);
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      auto s = SqliteStore::open(tmp.path());
      if (!s) _exit(2);
      bool ok = work(**s, job, fds[1], use_sigkill ? 0 : stop_at);
      _exit(ok ? 0 : 2);
    }
    close(fds[1]);
    int acked = 0;
    if (use_sigkill) {
      // Let the child commit `stop_at` batches, then kill it wherever it is by then (often in
      // the middle of the next transaction).
      char b;
      while (acked < stop_at && read(fds[0], &b, 1) == 1)
        ++acked;
      kill(pid, SIGKILL);
    }
    int wstatus = 0;
    ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
    if (!use_sigkill) {
      char b;
      while (read(fds[0], &b, 1) == 1)
        ++acked;
      ASSERT_TRUE(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) << wstatus;
    }
    close(fds[0]);
    ASSERT_EQ(acked, stop_at);

    auto s = SqliteStore::open(tmp.path());
    ASSERT_TRUE(s) << s.error().message;
    SqliteStore& st = **s;
    check_invariants(st.handle());
    auto c = *st.count_by_state(job);
    EXPECT_EQ(c.total(), kRows);
    // Every batch the child saw committed is there.
    EXPECT_GE(c.done, static_cast<uint64_t>(acked) * kBatch);
    // (No upper bound: under load the child may finish before the kill lands; still valid.)
    if (!use_sigkill) {
      // _exit right after a commit: exactly the acknowledged batches are done, and the rest of
      // the chunk the child had taken is still in flight.
      const uint64_t done = static_cast<uint64_t>(acked) * kBatch;
      EXPECT_EQ(c.done, done);
      EXPECT_EQ(c.in_flight, (kInFlightChunk - done % kInFlightChunk) % kInFlightChunk);
    }

    // Resume: in-flight work is redone, then the job completes with one result per row.
    auto reset = st.reset_in_flight(job);
    ASSERT_TRUE(reset);
    EXPECT_EQ(*reset, c.in_flight);
    EXPECT_EQ(st.count_by_state(job)->in_flight, 0u);
    ASSERT_TRUE(work(st, job, -1, 0));
    check_invariants(st.handle());
    c = *st.count_by_state(job);
    EXPECT_EQ(c.done, kRows);
    uint64_t expect_line = 1;
    ASSERT_TRUE(st.for_each_result(job, [&](uint64_t line, std::string_view json) {
                    EXPECT_EQ(line, expect_line);
                    EXPECT_EQ(json, "{\"line\":" + std::to_string(line) + "}");
                    ++expect_line;
                    return true;
                  }).ok());
    EXPECT_EQ(expect_line, kRows + 1);
    if (HasFailure()) return;
  }
}

INSTANTIATE_TEST_SUITE_P(Store, CrashTest, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "SigKill" : "SelfExit"; });

}  // namespace
}  // namespace mxp::store
