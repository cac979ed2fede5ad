#include "app/verify.hpp"

#include <csv.h>
#include <unistd.h>

#include <array>
#include <memory>

#include "address/address.hpp"
#include "app/io.hpp"
#include "app/reload.hpp"
#include "core/progress.hpp"
#include "pipeline/result.hpp"
#include "verdict/classify.hpp"

namespace mxp::app {
namespace {

using pipeline::Result;

// A result for a record that never reaches DNS: bad syntax or a broken input record.
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

constexpr std::array<const char*, 21> kCsvColumns = {
    "line",  "email",     "normalized",    "verdict",      "reason",    "domain",     "mx",
    "mx_ip", "smtp_code", "smtp_enhanced", "smtp_message", "catch_all", "role",       "disposable",
    "free",  "attempts",  "source_ip",     "elapsed_ms",   "error",     "checked_at", "cached"};

void csv_field(std::string& out, std::string_view v, bool first = false) {
  if (!first) out.push_back(',');
  if (v.find_first_of(",\"\r\n") == std::string_view::npos) {
    out.append(v);
    return;
  }
  // RFC 4180 quoting through libcsv's writer (doubles inner quotes).
  std::string buf(v.size() * 2 + 2, '\0');
  size_t n = csv_write(buf.data(), buf.size(), v.data(), v.size());
  out.append(buf.data(), n);
}

std::string opt_bool(std::optional<bool> b) {
  return !b ? "" : *b ? "true" : "false";
}

void append_csv(const Result& r, std::string& out) {
  char num[64];
  csv_field(out, std::to_string(r.line), true);
  csv_field(out, r.email);
  csv_field(out, r.normalized);
  csv_field(out, to_string(r.verdict));
  csv_field(out, to_string(r.reason));
  csv_field(out, r.domain);
  csv_field(out, r.mx);
  csv_field(out, r.mx_ip);
  csv_field(out, r.has_smtp ? std::to_string(r.code) : "");
  csv_field(out, r.enhanced);
  csv_field(out, r.has_smtp ? r.message : "");
  csv_field(out, opt_bool(r.catch_all));
  csv_field(out, opt_bool(r.role));
  csv_field(out, "");
  csv_field(out, "");
  csv_field(out, std::to_string(r.attempts));
  csv_field(out, r.source_ip);
  std::snprintf(num, sizeof num, "%.1f", r.elapsed_ms);
  csv_field(out, num);
  csv_field(out, r.error);
  csv_field(out, pipeline::iso8601(r.checked_at));
  csv_field(out, r.cached ? "true" : "false");
  out.append("\r\n");
}

// Writes results as they come, in large blocks.
class ResultWriter {
 public:
  ResultWriter(OutputFile& f, OutputFormat fmt, bool transcripts)
      : f_(f), fmt_(fmt), transcripts_(transcripts) {
    if (fmt_ == OutputFormat::Csv) {
      for (size_t i = 0; i < kCsvColumns.size(); ++i)
        csv_field(buf_, kCsvColumns[i], i == 0);
      buf_.append("\r\n");
    }
  }
  void write(const Result& r) {
    if (fmt_ == OutputFormat::Csv)
      append_csv(r, buf_);
    else
      pipeline::append_json(r, buf_, transcripts_);
    ++counts_[static_cast<int>(r.verdict)];
    ++written_;
    if (buf_.size() >= (1 << 16)) flush();
  }
  bool flush() {
    if (buf_.empty()) return !failed_;
    if (!failed_ && !f_.write(buf_, err_)) failed_ = true;
    buf_.clear();
    return !failed_;
  }
  bool failed() const { return failed_; }
  const std::string& error() const { return err_; }
  uint64_t written() const { return written_; }
  std::string counts() const {
    std::string s;
    for (int i = 0; i < kVerdictCount; ++i) {
      if (i) s += "  ";
      s += to_string(static_cast<Verdict>(i));
      s += ' ';
      s += human_count(static_cast<double>(counts_[i]));
    }
    return s;
  }

 private:
  OutputFile& f_;
  OutputFormat fmt_;
  bool transcripts_;
  std::string buf_, err_;
  bool failed_ = false;
  uint64_t written_ = 0;
  std::array<uint64_t, kVerdictCount> counts_{};
};

// Feeds the verifier from the input as it drains, and ticks the progress display.
class Driver final : private loop::TimerHandler {
 public:
  Driver(Engine& e, InputFile& in, ResultWriter& w, const VerifyOptions& opts, Progress* progress,
         uint64_t bytes_total, std::FILE* diag)
      : e_(e),
        in_(in),
        w_(w),
        progress_(progress),
        verifier_(*e.loop, *e.resolver, with_starved(e.config),
                  [this](Result&& r) { on_result(std::move(r)); }),
        reader_(opts.records, [this](const Record& r) { on_record(r); }),
        reloader_(e, verifier_, diag) {
    // Enough queued work to keep every session busy, bounded so memory does not grow with
    // the input: about four sessions' worth of addresses per concurrent session.
    const auto& pol = verifier_.scheduler().policy();
    high_ = std::max<uint64_t>(
        1000, uint64_t(pol.max_sessions()) * pol.domain_settings("", std::nullopt).recipients * 4);
    ceiling_ = std::max<uint64_t>(200'000, high_ * 10);
    ps_.bytes_total = bytes_total;
  }

  // Returns an exit code.
  int run(std::FILE* diag) {
    refill();
    arm_tick();
    if (!done()) e_.loop->run();
    if (tick_armed_) e_.loop->cancel_timer(tick_);
    if (!read_error_.empty()) {
      std::fprintf(diag, "mxprobe verify: %s\n", read_error_.c_str());
      return 1;
    }
    if (!reader_.error().empty()) {
      std::fprintf(diag, "mxprobe verify: %s\n", reader_.error().c_str());
      return 2;
    }
    return 0;
  }
  ProgressState& progress_state() { return ps_; }
  const pipeline::VerifierStats& stats() const { return verifier_.stats(); }

 private:
  bool done() const { return eof_ && verifier_.pending() == 0; }

  void on_record(const Record& r) {
    ++records_;
    if (r.issue != RecordIssue::None) return w_.write(invalid_result(r, to_string(r.issue)));
    auto p = address::parse(r.field);
    if (!p.ok()) return w_.write(invalid_result(r, address::to_string(p.error)));
    verifier_.submit(records_, r.number, std::string(r.field), std::move(p.address));
  }

  // Reads input until enough work is queued (or the input ends).
  void refill() {
    while (!eof_ && verifier_.pending() < high_)
      read_chunk();
    if (done()) e_.loop->stop();
  }

  // The scheduler has room for sessions but nothing it may start: whatever is queued waits on
  // its MX group (a tarpit holding its sessions, tokens, a retry time). Reading on is what
  // keeps the other groups busy; one chunk at a time, so this stops as soon as sessions can
  // start again, and never past `ceiling_` queued addresses (memory).
  void on_starved() {
    if (!eof_ && verifier_.pending() < ceiling_) read_chunk();
    if (done()) e_.loop->stop();
  }

  void read_chunk() {
    constexpr size_t kChunk = 64 * 1024;  // ~3,000 lines: keeps the read-ahead close to high_
    if (!chunk_) chunk_ = std::make_unique<char[]>(kChunk);
    long n = in_.read(chunk_.get(), kChunk, read_error_);
    if (n <= 0 || !reader_.feed({chunk_.get(), static_cast<size_t>(n)})) {
      if (n == 0) reader_.finish();
      eof_ = true;
      return;
    }
    ps_.bytes_done = in_.consumed();
  }

  void on_result(Result&& r) {
    w_.write(r);
    if (!eof_ && verifier_.pending() < high_ / 2) refill();
    if (done()) e_.loop->stop();
  }

  void arm_tick() {
    tick_ = e_.loop->add_timer(e_.loop->now() + std::chrono::milliseconds(200), *this);
    tick_armed_ = true;
  }
  void on_timer(loop::TimerId, uint64_t) override {
    tick_armed_ = false;
    // Results reach the file within a tick even when they trickle in (retries, slow servers):
    // a reader of the output, or a crash, never waits on a half-full buffer.
    w_.flush();
    if (progress_) {
      // Records expected: exact once the input is read; before, extrapolated from the share of
      // the input's bytes read so far (the read-ahead is small next to a large list).
      if (eof_)
        ps_.total = records_;
      else if (ps_.bytes_done > 0 && ps_.bytes_total > 0)
        ps_.total = records_ * ps_.bytes_total / ps_.bytes_done;
      ps_.done = w_.written();
      auto st = verifier_.scheduler().stats();
      ps_.extra = w_.counts() + "  | sessions " + std::to_string(st.sessions) + ", waiting " +
                  human_count(static_cast<double>(st.waiting)) + " (retries)";
      progress_->maybe_draw(ps_, false);
    }
    if (!done()) arm_tick();
  }

  pipeline::VerifierConfig with_starved(pipeline::VerifierConfig c) {
    c.on_starved = [this] { on_starved(); };
    return c;
  }

  Engine& e_;
  InputFile& in_;
  ResultWriter& w_;
  Progress* progress_;
  pipeline::Verifier verifier_;
  RecordReader reader_;
  PolicyReloader reloader_;
  std::unique_ptr<char[]> chunk_;
  std::string read_error_;
  uint64_t high_ = 1000, ceiling_ = 200'000, records_ = 0;
  bool eof_ = false;
  loop::TimerId tick_{};
  bool tick_armed_ = false;
  ProgressState ps_;
};

}  // namespace

int run_verify(const VerifyOptions& opts, const EngineOptions& eng, std::FILE* diag) {
  std::string err;
  InputFile in;
  OutputFile out;
  if (!in.open(opts.input, err) || !out.open(opts.output, err)) {
    std::fprintf(diag, "mxprobe verify: %s\n", err.c_str());
    return 2;
  }
  Engine e;
  if (!make_engine(eng, opts.transcripts, e, diag)) return 3;
  std::fprintf(diag, "mxprobe verify: %s\n", e.loop_why.c_str());
  e.config.log = [diag](const std::string& line) {
    std::fprintf(diag, "mxprobe: %s\n", line.c_str());
  };

  // A bar on a terminal, a status line every few seconds otherwise, nothing with --no-progress.
  bool show = opts.progress != 0;
  Progress progress(diag, isatty(fileno(diag)) && opts.progress == -1, "verified");
  ResultWriter writer(out, opts.format, opts.transcripts);
  Driver driver(e, in, writer, opts, show ? &progress : nullptr, in.size(), diag);
  int rc = driver.run(diag);
  bool wrote = writer.flush() && out.close(err);
  if (show) {
    auto& ps = driver.progress_state();
    ps.done = writer.written();
    ps.extra = writer.counts();
    progress.finish(ps);
  }
  if (!wrote) {
    std::fprintf(diag, "mxprobe verify: %s\n",
                 writer.failed() ? writer.error().c_str() : err.c_str());
    return 1;
  }
  if (rc == 0) {
    const auto& st = driver.stats();
    std::fprintf(diag,
                 "mxprobe verify: %llu records: %s; %llu SMTP sessions, %llu retries, "
                 "%llu failovers, %llu idle domains forgotten\n",
                 (unsigned long long)writer.written(), writer.counts().c_str(),
                 (unsigned long long)st.sessions_started, (unsigned long long)st.retries,
                 (unsigned long long)st.failovers, (unsigned long long)st.domains_evicted);
  }
  return rc;
}

int run_check(const CheckOptions& opts, const EngineOptions& eng, std::FILE* out, std::FILE* diag) {
  Engine e;
  if (!make_engine(eng, true, e, diag)) return 3;
  e.config.max_tries = opts.max_tries;
  if (opts.verbose)
    e.config.log = [diag](const std::string& line) {
      std::fprintf(diag, "mxprobe: %s\n", line.c_str());
    };
  if (opts.verbose) std::fprintf(diag, "mxprobe: %s\n", e.loop_why.c_str());
  std::vector<Result> results(opts.addresses.size());
  size_t pending = 0;
  pipeline::Verifier v(*e.loop, *e.resolver, e.config, [&](Result&& r) {
    results[r.id] = std::move(r);
    if (--pending == 0) e.loop->stop();
  });
  for (size_t i = 0; i < opts.addresses.size(); ++i) {
    Record rec{i + 1, opts.addresses[i], RecordIssue::None};
    auto p = address::parse(opts.addresses[i]);
    if (!p.ok()) {
      results[i] = invalid_result(rec, address::to_string(p.error));
      results[i].id = i;
      continue;
    }
    ++pending;
    v.submit(i, i + 1, opts.addresses[i], std::move(p.address));
  }
  if (pending) e.loop->run();

  int undeliverable = 0;
  for (const auto& r : results) {
    if (r.verdict == Verdict::Undeliverable) ++undeliverable;
    if (opts.json) {
      std::string line;
      pipeline::append_json(r, line, opts.verbose);
      std::fputs(line.c_str(), out);
      continue;
    }
    std::fprintf(out, "%s  %s (%s)\n", r.email.c_str(), std::string(to_string(r.verdict)).c_str(),
                 std::string(to_string(r.reason)).c_str());
    if (r.normalized.empty()) {
      std::fprintf(out, "  syntax: %s\n", r.error.c_str());
    } else {
      if (!r.mx.empty()) std::fprintf(out, "  mx: %s [%s]\n", r.mx.c_str(), r.mx_ip.c_str());
      if (r.has_smtp)
        std::fprintf(out, "  smtp: %d %s %s\n", r.code, r.enhanced.c_str(), r.message.c_str());
      std::fprintf(out, "  catch-all: %s  role: %s  attempts: %u  elapsed: %.1f ms\n",
                   r.catch_all ? (*r.catch_all ? "yes" : "no") : "unknown",
                   r.role.value_or(false) ? "yes" : "no", r.attempts, r.elapsed_ms);
      if (opts.verbose && !r.transcript.empty()) {
        std::fprintf(out, "  transcript:\n");
        size_t pos = 0;
        while (pos < r.transcript.size()) {
          size_t nl = r.transcript.find('\n', pos);
          if (nl == std::string::npos) nl = r.transcript.size();
          std::fprintf(out, "    %.*s\n", static_cast<int>(nl - pos), r.transcript.data() + pos);
          pos = nl + 1;
        }
      }
    }
  }
  // Exit status for scripts: 0 all deliverable/risky/unknown, 4 when any is undeliverable.
  return undeliverable ? 4 : 0;
}

}  // namespace mxp::app
