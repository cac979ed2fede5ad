#include "app/runner.hpp"

#include <signal.h>

#include <algorithm>
#include <chrono>

#include "app/reload.hpp"
#include "core/clock.hpp"
#include "verdict/classify.hpp"

namespace mxp::app {

Result invalid_result(const Record& r, std::string_view error) {
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

std::optional<bool> cached_catch_all(store::JobStore* cache, const std::string& domain) {
  if (!cache) return std::nullopt;
  auto f = cache->get_domain_facts(domain);
  if (!f || !f->has_value()) return std::nullopt;
  return (*f)->catch_all;
}

void remember_catch_all(store::Writer* cache, const std::string& domain, std::optional<bool> yes,
                        std::chrono::seconds ttl) {
  if (!cache || !yes) return;
  store::DomainFacts f;
  f.domain = domain;
  f.catch_all = yes;
  f.last_contact = store::unix_now();
  f.expires = f.last_contact + ttl.count();
  cache->post_detached([f](store::SqliteStore& s) { return s.put_domain_facts(f); });
}

Runner::Runner(Engine& e, const VerifyOptions& opts, JobSource& source, ResultSink& sink,
               std::FILE* diag, Progress* progress)
    : e_(e),
      opts_(opts),
      source_(source),
      sink_(sink),
      diag_(diag),
      progress_(progress),
      own_verifier_(
          std::make_unique<pipeline::Verifier>(*e.loop, *e.resolver, with_hooks(e.config),
                                               [this](Result&& r) { deliver(std::move(r)); })),
      verifier_(*own_verifier_) {
  signals_ =
      std::make_unique<PolicyReloader>(e, verifier_, diag, [this](int sig) { interrupt(sig); });
  init();
}

Runner::Runner(Engine& e, const VerifyOptions& opts, JobSource& source, ResultSink& sink,
               std::FILE* diag, pipeline::Verifier& shared, uint64_t id_base,
               std::function<void()> on_done)
    : e_(e),
      opts_(opts),
      source_(source),
      sink_(sink),
      diag_(diag),
      progress_(nullptr),
      verifier_(shared),
      on_done_(std::move(on_done)),
      next_id_(id_base),
      own_id_base_(id_base) {
  init();
  // Shared: a small read-ahead, so that pause stops soon; starvation still reads on.
  high_ = 1000;
}

Runner::~Runner() {
  if (tick_armed_) e_.loop->cancel_timer(tick_);
  sink_.set_listener(nullptr);
}

void Runner::init() {
  sink_.set_listener(this);
  const auto& pol = verifier_.scheduler().policy();
  high_ = std::max<uint64_t>(
      1000, uint64_t(pol.max_sessions()) * pol.domain_settings("", std::nullopt).recipients * 4);
  ceiling_ = std::max<uint64_t>(200'000, high_ * 10);
  ps_.bytes_total = source_.bytes_total();
}

void Runner::set_dispatch(Dispatch* d) {
  dispatch_ = d;
  if (d) high_ = ceiling_ = std::max<uint64_t>(1, d->appetite());
}

pipeline::VerifierConfig Runner::with_hooks(pipeline::VerifierConfig c) {
  c.on_starved = [this] { starved(); };
  c.catch_all_known = [this](const std::string& domain) { return known_catch_all(domain); };
  c.catch_all_learned = [this](const std::string& domain, std::optional<bool> yes) {
    learned_catch_all(domain, yes);
  };
  c.on_resolver_down = [this](const std::string& line) { resolver_down(line); };
  return c;
}

// --- Control ---

void Runner::begin() {
  refill();
  arm_tick();
}

void Runner::pause() {
  paused_ = true;
  withdraw(true);
}

void Runner::resume_feeding() {
  paused_ = false;
  auto parked = std::move(parked_);
  parked_.clear();
  for (auto& w : parked) {
    auto p = address::parse(w.email);
    if (!p.ok()) continue;
    std::string key = p.address.normalized();
    handle(w.line, w.email, w.record(), std::move(p.address), std::move(key));
  }
  refill();
  if (!tick_armed_ && !done()) arm_tick();  // paused since before begin() (a restart)
}

void Runner::cancel() {
  cancelled_ = true;
  withdraw(false);
  parked_.clear();
  check_done();
}

void Runner::release() {
  if (!done()) return;
  dedupe_.release();
  source_.release();
  sink_.release();
  page_ = {};
  parsed_ = {};
  keys_ = {};
  parked_ = {};
}

std::string Runner::failure() const {
  if (!source_.input_error().empty()) return source_.input_error();
  if (!source_.read_error().empty()) return source_.read_error();
  return failed_ ? "journal or output error (see the log)" : "";
}

double Runner::progress_fraction() const {
  const uint64_t seen = source_.records();
  if (source_.ended()) return seen ? double(written_) / double(seen) : 1.0;
  if (!ps_.bytes_total || !ps_.bytes_done || !seen) return 0.0;
  const double total = double(seen) * double(ps_.bytes_total) / double(ps_.bytes_done) + 1;
  return std::min(1.0, double(written_) / total);
}

void Runner::set_journal(store::SqliteStore* reads) {
  dedupe_.set_journal(reads);
  journalled_ = reads != nullptr;
}

void Runner::set_cache(store::SqliteStore* reads, store::Writer* writes) {
  cache_ = reads;
  cache_writer_ = writes;
  dedupe_.set_cache(reads, opts_.cache_ttl);
}

void Runner::resumed(uint64_t after_line) {
  resume_after_ = after_line;
  dedupe_.set_resumed();
}

void Runner::count_rebuilt(const Result& r) {
  count(r);
  ++rebuilt_;
}

int Runner::run() {
  begin();
  if (failed_) return 1;
  if (!done()) e_.loop->run();
  if (tick_armed_) e_.loop->cancel_timer(tick_);
  tick_armed_ = false;
  if (!flush_now()) return 1;
  if (failed_) return 1;
  if (!source_.read_error().empty()) {
    std::fprintf(diag_, "mxprobe verify: %s\n", source_.read_error().c_str());
    return 1;
  }
  if (!source_.input_error().empty()) {
    std::fprintf(diag_, "mxprobe verify: %s\n", source_.input_error().c_str());
    return 2;
  }
  if (resolver_down_) return 5;
  if (interrupted_) return 130;
  return 0;
}

std::string Runner::counts() const {
  std::string s;
  for (int i = 0; i < kVerdictCount; ++i) {
    if (i) s += "  ";
    s += to_string(static_cast<Verdict>(i));
    s += ' ';
    s += std::to_string(counts_[i]);
  }
  return s;
}

void Runner::fill_progress(ProgressState& ps) const {
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

bool Runner::work_done() const {
  return (source_.ended() || interrupted_ || failed_ || cancelled_) && in_flight() == 0 &&
         parked_.empty() && !pending_rows_left();
}

// Takes this runner's queued addresses back from the verifier (keeping their lines to submit
// again when `keep`).
void Runner::withdraw(bool keep) {
  if (!own_id_base_) return;
  std::vector<uint64_t> ids;
  if (dispatch_)
    dispatch_->withdraw(own_id_base_, own_id_base_ + (uint64_t{1} << 40), ids);
  else
    verifier_.withdraw(own_id_base_, own_id_base_ + (uint64_t{1} << 40), ids);
  dedupe_.withdrawn(ids, keep, parked_);
}

// The end: the CLI stops the loop, serve hears about it (once).
void Runner::check_done() {
  if (!work_done()) return;
  sink_.give_up_order();     // lines that will never answer (cancelled) hold nothing back
  if (!flushed()) commit();  // the end is reached when the sink says the last batch is in
  if (!flushed()) return;
  if (own_verifier_) {
    e_.loop->stop();
  } else if (on_done_ && !done_reported_) {
    done_reported_ = true;
    on_done_();
  }
}

void Runner::stop_loop() {
  if (own_verifier_)
    e_.loop->stop();
  else
    check_done();
}

void Runner::interrupt(int sig) {
  if (interrupted_) return;
  interrupted_ = true;
  std::fprintf(diag_, "\nmxprobe verify: %s: stopping; finished work is kept\n",
               sig == SIGINT ? "interrupted" : "terminated");
  stop_loop();
}

// The DNS resolver does not answer: stop as on Ctrl-C (finished work kept, the addresses not
// verified left in the journal for --resume, none written as dns_error); exit 5.
void Runner::resolver_down(const std::string& line) {
  if (interrupted_) return;
  interrupted_ = resolver_down_ = true;
  std::fprintf(diag_, "\nmxprobe verify: %s: stopping; finished work is kept\n", line.c_str());
  stop_loop();
}

// The CLI's advice after a write error: what was done is kept, and how to go on.
std::string Runner::resume_hint() const {
  if (!own_verifier_ || !journalled_) return "";
  return "; the records done so far are kept in the journal " +
         (opts_.journal.empty() ? opts_.output + ".journal" : opts_.journal) +
         ": free some space, then run the same command with --resume";
}

bool Runner::fail_store(const char* what, const store::Error& err) {
  const bool full = (err.code & 0xff) == 13;  // SQLITE_FULL: the disk is full
  std::fprintf(diag_, "mxprobe verify: %s: %s%s\n", what, err.message.c_str(),
               full ? resume_hint().c_str() : "");
  failed_ = true;
  sink_.halt();
  stop_loop();
  return false;
}

void Runner::sink_failed(const std::string& what, bool resumable) {
  std::fprintf(diag_, "mxprobe verify: %s%s\n", what.c_str(),
               resumable ? resume_hint().c_str() : "");
  failed_ = true;
  sink_.halt();
  stop_loop();
}

void Runner::sink_ready() {
  if (in_flight() < high_ / 2)
    refill();
  else
    check_done();
}

// --- Input ---

// Reads input until enough work is queued (or the input ends): the journal's pending rows
// first when resuming, then the input.
void Runner::refill() {
  // Shared (serve): about a millisecond of reading a call, so the API never waits behind a
  // long read (results, the writer, starvation and the tick call again), but at least one
  // page whatever the clock says: a call that read nothing could stall a job.
  const auto until = core::Clock::now() + std::chrono::milliseconds(1);
  for (bool first = true; !done_reading() && in_flight() < high_ && !failed_ &&
                          (!paused_ || source_.catching_up()) && !cancelled_ && !interrupted_ &&
                          !sink_.behind() && (own_verifier_ || first || core::Clock::now() < until);
       first = false)
    read_more();
  check_done();
}

// The scheduler has room for sessions but nothing it may start: whatever is queued waits on
// its MX group (a tarpit holding its sessions, tokens, a retry time). Reading on is what keeps
// the other groups busy; one page at a time, so this stops as soon as sessions can start
// again, and never past `ceiling_` queued addresses (memory).
void Runner::starved() {
  if (dispatch_) return check_done();  // the cluster verifies: what it holds is its own
  if (!done_reading() && in_flight() < ceiling_ && !interrupted_ && !failed_ && !paused_ &&
      !cancelled_ && !sink_.behind())
    read_more();
  check_done();
}

// One page. Paused (serve, a resumed job after a restart), reading goes on through the part of
// the input the journal already holds, which submits nothing, so that the job's size and
// progress are known; the first records past it wait in parked_.
void Runner::read_more() {
  if (interrupted_ || cancelled_) return;
  page_.clear();
  if (paused_) {
    source_.catch_up(page_);
  } else if (auto st = source_.next(page_); !st) {
    fail_store("journal", st.error());
    return;
  }
  take(page_);
}

// A page read: its lines are expected (and stored) before any of its records is answered, then
// each is answered (a syntax error at once), joins its address in flight, or goes on.
void Runner::take(RecordBatch& page) {
  ps_.bytes_done = source_.bytes_done();
  // The input's format is known from its first record on (CSV: its header line), before any
  // record is formatted: CSV output then starts with the user's columns.
  if (!format_noted_ && source_.format_known()) {
    format_noted_ = true;
    sink_.input_format(source_.header(), source_.delimiter());
  }
  if (page.empty()) return;
  const size_t n = page.size();
  if (parsed_.size() < n) parsed_.resize(n);
  if (keys_.size() < n) keys_.resize(n);
  for (size_t i = 0; i < n; ++i) {
    keys_[i].clear();
    if (page.issue(i) != RecordIssue::None) continue;
    parsed_[i] = address::parse(page.field(i));
    if (parsed_[i].ok()) keys_[i] = parsed_[i].address.normalized();
  }
  sink_.expect(page, keys_);
  for (size_t i = 0; i < n; ++i) {
    const uint64_t line = page.line(i);
    const std::string_view field = page.field(i), raw = page.raw(i);
    if (page.issue(i) != RecordIssue::None) {
      emit(invalid_result(Record(line, field, page.issue(i), raw), to_string(page.issue(i))), raw);
    } else if (!parsed_[i].ok()) {
      // A stored row cannot be invalid (it was valid when stored): finished rather than lost.
      emit(invalid_result(Record(line, field, RecordIssue::None, raw),
                          address::to_string(parsed_[i].error)),
           raw);
    } else {
      handle(line, field, raw, std::move(parsed_[i].address), std::move(keys_[i]));
    }
  }
  sink_.store_read();
}

// One valid address: joins an identical one in flight, or is answered from this job's
// earlier lines or the cache, or goes to the verifier.
void Runner::handle(uint64_t line, std::string_view email, std::string_view raw, address::Address a,
                    std::string key) {
  if (paused_) {  // read while paused (catching up): submitted by resume_feeding()
    parked_.push_back(Waiter::of(line, email, raw));
    return;
  }
  if (dedupe_.join(key, line, email, raw)) {
    ++deduped_;
    return;
  }
  if (auto earlier = dedupe_.find_done(key); !earlier) {
    fail_store("journal", earlier.error());
  } else if (*earlier) {
    if (auto parsed = pipeline::parse_json(**earlier)) {
      Result& r = *parsed;
      r.line = line;
      r.email.assign(email);
      r.transcript.clear();
      ++deduped_;
      return emit(std::move(r), raw);
    }
  }
  // A listed address (--deny, --allow) is answered from the list by the verifier, never from
  // the cache nor by another node of the cluster: the list in force decides, not an old answer.
  const bool listed = verifier_.listed(a) != flags::Listed::No;
  auto hit = listed ? Dedupe::Lookup(std::nullopt) : dedupe_.find_cached(key);
  if (!hit) {
    fail_store("cache", hit.error());
    return;
  }
  if (*hit) {
    if (auto parsed = pipeline::parse_json(**hit)) {
      Result& r = *parsed;
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
  dedupe_.submitted(id, std::move(key), line, email, raw);
  if (dispatch_ && !listed)
    dispatch_->submit(id, line, std::string(email), std::move(a));
  else
    verifier_.submit(id, line, std::string(email), std::move(a));
}

// --- Results ---

void Runner::on_result(Result&& r) {
  std::vector<Waiter> lines;
  const std::string key = dedupe_.finish(r.id, r.normalized, lines);
  sink_.verified(key, r);
  for (size_t i = 0; i < lines.size(); ++i) {
    // NOLINTNEXTLINE(bugprone-use-after-move): r is moved on the last iteration only
    Result copy = i + 1 < lines.size() ? r : std::move(r);
    copy.line = lines[i].line;
    std::string raw = lines[i].raw.empty() ? lines[i].email : std::move(lines[i].raw);
    copy.email = std::move(lines[i].email);
    emit(std::move(copy), raw);
  }
  if (sink_.wants_commit()) commit();
  if (in_flight() < high_ / 2) refill();
  check_done();
}

// A record is final: it answers later repeats, is counted, and goes to the sink.
void Runner::emit(Result&& r, std::string_view raw) {
  std::string json;
  // A record is about 1 KB: grown from empty it was copied seven times on the way. The last
  // record's size is the guess (not the largest seen: the sink may hold many records, and one
  // long transcript should not make them all carry its capacity).
  json.reserve(json_reserve_);
  pipeline::append_json(r, json, opts_.transcripts);
  json_reserve_ = std::clamp<size_t>(json.size() + 64, 512, 16384);
  dedupe_.remember(r.normalized, json);
  count(r);
  if (on_record_) on_record_(r);
  sink_.accept(r, raw, std::move(json));
  ++emitted_;
}

void Runner::count(const Result& r) {
  ++counts_[static_cast<int>(r.verdict)];
  ++written_;
}

// What the sink holds goes on (the journal's next transaction); the records it sealed answer
// repeats from memory until the sink says they are durable.
bool Runner::commit() {
  sink_.store_read();
  if (failed_) return false;
  if (const uint64_t sealed = sink_.commit()) dedupe_.sealed(sealed);
  return !failed_;
}

// The end of the CLI's run (or an interrupt): everything to the journal and the output now.
bool Runner::flush_now() {
  sink_.give_up_order();  // an interrupt: what was answered goes out, around the gaps
  if (!commit()) return false;
  if (!sink_.drain()) return false;
  return !failed_;
}

// --- Catch-all facts across runs (cache) ---

std::optional<bool> Runner::known_catch_all(const std::string& domain) {
  return cached_catch_all(cache_, domain);
}

void Runner::learned_catch_all(const std::string& domain, std::optional<bool> yes) {
  remember_catch_all(cache_writer_, domain, yes, opts_.cache_ttl);
}

// --- Ticks ---

void Runner::arm_tick() {
  tick_ = e_.loop->add_timer(e_.loop->now() + std::chrono::milliseconds(200), *this);
  tick_armed_ = true;
}

void Runner::on_timer(loop::TimerId, uint64_t) {
  tick_armed_ = false;
  // Results reach the journal and the file within a tick even when they trickle in.
  if (!commit()) return;
  sink_.keep_up();
  // And reading goes on even if no result or writer came back to ask (a safety net).
  if (in_flight() < high_ / 2) refill();
  if (progress_) {
    const uint64_t seen = source_.records();
    if (source_.ended())
      ps_.total = seen > resume_after_ ? std::max(seen, written_) : written_;
    else if (ps_.bytes_done > 0 && ps_.bytes_total > 0)
      ps_.total = seen * ps_.bytes_total / ps_.bytes_done;
    ps_.done = written_;
    fill_progress(ps_);
    progress_->maybe_draw(ps_, false);
  }
  if (!done()) arm_tick();
}

}  // namespace mxp::app
