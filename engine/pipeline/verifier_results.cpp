// The Verifier's results: each recipient's outcome from a session (failover to the next MX,
// TLS fallback, retry or final verdict through the scheduler), the catch-all probe's answer
// and the addresses held for it, the record emitted for each address, and the `error` text
// of addresses whose source was refused.
#include "pipeline/verifier.hpp"

#include "pipeline/session_slot.hpp"
#include "verdict/provider.hpp"
#include "verdict/retry.hpp"

#include <algorithm>
#include <ctime>

namespace mxp::pipeline {

using loop::TimePoint;

namespace {
constexpr size_t kMaxNoTls = 100'000;
}  // namespace

// RFC 5321 §5.1: a client tries the next MX when it cannot connect or gets a 4xx greeting.
static bool server_unreachable(const smtp::Outcome& o) {
  if (o.stage == smtp::Stage::Connect) return true;
  if (o.stage != smtp::Stage::Banner) return false;
  return o.failure != smtp::Failure::None || (o.reply.code >= 400 && o.reply.code < 500);
}

static void copy_reply(Result& r, const smtp::Outcome& outcome) {
  if (outcome.failure != smtp::Failure::None) return;
  r.has_smtp = true;
  r.code = outcome.reply.code;
  r.enhanced = outcome.reply.enhanced.str();
  r.message = outcome.reply.text();
}

// What a try that got no reply ran into, in words, for its mx_tried entry ("" with a reply).
static std::string try_error(const smtp::Outcome& o, loop::Status connect, const SessionTls& tls) {
  switch (o.failure) {
    case smtp::Failure::None:
      return {};
    case smtp::Failure::ConnectFailed: {
      if (connect == loop::Status::Ok) return "connection failed";
      std::string why(loop::to_string(connect));  // "connection_refused" -> "connection refused"
      std::replace(why.begin(), why.end(), '_', ' ');
      return why;
    }
    case smtp::Failure::Timeout:
      return "timed out waiting for " + awaited_name(o.stage);
    case smtp::Failure::Closed:
      return "connection closed waiting for " + awaited_name(o.stage);
    case smtp::Failure::ProtocolError:
      return "unreadable reply waiting for " + awaited_name(o.stage);
    case smtp::Failure::LocalError:
      return "not sent: refused locally";
    case smtp::Failure::TlsUnavailable:
      return "STARTTLS not available";
    case smtp::Failure::TlsFailed:
      return tls.error().empty() ? "TLS handshake failed" : "TLS handshake failed: " + tls.error();
  }
  return "no reply";
}

void Verifier::on_outcome(SessionSlot& s, Item* item, const smtp::Outcome& outcome) {
  Domain& d = s.domain();
  TimePoint now = loop_.now();
  if (!item->probe) {
    // The record's mx_tried: every try, failed-over, retried or final, as it happens.
    MxTry t;
    t.mx = s.target().host;
    t.ip = s.address_ip();
    t.stage = smtp::to_string(outcome.stage);
    if (outcome.failure == smtp::Failure::None) {
      t.code = outcome.reply.code;
      t.enhanced = outcome.reply.enhanced.str();
      t.message = outcome.reply.text();
    } else {
      t.error = try_error(outcome, s.connect_status(), s.tls());
    }
    t.source_ip = s.source_ip();
    add_mx_try(item->result(), std::move(t));
  }
  if (cfg_.on_reply)
    cfg_.on_reply(s.group(), outcome.failure == smtp::Failure::None ? outcome.reply.code / 100 : 0);
  Result& r = item->result();
  const bool tls_broke =
      outcome.failure == smtp::Failure::TlsFailed ||
      (outcome.stage == smtp::Stage::StartTls &&
       (outcome.failure == smtp::Failure::Timeout || outcome.failure == smtp::Failure::Closed));
  if (tls_broke && s.config().starttls == smtp::StartTlsMode::Auto) {
    // The server took STARTTLS and then failed the handshake (or went silent, or hung up, in
    // STARTTLS or the handshake): this MX is tried again without TLS (a new session, skipping
    // STARTTLS), like a failover, without using up a try.
    if (no_tls_.size() >= kMaxNoTls) no_tls_.clear();
    const bool first = no_tls_.insert(s.target().address.ip_string()).second;
    if (first && cfg_.log)  // once per MX address, not per recipient
      cfg_.log("STARTTLS with " + s.target().host + " [" + s.target().address.ip_string() +
               "] failed (" +
               (s.tls().error().empty() ? std::string(smtp::to_string(outcome.failure))
                                        : s.tls().error()) +
               "): going on without TLS");
    sched_.requeue(item->sid, now);
    return;
  }
  // Phrases count in the server's own words only: the recipient, our sender and HELO name it
  // echoes are not (docs/verdicts.md, "Echoed addresses").
  const std::string_view sender =
      outcome.sender >= 0 ? smtp::sender_at(s.config(), static_cast<size_t>(outcome.sender))
                          : std::string_view(s.config().mail_from);
  const verdict::Echoes echoes{item->wire(), sender, s.config().helo_name};
  auto c = classify_memo_.classify(outcome, echoes);
  // The MAIL FROM that asked for this address ("<>": the null sender); null when none was sent.
  if (outcome.sender >= 0)
    r.mail_from = sender.empty() ? std::string("<>") : std::string(sender);
  else
    r.mail_from.clear();
  r.mx = s.target().host;
  r.mx_ip = s.address_ip();
  r.source_ip = s.source_ip();
  r.proxy = s.proxy_name();
  r.helo = s.config().helo_name;
  r.tls_version = s.tls().version();  // empty (null) when this session had no TLS
  r.tls_cipher = s.tls().cipher();
  r.provider = s.provider();
  if (cfg_.transcripts) r.transcript = s.transcript();
  if (item->check) note_check(s, item, outcome);

  if (server_unreachable(outcome) && outcome.failure != smtp::Failure::LocalError) {
    const bool last = s.target_index() + 1 >= d.answer.targets.size();
    if (!last) {
      // RFC 5321 §5.1: on to the next MX, without counting a try.
      if (d.target == s.target_index()) {
        ++d.target;
        ++stats_.failovers;
        sched_.set_domain_group(d.sid, sched_.group_for_mx(d.answer.targets[d.target].host), now);
      }
      sched_.requeue(item->sid, now);
      return;
    }
    // The last MX failed too: this try is over. The next one starts again at the most
    // preferred MX; whether there is one (a refused connection, a 421 or a timeout is retried
    // later, with back-off) is the scheduler's call below.
    if (d.target == s.target_index()) {
      d.target = 0;
      sched_.set_domain_group(d.sid, sched_.group_for_mx(d.answer.targets[0].host), now);
    }
  }
  if (c.source_blocked) {
    BlockCause& b = block_cause_[s.group()];
    b.source = s.source_id();
    b.mx = r.mx;
    b.mx_ip = r.mx_ip;
    b.source_ip = r.source_ip;
    b.proxy = r.proxy;
    b.helo = r.helo;
    b.reply = outcome.failure == smtp::Failure::None
                  ? std::to_string(outcome.reply.code) +
                        (outcome.reply.enhanced.present ? " " + outcome.reply.enhanced.str() : "") +
                        " " + outcome.reply.text()
                  : std::string(smtp::to_string(outcome.failure));
    if (b.reply.size() > 160) b.reply.resize(160), b.reply += "...";
  }
  auto disp = sched_.on_outcome(s.id(), item->sid, c, now);
  switch (disp.kind) {
    case sched::Disposition::Kind::Retry:
      // A domain check answers now (one try): what it saw is the answer.
      if (((cfg_.max_tries && disp.tries >= cfg_.max_tries) || item->check) && !c.recipient_limit &&
          !c.source_blocked) {
        sched_.remove(item->sid);
        finish_item(d, item, c, &outcome);
        return;
      }
      // Kept by the scheduler; the reply stays in the record in case no later try answers.
      ++stats_.retries;
      if (c.reason == Reason::Greylisted) r.greylisted = true;
      item->cls = c;
      copy_reply(r, outcome);
      return;
    case sched::Disposition::Kind::Final:
      if (disp.result.source_blocked) r.error = block_error(s.group());
      if (disp.result.sender_refused)
        r.error = disp.result.source_blocked
                      ? r.error + "; " + sender_error(s.config(), outcome.sender)
                      : sender_error(s.config(), outcome.sender);
      finish_item(d, item, disp.result, &outcome);
      return;
    case sched::Disposition::Kind::Invalid:  // the scheduler lost track: finish it here
      sched_.remove(item->sid);
      finish_item(d, item, c, &outcome);
      return;
  }
}

void Verifier::finish_item(Domain& d, Item* item, const verdict::Classification& c,
                           const smtp::Outcome* outcome) {
  item->cls = c;
  if (outcome) copy_reply(item->result(), *outcome);
  if (item->probe_role && c.verdict == Verdict::Unknown && cfg_.max_tries != 1) {
    // A domain check answers after one try, but the probe it carried deserves the policy's
    // retries (greylisting, a timeout): a probe of its own takes over, and the domain's
    // addresses wait for that one, as they would have.
    Item* probe = new_item();
    probe->probe = true;
    probe->domain = &d;
    probe->email = item->email;  // the same random address: a greylisting triplet clears
    probe->sid = sched_.enqueue(probe->slot, d.sid, loop_.now(), {}, true);
    ++d.live;
    item->probe_role = false;
    return emit_check(d, item);
  }
  if (item->probe || item->probe_role) {
    d.probe = Domain::Probe::Done;
    d.probe_cls = c;
    // Kept for the run, within a bound: past 4x max_domains a forgotten domain is probed again.
    if (catch_all_.size() <= 4 * cfg_.max_domains)
      catch_all_.record(d.name, c);
    else
      catch_all_.forget(d.name);
    if (cfg_.catch_all_learned) {
      auto fact = verdict::catch_all_from_probe(c);
      cfg_.catch_all_learned(d.name, fact == verdict::CatchAll::Unknown
                                         ? std::nullopt
                                         : std::optional<bool>(fact == verdict::CatchAll::Yes));
    }
    if (item->check) {  // a domain check's RCPT was the probe: its report goes out too
      release_held(d);
      return emit_check(d, item);
    }
    --d.live;
    free_item(item);
    release_held(d);
    return;
  }
  if (cfg_.catch_all_probe && d.probe == Domain::Probe::InFlight) {
    d.held.push_back(item);
    return;
  }
  emit_item(d, item);
}

void Verifier::release_held(Domain& d) {
  auto held = std::move(d.held);
  d.held.clear();
  for (Item* it : held)
    emit_item(d, it);
}

void Verifier::emit_item(Domain& d, Item* item) {
  if (item->check) return emit_check(d, item);
  Result& r = item->result();
  verdict::Classification c = item->cls;
  if (cfg_.catch_all_probe && d.probe == Domain::Probe::Done) {
    auto combined = verdict::combine_catch_all(c, d.probe_cls);
    c = combined.result;
    r.catch_all = verdict::to_optional(combined.catch_all);
  }
  // The provider accepts every address at RCPT (policy quirks.rcpt_accepts_all): its 250 proves
  // nothing about the mailbox.
  if (d.sid != sched::kNone && sched_.domain_settings(d.sid).rcpt_accepts_all)
    c = verdict::apply_rcpt_accepts_all(c);
  r.id = item->id;
  r.line = item->line;
  r.normalized = item->wire();
  r.email = std::move(item->email);
  r.verdict = c.verdict;
  r.reason = c.reason;
  r.domain = d.name;
  // No session decided (DNS, connections failed everywhere): the MX names still tell who runs
  // the mail; the most preferred one speaks for the domain.
  if (r.provider.empty() && !d.answer.targets.empty()) {
    if (!d.mx_provider)
      d.mx_provider = verdict::provider_for_host(d.answer.targets.front().host, d.name);
    r.provider = *d.mx_provider;
  }
  r.role = item->role;
  if (!d.flags) d.flags = flags::domain_flags(cfg_.domain_data.get(), d.name);
  set_domain_flags(r, *d.flags, r.normalized);
  r.attempts = item->attempts;
  // From the first session attempt; without one (DNS decided), from the submission.
  r.elapsed_ms = std::chrono::duration<double, std::milli>(
                     loop_.now() - (item->started ? item->first_attempt : item->submitted))
                     .count();
  r.checked_at = std::chrono::system_clock::now();
  if (r.verdict == Verdict::Unknown) r.retry_after = retry_after(d, *item);
  Result out = std::move(r);
  --d.live;
  free_item(item);
  ++stats_.finished;
  maybe_idle(d);
  emit_(std::move(out));
}

std::optional<std::chrono::system_clock::time_point> Verifier::retry_after(Domain& d, Item& item) {
  using std::chrono::ceil;
  using std::chrono::seconds;
  const Result& r = item.result();
  verdict::RetryEvidence e;
  e.verdict = r.verdict;
  e.reason = r.reason;
  e.code = r.has_smtp ? r.code : 0;
  if (d.sid != sched::kNone) {
    const auto& schedule = sched_.domain_settings(d.sid).retry_schedule;
    if (!schedule.empty()) {
      const size_t n = item.attempts > 0 ? item.attempts - 1 : 0;
      e.next_wait = ceil<seconds>(schedule[std::min(n, schedule.size() - 1)]);
    }
    if (r.reason == Reason::Blocked) {
      const auto g = sched_.domain_group(d.sid);
      const TimePoint now = loop_.now();
      if (auto it = block_cause_.find(g); it != block_cause_.end() && g != sched::kNone) {
        const TimePoint until = sched_.source_group_view(it->second.source, g, now).blocked_until;
        if (until > now) e.blocked_for = ceil<seconds>(until - now);
      }
    }
  }
  const auto delay = verdict::retry_delay(e);
  if (!delay) return std::nullopt;
  // Whole seconds (the record's times have no fraction), never earlier than the delay says.
  return ceil<seconds>(r.checked_at) + *delay;
}

void Verifier::fail_domain(Domain& d) {
  std::vector<uint64_t> keys;
  sched_.drain_domain(d.sid, keys);
  auto unqueued = std::move(d.unqueued);
  d.unqueued.clear();
  for (uint64_t k : keys) {
    if (!d.failure_error.empty()) items_[k]->result().error = d.failure_error;
    finish_item(d, items_[k].get(), d.failure, nullptr);
  }
  for (Item* it : unqueued) {
    if (!d.failure_error.empty()) it->result().error = d.failure_error;
    finish_item(d, it, d.failure, nullptr);
  }
  maybe_idle(d);
}

// "source IP 192.0.2.1 resting until 18:22:05 UTC after 554 5.7.1 ... at mx.example.org", the
// record's `error` for an address that ends unknown/blocked because our source was refused
// (docs/verdicts.md, "What decided").
std::string Verifier::block_error(sched::GroupId g) {
  auto it = block_cause_.find(g);
  if (it == block_cause_.end()) return "source refused by MX group " + sched_.group_name(g);
  const BlockCause& b = it->second;
  std::string who = !b.proxy.empty()       ? "proxy " + b.proxy
                    : !b.source_ip.empty() ? "source IP " + b.source_ip
                                           : std::string("our source IP");
  const TimePoint now = loop_.now();
  const TimePoint until = sched_.source_group_view(b.source, g, now).blocked_until;
  std::string when = " refused";  // not resting (yet): this reply was about one recipient
  if (until > now) {
    const auto wall = std::chrono::system_clock::now() +
                      std::chrono::duration_cast<std::chrono::system_clock::duration>(until - now);
    const std::time_t t = std::chrono::system_clock::to_time_t(wall);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%H:%M:%S UTC", &tm);
    when = std::string(" resting until ") + buf;
  }
  return who + when + " after " + b.reply + " at " + b.mx;
}

std::string Verifier::sender_error(const smtp::SessionConfig& cfg, int last) const {
  const size_t n = last < 0 ? 1 : static_cast<size_t>(last) + 1;
  std::string list;
  for (size_t i = 0; i < n; ++i) {
    const std::string_view from = smtp::sender_at(cfg, i);
    list += i ? ", " : "";
    list += from.empty() ? std::string_view("<>") : from;
  }
  return (n > 1 ? "the server refused every MAIL FROM we have ("
                : "the server refused our MAIL FROM (") +
         list + "): give --mail-from an address on a domain you own (docs/identity.md)";
}

size_t Verifier::first_sender(sched::GroupId g) const {
  auto it = sender_start_.find(g);
  return it == sender_start_.end() ? 0 : it->second;
}

void Verifier::note_sender(sched::GroupId g, size_t index) {
  uint8_t& at = sender_start_[g];
  at = std::max<uint8_t>(at, static_cast<uint8_t>(index));
}

std::string Verifier::random_local_part() {
  // Looks like a person's mailbox that nobody has: 12 lower-case letters and digits.
  static constexpr char kAlnum[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::string s;
  for (int i = 0; i < 12; ++i)
    s.push_back(kAlnum[rng_() % 36]);
  s[0] = kAlnum[rng_() % 26];  // start with a letter
  return s;
}

}  // namespace mxp::pipeline
