#include "app/engine_options.hpp"

#include <unistd.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>

#include "address/address.hpp"
#include "identity/identity.hpp"
#include "proxy/socks5.hpp"
#include "smtp/session.hpp"

namespace mxp::app {

CLI::Validator positive_number() {
  return CLI::Validator(
      [](std::string& in) -> std::string {
        char* end = nullptr;
        const double v = std::strtod(in.c_str(), &end);
        if (in.empty() || *end != '\0' || !std::isfinite(v) || !(v > 0))
          return "must be a number above 0, not '" + in + "'";
        return {};
      },
      "> 0");
}

CLI::Validator positive_seconds() {
  return CLI::Validator(
      [](std::string& in) -> std::string {
        char* end = nullptr;
        const double v = std::strtod(in.c_str(), &end);
        if (in.empty() || *end != '\0' || !std::isfinite(v) || !(v > 0) || v > 86400)
          return "must be seconds above 0 and at most 86400, not '" + in + "'";
        return {};
      },
      "seconds");
}

void add_engine_options(CLI::App& cmd, EngineOptions& o, EngineOptionSet set) {
  const bool all = set == EngineOptionSet::All;
  cmd.add_option("--backend", o.backend,
                 "event loop: auto (io_uring where the kernel allows, else libuv), uring or uv")
      ->check(CLI::IsMember({"auto", "uring", "uv"}))
      ->capture_default_str();
  // Repeatable options take one value each time: `--dns 127.0.0.1 alice@example.org` leaves
  // the address to the command.
  cmd.add_option("--dns", o.dns, "DNS resolver IP[:PORT] (repeatable); default: /etc/resolv.conf")
      ->allow_extra_args(false);
  cmd.add_option("--smtp-port", o.smtp_port, "TCP port of the mail servers")
      ->check(CLI::Range(1, 65535))
      ->capture_default_str();
  cmd.add_option("--prefer", o.prefer,
                 "address family tried first among mail hosts of equal MX preference (a domain "
                 "whose hosts have only the other family still works)")
      ->check(CLI::IsMember({"ipv4", "ipv6"}))
      ->capture_default_str();
  cmd.add_option("--source-ip", o.source_ips,
                 "local address(es) to connect from, in turn (IPv4/IPv6)")
      ->delimiter(',')
      ->allow_extra_args(false);
  if (all) {
    cmd.add_option("--new-source-ip", o.new_source_ips,
                   "source address(es) new to the pool: warmed up per the policy's [warmup]")
        ->delimiter(',')
        ->allow_extra_args(false);
    cmd.add_option("--proxy", o.proxies,
                   "SOCKS5 proxy socks5://[user:pass@]host:port (repeatable): sessions go through "
                   "the pool, one source per proxy (docs/proxies.md)")
        ->allow_extra_args(false);
    cmd.add_option("--proxy-file", o.proxy_files,
                   "file of proxy URLs, one per line, # comments (repeatable)")
        ->allow_extra_args(false)
        ->check(CLI::ExistingFile);
    cmd.add_option("--proxy-timeout", o.proxy_timeout,
                   "seconds a proxy health check may take (connect, greeting, authentication)")
        ->check(positive_seconds())
        ->capture_default_str();
    cmd.add_option(
           "--proxy-recheck", o.proxy_recheck,
           "seconds between re-checks of a proxy out of rotation, at most (from 1 s, doubling)")
        ->check(positive_seconds())
        ->capture_default_str();
    cmd.add_option("--policy", o.policy_file,
                   "scheduling policy, TOML (docs/policy.md); reloaded on SIGHUP")
        ->check(CLI::ExistingFile);
  }
  if (all || set == EngineOptionSet::BenchServer) {
    cmd.add_option("--timeout-connect", o.timeout_connect,
                   "seconds to connect (default: policy, 30)")
        ->check(positive_seconds());
    cmd.add_option("--timeout-banner", o.timeout_banner,
                   "seconds to wait for the greeting (default: policy, 60)")
        ->check(positive_seconds());
    cmd.add_option("--timeout-command", o.timeout_command,
                   "seconds to wait for each reply (default: policy, 60)")
        ->check(positive_seconds());
  }
  cmd.add_option("--timeout-dns", o.timeout_dns, "seconds per DNS try (2 tries)")
      ->check(positive_seconds())
      ->capture_default_str();
  cmd.add_option("--helo", o.helo,
                 "EHLO/HELO name (default: each --source-ip's forward-confirmed PTR name, else "
                 "this host's fully-qualified name; docs/identity.md)");
  cmd.add_option("--mail-from", o.mail_from,
                 "MAIL FROM address, or <> for the null sender (repeatable: tried in order where "
                 "a server refuses the sender; default: <> only)")
      ->allow_extra_args(false);
  if (!all) return;
  cmd.add_option("-c,--concurrency", o.concurrency,
                 "SMTP sessions at once, all servers (default: policy, 200)")
      ->check(positive_number());
  cmd.add_option("--domain-concurrency", o.domain_concurrency,
                 "SMTP sessions at once per domain (default: policy, 4)")
      ->check(positive_number());
  cmd.add_option("--rcpts-per-session", o.rcpts_per_session,
                 "addresses checked on one connection (default: policy, 25; at most "
                 "session.rejections, 8, are sent before replies come back)")
      ->check(positive_number());
  cmd.add_option("--max-domains", o.max_domains,
                 "domains remembered at once; idle ones beyond are forgotten (bounded memory)")
      ->check(positive_number())
      ->capture_default_str();
  cmd.add_flag("--no-catch-all", o.no_catch_all, "do not probe domains with a random address");
  cmd.add_option("--deny", o.deny_files,
                 "file of domains (example.com, *.example.com) and addresses never to contact, "
                 "one a line (answered unknown/denied; reloaded on SIGHUP)")
      ->allow_extra_args(false)
      ->check(CLI::ExistingFile);
  cmd.add_option("--allow", o.allow_files,
                 "file of the only domains and addresses to contact, same form (the rest are "
                 "answered unknown/not_allowed)")
      ->allow_extra_args(false)
      ->check(CLI::ExistingFile);
  cmd.add_flag("--no-pipelining", o.no_pipelining,
               "one command per reply even when PIPELINING is offered");
  cmd.add_option("--domain-data", o.domain_data,
                 "disposable/free domain lists (default: the one built with mxprobe)");
  cmd.add_option("--starttls", o.starttls,
                 "STARTTLS: auto (when offered or demanded; else clear text), never, or require "
                 "(no TLS: the address is unknown, tls_required); default: policy, auto")
      ->check(CLI::IsMember({"auto", "never", "require"}));
  cmd.add_flag("--tls-verify", o.tls_verify,
               "verify the server's certificate and name (off by default: a failure then fails "
               "the handshake, and auto goes on in clear text)");
  cmd.add_option("--tls-ca-file", o.tls_ca_file, "with --tls-verify: trusted CAs (PEM)")
      ->check(CLI::ExistingFile);
}

std::string policy_overrides(const EngineOptions& o) {
  std::string g, d;
  auto dur = [](double seconds) {
    return "\"" + std::to_string(std::llround(seconds * 1000)) + "ms\"";
  };
  if (o.concurrency) g += "max_sessions = " + std::to_string(*o.concurrency) + "\n";
  if (o.domain_concurrency)
    d += "per_domain.sessions = " + std::to_string(*o.domain_concurrency) + "\n";
  if (o.rcpts_per_session)
    d += "session.recipients = " + std::to_string(*o.rcpts_per_session) + "\n";
  if (o.timeout_connect) d += "timeouts.connect = " + dur(*o.timeout_connect) + "\n";
  if (o.timeout_banner) d += "timeouts.banner = " + dur(*o.timeout_banner) + "\n";
  if (o.timeout_command)
    for (const char* k : {"ehlo", "helo", "mail_from", "rcpt_to", "rset", "quit", "starttls"})
      d += std::string("timeouts.") + k + " = " + dur(*o.timeout_command) + "\n";
  if (o.no_catch_all) d += "catch_all_probe = false\n";
  if (o.starttls) d += "starttls = \"" + *o.starttls + "\"\n";
  std::string doc;
  if (!g.empty()) doc += "[global]\n" + g;
  if (!d.empty()) doc += "[defaults]\n" + d;
  return doc;
}

core::Expected<std::shared_ptr<const sched::Policy>, std::string> load_engine_policy(
    const EngineOptions& o) {
  std::vector<sched::PolicySource> docs;
  if (!o.policy_file.empty()) {
    auto text = sched::read_policy_file(o.policy_file);
    if (!text) return core::unexpected("policy " + text.error().to_string());
    docs.push_back({std::move(*text), o.policy_file});
  }
  docs.push_back({policy_overrides(o), "<command line>"});
  auto p = sched::build_policy(docs);
  if (!p) return core::unexpected("policy " + p.error().to_string());
  return std::make_shared<const sched::Policy>(std::move(*p));
}

static std::chrono::milliseconds ms(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(std::llround(seconds * 1000)));
}

// --proxy and --proxy-file into the pool. Messages never repeat a URL: it may hold a password.
static bool load_proxies(const EngineOptions& o, pipeline::VerifierConfig& c, std::FILE* diag) {
  for (size_t i = 0; i < o.proxies.size(); ++i) {
    auto url = proxy::parse_proxy_url(o.proxies[i]);
    if (!url) {
      std::fprintf(diag, "mxprobe: --proxy #%zu: %s\n", i + 1, url.error().c_str());
      return false;
    }
    c.proxies.push_back(std::move(*url));
  }
  for (const auto& path : o.proxy_files) {
    std::ifstream in(path);
    if (!in) {
      std::fprintf(diag, "mxprobe: --proxy-file %s: cannot read it\n", path.c_str());
      return false;
    }
    std::string line;
    for (size_t n = 1; std::getline(in, line); ++n) {
      if (auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
      const auto b = line.find_first_not_of(" \t\r");
      if (b == std::string::npos) continue;
      const auto e = line.find_last_not_of(" \t\r");
      auto url = proxy::parse_proxy_url(std::string_view(line).substr(b, e - b + 1));
      if (!url) {
        std::fprintf(diag, "mxprobe: --proxy-file %s:%zu: %s\n", path.c_str(), n,
                     url.error().c_str());
        return false;
      }
      c.proxies.push_back(std::move(*url));
    }
  }
  if (c.proxies.empty()) return true;
  if (!c.sources.empty()) {
    std::fprintf(diag,
                 "mxprobe: --source-ip and --proxy cannot be combined: with proxies, each proxy "
                 "is a source\n");
    return false;
  }
  if (c.proxies.size() > sched::kMaxSources) {
    std::fprintf(diag, "mxprobe: at most %u proxies\n", sched::kMaxSources);
    return false;
  }
  c.proxy_check_timeout = ms(o.proxy_timeout);
  c.proxy_health.max = std::max<loop::Duration>(ms(o.proxy_recheck), std::chrono::seconds(1));
  return true;
}

// Everything of the configuration that comes from the user's values (no loop, no resolver):
// a false here is a usage error.
static bool configure(const EngineOptions& o, pipeline::VerifierConfig& c, std::FILE* diag) {
  for (const auto& s : o.dns)
    if (!loop::Endpoint::parse_host_port(s, 53)) {
      std::fprintf(diag, "mxprobe: --dns '%s' is not IP or IP:PORT ([IPv6]:PORT)\n", s.c_str());
      return false;
    }
  c.smtp_port = o.smtp_port;
  auto policy = load_engine_policy(o);
  if (!policy) {
    std::fprintf(diag, "mxprobe: %s\n", policy.error().c_str());
    return false;
  }
  c.policy = std::move(policy).value();
  for (int pass = 0; pass < 2; ++pass) {
    for (const auto& s : pass ? o.new_source_ips : o.source_ips) {
      auto ep = loop::Endpoint::parse(s, 0);
      if (!ep) {
        std::fprintf(diag, "mxprobe: %s '%s' is not an IPv4 or IPv6 address\n",
                     pass ? "--new-source-ip" : "--source-ip", s.c_str());
        return false;
      }
      c.sources.push_back({*ep, pass == 1, {}});
    }
  }
  if (c.sources.size() > sched::kMaxSources) {
    std::fprintf(diag, "mxprobe: at most %u source addresses\n", sched::kMaxSources);
    return false;
  }
  if (!load_proxies(o, c, diag)) return false;
  if (const std::string why = check_source_pools(*c.policy, c); !why.empty()) {
    std::fprintf(diag, "mxprobe: %s\n", why.c_str());
    return false;
  }
  // The HELO name: --helo, else chosen per source address when the engine starts
  // (resolve_identities). This host's bare name stands in until then.
  if (!o.helo.empty() && !smtp::is_safe_argument(o.helo, 255, false)) {
    std::fprintf(diag, "mxprobe: --helo '%s' cannot be sent as one SMTP argument\n",
                 o.helo.c_str());
    return false;
  }
  c.session.helo_name = o.helo;
  if (c.session.helo_name.empty()) {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    c.session.helo_name = host[0] ? host : "localhost";
  }
  // The senders in the order given; the first is mail_from, the rest are tried where a server
  // refuses the ones before (docs/identity.md, "MAIL FROM").
  std::vector<std::string> senders;
  for (const std::string& from : o.mail_from) {
    std::string sender;  // "" is the null sender
    if (from != "<>" && !from.empty()) {
      auto p = address::parse(from);
      if (!p.ok()) {
        std::fprintf(diag,
                     "mxprobe: --mail-from '%s' is not a valid address (%s); use <> for "
                     "the null sender\n",
                     from.c_str(), std::string(address::to_string(p.error)).c_str());
        return false;
      }
      sender = p.address.normalized();
    }
    if (std::find(senders.begin(), senders.end(), sender) != senders.end()) continue;
    if (senders.size() == smtp::kMaxSenders) {
      std::fprintf(diag, "mxprobe: --mail-from: at most %zu senders\n", smtp::kMaxSenders);
      return false;
    }
    senders.push_back(std::move(sender));
  }
  if (!senders.empty()) {
    c.session.mail_from = senders.front();
    c.session.fallback_senders.assign(senders.begin() + 1, senders.end());
  }
  c.session.use_pipelining = !o.no_pipelining;
  // STARTTLS is per domain (policy `starttls`, which --starttls sets in [defaults]). One
  // SSL_CTX for the process, made here so that a bad --tls-ca-file stops us at once.
  tls::ClientOptions to;
  to.verify_peer = o.tls_verify;
  to.ca_file = o.tls_ca_file;
  auto ctx = tls::ClientContext::create(to);
  if (!ctx) {
    std::fprintf(diag, "mxprobe: TLS: %s\n", ctx.error().c_str());
    return false;
  }
  c.tls = std::move(ctx).value();
  c.catch_all_probe = !o.no_catch_all;
  c.max_domains = o.max_domains;
  if (!o.deny_files.empty() || !o.allow_files.empty()) {
    auto lists = flags::load_access_lists(o.deny_files, o.allow_files);
    if (!lists) {
      std::fprintf(diag, "mxprobe: %s\n", lists.error().c_str());
      return false;
    }
    c.lists = std::move(lists).value();
  }
  return true;
}

void reload_lists(const EngineOptions& o, pipeline::Verifier& v, std::FILE* diag) {
  if (o.deny_files.empty() && o.allow_files.empty()) return;
  auto lists = flags::load_access_lists(o.deny_files, o.allow_files);
  if (!lists) {
    std::fprintf(diag, "mxprobe: SIGHUP: %s; keeping the lists in force\n", lists.error().c_str());
    return;
  }
  const auto& l = **lists;
  std::fprintf(diag, "mxprobe: SIGHUP: lists reloaded (%zu deny, %zu allow entries)\n",
               l.deny.size(), l.allow.size());
  v.set_lists(std::move(lists).value());
}

std::string check_source_pools(const sched::Policy& p, const pipeline::VerifierConfig& c) {
  std::vector<std::string> names;
  for (const auto& px : c.proxies)
    names.push_back(px.display);
  if (c.proxies.empty())
    for (const auto& s : c.sources)
      names.push_back(s.endpoint.ip_string());
  auto check = [&](const sched::GroupSettings& g, const std::string& table) -> std::string {
    for (const auto& s : g.sources)
      if (std::find(names.begin(), names.end(), s) == names.end())
        return "policy " + table + " sources: " + s + " is not one of our sources (" +
               (names.empty() ? std::string("none given: the kernel chooses; give --source-ip")
                : c.proxies.empty() ? "the --source-ip addresses"
                                    : "the --proxy URLs") +
               ")";
    return {};
  };
  if (auto why = check(p.group_settings(std::nullopt), "[defaults]"); !why.empty()) return why;
  for (uint32_t i = 0; i < p.provider_count(); ++i)
    if (auto why = check(p.group_settings(i), "[provider." + p.provider_name(i) + "]");
        !why.empty())
      return why;
  return {};
}

// The HELO name of each source address (docs/identity.md): --helo, else its forward-confirmed
// PTR name asked through our resolver (so --dns counts), else this host's fully-qualified name.
// A name servers checking it would refuse is one warning line each, never silent.
static void resolve_identities(const EngineOptions& o, Engine& e, std::FILE* diag) {
  auto& c = e.config;
  auto warn = [&](const identity::HeloChoice& h, const std::string& who) {
    if (auto w = identity::helo_warning(h, who); !w.empty())
      std::fprintf(diag, "mxprobe: %s\n", w.c_str());
  };
  const std::string host = o.helo.empty() ? identity::host_name() : std::string();
  // Without --source-ip the kernel picks the address per route, and through a proxy the server
  // sees the proxy's exit, whose PTR we cannot see: --helo or this host's name.
  const auto fallback = identity::choose_helo(o.helo, nullptr, host);
  c.session.helo_name = fallback.name;
  if (!c.proxies.empty() || c.sources.empty() || !o.helo.empty()) {
    warn(fallback, !c.proxies.empty()  ? "the proxies"
                   : c.sources.empty() ? "the kernel-chosen source address"
                                       : "every source address");
    return;
  }
  std::vector<loop::Endpoint> ips;
  for (const auto& s : c.sources)
    ips.push_back(s.endpoint);
  const auto checks = identity::check_ptrs_now(*e.loop, *e.resolver, ips);
  for (size_t i = 0; i < c.sources.size(); ++i) {
    const auto h = identity::choose_helo(o.helo, &checks[i], host);
    c.sources[i].helo = h.name;
    warn(h, ips[i].ip_string());
  }
}

bool check_engine_options(const EngineOptions& o, std::FILE* diag) {
  pipeline::VerifierConfig c;
  return configure(o, c, diag);
}

bool make_engine(const EngineOptions& o, bool transcripts, Engine& e, std::FILE* diag) {
  auto& c = e.config;
  if (!configure(o, c, diag)) return false;
  e.options = o;
  loop::LoopOptions lo;
  lo.backend = *loop::parse_backend(o.backend);
  auto made = loop::make_loop(lo);
  if (!made.loop) {
    std::fprintf(diag, "mxprobe: cannot start the event loop: %s\n", made.why.c_str());
    return false;
  }
  e.loop = std::move(made.loop);
  e.loop_why = made.why;
  loop::raise_nofile_limit();

  dns::ResolverOptions ro;
  ro.servers = o.dns;
  ro.timeout = ms(o.timeout_dns);
  ro.prefer = o.prefer == "ipv6" ? dns::AddressPreference::Ipv6 : dns::AddressPreference::Ipv4;
  auto resolver = dns::Resolver::create(*e.loop, ro);
  if (!resolver) {
    std::fprintf(diag, "mxprobe: %s\n", resolver.error().c_str());
    return false;
  }
  e.resolver = std::move(resolver).value();
  resolve_identities(o, e, diag);
  c.transcripts = transcripts;
  if (o.no_domain_data) {
  } else if (auto d = flags::load_domain_data(o.domain_data))
    c.domain_data = std::move(d->data);
  else
    std::fprintf(diag, "mxprobe: warning: %s\n", d.error().c_str());
  return true;
}

}  // namespace mxp::app
