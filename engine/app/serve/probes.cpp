// `mxprobe serve`: WebSocket `probe`: probe-server on the service's loop (docs/probe.md).
#include "app/serve/service.hpp"

namespace mxp::app::serve_impl {

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

}  // namespace mxp::app::serve_impl
