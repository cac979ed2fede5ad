// The job store interface: jobs, their input rows, their results, a results cache and per-domain
// facts, as the resume logic of `mxprobe verify` needs them. SqliteStore (sqlite_store.hpp) is the
// embedded default; another backend (e.g. a shared one) implements the same interface.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/clock.hpp"
#include "store/status.hpp"

namespace mxp::store {

using JobId = int64_t;
using UnixSeconds = int64_t;  // seconds since the epoch (UTC)

// A row is pending until handed to the engine (in_flight) and done once its result committed.
enum class RowState : uint8_t { Pending = 0, InFlight = 1, Done = 2 };

struct JobInfo {
  JobId id = 0;
  UnixSeconds created = 0;
  std::string input;         // input path or description
  std::string options_json;  // the options the job was started with
  std::string state;         // free text owned by the caller, e.g. "running", "finished"
};

struct RowIn {
  uint64_t line = 0;       // >= 1 (input line or CSV record number); 0 is refused
  std::string raw;         // the input record exactly as read
  std::string normalized;  // "" when the syntax check failed
};

struct Row {
  uint64_t line = 0;
  std::string raw;
  std::string normalized;
  RowState state = RowState::Pending;
};

// One result to record: the record (docs/records.md) as JSON text (pipeline::append_json) plus the
// columns the store queries on.
struct ResultRecord {
  uint64_t line = 0;    // the row's normalised address is the cache key
  std::string verdict;  // "deliverable" | "undeliverable" | "risky" | "unknown"
  std::string reason;
  UnixSeconds checked_at = 0;
  std::string json;
};

struct CachedResult {
  std::string json;
  UnixSeconds checked_at = 0;
};

struct DomainFacts {
  std::string domain;
  std::string mx_json;            // the MX answer as JSON text
  std::optional<bool> catch_all;  // unknown / no / yes
  bool greylisting_seen = false;
  UnixSeconds last_contact = 0;
  UnixSeconds expires = 0;  // get_domain_facts() ignores facts at or past this time
};

// A finished row with its input text and its record, for rebuilding an output.
struct DoneRow {
  uint64_t line = 0;
  std::string raw;
  std::string record;
};

// One entry of the results cache: the normalised address, its record and when it was checked.
struct CacheEntry {
  std::string normalized;
  UnixSeconds checked_at = 0;
  std::string record;
};

struct StateCounts {
  uint64_t pending = 0, in_flight = 0, done = 0;
  uint64_t total() const { return pending + in_flight + done; }
};

class JobStore {
 public:
  virtual ~JobStore() = default;

  virtual Expected<JobId> create_job(std::string_view input, std::string_view options_json) = 0;
  virtual Expected<JobInfo> get_job(JobId job) = 0;
  virtual Status set_job_state(JobId job, std::string_view state) = 0;

  // Appends a chunk of input rows (state pending) in one transaction; call once per chunk while
  // streaming the input. A line already present is an error and the chunk is rolled back.
  virtual Status add_rows(JobId job, std::span<const RowIn> rows) = 0;
  // pending -> in_flight for these lines, in one transaction.
  virtual Status mark_in_flight(JobId job, std::span<const uint64_t> lines) = 0;
  // Inserts the results and marks their rows done in ONE transaction: either all of it is
  // durable or none of it. A line without a row, or one that already has a result, fails the
  // whole call (rolled back).
  virtual Status record_results(JobId job, std::span<const ResultRecord> results) = 0;
  // On resume: in_flight -> pending (that work was lost with the process). Returns how many.
  virtual Expected<uint64_t> reset_in_flight(JobId job) = 0;

  // Keyset pages in line order: up to `limit` items with line > after_line.
  virtual Expected<std::vector<Row>> pending_rows(JobId job, uint64_t after_line, size_t limit) = 0;
  virtual Expected<std::vector<std::pair<uint64_t, std::string>>> result_page(JobId job,
                                                                              uint64_t after_line,
                                                                              size_t limit) = 0;

  // Finished rows joined with their records, keyset pages in line order.
  virtual Expected<std::vector<DoneRow>> done_page(JobId job, uint64_t after_line,
                                                   size_t limit) = 0;
  // The highest line stored for the job (0: none): where reading the input resumes.
  virtual Expected<uint64_t> max_line(JobId job) = 0;
  // The most recently created job, if any.
  virtual Expected<std::optional<JobInfo>> latest_job() = 0;

  virtual Expected<StateCounts> count_by_state(JobId job) = 0;
  // (verdict, count) sorted by verdict.
  virtual Expected<std::vector<std::pair<std::string, uint64_t>>> count_by_verdict(JobId job) = 0;

  // The newest result for this normalised address (the rows' `normalized`, any job) checked at or
  // after now - max_age. Rows whose address is "" are never found.
  virtual Expected<std::optional<CachedResult>> lookup_cached_at(std::string_view normalized,
                                                                 std::chrono::seconds max_age,
                                                                 UnixSeconds now) = 0;
  // The results cache proper (a table of its own, keyed by normalised address, newest wins): what
  // `mxprobe verify` reuses across jobs and runs. Put in one transaction.
  virtual Status put_cache(std::span<const CacheEntry> entries) = 0;
  virtual Expected<std::optional<CachedResult>> get_cache_at(std::string_view normalized,
                                                             std::chrono::seconds max_age,
                                                             UnixSeconds now) = 0;
  // Deletes cache entries checked before `before` and domain facts expired by then.
  virtual Expected<uint64_t> prune_cache(UnixSeconds before) = 0;

  virtual Status put_domain_facts(const DomainFacts& facts) = 0;  // insert or replace
  // The facts if present and not expired at `now`.
  virtual Expected<std::optional<DomainFacts>> get_domain_facts_at(std::string_view domain,
                                                                   UnixSeconds now) = 0;

  // Conveniences over the above.
  Expected<std::optional<CachedResult>> lookup_cached(std::string_view normalized,
                                                      std::chrono::seconds max_age);
  Expected<std::optional<DomainFacts>> get_domain_facts(std::string_view domain);
  // Stream pending rows / result records in line order, one page in memory at a time; `fn`
  // returns false to stop. Pages are read between calls, so fn may write to the store.
  Status for_each_pending(JobId job, const std::function<bool(const Row&)>& fn, size_t page = 1024);
  Status for_each_result(JobId job,
                         const std::function<bool(uint64_t line, std::string_view json)>& fn,
                         size_t page = 1024);
};

UnixSeconds unix_now();

// Buffers results and commits them with one record_results() call (one transaction) when it
// holds `max_count` results or its oldest result is `max_age` old (checked by add() and poll()).
// Destroying it does NOT commit what is buffered: uncommitted results behave exactly like a crash
// (their rows stay pending/in_flight and are redone on resume). Call flush() at the end.
class ResultBatch {
 public:
  using Clock = core::Clock;
  ResultBatch(JobStore& store, JobId job, size_t max_count, std::chrono::milliseconds max_age);

  Status add(ResultRecord r, Clock::time_point now = Clock::now());
  Status poll(Clock::time_point now = Clock::now());  // flush if the oldest result is too old
  Status flush();
  size_t buffered() const { return buf_.size(); }
  uint64_t committed() const { return committed_; }

 private:
  JobStore& store_;
  JobId job_;
  size_t max_count_;
  std::chrono::milliseconds max_age_;
  Clock::time_point oldest_{};
  std::vector<ResultRecord> buf_;
  uint64_t committed_ = 0;
};

}  // namespace mxp::store
