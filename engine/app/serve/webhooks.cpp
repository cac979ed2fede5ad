// `mxprobe serve`: the webhooks of bulk jobs (docs/webhooks.md): the settings POST /v1/jobs
// takes, a sender per job with a webhook (engine/webhook), the end event when the job ends,
// and the delivery log (GET /v1/jobs/ID/webhooks and the job's `webhook` object).
#include "app/serve/service.hpp"

namespace mxp::app::serve_impl {
namespace {

json time_or_null(webhook::Millis ms) {
  if (ms.count() == 0) return nullptr;
  return pipeline::iso8601(std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(ms)));
}

// pending (waiting for its next try), sending (the attempt under way), acknowledged, failed.
std::string delivery_state(const webhook::Delivery& d, int64_t sending) {
  return d.acked.count()    ? "acknowledged"
         : d.failed         ? "failed"
         : sending == d.seq ? "sending"
                            : "pending";
}

}  // namespace

// webhook_url, webhook_secret (or the header Mxprobe-Webhook-Secret, which keeps it out of
// logged URLs), webhook_batch, webhook_interval; all absent: no webhook.
bool Service::webhook_settings(const http::Request& q, std::optional<webhook::Config>& out,
                               std::string& err) {
  auto text = [&](std::string_view name) {
    const std::string* v = q.param(name);
    return v ? *v : std::string();
  };
  std::string secret = text("webhook_secret");
  if (const std::string* h = q.header("mxprobe-webhook-secret"); h && secret.empty()) secret = *h;
  bool given = false;
  out = webhook::parse_config(text("webhook_url"), secret, text("webhook_batch"),
                              text("webhook_interval"), given, err);
  return !given || out.has_value();
}

// The job's sender: configured now (`fresh`, a new job, before its first result) or as its
// journal says (a restored job; none when it has no webhook).
bool Service::start_webhook(Job& j, const webhook::Config* fresh, std::string& err) {
  auto st = webhook::Store::open(j.dir + "/journal.db");
  if (!st) {
    err = st.error().message;
    return false;
  }
  webhook::Config c;
  if (fresh) {
    if (auto done = (*st)->configure(*fresh); !done) {
      err = done.error().message;
      return false;
    }
    c = *fresh;
  } else {
    auto have = (*st)->config();
    if (!have) {
      err = have.error().message;
      return false;
    }
    if (!*have) return true;
    c = **have;
  }
  webhook::SenderOptions so;
  so.user_agent = "mxprobe/" MXP_VERSION;
  so.tls = webhook_tls_;
  so.log = [this](const std::string& line) {
    std::fprintf(diag_, "mxprobe serve: %s\n", line.c_str());
  };
  j.hook = std::make_unique<webhook::Sender>(*e_.loop, e_.resolver.get(), std::move(*st),
                                             std::move(c), j.id, std::move(so));
  return true;
}

// The job ended (now, or before a restart that found its end event not yet made).
void Service::webhook_job_ended(Job& j) {
  if (!j.hook) return;
  json summary = job_json(j);
  summary.erase("webhook");  // the deliveries' own count, not part of the job's result
  j.hook->job_ended(summary.dump(-1, ' ', false, json::error_handler_t::replace));
}

void Service::poll_webhooks() {
  for (auto& [id, j] : jobs_)
    if (j->hook) j->hook->poll();
}

// The job's `webhook` object: its settings (not the secret), the deliveries' totals and the last
// deliveries (from the sender's memory: this is built for every snapshot).
json Service::webhook_json(const Job& j) const {
  if (!j.hook) return nullptr;
  const auto& c = j.hook->config();
  json out = {
      {"url", c.url},
      {"batch", c.batch},
      {"interval_s", c.interval.count() ? json(double(c.interval.count()) / 1000) : json(nullptr)}};
  if (auto t = j.hook->totals()) {
    out["deliveries"] = t->deliveries;
    out["acknowledged"] = t->acked;
    out["pending"] = t->pending;
    out["failed"] = t->failed;
    out["records_waiting"] = t->queued_records;
  }
  json recent = json::array();
  for (const auto& d : j.hook->recent()) {
    const std::string state = delivery_state(d, j.hook->sending());
    recent.push_back({{"seq", d.seq},
                      {"event", d.kind},
                      {"state", state},
                      {"attempts", d.attempts},
                      {"last_status", d.last_status ? json(d.last_status) : json(nullptr)},
                      {"last_error", d.last_error.empty() ? json(nullptr) : json(d.last_error)},
                      {"next_try", state == "pending" ? time_or_null(d.next_try) : json(nullptr)},
                      {"acknowledged", time_or_null(d.acked)}});
  }
  out["recent"] = std::move(recent);
  out["link"] = "/v1/jobs/" + std::to_string(j.id) + "/webhooks";
  return out;
}

// GET /v1/jobs/ID/webhooks[?limit=N]: the last N deliveries (100; at most 1000), oldest first,
// each with its last attempts.
void Service::webhooks_get(Job& j, const http::Request& q, server::Responder r) {
  if (!j.hook)
    return r.respond(
        error(404, "not_found",
              "job " + std::to_string(j.id) +
                  " has no webhook (POST /v1/jobs?webhook_url=...&webhook_secret=...)"));
  size_t limit = 100;
  if (const std::string* l = q.param("limit")) {
    char* end = nullptr;
    const unsigned long long n = std::strtoull(l->c_str(), &end, 10);
    if (l->empty() || *end || n == 0 || n > 1000)
      return r.respond(error(400, "bad_request", "limit: 1 to 1000 deliveries"));
    limit = n;
  }
  auto opened = j.hook->store();
  if (!opened) return r.respond(error(500, "storage", opened.error().message));
  webhook::Store& st = **opened;
  auto ds = st.deliveries(limit);
  if (!ds) return r.respond(error(500, "storage", ds.error().message));
  json list = json::array();
  for (const auto& d : *ds) {
    json attempts = json::array();
    if (auto as = st.attempts(d.seq, 10))
      for (const auto& a : *as)
        attempts.push_back({{"n", a.n},
                            {"at", time_or_null(a.at)},
                            {"status", a.status ? json(a.status) : json(nullptr)},
                            {"error", a.error.empty() ? json(nullptr) : json(a.error)}});
    const std::string state = delivery_state(d, j.hook->sending());
    json item = {{"id", std::to_string(j.id) + "-" + std::to_string(d.seq)},
                 {"seq", d.seq},
                 {"event", d.kind},
                 {"state", state},
                 {"created", time_or_null(d.created)},
                 {"attempts", d.attempts},
                 {"last_status", d.last_status ? json(d.last_status) : json(nullptr)},
                 {"last_error", d.last_error.empty() ? json(nullptr) : json(d.last_error)},
                 {"next_try", state == "pending" ? time_or_null(d.next_try) : json(nullptr)},
                 {"acknowledged", time_or_null(d.acked)},
                 {"attempt_log", attempts}};
    if (d.kind == "records") {
      item["from"] = d.first;
      item["to"] = d.last;
    }
    list.push_back(std::move(item));
  }
  // An error text is ours, but a byte that is not UTF-8 must not cost the whole log.
  r.respond(http::Response::json(
      200, json{{"job", j.id}, {"webhook", webhook_json(j)}, {"deliveries", list}}.dump(
               -1, ' ', false, json::error_handler_t::replace)));
}

}  // namespace mxp::app::serve_impl
