// SqliteStore: the embedded JobStore on one SQLite file in WAL mode, with every statement
// prepared once and kept, and a versioned schema (`meta` table). Not thread-safe: one loop thread
// owns it (docs/architecture.md); other processes may read/write the file (SQLITE_BUSY waits up to
// the busy timeout).
#pragma once

#include <memory>
#include <string>

#include "store/job_store.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace mxp::store {

inline constexpr int kSchemaVersion = 2;  // 2: the cache table

struct SqliteOptions {
  int busy_timeout_ms = 5000;
};

class SqliteStore final : public JobStore {
 public:
  // Opens (creating if needed) the database at `path`. Fails with a clear message if the file
  // was written by a newer schema version than this build knows.
  static Expected<std::unique_ptr<SqliteStore>> open(const std::string& path,
                                                     SqliteOptions opts = {});
  ~SqliteStore() override;
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  Expected<JobId> create_job(std::string_view input, std::string_view options_json) override;
  Expected<JobInfo> get_job(JobId job) override;
  Status set_job_state(JobId job, std::string_view state) override;
  Status add_rows(JobId job, std::span<const RowIn> rows) override;
  Status mark_in_flight(JobId job, std::span<const uint64_t> lines) override;
  Status record_results(JobId job, std::span<const ResultRecord> results) override;
  Expected<uint64_t> reset_in_flight(JobId job) override;
  Expected<std::vector<Row>> pending_rows(JobId job, uint64_t after_line, size_t limit) override;
  Expected<std::vector<std::pair<uint64_t, std::string>>> result_page(JobId job,
                                                                      uint64_t after_line,
                                                                      size_t limit) override;
  Expected<std::vector<DoneRow>> done_page(JobId job, uint64_t after_line, size_t limit) override;
  Expected<uint64_t> max_line(JobId job) override;
  Expected<std::optional<JobInfo>> latest_job() override;
  Expected<StateCounts> count_by_state(JobId job) override;
  Expected<std::vector<std::pair<std::string, uint64_t>>> count_by_verdict(JobId job) override;
  Expected<std::optional<CachedResult>> lookup_cached_at(std::string_view normalized,
                                                         std::chrono::seconds max_age,
                                                         UnixSeconds now) override;
  Status put_cache(std::span<const CacheEntry> entries) override;
  Expected<std::optional<CachedResult>> get_cache_at(std::string_view normalized,
                                                     std::chrono::seconds max_age,
                                                     UnixSeconds now) override;
  Expected<uint64_t> prune_cache(UnixSeconds before) override;
  Status put_domain_facts(const DomainFacts& facts) override;
  Expected<std::optional<DomainFacts>> get_domain_facts_at(std::string_view domain,
                                                           UnixSeconds now) override;

  sqlite3* handle() { return db_; }  // for tests and diagnostics

  // Small facts kept with the journal (the `meta` table), e.g. the fingerprint of a job's input.
  Status set_meta(std::string_view key, std::string_view value);
  Expected<std::optional<std::string>> get_meta(std::string_view key);

 private:
  struct Stmts;
  explicit SqliteStore(sqlite3* db);
  Status init_schema();
  Status prepare_all();
  Status exec(const char* sql);
  core::Unexpected<Error> err(const char* what) const;
  Status begin();
  Status commit();
  void rollback();

  sqlite3* db_ = nullptr;
  std::unique_ptr<Stmts> st_;
};

}  // namespace mxp::store
