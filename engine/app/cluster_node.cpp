// ClusterNode: a node's connection to the cluster's Redis and its record in the registry, for
// `serve --cluster` and `worker` (cluster_node.hpp).
#include "app/cluster_node.hpp"

#include <unistd.h>

#include <random>

#include <nlohmann/json.hpp>

#include "cluster/functions.hpp"
#include "cluster/redis_url.hpp"

namespace mxp::app {

using json = nlohmann::ordered_json;

namespace {

double seconds(cluster::Duration d) {
  return std::chrono::duration<double>(d).count();
}

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
  n->redis_->set_rtt_observer([self](cluster::Duration d) { self->rtt_.observe(seconds(d)); });
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
// mxprobe_cluster_nodes and the log lines of joins and departures), one at a time.
void ClusterNode::refresh() {
  if (s_.load) registry_->set_load(s_.load());
  if (listing_ || !redis_->up() || leaving_) return;
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
  out +=
      "# HELP mxprobe_cluster_node_info This node: name, role, Redis (value 1).\n"
      "# TYPE mxprobe_cluster_node_info gauge\nmxprobe_cluster_node_info{node=\"" +
      metrics::label_value(name_) + "\",role=\"" + metrics::label_value(s_.role) + "\",redis=\"" +
      metrics::label_value(display_) + "\"} 1\n";
}

void ClusterNode::describe(std::function<void(int, std::string)> done) {
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
    // The age of each record's last heartbeat, by Redis' clock: TTL minus the time it has left.
    auto list = std::make_shared<std::vector<cluster::NodeInfo>>(std::move(*r));
    auto ages = std::make_shared<std::vector<int64_t>>(list->size(), -1);
    auto left = std::make_shared<size_t>(list->size());
    auto finish = [this, list, ages, done = std::move(done)]() mutable {
      json nodes = json::array();
      for (size_t i = 0; i < list->size(); ++i) {
        const auto& n = (*list)[i];
        if ((*ages)[i] < 0) continue;  // gone between the listing and its PTTL
        json load = json::object();
        for (const auto& [k, v] : n.load)
          load[k] = v;
        nodes.push_back({{"name", n.name},
                         {"role", n.role},
                         {"addresses", n.addresses},
                         {"version", n.version},
                         {"started_at_ms", n.started_at_ms},
                         {"load", load},
                         {"heartbeat_age_s", static_cast<double>((*ages)[i]) / 1000.0},
                         {"self", n.name == name_}});
      }
      json body = {{"node", name_},
                   {"redis", {{"url", display_}, {"up", redis_->up()}}},
                   {"ttl_s", seconds(s_.registry.ttl)},
                   {"nodes", nodes}};
      done(200, body.dump(-1, ' ', false, json::error_handler_t::replace));
    };
    if (list->empty()) return finish();
    auto fin = std::make_shared<decltype(finish)>(std::move(finish));
    const int64_t ttl_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(s_.registry.ttl).count();
    for (size_t i = 0; i < list->size(); ++i)
      redis_->command({"PTTL", registry_->record_key((*list)[i].name)},
                      [alive = alive_, i, ages, left, fin, ttl_ms](cluster::Result&& p) {
                        if (!*alive) return;
                        if (p.ok() && p->type == cluster::Reply::Type::Integer && p->integer >= 0)
                          (*ages)[i] = std::max<int64_t>(0, ttl_ms - p->integer);
                        if (--*left == 0) (*fin)();
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
    return l;
  };
}

}  // namespace mxp::app
