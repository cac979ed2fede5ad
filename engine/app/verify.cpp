#include "app/verify.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include <array>
#include <memory>
#include <optional>

#include "address/address.hpp"
#include "app/doctor.hpp"
#include "app/io.hpp"
#include "app/job/file_job.hpp"
#include "app/output.hpp"
#include "app/reload.hpp"
#include "core/expected.hpp"
#include "core/progress.hpp"
#include "core/strings.hpp"
#include "pipeline/result.hpp"
#include "store/sqlite_store.hpp"
#include "verdict/classify.hpp"

namespace mxp::app {
namespace {

// One mxprobe per journal: an exclusive flock on a lock file next to it, held for the run
// (released by the kernel however the process ends). The lock's fd, or why there is none
// (another one holds it).
core::Expected<int, std::string> lock_journal(const std::string& path) {
  std::string lock = path + ".lock";
  int fd = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return core::unexpected("cannot open " + lock + ": " + std::strerror(errno));
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return core::unexpected(path + " is in use by another mxprobe (lock " + lock + ")");
  }
  return fd;
}

void remove_journal(const std::string& path) {
  for (const char* suffix : {"", "-wal", "-shm"})
    std::remove((path + suffix).c_str());
}

}  // namespace

// ".csv", ".jsonl"...: the output file's extension, lower case ("" for stdout or none).
std::string output_extension(const std::string& path) {
  if (path == "-") return {};
  const size_t slash = path.rfind('/');
  const size_t dot = path.rfind('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return {};
  return core::lower(path.substr(dot));
}

std::string default_cache_path() {
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  std::string base;
  if (xdg && *xdg) {
    base = xdg;
  } else if (const char* home = std::getenv("HOME"); home && *home) {
    base = std::string(home) + "/.cache";
  } else {
    return {};
  }
  return base + "/mxprobe/cache.db";
}

bool make_parent_dirs(const std::string& path) {
  for (size_t pos = path.find('/', 1); pos != std::string::npos; pos = path.find('/', pos + 1)) {
    std::string dir = path.substr(0, pos);
    if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return false;
  }
  return true;
}

int run_verify(const VerifyOptions& opts, const EngineOptions& eng, std::FILE* diag) {
  if (!opts.retry_unknown.empty()) return run_retry_unknown(opts, eng, diag);
  std::string err;
  // An output named for one format and written in the other would look right and read wrong:
  // without --format the name decides (main.cpp); a --format against the name is refused.
  if (auto ext = output_extension(opts.output); !ext.empty() && opts.format_given) {
    const bool csv_name = ext == ".csv";
    const bool json_name = ext == ".jsonl" || ext == ".ndjson" || ext == ".json";
    const bool csv = opts.format == OutputFormat::Csv;
    if ((csv_name && !csv) || (json_name && csv)) {
      std::fprintf(diag,
                   "mxprobe verify: --output %s is named %s but --format is %s: use --format "
                   "%s, or name the file %s\n",
                   opts.output.c_str(), ext.c_str(), csv ? "csv" : "jsonl", csv ? "jsonl" : "csv",
                   csv ? "*.csv" : "*.jsonl");
      return 2;
    }
  }
  // The journal: --journal, or OUTPUT.journal next to an output file.
  std::string journal_path = opts.journal;
  if (journal_path.empty() && !opts.no_journal && opts.output != "-") {
    struct stat st {};
    // Next to a file, not next to /dev/null or a FIFO.
    if (stat(opts.output.c_str(), &st) != 0 || S_ISREG(st.st_mode))
      journal_path = opts.output + ".journal";
  }
  if (opts.no_journal) journal_path.clear();
  if (opts.resume && journal_path.empty()) {
    std::fprintf(diag, "mxprobe verify: --resume needs a journal (an output file, or --journal)\n");
    return 2;
  }
  std::unique_ptr<store::SqliteStore> journal;
  std::optional<store::JobInfo> old_job;
  struct LockFd {
    int fd = -1;
    ~LockFd() {
      if (fd >= 0) ::close(fd);
    }
  } lock;
  if (!journal_path.empty()) {
    auto locked = lock_journal(journal_path);
    if (!locked) {
      std::fprintf(diag, "mxprobe verify: %s\n", locked.error().c_str());
      return 2;
    }
    lock.fd = *locked;
  }
  nlohmann::json old_options;
  if (!journal_path.empty()) {
    struct stat st {};
    bool exists = stat(journal_path.c_str(), &st) == 0;
    if (opts.resume && !exists) {
      std::fprintf(diag, "mxprobe verify: nothing to resume: no journal %s\n",
                   journal_path.c_str());
      return 2;
    }
    if (exists) {
      auto j = store::SqliteStore::open(journal_path);
      if (!j) {
        std::fprintf(diag, "mxprobe verify: journal %s: %s\n", journal_path.c_str(),
                     j.error().message.c_str());
        return 2;
      }
      auto latest = (*j)->latest_job();
      if (!latest) {
        std::fprintf(diag, "mxprobe verify: journal %s: %s\n", journal_path.c_str(),
                     latest.error().message.c_str());
        return 2;
      }
      old_job = *latest;
      if (old_job && old_job->state != "finished" && !opts.resume) {
        auto counts = (*j)->count_by_state(old_job->id);
        std::fprintf(diag,
                     "mxprobe verify: %s holds an unfinished job (%llu records done): add "
                     "--resume to finish it, or delete the file to start over\n",
                     journal_path.c_str(),
                     counts ? static_cast<unsigned long long>(counts->done) : 0ULL);
        return 2;
      }
      if (opts.resume) {
        if (!old_job) {
          std::fprintf(diag, "mxprobe verify: nothing to resume in %s\n", journal_path.c_str());
          return 2;
        }
        old_options = nlohmann::json::parse(old_job->options_json, nullptr, false);
        if (old_options.is_discarded()) old_options = nlohmann::json::object();
        const std::string fmt = opts.format == OutputFormat::Csv ? "csv" : "jsonl";
        if (old_options.value("input", "") != opts.input ||
            old_options.value("output", "") != opts.output ||
            old_options.value("format", "") != fmt) {
          std::fprintf(diag,
                       "mxprobe verify: %s is the journal of another job (input %s, output %s, "
                       "format %s): resume with the same --input, --output and --format\n",
                       journal_path.c_str(), old_options.value("input", "?").c_str(),
                       old_options.value("output", "?").c_str(),
                       old_options.value("format", "?").c_str());
          return 2;
        }
        // Before the output is opened (and emptied, to be rebuilt from the journal).
        if (int rc = check_input_unchanged(**j, old_job->id, opts.input, diag); rc != 0) return rc;
        journal = std::move(*j);
      } else {
        j->reset();  // a finished job's journal: start over
        remove_journal(journal_path);
      }
    }
    if (!journal) {
      auto j = store::SqliteStore::open(journal_path);
      if (!j) {
        std::fprintf(diag, "mxprobe verify: journal %s: %s\n", journal_path.c_str(),
                     j.error().message.c_str());
        return 2;
      }
      journal = std::move(*j);
      old_job.reset();
    }
  }
  std::unique_ptr<store::SqliteStore> cache;
  std::unique_ptr<store::Writer> cache_writer;
  if (!opts.no_cache) {
    std::string path = opts.cache.empty() ? default_cache_path() : opts.cache;
    if (!path.empty() && make_parent_dirs(path)) {
      auto c = store::SqliteStore::open(path);
      auto w = c ? store::Writer::open(path, diag, "mxprobe verify: cache (results not cached)")
                 : store::Expected<std::unique_ptr<store::Writer>>(core::unexpected(c.error()));
      if (w) {
        cache = std::move(*c);
        cache_writer = std::move(*w);
        (void)cache->prune_cache(store::unix_now() - opts.cache_ttl.count());
      } else {
        std::fprintf(diag, "mxprobe verify: cache %s: %s (going on without it)\n", path.c_str(),
                     w.error().message.c_str());
      }
    }
  }

  InputFile in;
  OutputFile out;
  auto opened = in.open(opts.input);
  if (opened) opened = out.open(opts.output);
  if (!opened) {
    std::fprintf(diag, "mxprobe verify: %s\n", opened.error().c_str());
    return 2;
  }
  Engine e;
  if (!make_engine(eng, opts.transcripts, e, diag)) return 3;
  if (opts.verbose) std::fprintf(diag, "mxprobe verify: %s\n", e.loop_why.c_str());
  if (!opts.quiet)
    e.config.log = [diag](const std::string& line) {
      std::fprintf(diag, "mxprobe: %s\n", printable(line).c_str());
    };

  // The start-up checks (doctor's short form): problems in one line each, even with --quiet;
  // sources listed on a blocklist or without working port 25 start out of rotation.
  SourceHealth health(e, eng.doctor, [diag](const std::string& line) {
    std::fprintf(diag, "mxprobe: %s\n", printable(line).c_str());
  });
  health.check_now();
  if (health.none_left()) {
    std::fprintf(diag,
                 "mxprobe verify: no source left in rotation (%s): nothing was verified; fix "
                 "them, use other sources, or --keep-unhealthy-sources (mxprobe doctor says "
                 "more)\n",
                 health.report()->failures.empty() ? "see above"
                                                   : health.report()->failures.front().c_str());
    return kExitNoSource;
  }

  // A bar on a terminal, a status line every few seconds otherwise, nothing with --no-progress.
  bool show = opts.progress != 0;
  Progress progress(diag, isatty(fileno(diag)) && opts.progress == -1, "verified");
  FileJob runner(e, opts, in, out, diag, show ? &progress : nullptr);
  health.attach(&runner.verifier());
  if (journal) {
    auto w = store::Writer::open(journal_path, diag, "mxprobe verify: journal");
    if (!w) {
      std::fprintf(diag, "mxprobe verify: journal %s: %s\n", journal_path.c_str(),
                   w.error().message.c_str());
      return 1;
    }
    runner.set_journal(journal.get(), std::move(*w));
  }
  runner.set_cache(cache.get(), cache_writer.get());
  // Unknowns worth asking again (retry_after): counted for the summary's hint.
  uint64_t retryable = 0;
  std::optional<std::chrono::system_clock::time_point> first_retry;
  runner.set_on_record([&](const Result& r) {
    if (!r.retry_after) return;
    ++retryable;
    if (!first_retry || *r.retry_after < *first_retry) first_retry = r.retry_after;
  });
  if (old_job && opts.resume) {
    // Said before the output is rebuilt (a large journal takes a moment): what is done already.
    auto counts = journal->count_by_state(old_job->id);
    if (!counts) {
      std::fprintf(diag, "mxprobe verify: journal %s: %s\n", journal_path.c_str(),
                   counts.error().message.c_str());
      return 1;
    }
    if (!opts.quiet)
      std::fprintf(diag, "mxprobe verify: resuming: %llu records from the journal\n",
                   static_cast<unsigned long long>(counts->done));
    if (!runner.resume(old_job->id, old_options)) return 1;
  }
  int rc = runner.run();
  runner.set_journal(nullptr, nullptr);  // its writer's connection closes before any removal
  auto closed = out.close();
  if (show) {
    auto& ps = runner.progress_state();
    ps.done = runner.written();
    runner.fill_progress(ps);
    progress.finish(ps);
  }
  if (!closed) {
    std::fprintf(diag, "mxprobe verify: %s\n", closed.error().c_str());
    return 1;
  }
  if (rc == 130 || rc == 5) {  // Ctrl-C, SIGTERM, or the DNS resolver does not answer
    if (journal) {
      (void)journal->set_job_state(runner.job(), "interrupted");
      std::fprintf(diag,
                   "mxprobe verify: %llu records written; to finish, run the same command with "
                   "--resume (journal: %s)\n",
                   static_cast<unsigned long long>(runner.written()), journal_path.c_str());
    } else {
      std::fprintf(diag, "mxprobe verify: %llu records written; no journal, cannot resume\n",
                   static_cast<unsigned long long>(runner.written()));
    }
    return rc;
  }
  if (rc == 0) {
    if (journal && runner.finished()) {
      if (runner.job() != 0) (void)journal->set_job_state(runner.job(), "finished");
      if (!opts.keep_journal) {
        journal.reset();
        remove_journal(journal_path);
        std::remove((journal_path + ".lock").c_str());
      }
    }
    const auto& st = runner.stats();
    if (!opts.quiet)
      std::fprintf(
          diag,
          "mxprobe verify: %llu records: %s; %llu SMTP sessions, %llu retries, "
          "%llu failovers, %llu duplicates, %llu from cache, %llu idle domains forgotten\n",
          (unsigned long long)runner.written(), runner.counts().c_str(),
          (unsigned long long)st.sessions_started, (unsigned long long)st.retries,
          (unsigned long long)st.failovers, (unsigned long long)runner.deduped(),
          (unsigned long long)runner.from_cache(), (unsigned long long)st.domains_evicted);
    if (!opts.quiet && retryable > 0)
      std::fprintf(diag,
                   "mxprobe verify: %llu unknown worth asking again, the first from %s: mxprobe "
                   "verify --retry-unknown %s -o NEW_OUTPUT (docs/jobs.md)\n",
                   (unsigned long long)retryable, pipeline::iso8601(*first_retry).c_str(),
                   opts.output == "-" ? "OLD_OUTPUT" : opts.output.c_str());
  }
  return rc;
}

namespace {

// check's live status line on a terminal: what the slowest open session waits for and how
// long ("waiting for the banner from mx.example.com [192.0.2.1]:25, 12 s"), redrawn in place
// every 250 ms once a wait passes 1 s, cleared at the end. Not shown when stderr is not a
// terminal. Host names come from DNS: status_text() is the one place they reach the terminal.
class LiveStatus final : public loop::TimerHandler {
 public:
  LiveStatus(loop::Loop& loop, const pipeline::Verifier& v, std::FILE* tty)
      : loop_(loop), v_(v), tty_(tty) {
    arm();
  }
  ~LiveStatus() {
    if (armed_) loop_.cancel_timer(timer_);
    clear();
  }
  static std::string status_text(const pipeline::Verifier& v, loop::TimePoint now,
                                 loop::TimePoint began) {
    const auto waits = v.waiting();
    const pipeline::Verifier::WaitView* slowest = nullptr;
    for (const auto& w : waits)
      if (!slowest || w.since < slowest->since) slowest = &w;
    auto secs = [&](loop::TimePoint since) {
      return static_cast<long>(std::chrono::duration<double>(now - since).count());
    };
    std::string line;
    if (slowest && secs(slowest->since) >= 1) {
      line = "waiting for " + pipeline::awaited_name(slowest->stage) + " from " +
             printable(slowest->host) + " [" + printable(slowest->address) + "], " +
             std::to_string(secs(slowest->since)) + " s";
      if (waits.size() > 1) line += " (" + std::to_string(waits.size()) + " sessions)";
    } else if (!slowest && v.resolving() > 0 && secs(began) >= 1) {
      line = "looking up the mail servers, " + std::to_string(secs(began)) + " s";
    }
    return line;
  }

 private:
  void arm() {
    timer_ = loop_.add_timer(loop_.now() + std::chrono::milliseconds(250), *this);
    armed_ = true;
  }
  void on_timer(loop::TimerId, uint64_t) override {
    armed_ = false;
    const std::string line = status_text(v_, loop_.now(), began_);
    if (!line.empty() || shown_) {
      std::fprintf(tty_, "\r\033[K%s", line.c_str());
      std::fflush(tty_);
      shown_ = !line.empty();
    }
    arm();
  }
  void clear() {
    if (!shown_) return;
    std::fputs("\r\033[K", tty_);
    std::fflush(tty_);
    shown_ = false;
  }

  loop::Loop& loop_;
  const pipeline::Verifier& v_;
  std::FILE* tty_;
  loop::TimePoint began_ = loop_.now();
  loop::TimerId timer_{};
  bool armed_ = false, shown_ = false;
};

}  // namespace

std::string check_report(const Result& r, bool verbose) {
  // Every text that came from outside (the input, the servers) goes through printable().
  auto p = [](std::string_view s) { return printable(s); };
  std::string o;
  char num[160];
  o += p(r.email) + "  " + std::string(to_string(r.verdict)) + " (" +
       std::string(to_string(r.reason)) + ")\n";
  if (r.normalized.empty()) {
    o += "  syntax: " + p(r.error) + "\n";
    return o;
  }
  // What decided when no mailbox was judged (a dead resolver, a block of our address...).
  if (!r.error.empty()) o += "  why: " + p(r.error) + "\n";
  if (!r.mx.empty()) o += "  mx: " + p(r.mx) + " [" + p(r.mx_ip) + "]\n";
  if (!r.proxy.empty()) o += "  via: " + p(r.proxy) + "\n";
  if (!r.helo.empty())
    o += "  as: " + p(r.helo) + (r.source_ip.empty() ? "" : " from " + p(r.source_ip)) + "\n";
  // Only when it is not the default null sender: a fallback --mail-from answered.
  if (!r.mail_from.empty() && r.mail_from != "<>") o += "  mail from: " + p(r.mail_from) + "\n";
  if (r.has_smtp)
    o += "  smtp: " + std::to_string(r.code) + " " + p(r.enhanced) + " " + p(r.message) + "\n";
  if (!r.tls_version.empty()) o += "  tls: " + p(r.tls_version) + " " + p(r.tls_cipher) + "\n";
  // More than one try (failover, retries): each, in order (the record's mx_tried).
  if (r.mx_tried.size() > 1 || (r.mx_tried.size() == 1 && r.mx_tried[0].times > 1))
    for (size_t i = 0; i < r.mx_tried.size(); ++i) {
      const pipeline::MxTry& t = r.mx_tried[i];
      o += "  try " + std::to_string(i + 1) + ": " + p(t.mx) + " [" + p(t.ip) + "] " +
           (t.times > 1 ? "(" + std::to_string(t.times) + " times) " : std::string()) + p(t.stage) +
           ": " +
           (t.code ? std::to_string(t.code) + (t.enhanced.empty() ? "" : " " + p(t.enhanced)) +
                         " " + p(t.message)
                   : p(t.error)) +
           "\n";
    }
  if (r.retry_after) o += "  ask again after: " + pipeline::iso8601(*r.retry_after) + "\n";
  std::snprintf(num, sizeof num, "  catch-all: %s  role: %s  attempts: %u  elapsed: %.1f ms\n",
                r.catch_all ? (*r.catch_all ? "yes" : "no") : "unknown",
                r.role.value_or(false) ? "yes" : "no", r.attempts, r.elapsed_ms);
  o += num;
  auto yn = [](std::optional<bool> b) { return !b ? "unknown" : *b ? "yes" : "no"; };
  o += std::string("  disposable: ") + yn(r.disposable) + "  free: " + yn(r.free) + "\n";
  if (!r.suggestion.empty()) o += "  did you mean: " + p(r.suggestion) + "\n";
  // The score with what made it (docs/score.md), and who runs the mail (docs/providers.md).
  const auto sc = pipeline::derive(r, std::chrono::system_clock::now()).score;
  o += "  score: " + std::to_string(sc.score) + " (";
  for (size_t i = 0; i < sc.factors.size(); ++i)
    o += (i ? ", " : "") + std::string(sc.factors[i].factor) +
         (sc.factors[i].effect >= 0 ? " +" : " ") + std::to_string(sc.factors[i].effect);
  o += ")  provider: " + (r.provider.empty() ? std::string("unknown") : p(r.provider)) + "\n";
  if (verbose && !r.transcript.empty()) {
    o += "  transcript:\n";
    size_t pos = 0;
    while (pos < r.transcript.size()) {
      size_t nl = r.transcript.find('\n', pos);
      if (nl == std::string::npos) nl = r.transcript.size();
      o += "    " + p(std::string_view(r.transcript).substr(pos, nl - pos)) + "\n";
      pos = nl + 1;
    }
  }
  return o;
}

int run_check(const CheckOptions& opts, const EngineOptions& eng, std::FILE* out, std::FILE* diag) {
  Engine e;
  if (!make_engine(eng, true, e, diag)) return 3;
  e.config.max_tries = opts.max_tries;
  e.config.fail_when_resolver_down = true;  // an answer now, with the cause in `error`
  const bool tty = isatty(fileno(diag));
  if (opts.verbose)
    e.config.log = [diag, tty](const std::string& line) {
      // Over the live status line, if one is shown (it is redrawn after).
      std::fprintf(diag, "%smxprobe: %s\n", tty ? "\r\033[K" : "", printable(line).c_str());
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
  if (pending) {
    std::optional<LiveStatus> live;
    if (tty) live.emplace(*e.loop, v, diag);
    e.loop->run();
  }

  int undeliverable = 0;
  for (const auto& r : results) {
    if (r.verdict == Verdict::Undeliverable) ++undeliverable;
    if (opts.json) {
      std::string line;
      pipeline::append_json(r, line, opts.verbose);
      std::fputs(line.c_str(), out);
      continue;
    }
    std::fputs(check_report(r, opts.verbose).c_str(), out);
  }
  // Exit status for scripts: 0 all deliverable/risky/unknown, 4 when any is undeliverable.
  return undeliverable ? 4 : 0;
}

}  // namespace mxp::app
