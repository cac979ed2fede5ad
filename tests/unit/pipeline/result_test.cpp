// The result record (docs/records.md): every field present, null where it does not apply.
#include "pipeline/result.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>

#include <nlohmann/json.hpp>

namespace mxp::pipeline {
namespace {

nlohmann::json to_json(const Result& r, bool transcript = false) {
  std::string out;
  append_json(r, out, transcript);
  EXPECT_EQ(out.back(), '\n');
  EXPECT_EQ(out.find('\n'), out.size() - 1);
  return nlohmann::json::parse(out);
}

const char* kFields[] = {"line",          "email",      "normalized", "verdict",    "reason",
                         "domain",        "mx",         "mx_ip",      "smtp",       "catch_all",
                         "flags",         "suggestion", "attempts",   "source_ip",  "proxy",
                         "elapsed_ms",    "error",      "checked_at", "cached",     "tls",
                         "mail_from",     "tag",        "base",       "canonical",  "score",
                         "score_factors", "provider",   "mx_tried",   "retry_after"};

TEST(ResultJson, DeliverableRecordHasTheSchema) {
  Result r;
  r.line = 12;
  r.email = "Alice@Known.Example";
  r.normalized = "Alice@known.example";
  r.verdict = Verdict::Deliverable;
  r.reason = Reason::Accepted;
  r.domain = "known.example";
  r.mx = "mx1.known.example";
  r.mx_ip = "192.0.2.10";
  r.has_smtp = true;
  r.code = 250;
  r.enhanced = "2.1.5";
  r.message = "Ok";
  r.catch_all = false;
  r.role = false;
  r.attempts = 1;
  r.source_ip = "198.51.100.7";
  r.elapsed_ms = 183.25;
  r.checked_at = std::chrono::system_clock::from_time_t(1795811467);  // 2026-11-27T20:31:07Z
  auto j = to_json(r);
  for (const char* f : kFields)
    EXPECT_TRUE(j.contains(f)) << f;
  EXPECT_EQ(j["verdict"], "deliverable");
  EXPECT_EQ(j["reason"], "accepted");
  EXPECT_EQ(j["smtp"]["code"], 250);
  EXPECT_EQ(j["smtp"]["enhanced"], "2.1.5");
  EXPECT_EQ(j["smtp"]["message"], "Ok");
  EXPECT_EQ(j["catch_all"], false);
  EXPECT_EQ(j["flags"]["role"], false);
  EXPECT_TRUE(j["flags"]["disposable"].is_null());  // no domain data given
  EXPECT_TRUE(j["flags"]["free"].is_null());
  EXPECT_TRUE(j["suggestion"].is_null());
  EXPECT_EQ(j["elapsed_ms"], 183.2);  // one decimal
  EXPECT_EQ(j["checked_at"], "2026-11-27T20:31:07Z");
  EXPECT_EQ(j["cached"], false);
  EXPECT_TRUE(j["tls"].is_null());  // no STARTTLS in this session
  EXPECT_FALSE(j.contains("transcript"));
}

TEST(ResultJson, TlsVersionAndCipher) {
  Result r;
  r.line = 1;
  r.verdict = Verdict::Deliverable;
  r.reason = Reason::Accepted;
  r.tls_version = "TLSv1.3";
  r.tls_cipher = "TLS_AES_256_GCM_SHA384";
  auto j = to_json(r);
  EXPECT_EQ(j["tls"]["version"], "TLSv1.3");
  EXPECT_EQ(j["tls"]["cipher"], "TLS_AES_256_GCM_SHA384");
  std::string a, b;
  append_json(r, a);
  auto parsed = parse_json(a);
  ASSERT_TRUE(parsed) << parsed.error();
  const Result& back = *parsed;
  EXPECT_EQ(back.tls_version, "TLSv1.3");
  EXPECT_EQ(back.tls_cipher, "TLS_AES_256_GCM_SHA384");
  append_json(back, b);
  EXPECT_EQ(a, b);
}

TEST(ResultJson, HeloBesideSourceIp) {
  Result r;
  r.line = 1;
  r.source_ip = "192.0.2.10";
  r.helo = "probe1.example.test";
  auto j = to_json(r);
  EXPECT_EQ(j["helo"], "probe1.example.test");
  std::string a;
  append_json(r, a);
  EXPECT_NE(a.find("\"source_ip\":\"192.0.2.10\",\"helo\":\"probe1.example.test\""),
            std::string::npos)
      << a;
  auto back = parse_json(a);
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(back->helo, "probe1.example.test");
  r.helo.clear();
  EXPECT_TRUE(to_json(r)["helo"].is_null());  // no session decided
}

TEST(ResultJson, RecordsReadBackAsWritten) {
  Result r;
  r.line = 7;
  r.email = "Bob@Ex.test";
  r.normalized = "Bob@ex.test";
  r.verdict = Verdict::Risky;
  r.reason = Reason::CatchAll;
  r.domain = "ex.test";
  r.mx = "mx.ex.test";
  r.mx_ip = "192.0.2.1";
  r.has_smtp = true;
  r.code = 250;
  r.message = "ok \"quoted\"";
  r.catch_all = true;
  r.role = false;
  r.attempts = 3;
  r.proxy = "socks5://192.0.2.9:1080";
  r.mail_from = "<>";
  r.elapsed_ms = 12.5;
  r.cached = true;
  r.transcript = "C: RCPT\nS: 250\n";
  r.checked_at = std::chrono::system_clock::from_time_t(1795811467);
  r.disposable = false;
  r.free = true;
  r.suggestion = "Bob@gmail.com";
  std::string a, b;
  append_json(r, a, true);
  auto parsed = parse_json(a);
  ASSERT_TRUE(parsed) << parsed.error();
  const Result& back = *parsed;
  append_json(back, b, true);
  EXPECT_EQ(a, b);
  EXPECT_TRUE(back.cached);
  EXPECT_EQ(back.proxy, "socks5://192.0.2.9:1080");
  EXPECT_EQ(back.mail_from, "<>");
  EXPECT_EQ(back.checked_at, r.checked_at);
  EXPECT_EQ(back.disposable, std::optional<bool>(false));
  EXPECT_EQ(back.free, std::optional<bool>(true));
  EXPECT_EQ(back.suggestion, "Bob@gmail.com");
  auto partial = parse_json("{\"line\":1}");
  ASSERT_FALSE(partial);
  EXPECT_EQ(partial.error(), "not an mxprobe record (line, verdict, reason, checked_at)");
  auto garbage = parse_json("not json");
  ASSERT_FALSE(garbage);
  EXPECT_EQ(garbage.error(), "not a JSON object");
  EXPECT_FALSE(parse_iso8601("2026-11-27 20:31:07Z"));
}

// The record's time and elapsed_ms are written without strftime and printf per record: the
// same text as those, whatever order the seconds come in (the last second's text is kept).
TEST(ResultJson, TimeAndElapsedTextsAreStrftimeAndPrintfs) {
  using std::chrono::seconds;
  using std::chrono::system_clock;
  const system_clock::time_point base{seconds(1'796'500'000)};
  for (const auto t : {base, base, base + seconds(1), base, base + std::chrono::milliseconds(999),
                       base + seconds(86'400 * 400)}) {
    std::string out = "x";
    append_iso8601(out, t);
    EXPECT_EQ(out, "x" + iso8601(t));
  }
  for (double v : {0.0, 0.04, 0.05, 0.15, 1.25, 109.55, 2.0 / 3, 123456.789, 1e9, -0.5}) {
    char want[64];
    std::snprintf(want, sizeof want, "%.1f", v);
    std::string out;
    append_fixed1(out, v);
    EXPECT_EQ(out, want) << v;
  }
}

TEST(ResultJson, NotApplicableFieldsAreNullNeverMissing) {
  Result r;
  r.line = 3;
  r.email = "x@nx.example";
  r.normalized = "x@nx.example";
  r.verdict = Verdict::Undeliverable;
  r.reason = Reason::NoSuchDomain;
  r.domain = "nx.example";
  auto j = to_json(r);
  for (const char* f : kFields)
    EXPECT_TRUE(j.contains(f)) << f;
  for (const char* f : {"mx", "mx_ip", "smtp", "catch_all", "source_ip", "proxy", "error",
                        "suggestion", "tls", "mail_from"})
    EXPECT_TRUE(j[f].is_null()) << f;
  for (const char* f : {"role", "disposable", "free"})
    EXPECT_TRUE(j["flags"][f].is_null()) << f;
}

TEST(ResultJson, DomainFlagsAndSuggestion) {
  Result r;
  flags::DomainFlags f;
  f.disposable = true;
  f.free = false;
  f.suggestion = "gmail.com";
  set_domain_flags(r, f, "\"a b\"@gmial.com");
  EXPECT_EQ(r.disposable, std::optional<bool>(true));
  EXPECT_EQ(r.free, std::optional<bool>(false));
  EXPECT_EQ(r.suggestion, "\"a b\"@gmail.com");  // the normalized local part, quoted as it was
  auto j = to_json(r);
  EXPECT_EQ(j["flags"]["disposable"], true);
  EXPECT_EQ(j["flags"]["free"], false);
  EXPECT_EQ(j["suggestion"], "\"a b\"@gmail.com");
  set_domain_flags(r, flags::DomainFlags{}, "a@b.test");  // no data: null again
  EXPECT_FALSE(r.disposable.has_value());
  EXPECT_FALSE(r.free.has_value());
  EXPECT_EQ(r.suggestion, "");
}

TEST(ResultJson, HostileTextStaysOneValidLine) {
  Result r;
  r.email = std::string("a\r\nDATA\0\xff", 9);
  r.has_smtp = true;
  r.code = 550;
  r.message = "line one\r\n550 line two \"quoted\"";
  r.transcript = "C: EHLO x\nS: 250 ok\n";
  auto j = to_json(r, true);
  EXPECT_EQ(j["smtp"]["message"], "line one\r\n550 line two \"quoted\"");
  EXPECT_EQ(j["transcript"], "C: EHLO x\nS: 250 ok\n");
  EXPECT_TRUE(j["smtp"]["enhanced"].is_null());
}

// Issue 21's fields: provider kept and read back; tag, base, canonical and the score written
// from the other fields; the score's factors in JSON as {factor, effect}.
TEST(ResultJson, ProviderAddressFormsAndScore) {
  Result r;
  r.line = 1;
  r.email = r.normalized = "John.Smith+News@gmail.com";
  r.domain = "gmail.com";
  r.mx = "gmail-smtp-in.l.google.com";
  r.provider = "gmail";
  r.verdict = Verdict::Deliverable;
  r.reason = Reason::Accepted;
  r.catch_all = false;
  r.tls_version = "TLSv1.3";
  r.greylisted = true;  // greylisted first, then accepted
  r.checked_at = std::chrono::system_clock::now();
  auto j = to_json(r);
  EXPECT_EQ(j["provider"], "gmail");
  EXPECT_EQ(j["tag"], "News");
  EXPECT_EQ(j["base"], "John.Smith@gmail.com");
  EXPECT_EQ(j["canonical"], "johnsmith@gmail.com");
  EXPECT_EQ(j["score"], 99);
  EXPECT_EQ(j["score_factors"], nlohmann::json::parse(R"([{"factor":"accepted","effect":90},
              {"factor":"catch_all_rejected","effect":5},{"factor":"greylisting_cleared","effect":2},
              {"factor":"starttls","effect":2}])"));
  std::string a, b;
  append_json(r, a);
  auto back = parse_json(a);
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(back->provider, "gmail");
  EXPECT_TRUE(back->greylisted);  // read back from its factor
  append_json(*back, b);
  EXPECT_EQ(a, b);
  // No tag: null; base is the address itself; not Gmail: no canonical form.
  r.normalized = "john.smith@example.org";
  r.provider.clear();
  j = to_json(r);
  EXPECT_TRUE(j["tag"].is_null());
  EXPECT_EQ(j["base"], "john.smith@example.org");
  EXPECT_TRUE(j["canonical"].is_null());
  EXPECT_TRUE(j["provider"].is_null());
}

// A cached answer's score is written anew when served: its age is a factor.
TEST(ResultJson, CachedScoreCarriesItsAge) {
  Result r;
  r.line = 1;
  r.normalized = "a@example.org";
  r.verdict = Verdict::Deliverable;
  r.reason = Reason::Accepted;
  r.catch_all = false;
  r.checked_at = std::chrono::system_clock::now() - std::chrono::days(100);
  EXPECT_EQ(to_json(r)["score"], 95);  // not served from the cache: no age factor
  r.cached = true;
  auto j = to_json(r);
  EXPECT_EQ(j["score"], 88);
  EXPECT_EQ(j["score_factors"].back()["factor"], "cache_age");
  EXPECT_EQ(j["score_factors"].back()["effect"], -7);
}

MxTry reply_try(std::string mx, std::string ip, int code, std::string enhanced,
                std::string message) {
  MxTry t;
  t.mx = std::move(mx);
  t.ip = std::move(ip);
  t.stage = "rcpt_to";
  t.code = code;
  t.enhanced = std::move(enhanced);
  t.message = std::move(message);
  t.source_ip = "192.0.2.7";
  return t;
}

// mx_tried: every try in order, a failed connection as an error, read back by parse_json;
// retry_after as RFC 3339 or null, read back too.
TEST(ResultJson, MxTriedAndRetryAfterRoundTrip) {
  Result r;
  r.line = 3;
  r.email = r.normalized = "a@x.test";
  r.verdict = Verdict::Unknown;
  r.reason = Reason::Greylisted;
  r.checked_at = std::chrono::system_clock::from_time_t(1795811467);
  auto j = to_json(r);
  EXPECT_EQ(j["mx_tried"], nlohmann::json::array());
  EXPECT_TRUE(j["retry_after"].is_null());
  MxTry refused;
  refused.mx = "mx1.x.test";
  refused.ip = "127.0.0.1";
  refused.stage = "connect";
  refused.error = "connection refused";
  add_mx_try(r, refused);
  add_mx_try(r, reply_try("mx2.x.test", "127.0.0.2", 451, "4.7.1", "Greylisted, \"come back\""));
  r.retry_after = r.checked_at + std::chrono::minutes(5);
  j = to_json(r);
  EXPECT_EQ(j["retry_after"], "2026-11-27T20:36:07Z");
  EXPECT_EQ(j["mx_tried"], nlohmann::json::parse(R"([
    {"mx":"mx1.x.test","ip":"127.0.0.1","stage":"connect","code":null,"enhanced":null,
     "message":null,"error":"connection refused","source_ip":null},
    {"mx":"mx2.x.test","ip":"127.0.0.2","stage":"rcpt_to","code":451,"enhanced":"4.7.1",
     "message":"Greylisted, \"come back\"","error":null,"source_ip":"192.0.2.7"}])"));
  std::string a, b;
  append_json(r, a);
  auto back = parse_json(a);
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(back->mx_tried, r.mx_tried);
  EXPECT_EQ(back->retry_after, r.retry_after);
  append_json(*back, b);
  EXPECT_EQ(a, b);
}

// A long greylisting does not grow the record: the first try and the latest ones are kept, and
// a long message is cut at a character boundary.
TEST(ResultJson, MxTriedIsBounded) {
  Result r;
  for (int i = 0; i < 20; ++i)
    add_mx_try(r,
               reply_try("mx" + std::to_string(i) + ".x.test", "127.0.0.1", 451, "4.7.1", "wait"));
  ASSERT_EQ(r.mx_tried.size(), kMaxMxTried);
  EXPECT_EQ(r.mx_tried.front().mx, "mx0.x.test");
  EXPECT_EQ(r.mx_tried.back().mx, "mx19.x.test");
  EXPECT_EQ(r.mx_tried[1].mx, "mx13.x.test");
  // 199 ASCII bytes then a two-byte character across the cut: the character goes whole.
  std::string msg(kMaxTryMessage - 1, 'a');
  msg += "\xc3\xa9 and more";
  Result m;
  add_mx_try(m, reply_try("mx.x.test", "127.0.0.1", 550, "5.1.1", msg));
  EXPECT_EQ(m.mx_tried[0].message, std::string(kMaxTryMessage - 1, 'a') + "...");
  // parse_json bounds what it reads as well (a record written by hand or an older cap).
  std::string text;
  append_json(r, text);
  auto big = nlohmann::json::parse(text);
  for (int i = 0; i < 30; ++i)
    big["mx_tried"].push_back(big["mx_tried"][0]);
  auto back = parse_json(big.dump());
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(to_json(*back)["mx_tried"].size(), kMaxMxTried);
  EXPECT_EQ(back->mx_tried.front().mx, "mx0.x.test");
}

// The same answer again and again (a long greylisting at one host) is kept once with a count,
// and written out as often as it came; the bound counts every try.
TEST(ResultJson, RepeatedTriesAreKeptOnceAndWrittenEachTime) {
  Result r;
  r.email = r.normalized = "a@x.test";
  r.checked_at = std::chrono::system_clock::from_time_t(1795811467);
  MxTry refused;
  refused.mx = "mx1.x.test";
  refused.stage = "connect";
  refused.error = "connection refused";
  add_mx_try(r, refused);
  for (int i = 0; i < 3; ++i)
    add_mx_try(r, reply_try("mx2.x.test", "127.0.0.2", 451, "4.7.1", "Greylisted"));
  ASSERT_EQ(r.mx_tried.size(), 2u);
  EXPECT_EQ(r.mx_tried[1].times, 3u);
  auto j = to_json(r);
  ASSERT_EQ(j["mx_tried"].size(), 4u);
  EXPECT_EQ(j["mx_tried"][3], j["mx_tried"][1]);
  auto back = parse_json(j.dump());
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(back->mx_tried, r.mx_tried);
  for (int i = 0; i < 20; ++i)
    add_mx_try(r, reply_try("mx2.x.test", "127.0.0.2", 451, "4.7.1", "Greylisted"));
  ASSERT_EQ(r.mx_tried.size(), 2u);
  EXPECT_EQ(r.mx_tried[0].error, "connection refused");  // the first stays
  EXPECT_EQ(r.mx_tried[1].times, kMaxMxTried - 1);
  EXPECT_EQ(to_json(r)["mx_tried"].size(), kMaxMxTried);
  // A first try repeated past the bound keeps its first and latest copies only.
  Result same;
  for (int i = 0; i < 20; ++i)
    add_mx_try(same, refused);
  ASSERT_EQ(same.mx_tried.size(), 1u);
  EXPECT_EQ(same.mx_tried[0].times, kMaxMxTried);
}

// How many MX agreed (the score's evidence): other hosts that judged the mailbox at RCPT.
TEST(ResultJson, MxAgreementFromTheTries) {
  Result r;
  r.verdict = Verdict::Deliverable;
  r.reason = Reason::Accepted;
  add_mx_try(r, reply_try("mx1.x.test", "127.0.0.1", 451, "4.7.1", "greylisted"));
  add_mx_try(r, reply_try("mx2.x.test", "127.0.0.2", 250, "2.1.5", "ok"));
  EXPECT_EQ(mx_agreement(r).agreed, 0);  // a temporary answer judges nothing
  EXPECT_EQ(mx_agreement(r).disagreed, 0);
  Result agree = r;
  agree.mx_tried.insert(agree.mx_tried.begin(),
                        reply_try("mx3.x.test", "127.0.0.3", 250, "", "ok"));
  EXPECT_EQ(mx_agreement(agree).agreed, 1);
  auto j = to_json(agree);
  EXPECT_NE(j["score_factors"].dump().find("mx_agreed"), std::string::npos);
  Result disagree = r;
  disagree.mx_tried.insert(disagree.mx_tried.begin(),
                           reply_try("mx3.x.test", "127.0.0.3", 550, "5.1.1", "no such user"));
  EXPECT_EQ(mx_agreement(disagree).disagreed, 1);
  EXPECT_LT(to_json(disagree)["score"], to_json(r)["score"]);
  // The same host twice counts once, and the deciding host is not its own second opinion.
  Result same = r;
  same.mx_tried.insert(same.mx_tried.begin(), reply_try("mx2.x.test", "127.0.0.2", 250, "", "ok"));
  EXPECT_EQ(mx_agreement(same).agreed, 0);
}

}  // namespace
}  // namespace mxp::pipeline
