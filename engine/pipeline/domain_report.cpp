#include "pipeline/domain_report.hpp"

#include <cstdio>

#include "core/json_out.hpp"
#include "pipeline/result.hpp"

namespace mxp::pipeline {

void append_json(const DomainReport& r, std::string& out) {
  out.append("{\"domain\":");
  json::append_string(out, r.domain);
  out.append(",\"mail\":");
  json::append_string(out, r.mail);
  out.append(",\"mx\":[");
  for (size_t i = 0; i < r.mx.size(); ++i) {
    out.append(i ? ",{\"host\":" : "{\"host\":");
    json::append_string(out, r.mx[i].host);
    out.append(",\"preference\":");
    json::append_uint(out, r.mx[i].preference);
    out.append(",\"addresses\":[");
    for (size_t j = 0; j < r.mx[i].addresses.size(); ++j) {
      if (j) out.push_back(',');
      json::append_string(out, r.mx[i].addresses[j]);
    }
    out.append("]}");
  }
  out.append("],\"implicit_mx\":");
  out.append(r.implicit_mx ? "true" : "false");
  out.append(",\"null_mx\":");
  out.append(r.null_mx ? "true" : "false");
  out.append(",\"provider\":");
  json::append_string_or_null(out, r.provider);
  out.append(",\"accepts_mail\":");
  json::append_bool_or_null(out, r.accepts_mail);
  out.append(",\"catch_all\":");
  json::append_bool_or_null(out, r.catch_all);
  out.append(",\"catch_all_cached\":");
  out.append(r.catch_all_cached ? "true" : "false");
  out.append(",\"starttls\":");
  json::append_bool_or_null(out, r.starttls);
  out.append(",\"tls\":");
  if (r.tls_version.empty()) {
    out.append("null");
  } else {
    out.append("{\"version\":");
    json::append_string(out, r.tls_version);
    out.append(",\"cipher\":");
    json::append_string(out, r.tls_cipher);
    out.append("}");
  }
  out.append(",\"disposable\":");
  json::append_bool_or_null(out, r.disposable);
  out.append(",\"free\":");
  json::append_bool_or_null(out, r.free);
  out.append(",\"mx_reached\":");
  json::append_string_or_null(out, r.mx_reached);
  out.append(",\"mx_ip\":");
  json::append_string_or_null(out, r.mx_ip);
  out.append(",\"banner\":");
  json::append_string_or_null(out, r.banner);
  out.append(",\"rcpt\":");
  json::append_string_or_null(out, r.rcpt);
  out.append(",\"verdict\":\"");
  out.append(to_string(r.verdict));
  out.append("\",\"reason\":\"");
  out.append(to_string(r.reason));
  out.append("\",\"smtp\":");
  if (!r.has_smtp) {
    out.append("null");
  } else {
    out.append("{\"code\":");
    json::append_uint(out, static_cast<uint64_t>(r.code));
    out.append(",\"enhanced\":");
    json::append_string_or_null(out, r.enhanced);
    out.append(",\"message\":");
    json::append_string(out, r.message);
    out.append("}");
  }
  out.append(",\"error\":");
  json::append_string_or_null(out, r.error);
  char ms[32];
  std::snprintf(ms, sizeof ms, "%.1f", r.elapsed_ms);
  out.append(",\"elapsed_ms\":");
  out.append(ms);
  out.append(",\"checked_at\":");
  json::append_string(out, iso8601(r.checked_at));
  out.append("}\n");
}

}  // namespace mxp::pipeline
