#include "pipeline/result.hpp"

#include <charconv>

#include <algorithm>
#include <cstdio>
#include <ctime>

#include <nlohmann/json.hpp>

#include "core/json_out.hpp"

namespace mxp::pipeline {

using namespace std::string_view_literals;

void add_mx_try(Result& r, MxTry t) {
  if (t.message.size() > kMaxTryMessage) {
    size_t n = kMaxTryMessage;
    // Not in the middle of a UTF-8 sequence: back to the start of the character cut through.
    while (n > 0 && (static_cast<unsigned char>(t.message[n]) & 0xC0) == 0x80)
      --n;
    t.message.resize(n);
    t.message += "...";
  }
  auto& v = r.mx_tried;
  t.times = 1;
  auto same = [](const MxTry& a, const MxTry& b) {
    return a.mx == b.mx && a.ip == b.ip && a.stage == b.stage && a.code == b.code &&
           a.enhanced == b.enhanced && a.message == b.message && a.error == b.error &&
           a.source_ip == b.source_ip;
  };
  if (!v.empty() && same(v.back(), t))
    ++v.back().times;
  else
    v.push_back(std::move(t));
  size_t total = 0;
  for (const auto& x : v)
    total += x.times;
  for (; total > kMaxMxTried; --total) {
    // The oldest try but the first: a repeat of the first, else the second entry's first try.
    if (v[0].times > 1)
      --v[0].times;
    else if (v[1].times > 1)
      --v[1].times;
    else
      v.erase(v.begin() + 1);
  }
}

void append_mx_tried(const std::vector<MxTry>& tried, std::string& out) {
  out.push_back('[');
  bool first = true;
  for (const MxTry& t : tried)
    for (uint32_t n = 0; n < t.times; ++n) {
      out.append(first ? "{\"mx\":" : ",{\"mx\":");
      first = false;
      json::append_string(out, t.mx);
      out.append(",\"ip\":"sv);
      json::append_string_or_null(out, t.ip);
      out.append(",\"stage\":"sv);
      json::append_string_or_null(out, t.stage);
      out.append(",\"code\":"sv);
      if (t.code)
        json::append_uint(out, static_cast<uint64_t>(t.code));
      else
        out.append("null"sv);
      out.append(",\"enhanced\":"sv);
      json::append_string_or_null(out, t.enhanced);
      out.append(",\"message\":"sv);
      if (t.code)
        json::append_string(out, t.message);
      else
        out.append("null"sv);
      out.append(",\"error\":"sv);
      json::append_string_or_null(out, t.error);
      out.append(",\"source_ip\":"sv);
      json::append_string_or_null(out, t.source_ip);
      out.push_back('}');
    }
  out.push_back(']');
}

namespace {
// What a try said about the mailbox: +1 it took the address at RCPT, -1 it refused it as unknown
// or disabled (RFC 3463 X.1.x, X.2.1), 0 nothing (a temporary answer, a block, no reply).
int judgement(const MxTry& t) {
  if (t.stage != "rcpt_to") return 0;
  if (t.code >= 200 && t.code < 300) return 1;
  if (t.code >= 500 && (t.enhanced.rfind("5.1.", 0) == 0 || t.enhanced == "5.2.1")) return -1;
  return 0;
}
}  // namespace

MxAgreement mx_agreement(const Result& r) {
  MxAgreement a;
  if (r.mx_tried.empty()) return a;
  const MxTry& decided = r.mx_tried.back();
  const int said = judgement(decided);
  if (said == 0) return a;
  std::vector<std::string_view> seen{decided.mx};
  for (size_t i = r.mx_tried.size() - 1; i-- > 0;) {
    const MxTry& t = r.mx_tried[i];
    const int j = judgement(t);
    if (j == 0 || std::find(seen.begin(), seen.end(), t.mx) != seen.end()) continue;
    seen.push_back(t.mx);
    if (j == said)
      ++a.agreed;
    else
      ++a.disagreed;
  }
  return a;
}

verdict::ScoreEvidence score_evidence(const Result& r, std::chrono::system_clock::time_point now) {
  verdict::ScoreEvidence e;
  e.verdict = r.verdict;
  e.reason = r.reason;
  e.catch_all = r.catch_all;
  e.role = r.role;
  e.disposable = r.disposable;
  e.free = r.free;
  e.tls = !r.tls_version.empty();
  e.greylist_cleared = r.greylisted && r.reason != Reason::Greylisted;
  const MxAgreement a = mx_agreement(r);
  e.mx_agreed = a.agreed;
  e.mx_disagreed = a.disagreed;
  if (r.cached)
    e.age = std::max(std::chrono::seconds(0),
                     std::chrono::duration_cast<std::chrono::seconds>(now - r.checked_at));
  return e;
}

Derived derive(const Result& r, std::chrono::system_clock::time_point now) {
  Derived d;
  if (!r.normalized.empty()) d.forms = address::forms(r.normalized);
  d.score = verdict::score(score_evidence(r, now));
  return d;
}

void set_domain_flags(Result& r, const flags::DomainFlags& f, std::string_view normalized) {
  r.disposable = f.disposable;
  r.free = f.free;
  r.suggestion.clear();
  const size_t at = normalized.rfind('@');
  if (!f.suggestion.empty() && at != std::string_view::npos)
    r.suggestion.append(normalized.substr(0, at + 1)).append(f.suggestion);
}

void append_iso8601(std::string& out, std::chrono::system_clock::time_point t) {
  // Records come by the thousand per second: the text of the last second is kept (per thread:
  // the store's writer formats too) instead of a gmtime_r and strftime per record.
  thread_local std::time_t last = -1;
  thread_local char text[24];
  thread_local size_t len = 0;
  const std::time_t tt = std::chrono::system_clock::to_time_t(t);
  if (tt != last) {
    std::tm tm{};
    gmtime_r(&tt, &tm);
    len = std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
    last = tt;
  }
  out.append(text, len);
}

void append_fixed1(std::string& out, double v) {
  // printf's "%.1f", without printf's parsing and locale work (std::to_chars rounds the same).
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed, 1);
  if (ec != std::errc()) return out.append("0.0"sv), void();
  out.append(buf, end);
}

std::string iso8601(std::chrono::system_clock::time_point t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::optional<std::chrono::system_clock::time_point> parse_iso8601(std::string_view s) {
  std::tm tm{};
  if (s.size() != 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
      s[16] != ':' || s[19] != 'Z')
    return std::nullopt;
  auto num = [&](size_t at, size_t len, int& v) {
    v = 0;
    for (size_t i = at; i < at + len; ++i) {
      if (s[i] < '0' || s[i] > '9') return false;
      v = v * 10 + (s[i] - '0');
    }
    return true;
  };
  int y, mo, d, h, mi, se;
  if (!num(0, 4, y) || !num(5, 2, mo) || !num(8, 2, d) || !num(11, 2, h) || !num(14, 2, mi) ||
      !num(17, 2, se))
    return std::nullopt;
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = se;
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

core::Expected<Result, std::string> parse_json(std::string_view text) {
  using nlohmann::json;
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return core::unexpected("not a JSON object");
  auto str = [&](const char* k) -> std::string {
    auto it = j.find(k);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  auto opt_bool = [](const json& v) -> std::optional<bool> {
    return v.is_boolean() ? std::optional<bool>(v.get<bool>()) : std::nullopt;
  };
  auto verdict = parse_verdict(str("verdict"));
  auto reason = parse_reason(str("reason"));
  auto when = parse_iso8601(str("checked_at"));
  if (!verdict || !reason || !when || !j.contains("line") || !j["line"].is_number_unsigned())
    return core::unexpected("not an mxprobe record (line, verdict, reason, checked_at)");
  Result r;
  r.line = j["line"].get<uint64_t>();
  r.email = str("email");
  r.normalized = str("normalized");
  r.verdict = *verdict;
  r.reason = *reason;
  r.domain = str("domain");
  r.mx = str("mx");
  r.mx_ip = str("mx_ip");
  r.provider = str("provider");
  // The score is written anew from the record; only the greylisting it saw is read from it.
  if (auto it = j.find("score_factors"); it != j.end() && it->is_array())
    for (const auto& f : *it)
      if (f.is_object() && f.value("factor", "") == "greylisting_cleared") r.greylisted = true;
  if (auto it = j.find("smtp"); it != j.end() && it->is_object()) {
    r.has_smtp = true;
    r.code = it->value("code", 0);
    if (auto e = it->find("enhanced"); e != it->end() && e->is_string()) r.enhanced = *e;
    if (auto m = it->find("message"); m != it->end() && m->is_string()) r.message = *m;
  }
  if (auto it = j.find("tls"); it != j.end() && it->is_object()) {
    if (auto v = it->find("version"); v != it->end() && v->is_string()) r.tls_version = *v;
    if (auto c = it->find("cipher"); c != it->end() && c->is_string()) r.tls_cipher = *c;
  }
  if (auto it = j.find("catch_all"); it != j.end()) r.catch_all = opt_bool(*it);
  if (auto it = j.find("flags"); it != j.end() && it->is_object()) {
    if (it->contains("role")) r.role = opt_bool((*it)["role"]);
    if (it->contains("disposable")) r.disposable = opt_bool((*it)["disposable"]);
    if (it->contains("free")) r.free = opt_bool((*it)["free"]);
  }
  r.suggestion = str("suggestion");
  if (auto it = j.find("attempts"); it != j.end() && it->is_number_unsigned())
    r.attempts = it->get<uint32_t>();
  r.source_ip = str("source_ip");
  r.proxy = str("proxy");
  r.helo = str("helo");
  if (auto it = j.find("elapsed_ms"); it != j.end() && it->is_number()) r.elapsed_ms = *it;
  r.mail_from = str("mail_from");
  r.error = str("error");
  r.checked_at = *when;
  if (auto it = j.find("cached"); it != j.end() && it->is_boolean()) r.cached = *it;
  r.transcript = str("transcript");
  if (auto it = j.find("retry_after"); it != j.end() && it->is_string())
    r.retry_after = parse_iso8601(it->get<std::string>());
  if (auto it = j.find("mx_tried"); it != j.end() && it->is_array()) {
    auto field = [](const json& o, const char* k) -> std::string {
      auto f = o.find(k);
      return f != o.end() && f->is_string() ? f->get<std::string>() : std::string();
    };
    for (const auto& t : *it) {
      if (!t.is_object()) continue;
      MxTry m;
      m.mx = field(t, "mx");
      m.ip = field(t, "ip");
      m.stage = field(t, "stage");
      if (auto c = t.find("code"); c != t.end() && c->is_number_unsigned()) m.code = c->get<int>();
      m.enhanced = field(t, "enhanced");
      m.message = field(t, "message");
      m.error = field(t, "error");
      m.source_ip = field(t, "source_ip");
      add_mx_try(r, std::move(m));
    }
  }
  return r;
}

void append_json(const Result& r, std::string& out, bool with_transcript) {
  const Derived d = derive(r, std::chrono::system_clock::now());
  out.append("{\"line\":"sv);
  json::append_uint(out, r.line);
  out.append(",\"email\":"sv);
  json::append_string(out, r.email);
  out.append(",\"normalized\":"sv);
  json::append_string_or_null(out, r.normalized);
  out.append(",\"tag\":"sv);
  if (d.forms.has_tag)
    json::append_string(out, d.forms.tag);
  else
    out.append("null"sv);
  out.append(",\"base\":"sv);
  json::append_string_or_null(out, d.forms.base);
  out.append(",\"canonical\":"sv);
  json::append_string_or_null(out, d.forms.canonical);
  out.append(",\"verdict\":\""sv);
  out.append(to_string(r.verdict));
  out.append("\",\"reason\":\""sv);
  out.append(to_string(r.reason));
  out.append("\",\"score\":"sv);
  json::append_uint(out, static_cast<uint64_t>(d.score.score));
  out.append(",\"score_factors\":["sv);
  for (size_t i = 0; i < d.score.factors.size(); ++i) {
    out.append(i ? ",{\"factor\":" : "{\"factor\":");
    json::append_string(out, d.score.factors[i].factor);
    out.append(",\"effect\":"sv);
    out.append(std::to_string(d.score.factors[i].effect));
    out.append("}"sv);
  }
  out.append("],\"retry_after\":"sv);
  if (r.retry_after) {
    out.push_back('"');
    out.append(iso8601(*r.retry_after));
    out.push_back('"');
  } else {
    out.append("null"sv);
  }
  out.append(",\"domain\":"sv);
  json::append_string_or_null(out, r.domain);
  out.append(",\"mx\":"sv);
  json::append_string_or_null(out, r.mx);
  out.append(",\"mx_ip\":"sv);
  json::append_string_or_null(out, r.mx_ip);
  out.append(",\"provider\":"sv);
  json::append_string_or_null(out, r.provider);
  out.append(",\"mx_tried\":"sv);
  append_mx_tried(r.mx_tried, out);
  out.append(",\"smtp\":"sv);
  if (r.has_smtp) {
    out.append("{\"code\":"sv);
    json::append_uint(out, static_cast<uint64_t>(r.code));
    out.append(",\"enhanced\":"sv);
    json::append_string_or_null(out, r.enhanced);
    out.append(",\"message\":"sv);
    json::append_string(out, r.message);
    out.append("}"sv);
  } else {
    out.append("null"sv);
  }
  out.append(",\"tls\":"sv);
  if (!r.tls_version.empty()) {
    out.append("{\"version\":"sv);
    json::append_string(out, r.tls_version);
    out.append(",\"cipher\":"sv);
    json::append_string_or_null(out, r.tls_cipher);
    out.append("}"sv);
  } else {
    out.append("null"sv);
  }
  out.append(",\"catch_all\":"sv);
  json::append_bool_or_null(out, r.catch_all);
  out.append(",\"flags\":{\"role\":"sv);
  json::append_bool_or_null(out, r.role);
  out.append(",\"disposable\":"sv);
  json::append_bool_or_null(out, r.disposable);
  out.append(",\"free\":"sv);
  json::append_bool_or_null(out, r.free);
  out.append("},\"suggestion\":"sv);
  json::append_string_or_null(out, r.suggestion);
  out.append(",\"attempts\":"sv);
  json::append_uint(out, r.attempts);
  out.append(",\"source_ip\":"sv);
  json::append_string_or_null(out, r.source_ip);
  out.append(",\"helo\":"sv);
  json::append_string_or_null(out, r.helo);
  out.append(",\"proxy\":"sv);
  json::append_string_or_null(out, r.proxy);
  out.append(",\"elapsed_ms\":"sv);
  append_fixed1(out, r.elapsed_ms);
  out.append(",\"mail_from\":"sv);
  json::append_string_or_null(out, r.mail_from);
  out.append(",\"error\":"sv);
  json::append_string_or_null(out, r.error);
  out.append(",\"checked_at\":\""sv);
  append_iso8601(out, r.checked_at);
  out.append(r.cached ? "\",\"cached\":true" : "\",\"cached\":false");
  if (with_transcript) {
    out.append(",\"transcript\":"sv);
    json::append_string(out, r.transcript);
  }
  out.append("}\n"sv);
}

}  // namespace mxp::pipeline
