// From timed connection records to a probe report, and the report as text and JSON (report.hpp).
#include "probe/report.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace mxp::probe {

using json = nlohmann::json;

const char* to_string(Phase p) {
  switch (p) {
    case Phase::Sample:
      return "sample";
    case Phase::Greylist:
      return "greylist";
    case Phase::Concurrency:
      return "concurrency";
    case Phase::ErrorLimit:
      return "error_limit";
    case Phase::Rate:
      return "rate";
  }
  return "?";
}

Stat stat_of(std::vector<double> ms) {
  Stat s;
  if (ms.empty()) return s;
  std::sort(ms.begin(), ms.end());
  auto at = [&](double q) {  // nearest rank
    const size_t i = static_cast<size_t>(std::ceil(q * static_cast<double>(ms.size())));
    return ms[std::min(ms.size() - 1, i == 0 ? 0 : i - 1)];
  };
  s.count = ms.size();
  s.min = ms.front();
  s.p50 = at(0.5);
  s.p90 = at(0.9);
  s.max = ms.back();
  return s;
}

const Exchange* first_rcpt(const ConnRecord& c) {
  for (const auto& e : c.exchanges)
    if (e.verb == "RCPT") return &e;
  return nullptr;
}

namespace {

std::string stage_of(const std::string& verb) {
  if (verb == "EHLO") return "ehlo";
  if (verb == "HELO") return "helo";
  if (verb == "MAIL") return "mail_from";
  if (verb == "RCPT") return "rcpt_to";
  if (verb == "RSET") return "rset";
  if (verb == "QUIT") return "quit";
  return "";
}

std::string reply_text(int code, const std::string& text) {
  return code ? std::to_string(code) + (text.empty() ? "" : " " + text) : "";
}

// Why a connection was not accepted, in words.
std::string refusal(const ConnRecord& c) {
  if (!c.connected) return c.connect_error.empty() ? "could not connect" : c.connect_error;
  if (c.banner_code) return reply_text(c.banner_code, c.banner_text);
  if (c.timed_out) return "no greeting in time";
  return "closed before the greeting";
}

bool sampled(const ConnRecord& c) {
  return c.phase == Phase::Sample || c.phase == Phase::Greylist;
}

}  // namespace

void analyze(const std::vector<ConnRecord>& records, const Thresholds& t, Report& r) {
  r.connections = static_cast<int>(records.size());
  std::string concurrency_doubt;
  bool error_measured = false;
  // Latency per stage, capabilities and greeting: from the plain sample sessions.
  std::vector<std::pair<std::string, std::vector<double>>> by_stage = {
      {"connect", {}},   {"banner", {}},  {"ehlo", {}}, {"helo", {}},
      {"mail_from", {}}, {"rcpt_to", {}}, {"rset", {}}, {"quit", {}}};
  auto slot = [&](const std::string& stage) -> std::vector<double>* {
    for (auto& [name, v] : by_stage)
      if (name == stage) return &v;
    return nullptr;
  };
  double slowest = 0;
  for (const auto& c : records) {
    if (!sampled(c) || !c.connected) continue;
    slot("connect")->push_back(c.connect_ms);
    if (c.banner_code) {
      slot("banner")->push_back(c.banner_ms);
      slowest = std::max(slowest, c.banner_ms);
    }
    for (const auto& e : c.exchanges) {
      if (!e.code) continue;
      if (auto* v = slot(stage_of(e.verb))) v->push_back(e.ms);
      slowest = std::max(slowest, e.ms);
    }
  }
  for (auto& [name, v] : by_stage)
    if (!v.empty()) r.latency.emplace_back(name, stat_of(v));
  for (const auto& c : records) {
    if (!c.accepted()) continue;
    if (r.banner.empty()) r.banner = reply_text(c.banner_code, c.banner_text);
    if (!c.ehlo_keywords.empty()) {
      r.capabilities = c.ehlo_keywords;
      break;
    }
  }
  for (const auto& k : r.capabilities) {
    const std::string word = k.substr(0, k.find(' '));
    r.pipelining |= word == "PIPELINING";
    r.starttls |= word == "STARTTLS";
    r.smtputf8 |= word == "SMTPUTF8";
    r.enhanced_status_codes |= word == "ENHANCEDSTATUSCODES";
    r.eight_bit_mime |= word == "8BITMIME";
    r.chunking |= word == "CHUNKING";
    if (word == "SIZE") {
      r.size = true;
      if (k.size() > 5) r.size_limit = std::strtoll(k.c_str() + 5, nullptr, 10);
    }
  }
  r.tarpit = slowest >= t.tarpit_ms;
  if (slowest > 0) r.tarpit_delay_ms = slowest;

  // Catch-all and greylisting: the random address's RCPT, tried again while it gets 4xx.
  // What was observed is reported: the pass came on the N-th retry, so the server's delay is
  // at most the time since the first 4xx, and more than the last retry still refused.
  std::optional<double> grey_since, grey_last;
  bool rcpt_answered = false;
  for (const auto& c : records) {
    if (!sampled(c)) continue;
    const Exchange* e = first_rcpt(c);
    if (!e || !e->code) continue;
    rcpt_answered = true;
    if (e->code >= 400 && e->code < 500) {
      if (!r.greylisting) {
        r.greylisting = true;
        r.greylist_reply = reply_text(e->code, e->text);
        grey_since = c.at_s;
      }
      grey_last = c.at_s;
      if (c.phase == Phase::Greylist) ++r.greylist_retries;
      continue;
    }
    r.catch_all = e->code >= 200 && e->code < 300;
    r.catch_all_reply = reply_text(e->code, e->text);
    if (grey_since) {
      ++r.greylist_retries;
      r.greylist_delay_s = c.at_s - *grey_since;
      r.greylist_delay_min_s = *grey_last - *grey_since;
    }
    break;
  }
  if (r.greylisting && !r.greylist_delay_s) r.greylist_retries = 0;

  // Connection rate: a refusal outside the concurrency ramp, after connections it accepted.
  // Refused from the very first connection is a block, not a limit.
  for (size_t i = 0; i < records.size(); ++i) {
    const ConnRecord& c = records[i];
    if ((c.phase == Phase::Concurrency && c.open_at_start > 0) || c.accepted()) continue;
    if (i == 0) {
      r.notes.push_back("the server refused our first connection: " + refusal(c));
      break;
    }
    int before = 0;
    double first = c.at_s;
    for (size_t j = 0; j < i; ++j) {
      if (records[j].accepted() && records[j].at_s >= c.at_s - 60) {
        ++before;
        first = std::min(first, records[j].at_s);
      }
    }
    if (before == 0) continue;
    r.rate_limited = true;
    r.rate_refused_after = before;
    r.rate_window_s = c.at_s - first;
    r.rate_refusal = refusal(c);
    for (size_t j = i + 1; j < records.size(); ++j)
      if (records[j].accepted()) {
        r.rate_accepted_again_s = records[j].at_s - c.at_s;
        break;
      }
    break;
  }

  // Concurrency: connections held open one more at a time; the first refused with some of ours
  // held says the limit. A refusal with none of ours open is the rate's business (above): the
  // driver waits it out and starts the ramp again. When the server also limits the rate, a
  // refusal with N held may be the rate's: the driver keeps the N held, waits the rate's
  // window out and tries once more — refused again, it is the concurrency limit; accepted, the
  // ramp goes on.
  int doubted = -1;  // refused with this many held, not yet confirmed
  int since_start = 0;
  bool ramp_ok = false;  // the last ramp's last connection was accepted
  for (const auto& c : records) {
    if (c.phase != Phase::Concurrency) continue;
    if (c.open_at_start == 0) {  // the ramp (re)starts
      since_start = 0;
      doubted = -1;
    }
    ++since_start;
    ramp_ok = c.accepted();
    if (c.accepted()) {
      r.concurrency_tried = since_start;
      if (doubted >= 0 && c.open_at_start >= doubted) doubted = -1;  // the rate's refusal
      continue;
    }
    if (c.open_at_start == 0) continue;
    r.concurrency_tried = since_start;
    if (!r.rate_limited || doubted == c.open_at_start) {
      r.max_concurrent_connections = c.open_at_start;
      r.concurrency_refusal = refusal(c);
      doubted = -1;
      break;
    }
    doubted = c.open_at_start;
  }
  const bool ramp_clean = doubted < 0 && ramp_ok && r.concurrency_tried > 0;
  if (doubted >= 0)
    concurrency_doubt = "refused with " + std::to_string(doubted) +
                        " held, but that may have been the connection-rate limit (not confirmed)";

  // Error limit: bad RCPTs one after another in one session.
  for (const auto& c : records) {
    if (c.phase != Phase::ErrorLimit || !c.accepted()) continue;
    std::vector<const Exchange*> rcpts;
    for (const auto& e : c.exchanges)
      if (e.verb == "RCPT") rcpts.push_back(&e);
    r.bad_rcpts_tried = static_cast<int>(rcpts.size());
    std::vector<double> first;
    for (size_t i = 0; i < rcpts.size() && i < 3; ++i)
      if (rcpts[i]->code) first.push_back(rcpts[i]->ms);
    const double base = first.empty() ? 0 : stat_of(first).p50;
    const double slow = std::max(t.slow_reply_ms, 5 * base);
    int answered = 0;
    for (const Exchange* e : rcpts) {
      if (!e->code) break;
      if (e->code == 421) {  // "closing transmission channel" (RFC 5321 §3.8)
        r.error_disconnect_after = answered;
        r.error_disconnect_reply = reply_text(e->code, e->text);
        break;
      }
      if (!r.error_delay_after && e->ms >= slow) {
        r.error_delay_after = answered;
        r.error_delay_ms = e->ms;
      }
      ++answered;
    }
    if (!r.error_disconnect_after && c.closed_by_server && answered < r.bad_rcpts_tried) {
      r.error_disconnect_after = answered;
      r.error_disconnect_reply = "closed";
    }
    error_measured = true;
    break;
  }

  // What was measured, and why not the rest: a figure without data says so, never "no".
  bool sample_accepted = false, any_accepted = false;
  for (const auto& c : records) {
    any_accepted |= c.accepted();
    sample_accepted |= sampled(c) && c.accepted();
  }
  std::string why;  // for every figure that needed a connection
  if (records.empty())
    why = r.stopped.empty() ? "no connection made" : r.stopped;
  else if (!any_accepted)
    why = "no connection accepted: " + refusal(records.front());
  else
    why = r.stopped.empty() ? "not reached" : r.stopped;
  r.measured.clear();
  r.skipped.clear();
  r.not_measured.clear();
  auto put = [&](const char* figure, bool asked, bool done, const std::string& reason) {
    if (!asked)
      r.skipped.push_back(figure);
    else if (done)
      r.measured.push_back(figure);
    else
      r.not_measured.emplace_back(figure, reason);
  };
  const std::string no_rcpt = sample_accepted ? "the probe RCPT got no answer" : why;
  put("latency", true, sample_accepted, why);
  put("capabilities", true, sample_accepted, why);
  put("catch_all", true, r.catch_all.has_value(),
      r.greylisting && rcpt_answered ? "greylisted, not passed within the wait" : no_rcpt);
  put("greylisting", true, rcpt_answered, no_rcpt);
  put("concurrency", r.ask_concurrency || r.max_concurrent_connections,
      r.max_concurrent_connections.has_value() || ramp_clean,
      concurrency_doubt.empty() ? why : concurrency_doubt);
  put("connection_rate", r.ask_rate || r.rate_limited, r.rate_limited || r.rate_tried_per_s > 0,
      why);
  put("error_limit", r.ask_error_limit, error_measured, why);
  put("tarpit", true, sample_accepted, why);
}

const std::string* Report::why_not_measured(const std::string& figure) const {
  for (const auto& [f, why] : not_measured)
    if (f == figure) return &why;
  return nullptr;
}

namespace {

json opt(const std::optional<double>& v) {
  return v ? json(*v) : json(nullptr);
}
json opt(const std::optional<int>& v) {
  return v ? json(*v) : json(nullptr);
}
json opt(const std::optional<int64_t>& v) {
  return v ? json(*v) : json(nullptr);
}
json opt(const std::optional<bool>& v) {
  return v ? json(*v) : json(nullptr);
}

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

}  // namespace

json to_json(const Report& r) {
  json not_measured = json::object();
  for (const auto& [figure, why] : r.not_measured)
    not_measured[figure] = why;
  json lat = json::object();
  for (const auto& [stage, s] : r.latency)
    lat[stage] = {{"count", s.count},
                  {"min_ms", s.min},
                  {"p50_ms", s.p50},
                  {"p90_ms", s.p90},
                  {"max_ms", s.max}};
  return {{"target", r.target},
          {"host", r.host},
          {"address", r.address},
          {"banner", r.banner},
          {"latency", lat},
          {"capabilities",
           {{"pipelining", r.pipelining},
            {"starttls", r.starttls},
            {"size", r.size},
            {"size_limit", opt(r.size_limit)},
            {"smtputf8", r.smtputf8},
            {"enhancedstatuscodes", r.enhanced_status_codes},
            {"8bitmime", r.eight_bit_mime},
            {"chunking", r.chunking},
            {"ehlo", r.capabilities}}},
          {"catch_all", opt(r.catch_all)},
          {"catch_all_reply", r.catch_all_reply},
          {"greylisting", r.greylisting},
          {"greylisting_delay_s", opt(r.greylist_delay_s)},
          {"greylisting_reply", r.greylist_reply},
          {"greylisting_retries", r.greylist_retries},
          {"greylisting_delay_min_s", opt(r.greylist_delay_min_s)},
          {"max_concurrent_connections", opt(r.max_concurrent_connections)},
          {"concurrent_connections_tried", r.concurrency_tried},
          {"concurrency_refusal", r.concurrency_refusal},
          {"connection_rate_limited", r.rate_limited},
          {"connection_rate_refused_after", opt(r.rate_refused_after)},
          {"connection_rate_window_s", opt(r.rate_window_s)},
          {"connection_rate_per_s", opt(r.rate_per_s)},
          {"connection_rate_tried_per_s", r.rate_tried_per_s},
          {"connection_rate_refusal", r.rate_refusal},
          {"connection_rate_accepted_again_s", opt(r.rate_accepted_again_s)},
          {"error_limit",
           {{"bad_rcpts_tried", r.bad_rcpts_tried},
            {"delay_after", opt(r.error_delay_after)},
            {"delay_ms", opt(r.error_delay_ms)},
            {"disconnect_after", opt(r.error_disconnect_after)},
            {"disconnect_reply", r.error_disconnect_reply}}},
          {"tarpit", r.tarpit},
          {"slowest_reply_ms", opt(r.tarpit_delay_ms)},
          {"connections", r.connections},
          {"duration_s", r.duration_s},
          {"notes", r.notes},
          {"measured", r.measured},
          {"not_measured", not_measured},
          {"skipped", r.skipped}};
}

std::string to_text(const Report& r) {
  std::string o;
  auto line = [&](const std::string& k, const std::string& v) {
    o += k;
    o.append(k.size() < 26 ? 26 - k.size() : 1, ' ');
    o += v;
    o += '\n';
  };
  auto yn = [](bool b) { return std::string(b ? "yes" : "no"); };
  line("server", r.host + " (" + r.address + ")");
  line("greeting", r.banner.empty() ? "-" : r.banner);
  if (const std::string* why = r.why_not_measured("latency"))
    line("latency (ms)", "not measured (" + *why + ")");
  else
    o += "latency (ms)               count     min     p50     p90     max\n";
  for (const auto& [stage, s] : r.latency) {
    char b[160];
    std::snprintf(b, sizeof b, "  %-24s %5zu %7.2f %7.2f %7.2f %7.2f\n", stage.c_str(), s.count,
                  s.min, s.p50, s.p90, s.max);
    o += b;
  }
  std::string caps;
  for (const auto& c : r.capabilities)
    caps += (caps.empty() ? "" : ", ") + c;
  // A figure not measured says so and why; never "no" for what was not seen.
  auto figure = [&](const char* name, const std::string& k, const std::string& v) {
    if (const std::string* why = r.why_not_measured(name))
      line(k, "not measured (" + *why + ")");
    else if (std::find(r.skipped.begin(), r.skipped.end(), name) != r.skipped.end())
      line(k, "not measured (skipped)");
    else
      line(k, v);
  };
  figure("capabilities", "capabilities", caps.empty() ? "-" : caps);
  figure("catch_all", "catch-all",
         r.catch_all ? yn(*r.catch_all) + " (" + r.catch_all_reply + ")" : "unknown");
  std::string grey = "no";
  if (r.greylisting && r.greylist_delay_s) {
    const std::string n = fmt("%.1f", *r.greylist_delay_s);
    grey = "yes (" + r.greylist_reply + "), passed on " +
           (r.greylist_retries <= 1 ? std::string("the first retry")
                                    : "retry " + std::to_string(r.greylist_retries)) +
           ", after " + n + " s; the server's delay is " +
           (r.greylist_delay_min_s.value_or(0) > 0
                ? "between " + fmt("%.1f", *r.greylist_delay_min_s) + " and " + n + " s"
                : "at most " + n + " s");
  } else if (r.greylisting) {
    grey = "yes, not passed within the wait (" + r.greylist_reply + ")";
  }
  figure("greylisting", "greylisting", grey);
  figure("concurrency", "concurrent connections",
         r.max_concurrent_connections
             ? std::to_string(*r.max_concurrent_connections) + " accepted, the next refused (" +
                   r.concurrency_refusal + ")"
             : "all " + std::to_string(r.concurrency_tried) + " tried accepted");
  figure("connection_rate", "connection rate",
         r.rate_limited
             ? "limited: refused after " + std::to_string(r.rate_refused_after.value_or(0)) +
                   " connections in " + fmt("%.2f", r.rate_window_s.value_or(0)) + " s" +
                   (r.rate_per_s ? " (ramp at " + fmt("%g", *r.rate_per_s) + "/s)" : "") + " (" +
                   r.rate_refusal + ")" +
                   (r.rate_accepted_again_s
                        ? ", accepted again after " + fmt("%.1f", *r.rate_accepted_again_s) + " s"
                        : "")
             : "no refusal up to " + fmt("%g", r.rate_tried_per_s) + "/s");
  std::string err = std::to_string(r.bad_rcpts_tried) + " bad RCPTs: ";
  if (r.error_delay_after)
    err += "replies slowed after " + std::to_string(*r.error_delay_after) + " (" +
           fmt("%.0f", r.error_delay_ms.value_or(0)) + " ms)";
  else
    err += "no slow-down";
  if (r.error_disconnect_after)
    err += ", disconnected after " + std::to_string(*r.error_disconnect_after) + " (" +
           r.error_disconnect_reply + ")";
  else
    err += ", no disconnect";
  figure("error_limit", "error limits", err);
  figure("tarpit", "tarpit",
         r.tarpit
             ? "yes: a greeting or reply took " + fmt("%.0f", r.tarpit_delay_ms.value_or(0)) + " ms"
             : "no");
  std::string measured;
  for (const auto& m : r.measured)
    measured += (measured.empty() ? "" : ", ") + m;
  line("measured", measured.empty() ? "nothing" : measured);
  for (const auto& n : r.notes)
    line("note", n);
  line("connections", std::to_string(r.connections) + " in " + fmt("%.1f", r.duration_s) + " s");
  return o;
}

}  // namespace mxp::probe
