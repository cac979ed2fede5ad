// The Verifier's DNS side: an MX answer turned into a domain's targets (or its failure), the
// catch-all probe queued when the domain is ready, and the resolver's health: lookups that go
// unanswered are held while a check query decides whether the resolver itself is down
// (docs/usage.md, "A resolver that does not answer").
#include "pipeline/verifier.hpp"

#include "pipeline/session_slot.hpp"

namespace mxp::pipeline {

using loop::TimePoint;

namespace {
constexpr uint32_t kSilentLookups = 5;  // lookups in a row without an answer: check the resolver
constexpr auto kResolverRecheck = std::chrono::seconds(10);
}  // namespace

void Verifier::on_resolved(Domain& d, const dns::MxAnswer& answer) {
  d.answer = answer;
  d.mx_provider.reset();
  --resolving_;
  TimePoint now = loop_.now();
  if (!answer.ok && answer.failure == verdict::DnsStatus::Timeout) {
    // No answer: the domain's servers, or the resolver itself? Held (its addresses wait in the
    // scheduler, without an MX group) until the resolver is known to answer or not.
    ++dns_silent_;
    if (dns_down_ && cfg_.fail_when_resolver_down) {
      fail_dns(d, verdict::classify_dns(answer.failure),
               "dns: " + resolver_.describe() + " does not answer (MX lookup of " + d.name + ")");
      return;
    }
    dns_held_.push_back(&d);
    if (dns_check_failed_) {  // the check found no answer either: the resolver is down
      dns_check_failed_ = false;
      on_resolver_check(false);
    } else {
      doubt_resolver();
    }
    return;
  }
  ++dns_answers_;
  dns_silent_ = 0;
  if (!dns_held_.empty() || dns_down_ || dns_check_failed_) resolver_answers();
  // A source pool reaches only its own families: mail hosts' addresses of another family are
  // left out (an IPv4-only pool never tries an AAAA address, and the reverse).
  size_t unreachable = 0;
  if (answer.ok && !cfg_.sources.empty()) {
    bool v4 = false, v6 = false;
    for (const auto& src : cfg_.sources)
      (src.endpoint.family() == AF_INET6 ? v6 : v4) = true;
    auto& t = d.answer.targets;
    const size_t before = t.size();
    std::erase_if(
        t, [&](const dns::MxTarget& x) { return !(x.address.family() == AF_INET6 ? v6 : v4); });
    unreachable = before - t.size();
  }
  if (!answer.ok || d.answer.targets.empty()) {
    d.checks.clear();  // queued: fail_domain finishes them with the rest
    d.state = Domain::State::Failed;
    d.failure =
        verdict::classify_dns(answer.ok ? verdict::DnsStatus::NoMailServer : answer.failure);
    d.failure_error = answer.ok ? std::string() : answer.error;
    if (answer.ok && unreachable > 0) {
      // The domain has mail servers, but none of a family the source pool has: not judged.
      d.failure = verdict::Classification{};
      d.failure.verdict = Verdict::Unknown;
      d.failure.reason = Reason::ConnectionFailed;
      d.failure.scope = verdict::Scope::Domain;
      d.failure_error = std::string("connect: no source address of the mail servers' family (") +
                        (answer.targets[0].address.family() == AF_INET6 ? "IPv6" : "IPv4") + ")";
      if (cfg_.log)
        cfg_.log("domain " + d.name + ": no source address of its mail servers' family (" +
                 (answer.targets[0].address.family() == AF_INET6 ? "IPv6" : "IPv4") +
                 "); its addresses end unknown/connection_failed");
    }
    if (!d.failing) {
      d.failing = true;
      to_fail_.push_back(&d);
    }
  } else {
    d.state = Domain::State::Ready;
    sched_.set_domain_group(d.sid, sched_.group_for_mx(d.answer.targets[0].host), now);
    const bool want_probe = cfg_.catch_all_probe && sched_.domain_settings(d.sid).catch_all_probe;
    if (want_probe && d.probe == Domain::Probe::NotStarted &&
        catch_all_.state(d.name) == sched::CatchAllCache::State::Unknown && cfg_.catch_all_known) {
      // Learned in an earlier run: the answer a probe gave then stands in for the probe.
      if (auto yes = cfg_.catch_all_known(d.name)) {
        verdict::Classification probe;
        probe.verdict = *yes ? Verdict::Deliverable : Verdict::Undeliverable;
        probe.reason = *yes ? Reason::Accepted : Reason::MailboxNotFound;
        catch_all_.begin_probe(d.name);
        catch_all_.record(d.name, probe);
      }
    }
    if (want_probe && d.probe == Domain::Probe::NotStarted &&
        catch_all_.state(d.name) == sched::CatchAllCache::State::Known) {
      d.probe = Domain::Probe::Done;  // probed before this domain was forgotten
      d.probe_cls = *catch_all_.probe(d.name);
    }
    // Domain checks that waited for this answer: the first may be the probe (below, none then).
    auto checks = std::move(d.checks);
    d.checks.clear();
    for (Item* c : checks)
      assign_check(d, c);
    if (want_probe && d.probe == Domain::Probe::NotStarted && catch_all_.begin_probe(d.name)) {
      Item* probe = new_item();
      probe->probe = true;
      probe->domain = &d;
      probe->email = random_local_part() + "@" + d.name;  // letters and digits: no quoting
      probe->sid = sched_.enqueue(probe->slot, d.sid, now, {}, true);
      ++d.live;
      d.probe = Domain::Probe::InFlight;
    }
  }
  kick();
}

void Verifier::resolve_domain(Domain& d) {
  if (!dns_checked_) {
    // Does the resolver answer at all? Asked beside the first lookup (of an address's domain or
    // a domain check), so that a dead or mistyped --dns is known as soon as the first lookups go
    // unanswered.
    dns_checked_ = dns_checking_ = true;
    std::weak_ptr<bool> alive = alive_;
    resolver_.check([this, alive](bool ok) {
      if (alive.lock()) on_resolver_check(ok);
    });
  }
  d.state = Domain::State::Resolving;
  ++resolving_;
  Domain* dp = &d;
  resolver_.resolve(d.name, [this, dp](const dns::MxAnswer& a) { on_resolved(*dp, a); });
}

void Verifier::fail_dns(Domain& d, const verdict::Classification& c, std::string error) {
  d.state = Domain::State::Failed;
  d.failure = c;
  d.failure_error = std::move(error);
  if (!d.failing) {
    d.failing = true;
    to_fail_.push_back(&d);
  }
  kick();
}

// Lookups went unanswered: ask the resolver something it must answer once enough of them did
// in a row, or when nothing else is being looked up.
void Verifier::doubt_resolver() {
  if (dns_checking_ || dns_down_) return;
  if (dns_silent_ < kSilentLookups && resolving_ > 0) return;
  dns_checking_ = true;
  dns_answers_ = 0;
  std::weak_ptr<bool> alive = alive_;
  resolver_.check([this, alive](bool ok) {
    if (alive.lock()) on_resolver_check(ok);
  });
}

void Verifier::on_resolver_check(bool answered) {
  dns_checking_ = false;
  // A lookup answered meanwhile says the same as an answer to the check.
  if (answered || dns_answers_ > 0) return resolver_answers();
  if (dns_silent_ == 0 && dns_held_.empty() && !dns_down_) {
    dns_check_failed_ = true;  // no lookup has ended yet: the first one to end decides
    return;
  }
  if (!dns_down_) {
    dns_down_ = true;
    const std::string line = "DNS resolver " + resolver_.describe() + " does not answer (" +
                             std::to_string(dns_silent_) +
                             " lookups in a row and a query for the root went unanswered)";
    // One line: the owner's (verify stops the job and says so), else the log's.
    if (cfg_.on_resolver_down)
      cfg_.on_resolver_down(line);
    else if (cfg_.log)
      cfg_.log(line + (cfg_.fail_when_resolver_down
                           ? ""
                           : ": addresses wait for it, checked again every 10 s"));
  }
  if (cfg_.fail_when_resolver_down) {
    auto held = std::move(dns_held_);
    dns_held_.clear();
    for (Domain* d : held)
      fail_dns(*d, verdict::classify_dns(d->answer.failure),
               "dns: " + resolver_.describe() + " does not answer (MX lookup of " + d->name + ")");
    return;
  }
  if (!dns_timer_armed_) {
    dns_timer_ = loop_.add_timer(loop_.now() + kResolverRecheck, *this, kResolverCookie);
    dns_timer_armed_ = true;
  }
}

// The resolver answers. After an outage the held domains are looked up again; otherwise their
// lookups really went unanswered (the domain's servers): unknown/dns_error.
void Verifier::resolver_answers() {
  dns_check_failed_ = false;
  const bool was_down = dns_down_;
  dns_down_ = false;
  dns_silent_ = 0;
  if (dns_timer_armed_) loop_.cancel_timer(dns_timer_);
  dns_timer_armed_ = false;
  auto held = std::move(dns_held_);
  dns_held_.clear();
  if (was_down && cfg_.log)
    cfg_.log("DNS resolver " + resolver_.describe() +
             " answers again: " + std::to_string(held.size()) + " domains looked up again");
  for (Domain* d : held) {
    if (was_down)
      resolve_domain(*d);
    else
      fail_dns(*d, verdict::classify_dns(d->answer.failure), d->answer.error);
  }
}

}  // namespace mxp::pipeline
