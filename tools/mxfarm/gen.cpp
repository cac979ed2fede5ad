// Scenario generator (see gen.hpp). Randomness is a fixed splitmix64 stream so that a seed gives
// the same scenario with any compiler or standard library.
#include "gen.hpp"

#include <algorithm>

namespace mxfarm {

namespace {

class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t next() {
    uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double unit() { return static_cast<double>(next() >> 11) / 9007199254740992.0; }

 private:
  uint64_t s_;
};

const std::vector<std::string> kSpecials = {
    "styles",    "catchall",     "greylist",         "slow",           "tarpit",
    "connlimit", "connrate",     "blocked",          "blocked-banner", "errlimit",
    "rcptlimit", "nopipelining", "starttls",         "heloonly",       "drop-connect",
    "drop-mail", "reset-rcpt",   "garbage",          "endless",        "overlong",
    "failover",  "aonly",        "nullmx",           "nomx",           "nxdomain",
    "servfail",  "dnstimeout",   "starttls-required"};

class Builder {
 public:
  Builder(const GenOptions& o, Scenario* sc, uint32_t base) : o_(o), sc_(sc), next_ip_(base) {}

  // Adds a host on the next free address; returns its index, or -1 when 127/8 is exhausted.
  int add_host(const std::string& name, Style style) {
    do {
      ++next_ip_;
    } while ((next_ip_ & 0xff) == 0 || (next_ip_ & 0xff) == 0xff);
    if ((next_ip_ >> 24) != 127) return -1;
    Host h;
    h.name = name;
    h.ip_v4 = next_ip_;
    h.ip = format_ipv4(next_ip_);
    h.port = o_.port;
    h.style = style;
    sc_->hosts.push_back(std::move(h));
    return static_cast<int>(sc_->hosts.size() - 1);
  }

  Domain& add_domain(const std::string& name, Style style) {
    Domain d;
    d.name = name;
    d.style = style;
    sc_->domains.push_back(std::move(d));
    return sc_->domains.back();
  }

  void add_mx(Domain& d, int host, uint16_t pref) {
    MxRecord m;
    m.pref = pref;
    m.host = sc_->hosts[host].name;
    m.host_index = host;
    d.mx.push_back(std::move(m));
  }

 private:
  const GenOptions& o_;
  Scenario* sc_;
  uint32_t next_ip_;
};

void special_mailboxes(Domain& d) {
  d.mailboxes = {{"user1", MailboxStatus::Ok},
                 {"user2", MailboxStatus::Ok},
                 {"full1", MailboxStatus::Full},
                 {"disabled1", MailboxStatus::Disabled}};
}

}  // namespace

const std::vector<std::string>& special_names() {
  return kSpecials;
}

bool generate(const GenOptions& o, Scenario* sc, std::string* error) {
  auto base = parse_ipv4(o.base_ip);
  if (!base || (*base >> 24) != 127) {
    *error = "--base-ip must be an address in 127.0.0.0/8";
    return false;
  }
  if (o.endless_bytes < 1024 || o.overlong_bytes < 1024) {
    *error = "--endless-bytes and --overlong-bytes must be at least 1024";
    return false;
  }
  if (o.domains > 0 && o.hosts == 0) {
    *error = "--hosts must be at least 1 when there are domains";
    return false;
  }
  std::vector<std::string> specials;
  for (const auto& s : o.specials) {
    if (s == "all") {
      // Every special that runs without options: starttls-required needs `run --tls-cert
      // --tls-key` (without them nothing could pass its MAIL), so it is only taken by name.
      for (const auto& k : kSpecials)
        if (k != "starttls-required") specials.push_back(k);
    } else if (s == "none") {
    } else if (std::find(kSpecials.begin(), kSpecials.end(), s) != kSpecials.end()) {
      specials.push_back(s);
    } else {
      *error = "unknown special \"" + s + "\"";
      return false;
    }
  }
  std::sort(specials.begin(), specials.end());
  specials.erase(std::unique(specials.begin(), specials.end()), specials.end());

  *sc = Scenario{};
  sc->dns.ip = o.dns_ip;
  sc->dns.port = o.dns_port;
  sc->dns.ttl = o.ttl;
  const std::string& tld = o.tld;
  Builder b(o, sc, *base);
  Rng rng(o.seed);
  bool full_ok = true;
  auto host = [&](const std::string& name, Style st) {
    int h = b.add_host(name, st);
    if (h < 0) full_ok = false;
    return std::max(h, 0);
  };

  // Ordinary domains over a shared pool of hosts, like customers of a few mail providers.
  std::vector<int> pool;
  for (uint32_t k = 0; k < o.hosts && o.domains > 0; ++k)
    pool.push_back(
        host("mx" + std::to_string(k + 1) + ".farm." + tld, static_cast<Style>(k % kStyleCount)));
  for (uint32_t i = 0; i < o.domains && full_ok; ++i) {
    int primary = pool[i % pool.size()];
    Domain& d = b.add_domain("d" + std::to_string(i + 1) + "." + tld, sc->hosts[primary].style);
    uint32_t n_mx = std::max<uint32_t>(1, std::min<uint32_t>(o.mx_per_domain, o.hosts));
    for (uint32_t k = 0; k < n_mx; ++k)
      b.add_mx(d, pool[(i + k) % pool.size()], static_cast<uint16_t>(10 * (k + 1)));
    d.catch_all = rng.unit() < o.catch_all_share;
    if (rng.unit() < o.greylist_share) d.greylist_delay_s = o.greylist_delay_s;
    for (uint32_t m = 0; m < o.mailboxes; ++m) {
      double r = rng.unit();
      MailboxStatus st = MailboxStatus::Ok;
      if (!d.catch_all && r < o.full_share) {
        st = r < o.full_share / 2 ? MailboxStatus::Full : MailboxStatus::FullPerm;
      } else if (!d.catch_all && r < o.full_share + o.disabled_share) {
        st = MailboxStatus::Disabled;
      }
      d.mailboxes["user" + std::to_string(m + 1)] = st;
    }
  }

  // One domain per special behaviour, each with hosts of its own.
  for (const auto& name : specials) {
    if (!full_ok) break;
    const std::string dn = name + "." + tld;
    auto single = [&](Style st) -> std::pair<Domain*, Host*> {
      int h = host("mx." + dn, st);
      Domain& d = b.add_domain(dn, st);
      b.add_mx(d, h, 10);
      special_mailboxes(d);
      return {&d, &sc->hosts[h]};
    };
    if (name == "styles") {
      for (int s = 0; s < kStyleCount; ++s) {
        auto st = static_cast<Style>(s);
        std::string sdn = std::string(to_string(st)) + "." + tld;
        int h = host("mx." + sdn, st);
        Domain& d = b.add_domain(sdn, st);
        b.add_mx(d, h, 10);
        special_mailboxes(d);
        d.mailboxes["fullperm1"] = MailboxStatus::FullPerm;
      }
    } else if (name == "catchall") {
      single(Style::Gmail).first->catch_all = true;
      for (auto& [k, v] : sc->domains.back().mailboxes)
        v = MailboxStatus::Ok;
    } else if (name == "greylist") {
      single(Style::Postfix).first->greylist_delay_s = o.greylist_delay_s;
    } else if (name == "slow") {
      auto* h = single(Style::Exchange).second;
      h->b.banner_delay_ms = 300;
      h->b.reply_delay_ms = 100;
    } else if (name == "tarpit") {
      single(Style::Postfix).second->b.tarpit_byte_ms = o.tarpit_byte_ms;
    } else if (name == "connlimit") {
      single(Style::Postfix).second->b.max_conn_per_ip = o.conn_limit;
    } else if (name == "connrate") {
      auto* h = single(Style::Gmail).second;
      h->b.rate_count = o.rate_count;
      h->b.rate_window_s = o.rate_window_s;
    } else if (name == "blocked") {
      // Every MX of the domain refuses us at RCPT, like Postfix with an RBL.
      Domain& d = b.add_domain(dn, Style::Postfix);
      special_mailboxes(d);
      for (int k = 1; k <= 2; ++k) {
        int h = host("mx" + std::to_string(k) + "." + dn, Style::Postfix);
        sc->hosts[h].b.block_clients.push_back(Cidr{0, 0});
        sc->hosts[h].b.block_at = Cmd::Rcpt;
        b.add_mx(sc->domains.back(), h, static_cast<uint16_t>(10 * k));
      }
    } else if (name == "blocked-banner") {
      auto* h = single(Style::Yahoo).second;
      h->b.block_clients.push_back(Cidr{0, 0});
      h->b.block_at = Cmd::Connect;
    } else if (name == "errlimit") {
      auto* h = single(Style::Postfix).second;
      h->b.soft_error_limit = o.soft_error_limit;
      h->b.hard_error_limit = o.hard_error_limit;
      h->b.error_sleep_ms = o.error_sleep_ms;
    } else if (name == "rcptlimit") {
      single(Style::Exchange).second->b.max_rcpts = o.rcpt_limit;
    } else if (name == "nopipelining") {
      single(Style::Postfix).second->b.pipelining = false;
    } else if (name == "starttls") {
      single(Style::Gmail).second->b.starttls = true;
    } else if (name == "starttls-required") {
      auto* h = single(Style::Postfix).second;
      h->b.starttls = h->b.tls_required = true;
    } else if (name == "heloonly") {
      single(Style::Postfix).second->b.ehlo = false;
    } else if (name == "drop-connect" || name == "drop-mail" || name == "reset-rcpt") {
      auto* h = single(Style::Postfix).second;
      h->b.drop_after = name == "drop-connect" ? Cmd::Connect
                        : name == "drop-mail"  ? Cmd::Mail
                                               : Cmd::Rcpt;
      h->b.drop_reset = name == "reset-rcpt";
    } else if (name == "garbage" || name == "endless" || name == "overlong") {
      auto* h = single(Style::Postfix).second;
      h->b.broken = name == "garbage"   ? BrokenKind::Garbage
                    : name == "endless" ? BrokenKind::Endless
                                        : BrokenKind::Overlong;
      h->b.broken_at = name == "garbage" ? Cmd::Connect : Cmd::Ehlo;
      h->b.broken_bytes = name == "endless" ? o.endless_bytes : o.overlong_bytes;
    } else if (name == "failover") {
      // The primary refuses connections; the secondary answers.
      Domain& d = b.add_domain(dn, Style::Postfix);
      special_mailboxes(d);
      int h1 = host("mx1." + dn, Style::Postfix);
      sc->hosts[h1].b.listen = false;
      int h2 = host("mx2." + dn, Style::Postfix);
      b.add_mx(sc->domains.back(), h1, 10);
      b.add_mx(sc->domains.back(), h2, 20);
    } else if (name == "aonly") {
      int h = host(dn, Style::Postfix);  // the domain's own A record is the implicit MX
      Domain& d = b.add_domain(dn, Style::Postfix);
      d.dns = DnsKind::AOnly;
      d.a_host = sc->hosts[h].name;
      d.a_host_index = h;
      special_mailboxes(d);
    } else {
      Domain& d = b.add_domain(dn, Style::Postfix);
      d.dns = name == "nullmx"     ? DnsKind::NullMx
              : name == "nomx"     ? DnsKind::NoMail
              : name == "nxdomain" ? DnsKind::NxDomain
              : name == "servfail" ? DnsKind::ServFail
                                   : DnsKind::Timeout;
      special_mailboxes(d);
    }
  }
  if (!full_ok) {
    *error = "not enough addresses in 127.0.0.0/8 after --base-ip";
    return false;
  }
  return true;
}

}  // namespace mxfarm
