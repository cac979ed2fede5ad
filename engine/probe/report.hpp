// What `mxprobe probe-server` observed of one mail server, and what it concludes: latency per
// SMTP stage, capabilities, catch-all, greylisting and its delay, concurrent connections
// accepted, the connection rate at which refusals start, error-limit behaviour, tarpitting.
// Pure: the driver (app/probe_server.cpp) records connections with their timed exchanges; this
// file turns records into a Report and the Report into text or JSON (docs/probe.md).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace mxp::probe {

// One command and its reply, timed (no PIPELINING: each reply answers the command before it).
struct Exchange {
  std::string verb;  // "EHLO", "HELO", "MAIL", "RCPT", "RSET", "QUIT"
  double ms = 0;     // command written to the reply's last line
  int code = 0;      // 0: no reply (closed, timeout)
  std::string text;  // the reply's last line, without the code
};

// Which measurement opened a connection.
enum class Phase { Sample, Greylist, Concurrency, ErrorLimit, Rate };
// The figures of a report, in report order (the keys of `measured` and `not_measured`).
inline constexpr const char* kFigures[] = {"latency",     "capabilities", "catch_all",
                                           "greylisting", "concurrency",  "connection_rate",
                                           "error_limit", "tarpit"};
const char* to_string(Phase p);

struct ConnRecord {
  Phase phase = Phase::Sample;
  double at_s = 0;            // since the probe began
  int open_at_start = 0;      // our other connections open when this one began
  bool connected = false;     // TCP
  std::string connect_error;  // not connected: "connection refused", "timed out after 30 s"...
  double connect_ms = 0;
  int banner_code = 0;  // 0: none (closed, timeout)
  double banner_ms = 0;
  std::string banner_text;
  std::vector<Exchange> exchanges;
  std::vector<std::string> ehlo_keywords;  // upper-case first words of the EHLO lines
  bool closed_by_server = false;           // before our QUIT was answered
  bool timed_out = false;
  // Accepted: the greeting came and was 2xx.
  bool accepted() const { return connected && banner_code >= 200 && banner_code < 300; }
};

struct Stat {
  size_t count = 0;
  double min = 0, p50 = 0, p90 = 0, max = 0;  // ms
};
Stat stat_of(std::vector<double> ms);
// The connection's first RCPT exchange (the probe address), or null.
const Exchange* first_rcpt(const ConnRecord& c);

struct Report {
  std::string target;   // as asked: host[:port] or domain
  std::string host;     // MX host probed
  std::string address;  // IP:port
  std::string banner;
  std::vector<std::pair<std::string, Stat>> latency;  // stage -> distribution, stages in order
  std::vector<std::string> capabilities;              // every EHLO keyword, in order
  bool pipelining = false, starttls = false, size = false, smtputf8 = false,
       enhanced_status_codes = false, eight_bit_mime = false, chunking = false;
  std::optional<int64_t> size_limit;
  std::optional<bool> catch_all;  // null: could not tell (greylisted, refused...)
  std::string catch_all_reply;
  bool greylisting = false;
  std::optional<double> greylist_delay_s;  // passed after this long; null: never (within the wait)
  // The retry that passed (1: the first) and when the one before it still got a 4xx (0 when
  // the first retry passed): the server's delay is more than this and at most greylist_delay_s.
  int greylist_retries = 0;
  std::optional<double> greylist_delay_min_s;
  std::string greylist_reply;
  std::optional<int> max_concurrent_connections;  // null: none refused up to `concurrency_tried`
  int concurrency_tried = 0;
  std::string concurrency_refusal;
  bool rate_limited = false;
  std::optional<int> rate_refused_after;  // accepted connections before the first refusal...
  std::optional<double> rate_window_s;    // ...within this many seconds
  std::optional<double> rate_per_s;       // the ramp's rate when refused
  double rate_tried_per_s = 0;            // the fastest rate tried without refusal
  std::string rate_refusal;
  std::optional<double> rate_accepted_again_s;  // from the refusal to the next accepted one
  int bad_rcpts_tried = 0;
  std::optional<int> error_delay_after;  // bad RCPTs answered promptly before the first slow one
  std::optional<double> error_delay_ms;  // how slow
  std::optional<int> error_disconnect_after;  // bad RCPTs answered before the server hung up
  std::string error_disconnect_reply;
  bool tarpit = false;
  std::optional<double> tarpit_delay_ms;  // the slowest greeting or reply seen
  std::vector<std::string> notes;         // what was skipped and why, politeness stops
  // Set by the driver before analyze(): the measurements asked (false: skipped by an option),
  // and why probing ended before all of them ran (empty: it did not).
  bool ask_concurrency = true, ask_rate = true, ask_error_limit = true;
  std::string stopped;
  // Filled by analyze(): each figure of kFigures is measured, not measured (with why), or
  // skipped (by an option).
  std::vector<std::string> measured, skipped;
  std::vector<std::pair<std::string, std::string>> not_measured;
  const std::string* why_not_measured(const std::string& figure) const;
  int connections = 0;  // opened in all
  double duration_s = 0;
};

// Thresholds of the conclusions.
struct Thresholds {
  double tarpit_ms = 2000;     // a greeting or reply this slow is a tarpit
  double slow_reply_ms = 250;  // an error-limit delay: at least this, and 5x the first replies'
};

// Fills the measurements of `r` that come from the records (latency, capabilities, banner,
// catch-all and greylisting from the first RCPTs, concurrency, rate, error limit, tarpit), and
// which figures were measured. Set rate_tried_per_s, ask_* and stopped first.
void analyze(const std::vector<ConnRecord>& records, const Thresholds& t, Report& r);

nlohmann::json to_json(const Report& r);
std::string to_text(const Report& r);

}  // namespace mxp::probe
