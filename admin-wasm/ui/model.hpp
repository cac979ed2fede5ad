// What the console knows about the server: the last snapshot of protocol v1 (docs/protocol.md)
// parsed into plain structs, short histories kept on this side, events, acks and check results.
// No ImGui and no browser here: the same code is unit-tested natively (tests/unit/console/).
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace mxc {

enum Verdict : int { kDeliverable, kUndeliverable, kRisky, kUnknown, kVerdictCount };
extern const char* const kVerdictNames[kVerdictCount];
// -1 for a name that is not a verdict.
int verdict_index(std::string_view name);

struct StageLatency {
  std::string stage;
  uint64_t count = 0;
  double p50_ms = 0, p90_ms = 0, p99_ms = 0;
};

struct Group {
  std::string name;
  bool provider = false;
  uint32_t sessions = 0, session_limit = 0;
  uint64_t ready = 0;
  double connect_rate = 0, rcpt_rate = 0;  // effective limits, 0 = unlimited
  double window = 0, rate_factor = 1;
  bool backing_off = false, parked = false;
  uint64_t backoffs = 0;
  uint64_t r2xx = 0, r4xx = 0, r5xx = 0, rnone = 0;
  // Token buckets (absent from older servers): tokens now and burst; -1 = unlimited/unknown.
  double connect_tokens = -1, connect_burst = -1, rcpt_tokens = -1, rcpt_burst = -1;
  std::string last_reply;    // "550 5.1.1 ..." (may be empty)
  double replies_per_s = 0;  // measured here from successive snapshots
  uint64_t replies() const { return r2xx + r4xx + r5xx + rnone; }
};

struct Domain {
  std::string name, group;
  uint64_t pending = 0;
  uint32_t sessions = 0;
  std::optional<bool> catch_all;
};

struct SourceBlock {
  std::string group;
  double for_s = 0;
};

// The start-up checks' facts about one source (sources[].doctor, docs/protocol.md).
struct SourceDoctor {
  std::string helo;
  bool helo_fqdn = false;
  std::optional<std::string> ptr;  // no PTR record when empty
  bool fcrdns = false;
  std::vector<std::string> dnsbl_listed, dnsbl_unchecked;
  std::string port25;  // ok, blocked, refused, could_not_check, not_checked
  bool in_rotation = true;
  int64_t checked_at_ms = 0;
  std::vector<std::string> problems;
};

struct Source {
  std::string ip, state;
  int warmup_level = 0;
  std::vector<SourceBlock> blocked_by;
  // Null until the start-up checks ran, and from servers older than the checks.
  std::optional<SourceDoctor> doctor;
};

// One of a job's last webhook deliveries (webhook.recent[], docs/webhooks.md).
struct WebhookDelivery {
  int64_t seq = 0;
  std::string event;  // "records" or "job.ended"
  std::string state;  // pending, sending, acknowledged, failed
  uint64_t attempts = 0;
  int last_status = 0;     // the last attempt's HTTP status; 0: none
  std::string last_error;  // empty: none
  std::string next_try;    // RFC 3339, only while pending; empty: none
  std::string acknowledged;
};

// A job's webhook as GET /v1/jobs/{id} and the snapshot show it (docs/webhooks.md).
struct JobWebhook {
  std::string url;
  uint64_t batch = 0, deliveries = 0, acknowledged = 0, pending = 0, failed = 0;
  std::vector<WebhookDelivery> recent;  // newest first; empty from servers without it
};

struct Job {
  uint64_t id = 0;
  std::string name;  // given at upload, may be empty
  std::string state, created, format, results_link;
  uint64_t records = 0, done = 0, input_bytes = 0;
  double progress = 0, rate_per_s = 0;
  std::optional<double> eta_s;
  std::array<uint64_t, kVerdictCount> counts{};
  std::optional<JobWebhook> webhook;  // none without webhook_url
};

// The cluster as the node sees it (snapshot "cluster", docs/protocol.md); absent without
// --cluster.
struct ClusterNodeRow {
  std::string name, role, version;
  std::vector<std::string> addresses;
  uint64_t sessions = 0, pending = 0, verified = 0;
  std::optional<double> verified_per_s, heartbeat_age_s;
  bool self = false;
};
struct ClusterGroup {
  std::string group;
  uint64_t sessions = 0, sessions_limit = 0, sessions_cap = 0;
  double use = 0, backoff_factor = 1;
  // Bucket use (tokens taken beyond the refill against the burst, 0-1); nullopt: unlimited.
  std::optional<double> connect_use, rcpt_use;
  double connect_rate = 0, rcpt_rate = 0;
};
struct Cluster {
  std::string node, role, redis_url, redis_down_reason;
  bool redis_up = false, registered = false;
  std::optional<double> rtt_ms;
  std::vector<ClusterNodeRow> nodes;
  std::vector<ClusterGroup> groups;
  bool have_chunks = false;
  uint64_t chunks_waiting = 0, chunks_claimed = 0, chunk_consumers = 0;
  bool have_limits = false;
  uint64_t lease_refills = 0, lease_waits = 0, lease_failures = 0;
};

struct Snapshot {
  uint64_t seq = 0;
  int64_t time_ms = 0;
  std::array<uint64_t, kVerdictCount> totals{};
  std::array<double, kVerdictCount> rates{};
  std::array<std::vector<float>, kVerdictCount> series;   // per second, oldest first
  std::vector<std::pair<std::string, uint64_t>> reasons;  // most frequent first
  uint64_t sessions = 0, pending = 0, waiting = 0;
  uint64_t cache_hits = 0;  // records of `totals` answered from the results cache
  double connects_per_s = 0, dns_queries_per_s = 0, dns_cache_hit_rate = 0;
  std::vector<StageLatency> latency;  // in SMTP order
  std::vector<Group> groups;
  std::vector<Domain> domains;
  std::vector<Source> sources;
  std::vector<Job> jobs;
  std::optional<Cluster> cluster;  // the node runs with --cluster
  uint64_t total() const;
  double rate() const;
};

// A fixed-size ring of samples, oldest first when read through values().
class History {
 public:
  explicit History(size_t cap = 480) : cap_(cap) {}
  void push(float v);
  const std::vector<float>& values() const { return v_; }
  float last() const { return v_.empty() ? 0.f : v_.back(); }

 private:
  size_t cap_;
  std::vector<float> v_;
};

struct Event {
  int64_t time_ms = 0;  // server time of the snapshot before it (0 before any)
  std::string kind;     // backoff, recovered, blocked, job_started, job_done, ...
  std::string text;
};

struct CheckRecord {
  int64_t id = 0;
  std::string email;
  double started = 0, finished = 0;  // client clock, seconds
  bool acked = false, done = false;
  std::string error;  // a refused command
  std::string verdict, reason, domain, mx, mx_ip, enhanced, message, transcript, checked_at;
  uint32_t live_lines = 0;  // transcript lines received while it ran (`transcript` messages)
  int code = 0;
  double elapsed_ms = 0;
  uint32_t attempts = 0;
  std::optional<bool> catch_all, role, cached, disposable, free;
  std::string suggestion;  // "alice@gmail.com" for a typo of a big provider's domain, or ""
  std::string provider;    // "gmail", "microsoft365", ... or "" (docs/providers.md)
  int score = -1;          // 0..100, -1 until the record came (docs/score.md)
  std::vector<std::pair<std::string, int>> score_factors;  // {"catch_all", -35}, in order
  // The record's mx_tried, one line per try in order: "mx1.x.test [192.0.2.1] rcpt_to: 451
  // 4.7.1 Greylisted" or "mx1.x.test [192.0.2.1] connect: connection refused".
  std::vector<std::string> mx_tried;
  std::string retry_after;  // RFC 3339, "" when null (docs/records.md)
  // The address's forms (docs/records.md): the +tag ("" when none), the address without it,
  // and the canonical spelling where the provider documents one ("" when none).
  std::string tag, base, canonical;
};

// One mx_tried entry of a record as the check panel shows it.
std::string mx_try_text(const nlohmann::json& t);

// "55: accepted +90, catch_all -35": the score with what made it; "" without a score.
std::string score_text(const CheckRecord& c);

// Why a finished check has no SMTP dialogue, from what its record says: the record's `error`
// when set, the cache, the syntax check or DNS by reason, else "no mail server was asked".
std::string no_transcript_why(const CheckRecord& c);

// A probe-server run asked with the `probe` command (docs/probe.md); its report as sent.
struct ProbeRecord {
  int64_t id = 0;
  std::string target;
  double started = 0, finished = 0;  // client clock, seconds
  bool done = false;
  std::string error;  // refused, or the target could not be resolved
  nlohmann::json report;
};

struct Ack {
  int64_t id = 0;
  std::string cmd;  // the command it answers, when we sent it
  bool ok = false;
  std::string error;
  double at = 0;
};

// The state of the console, fed every message of the WebSocket.
class Model {
 public:
  // Parses one server message; `now` is the client clock in seconds. False for text that is
  // not a JSON object with a known `type` (ignored, as the protocol asks).
  bool apply(std::string_view message, double now);

  // Builds a command and remembers it, so its ack and result find their way back.
  std::string cmd_ping();
  std::string cmd_check(const std::string& email, double now);
  std::string cmd_probe(const std::string& target, const nlohmann::json& options, double now);
  std::string cmd_set_group_policy(const std::string& group,
                                   const std::vector<std::pair<std::string, double>>& set);
  std::string cmd_job(const char* action, uint64_t job);  // pause, resume, cancel

  int64_t last_id() const { return next_id_ - 1; }  // of the last command built
  void reset_connection();                          // a new socket: server-side state starts again

  bool have_snapshot = false;
  uint64_t snapshots = 0;  // received on every connection so far
  double last_snapshot_at = 0;
  int protocol_version = 0;
  Snapshot snap;
  History h_sessions, h_connects, h_dns, h_pending;
  std::deque<Event> events;  // newest last, at most kMaxEvents
  std::vector<CheckRecord> checks;
  std::vector<ProbeRecord> probes;
  std::optional<Ack> last_ack;
  static constexpr size_t kMaxEvents = 200;

 private:
  void apply_snapshot(const nlohmann::json& j, double now);
  int64_t next_id_ = 1;
  std::map<int64_t, std::string> sent_;  // id -> cmd, until acked
  // Per group: (server ms, replies) over the last few seconds, for replies/s.
  std::map<std::string, std::deque<std::pair<int64_t, uint64_t>>> reply_hist_;
};

}  // namespace mxc
