// `mxprobe check` (a few addresses, a readable report) and `mxprobe verify` (a list, streamed:
// input is read as work drains, so a 10-million-line file never sits in memory).
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include <chrono>

#include "app/engine_options.hpp"
#include "app/output.hpp"
#include "app/records.hpp"
#include "pipeline/result.hpp"

namespace mxp::app {

struct CheckOptions {
  std::vector<std::string> addresses;
  bool json = false;
  bool verbose = false;    // the SMTP transcript, and the loop backend chosen
  uint32_t max_tries = 1;  // real time: no waiting for retries unless asked
};
int run_check(const CheckOptions& opts, const EngineOptions& eng, std::FILE* out, std::FILE* diag);
// The readable report of one result (`check` without --json), every outside text escaped for
// a terminal (printable(): no ESC sequence, OSC title or invalid UTF-8 from a server gets out).
std::string check_report(const pipeline::Result& r, bool verbose);

// ".csv", ".jsonl"...: an output file's extension, lower case ("" for stdout or none).
std::string output_extension(const std::string& path);

struct VerifyOptions {
  std::string input = "-";
  std::string output = "-";
  OutputFormat format = OutputFormat::Jsonl;
  bool format_given = true;  // --format was given (else it came from the output's name)
  RecordOptions records;
  bool transcripts = false;
  // Records in input order (a bounded window, docs/jobs.md "Output order"); false: as they
  // finish. `verify` defaults to input order (main.cpp); serve's jobs write as they finish (their
  // download is put in input order by the server).
  bool order_input = false;
  int progress = -1;     // -1: a bar when stderr is a terminal; 0: never; 1: status lines
  bool quiet = false;    // errors and warnings only: no summary, no scheduler log
  bool verbose = false;  // say which event loop runs
  // Journal (docs/jobs.md): default OUTPUT.journal for an output file, none for stdout.
  std::string journal;
  bool no_journal = false, resume = false, keep_journal = false;
  // Results cache: default $XDG_CACHE_HOME/mxprobe/cache.db (~/.cache/...).
  std::string cache;
  bool no_cache = false;
  std::chrono::seconds cache_ttl = std::chrono::hours(24 * 7);
  // --retry-unknown OLD_OUTPUT: the earlier output (JSON Lines or CSV) whose due unknowns are
  // asked again; run_verify hands such a run to run_retry_unknown.
  std::string retry_unknown;
};
int run_verify(const VerifyOptions& opts, const EngineOptions& eng, std::FILE* diag);
// `verify --retry-unknown`: the unknowns of opts.retry_unknown whose retry_after has come are
// verified again, every other record is copied through; written to opts.output in the old
// output's format and order (docs/jobs.md, "Asking again").
int run_retry_unknown(const VerifyOptions& opts, const EngineOptions& eng, std::FILE* diag);

// $XDG_CACHE_HOME/mxprobe/cache.db, else ~/.cache/mxprobe/cache.db; "" without either.
std::string default_cache_path();
// mkdir -p of the directories above `path`.
bool make_parent_dirs(const std::string& path);

}  // namespace mxp::app
