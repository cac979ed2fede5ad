// `mxprobe serve`: the service's life (the verifier's hooks, reload, the tick, stop) and
// run_serve, which opens the engine and starts it.
#include "app/serve/service.hpp"

namespace mxp::app::serve_impl {

// SIGHUP: the file again, with the command line, PUT /v1/policy and live group changes.
void Service::reload() {
  std::string err;
  if (apply_overrides(overrides_, live_groups_, err))
    std::fprintf(diag_, "mxprobe: SIGHUP: policy reloaded\n");
  else
    std::fprintf(diag_, "mxprobe: SIGHUP: %s; keeping the policy in force\n", err.c_str());
}

void Service::stop() {
  stopping_ = true;
  e_.loop->stop();
}

pipeline::VerifierConfig Service::hooks(pipeline::VerifierConfig c) {
  c.transcripts = true;
  // A WebSocket `check` watches its SMTP dialogue live: each line as a `transcript` message.
  c.watched = [this](uint64_t id) {
    if (id >> kJobIdShift) return false;  // jobs' addresses: nobody watches them
    auto it = pending_.find(id);
    if (it == pending_.end()) return false;
    for (const auto& w : it->second.waiters)
      if (w.ws_client) return true;
    return false;
  };
  c.on_transcript_line = [this](uint64_t id, std::string_view line) {
    auto it = pending_.find(id);
    if (it == pending_.end()) return;
    for (const auto& w : it->second.waiters) {
      if (!w.ws_client) continue;
      auto ws = ws_.find(w.ws_client);
      if (ws == ws_.end()) continue;
      // A server's reply may hold any bytes: invalid UTF-8 becomes U+FFFD, never an exception.
      ws->second->send_text(
          json{{"type", "transcript"}, {"id", w.ws_request_id}, {"line", line}}.dump(
              -1, ' ', false, json::error_handler_t::replace));
    }
  };
  c.on_starved = [this] {
    for (auto& [id, j] : jobs_)
      if (j->runner && !j->finished) j->runner->on_starved();
  };
  c.on_stage = [this](smtp::Stage s, std::chrono::nanoseconds d) {
    stage_[static_cast<int>(s)].observe(std::chrono::duration<double>(d).count());
  };
  c.on_session = [this] { connects_.add(Clock::now()); };
  c.on_reply = [this](sched::GroupId g, int cls) {
    if (g >= replies_.size()) replies_.resize(g + 1);
    ++replies_[g][std::clamp(cls, 0, 5)];
  };
  c.on_event = [this](const sched::SchedEvent& e) {
    if (e.kind == sched::SchedEvent::Kind::Blocked) blocks_[{e.source, e.group}] = e.until;
    if (http_) {
      const auto& sch = verifier_.scheduler();
      static constexpr const char* kKinds[] = {"backoff", "recovered", "blocked"};
      json ev = {{"type", "event"},
                 {"event", kKinds[static_cast<int>(e.kind)]},
                 {"group", sch.group_name(e.group)},
                 {"source", sch.source_name(e.source)},
                 {"window", e.aimd.window},
                 {"rate_factor", e.aimd.rate_factor},
                 {"reason", e.reason}};
      char text[256];
      std::snprintf(text, sizeof text, "%s: MX group %s%s%s (window %.2f, rate x%.3f)",
                    kKinds[static_cast<int>(e.kind)], sch.group_name(e.group).c_str(),
                    e.reason.empty() ? "" : ", ", e.reason.c_str(), e.aimd.window,
                    e.aimd.rate_factor);
      ev["text"] = text;
      publish_event(std::move(ev));
    }
  };
  // The same events as text on stderr (the WebSocket gets them structured, above).
  c.log = [this](const std::string& line) { std::fprintf(diag_, "mxprobe: %s\n", line.c_str()); };
  c.catch_all_known = [this](const std::string& d) { return cached_catch_all(cache_.get(), d); };
  c.catch_all_learned = [this](const std::string& d, std::optional<bool> yes) {
    remember_catch_all(cache_writer_.get(), d, yes, o_.cache_ttl);
  };
  return c;
}

// Stamps an event with the server's time, sends it to the WebSocket clients and keeps it for
// the ones that connect later (the last kEventHistory).
void Service::publish_event(json ev) {
  ev["time_ms"] = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
  const std::string live = ev.dump(-1, ' ', false, json::error_handler_t::replace);
  ev["history"] = true;
  if (event_history_.size() >= kEventHistory) event_history_.pop_front();
  event_history_.push_back(ev.dump(-1, ' ', false, json::error_handler_t::replace));
  if (http_) http_->broadcast_text(live);
}

json Service::policy_json() const {
  const sched::Policy& p = verifier_.scheduler().policy();
  json providers = json::array();
  for (uint32_t i = 0; i < p.provider_count(); ++i)
    providers.push_back({{"name", p.provider_name(i)},
                         {"match", p.provider_patterns(i)},
                         {"group", group_settings_json(p.group_settings(i))},
                         {"domain", domain_settings_json(p.domain_settings("", i))}});
  json groups = json::object();
  for (const auto& [g, keys] : live_groups_)
    groups[g] = keys;
  return {{"file", e_.options.policy_file},
          {"overrides", overrides_},
          {"live_groups", groups},
          {"effective",
           {{"max_sessions", p.max_sessions()},
            {"defaults",
             {{"group", group_settings_json(p.group_settings(std::nullopt))},
              {"domain", domain_settings_json(p.domain_settings("", std::nullopt))}}},
            {"providers", providers}}}};
}

// Builds the policy from file + command line + `overrides` + one [provider] per live group
// change, and swaps it in; on error nothing changes.
bool Service::apply_overrides(const std::string& overrides,
                              const std::map<std::string, json>& groups, std::string& err) {
  std::vector<sched::PolicySource> docs;
  if (!e_.options.policy_file.empty()) {
    auto text = sched::read_policy_file(e_.options.policy_file);
    if (!text) {
      err = text.error().to_string();
      return false;
    }
    docs.push_back({std::move(*text), e_.options.policy_file});
  }
  docs.push_back({policy_overrides(e_.options), "<command line>"});
  docs.push_back({overrides, "<PUT /v1/policy>"});
  std::string live;
  int n = 0;
  for (const auto& [host, keys] : groups) {
    live += "[provider.live_" + std::to_string(n++) + "]\nmatch = [" + json(host).dump() + "]\n";
    for (const auto& [k, v] : keys.items())
      live += k + " = " + v.dump() + "\n";
  }
  docs.push_back({live, "<live group changes>"});
  auto p = sched::build_policy(docs);
  if (!p) {
    err = p.error().to_string();
    return false;
  }
  overrides_ = overrides;
  live_groups_ = groups;
  verifier_.set_policy(std::make_shared<const sched::Policy>(std::move(*p)));
  return true;
}

std::string Service::prometheus() const {
  std::string out;
  out +=
      "# HELP mxprobe_verifications_total Records answered (verified, from the cache, "
      "repeats, syntax errors), by verdict and reason.\n";
  out += "# TYPE mxprobe_verifications_total counter\n";
  // Every reason with its verdict from the start (at 0); a pair outside that table once seen.
  for (int v = 0; v < kVerdictCount; ++v)
    for (int r = 0; r < kReasonCount; ++r)
      if (by_verdict_reason_[v][r] || kReasonVerdict[r] == static_cast<Verdict>(v))
        out += "mxprobe_verifications_total{verdict=\"" +
               std::string(to_string(static_cast<Verdict>(v))) + "\",reason=\"" +
               std::string(to_string(static_cast<Reason>(r))) + "\"} " +
               std::to_string(by_verdict_reason_[v][r]) + "\n";
  const auto& vs = verifier_.stats();
  auto counter = [&](const char* name, const char* help, uint64_t v) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " counter\n" + name +
           " " + std::to_string(v) + "\n";
  };
  auto gauge = [&](const char* name, const char* help, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.6g", v);
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " gauge\n" + name +
           " " + buf + "\n";
  };
  counter("mxprobe_smtp_sessions_total", "SMTP sessions opened.", vs.sessions_started);
  counter("mxprobe_smtp_connect_failures_total", "TCP connects that failed.", vs.connect_failures);
  counter("mxprobe_retries_total", "Tries given another go later.", vs.retries);
  counter("mxprobe_failovers_total", "Moves to the next MX host.", vs.failovers);
  const auto& ds = e_.resolver->stats();
  counter("mxprobe_dns_lookups_total", "Domain lookups.", ds.lookups);
  counter("mxprobe_dns_cache_hits_total", "Domain lookups answered from the cache.", ds.cache_hits);
  counter("mxprobe_dns_queries_total", "DNS queries sent.", ds.queries);
  counter("mxprobe_http_verify_requests_total", "Real-time verifications asked.", requests_);
  counter("mxprobe_result_cache_hits_total",
          "Records answered from the results cache (real time and jobs).", cache_hits_);
  gauge("mxprobe_smtp_active_sessions", "SMTP sessions open now.", vs.active_sessions);
  gauge("mxprobe_pending_addresses", "Addresses submitted and not finished.",
        static_cast<double>(verifier_.pending()));
  auto ss = verifier_.scheduler().stats();
  gauge("mxprobe_scheduler_waiting_addresses", "Addresses waiting for a retry time.",
        static_cast<double>(ss.waiting));
  gauge("mxprobe_scheduler_groups", "MX groups known.", static_cast<double>(ss.groups));
  counter("mxprobe_scheduler_backoffs_total", "Counted back-off events.", ss.backoffs);
  counter("mxprobe_scheduler_blocks_total", "Block replies (source IP rested).", ss.blocks);
  gauge("mxprobe_websocket_clients", "WebSocket clients connected.",
        static_cast<double>(http_ ? http_->ws_clients() : 0));
  out += "# HELP mxprobe_jobs Bulk jobs known, by state.\n# TYPE mxprobe_jobs gauge\n";
  std::map<std::string, uint64_t> by_state = {
      {"running", 0}, {"paused", 0}, {"finished", 0}, {"cancelled", 0}, {"failed", 0}};
  for (const auto& [id, j] : jobs_)
    ++by_state[job_state(*j)];
  for (const auto& [state, n] : by_state)
    out +=
        "mxprobe_jobs{state=\"" + metrics::label_value(state) + "\"} " + std::to_string(n) + "\n";
  out +=
      "# HELP mxprobe_build_info The build: version and compiler (value 1).\n"
      "# TYPE mxprobe_build_info gauge\n"
      "mxprobe_build_info{version=\"" +
      metrics::label_value(MXP_VERSION) + "\",compiler=\"" + metrics::label_value(kCompiler) +
      "\"} 1\n";
  metrics::append_process_metrics(out);
  if (const pipeline::ProxyPool* px = verifier_.proxies()) {
    // Per SOCKS5 proxy, labelled socks5://host:port (never the credentials).
    auto per_proxy = [&](const char* name, const char* type, const char* help, auto value) {
      out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
      for (size_t i = 0; i < px->size(); ++i)
        out += std::string(name) + "{proxy=\"" + px->url(i).display + "\"} " +
               std::to_string(value(i)) + "\n";
    };
    per_proxy("mxprobe_proxy_up", "gauge", "1 while the proxy is in rotation.",
              [&](size_t i) { return px->up(i) ? 1 : 0; });
    per_proxy("mxprobe_proxy_sessions_total", "counter", "SMTP sessions through the proxy.",
              [&](size_t i) { return px->sessions(i); });
    per_proxy("mxprobe_proxy_failures_total", "counter",
              "Sessions or health checks that found the proxy unusable.",
              [&](size_t i) { return px->health().failures(i); });
    per_proxy("mxprobe_proxy_checks_total", "counter", "Health checks run.",
              [&](size_t i) { return px->health().checks(i); });
  }
  out += "# HELP mxprobe_smtp_stage_seconds Time waiting in each SMTP stage.\n";
  out += "# TYPE mxprobe_smtp_stage_seconds histogram\n";
  for (int i = 0; i < smtp::kStageCount; ++i)
    stage_[i].append_prometheus(out, "mxprobe_smtp_stage_seconds",
                                "stage=\"" + std::string(smtp::kStageNames[i]) + "\"");
  return out;
}

json Service::snapshot() {
  const auto now = Clock::now();
  json rates = json::object(), series = json::object(), totals = json::object();
  uint64_t per_verdict[kVerdictCount] = {};
  for (int v = 0; v < kVerdictCount; ++v) {
    for (int r = 0; r < kReasonCount; ++r)
      per_verdict[v] += by_verdict_reason_[v][r];
    std::string name(to_string(static_cast<Verdict>(v)));
    rates[name] = finished_[v].rate(now, 5);
    series[name] = finished_[v].series(now, 60);
    totals[name] = per_verdict[v];
  }
  json reasons = json::object();
  for (int r = 0; r < kReasonCount; ++r) {
    uint64_t n = 0;
    for (int v = 0; v < kVerdictCount; ++v)
      n += by_verdict_reason_[v][r];
    if (n) reasons[std::string(to_string(static_cast<Reason>(r)))] = n;
  }
  json latency = json::object();
  for (int i = 0; i < smtp::kStageCount; ++i) {
    const auto& h = stage_[i];
    if (!h.count()) continue;
    latency[std::string(smtp::kStageNames[i])] = {{"count", h.count()},
                                                  {"p50_ms", h.quantile(0.5) * 1000},
                                                  {"p90_ms", h.quantile(0.9) * 1000},
                                                  {"p99_ms", h.quantile(0.99) * 1000}};
  }
  const auto& ds = e_.resolver->stats();
  dns_queries_.add(now, ds.queries - last_dns_queries_);
  last_dns_queries_ = ds.queries;
  // The busiest MX groups: the top N by open sessions and queued work (no per-session cost).
  const auto& sch = verifier_.scheduler();
  std::vector<std::pair<uint64_t, sched::GroupId>> load;
  for (sched::GroupId g = 0; g < sch.group_count(); ++g) {
    auto v = sch.group_view(g, now);
    load.push_back({uint64_t(v.sessions) * 1000 + v.ready, g});
  }
  const size_t n = std::min(kTopGroups, load.size());
  std::partial_sort(load.begin(), load.begin() + static_cast<long>(n), load.end(),
                    std::greater<>());
  json groups = json::array();
  for (size_t i = 0; i < n; ++i) {
    auto v = sch.group_view(load[i].second, now);
    groups.push_back({{"name", v.name},
                      {"provider", v.provider},
                      {"sessions", v.sessions},
                      {"session_limit", v.session_limit},
                      {"ready", v.ready},
                      {"connect_rate", v.connect_rate},
                      {"rcpt_rate", v.rcpt_rate},
                      {"window", v.aimd.window},
                      {"rate_factor", v.aimd.rate_factor},
                      {"backing_off", v.aimd.rate_factor < 1.0},
                      {"backoffs", v.aimd.decreases},
                      {"parked", v.parked_on_timer || v.parked_on_sessions},
                      {"replies", reply_classes(load[i].second)},
                      {"buckets",
                       {{"connect", {{"tokens", v.connect_tokens}, {"burst", v.connect_burst}}},
                        {"rcpt", {{"tokens", v.rcpt_tokens}, {"burst", v.rcpt_burst}}}}},
                      {"last_reply", last_reply_json(v.name)}});
  }
  // Source IPs: warm-up level and the MX groups that blocked them (until when).
  std::erase_if(blocks_, [&](const auto& kv) { return kv.second <= now; });
  json sources = json::array();
  for (size_t s = 0; s < sch.source_count(); ++s) {
    const auto sid = static_cast<sched::SourceId>(s);
    const std::string& name = sch.source_name(sid);
    json blocked = json::array();
    for (const auto& [key, until] : blocks_)
      if (key.first == sid)
        blocked.push_back({{"group", sch.group_name(key.second)},
                           {"for_s", std::chrono::duration<double>(until - now).count()}});
    // A SOCKS5 proxy out of rotation (failed health check) is "down".
    const bool down = verifier_.proxies() && !verifier_.proxies()->up(s);
    sources.push_back({{"ip", name.empty() ? "(kernel's choice)" : name},
                       {"warmup_level", sch.warmup_state(sid, now).level},
                       {"state", down              ? "down"
                                 : blocked.empty() ? "ok"
                                                   : "blocked"},
                       {"blocked_by", blocked}});
  }
  const auto& vs = verifier_.stats();
  auto ss = sch.stats();
  return {{"type", "snapshot"},
          {"version", kProtocolVersion},
          {"seq", ++snapshot_seq_},
          {"time_ms", std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count()},
          {"totals", totals},
          {"reasons", reasons},
          {"rates", rates},
          {"series", series},
          {"sessions", vs.active_sessions},
          {"pending", verifier_.pending()},
          {"waiting", ss.waiting},
          {"connects_per_s", connects_.rate(now, 5)},
          {"dns",
           {{"queries_per_s", dns_queries_.rate(now, 5)},
            {"cache_hit_rate",
             ds.lookups ? double(ds.cache_hits + ds.shared) / double(ds.lookups) : 0.0}}},
          {"latency", latency},
          {"groups", groups},
          {"domains", domains_json()},
          {"sources", sources},
          {"jobs", jobs_summary()},
          {"cache_hits", cache_hits_}};
}

void Service::on_timer(loop::TimerId, uint64_t cookie) {
  if (cookie == 1) {
    download_timer_armed_ = false;
    return pump_downloads();
  }
  if (cookie == 2) return reap_probes();
  const auto now = Clock::now();
  expire(now);
  release_ended_jobs();
  if (http_ && http_->ws_clients()) http_->broadcast_latest(snapshot().dump());
  if (!stopping_)
    tick_ = e_.loop->add_timer(e_.loop->now() + std::chrono::milliseconds(250), *this);
}

// `{"cmd":"probe","target":T,"domain":D,"options":{...}}`: the CLI's options, bounded.
bool Service::probe_options(const json& req, ProbeOptions& po, std::string& err) {
  if (!req.contains("target") || !req["target"].is_string() ||
      req["target"].get<std::string>().empty()) {
    err = "probe needs a target: a domain, HOST[:PORT] or an IP address";
    return false;
  }
  po.target = req["target"].get<std::string>();
  if (req.contains("domain")) {
    if (!req["domain"].is_string()) {
      err = "domain: a string";
      return false;
    }
    po.domain = req["domain"].get<std::string>();
  }
  if (!req.contains("options")) return true;
  if (!req["options"].is_object()) {
    err = "options: an object";
    return false;
  }
  struct Num {
    const char* key;
    double lo, hi;
    std::function<void(double)> set;
  };
  const Num nums[] = {
      {"samples", 0, 20, [&](double v) { po.samples = int(v); }},
      {"max_connections", 0, 50, [&](double v) { po.max_connections = int(v); }},
      {"max_rate", 0, 50, [&](double v) { po.max_rate = v; }},
      {"rate_step", 0.1, 10, [&](double v) { po.rate_step = v; }},
      {"bad_rcpts", 0, 50, [&](double v) { po.bad_rcpts = int(v); }},
      {"greylist_step", 0.1, 600, [&](double v) { po.greylist_step = v; }},
      {"greylist_wait", 0, 1800, [&](double v) { po.greylist_wait = v; }},
      {"timeout", 1, 120, [&](double v) { po.timeout = v; }},
      {"tarpit_ms", 1, 60000, [&](double v) { po.tarpit_ms = v; }},
  };
  for (const auto& [k, v] : req["options"].items()) {
    bool known = false;
    for (const auto& n : nums) {
      if (k != n.key) continue;
      known = true;
      if (!v.is_number() || v.get<double>() < n.lo || v.get<double>() > n.hi) {
        err = "options." + k + ": a number from " + json(n.lo).dump() + " to " + json(n.hi).dump();
        return false;
      }
      n.set(v.get<double>());
    }
    for (auto [name, flag] : {std::pair<const char*, bool*>{"no_concurrency", &po.no_concurrency},
                              {"no_rate", &po.no_rate},
                              {"no_error_limit", &po.no_error_limit}}) {
      if (k != name) continue;
      known = true;
      if (!v.is_boolean()) {
        err = "options." + k + ": true or false";
        return false;
      }
      *flag = v.get<bool>();
    }
    if (!known) {
      err = "unknown probe option: " + k;
      return false;
    }
  }
  return true;
}

void Service::start_probe(uint64_t client, json request_id, ProbeOptions po) {
  const uint64_t key = ++next_probe_;
  probes_[key] = RunningProbe{client, request_id, nullptr, false};
  resolve_probe_target(*e_.resolver, po, e_.options.smtp_port, e_.config.sources,
                       [this, key, po](std::optional<ProbeTarget> target, std::string why) {
                         auto it = probes_.find(key);
                         if (it == probes_.end()) return;
                         if (!target) {
                           send_probe(it->second, json{{"error", why}});
                           probes_.erase(it);
                           return;
                         }
                         it->second.probe = std::make_unique<Probe>(
                             *e_.loop, po, e_.config.session, *target, [this, key] {
                               // Not inside the probe's own call:
                               // reaped from a timer.
                               probes_[key].done = true;
                               e_.loop->add_timer(e_.loop->now(), *this, 2);
                             });
                         it->second.probe->start();
                       });
}

void Service::reap_probes() {
  for (auto it = probes_.begin(); it != probes_.end();) {
    if (!it->second.done) {
      ++it;
      continue;
    }
    send_probe(it->second, json{{"report", probe::to_json(it->second.probe->report())}});
    it = probes_.erase(it);
  }
}

void Service::send_probe(const RunningProbe& p, json body) {
  body["type"] = "probe";
  body["id"] = p.request_id;
  auto ws = ws_.find(p.client);
  if (ws != ws_.end())
    ws->second->send_text(body.dump(-1, ' ', false, json::error_handler_t::replace));
}

void Service::on_open(server::WsClient& c) {
  ws_[c.id()] = &c;
  c.send_text(json{{"type", "hello"}, {"version", kProtocolVersion}, {"server", "mxprobe"}}.dump());
  // The recent events first, oldest first (`history: true`): a console opened now sees what
  // happened before it.
  for (const auto& ev : event_history_)
    c.send_text(ev);
  c.send_latest(snapshot().dump());
}

// A command that throws (a bug) answers an error ack; it never takes the server down.
void Service::on_message(server::WsClient& c, const http::WsMessage& m) {
  try {
    command(c, m);
  } catch (const std::exception& e) {
    c.send_text(json{{"type", "ack"}, {"id", nullptr}, {"ok", false}, {"error", e.what()}}.dump());
  }
}

void Service::command(server::WsClient& c, const http::WsMessage& m) {
  // Bounded before any tree is built: copying or dumping a deeply nested "id" would recurse.
  json req;
  std::string perr;
  const bool parsed = ::mxp::json::parse_bounded(m.data, ::mxp::json::kCommandLimits, req, perr);
  auto ack = [&](const json& id, bool ok, std::string_view err = {}, json extra = nullptr) {
    json a = {{"type", "ack"}, {"id", id}, {"ok", ok}};
    if (!ok) a["error"] = err;
    if (!extra.is_null()) a["data"] = extra;
    c.send_text(a.dump());
  };
  if (!parsed) return ack(nullptr, false, perr);
  if (!req.is_object()) return ack(nullptr, false, "not a JSON object");
  json id = req.contains("id") ? req["id"] : json();
  if (!req.contains("cmd") || !req["cmd"].is_string())
    return ack(id, false,
               "cmd: a string (ping, check, probe, set_group_policy, pause, resume, cancel, "
               "delete)");
  const std::string cmd = req["cmd"].get<std::string>();
  if (cmd == "ping") return ack(id, true);
  if (cmd == "probe") {
    ProbeOptions po;
    std::string err;
    if (!probe_options(req, po, err)) return ack(id, false, err);
    if (probes_.size() >= kMaxProbes)
      return ack(id, false, "two probes are running already: wait for one to end");
    ack(id, true);
    return start_probe(c.id(), id, std::move(po));
  }
  if (cmd == "check") {
    if (!req.contains("email") || !req["email"].is_string())
      return ack(id, false, "check needs an email");
    ack(id, true);
    Waiter w;
    w.ws_client = c.id();
    w.transcript = true;
    w.ws_request_id = id;
    return check(req["email"].get<std::string>(), std::move(w));
  }
  if (cmd == "set_group_policy") {
    std::string group =
        req.contains("group") && req["group"].is_string() ? req["group"].get<std::string>() : "";
    if (group.empty() || !req.contains("set") || !req["set"].is_object())
      return ack(id, false, "set_group_policy needs group and set {key: value}");
    if (!live_groups_.count(group) && live_groups_.size() >= kMaxLiveGroups)
      return ack(id, false,
                 "at most " + std::to_string(kMaxLiveGroups) +
                     " groups may have live changes: put lasting ones in the policy file");
    auto groups = live_groups_;
    for (const auto& [k, v] : req["set"].items()) {
      if (!live_key(k) || !v.is_number()) return ack(id, false, "unknown or non-numeric key: " + k);
      groups[group][k] = v;
    }
    std::string err;
    if (!apply_overrides(overrides_, groups, err)) return ack(id, false, err);
    return ack(id, true, {}, policy_json()["live_groups"]);
  }
  if (cmd == "delete") {
    if (!req.contains("job") || !req["job"].is_number_unsigned())
      return ack(id, false, "delete needs job: a job id (a number)");
    std::string err;
    if (!job_delete(req["job"].get<uint64_t>(), err)) return ack(id, false, err);
    return ack(id, true);
  }
  if (cmd == "pause" || cmd == "resume" || cmd == "cancel") {
    if (!req.contains("job") || !req["job"].is_number_unsigned())
      return ack(id, false, cmd + " needs job: a job id (a number)");
    const uint64_t job = req["job"].get<uint64_t>();
    std::string err;
    if (!job_action(job, cmd, err)) return ack(id, false, err);
    return ack(id, true, {}, job_json(*jobs_.at(job)));
  }
  ack(id, false, "unknown command: " + cmd);
}

json Service::domains_json() const {
  json out = json::array();
  for (const auto& d : verifier_.busiest_domains(kTopGroups))
    out.push_back({{"name", d.name},
                   {"group", d.group},
                   {"pending", d.pending},
                   {"sessions", d.sessions},
                   {"catch_all", d.catch_all ? json(*d.catch_all) : json(nullptr)}});
  return out;
}

json Service::last_reply_json(const std::string& group) const {
  auto it = last_reply_.find(group);
  return it == last_reply_.end() ? json(nullptr) : json(it->second);
}

json Service::reply_classes(sched::GroupId g) const {
  std::array<uint64_t, 6> r{};
  if (g < replies_.size()) r = replies_[g];
  return {{"2xx", r[2]}, {"4xx", r[4]}, {"5xx", r[5]}, {"none", r[0]}};
}

}  // namespace mxp::app::serve_impl

namespace mxp::app {

using serve_impl::Service;

int run_serve(const ServeOptions& opts, const EngineOptions& eng, std::FILE* diag) {
  std::string token = opts.token;
  if (token.empty() && !opts.token_file.empty()) {
    std::ifstream f(opts.token_file);
    if (!f || !std::getline(f, token) || token.empty()) {
      std::fprintf(diag, "mxprobe serve: cannot read a token from %s\n", opts.token_file.c_str());
      return 2;
    }
  }
  ServeOptions o = opts;
  if (o.data.empty()) {
    const char* xdg = std::getenv("XDG_DATA_HOME");
    const char* home = std::getenv("HOME");
    o.data = xdg && *xdg     ? std::string(xdg) + "/mxprobe/jobs"
             : home && *home ? std::string(home) + "/.local/share/mxprobe/jobs"
                             : std::string("mxprobe-jobs");
  }
  if (!make_parent_dirs(o.data + "/x")) {
    std::fprintf(diag, "mxprobe serve: cannot create %s\n", o.data.c_str());
    return 2;
  }
  Engine e;
  if (!make_engine(eng, true, e, diag)) return 3;
  Service svc(e, o, diag);
  svc.set_token(token);
  std::string err;
  if (!svc.start(err)) {
    std::fprintf(diag, "mxprobe serve: %s\n", err.c_str());
    return 2;
  }
  std::fprintf(diag, "mxprobe serve: %s; listening on http://%s:%u/%s\n", e.loop_why.c_str(),
               opts.listen.substr(0, opts.listen.rfind(':')).c_str(), svc.port(),
               token.empty() ? "" : " (token required)");
  std::fflush(diag);
  e.loop->run();
  std::fprintf(diag, "mxprobe serve: stopped\n");
  return 0;
}

}  // namespace mxp::app
