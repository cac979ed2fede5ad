// `mxprobe serve`: the service's life (the verifier's hooks, reload, the tick, stop) and
// run_serve, which opens the engine and starts it.
#include "app/serve/service.hpp"

namespace mxp::app::serve_impl {

// SIGHUP: the file again, with the command line, PUT /v1/policy and live group changes.
void Service::reload() {
  reload_lists(e_.options, verifier_, diag_);
  std::string err;
  if (apply_overrides(overrides_, live_groups_, err))
    std::fprintf(diag_, "mxprobe: SIGHUP: policy reloaded\n");
  else
    std::fprintf(diag_, "mxprobe: SIGHUP: %s; keeping the policy in force\n", err.c_str());
}

void Service::set_health(SourceHealth* h) {
  health_ = h;
  if (h) h->attach(&verifier_);
}

void Service::stop() {
  if (stopping_) return;
  stopping_ = true;
  // A cluster node hands back the chunks it holds (the others take them at once) and deletes its
  // record, so the others see it gone at once.
  if (exec_) exec_->stop();
  if (cluster_) return cluster_->leave([this] { e_.loop->stop(); });
  e_.loop->stop();
}

std::map<std::string, int64_t> Service::cluster_load() const {
  int64_t running = 0;
  for (const auto& [id, j] : jobs_)
    running += job_state(*j) == "running";
  return {{"sessions", verifier_.stats().active_sessions},
          {"pending", static_cast<int64_t>(verifier_.pending())},
          {"verified", static_cast<int64_t>(total_)},
          {"jobs_running", running},
          {"chunks", exec_ ? static_cast<int64_t>(exec_->held()) : 0}};
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
  c.on_resolver_down = [this](const std::string& line) { resolver_down(line); };
  c.on_domain_report = [this](pipeline::DomainReport&& r) { on_domain_report(std::move(r)); };
  // A cluster node: the remote servers' limits are the cluster's (docs/cluster.md).
  if (cluster_)
    c.remote_limits = cluster_->remote_limits(
        [this](sched::GroupId g, sched::DomainId d) { verifier_.remote_limits_changed(g, d); });
  // Catch-all facts: the cluster's first (one probe per domain for the whole cluster), then the
  // local cache's.
  c.catch_all_known = [this](const std::string& d) {
    if (exec_)
      if (auto yes = exec_->known_catch_all(d)) return yes;
    return cached_catch_all(cache_.get(), d);
  };
  c.catch_all_learned = [this](const std::string& d, std::optional<bool> yes) {
    if (exec_) exec_->learned_catch_all(d, yes);
    remember_catch_all(cache_writer_.get(), d, yes, o_.cache_ttl);
  };
  return c;
}

void Service::on_timer(loop::TimerId, uint64_t cookie) {
  if (cookie == 1) {
    download_timer_armed_ = false;
    return pump_downloads();
  }
  if (cookie == 2) return reap_probes();
  const auto now = Clock::now();
  expire(now);
  expire_domains(now);
  release_ended_jobs();
  poll_webhooks();
  publish_jobs(false);
  if (http_ && http_->ws_clients()) http_->broadcast_latest(snapshot().dump());
  if (!stopping_)
    tick_ = e_.loop->add_timer(e_.loop->now() + std::chrono::milliseconds(250), *this);
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
  // Every https:// webhook's TLS: the endpoint's certificate verified against the system's trust
  // store and --webhook-ca-file. Made once, so that a bad file stops serve now and the session
  // tickets of all jobs' deliveries are shared.
  tls::ClientOptions wto;
  wto.verify_peer = true;
  wto.ca_file = opts.webhook_ca_file;
  wto.default_paths_too = true;
  auto webhook_tls = tls::ClientContext::create(wto);
  if (!webhook_tls) {
    std::fprintf(diag, "mxprobe serve: %s: %s\n",
                 opts.webhook_ca_file.empty() ? "webhooks' TLS" : "--webhook-ca-file",
                 webhook_tls.error().c_str());
    return 2;
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
  // The start-up checks (doctor's short form), before anything else runs on the loop.
  SourceHealth health(e, eng.doctor, [diag](const std::string& line) {
    std::fprintf(diag, "mxprobe serve: %s\n", line.c_str());
    std::fflush(diag);
  });
  health.check_now();
  if (health.none_left())
    std::fprintf(diag,
                 "mxprobe serve: no source left in rotation: serving anyway; addresses end "
                 "unknown/blocked until a source passes its re-check (GET /v1/doctor)\n");
  std::string err;
  int rc = 0;
  // The node first: the service's verifier takes the cluster's limits from it.
  std::unique_ptr<ClusterNode> node;
  Service* service = nullptr;
  if (!o.cluster.url.empty()) {
    ClusterNode::Setup cs;
    cs.role = "serve";
    cs.addresses = node_addresses(e.config);
    cs.version = MXP_VERSION;
    cs.who = "mxprobe serve";
    cs.joined = [&service] {
      if (service) service->cluster_joined();
    };
    cs.load = [&service] {
      return service ? service->cluster_load() : std::map<std::string, int64_t>{};
    };
    cs.fatal = [&](const std::string& why) {
      std::fprintf(diag, "mxprobe serve: cluster: %s; stopping (exit %d)\n", why.c_str(),
                   kExitCluster);
      rc = kExitCluster;
      e.loop->stop();
    };
    bool fatal = false;
    node = ClusterNode::create(*e.loop, o.cluster, std::move(cs), diag, err, fatal);
    if (!node) {
      std::fprintf(diag, "mxprobe serve: %s\n", err.c_str());
      return fatal ? kExitCluster : 2;
    }
  }
  Service svc(e, o, diag, node.get());
  service = &svc;
  svc.set_token(token);
  svc.set_webhook_tls(*webhook_tls);
  svc.set_health(&health);
  if (!svc.start(err)) {
    std::fprintf(diag, "mxprobe serve: %s\n", err.c_str());
    return 2;
  }
  if (node) node->start();
  std::fprintf(diag, "mxprobe serve: %s; listening on http://%s:%u/%s\n", e.loop_why.c_str(),
               opts.listen.substr(0, opts.listen.rfind(':')).c_str(), svc.port(),
               token.empty() ? "" : " (token required)");
  std::fflush(diag);
  e.loop->run();
  std::fprintf(diag, "mxprobe serve: stopped\n");
  return rc;
}

}  // namespace mxp::app
