// mxfarm: a simulated mail-server farm on loopback, with a real DNS server (dnsmasq), for tests,
// demos and benchmarks. Subcommands: gen (write a scenario), run (serve it), truth (the
// expected verdict per address). Documentation: docs/mxfarm.md.
#include <cstdio>
#include <iostream>
#include <sstream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "farm.hpp"
#include "gen.hpp"
#include "scenario.hpp"
#include "truth.hpp"

using namespace mxfarm;

int main(int argc, char** argv) {
  CLI::App app{"mxfarm: simulated mail servers on 127.0.0.0/8 with a real DNS server"};
  app.require_subcommand(1);

  // gen
  GenOptions g;
  std::string specials = "all";
  auto* gen = app.add_subcommand("gen", "Write a generated scenario (JSON) to stdout");
  gen->add_option("--domains", g.domains, "Ordinary domains d1.TLD..dN.TLD")->capture_default_str();
  gen->add_option("--hosts", g.hosts, "Shared MX hosts for the ordinary domains")
      ->capture_default_str();
  gen->add_option("--mx-per-domain", g.mx_per_domain, "MX records per ordinary domain")
      ->capture_default_str();
  gen->add_option("--mailboxes", g.mailboxes, "Mailboxes per domain")->capture_default_str();
  gen->add_option("--catch-all-share", g.catch_all_share, "Share of catch-all domains")
      ->capture_default_str();
  gen->add_option("--greylist-share", g.greylist_share, "Share of greylisting domains")
      ->capture_default_str();
  gen->add_option("--full-share", g.full_share, "Share of full mailboxes")->capture_default_str();
  gen->add_option("--disabled-share", g.disabled_share, "Share of disabled mailboxes")
      ->capture_default_str();
  gen->add_option("--seed", g.seed, "Random seed")->capture_default_str();
  gen->add_option("--base-ip", g.base_ip, "Hosts get addresses after this one")
      ->capture_default_str();
  gen->add_option("--port", g.port, "SMTP port of every host")->capture_default_str();
  gen->add_option("--dns-ip", g.dns_ip, "Address dnsmasq listens on")->capture_default_str();
  gen->add_option("--dns-port", g.dns_port, "Port dnsmasq listens on")->capture_default_str();
  gen->add_option("--ttl", g.ttl, "TTL of every DNS record")->capture_default_str();
  gen->add_option("--tld", g.tld, "Top-level domain of every name")->capture_default_str();
  gen->add_option("--greylist-delay", g.greylist_delay_s, "Greylisting delay (s)")
      ->capture_default_str();
  gen->add_option("--error-sleep-ms", g.error_sleep_ms,
                  "errlimit: delay per reply after the soft limit")
      ->capture_default_str();
  gen->add_option("--soft-error-limit", g.soft_error_limit, "errlimit: soft limit")
      ->capture_default_str();
  gen->add_option("--hard-error-limit", g.hard_error_limit, "errlimit: hard limit")
      ->capture_default_str();
  gen->add_option("--rcpt-limit", g.rcpt_limit, "rcptlimit: RCPTs per transaction")
      ->capture_default_str();
  gen->add_option("--tarpit-byte-ms", g.tarpit_byte_ms, "tarpit: ms per reply byte")
      ->capture_default_str();
  gen->add_option("--endless-bytes", g.endless_bytes, "endless: bytes sent before closing")
      ->capture_default_str();
  gen->add_option("--overlong-bytes", g.overlong_bytes, "overlong: length of the line")
      ->capture_default_str();
  gen->add_option("--conn-limit", g.conn_limit, "connlimit: connections per client IP")
      ->capture_default_str();
  gen->add_option("--rate-count", g.rate_count, "connrate: connections per window")
      ->capture_default_str();
  gen->add_option("--rate-window", g.rate_window_s, "connrate: window (s)")->capture_default_str();
  std::string special_help = "Special domains: all, none or a comma list of:";
  for (const auto& s : special_names())
    special_help += " " + s;
  gen->add_option("--special", specials, special_help)->capture_default_str();

  // run
  std::string scenario_path;
  RunOptions r;
  uint16_t dns_port = 0;
  std::string dns_ip;
  auto* run = app.add_subcommand("run", "Serve a scenario until SIGINT/SIGTERM");
  run->add_option("scenario", scenario_path, "Scenario JSON")->required();
  run->add_option("--dns-port", dns_port, "Port for dnsmasq (default: the scenario's)");
  run->add_option("--dns-ip", dns_ip, "Address for dnsmasq (default: the scenario's)");
  run->add_option("--report", r.report_path, "Write the JSON report here (default: stderr)");
  run->add_option("--ready-file", r.ready_file, "Also write the ready line to this file");
  run->add_option("--dnsmasq", r.dnsmasq, "dnsmasq binary")->capture_default_str();
  run->add_option("--ready-timeout-ms", r.ready_timeout_ms, "Wait this long for dnsmasq")
      ->capture_default_str();
  run->add_option("--transactions", r.transactions,
                  "Keep up to N transactions (MX, client, MAIL FROM, RCPTs) in the report");
  run->add_option("--rcpt-map-cap", r.rcpt_map_cap, "Distinct addresses in rcpt_by_address")
      ->capture_default_str();
  run->add_option("--tls-cert", r.tls_cert,
                  "PEM certificate (chain) for STARTTLS: hosts with starttls then do a real TLS "
                  "handshake (without it they answer 454)");
  run->add_option("--tls-key", r.tls_key, "PEM private key of --tls-cert");
  run->add_flag("--tls-no-tickets", r.tls_no_tickets,
                "STARTTLS hosts issue no session tickets (clients cannot resume)");
  run->add_flag("--log", r.log, "Log connections, commands and replies to stderr");
  run->add_flag("--log-dns", r.log_dns, "Let dnsmasq log its queries to stderr");

  // truth
  std::string truth_path;
  size_t count = 0, invalid = 0;
  TruthOptions t;
  std::string client_ip = "127.0.0.1";
  auto* truth = app.add_subcommand("truth", "Write email,verdict,reason CSV for a scenario");
  truth->add_option("scenario", truth_path, "Scenario JSON")->required();
  truth->add_option("--count", count, "Exactly this many addresses (default: all candidates)");
  truth->add_option("--invalid", invalid, "Add up to 10 syntactically invalid addresses");
  truth->add_option("--timeout-ms", t.timeout_ms, "The verifier's per-reply timeout")
      ->capture_default_str();
  truth->add_option("--client-ip", client_ip, "The verifier's source address")
      ->capture_default_str();

  CLI11_PARSE(app, argc, argv);

  if (gen->parsed()) {
    g.specials.clear();
    std::stringstream ss(specials);
    for (std::string item; std::getline(ss, item, ',');)
      if (!item.empty()) g.specials.push_back(item);
    Scenario sc;
    std::string err;
    if (!generate(g, &sc, &err)) {
      fprintf(stderr, "mxfarm gen: %s\n", err.c_str());
      return 2;
    }
    std::cout << scenario_to_json(sc).dump(1) << "\n";
    return 0;
  }
  if (run->parsed()) {
    std::string err;
    auto sc = load_scenario(scenario_path, &err);
    if (!sc) {
      fprintf(stderr, "mxfarm run: %s\n", err.c_str());
      return 2;
    }
    if (r.tls_cert.empty() != r.tls_key.empty()) {
      fprintf(stderr, "mxfarm run: --tls-cert and --tls-key go together\n");
      return 2;
    }
    for (const auto& h : sc->hosts) {
      if (h.b.tls_required && r.tls_cert.empty()) {
        fprintf(stderr, "mxfarm run: host %s requires STARTTLS: give --tls-cert and --tls-key\n",
                h.name.c_str());
        return 2;
      }
    }
    if (dns_port) r.dns_port = dns_port;
    if (!dns_ip.empty()) {
      auto ip = parse_ipv4(dns_ip);
      if (!ip || (*ip >> 24) != 127) {
        fprintf(stderr, "mxfarm run: --dns-ip must be in 127.0.0.0/8\n");
        return 2;
      }
      r.dns_ip = dns_ip;
    }
    return run_farm(*sc, r);
  }
  if (truth->parsed()) {
    std::string err;
    auto sc = load_scenario(truth_path, &err);
    if (!sc) {
      fprintf(stderr, "mxfarm truth: %s\n", err.c_str());
      return 2;
    }
    auto ip = parse_ipv4(client_ip);
    if (!ip) {
      fprintf(stderr, "mxfarm truth: bad --client-ip\n");
      return 2;
    }
    t.client_ip = *ip;
    write_truth_csv(*sc, std::cout, count, invalid, t);
    return 0;
  }
  return 0;
}
