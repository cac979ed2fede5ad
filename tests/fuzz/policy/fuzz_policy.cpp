// libFuzzer target for the policy parser (parse_policy from a string, as --policy and SIGHUP
// reloads use it): any text gives a policy or an error, never a crash or an escaping exception.
// An error names a place inside the text and says something; parsing is deterministic; a policy
// it accepts keeps the promises docs/policy.md makes (buckets hold at least one token, rates are
// finite and not negative, warm-up shares ascend to 1, at least one session) for the defaults,
// every provider and a lookup of any MX host and domain; and build_policy, which layers it over
// the built-in policy as --policy does, accepts it too.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "sched/policy.hpp"

using namespace mxp::sched;

namespace {

void check_rate(const RateLimit& r) {
  if (!std::isfinite(r.rate) || r.rate < 0 || r.burst < 1) abort();
}
void check_level(const LevelLimits& l) {
  check_rate(l.connect);
  check_rate(l.rcpt);
}
void check_group(const GroupSettings& g) {
  check_level(g.mx);
  check_level(g.source);
  if (!std::isfinite(g.backoff.decrease) || !std::isfinite(g.backoff.min_factor)) abort();
}
void check_domain(const DomainSettings& d) {
  check_level(d.domain);
  for (const auto& delay : d.retry_schedule)
    if (delay.count() < 0) abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto r = parse_policy(text, "fuzz.toml");
  auto again = parse_policy(text, "fuzz.toml");
  if (r.ok() != again.ok()) abort();
  if (!r) {
    const PolicyError& e = r.error();
    if (e.message.empty() || e.source != "fuzz.toml") abort();
    if (e.to_string() != again.error().to_string()) abort();
    size_t lines = 1;
    for (char c : text)
      lines += c == '\n';
    if (e.line > lines + 1) abort();
    return 0;
  }
  const Policy& p = *r;
  if (p.max_sessions() < 1) abort();
  const auto& shares = p.warmup().shares;
  if (p.warmup().enabled && shares.empty()) abort();
  for (size_t i = 0; i < shares.size(); ++i)
    if (!(shares[i] > 0) || shares[i] > 1 || (i > 0 && shares[i] < shares[i - 1])) abort();
  if (!shares.empty() && shares.back() != 1.0) abort();
  check_group(p.group_settings(std::nullopt));
  check_domain(p.domain_settings("example.org", std::nullopt));
  for (uint32_t i = 0; i < p.provider_count(); ++i) {
    if (p.provider_by_name(p.provider_name(i)) != i) abort();
    check_group(p.group_settings(i));
    check_domain(p.domain_settings("example.org", i));
  }
  // Lookups with names taken from the document itself (any line's text as a host and a domain).
  const std::string_view first_line = text.substr(0, std::min(text.find('\n'), size_t{255}));
  const auto provider = p.provider_for_mx(first_line);
  if (provider && *provider >= p.provider_count()) abort();
  check_group(p.group_settings(provider));
  check_domain(p.domain_settings(first_line, provider));
  // The same document as the one layer over the built-in policy (build_policy, as mxprobe
  // layers --policy) is accepted too.
  auto built = build_policy({{std::string(text), "fuzz.toml"}});
  if (!built || built->max_sessions() != p.max_sessions()) abort();
  return 0;
}
