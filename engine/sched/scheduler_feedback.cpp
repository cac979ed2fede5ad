// Feedback into the scheduler: each recipient's outcome (final or retry, greylisting pins,
// blocks and rotation), back-off signals, sources going down, and the end of a session (AIMD
// recovery, parked groups and domains woken).
#include "sched/scheduler_detail.hpp"

#include <algorithm>
#include <chrono>

namespace mxp::sched {

using detail::bit;

namespace {

bool accepted(const verdict::Classification& c) {
  // A 252 "cannot verify, will accept" is not an error reply either.
  return c.verdict == Verdict::Deliverable ||
         (c.verdict == Verdict::Risky && c.reason == Reason::CatchAll);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Feedback

void Scheduler::backoff_signal(Session& ses, TimePoint now, std::string_view why) {
  ses.trouble = true;
  sources_[ses.source].warm.on_trouble(now);
  if (limits_->backoff(ses.group, now)) {
    ++stats_.backoffs;
    SchedEvent e;
    e.kind = SchedEvent::Kind::BackOff;
    e.group = ses.group;
    e.source = ses.source;
    e.aimd = limits_->group_view(ses.group, now).aimd;
    e.reason = std::string(why);
    add_event(std::move(e));
  }
}

Disposition Scheduler::on_outcome(SessionId sid, ItemId id, const verdict::Classification& c,
                                  TimePoint now) {
  advance(now);
  now = last_now_;
  Disposition out;
  Session* ses = session_of(sid);
  if (!ses || !valid(id)) return out;
  const uint32_t i = id.index;
  Item& it = items_[i];
  if (it.state != ItemState::InFlight || it.session != sid.index) return out;

  list_erase(ses->items, i);
  --ses->outstanding;
  ses->decided = true;
  Domain& D = domains_[it.domain];
  --D.in_flight;
  --stats_.in_flight;
  it.session = kNone;
  ++it.tries;
  // Postfix counts every error reply toward smtpd_soft_error_limit.
  if (!accepted(c)) ++ses->rejections;
  if (c.back_off || c.reason == Reason::ConnectionFailed)
    backoff_signal(*ses, now, to_string(c.reason));
  out.tries = it.tries;
  out.result = c;

  if (c.verdict != Verdict::Unknown) {
    ses->judged = true;
    ses->block_pending = false;
  }
  if (!c.source_blocked && ses->block_pending && ses->outstanding == 0)
    apply_block(*ses, ses->pending_block, now);

  if (c.source_blocked) {
    // The answer can only change from another source IP: rest this one for the group, and
    // give the address to another, unless every source is blocked (for it or for the group).
    // Unless the same session's other recipients were judged: then the server judged mailboxes
    // for us, and this reply is about this one recipient. Its other recipients still
    // outstanding decide (the block waits for them).
    ++stats_.blocks;
    it.blocked_from |= bit(ses->source);
    if (!ses->judged) {
      ses->block_pending = true;
      ses->pending_block = c;
      if (ses->outstanding == 0) apply_block(*ses, c, now);
    }
    const Group& target = D.group == kNone ? groups_[ses->group] : groups_[D.group];
    const auto S = static_cast<uint32_t>(sources_.size());
    const uint64_t all = S == 64 ? ~uint64_t{0} : bit(S) - 1;
    if (((it.blocked_from | blocked_mask(target, now)) & all) == all) {
      out.kind = Disposition::Kind::Final;
      free_item(i);
      ++stats_.finals;
      return out;
    }
    it.pinned = 0;
    ++stats_.rotations;
    make_ready(i, true, now);
    out.kind = Disposition::Kind::Retry;
    out.not_before = now;
    return out;
  }
  if (c.recipient_limit) {
    // Not judged: the server's per-transaction limit. Again at once, in a new transaction.
    make_ready(i, true, now);
    out.kind = Disposition::Kind::Retry;
    out.not_before = now;
    out.pinned = it.pinned ? it.pinned - 1u : kNone;
    return out;
  }
  if (c.retry_later) {
    ++it.retries;
    const DomainSettings& ds = *D.settings;
    if (it.retries >= ds.attempts || ds.retry_schedule.empty()) {
      out.kind = Disposition::Kind::Final;
      free_item(i);
      ++stats_.finals;
      return out;
    }
    // Greylisting keys on (client IP, sender, recipient): the retry must come from the same
    // source IP to pass.
    if (c.reason == Reason::Greylisted) {
      it.pinned = static_cast<uint8_t>(ses->source + 1);
      ++stats_.greylist_retries;
    }
    const size_t step = std::min<size_t>(it.retries - 1u, ds.retry_schedule.size() - 1);
    out.not_before = now + std::chrono::duration_cast<Clock::duration>(ds.retry_schedule[step]);
    out.pinned = it.pinned ? it.pinned - 1u : kNone;
    out.kind = Disposition::Kind::Retry;
    ++stats_.retries;
    make_waiting(i, out.not_before);
    return out;
  }
  out.kind = Disposition::Kind::Final;
  free_item(i);
  ++stats_.finals;
  return out;
}

void Scheduler::apply_block(Session& ses, const verdict::Classification& c, TimePoint now) {
  ses.block_pending = false;
  Group& G = groups_[ses.group];
  SourceGroup& sg = G.per_source[ses.source];
  const bool was_blocked = source_blocked(G, ses.source, now);
  sg.blocked = true;
  sg.blocked_until = now + G.settings->block_cooldown;
  G.last_block = c;
  sources_[ses.source].warm.on_block(now);
  if (!was_blocked) {
    SchedEvent e;
    e.kind = SchedEvent::Kind::Blocked;
    e.group = ses.group;
    e.source = ses.source;
    e.until = sg.blocked_until;
    e.reason = std::string(to_string(c.reason));
    add_event(std::move(e));
  }
}

void Scheduler::set_source_down(SourceId s, bool down, TimePoint now,
                                const verdict::Classification& why) {
  advance(now);
  if (s >= sources_.size()) return;
  if (down) down_result_ = why;
  if (down == bool(down_mask_ & bit(s))) return;
  down_mask_ ^= bit(s);
  // Every group is looked at again (a rare event): down, addresses pinned to s lose the pin and
  // an MX group left without a source ends its queue; up, groups without a usable source resume.
  for (GroupId g = 0; g < groups_.size(); ++g)
    activate_group(g);
}

void Scheduler::on_session_ended(SessionId sid, TimePoint now, SessionEnd how) {
  advance(now);
  now = last_now_;
  Session* ses = session_of(sid);
  if (!ses) return;
  if (ses->block_pending) apply_block(*ses, ses->pending_block, now);
  while (ses->items.tail != kNone)  // from the back, each to the front: order kept
    requeue(ItemId{ses->items.tail, items_[ses->items.tail].gen}, now);
  if (how == SessionEnd::ConnectFailed) backoff_signal(*ses, now, "connect_failed");
  if (how == SessionEnd::SourceFailed) ses->decided = false;  // no clean-session credit either
  const GroupId g = ses->group;
  const DomainId d = ses->domain;
  Group& G = groups_[g];
  Domain& D = domains_[d];
  --G.sessions;
  --D.sessions;
  --G.per_source[ses->source].sessions;
  --open_sessions_;
  const bool clean = !ses->trouble && ses->decided;
  if (clean) sources_[ses->source].warm.on_clean_session();
  if (limits_->session_ended(g, d, clean, now)) {  // the group's rates are back to the policy's
    SchedEvent e;
    e.kind = SchedEvent::Kind::Recovered;
    e.group = g;
    e.source = ses->source;
    e.aimd = limits_->group_view(g, now).aimd;
    add_event(std::move(e));
  }
  ses->live = false;
  ++ses->gen;
  free_sessions_.push_back(sid.index);
  if (D.cap_wait) {
    D.cap_wait = false;
    activate_domain(d);
  }
  if (G.cap_wait) {
    G.cap_wait = false;
    if (G.wake.valid()) wheel_.cancel(G.wake);
    G.wake = {};
    activate_group(g);
  }
}

}  // namespace mxp::sched
