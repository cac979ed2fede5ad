#include "app/domain_check.hpp"

#include "address/address.hpp"
#include "app/io.hpp"
#include "pipeline/verifier.hpp"

namespace mxp::app {
namespace {

// At most `width` columns: a longer line ends in "..." (server texts and long host lists).
std::string fit(std::string line, size_t width = 80) {
  if (line.size() <= width) return line;
  line.resize(width - 3);
  // Not in the middle of a UTF-8 sequence.
  while (!line.empty() && (static_cast<unsigned char>(line.back()) & 0xC0) == 0x80)
    line.pop_back();
  if (!line.empty() && static_cast<unsigned char>(line.back()) >= 0xC0) line.pop_back();
  return line + "...";
}

const char* yn(std::optional<bool> b) {
  return !b ? "unknown" : *b ? "yes" : "no";
}

}  // namespace

core::Expected<std::string, std::string> normalize_domain(std::string_view text) {
  if (text.find('@') != std::string_view::npos)
    return core::unexpected(std::string("is an address, not a domain: give what follows the @"));
  auto p = address::parse("x@" + std::string(text));
  if (!p.ok())
    return core::unexpected("is not a domain (" + std::string(address::to_string(p.error)) + ")");
  return std::move(p.address.domain);
}

bool takes_no_mail(const pipeline::DomainReport& r) {
  return r.mail == "null_mx" || r.mail == "no_such_domain" || r.mail == "no_mail_server" ||
         r.mail == "rejects";
}

std::string domain_report_text(const pipeline::DomainReport& r) {
  auto p = [](std::string_view s) { return printable(s); };
  static const std::pair<std::string_view, std::string_view> kMail[] = {
      {"accepts", "takes mail"},
      {"rejects", "takes no mail: every server refused the session"},
      {"null_mx", "takes no mail: null MX (RFC 7505)"},
      {"no_such_domain", "takes no mail: the domain does not exist"},
      {"no_mail_server", "takes no mail: no MX and no address"},
      {"denied", "not checked: on the deny list"},
      {"not_allowed", "not checked: not on the allow list"},
      {"unknown", "could not tell"}};
  std::string mail = r.mail;
  for (const auto& [k, v] : kMail)
    if (k == r.mail) mail = v;
  std::string o = fit(p(r.domain) + "  " + mail) + "\n";
  if (!r.error.empty()) o += fit("  why:        " + p(r.error)) + "\n";
  if (r.implicit_mx) o += "  mx:         none: the domain's own address stands in (implicit MX)\n";
  for (size_t i = 0; i < r.mx.size(); ++i) {
    const auto& h = r.mx[i];
    o += fit(std::string(i ? "              " : "  mx:         ") + std::to_string(h.preference) +
             " " + p(h.host)) +
         "\n";
    // The addresses under their host, as many a line as fit.
    std::string line = "                ";
    for (size_t j = 0; j < h.addresses.size(); ++j) {
      const std::string a = p(h.addresses[j]) + (j + 1 < h.addresses.size() ? "," : "");
      if (line.size() + a.size() + 1 > 80 && line.size() > 16) {
        o += line + "\n";
        line = "                ";
      }
      line += (line.size() > 16 ? " " : "") + a;
    }
    if (line.size() > 16) o += line + "\n";
  }
  if (!r.mx_reached.empty())
    o += fit("  asked:      " + p(r.mx_reached) + " [" + p(r.mx_ip) + "]") + "\n";
  if (!r.banner.empty()) o += fit("  banner:     " + p(r.banner)) + "\n";
  if (r.has_smtp && !r.rcpt.empty())
    o += fit("  rcpt:       " + p(r.rcpt) + ": " + std::to_string(r.code) +
             (r.enhanced.empty() ? "" : " " + p(r.enhanced)) + " " + p(r.message)) +
         "\n";
  o += "  provider:   " + (r.provider.empty() ? std::string("unknown") : p(r.provider)) + "\n";
  o += std::string("  accepts:    ") + yn(r.accepts_mail) + "\n";
  o += std::string("  catch-all:  ") + yn(r.catch_all) +
       (r.catch_all_cached ? " (from an earlier probe)" : "") + "\n";
  o += std::string("  starttls:   ") + yn(r.starttls) +
       (r.tls_version.empty() ? "" : " (" + p(r.tls_version) + ")") + "\n";
  o += std::string("  disposable: ") + yn(r.disposable) + "  free: " + yn(r.free) + "\n";
  char ms[64];
  std::snprintf(ms, sizeof ms, "  elapsed:    %.1f ms\n", r.elapsed_ms);
  o += ms;
  return o;
}

int run_check_domains(const std::vector<std::string>& domains, bool json, bool verbose,
                      const EngineOptions& eng, std::FILE* out, std::FILE* diag) {
  std::vector<std::string> names;
  for (const auto& d : domains) {
    auto n = normalize_domain(d);
    if (!n) {
      std::fprintf(diag, "mxprobe check: --domain '%s' %s\n", printable(d).c_str(),
                   n.error().c_str());
      return 2;
    }
    names.push_back(std::move(*n));
  }
  Engine e;
  if (!make_engine(eng, false, e, diag)) return 3;
  e.config.max_tries = 1;
  e.config.fail_when_resolver_down = true;  // an answer now, with the cause in `error`
  if (verbose) {
    std::fprintf(diag, "mxprobe: %s\n", e.loop_why.c_str());
    e.config.log = [diag](const std::string& line) {
      std::fprintf(diag, "mxprobe: %s\n", printable(line).c_str());
    };
  }
  std::vector<pipeline::DomainReport> reports(names.size());
  size_t pending = names.size();
  e.config.on_domain_report = [&](pipeline::DomainReport&& r) {
    const auto i = r.id;
    reports[i] = std::move(r);
    if (--pending == 0) e.loop->stop();
  };
  pipeline::Verifier v(*e.loop, *e.resolver, e.config, [](pipeline::Result&&) {});
  for (size_t i = 0; i < names.size(); ++i)
    v.check_domain(i, names[i]);
  if (pending) e.loop->run();
  int none = 0;
  for (const auto& r : reports) {
    none += takes_no_mail(r);
    if (json) {
      std::string line;
      pipeline::append_json(r, line);
      std::fputs(line.c_str(), out);
    } else {
      std::fputs(domain_report_text(r).c_str(), out);
    }
  }
  return none ? 4 : 0;
}

}  // namespace mxp::app
