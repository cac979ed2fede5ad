// The Verifier's domain checks (docs/usage.md, "Domain checks"): a check is an item like an
// address's, queued through the scheduler (so every limit and back-off applies to it), whose
// RCPT asks a random address (the domain's catch-all probe, which the domain's addresses then
// share) or, when the catch-all answer is known already or probing is off, postmaster (RFC 5321
// §4.5.1: every domain that takes mail has one). Its sessions' greeting, EHLO and reply make a
// DomainReport instead of a record.
#include <algorithm>

#include "pipeline/session_slot.hpp"
#include "pipeline/verifier.hpp"
#include "verdict/provider.hpp"

namespace mxp::pipeline {

Verifier::Domain& Verifier::domain_slot(std::string name) {
  auto& slot = domains_[name];
  if (!slot) {
    slot = std::make_unique<Domain>();
    slot->name = std::move(name);
    slot->sid = sched_.domain(slot->name);
    if (by_sched_id_.size() <= slot->sid) by_sched_id_.resize(slot->sid + 1, nullptr);
    by_sched_id_[slot->sid] = slot.get();
  } else if (slot->idle) {
    idle_.erase(slot->idle_it);
    slot->idle = false;
  }
  return *slot;
}

void Verifier::check_domain(uint64_t id, std::string domain) {
  const auto started = std::chrono::system_clock::now();
  if (cfg_.lists) {
    std::string why;
    if (auto l = cfg_.lists->check_domain(domain, &why); l != flags::Listed::No) {
      // Never contacted, DNS included: the lists answer.
      DomainReport r;
      r.id = id;
      r.domain = std::move(domain);
      r.mail = l == flags::Listed::Denied ? "denied" : "not_allowed";
      r.reason = verdict::classify_listed(l == flags::Listed::Denied).reason;
      r.error = std::move(why);
      const auto f = flags::domain_flags(cfg_.domain_data.get(), r.domain);
      r.disposable = f.disposable;
      r.free = f.free;
      r.checked_at = started;
      listed_domains_.push_back(std::move(r));
      kick();
      return;
    }
  }
  Item* item = new_item();
  item->id = id;
  item->check = true;
  item->report = std::make_unique<DomainReport>();
  item->report->id = id;
  item->report->checked_at = started;
  item->email = random_local_part() + "@" + domain;  // until assign_check decides
  item->submitted = loop_.now();
  Domain& d = domain_slot(std::move(domain));
  item->domain = &d;
  ++d.live;
  ++stats_.submitted;
  if (d.state == Domain::State::Failed) {
    d.unqueued.push_back(item);
    if (!d.failing) {
      d.failing = true;
      to_fail_.push_back(&d);
    }
    kick();
    return;
  }
  item->sid = sched_.enqueue(item->slot, d.sid, loop_.now());
  if (d.state == Domain::State::Ready) {
    assign_check(d, item);
  } else {
    d.checks.push_back(item);
    if (d.state == Domain::State::New) resolve_domain(d);
  }
  kick();
}

void Verifier::assign_check(Domain& d, Item* item) {
  const bool want_probe = cfg_.catch_all_probe && sched_.domain_settings(d.sid).catch_all_probe;
  if (want_probe && d.probe == Domain::Probe::NotStarted && catch_all_.begin_probe(d.name)) {
    // The check's random address is the domain's probe: one random RCPT for both.
    item->probe_role = true;
    d.probe = Domain::Probe::InFlight;
    return;
  }
  // Known already (or being probed, or not to be probed): postmaster tells whether the domain
  // takes mail without another random address.
  item->email = "postmaster@" + d.name;
}

void Verifier::note_check(SessionSlot& s, Item* item, const smtp::Outcome& outcome) {
  DomainReport& rep = *item->report;
  using smtp::Stage;
  const Stage st = outcome.stage;
  if (st == Stage::Connect) return;  // nothing answered: keep what an earlier MX showed
  rep.mx_reached = s.target().host;
  rep.mx_ip = s.address().address.ip_string();
  rep.banner = s.banner();
  rep.tls_version = s.tls().version();
  rep.tls_cipher = s.tls().cipher();
  // STARTTLS offered: in the EHLO keywords, or used (after it, the new EHLO no longer lists
  // it). Known once EHLO was answered: the session went past it, or fell back to HELO.
  if (!rep.tls_version.empty() || st == Stage::StartTls ||
      smtp::has(s.capabilities(), smtp::Capability::StartTls))
    rep.starttls = true;
  else if (st == Stage::Helo || st == Stage::MailFrom || st == Stage::RcptTo || st == Stage::Rset ||
           st == Stage::Quit)
    rep.starttls = false;
  // Accepts mail: a server answered RCPT (or got that far, whatever our sender met). A 5xx
  // greeting says "no SMTP service here" (RFC 5321 §3.1); with no other MX that is a no.
  if (st == Stage::MailFrom || st == Stage::RcptTo || st == Stage::Rset || st == Stage::Quit)
    rep.accepts_mail = true;
  else if (st == Stage::Banner && outcome.failure == smtp::Failure::None &&
           outcome.reply.code >= 500 && rep.accepts_mail != true)
    rep.accepts_mail = false;
}

void Verifier::emit_check(Domain& d, Item* item) {
  DomainReport rep = std::move(*item->report);
  rep.domain = d.name;
  verdict::Classification c = item->cls;
  if (d.sid != sched::kNone && sched_.domain_settings(d.sid).rcpt_accepts_all)
    c = verdict::apply_rcpt_accepts_all(c);
  rep.verdict = c.verdict;
  rep.reason = c.reason;
  if (item->record) {
    const Result& r = *item->record;
    rep.has_smtp = r.has_smtp;
    rep.code = r.code;
    rep.enhanced = r.enhanced;
    rep.message = r.message;
    rep.error = r.error;
  }
  if (item->started || !rep.mx_reached.empty()) rep.rcpt = item->email;
  // DNS: the hosts by preference, each with its addresses in the order they are tried.
  const dns::MxAnswer& a = d.answer;
  rep.implicit_mx = a.ok && a.implicit;
  for (const auto& t : a.ok ? a.targets : std::vector<dns::MxTarget>{}) {
    auto it = std::find_if(rep.mx.begin(), rep.mx.end(),
                           [&](const DomainReport::MxHost& h) { return h.host == t.host; });
    if (it == rep.mx.end()) {
      rep.mx.push_back({t.host, t.preference, {}});
      it = rep.mx.end() - 1;
    }
    it->addresses.push_back(t.address.ip_string());
  }
  if (d.state == Domain::State::Failed) {
    rep.null_mx = d.failure.reason == Reason::NullMx;
    rep.accepts_mail.reset();
    switch (d.failure.reason) {
      case Reason::NullMx:
      case Reason::NoSuchDomain:
      case Reason::NoMailServer:
        rep.mail = std::string(to_string(d.failure.reason));
        rep.accepts_mail = false;
        break;
      default:
        rep.mail = "unknown";
    }
    if (rep.error.empty()) rep.error = d.failure_error;
  } else {
    rep.mail = !rep.accepts_mail ? "unknown" : *rep.accepts_mail ? "accepts" : "rejects";
  }
  // The catch-all answer: this check's own probe, else the domain's earlier one.
  verdict::CatchAll fact = verdict::CatchAll::Unknown;
  if (item->probe_role) {
    fact = verdict::catch_all_from_probe(c);
  } else if (d.probe == Domain::Probe::Done) {
    verdict::Classification p = d.probe_cls;
    if (d.sid != sched::kNone && sched_.domain_settings(d.sid).rcpt_accepts_all)
      p = verdict::apply_rcpt_accepts_all(p);
    fact = verdict::catch_all_from_probe(p);
    rep.catch_all_cached = fact != verdict::CatchAll::Unknown;
  }
  rep.catch_all = verdict::to_optional(fact);
  rep.provider = verdict::identify_provider(rep.mx_reached, rep.banner, d.name);
  if (rep.provider.empty() && !a.targets.empty())
    rep.provider = verdict::provider_for_host(a.targets.front().host, d.name);
  if (!d.flags) d.flags = flags::domain_flags(cfg_.domain_data.get(), d.name);
  rep.disposable = d.flags->disposable;
  rep.free = d.flags->free;
  rep.elapsed_ms = std::chrono::duration<double, std::milli>(loop_.now() - item->submitted).count();
  --d.live;
  free_item(item);
  ++stats_.finished;
  maybe_idle(d);
  if (cfg_.on_domain_report) cfg_.on_domain_report(std::move(rep));
}

}  // namespace mxp::pipeline
