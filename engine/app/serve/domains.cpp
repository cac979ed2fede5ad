// `mxprobe serve`: GET /v1/domains/{domain} (docs/api.md), the domain check of `mxprobe check
// --domain` on the shared verifier: answered from a report a moment ago, or when the check
// ends, or at the timeout with "still checking".
#include "app/domain_check.hpp"
#include "app/serve/service.hpp"

namespace mxp::app::serve_impl {

void Service::domain_get(const http::Request& q, server::Responder r) {
  const std::string name = q.path.substr(std::string("/v1/domains/").size());
  if (name.empty() || name.find('/') != std::string::npos)
    return r.respond(error(404, "not_found", "GET /v1/domains/DOMAIN (one domain)"));
  auto domain = normalize_domain(name);
  if (!domain) return r.respond(error(400, "bad_request", "'" + name + "' " + domain.error()));
  double timeout = 10;
  if (const std::string* t = q.param("timeout")) {
    char* end = nullptr;
    timeout = std::strtod(t->c_str(), &end);
    if (end == t->c_str() || *end || !(timeout > 0) || timeout > 300)
      return r.respond(error(400, "bad_request", "timeout: seconds, more than 0, at most 300"));
  }
  ++requests_;
  const std::string* refresh = q.param("refresh");
  const bool again = refresh && (*refresh == "1" || *refresh == "true");
  // A report a moment ago: for the cache's TTL, an "unknown" one for a minute. Not for a domain
  // the lists now refuse (they may have changed on SIGHUP): the verifier answers those.
  if (auto it = domain_recent_.find(*domain);
      !again && it != domain_recent_.end() && fresh(it->second)) {
    json rep = json::parse(it->second.json, nullptr, false);
    const std::string mail = rep.is_object() ? rep.value("mail", "") : "";
    if (mail != "denied" && mail != "not_allowed") {
      rep["cached"] = true;
      return r.respond(json_response(200, rep));
    }
  }
  Waiter w;
  w.http = std::move(r);
  w.deadline = Clock::now() +
               std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout));
  if (auto it = by_domain_.find(*domain); it != by_domain_.end()) {
    domain_pending_[it->second].waiters.push_back(std::move(w));
    return;
  }
  const uint64_t id = next_id_++;
  DomainPending& pd = domain_pending_[id];
  pd.domain = *domain;
  pd.waiters.push_back(std::move(w));
  by_domain_[*domain] = id;
  verifier_.check_domain(id, *domain);
}

void Service::on_domain_report(pipeline::DomainReport&& r) {
  auto it = domain_pending_.find(r.id);
  if (it == domain_pending_.end()) return;
  DomainPending pd = std::move(it->second);
  domain_pending_.erase(it);
  by_domain_.erase(pd.domain);
  std::string line;
  pipeline::append_json(r, line);
  json rep = json::parse(line, nullptr, false);
  rep["cached"] = false;
  if (domain_recent_.size() >= kRecentCap) domain_recent_.clear();
  domain_recent_[pd.domain] = Recent{line, Clock::now(), r.mail == "unknown"};
  for (auto& w : pd.waiters)
    if (w.http.alive()) w.http.respond(json_response(200, rep));
}

void Service::expire_domains(Clock::time_point now) {
  for (auto& [id, pd] : domain_pending_) {
    for (auto& w : pd.waiters) {
      if (!w.http.alive() || w.deadline > now) continue;
      pipeline::DomainReport rep;
      rep.domain = pd.domain;
      rep.error = verifier_.resolver_down()
                      ? "still_checking: dns: " + verifier_.resolver_name() + " does not answer"
                      : "still_checking";
      rep.checked_at = std::chrono::system_clock::now();
      std::string line;
      pipeline::append_json(rep, line);
      json j = json::parse(line, nullptr, false);
      j["cached"] = false;
      j["pending"] = true;
      w.http.respond(json_response(200, j));
    }
    std::erase_if(pd.waiters, [](const Waiter& w) { return !w.http.alive(); });
  }
}

}  // namespace mxp::app::serve_impl
