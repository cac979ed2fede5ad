// The console's model (admin-wasm/ui/model.cpp): protocol v1 messages (docs/protocol.md) parsed
// field by field, bad input ignored, commands built with ids that route acks and results back;
// and the number formatting the panels use.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "format.hpp"
#include "model.hpp"

namespace mxc {
namespace {

using nlohmann::json;

// A snapshot as docs/protocol.md shows it (cut), plus the console's fields of groups.
const char* kSnapshot = R"({"type":"snapshot","version":1,"seq":14,"time_ms":1795826792732,
 "totals":{"deliverable":45,"undeliverable":67,"risky":26,"unknown":38},
 "reasons":{"accepted":45,"mailbox_not_found":34,"blocked":14},
 "rates":{"deliverable":9.0,"undeliverable":13.4,"risky":5.2,"unknown":7.6},
 "series":{"deliverable":[0,0,1,42,2],"undeliverable":[0,0,0,64,3],"risky":[0,0,0,25,1],"unknown":[0,0,0,38,0]},
 "sessions":1,"pending":36,"waiting":28,"connects_per_s":6.6,
 "dns":{"queries_per_s":18.2,"cache_hit_rate":0.25},
 "latency":{"rcpt_to":{"count":25,"p50_ms":3.1,"p90_ms":7.5,"p99_ms":875.0},
            "connect":{"count":33,"p50_ms":3.0,"p90_ms":4.6,"p99_ms":4.9},"future_stage":{"count":1}},
 "groups":[{"name":"mx.tarpit.test","provider":false,"sessions":1,"session_limit":50,"ready":7,
            "connect_rate":2.0,"rcpt_rate":0.0,"window":50.0,"rate_factor":1.0,"backing_off":false,
            "backoffs":0,"parked":false,"replies":{"2xx":10,"4xx":2,"5xx":3,"none":1},
            "buckets":{"connect":{"tokens":1,"burst":4},"rcpt":{"tokens":0,"burst":0}},
            "last_reply":"550 5.1.1 no such user"},
           {"name":"mx.storm.test","sessions":0,"rate_factor":0.5,"backing_off":true,"backoffs":3}],
 "domains":[{"name":"tarpit.test","group":"mx.tarpit.test","pending":7,"sessions":1,"catch_all":null},
            {"name":"d1.test","group":"mx1.farm.test","pending":2,"sessions":0,"catch_all":false}],
 "sources":[{"ip":"127.0.0.1","state":"blocked","warmup_level":2,
             "blocked_by":[{"group":"mx1.blocked.test","for_s":291.5}]}],
 "jobs":[{"id":1,"state":"running","created":"2026-11-28T00:46:30Z","format":"csv","input_bytes":5140,
          "records":205,"done":169,"progress":0.824,"counts":{"deliverable":42,"undeliverable":66,
          "risky":25,"unknown":36},"rate_per_s":83.2,"eta_s":0.43,
          "links":{"self":"/v1/jobs/1","results":"/v1/jobs/1/results"},
          "webhook":{"url":"http://127.0.0.1:9000/hook","batch":25,"interval_s":null,
                     "deliveries":7,"acknowledged":5,"pending":1,"failed":1,"records_waiting":3,
                     "recent":[{"seq":7,"event":"records","state":"pending","attempts":2,
                                "last_status":503,"last_error":"HTTP 503",
                                "next_try":"2026-11-28T00:46:34Z","acknowledged":null},
                               {"seq":6,"event":"records","state":"failed","attempts":9,
                                "last_status":null,"last_error":"connect: refused",
                                "next_try":null,"acknowledged":null},
                               {"seq":5,"event":"records","state":"acknowledged","attempts":1,
                                "last_status":200,"last_error":null,"next_try":null,
                                "acknowledged":"2026-11-28T00:46:31Z"},
                               "not a delivery"],
                     "link":"/v1/jobs/1/webhooks"}},
         {"id":2,"name":"list.csv","state":"finished","records":40,"done":40,"eta_s":null,
          "webhook":null}],
 "cache_hits":12})";

TEST(ConsoleModel, ParsesEverySnapshotField) {
  Model m;
  ASSERT_TRUE(m.apply(kSnapshot, 10.0));
  const Snapshot& s = m.snap;
  EXPECT_TRUE(m.have_snapshot);
  EXPECT_EQ(m.snapshots, 1u);
  EXPECT_EQ(s.seq, 14u);
  EXPECT_EQ(s.time_ms, 1795826792732);
  EXPECT_EQ(s.totals[kUndeliverable], 67u);
  EXPECT_EQ(s.total(), 45u + 67 + 26 + 38);
  EXPECT_DOUBLE_EQ(s.rates[kRisky], 5.2);
  EXPECT_NEAR(s.rate(), 9.0 + 13.4 + 5.2 + 7.6, 1e-9);
  ASSERT_EQ(s.series[kDeliverable].size(), 5u);
  EXPECT_EQ(s.series[kDeliverable][3], 42.f);
  ASSERT_EQ(s.reasons.size(), 3u);
  EXPECT_EQ(s.reasons[0].first, "accepted");  // most frequent first
  EXPECT_EQ(s.sessions, 1u);
  EXPECT_EQ(s.pending, 36u);
  EXPECT_EQ(s.waiting, 28u);
  EXPECT_DOUBLE_EQ(s.connects_per_s, 6.6);
  EXPECT_DOUBLE_EQ(s.dns_queries_per_s, 18.2);
  EXPECT_DOUBLE_EQ(s.dns_cache_hit_rate, 0.25);
  ASSERT_EQ(s.latency.size(), 2u);  // SMTP order, unknown stages ignored
  EXPECT_EQ(s.latency[0].stage, "connect");
  EXPECT_EQ(s.latency[1].stage, "rcpt_to");
  EXPECT_DOUBLE_EQ(s.latency[1].p99_ms, 875.0);
  ASSERT_EQ(s.groups.size(), 2u);
  const Group& g = s.groups[0];
  EXPECT_EQ(g.name, "mx.tarpit.test");
  EXPECT_EQ(g.session_limit, 50u);
  EXPECT_EQ(g.ready, 7u);
  EXPECT_DOUBLE_EQ(g.connect_rate, 2.0);
  EXPECT_EQ(g.r2xx, 10u);
  EXPECT_EQ(g.replies(), 16u);
  EXPECT_DOUBLE_EQ(g.connect_tokens, 1);
  EXPECT_DOUBLE_EQ(g.connect_burst, 4);
  EXPECT_DOUBLE_EQ(g.rcpt_burst, 0);
  EXPECT_EQ(g.last_reply, "550 5.1.1 no such user");
  EXPECT_TRUE(s.groups[1].backing_off);
  EXPECT_DOUBLE_EQ(s.groups[1].rate_factor, 0.5);
  EXPECT_DOUBLE_EQ(s.groups[1].connect_tokens, -1);  // absent: unknown
  ASSERT_EQ(s.domains.size(), 2u);
  EXPECT_FALSE(s.domains[0].catch_all.has_value());
  EXPECT_EQ(s.domains[1].catch_all, std::optional<bool>(false));
  ASSERT_EQ(s.sources.size(), 1u);
  EXPECT_EQ(s.sources[0].state, "blocked");
  EXPECT_EQ(s.sources[0].warmup_level, 2);
  ASSERT_EQ(s.sources[0].blocked_by.size(), 1u);
  EXPECT_DOUBLE_EQ(s.sources[0].blocked_by[0].for_s, 291.5);
  EXPECT_FALSE(s.sources[0].doctor.has_value());  // a server without start-up checks
  ASSERT_EQ(s.jobs.size(), 2u);
  EXPECT_EQ(s.jobs[0].id, 1u);
  EXPECT_EQ(s.jobs[0].counts[kUnknown], 36u);
  EXPECT_EQ(s.jobs[0].results_link, "/v1/jobs/1/results");
  ASSERT_TRUE(s.jobs[0].eta_s.has_value());
  EXPECT_FALSE(s.jobs[1].eta_s.has_value());
  EXPECT_EQ(s.jobs[0].name, "");
  EXPECT_EQ(s.jobs[1].name, "list.csv");
  ASSERT_TRUE(s.jobs[0].webhook.has_value());  // docs/webhooks.md
  EXPECT_EQ(s.jobs[0].webhook->url, "http://127.0.0.1:9000/hook");
  EXPECT_EQ(s.jobs[0].webhook->batch, 25u);
  EXPECT_EQ(s.jobs[0].webhook->deliveries, 7u);
  EXPECT_EQ(s.jobs[0].webhook->acknowledged, 5u);
  EXPECT_EQ(s.jobs[0].webhook->pending, 1u);
  EXPECT_EQ(s.jobs[0].webhook->failed, 1u);
  // The last deliveries, newest first as sent; an entry that is not an object is skipped.
  const auto& recent = s.jobs[0].webhook->recent;
  ASSERT_EQ(recent.size(), 3u);
  EXPECT_EQ(recent[0].seq, 7);
  EXPECT_EQ(recent[0].event, "records");
  EXPECT_EQ(recent[0].state, "pending");
  EXPECT_EQ(recent[0].attempts, 2u);
  EXPECT_EQ(recent[0].last_status, 503);
  EXPECT_EQ(recent[0].last_error, "HTTP 503");
  EXPECT_EQ(recent[0].next_try, "2026-11-28T00:46:34Z");
  EXPECT_EQ(recent[0].acknowledged, "");
  EXPECT_EQ(recent[1].state, "failed");
  EXPECT_EQ(recent[1].last_status, 0);  // null: no HTTP answer
  EXPECT_EQ(recent[1].last_error, "connect: refused");
  EXPECT_EQ(recent[1].next_try, "");
  EXPECT_EQ(recent[2].seq, 5);
  EXPECT_EQ(recent[2].state, "acknowledged");
  EXPECT_EQ(recent[2].last_status, 200);
  EXPECT_EQ(recent[2].last_error, "");
  EXPECT_EQ(recent[2].acknowledged, "2026-11-28T00:46:31Z");
  EXPECT_FALSE(s.jobs[1].webhook.has_value());
  EXPECT_EQ(s.cache_hits, 12u);
  EXPECT_EQ(m.h_sessions.values().size(), 1u);
  EXPECT_DOUBLE_EQ(m.last_snapshot_at, 10.0);
}

// sources[].doctor (docs/protocol.md): the start-up checks' facts, null until checked.
const char* kDoctorSources = R"j({"type":"snapshot","seq":1,"time_ms":1000,"sources":[
 {"ip":"127.0.0.2","state":"down","warmup_level":0,"blocked_by":[],
  "doctor":{"helo":"mx","helo_fqdn":false,"ptr":"out.example","fcrdns":true,
            "dnsbl_listed":["bl.example"],"dnsbl_unchecked":["zen.example","x.example"],
            "port25":"blocked","in_rotation":false,"checked_at_ms":1795826792000,
            "problems":["dnsbl: listed on bl.example (127.0.0.2)","port 25: blocked"]}},
 {"ip":"127.0.0.3","state":"ok","doctor":{"helo":"probe.example","helo_fqdn":true,"ptr":null,
  "fcrdns":false,"dnsbl_listed":[],"dnsbl_unchecked":[],"port25":"ok","in_rotation":true,
  "checked_at_ms":1795826792000,"problems":[]}},
 {"ip":"127.0.0.4","state":"ok","doctor":null},
 {"ip":"127.0.0.5","state":"ok","doctor":{"helo":7,"dnsbl_listed":"bl"}}]})j";

TEST(ConsoleModel, ParsesTheSourcesDoctorFacts) {
  Model m;
  ASSERT_TRUE(m.apply(kDoctorSources, 1.0));
  const auto& v = m.snap.sources;
  ASSERT_EQ(v.size(), 4u);
  ASSERT_TRUE(v[0].doctor.has_value());
  const auto& d = *v[0].doctor;
  EXPECT_EQ(d.helo, "mx");
  EXPECT_FALSE(d.helo_fqdn);
  EXPECT_EQ(d.ptr, std::optional<std::string>("out.example"));
  EXPECT_TRUE(d.fcrdns);
  EXPECT_EQ(d.dnsbl_listed, std::vector<std::string>{"bl.example"});
  EXPECT_EQ(d.dnsbl_unchecked.size(), 2u);
  EXPECT_EQ(d.port25, "blocked");
  EXPECT_FALSE(d.in_rotation);
  EXPECT_EQ(d.checked_at_ms, 1795826792000);
  ASSERT_EQ(d.problems.size(), 2u);
  EXPECT_EQ(d.problems[1], "port 25: blocked");
  ASSERT_TRUE(v[1].doctor.has_value());
  EXPECT_TRUE(v[1].doctor->helo_fqdn);
  EXPECT_FALSE(v[1].doctor->ptr.has_value());  // no PTR record
  EXPECT_TRUE(v[1].doctor->in_rotation);
  EXPECT_TRUE(v[1].doctor->problems.empty());
  EXPECT_FALSE(v[2].doctor.has_value());  // not checked yet
  // Fields of the wrong type are ignored; a missing in_rotation keeps the source in rotation.
  ASSERT_TRUE(v[3].doctor.has_value());
  EXPECT_EQ(v[3].doctor->helo, "");
  EXPECT_TRUE(v[3].doctor->dnsbl_listed.empty());
  EXPECT_TRUE(v[3].doctor->in_rotation);
}

// A node with --cluster: its view of the cluster (docs/protocol.md, "cluster"); without it, or
// with a null, the snapshot has none.
TEST(ConsoleModel, ParsesTheClusterView) {
  Model m;
  ASSERT_TRUE(m.apply(kSnapshot, 1.0));
  EXPECT_FALSE(m.snap.cluster.has_value());
  json j = json::parse(kSnapshot);
  j["cluster"] = nullptr;
  ASSERT_TRUE(m.apply(j.dump(), 2.0));
  EXPECT_FALSE(m.snap.cluster.has_value());
  j["cluster"] = json::parse(R"({"node":"a","role":"serve",
   "redis":{"url":"redis://10.0.0.5:6379","up":true,"rtt_ms":0.42,"down_reason":""},
   "registered":true,"ttl_s":10,"read_age_s":0.8,
   "nodes":[{"name":"a","role":"serve","addresses":["192.0.2.10","192.0.2.11"],"version":"0.9",
             "started_at_ms":1,"load":{"sessions":12,"pending":300,"verified":4200},
             "verified_per_s":35.5,"heartbeat_age_s":1.2,"self":true},
            {"name":"b","role":"worker","addresses":[],"load":{"sessions":3},
             "verified_per_s":null,"heartbeat_age_s":null,"self":false}],
   "groups":[{"group":"provider:google","sessions":15,"sessions_limit":20,"sessions_cap":20,
              "use":0.75,"backoff_factor":1,"connect":{"rate":5,"burst":5,"taken":2.5,"use":0.5},
              "rcpt":{"rate":0,"burst":1,"taken":0,"use":null}}],
   "chunks":{"waiting":7,"claimed":3,"consumers":2},
   "limits":{"refills":40,"waits":6,"failures":1,"granted":{"connect":80,"rcpt":900,"slot":12}}})");
  ASSERT_TRUE(m.apply(j.dump(), 3.0));
  ASSERT_TRUE(m.snap.cluster.has_value());
  const Cluster& c = *m.snap.cluster;
  EXPECT_EQ(c.node, "a");
  EXPECT_TRUE(c.redis_up);
  EXPECT_EQ(c.redis_url, "redis://10.0.0.5:6379");
  ASSERT_TRUE(c.rtt_ms.has_value());
  EXPECT_DOUBLE_EQ(*c.rtt_ms, 0.42);
  ASSERT_EQ(c.nodes.size(), 2u);
  EXPECT_EQ(c.nodes[0].addresses, (std::vector<std::string>{"192.0.2.10", "192.0.2.11"}));
  EXPECT_EQ(c.nodes[0].sessions, 12u);
  EXPECT_EQ(c.nodes[0].verified, 4200u);
  EXPECT_DOUBLE_EQ(c.nodes[0].verified_per_s.value_or(-1), 35.5);
  EXPECT_DOUBLE_EQ(c.nodes[0].heartbeat_age_s.value_or(-1), 1.2);
  EXPECT_TRUE(c.nodes[0].self);
  EXPECT_EQ(c.nodes[1].role, "worker");
  EXPECT_FALSE(c.nodes[1].verified_per_s.has_value());
  EXPECT_FALSE(c.nodes[1].heartbeat_age_s.has_value());
  ASSERT_EQ(c.groups.size(), 1u);
  EXPECT_EQ(c.groups[0].group, "provider:google");
  EXPECT_EQ(c.groups[0].sessions, 15u);
  EXPECT_EQ(c.groups[0].sessions_limit, 20u);
  EXPECT_DOUBLE_EQ(c.groups[0].use, 0.75);
  EXPECT_DOUBLE_EQ(c.groups[0].connect_use.value_or(-1), 0.5);
  EXPECT_FALSE(c.groups[0].rcpt_use.has_value());  // unlimited
  EXPECT_TRUE(c.have_chunks);
  EXPECT_EQ(c.chunks_waiting, 7u);
  EXPECT_EQ(c.chunks_claimed, 3u);
  EXPECT_TRUE(c.have_limits);
  EXPECT_EQ(c.lease_waits, 6u);
}

TEST(ConsoleModel, RepliesPerSecondFromSuccessiveSnapshots) {
  Model m;
  auto snap = [&](int64_t t, int replies) {
    json j = {{"type", "snapshot"},
              {"time_ms", t},
              {"groups", {{{"name", "g"}, {"replies", {{"2xx", replies}}}}}}};
    ASSERT_TRUE(m.apply(j.dump(), double(t) / 1000));
  };
  snap(1000, 0);
  snap(1250, 5);
  snap(2000, 20);
  EXPECT_DOUBLE_EQ(m.snap.groups[0].replies_per_s, 20.0);  // 20 replies in 1 s
}

TEST(ConsoleModel, WrongTypesAndUnknownMessagesAreIgnored) {
  Model m;
  EXPECT_FALSE(m.apply("not json", 0));
  EXPECT_FALSE(m.apply("[1,2]", 0));
  EXPECT_FALSE(m.apply(R"({"type":"from_the_future"})", 0));
  EXPECT_TRUE(m.apply(
      R"({"type":"snapshot","seq":"x","totals":[1],"groups":{"a":1},"jobs":[{"id":"one","counts":7}],
          "sessions":-5,"series":{"deliverable":"no"}})",
      0));
  EXPECT_EQ(m.snap.seq, 0u);
  EXPECT_EQ(m.snap.total(), 0u);
  EXPECT_TRUE(m.snap.groups.empty());
  ASSERT_EQ(m.snap.jobs.size(), 1u);
  EXPECT_EQ(m.snap.jobs[0].id, 0u);
  EXPECT_EQ(m.snap.sessions, 0u);
  EXPECT_TRUE(m.snap.series[kDeliverable].empty());
}

TEST(ConsoleModel, CheckTranscriptArrivesLineByLineBeforeItsRecord) {
  Model m;
  const int64_t id = json::parse(m.cmd_check("user1@slow.test", 1.0))["id"].get<int64_t>();
  const int64_t other = json::parse(m.cmd_check("user2@slow.test", 1.0))["id"].get<int64_t>();
  for (const char* line : {"S: 220 mx.slow.test ESMTP", "C: EHLO console.test"})
    ASSERT_TRUE(m.apply(json{{"type", "transcript"}, {"id", id}, {"line", line}}.dump(), 1.2));
  EXPECT_EQ(m.checks[0].live_lines, 2u);
  EXPECT_EQ(m.checks[0].transcript, "S: 220 mx.slow.test ESMTP\nC: EHLO console.test\n");
  EXPECT_FALSE(m.checks[0].done);
  EXPECT_EQ(m.checks[1].live_lines, 0u) << "lines go to their own check only";
  // The record's transcript is the whole dialogue and replaces the live one...
  ASSERT_TRUE(
      m.apply(json{{"type", "result"},
                   {"id", id},
                   {"record", {{"verdict", "deliverable"}, {"transcript", "S: 220 x\nALL\n"}}}}
                  .dump(),
              1.5));
  EXPECT_EQ(m.checks[0].transcript, "S: 220 x\nALL\n");
  // ...and a late line for a finished check changes nothing.
  ASSERT_TRUE(m.apply(json{{"type", "transcript"}, {"id", id}, {"line", "late"}}.dump(), 1.6));
  EXPECT_EQ(m.checks[0].transcript, "S: 220 x\nALL\n");
  // A record without a transcript (from the cache) keeps what was seen live.
  ASSERT_TRUE(
      m.apply(json{{"type", "transcript"}, {"id", other}, {"line", "S: 220 y"}}.dump(), 1.7));
  ASSERT_TRUE(m.apply(
      json{{"type", "result"}, {"id", other}, {"record", {{"verdict", "risky"}}}}.dump(), 1.8));
  EXPECT_EQ(m.checks[1].transcript, "S: 220 y\n");
}

TEST(ConsoleModel, ProbeReportOrRefusal) {
  Model m;
  const json cmd = json::parse(m.cmd_probe("example.test", json{{"samples", 2}}, 3.0));
  EXPECT_EQ(cmd["cmd"], "probe");
  EXPECT_EQ(cmd["target"], "example.test");
  EXPECT_EQ(cmd["options"]["samples"], 2);
  const int64_t id = cmd["id"].get<int64_t>();
  ASSERT_TRUE(m.apply(json{{"type", "ack"}, {"id", id}, {"ok", true}}.dump(), 3.1));
  EXPECT_FALSE(m.probes[0].done);
  ASSERT_TRUE(m.apply(
      json{{"type", "probe"}, {"id", id}, {"report", {{"catch_all", true}, {"connections", 9}}}}
          .dump(),
      8.0));
  EXPECT_TRUE(m.probes[0].done);
  EXPECT_DOUBLE_EQ(m.probes[0].finished, 8.0);
  EXPECT_EQ(m.probes[0].report["connections"], 9);
  EXPECT_TRUE(m.probes[0].error.empty());
  // Refused by the server (ack), or no mail server to probe (the probe message says why).
  const int64_t r1 = json::parse(m.cmd_probe("a.test", json::object(), 9))["id"].get<int64_t>();
  const int64_t r2 = json::parse(m.cmd_probe("b.test", json::object(), 9))["id"].get<int64_t>();
  m.apply(json{{"type", "ack"}, {"id", r1}, {"ok", false}, {"error", "two probes"}}.dump(), 9.1);
  m.apply(json{{"type", "probe"}, {"id", r2}, {"error", "b.test: no mail server found"}}.dump(),
          9.2);
  EXPECT_TRUE(m.probes[1].done);
  EXPECT_EQ(m.probes[1].error, "two probes");
  EXPECT_TRUE(m.probes[2].done);
  EXPECT_EQ(m.probes[2].error, "b.test: no mail server found");
}

TEST(ConsoleModel, CheckIsAckedThenAnsweredWithItsRecord) {
  Model m;
  const json cmd = json::parse(m.cmd_check("user1@postfix.test", 5.0));
  EXPECT_EQ(cmd["cmd"], "check");
  EXPECT_EQ(cmd["email"], "user1@postfix.test");
  const int64_t id = cmd["id"].get<int64_t>();
  ASSERT_EQ(m.checks.size(), 1u);
  EXPECT_FALSE(m.checks[0].done);
  ASSERT_TRUE(m.apply(json{{"type", "ack"}, {"id", id}, {"ok", true}}.dump(), 5.1));
  EXPECT_TRUE(m.checks[0].acked);
  EXPECT_EQ(m.last_ack->cmd, "check");
  const json rec = {{"type", "result"},
                    {"id", id},
                    {"record",
                     {{"verdict", "deliverable"},
                      {"reason", "accepted"},
                      {"mx", "mx.postfix.test"},
                      {"smtp", {{"code", 250}, {"enhanced", "2.1.5"}, {"message", "Ok"}}},
                      {"catch_all", false},
                      {"flags", {{"role", false}, {"disposable", true}, {"free", nullptr}}},
                      {"suggestion", "user1@gmail.com"},
                      {"elapsed_ms", 1.5},
                      {"attempts", 1},
                      {"transcript", "C: RCPT TO:<user1@postfix.test>\nS: 250 2.1.5 Ok\n"}}}};
  json scored = rec;
  scored["record"]["provider"] = "google_workspace";
  scored["record"]["score"] = 65;
  scored["record"]["score_factors"] = json::parse(
      R"([{"factor":"accepted","effect":90},{"factor":"catch_all_rejected","effect":5},
          {"factor":"disposable","effect":-30}])");
  scored["record"]["mx_tried"] = json::parse(
      R"([{"mx":"mx1.postfix.test","ip":"127.0.0.1","stage":"connect","code":null,
           "enhanced":null,"message":null,"error":"connection refused","source_ip":null},
          {"mx":"mx.postfix.test","ip":"127.0.0.2","stage":"rcpt_to","code":250,
           "enhanced":"2.1.5","message":"Ok","error":null,"source_ip":"127.0.0.9"}])");
  scored["record"]["retry_after"] = nullptr;
  scored["record"]["tag"] = "news";
  scored["record"]["base"] = "first.last@gmail.com";
  scored["record"]["canonical"] = "firstlast@gmail.com";
  ASSERT_TRUE(m.apply(scored.dump(), 5.3));
  const CheckRecord& c = m.checks[0];
  EXPECT_TRUE(c.done);
  EXPECT_EQ(c.verdict, "deliverable");
  EXPECT_EQ(c.code, 250);
  EXPECT_EQ(c.enhanced, "2.1.5");
  EXPECT_EQ(c.catch_all, std::optional<bool>(false));
  EXPECT_EQ(c.disposable, std::optional<bool>(true));
  EXPECT_FALSE(c.free.has_value());  // null: no domain data
  EXPECT_EQ(c.suggestion, "user1@gmail.com");
  EXPECT_EQ(c.provider, "google_workspace");
  EXPECT_EQ(c.score, 65);
  ASSERT_EQ(c.score_factors.size(), 3u);
  EXPECT_EQ(score_text(c), "65: accepted +90, catch_all_rejected +5, disposable -30");
  ASSERT_EQ(c.mx_tried.size(), 2u);
  EXPECT_EQ(c.mx_tried[0], "mx1.postfix.test [127.0.0.1] connect: connection refused");
  EXPECT_EQ(c.mx_tried[1], "mx.postfix.test [127.0.0.2] rcpt_to: 250 2.1.5 Ok (from 127.0.0.9)");
  EXPECT_EQ(c.retry_after, "");  // null: a verdict, nothing to ask again
  EXPECT_EQ(c.tag, "news");
  EXPECT_EQ(c.base, "first.last@gmail.com");
  EXPECT_EQ(c.canonical, "firstlast@gmail.com");
  EXPECT_NE(c.transcript.find("RCPT TO:<user1@postfix.test>"), std::string::npos);
  EXPECT_DOUBLE_EQ(c.finished, 5.3);
  json later = scored;
  later["record"]["verdict"] = "unknown";
  later["record"]["retry_after"] = "2026-12-07T09:00:00Z";
  ASSERT_TRUE(m.apply(later.dump(), 5.4));
  EXPECT_EQ(m.checks[0].retry_after, "2026-12-07T09:00:00Z");
  // A record without a score (an older server): nothing to show.
  EXPECT_EQ(score_text(CheckRecord{}), "");
}

TEST(ConsoleModel, RefusedCommandsAndLostConnections) {
  Model m;
  const json p = json::parse(m.cmd_set_group_policy(
      "mx1.farm.test", {{"per_mx.sessions", 2.0}, {"per_mx.connect_rate", 2.5}}));
  EXPECT_EQ(p["set"]["per_mx.sessions"], 2);  // an integer for the policy
  EXPECT_TRUE(p["set"]["per_mx.sessions"].is_number_integer());
  EXPECT_DOUBLE_EQ(p["set"]["per_mx.connect_rate"].get<double>(), 2.5);
  ASSERT_TRUE(
      m.apply(json{{"type", "ack"}, {"id", p["id"]}, {"ok", false}, {"error", "nope"}}.dump(), 1));
  EXPECT_EQ(m.last_ack->cmd, "set_group_policy");
  EXPECT_FALSE(m.last_ack->ok);
  EXPECT_EQ(m.last_ack->error, "nope");
  const json j = json::parse(m.cmd_job("pause", 3));
  EXPECT_EQ(j["cmd"], "pause");
  EXPECT_EQ(j["job"], 3);
  m.cmd_check("a@b.test", 2);
  m.reset_connection();
  EXPECT_TRUE(m.checks.back().done);
  EXPECT_FALSE(m.checks.back().error.empty());
}

TEST(ConsoleModel, EventsAreKeptNewestLastAndBounded) {
  Model m;
  for (size_t i = 0; i < Model::kMaxEvents + 10; ++i)
    ASSERT_TRUE(m.apply(
        json{{"type", "event"}, {"event", "backoff"}, {"text", "t" + std::to_string(i)}}.dump(),
        0));
  EXPECT_EQ(m.events.size(), Model::kMaxEvents);
  EXPECT_EQ(m.events.back().text, "t" + std::to_string(Model::kMaxEvents + 9));
}

// On connecting, the server replays its recent events (`history`, with their own time): they
// are shown at their time, and a reconnection's replay does not show them twice.
TEST(ConsoleModel, ReplayedEventsKeepTheirTimeAndAreNotDoubled) {
  Model m;
  const json old = {{"type", "event"},
                    {"event", "job_started"},
                    {"text", "job 1 started"},
                    {"time_ms", 1000},
                    {"history", true}};
  ASSERT_TRUE(m.apply(old.dump(), 0));
  ASSERT_TRUE(m.apply(json{{"type", "snapshot"}, {"time_ms", 5000}}.dump(), 0));
  ASSERT_TRUE(m.apply(
      json{{"type", "event"}, {"event", "backoff"}, {"text", "b"}, {"time_ms", 6000}}.dump(), 0));
  ASSERT_EQ(m.events.size(), 2u);
  EXPECT_EQ(m.events.front().time_ms, 1000);  // its own time, not the snapshot's
  m.reset_connection();
  ASSERT_TRUE(m.apply(old.dump(), 0));  // the replay after a reconnection
  json again = {{"type", "event"}, {"event", "backoff"}, {"text", "b"}, {"time_ms", 6000}};
  again["history"] = true;
  ASSERT_TRUE(m.apply(again.dump(), 0));
  EXPECT_EQ(m.events.size(), 2u);
  EXPECT_EQ(m.events.back().text, "b");
}

// No transcript: the console says what the record says decided, never a guess.
TEST(ConsoleModel, NoTranscriptSaysWhatTheRecordSays) {
  Model m;
  auto result = [&](json rec) {
    const json cmd = json::parse(m.cmd_check("a@x.test", 1));
    EXPECT_TRUE(m.apply(json{{"type", "result"}, {"id", cmd["id"]}, {"record", rec}}.dump(), 2));
    return m.checks.back();
  };
  // Blocked by a source IP at rest: the record's error carries the cause.
  auto c = result({{"verdict", "unknown"},
                   {"reason", "blocked"},
                   {"mx", nullptr},
                   {"attempts", 0},
                   {"error", "source IP 127.0.0.2 resting until 18:22 after 554 at mx.x"}});
  EXPECT_EQ(no_transcript_why(c),
            "none: source IP 127.0.0.2 resting until 18:22 after 554 at mx.x");
  // The same without a cause: no claim about syntax, DNS or the cache.
  c = result({{"verdict", "unknown"},
              {"reason", "blocked"},
              {"mx", nullptr},
              {"attempts", 0},
              {"error", nullptr}});
  const std::string why = no_transcript_why(c);
  EXPECT_EQ(why.find("syntax"), std::string::npos) << why;
  EXPECT_EQ(why.find("cache"), std::string::npos) << why;
  EXPECT_EQ(why.find("DNS"), std::string::npos) << why;
  EXPECT_NE(why.find("no mail server was asked"), std::string::npos) << why;
  c = result({{"verdict", "deliverable"},
              {"reason", "accepted"},
              {"cached", true},
              {"checked_at", "2026-12-06T18:00:00Z"},
              {"attempts", 1},
              {"mx", "mx.x"}});
  EXPECT_NE(no_transcript_why(c).find("results cache"), std::string::npos);
  c = result(
      {{"verdict", "undeliverable"}, {"reason", "invalid_syntax"}, {"error", "missing_at_sign"}});
  EXPECT_EQ(no_transcript_why(c), "none: missing_at_sign");
  c = result({{"verdict", "undeliverable"}, {"reason", "no_such_domain"}});
  EXPECT_NE(no_transcript_why(c).find("DNS"), std::string::npos);
}

TEST(ConsoleFormat, NumbersForHumans) {
  EXPECT_EQ(fmt_count(0), "0");
  EXPECT_EQ(fmt_count(1234567), "1,234,567");
  EXPECT_EQ(fmt_short(950), "950");
  EXPECT_EQ(fmt_short(12345), "12.3k");
  EXPECT_EQ(fmt_short(4560000), "4.56M");
  EXPECT_EQ(fmt_rate(0), "0/s");
  EXPECT_EQ(fmt_rate(0.25), "0.25/s");
  EXPECT_EQ(fmt_rate(83.3), "83/s");
  EXPECT_EQ(fmt_ms(0.42), "0.42 ms");
  EXPECT_EQ(fmt_ms(123.4), "123 ms");
  EXPECT_EQ(fmt_ms(1250), "1.25 s");
  EXPECT_EQ(fmt_duration(4.5), "4.5 s");
  EXPECT_EQ(fmt_duration(200), "3 min 20 s");
  EXPECT_EQ(fmt_duration(7500), "2 h 05 min");
  EXPECT_EQ(fmt_percent(0.824), "82 %");
  EXPECT_EQ(fmt_percent(0.062), "6.2 %");
  EXPECT_EQ(fmt_limit(0), "unlimited");
  EXPECT_EQ(fmt_bytes(5140), "5.0 KiB");
}

}  // namespace
}  // namespace mxc
