#include "app/job/cluster_dispatch.hpp"

#include <algorithm>
#include <utility>

namespace mxp::app {

namespace {

cluster::OwnerOptions owner_options(const DispatchOptions& o) {
  cluster::OwnerOptions w = o.owner;
  w.window = std::max<size_t>(1, o.window);
  return w;
}

}  // namespace

ClusterDispatch::ClusterDispatch(loop::Loop& loop, cluster::RedisClient& redis, std::string job,
                                 std::string options, Deliver deliver, DispatchOptions o)
    : loop_(loop),
      job_(std::move(job)),
      options_(std::move(options)),
      deliver_(std::move(deliver)),
      o_(std::move(o)),
      owner_(loop, redis, o_.queue, job_, owner_options(o_)) {
  o_.chunk_lines = std::max<size_t>(1, o_.chunk_lines);
  o_.window = std::max<size_t>(1, o_.window);
  owner_.on_results([this](cluster::ChunkResult&& r) { on_results(std::move(r)); });
}

ClusterDispatch::~ClusterDispatch() {
  if (flush_armed_) loop_.cancel_timer(flush_);
}

void ClusterDispatch::open() {
  owner_.open();
}

void ClusterDispatch::drop() {
  if (dropped_) return;
  dropped_ = true;
  sealed_.clear();
  current_.lines.clear();
  owner_.drop();
}

void ClusterDispatch::submit(uint64_t id, uint64_t, std::string email, address::Address) {
  if (dropped_) return;
  ++stats_.submitted;
  current_.lines.push_back({id, std::move(email)});
  if (current_.lines.size() >= o_.chunk_lines) {
    seal();
    pump();
  } else if (!flush_armed_) {
    // A part chunk goes after a moment without more: the end of the input, or a slow reader.
    flush_armed_ = true;
    flush_ = loop_.add_timer(loop_.now() + o_.flush_after, *this);
  }
}

void ClusterDispatch::on_timer(loop::TimerId, uint64_t) {
  flush_armed_ = false;
  seal();
  pump();
}

void ClusterDispatch::seal() {
  if (current_.lines.empty()) return;
  current_.seq = next_seq_++;
  current_.options = options_;
  sealed_.push_back(std::move(current_));
  current_ = cluster::Chunk{};
}

void ClusterDispatch::pump() {
  while (!sealed_.empty() && owner_.room() > 0) {
    if (!owner_.push(std::move(sealed_.front()))) break;
    sealed_.pop_front();
    ++stats_.chunks;
  }
}

size_t ClusterDispatch::withdraw(uint64_t lo, uint64_t hi, std::vector<uint64_t>& out) {
  const size_t before = out.size();
  auto take = [&](std::vector<cluster::ChunkLine>& lines) {
    std::erase_if(lines, [&](const cluster::ChunkLine& l) {
      if (l.line < lo || l.line >= hi) return false;
      out.push_back(l.line);
      return true;
    });
  };
  take(current_.lines);
  for (auto& c : sealed_)
    take(c.lines);
  std::erase_if(sealed_, [](const cluster::Chunk& c) { return c.lines.empty(); });
  stats_.withdrawn += out.size() - before;
  return out.size() - before;
}

// Each line is one record: read back as the verifier made it (the runner sets the line and the
// address as given). A record a node sent that does not read is an unknown, said as such, never
// a verdict nor a lost line.
void ClusterDispatch::on_results(cluster::ChunkResult&& r) {
  for (auto& l : r.lines) {
    auto parsed = pipeline::parse_json(l.text);
    pipeline::Result res;
    if (parsed) {
      res = std::move(*parsed);
    } else {
      ++stats_.unreadable;
      res.verdict = Verdict::Unknown;
      res.reason = Reason::ProtocolError;
      res.error = "cluster_record";
      res.message = "a node sent a record that does not read: " + parsed.error();
    }
    res.id = l.line;
    ++stats_.delivered;
    if (deliver_) deliver_(std::move(res));
  }
  pump();
}

}  // namespace mxp::app
