// The job runner of `mxprobe verify` (and of the jobs of `mxprobe serve`): takes records from a
// JobSource as work drains (job/source.hpp), dedupes them (job/dedupe.hpp), answers repeats
// from the journal and the cache, submits the rest, and hands every final record to a
// ResultSink (job/sink.hpp). It drives a Verifier it owns (the CLI) or one shared with other
// work (serve: real-time checks and several jobs; the owner routes each result to its runner by
// id). The file job that puts today's source and sink around it is job/file_job.hpp.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "address/address.hpp"
#include "app/engine_options.hpp"
#include "app/job/dedupe.hpp"
#include "app/job/dispatch.hpp"
#include "app/job/sink.hpp"
#include "app/job/source.hpp"
#include "app/records.hpp"
#include "app/verify.hpp"
#include "core/progress.hpp"
#include "pipeline/result.hpp"
#include "pipeline/verifier.hpp"
#include "store/sqlite_store.hpp"
#include "store/writer.hpp"

namespace mxp::app {

using pipeline::Result;
using store::JobId;

class PolicyReloader;

// A result for a record that never reaches DNS: bad syntax or a broken input record.
Result invalid_result(const Record& r, std::string_view error);

// Catch-all facts kept in the results cache across runs (domain facts: yes/no, with a TTL),
// for the verifier's hooks (here and in serve).
std::optional<bool> cached_catch_all(store::JobStore* cache, const std::string& domain);
void remember_catch_all(store::Writer* cache, const std::string& domain, std::optional<bool> yes,
                        std::chrono::seconds ttl);

class Runner : private loop::TimerHandler, private ResultSink::Listener {
 public:
  // The CLI: the runner owns its verifier and the loop (stops it when done; Ctrl-C stops it).
  Runner(Engine& e, const VerifyOptions& opts, JobSource& source, ResultSink& sink, std::FILE* diag,
         Progress* progress);
  // serve: a verifier shared with other work. Results must be handed to deliver(); ids this
  // runner submits start at `id_base`; the owner calls on_starved() when the verifier starves
  // and learns the end through `on_done` (the loop keeps running).
  Runner(Engine& e, const VerifyOptions& opts, JobSource& source, ResultSink& sink, std::FILE* diag,
         pipeline::Verifier& shared, uint64_t id_base, std::function<void()> on_done);
  ~Runner();
  Runner(const Runner&) = delete;
  Runner& operator=(const Runner&) = delete;

  // Starts feeding without running the loop (serve); run() does both (CLI).
  void begin();
  // Stops: addresses not yet in a session go back (kept here), those in a session finish and
  // are recorded; resume_feeding() goes on where it stopped.
  void pause();
  void resume_feeding();
  // Stops for good: nothing more is read or submitted; addresses in a session finish, the
  // others stay undone (pending in the journal).
  void cancel();
  bool paused() const { return paused_; }
  // Done for good (serve, after its end was reported, outside the runner's own calls): frees
  // the buffers of reading, dedupe and output; the counts and the state stay for the API.
  void release();
  // Why the job could not run to its end (an up-front input error, a read or store error).
  std::string failure() const;
  bool cancelled() const { return cancelled_; }
  bool is_done() const { return done(); }
  uint64_t records_seen() const { return source_.records(); }
  bool input_read() const { return source_.ended(); }
  // The share of the job's records done: of those read when the input is read to its end,
  // else of an estimate from the share of the input's bytes read so far.
  double progress_fraction() const;
  uint64_t count_of(Verdict v) const { return counts_[static_cast<int>(v)]; }
  // Addresses submitted and not answered yet (in a session, or queued in the scheduler).
  uint64_t addresses_in_flight() const { return in_flight(); }
  // Every record answered so far is in the journal and the output (or can never be).
  bool records_saved() const { return flushed(); }
  // A result of an address this runner submitted.
  void deliver(Result&& r) { on_result(std::move(r)); }
  bool owns(uint64_t id) const { return dedupe_.owns(id); }
  void on_starved() { starved(); }

  // Addresses go to `d` instead of the verifier (a cluster job, job/cluster_dispatch.hpp); its
  // results come back through deliver(). Reading keeps d->appetite() addresses in flight, never
  // more (starvation of the node's verifier reads nothing more: the cluster works on them).
  void set_dispatch(Dispatch* d);

  // The job's journal (read on the loop's thread; null: none): repeats are answered from it,
  // and a failure's advice names it.
  void set_journal(store::SqliteStore* reads);
  // The results cache: read here, written (detached) by `writes`, shared with other work.
  void set_cache(store::SqliteStore* reads, store::Writer* writes);
  // A resumed job: its journal holds lines up to `after_line` (and earlier runs' work).
  void resumed(uint64_t after_line);
  // A record a resumed job's output was rebuilt with (counted, not answered again).
  void count_rebuilt(const Result& r);
  // A store error stops the job: said on diag (with advice when the disk is full); false.
  bool fail_store(const char* what, const store::Error& err);

  // Returns an exit code.
  int run();

  bool finished() const { return done() && !interrupted_ && !failed_; }
  uint64_t written() const { return written_; }
  uint64_t rebuilt() const { return rebuilt_; }
  uint64_t deduped() const { return deduped_; }
  uint64_t from_cache() const { return from_cache_; }
  // Called for every record this run answers (verified, from the cache, a repeat, a syntax
  // error), not for those a resume rebuilds from the journal: serve's counters.
  void set_on_record(std::function<void(const Result&)> f) { on_record_ = std::move(f); }
  ProgressState& progress_state() { return ps_; }
  const pipeline::VerifierStats& stats() const { return verifier_.stats(); }
  pipeline::Verifier& verifier() { return verifier_; }
  // The verdict counts, exact ("deliverable 1234  undeliverable 56 ..."): the final summary.
  std::string counts() const;
  // The status line's figures: verdict counts, open sessions, and the addresses waiting for a
  // retry with when the first and the last are due (the ETA counts the waits).
  void fill_progress(ProgressState& ps) const;

 private:
  pipeline::VerifierConfig with_hooks(pipeline::VerifierConfig c);
  void init();

  // Every record this run will produce has been produced...
  bool work_done() const;
  // ...and is in the journal and the output (or can never be: a store or output error).
  bool flushed() const { return failed_ || sink_.flushed(); }
  bool done() const { return work_done() && flushed(); }
  bool pending_rows_left() const { return source_.pending() && !interrupted_ && !cancelled_; }
  bool done_reading() const { return source_.ended() && !pending_rows_left(); }
  uint64_t in_flight() const { return dedupe_.in_flight(); }
  void withdraw(bool keep);
  void check_done();
  void stop_loop();
  void interrupt(int sig);
  void resolver_down(const std::string& line);
  std::string resume_hint() const;

  // Input.
  void refill();
  void starved();
  void read_more();
  void take(RecordBatch& page);
  void handle(uint64_t line, std::string_view email, std::string_view raw, address::Address a,
              std::string key);

  // Results.
  void on_result(Result&& r);
  void emit(Result&& r, std::string_view raw);
  void count(const Result& r);
  bool commit();
  bool flush_now();

  // The sink's news.
  void sink_durable(uint64_t batch) override { dedupe_.durable(batch); }
  void sink_ready() override;
  void sink_failed(const std::string& what, bool resumable) override;

  // Catch-all facts across runs (cache).
  std::optional<bool> known_catch_all(const std::string& domain);
  void learned_catch_all(const std::string& domain, std::optional<bool> yes);

  // Ticks.
  void arm_tick();
  void on_timer(loop::TimerId, uint64_t) override;

  Engine& e_;
  const VerifyOptions& opts_;
  JobSource& source_;
  ResultSink& sink_;
  std::FILE* diag_;
  Progress* progress_;
  std::unique_ptr<pipeline::Verifier> own_verifier_;
  pipeline::Verifier& verifier_;
  Dispatch* dispatch_ = nullptr;
  std::unique_ptr<PolicyReloader> signals_;
  std::function<void()> on_done_;
  Dedupe dedupe_;
  bool paused_ = false, cancelled_ = false, done_reported_ = false;
  bool journalled_ = false;  // a journal keeps the work (the advice after a failure)
  store::SqliteStore* cache_ = nullptr;
  store::Writer* cache_writer_ = nullptr;
  // The page being read, each record's parsed address and its key (reused buffers).
  RecordBatch page_;
  std::vector<address::ParseResult> parsed_;
  std::vector<std::string> keys_;
  bool format_noted_ = false;  // the sink knows the input's format
  uint64_t resume_after_ = 0;  // a resumed job: the lines its journal held
  uint64_t high_ = 1000, ceiling_ = 200'000;
  uint64_t next_id_ = 1;
  uint64_t own_id_base_ = 0;    // shared verifier: this runner's ids are [base, base + 2^40)
  std::vector<Waiter> parked_;  // taken back by pause(), submitted again by resume_feeding()
  size_t json_reserve_ = 1024;  // bytes reserved for the next record's JSON (emit)
  uint64_t written_ = 0, emitted_ = 0, rebuilt_ = 0, deduped_ = 0, from_cache_ = 0;
  std::function<void(const Result&)> on_record_;
  std::array<uint64_t, kVerdictCount> counts_{};
  bool interrupted_ = false, failed_ = false;
  bool resolver_down_ = false;  // stopped: the DNS resolver does not answer (exit 5)
  loop::TimerId tick_{};
  bool tick_armed_ = false;
  ProgressState ps_;
};

}  // namespace mxp::app
