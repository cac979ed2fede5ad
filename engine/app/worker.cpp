// `mxprobe worker`: the engine, a cluster node registered with its heartbeat, and an optional
// metrics listener (worker.hpp). It verifies nothing yet: no job reaches a worker until work
// distribution lands, and it says so rather than pretending.
#include "app/worker.hpp"

#include <fstream>
#include <memory>

#include "app/reload.hpp"
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
  // The verifier is the one chunks will feed; until then it holds nothing.
  pipeline::Verifier verifier(*e.loop, *e.resolver, e.config, [](pipeline::Result&&) {});

  int rc = 0;
  std::unique_ptr<ClusterNode> node;
  ClusterNode::Setup cs;
  cs.role = "worker";
  cs.addresses = node_addresses(e.config);
  cs.version = MXP_VERSION;
  cs.who = "mxprobe worker";
  cs.load = [&verifier] {
    return std::map<std::string, int64_t>{{"sessions", verifier.stats().active_sessions},
                                          {"pending", static_cast<int64_t>(verifier.pending())}};
  };
  cs.fatal = [&](const std::string& why) {
    std::fprintf(diag, "mxprobe worker: cluster: %s; stopping (exit %d)\n", why.c_str(),
                 kExitCluster);
    rc = kExitCluster;
    e.loop->stop();
  };
  cs.joined = [diag] {
    std::fprintf(diag,
                 "mxprobe worker: waiting for work (jobs are not yet handed to workers: this "
                 "node verifies nothing until work distribution lands)\n");
    std::fflush(diag);
  };
  std::string err;
  bool fatal = false;
  node = ClusterNode::create(*e.loop, opts.cluster, std::move(cs), diag, err, fatal);
  if (!node) {
    std::fprintf(diag, "mxprobe worker: %s\n", err.c_str());
    return fatal ? kExitCluster : 2;
  }

  bool stopping = false;
  PolicyReloader reloader(e, verifier, diag, [&](int) {
    if (stopping) return;
    stopping = true;
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
          std::to_string(verifier.stats().active_sessions) + "\n";
      metrics::append_process_metrics(out);
      node->append_prometheus(out);
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
