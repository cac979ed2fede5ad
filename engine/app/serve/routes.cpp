// `mxprobe serve`: start-up (results cache, HTTP server) and the HTTP routes (docs/api.md).
#include "app/serve/service.hpp"

namespace mxp::app::serve_impl {

bool Service::start(std::string& err) {
  if (!o_.no_cache) {
    std::string path = o_.cache.empty() ? default_cache_path() : o_.cache;
    if (!path.empty() && make_parent_dirs(path)) {
      auto c = store::SqliteStore::open(path);
      auto w = c ? store::Writer::open(path, diag_, "mxprobe serve: cache (results not cached)")
                 : store::Expected<std::unique_ptr<store::Writer>>(core::unexpected(c.error()));
      if (w) {
        cache_ = std::move(*c);
        cache_writer_ = std::move(*w);
      } else {
        std::fprintf(diag_, "mxprobe serve: cache %s: %s (going on without it)\n", path.c_str(),
                     w.error().message.c_str());
      }
    }
  }
  server::ServerOptions so;
  so.listen = o_.listen;
  so.token = token_;
  // Job uploads are streamed to disk (route_streamed); other bodies are small JSON.
  so.limits.max_body_bytes = 1 << 20;
  so.limits.max_stream_body_bytes = o_.max_upload;
  auto made = server::HttpServer::create(*e_.loop, so);
  if (!made) {
    err = made.error();
    return false;
  }
  http_ = std::move(made).value();
  auto self = this;
  // Public: also tells the console whether to ask for a token before calling the API.
  route("GET", "/healthz", [self](const http::Request&, server::Responder r) {
    r.respond(http::Response::json(200, self->token_.empty() ? R"({"status":"ok","token":false})"
                                                             : R"({"status":"ok","token":true})"));
  });
  route("GET", "/v1/verify", [self](const http::Request& q, server::Responder r) {
    const std::string* email = q.param("email");
    const std::string* t = q.param("timeout");
    const std::string* tr = q.param("transcript");
    self->verify(email ? *email : std::string(), !email, t ? *t : std::string(),
                 tr && (*tr == "1" || *tr == "true"), std::move(r));
  });
  route("POST", "/v1/verify", [self](const http::Request& q, server::Responder r) {
    auto parsed = ::mxp::json::parse_bounded<json>(q.body, ::mxp::json::kBodyLimits);
    if (!parsed)
      return r.respond(error(400, "bad_request",
                             "expected a JSON object {\"email\": \"...\"}: " + parsed.error()));
    json& body = *parsed;
    if (!body.is_object() || !body.contains("email") || !body["email"].is_string())
      return r.respond(error(400, "bad_request", "expected a JSON object {\"email\": \"...\"}"));
    std::string timeout;
    if (body.contains("timeout") && body["timeout"].is_number())
      timeout = std::to_string(body["timeout"].get<double>());
    const bool transcript = body.contains("transcript") && body["transcript"].is_boolean() &&
                            body["transcript"].get<bool>();
    if (body.contains("transcript") && !body["transcript"].is_boolean())
      return r.respond(error(400, "bad_request", "transcript: true or false"));
    if (body.contains("timeout") && !body["timeout"].is_number())
      return r.respond(error(400, "bad_request", "timeout: a number of seconds"));
    self->verify(body["email"].get<std::string>(), false, timeout, transcript, std::move(r));
  });
  // A domain check (docs/api.md): DNS and one session through the scheduler.
  route("GET", "/v1/domains/*",
        [self](const http::Request& q, server::Responder r) { self->domain_get(q, std::move(r)); });
  // The start-up checks' report (docs/api.md): the latest, or a new run with ?refresh=1 (which
  // sends traffic, so it asks for X-Mxprobe: 1 as writes do).
  route("GET", "/v1/doctor", [self](const http::Request& q, server::Responder r) {
    if (!self->health_) return r.respond(error(404, "not_found", "no start-up checks here"));
    const std::string* refresh = q.param("refresh");
    const bool again = refresh && (*refresh == "1" || *refresh == "true");
    if (again && q.header("x-mxprobe") == nullptr)
      return r.respond(error(403, "forbidden",
                             "GET /v1/doctor?refresh=1 runs the checks again: it needs the "
                             "header X-Mxprobe: 1"));
    if (!again && self->health_->report())
      return r.respond(json_response(200, json(self->health_->report_json())));
    auto held = std::make_shared<server::Responder>(std::move(r));
    self->health_->refresh(
        [self, held] { held->respond(json_response(200, json(self->health_->report_json()))); });
  });
  route("GET", "/v1/policy", [self](const http::Request&, server::Responder r) {
    r.respond(json_response(200, self->policy_json()));
  });
  route("PUT", "/v1/policy", [self](const http::Request& q, server::Responder r) {
    std::string err;
    if (!self->apply_overrides(q.body, self->live_groups_, err))
      return r.respond(error(400, "invalid_policy", err));
    r.respond(json_response(200, self->policy_json()));
  });
  route("GET", "/metrics", [self](const http::Request&, server::Responder r) {
    http::Response resp;
    resp.status = 200;
    resp.headers.push_back({"Content-Type", "text/plain; version=0.0.4; charset=utf-8"});
    resp.body = self->prometheus();
    r.respond(std::move(resp));
  });
  // The cluster's live nodes; a node without --cluster has none to show.
  route("GET", "/v1/cluster", [self](const http::Request&, server::Responder r) {
    if (!self->cluster_)
      return r.respond(error(404, "no_cluster",
                             "this node runs without --cluster: there is no cluster to list"));
    auto rr = std::make_shared<server::Responder>(std::move(r));
    self->cluster_->describe([rr](int status, std::string body) {
      rr->respond(http::Response::json(status, std::move(body)));
    });
  });
  http_->route_streamed("POST", "/v1/jobs", [self](const http::Request& q, server::Responder r) {
    return self->upload_job(q, std::move(r));
  });
  route("GET", "/v1/jobs", [self](const http::Request&, server::Responder r) {
    if (self->cluster_) return self->list_cluster_jobs(std::move(r));
    json list = json::array();
    for (auto& [id, j] : self->jobs_)
      list.push_back(self->job_json(*j));
    r.respond(json_response(200, json{{"jobs", list}}));
  });
  route("GET", "/v1/jobs/*",
        [self](const http::Request& q, server::Responder r) { self->job_get(q, std::move(r)); });
  route("POST", "/v1/jobs/*",
        [self](const http::Request& q, server::Responder r) { self->job_post(q, std::move(r)); });
  route("DELETE", "/v1/jobs/*", [self](const http::Request& q, server::Responder r) {
    std::string rest, err;
    Job* j = self->job_of(q.path, rest);
    if (!j && self->cluster_ && rest.empty()) return self->remote_job(q, std::move(r));
    if (!j || !rest.empty()) return r.respond(error(404, "not_found", "no such job"));
    json gone = self->job_json(*j);
    if (!self->job_delete(j->id, err)) return r.respond(error(409, "conflict", err));
    gone["state"] = "deleted";
    r.respond(json_response(200, gone));
  });
  http_->websocket("/ws", *this);
  if (!o_.console.empty()) http_->static_dir(o_.console);
  tick_ = e_.loop->add_timer(e_.loop->now() + std::chrono::milliseconds(250), *this);
  // Job ids go on from the highest directory under --data: a restart never reuses one.
  restore_jobs();
  cluster_start();
  return true;
}

// Every route through here: a handler that throws (a bug) answers 500 (the Responder does it
// when unwound) and the server goes on.
void Service::route(std::string method, std::string path, server::Handler h) {
  http_->route(std::move(method), std::move(path),
               [this, h = std::move(h)](const http::Request& q, server::Responder r) {
                 try {
                   h(q, std::move(r));
                 } catch (const std::exception& e) {
                   std::fprintf(diag_, "mxprobe serve: %s %s: %s\n", q.method.c_str(),
                                q.path.c_str(), e.what());
                 }
               });
}

}  // namespace mxp::app::serve_impl
