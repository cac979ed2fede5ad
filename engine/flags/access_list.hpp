// Deny and allow lists (docs/usage.md, "Deny and allow lists"): domains and addresses mxprobe
// must never contact (a customer's own domains, a suppression list), or the only ones it may.
// Plain data and matching, no I/O but reading the files: the Verifier asks before anything is
// sent, DNS included, and answers a listed address from the list (reasons `denied`,
// `not_allowed`, docs/verdicts.md).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "address/address.hpp"
#include "core/expected.hpp"

namespace mxp::flags {

// One list: a file of entries, one a line. `example.com` is that domain (its addresses, not its
// subdomains'), `*.example.com` every subdomain of it (not example.com itself), and
// `user@example.com` that one address. Domains are compared as the address parser normalises
// them (lower case, IDN as A-labels), local parts without regard to case (no mail system in use
// tells `Alice` from `alice`, and a suppression list must not miss one for it). `#` starts a
// comment at the start of a line or after a blank; blank lines are skipped.
class AccessList {
 public:
  // Where an entry came from, for the record's `error`: "deny.txt:12".
  struct Origin {
    uint32_t file = 0;  // index in files()
    uint32_t line = 0;
  };
  // Adds the entries of `text`, read from a file named `name` (for messages and origins). An
  // error "NAME:LINE: ..." for the first line that is neither an entry, a comment nor blank.
  core::Expected<size_t, std::string> add(std::string_view text, const std::string& name);
  // The entry that covers the address (normalized local@domain, domain as the parser gives it),
  // or null. An address entry first, then the domain, then the nearest wildcard.
  const Origin* match(const address::Address& a) const;
  // The entry that covers the domain itself (its own or a wildcard entry; address entries are
  // about one mailbox, not the domain), or null.
  const Origin* match_domain(std::string_view domain) const;
  std::string where(const Origin& o) const;  // "deny.txt:12"
  size_t size() const { return domains_.size() + wildcards_.size() + addresses_.size(); }
  bool empty() const { return size() == 0; }
  const std::vector<std::string>& files() const { return files_; }

 private:
  // Looked up by string_view: no allocation per address checked.
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using Map = std::unordered_map<std::string, Origin, Hash, std::equal_to<>>;
  std::vector<std::string> files_;
  Map domains_;    // "example.com"
  Map wildcards_;  // "example.com" for *.example.com
  Map addresses_;  // "alice@example.com", local part in lower case
};

// What the lists say of an address or a domain.
enum class Listed : uint8_t { No, Denied, NotAllowed };

struct AccessLists {
  AccessList deny, allow;
  bool has_allow = false;  // an --allow list was given (even empty: then nothing is allowed)
  // Deny first; then, with an allow list, whatever it does not cover is not allowed. `why`
  // (when given) gets the text for the record's `error`.
  Listed check(const address::Address& a, std::string* why = nullptr) const;
  // The same for a domain check (engine/pipeline: check_domain): only domain and wildcard
  // entries count.
  Listed check_domain(std::string_view domain, std::string* why = nullptr) const;
  bool empty() const { return deny.empty() && !has_allow; }
};

// Reads --deny and --allow files (each repeatable). An error "--deny FILE: cannot read it" or
// "--deny FILE:LINE: ..." for the first problem.
core::Expected<std::shared_ptr<const AccessLists>, std::string> load_access_lists(
    const std::vector<std::string>& deny_files, const std::vector<std::string>& allow_files);

}  // namespace mxp::flags
