// Typo suggestions (see typo.hpp). The whole table is ten short strings: a linear scan with a
// capped distance costs well under a microsecond per domain.
#include "flags/typo.hpp"

#include <algorithm>
#include <array>
#include <cstdlib>

#include "flags/domain_data.hpp"

namespace mxp::flags {

namespace {

// The domains that most misdirected addresses were meant for (consumer mail). Short names
// (aol, msn, live) only get TLD fixes: one edit away from them are many real domains.
constexpr std::array<std::string_view, 10> kTargets = {
    "gmail.com", "yahoo.com", "hotmail.com", "outlook.com",    "icloud.com",
    "aol.com",   "live.com",  "msn.com",     "googlemail.com", "protonmail.com"};

struct Split {
  std::string_view name, tld;  // "mail.example", "com"
};
Split split(std::string_view d) {
  size_t dot = d.rfind('.');
  if (dot == std::string_view::npos) return {d, {}};
  return {d.substr(0, dot), d.substr(dot + 1)};
}

}  // namespace

std::span<const std::string_view> typo_targets() {
  return kTargets;
}

int osa_distance(std::string_view a, std::string_view b, int cap) {
  const int n = static_cast<int>(a.size()), m = static_cast<int>(b.size());
  if (std::abs(n - m) > cap) return cap + 1;
  if (n > 254 || m > 254) return cap + 1;  // domain names are shorter; keeps rows on the stack
  // Three rows of the dynamic-programming table: i-2, i-1, i. Left uninitialised: every entry
  // is written before it is read (clearing 3 KB per call cost more than the distance itself).
  int r0[256], r1[256], r2[256];
  int* pp = r0;  // row i-2 (read only from i = 2 on, when it holds row 0 or later)
  int* p = r1;   // row i-1
  int* c = r2;   // row i
  for (int j = 0; j <= m; ++j)
    p[j] = j;
  for (int i = 1; i <= n; ++i) {
    c[0] = i;
    int row_min = c[0];
    for (int j = 1; j <= m; ++j) {
      const int cost = a[i - 1] == b[j - 1] ? 0 : 1;
      int v = std::min({p[j] + 1, c[j - 1] + 1, p[j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        v = std::min(v, pp[j - 2] + 1);  // adjacent transposition
      c[j] = v;
      row_min = std::min(row_min, v);
    }
    if (row_min > cap) return cap + 1;  // every path through this row is already too long
    int* t = pp;
    pp = p;
    p = c;
    c = t;
  }
  return std::min(p[m], cap + 1);
}

std::string_view suggest_domain(std::string_view domain, const DomainData* data) {
  if (domain.empty() || domain.size() > 254) return {};
  if (std::find(kTargets.begin(), kTargets.end(), domain) != kTargets.end()) return {};
  if (data && data->is_free(domain) && !data->is_disposable(domain)) return {};
  const Split s = split(domain);
  if (s.tld.empty() || s.name.empty()) return {};
  std::string_view best;
  int best_cost = 3;
  for (std::string_view t : kTargets) {
    const Split ts = split(t);
    // TLD: the same, or one edit away (".con", ".cmo", ".om", ".co").
    const int tld_cost = s.tld == ts.tld ? 0 : osa_distance(s.tld, ts.tld, 1);
    if (tld_cost > 1) continue;
    // Name: short names only exactly; 5 letters one edit; longer ones two.
    const int max_name = ts.name.size() <= 4 ? 0 : ts.name.size() == 5 ? 1 : 2;
    const int dn = s.name == ts.name ? 0 : osa_distance(s.name, ts.name, max_name);
    if (dn > max_name) continue;
    const int cost = dn + tld_cost;
    if (cost == 0 || cost > 2) continue;
    if (cost < best_cost) {
      best_cost = cost;
      best = t;
    }
  }
  return best;
}

}  // namespace mxp::flags
