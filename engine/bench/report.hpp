// bench-server's output: the run as one JSON document (--json), which the text table, the
// gnuplot chart and --compare are all made from, so the three always agree.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "bench/run.hpp"

namespace mxp::bench {

struct RunInfo {
  std::string target, address, domain, backend;
  std::vector<std::string> sources;
  std::vector<double> rates;  // the steps asked for (those run: `steps`)
  double step_time = 10, warmup = 0;
  int rcpts = 1;
  bool data = false;
  size_t message_size = 0, max_sessions = 0;
  std::string stopped_early;  // why the ramp stopped before its last step; "" when it did not
};

// Keys: docs/bench-server.md. Latencies in milliseconds.
nlohmann::json to_json(const RunInfo& info, const std::vector<StepStats>& steps);
// The 80-column report: a block per step, then a summary line per step and the knee.
std::string to_text(const nlohmann::json& run);
// The progress line of a step that ended (stderr on a terminal; indented under the line that
// announced the step).
std::string progress_line(const StepStats& s);

// --compare: two earlier --json outputs side by side, steps matched in order; an error message
// when a document is not a bench-server run.
std::optional<std::string> check_run(const nlohmann::json& run);
std::string compare_text(const nlohmann::json& a, const nlohmann::json& b,
                         const std::string& name_a, const std::string& name_b);

// The chart (gnuplot): the data file's text and the script that draws `out` (.png or .svg)
// from `data_path`. Session latency percentiles on a log y-axis against the offered rate, and
// the achieved rate on the second y-axis. With `b`, a second run drawn dashed.
std::string chart_data(const nlohmann::json& run);
std::string chart_script(const nlohmann::json& run, const std::string& data_path,
                         const std::string& out, const nlohmann::json* b = nullptr,
                         const std::string& data_b = "");

}  // namespace mxp::bench
