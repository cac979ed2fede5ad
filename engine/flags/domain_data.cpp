// Loading the domain-data file (see domain_data.hpp and data/domains/build.mjs) and lookups.
#include "flags/domain_data.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "flags/typo.hpp"

#ifndef MXP_DOMAIN_DATA_DEFAULT
#define MXP_DOMAIN_DATA_DEFAULT ""
#endif

namespace mxp::flags {

bool DomainList::contains(std::string_view domain) const {
  if (domain.empty()) return false;
  auto has = [&](std::string_view d) {
    return std::binary_search(domains.begin(), domains.end(), d);
  };
  if (has(domain)) return true;
  if (!parents) return false;
  // "a.b.mailinator.com": "b.mailinator.com", then "mailinator.com" (a bare TLD is never listed,
  // so stop before it).
  for (size_t dot = domain.find('.'); dot != std::string_view::npos; dot = domain.find('.')) {
    domain.remove_prefix(dot + 1);
    if (domain.find('.') == std::string_view::npos) break;
    if (has(domain)) return true;
  }
  return false;
}

core::Expected<std::shared_ptr<const DomainData>, std::string> DomainData::parse(std::string text) {
  auto data = std::shared_ptr<DomainData>(new DomainData());
  data->text_ = std::move(text);
  data->lists_[0].name = "disposable";
  data->lists_[1].name = "free";
  std::string_view rest = data->text_;
  DomainList* cur = nullptr;
  bool seen[2] = {false, false};
  size_t line_no = 0;
  while (!rest.empty()) {
    size_t nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line.front() == '#') continue;
    if (line.front() == '@') {
      // "@NAME PACKAGE VERSION MATCH"
      std::string_view f[4];
      std::string_view l = line.substr(1);
      int n = 0;
      while (!l.empty() && n < 4) {
        size_t sp = l.find(' ');
        f[n++] = l.substr(0, sp);
        l.remove_prefix(sp == std::string_view::npos ? l.size() : sp + 1);
      }
      if (n != 4 || !l.empty() || (f[3] != "exact" && f[3] != "parents"))
        return core::unexpected("line " + std::to_string(line_no) +
                                ": expected \"@LIST PACKAGE VERSION exact|parents\"");
      int i = f[0] == "disposable" ? 0 : f[0] == "free" ? 1 : -1;
      if (i < 0 || seen[i])
        return core::unexpected("line " + std::to_string(line_no) +
                                ": unknown or repeated list \"" + std::string(f[0]) + "\"");
      seen[i] = true;
      cur = &data->lists_[i];
      cur->package = f[1];
      cur->version = f[2];
      cur->parents = f[3] == "parents";
      continue;
    }
    if (!cur)
      return core::unexpected("line " + std::to_string(line_no) +
                              ": a domain before any \"@LIST\" line");
    const bool bad = std::any_of(line.begin(), line.end(), [](char c) {
      return !((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
               c == '_');
    });
    if (bad || line.find('.') == std::string_view::npos)
      return core::unexpected("line " + std::to_string(line_no) + ": not a lower-case domain name");
    cur->domains.push_back(line);
  }
  for (int i = 0; i < 2; ++i) {
    if (!seen[i]) return core::unexpected("no \"@" + data->lists_[i].name + "\" list");
    auto& v = data->lists_[i].domains;
    if (!std::is_sorted(v.begin(), v.end())) std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
  }
  return data;
}

core::Expected<std::shared_ptr<const DomainData>, std::string> DomainData::load(
    const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return core::unexpected(path + ": " + std::strerror(errno));
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad()) return core::unexpected(path + ": read error");
  auto d = parse(std::move(buf).str());
  if (!d) return core::unexpected(path + ": " + d.error());
  return d;
}

const DomainList* DomainData::list(std::string_view name) const {
  for (const auto& l : lists_)
    if (l.name == name) return &l;
  return nullptr;
}

std::string DomainData::describe() const {
  std::string s;
  for (const auto& l : lists_) {
    if (!s.empty()) s += ", ";
    s += l.name + ": " + l.package + " " + l.version + " (" + std::to_string(l.domains.size()) +
         " domains)";
  }
  return s;
}

DomainFlags DomainData::lookup(std::string_view domain) const {
  DomainFlags f;
  f.disposable = is_disposable(domain);
  f.free = is_free(domain);
  f.suggestion = suggest_domain(domain, this);
  return f;
}

DomainFlags domain_flags(const DomainData* data, std::string_view domain) {
  if (!data || domain.empty()) return {};
  return data->lookup(domain);
}

const DomainFlags& FlagsMemo::get(const DomainData* data, std::string_view domain) {
  Entry& e = table_[std::hash<std::string_view>{}(domain) % table_.size()];
  if (!e.used || e.data != data || e.domain != domain) {
    e.domain.assign(domain);
    e.flags = domain_flags(data, domain);
    e.data = data;
    e.used = true;
  }
  return e.flags;
}

std::vector<std::string> default_domain_data_paths() {
  std::vector<std::string> out;
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    std::string dir(exe, static_cast<size_t>(n));
    dir.erase(dir.rfind('/') + 1);
    out.push_back(dir + "domain-data.txt");
    out.push_back(dir + "../share/mxprobe/domain-data.txt");
  }
  if (std::strlen(MXP_DOMAIN_DATA_DEFAULT) > 0) out.push_back(MXP_DOMAIN_DATA_DEFAULT);
  return out;
}

core::Expected<LoadedDomainData, std::string> load_domain_data(const std::string& path) {
  auto from = [](const std::string& p) -> core::Expected<LoadedDomainData, std::string> {
    auto d = DomainData::load(p);
    if (!d)
      return core::unexpected("domain data " + d.error() +
                              ": flags.disposable, flags.free and suggestion are null");
    return LoadedDomainData{std::move(d).value(), p};
  };
  if (!path.empty()) return from(path);
  auto paths = default_domain_data_paths();
  for (const auto& p : paths)
    if (access(p.c_str(), F_OK) == 0) return from(p);
  std::string warning =
      "no domain data (run tools/setup.sh and build, or give --domain-data PATH; looked at";
  for (const auto& p : paths)
    warning += " " + p;
  warning += "): flags.disposable, flags.free and suggestion are null";
  return core::unexpected(std::move(warning));
}

}  // namespace mxp::flags
