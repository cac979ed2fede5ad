// The job runner of `mxprobe verify` (and of the jobs of `mxprobe serve`): reads the input as
// work drains, journals rows and results, dedupes, answers from the cache, writes the output,
// resumes after a crash. It drives a Verifier it owns (the CLI) or one shared with other work
// (serve: real-time checks and several jobs; the owner routes each result to its runner by id).
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "address/address.hpp"
#include "app/engine_options.hpp"
#include "app/io.hpp"
#include "app/output.hpp"
#include "app/output_order.hpp"
#include "app/records.hpp"
#include "app/reload.hpp"
#include "app/verify.hpp"
#include "core/clock.hpp"
#include "core/progress.hpp"
#include "pipeline/result.hpp"
#include "pipeline/verifier.hpp"
#include "store/sqlite_store.hpp"
#include "store/writer.hpp"
#include "verdict/classify.hpp"

namespace mxp::app {

using pipeline::Result;

// A result for a record that never reaches DNS: bad syntax or a broken input record.
inline Result invalid_result(const Record& r, std::string_view error) {
  Result res;
  res.line = r.number;
  res.email.assign(r.field);
  auto c = verdict::classify_syntax_error();
  res.verdict = c.verdict;
  res.reason = c.reason;
  res.error.assign(error);
  res.checked_at = std::chrono::system_clock::now();
  return res;
}

using store::JobId;

inline constexpr size_t kCommitCount = 2000;  // results per journal transaction at most
// Without a journal, finished records kept for dedupe (about 0.5 KB each).
inline constexpr size_t kRecentWithoutJournal = 100'000;
inline constexpr auto kForever = std::chrono::hours(24 * 365 * 100);

// Catch-all facts kept in the results cache across runs (domain facts: yes/no, with a TTL).
inline std::optional<bool> cached_catch_all(store::JobStore* cache, const std::string& domain) {
  if (!cache) return std::nullopt;
  auto f = cache->get_domain_facts(domain);
  if (!f || !f->has_value()) return std::nullopt;
  return (*f)->catch_all;
}
inline void remember_catch_all(store::Writer* cache, const std::string& domain,
                               std::optional<bool> yes, std::chrono::seconds ttl) {
  if (!cache || !yes) return;
  store::DomainFacts f;
  f.domain = domain;
  f.catch_all = yes;
  f.last_contact = store::unix_now();
  f.expires = f.last_contact + ttl.count();
  cache->post_detached([f](store::SqliteStore& s) { return s.put_domain_facts(f); });
}

inline bool cacheable(const Result& r) {
  // Final answers about the mailbox or domain; never "unknown" (it may change in minutes) nor
  // syntax errors (no address to key on).
  return r.verdict != Verdict::Unknown && !r.normalized.empty();
}

inline std::string options_json(const VerifyOptions& o, std::string_view header,
                                unsigned char delim) {
  nlohmann::json j = {{"input", o.input},
                      {"output", o.output},
                      {"format", o.format == OutputFormat::Csv ? "csv" : "jsonl"},
                      {"column", o.records.column},
                      {"column_given", o.records.column_given},
                      {"header", std::string(header)},
                      {"delimiter", std::string(1, static_cast<char>(delim))}};
  return j.dump();
}

// The input of a resumed job must start with the bytes the journal's rows were read from
// (their line numbers are where reading goes on): a changed file is refused, never merged.
// 0: the same (or nothing to compare: a pipe, a journal from before fingerprints); 2: changed
// or unreadable (said on `diag`); 1: a journal error.
inline int check_input_unchanged(store::SqliteStore& journal, store::JobId job,
                                 const std::string& input, std::FILE* diag) {
  if (input == "-") return 0;  // a pipe cannot be read twice: the caller's word
  auto meta = journal.get_meta("input_fingerprint:" + std::to_string(job));
  if (!meta) {
    std::fprintf(diag, "mxprobe verify: journal: %s\n", meta.error().message.c_str());
    return 1;
  }
  if (!meta->has_value()) return 0;
  nlohmann::json fp = nlohmann::json::parse(**meta, nullptr, false);
  if (!fp.is_object()) return 0;
  const uint64_t want = fp.value("bytes", uint64_t{0});
  const uint64_t want_crc = fp.value("crc32", uint64_t{0});
  InputFile again;
  if (auto opened = again.open(input); !opened) {
    std::fprintf(diag, "mxprobe verify: %s\n", opened.error().c_str());
    return 2;
  }
  uLong crc = crc32_z(0, nullptr, 0);
  uint64_t got = 0;
  std::vector<char> buf(64 * 1024);
  while (got < want) {
    auto n = again.read(buf.data(), std::min<uint64_t>(buf.size(), want - got));
    if (!n) {
      std::fprintf(diag, "mxprobe verify: %s\n", n.error().c_str());
      return 2;
    }
    if (*n == 0) break;
    crc = crc32_z(crc, reinterpret_cast<const Bytef*>(buf.data()), *n);
    got += *n;
  }
  if (got == want && crc == want_crc) return 0;
  struct stat st {};
  const std::string now =
      stat(input.c_str(), &st) == 0 ? std::to_string(st.st_size) + " bytes now" : "unreadable now";
  std::fprintf(diag,
               "mxprobe verify: %s changed since the journal was written (%s bytes then, %s): "
               "its first %llu bytes are not the ones the journalled lines were read from, so "
               "resuming would verify some lines twice and skip others. Restore the original "
               "input, or start over without --resume (delete the journal)\n",
               input.c_str(), fp.contains("size") ? fp["size"].dump().c_str() : "?", now.c_str(),
               static_cast<unsigned long long>(want));
  return 2;
}

// Everything `mxprobe verify` does around the verifier: reads the input as work drains,
// journals rows and results, dedupes, answers from the cache, writes the output, resumes.
class Runner final : private loop::TimerHandler, private loop::FdHandler {
 public:
  // The CLI: the runner owns its verifier and the loop (stops it when done; Ctrl-C stops it).
  Runner(Engine& e, const VerifyOptions& opts, InputFile& in, OutputFile& out, std::FILE* diag,
         Progress* progress)
      : e_(e),
        opts_(opts),
        in_(in),
        out_(out),
        diag_(diag),
        progress_(progress),
        fmt_(opts.format, opts.transcripts),
        own_verifier_(
            std::make_unique<pipeline::Verifier>(*e.loop, *e.resolver, with_hooks(e.config),
                                                 [this](Result&& r) { deliver(std::move(r)); })),
        verifier_(*own_verifier_),
        reader_(opts.records, [this](const Record& r) { on_record(r); }) {
    signals_ =
        std::make_unique<PolicyReloader>(e, verifier_, diag, [this](int sig) { interrupt(sig); });
    init(in);
  }

  // serve: a verifier shared with other work. Results must be handed to deliver(); ids this
  // runner submits start at `id_base`; the owner calls on_starved() when the verifier starves
  // and learns the end through `on_done` (the loop keeps running).
  Runner(Engine& e, const VerifyOptions& opts, InputFile& in, OutputFile& out, std::FILE* diag,
         pipeline::Verifier& shared, uint64_t id_base, std::function<void()> on_done)
      : e_(e),
        opts_(opts),
        in_(in),
        out_(out),
        diag_(diag),
        progress_(nullptr),
        fmt_(opts.format, opts.transcripts),
        verifier_(shared),
        reader_(opts.records, [this](const Record& r) { on_record(r); }),
        on_done_(std::move(on_done)),
        next_id_(id_base),
        own_id_base_(id_base) {
    init(in);
    // Shared: a small read-ahead, so that pause stops soon; starvation still reads on.
    high_ = 1000;
  }

  ~Runner() {
    if (tick_armed_) e_.loop->cancel_timer(tick_);
    set_journal(nullptr, nullptr);
  }

  // Starts feeding without running the loop (serve); run() does both (CLI).
  void begin() {
    refill();
    arm_tick();
  }
  // Stops: addresses not yet in a session go back (kept here), those in a session finish and
  // are recorded; resume_feeding() goes on where it stopped.
  void pause() {
    paused_ = true;
    withdraw(true);
  }
  void resume_feeding() {
    paused_ = false;
    auto parked = std::move(parked_);
    parked_.clear();
    for (auto& w : parked) {
      auto p = address::parse(w.email);
      if (p.ok()) handle(w.line, w.email, w.record(), std::move(p.address));
    }
    refill();
    if (!tick_armed_ && !done()) arm_tick();  // paused since before begin() (a restart)
  }
  // Keeps a state in the journal ("paused", "running") for whoever opens it next.
  void save_state(std::string state) {
    if (!writer_ || job_ == 0) return;
    writer_->post([job = job_, state = std::move(state)](store::SqliteStore& s) {
      return s.set_job_state(job, state);
    });
  }
  // Stops for good: nothing more is read or submitted; addresses in a session finish, the
  // others stay undone (pending in the journal).
  void cancel() {
    cancelled_ = true;
    withdraw(false);
    parked_.clear();
    check_done();
  }
  bool paused() const { return paused_; }
  // The job's entry in the journal (made with its first rows, or now): false on a store error.
  bool ensure_journal_job() {
    if (job_ != 0) return true;
    if (!journal_) return false;
    auto j = journal_->create_job(opts_.input, options_json(opts_, header_, delim_));
    if (!j) return fail_store("journal", j.error());
    job_ = *j;
    (void)journal_->set_job_state(job_, "running");
    return true;
  }
  // Done for good (serve, after its end was reported, outside the runner's own calls): frees
  // the buffers of reading and dedupe; the counts and the state stay for the API.
  void release() {
    if (!done()) return;
    released_ = true;
    seen_ = {};
    chunk_.reset();
    recent_ = {};
    inflight_ = {};
    ids_ = {};
    committing_ = {};
    waiting_out_ = {};
    rows_ = {};
    batch_ = {};
    cache_batch_ = {};
    out_buf_ = {};
    parked_ = {};
    order_ = OutputOrder(opts_.order_input);
  }
  // Why the job could not run to its end (an up-front input error, a read or store error).
  std::string failure() const {
    if (!reader_.error().empty()) return reader_.error();
    if (!read_error_.empty()) return read_error_;
    return failed_ ? "journal or output error (see the log)" : "";
  }
  bool cancelled() const { return cancelled_; }
  bool is_done() const { return done(); }
  uint64_t records_seen() const { return records_seen_; }
  bool input_read() const { return eof_; }
  // The share of the job's records done: of those read when the input is read to its end,
  // else of an estimate from the share of the input's bytes read so far.
  double progress_fraction() const {
    if (eof_) return records_seen_ ? double(written_) / double(records_seen_) : 1.0;
    if (!ps_.bytes_total || !ps_.bytes_done || !records_seen_) return 0.0;
    const double total =
        double(records_seen_) * double(ps_.bytes_total) / double(ps_.bytes_done) + 1;
    return std::min(1.0, double(written_) / total);
  }
  uint64_t count_of(Verdict v) const { return counts_[static_cast<int>(v)]; }
  // A result of an address this runner submitted.
  void deliver(Result&& r) { on_result(std::move(r)); }
  bool owns(uint64_t id) const { return ids_.count(id) != 0; }
  void on_starved() { starved(); }

  void init(InputFile& in) {
    const auto& pol = verifier_.scheduler().policy();
    high_ = std::max<uint64_t>(
        1000, uint64_t(pol.max_sessions()) * pol.domain_settings("", std::nullopt).recipients * 4);
    ceiling_ = std::max<uint64_t>(200'000, high_ * 10);
    ps_.bytes_total = in.size();
  }

  // The journal: read here on the loop's thread, written by `writes` on its own thread (the
  // runner owns it). Null, null: no journal (any writes left are run first).
  void set_journal(store::SqliteStore* reads, std::unique_ptr<store::Writer> writes) {
    if (writer_) {
      e_.loop->unwatch_fd(writer_->event_fd());
      writer_->drain();
      absorb_writes();
    }
    journal_ = reads;
    writer_ = std::move(writes);
    if (writer_) (void)e_.loop->watch_fd(writer_->event_fd(), true, false, *this);
  }
  // The results cache: read here, written (detached) by `writes`, shared with other work.
  void set_cache(store::SqliteStore* reads, store::Writer* writes) {
    cache_ = reads;
    cache_writer_ = writes;
  }

  // Resuming `job`: rebuilds the output from the journal and continues after its last row.
  bool resume(JobId job, const nlohmann::json& options) {
    job_ = job;
    header_ = options.value("header", std::string());
    std::string d = options.value("delimiter", std::string(","));
    delim_ = static_cast<unsigned char>(d.empty() ? ',' : d[0]);
    if (!header_.empty()) fmt_.set_input_header(header_, delim_);
    auto max = journal_->max_line(job);
    if (!max) return fail_store("journal", max.error());
    resume_after_ = *max;
    resuming_ = true;
    pending_cursor_ = 0;
    // The output is made whole from the journal: every committed record once, none torn.
    std::string buf = fmt_.header();
    header_written_ = true;
    uint64_t after = 0;
    for (;;) {
      auto page = journal_->done_page(job, after, 4096);
      if (!page) return fail_store("journal", page.error());
      if (page->empty()) break;
      for (const auto& row : *page) {
        Result r;
        std::string err;
        if (!pipeline::parse_json(row.record, r, err)) {
          std::fprintf(diag_, "mxprobe verify: journal line %llu: %s\n",
                       static_cast<unsigned long long>(row.line), err.c_str());
          return false;
        }
        fmt_.append(r, row.raw, buf);
        count(r);
        after = row.line;
      }
      if (!write_out(buf)) return false;
      buf.clear();
    }
    if (!write_out(buf)) return false;
    rebuilt_ = written_;
    return true;
  }

  // Returns an exit code.
  int run() {
    begin();
    if (failed_) return 1;
    if (!done()) e_.loop->run();
    if (tick_armed_) e_.loop->cancel_timer(tick_);
    tick_armed_ = false;
    if (!flush_now()) return 1;
    if (failed_) return 1;
    if (!read_error_.empty()) {
      std::fprintf(diag_, "mxprobe verify: %s\n", read_error_.c_str());
      return 1;
    }
    if (!reader_.error().empty()) {
      std::fprintf(diag_, "mxprobe verify: %s\n", reader_.error().c_str());
      return 2;
    }
    if (resolver_down_) return 5;
    if (interrupted_) return 130;
    return 0;
  }

  bool finished() const { return done() && !interrupted_ && !failed_; }
  JobId job() const { return job_; }
  uint64_t written() const { return written_; }
  uint64_t rebuilt() const { return rebuilt_; }
  uint64_t deduped() const { return deduped_; }
  uint64_t from_cache() const { return from_cache_; }
  // Called for every record this run answers (verified, from the cache, a repeat, a syntax
  // error), not for those a resume rebuilds from the journal: serve's counters.
  void set_on_record(std::function<void(const Result&)> f) { on_record_ = std::move(f); }
  ProgressState& progress_state() { return ps_; }
  const pipeline::VerifierStats& stats() const { return verifier_.stats(); }
  // The verdict counts, exact ("deliverable 1234  undeliverable 56 ..."): the final summary.
  std::string counts() const {
    std::string s;
    for (int i = 0; i < kVerdictCount; ++i) {
      if (i) s += "  ";
      s += to_string(static_cast<Verdict>(i));
      s += ' ';
      s += std::to_string(counts_[i]);
    }
    return s;
  }
  // The status line's figures: verdict counts, open sessions, and the addresses waiting for a
  // retry with when the first and the last are due (the ETA counts the waits).
  void fill_progress(ProgressState& ps) const {
    ps.counts.clear();
    for (int i = 0; i < kVerdictCount; ++i)
      ps.counts.emplace_back(to_string(static_cast<Verdict>(i)), counts_[i]);
    const auto& sched = verifier_.scheduler();
    ps.sessions = sched.stats().sessions;
    const auto w = sched.waiting_span();
    const auto now = e_.loop->now();
    auto in = [now](sched::TimePoint t) {
      return std::max(0.0, std::chrono::duration<double>(t - now).count());
    };
    ps.waiting = w.count;
    ps.next_retry_s = w.count ? in(w.first) : -1;
    ps.last_retry_s = w.count ? in(w.last) : -1;
  }

 private:
  struct Waiter {
    uint64_t line = 0;
    std::string email;
    std::string raw;  // the input record; empty when it is `email` itself (a plain list)
    static Waiter of(uint64_t line, std::string_view email, std::string_view raw) {
      return {line, std::string(email), raw == email ? std::string() : std::string(raw)};
    }
    std::string_view record() const { return raw.empty() ? std::string_view(email) : raw; }
  };

  pipeline::VerifierConfig with_hooks(pipeline::VerifierConfig c) {
    c.on_starved = [this] { starved(); };
    c.catch_all_known = [this](const std::string& domain) { return known_catch_all(domain); };
    c.catch_all_learned = [this](const std::string& domain, std::optional<bool> yes) {
      learned_catch_all(domain, yes);
    };
    c.on_resolver_down = [this](const std::string& line) { resolver_down(line); };
    return c;
  }

  // Every record this run will produce has been produced...
  bool work_done() const {
    return (eof_ || interrupted_ || failed_ || cancelled_) && ids_.empty() && parked_.empty() &&
           !pending_rows_left();
  }
  // ...and is in the journal and the output (or can never be: a store or output error).
  bool flushed() const {
    return failed_ ||
           (rows_.empty() && batch_.empty() && out_buf_.empty() && waiting_out_.empty() &&
            order_.held() == 0 && !(writer_ && writer_->outstanding()) &&
            (header_written_ || !(header_known_ || eof_)));
  }
  bool done() const { return work_done() && flushed(); }
  bool pending_rows_left() const {
    return resuming_ && !pending_done_ && !interrupted_ && !cancelled_;
  }
  // Takes this runner's queued addresses back from the verifier (keeping their lines to submit
  // again when `keep`).
  void withdraw(bool keep) {
    if (!own_id_base_) return;
    std::vector<uint64_t> ids;
    verifier_.withdraw(own_id_base_, own_id_base_ + (uint64_t{1} << 40), ids);
    for (uint64_t id : ids) {
      auto it = ids_.find(id);
      if (it == ids_.end()) continue;
      auto w = inflight_.find(*it->second);
      if (w != inflight_.end()) {
        if (keep)
          for (auto& x : w->second)
            parked_.push_back(std::move(x));
        inflight_.erase(w);
      }
      ids_.erase(it);
    }
  }
  // Addresses this runner submitted and has no result for yet.
  uint64_t in_flight() const { return ids_.size(); }
  // The end: the CLI stops the loop, serve hears about it (once).
  void check_done() {
    if (!work_done()) return;
    order_.drain(out_buf_);    // lines that will never answer (cancelled) hold nothing back
    if (!flushed()) commit();  // the end is reached when the writer says the last batch is in
    if (!flushed()) return;
    if (own_verifier_) {
      e_.loop->stop();
    } else if (on_done_ && !done_reported_) {
      done_reported_ = true;
      on_done_();
    }
  }

  void interrupt(int sig) {
    if (interrupted_) return;
    interrupted_ = true;
    std::fprintf(diag_, "\nmxprobe verify: %s: stopping; finished work is kept\n",
                 sig == SIGINT ? "interrupted" : "terminated");
    stop_loop();
  }

  // The DNS resolver does not answer: stop as on Ctrl-C (finished work kept, the addresses not
  // verified left in the journal for --resume, none written as dns_error); exit 5.
  void resolver_down(const std::string& line) {
    if (interrupted_) return;
    interrupted_ = resolver_down_ = true;
    std::fprintf(diag_, "\nmxprobe verify: %s: stopping; finished work is kept\n", line.c_str());
    stop_loop();
  }

  // The CLI's advice after a write error: what was done is kept, and how to go on.
  std::string resume_hint() const {
    if (!own_verifier_ || !journal_) return "";
    return "; the records done so far are kept in the journal " +
           (opts_.journal.empty() ? opts_.output + ".journal" : opts_.journal) +
           ": free some space, then run the same command with --resume";
  }

  bool fail_store(const char* what, const store::Error& err) {
    const bool full = (err.code & 0xff) == 13;  // SQLITE_FULL: the disk is full
    std::fprintf(diag_, "mxprobe verify: %s: %s%s\n", what, err.message.c_str(),
                 full ? resume_hint().c_str() : "");
    failed_ = true;
    stop_loop();
    return false;
  }

  bool write_out(std::string_view data) {
    if (data.empty()) return true;
    auto w = out_.write(data);
    if (w) return true;
    std::fprintf(diag_, "mxprobe verify: %s%s\n", w.error().c_str(), resume_hint().c_str());
    failed_ = true;
    stop_loop();
    return false;
  }

  // --- Input ---

  void on_record(const Record& r) {
    ++records_seen_;
    last_record_ = r.number;
    if (!header_known_) note_format();
    if (resuming_ && r.number <= resume_after_) return;  // in the journal already
    order_.expect(r.number);
    std::string_view raw = r.issue == RecordIssue::RecordTooLong ? std::string_view() : r.raw;
    if (r.issue != RecordIssue::None) {
      add_row(r.number, raw, "");
      return emit(invalid_result(r, to_string(r.issue)), raw);
    }
    auto p = address::parse(r.field);
    if (!p.ok()) {
      add_row(r.number, raw, "");
      return emit(invalid_result(r, address::to_string(p.error)), raw);
    }
    add_row(r.number, raw, p.address.normalized());
    handle(r.number, r.field, raw, std::move(p.address));
  }

  void add_row(uint64_t line, std::string_view raw, std::string normalized) {
    if (journal_) rows_.push_back({line, std::string(raw), std::move(normalized)});
  }

  // One valid address: joins an identical one in flight, or is answered from this job's
  // earlier lines or the cache, or goes to the verifier.
  void handle(uint64_t line, std::string_view email, std::string_view raw, address::Address a) {
    if (paused_) {  // read while paused (catching_up): submitted by resume_feeding()
      parked_.push_back(Waiter::of(line, email, raw));
      return;
    }
    std::string key = a.normalized();
    if (auto it = inflight_.find(key); it != inflight_.end()) {
      it->second.push_back(Waiter::of(line, email, raw));
      ++deduped_;
      return;
    }
    if (auto earlier = find_done(key)) {
      Result r;
      std::string err;
      if (pipeline::parse_json(*earlier, r, err)) {
        r.line = line;
        r.email.assign(email);
        r.transcript.clear();
        ++deduped_;
        return emit(std::move(r), raw);
      }
    }
    if (cache_) {
      auto hit = cache_->get_cache_at(key, opts_.cache_ttl, store::unix_now());
      if (!hit) {
        fail_store("cache", hit.error());
        return;
      }
      Result r;
      std::string err;
      if (hit->has_value() && pipeline::parse_json((*hit)->json, r, err)) {
        r.line = line;
        r.email.assign(email);
        r.cached = true;
        r.transcript.clear();
        // The flags come from today's domain data, not the data of the day it was checked.
        set_domain_flags(r, flags::domain_flags(verifier_.config().domain_data.get(), a.domain),
                         r.normalized);
        ++from_cache_;
        return emit(std::move(r), raw);
      }
    }
    const uint64_t id = next_id_++;
    auto waiting = inflight_.try_emplace(std::move(key)).first;
    waiting->second.push_back(Waiter::of(line, email, raw));
    ids_.emplace(id, &waiting->first);
    verifier_.submit(id, line, std::string(email), std::move(a));
  }

  std::optional<std::string> find_done(const std::string& key) {
    if (auto it = recent_.find(key); it != recent_.end()) return it->second;
    for (const auto& c : committing_)
      if (auto it = c.records.find(key); it != c.records.end()) return it->second;
    if (!journal_) return std::nullopt;
    // Most addresses were never seen: a bit per hash (2 MiB, false positives only cost a
    // lookup) spares the journal query. A resumed job's journal holds earlier runs' work too.
    if (!resuming_ && !seen_bit(key)) return std::nullopt;
    auto got = journal_->lookup_cached_at(
        key, std::chrono::duration_cast<std::chrono::seconds>(kForever), store::unix_now());
    if (!got) {
      fail_store("journal", got.error());
      return std::nullopt;
    }
    if (!got->has_value()) return std::nullopt;
    return (*got)->json;
  }

  // Reads input until enough work is queued (or the input ends): the journal's pending rows
  // first when resuming, then the input.
  void refill() {
    // Shared (serve): about a millisecond of reading a call, so the API never waits behind a
    // long read (results, the writer, starvation and the tick call again), but at least one
    // chunk whatever the clock says: a call that read nothing could stall a job.
    const auto until = core::Clock::now() + std::chrono::milliseconds(1);
    for (bool first = true;
         !done_reading() && in_flight() < high_ && !failed_ && (!paused_ || catching_up()) &&
         !cancelled_ && !interrupted_ && !writer_behind() &&
         (own_verifier_ || first || core::Clock::now() < until);
         first = false)
      read_more();
    check_done();
  }
  // The journal's writer has a backlog: reading on would only grow it (memory).
  bool writer_behind() const { return writer_ && writer_->outstanding() > 8; }
  void stop_loop() {
    if (own_verifier_)
      e_.loop->stop();
    else
      check_done();
  }
  bool done_reading() const { return eof_ && !pending_rows_left(); }

  // The scheduler has room for sessions but nothing it may start: whatever is queued waits on
  // its MX group (a tarpit holding its sessions, tokens, a retry time). Reading on is what keeps
  // the other groups busy; one chunk at a time, so this stops as soon as sessions can start
  // again, and never past `ceiling_` queued addresses (memory).
  void starved() {
    if (!done_reading() && in_flight() < ceiling_ && !interrupted_ && !failed_ && !paused_ &&
        !cancelled_ && !writer_behind())
      read_more();
    check_done();
  }

  // Resumed and paused (serve, after a restart): reading goes on through the part of the input
  // the journal already holds, which submits nothing, so that the job's size and progress are
  // known; the first records past it wait in parked_.
  bool catching_up() const { return resuming_ && !eof_ && last_record_ <= resume_after_; }

  void read_more() {
    if (interrupted_ || cancelled_) return;
    if (paused_) return read_chunk();  // catching_up()
    if (pending_rows_left()) return read_pending_page();
    read_chunk();
  }

  void read_pending_page() {
    auto page = journal_->pending_rows(job_, pending_cursor_, 1024);
    if (!page) {
      fail_store("journal", page.error());
      return;
    }
    if (page->empty()) {
      pending_done_ = true;
      return;
    }
    for (const auto& row : *page) {
      pending_cursor_ = row.line;
      order_.expect(row.line);
      std::string field = field_of(row.raw);
      auto p = address::parse(field);
      if (!p.ok()) {  // cannot happen for a row stored valid; finish it rather than lose it
        Record rec(row.line, field, RecordIssue::None, row.raw);
        emit(invalid_result(rec, address::to_string(p.error)), row.raw);
        continue;
      }
      handle(row.line, field, row.raw, std::move(p.address));
    }
  }

  // The address field of a stored input record (CSV: parsed again under the job's header).
  std::string field_of(const std::string& raw) {
    if (header_.empty()) return raw;
    std::string field;
    RecordOptions ro = opts_.records;
    ro.format = InputFormat::Csv;
    RecordReader rr(ro, [&](const Record& r) { field.assign(r.field); });
    rr.feed(header_);
    rr.feed("\n");
    field.clear();
    rr.feed(raw);
    rr.feed("\n");
    rr.finish();
    return field;
  }

  void read_chunk() {
    // CLI: 64 KiB (~3,000 lines) at a time. Shared (serve): 4 KiB, so that reading and
    // journalling a chunk never holds the loop (and the API) for more than a few ms.
    const size_t kChunk = own_verifier_ ? 64 * 1024 : 4 * 1024;
    if (!chunk_) chunk_ = std::make_unique<char[]>(64 * 1024);
    auto got = in_.read(chunk_.get(), kChunk);
    if (!got) read_error_ = got.error();
    const size_t n = got ? *got : 0;
    if (n > 0) {
      fp_crc_ = crc32_z(fp_crc_, reinterpret_cast<const Bytef*>(chunk_.get()), n);
      fp_bytes_ += n;
    }
    if (n == 0 || !reader_.feed({chunk_.get(), n})) {
      if (got && n == 0) reader_.finish();
      eof_ = true;
    } else {
      ps_.bytes_done = in_.consumed();
    }
    if (!header_known_ && eof_) note_format();
    store_rows();
  }

  // The input's format is known from its first record on (CSV: its header line), before any
  // record is formatted: CSV output then starts with the user's columns.
  void note_format() {
    header_known_ = true;
    if (reader_.format() == InputFormat::Csv && header_.empty()) {
      header_ = std::string(reader_.header());
      delim_ = reader_.delimiter();
      fmt_.set_input_header(header_, delim_);
    }
  }

  // The rows read so far go to the journal (one transaction per chunk), the job first.
  void store_rows() {
    if (!journal_ || rows_.empty()) return;
    if (!ensure_journal_job()) return;
    // With the rows, the fingerprint of the input read so far: --resume reads the input again
    // from its start and must find the same bytes (see check_input_unchanged).
    nlohmann::json fp = {{"bytes", fp_bytes_}, {"crc32", fp_crc_}};
    if (struct stat st{}; opts_.input != "-" && stat(opts_.input.c_str(), &st) == 0) {
      fp["size"] = static_cast<uint64_t>(st.st_size);
      fp["mtime"] = static_cast<int64_t>(st.st_mtime);
    }
    writer_->post([job = job_, rows = std::move(rows_), fp = fp.dump()](store::SqliteStore& s) {
      if (auto st = s.add_rows(job, rows); !st) return st;
      return s.set_meta("input_fingerprint:" + std::to_string(job), fp);
    });
    rows_.clear();
  }

  // --- Results ---

  void on_result(Result&& r) {
    auto id = ids_.find(r.id);
    std::string key = id == ids_.end() ? r.normalized : *id->second;
    if (id != ids_.end()) ids_.erase(id);
    auto waiting = inflight_.find(key);
    std::vector<Waiter> lines;
    if (waiting != inflight_.end()) {
      lines = std::move(waiting->second);
      inflight_.erase(waiting);
    }
    if (cache_writer_ && cacheable(r)) {
      std::string json;
      pipeline::append_json(r, json, false);
      cache_batch_.push_back({key, std::chrono::system_clock::to_time_t(r.checked_at), json});
    }
    for (size_t i = 0; i < lines.size(); ++i) {
      // NOLINTNEXTLINE(bugprone-use-after-move): r is moved on the last iteration only
      Result copy = i + 1 < lines.size() ? r : std::move(r);
      copy.line = lines[i].line;
      std::string raw = lines[i].raw.empty() ? lines[i].email : std::move(lines[i].raw);
      copy.email = std::move(lines[i].email);
      emit(std::move(copy), raw);
    }
    if (batch_.size() >= kCommitCount) commit();
    if (in_flight() < high_ / 2) refill();
    check_done();
  }

  // A record is final: journal it (in the next commit), then the output.
  void emit(Result&& r, std::string_view raw) {
    std::string json;
    pipeline::append_json(r, json, opts_.transcripts);
    // Without a journal these records are all there is to dedupe with: the most recent ones
    // only, so memory stays bounded however long the list.
    if (!journal_ && recent_.size() >= kRecentWithoutJournal) recent_.clear();
    if (!r.normalized.empty()) {
      recent_[r.normalized] = json;
      set_seen_bit(r.normalized);
    }
    std::string text;  // the output's line, in input order through order_ (--order)
    if (fmt_.format() == OutputFormat::Jsonl)
      text = json;  // what fmt_.append would write: append_json, same transcripts flag
    else
      fmt_.append(r, raw, text);
    order_.push(r.line, std::move(text), out_buf_);
    count(r);
    if (on_record_) on_record_(r);
    if (journal_) {
      store::ResultRecord rec;
      rec.line = r.line;
      rec.verdict = to_string(r.verdict);
      rec.reason = to_string(r.reason);
      rec.checked_at = std::chrono::system_clock::to_time_t(r.checked_at);
      rec.json = std::move(json);
      batch_.push_back(std::move(rec));
    }
    ++emitted_;
  }

  void count(const Result& r) {
    ++counts_[static_cast<int>(r.verdict)];
    ++written_;
  }

  // Hands the batch to the journal's writer (one transaction on its thread) and writes it out
  // when the writer says it is durable (on_fd_ready). A crash between the two loses nothing:
  // --resume rebuilds the output from the journal. Without a journal, writes out at once.
  bool commit() {
    store_rows();
    if (failed_) return false;
    if (!header_written_ && (header_known_ || eof_)) {
      header_written_ = true;
      out_buf_.insert(0, fmt_.header());
    }
    if (writer_ && !batch_.empty()) {
      // The output of these records waits for their transaction; later output queues behind.
      const uint64_t ticket =
          writer_->post([job = job_, batch = std::move(batch_)](store::SqliteStore& s) {
            return s.record_results(job, batch);
          });
      batch_.clear();
      committing_.push_back({ticket, std::move(recent_)});
      recent_.clear();
      waiting_out_.push_back({ticket, std::move(out_buf_)});
      out_buf_.clear();
    } else if (!waiting_out_.empty()) {
      waiting_out_.back().data += out_buf_;
      out_buf_.clear();
    }
    if (header_written_ && waiting_out_.empty()) {
      if (!write_out(out_buf_)) return false;
      out_buf_.clear();
    }
    if (cache_writer_ && !cache_batch_.empty()) {
      cache_writer_->post_detached(
          [batch = std::move(cache_batch_)](store::SqliteStore& s) { return s.put_cache(batch); });
      cache_batch_.clear();
    }
    return true;
  }

  // The journal's writer finished batches: their records are durable, so out they go.
  void on_fd_ready(int, bool, bool) override {
    absorb_writes();
    if (in_flight() < high_ / 2)
      refill();
    else
      check_done();
  }
  void absorb_writes() {
    for (auto& d : writer_->reap()) {
      if (!d.status.ok()) {
        fail_store("journal", d.status.error());
        continue;
      }
      while (!committing_.empty() && committing_.front().ticket <= d.ticket)
        committing_.pop_front();
      while (!failed_ && !waiting_out_.empty() && waiting_out_.front().ticket <= d.ticket) {
        if (!write_out(waiting_out_.front().data)) break;
        waiting_out_.pop_front();
      }
    }
  }

  // The end of the CLI's run (or an interrupt): everything to the journal and the output now.
  bool flush_now() {
    order_.drain(out_buf_);  // an interrupt: what was answered goes out, around the gaps
    if (!commit()) return false;
    if (writer_) {
      writer_->drain();
      absorb_writes();
      if (failed_) return false;
      if (!write_out(out_buf_)) return false;
      out_buf_.clear();
    }
    return !failed_;
  }

  // --- Catch-all facts across runs (cache) ---

  std::optional<bool> known_catch_all(const std::string& domain) {
    return cached_catch_all(cache_, domain);
  }
  void learned_catch_all(const std::string& domain, std::optional<bool> yes) {
    remember_catch_all(cache_writer_, domain, yes, opts_.cache_ttl);
  }

  // --- Ticks ---

  void arm_tick() {
    tick_ = e_.loop->add_timer(e_.loop->now() + std::chrono::milliseconds(200), *this);
    tick_armed_ = true;
  }
  void on_timer(loop::TimerId, uint64_t) override {
    tick_armed_ = false;
    // Results reach the journal and the file within a tick even when they trickle in.
    if (!commit()) return;
    if (writer_) writer_->keep_up();
    // And reading goes on even if no result or writer came back to ask (a safety net).
    if (in_flight() < high_ / 2) refill();
    if (progress_) {
      if (eof_)
        ps_.total = records_seen_ > resume_after_ ? std::max(records_seen_, written_) : written_;
      else if (ps_.bytes_done > 0 && ps_.bytes_total > 0)
        ps_.total = records_seen_ * ps_.bytes_total / ps_.bytes_done;
      ps_.done = written_;
      fill_progress(ps_);
      progress_->maybe_draw(ps_, false);
    }
    if (!done()) arm_tick();
  }

  Engine& e_;
  const VerifyOptions& opts_;
  InputFile& in_;
  OutputFile& out_;
  std::FILE* diag_;
  Progress* progress_;
  RecordFormatter fmt_;
  std::unique_ptr<pipeline::Verifier> own_verifier_;
  pipeline::Verifier& verifier_;
  RecordReader reader_;
  std::unique_ptr<PolicyReloader> signals_;
  std::function<void()> on_done_;
  bool paused_ = false, cancelled_ = false, done_reported_ = false;
  store::SqliteStore* journal_ = nullptr;
  std::unique_ptr<store::Writer> writer_;  // the journal's writes
  store::SqliteStore* cache_ = nullptr;
  store::Writer* cache_writer_ = nullptr;
  // Handed to the writer and not yet durable: records (for dedupe) and output, by ticket.
  struct Committing {
    uint64_t ticket;
    std::unordered_map<std::string, std::string> records;
  };
  struct WaitingOut {
    uint64_t ticket;
    std::string data;
  };
  std::deque<Committing> committing_;
  std::deque<WaitingOut> waiting_out_;
  JobId job_ = 0;
  std::string header_;
  unsigned char delim_ = ',';
  bool header_known_ = false, header_written_ = false;
  // Resume.
  bool resuming_ = false, pending_done_ = false;
  uint64_t resume_after_ = 0, pending_cursor_ = 0, last_record_ = 0;
  // In flight: verifier id -> normalised address -> the lines waiting for it (dedupe).
  // ids_ points at inflight_'s keys (nodes never move); both entries go together.
  std::unordered_map<uint64_t, const std::string*> ids_;
  std::unordered_map<std::string, std::vector<Waiter>> inflight_;
  // Records not yet in the journal (all of them without one), by normalised address.
  std::unordered_map<std::string, std::string> recent_;
  std::vector<store::RowIn> rows_;
  std::vector<store::ResultRecord> batch_;
  std::vector<store::CacheEntry> cache_batch_;
  std::string out_buf_;
  std::unique_ptr<char[]> chunk_;
  std::string read_error_;
  uint64_t high_ = 1000, ceiling_ = 200'000, records_seen_ = 0;
  uint64_t next_id_ = 1;
  uint64_t own_id_base_ = 0;    // shared verifier: this runner's ids are [base, base + 2^40)
  std::vector<Waiter> parked_;  // taken back by pause(), submitted again by resume_feeding()
  // Addresses finished in this run, one bit per hash (see find_done).
  // Allocated with the first address (2 MiB) and freed by release().
  std::vector<uint64_t> seen_;
  bool seen_bit(const std::string& key) const {
    if (seen_.empty()) return false;
    const uint64_t h = std::hash<std::string>{}(key) & ((uint64_t{1} << 24) - 1);
    return seen_[h >> 6] & (uint64_t{1} << (h & 63));
  }
  void set_seen_bit(const std::string& key) {
    if (released_) return;
    if (seen_.empty()) seen_.assign(1 << 18, 0);
    const uint64_t h = std::hash<std::string>{}(key) & ((uint64_t{1} << 24) - 1);
    seen_[h >> 6] |= uint64_t{1} << (h & 63);
  }
  bool released_ = false;
  uint64_t written_ = 0, emitted_ = 0, rebuilt_ = 0, deduped_ = 0, from_cache_ = 0;
  std::function<void(const Result&)> on_record_;
  std::array<uint64_t, kVerdictCount> counts_{};
  bool eof_ = false, interrupted_ = false, failed_ = false;
  bool resolver_down_ = false;  // stopped: the DNS resolver does not answer (exit 5)
  // The input's bytes read so far (decompressed) and their CRC-32: its fingerprint.
  uint64_t fp_bytes_ = 0;
  uLong fp_crc_ = crc32_z(0, nullptr, 0);
  loop::TimerId tick_{};
  bool tick_armed_ = false;
  ProgressState ps_;
  // Finished records wait here for earlier lines (--order input, a bounded window).
  OutputOrder order_{opts_.order_input};
};

}  // namespace mxp::app
