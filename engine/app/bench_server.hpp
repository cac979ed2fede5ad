// `mxprobe bench-server HOST[:PORT]`: load-tests a mail server at fixed arrival rates (open
// loop: latency counted from each session's intended start), in steps, and reports per step the
// achieved rate, replies and failures by class and latency percentiles per SMTP stage
// (docs/bench-server.md). The dialogue and the arithmetic are engine/bench (sans-I/O); this file
// runs them on the engine's loop.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "app/engine_options.hpp"

namespace mxp::app {

struct BenchOptions {
  std::string target;  // HOST[:PORT], IP[:PORT] or a domain (its best MX)
  std::string domain;  // of the random RCPT addresses; default: the target's name
  std::string rates;   // --rate "100,200,400"
  std::string ramp;    // --ramp "100:2000:x2" or "100:1000:+100"
  double step_time = 10, warmup = 0;
  int rcpts = 1;
  bool data = false, i_own_this_server = false;
  size_t message_size = 1000;
  size_t max_sessions = 10000;
  bool json = false;
  std::string chart;                 // FILE.png or FILE.svg
  std::vector<std::string> compare;  // two --json outputs
  int progress = -1;                 // 1: on, 0: off, -1: when stderr is a terminal
};

// Usage errors exit 2; the engine not starting 3; the target not found or nothing completed 1;
// a chart gnuplot could not draw 4 (the report was still printed); else 0.
int run_bench_server(const BenchOptions& o, const EngineOptions& eng, std::FILE* out,
                     std::FILE* diag);
// --compare A.json B.json (and --chart): 0, or 2 when a file is missing or not a run.
int run_bench_compare(const BenchOptions& o, std::FILE* out, std::FILE* diag);

}  // namespace mxp::app
