// c-ares hosted on the engine's loop: MX by preference (random among equals), implicit MX via
// A/AAAA (RFC 5321 §5.1), null MX (RFC 7505), NXDOMAIN / no mail server / SERVFAIL / timeout
// kept apart, answers cached by TTL, and lookups of the same name in flight shared.
// c-ares 1.18 is driven through its socket-state callback and ares_process_fd (docs/platform.md).
#pragma once

#include <ares.h>

#include <chrono>
#include <deque>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/expected.hpp"
#include "dns/mx.hpp"
#include "loop/loop.hpp"

namespace mxp::dns {

enum class AddressPreference : uint8_t { Ipv4, Ipv6 };

struct ResolverOptions {
  std::vector<std::string> servers;         // "127.0.0.1:5353", "[::1]:53"; empty: /etc/resolv.conf
  std::chrono::milliseconds timeout{2000};  // per try
  int tries = 2;
  bool ipv6 = true;  // also ask AAAA for mail hosts
  // Which family a mail host's addresses are tried in first, among hosts of equal MX preference
  // (Postfix's smtp_address_preference): all preferred-family addresses of those hosts, then
  // the others. IPv4 by default: a new IPv6 source has no reputation yet with most receivers.
  AddressPreference prefer = AddressPreference::Ipv4;
  // Cache bounds: positive answers live min(TTL, max_ttl) but at least min_ttl; failures
  // (SERVFAIL, timeout) are not cached, NXDOMAIN and no-mail answers for negative_ttl.
  std::chrono::seconds min_ttl{30}, max_ttl{86400}, negative_ttl{300};
  // Queries on the wire at once. A burst of thousands of UDP queries overflows the resolver's
  // socket buffer (dnsmasq drops them, and the retries come as one burst again), so the rest
  // wait in a FIFO: polite to the resolver and faster in the end.
  size_t max_inflight = 64;
  // Entries kept in each cache (domains, mail hosts): past it, expired entries go, then all.
  size_t max_cache_entries = 200'000;
};

struct ResolverStats {
  uint64_t lookups = 0;     // resolve() calls
  uint64_t cache_hits = 0;  // answered from the cache
  uint64_t shared = 0;      // joined a lookup already in flight
  uint64_t queries = 0;     // DNS queries sent (MX, A, AAAA)
  uint64_t host_hits = 0;   // mail-host addresses reused (cached or in flight), no query
};

// The answer to a lookup that is not about mail (engine/identity, `doctor`): the names of a PTR
// answer, or the addresses of an A or AAAA answer.
struct RecordsAnswer {
  // The resolver answered about the name: the records, none when the name exists without such
  // records (NODATA) or does not exist (then nxdomain). False: no usable answer (timeout,
  // SERVFAIL, REFUSED), error says why.
  bool answered = false;
  bool nxdomain = false;
  std::vector<std::string> names;         // PTR: the host names, in the answer's order
  std::vector<loop::Endpoint> addresses;  // A/AAAA: port 0
  // When !answered: "dns: no answer from 127.0.0.1:5353 in 2 tries of 5.0 s (PTR lookup of
  // 5.0.0.127.in-addr.arpa)".
  std::string error;
};

class Resolver final : public MxResolver, private loop::FdHandler, private loop::TimerHandler {
 public:
  // Fails, saying why, when c-ares cannot start or a server is not "ip[:port]".
  static core::Expected<std::unique_ptr<Resolver>, std::string> create(loop::Loop& loop,
                                                                       const ResolverOptions& opts);
  ~Resolver() override;

  void resolve(const std::string& domain, Done done) override;
  void check(std::function<void(bool answered)> done) override;
  std::string describe() const override;
  // The PTR names of an address (its in-addr.arpa / ip6.arpa name), and the addresses of one
  // family (AF_INET: A, AF_INET6: AAAA) of a host name. Not cached (start-up and `doctor` ask
  // each once); queued behind max_inflight like every query. done is called exactly once, from
  // the loop (c-ares may call it before the call returns for a name it cannot even send).
  using RecordsDone = std::function<void(const RecordsAnswer&)>;
  void lookup_ptr(const loop::Endpoint& ip, RecordsDone done);
  void lookup_addresses(const std::string& host, int family, RecordsDone done);
  // "5.0.0.127.in-addr.arpa", "1.0.0...8.b.d.0.1.0.0.2.ip6.arpa": where an address's PTR lives.
  static std::string reverse_name(const loop::Endpoint& ip);
  const ResolverStats& stats() const { return stats_; }
  size_t in_flight() const { return pending_.size(); }

 private:
  struct Lookup;
  struct HostLookup;
  struct Query;
  struct Check;
  struct RecordsQuery;
  void lookup_records(std::string name, int type, RecordsDone done);
  std::string failure_text(DnsStatus status) const;  // "no answer from X in 2 tries of 2.0 s"
  static void on_check(void* arg, int status, int timeouts, unsigned char* abuf, int alen);
  Resolver(loop::Loop& loop, const ResolverOptions& opts);

  void query(Query* q, const std::string& name, int type);
  void drain_queue();
  static void on_answer(void* arg, int status, int timeouts, unsigned char* abuf, int alen);
  void on_mx(Lookup* l, int status, const unsigned char* abuf, int alen);
  void resolve_host(Lookup* l, size_t host_index);
  void on_addr(HostLookup* h, int type, int status, const unsigned char* abuf, int alen);
  void host_done(HostLookup* h);
  void finish(Lookup* l);
  // stage: what was being looked up ("MX", "A/AAAA of the mail hosts"), for the error text.
  void fail(Lookup* l, DnsStatus status, std::string_view stage = "MX");
  void rearm_timer();
  template <typename Map>
  void make_room(Map& cache);
  static void on_sock_state(void* data, ares_socket_t fd, int readable, int writable);
  void on_fd_ready(int fd, bool readable, bool writable) override;
  void on_timer(loop::TimerId id, uint64_t cookie) override;

  struct CacheEntry {
    MxAnswer answer;
    loop::TimePoint expires;
  };
  struct HostEntry {
    std::vector<loop::Endpoint> v4, v6;
    loop::TimePoint expires;
  };
  struct Waiting {
    Query* q;
    std::string name;
    int type;
  };

  loop::Loop& loop_;
  ResolverOptions opts_;
  ares_channel channel_ = nullptr;
  std::unordered_map<std::string, CacheEntry> cache_;
  std::unordered_map<std::string, std::unique_ptr<Lookup>> pending_;
  // Mail hosts' addresses: thousands of domains share a provider's MX hosts, so each host is
  // asked once (in flight: shared; answered: cached by TTL).
  std::unordered_map<std::string, HostEntry> host_cache_;
  std::unordered_map<std::string, std::unique_ptr<HostLookup>> host_pending_;
  std::deque<Waiting> queue_;  // queries waiting for a place on the wire
  size_t inflight_ = 0;
  loop::TimerId timer_{};
  bool timer_armed_ = false;
  ResolverStats stats_;
  std::mt19937 rng_{std::random_device{}()};
};

}  // namespace mxp::dns
