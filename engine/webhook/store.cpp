// Webhook deliveries in the job's journal (store.hpp). Statements are prepared per call: a
// job makes a delivery per batch, not per record, so this is far from any hot path.
#include "webhook/store.hpp"

#include <sqlite3.h>

namespace mxp::webhook {
namespace {

// The webhook's tables, added to a journal on configure(). IF NOT EXISTS: a second configure()
// of the same journal changes nothing. webhook_queue's pos is its rowid: SQLite gives each new
// row max(pos) + 1, and rows are never deleted, so positions count the finished records 1, 2, ...
// in commit order.
constexpr const char* kTables = R"sql(
CREATE TABLE IF NOT EXISTS webhook(id INTEGER PRIMARY KEY CHECK(id = 1), url TEXT NOT NULL,
  secret TEXT NOT NULL, batch INTEGER NOT NULL, interval_ms INTEGER NOT NULL,
  ended INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS webhook_queue(pos INTEGER PRIMARY KEY, job INTEGER NOT NULL,
  line INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS webhook_deliveries(seq INTEGER PRIMARY KEY, kind TEXT NOT NULL,
  first INTEGER NOT NULL DEFAULT 0, last INTEGER NOT NULL DEFAULT 0, body TEXT,
  created INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
  last_status INTEGER NOT NULL DEFAULT 0, last_error TEXT NOT NULL DEFAULT '',
  last_attempt INTEGER NOT NULL DEFAULT 0, next_try INTEGER NOT NULL DEFAULT 0,
  acked INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS webhook_attempts(seq INTEGER NOT NULL, n INTEGER NOT NULL,
  at INTEGER NOT NULL, status INTEGER NOT NULL, error TEXT NOT NULL,
  PRIMARY KEY(seq, n)) WITHOUT ROWID;
)sql";
// Every result committed to the journal is queued for a batch in the same transaction, whoever
// commits it (the job's writer thread): a crash can lose neither one without the other.
constexpr const char* kTrigger =
    "CREATE TRIGGER IF NOT EXISTS webhook_queue_results AFTER INSERT ON results BEGIN "
    "INSERT INTO webhook_queue(job, line) VALUES(NEW.job, NEW.line); END;";

// A statement prepared for one call, finalized when it leaves scope.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) {
    ok_ = sqlite3_prepare_v2(db, sql, -1, &s_, nullptr) == SQLITE_OK;
  }
  ~Stmt() { sqlite3_finalize(s_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  bool ok() const { return ok_; }
  Stmt& i(int idx, int64_t v) {
    sqlite3_bind_int64(s_, idx, v);
    return *this;
  }
  Stmt& t(int idx, std::string_view v) {
    sqlite3_bind_text(s_, idx, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  int step() { return ok_ ? sqlite3_step(s_) : SQLITE_ERROR; }
  int64_t col_i(int c) const { return sqlite3_column_int64(s_, c); }
  std::string col_t(int c) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s_, c));
    return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(s_, c))) : std::string();
  }

 private:
  sqlite3_stmt* s_ = nullptr;
  bool ok_ = false;
};

core::Unexpected<store::Error> fail(sqlite3* db, const char* what) {
  return core::unexpected(
      store::Error{sqlite3_extended_errcode(db),
                   std::string("webhook store: ") + what + ": " + sqlite3_errmsg(db)});
}

// A transaction that rolls back unless committed.
class Txn {
 public:
  explicit Txn(sqlite3* db) : db_(db) {
    ok_ = sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK;
  }
  ~Txn() {
    if (ok_ && !done_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  bool ok() const { return ok_; }
  bool commit() {
    done_ = true;
    return sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) == SQLITE_OK;
  }

 private:
  sqlite3* db_;
  bool ok_ = false, done_ = false;
};

// Makes the batches due (inside the caller's transaction): full ones, and with `rest` the
// smaller last one.
Expected<uint64_t> add_batches(sqlite3* db, uint64_t batch, bool rest, Millis now) {
  if (batch == 0) return uint64_t{0};
  int64_t last = 0, top = 0;
  {
    Stmt q(db, "SELECT coalesce(max(last), 0) FROM webhook_deliveries WHERE kind = 'records'");
    if (q.step() != SQLITE_ROW) return fail(db, "batches");
    last = q.col_i(0);
  }
  {
    Stmt q(db, "SELECT coalesce(max(pos), 0) FROM webhook_queue");
    if (q.step() != SQLITE_ROW) return fail(db, "queue");
    top = q.col_i(0);
  }
  uint64_t made = 0;
  const auto b = static_cast<int64_t>(batch);
  while (top - last >= b || (rest && top > last)) {
    const int64_t to = std::min(last + b, top);
    Stmt ins(db,
             "INSERT INTO webhook_deliveries(kind, first, last, created) "
             "VALUES('records', ?1, ?2, ?3)");
    ins.i(1, last + 1).i(2, to).i(3, now.count());
    if (ins.step() != SQLITE_DONE) return fail(db, "new batch");
    last = to;
    ++made;
  }
  return made;
}

Delivery read_delivery(const Stmt& q) {
  Delivery d;
  d.seq = q.col_i(0);
  d.kind = q.col_t(1);
  d.first = q.col_i(2);
  d.last = q.col_i(3);
  d.created = Millis(q.col_i(4));
  d.attempts = static_cast<uint64_t>(q.col_i(5));
  d.last_status = static_cast<int>(q.col_i(6));
  d.last_error = q.col_t(7);
  d.last_attempt = Millis(q.col_i(8));
  d.next_try = Millis(q.col_i(9));
  d.acked = Millis(q.col_i(10));
  d.failed = q.col_i(11) != 0;
  return d;
}
constexpr const char* kDeliveryColumns =
    "seq, kind, first, last, created, attempts, last_status, last_error, last_attempt, "
    "next_try, acked, failed";

}  // namespace

Expected<std::unique_ptr<Store>> Store::open(const std::string& path) {
  auto db = store::SqliteStore::open(path);
  if (!db) return core::unexpected(db.error());
  return std::unique_ptr<Store>(new Store(std::move(*db), path));
}

Status Store::exec(const std::string& sql) {
  char* msg = nullptr;
  if (sqlite3_exec(db_->handle(), sql.c_str(), nullptr, nullptr, &msg) == SQLITE_OK) return {};
  store::Error e{sqlite3_extended_errcode(db_->handle()),
                 std::string("webhook store: ") + (msg ? msg : "error")};
  sqlite3_free(msg);
  return core::unexpected(std::move(e));
}

Expected<bool> Store::has_tables() {
  sqlite3* db = db_->handle();
  Stmt q(db, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'webhook'");
  if (q.step() != SQLITE_ROW) return fail(db, "schema");
  return q.col_i(0) > 0;
}

Status Store::configure(const Config& c) {
  sqlite3* db = db_->handle();
  Txn txn(db);
  if (!txn.ok()) return fail(db, "begin");
  if (Status st = exec(kTables); !st) return st;
  if (c.batch > 0)
    if (Status st = exec(kTrigger); !st) return st;
  Stmt ins(db,
           "INSERT OR REPLACE INTO webhook(id, url, secret, batch, interval_ms) "
           "VALUES(1, ?1, ?2, ?3, ?4)");
  ins.t(1, c.url).t(2, c.secret).i(3, static_cast<int64_t>(c.batch)).i(4, c.interval.count());
  if (ins.step() != SQLITE_DONE) return fail(db, "configure");
  if (!txn.commit()) return fail(db, "commit");
  return {};
}

Expected<std::optional<Config>> Store::config() {
  auto has = has_tables();
  if (!has) return core::unexpected(has.error());
  if (!*has) return std::optional<Config>();
  sqlite3* db = db_->handle();
  Stmt q(db, "SELECT url, secret, batch, interval_ms FROM webhook WHERE id = 1");
  const int rc = q.step();
  if (rc == SQLITE_DONE) return std::optional<Config>();
  if (rc != SQLITE_ROW) return fail(db, "config");
  Config c;
  c.url = q.col_t(0);
  c.secret = q.col_t(1);
  c.batch = static_cast<uint64_t>(q.col_i(2));
  c.interval = Millis(q.col_i(3));
  return std::optional<Config>(std::move(c));
}

Expected<uint64_t> Store::make_batches(uint64_t batch, bool rest, Millis now) {
  sqlite3* db = db_->handle();
  Txn txn(db);
  if (!txn.ok()) return fail(db, "begin");
  auto made = add_batches(db, batch, rest, now);
  if (!made) return made;
  if (*made && !txn.commit()) return fail(db, "commit");
  return made;
}

Expected<uint64_t> Store::unbatched() {
  sqlite3* db = db_->handle();
  Stmt q(db,
         "SELECT (SELECT coalesce(max(pos), 0) FROM webhook_queue) - "
         "(SELECT coalesce(max(last), 0) FROM webhook_deliveries WHERE kind = 'records')");
  if (q.step() != SQLITE_ROW) return fail(db, "unbatched");
  return static_cast<uint64_t>(std::max<int64_t>(0, q.col_i(0)));
}

Expected<bool> Store::ended() {
  sqlite3* db = db_->handle();
  Stmt q(db, "SELECT ended FROM webhook WHERE id = 1");
  const int rc = q.step();
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return fail(db, "ended");
  return rc == SQLITE_ROW && q.col_i(0) != 0;
}

Status Store::end(uint64_t job, uint64_t batch, const std::string& summary_json, Millis now) {
  sqlite3* db = db_->handle();
  Txn txn(db);
  if (!txn.ok()) return fail(db, "begin");
  {
    Stmt q(db, "SELECT ended FROM webhook WHERE id = 1");
    if (q.step() != SQLITE_ROW) return fail(db, "ended");
    if (q.col_i(0) != 0) return {};  // already done (a restart after the end)
  }
  if (auto made = add_batches(db, batch, true, now); !made) return core::unexpected(made.error());
  int64_t seq = 0, records = 0;
  {
    Stmt q(db,
           "SELECT (SELECT coalesce(max(seq), 0) + 1 FROM webhook_deliveries), "
           "(SELECT coalesce(max(pos), 0) FROM webhook_queue)");
    if (q.step() != SQLITE_ROW) return fail(db, "end event");
    seq = q.col_i(0);
    records = q.col_i(1);
  }
  // The body is made once and kept: a resend carries the same summary, whenever it goes.
  const std::string body =
      "{\"event\":\"job.ended\",\"job\":" + std::to_string(job) + ",\"delivery\":\"" +
      std::to_string(job) + "-" + std::to_string(seq) + "\",\"seq\":" + std::to_string(seq) +
      ",\"batches\":" + std::to_string(seq - 1) +
      ",\"batched_records\":" + std::to_string(records) + ",\"summary\":" + summary_json + "}";
  Stmt ins(db,
           "INSERT INTO webhook_deliveries(seq, kind, body, created) "
           "VALUES(?1, 'job.ended', ?2, ?3)");
  ins.i(1, seq).t(2, body).i(3, now.count());
  if (ins.step() != SQLITE_DONE) return fail(db, "end event");
  if (Status st = exec("UPDATE webhook SET ended = 1 WHERE id = 1"); !st) return st;
  if (!txn.commit()) return fail(db, "commit");
  return {};
}

Expected<std::optional<Delivery>> Store::next_pending() {
  sqlite3* db = db_->handle();
  const std::string sql = std::string("SELECT ") + kDeliveryColumns +
                          " FROM webhook_deliveries WHERE acked = 0 AND failed = 0 "
                          "ORDER BY seq LIMIT 1";
  Stmt q(db, sql.c_str());
  const int rc = q.step();
  if (rc == SQLITE_DONE) return std::optional<Delivery>();
  if (rc != SQLITE_ROW) return fail(db, "next delivery");
  return std::optional<Delivery>(read_delivery(q));
}

Expected<std::string> Store::body(const Delivery& d, uint64_t job) {
  sqlite3* db = db_->handle();
  const std::string id = std::to_string(job) + "-" + std::to_string(d.seq);
  if (d.kind != "records") {
    Stmt q(db, "SELECT body FROM webhook_deliveries WHERE seq = ?1");
    q.i(1, d.seq);
    if (q.step() != SQLITE_ROW) return fail(db, "end event");
    return q.col_t(0);
  }
  // The records as the journal has them (JSON text, docs/records.md), in commit order.
  std::string out = "{\"event\":\"records\",\"job\":" + std::to_string(job) + ",\"delivery\":\"" +
                    id + "\",\"seq\":" + std::to_string(d.seq) +
                    ",\"from\":" + std::to_string(d.first) + ",\"to\":" + std::to_string(d.last) +
                    ",\"records\":[";
  Stmt q(db,
         "SELECT r.record FROM webhook_queue q JOIN results r ON r.job = q.job AND r.line = q.line "
         "WHERE q.pos BETWEEN ?1 AND ?2 ORDER BY q.pos");
  q.i(1, d.first).i(2, d.last);
  int rc;
  uint64_t n = 0;
  while ((rc = q.step()) == SQLITE_ROW) {
    if (n++) out += ',';
    out += q.col_t(0);
  }
  if (rc != SQLITE_DONE) return fail(db, "batch records");
  out += "],\"count\":" + std::to_string(n) + "}";
  return out;
}

Status Store::record_attempt(int64_t seq, Millis at, int status, const std::string& error,
                             bool acked, Millis next_try) {
  sqlite3* db = db_->handle();
  Txn txn(db);
  if (!txn.ok()) return fail(db, "begin");
  {
    Stmt u(db,
           "UPDATE webhook_deliveries SET attempts = attempts + 1, last_status = ?2, "
           "last_error = ?3, last_attempt = ?4, next_try = ?5, acked = ?6, failed = ?7 "
           "WHERE seq = ?1");
    u.i(1, seq).i(2, status).t(3, error).i(4, at.count()).i(5, acked ? 0 : next_try.count());
    u.i(6, acked ? at.count() : 0).i(7, !acked && next_try.count() == 0 ? 1 : 0);
    if (u.step() != SQLITE_DONE) return fail(db, "attempt");
  }
  {
    Stmt a(db,
           "INSERT INTO webhook_attempts(seq, n, at, status, error) "
           "VALUES(?1, (SELECT attempts FROM webhook_deliveries WHERE seq = ?1), ?2, ?3, ?4)");
    a.i(1, seq).i(2, at.count()).i(3, status).t(4, error);
    if (a.step() != SQLITE_DONE) return fail(db, "attempt log");
  }
  if (!txn.commit()) return fail(db, "commit");
  return {};
}

Expected<std::vector<Delivery>> Store::deliveries(size_t limit) {
  sqlite3* db = db_->handle();
  std::vector<Delivery> out;
  auto has = has_tables();
  if (!has) return core::unexpected(has.error());
  if (!*has) return out;
  const std::string sql = std::string("SELECT ") + kDeliveryColumns +
                          " FROM (SELECT * FROM webhook_deliveries ORDER BY seq DESC LIMIT ?1) "
                          "ORDER BY seq";
  Stmt q(db, sql.c_str());
  q.i(1, static_cast<int64_t>(limit));
  int rc;
  while ((rc = q.step()) == SQLITE_ROW)
    out.push_back(read_delivery(q));
  if (rc != SQLITE_DONE) return fail(db, "deliveries");
  return out;
}

Expected<std::vector<Attempt>> Store::attempts(int64_t seq, size_t limit) {
  sqlite3* db = db_->handle();
  std::vector<Attempt> out;
  Stmt q(db,
         "SELECT n, at, status, error FROM (SELECT * FROM webhook_attempts WHERE seq = ?1 "
         "ORDER BY n DESC LIMIT ?2) ORDER BY n");
  q.i(1, seq).i(2, static_cast<int64_t>(limit));
  int rc;
  while ((rc = q.step()) == SQLITE_ROW)
    out.push_back(Attempt{seq, static_cast<uint64_t>(q.col_i(0)), Millis(q.col_i(1)),
                          static_cast<int>(q.col_i(2)), q.col_t(3)});
  if (rc != SQLITE_DONE) return fail(db, "attempts");
  return out;
}

Expected<Totals> Store::totals() {
  sqlite3* db = db_->handle();
  Totals t;
  auto has = has_tables();
  if (!has) return core::unexpected(has.error());
  if (!*has) return t;
  Stmt q(db,
         "SELECT count(*), coalesce(sum(acked <> 0), 0), coalesce(sum(failed), 0) "
         "FROM webhook_deliveries");
  if (q.step() != SQLITE_ROW) return fail(db, "totals");
  t.deliveries = static_cast<uint64_t>(q.col_i(0));
  t.acked = static_cast<uint64_t>(q.col_i(1));
  t.failed = static_cast<uint64_t>(q.col_i(2));
  t.pending = t.deliveries - t.acked - t.failed;
  auto u = unbatched();
  if (!u) return core::unexpected(u.error());
  t.queued_records = *u;
  return t;
}

}  // namespace mxp::webhook
