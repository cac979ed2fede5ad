// `mxprobe serve`: the engine behind an HTTP API on its own loop — real-time verification,
// the policy read and changed live, Prometheus metrics, and a WebSocket that pushes snapshots
// and events and takes commands (docs/api.md, docs/protocol.md).
#pragma once

#include <chrono>
#include <cstdio>
#include <string>

#include "app/cluster_node.hpp"
#include "app/engine_options.hpp"

namespace mxp::app {

struct ServeOptions {
  std::string listen = "127.0.0.1:8025";
  std::string token;       // Bearer token; required to listen on a non-loopback address
  std::string token_file;  // or read it from this file (first line)
  std::string console;     // directory served at / (the admin console's build output)
  std::string data;        // where bulk jobs keep their files ("" = ~/.local/share/mxprobe/jobs)
  std::string cache;       // results cache (default as for verify); "" = default
  bool no_cache = false;
  std::chrono::seconds cache_ttl = std::chrono::hours(24 * 7);
  uint64_t max_upload = uint64_t{4} << 30;  // bytes of one job upload (streamed to disk)
  ClusterOptions cluster;                   // --cluster: a node of a cluster (docs/cluster.md)
  // A cluster node verifies the cluster's chunks as a worker does (mxprobe worker's options).
  size_t chunks = 2, max_chunks = 64;
  std::chrono::seconds shared_cache_ttl{0};  // results shared through Redis; 0: none
  // PEM: a private CA that https:// webhook endpoints' certificates may chain to, besides the
  // system's trust store (docs/webhooks.md).
  std::string webhook_ca_file;
};

int run_serve(const ServeOptions& opts, const EngineOptions& eng, std::FILE* diag);

}  // namespace mxp::app
