// A cluster node's life, shared by `mxprobe serve --cluster` and `mxprobe worker`: the Redis
// client on the engine's loop, the node's record in the registry (joined, kept by its heartbeat
// with the node's load figures, deleted on SIGTERM/SIGINT), the log lines a Redis outage gives
// (one when it goes, one when it comes back, a reminder at most once a minute meanwhile), the
// cluster's /metrics series and the listing behind GET /v1/cluster (docs/cluster.md).
//
// Start-up: a URL that does not parse is the command's usage error (exit 2); a Redis that
// refuses us (wrong password, unknown ACL user, db out of range, no Redis 7 functions), a host
// name that does not resolve, or a node name held by a live node past one TTL end the command
// with kExitCluster. A Redis that does not answer is none of these: the node starts, says so,
// and joins when Redis comes.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cluster/node_registry.hpp"
#include "cluster/redis_client.hpp"
#include "metrics/metrics.hpp"
#include "pipeline/verifier.hpp"

namespace mxp::app {

// The exit code of a node the cluster refused (docs/cli.md).
inline constexpr int kExitCluster = 6;

struct ClusterOptions {
  std::string url;        // redis://...; empty: no cluster
  std::string node_name;  // default: HOSTNAME:PID
};
// --cluster (required for `worker`) and --node-name.
void add_cluster_options(CLI::App& cmd, ClusterOptions& o, bool required);
// The source addresses a node announces: its --source-ip pool, or its proxies
// (socks5://host:port, never their credentials); empty when the kernel chooses.
std::vector<std::string> node_addresses(const pipeline::VerifierConfig& c);

class ClusterNode final : private loop::TimerHandler {
 public:
  using LoadFn = std::function<std::map<std::string, int64_t>()>;
  struct Setup {
    std::string role;  // "serve" or "worker"
    std::vector<std::string> addresses;
    std::string version;
    std::string who;  // log prefix, e.g. "mxprobe worker"
    LoadFn load;
    // The cluster refused this node at start-up (the message says why): stop with kExitCluster.
    std::function<void(const std::string&)> fatal;
    // Called once the node's record is first written (the worker says it waits for work).
    std::function<void()> joined;
    cluster::RegistryOptions registry;  // heartbeat and TTL (defaults: 2 s, 10 s)
  };

  // Parses the URL (a usage error: false with the message in err, exit 2) and creates the
  // client (a host that does not resolve: `fatal_err` set, exit kExitCluster). Connecting starts
  // with start().
  static std::unique_ptr<ClusterNode> create(loop::Loop& loop, const ClusterOptions& o, Setup s,
                                             std::FILE* diag, std::string& err, bool& fatal_err);
  ~ClusterNode();
  ClusterNode(const ClusterNode&) = delete;
  ClusterNode& operator=(const ClusterNode&) = delete;

  void start();
  // SIGTERM/SIGINT: deletes the record at once (when Redis is up), then `done` (at most 2 s
  // later whatever Redis does). Called once.
  void leave(std::function<void()> done);

  // The cluster's series for /metrics.
  void append_prometheus(std::string& out) const;
  // GET /v1/cluster: the live nodes as JSON, from Redis now; 503 while Redis is away.
  void describe(std::function<void(int status, std::string body)> done);

  const std::string& name() const { return name_; }
  bool redis_up() const { return redis_ && redis_->up(); }
  bool registered() const { return registry_ && registry_->joined(); }
  const std::string& redis_display() const { return display_; }
  // The node's Redis client (the chunk queue, the shared limits and facts use it too); it lives
  // as long as the node.
  cluster::RedisClient& redis() { return *redis_; }

 private:
  ClusterNode(loop::Loop& loop, Setup s, std::FILE* diag, std::string name);
  void on_timer(loop::TimerId id, uint64_t cookie) override;
  void on_state(const cluster::StateEvent& ev);
  void ping();
  void join();
  void refresh();
  void arm(uint64_t cookie, cluster::Duration after);

  enum Cookie : uint64_t { kRefresh = 1, kRejoin = 2, kLeaveDeadline = 3 };

  loop::Loop& loop_;
  Setup s_;
  std::FILE* diag_;
  std::string name_;
  std::string display_;  // the URL without its password
  std::unique_ptr<cluster::RedisClient> redis_;
  std::unique_ptr<cluster::NodeRegistry> registry_;
  metrics::Histogram rtt_;
  // Outage bookkeeping for the log: one line when Redis goes, one when it comes back.
  bool ever_up_ = false, down_logged_ = false, ever_joined_ = false, leaving_ = false;
  bool stopped_ = false;  // refused at start-up: the command is ending
  cluster::TimePoint down_since_{}, last_reminder_{};
  uint64_t reconnects_ = 0, down_events_ = 0;
  cluster::TimePoint first_taken_{};
  bool name_wait_logged_ = false;
  bool listing_ = false;
  std::vector<cluster::NodeInfo> nodes_;  // the last listing
  bool listed_ = false;
  loop::TimerId refresh_timer_{}, rejoin_timer_{}, leave_timer_{};
  bool refresh_armed_ = false, rejoin_armed_ = false, leave_armed_ = false;
  std::function<void()> leave_done_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace mxp::app
