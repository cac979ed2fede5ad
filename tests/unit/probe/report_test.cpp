// probe::analyze: what probe-server concludes from the connections it made — latency figures,
// capabilities, catch-all, greylisting delay, concurrency and rate limits told apart, error
// limits (slow-down and disconnect), tarpits — and the report's JSON keys.
#include "probe/report.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <iterator>
#include <string>
#include <vector>

namespace mxp::probe {
namespace {

ConnRecord session(Phase p, double at, int rcpt_code, std::string rcpt_text = "",
                   double rcpt_ms = 1.0) {
  ConnRecord c;
  c.phase = p;
  c.at_s = at;
  c.connected = true;
  c.connect_ms = 0.2;
  c.banner_code = 220;
  c.banner_ms = 0.5;
  c.banner_text = "mx.example ESMTP";
  c.exchanges = {{"EHLO", 0.4, 250, "SMTPUTF8"},
                 {"MAIL", 0.3, 250, "2.1.0 Ok"},
                 {"RCPT", rcpt_ms, rcpt_code, std::move(rcpt_text)},
                 {"QUIT", 0.1, 221, "Bye"}};
  c.ehlo_keywords = {"PIPELINING", "SIZE 10240000", "STARTTLS", "ENHANCEDSTATUSCODES", "SMTPUTF8"};
  return c;
}

ConnRecord refused(Phase p, double at, int open, int code = 421, std::string text = "too many") {
  ConnRecord c;
  c.phase = p;
  c.at_s = at;
  c.open_at_start = open;
  c.connected = true;
  c.banner_code = code;
  c.banner_text = std::move(text);
  return c;
}

Report analyzed(const std::vector<ConnRecord>& recs, Thresholds t = {}) {
  Report r;
  analyze(recs, t, r);
  return r;
}

TEST(ProbeReport, LatencyCapabilitiesAndCatchAllFromTheSamples) {
  auto r = analyzed({session(Phase::Sample, 0, 550, "5.1.1 unknown", 1.0),
                     session(Phase::Sample, 0.1, 550, "5.1.1 unknown", 3.0),
                     session(Phase::Sample, 0.2, 550, "5.1.1 unknown", 2.0)});
  ASSERT_FALSE(r.latency.empty());
  EXPECT_EQ(r.latency[0].first, "connect");
  bool saw = false;
  for (const auto& [stage, s] : r.latency) {
    if (stage != "rcpt_to") continue;
    saw = true;
    EXPECT_EQ(s.count, 3u);
    EXPECT_DOUBLE_EQ(s.min, 1.0);
    EXPECT_DOUBLE_EQ(s.p50, 2.0);
    EXPECT_DOUBLE_EQ(s.max, 3.0);
  }
  EXPECT_TRUE(saw);
  EXPECT_EQ(r.banner, "220 mx.example ESMTP");
  EXPECT_TRUE(r.pipelining);
  EXPECT_TRUE(r.starttls);
  EXPECT_TRUE(r.smtputf8);
  EXPECT_FALSE(r.chunking);
  EXPECT_EQ(r.size_limit, std::optional<int64_t>(10240000));
  EXPECT_EQ(r.catch_all, std::optional<bool>(false));
  EXPECT_FALSE(r.greylisting);
  EXPECT_FALSE(r.tarpit);
  EXPECT_FALSE(r.rate_limited);
  EXPECT_EQ(r.connections, 3);

  auto yes = analyzed({session(Phase::Sample, 0, 250, "2.1.5 Ok")});
  EXPECT_EQ(yes.catch_all, std::optional<bool>(true));
}

TEST(ProbeReport, GreylistingPassesAfterTheRetriesAndThenTellsCatchAll) {
  auto r = analyzed({session(Phase::Sample, 0, 450, "4.7.1 greylisted"),
                     session(Phase::Sample, 0.1, 450, "4.7.1 greylisted"),
                     session(Phase::Greylist, 60.2, 450, "4.7.1 greylisted"),
                     session(Phase::Greylist, 120.4, 550, "5.1.1 unknown")});
  EXPECT_TRUE(r.greylisting);
  EXPECT_EQ(r.greylist_reply, "450 4.7.1 greylisted");
  ASSERT_TRUE(r.greylist_delay_s);
  EXPECT_NEAR(*r.greylist_delay_s, 120.4, 1e-9);
  EXPECT_EQ(r.catch_all, std::optional<bool>(false));

  auto never = analyzed({session(Phase::Sample, 0, 451, "4.7.1 try later"),
                         session(Phase::Greylist, 60, 451, "4.7.1 try later")});
  EXPECT_TRUE(never.greylisting);
  EXPECT_FALSE(never.greylist_delay_s);
  EXPECT_FALSE(never.catch_all) << "unknown while greylisted";
}

TEST(ProbeReport, ConcurrencyAndRateRefusalsAreToldApart) {
  // Two held, the third refused: a concurrency limit of 2; no rate limit.
  std::vector<ConnRecord> recs = {session(Phase::Sample, 0, 550)};
  for (int i = 0; i < 2; ++i) {
    auto c = session(Phase::Concurrency, 1 + i * 0.01, 0);
    c.exchanges.resize(1);
    c.open_at_start = i;
    recs.push_back(c);
  }
  recs.push_back(refused(Phase::Concurrency, 1.05, 2, 421, "4.7.0 too many connections"));
  auto r = analyzed(recs);
  EXPECT_EQ(r.max_concurrent_connections, std::optional<int>(2));
  EXPECT_EQ(r.concurrency_tried, 3);
  EXPECT_EQ(r.concurrency_refusal, "421 4.7.0 too many connections");
  EXPECT_FALSE(r.rate_limited);

  // Three sessions accepted one after another, the fourth refused with none of ours open: a
  // rate limit, even when it happens to be the concurrency ramp's first connection.
  for (Phase p : {Phase::Sample, Phase::Concurrency, Phase::Rate}) {
    auto q = analyzed({session(Phase::Sample, 0, 550), session(Phase::Sample, 0.01, 550),
                       session(Phase::Sample, 0.02, 550), refused(p, 0.03, 0, 421, "4.7.28 rate")});
    EXPECT_TRUE(q.rate_limited) << to_string(p);
    EXPECT_EQ(q.rate_refused_after, std::optional<int>(3));
    EXPECT_NEAR(q.rate_window_s.value_or(-1), 0.03, 1e-9);
    EXPECT_EQ(q.rate_refusal, "421 4.7.28 rate");
    EXPECT_FALSE(q.max_concurrent_connections) << to_string(p);
  }

  // Refused from the start: blocked, not rate-limited.
  auto b = analyzed({refused(Phase::Sample, 0, 0, 554, "5.7.1 blocked")});
  EXPECT_FALSE(b.rate_limited);
  ASSERT_EQ(b.notes.size(), 1u);
  EXPECT_NE(b.notes[0].find("554 5.7.1 blocked"), std::string::npos);
  EXPECT_FALSE(b.catch_all);
}

TEST(ProbeReport, NothingAcceptedIsNotMeasuredNeverNo) {
  ConnRecord c;
  c.phase = Phase::Sample;
  c.connect_error = "connection refused";
  Report r = analyzed({c});
  EXPECT_TRUE(r.measured.empty());
  ASSERT_EQ(r.not_measured.size(), std::size(kFigures));
  for (const auto& [figure, why] : r.not_measured)
    EXPECT_EQ(why, "no connection accepted: connection refused") << figure;
  const std::string text = to_text(r);
  for (const char* k :
       {"greylisting               not measured (no connection accepted: "
        "connection refused)",
        "tarpit                    not measured (",
        "catch-all                 not "
        "measured (",
        "concurrent connections    not measured (", "connection rate           not measured (",
        "error limits              not measured (",
        "measured                  "
        "nothing"})
    EXPECT_NE(text.find(k), std::string::npos) << k << "\n" << text;
  EXPECT_EQ(text.find("greylisting               no\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("tarpit                    no\n"), std::string::npos) << text;
  const auto j = to_json(r);
  EXPECT_EQ(j["not_measured"]["tarpit"], "no connection accepted: connection refused");
  EXPECT_TRUE(j["measured"].empty());

  // A timed-out connect says so.
  ConnRecord t;
  t.connect_error = "timed out: no TCP answer within 30 s";
  EXPECT_EQ(*analyzed({t}).why_not_measured("latency"),
            "no connection accepted: timed out: no TCP answer within 30 s");
}

TEST(ProbeReport, SkippedFiguresAreNeitherMeasuredNorMissing) {
  Report r;
  r.ask_concurrency = r.ask_rate = r.ask_error_limit = false;
  analyze({session(Phase::Sample, 0, 550)}, {}, r);
  EXPECT_TRUE(r.not_measured.empty());
  EXPECT_EQ(r.skipped, (std::vector<std::string>{"concurrency", "connection_rate", "error_limit"}));
  EXPECT_EQ(r.measured.size(), 5u);
  EXPECT_NE(to_text(r).find("concurrent connections    not measured (skipped)"), std::string::npos);

  // Asked but not reached: the driver's reason.
  Report s;
  s.stopped = "stopped by --max-time (10 s)";
  analyze({session(Phase::Sample, 0, 550)}, {}, s);
  ASSERT_TRUE(s.why_not_measured("concurrency"));
  EXPECT_EQ(*s.why_not_measured("concurrency"), "stopped by --max-time (10 s)");
}

TEST(ProbeReport, GreylistingDelayIsWhatWasObserved) {
  // Passed on the first retry, 3 s after the first 4xx: at most 3 s.
  auto one = analyzed({session(Phase::Sample, 0, 450, "4.7.1 greylisted"),
                       session(Phase::Greylist, 3.0, 550, "5.1.1 unknown")});
  EXPECT_EQ(one.greylist_retries, 1);
  EXPECT_NEAR(one.greylist_delay_s.value_or(-1), 3.0, 1e-9);
  EXPECT_NEAR(one.greylist_delay_min_s.value_or(-1), 0, 1e-9);
  EXPECT_NE(to_text(one).find("greylisting               yes (450 4.7.1 greylisted), passed on "
                              "the first retry, after 3.0 s; the server's delay is at most 3.0 s"),
            std::string::npos)
      << to_text(one);
  // Third retry: between the second (still 4xx) and the third.
  auto three = analyzed({session(Phase::Sample, 0, 450, "4.7.1 greylisted"),
                         session(Phase::Greylist, 1.0, 450, "4.7.1 greylisted"),
                         session(Phase::Greylist, 2.0, 450, "4.7.1 greylisted"),
                         session(Phase::Greylist, 3.0, 250, "2.1.5 ok")});
  EXPECT_EQ(three.greylist_retries, 3);
  EXPECT_NEAR(three.greylist_delay_min_s.value_or(-1), 2.0, 1e-9);
  EXPECT_NE(to_text(three).find("passed on retry 3, after 3.0 s; the server's delay is between "
                                "2.0 and 3.0 s"),
            std::string::npos)
      << to_text(three);
  EXPECT_EQ(to_json(three)["greylisting_retries"], 3);
}

// A server with a connection-rate limit (3) and a concurrency limit (2): the samples reach the
// rate limit, the ramp waits it out and starts again, and its refusal with 2 held is confirmed
// after the rate's window before it counts as the concurrency limit.
std::vector<ConnRecord> both_limits() {
  std::vector<ConnRecord> recs = {session(Phase::Sample, 0, 550), session(Phase::Sample, 0.01, 550),
                                  session(Phase::Sample, 0.02, 550),
                                  refused(Phase::Concurrency, 0.03, 0, 421, "4.7.0 rate"),
                                  refused(Phase::Concurrency, 1.03, 0, 421, "4.7.0 rate")};
  for (int i = 0; i < 2; ++i) {
    auto c = session(Phase::Concurrency, 3.03 + i * 0.01, 0);
    c.exchanges.resize(1);
    c.open_at_start = i;
    recs.push_back(c);
  }
  recs.push_back(refused(Phase::Concurrency, 3.06, 2, 421, "4.7.0 too many"));
  return recs;
}

TEST(ProbeReport, BothLimitsAreMeasured) {
  auto recs = both_limits();
  recs.push_back(refused(Phase::Concurrency, 7.06, 2, 421, "4.7.0 too many"));  // confirmed
  auto e = session(Phase::ErrorLimit, 7.1, 550);
  recs.push_back(e);
  Report r;
  r.ask_rate = false;
  analyze(recs, {}, r);
  EXPECT_TRUE(r.rate_limited);
  EXPECT_EQ(r.rate_refused_after, std::optional<int>(3));
  EXPECT_NEAR(r.rate_accepted_again_s.value_or(-1), 3.0, 1e-9);
  EXPECT_EQ(r.max_concurrent_connections, std::optional<int>(2));
  EXPECT_EQ(r.concurrency_refusal, "421 4.7.0 too many");
  EXPECT_NE(std::find(r.measured.begin(), r.measured.end(), "concurrency"), r.measured.end());
  EXPECT_NE(std::find(r.measured.begin(), r.measured.end(), "connection_rate"), r.measured.end());
  EXPECT_TRUE(r.not_measured.empty());
  EXPECT_NE(to_text(r).find("accepted again after 3.0 s"), std::string::npos) << to_text(r);

  // The retry after the window was accepted: that refusal was the rate's; the ramp went on.
  auto rate_only = both_limits();
  for (int i = 2; i < 4; ++i) {
    auto c = session(Phase::Concurrency, 7 + i * 0.01, 0);
    c.exchanges.resize(1);
    c.open_at_start = i;
    rate_only.push_back(c);
  }
  auto q = analyzed(rate_only);
  EXPECT_FALSE(q.max_concurrent_connections);
  EXPECT_EQ(q.concurrency_tried, 5);
  EXPECT_EQ(q.why_not_measured("concurrency"), nullptr);

  // Never confirmed (the time cap came first): not measured, and why.
  auto open = analyzed(both_limits());
  EXPECT_FALSE(open.max_concurrent_connections);
  ASSERT_TRUE(open.why_not_measured("concurrency"));
  EXPECT_NE(open.why_not_measured("concurrency")->find("connection-rate limit"), std::string::npos);
}

TEST(ProbeReport, ErrorLimitSlowDownThenDisconnect) {
  ConnRecord c = session(Phase::ErrorLimit, 5, 550);
  c.exchanges.resize(2);  // EHLO, MAIL
  for (int i = 0; i < 10; ++i)
    c.exchanges.push_back({"RCPT", 0.3, 550, "5.1.1 unknown"});
  for (int i = 0; i < 10; ++i)
    c.exchanges.push_back({"RCPT", 1000.5, 550, "5.1.1 unknown"});
  c.exchanges.push_back({"RCPT", 1000.2, 421, "4.7.0 too many errors"});
  auto r = analyzed({session(Phase::Sample, 0, 550), c});
  EXPECT_EQ(r.bad_rcpts_tried, 21);
  EXPECT_EQ(r.error_delay_after, std::optional<int>(10));
  EXPECT_NEAR(r.error_delay_ms.value_or(0), 1000.5, 1e-9);
  EXPECT_EQ(r.error_disconnect_after, std::optional<int>(20));
  EXPECT_EQ(r.error_disconnect_reply, "421 4.7.0 too many errors");

  // A server that hangs up without a word after 5, never slowing down.
  ConnRecord d = session(Phase::ErrorLimit, 5, 550);
  d.exchanges.resize(2);
  for (int i = 0; i < 5; ++i)
    d.exchanges.push_back({"RCPT", 0.3, 550, "5.1.1 unknown"});
  d.exchanges.push_back({"RCPT", 0, 0, ""});
  d.closed_by_server = true;
  auto h = analyzed({d});
  EXPECT_FALSE(h.error_delay_after);
  EXPECT_EQ(h.error_disconnect_after, std::optional<int>(5));
  EXPECT_EQ(h.error_disconnect_reply, "closed");

  // No limit seen.
  ConnRecord e = session(Phase::ErrorLimit, 5, 550);
  e.exchanges.resize(2);
  for (int i = 0; i < 25; ++i)
    e.exchanges.push_back({"RCPT", 0.3 + (i % 3) * 0.1, 550, "5.1.1 unknown"});
  auto n = analyzed({e});
  EXPECT_FALSE(n.error_delay_after);
  EXPECT_FALSE(n.error_disconnect_after);
}

TEST(ProbeReport, TarpitFromASlowGreetingOrReply) {
  auto c = session(Phase::Sample, 0, 550);
  c.banner_ms = 2500;
  EXPECT_TRUE(analyzed({c}).tarpit);
  EXPECT_NEAR(analyzed({c}).tarpit_delay_ms.value_or(0), 2500, 1e-9);
  Thresholds t;
  t.tarpit_ms = 5000;
  EXPECT_FALSE(analyzed({c}, t).tarpit);
}

TEST(ProbeReport, JsonHasTheDocumentedKeys) {
  Report r = analyzed({session(Phase::Sample, 0, 250)});
  const auto j = to_json(r);
  for (const char* k : {"target",
                        "host",
                        "address",
                        "banner",
                        "latency",
                        "capabilities",
                        "catch_all",
                        "greylisting",
                        "greylisting_delay_s",
                        "max_concurrent_connections",
                        "connection_rate_limited",
                        "connection_rate_refused_after",
                        "connection_rate_window_s",
                        "connection_rate_per_s",
                        "error_limit",
                        "tarpit",
                        "slowest_reply_ms",
                        "connections",
                        "duration_s",
                        "notes"})
    EXPECT_TRUE(j.contains(k)) << k;
  EXPECT_EQ(j["catch_all"], true);
  EXPECT_EQ(j["capabilities"]["starttls"], true);
  EXPECT_TRUE(j["max_concurrent_connections"].is_null());
  EXPECT_TRUE(j["latency"].contains("rcpt_to"));
  EXPECT_NE(to_text(r).find("catch-all"), std::string::npos);
}

}  // namespace
}  // namespace mxp::probe
