// `mxprobe worker`: the engine, a cluster node registered with its heartbeat, the chunk executor
// that feeds the node's verifier with the cluster's work, and an optional metrics listener
// (worker.hpp).
#include "app/worker.hpp"

#include <fstream>
#include <memory>
#include <random>

#include "app/chunk_exec.hpp"
#include "app/reload.hpp"
#include "cluster/redis_limits.hpp"
#include "metrics/metrics.hpp"
#include "server/server.hpp"

#ifndef MXP_VERSION
#define MXP_VERSION "unknown"
#endif
#if defined(__clang__)
#define MXP_COMPILER "clang " __clang_version__
#else
#define MXP_COMPILER "g++ " __VERSION__
#endif

namespace mxp::app {

int run_worker(const WorkerOptions& opts, const EngineOptions& eng, std::FILE* diag) {
  std::string token = opts.token;
  if (token.empty() && !opts.token_file.empty()) {
    std::ifstream f(opts.token_file);
    if (!f || !std::getline(f, token) || token.empty()) {
      std::fprintf(diag, "mxprobe worker: cannot read a token from %s\n", opts.token_file.c_str());
      return 2;
    }
  }
  Engine e;
  if (!make_engine(eng, false, e, diag)) return 3;
  // The start-up checks (doctor's short form), before anything else runs on the loop.
  SourceHealth health(e, eng.doctor, [diag](const std::string& line) {
    std::fprintf(diag, "mxprobe worker: %s\n", line.c_str());
    std::fflush(diag);
  });
  health.check_now();
  if (health.none_left())
    std::fprintf(diag,
                 "mxprobe worker: no source left in rotation: running anyway; addresses end "
                 "unknown/blocked until a source passes its re-check\n");
  int rc = 0;
  // Made in this order, destroyed in the reverse: the verifier's shared limits and the executor
  // use the node's Redis client, so the node goes last.
  std::unique_ptr<ClusterNode> node;
  std::unique_ptr<ChunkExecutor> exec;
  std::unique_ptr<pipeline::Verifier> verifier;
  ClusterNode::Setup cs;
  cs.role = "worker";
  cs.addresses = node_addresses(e.config);
  cs.version = MXP_VERSION;
  cs.who = "mxprobe worker";
  cs.load = [&verifier, &exec] {
    std::map<std::string, int64_t> load;
    if (verifier) {
      load["sessions"] = verifier->stats().active_sessions;
      load["pending"] = static_cast<int64_t>(verifier->pending());
    }
    if (exec) {
      load["chunks"] = static_cast<int64_t>(exec->held());
      load["verified"] = static_cast<int64_t>(exec->stats().lines_verified);
    }
    return load;
  };
  cs.fatal = [&](const std::string& why) {
    std::fprintf(diag, "mxprobe worker: cluster: %s; stopping (exit %d)\n", why.c_str(),
                 kExitCluster);
    rc = kExitCluster;
    e.loop->stop();
  };
  bool stopping = false;
  cs.joined = [diag, &exec, &stopping, &opts] {
    if (stopping || !exec) return;
    std::fprintf(diag,
                 "mxprobe worker: taking work: holding %zu chunks (up to %zu while addresses wait "
                 "for retries)%s\n",
                 opts.chunks, opts.max_chunks,
                 opts.cache_ttl.count() > 0 ? ", shared results cache on" : "");
    std::fflush(diag);
    exec->start();
  };
  std::string err;
  bool fatal = false;
  node = ClusterNode::create(*e.loop, opts.cluster, std::move(cs), diag, err, fatal);
  if (!node) {
    std::fprintf(diag, "mxprobe worker: %s\n", err.c_str());
    return fatal ? kExitCluster : 2;
  }

  ExecutorHooks hooks;
  hooks.submit = [&verifier](uint64_t id, std::string email, address::Address addr) {
    verifier->submit(id, 0, std::move(email), std::move(addr));
  };
  hooks.waiting = [&verifier] {
    return verifier ? static_cast<size_t>(verifier->scheduler().stats().waiting) : 0;
  };
  ExecutorOptions xo;
  xo.node = node->name();
  xo.chunks = opts.chunks;
  xo.max_chunks = opts.max_chunks;
  xo.cache_ttl = opts.cache_ttl;
  xo.catch_all_ttl = opts.catch_all_ttl;
  exec = std::make_unique<ChunkExecutor>(*e.loop, node->redis(), std::move(hooks), xo);

  pipeline::VerifierConfig vc = e.config;
  // Kept for every address: a job that asks for transcripts gets them, the others drop them.
  vc.transcripts = true;
  vc.remote_limits = node->remote_limits([&verifier](sched::GroupId g, sched::DomainId d) {
    if (verifier) verifier->remote_limits_changed(g, d);
  });
  vc.catch_all_known = [&exec](const std::string& domain) { return exec->known_catch_all(domain); };
  vc.catch_all_learned = [&exec](const std::string& domain, std::optional<bool> yes) {
    exec->learned_catch_all(domain, yes);
  };
  verifier = std::make_unique<pipeline::Verifier>(
      *e.loop, *e.resolver, vc, [&exec](pipeline::Result&& r) { exec->deliver(std::move(r)); });
  health.attach(verifier.get());
  // The cluster view's MX groups and their limits follow this node's policy.
  node->set_policy([&verifier] { return &verifier->scheduler().policy(); });

  PolicyReloader reloader(e, *verifier, diag, [&](int) {
    if (stopping) return;
    stopping = true;
    // The chunks held go back first (their XCLAIM leaves before the leave's command on the one
    // connection), so the other nodes take them at their next pass.
    exec->stop();
    node->leave([&] { e.loop->stop(); });
  });

  std::unique_ptr<server::HttpServer> http;
  if (!opts.metrics_listen.empty()) {
    server::ServerOptions so;
    so.listen = opts.metrics_listen;
    so.token = token;
    auto made = server::HttpServer::create(*e.loop, so);
    if (!made) {
      std::fprintf(diag, "mxprobe worker: --metrics-listen: %s\n", made.error().c_str());
      return 2;
    }
    http = std::move(made).value();
    const bool with_token = !token.empty();
    http->route("GET", "/healthz", [with_token](const http::Request&, server::Responder r) {
      r.respond(http::Response::json(200, with_token ? R"({"status":"ok","token":true})"
                                                     : R"({"status":"ok","token":false})"));
    });
    http->route("GET", "/metrics", [&](const http::Request&, server::Responder r) {
      http::Response resp;
      resp.status = 200;
      resp.headers.push_back({"Content-Type", "text/plain; version=0.0.4; charset=utf-8"});
      std::string& out = resp.body;
      out +=
          "# HELP mxprobe_build_info The build: version and compiler (value 1).\n"
          "# TYPE mxprobe_build_info gauge\nmxprobe_build_info{version=\"" +
          metrics::label_value(MXP_VERSION) + "\",compiler=\"" +
          metrics::label_value(MXP_COMPILER) + "\"} 1\n";
      out +=
          "# HELP mxprobe_smtp_active_sessions SMTP sessions open now.\n"
          "# TYPE mxprobe_smtp_active_sessions gauge\nmxprobe_smtp_active_sessions " +
          std::to_string(verifier->stats().active_sessions) + "\n";
      metrics::append_process_metrics(out);
      node->append_prometheus(out);
      exec->append_prometheus(out);
      r.respond(std::move(resp));
    });
    http->route("GET", "/v1/cluster", [&](const http::Request&, server::Responder r) {
      auto rr = std::make_shared<server::Responder>(std::move(r));
      node->describe([rr](int status, std::string body) {
        rr->respond(http::Response::json(status, std::move(body)));
      });
    });
  }

  node->start();
  std::fprintf(diag, "mxprobe worker: %s", e.loop_why.c_str());
  if (http)
    std::fprintf(diag, "; metrics on http://%s:%u/%s",
                 opts.metrics_listen.substr(0, opts.metrics_listen.rfind(':')).c_str(),
                 http->port(), token.empty() ? "" : " (token required)");
  std::fprintf(diag, "\n");
  std::fflush(diag);
  e.loop->run();
  std::fprintf(diag, "mxprobe worker: stopped\n");
  return rc;
}

}  // namespace mxp::app
