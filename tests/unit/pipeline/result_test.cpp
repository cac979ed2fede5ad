// The result record (docs/records.md): every field present, null where it does not apply.
#include "pipeline/result.hpp"

#include <gtest/gtest.h>

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

const char* kFields[] = {
    "line",  "email",      "normalized", "verdict",    "reason",        "domain",   "mx",
    "mx_ip", "smtp",       "catch_all",  "flags",      "suggestion",    "attempts", "source_ip",
    "proxy", "elapsed_ms", "error",      "checked_at", "cached",        "tls",      "mail_from",
    "tag",   "base",       "canonical",  "score",      "score_factors", "provider"};

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

}  // namespace
}  // namespace mxp::pipeline
