// `mxprobe worker --cluster URL`: a cluster node that only verifies (no API). Today it runs the
// engine (loop, resolver, verifier), registers with the cluster's node registry and waits:
// handing chunks of jobs to workers comes next (docs/cluster.md, "What works today"). An
// optional listener serves /metrics, /healthz and /v1/cluster.
#pragma once

#include <cstdio>
#include <string>

#include "app/cluster_node.hpp"
#include "app/engine_options.hpp"

namespace mxp::app {

struct WorkerOptions {
  ClusterOptions cluster;
  std::string metrics_listen;  // IP:PORT for /metrics; empty: no listener
  std::string token;           // Bearer token; required to listen on a non-loopback address
  std::string token_file;
};

// Exit codes: 0 stopped by SIGINT/SIGTERM, 2 usage (a bad URL, a listener that cannot start),
// 3 the engine could not start, kExitCluster (6) the cluster refused this node.
int run_worker(const WorkerOptions& opts, const EngineOptions& eng, std::FILE* diag);

}  // namespace mxp::app
