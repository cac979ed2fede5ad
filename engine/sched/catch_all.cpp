// The per-run catch-all cache.
#include "sched/catch_all.hpp"

namespace mxp::sched {

bool CatchAllCache::begin_probe(std::string_view domain) {
  auto it = map_.find(domain);
  if (it == map_.end()) it = map_.emplace(std::string(domain), Slot{}).first;
  if (it->second.state != State::Unknown) return false;
  it->second.state = State::Probing;
  return true;
}

void CatchAllCache::record(std::string_view domain, const verdict::Classification& probe) {
  auto it = map_.find(domain);
  if (it == map_.end()) it = map_.emplace(std::string(domain), Slot{}).first;
  it->second.state = State::Known;
  it->second.probe = probe;
}

void CatchAllCache::forget(std::string_view domain) {
  auto it = map_.find(domain);
  if (it != map_.end() && it->second.state == State::Probing) map_.erase(it);
}

CatchAllCache::State CatchAllCache::state(std::string_view domain) const {
  auto it = map_.find(domain);
  return it == map_.end() ? State::Unknown : it->second.state;
}

std::optional<verdict::Classification> CatchAllCache::probe(std::string_view domain) const {
  auto it = map_.find(domain);
  if (it == map_.end() || it->second.state != State::Known) return std::nullopt;
  return it->second.probe;
}

verdict::CatchAll CatchAllCache::fact(std::string_view domain) const {
  auto p = probe(domain);
  return p ? verdict::catch_all_from_probe(*p) : verdict::CatchAll::Unknown;
}

std::vector<CatchAllCache::Entry> CatchAllCache::entries() const {
  std::vector<Entry> out;
  for (const auto& [d, s] : map_)
    if (s.state == State::Known) out.push_back({d, s.probe});
  return out;
}

void CatchAllCache::restore(const std::vector<Entry>& entries) {
  for (const auto& e : entries)
    record(e.domain, e.probe);
}

}  // namespace mxp::sched
