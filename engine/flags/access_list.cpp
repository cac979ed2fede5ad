#include "flags/access_list.hpp"

#include <fstream>
#include <iterator>

#include "core/strings.hpp"

namespace mxp::flags {
namespace {

// The line without its comment and surrounding blanks. `#` is a comment at the start or after
// a blank only: a quoted local part may hold one.
std::string_view entry_of(std::string_view line) {
  for (size_t i = 0; i < line.size(); ++i)
    if (line[i] == '#' && (i == 0 || line[i - 1] == ' ' || line[i - 1] == '\t')) {
      line = line.substr(0, i);
      break;
    }
  const auto b = line.find_first_not_of(" \t\r");
  if (b == std::string_view::npos) return {};
  const auto e = line.find_last_not_of(" \t\r");
  return line.substr(b, e - b + 1);
}

// "alice@example.com" with the local part in lower case: the key of an address entry.
std::string address_key(const address::Address& a) {
  return core::lower(a.normalized());
}

}  // namespace

core::Expected<size_t, std::string> AccessList::add(std::string_view text,
                                                    const std::string& name) {
  const auto file = static_cast<uint32_t>(files_.size());
  files_.push_back(name);
  size_t added = 0;
  uint32_t n = 0;
  while (!text.empty()) {
    ++n;
    const size_t nl = text.find('\n');
    const std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    const std::string_view entry = entry_of(line);
    if (entry.empty()) continue;
    auto fail = [&](const std::string& why) {
      return core::unexpected(name + ":" + std::to_string(n) + ": '" + std::string(entry) + "' " +
                              why);
    };
    const Origin at{file, n};
    if (entry.find('@') != std::string_view::npos) {
      if (entry.front() == '@')
        return fail("is not an address: write the domain alone (example.com) for all of it");
      auto p = address::parse(entry);
      if (!p.ok())
        return fail("is not an address (" + std::string(address::to_string(p.error)) + ")");
      addresses_.try_emplace(address_key(p.address), at);
    } else {
      const bool wildcard = entry.size() > 2 && entry.substr(0, 2) == "*.";
      const std::string_view domain = wildcard ? entry.substr(2) : entry;
      if (domain.find('*') != std::string_view::npos)
        return fail("is not a domain: a wildcard is '*.' before a domain (*.example.com)");
      // The address parser's rules and normalisation (lower case, IDN to A-labels) for the
      // domain alone: the same form as the addresses it will be compared with.
      auto p = address::parse("x@" + std::string(domain));
      if (!p.ok())
        return fail("is not a domain (" + std::string(address::to_string(p.error)) + ")");
      (wildcard ? wildcards_ : domains_).try_emplace(p.address.domain, at);
    }
    ++added;
  }
  return added;
}

const AccessList::Origin* AccessList::match_domain(std::string_view domain) const {
  if (auto it = domains_.find(domain); it != domains_.end()) return &it->second;
  if (wildcards_.empty()) return nullptr;
  // The nearest parent first: "a.b.example.com" asks b.example.com, then example.com, ...
  for (size_t dot = domain.find('.'); dot != std::string_view::npos;
       dot = domain.find('.', dot + 1))
    if (auto it = wildcards_.find(domain.substr(dot + 1)); it != wildcards_.end())
      return &it->second;
  return nullptr;
}

const AccessList::Origin* AccessList::match(const address::Address& a) const {
  if (!addresses_.empty())
    if (auto it = addresses_.find(address_key(a)); it != addresses_.end()) return &it->second;
  return match_domain(a.domain);
}

std::string AccessList::where(const Origin& o) const {
  return (o.file < files_.size() ? files_[o.file] : std::string("?")) + ":" +
         std::to_string(o.line);
}

namespace {

Listed decide(const AccessLists& l, const AccessList::Origin* denied,
              const AccessList::Origin* allowed, std::string_view what, std::string* why) {
  if (denied) {
    if (why)
      *why = "on the deny list (" + l.deny.where(*denied) + "): " + std::string(what) +
             " is never contacted";
    return Listed::Denied;
  }
  if (l.has_allow && !allowed) {
    if (why) *why = "not on the allow list: " + std::string(what) + " is never contacted";
    return Listed::NotAllowed;
  }
  return Listed::No;
}

}  // namespace

Listed AccessLists::check(const address::Address& a, std::string* why) const {
  if (empty()) return Listed::No;
  const auto* denied = deny.match(a);
  const auto* allowed = denied || !has_allow ? nullptr : allow.match(a);
  return decide(*this, denied, allowed, "this address", why);
}

Listed AccessLists::check_domain(std::string_view domain, std::string* why) const {
  if (empty()) return Listed::No;
  const auto* denied = deny.match_domain(domain);
  const auto* allowed = denied || !has_allow ? nullptr : allow.match_domain(domain);
  return decide(*this, denied, allowed, "this domain", why);
}

core::Expected<std::shared_ptr<const AccessLists>, std::string> load_access_lists(
    const std::vector<std::string>& deny_files, const std::vector<std::string>& allow_files) {
  auto lists = std::make_shared<AccessLists>();
  lists->has_allow = !allow_files.empty();
  for (int pass = 0; pass < 2; ++pass) {
    const char* flag = pass ? "--allow" : "--deny";
    for (const auto& path : pass ? allow_files : deny_files) {
      std::ifstream in(path, std::ios::binary);
      std::string text;
      if (in) text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      if (!in.is_open() || in.bad())
        return core::unexpected(std::string(flag) + " " + path + ": cannot read it");
      auto added = (pass ? lists->allow : lists->deny).add(text, path);
      if (!added) return core::unexpected(std::string(flag) + " " + added.error());
    }
  }
  return std::shared_ptr<const AccessLists>(std::move(lists));
}

}  // namespace mxp::flags
