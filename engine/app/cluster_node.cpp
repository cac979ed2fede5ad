// ClusterNode: a node's connection to the cluster's Redis and its record in the registry, for
// `serve --cluster` and `worker` (cluster_node.hpp).
#include "app/cluster_node.hpp"

#include <unistd.h>
#include <CLI/CLI.hpp>

#include <random>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "cluster/functions.hpp"
#include "cluster/redis_url.hpp"
#include "sched/policy.hpp"

namespace mxp::app {

using json = nlohmann::ordered_json;

namespace {

double seconds(cluster::Duration d) {
  return std::chrono::duration<double>(d).count();
}

// The node listing is read every refresh (1 s) and the view's group and chunk figures every
// kViewEvery while the view was asked for within kWatched (the console, GET /v1/cluster), and
// heartbeat ages only then; unwatched, both every kUnwatchedEvery refreshes: a node's fixed
// Redis cost is what decides its commands per verification.
constexpr uint64_t kViewEvery = 2;
constexpr uint64_t kUnwatchedEvery = 5;
constexpr auto kWatched = std::chrono::seconds(10);
// Verifications per second are measured over the samples of this window.
constexpr auto kRateWindow = std::chrono::seconds(10);

std::string default_node_name() {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  std::string h = host[0] ? host : "localhost";
  for (char& c : h)
    if (c == ' ' || c == '\r' || c == '\n') c = '-';
  return h + ":" + std::to_string(getpid());
}

std::string list_text(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v)
    out += (out.empty() ? "" : ", ") + s;
  return out.empty() ? "the kernel's choice" : out;
}

}  // namespace

void add_cluster_options(CLI::App& cmd, ClusterOptions& o, bool required) {
  auto* opt = cmd.add_option("--cluster", o.url,
                             "join the cluster of this Redis: redis://[[user]:password@]host"
                             "[:port][/db] (docs/cluster.md)");
  if (required) opt->required();
  cmd.add_option("--node-name", o.node_name,
                 "this node's name in the cluster, unique among live nodes (default: "
                 "HOSTNAME:PID)");
}

std::vector<std::string> node_addresses(const pipeline::VerifierConfig& c) {
  std::vector<std::string> out;
  for (const auto& p : c.proxies)
    out.push_back(p.display);
  if (out.empty())
    for (const auto& s : c.sources)
      out.push_back(s.endpoint.ip_string());
  return out;
}

std::unique_ptr<ClusterNode> ClusterNode::create(loop::Loop& loop, const ClusterOptions& o, Setup s,
                                                 std::FILE* diag, std::string& err,
                                                 bool& fatal_err) {
  fatal_err = false;
  auto url = cluster::parse_redis_url(o.url);
  if (!url) {
    err = "--cluster: " + url.error();
    return nullptr;
  }
  std::string name = o.node_name.empty() ? default_node_name() : o.node_name;
  if (name.find_first_of(" \t\r\n") != std::string::npos || name.size() > 200) {
    err = "--node-name '" + name + "': at most 200 bytes, without spaces";
    return nullptr;
  }
  std::unique_ptr<ClusterNode> n(new ClusterNode(loop, std::move(s), diag, name));
  n->display_ = url->display();
  cluster::ClientOptions co;
  co.url = *url;
  co.client_name = "mxprobe:" + name;
  co.setup.push_back(cluster::functions::load_command());
  ClusterNode* self = n.get();
  auto client = cluster::RedisClient::create(
      loop, std::move(co), [self](const cluster::StateEvent& ev) { self->on_state(ev); });
  if (!client) {
    err = "--cluster " + n->display_ + ": " + client.error();
    fatal_err = true;
    return nullptr;
  }
  n->redis_ = std::move(client).value();
  n->redis_->set_rtt_observer([self](cluster::Duration d) {
    self->rtt_.observe(seconds(d));
    const double ms = seconds(d) * 1000;
    self->rtt_last_ms_ = ms;
    self->rtt_avg_ms_ = self->rtt_avg_ms_ < 0 ? ms : 0.8 * self->rtt_avg_ms_ + 0.2 * ms;
  });
  cluster::NodeInfo info;
  info.name = name;
  info.addresses = n->s_.addresses;
  info.version = n->s_.version;
  info.role = n->s_.role;
  n->registry_ = std::make_unique<cluster::NodeRegistry>(loop, *n->redis_, n->s_.registry, info);
  n->registry_->on_error([self](const std::string& e) {
    std::fprintf(self->diag_,
                 "%s: cluster: the heartbeat was refused (%s); this node is not registered, "
                 "trying again every %.0f s\n",
                 self->s_.who.c_str(), e.c_str(), seconds(self->s_.registry.ttl));
    std::fflush(self->diag_);
    self->arm(kRejoin, self->s_.registry.ttl);
  });
  return n;
}

ClusterNode::ClusterNode(loop::Loop& loop, Setup s, std::FILE* diag, std::string name)
    : loop_(loop), s_(std::move(s)), diag_(diag), name_(std::move(name)) {}

ClusterNode::~ClusterNode() {
  *alive_ = false;
  for (auto [armed, id] :
       {std::pair{refresh_armed_, refresh_timer_}, std::pair{rejoin_armed_, rejoin_timer_},
        std::pair{leave_armed_, leave_timer_}})
    if (armed) loop_.cancel_timer(id);
  registry_.reset();  // before the client it uses
  redis_.reset();
}

void ClusterNode::arm(uint64_t cookie, cluster::Duration after) {
  auto set = [&](bool& armed, loop::TimerId& id) {
    if (armed) loop_.cancel_timer(id);
    id = loop_.add_timer(loop_.now() + after, *this, cookie);
    armed = true;
  };
  if (cookie == kRefresh) set(refresh_armed_, refresh_timer_);
  if (cookie == kRejoin) set(rejoin_armed_, rejoin_timer_);
  if (cookie == kLeaveDeadline) set(leave_armed_, leave_timer_);
}

void ClusterNode::start() {
  std::fprintf(diag_, "%s: cluster: node %s (%s) connecting to Redis at %s\n", s_.who.c_str(),
               name_.c_str(), s_.role.c_str(), display_.c_str());
  std::fflush(diag_);
  ping();
  arm(kRefresh, std::chrono::seconds(1));
}

// A PING first: a refused handshake fails it with HandshakeFailed at once (the failure kind the
// registry's join does not pass on), and it waits out an outage in the client's queue.
void ClusterNode::ping() {
  if (leaving_) return;
  redis_->command({"PING"}, [this, alive = alive_](cluster::Result&& r) {
    if (!*alive || leaving_) return;
    if (!r.ok()) {
      if (r.error().failure == cluster::Failure::HandshakeFailed && !ever_joined_ && s_.fatal) {
        stopped_ = true;  // the down line that follows would only repeat it
        const std::string& why = redis_->connection().down_reason();
        return s_.fatal("Redis at " + display_ +
                        " refused this node: " + (why.empty() ? r.error().message : why));
      }
      if (r.error().failure == cluster::Failure::Closed) return;
      // QueueFull comes back inside command(): try again from a timer, not from here.
      if (r.error().failure == cluster::Failure::QueueFull)
        return arm(kRejoin, std::chrono::seconds(1));
      return ping();  // still down (the state line said so): wait again
    }
    join();
  });
}

void ClusterNode::join() {
  if (s_.load) registry_->set_load(s_.load());  // the first record carries them too
  registry_->join([this, alive = alive_](core::Expected<void, std::string> r) {
    if (!*alive || leaving_) return;
    if (r) {
      std::fprintf(diag_, "%s: cluster: registered as %s (%s; source addresses: %s)\n",
                   s_.who.c_str(), name_.c_str(), s_.role.c_str(), list_text(s_.addresses).c_str());
      std::fflush(diag_);
      name_wait_logged_ = false;
      if (!ever_joined_ && s_.joined) s_.joined();
      ever_joined_ = true;
      refresh();
      return;
    }
    // Transport trouble ("joining the cluster: ..."): wait for Redis again.
    if (r.error().rfind("joining the cluster:", 0) == 0) return ping();
    // The name is held by a live node. A node restarted within its old record's TTL (kill -9,
    // then at once) finds its own old record: wait it out; past one TTL it is another node.
    // Counted from the first refusal, not from start-up: Redis may have answered late.
    if (!name_wait_logged_) first_taken_ = loop_.now();
    const bool patient =
        ever_joined_ || loop_.now() - first_taken_ <= s_.registry.ttl + s_.registry.heartbeat;
    if (!patient && s_.fatal) {
      stopped_ = true;
      return s_.fatal(r.error());
    }
    if (!name_wait_logged_) {
      std::fprintf(diag_, "%s: cluster: %s; trying again until its record expires\n",
                   s_.who.c_str(), r.error().c_str());
      std::fflush(diag_);
      name_wait_logged_ = true;
    }
    arm(kRejoin, std::chrono::seconds(1));
  });
}

void ClusterNode::on_state(const cluster::StateEvent& ev) {
  const auto now = loop_.now();
  if (ev.up) {
    if (!ever_up_) {
      std::fprintf(diag_, "%s: cluster: connected to Redis %s (%s)\n", s_.who.c_str(),
                   display_.c_str(), ev.peer.c_str());
    } else {
      ++reconnects_;
      std::fprintf(diag_,
                   "%s: cluster: Redis %s is back (%s) after %.1f s; the heartbeat writes this "
                   "node's record again\n",
                   s_.who.c_str(), display_.c_str(), ev.peer.c_str(), seconds(now - down_since_));
    }
    std::fflush(diag_);
    ever_up_ = true;
    down_logged_ = false;
    return;
  }
  ++down_events_;
  if (leaving_ || stopped_) return;
  if (!down_logged_) {
    down_logged_ = true;
    down_since_ = last_reminder_ = now;
    std::fprintf(diag_,
                 "%s: cluster: Redis %s %s: %s; retrying in %.1f s (back-off up to 10 s), "
                 "the node goes on meanwhile\n",
                 s_.who.c_str(), display_.c_str(), ever_up_ ? "is down" : "is not reachable yet",
                 ev.reason.c_str(), seconds(ev.retry_in));
  } else if (now - last_reminder_ >= std::chrono::minutes(1)) {
    last_reminder_ = now;
    std::fprintf(diag_, "%s: cluster: Redis still down after %.0f s (%u attempts; last: %s)\n",
                 s_.who.c_str(), seconds(now - down_since_), ev.failures, ev.reason.c_str());
  } else {
    return;
  }
  std::fflush(diag_);
}

void ClusterNode::on_timer(loop::TimerId, uint64_t cookie) {
  switch (cookie) {
    case kRefresh:
      refresh_armed_ = false;
      refresh();
      if (!leaving_) arm(kRefresh, std::chrono::seconds(1));
      break;
    case kRejoin:
      rejoin_armed_ = false;
      if (!leaving_) join();
      break;
    case kLeaveDeadline:
      leave_armed_ = false;
      if (leave_done_) std::exchange(leave_done_, nullptr)();
      break;
    default:
      break;
  }
}

// Every second: the load figures for the next heartbeat, and a listing of the live nodes (for
// mxprobe_cluster_nodes and the log lines of joins and departures), one at a time; every
// kViewEvery seconds the view's figures (refresh_view).
void ClusterNode::refresh() {
  if (s_.load) registry_->set_load(s_.load());
  if (!redis_->up() || leaving_) return;
  const bool watched = loop_.now() < watched_until_;
  const uint64_t n = refreshes_++;
  if (!watched && n % kUnwatchedEvery != 0) return;
  if (!watched || n % kViewEvery == 0) refresh_view();
  if (listing_) return;
  listing_ = true;
  registry_->nodes([this, alive = alive_](auto r) {
    if (!*alive) return;
    listing_ = false;
    if (!r) return;
    if (listed_) {
      const auto c = cluster::compare(nodes_, *r);
      for (const auto& n : c.joined)
        if (n.name != name_)
          std::fprintf(diag_, "%s: cluster: node %s joined (%s; source addresses: %s)\n",
                       s_.who.c_str(), n.name.c_str(), n.role.c_str(),
                       list_text(n.addresses).c_str());
      for (const auto& g : c.gone)
        if (g != name_)
          std::fprintf(diag_, "%s: cluster: node %s left\n", s_.who.c_str(), g.c_str());
      if (!c.joined.empty() || !c.gone.empty()) std::fflush(diag_);
    }
    nodes_ = std::move(*r);
    listed_ = true;
    // The "verified" figure of each node, for its rate; nodes gone are forgotten.
    const auto now = loop_.now();
    std::map<std::string, std::deque<Sample>> kept;
    for (const auto& n : nodes_) {
      auto& q = kept[n.name];
      if (auto it = verified_.find(n.name); it != verified_.end()) q = std::move(it->second);
      auto v = n.load.find("verified");
      if (v == n.load.end()) continue;
      // A restarted node starts from 0 again: its old samples would give a negative rate.
      if (!q.empty() && v->second < q.back().verified) q.clear();
      q.push_back({now, v->second});
      while (q.size() > 1 && now - q.front().at > kRateWindow)
        q.pop_front();
    }
    verified_ = std::move(kept);
    for (auto it = ages_ms_.begin(); it != ages_ms_.end();)
      it = verified_.count(it->first) ? std::next(it) : ages_ms_.erase(it);
  });
}

double ClusterNode::verified_rate(const std::string& name) const {
  auto it = verified_.find(name);
  if (it == verified_.end() || it->second.size() < 2) return -1;
  const auto& q = it->second;
  const double dt = seconds(q.back().at - q.front().at);
  // Heartbeats come every 2 s and listings every second: under two heartbeats' span a rate
  // would jump between 0 and twice the truth.
  if (dt < 2 * seconds(s_.registry.heartbeat)) return -1;
  return static_cast<double>(q.back().verified - q.front().verified) / dt;
}

std::vector<std::pair<std::string, sched::LevelLimits>> ClusterNode::policy_groups() const {
  const sched::Policy* p = s_.policy ? s_.policy() : nullptr;
  if (!p) p = &sched::Policy::builtin();
  std::vector<std::pair<std::string, sched::LevelLimits>> out;
  for (uint32_t i = 0; i < p->provider_count(); ++i)
    // The key the scheduler gives a provider's group on every node (scheduler_limits.cpp).
    out.push_back({"provider:" + p->provider_name(i), p->group_settings(i).mx});
  return out;
}

// Two read-only calls, pipelined: the chunk queue's figures and the groups' use; while watched,
// the heartbeat ages too. A reply that fails keeps the last reading (its age says so).
void ClusterNode::refresh_view() {
  if (viewing_) return;
  viewing_ = true;
  const std::string& prefix = s_.registry.prefix;
  auto groups = policy_groups();
  std::vector<std::string> keys;
  for (const auto& g : groups)
    keys.push_back(g.first);
  auto left = std::make_shared<int>(2);
  auto done = [this, left] {
    if (--*left == 0) {
      viewing_ = false;
      view_at_ = loop_.now();
    }
  };
  redis_->command(cluster::functions::chunk_counts(prefix + "chunks", "workers"),
                  [this, alive = alive_, done](cluster::Result&& r) {
                    if (!*alive) return;
                    if (r.ok())
                      if (auto c = cluster::functions::parse_chunk_counts(*r)) {
                        chunks_ = *c;
                        chunks_read_ = true;
                      }
                    done();
                  });
  redis_->command(cluster::functions::group_use(prefix, keys),
                  [this, alive = alive_, done, groups = std::move(groups)](cluster::Result&& r) {
                    if (!*alive) return;
                    if (r.ok())
                      if (auto u = cluster::functions::parse_group_use(*r, groups.size())) {
                        groups_.clear();
                        for (size_t i = 0; i < groups.size(); ++i)
                          groups_.push_back({groups[i].first, groups[i].second, (*u)[i]});
                        groups_read_ = true;
                      }
                    done();
                  });
  if (loop_.now() < watched_until_ && listed_ && !ages_in_flight_) {
    ages_in_flight_ = true;
    read_ages(nodes_, [this](std::map<std::string, int64_t> ages) {
      ages_in_flight_ = false;
      ages_ms_ = std::move(ages);
    });
  }
}

void ClusterNode::read_ages(const std::vector<cluster::NodeInfo>& list,
                            std::function<void(std::map<std::string, int64_t>)> done) {
  auto ages = std::make_shared<std::map<std::string, int64_t>>();
  if (list.empty()) return done(*ages);
  auto left = std::make_shared<size_t>(list.size());
  auto fin = std::make_shared<std::function<void(std::map<std::string, int64_t>)>>(std::move(done));
  const int64_t ttl_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(s_.registry.ttl).count();
  for (const auto& n : list)
    redis_->command({"PTTL", registry_->record_key(n.name)},
                    [alive = alive_, name = n.name, ages, left, fin, ttl_ms](cluster::Result&& p) {
                      if (!*alive) return;
                      if (p.ok() && p->type == cluster::Reply::Type::Integer && p->integer >= 0)
                        (*ages)[name] = std::max<int64_t>(0, ttl_ms - p->integer);
                      if (--*left == 0) (*fin)(std::move(*ages));
                    });
}

void ClusterNode::leave(std::function<void()> done) {
  if (leaving_) return;
  leaving_ = true;
  const bool was_joined = registry_->joined();
  if (!redis_->up() || !was_joined) {
    if (was_joined)
      std::fprintf(diag_,
                   "%s: cluster: leaving while Redis is away: this node's record expires within "
                   "%.0f s\n",
                   s_.who.c_str(), seconds(s_.registry.ttl));
    registry_->leave();  // stops the heartbeat; the command dies with the client
    return done();
  }
  leave_done_ = std::move(done);
  arm(kLeaveDeadline, std::chrono::seconds(2));
  registry_->leave([this, alive = alive_](bool ours) {
    if (!*alive) return;
    std::fprintf(
        diag_, "%s: cluster: node %s %s\n", s_.who.c_str(), name_.c_str(),
        ours ? "left the cluster (record deleted)" : "left the cluster (its record was not found)");
    std::fflush(diag_);
    if (leave_armed_) loop_.cancel_timer(leave_timer_);
    leave_armed_ = false;
    if (leave_done_) std::exchange(leave_done_, nullptr)();
  });
}

void ClusterNode::append_prometheus(std::string& out) const {
  auto line = [&](const char* name, const char* type, const char* help, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.6g", v);
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" +
           name + " " + buf + "\n";
  };
  line("mxprobe_cluster_redis_up", "gauge", "1 while the connection to Redis is ready.",
       redis_up() ? 1 : 0);
  line("mxprobe_cluster_node_up", "gauge",
       "1 while this node is registered (its heartbeat keeps its record).", registered() ? 1 : 0);
  line("mxprobe_cluster_nodes", "gauge",
       "Live nodes in the registry's last listing (every second while Redis is up).",
       static_cast<double>(nodes_.size()));
  line("mxprobe_cluster_redis_reconnects_total", "counter",
       "Connections to Redis made again after one was lost.", static_cast<double>(reconnects_));
  line("mxprobe_cluster_redis_failures_total", "counter",
       "Failed connection attempts and lost connections to Redis.",
       static_cast<double>(down_events_));
  const auto& st = redis_->connection().stats();
  line("mxprobe_cluster_redis_commands_total", "counter", "Redis commands issued.",
       static_cast<double>(st.issued));
  out +=
      "# HELP mxprobe_cluster_redis_rtt_seconds Redis round trips, from a command's bytes "
      "leaving to its whole reply.\n# TYPE mxprobe_cluster_redis_rtt_seconds histogram\n";
  rtt_.append_prometheus(out, "mxprobe_cluster_redis_rtt_seconds", "");
  line("mxprobe_cluster_chunks_waiting", "gauge",
       "Chunks on the cluster's queue that no worker has claimed yet (read every 2 s).",
       static_cast<double>(std::max<int64_t>(0, chunks_.entries - chunks_.claimed)));
  line("mxprobe_cluster_chunks_claimed", "gauge",
       "Chunks claimed by a worker and not yet completed (the consumer group's pending).",
       static_cast<double>(chunks_.claimed));
  if (!groups_.empty()) {
    auto per_group = [&](const char* name, const char* help, auto value) {
      out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " gauge\n";
      for (const auto& g : groups_) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "%.6g", static_cast<double>(value(g)));
        out += std::string(name) + "{group=\"" + metrics::label_value(g.key) + "\"} " + buf + "\n";
      }
    };
    per_group("mxprobe_cluster_group_sessions",
              "Sessions the whole cluster holds with the MX group (its global slots).",
              [](const GroupReading& g) { return g.use.slots; });
    per_group("mxprobe_cluster_group_sessions_limit",
              "The MX group's session limit (the policy's sessions, for the whole cluster).",
              [](const GroupReading& g) { return g.limits.sessions; });
    per_group("mxprobe_cluster_group_connect_debt_seconds",
              "How far the group's global connection bucket runs ahead of now (x rate = tokens "
              "taken beyond the refill; burst / rate: empty).",
              [](const GroupReading& g) { return seconds(g.use.connect_ahead); });
    per_group("mxprobe_cluster_group_rcpt_debt_seconds",
              "How far the group's global RCPT bucket runs ahead of now.",
              [](const GroupReading& g) { return seconds(g.use.rcpt_ahead); });
    per_group("mxprobe_cluster_group_backoff_factor",
              "The group's shared back-off factor (1: none; rates and the session cap are scaled "
              "by it).",
              [](const GroupReading& g) { return g.use.factor; });
  }
  if (const cluster::RedisRemoteLimits::Stats* ls = s_.limits_stats ? s_.limits_stats() : nullptr) {
    line("mxprobe_cluster_lease_refills_total", "counter",
         "Leases this node took from Redis (one call each: tokens and slots of one key).",
         static_cast<double>(ls->leases));
    line("mxprobe_cluster_lease_waits_total", "counter",
         "Leases that came back short of what they asked: the cluster's budget was spent.",
         static_cast<double>(ls->lease_waits));
    line("mxprobe_cluster_lease_failures_total", "counter",
         "Leases Redis did not answer (the node used what it held, then waited).",
         static_cast<double>(ls->lease_failures));
    out +=
        "# HELP mxprobe_cluster_lease_grants_total Connection and RCPT tokens and session slots "
        "granted to this node.\n# TYPE mxprobe_cluster_lease_grants_total counter\n";
    out += "mxprobe_cluster_lease_grants_total{kind=\"connect\"} " +
           std::to_string(ls->connects_leased) + "\n";
    out += "mxprobe_cluster_lease_grants_total{kind=\"rcpt\"} " + std::to_string(ls->rcpts_leased) +
           "\n";
    out += "mxprobe_cluster_lease_grants_total{kind=\"slot\"} " + std::to_string(ls->slots_leased) +
           "\n";
  }
  out +=
      "# HELP mxprobe_cluster_node_info This node: name, role, Redis (value 1).\n"
      "# TYPE mxprobe_cluster_node_info gauge\nmxprobe_cluster_node_info{node=\"" +
      metrics::label_value(name_) + "\",role=\"" + metrics::label_value(s_.role) + "\",redis=\"" +
      metrics::label_value(display_) + "\"} 1\n";
}

json ClusterNode::view_json(const std::vector<cluster::NodeInfo>& list,
                            const std::map<std::string, int64_t>& ages_ms) const {
  json nodes = json::array();
  for (const auto& n : list) {
    json load = json::object();
    for (const auto& [k, v] : n.load)
      load[k] = v;
    auto age = ages_ms.find(n.name);
    const double rate = verified_rate(n.name);
    nodes.push_back(
        {{"name", n.name},
         {"role", n.role},
         {"addresses", n.addresses},
         {"version", n.version},
         {"started_at_ms", n.started_at_ms},
         {"load", load},
         {"verified_per_s", rate < 0 ? json(nullptr) : json(rate)},
         {"heartbeat_age_s",
          age == ages_ms.end() ? json(nullptr) : json(static_cast<double>(age->second) / 1000.0)},
         {"self", n.name == name_}});
  }
  json groups = json::array();
  for (const auto& g : groups_) {
    // A bucket's use: the tokens taken beyond its refill (its debt times the policy's rate)
    // against its burst; 1 when the cluster takes the whole rate. Unlimited: null.
    auto bucket = [](const sched::RateLimit& rl, cluster::Duration ahead) -> json {
      if (rl.rate <= 0) return {{"rate", 0}, {"burst", rl.burst}, {"taken", 0}, {"use", nullptr}};
      const double taken = seconds(ahead) * rl.rate;
      return {{"rate", rl.rate},
              {"burst", rl.burst},
              {"taken", taken},
              {"use", std::min(1.0, taken / std::max<uint32_t>(1, rl.burst))}};
    };
    const auto cap = std::max<int64_t>(
        1, static_cast<int64_t>(std::floor(g.limits.sessions * g.use.factor + 1e-9)));
    groups.push_back(
        {{"group", g.key},
         {"sessions", g.use.slots},
         {"sessions_limit", g.limits.sessions},
         {"sessions_cap", cap},
         {"use", static_cast<double>(g.use.slots) / std::max<uint32_t>(1, g.limits.sessions)},
         {"backoff_factor", g.use.factor},
         {"connect", bucket(g.limits.connect, g.use.connect_ahead)},
         {"rcpt", bucket(g.limits.rcpt, g.use.rcpt_ahead)}});
  }
  json chunks = nullptr;
  if (chunks_read_)
    chunks = {{"waiting", std::max<int64_t>(0, chunks_.entries - chunks_.claimed)},
              {"claimed", chunks_.claimed},
              {"consumers", chunks_.consumers}};
  json limits = nullptr;
  if (const cluster::RedisRemoteLimits::Stats* ls = s_.limits_stats ? s_.limits_stats() : nullptr)
    limits = {{"refills", ls->leases},
              {"waits", ls->lease_waits},
              {"failures", ls->lease_failures},
              {"granted",
               {{"connect", ls->connects_leased},
                {"rcpt", ls->rcpts_leased},
                {"slot", ls->slots_leased}}}};
  const bool read = view_at_ != cluster::TimePoint{};
  return {{"node", name_},
          {"role", s_.role},
          {"redis",
           {{"url", display_},
            {"up", redis_up()},
            {"rtt_ms", rtt_avg_ms_ < 0 ? json(nullptr) : json(rtt_avg_ms_)},
            {"down_reason", redis_up() ? std::string() : redis_->connection().down_reason()}}},
          {"registered", registered()},
          {"ttl_s", seconds(s_.registry.ttl)},
          {"read_age_s", read ? json(seconds(loop_.now() - view_at_)) : json(nullptr)},
          {"nodes", nodes},
          {"groups", groups},
          {"chunks", chunks},
          {"limits", limits}};
}

json ClusterNode::view() {
  const bool was_watched = loop_.now() < watched_until_;
  watched_until_ = loop_.now() + kWatched;
  // The first look reads the ages at once rather than at the next view refresh.
  if (!was_watched && listed_ && redis_->up() && !ages_in_flight_) {
    ages_in_flight_ = true;
    read_ages(nodes_, [this](std::map<std::string, int64_t> ages) {
      ages_in_flight_ = false;
      ages_ms_ = std::move(ages);
    });
  }
  return view_json(nodes_, ages_ms_);
}

void ClusterNode::describe(std::function<void(int, std::string)> done) {
  watched_until_ = loop_.now() + kWatched;
  auto unavailable = [this](std::function<void(int, std::string)>& d, const std::string& why) {
    json e = {{"error", "redis_unavailable"},
              {"message", "Redis " + display_ + " is not answering: " + why}};
    d(503, e.dump(-1, ' ', false, json::error_handler_t::replace));
  };
  if (!redis_->up())
    return unavailable(done, redis_->connection().down_reason().empty()
                                 ? std::string("not connected yet")
                                 : redis_->connection().down_reason());
  registry_->nodes([this, alive = alive_, done = std::move(done), unavailable](auto r) mutable {
    if (!*alive) return;
    if (!r) return unavailable(done, r.error());
    auto list = std::make_shared<std::vector<cluster::NodeInfo>>(std::move(*r));
    read_ages(*list, [this, alive, list, done = std::move(done)](auto ages) mutable {
      if (!*alive) return;
      // A node gone between the listing and its PTTL is left out.
      std::erase_if(*list, [&](const cluster::NodeInfo& n) { return !ages.count(n.name); });
      done(200, view_json(*list, ages).dump(-1, ' ', false, json::error_handler_t::replace));
    });
  });
}

}  // namespace mxp::app

namespace mxp::app {

std::function<std::unique_ptr<sched::RemoteLimits>()> ClusterNode::remote_limits(
    std::function<void(sched::GroupId, sched::DomainId)> changed) {
  return [this, changed = std::move(changed)]() -> std::unique_ptr<sched::RemoteLimits> {
    cluster::RedisLimitsOptions o;
    // The run's own name for its slots: a node restarted under the same name must not take
    // over the slots its previous run left to expire (their sessions may still be open).
    std::random_device rd;
    char run[17];
    std::snprintf(run, sizeof run, "%08x%08x", rd(), rd());
    o.holder = name_ + "/" + run;
    auto l = std::make_unique<cluster::RedisRemoteLimits>(loop_, *redis_, std::move(o));
    l->set_notifier(changed);
    limits_ = l.get();
    // The lease figures in /metrics and the cluster view.
    if (!s_.limits_stats)
      s_.limits_stats = [this]() -> const cluster::RedisRemoteLimits::Stats* {
        return limits_ ? &limits_->stats() : nullptr;
      };
    return l;
  };
}

}  // namespace mxp::app
