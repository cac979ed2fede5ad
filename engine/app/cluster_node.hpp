// A cluster node's life, shared by `mxprobe serve --cluster` and `mxprobe worker`: the Redis
// client on the engine's loop, the node's record in the registry (joined, kept by its heartbeat
// with the node's load figures, deleted on SIGTERM/SIGINT), the log lines a Redis outage gives
// (one when it goes, one when it comes back, a reminder at most once a minute meanwhile), the
// cluster's /metrics series and the view behind GET /v1/cluster and the WebSocket snapshot's
// "cluster" (docs/cluster.md, "Operating it").
//
// The view: the live nodes (listed every second, as before), each with its verifications per
// second (from the "verified" figure of its heartbeats); every 2 s the chunk queue's figures and
// what the whole cluster uses of each MX group of the policy's providers against the group's
// limit, one FCALL_RO each (mxp1_chunk_counts, mxp1_group_use); and, only while someone looks (a
// console's snapshot or GET /v1/cluster in the last 10 s), each node's heartbeat age (one PTTL
// per node), so that an unwatched cluster of many nodes does not pay N x N PTTLs.
//
// Start-up: a URL that does not parse is the command's usage error (exit 2); a Redis that
// refuses us (wrong password, unknown ACL user, db out of range, no Redis 7 functions), a host
// name that does not resolve, or a node name held by a live node past one TTL end the command
// with kExitCluster. A Redis that does not answer is none of these: the node starts, says so,
// and joins when Redis comes.
#pragma once

#include <cstdio>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "app/cli_fwd.hpp"
#include "cluster/functions.hpp"
#include "cluster/node_registry.hpp"
#include "cluster/redis_client.hpp"
#include "cluster/redis_limits.hpp"
#include "metrics/metrics.hpp"
#include "pipeline/verifier.hpp"
#include "sched/remote_limits.hpp"

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
    // The node's RedisRemoteLimits' figures (leases, grants, waits), for /metrics and the view;
    // empty, or returning nullptr, while the node has none.
    std::function<const cluster::RedisRemoteLimits::Stats*()> limits_stats;
    // The policy in force (its providers are the MX groups shown, with their limits); empty:
    // the built-in policy. Read at each refresh, so a SIGHUP's new limits show at the next one.
    std::function<const sched::Policy*()> policy;
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
  // GET /v1/cluster: the view as JSON, its nodes and heartbeat ages from Redis now, the groups
  // and chunks from the last refresh (at most 2 s old); 503 while Redis is away.
  void describe(std::function<void(int status, std::string body)> done);
  // The WebSocket snapshot's "cluster": the view from the last refresh (never waits for Redis).
  // Marks the view watched for the next 10 s (heartbeat ages are read meanwhile).
  nlohmann::ordered_json view();
  // Sets the policy source after creation (the serve service owns the verifier).
  void set_policy(std::function<const sched::Policy*()> fn) { s_.policy = std::move(fn); }

  const std::string& name() const { return name_; }
  bool redis_up() const { return redis_ && redis_->up(); }
  // VerifierConfig::remote_limits for this node: the remote servers' limits held in the
  // cluster's Redis (cluster::RedisRemoteLimits), its slots named after this node and run;
  // `changed` is told when a lease brings more (pass it to Verifier::remote_limits_changed).
  std::function<std::unique_ptr<sched::RemoteLimits>()> remote_limits(
      std::function<void(sched::GroupId, sched::DomainId)> changed);
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
  void refresh_view();
  // One PTTL per node, pipelined: each record's heartbeat age by Redis' clock (TTL minus the
  // time it has left); a node gone meanwhile has none.
  void read_ages(const std::vector<cluster::NodeInfo>& list,
                 std::function<void(std::map<std::string, int64_t>)> done);
  // The groups shown: "provider:NAME" of each provider of the policy, with its limits.
  std::vector<std::pair<std::string, sched::LevelLimits>> policy_groups() const;
  nlohmann::ordered_json view_json(const std::vector<cluster::NodeInfo>& nodes,
                                   const std::map<std::string, int64_t>& ages_ms) const;
  void arm(uint64_t cookie, cluster::Duration after);

  enum Cookie : uint64_t { kRefresh = 1, kRejoin = 2, kLeaveDeadline = 3 };
  uint64_t refreshes_ = 0;

  loop::Loop& loop_;
  Setup s_;
  std::FILE* diag_;
  std::string name_;
  std::string display_;  // the URL without its password
  std::unique_ptr<cluster::RedisClient> redis_;
  std::unique_ptr<cluster::NodeRegistry> registry_;
  cluster::RedisRemoteLimits* limits_ = nullptr;  // made by remote_limits(), owned by a verifier
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
  // Each node's "verified" figure as listed, for its verifications per second: samples of the
  // last 10 s (by this node's loop clock), by node name.
  struct Sample {
    cluster::TimePoint at;
    int64_t verified;
  };
  std::map<std::string, std::deque<Sample>> verified_;
  double verified_rate(const std::string& name) const;
  // The last readings of the view (refresh_view, every 2 s).
  struct GroupReading {
    std::string key;
    sched::LevelLimits limits;
    cluster::functions::GroupUse use;
  };
  std::vector<GroupReading> groups_;
  cluster::functions::ChunkCounts chunks_;
  bool groups_read_ = false, chunks_read_ = false, viewing_ = false;
  cluster::TimePoint view_at_{}, watched_until_{};
  std::map<std::string, int64_t> ages_ms_;  // heartbeat ages by name (read while watched)
  bool ages_in_flight_ = false;
  double rtt_avg_ms_ = -1;  // round trips, smoothed (-1: none yet)
  double rtt_last_ms_ = -1;
  loop::TimerId refresh_timer_{}, rejoin_timer_{}, leave_timer_{};
  bool refresh_armed_ = false, rejoin_armed_ = false, leave_armed_ = false;
  std::function<void()> leave_done_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace mxp::app
