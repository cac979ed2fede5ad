// What the pipeline needs from DNS: for a domain, the ordered list of mail-server addresses to
// try, or why there is none. Resolver (resolver.hpp) answers it with c-ares; tests use a table.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/endpoint.hpp"
#include "dns/status.hpp"

namespace mxp::dns {

struct MxTarget {
  std::string host;  // the MX host name (or the domain itself for an implicit MX)
  uint16_t preference = 0;
  core::Endpoint address;  // port 0: the pipeline sets --smtp-port
};

struct MxAnswer {
  bool ok = false;
  DnsStatus failure = DnsStatus::Timeout;  // when !ok
  bool implicit = false;  // RFC 5321 §5.1: no MX, the domain's own A/AAAA stands in
  // In the order to try: by preference, random among equal preferences, each host's addresses.
  std::vector<MxTarget> targets;
  // When !ok and the failure is temporary (SERVFAIL, REFUSED, timeout): the stage and the cause,
  // for the record's `error`, e.g. "dns: no answer from 127.0.0.1:5353 (MX lookup of x.org)".
  std::string error;
};

class MxResolver {
 public:
  using Done = std::function<void(const MxAnswer&)>;
  virtual ~MxResolver() = default;
  // Calls done exactly once, possibly before returning (a cached answer).
  virtual void resolve(const std::string& domain, Done done) = 0;
  // Whether the resolver answers at all: any reply, whatever its RCODE, to a query every
  // resolver answers (NS of the root). Calls done once, possibly before returning. A table
  // always answers.
  virtual void check(std::function<void(bool answered)> done) { done(true); }
  // Who answers, for messages: "127.0.0.1:5353", "the system resolver (/etc/resolv.conf)".
  virtual std::string describe() const { return "the resolver"; }
};

// A fixed table, for tests and for pinning domains to hosts by hand.

class TableResolver : public MxResolver {
 public:
  void set(const std::string& domain, MxAnswer answer) { table_[domain] = std::move(answer); }
  void resolve(const std::string& domain, Done done) override {
    auto it = table_.find(domain);
    if (it != table_.end()) return done(it->second);
    MxAnswer nx;
    nx.failure = DnsStatus::NxDomain;
    done(nx);
  }

 private:
  std::unordered_map<std::string, MxAnswer> table_;
};

}  // namespace mxp::dns
