// A job's webhook deliveries, kept in the job's own journal (SQLite, beside its rows and
// results) so that a restart of `mxprobe serve` resends what was not acknowledged and never
// what was. Batches are made from the journal's results: a trigger queues every committed result
// in commit order, in the same transaction, and a batch is a range of that queue, so a batch
// made before a crash has the same records after it.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "store/sqlite_store.hpp"
#include "webhook/webhook.hpp"

namespace mxp::webhook {

using store::Expected;
using store::Status;
using Millis = std::chrono::milliseconds;  // since the epoch, as stored

struct Delivery {
  int64_t seq = 0;              // 1, 2, ... in the order made; the end event is the last
  std::string kind;             // "records" or "job.ended"
  int64_t first = 0, last = 0;  // records: positions in the job's finished records (1-based)
  Millis created{0};
  uint64_t attempts = 0;
  int last_status = 0;  // the last attempt's HTTP status; 0: none (it failed before one)
  std::string last_error;
  Millis last_attempt{0}, next_try{0}, acked{0};  // 0: not (yet)
  bool failed = false;                            // retries ran out
};

struct Attempt {
  int64_t seq = 0;
  uint64_t n = 0;  // 1, 2, ...
  Millis at{0};
  int status = 0;
  std::string error;
};

struct Totals {
  uint64_t deliveries = 0, acked = 0, failed = 0, pending = 0, queued_records = 0;
};

class Store {
 public:
  // Opens the journal at `path` (a connection of its own). The webhook tables are made on
  // configure(); a journal without them simply has no webhook.
  static Expected<std::unique_ptr<Store>> open(const std::string& path);

  // Once, before the job's first result: the settings, the tables and (with batches) the
  // trigger that queues results.
  Status configure(const Config& c);
  // The settings, if this job has a webhook.
  Expected<std::optional<Config>> config();

  // Makes the batches that are due, in one transaction: every full batch of `c.batch` records
  // not yet in one, and with `rest` also a last smaller one. Returns how many were made.
  Expected<uint64_t> make_batches(uint64_t batch, bool rest, Millis now);
  // Finished records not yet in a batch.
  Expected<uint64_t> unbatched();
  // The job ended: the last batches and the end event, whose body carries `summary_json` (the
  // job as GET /v1/jobs/ID shows it), in one transaction; once (a second call does nothing).
  Status end(uint64_t job, uint64_t batch, const std::string& summary_json, Millis now);
  Expected<bool> ended();

  // The first delivery neither acknowledged nor failed (deliveries go out in order).
  Expected<std::optional<Delivery>> next_pending();
  // A delivery's body: the end event's as stored, a batch's made from the journal's records.
  Expected<std::string> body(const Delivery& d, uint64_t job);
  // One attempt's outcome: acknowledged (2xx), or failed with the next try at `next_try`
  // (0: no more tries: the delivery failed).
  Status record_attempt(int64_t seq, Millis at, int status, const std::string& error, bool acked,
                        Millis next_try);

  // The delivery log: the last `limit` deliveries (newest last) and totals.
  Expected<std::vector<Delivery>> deliveries(size_t limit);
  Expected<std::vector<Attempt>> attempts(int64_t seq, size_t limit);
  Expected<Totals> totals();

  store::SqliteStore& sqlite() { return *db_; }
  const std::string& path() const { return path_; }

 private:
  Store(std::unique_ptr<store::SqliteStore> db, std::string path)
      : db_(std::move(db)), path_(std::move(path)) {}
  Status exec(const std::string& sql);
  Expected<bool> has_tables();
  std::unique_ptr<store::SqliteStore> db_;
  std::string path_;
};

}  // namespace mxp::webhook
