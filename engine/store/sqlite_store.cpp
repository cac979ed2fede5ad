// SqliteStore: schema, pragmas and the prepared statements behind JobStore.
// Durability: WAL + synchronous=NORMAL means a committed transaction survives a process crash
// (the WAL is in the OS page cache) and every transaction is atomic; only a power loss can drop
// the last few commits, and those rows are simply redone on resume (https://sqlite.org/wal.html).
#include "store/sqlite_store.hpp"

#include <sqlite3.h>

#include <string>

namespace mxp::store {
namespace {

// Row states as stored: the RowState values.
constexpr int kPending = static_cast<int>(RowState::Pending);
constexpr int kInFlight = static_cast<int>(RowState::InFlight);
constexpr int kDone = static_cast<int>(RowState::Done);

// No index on rows.state: pending rows are read by keyset pages over the primary key (job, line),
// which costs one pass over the job however many pages, while an index would be rewritten on
// every state change, i.e. twice per result.
constexpr const char* kSchema = R"sql(
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE jobs(id INTEGER PRIMARY KEY, created INTEGER NOT NULL, input TEXT NOT NULL,
                  options TEXT NOT NULL, state TEXT NOT NULL);
CREATE TABLE rows(job INTEGER NOT NULL REFERENCES jobs(id), line INTEGER NOT NULL,
                  raw TEXT NOT NULL, normalized TEXT NOT NULL, state INTEGER NOT NULL,
                  addr_hash INTEGER NOT NULL,
                  PRIMARY KEY(job, line)) WITHOUT ROWID;
CREATE TABLE results(job INTEGER NOT NULL REFERENCES jobs(id), line INTEGER NOT NULL,
                     verdict TEXT NOT NULL, reason TEXT NOT NULL, checked_at INTEGER NOT NULL,
                     record TEXT NOT NULL, PRIMARY KEY(job, line)) WITHOUT ROWID;
CREATE INDEX rows_by_address ON rows(addr_hash) WHERE addr_hash <> 0;
CREATE TABLE domain_facts(domain TEXT PRIMARY KEY, mx_json TEXT NOT NULL, catch_all INTEGER,
                          greylisting_seen INTEGER NOT NULL, last_contact INTEGER NOT NULL,
                          expires INTEGER NOT NULL);
)sql";
// Version 2 adds the results cache (v1 files are upgraded in place): one row per normalised
// address, the newest record wins.
constexpr const char* kSchemaV2 =
    "CREATE TABLE cache(addr TEXT PRIMARY KEY, checked_at INTEGER NOT NULL, "
    "record TEXT NOT NULL) WITHOUT ROWID;";

// The results cache is found through the ROWS table: rows(addr_hash) is indexed when the input is
// added (big chunks, off the hot path), and results join on (job, line). Indexing results by
// address instead made every result a random B-tree insert, i.e. one dirty page written to the
// WAL per result, which halved throughput (bench/micro/store). The key is a 64-bit FNV-1a hash of
// the normalised address, not the text: a smaller index, and collisions are harmless because the
// lookup also compares the text. It is stored, so it must not change between builds (hence not
// std::hash). 0 means "no address" (syntax failed) and is never indexed.
int64_t address_hash(std::string_view s) {
  if (s.empty()) return 0;
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  const auto v = static_cast<int64_t>(h);
  return v == 0 ? 1 : v;
}

// A kept statement, reset (and its bindings cleared) when the guard leaves scope, so a failed
// step never leaves a statement busy.
class Use {
 public:
  explicit Use(sqlite3_stmt* s) : s_(s) {}
  ~Use() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  Use(const Use&) = delete;
  Use& operator=(const Use&) = delete;
  Use& i(int idx, int64_t v) {
    sqlite3_bind_int64(s_, idx, v);
    return *this;
  }
  Use& t(int idx, std::string_view v) {
    sqlite3_bind_text(s_, idx, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
    return *this;
  }
  Use& null(int idx) {
    sqlite3_bind_null(s_, idx);
    return *this;
  }
  int step() { return sqlite3_step(s_); }
  int64_t col_i(int c) const { return sqlite3_column_int64(s_, c); }
  bool col_null(int c) const { return sqlite3_column_type(s_, c) == SQLITE_NULL; }
  std::string col_t(int c) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s_, c));
    return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(s_, c))) : std::string();
  }

 private:
  sqlite3_stmt* s_;
};

}  // namespace

struct SqliteStore::Stmts {
  sqlite3_stmt* begin = nullptr;
  sqlite3_stmt* commit = nullptr;
  sqlite3_stmt* rollback = nullptr;
  sqlite3_stmt* create_job = nullptr;
  sqlite3_stmt* get_job = nullptr;
  sqlite3_stmt* set_job_state = nullptr;
  sqlite3_stmt* add_row = nullptr;
  sqlite3_stmt* mark_in_flight = nullptr;
  sqlite3_stmt* insert_result = nullptr;
  sqlite3_stmt* mark_done = nullptr;
  sqlite3_stmt* reset_in_flight = nullptr;
  sqlite3_stmt* pending_rows = nullptr;
  sqlite3_stmt* result_page = nullptr;
  sqlite3_stmt* count_state = nullptr;
  sqlite3_stmt* count_verdict = nullptr;
  sqlite3_stmt* lookup_cached = nullptr;
  sqlite3_stmt* put_facts = nullptr;
  sqlite3_stmt* get_facts = nullptr;
  sqlite3_stmt* done_page = nullptr;
  sqlite3_stmt* max_line = nullptr;
  sqlite3_stmt* latest_job = nullptr;
  sqlite3_stmt* put_cache = nullptr;
  sqlite3_stmt* get_cache = nullptr;
  sqlite3_stmt* prune_cache = nullptr;
  sqlite3_stmt* prune_facts = nullptr;

  static constexpr size_t kCount = 25;
  sqlite3_stmt** all[kCount] = {
      &begin,           &commit,       &rollback,       &create_job,    &get_job,
      &set_job_state,   &add_row,      &mark_in_flight, &insert_result, &mark_done,
      &reset_in_flight, &pending_rows, &result_page,    &count_state,   &count_verdict,
      &lookup_cached,   &put_facts,    &get_facts,      &done_page,     &max_line,
      &latest_job,      &put_cache,    &get_cache,      &prune_cache,   &prune_facts};
  ~Stmts() {
    for (sqlite3_stmt** s : all)
      sqlite3_finalize(*s);
  }
};

SqliteStore::SqliteStore(sqlite3* db) : db_(db), st_(std::make_unique<Stmts>()) {}

SqliteStore::~SqliteStore() {
  st_.reset();  // statements must be finalized before the connection closes
  sqlite3_close(db_);
}

core::Unexpected<Error> SqliteStore::err(const char* what) const {
  return core::unexpected(
      Error{sqlite3_extended_errcode(db_), std::string(what) + ": " + sqlite3_errmsg(db_)});
}

Status SqliteStore::set_meta(std::string_view key, std::string_view value) {
  sqlite3_stmt* q = nullptr;
  if (sqlite3_prepare_v2(db_, "INSERT OR REPLACE INTO meta(key, value) VALUES(?1, ?2)", -1, &q,
                         nullptr) != SQLITE_OK)
    return err("set_meta");
  Status st;
  {
    Use u(q);
    u.t(1, key).t(2, value);
    if (u.step() != SQLITE_DONE) st = err("set_meta");
  }
  sqlite3_finalize(q);
  return st;
}

Expected<std::optional<std::string>> SqliteStore::get_meta(std::string_view key) {
  sqlite3_stmt* q = nullptr;
  if (sqlite3_prepare_v2(db_, "SELECT value FROM meta WHERE key=?1", -1, &q, nullptr) != SQLITE_OK)
    return err("get_meta");
  std::optional<std::string> v;
  int rc;
  {
    Use u(q);
    u.t(1, key);
    rc = u.step();
    if (rc == SQLITE_ROW) v = u.col_t(0);
  }
  sqlite3_finalize(q);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return err("get_meta");
  return v;
}

Status SqliteStore::exec(const char* sql) {
  char* msg = nullptr;
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &msg);
  if (rc == SQLITE_OK) return {};
  Error e{rc, std::string(sql).substr(0, 60) + ": " + (msg ? msg : sqlite3_errstr(rc))};
  sqlite3_free(msg);
  return core::unexpected(std::move(e));
}

Expected<std::unique_ptr<SqliteStore>> SqliteStore::open(const std::string& path,
                                                         SqliteOptions opts) {
  sqlite3* db = nullptr;
  // NOMUTEX: one thread owns the store (see the header), so SQLite's per-call mutex is waste.
  int rc = sqlite3_open_v2(
      path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    Error e{rc, "open " + path + ": " + (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc))};
    sqlite3_close(db);
    return core::unexpected(std::move(e));
  }
  std::unique_ptr<SqliteStore> s(new SqliteStore(db));
  sqlite3_extended_result_codes(db, 1);
  // Another process holding the write lock makes us wait (up to the timeout), not fail at once.
  sqlite3_busy_timeout(db, opts.busy_timeout_ms);
  {
    // journal_mode answers with the mode in force; a file system without shared memory would
    // silently stay in "delete" mode, which we report rather than run slowly.
    sqlite3_stmt* q = nullptr;
    if (sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &q, nullptr) != SQLITE_OK)
      return s->err("PRAGMA journal_mode");
    rc = sqlite3_step(q);
    std::string mode =
        rc == SQLITE_ROW ? reinterpret_cast<const char*>(sqlite3_column_text(q, 0)) : std::string();
    sqlite3_finalize(q);
    if (rc != SQLITE_ROW) return s->err("PRAGMA journal_mode");
    if (mode != "wal")
      return core::unexpected(Error{0, "open " + path + ": WAL mode refused (got " + mode + ")"});
  }
  if (Status st = s->exec("PRAGMA synchronous=NORMAL"); !st) return core::unexpected(st.error());
  // Checkpoints are where WAL mode fsyncs; the default (every 1000 pages) costs a sync every few
  // thousand results. Every 4096 pages (16 MB of WAL) makes them rarer, and a bigger page cache
  // (32 MB) keeps the B-tree interiors of million-row jobs in memory.
  if (Status st = s->exec("PRAGMA wal_autocheckpoint=4096; PRAGMA cache_size=-32768"); !st)
    return core::unexpected(st.error());
  if (Status st = s->init_schema(); !st) return core::unexpected(st.error());
  if (Status st = s->prepare_all(); !st) return core::unexpected(st.error());
  return s;
}

Status SqliteStore::init_schema() {
  // BEGIN IMMEDIATE so two processes creating the same new file do not both create the schema.
  if (Status st = exec("BEGIN IMMEDIATE"); !st) return st;
  sqlite3_stmt* q = nullptr;
  int rc =
      sqlite3_prepare_v2(db_, "SELECT value FROM meta WHERE key='schema_version'", -1, &q, nullptr);
  if (rc != SQLITE_OK) {
    // No meta table: a new (empty) database, or a file that is not ours.
    sqlite3_finalize(q);
    sqlite3_stmt* c = nullptr;
    sqlite3_prepare_v2(db_, "SELECT count(*) FROM sqlite_schema", -1, &c, nullptr);
    int64_t objects = sqlite3_step(c) == SQLITE_ROW ? sqlite3_column_int64(c, 0) : -1;
    sqlite3_finalize(c);
    if (objects != 0) {
      (void)exec("ROLLBACK");
      return core::unexpected(
          Error{0, "database has tables but no mxprobe meta table: not an mxprobe store"});
    }
    std::string ddl = std::string(kSchema) + kSchemaV2 +
                      "INSERT INTO meta VALUES('schema_version','" +
                      std::to_string(kSchemaVersion) + "');";
    if (Status st = exec(ddl.c_str()); !st) {
      (void)exec("ROLLBACK");
      return st;
    }
    return exec("COMMIT");
  }
  rc = sqlite3_step(q);
  int64_t version = rc == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;
  sqlite3_finalize(q);
  if (version == 1) {  // upgrade in place, in this transaction
    std::string ddl =
        std::string(kSchemaV2) + "UPDATE meta SET value='2' WHERE key='schema_version';";
    if (Status st = exec(ddl.c_str()); !st) {
      (void)exec("ROLLBACK");
      return st;
    }
    return exec("COMMIT");
  }
  (void)exec("ROLLBACK");
  if (version > kSchemaVersion)
    return core::unexpected(Error{0, "store schema version " + std::to_string(version) +
                                         " is newer than this mxprobe supports (" +
                                         std::to_string(kSchemaVersion) +
                                         "); use a newer mxprobe or another file"});
  if (version < kSchemaVersion)
    return core::unexpected(Error{0, "store schema version " + std::to_string(version) +
                                         " is unknown (expected " + std::to_string(kSchemaVersion) +
                                         ")"});
  return {};
}

Status SqliteStore::prepare_all() {
  struct {
    sqlite3_stmt** s;
    const char* sql;
  } const defs[] = {
      {&st_->begin, "BEGIN IMMEDIATE"},
      {&st_->commit, "COMMIT"},
      {&st_->rollback, "ROLLBACK"},
      {&st_->create_job, "INSERT INTO jobs(created,input,options,state) VALUES(?,?,?,'created')"},
      {&st_->get_job, "SELECT id,created,input,options,state FROM jobs WHERE id=?"},
      {&st_->set_job_state, "UPDATE jobs SET state=? WHERE id=?"},
      {&st_->add_row,
       "INSERT INTO rows(job,line,raw,normalized,state,addr_hash) VALUES(?,?,?,?,0,?)"},
      {&st_->mark_in_flight, "UPDATE rows SET state=1 WHERE job=? AND line=? AND state=0"},
      {&st_->insert_result,
       "INSERT INTO results(job,line,verdict,reason,checked_at,record) VALUES(?,?,?,?,?,?)"},
      {&st_->mark_done, "UPDATE rows SET state=2 WHERE job=? AND line=? AND state<>2"},
      {&st_->reset_in_flight, "UPDATE rows SET state=0 WHERE job=? AND state=1"},
      {&st_->pending_rows,
       "SELECT line,raw,normalized FROM rows WHERE job=? AND state=0 AND line>? "
       "ORDER BY line LIMIT ?"},
      {&st_->result_page,
       "SELECT line,record FROM results WHERE job=? AND line>? ORDER BY line LIMIT ?"},
      {&st_->count_state, "SELECT state,count(*) FROM rows WHERE job=? GROUP BY state"},
      {&st_->count_verdict,
       "SELECT verdict,count(*) FROM results WHERE job=? GROUP BY verdict ORDER BY verdict"},
      {&st_->lookup_cached,
       "SELECT r.record,r.checked_at FROM rows w JOIN results r ON r.job=w.job AND r.line=w.line "
       "WHERE w.addr_hash=? AND w.addr_hash<>0 AND w.normalized=? AND r.checked_at>=? "
       "ORDER BY r.checked_at DESC LIMIT 1"},
      {&st_->put_facts,
       "INSERT OR REPLACE INTO domain_facts(domain,mx_json,catch_all,greylisting_seen,"
       "last_contact,expires) VALUES(?,?,?,?,?,?)"},
      {&st_->get_facts,
       "SELECT mx_json,catch_all,greylisting_seen,last_contact,expires FROM domain_facts "
       "WHERE domain=? AND expires>?"},
      {&st_->done_page,
       "SELECT w.line,w.raw,r.record FROM rows w JOIN results r ON r.job=w.job AND r.line=w.line "
       "WHERE w.job=? AND w.line>? ORDER BY w.line LIMIT ?"},
      {&st_->max_line, "SELECT max(line) FROM rows WHERE job=?"},
      {&st_->latest_job,
       "SELECT id,created,input,options,state FROM jobs ORDER BY id DESC LIMIT 1"},
      {&st_->put_cache, "INSERT OR REPLACE INTO cache(addr,checked_at,record) VALUES(?,?,?)"},
      {&st_->get_cache, "SELECT record,checked_at FROM cache WHERE addr=? AND checked_at>=?"},
      {&st_->prune_cache, "DELETE FROM cache WHERE checked_at<?"},
      {&st_->prune_facts, "DELETE FROM domain_facts WHERE expires<=?"},
  };
  static_assert(std::size(defs) == Stmts::kCount);
  for (const auto& d : defs) {
    if (sqlite3_prepare_v3(db_, d.sql, -1, SQLITE_PREPARE_PERSISTENT, d.s, nullptr) != SQLITE_OK)
      return err(d.sql);
  }
  return {};
}

Status SqliteStore::begin() {
  Use u(st_->begin);
  if (u.step() != SQLITE_DONE) return err("BEGIN");
  return {};
}

Status SqliteStore::commit() {
  Use u(st_->commit);
  if (u.step() != SQLITE_DONE) {
    auto e = err("COMMIT");
    rollback();
    return e;
  }
  return {};
}

void SqliteStore::rollback() {
  if (sqlite3_get_autocommit(db_)) return;  // SQLite already rolled back (e.g. after IOERR)
  Use u(st_->rollback);
  u.step();
}

Expected<JobId> SqliteStore::create_job(std::string_view input, std::string_view options_json) {
  Use u(st_->create_job);
  u.i(1, unix_now()).t(2, input).t(3, options_json);
  if (u.step() != SQLITE_DONE) return err("create_job");
  return sqlite3_last_insert_rowid(db_);
}

Expected<JobInfo> SqliteStore::get_job(JobId job) {
  Use u(st_->get_job);
  u.i(1, job);
  int rc = u.step();
  if (rc == SQLITE_DONE)
    return core::unexpected(Error{0, "get_job: no job " + std::to_string(job)});
  if (rc != SQLITE_ROW) return err("get_job");
  return JobInfo{u.col_i(0), u.col_i(1), u.col_t(2), u.col_t(3), u.col_t(4)};
}

Status SqliteStore::set_job_state(JobId job, std::string_view state) {
  Use u(st_->set_job_state);
  u.t(1, state).i(2, job);
  if (u.step() != SQLITE_DONE) return err("set_job_state");
  if (sqlite3_changes(db_) != 1)
    return core::unexpected(Error{0, "set_job_state: no job " + std::to_string(job)});
  return {};
}

Status SqliteStore::add_rows(JobId job, std::span<const RowIn> rows) {
  if (Status s = begin(); !s) return s;
  for (const RowIn& r : rows) {
    if (r.line == 0) {
      rollback();
      return core::unexpected(Error{0, "add_rows: line numbers start at 1"});
    }
    Use u(st_->add_row);
    u.i(1, job).i(2, static_cast<int64_t>(r.line)).t(3, r.raw).t(4, r.normalized);
    u.i(5, address_hash(r.normalized));
    if (u.step() != SQLITE_DONE) {
      auto e = err("add_rows");
      rollback();
      return e;
    }
  }
  return commit();
}

Status SqliteStore::mark_in_flight(JobId job, std::span<const uint64_t> lines) {
  if (Status s = begin(); !s) return s;
  for (uint64_t line : lines) {
    Use u(st_->mark_in_flight);
    u.i(1, job).i(2, static_cast<int64_t>(line));
    if (u.step() != SQLITE_DONE) {
      auto e = err("mark_in_flight");
      rollback();
      return e;
    }
  }
  return commit();
}

Status SqliteStore::record_results(JobId job, std::span<const ResultRecord> results) {
  if (results.empty()) return {};
  if (Status s = begin(); !s) return s;
  for (const ResultRecord& r : results) {
    const auto line = static_cast<int64_t>(r.line);
    {
      // The primary key (job, line) refuses a second result for a line.
      Use u(st_->insert_result);
      u.i(1, job).i(2, line).t(3, r.verdict).t(4, r.reason).i(5, r.checked_at).t(6, r.json);
      if (u.step() != SQLITE_DONE) {
        auto e = err("record_results");
        rollback();
        return e;
      }
    }
    Use u(st_->mark_done);
    u.i(1, job).i(2, line);
    if (u.step() != SQLITE_DONE) {
      auto e = err("record_results: mark done");
      rollback();
      return e;
    }
    if (sqlite3_changes(db_) != 1) {
      rollback();
      return core::unexpected(Error{0, "record_results: job " + std::to_string(job) +
                                           " has no row " + std::to_string(r.line)});
    }
  }
  return commit();
}

Expected<uint64_t> SqliteStore::reset_in_flight(JobId job) {
  Use u(st_->reset_in_flight);
  u.i(1, job);
  if (u.step() != SQLITE_DONE) return err("reset_in_flight");
  return static_cast<uint64_t>(sqlite3_changes64(db_));
}

Expected<std::vector<Row>> SqliteStore::pending_rows(JobId job, uint64_t after_line, size_t limit) {
  Use u(st_->pending_rows);
  u.i(1, job).i(2, static_cast<int64_t>(after_line)).i(3, static_cast<int64_t>(limit));
  std::vector<Row> out;
  int rc;
  while ((rc = u.step()) == SQLITE_ROW)
    out.push_back(
        Row{static_cast<uint64_t>(u.col_i(0)), u.col_t(1), u.col_t(2), RowState::Pending});
  if (rc != SQLITE_DONE) return err("pending_rows");
  return out;
}

Expected<std::vector<std::pair<uint64_t, std::string>>> SqliteStore::result_page(
    JobId job, uint64_t after_line, size_t limit) {
  Use u(st_->result_page);
  u.i(1, job).i(2, static_cast<int64_t>(after_line)).i(3, static_cast<int64_t>(limit));
  std::vector<std::pair<uint64_t, std::string>> out;
  int rc;
  while ((rc = u.step()) == SQLITE_ROW)
    out.emplace_back(static_cast<uint64_t>(u.col_i(0)), u.col_t(1));
  if (rc != SQLITE_DONE) return err("result_page");
  return out;
}

Expected<std::vector<DoneRow>> SqliteStore::done_page(JobId job, uint64_t after_line,
                                                      size_t limit) {
  Use u(st_->done_page);
  u.i(1, job).i(2, static_cast<int64_t>(after_line)).i(3, static_cast<int64_t>(limit));
  std::vector<DoneRow> out;
  int rc;
  while ((rc = u.step()) == SQLITE_ROW)
    out.push_back({static_cast<uint64_t>(u.col_i(0)), u.col_t(1), u.col_t(2)});
  if (rc != SQLITE_DONE) return err("done_page");
  return out;
}

Expected<uint64_t> SqliteStore::max_line(JobId job) {
  Use u(st_->max_line);
  u.i(1, job);
  if (u.step() != SQLITE_ROW) return err("max_line");
  return static_cast<uint64_t>(u.col_null(0) ? 0 : u.col_i(0));
}

Expected<std::optional<JobInfo>> SqliteStore::latest_job() {
  Use u(st_->latest_job);
  int rc = u.step();
  if (rc == SQLITE_DONE) return std::optional<JobInfo>();
  if (rc != SQLITE_ROW) return err("latest_job");
  return std::optional<JobInfo>(
      JobInfo{u.col_i(0), u.col_i(1), u.col_t(2), u.col_t(3), u.col_t(4)});
}

Status SqliteStore::put_cache(std::span<const CacheEntry> entries) {
  if (entries.empty()) return {};
  if (Status s = begin(); !s) return s;
  for (const CacheEntry& e : entries) {
    Use u(st_->put_cache);
    u.t(1, e.normalized).i(2, e.checked_at).t(3, e.record);
    if (u.step() != SQLITE_DONE) {
      auto er = err("put_cache");
      rollback();
      return er;
    }
  }
  return commit();
}

Expected<std::optional<CachedResult>> SqliteStore::get_cache_at(std::string_view normalized,
                                                                std::chrono::seconds max_age,
                                                                UnixSeconds now) {
  Use u(st_->get_cache);
  u.t(1, normalized).i(2, now - max_age.count());
  int rc = u.step();
  if (rc == SQLITE_DONE) return std::optional<CachedResult>();
  if (rc != SQLITE_ROW) return err("get_cache");
  return std::optional<CachedResult>(CachedResult{u.col_t(0), u.col_i(1)});
}

Expected<uint64_t> SqliteStore::prune_cache(UnixSeconds before) {
  uint64_t n = 0;
  {
    Use u(st_->prune_cache);
    u.i(1, before);
    if (u.step() != SQLITE_DONE) return err("prune_cache");
    n += static_cast<uint64_t>(sqlite3_changes(db_));
  }
  Use u(st_->prune_facts);
  u.i(1, before);
  if (u.step() != SQLITE_DONE) return err("prune_cache: facts");
  return n;
}

Expected<StateCounts> SqliteStore::count_by_state(JobId job) {
  Use u(st_->count_state);
  u.i(1, job);
  StateCounts c;
  int rc;
  while ((rc = u.step()) == SQLITE_ROW) {
    const auto n = static_cast<uint64_t>(u.col_i(1));
    switch (u.col_i(0)) {
      case kPending:
        c.pending = n;
        break;
      case kInFlight:
        c.in_flight = n;
        break;
      case kDone:
        c.done = n;
        break;
      default:
        return core::unexpected(Error{0, "count_by_state: unknown row state"});
    }
  }
  if (rc != SQLITE_DONE) return err("count_by_state");
  return c;
}

Expected<std::vector<std::pair<std::string, uint64_t>>> SqliteStore::count_by_verdict(JobId job) {
  Use u(st_->count_verdict);
  u.i(1, job);
  std::vector<std::pair<std::string, uint64_t>> out;
  int rc;
  while ((rc = u.step()) == SQLITE_ROW)
    out.emplace_back(u.col_t(0), static_cast<uint64_t>(u.col_i(1)));
  if (rc != SQLITE_DONE) return err("count_by_verdict");
  return out;
}

Expected<std::optional<CachedResult>> SqliteStore::lookup_cached_at(std::string_view normalized,
                                                                    std::chrono::seconds max_age,
                                                                    UnixSeconds now) {
  Use u(st_->lookup_cached);
  u.i(1, address_hash(normalized)).t(2, normalized).i(3, now - max_age.count());
  int rc = u.step();
  if (rc == SQLITE_DONE) return std::optional<CachedResult>{};
  if (rc != SQLITE_ROW) return err("lookup_cached");
  return std::optional<CachedResult>{CachedResult{u.col_t(0), u.col_i(1)}};
}

Status SqliteStore::put_domain_facts(const DomainFacts& f) {
  Use u(st_->put_facts);
  u.t(1, f.domain).t(2, f.mx_json);
  if (f.catch_all)
    u.i(3, *f.catch_all ? 1 : 0);
  else
    u.null(3);
  u.i(4, f.greylisting_seen ? 1 : 0).i(5, f.last_contact).i(6, f.expires);
  if (u.step() != SQLITE_DONE) return err("put_domain_facts");
  return {};
}

Expected<std::optional<DomainFacts>> SqliteStore::get_domain_facts_at(std::string_view domain,
                                                                      UnixSeconds now) {
  Use u(st_->get_facts);
  u.t(1, domain).i(2, now);
  int rc = u.step();
  if (rc == SQLITE_DONE) return std::optional<DomainFacts>{};
  if (rc != SQLITE_ROW) return err("get_domain_facts");
  DomainFacts f;
  f.domain = std::string(domain);
  f.mx_json = u.col_t(0);
  if (!u.col_null(1)) f.catch_all = u.col_i(1) != 0;
  f.greylisting_seen = u.col_i(2) != 0;
  f.last_contact = u.col_i(3);
  f.expires = u.col_i(4);
  return std::optional<DomainFacts>{std::move(f)};
}

}  // namespace mxp::store
