// The farm's DNS: a dnsmasq configuration written from the scenario, the dnsmasq child process,
// and the two tiny DNS behaviours dnsmasq cannot produce itself (SERVFAIL, no answer), which
// dnsmasq forwards to UDP sockets of mxfarm's own (see farm.cpp).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "scenario.hpp"

namespace mxfarm {

struct DnsmasqParams {
  std::string listen_ip;
  uint16_t port = 0;
  uint16_t servfail_port = 0;  // mxfarm's UDP socket answering SERVFAIL
  uint16_t silent_port = 0;    // mxfarm's UDP socket that never answers
  bool log_queries = false;
  // A name only this farm's dnsmasq answers (with 127.0.0.1), asked by the readiness probe: on a
  // port another farm's dnsmasq already holds, that one answers the probe with no address, so a
  // farm never takes another's DNS server for its own.
  std::string ready_name;
};

// The configuration file's text. Every name comes from the scenario; unlisted names under the
// scenario's top-level domains get NXDOMAIN (`local=`), nothing is forwarded to the outside.
std::string dnsmasq_config(const Scenario& sc, const DnsmasqParams& p);

// Starts `dnsmasq --keep-in-foreground --conf-file=PATH` with PR_SET_PDEATHSIG so that it dies
// with us even if we are killed. Returns the pid, or -1 with *error set.
pid_t spawn_dnsmasq(const std::string& dnsmasq_path, const std::string& conf_path,
                    std::string* error);

// SIGTERM, wait up to 2 s, then SIGKILL; always reaps.
void stop_child(pid_t pid);

// A minimal DNS query (RFC 1035 section 4.1) for name/qtype. Returns its size, 0 if too long.
size_t build_dns_query(uint8_t* buf, size_t cap, uint16_t id, std::string_view name,
                       uint16_t qtype);

// The SERVFAIL response (RCODE 2) to query q: same id and question, no records. Returns its
// size, or 0 when q is not a well-formed query.
size_t build_servfail(const uint8_t* q, size_t n, uint8_t* out, size_t cap);

}  // namespace mxfarm
