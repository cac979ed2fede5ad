// The JobStore conveniences shared by every backend (paged streaming, wall-clock wrappers) and
// ResultBatch, which turns a stream of results into few, atomic transactions.
#include "store/job_store.hpp"

namespace mxp::store {

UnixSeconds unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Expected<std::optional<CachedResult>> JobStore::lookup_cached(std::string_view normalized,
                                                              std::chrono::seconds max_age) {
  return lookup_cached_at(normalized, max_age, unix_now());
}

Expected<std::optional<DomainFacts>> JobStore::get_domain_facts(std::string_view domain) {
  return get_domain_facts_at(domain, unix_now());
}

Status JobStore::for_each_pending(JobId job, const std::function<bool(const Row&)>& fn,
                                  size_t page) {
  uint64_t after = 0;
  for (;;) {
    auto rows = pending_rows(job, after, page);
    if (!rows) return core::unexpected(rows.error());
    for (const Row& r : *rows) {
      if (!fn(r)) return {};
      after = r.line;
    }
    if (rows->size() < page) return {};
  }
}

Status JobStore::for_each_result(JobId job,
                                 const std::function<bool(uint64_t, std::string_view)>& fn,
                                 size_t page) {
  uint64_t after = 0;
  for (;;) {
    auto res = result_page(job, after, page);
    if (!res) return core::unexpected(res.error());
    for (const auto& [line, json] : *res) {
      if (!fn(line, json)) return {};
      after = line;
    }
    if (res->size() < page) return {};
  }
}

ResultBatch::ResultBatch(JobStore& store, JobId job, size_t max_count,
                         std::chrono::milliseconds max_age)
    : store_(store), job_(job), max_count_(max_count == 0 ? 1 : max_count), max_age_(max_age) {
  buf_.reserve(max_count_);
}

Status ResultBatch::add(ResultRecord r, Clock::time_point now) {
  if (buf_.empty()) oldest_ = now;
  buf_.push_back(std::move(r));
  if (buf_.size() >= max_count_) return flush();
  return poll(now);
}

Status ResultBatch::poll(Clock::time_point now) {
  if (!buf_.empty() && now - oldest_ >= max_age_) return flush();
  return {};
}

Status ResultBatch::flush() {
  if (buf_.empty()) return {};
  Status s = store_.record_results(job_, buf_);
  // On failure the buffer is kept so the caller can decide (retry or give up = redo on resume).
  if (!s) return s;
  committed_ += buf_.size();
  buf_.clear();
  return {};
}

}  // namespace mxp::store
