// `mxprobe worker --cluster URL`: a cluster node that only verifies (no API). It runs the engine
// (loop, resolver, verifier), registers with the cluster's node registry and, once joined,
// takes chunks of the cluster's jobs and verifies them (app/chunk_exec.hpp), with the
// politeness limits, catch-all facts and (with --cache-ttl) results shared through Redis
// (docs/cluster.md). An optional listener serves /metrics, /healthz and /v1/cluster.
#pragma once

#include <chrono>
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
  size_t chunks = 2;                  // chunks held when no line waits for a retry
  size_t max_chunks = 64;             // chunks held at most (while lines wait for retries)
  std::chrono::seconds cache_ttl{0};  // shared results cache; 0: none
  std::chrono::seconds catch_all_ttl{7 * 24 * 3600};  // shared catch-all facts
};

// Exit codes: 0 stopped by SIGINT/SIGTERM, 2 usage (a bad URL, a listener that cannot start),
// 3 the engine could not start, kExitCluster (6) the cluster refused this node.
int run_worker(const WorkerOptions& opts, const EngineOptions& eng, std::FILE* diag);

}  // namespace mxp::app
