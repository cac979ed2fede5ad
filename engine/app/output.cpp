#include "app/output.hpp"

#include <csv.h>

#include <algorithm>
#include <cstdio>
#include <set>

#include "core/strings.hpp"

namespace mxp::app {

using pipeline::Result;

const std::vector<std::string_view>& RecordFormatter::columns() {
  // clang-format off
  static const std::vector<std::string_view> kColumns = {
      "line",         "email",      "normalized", "verdict",     "reason",
      "domain",       "mx",         "mx_ip",      "smtp_code",   "smtp_enhanced",
      "smtp_message", "catch_all",  "role",       "disposable",  "free",
      "suggestion",   "attempts",   "source_ip",  "proxy",       "elapsed_ms",
      "error",        "checked_at", "cached",     "tls_version", "tls_cipher",
      // New columns go at the end (helo came after tls_cipher, provider after mail_from), so
      // that consumers of the columns before them keep working.
      "helo", "mail_from", "provider", "tag", "base", "canonical", "score", "score_factors",
      // mx_tried: the record's JSON array as one field ("" when no server was tried).
      "mx_tried", "retry_after"};
  // clang-format on
  return kColumns;
}

std::vector<std::string> RecordFormatter::split_csv_line(std::string_view line,
                                                         unsigned char delimiter) {
  std::vector<std::string> fields;
  csv_parser p;
  if (csv_init(&p, CSV_APPEND_NULL) != 0) return fields;
  csv_set_delim(&p, delimiter);
  auto on_field = [](void* s, size_t len, void* self) {
    static_cast<std::vector<std::string>*>(self)->emplace_back(static_cast<char*>(s), len);
  };
  csv_parse(&p, line.data(), line.size(), on_field, nullptr, &fields);
  csv_fini(&p, on_field, nullptr, &fields);
  csv_free(&p);
  return fields;
}

void RecordFormatter::set_input_header(std::string_view header, unsigned char delimiter) {
  if (format_ != OutputFormat::Csv) return;
  keep_ = true;
  input_header_.assign(header);
  delim_ = delimiter;
  std::set<std::string> theirs;
  auto names = split_csv_line(header, delimiter);
  input_columns_ = std::max<size_t>(1, names.size());
  for (auto& f : names) {
    f = core::lower(f);
    theirs.insert(f);
  }
  our_names_.clear();
  for (auto c : columns()) {
    std::string name(c);
    if (theirs.count(name)) name = "mxprobe_" + name;
    our_names_.push_back(std::move(name));
  }
}

void RecordFormatter::field(std::string& out, std::string_view v, bool first) const {
  if (!first) out.push_back(static_cast<char>(delim_));
  const char special[] = {static_cast<char>(delim_), '"', '\r', '\n', '\0'};
  if (v.find_first_of(special) == std::string_view::npos) {
    out.append(v);
    return;
  }
  // RFC 4180 quoting through libcsv's writer (doubles inner quotes).
  std::string buf(v.size() * 2 + 2, '\0');
  size_t n = csv_write(buf.data(), buf.size(), v.data(), v.size());
  out.append(buf.data(), n);
}

std::string RecordFormatter::header() const {
  if (format_ != OutputFormat::Csv) return {};
  std::string out;
  if (keep_) {
    out = input_header_;
    for (const auto& n : our_names_)
      field(out, n, false);
  } else {
    bool first = true;
    for (auto n : columns()) {
      field(out, n, first);
      first = false;
    }
  }
  out.append("\r\n");
  return out;
}

namespace {
std::string_view opt_bool(std::optional<bool> b) {
  return !b ? "" : *b ? "true" : "false";
}
}  // namespace

void RecordFormatter::append(const Result& r, std::string_view raw, std::string& out) const {
  if (format_ == OutputFormat::Jsonl) {
    pipeline::append_json(r, out, transcripts_);
    return;
  }
  bool first = true;
  if (keep_) {
    if (raw.empty())  // a record that could not be kept (too long): empty user fields
      out.append(input_columns_ - 1, static_cast<char>(delim_));
    else
      out.append(raw);
    first = false;
  }
  char num[64];
  field(out, std::to_string(r.line), first);
  field(out, r.email, false);
  field(out, r.normalized, false);
  field(out, to_string(r.verdict), false);
  field(out, to_string(r.reason), false);
  field(out, r.domain, false);
  field(out, r.mx, false);
  field(out, r.mx_ip, false);
  field(out, r.has_smtp ? std::to_string(r.code) : "", false);
  field(out, r.enhanced, false);
  field(out, r.has_smtp ? r.message : "", false);
  field(out, opt_bool(r.catch_all), false);
  field(out, opt_bool(r.role), false);
  field(out, opt_bool(r.disposable), false);
  field(out, opt_bool(r.free), false);
  field(out, r.suggestion, false);
  field(out, std::to_string(r.attempts), false);
  field(out, r.source_ip, false);
  field(out, r.proxy, false);
  std::snprintf(num, sizeof num, "%.1f", r.elapsed_ms);
  field(out, num, false);
  field(out, r.error, false);
  field(out, pipeline::iso8601(r.checked_at), false);
  field(out, r.cached ? "true" : "false", false);
  field(out, r.tls_version, false);
  field(out, r.tls_cipher, false);
  field(out, r.helo, false);
  field(out, r.mail_from, false);
  const pipeline::Derived d = pipeline::derive(r, std::chrono::system_clock::now());
  field(out, r.provider, false);
  field(out, d.forms.tag, false);
  field(out, d.forms.base, false);
  field(out, d.forms.canonical, false);
  field(out, std::to_string(d.score.score), false);
  field(out, verdict::factors_string(d.score.factors), false);
  std::string tried;
  if (!r.mx_tried.empty()) pipeline::append_mx_tried(r.mx_tried, tried);
  field(out, tried, false);
  field(out, r.retry_after ? pipeline::iso8601(*r.retry_after) : std::string(), false);
  out.append("\r\n");
}

}  // namespace mxp::app
