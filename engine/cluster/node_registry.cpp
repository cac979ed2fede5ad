// NodeRegistry: a node's record in Redis, its heartbeat and the listing (node_registry.hpp).
#include "cluster/node_registry.hpp"

#include <algorithm>
#include <chrono>
#include <random>
#include <set>

namespace mxp::cluster {
namespace {

std::string ms(Duration d) {
  return std::to_string(
      std::max<int64_t>(1, std::chrono::duration_cast<std::chrono::milliseconds>(d).count()));
}

std::string random_instance() {
  std::random_device rd;
  std::uniform_int_distribution<uint64_t> dist;
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(dist(rd)));
  return buf;
}

std::string join_list(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) {
    if (!out.empty()) out += ',';
    out += s;
  }
  return out;
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  for (size_t start = 0; start < s.size();) {
    size_t comma = s.find(',', start);
    if (comma == std::string::npos) comma = s.size();
    if (comma > start) out.push_back(s.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

int64_t to_int(const std::string& s) {
  try {
    return std::stoll(s);
  } catch (...) {
    return 0;
  }
}

// A record (HGETALL's flat field/value array) back into a NodeInfo.
NodeInfo parse_record(const Reply& r) {
  NodeInfo n;
  for (size_t i = 0; i + 1 < r.elements.size(); i += 2) {
    const std::string& f = r.elements[i].str;
    const std::string& v = r.elements[i + 1].str;
    if (f == "name") {
      n.name = v;
    } else if (f == "instance") {
      n.instance = v;
    } else if (f == "addresses") {
      n.addresses = split_list(v);
    } else if (f == "version") {
      n.version = v;
    } else if (f == "role") {
      n.role = v;
    } else if (f == "started_at") {
      n.started_at_ms = to_int(v);
    } else if (f.rfind("load.", 0) == 0) {
      n.load[f.substr(5)] = to_int(v);
    }
  }
  return n;
}

}  // namespace

NodeChanges compare(const std::vector<NodeInfo>& before, const std::vector<NodeInfo>& after) {
  NodeChanges c;
  std::set<std::string> old_names, new_names;
  for (const auto& n : before)
    old_names.insert(n.name);
  for (const auto& n : after) {
    new_names.insert(n.name);
    if (!old_names.count(n.name)) c.joined.push_back(n);
  }
  for (const auto& name : old_names)
    if (!new_names.count(name)) c.gone.push_back(name);
  return c;
}

NodeRegistry::NodeRegistry(loop::Loop& loop, RedisClient& redis, RegistryOptions options,
                           NodeInfo self)
    : loop_(loop), redis_(redis), opts_(std::move(options)), self_(std::move(self)) {
  self_.instance = random_instance();
  if (self_.started_at_ms == 0) {
    self_.started_at_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
  }
}

NodeRegistry::~NodeRegistry() {
  *alive_ = false;
  disarm();
}

std::vector<std::string> NodeRegistry::beat_command() const {
  std::vector<std::string> argv = {"FCALL",
                                   "mxp1_node_beat",
                                   "2",
                                   record_key(self_.name),
                                   index_key(),
                                   self_.name,
                                   self_.instance,
                                   ms(opts_.ttl),
                                   "addresses",
                                   join_list(self_.addresses),
                                   "version",
                                   self_.version,
                                   "role",
                                   self_.role,
                                   "started_at",
                                   std::to_string(self_.started_at_ms)};
  for (const auto& [k, v] : self_.load) {
    argv.push_back("load." + k);
    argv.push_back(std::to_string(v));
  }
  return argv;
}

void NodeRegistry::join(JoinDone done) {
  if (self_.name.empty() || self_.name.find_first_of(" \r\n") != std::string::npos) {
    done(core::unexpected("node name must be non-empty, without spaces: '" + self_.name + "'"));
    return;
  }
  beat_in_flight_ = true;
  redis_.command(beat_command(), [this, alive = alive_, done = std::move(done)](Result&& r) {
    if (!*alive) return;
    beat_in_flight_ = false;
    if (!r.ok()) {
      done(core::unexpected("joining the cluster: " + r.error().message));
      return;
    }
    if (r->is_error()) {
      done(core::unexpected(r->str.rfind("TAKEN ", 0) == 0 ? r->str.substr(6) : r->str));
      return;
    }
    joined_ = true;
    ++beats_;
    arm();
    done({});
  });
}

void NodeRegistry::leave(std::function<void(bool)> done) {
  joined_ = false;
  disarm();
  redis_.command({"FCALL", "mxp1_node_leave", "2", record_key(self_.name), index_key(), self_.name,
                  self_.instance},
                 [alive = alive_, done = std::move(done)](Result&& r) {
                   if (!*alive || !done) return;
                   done(r.ok() && r->type == Reply::Type::Integer && r->integer == 1);
                 });
}

void NodeRegistry::nodes(ListDone done) {
  redis_.command({"FCALL", "mxp1_node_list", "1", index_key(), opts_.prefix + "node:"},
                 [alive = alive_, done = std::move(done)](Result&& r) {
                   if (!*alive) return;
                   if (!r.ok()) {
                     done(core::unexpected("listing the nodes: " + r.error().message));
                     return;
                   }
                   if (r->is_error() || r->type != Reply::Type::Array) {
                     done(core::unexpected("listing the nodes: " + to_string(*r)));
                     return;
                   }
                   std::vector<NodeInfo> out;
                   for (const Reply& rec : r->elements)
                     out.push_back(parse_record(rec));
                   std::sort(out.begin(), out.end(),
                             [](const NodeInfo& a, const NodeInfo& b) { return a.name < b.name; });
                   done(std::move(out));
                 });
}

void NodeRegistry::arm() {
  if (armed_ || !joined_) return;
  timer_ = loop_.add_timer(loop_.now() + opts_.heartbeat, *this);
  armed_ = true;
}

void NodeRegistry::disarm() {
  if (armed_) loop_.cancel_timer(timer_);
  armed_ = false;
}

void NodeRegistry::on_timer(loop::TimerId, uint64_t) {
  armed_ = false;
  beat();
  arm();
}

void NodeRegistry::beat() {
  // One beat at a time: while Redis is away the beat waits in the client's queue, and piling
  // up more of them would only renew the same record several times when it comes back.
  if (beat_in_flight_ || !joined_) return;
  beat_in_flight_ = true;
  redis_.command(
      beat_command(),
      [this, alive = alive_](Result&& r) {
        if (!*alive) return;
        beat_in_flight_ = false;
        if (!r.ok() || !joined_) return;  // transport trouble: the next beat tries again
        if (r->is_error()) {
          joined_ = false;
          disarm();
          if (on_error_) on_error_(r->str.rfind("TAKEN ", 0) == 0 ? r->str.substr(6) : r->str);
          return;
        }
        ++beats_;
      },
      opts_.ttl);
}

}  // namespace mxp::cluster
