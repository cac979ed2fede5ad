#include "pipeline/result.hpp"

#include <cstdio>
#include <ctime>

#include "core/json_out.hpp"

namespace mxp::pipeline {
namespace {

void str_or_null(std::string& out, const std::string& s) {
  if (s.empty())
    out.append("null");
  else
    json::append_string(out, s);
}

void opt_bool(std::string& out, std::optional<bool> b) {
  out.append(!b ? "null" : *b ? "true" : "false");
}

}  // namespace

std::string iso8601(std::chrono::system_clock::time_point t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

void append_json(const Result& r, std::string& out, bool with_transcript) {
  out.append("{\"line\":");
  json::append_uint(out, r.line);
  out.append(",\"email\":");
  json::append_string(out, r.email);
  out.append(",\"normalized\":");
  str_or_null(out, r.normalized);
  out.append(",\"verdict\":\"");
  out.append(to_string(r.verdict));
  out.append("\",\"reason\":\"");
  out.append(to_string(r.reason));
  out.append("\",\"domain\":");
  str_or_null(out, r.domain);
  out.append(",\"mx\":");
  str_or_null(out, r.mx);
  out.append(",\"mx_ip\":");
  str_or_null(out, r.mx_ip);
  out.append(",\"smtp\":");
  if (r.has_smtp) {
    out.append("{\"code\":");
    json::append_uint(out, static_cast<uint64_t>(r.code));
    out.append(",\"enhanced\":");
    str_or_null(out, r.enhanced);
    out.append(",\"message\":");
    json::append_string(out, r.message);
    out.append("}");
  } else {
    out.append("null");
  }
  out.append(",\"catch_all\":");
  opt_bool(out, r.catch_all);
  out.append(",\"flags\":{\"role\":");
  opt_bool(out, r.role);
  // disposable/free: not evaluated yet (null), see docs/verdicts.md.
  out.append(",\"disposable\":null,\"free\":null},\"attempts\":");
  json::append_uint(out, r.attempts);
  out.append(",\"source_ip\":");
  str_or_null(out, r.source_ip);
  char buf[48];
  std::snprintf(buf, sizeof buf, ",\"elapsed_ms\":%.1f", r.elapsed_ms);
  out.append(buf);
  out.append(",\"error\":");
  str_or_null(out, r.error);
  out.append(",\"checked_at\":\"");
  out.append(iso8601(r.checked_at));
  out.append("\"");
  if (with_transcript) {
    out.append(",\"transcript\":");
    json::append_string(out, r.transcript);
  }
  out.append("}\n");
}

}  // namespace mxp::pipeline
