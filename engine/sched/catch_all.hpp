// Catch-all facts per recipient domain, cached for the run: whether a probe is under way and,
// once it answered, the probe's classification (verdict::combine_catch_all turns it into the
// record's catch_all field). A later issue persists it across runs through entries().
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "verdict/classify.hpp"

namespace mxp::sched {

class CatchAllCache {
 public:
  enum class State : uint8_t { Unknown, Probing, Known };

  // True when the caller should send the probe now (first ask); the domain is then Probing
  // until record() or forget().
  bool begin_probe(std::string_view domain);
  void record(std::string_view domain, const verdict::Classification& probe);
  void forget(std::string_view domain);  // a probe that could not be made: ask again later

  State state(std::string_view domain) const;
  // The probe's classification, once known.
  std::optional<verdict::Classification> probe(std::string_view domain) const;
  // What the probe says about the domain (Unknown until known).
  verdict::CatchAll fact(std::string_view domain) const;

  size_t size() const { return map_.size(); }
  struct Entry {
    std::string domain;
    verdict::Classification probe;
  };
  std::vector<Entry> entries() const;  // the Known ones
  void restore(const std::vector<Entry>& entries);

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct Slot {
    State state = State::Unknown;
    verdict::Classification probe;
  };
  std::unordered_map<std::string, Slot, Hash, std::equal_to<>> map_;
};

}  // namespace mxp::sched
