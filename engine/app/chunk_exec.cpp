// ChunkExecutor: chunks claimed, verified on this node, completed (chunk_exec.hpp has the
// design; the Redis functions are mxp1_catch_all, mxp1_catch_all_learned and mxp1_results_put
// in engine/cluster/functions.lua).
#include "app/chunk_exec.hpp"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <random>

#include "app/runner.hpp"

namespace mxp::app {
namespace {

std::string ms(cluster::Duration d) {
  return std::to_string(
      std::max<int64_t>(1, std::chrono::duration_cast<std::chrono::milliseconds>(d).count()));
}

// The record without its final newline: the owner's parse_json takes it either way, and the
// chunk's encoding carries each line's length anyway.
std::string record_of(const pipeline::Result& r, bool transcripts) {
  std::string out;
  pipeline::append_json(r, out, transcripts);
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

// Past this many catch-all facts the local copy starts again empty (they are in Redis and in
// the verifier's own cache): bounded memory on a node that sees millions of domains.
constexpr size_t kMaxFacts = 200'000;

}  // namespace

ChunkExecutor::ChunkExecutor(loop::Loop& loop, cluster::RedisClient& redis, ExecutorHooks hooks,
                             ExecutorOptions options)
    : loop_(loop),
      redis_(redis),
      hooks_(std::move(hooks)),
      opts_(std::move(options)),
      worker_(loop, redis, opts_.queue, [&] {
        cluster::WorkerOptions w = opts_.timing;
        w.consumer = opts_.node;
        w.capacity = std::max<size_t>(1, opts_.chunks);
        return w;
      }()) {
  opts_.chunks = std::max<size_t>(1, opts_.chunks);
  opts_.max_chunks = std::max(opts_.max_chunks, opts_.chunks);
  char suffix[17];
  std::snprintf(
      suffix, sizeof suffix, "%016llx",
      static_cast<unsigned long long>(std::random_device{}()) << 32 | std::random_device{}());
  holder_ = opts_.node + ":" + suffix;
  worker_.on_chunk([this](cluster::Chunk&& c) { on_chunk(std::move(c)); });
  worker_.on_lost([this](const std::string& entry_id) {
    auto it = by_entry_.find(entry_id);
    if (it == by_entry_.end()) return;
    auto ch = chunks_.find(it->second);
    ++stats_.chunks_lost;
    if (ch != chunks_.end()) drop(*ch->second);
  });
}

ChunkExecutor::~ChunkExecutor() {
  *alive_ = false;
  if (poll_armed_) loop_.cancel_timer(poll_timer_);
  if (resize_armed_) loop_.cancel_timer(resize_timer_);
  if (flush_armed_) loop_.cancel_timer(flush_timer_);
}

void ChunkExecutor::start() {
  if (running_) return;
  running_ = true;
  facts_since_ = loop_.now();
  worker_.start();
  arm(kResize, opts_.resize_every);
}

void ChunkExecutor::stop(std::function<void()> done) {
  running_ = false;
  if (resize_armed_) loop_.cancel_timer(resize_timer_);
  resize_armed_ = false;
  std::vector<Held*> held;
  for (const auto& [entry, serial] : by_entry_) {
    auto it = chunks_.find(serial);
    if (it != chunks_.end()) held.push_back(it->second.get());
  }
  stats_.chunks_given_back += held.size();
  for (Held* h : held)
    drop(*h);
  // Our claims on probing domains go too: the chunks that needed the probes are elsewhere now.
  std::vector<std::string> probing;
  for (const auto& [name, d] : domains_)
    if (d.probing) probing.push_back(name);
  release_claims(probing);
  flush_releases();
  worker_.give_back(std::move(done));
}

void ChunkExecutor::arm(uint64_t cookie, cluster::Duration after) {
  const auto at = loop_.now() + after;
  if (cookie == kPoll) {
    // One timer for the facts poll and the claims' renewal: the sooner wins.
    if (poll_armed_ && poll_at_ <= at) return;
    if (poll_armed_) loop_.cancel_timer(poll_timer_);
    poll_timer_ = loop_.add_timer(at, *this, kPoll);
    poll_at_ = at;
    poll_armed_ = true;
    return;
  }
  bool& armed = cookie == kFlush ? flush_armed_ : resize_armed_;
  if (armed) return;
  (cookie == kFlush ? flush_timer_ : resize_timer_) = loop_.add_timer(at, *this, cookie);
  armed = true;
}

void ChunkExecutor::on_timer(loop::TimerId, uint64_t cookie) {
  if (cookie == kPoll) {
    poll_armed_ = false;
    poll();
  } else if (cookie == kFlush) {
    flush_armed_ = false;
    flush_releases();
  } else {
    resize_armed_ = false;
    resize();
    if (running_) arm(kResize, opts_.resize_every);
  }
}

void ChunkExecutor::resize() {
  // The local copies of the facts start again empty every hour (or catch_all_ttl if shorter),
  // so that a fact expired in Redis, or a domain whose DNS failed for a while, is asked again.
  const auto now = loop_.now();
  if (now - facts_since_ >=
      std::min<cluster::Duration>(opts_.catch_all_ttl, std::chrono::hours(1))) {
    facts_.clear();
    unprobed_.clear();
    facts_since_ = now;
  }

  // Lines that wait (a retry's time, another node's probe) keep their chunk from completing:
  // hold as many more chunks as they would fill, so the node has work meanwhile.
  const size_t waiting = (hooks_.waiting ? hooks_.waiting() : 0) + held_back_;
  const double per_chunk = std::max(1.0, avg_lines_);
  const size_t extra = static_cast<size_t>(std::ceil(static_cast<double>(waiting) / per_chunk));
  worker_.set_capacity(std::min(opts_.max_chunks, opts_.chunks + extra));
}

void ChunkExecutor::on_chunk(cluster::Chunk&& c) {
  auto owned = std::make_unique<Held>();
  Held& h = *owned;
  h.serial = next_serial_++;
  h.chunk = std::move(c);
  ++stats_.chunks_claimed;
  const auto opts = nlohmann::json::parse(h.chunk.options, nullptr, false);
  if (opts.is_object()) {
    const auto t = opts.find("transcripts");
    if (t != opts.end() && t->is_boolean()) h.transcripts = t->get<bool>();
  }
  const size_t n = h.chunk.lines.size();
  stats_.lines += n;
  avg_lines_ = avg_lines_ == 0 ? static_cast<double>(n) : 0.8 * avg_lines_ + 0.2 * n;
  h.lines.resize(n);
  h.left = n;
  std::vector<size_t> valid;
  std::vector<std::string> domains;
  std::unordered_set<std::string> asked;
  for (size_t i = 0; i < n; ++i) {
    Line& l = h.lines[i];
    l.id = opts_.id_base + next_id_;
    next_id_ = (next_id_ + 1) % kIdSpan;
    ids_[l.id] = {&h, i};
    const std::string& text = h.chunk.lines[i].text;
    auto p = address::parse(text);
    if (!p.ok()) {
      ++stats_.lines_invalid;
      pipeline::Result r =
          invalid_result(Record(h.chunk.lines[i].line, text), address::to_string(p.error));
      r.id = l.id;
      answer(h, l, record_of(r, h.transcripts));
      continue;
    }
    l.domain = p.address.domain;
    l.normalized = p.address.normalized();
    l.addr = std::move(p.address);
    valid.push_back(i);
    if (!facts_.count(l.domain) && !domains_.count(l.domain) && !unprobed_.count(l.domain) &&
        asked.insert(l.domain).second)
      domains.push_back(l.domain);
  }
  by_entry_[h.chunk.entry_id] = h.serial;
  chunks_.emplace(h.serial, std::move(owned));

  const uint64_t serial = h.serial;
  // One answer for the sending itself: a command that fails at once (a closed client) calls
  // back inside command(), which must not dispatch the chunk before both are sent.
  ++h.answers;
  if (opts_.cache_ttl.count() > 0 && !valid.empty()) {
    std::vector<std::string> argv = {"MGET"};
    for (size_t i : valid)
      argv.push_back(cache_key(h.lines[i].normalized));
    ++h.answers;
    ++stats_.redis_commands;
    redis_.command(argv, [this, alive = alive_, serial, valid](cluster::Result&& r) {
      if (!*alive) return;
      auto it = chunks_.find(serial);
      if (it == chunks_.end()) return;
      Held& h = *it->second;
      --h.answers;
      if (!h.lost && r.ok() && r->type == cluster::Reply::Type::Array &&
          r->elements.size() == valid.size()) {
        for (size_t k = 0; k < valid.size(); ++k) {
          const cluster::Reply& v = r->elements[k];
          if (v.type != cluster::Reply::Type::String) continue;
          auto parsed = pipeline::parse_json(v.str);
          if (!parsed) continue;
          Line& l = h.lines[valid[k]];
          pipeline::Result res = std::move(*parsed);
          res.cached = true;
          res.transcript.clear();
          res.id = l.id;
          res.line = h.chunk.lines[valid[k]].line;
          res.email = h.chunk.lines[valid[k]].text;
          ++stats_.cache_hits;
          answer(h, l, record_of(res, h.transcripts));
        }
      }
      if (h.answers == 0) arrived(h);
    });
  }
  if (!domains.empty()) {
    std::vector<std::string> argv = {"FCALL", "mxp1_catch_all", std::to_string(domains.size())};
    for (const auto& d : domains)
      argv.push_back(fact_key(d));
    argv.push_back(holder_);
    argv.push_back(ms(opts_.catch_all_claim));
    ++h.answers;
    ++stats_.redis_commands;
    redis_.command(argv, [this, alive = alive_, serial, domains](cluster::Result&& r) {
      if (!*alive) return;
      // The answers stand whatever became of the chunk: a claim made is this node's to use or
      // release.
      if (r.ok() && r->type == cluster::Reply::Type::Array &&
          r->elements.size() == domains.size()) {
        for (size_t k = 0; k < domains.size(); ++k)
          apply_fact_answer(domains[k], r->elements[k].integer);
      }
      auto it = chunks_.find(serial);
      if (it == chunks_.end() || it->second->lost) {
        // The chunk went (lost, or handed back by stop()) before the answer: claims made for
        // it have no line here to probe them.
        std::vector<std::string> idle;
        for (const auto& d : domains) {
          auto s = domains_.find(d);
          if (s != domains_.end() && s->second.probing && s->second.live == 0) idle.push_back(d);
        }
        release_claims(idle);
        if (it == chunks_.end()) return;
      }
      Held& h = *it->second;
      if (--h.answers == 0) arrived(h);
    });
  }
  if (--h.answers == 0) arrived(h);
}

void ChunkExecutor::arrived(Held& h) {
  if (h.lost) return;
  h.dispatching = true;
  for (Line& l : h.lines) {
    if (l.done || !l.addr) continue;
    auto d = domains_.find(l.domain);
    if (d != domains_.end() && !d->second.probing && !facts_.count(l.domain)) {
      // Another node probes this domain: its lines wait for the fact (poll()).
      l.held_back = true;
      ++held_back_;
      d->second.waiting.push_back(l.id);
      arm(kPoll, opts_.catch_all_poll);
      continue;
    }
    // Known, probed here, or unknown because Redis did not answer: the verifier decides (it
    // uses a known fact, or probes).
    submit(h, l);
  }
  h.dispatching = false;
  // A domain claimed for this chunk whose lines all came from the results cache: nothing here
  // will probe it.
  std::vector<std::string> idle;
  for (const Line& l : h.lines) {
    auto d = domains_.find(l.domain);
    if (d != domains_.end() && d->second.probing && d->second.live == 0 &&
        std::find(idle.begin(), idle.end(), l.domain) == idle.end())
      idle.push_back(l.domain);
  }
  release_claims(idle);
  maybe_complete(h);
}

void ChunkExecutor::submit(Held& h, Line& l) {
  l.submitted = true;
  l.held_back = false;
  ++h.inflight;
  auto d = domains_.find(l.domain);
  if (d != domains_.end() && d->second.probing) ++d->second.live;
  address::Address addr = std::move(*l.addr);
  l.addr.reset();
  if (hooks_.submit) hooks_.submit(l.id, h.chunk.lines[&l - h.lines.data()].text, std::move(addr));
}

void ChunkExecutor::answer(Held& h, Line& l, std::string record) {
  if (l.done) return;
  l.record = std::move(record);
  l.done = true;
  --h.left;
}

void ChunkExecutor::deliver(pipeline::Result&& r) {
  auto it = ids_.find(r.id);
  if (it == ids_.end()) return;
  Held& h = *it->second.first;
  Line& l = h.lines[it->second.second];
  if (!l.submitted || l.done) return;
  --h.inflight;
  auto d = domains_.find(l.domain);
  if (d != domains_.end() && d->second.probing && d->second.live > 0 && --d->second.live == 0) {
    // Every line of the domain this node submitted has its result, yet no probe told (the
    // policy does not probe it, or its DNS failed): let another node try, and do not claim it
    // again for the next chunks (a claim and a release per chunk would buy nothing).
    if (unprobed_.size() >= kMaxFacts) unprobed_.clear();
    unprobed_.insert(l.domain);
    release_claims({l.domain});
  }
  if (h.lost) {
    ++stats_.lines_dropped;
    l.done = true;
    if (h.inflight == 0) forget(h);
    return;
  }
  ++stats_.lines_verified;
  if (opts_.cache_ttl.count() > 0 && r.verdict != Verdict::Unknown && !l.normalized.empty()) {
    l.cache_record = record_of(r, false);
  }
  answer(h, l, record_of(r, h.transcripts));
  maybe_complete(h);
}

void ChunkExecutor::maybe_complete(Held& h) {
  if (h.dispatching || h.answers > 0 || h.left > 0 || h.lost) return;
  std::vector<cluster::ChunkLine> results;
  results.reserve(h.lines.size());
  std::vector<std::string> put = {"FCALL", "mxp1_results_put", "0"};
  std::vector<std::string> values;
  for (size_t i = 0; i < h.lines.size(); ++i) {
    Line& l = h.lines[i];
    results.push_back({h.chunk.lines[i].line, std::move(l.record)});
    if (!l.cache_record.empty()) {
      put.push_back(cache_key(l.normalized));
      values.push_back(std::move(l.cache_record));
    }
  }
  if (!values.empty()) {
    put[2] = std::to_string(values.size());
    put.push_back(ms(opts_.cache_ttl));
    for (auto& v : values)
      put.push_back(std::move(v));
    stats_.cache_puts += values.size();
    ++stats_.redis_commands;
    redis_.command(put, [](cluster::Result&&) {});
  }
  worker_.complete(h.chunk, std::move(results), [this, alive = alive_](cluster::CompleteOutcome o) {
    if (!*alive) return;
    if (o == cluster::CompleteOutcome::Published) ++stats_.chunks_completed;
    if (o == cluster::CompleteOutcome::AlreadyDone || o == cluster::CompleteOutcome::JobGone)
      ++stats_.chunks_dropped;
  });
  forget(h);
}

void ChunkExecutor::forget(Held& h) {
  for (const Line& l : h.lines)
    ids_.erase(l.id);
  auto e = by_entry_.find(h.chunk.entry_id);
  if (e != by_entry_.end() && e->second == h.serial) by_entry_.erase(e);
  chunks_.erase(h.serial);  // h is gone
}

void ChunkExecutor::drop(Held& h) {
  if (h.lost) return;
  h.lost = true;
  auto e = by_entry_.find(h.chunk.entry_id);
  if (e != by_entry_.end() && e->second == h.serial) by_entry_.erase(e);
  for (Line& l : h.lines) {
    if (!l.held_back) continue;
    l.held_back = false;
    --held_back_;
    auto d = domains_.find(l.domain);
    if (d == domains_.end()) continue;
    auto& w = d->second.waiting;
    w.erase(std::remove(w.begin(), w.end(), l.id), w.end());
  }
  // Lines still with the verifier come back later and are dropped; the rest goes now.
  if (h.inflight == 0) {
    forget(h);
    return;
  }
  for (Line& l : h.lines)
    if (!l.submitted) ids_.erase(l.id);
}

std::optional<bool> ChunkExecutor::known_catch_all(const std::string& domain) {
  auto it = facts_.find(domain);
  if (it == facts_.end()) return std::nullopt;
  return it->second;
}

void ChunkExecutor::set_fact(const std::string& domain, bool yes) {
  if (facts_.size() >= kMaxFacts) facts_.clear();
  facts_[domain] = yes;
}

void ChunkExecutor::learned_catch_all(const std::string& domain, std::optional<bool> catch_all) {
  if (!catch_all) {
    // The probe could not tell: another node may try (our claim goes, if we hold it).
    auto d = domains_.find(domain);
    if (d != domains_.end() && d->second.probing) release_claims({domain});
    return;
  }
  set_fact(domain, *catch_all);
  ++stats_.catch_all_shared;
  ++stats_.redis_commands;
  redis_.command({"FCALL", "mxp1_catch_all_learned", "1", fact_key(domain), holder_,
                  ms(opts_.catch_all_ttl), *catch_all ? "1" : "0"},
                 [](cluster::Result&&) {});
  release_waiting(domain);
  domains_.erase(domain);
}

void ChunkExecutor::release_claims(const std::vector<std::string>& domains) {
  for (const auto& d : domains) {
    auto it = domains_.find(d);
    if (it == domains_.end() || !it->second.probing) continue;
    to_release_.push_back(d);
    // Lines held back for it (none while we probe it) go to the verifier, which decides.
    release_waiting(d);
    domains_.erase(it);
  }
  // One call for the releases of a loop iteration (several domains' last lines often end
  // together).
  if (!to_release_.empty()) arm(kFlush, cluster::Duration(0));
}

void ChunkExecutor::flush_releases() {
  if (to_release_.empty()) return;
  std::vector<std::string> argv = {"FCALL", "mxp1_catch_all_learned",
                                   std::to_string(to_release_.size())};
  for (const auto& d : to_release_)
    argv.push_back(fact_key(d));
  argv.push_back(holder_);
  argv.push_back(ms(opts_.catch_all_ttl));
  for (size_t i = 0; i < to_release_.size(); ++i)
    argv.emplace_back();
  to_release_.clear();
  ++stats_.redis_commands;
  redis_.command(argv, [](cluster::Result&&) {});
}

void ChunkExecutor::apply_fact_answer(const std::string& domain, int64_t v) {
  if (v == 0 || v == 1) {
    set_fact(domain, v == 1);
    ++stats_.catch_all_used;
    release_waiting(domain);
    domains_.erase(domain);
  } else if (v == 2) {
    Domain& d = domains_[domain];
    if (!d.probing) ++stats_.catch_all_probes;
    d.probing = true;
    d.renewed = loop_.now();
    arm(kPoll, opts_.catch_all_claim / 3);  // the claim's renewal
    release_waiting(domain);
  } else if (v == 3) {
    domains_.try_emplace(domain);  // a claim of ours that another took over stays ours to finish
  }
}

void ChunkExecutor::release_waiting(const std::string& domain) {
  auto d = domains_.find(domain);
  if (d == domains_.end() || d->second.waiting.empty()) return;
  std::vector<uint64_t> ids = std::move(d->second.waiting);
  d->second.waiting.clear();
  std::vector<uint64_t> touched;
  for (uint64_t id : ids) {
    auto it = ids_.find(id);
    if (it == ids_.end()) continue;
    Held& h = *it->second.first;
    Line& l = h.lines[it->second.second];
    if (!l.held_back || h.lost) continue;
    --held_back_;
    ++stats_.catch_all_waited;
    submit(h, l);
  }
}

void ChunkExecutor::poll() {
  if (polling_) return;
  // Every domain another node probes (its lines wait), and ours whose claim is due a renewal.
  std::vector<std::string> names;
  const auto now = loop_.now();
  // Domains another node probed for lines since dropped or answered: nothing waits on them.
  std::erase_if(domains_,
                [](const auto& kv) { return !kv.second.probing && kv.second.waiting.empty(); });
  for (const auto& [name, d] : domains_) {
    if (!d.probing && !d.waiting.empty()) {
      names.push_back(name);
    } else if (d.probing && now - d.renewed >= opts_.catch_all_claim / 3) {
      names.push_back(name);
    }
  }
  bool probing = false;
  for (const auto& [name, d] : domains_)
    probing = probing || d.probing;
  if (names.empty()) {
    if (probing) arm(kPoll, opts_.catch_all_claim / 3);
    return;
  }
  std::vector<std::string> argv = {"FCALL", "mxp1_catch_all", std::to_string(names.size())};
  for (const auto& n : names)
    argv.push_back(fact_key(n));
  argv.push_back(holder_);
  argv.push_back(ms(opts_.catch_all_claim));
  polling_ = true;
  ++stats_.redis_commands;
  redis_.command(argv, [this, alive = alive_, names](cluster::Result&& r) {
    if (!*alive) return;
    polling_ = false;
    if (r.ok() && r->type == cluster::Reply::Type::Array && r->elements.size() == names.size()) {
      for (size_t k = 0; k < names.size(); ++k) {
        const int64_t v = r->elements[k].integer;
        auto d = domains_.find(names[k]);
        if (d == domains_.end()) continue;
        // A renewal that finds another holder (ours expired): keep probing; the fact we learn
        // is written all the same.
        if (d->second.probing && v == 3) continue;
        apply_fact_answer(names[k], v);
      }
    }
    bool more = false, probing = false;
    for (const auto& [name, d] : domains_) {
      more = more || (!d.probing && !d.waiting.empty());
      probing = probing || d.probing;
    }
    if (more) {
      arm(kPoll, opts_.catch_all_poll);
    } else if (probing) {
      arm(kPoll, opts_.catch_all_claim / 3);
    }
  });
}

void ChunkExecutor::append_prometheus(std::string& out) const {
  auto line = [&](const char* name, const char* type, const char* help, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" +
           name + " " + buf + "\n";
  };
  auto count = [](uint64_t v) { return static_cast<double>(v); };
  line("mxprobe_cluster_chunks_held", "gauge", "Chunks this worker holds now.", count(held()));
  line("mxprobe_cluster_chunks_capacity", "gauge",
       "Chunks this worker may hold now (grows while lines wait for retries).", count(capacity()));
  line("mxprobe_cluster_chunks_claimed_total", "counter", "Chunks claimed (new or reclaimed).",
       count(stats_.chunks_claimed));
  line("mxprobe_cluster_chunks_completed_total", "counter",
       "Chunks completed by this worker (results published to their owner).",
       count(stats_.chunks_completed));
  line("mxprobe_cluster_chunks_given_back_total", "counter",
       "Chunks handed back at shutdown for other workers to take.",
       count(stats_.chunks_given_back));
  line("mxprobe_cluster_chunks_lost_total", "counter",
       "Chunks taken over by another worker while held here.", count(stats_.chunks_lost));
  line("mxprobe_cluster_lines_verified_total", "counter",
       "Addresses of chunks verified on this node.", count(stats_.lines_verified));
  line("mxprobe_cluster_lines_invalid_total", "counter",
       "Chunk lines answered at once as invalid syntax.", count(stats_.lines_invalid));
  line("mxprobe_cluster_cache_hits_total", "counter",
       "Chunk lines answered from the cluster's shared results cache.", count(stats_.cache_hits));
  line("mxprobe_cluster_cache_puts_total", "counter",
       "Records written to the cluster's shared results cache.", count(stats_.cache_puts));
  line("mxprobe_cluster_catch_all_probes_total", "counter",
       "Domains this node claimed to probe for catch-all on the cluster's behalf.",
       count(stats_.catch_all_probes));
  line("mxprobe_cluster_catch_all_shared_total", "counter",
       "Catch-all facts this node learned and shared through Redis.",
       count(stats_.catch_all_shared));
  line("mxprobe_cluster_catch_all_used_total", "counter",
       "Domains whose catch-all fact came from another node.", count(stats_.catch_all_used));
  line("mxprobe_cluster_catch_all_waited_total", "counter",
       "Lines held back while another node probed their domain.", count(stats_.catch_all_waited));
}

}  // namespace mxp::app
