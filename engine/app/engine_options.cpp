#include "app/engine_options.hpp"

#include <unistd.h>

#include <chrono>
#include <cmath>

#include "address/address.hpp"
#include "smtp/session.hpp"

namespace mxp::app {

void add_engine_options(CLI::App& cmd, EngineOptions& o) {
  cmd.add_option("--backend", o.backend,
                 "event loop: auto (io_uring where the kernel allows, else libuv), uring or uv")
      ->check(CLI::IsMember({"auto", "uring", "uv"}))
      ->capture_default_str();
  cmd.add_option("--dns", o.dns, "DNS resolver IP[:PORT] (repeatable); default: /etc/resolv.conf");
  cmd.add_option("--smtp-port", o.smtp_port, "TCP port of the mail servers")->capture_default_str();
  cmd.add_option("--source-ip", o.source_ips,
                 "local address(es) to connect from, in turn (IPv4/IPv6)")
      ->delimiter(',');
  cmd.add_option("--timeout-connect", o.timeout_connect, "seconds to connect")
      ->capture_default_str();
  cmd.add_option("--timeout-banner", o.timeout_banner, "seconds to wait for the greeting")
      ->capture_default_str();
  cmd.add_option("--timeout-command", o.timeout_command, "seconds to wait for each reply")
      ->capture_default_str();
  cmd.add_option("--timeout-dns", o.timeout_dns, "seconds per DNS try (2 tries)")
      ->capture_default_str();
  cmd.add_option("--helo", o.helo, "EHLO/HELO name (default: this host's name)");
  cmd.add_option("--mail-from", o.mail_from, "MAIL FROM address (default: the null sender <>)");
  cmd.add_option("-c,--concurrency", o.concurrency, "SMTP sessions at once")->capture_default_str();
  cmd.add_option("--domain-concurrency", o.domain_concurrency, "SMTP sessions at once per domain")
      ->capture_default_str();
  cmd.add_option("--rcpts-per-session", o.rcpts_per_session,
                 "addresses checked on one connection (Postfix slows down after 10 rejections)")
      ->capture_default_str();
  cmd.add_option("--max-domains", o.max_domains,
                 "domains remembered at once; idle ones beyond are forgotten (bounded memory)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd.add_flag("--no-catch-all", o.no_catch_all, "do not probe domains with a random address");
  cmd.add_flag("--no-pipelining", o.no_pipelining,
               "one command per reply even when PIPELINING is offered");
}

static std::chrono::milliseconds ms(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(std::llround(seconds * 1000)));
}

bool make_engine(const EngineOptions& o, bool transcripts, Engine& e, std::FILE* diag) {
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
  std::string err;
  e.resolver = dns::Resolver::create(*e.loop, ro, err);
  if (!e.resolver) {
    std::fprintf(diag, "mxprobe: %s\n", err.c_str());
    return false;
  }

  auto& c = e.config;
  c.smtp_port = o.smtp_port;
  for (const auto& s : o.source_ips) {
    auto ep = loop::Endpoint::parse(s, 0);
    if (!ep) {
      std::fprintf(diag, "mxprobe: --source-ip '%s' is not an IPv4 or IPv6 address\n", s.c_str());
      return false;
    }
    c.source_ips.push_back(*ep);
  }
  std::string helo = o.helo;
  if (helo.empty()) {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    helo = host[0] ? host : "localhost";
  }
  if (!smtp::is_safe_argument(helo, 255, false)) {
    std::fprintf(diag, "mxprobe: --helo '%s' cannot be sent as one SMTP argument\n", helo.c_str());
    return false;
  }
  c.session.helo_name = helo;
  if (!o.mail_from.empty()) {
    auto p = address::parse(o.mail_from);
    if (!p.ok()) {
      std::fprintf(diag, "mxprobe: --mail-from '%s' is not a valid address (%s)\n",
                   o.mail_from.c_str(), std::string(address::to_string(p.error)).c_str());
      return false;
    }
    c.session.mail_from = p.address.normalized();
  }
  for (int i = 0; i < smtp::kStageCount; ++i)
    c.session.timeouts[i] = ms(o.timeout_command);
  c.session.timeouts[static_cast<int>(smtp::Stage::Connect)] = ms(o.timeout_connect);
  c.session.timeouts[static_cast<int>(smtp::Stage::Banner)] = ms(o.timeout_banner);
  c.session.use_pipelining = !o.no_pipelining;
  c.session.max_rcpts_per_transaction = o.rcpts_per_session + 1;  // the catch-all probe rides along
  c.max_sessions = o.concurrency;
  c.max_sessions_per_domain = o.domain_concurrency;
  c.rcpts_per_session = o.rcpts_per_session;
  c.catch_all_probe = !o.no_catch_all;
  c.max_domains = o.max_domains;
  c.transcripts = transcripts;
  return true;
}

}  // namespace mxp::app
