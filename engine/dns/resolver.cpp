#include "dns/resolver.hpp"

#include <arpa/inet.h>
#include <arpa/nameser.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstring>
#include <mutex>

namespace mxp::dns {
namespace {

// The smallest TTL among the answer records of a reply (c-ares 1.18's MX parser drops TTLs).
// UINT32_MAX when there is none or the reply is malformed.
uint32_t min_answer_ttl(const unsigned char* abuf, int alen) {
  uint32_t best = UINT32_MAX;
  if (alen < HFIXEDSZ) return best;
  int qd = (abuf[4] << 8) | abuf[5], an = (abuf[6] << 8) | abuf[7];
  const unsigned char* p = abuf + HFIXEDSZ;
  const unsigned char* end = abuf + alen;
  auto skip_name = [&]() {
    char* name = nullptr;
    long len = 0;
    if (ares_expand_name(p, abuf, alen, &name, &len) != ARES_SUCCESS) return false;
    ares_free_string(name);
    p += len;
    return p <= end;
  };
  for (int i = 0; i < qd; ++i) {
    if (!skip_name() || end - p < QFIXEDSZ) return best;
    p += QFIXEDSZ;
  }
  for (int i = 0; i < an; ++i) {
    if (!skip_name() || end - p < RRFIXEDSZ) return best;
    uint32_t ttl = (uint32_t(p[4]) << 24) | (uint32_t(p[5]) << 16) | (uint32_t(p[6]) << 8) | p[7];
    int rdlen = (p[8] << 8) | p[9];
    best = std::min(best, ttl);
    p += RRFIXEDSZ;
    if (end - p < rdlen) return best;
    p += rdlen;
  }
  return best;
}

// c-ares status to our DNS outcome. Anything that is not an answer about the domain itself is
// a resolver problem (temporary), never "the domain does not exist".
DnsStatus status_of(int ares_status) {
  switch (ares_status) {
    case ARES_ENOTFOUND:
      return DnsStatus::NxDomain;
    case ARES_ESERVFAIL:
      return DnsStatus::ServFail;
    case ARES_ETIMEOUT:
    case ARES_ECONNREFUSED:
      return DnsStatus::Timeout;
    default:
      return DnsStatus::Refused;
  }
}

std::optional<loop::Endpoint> endpoint_of(const ares_addrttl& t) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr = t.ipaddr;
  return loop::Endpoint::from_sockaddr(reinterpret_cast<const sockaddr*>(&sa), sizeof sa);
}

std::optional<loop::Endpoint> endpoint_of(const ares_addr6ttl& t) {
  sockaddr_in6 sa{};
  sa.sin6_family = AF_INET6;
  static_assert(sizeof(sa.sin6_addr) == sizeof(t.ip6addr));
  std::memcpy(&sa.sin6_addr, &t.ip6addr, sizeof(sa.sin6_addr));
  return loop::Endpoint::from_sockaddr(reinterpret_cast<const sockaddr*>(&sa), sizeof sa);
}

// Appends the addresses of an A or AAAA answer and lowers ttl to the smallest record TTL.
template <typename Ttl, typename Parse>
void collect(const unsigned char* abuf, int alen, Parse parse,
             std::optional<loop::Endpoint> (*to_endpoint)(const Ttl&),
             std::vector<loop::Endpoint>& out, uint32_t& ttl) {
  Ttl ttls[32];
  int n = 32;
  if (parse(abuf, alen, nullptr, ttls, &n) != ARES_SUCCESS) return;
  for (int i = 0; i < n; ++i) {
    if (auto ep = to_endpoint(ttls[i])) out.push_back(*ep);
    ttl = std::min(ttl, static_cast<uint32_t>(std::max(ttls[i].ttl, 0)));
  }
}

// The host names of the PTR records in a reply's answer section (a CNAME on the way, as in
// RFC 2317 classless delegation, is followed by the resolver and skipped here).
std::vector<std::string> ptr_names(const unsigned char* abuf, int alen) {
  std::vector<std::string> names;
  if (alen < HFIXEDSZ) return names;
  int qd = (abuf[4] << 8) | abuf[5], an = (abuf[6] << 8) | abuf[7];
  const unsigned char* p = abuf + HFIXEDSZ;
  const unsigned char* end = abuf + alen;
  auto expand = [&](const unsigned char* at, std::string* out, long* len) {
    char* name = nullptr;
    if (ares_expand_name(at, abuf, alen, &name, len) != ARES_SUCCESS) return false;
    if (out) *out = name;
    ares_free_string(name);
    return true;
  };
  long len = 0;
  for (int i = 0; i < qd; ++i) {
    if (!expand(p, nullptr, &len) || end - (p + len) < QFIXEDSZ) return names;
    p += len + QFIXEDSZ;
  }
  for (int i = 0; i < an; ++i) {
    if (!expand(p, nullptr, &len) || end - (p + len) < RRFIXEDSZ) return names;
    p += len;
    const int type = (p[0] << 8) | p[1], rdlen = (p[8] << 8) | p[9];
    p += RRFIXEDSZ;
    if (end - p < rdlen) return names;
    std::string host;
    if (type == ns_t_ptr && expand(p, &host, &len) && !host.empty()) names.push_back(host);
    p += rdlen;
  }
  return names;
}

bool transient(DnsStatus s) {
  return s == DnsStatus::ServFail || s == DnsStatus::Timeout || s == DnsStatus::Refused;
}

}  // namespace

struct Resolver::Lookup {
  struct Host {
    std::string name;
    uint16_t preference = 0;
    std::vector<loop::Endpoint> v4, v6;
  };
  std::string domain;
  std::vector<Done> waiters;
  std::vector<Host> hosts;
  int outstanding = 0;  // hosts whose addresses are still awaited
  uint32_t ttl = UINT32_MAX;
  bool implicit = false;
  bool address_lookup_failed = false;  // an A/AAAA query failed temporarily
  DnsStatus address_failure = DnsStatus::Timeout;
};

struct Resolver::HostLookup {
  std::string name;
  std::vector<loop::Endpoint> v4, v6;
  int outstanding = 0;  // A/AAAA queries in flight
  uint32_t ttl = UINT32_MAX;
  bool failed = false;
  DnsStatus failure = DnsStatus::Timeout;
  std::vector<std::pair<Lookup*, size_t>> waiters;  // (lookup, index into its hosts)
};

struct Resolver::Query {
  Resolver* self;
  Lookup* lookup;    // MX query
  HostLookup* host;  // A/AAAA query
  int type;
  // Set: a lookup that is not about mail (lookup_records); lookup and host are null.
  std::function<void(int status, const unsigned char* abuf, int alen)> records = {};
};

core::Expected<std::unique_ptr<Resolver>, std::string> Resolver::create(
    loop::Loop& loop, const ResolverOptions& opts) {
  static std::once_flag once;
  static int lib_status = ARES_SUCCESS;
  std::call_once(once, [] { lib_status = ares_library_init(ARES_LIB_INIT_ALL); });
  if (lib_status != ARES_SUCCESS)
    return core::unexpected(std::string("c-ares: ") + ares_strerror(lib_status));
  std::unique_ptr<Resolver> r(new Resolver(loop, opts));
  ares_options o{};
  o.sock_state_cb = &Resolver::on_sock_state;
  o.sock_state_cb_data = r.get();
  o.timeout = static_cast<int>(opts.timeout.count());
  o.tries = opts.tries;
  // Without NOCHECKRESP c-ares 1.18 turns a SERVFAIL answer into ARES_ECONNREFUSED, which
  // would read as an unreachable resolver; we want SERVFAIL kept apart (it is the domain's
  // servers failing). The price: c-ares no longer moves to the next --dns server on SERVFAIL.
  o.flags = ARES_FLAG_NOCHECKRESP;
  int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS;
  int st = ares_init_options(&r->channel_, &o, mask);
  if (st != ARES_SUCCESS) return core::unexpected(std::string("c-ares init: ") + ares_strerror(st));
  if (!opts.servers.empty()) {
    std::string csv;
    for (const auto& s : opts.servers) {
      // Validate here so a typo is a clear error, not a silent fallback.
      if (!loop::Endpoint::parse_host_port(s, 53))
        return core::unexpected("bad DNS server '" + s + "' (want IP or IP:PORT, [IPv6]:PORT)");
      if (!csv.empty()) csv += ',';
      csv += s;
    }
    st = ares_set_servers_ports_csv(r->channel_, csv.c_str());
    if (st != ARES_SUCCESS)
      return core::unexpected(std::string("c-ares servers: ") + ares_strerror(st));
  }
  return r;
}

Resolver::Resolver(loop::Loop& loop, const ResolverOptions& opts) : loop_(loop), opts_(opts) {}

Resolver::~Resolver() {
  if (timer_armed_) loop_.cancel_timer(timer_);
  for (auto& w : queue_)
    delete w.q;
  if (channel_) {
    // Pending queries complete with ARES_EDESTRUCTION; on_answer drops them.
    ares_destroy(channel_);
  }
}

void Resolver::resolve(const std::string& domain, Done done) {
  ++stats_.lookups;
  auto now = loop_.now();
  if (auto it = cache_.find(domain); it != cache_.end()) {
    if (it->second.expires > now) {
      ++stats_.cache_hits;
      return done(it->second.answer);
    }
    cache_.erase(it);
  }
  if (auto it = pending_.find(domain); it != pending_.end()) {
    ++stats_.shared;
    it->second->waiters.push_back(std::move(done));
    return;
  }
  auto l = std::make_unique<Lookup>();
  l->domain = domain;
  l->waiters.push_back(std::move(done));
  Lookup* raw = l.get();
  pending_.emplace(domain, std::move(l));
  query(new Query{this, raw, nullptr, ns_t_mx}, domain, ns_t_mx);
}

void Resolver::query(Query* q, const std::string& name, int type) {
  if (inflight_ >= opts_.max_inflight) {
    queue_.push_back({q, name, type});
    return;
  }
  ++inflight_;
  ++stats_.queries;
  ares_query(channel_, name.c_str(), ns_c_in, type, &Resolver::on_answer, q);
  rearm_timer();
}

void Resolver::drain_queue() {
  while (inflight_ < opts_.max_inflight && !queue_.empty()) {
    Waiting w = std::move(queue_.front());
    queue_.pop_front();
    query(w.q, w.name, w.type);
  }
}

void Resolver::on_answer(void* arg, int status, int, unsigned char* abuf, int alen) {
  std::unique_ptr<Query> q(static_cast<Query*>(arg));
  if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED) return;
  Resolver* self = q->self;
  --self->inflight_;
  if (q->records)
    q->records(status, abuf, alen);
  else if (q->type == ns_t_mx)
    self->on_mx(q->lookup, status, abuf, alen);
  else
    self->on_addr(q->host, q->type, status, abuf, alen);
  self->drain_queue();
}

void Resolver::on_mx(Lookup* l, int status, const unsigned char* abuf, int alen) {
  if (status == ARES_SUCCESS) {
    ares_mx_reply* mx = nullptr;
    int st = ares_parse_mx_reply(abuf, alen, &mx);
    if (st == ARES_SUCCESS) {
      l->ttl = std::min(l->ttl, min_answer_ttl(abuf, alen));
      bool null_mx = false;
      for (auto* m = mx; m; m = m->next) {
        std::string host = m->host ? m->host : "";
        if (host.empty() || host == ".")
          null_mx = true;  // RFC 7505: "0 ."
        else
          l->hosts.push_back({host, m->priority, {}, {}});
      }
      ares_free_data(mx);
      if (null_mx) return fail(l, DnsStatus::NullMx);
    } else if (st != ARES_ENODATA) {
      return fail(l, DnsStatus::Refused);  // malformed answer
    }
  } else if (status != ARES_ENODATA) {
    return fail(l, status_of(status));
  }
  if (l->hosts.empty()) {
    // RFC 5321 §5.1: no MX records, so the domain itself is the implicit MX.
    l->implicit = true;
    l->hosts.push_back({l->domain, 0, {}, {}});
  } else {
    // By preference; RFC 5321 §5.1 asks for a random order among equal preferences.
    std::shuffle(l->hosts.begin(), l->hosts.end(), rng_);
    std::stable_sort(l->hosts.begin(), l->hosts.end(),
                     [](const auto& a, const auto& b) { return a.preference < b.preference; });
  }
  // The last call may finish(l), which frees l: the count is read before, l never after.
  const size_t n = l->hosts.size();
  l->outstanding = static_cast<int>(n);
  for (size_t i = 0; i < n; ++i)
    resolve_host(l, i);
}

void Resolver::resolve_host(Lookup* l, size_t i) {
  const std::string& name = l->hosts[i].name;
  if (auto it = host_cache_.find(name); it != host_cache_.end()) {
    if (it->second.expires > loop_.now()) {
      ++stats_.host_hits;
      l->hosts[i].v4 = it->second.v4;
      l->hosts[i].v6 = it->second.v6;
      if (--l->outstanding == 0) finish(l);
      return;
    }
    host_cache_.erase(it);
  }
  auto& h = host_pending_[name];
  if (h) {
    ++stats_.host_hits;
    h->waiters.emplace_back(l, i);
    return;
  }
  h = std::make_unique<HostLookup>();
  h->name = name;
  h->waiters.emplace_back(l, i);
  HostLookup* raw = h.get();
  raw->outstanding = opts_.ipv6 ? 2 : 1;
  query(new Query{this, nullptr, raw, ns_t_a}, name, ns_t_a);
  if (opts_.ipv6) query(new Query{this, nullptr, raw, ns_t_aaaa}, name, ns_t_aaaa);
}

void Resolver::on_addr(HostLookup* h, int type, int status, const unsigned char* abuf, int alen) {
  if (status == ARES_SUCCESS) {
    if (type == ns_t_a)
      collect<ares_addrttl>(abuf, alen, ares_parse_a_reply, endpoint_of, h->v4, h->ttl);
    else
      collect<ares_addr6ttl>(abuf, alen, ares_parse_aaaa_reply, endpoint_of, h->v6, h->ttl);
  } else if (status != ARES_ENODATA && status != ARES_ENOTFOUND) {
    h->failed = true;
    h->failure = status_of(status);
  }
  if (--h->outstanding == 0) host_done(h);
}

// A mail host's addresses are known: cache them (a temporary failure is not cached) and hand
// them to every domain lookup that waits for this host.
void Resolver::host_done(HostLookup* h) {
  auto node = host_pending_.extract(h->name);
  if (!h->failed) {
    auto ttl = std::chrono::seconds(h->ttl == UINT32_MAX ? opts_.negative_ttl.count() : h->ttl);
    make_room(host_cache_);
    host_cache_[h->name] = {h->v4, h->v6,
                            loop_.now() + std::clamp(ttl, opts_.min_ttl, opts_.max_ttl)};
  }
  for (auto [l, i] : h->waiters) {
    l->hosts[i].v4 = h->v4;
    l->hosts[i].v6 = h->v6;
    if (!h->v4.empty() || !h->v6.empty()) l->ttl = std::min(l->ttl, h->ttl);
    if (h->failed) {
      l->address_lookup_failed = true;
      l->address_failure = h->failure;
    }
    if (--l->outstanding == 0) finish(l);
  }
}

void Resolver::finish(Lookup* l) {
  MxAnswer a;
  a.implicit = l->implicit;
  // Hosts come by preference; within one preference, every address of the preferred family
  // first (host order kept), then the other family's.
  const bool v6_first = opts_.prefer == AddressPreference::Ipv6;
  for (size_t i = 0; i < l->hosts.size();) {
    size_t j = i;
    while (j < l->hosts.size() && l->hosts[j].preference == l->hosts[i].preference)
      ++j;
    for (int pass = 0; pass < 2; ++pass) {
      const bool v6 = (pass == 0) == v6_first;
      for (size_t k = i; k < j; ++k) {
        const auto& h = l->hosts[k];
        for (const auto& ep : v6 ? h.v6 : h.v4)
          a.targets.push_back({h.name, h.preference, ep});
      }
    }
    i = j;
  }
  if (!a.targets.empty()) {
    a.ok = true;
    auto ttl = std::chrono::seconds(l->ttl == UINT32_MAX ? opts_.min_ttl.count() : l->ttl);
    ttl = std::clamp(ttl, opts_.min_ttl, opts_.max_ttl);
    make_room(cache_);
    cache_[l->domain] = {a, loop_.now() + ttl};
  } else {
    // Nothing to connect to: for good (no A/AAAA anywhere), or because address lookups failed.
    return fail(l, l->address_lookup_failed ? l->address_failure : DnsStatus::NoMailServer,
                "A/AAAA of the mail hosts");
  }
  auto node = pending_.extract(l->domain);
  for (auto& w : node.mapped()->waiters)
    w(a);
}

void Resolver::fail(Lookup* l, DnsStatus status, std::string_view stage) {
  MxAnswer a;
  a.ok = false;
  a.failure = status;
  if (transient(status))
    a.error = "dns: " + failure_text(status) + " (" + std::string(stage) + " lookup of " +
              l->domain + ")";
  if (!transient(status)) {
    make_room(cache_);
    cache_[l->domain] = {a, loop_.now() + opts_.negative_ttl};
  }
  auto node = pending_.extract(l->domain);
  for (auto& w : node.mapped()->waiters)
    w(a);
}

std::string Resolver::failure_text(DnsStatus status) const {
  if (status == DnsStatus::Timeout) {
    char secs[32];
    std::snprintf(secs, sizeof secs, "%.1f", static_cast<double>(opts_.timeout.count()) / 1000);
    return "no answer from " + describe() + " in " + std::to_string(opts_.tries) + " tries of " +
           secs + " s";
  }
  if (status == DnsStatus::ServFail) return "SERVFAIL from " + describe();
  return "refused or unusable answer from " + describe();
}

std::string Resolver::reverse_name(const loop::Endpoint& ip) {
  std::string name;
  if (ip.family() == AF_INET) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(ip.sa());
    const auto* b = reinterpret_cast<const unsigned char*>(&sin->sin_addr);
    for (int i = 3; i >= 0; --i)
      name += std::to_string(b[i]) + ".";
    return name + "in-addr.arpa";
  }
  const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(ip.sa());
  const auto* b = reinterpret_cast<const unsigned char*>(&sin6->sin6_addr);
  static constexpr char kHex[] = "0123456789abcdef";
  for (int i = 15; i >= 0; --i) {
    name += kHex[b[i] & 0xf];
    name += '.';
    name += kHex[b[i] >> 4];
    name += '.';
  }
  return name + "ip6.arpa";
}

void Resolver::lookup_ptr(const loop::Endpoint& ip, RecordsDone done) {
  lookup_records(reverse_name(ip), ns_t_ptr, std::move(done));
}

void Resolver::lookup_addresses(const std::string& host, int family, RecordsDone done) {
  lookup_records(host, family == AF_INET6 ? ns_t_aaaa : ns_t_a, std::move(done));
}

void Resolver::lookup_records(std::string name, int type, RecordsDone done) {
  auto* q = new Query{this, nullptr, nullptr, type};
  q->records = [this, name, type, done = std::move(done)](int status, const unsigned char* abuf,
                                                          int alen) {
    RecordsAnswer a;
    if (status == ARES_SUCCESS) {
      a.answered = true;
      if (type == ns_t_ptr) {
        a.names = ptr_names(abuf, alen);
      } else {
        uint32_t ttl = UINT32_MAX;
        if (type == ns_t_a)
          collect<ares_addrttl>(abuf, alen, ares_parse_a_reply, endpoint_of, a.addresses, ttl);
        else
          collect<ares_addr6ttl>(abuf, alen, ares_parse_aaaa_reply, endpoint_of, a.addresses, ttl);
      }
    } else if (status == ARES_ENODATA || status == ARES_ENOTFOUND) {
      a.answered = true;
      a.nxdomain = status == ARES_ENOTFOUND;
    } else {
      const char* what = type == ns_t_ptr ? "PTR" : type == ns_t_a ? "A" : "AAAA";
      a.error =
          "dns: " + failure_text(status_of(status)) + " (" + what + " lookup of " + name + ")";
    }
    done(a);
  };
  query(q, name, type);
}

struct Resolver::Check {
  std::function<void(bool)> done;
};

void Resolver::check(std::function<void(bool answered)> done) {
  auto* c = new Check{std::move(done)};
  ++stats_.queries;
  // Not through the queue: it must not wait behind thousands of lookups to say whether anyone
  // answers. "." NS: every resolver answers it (an answer, REFUSED or SERVFAIL all count).
  ares_query(channel_, ".", ns_c_in, ns_t_ns, &Resolver::on_check, c);
  rearm_timer();
}

void Resolver::on_check(void* arg, int status, int, unsigned char*, int) {
  std::unique_ptr<Check> c(static_cast<Check*>(arg));
  if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED) return;
  // ECONNREFUSED: an ICMP "port unreachable" (nothing listens), or every server failed.
  c->done(status != ARES_ETIMEOUT && status != ARES_ECONNREFUSED);
}

std::string Resolver::describe() const {
  if (opts_.servers.empty()) return "the system resolver (/etc/resolv.conf)";
  std::string s;
  for (const auto& x : opts_.servers)
    s += (s.empty() ? "" : ", ") + x;
  return s;
}

// Keeps a cache bounded: drops expired entries when full, and everything if that is not enough
// (a list with millions of domains must not grow memory; a dropped answer is just asked again).
template <typename Map>
void Resolver::make_room(Map& cache) {
  if (cache.size() < opts_.max_cache_entries) return;
  auto now = loop_.now();
  std::erase_if(cache, [&](const auto& kv) { return kv.second.expires <= now; });
  if (cache.size() >= opts_.max_cache_entries) cache.clear();
}

void Resolver::rearm_timer() {
  timeval tv{};
  timeval* t = ares_timeout(channel_, nullptr, &tv);
  if (timer_armed_) loop_.cancel_timer(timer_);
  timer_armed_ = false;
  if (!t) return;
  auto deadline =
      loop_.now() + std::chrono::seconds(t->tv_sec) + std::chrono::microseconds(t->tv_usec);
  timer_ = loop_.add_timer(deadline, *this);
  timer_armed_ = true;
}

void Resolver::on_sock_state(void* data, ares_socket_t fd, int readable, int writable) {
  auto* self = static_cast<Resolver*>(data);
  if (readable || writable)
    self->loop_.watch_fd(fd, readable != 0, writable != 0, *self);
  else
    self->loop_.unwatch_fd(fd);
}

void Resolver::on_fd_ready(int fd, bool readable, bool writable) {
  ares_process_fd(channel_, readable ? fd : ARES_SOCKET_BAD, writable ? fd : ARES_SOCKET_BAD);
  rearm_timer();
}

void Resolver::on_timer(loop::TimerId, uint64_t) {
  timer_armed_ = false;
  ares_process_fd(channel_, ARES_SOCKET_BAD, ARES_SOCKET_BAD);  // expire timed-out queries
  rearm_timer();
}

}  // namespace mxp::dns
