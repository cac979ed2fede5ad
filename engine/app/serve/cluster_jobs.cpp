// `mxprobe serve --cluster`: what a serve node does for the cluster's jobs beyond its own (its
// own are verified by the cluster through their dispatch, jobs.cpp). Job ids are unique in the
// cluster: each node has a number, taken once from Redis and kept under --data, and its jobs are
// numbered NODE * 1,000,000 + n. Every node publishes its jobs' state in one Redis hash, so that
// any node lists every job (GET /v1/jobs) and answers for any (GET /v1/jobs/ID); what only the
// job's owner holds (its results, its actions) is a redirect to the owner's API (docs/cluster.md).
#include <unistd.h>

#include "app/serve/service.hpp"

namespace mxp::app::serve_impl {

namespace {

constexpr uint64_t kJobsPerNode = 1'000'000;

std::string prefix() {
  return cluster::QueueOptions{}.prefix;
}
std::string jobs_key() {
  return prefix() + "jobs";
}

}  // namespace

// The node's number: from --data when a run before had one, else the next from Redis (kept
// then). Until it is known a cluster node takes no job (503: uploads say to try again).
void Service::cluster_start() {
  if (!cluster_) return;
  const std::string path = o_.data + "/cluster_node_number";
  if (std::ifstream f(path); f) {
    uint64_t n = 0;
    if (f >> n && n > 0) return set_node_number(n);
  }
  cluster_->redis().command({"INCR", prefix() + "node_numbers"}, [this, path](cluster::Result&& r) {
    if (!r.ok() || r->type != cluster::Reply::Type::Integer || r->integer <= 0) {
      std::fprintf(diag_,
                   "mxprobe serve: cluster: cannot take a node number from Redis (%s); "
                   "jobs are refused until a restart\n",
                   r.ok() ? r->str.c_str() : r.error().message.c_str());
      return;
    }
    const auto n = static_cast<uint64_t>(r->integer);
    std::ofstream(path, std::ios::binary | std::ios::trunc) << n << "\n";
    set_node_number(n);
  });
}

void Service::set_node_number(uint64_t n) {
  node_number_ = n;
  next_job_ = std::max(next_job_, n * kJobsPerNode + 1);
}

// The API's address as the other nodes redirect to it: the listening address, or this host's
// name when it listens on every address.
std::string Service::api_base() const {
  std::string host = o_.listen.substr(0, o_.listen.rfind(':'));
  if (host.empty() || host == "0.0.0.0" || host == "[::]" || host == "::") {
    char name[256] = {};
    host = ::gethostname(name, sizeof name - 1) == 0 ? name : "localhost";
  }
  return "http://" + host + ":" + std::to_string(port());
}

// Each of this node's jobs in Redis: at most once a second while it runs, at once when its
// state changes (publish_job).
void Service::publish_jobs(bool all) {
  if (!cluster_ || !cluster_->redis_up()) return;
  const auto now = Clock::now();
  if (!all && now - last_publish_ < std::chrono::seconds(1)) return;
  last_publish_ = now;
  std::vector<std::string> argv = {"HSET", jobs_key()};
  const std::string api = api_base();
  for (const auto& [id, j] : jobs_) {
    // An ended job changes no more once published: not formatted again every second.
    if (j->finished && published_.count(id) && !all) continue;
    json doc = job_json(*j);
    std::string text = doc.dump();
    auto& last = published_[id];
    if (last == text) continue;
    last = text;
    doc["node"] = cluster_->name();
    doc["api"] = api;
    argv.push_back(std::to_string(id));
    argv.push_back(doc.dump());
  }
  if (argv.size() > 2) cluster_->redis().command(std::move(argv), [](cluster::Result&&) {});
}

void Service::unpublish_job(uint64_t id) {
  published_.erase(id);
  if (cluster_) cluster_->redis().command({"HDEL", jobs_key(), std::to_string(id)}, [](auto&&) {});
}

// GET /v1/jobs: this node's jobs as they are now, and the others' as their owners published
// them (each with its "node").
void Service::list_cluster_jobs(server::Responder r) {
  auto rr = std::make_shared<server::Responder>(std::move(r));
  cluster_->redis().command({"HGETALL", jobs_key()}, [this, rr](cluster::Result&& res) {
    std::map<uint64_t, json> all;
    if (res.ok() && res->type == cluster::Reply::Type::Array) {
      const auto& e = res->elements;
      for (size_t i = 0; i + 1 < e.size(); i += 2) {
        json doc = json::parse(e[i + 1].str, nullptr, false);
        if (doc.is_object()) all[std::strtoull(e[i].str.c_str(), nullptr, 10)] = std::move(doc);
      }
    }
    for (const auto& [id, j] : jobs_) {
      json doc = job_json(*j);
      doc["node"] = cluster_->name();
      all[id] = std::move(doc);
    }
    json list = json::array();
    for (auto& [id, doc] : all)
      list.push_back(std::move(doc));
    json body = {{"jobs", list}};
    if (!res.ok()) body["warning"] = "the cluster's Redis did not answer: this node's jobs only";
    rr->respond(json_response(200, body));
  });
}

// A job this node does not own: its state from Redis; anything else (its results, an action,
// deleting it) is its owner's to answer: 307 to the same path and query on the owner's API.
void Service::remote_job(const http::Request& q, server::Responder r) {
  std::string tail = q.path.substr(std::string("/v1/jobs/").size());
  const std::string idtext = tail.substr(0, tail.find('/'));
  const bool whole = tail.find('/') == std::string::npos;
  auto rr = std::make_shared<server::Responder>(std::move(r));
  cluster_->redis().command(
      {"HGET", jobs_key(), idtext},
      [rr, whole, method = q.method, target = q.target](cluster::Result&& res) {
        if (!res.ok())
          return rr->respond(error(503, "cluster_unavailable",
                                   "the job is not on this node and the cluster's Redis does not "
                                   "answer: " +
                                       res.error().message));
        if (res->type != cluster::Reply::Type::String)
          return rr->respond(error(404, "not_found", "no such job"));
        json doc = json::parse(res->str, nullptr, false);
        if (!doc.is_object() || !doc.contains("api") || !doc["api"].is_string())
          return rr->respond(error(404, "not_found", "no such job"));
        if (whole && method == "GET") return rr->respond(json_response(200, doc));
        http::Response resp =
            http::Response::json(307, json{{"redirect", doc["api"].get<std::string>() + target},
                                           {"node", doc.value("node", "")}}
                                          .dump());
        resp.headers.push_back({"Location", doc["api"].get<std::string>() + target});
        rr->respond(std::move(resp));
      });
}

}  // namespace mxp::app::serve_impl

namespace mxp::app::serve_impl {

// The chunks this node verifies for the cluster (any node's jobs, its own included) go to its
// verifier under the ids of job kExecutorJob, beside real-time checks; their records go back to
// each job's owner (app/chunk_exec.hpp).
void Service::make_executor() {
  ExecutorHooks hooks;
  hooks.submit = [this](uint64_t id, std::string email, address::Address addr) {
    verifier_.submit(id, 0, std::move(email), std::move(addr));
  };
  hooks.waiting = [this] { return static_cast<size_t>(verifier_.scheduler().stats().waiting); };
  ExecutorOptions xo;
  xo.node = cluster_->name();
  xo.id_base = kExecutorJob << kJobIdShift;
  xo.chunks = o_.chunks;
  xo.max_chunks = o_.max_chunks;
  xo.cache_ttl = o_.shared_cache_ttl;
  exec_ = std::make_unique<ChunkExecutor>(*e_.loop, cluster_->redis(), std::move(hooks), xo);
}

void Service::cluster_joined() {
  if (!exec_ || stopping_) return;
  std::fprintf(diag_,
               "mxprobe serve: cluster: taking work: holding %zu chunks (up to %zu while "
               "addresses wait for retries)%s\n",
               o_.chunks, o_.max_chunks,
               o_.shared_cache_ttl.count() > 0 ? ", shared results cache on" : "");
  exec_->start();
}

}  // namespace mxp::app::serve_impl
