// The cluster's node registry: each node keeps a record of itself in Redis (name, source
// addresses, version, role, load figures, start time) under a key that expires unless the
// node's heartbeat renews it, so a node that crashed or lost its network disappears from every
// listing at the key's TTL without anyone having to notice it first. leave() deletes the record
// at once (the SIGTERM path). Nodes learn of joins and departures by listing the live nodes and
// comparing the listing with the previous one (compare()).
//
// Names are unique: the record carries a random instance id drawn when the registry is made,
// and the heartbeat (the Redis function mxp1_node_beat) refuses a name whose record belongs to
// another live instance. A node restarted after its old record expired takes its name back.
//
// Keys (prefix "mxp:" by default): <prefix>node:<name>, a hash with a TTL; <prefix>nodes, the
// set of names, swept of expired names by each listing. docs/cluster.md has the details.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cluster/redis_client.hpp"
#include "core/expected.hpp"
#include "loop/loop.hpp"

namespace mxp::cluster {

struct NodeInfo {
  std::string name;
  std::string instance;                // random per process start (set by the registry)
  std::vector<std::string> addresses;  // the node's source addresses
  std::string version;
  std::string role;                     // "serve" (takes API requests and verifies) or "worker"
  int64_t started_at_ms = 0;            // Unix time in ms (the registry sets it if 0)
  std::map<std::string, int64_t> load;  // e.g. sessions, chunks held, verified so far
};

struct RegistryOptions {
  std::string prefix = "mxp:";
  Duration heartbeat = std::chrono::seconds(2);
  Duration ttl = std::chrono::seconds(10);  // a silent node is gone after this
};

// How two listings differ: names that appeared (with their records) and names that left.
struct NodeChanges {
  std::vector<NodeInfo> joined;
  std::vector<std::string> gone;
};
NodeChanges compare(const std::vector<NodeInfo>& before, const std::vector<NodeInfo>& after);

class NodeRegistry final : private loop::TimerHandler {
 public:
  using JoinDone = std::function<void(core::Expected<void, std::string>)>;
  using ListDone = std::function<void(core::Expected<std::vector<NodeInfo>, std::string>)>;
  using ErrorFn = std::function<void(const std::string&)>;

  // The client must outlive the registry (and have the functions in its setup commands).
  NodeRegistry(loop::Loop& loop, RedisClient& redis, RegistryOptions options, NodeInfo self);
  ~NodeRegistry();  // stops the heartbeat; the record then expires at its TTL (leave() first)
  NodeRegistry(const NodeRegistry&) = delete;
  NodeRegistry& operator=(const NodeRegistry&) = delete;

  // Writes the record; on success the heartbeat starts. Fails when the name is held by a live
  // node ("node name x is held by a live node ...") or Redis does not answer.
  void join(JoinDone done);
  // Figures sent with the next heartbeat.
  void set_load(std::map<std::string, int64_t> load) { self_.load = std::move(load); }
  // Stops the heartbeat and deletes the record at once; done(true) when it was ours.
  void leave(std::function<void(bool)> done = {});
  // The live nodes, ordered by name.
  void nodes(ListDone done);

  // A heartbeat refused (the name was taken by another node while ours had expired, e.g. after
  // a long Redis outage): the heartbeat stops and this is called. Transport failures are not
  // reported here: the next beat tries again.
  void on_error(ErrorFn fn) { on_error_ = std::move(fn); }

  const NodeInfo& self() const { return self_; }
  bool joined() const { return joined_; }
  uint64_t beats() const { return beats_; }

  // The record's key and the index key (for tests and tools).
  std::string record_key(const std::string& name) const { return opts_.prefix + "node:" + name; }
  std::string index_key() const { return opts_.prefix + "nodes"; }

 private:
  void on_timer(loop::TimerId id, uint64_t cookie) override;
  std::vector<std::string> beat_command() const;
  void beat();
  void arm();
  void disarm();

  loop::Loop& loop_;
  RedisClient& redis_;
  RegistryOptions opts_;
  NodeInfo self_;
  ErrorFn on_error_;
  bool joined_ = false;
  bool beat_in_flight_ = false;
  bool armed_ = false;
  loop::TimerId timer_{};
  uint64_t beats_ = 0;
  // Callbacks still pending when the registry goes away see false here and do nothing.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace mxp::cluster
