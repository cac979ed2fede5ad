// Parsing of the WebSocket protocol v1 into the console's model (model.hpp). Every field is
// optional and type-checked: unknown fields are ignored, missing ones keep their defaults, and no
// message can throw (the wasm build has no exceptions).
#include "model.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>

namespace mxc {

using nlohmann::json;

const char* const kVerdictNames[kVerdictCount] = {"deliverable", "undeliverable", "risky",
                                                  "unknown"};

int verdict_index(std::string_view name) {
  for (int i = 0; i < kVerdictCount; ++i)
    if (name == kVerdictNames[i]) return i;
  return -1;
}

namespace {

const json* field(const json& o, const char* key) {
  if (!o.is_object()) return nullptr;
  auto it = o.find(key);
  return it == o.end() ? nullptr : &*it;
}
double num(const json& o, const char* key, double def = 0) {
  const json* f = field(o, key);
  return f && f->is_number() ? f->get<double>() : def;
}
uint64_t count(const json& o, const char* key) {
  const json* f = field(o, key);
  if (!f || !f->is_number()) return 0;
  if (f->is_number_unsigned()) return f->get<uint64_t>();
  const double d = f->get<double>();
  return d > 0 ? static_cast<uint64_t>(d) : 0;
}
bool flag(const json& o, const char* key) {
  const json* f = field(o, key);
  return f && f->is_boolean() && f->get<bool>();
}
std::optional<bool> maybe_flag(const json& o, const char* key) {
  const json* f = field(o, key);
  if (f && f->is_boolean()) return f->get<bool>();
  return std::nullopt;
}
std::string str(const json& o, const char* key) {
  const json* f = field(o, key);
  return f && f->is_string() ? f->get<std::string>() : std::string();
}
const json& arr(const json& o, const char* key) {
  static const json empty = json::array();
  const json* f = field(o, key);
  return f && f->is_array() ? *f : empty;
}
const json& obj(const json& o, const char* key) {
  static const json empty = json::object();
  const json* f = field(o, key);
  return f && f->is_object() ? *f : empty;
}

constexpr const char* kStages[] = {"connect",   "banner",  "ehlo", "helo", "starttls",
                                   "mail_from", "rcpt_to", "rset", "quit"};

Job parse_job(const json& j) {
  Job out;
  out.id = count(j, "id");
  out.name = str(j, "name");
  out.state = str(j, "state");
  out.created = str(j, "created");
  out.format = str(j, "format");
  out.records = count(j, "records");
  out.done = count(j, "done");
  out.input_bytes = count(j, "input_bytes");
  out.progress = num(j, "progress");
  out.rate_per_s = num(j, "rate_per_s");
  if (const json* e = field(j, "eta_s"); e && e->is_number()) out.eta_s = e->get<double>();
  for (int v = 0; v < kVerdictCount; ++v)
    out.counts[v] = count(obj(j, "counts"), kVerdictNames[v]);
  out.results_link = str(obj(j, "links"), "results");
  if (const json* w = field(j, "webhook"); w && w->is_object()) {
    JobWebhook h;
    h.url = str(*w, "url");
    h.batch = count(*w, "batch");
    h.deliveries = count(*w, "deliveries");
    h.acknowledged = count(*w, "acknowledged");
    h.pending = count(*w, "pending");
    h.failed = count(*w, "failed");
    for (const auto& r : arr(*w, "recent")) {
      if (!r.is_object()) continue;
      WebhookDelivery d;
      d.seq = static_cast<int64_t>(count(r, "seq"));
      d.event = str(r, "event");
      d.state = str(r, "state");
      d.attempts = count(r, "attempts");
      d.last_status = static_cast<int>(count(r, "last_status"));
      d.last_error = str(r, "last_error");
      d.next_try = str(r, "next_try");
      d.acknowledged = str(r, "acknowledged");
      h.recent.push_back(std::move(d));
    }
    out.webhook = std::move(h);
  }
  return out;
}

std::optional<double> maybe_num(const json& o, const char* key) {
  const json* f = field(o, key);
  if (f && f->is_number()) return f->get<double>();
  return std::nullopt;
}

std::vector<std::string> strings(const json& o, const char* key) {
  std::vector<std::string> out;
  for (const auto& x : arr(o, key))
    if (x.is_string()) out.push_back(x.get<std::string>());
  return out;
}

SourceDoctor parse_source_doctor(const json& d) {
  SourceDoctor out;
  out.helo = str(d, "helo");
  out.helo_fqdn = flag(d, "helo_fqdn");
  if (const json* p = field(d, "ptr"); p && p->is_string()) out.ptr = p->get<std::string>();
  out.fcrdns = flag(d, "fcrdns");
  out.dnsbl_listed = strings(d, "dnsbl_listed");
  out.dnsbl_unchecked = strings(d, "dnsbl_unchecked");
  out.port25 = str(d, "port25");
  // A source is in rotation unless the checks say otherwise.
  out.in_rotation = maybe_flag(d, "in_rotation").value_or(true);
  out.checked_at_ms = static_cast<int64_t>(num(d, "checked_at_ms"));
  out.problems = strings(d, "problems");
  return out;
}

Cluster parse_cluster(const json& c) {
  Cluster out;
  out.node = str(c, "node");
  out.role = str(c, "role");
  out.registered = flag(c, "registered");
  const json& r = obj(c, "redis");
  out.redis_url = str(r, "url");
  out.redis_up = flag(r, "up");
  out.redis_down_reason = str(r, "down_reason");
  out.rtt_ms = maybe_num(r, "rtt_ms");
  for (const auto& n : arr(c, "nodes")) {
    ClusterNodeRow o;
    o.name = str(n, "name");
    o.role = str(n, "role");
    o.version = str(n, "version");
    for (const auto& a : arr(n, "addresses"))
      if (a.is_string()) o.addresses.push_back(a.get<std::string>());
    const json& load = obj(n, "load");
    o.sessions = count(load, "sessions");
    o.pending = count(load, "pending");
    o.verified = count(load, "verified");
    o.verified_per_s = maybe_num(n, "verified_per_s");
    o.heartbeat_age_s = maybe_num(n, "heartbeat_age_s");
    o.self = flag(n, "self");
    out.nodes.push_back(std::move(o));
  }
  for (const auto& g : arr(c, "groups")) {
    ClusterGroup o;
    o.group = str(g, "group");
    o.sessions = count(g, "sessions");
    o.sessions_limit = count(g, "sessions_limit");
    o.sessions_cap = count(g, "sessions_cap");
    o.use = num(g, "use");
    o.backoff_factor = num(g, "backoff_factor", 1);
    o.connect_use = maybe_num(obj(g, "connect"), "use");
    o.rcpt_use = maybe_num(obj(g, "rcpt"), "use");
    o.connect_rate = num(obj(g, "connect"), "rate");
    o.rcpt_rate = num(obj(g, "rcpt"), "rate");
    out.groups.push_back(std::move(o));
  }
  if (const json& ch = obj(c, "chunks"); !ch.empty()) {
    out.have_chunks = true;
    out.chunks_waiting = count(ch, "waiting");
    out.chunks_claimed = count(ch, "claimed");
    out.chunk_consumers = count(ch, "consumers");
  }
  if (const json& l = obj(c, "limits"); !l.empty()) {
    out.have_limits = true;
    out.lease_refills = count(l, "refills");
    out.lease_waits = count(l, "waits");
    out.lease_failures = count(l, "failures");
  }
  return out;
}

}  // namespace

uint64_t Snapshot::total() const {
  uint64_t n = 0;
  for (auto t : totals)
    n += t;
  return n;
}
double Snapshot::rate() const {
  double r = 0;
  for (auto x : rates)
    r += x;
  return r;
}

void History::push(float v) {
  if (v_.size() >= cap_) v_.erase(v_.begin());
  v_.push_back(v);
}

bool Model::apply(std::string_view message, double now) {
  json j = json::parse(message.begin(), message.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return false;
  const std::string type = str(j, "type");
  if (type == "snapshot") {
    apply_snapshot(j, now);
    return true;
  }
  if (type == "hello") {
    protocol_version = static_cast<int>(num(j, "version"));
    return true;
  }
  if (type == "event") {
    Event e;
    // The server's time of the event (older servers: the snapshot before it).
    e.time_ms = j.contains("time_ms") ? static_cast<int64_t>(num(j, "time_ms")) : snap.time_ms;
    e.kind = str(j, "event");
    e.text = str(j, "text");
    if (e.text.empty()) e.text = e.kind;
    // The server replays its recent events on every connection: one already here is not new.
    if (flag(j, "history"))
      for (const auto& x : events)
        if (x.time_ms == e.time_ms && x.kind == e.kind && x.text == e.text) return true;
    events.push_back(std::move(e));
    // Replayed ones may interleave with live ones after a reconnection: keep time order.
    std::stable_sort(events.begin(), events.end(),
                     [](const Event& a, const Event& b) { return a.time_ms < b.time_ms; });
    while (events.size() > kMaxEvents)
      events.pop_front();
    return true;
  }
  if (type == "ack") {
    Ack a;
    a.id = static_cast<int64_t>(num(j, "id", -1));
    a.ok = flag(j, "ok");
    a.error = str(j, "error");
    a.at = now;
    if (auto it = sent_.find(a.id); it != sent_.end()) {
      a.cmd = it->second;
      sent_.erase(it);
    }
    for (auto& p : probes)
      if (p.id == a.id && !a.ok) {
        p.done = true;
        p.finished = now;
        p.error = a.error;
      }
    for (auto& c : checks)
      if (c.id == a.id) {
        c.acked = true;
        if (!a.ok) {
          c.done = true;
          c.finished = now;
          c.error = a.error;
        }
      }
    last_ack = std::move(a);
    return true;
  }
  if (type == "probe") {  // a probe's report, or why there is none
    const int64_t id = static_cast<int64_t>(num(j, "id", -1));
    for (auto& p : probes) {
      if (p.id != id) continue;
      p.done = true;
      p.finished = now;
      p.error = str(j, "error");
      if (j.contains("report") && j["report"].is_object()) p.report = j["report"];
    }
    return true;
  }
  if (type == "transcript") {  // one line of a running check's SMTP dialogue
    const int64_t id = static_cast<int64_t>(num(j, "id", -1));
    for (auto& c : checks) {
      if (c.id != id || c.done) continue;
      c.transcript += str(j, "line");
      c.transcript += '\n';
      ++c.live_lines;
    }
    return true;
  }
  if (type == "result") {
    const int64_t id = static_cast<int64_t>(num(j, "id", -1));
    const json& r = obj(j, "record");
    for (auto& c : checks) {
      if (c.id != id) continue;
      c.done = true;
      c.finished = now;
      c.verdict = str(r, "verdict");
      c.reason = str(r, "reason");
      c.domain = str(r, "domain");
      c.mx = str(r, "mx");
      c.mx_ip = str(r, "mx_ip");
      c.code = static_cast<int>(num(obj(r, "smtp"), "code"));
      c.enhanced = str(obj(r, "smtp"), "enhanced");
      c.message = str(obj(r, "smtp"), "message");
      // The record's transcript is the whole dialogue; keep the live one when it has none.
      if (std::string t = str(r, "transcript"); !t.empty()) c.transcript = std::move(t);
      c.checked_at = str(r, "checked_at");
      c.elapsed_ms = num(r, "elapsed_ms");
      c.attempts = static_cast<uint32_t>(count(r, "attempts"));
      c.catch_all = maybe_flag(r, "catch_all");
      c.role = maybe_flag(obj(r, "flags"), "role");
      c.disposable = maybe_flag(obj(r, "flags"), "disposable");
      c.free = maybe_flag(obj(r, "flags"), "free");
      c.suggestion = str(r, "suggestion");
      c.provider = str(r, "provider");
      c.score = r.contains("score") && r["score"].is_number_integer() ? r["score"].get<int>() : -1;
      c.score_factors.clear();
      if (auto it = r.find("score_factors"); it != r.end() && it->is_array())
        for (const json& f : *it)
          if (f.is_object())
            c.score_factors.emplace_back(str(f, "factor"), static_cast<int>(num(f, "effect")));
      c.mx_tried.clear();
      for (const json& t : arr(r, "mx_tried"))
        if (t.is_object()) c.mx_tried.push_back(mx_try_text(t));
      c.retry_after = str(r, "retry_after");
      c.tag = str(r, "tag");
      c.base = str(r, "base");
      c.canonical = str(r, "canonical");
      c.cached = maybe_flag(r, "cached");
      if (c.error.empty()) c.error = str(r, "error");
    }
    return true;
  }
  return false;
}

void Model::apply_snapshot(const json& j, double now) {
  Snapshot s;
  s.seq = count(j, "seq");
  s.time_ms = static_cast<int64_t>(num(j, "time_ms"));
  for (int v = 0; v < kVerdictCount; ++v) {
    s.totals[v] = count(obj(j, "totals"), kVerdictNames[v]);
    s.rates[v] = num(obj(j, "rates"), kVerdictNames[v]);
    for (const auto& x : arr(obj(j, "series"), kVerdictNames[v]))
      s.series[v].push_back(x.is_number() ? x.get<float>() : 0.f);
  }
  for (const auto& [k, v] : obj(j, "reasons").items())
    if (v.is_number()) s.reasons.emplace_back(k, v.get<uint64_t>());
  std::stable_sort(s.reasons.begin(), s.reasons.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  s.sessions = count(j, "sessions");
  s.pending = count(j, "pending");
  s.waiting = count(j, "waiting");
  s.cache_hits = count(j, "cache_hits");
  s.connects_per_s = num(j, "connects_per_s");
  s.dns_queries_per_s = num(obj(j, "dns"), "queries_per_s");
  s.dns_cache_hit_rate = num(obj(j, "dns"), "cache_hit_rate");
  const json& lat = obj(j, "latency");
  for (const char* st : kStages) {
    const json* l = field(lat, st);
    if (!l || !l->is_object()) continue;
    s.latency.push_back(
        {st, count(*l, "count"), num(*l, "p50_ms"), num(*l, "p90_ms"), num(*l, "p99_ms")});
  }
  for (const auto& g : arr(j, "groups")) {
    Group o;
    o.name = str(g, "name");
    o.provider = flag(g, "provider");
    o.sessions = static_cast<uint32_t>(count(g, "sessions"));
    o.session_limit = static_cast<uint32_t>(count(g, "session_limit"));
    o.ready = count(g, "ready");
    o.connect_rate = num(g, "connect_rate");
    o.rcpt_rate = num(g, "rcpt_rate");
    o.window = num(g, "window");
    o.rate_factor = num(g, "rate_factor", 1);
    o.backing_off = flag(g, "backing_off");
    o.backoffs = count(g, "backoffs");
    o.parked = flag(g, "parked");
    const json& r = obj(g, "replies");
    o.r2xx = count(r, "2xx");
    o.r4xx = count(r, "4xx");
    o.r5xx = count(r, "5xx");
    o.rnone = count(r, "none");
    const json& b = obj(g, "buckets");
    o.connect_tokens = num(obj(b, "connect"), "tokens", -1);
    o.connect_burst = num(obj(b, "connect"), "burst", -1);
    o.rcpt_tokens = num(obj(b, "rcpt"), "tokens", -1);
    o.rcpt_burst = num(obj(b, "rcpt"), "burst", -1);
    o.last_reply = str(g, "last_reply");
    // Replies per second over the last ~5 s of server time.
    auto& h = reply_hist_[o.name];
    h.emplace_back(s.time_ms, o.replies());
    while (h.size() > 2 && h.back().first - h.front().first > 5000)
      h.pop_front();
    if (h.size() >= 2 && h.back().first > h.front().first && h.back().second >= h.front().second)
      o.replies_per_s = double(h.back().second - h.front().second) * 1000.0 /
                        double(h.back().first - h.front().first);
    s.groups.push_back(std::move(o));
  }
  // Forget the histories of groups that left the top list a while ago.
  std::erase_if(reply_hist_,
                [&](const auto& kv) { return s.time_ms - kv.second.back().first > 30000; });
  for (const auto& d : arr(j, "domains")) {
    Domain o;
    o.name = str(d, "name");
    o.group = str(d, "group");
    o.pending = count(d, "pending");
    o.sessions = static_cast<uint32_t>(count(d, "sessions"));
    o.catch_all = maybe_flag(d, "catch_all");
    s.domains.push_back(std::move(o));
  }
  for (const auto& x : arr(j, "sources")) {
    Source o;
    o.ip = str(x, "ip");
    o.state = str(x, "state");
    if (o.state.empty()) o.state = "ok";
    o.warmup_level = static_cast<int>(num(x, "warmup_level"));
    for (const auto& b : arr(x, "blocked_by"))
      o.blocked_by.push_back({str(b, "group"), num(b, "for_s")});
    if (const json* d = field(x, "doctor"); d && d->is_object()) o.doctor = parse_source_doctor(*d);
    s.sources.push_back(std::move(o));
  }
  for (const auto& x : arr(j, "jobs"))
    s.jobs.push_back(parse_job(x));
  if (const json* c = field(j, "cluster"); c && c->is_object()) s.cluster = parse_cluster(*c);
  snap = std::move(s);
  have_snapshot = true;
  ++snapshots;
  last_snapshot_at = now;
  h_sessions.push(static_cast<float>(snap.sessions));
  h_connects.push(static_cast<float>(snap.connects_per_s));
  h_dns.push(static_cast<float>(snap.dns_queries_per_s));
  h_pending.push(static_cast<float>(snap.pending));
}

std::string Model::cmd_ping() {
  const int64_t id = next_id_++;
  sent_[id] = "ping";
  return json{{"id", id}, {"cmd", "ping"}}.dump();
}

std::string Model::cmd_check(const std::string& email, double now) {
  const int64_t id = next_id_++;
  sent_[id] = "check";
  CheckRecord c;
  c.id = id;
  c.email = email;
  c.started = now;
  checks.push_back(std::move(c));
  return json{{"id", id}, {"cmd", "check"}, {"email", email}}.dump();
}

std::string Model::cmd_probe(const std::string& target, const json& options, double now) {
  const int64_t id = next_id_++;
  sent_[id] = "probe";
  ProbeRecord p;
  p.id = id;
  p.target = target;
  p.started = now;
  probes.push_back(std::move(p));
  return json{{"id", id}, {"cmd", "probe"}, {"target", target}, {"options", options}}.dump();
}

std::string Model::cmd_set_group_policy(const std::string& group,
                                        const std::vector<std::pair<std::string, double>>& set) {
  const int64_t id = next_id_++;
  sent_[id] = "set_group_policy";
  json s = json::object();
  for (const auto& [k, v] : set) {
    // Session counts and bursts are integers for the policy; rates may be fractional.
    if (k.find("sessions") != std::string::npos || k.find("burst") != std::string::npos)
      s[k] = static_cast<int64_t>(v);
    else
      s[k] = v;
  }
  return json{{"id", id}, {"cmd", "set_group_policy"}, {"group", group}, {"set", s}}.dump();
}

std::string Model::cmd_job(const char* action, uint64_t job) {
  const int64_t id = next_id_++;
  sent_[id] = action;
  return json{{"id", id}, {"cmd", action}, {"job", job}}.dump();
}

void Model::reset_connection() {
  // Commands in flight on the old socket will never be answered.
  sent_.clear();
  for (auto& c : checks)
    if (!c.done) {
      c.done = true;
      c.error = "connection lost before the result";
    }
  reply_hist_.clear();
}

std::string mx_try_text(const json& t) {
  std::string out = str(t, "mx");
  if (std::string ip = str(t, "ip"); !ip.empty()) out += " [" + ip + "]";
  if (std::string stage = str(t, "stage"); !stage.empty()) out += " " + stage;
  out += ": ";
  if (const int code = static_cast<int>(num(t, "code")); code > 0) {
    out += std::to_string(code);
    if (std::string e = str(t, "enhanced"); !e.empty()) out += " " + e;
    if (std::string m = str(t, "message"); !m.empty()) out += " " + m;
  } else {
    out += str(t, "error");
  }
  if (std::string from = str(t, "source_ip"); !from.empty()) out += " (from " + from + ")";
  return out;
}

std::string score_text(const CheckRecord& c) {
  if (c.score < 0) return {};
  std::string out = std::to_string(c.score);
  for (size_t i = 0; i < c.score_factors.size(); ++i) {
    const auto& [factor, effect] = c.score_factors[i];
    out += (i ? ", " : ": ") + factor + (effect >= 0 ? " +" : " ") + std::to_string(effect);
  }
  return out;
}

std::string no_transcript_why(const CheckRecord& c) {
  if (c.cached.value_or(false))
    return "none kept: answered from the results cache (checked " + c.checked_at + ")";
  if (!c.error.empty()) return "none: " + c.error;
  if (c.reason == "invalid_syntax") return "none: the address failed the syntax check";
  if (c.reason == "no_such_domain" || c.reason == "null_mx" || c.reason == "no_mail_server" ||
      c.reason == "dns_error")
    return "none: the DNS answer decided (" + c.reason + ")";
  if (c.attempts == 0 && c.mx.empty())
    return "none: no mail server was asked, and the server gave no cause";
  return "none recorded";
}

}  // namespace mxc
