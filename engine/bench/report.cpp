#include "bench/report.hpp"

#include <cmath>
#include <cstdio>

namespace mxp::bench {
namespace {

using nlohmann::json;

constexpr std::array<double, 5> kQuantiles = {0.5, 0.9, 0.99, 0.999, 1.0};
constexpr std::array<const char*, 5> kQuantileNames = {"p50", "p90", "p99", "p99.9", "max"};
constexpr std::array<const char*, kReplyClassCount> kClassNames = {"2xx", "3xx", "4xx", "5xx",
                                                                   "421"};

double ms(uint64_t us) {
  return static_cast<double>(us) / 1000.0;
}
double round3(double v) {
  return std::round(v * 1000) / 1000;
}

json percentiles(const Histogram& h) {
  json j = json::object();
  j["count"] = h.count();
  for (size_t i = 0; i < kQuantiles.size(); ++i)
    j[kQuantileNames[i]] = round3(ms(h.percentile(kQuantiles[i])));
  return j;
}

std::string printf_s(const char* fmt, auto... args) {
  char b[256];
  std::snprintf(b, sizeof b, fmt, args...);
  return b;
}

// Milliseconds in at most 8 characters, with precision where it matters.
std::string fmt_ms(double v) {
  if (v < 10) return printf_s("%.2f", v);
  if (v < 1000) return printf_s("%.1f", v);
  return printf_s("%.0f", v);
}
std::string fmt_rate(double v) {
  return v >= 100 || v == std::floor(v) ? printf_s("%.0f", v) : printf_s("%.1f", v);
}
double num(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : 0;
}
uint64_t count(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<uint64_t>() : 0;
}

// Text in lines of at most 80 columns, each indented by two spaces.
std::string wrap(const std::string& text) {
  std::string out, line;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find(' ', pos);
    if (end == std::string::npos) end = text.size();
    const std::string word = text.substr(pos, end - pos);
    if (!line.empty() && 2 + line.size() + 1 + word.size() > 80) {
      out += "  " + line + "\n";
      line.clear();
    }
    line += (line.empty() ? "" : " ") + word;
    pos = end + 1;
  }
  if (!line.empty()) out += "  " + line + "\n";
  return out;
}

// The latency shown in the text table for a stage: connect and session from the intended start
// (what the open loop is for), the others from when their command was sent.
const char* shown_key(std::string_view stage) {
  return stage == "connect" || stage == "session" ? "latency_ms" : "service_ms";
}

}  // namespace

json to_json(const RunInfo& info, const std::vector<StepStats>& steps) {
  json j;
  j["tool"] = "mxprobe bench-server";
  j["format"] = 1;
  j["target"] = info.target;
  j["address"] = info.address;
  j["domain"] = info.domain;
  j["backend"] = info.backend;
  j["sources"] = info.sources;
  json rates = json::array();
  for (double r : info.rates)
    rates.push_back(r);
  if (info.rates.empty())
    for (const auto& s : steps)
      rates.push_back(s.offered);
  j["parameters"] = {{"rates", rates},
                     {"step_time_s", info.step_time},
                     {"warmup_s", info.warmup},
                     {"rcpts", info.rcpts},
                     {"data", info.data},
                     {"message_size", info.message_size},
                     {"max_sessions", info.max_sessions}};
  j["histogram_relative_error"] = Histogram::kRelativeError;
  j["steps"] = json::array();
  for (const StepStats& s : steps) {
    json st;
    st["offered_per_s"] = s.offered;
    st["seconds"] = s.seconds;
    st["achieved_sessions_per_s"] = round3(s.achieved());
    st["achieved_rcpts_per_s"] = round3(s.achieved_rcpts());
    st["sessions"] = {{"started", s.started}, {"completed", s.completed}, {"failed", s.failed}};
    json cf = json::object();
    for (int f = 1; f < kFailureCount; ++f)
      cf[std::string(kFailureNames[f])] = s.failures[f];
    st["connection_failures"] = cf;
    st["behind_schedule_ms"] = percentiles(s.behind);
    json stages = json::object();
    for (int i = 0; i < kStageCount; ++i) {
      json sj;
      json rc = json::object();
      for (int c = 0; c < kReplyClassCount; ++c)
        rc[kClassNames[c]] = s.replies[i][c];
      sj["replies"] = rc;
      sj["latency_ms"] = percentiles(s.from_start[i]);
      sj["service_ms"] = percentiles(s.from_send[i]);
      stages[std::string(kStageNames[i])] = sj;
    }
    st["stages"] = stages;
    j["steps"].push_back(st);
  }
  const Knee k = find_knee(steps);
  json kj = {{"found", k.found}};
  if (k.found) {
    kj["step"] = k.step + 1;
    kj["rate"] = k.rate;
    kj["criterion"] = k.criterion;
    kj["last_good_rate"] = k.last_good_rate ? json(*k.last_good_rate) : json(nullptr);
  }
  j["knee"] = kj;
  j["stopped_early"] = info.stopped_early.empty() ? json(nullptr) : json(info.stopped_early);
  return j;
}

std::string progress_line(const StepStats& s) {
  const auto& h = s.from_start[static_cast<int>(Stage::Session)];
  return printf_s("  achieved %s/s, %llu failed, session p50 %s ms, p99 %s ms\n",
                  fmt_rate(s.achieved()).c_str(), static_cast<unsigned long long>(s.failed),
                  fmt_ms(ms(h.percentile(0.5))).c_str(), fmt_ms(ms(h.percentile(0.99))).c_str());
}

std::string to_text(const json& run) {
  std::string o;
  const json& p = run["parameters"];
  o += "mxprobe bench-server " + run.value("target", std::string()) + " (" +
       run.value("address", std::string()) + ")\n";
  const int rcpts = p.value("rcpts", 1);
  o += "  " + std::to_string(rcpts) + (rcpts == 1 ? " RCPT" : " RCPTs") + " per session" +
       (p.value("data", false) ? " + DATA" : "") + ", " + fmt_rate(p.value("step_time_s", 0.0)) +
       " s per step, backend " + run.value("backend", std::string()) + "\n";
  const auto& steps = run["steps"];
  for (size_t i = 0; i < steps.size(); ++i) {
    const json& s = steps[i];
    const json& ss = s["sessions"];
    o += printf_s("\nStep %zu/%zu: offered %s sessions/s for %s s\n", i + 1, steps.size(),
                  fmt_rate(num(s, "offered_per_s")).c_str(), fmt_rate(num(s, "seconds")).c_str());
    o += printf_s(
        "  achieved %s sessions/s, %s RCPTs/s; %llu sessions: %llu completed, %llu "
        "failed\n",
        fmt_rate(num(s, "achieved_sessions_per_s")).c_str(),
        fmt_rate(num(s, "achieved_rcpts_per_s")).c_str(),
        static_cast<unsigned long long>(count(ss, "started")),
        static_cast<unsigned long long>(count(ss, "completed")),
        static_cast<unsigned long long>(count(ss, "failed")));
    std::string cf;
    for (const auto& [k, v] : s["connection_failures"].items())
      if (v.get<uint64_t>() > 0)
        cf += (cf.empty() ? "" : ", ") + k + " " + std::to_string(v.get<uint64_t>());
    o += "  connection failures: " + (cf.empty() ? std::string("none") : cf) + "\n";
    const json& b = s["behind_schedule_ms"];
    o += "  sessions started behind schedule: p99 " + fmt_ms(num(b, "p99")) + " ms, max " +
         fmt_ms(num(b, "max")) + " ms\n";
    o += printf_s("  %-9s %5s %5s %5s %5s", "stage", "2xx", "4xx", "5xx", "421");
    for (const char* q : kQuantileNames)
      o += printf_s(" %8s", q);
    o += "\n";
    for (const auto& name : kStageNames) {
      const json& st = s["stages"][std::string(name)];
      const json& lat = st[shown_key(name)];
      if (count(lat, "count") == 0) continue;
      const bool from_start = std::string_view(shown_key(name)) == "latency_ms";
      std::string line = printf_s("  %-9s", (std::string(name) + (from_start ? "*" : "")).c_str());
      const json& r = st["replies"];
      if (name == "connect" || name == "session") {
        line += std::string(24, ' ');
      } else {
        line += printf_s(" %5llu %5llu %5llu %5llu",
                         static_cast<unsigned long long>(count(r, "2xx") + count(r, "3xx")),
                         static_cast<unsigned long long>(count(r, "4xx")),
                         static_cast<unsigned long long>(count(r, "5xx")),
                         static_cast<unsigned long long>(count(r, "421")));
      }
      for (const char* q : kQuantileNames)
        line += printf_s(" %8s", fmt_ms(num(lat, q)).c_str());
      o += line + "\n";
    }
    o += "  (ms; * from the session's intended start, the others from their command)\n";
  }
  o += "\nSummary: session latency from the intended start (ms)\n";
  o += "   offered  achieved  failed       p50       p99     p99.9       max\n";
  for (const json& s : steps) {
    const json& lat = s["stages"]["session"]["latency_ms"];
    const double started = static_cast<double>(count(s["sessions"], "started"));
    const double failed = static_cast<double>(count(s["sessions"], "failed"));
    o += printf_s("  %8s  %8s  %5.1f%%  %8s  %8s  %8s  %8s\n",
                  fmt_rate(num(s, "offered_per_s")).c_str(),
                  fmt_rate(num(s, "achieved_sessions_per_s")).c_str(),
                  started > 0 ? 100 * failed / started : 0.0, fmt_ms(num(lat, "p50")).c_str(),
                  fmt_ms(num(lat, "p99")).c_str(), fmt_ms(num(lat, "p99.9")).c_str(),
                  fmt_ms(num(lat, "max")).c_str());
  }
  const json& k = run["knee"];
  if (k.value("found", false)) {
    o += "Knee: step " + std::to_string(k.value("step", 0)) + " at " + fmt_rate(num(k, "rate")) +
         "/s; " +
         (k["last_good_rate"].is_number()
              ? "last good rate " + fmt_rate(k["last_good_rate"].get<double>()) + "/s\n"
              : std::string("no step before it was good\n"));
    o += wrap(k.value("criterion", std::string()));
  } else {
    o += "Knee: none (every step: achieved >= 95%, p99 <= 3x step 1's, errors <= 1%)\n";
  }
  if (run.contains("stopped_early") && run["stopped_early"].is_string())
    o += "Stopped early:\n" + wrap(run["stopped_early"].get<std::string>());
  o += printf_s("Percentiles within %.1f%% (log-bucketed histogram); max exact.\n",
                100 * run.value("histogram_relative_error", Histogram::kRelativeError));
  return o;
}

std::optional<std::string> check_run(const json& run) {
  if (!run.is_object() || run.value("tool", std::string()) != "mxprobe bench-server")
    return "not the --json output of mxprobe bench-server";
  if (!run.contains("steps") || !run["steps"].is_array()) return "no \"steps\" array in it";
  for (const json& s : run["steps"])
    if (!s.is_object() || !s.contains("stages") || !s["stages"].is_object())
      return "a step without \"stages\"";
  return std::nullopt;
}

std::string compare_text(const json& a, const json& b, const std::string& name_a,
                         const std::string& name_b) {
  std::string o;
  o += "A: " + name_a + " (" + a.value("target", std::string()) + ", " +
       a.value("backend", std::string()) + ")\n";
  o += "B: " + name_b + " (" + b.value("target", std::string()) + ", " +
       b.value("backend", std::string()) + ")\n";
  auto ratio = [](double x, double y) {
    return x > 0 ? printf_s("%10.2f", y / x) : std::string("         -");
  };
  auto row = [&](const std::string& label, double x, double y, bool is_ms) {
    return printf_s("  %-30s %12s %12s %s\n", label.c_str(),
                    (is_ms ? fmt_ms(x) : fmt_rate(x)).c_str(),
                    (is_ms ? fmt_ms(y) : fmt_rate(y)).c_str(), ratio(x, y).c_str());
  };
  const auto& sa = a["steps"];
  const auto& sb = b["steps"];
  const size_t n = std::max(sa.size(), sb.size());
  for (size_t i = 0; i < n; ++i) {
    if (i >= sa.size() || i >= sb.size()) {
      o += printf_s("\nStep %zu: only in %s\n", i + 1, i >= sa.size() ? "B" : "A");
      continue;
    }
    const json& x = sa[i];
    const json& y = sb[i];
    o += printf_s("\nStep %zu: offered %s/s (A) and %s/s (B)%*s  B/A\n", i + 1,
                  fmt_rate(num(x, "offered_per_s")).c_str(),
                  fmt_rate(num(y, "offered_per_s")).c_str(), 6, "");
    o += printf_s("  %-30s %12s %12s %10s\n", "", "A", "B", "");
    o += row("achieved sessions/s", num(x, "achieved_sessions_per_s"),
             num(y, "achieved_sessions_per_s"), false);
    o += row("achieved RCPTs/s", num(x, "achieved_rcpts_per_s"), num(y, "achieved_rcpts_per_s"),
             false);
    o += row("failed sessions", static_cast<double>(count(x["sessions"], "failed")),
             static_cast<double>(count(y["sessions"], "failed")), false);
    for (const auto& name : kStageNames) {
      const char* key = shown_key(name);
      const std::string sname(name);
      if (!x["stages"].contains(sname) || !y["stages"].contains(sname)) continue;
      const json& lx = x["stages"][sname][key];
      const json& ly = y["stages"][sname][key];
      if (count(lx, "count") == 0 && count(ly, "count") == 0) continue;
      const bool all = name == "session";
      for (size_t q = 0; q < kQuantileNames.size(); ++q) {
        if (!all && q != 0 && q != 2 && q != 4) continue;  // p50, p99, max
        o += row(sname + " " + kQuantileNames[q] + " ms", num(lx, kQuantileNames[q]),
                 num(ly, kQuantileNames[q]), true);
      }
    }
  }
  o += "\n(ms: connect and session from the intended start, the other stages from their "
       "command)\n";
  return o;
}

std::string chart_data(const json& run) {
  std::string o = "# offered achieved p50 p90 p99 p99.9 max (session latency, ms)\n";
  for (const json& s : run["steps"]) {
    const json& lat = s["stages"]["session"]["latency_ms"];
    if (count(lat, "count") == 0) continue;
    o += printf_s("%g %g", num(s, "offered_per_s"), num(s, "achieved_sessions_per_s"));
    for (const char* q : kQuantileNames)
      o += printf_s(" %g", std::max(num(lat, q), 0.001));
    o += "\n";
  }
  return o;
}

static std::string gp_quoted(const std::string& s) {
  std::string o = "'";
  for (char c : s) {
    if (c == '\'') o += '\'';
    if (c == '\n' || c == '\r') continue;
    o += c;
  }
  return o + "'";
}

std::string chart_script(const json& run, const std::string& data_path, const std::string& out,
                         const json* b, const std::string& data_b) {
  const bool svg = out.size() >= 4 && out.compare(out.size() - 4, 4, ".svg") == 0;
  std::string o;
  o += svg ? "set terminal svg size 960,600 dynamic font 'sans,11'\n"
           : "set terminal pngcairo size 960,600 font 'sans,10'\n";
  o += "set output " + gp_quoted(out) + "\n";
  std::string title = "mxprobe bench-server " + run.value("target", std::string());
  if (b) title += " (solid) vs " + b->value("target", std::string()) + " (dashed)";
  o += "set title " + gp_quoted(title) + "\n";
  o += "set xlabel 'offered rate (sessions/s)'\n";
  o += "set ylabel 'session latency from the intended start (ms, log)'\n";
  o += "set y2label 'achieved rate (sessions/s)'\n";
  o += "set logscale y\nset ytics nomirror\nset y2tics\nset grid\nset key top left\n";
  o += "set y2range [0:*]\n";
  double lo = 0, hi = 0;
  for (const json& s : run["steps"]) {
    const double r = num(s, "offered_per_s");
    lo = lo == 0 ? r : std::min(lo, r);
    hi = std::max(hi, r);
  }
  if (lo > 0 && hi / lo >= 8) o += "set logscale x\n";
  const json& k = run["knee"];
  if (k.value("found", false)) {
    o += printf_s("set arrow from %g, graph 0 to %g, graph 1 nohead dashtype 3 lc rgb 'red'\n",
                  num(k, "rate"), num(k, "rate"));
    o += printf_s("set label 'knee' at %g, graph 0.95 offset 0.5,0 textcolor rgb 'red'\n",
                  num(k, "rate"));
  }
  const char* colors[] = {"#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#444444"};
  std::string plot = "plot ";
  auto series = [&](const std::string& path, int dash, const std::string& suffix) {
    for (int q = 0; q < 5; ++q)
      plot += gp_quoted(path) +
              printf_s(" using 1:%d with linespoints dashtype %d lc rgb '%s' ", q + 3, dash,
                       colors[q]) +
              "title " + gp_quoted(std::string(kQuantileNames[q]) + suffix) + ", ";
    plot += gp_quoted(path) +
            printf_s(" using 1:2 axes x1y2 with linespoints dashtype %d lw 2 lc rgb 'black' ",
                     dash + 1) +
            "title " + gp_quoted("achieved/s" + suffix) + ", ";
  };
  series(data_path, 1, b ? " A" : "");
  if (b) series(data_b, 2, " B");
  plot.resize(plot.size() - 2);
  o += plot + "\n";
  return o;
}

}  // namespace mxp::bench
