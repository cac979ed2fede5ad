// A job's dedupe: an address is verified once however often its list repeats it. The lines
// waiting for an address in flight (and the verifier ids that stand for it), this run's
// finished records not yet durable in the journal, a bit per hash of the addresses finished,
// and the lookups that answer a repeat from the journal (this run's or an earlier one's work)
// or the results cache. The runner (app/runner.hpp) owns one; sans-I/O but for those lookups.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/expected.hpp"
#include "store/sqlite_store.hpp"

namespace mxp::app {

// Without a journal, finished records kept for dedupe (about 1 KB each: ~100 MB when full).
inline constexpr size_t kRecentWithoutJournal = 100'000;

// One input line waiting for the result of its address.
struct Waiter {
  uint64_t line = 0;
  std::string email;
  std::string raw;  // the input record; empty when it is `email` itself (a plain list)
  static Waiter of(uint64_t line, std::string_view email, std::string_view raw) {
    return {line, std::string(email), raw == email ? std::string() : std::string(raw)};
  }
  std::string_view record() const { return raw.empty() ? std::string_view(email) : raw; }
};

class Dedupe {
 public:
  using Lookup = core::Expected<std::optional<std::string>, store::Error>;

  // The job's journal: it answers for records of batches durable (null: none; then only the
  // most recent kRecentWithoutJournal records of this run answer repeats).
  void set_journal(store::SqliteStore* journal) { journal_ = journal; }
  // The results cache: it answers for addresses checked less than `ttl` ago (null: none).
  void set_cache(store::SqliteStore* cache, std::chrono::seconds ttl) {
    cache_ = cache;
    ttl_ = ttl;
  }
  // A resumed job: the journal holds earlier runs' work, which the seen bits do not know, so
  // every lookup asks it.
  void set_resumed() { resumed_ = true; }

  // --- In flight ---

  // `key` is being verified: the line joins those waiting for it (true); false if not.
  bool join(const std::string& key, uint64_t line, std::string_view email, std::string_view raw);
  // `key` went to the verifier as `id`, for this line.
  void submitted(uint64_t id, std::string key, uint64_t line, std::string_view email,
                 std::string_view raw);
  // The result of `id` came: the lines waiting for it go to `lines` and the address is
  // forgotten here. Returns its key (`normalized` for an id not known here).
  std::string finish(uint64_t id, const std::string& normalized, std::vector<Waiter>& lines);
  // The verifier gave `ids` back (taken from its queue before any session had them): they are
  // forgotten, their lines appended to `parked` when `keep`.
  void withdrawn(const std::vector<uint64_t>& ids, bool keep, std::vector<Waiter>& parked);
  // Addresses submitted with no result yet.
  size_t in_flight() const { return ids_.size(); }
  bool owns(uint64_t id) const { return ids_.count(id) != 0; }

  // --- Finished ---

  // A record is final: its JSON answers later repeats of `key` ("": no address, kept nowhere).
  void remember(const std::string& key, const std::string& json);
  // The records remembered since the last seal went to the journal as batch `batch`...
  void sealed(uint64_t batch);
  // ...and batches up to `batch` are durable: the journal answers for them now.
  void durable(uint64_t batch);
  // The record of an address this job finished: this run's, else the journal's (any run).
  Lookup find_done(const std::string& key);
  // The results cache's record of the address, if checked recently enough.
  Lookup find_cached(const std::string& key);

  // The job has ended: everything goes (about 2 MiB with the seen bits), nothing is kept after.
  void release();

 private:
  bool seen_bit(const std::string& key) const;
  void set_seen_bit(const std::string& key);

  store::SqliteStore* journal_ = nullptr;
  store::SqliteStore* cache_ = nullptr;
  std::chrono::seconds ttl_{0};
  bool resumed_ = false, released_ = false;
  // In flight: verifier id -> normalised address -> the lines waiting for it. ids_ points at
  // inflight_'s keys (nodes never move); both entries go together.
  std::unordered_map<uint64_t, const std::string*> ids_;
  std::unordered_map<std::string, std::vector<Waiter>> inflight_;
  // Records not yet in the journal (all of them without one), by normalised address...
  std::unordered_map<std::string, std::string> recent_;
  // ...and those handed to it and not yet durable, by batch.
  struct Sealed {
    uint64_t batch;
    std::unordered_map<std::string, std::string> records;
  };
  std::deque<Sealed> sealed_;
  // Addresses finished in this run, one bit per hash (see find_done). Allocated with the first
  // address (2 MiB) and freed by release().
  std::vector<uint64_t> seen_;
};

}  // namespace mxp::app
