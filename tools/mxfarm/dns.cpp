// dnsmasq configuration and process control, and DNS packet helpers (see dns.hpp).
#include "dns.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <set>

namespace mxfarm {

std::string dnsmasq_config(const Scenario& sc, const DnsmasqParams& p) {
  std::string c;
  c.reserve(128 + sc.domains.size() * 96 + sc.hosts.size() * 64);
  c += "# Written by mxfarm run; deleted when it stops.\n";
  c += "port=" + std::to_string(p.port) + "\n";
  c += "listen-address=" + p.listen_ip + "\n";
  // Bind the one address only, so that several farms (other ports or addresses) coexist.
  c += "bind-interfaces\n";
  c += "no-resolv\nno-hosts\nno-poll\n";
  // Stay root: the default "nobody"/"dnsmasq" user change is not needed on loopback.
  c += "user=root\ngroup=root\n";
  c += "pid-file=\n";
  c += "local-ttl=" + std::to_string(sc.dns.ttl) + "\n";
  c += p.log_queries ? "log-queries\nlog-facility=-\n" : "log-facility=/dev/null\n";

  // Every top-level domain the scenario uses is answered locally: names not listed below get
  // NXDOMAIN instead of being forwarded anywhere.
  std::set<std::string> tlds;
  auto add_tld = [&](const std::string& name) {
    auto dot = name.rfind('.');
    tlds.insert(dot == std::string::npos ? name : name.substr(dot + 1));
  };
  for (const auto& h : sc.hosts)
    add_tld(h.name);
  for (const auto& d : sc.domains)
    add_tld(d.name);
  for (const auto& c2 : sc.clients)
    add_tld(c2.ptr);
  for (const auto& t : tlds)
    c += "local=/" + t + "/\n";
  // Reverse lookups of loopback addresses are answered here too: an address without a record
  // is NXDOMAIN ("no PTR"), not a refusal.
  c += "local=/127.in-addr.arpa/\n";

  if (!p.ready_name.empty()) c += "host-record=" + p.ready_name + ",127.0.0.1\n";

  // DNS blocklists (mxprobe doctor): each zone answered here, so unlisted names are NXDOMAIN
  // ("not listed"); a listed client's reversed-octets name answers its code.
  for (const auto& z : sc.dnsbl) {
    c += "local=/" + z.zone + "/\n";
    if (!z.answer_all.empty()) c += "address=/" + z.zone + "/" + z.answer_all + "\n";
    for (const auto& [ip, answer] : z.listed) {
      auto v = parse_ipv4(ip);
      if (!v) continue;
      c += "host-record=" + std::to_string(*v & 0xff) + "." + std::to_string((*v >> 8) & 0xff) +
           "." + std::to_string((*v >> 16) & 0xff) + "." + std::to_string(*v >> 24) + "." + z.zone +
           "," + answer + "\n";
    }
  }

  std::set<std::string, std::less<>> a_names;
  for (const auto& h : sc.hosts) {
    if (!a_names.insert(h.name).second) continue;
    // host-record takes the name's IPv4 and/or IPv6 address (A and AAAA).
    std::string addrs = h.ipv4 ? h.ip : "";
    if (!h.ip6.empty()) addrs += (addrs.empty() ? "" : ",") + h.ip6;
    c += "host-record=" + h.name + "," + addrs + "\n";
  }
  // Client addresses' reverse DNS: host-record gives A and PTR (forward-confirmed), ptr-record
  // the PTR alone.
  for (const auto& cl : sc.clients) {
    if (cl.confirm) {
      c += "host-record=" + cl.ptr + "," + cl.ip + "\n";
      continue;
    }
    std::string rev;
    for (size_t end = cl.ip.size(); end != std::string::npos && end > 0;) {
      const size_t dot = cl.ip.rfind('.', end - 1);
      const size_t from = dot == std::string::npos ? 0 : dot + 1;
      rev += cl.ip.substr(from, end - from) + ".";
      end = dot == std::string::npos ? std::string::npos : dot;
    }
    c += "ptr-record=" + rev + "in-addr.arpa," + cl.ptr + "\n";
  }
  for (const auto& d : sc.domains) {
    switch (d.dns) {
      case DnsKind::Mx:
        for (const auto& m : d.mx)
          c += "mx-host=" + d.name + "," + m.host + "," + std::to_string(m.pref) + "\n";
        break;
      case DnsKind::AOnly:
        if (a_names.insert(d.name).second)
          c += "host-record=" + d.name + "," + sc.hosts[d.a_host_index].ip + "\n";
        break;
      case DnsKind::NullMx:  // RFC 7505: a single MX with preference 0 and target "."
        c += "mx-host=" + d.name + ",.,0\n";
        break;
      case DnsKind::NoMail:  // the name exists (NOERROR) but has no MX and no A
        c += "txt-record=" + d.name + ",\"v=spf1 -all\"\n";
        break;
      case DnsKind::NxDomain:  // covered by local=
        break;
      case DnsKind::ServFail:
        c += "server=/" + d.name + "/" + p.listen_ip + "#" + std::to_string(p.servfail_port) + "\n";
        break;
      case DnsKind::Timeout:
        c += "server=/" + d.name + "/" + p.listen_ip + "#" + std::to_string(p.silent_port) + "\n";
        break;
    }
  }
  return c;
}

pid_t spawn_dnsmasq(const std::string& dnsmasq_path, const std::string& conf_path,
                    std::string* error) {
  std::string conf_arg = "--conf-file=" + conf_path;
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    *error = std::string("fork: ") + strerror(errno);
    return -1;
  }
  if (pid == 0) {
    // Die with mxfarm, whatever kills it; and check it did not die before prctl took effect.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(1);
    signal(SIGPIPE, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    // Only our ready line goes to stdout; dnsmasq's own errors still reach stderr.
    int devnull = open("/dev/null", O_WRONLY);
    if (devnull >= 0) dup2(devnull, STDOUT_FILENO);
    const char* argv[] = {dnsmasq_path.c_str(), "--keep-in-foreground", conf_arg.c_str(), nullptr};
    execv(argv[0], const_cast<char* const*>(argv));
    fprintf(stderr, "mxfarm: exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  return pid;
}

void stop_child(pid_t pid) {
  if (pid <= 0) return;
  kill(pid, SIGTERM);
  for (int i = 0; i < 400; ++i) {  // up to 2 s
    pid_t r = waitpid(pid, nullptr, WNOHANG);
    if (r == pid || (r < 0 && errno == ECHILD)) return;
    timespec ts{0, 5'000'000};
    nanosleep(&ts, nullptr);
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
}

size_t build_dns_query(uint8_t* buf, size_t cap, uint16_t id, std::string_view name,
                       uint16_t qtype) {
  if (cap < 12 + name.size() + 2 + 4) return 0;
  uint8_t* p = buf;
  const uint8_t hdr[12] = {static_cast<uint8_t>(id >> 8),
                           static_cast<uint8_t>(id),
                           0x01,
                           0x00,
                           0,
                           1,
                           0,
                           0,
                           0,
                           0,
                           0,
                           0};  // RD, QDCOUNT 1
  memcpy(p, hdr, 12);
  p += 12;
  size_t start = 0;
  while (start <= name.size()) {
    size_t dot = name.find('.', start);
    if (dot == std::string_view::npos) dot = name.size();
    size_t len = dot - start;
    if (len == 0 || len > 63) return 0;
    *p++ = static_cast<uint8_t>(len);
    memcpy(p, name.data() + start, len);
    p += len;
    start = dot + 1;
  }
  *p++ = 0;
  *p++ = static_cast<uint8_t>(qtype >> 8);
  *p++ = static_cast<uint8_t>(qtype);
  *p++ = 0;
  *p++ = 1;  // class IN
  return static_cast<size_t>(p - buf);
}

size_t build_servfail(const uint8_t* q, size_t n, uint8_t* out, size_t cap) {
  if (n < 12 || (q[2] & 0x80) != 0) return 0;  // too short, or a response
  if (q[4] != 0 || q[5] != 1) return 0;        // exactly one question
  size_t i = 12;
  while (i < n && q[i] != 0) {
    if ((q[i] & 0xC0) != 0) return 0;  // no compression in a question we answer
    i += 1 + q[i];
  }
  i += 1 + 4;  // root label, QTYPE, QCLASS
  if (i > n || i > cap) return 0;
  memcpy(out, q, i);
  out[2] = static_cast<uint8_t>(0x80 | (q[2] & 0x79));  // QR, keep opcode and RD
  out[3] = 0x80 | 2;                                    // RA, RCODE 2 = SERVFAIL
  memset(out + 6, 0, 6);                                // no answer/authority/additional
  return i;
}

}  // namespace mxfarm
