// ChunkOwner and ChunkWorker: a job's chunks through one Redis Stream and its results back
// (chunk_queue.hpp has the design; the atomic steps are mxp1_chunk_complete and
// mxp1_chunk_renew in functions.lua).
#include "cluster/chunk_queue.hpp"

#include <algorithm>
#include <charconv>

namespace mxp::cluster {
namespace {

std::string ms(Duration d) {
  return std::to_string(
      std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(d).count()));
}

bool parse_u64(std::string_view s, uint64_t& out) {
  const auto r = std::from_chars(s.data(), s.data() + s.size(), out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size() && !s.empty();
}

// A stream entry [id, [field, value, ...]]: the value of `field`, or nullptr.
const std::string* field(const Reply& entry, std::string_view name) {
  if (entry.type != Reply::Type::Array || entry.elements.size() != 2) return nullptr;
  const auto& kv = entry.elements[1].elements;
  for (size_t i = 0; i + 1 < kv.size(); i += 2)
    if (kv[i].str == name) return &kv[i + 1].str;
  return nullptr;
}

// XREAD/XREADGROUP's reply for one stream: its entries (empty for nil).
const std::vector<Reply>* stream_entries(const Reply& r) {
  static const std::vector<Reply> none;
  if (r.type != Reply::Type::Array || r.elements.empty()) return &none;
  const Reply& s = r.elements[0];
  if (s.type != Reply::Type::Array || s.elements.size() != 2) return &none;
  return &s.elements[1].elements;
}

// Whether a failed command is worth sending again (it waits for the next connection).
bool transient(const CommandError& e) {
  return e.failure == Failure::ConnectionLost || e.failure == Failure::Timeout ||
         e.failure == Failure::ProtocolError || e.failure == Failure::HandshakeFailed;
}

}  // namespace

std::string encode_lines(const std::vector<ChunkLine>& lines) {
  std::string out;
  for (const auto& l : lines) {
    out += std::to_string(l.line);
    out += ' ';
    out += std::to_string(l.text.size());
    out += ':';
    out += l.text;
  }
  return out;
}

core::Expected<std::vector<ChunkLine>, std::string> decode_lines(std::string_view s) {
  std::vector<ChunkLine> out;
  size_t i = 0;
  while (i < s.size()) {
    const size_t sp = s.find(' ', i);
    const size_t colon = sp == std::string_view::npos ? sp : s.find(':', sp);
    uint64_t line = 0, len = 0;
    if (colon == std::string_view::npos || !parse_u64(s.substr(i, sp - i), line) ||
        !parse_u64(s.substr(sp + 1, colon - sp - 1), len) || len > s.size() - colon - 1) {
      return core::unexpected("malformed chunk lines at offset " + std::to_string(i));
    }
    out.push_back(ChunkLine{line, std::string(s.substr(colon + 1, len))});
    i = colon + 1 + len;
  }
  return out;
}

// ---- owner ----------------------------------------------------------------------------------

ChunkOwner::ChunkOwner(loop::Loop& loop, RedisClient& redis, QueueOptions queue, std::string job,
                       OwnerOptions options)
    : loop_(loop),
      redis_(redis),
      q_(std::move(queue)),
      job_(std::move(job)),
      opts_(options),
      interval_(opts_.poll_min) {}

ChunkOwner::~ChunkOwner() {
  *alive_ = false;
  if (armed_) loop_.cancel_timer(timer_);
  if (audit_armed_) loop_.cancel_timer(audit_timer_);
}

void ChunkOwner::open(std::function<void(core::Expected<void, std::string>)> done) {
  redis_.command({"SET", job_key(), "1"}, [](Result&&) {});
  redis_.command({"XGROUP", "CREATE", chunks_key(), q_.group, "0", "MKSTREAM"},
                 [alive = alive_, done = std::move(done)](Result&& r) {
                   if (!*alive || !done) return;
                   if (!r.ok()) {
                     done(core::unexpected("opening the job: " + r.error().message));
                   } else if (r->is_error() && r->str.rfind("BUSYGROUP", 0) != 0) {
                     done(core::unexpected("opening the job: " + r->str));
                   } else {
                     done({});
                   }
                 });
}

bool ChunkOwner::push(Chunk chunk) {
  if (room() == 0 || outstanding_.count(chunk.seq)) return false;
  Out o;
  for (const auto& l : chunk.lines)
    o.lines.insert(l.line);
  o.argv = {"XADD",
            chunks_key(),
            "*",
            "job",
            job_,
            "seq",
            std::to_string(chunk.seq),
            "lines",
            encode_lines(chunk.lines),
            "opts",
            chunk.options.empty() ? std::string("{}") : chunk.options};
  outstanding_.emplace(chunk.seq, std::move(o));
  send(chunk.seq);
  if (!polling_ && !armed_) {
    interval_ = opts_.poll_min;
    schedule(interval_);
  }
  arm_audit();
  return true;
}

void ChunkOwner::send(uint64_t seq) {
  auto it = outstanding_.find(seq);
  if (it == outstanding_.end()) return;
  ++stats_.pushed;
  redis_.command(it->second.argv, [this, alive = alive_, seq](Result&& r) {
    if (!*alive) return;
    if (!r.ok() && transient(r.error())) {
      // It may or may not have landed; a second entry only means a second result, dropped.
      ++stats_.push_retries;
      send(seq);
      return;
    }
    auto it = outstanding_.find(seq);
    if (r.ok() && r->type == Reply::Type::String && it != outstanding_.end()) {
      it->second.entry_id = r->str;
    }
  });
}

void ChunkOwner::arm_audit() {
  if (audit_armed_ || outstanding_.empty()) return;
  audit_timer_ = loop_.add_timer(loop_.now() + opts_.audit_every, *this, kAudit);
  audit_armed_ = true;
}

void ChunkOwner::audit() {
  if (auditing_ || outstanding_.empty()) return;
  std::vector<std::string> argv = {"FCALL",      "mxp1_chunk_missing", "3",
                                   chunks_key(), results_key(),        job_key()};
  for (const auto& [seq, o] : outstanding_) {
    if (o.entry_id.empty()) continue;  // its push is still on its way
    argv.push_back(std::to_string(seq));
    argv.push_back(o.entry_id);
  }
  auditing_ = true;
  ++stats_.audits;
  redis_.command(argv, [this, alive = alive_](Result&& r) {
    if (!*alive) return;
    auditing_ = false;
    if (!r.ok() || r->type != Reply::Type::Array) return;
    for (const Reply& e : r->elements) {
      uint64_t seq = 0;
      auto it = parse_u64(e.str, seq) ? outstanding_.find(seq) : outstanding_.end();
      if (it == outstanding_.end()) continue;
      it->second.entry_id.clear();
      ++stats_.resent;
      send(seq);
    }
  });
}

void ChunkOwner::drop(std::function<void()> done) {
  outstanding_.clear();
  redis_.command({"DEL", job_key(), results_key()},
                 [alive = alive_, done = std::move(done)](Result&&) {
                   if (*alive && done) done();
                 });
}

void ChunkOwner::schedule(Duration d) {
  if (armed_) return;
  timer_ = loop_.add_timer(loop_.now() + d, *this);
  armed_ = true;
}

void ChunkOwner::on_timer(loop::TimerId, uint64_t cookie) {
  if (cookie == kAudit) {
    audit_armed_ = false;
    audit();
    arm_audit();
    return;
  }
  armed_ = false;
  poll();
}

void ChunkOwner::poll() {
  if (polling_ || outstanding_.empty()) return;
  polling_ = true;
  ++stats_.polls;
  redis_.command(
      {"XREAD", "COUNT", std::to_string(opts_.read_count), "STREAMS", results_key(), cursor_},
      [this, alive = alive_](Result&& r) {
        if (!*alive) return;
        polling_ = false;
        const std::vector<Reply>* entries = nullptr;
        if (r.ok() && !r->is_error()) entries = stream_entries(*r);
        std::vector<std::string> ids;
        if (entries) {
          for (const Reply& e : *entries)
            deliver(e, ids);
        }
        if (!ids.empty()) {
          std::vector<std::string> del = {"XDEL", results_key()};
          del.insert(del.end(), ids.begin(), ids.end());
          redis_.command(del, [](Result&&) {});
          interval_ = opts_.poll_min;
          if (!outstanding_.empty()) schedule(Duration(0));
          return;
        }
        ++stats_.empty_polls;
        interval_ = std::min<Duration>(interval_ * 2, opts_.poll_max);
        if (!outstanding_.empty()) schedule(interval_);
      });
}

void ChunkOwner::deliver(const Reply& entry, std::vector<std::string>& done_ids) {
  if (entry.type != Reply::Type::Array || entry.elements.empty()) return;
  const std::string& id = entry.elements[0].str;
  cursor_ = id;
  done_ids.push_back(id);
  const std::string* seq_s = field(entry, "seq");
  const std::string* lines_s = field(entry, "lines");
  uint64_t seq = 0;
  if (!seq_s || !lines_s || !parse_u64(*seq_s, seq)) return;
  auto it = outstanding_.find(seq);
  if (it == outstanding_.end()) {
    ++stats_.duplicate_chunks;
    return;
  }
  auto lines = decode_lines(*lines_s);
  if (!lines) return;  // not ours to fix: the chunk stays outstanding
  ChunkResult res{job_, seq, {}};
  for (auto& l : *lines) {
    if (it->second.lines.erase(l.line) == 1) {
      res.lines.push_back(std::move(l));
    } else {
      ++stats_.duplicate_lines;
    }
  }
  outstanding_.erase(it);
  ++stats_.results;
  if (on_results_) on_results_(std::move(res));
}

// ---- worker ---------------------------------------------------------------------------------

ChunkWorker::ChunkWorker(loop::Loop& loop, RedisClient& redis, QueueOptions queue,
                         WorkerOptions options)
    : loop_(loop),
      redis_(redis),
      q_(std::move(queue)),
      opts_(std::move(options)),
      interval_(opts_.poll_min) {}

ChunkWorker::~ChunkWorker() {
  *alive_ = false;
  stop();
}

void ChunkWorker::start() {
  if (running_) return;
  running_ = true;
  schedule_claim(Duration(0));
  renew_timer_ = loop_.add_timer(loop_.now() + opts_.renew_every, *this, kRenew);
  renew_armed_ = true;
  reclaim_timer_ = loop_.add_timer(loop_.now() + opts_.reclaim_every, *this, kReclaim);
  reclaim_armed_ = true;
}

void ChunkWorker::stop() {
  running_ = false;
  if (claim_armed_) loop_.cancel_timer(claim_timer_);
  if (renew_armed_) loop_.cancel_timer(renew_timer_);
  if (reclaim_armed_) loop_.cancel_timer(reclaim_timer_);
  claim_armed_ = renew_armed_ = reclaim_armed_ = false;
}

void ChunkWorker::give_back(std::function<void()> done) {
  stop();
  // Claimed again to ourselves with IDLE: the entry's last delivery is set a day in the past,
  // so it looks abandoned to every other worker's next XAUTOCLAIM; JUSTID leaves its delivery
  // count alone. (If another worker took one of them a moment ago, this takes it back and
  // leaves it to be reclaimed again: a chunk done twice, which completion makes harmless.)
  std::vector<std::string> argv = {"XCLAIM", chunks_key(), q_.group, opts_.consumer, "0"};
  for (const auto& [id, h] : held_) {
    if (h.completing) continue;
    argv.push_back(id);
  }
  for (auto it = held_.begin(); it != held_.end();) {
    it = it->second.completing ? std::next(it) : held_.erase(it);
  }
  hand_back(std::move(argv), std::move(done));
}

void ChunkWorker::hand_back(std::vector<std::string> argv, std::function<void()> done) {
  const size_t n = argv.size() - 5;
  if (n == 0) {
    if (done) done();
    return;
  }
  stats_.given_back += n;
  argv.insert(argv.end(), {"IDLE", "86400000", "JUSTID"});
  redis_.command(argv, [alive = alive_, done = std::move(done)](Result&&) {
    if (*alive && done) done();
  });
}

void ChunkWorker::set_capacity(size_t capacity) {
  const size_t before = opts_.capacity;
  opts_.capacity = std::max<size_t>(1, capacity);
  if (opts_.capacity > before) claim_now();
}

void ChunkWorker::claim_now() {
  if (!running_ || held_.size() >= opts_.capacity) return;
  if (claim_armed_) {
    loop_.cancel_timer(claim_timer_);
    claim_armed_ = false;
  }
  interval_ = opts_.poll_min;
  schedule_claim(Duration(0));
}

void ChunkWorker::schedule_claim(Duration d) {
  if (!running_ || claim_armed_) return;
  claim_timer_ = loop_.add_timer(loop_.now() + d, *this, kClaim);
  claim_armed_ = true;
}

void ChunkWorker::on_timer(loop::TimerId, uint64_t cookie) {
  switch (cookie) {
    case kClaim:
      claim_armed_ = false;
      claim();
      break;
    case kRenew:
      renew_armed_ = false;
      keep_alive();
      if (running_) {
        renew_timer_ = loop_.add_timer(loop_.now() + opts_.renew_every, *this, kRenew);
        renew_armed_ = true;
      }
      break;
    case kReclaim:
      reclaim_armed_ = false;
      reclaim();
      if (running_) {
        reclaim_timer_ = loop_.add_timer(loop_.now() + opts_.reclaim_every, *this, kReclaim);
        reclaim_armed_ = true;
      }
      break;
    default:
      break;
  }
}

void ChunkWorker::ensure_group(std::function<void()> then) {
  // The group is missing when Redis lost its data (restarted without persistence) or before
  // any owner opened a job: make it, from the start of the stream so nothing pushed is skipped.
  redis_.command({"XGROUP", "CREATE", chunks_key(), q_.group, "0", "MKSTREAM"},
                 [alive = alive_, then = std::move(then)](Result&&) {
                   if (*alive) then();
                 });
}

void ChunkWorker::claim() {
  if (!running_ || claiming_ || held_.size() >= opts_.capacity) return;
  claiming_ = true;
  ++stats_.polls;
  redis_.command({"XREADGROUP", "GROUP", q_.group, opts_.consumer, "COUNT",
                  std::to_string(opts_.capacity - held_.size()), "STREAMS", chunks_key(), ">"},
                 [this, alive = alive_](Result&& r) {
                   if (!*alive) return;
                   claiming_ = false;
                   if (r.ok() && r->is_error() && r->str.rfind("NOGROUP", 0) == 0) {
                     ensure_group([this] { schedule_claim(Duration(0)); });
                     return;
                   }
                   const size_t before = held_.size();
                   if (r.ok() && !r->is_error()) take(*stream_entries(*r), false);
                   if (held_.size() > before) {
                     interval_ = opts_.poll_min;
                     schedule_claim(Duration(0));
                   } else {
                     ++stats_.empty_polls;
                     interval_ = std::min<Duration>(interval_ * 2, opts_.poll_max);
                     if (held_.size() < opts_.capacity) schedule_claim(interval_);
                   }
                 });
}

void ChunkWorker::reclaim() {
  if (!running_ || reclaiming_ || held_.size() >= opts_.capacity) return;
  reclaiming_ = true;
  redis_.command(
      {"XAUTOCLAIM", chunks_key(), q_.group, opts_.consumer, ms(opts_.min_idle), reclaim_cursor_,
       "COUNT", std::to_string(opts_.capacity - held_.size())},
      [this, alive = alive_](Result&& r) {
        if (!*alive) return;
        reclaiming_ = false;
        if (!r.ok() || r->is_error() || r->type != Reply::Type::Array || r->elements.size() < 2) {
          return;
        }
        // The cursor walks the pending list a page at a time; "0-0" starts over.
        reclaim_cursor_ = r->elements[0].str;
        take(r->elements[1].elements, true);
      });
}

void ChunkWorker::take(const std::vector<Reply>& entries, bool reclaimed) {
  // A claim that was on its way when the worker stopped: its chunks go straight back.
  std::vector<std::string> back = {"XCLAIM", chunks_key(), q_.group, opts_.consumer, "0"};
  for (const Reply& e : entries) {
    if (e.type != Reply::Type::Array || e.elements.size() != 2) continue;
    if (!running_) {
      back.push_back(e.elements[0].str);
      continue;
    }
    Chunk c;
    c.entry_id = e.elements[0].str;
    const std::string* job = field(e, "job");
    const std::string* seq = field(e, "seq");
    const std::string* lines = field(e, "lines");
    if (!job || !seq || !lines || !parse_u64(*seq, c.seq)) continue;
    auto decoded = decode_lines(*lines);
    if (!decoded) continue;
    c.job = *job;
    c.lines = std::move(*decoded);
    if (const std::string* opts = field(e, "opts")) c.options = *opts;
    if (held_.count(c.entry_id)) continue;
    held_[c.entry_id] = Held{c.job, false};
    ++(reclaimed ? stats_.reclaimed : stats_.claimed);
    if (on_chunk_) on_chunk_(std::move(c));
  }
  hand_back(std::move(back), {});
}

void ChunkWorker::keep_alive() {
  if (renewing_) return;
  std::vector<std::string> argv = {"FCALL",      "mxp1_chunk_renew", "1",
                                   chunks_key(), q_.group,           opts_.consumer};
  std::vector<std::string> ids;
  for (const auto& [id, h] : held_) {
    if (h.completing) continue;
    ids.push_back(id);
    argv.push_back(id);
  }
  if (ids.empty()) return;
  renewing_ = true;
  ++stats_.renewals;
  redis_.command(argv, [this, alive = alive_, ids = std::move(ids)](Result&& r) {
    if (!*alive) return;
    renewing_ = false;
    if (!r.ok() || r->type != Reply::Type::Array || r->elements.size() != ids.size()) return;
    for (size_t i = 0; i < ids.size(); ++i) {
      if (r->elements[i].integer == 1) continue;
      auto it = held_.find(ids[i]);
      if (it == held_.end() || it->second.completing) continue;
      held_.erase(it);
      ++stats_.lost;
      if (on_lost_) on_lost_(ids[i]);
    }
    schedule_claim(Duration(0));
  });
}

void ChunkWorker::complete(const Chunk& chunk, std::vector<ChunkLine> results,
                           std::function<void(CompleteOutcome)> done) {
  auto it = held_.find(chunk.entry_id);
  if (it != held_.end()) it->second.completing = true;
  const std::string job_key = q_.prefix + "job:" + chunk.job;
  auto argv = std::make_shared<std::vector<std::string>>(std::vector<std::string>{
      "FCALL", "mxp1_chunk_complete", "3", chunks_key(), job_key + ":results", job_key, q_.group,
      chunk.entry_id, "seq", std::to_string(chunk.seq), "lines", encode_lines(results)});
  send_complete(std::move(argv), chunk.entry_id, std::move(done));
}

void ChunkWorker::send_complete(std::shared_ptr<std::vector<std::string>> argv, std::string id,
                                std::function<void(CompleteOutcome)> done) {
  redis_.command(*argv, [this, alive = alive_, argv, id, done = std::move(done)](Result&& r) {
    if (!*alive) return;
    if (!r.ok() && transient(r.error())) {
      // It may have run: running it again publishes nothing twice (XACK answers 0).
      ++stats_.complete_retries;
      send_complete(argv, id, done);
      return;
    }
    CompleteOutcome out = CompleteOutcome::Failed;
    if (r.ok() && r->type == Reply::Type::Integer) {
      out = r->integer == 1   ? CompleteOutcome::Published
            : r->integer == 2 ? CompleteOutcome::JobGone
                              : CompleteOutcome::AlreadyDone;
    }
    if (out == CompleteOutcome::Published) ++stats_.completed;
    if (out == CompleteOutcome::AlreadyDone) ++stats_.already_done;
    if (out == CompleteOutcome::JobGone) ++stats_.job_gone;
    held_.erase(id);
    if (done) done(out);
    schedule_claim(Duration(0));
  });
}

}  // namespace mxp::cluster
