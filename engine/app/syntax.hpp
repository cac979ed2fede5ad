// `mxprobe syntax`: checks and normalises every address of a list without any network traffic,
// writing one JSON object per input record. The record formatter is separate from the file
// plumbing so tests and benchmarks drive it in memory.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

#include "app/records.hpp"
#include "flags/domain_data.hpp"

namespace mxp::app {

struct SyntaxStats {
  uint64_t records = 0, ok = 0, bad = 0;
};

// Appends {"line":N,"email":...,"ok":...,"normalized":...,"error":...,"role":...,"smtputf8":...,
// "disposable":...,"free":...,"suggestion":...} and a newline to out. `data`: the domain lists
// (null: disposable, free and suggestion are null).
void format_syntax_record(const Record& r, std::string& out, SyntaxStats& stats,
                          const flags::DomainData* data = nullptr,
                          flags::FlagsMemo* memo = nullptr);

struct SyntaxOptions {
  std::string input = "-";   // path or "-" for stdin
  std::string output = "-";  // path or "-" for stdout
  RecordOptions records;
  int progress = -1;  // -1: a bar when stderr is a terminal; 0: never; 1: always (status lines)
  std::string domain_data;  // --domain-data PATH; "": the default places (engine/flags)
};

// Runs the command; diagnostics go to `diag`. Returns the process exit code (docs/usage.md).
int run_syntax(const SyntaxOptions& opts, std::FILE* diag);

}  // namespace mxp::app
