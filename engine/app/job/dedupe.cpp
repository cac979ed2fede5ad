#include "app/job/dedupe.hpp"

#include <functional>

namespace mxp::app {
namespace {

constexpr auto kForever = std::chrono::hours(24 * 365 * 100);

}  // namespace

bool Dedupe::join(const std::string& key, uint64_t line, std::string_view email,
                  std::string_view raw) {
  auto it = inflight_.find(key);
  if (it == inflight_.end()) return false;
  it->second.push_back(Waiter::of(line, email, raw));
  return true;
}

void Dedupe::submitted(uint64_t id, std::string key, uint64_t line, std::string_view email,
                       std::string_view raw) {
  auto waiting = inflight_.try_emplace(std::move(key)).first;
  waiting->second.push_back(Waiter::of(line, email, raw));
  ids_.emplace(id, &waiting->first);
}

std::string Dedupe::finish(uint64_t id, const std::string& normalized, std::vector<Waiter>& lines) {
  auto it = ids_.find(id);
  std::string key = it == ids_.end() ? normalized : *it->second;
  if (it != ids_.end()) ids_.erase(it);
  auto waiting = inflight_.find(key);
  if (waiting != inflight_.end()) {
    lines = std::move(waiting->second);
    inflight_.erase(waiting);
  }
  return key;
}

void Dedupe::withdrawn(const std::vector<uint64_t>& ids, bool keep, std::vector<Waiter>& parked) {
  for (uint64_t id : ids) {
    auto it = ids_.find(id);
    if (it == ids_.end()) continue;
    auto w = inflight_.find(*it->second);
    if (w != inflight_.end()) {
      if (keep)
        for (auto& x : w->second)
          parked.push_back(std::move(x));
      inflight_.erase(w);
    }
    ids_.erase(it);
  }
}

void Dedupe::remember(const std::string& key, const std::string& json) {
  // Without a journal these records are all there is to dedupe with: the most recent ones
  // only, so memory stays bounded however long the list.
  if (!journal_ && recent_.size() >= kRecentWithoutJournal) recent_.clear();
  if (key.empty()) return;
  recent_[key] = json;
  set_seen_bit(key);
}

void Dedupe::sealed(uint64_t batch) {
  sealed_.push_back({batch, std::move(recent_)});
  recent_.clear();
}

void Dedupe::durable(uint64_t batch) {
  while (!sealed_.empty() && sealed_.front().batch <= batch)
    sealed_.pop_front();
}

Dedupe::Lookup Dedupe::find_done(const std::string& key) {
  if (auto it = recent_.find(key); it != recent_.end()) return std::optional(it->second);
  for (const auto& s : sealed_)
    if (auto it = s.records.find(key); it != s.records.end()) return std::optional(it->second);
  if (!journal_) return std::optional<std::string>();
  // Most addresses were never seen: a bit per hash (2 MiB, false positives only cost a
  // lookup) spares the journal query. A resumed job's journal holds earlier runs' work too.
  if (!resumed_ && !seen_bit(key)) return std::optional<std::string>();
  auto got = journal_->lookup_cached_at(
      key, std::chrono::duration_cast<std::chrono::seconds>(kForever), store::unix_now());
  if (!got) return core::unexpected(got.error());
  if (!got->has_value()) return std::optional<std::string>();
  return std::optional((*got)->json);
}

Dedupe::Lookup Dedupe::find_cached(const std::string& key) {
  if (!cache_) return std::optional<std::string>();
  auto hit = cache_->get_cache_at(key, ttl_, store::unix_now());
  if (!hit) return core::unexpected(hit.error());
  if (!hit->has_value()) return std::optional<std::string>();
  return std::optional((*hit)->json);
}

void Dedupe::release() {
  released_ = true;
  seen_ = {};
  recent_ = {};
  inflight_ = {};
  ids_ = {};
  sealed_ = {};
}

bool Dedupe::seen_bit(const std::string& key) const {
  if (seen_.empty()) return false;
  const uint64_t h = std::hash<std::string>{}(key) & ((uint64_t{1} << 24) - 1);
  return seen_[h >> 6] & (uint64_t{1} << (h & 63));
}

void Dedupe::set_seen_bit(const std::string& key) {
  if (released_) return;
  if (seen_.empty()) seen_.assign(1 << 18, 0);
  const uint64_t h = std::hash<std::string>{}(key) & ((uint64_t{1} << 24) - 1);
  seen_[h >> 6] |= uint64_t{1} << (h & 63);
}

}  // namespace mxp::app
