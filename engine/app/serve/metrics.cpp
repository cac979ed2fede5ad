// `mxprobe serve`: Prometheus /metrics, the WebSocket snapshot and the event history.
#include "app/serve/service.hpp"

namespace mxp::app::serve_impl {

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
  if (cluster_) cluster_->append_prometheus(out);
  if (exec_) exec_->append_prometheus(out);
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
    // A SOCKS5 proxy out of rotation (failed health check), or a source IP the start-up checks
    // took out (listed on a blocklist, port 25 blocked), is "down".
    const bool down = (verifier_.proxies() && !verifier_.proxies()->up(s)) || sch.source_down(sid);
    sources.push_back({{"ip", name.empty() ? "(kernel's choice)" : name},
                       {"warmup_level", sch.warmup_state(sid, now).level},
                       {"state", down              ? "down"
                                 : blocked.empty() ? "ok"
                                                   : "blocked"},
                       {"blocked_by", blocked},
                       // The start-up checks' facts (docs/protocol.md); null until checked.
                       {"doctor", health_ ? json(health_->source_json(s)) : json(nullptr)}});
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
          {"cache_hits", cache_hits_},
          // --cluster: the cluster's view (docs/protocol.md); null without.
          {"cluster", cluster_ ? cluster_->view() : json(nullptr)}};
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
