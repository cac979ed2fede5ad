// `mxprobe serve`: real-time verification (/v1/verify, WebSocket `check`): the results cache,
// results a moment ago, waiters and their timeouts, and the tally of every record answered.
#include "app/serve/service.hpp"

namespace mxp::app::serve_impl {

// Answers `r` with the record for `email` now (syntax error, cache, a result a moment ago), or
// when the verification ends, or at the timeout with "still verifying".
void Service::verify(const std::string& email, bool missing, const std::string& timeout_text,
                     bool transcript, server::Responder r) {
  if (missing || email.empty())
    return r.respond(error(400, "bad_request", "missing the email parameter"));
  double timeout = 10;
  if (!timeout_text.empty()) {
    char* end = nullptr;
    timeout = std::strtod(timeout_text.c_str(), &end);
    if (end == timeout_text.c_str() || *end || !(timeout > 0) || timeout > 300)
      return r.respond(error(400, "bad_request", "timeout: seconds, more than 0, at most 300"));
  }
  Waiter w;
  w.http = std::move(r);
  w.transcript = transcript;
  w.deadline = Clock::now() +
               std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout));
  check(email, std::move(w));
}

void Service::check(const std::string& email, Waiter w) {
  ++requests_;
  auto p = address::parse(email);
  if (!p.ok()) {
    Result res;
    res.line = 1;
    res.email = email;
    auto c = verdict::classify_syntax_error();
    res.verdict = c.verdict;
    res.reason = c.reason;
    res.error = std::string(address::to_string(p.error));
    res.checked_at = std::chrono::system_clock::now();
    tally(res.verdict, res.reason, false);
    return answer(w, record_json(res, false));
  }
  std::string key = p.address.normalized();
  // A listed address (--deny, --allow) is answered from the list by the verifier, never from a
  // cache: the lists in force decide (they may have changed on SIGHUP).
  const bool listed = verifier_.listed(p.address) != flags::Listed::No;
  if (auto it = recent_.find(key); !listed && it != recent_.end() && fresh(it->second)) {
    // Through the record code, so that the score gets the answer's age (--cache-ttl may keep
    // it for longer than the first step of cache_age, docs/score.md).
    if (auto parsed = pipeline::parse_json(it->second.json)) {
      Result& res = *parsed;
      res.line = 1;
      res.email = email;
      res.cached = true;
      json rec = record_json(res, true);
      tally(rec, true);
      return answer(w, rec);
    }
  }
  if (cache_ && !listed) {
    auto hit = cache_->get_cache_at(key, o_.cache_ttl, store::unix_now());
    if (hit && hit->has_value()) {
      if (auto parsed = pipeline::parse_json((*hit)->json)) {
        Result& res = *parsed;
        res.line = 1;  // the cache keeps the line of the job that checked it
        res.email = email;
        res.cached = true;
        // The flags come from today's domain data, not the data of the day it was checked, and
        // the score is written anew (its cache_age factor: how old the answer is now).
        set_domain_flags(
            res, flags::domain_flags(verifier_.config().domain_data.get(), p.address.domain), key);
        json rec = record_json(res, false);
        tally(rec, true);
        return answer(w, rec);
      }
    }
  }
  // A resolver known not to answer: say so now rather than at the timeout (jobs' addresses, and
  // this one if it is already being verified, wait for it; a caller at the point of use wants an
  // answer and its cause).
  if (!listed && verifier_.resolver_down()) {
    Result res;
    res.line = 1;
    res.email = email;
    res.normalized = key;
    res.domain = p.address.domain;
    res.verdict = Verdict::Unknown;
    res.reason = Reason::DnsError;
    res.error = "dns: " + verifier_.resolver_name() +
                " does not answer (checked again every 10 s; MX lookup of " + p.address.domain +
                " not sent)";
    res.checked_at = std::chrono::system_clock::now();
    tally(res.verdict, res.reason, false);
    return answer(w, record_json(res, false));
  }
  if (auto it = by_addr_.find(key); it != by_addr_.end()) {
    pending_[it->second].waiters.push_back(std::move(w));
    return;
  }
  const uint64_t id = next_id_++;
  Pending& pd = pending_[id];
  pd.email = email;
  pd.normalized = key;
  pd.waiters.push_back(std::move(w));
  by_addr_[key] = id;
  verifier_.submit(id, 1, email, std::move(p.address));
}

void Service::answer(Waiter& w, json rec) {
  if (!w.transcript && rec.is_object()) rec.erase("transcript");
  if (w.ws_client) {
    auto it = ws_.find(w.ws_client);
    if (it != ws_.end())
      it->second->send_text(
          json{{"type", "result"}, {"id", w.ws_request_id}, {"record", rec}}.dump());
    return;
  }
  w.http.respond(json_response(200, rec));
}

void Service::on_result(Result&& r) {
  count(r);
  if (const uint64_t job = r.id >> kJobIdShift; job != 0) {
    if (job == kExecutorJob) {
      if (exec_) exec_->deliver(std::move(r));
      return;
    }
    auto it = jobs_.find(job);
    if (it != jobs_.end() && it->second->runner) it->second->runner->deliver(std::move(r));
    return;
  }
  auto it = pending_.find(r.id);
  if (it == pending_.end()) return;
  Pending pd = std::move(it->second);
  pending_.erase(it);
  by_addr_.erase(pd.normalized);
  json rec = record_json(r, true);
  // Kept for a retry after a timeout: in memory, and in the cache when the answer is final.
  std::string line = rec.dump();
  if (recent_.size() >= kRecentCap) recent_.clear();
  // Not an answer of the lists: they decide again at each ask (SIGHUP may change them).
  if (r.reason != Reason::Denied && r.reason != Reason::NotAllowed)
    recent_[pd.normalized] = Recent{line, Clock::now(), r.verdict == Verdict::Unknown};
  if (cache_writer_ && r.verdict != Verdict::Unknown) {
    Result plain = r;
    plain.transcript.clear();
    std::string j;
    pipeline::append_json(plain, j, false);
    cache_writer_->post_detached(
        [ce = store::CacheEntry{pd.normalized, std::chrono::system_clock::to_time_t(r.checked_at),
                                j}](store::SqliteStore& s) {
          return s.put_cache({&ce, 1});
        });
  }
  for (auto& w : pd.waiters)
    answer(w, rec);
}

void Service::count(const Result& r) {
  if (r.has_smtp && !r.mx.empty()) {
    // The last deciding reply per MX host, for the console's groups (capped: hosts are many
    // only on huge jobs, and an old entry is worth little).
    if (last_reply_.size() >= 100000) last_reply_.clear();
    std::string& t = last_reply_[r.mx];
    t = std::to_string(r.code);
    if (!r.enhanced.empty()) t += " " + r.enhanced;
    t += " " + r.message.substr(0, 160);
    // Printable ASCII only (RFC 5321 replies are ASCII): the snapshot's JSON must stay valid
    // whatever bytes a server sent.
    for (char& c : t)
      if (c < 0x20 || c > 0x7e) c = '?';
  }
  // A job's records are counted as its runner answers them (cache hits and repeats too).
  if (!(r.id >> kJobIdShift)) tally(r.verdict, r.reason, false);
}

// Every record answered, whatever answered it: SMTP, the results cache, a repeat, a syntax
// error (the console's "Verified" and mxprobe_verifications_total).
void Service::tally(Verdict v, Reason r, bool from_cache) {
  ++by_verdict_reason_[static_cast<int>(v)][static_cast<int>(r)];
  finished_[static_cast<int>(v)].add(Clock::now());
  ++total_;
  if (from_cache) ++cache_hits_;
}

void Service::tally(const json& rec, bool from_cache) {
  auto v = parse_verdict(rec.value("verdict", ""));
  auto r = parse_reason(rec.value("reason", ""));
  if (v && r) tally(*v, *r, from_cache);
}

// HTTP waiters past their deadline get the record "unknown / timeout, still verifying".
void Service::expire(Clock::time_point now) {
  for (auto& [id, pd] : pending_) {
    for (auto& w : pd.waiters) {
      if (w.ws_client || !w.http.alive() || w.deadline > now) continue;
      Result res;
      res.line = 1;
      res.email = pd.email;
      res.normalized = pd.normalized;
      res.verdict = Verdict::Unknown;
      res.reason = Reason::Timeout;
      // Still verifying; when the resolver does not answer, that is why (docs/api.md).
      res.error = verifier_.resolver_down()
                      ? "still_verifying: dns: " + verifier_.resolver_name() + " does not answer"
                      : "still_verifying";
      res.checked_at = std::chrono::system_clock::now();
      json rec = record_json(res, false);
      rec["pending"] = true;
      w.http.respond(json_response(200, rec));
    }
    std::erase_if(pd.waiters, [](const Waiter& w) { return !w.ws_client && !w.http.alive(); });
  }
}

void Service::resolver_down(const std::string& line) {
  std::fprintf(diag_, "mxprobe: %s: addresses wait for it, checked again every 10 s\n",
               line.c_str());
  publish_event(json{{"type", "event"}, {"event", "dns_down"}, {"text", line}});
  for (auto& [id, pd] : pending_) {
    if (pd.waiters.empty()) continue;
    Result res;
    res.line = 1;
    res.email = pd.email;
    res.normalized = pd.normalized;
    if (auto at = pd.normalized.rfind('@'); at != std::string::npos)
      res.domain = pd.normalized.substr(at + 1);
    res.verdict = Verdict::Unknown;
    res.reason = Reason::DnsError;
    res.error = "dns: " + verifier_.resolver_name() +
                " does not answer (checked again every 10 s; the lookup waits for it)";
    res.checked_at = std::chrono::system_clock::now();
    const json rec = record_json(res, false);
    for (auto& w : pd.waiters) {
      tally(res.verdict, res.reason, false);
      answer(w, rec);
    }
    pd.waiters.clear();
  }
}

bool Service::fresh(const Recent& r) const {
  const auto age = Clock::now() - r.at;
  return r.unknown ? age < std::chrono::minutes(1) : age < o_.cache_ttl;
}

}  // namespace mxp::app::serve_impl
