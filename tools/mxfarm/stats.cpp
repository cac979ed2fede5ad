// Counting and the JSON report (format in docs/mxfarm.md).
#include "stats.hpp"

#include <algorithm>
#include <map>

#include <nlohmann/json.hpp>

namespace mxfarm {

using nlohmann::json;

size_t Window::add(uint64_t now, uint64_t span) {
  // Drop what fell out of the window, oldest first.
  while (size_ > 0 && ring_[head_] + span <= now) {
    head_ = (head_ + 1) & (ring_.size() - 1);
    --size_;
  }
  if (size_ == ring_.size()) {  // grow (power of two), unrolling the ring
    std::vector<uint64_t> bigger(std::max<size_t>(16, ring_.size() * 2));
    for (size_t i = 0; i < size_; ++i)
      bigger[i] = ring_[(head_ + i) & (ring_.size() - 1)];
    ring_.swap(bigger);
    head_ = 0;
  }
  ring_[(head_ + size_) & (ring_.size() - 1)] = now;
  return ++size_;
}

void Level::open(uint64_t now) {
  ++current;
  peak_concurrent = std::max(peak_concurrent, current);
  peak_per_second = std::max<uint64_t>(peak_per_second, second.add(now, 1000));
}

void PairStats::reply(int code) {
  for (auto& r : replies) {
    if (r.first == code) {
      ++r.second;
      return;
    }
  }
  replies.emplace_back(static_cast<uint16_t>(code), 1);
}

PairStats& Stats::open(int h, uint32_t ip, uint64_t now) {
  HostStats& hs = hosts_[h];
  PairStats& p = hs.clients[ip];
  if (p.levels[0] == nullptr) {  // a new pair: hosts_ never grows, map nodes never move
    ClientStats& c = clients_[ip];
    p.levels = {&p.level, &hs.level, &c.level, &total_};
    p.timelines = {&hs.timeline, &c.timeline, &total_timeline_};
  }
  for (Level* l : p.levels)
    l->open(now);
  const size_t sec = second(now);
  for (Timeline* t : p.timelines)
    Timeline::count(t->connections, sec);
  ++p.connections;
  return p;
}

void Stats::close(PairStats& p) {
  for (Level* l : p.levels)
    l->close();
}

void Stats::limit_reject(PairStats& p, uint64_t now) {
  ++p.limit_rejects;
  const size_t sec = second(now);
  for (Timeline* t : p.timelines)
    Timeline::count(t->limit_rejects, sec);
}

int64_t Stats::transaction(int h, uint32_t ip, std::string_view mail_from) {
  if (txns_.size() >= txn_cap_) {
    txn_truncated_ = txn_cap_ > 0;
    return -1;
  }
  txns_.push_back(Transaction{h, ip, std::string(mail_from), {}});
  return static_cast<int64_t>(txns_.size() - 1);
}

void Stats::rcpt(std::string_view addr, std::string_view domain) {
  auto it = rcpt_by_address_.find(addr);
  if (it != rcpt_by_address_.end()) {
    ++it->second;
  } else if (rcpt_by_address_.size() < rcpt_cap_) {
    rcpt_by_address_.emplace(std::string(addr), 1);
  } else {
    rcpt_truncated_ = true;
  }
  auto d = rcpt_by_domain_.find(domain);
  if (d != rcpt_by_domain_.end()) {
    ++d->second;
  } else {
    rcpt_by_domain_.emplace(std::string(domain), 1);
  }
}

void PairStats::helo(std::string_view name) {
  for (auto& [n, count] : helo_names)
    if (n == name) return void(++count);
  // Past kMaxHelo names, the rest are counted together under one more entry, "(more)".
  helo_names.emplace_back(helo_names.size() < kMaxHelo ? std::string(name) : "(more)", 1);
}

namespace {

// Sums of pair counters, for a client, a host or the whole farm.
struct Sum {
  uint64_t connections = 0, limit_rejects = 0, data = 0, broken = 0;
  uint64_t grey_triplets = 0, grey_passed = 0, grey_early = 0;
  uint64_t tls_handshakes = 0, tls_failures = 0, tls_resumed = 0;
  std::array<uint64_t, kCmdCount> commands{};
  std::map<int, uint64_t> replies;
  std::map<std::string, uint64_t> helo;
  void add(const PairStats& p) {
    for (const auto& [name, n] : p.helo_names)
      helo[name] += n;
    connections += p.connections;
    limit_rejects += p.limit_rejects;
    data += p.data;
    broken += p.broken_replies;
    grey_triplets += p.greylist_triplets;
    grey_passed += p.greylist_passed;
    grey_early += p.greylist_early;
    tls_handshakes += p.tls_handshakes;
    tls_failures += p.tls_failures;
    tls_resumed += p.tls_resumed;
    for (int i = 0; i < kCmdCount; ++i)
      commands[i] += p.commands[i];
    for (const auto& [code, n] : p.replies)
      replies[code] += n;
  }
};

// Trailing zeros trimmed (Timeline::count only grows a vector to an index it counts, so there
// are none today; the trim keeps the documented shape if that changes).
json trimmed(const std::vector<uint64_t>& v) {
  size_t n = v.size();
  while (n > 0 && v[n - 1] == 0)
    --n;
  return json(std::vector<uint64_t>(v.begin(), v.begin() + static_cast<ptrdiff_t>(n)));
}

json to_json(const Sum& s, const Level& l, const Timeline* t = nullptr) {
  json cmds = json::object();
  for (int i = 0; i < kCmdCount; ++i) {
    if (s.commands[i] == 0 || i == static_cast<int>(Cmd::Connect)) continue;
    std::string name(to_string(static_cast<Cmd>(i)));
    std::transform(name.begin(), name.end(), name.begin(), ::toupper);
    cmds[name] = s.commands[i];
  }
  json replies = json::object();
  for (const auto& [code, n] : s.replies)
    replies[std::to_string(code)] = n;
  json j = {{"connections", s.connections},
            {"current_connections", l.current},
            {"peak_concurrent", l.peak_concurrent},
            {"peak_connections_per_second", l.peak_per_second},
            {"limit_rejects", s.limit_rejects},
            {"commands", cmds},
            {"replies", replies},
            {"broken_replies", s.broken},
            {"data_commands", s.data},
            {"peak_rcpts_per_session", l.peak_rcpts},
            {"peak_rcpt_rejections_per_session", l.peak_rcpt_rejections},
            {"greylist_triplets", s.grey_triplets},
            {"greylist_passed", s.grey_passed},
            {"greylist_early", s.grey_early},
            {"tls_handshakes", s.tls_handshakes},
            {"tls_failures", s.tls_failures},
            {"tls_resumed", s.tls_resumed},
            {"helo", s.helo}};
  if (t)
    j["timeline"] = {{"connections", trimmed(t->connections)},
                     {"limit_rejects", trimmed(t->limit_rejects)}};
  return j;
}

// Clients are counted by IPv4 address; IPv6 clients (0) together under "ipv6".
std::string client_name(uint32_t ip) {
  return ip ? format_ipv4(ip) : "ipv6";
}

}  // namespace

json Stats::report(const Scenario& sc, uint64_t uptime_ms) const {
  json j;
  j["uptime_ms"] = uptime_ms;
  Sum total;
  std::map<uint32_t, Sum> by_client;
  json mx = json::object();
  for (size_t h = 0; h < hosts_.size(); ++h) {
    const HostStats& hs = hosts_[h];
    const Host& host = sc.hosts[h];
    if (!host.b.listen) continue;
    Sum hsum;
    json clients = json::object();
    std::map<uint32_t, const PairStats*> sorted;
    for (const auto& [ip, p] : hs.clients)
      sorted[ip] = &p;
    for (const auto& [ip, p] : sorted) {
      Sum ps;
      ps.add(*p);
      hsum.add(*p);
      total.add(*p);
      by_client[ip].add(*p);
      clients[client_name(ip)] = to_json(ps, p->level);
    }
    json o = to_json(hsum, hs.level, &hs.timeline);
    o["ip"] = host.ip;
    o["port"] = host.port;
    o["clients"] = std::move(clients);
    mx[host.name] = std::move(o);
  }
  json clients = json::object();
  static const ClientStats kNone;
  for (const auto& [ip, s] : by_client) {
    auto it = clients_.find(ip);
    const ClientStats& c = it == clients_.end() ? kNone : it->second;
    clients[client_name(ip)] = to_json(s, c.level, &c.timeline);
  }
  j["total"] = to_json(total, total_, &total_timeline_);
  j["clients"] = std::move(clients);
  j["mx"] = std::move(mx);
  std::map<std::string_view, uint64_t> addrs, domains;
  for (const auto& [k, v] : rcpt_by_address_)
    addrs[k] = v;
  for (const auto& [k, v] : rcpt_by_domain_)
    domains[k] = v;
  j["rcpt_by_address"] = addrs;
  j["rcpt_by_address_truncated"] = rcpt_truncated_;
  j["rcpt_by_domain"] = domains;
  if (txn_cap_ > 0) {
    json txns = json::array();
    for (const auto& t : txns_)
      txns.push_back({{"mx", sc.hosts[static_cast<size_t>(t.host)].name},
                      {"client", client_name(t.client)},
                      {"mail_from", t.mail_from},
                      {"rcpts", t.rcpts}});
    j["transactions"] = txns;
    j["transactions_truncated"] = txn_truncated_;
  }
  return j;
}

}  // namespace mxfarm
