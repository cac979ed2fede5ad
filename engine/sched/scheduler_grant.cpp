// The scheduler's decisions: which MX group, source IP and domain get the next session
// (deficit round-robin over the groups with work and room), which addresses go in it, and the
// refills of an open session.
#include "sched/scheduler_detail.hpp"

#include <algorithm>
#include <bit>

namespace mxp::sched {

using detail::bit;

// ---------------------------------------------------------------------------------------------
// Decisions

bool Scheduler::next_ready(TimePoint now, Grant& out) {
  advance(now);
  now = last_now_;
  out.items.clear();
  while (!active_.empty()) {
    if (open_sessions_ >= max_sessions()) return false;
    if (try_group(active_.head, now, out)) return true;
  }
  return false;
}

// Moves the items of every domain in the group's pin ring s (s is blocked for the group) to
// their domains' unpinned queues: "retried from another IP".
void Scheduler::unpin_all(Group& G, SourceId s, TimePoint now) {
  (void)now;
  Ring& r = G.pin_rings[s];
  while (!r.empty()) {
    const DomainId d = r.head;
    Domain& D = domains_[d];
    ItemList& l = D.pinned[s];
    while (l.tail != kNone) {  // from the back, pushing to the front: order kept
      const uint32_t i = l.tail;
      list_erase(l, i);
      --D.pinned_total;
      items_[i].pinned = 0;
      list_push_front(D.any, i);
      ++stats_.rotations;
    }
    D.pinned_mask &= ~bit(s);
    domain_ring_update(d);  // leaves pin ring s, joins the any ring
  }
}

// Every source IP is blocked for this group (or down): its due addresses end with c.
void Scheduler::fail_group(GroupId g, const verdict::Classification& c) {
  Group& G = groups_[g];
  auto fail_domain = [&](DomainId d) {
    Domain& D = domains_[d];
    auto drain = [&](ItemList& l) {
      while (l.head != kNone) {
        const uint32_t i = l.head;
        unlink_item(i);
        add_final(i, c);
      }
    };
    drain(D.any);
    for (auto& l : D.pinned)
      drain(l);
    domain_ring_update(d);
  };
  while (!G.any_ring.empty())
    fail_domain(G.any_ring.head);
  while (G.pin_mask) {
    const auto s = static_cast<uint32_t>(std::countr_zero(G.pin_mask));
    fail_domain(G.pin_rings[s].head);
  }
  deactivate_group(g);
}

bool Scheduler::try_group(GroupId g, TimePoint now, Grant& out) {
  Group& G = groups_[g];
  if (!group_has_work(G)) {
    deactivate_group(g);
    return false;
  }
  // MX-group level (the remote limits): sessions (AIMD window) and buckets.
  if (const Admission a = limits_->admit_group(g, now); !a.open()) {
    limits_->wants(g, kNone, {1, 1, 1}, now);
    const bool timed = a.kind == Admission::Kind::Until;
    park_group(g, timed ? std::optional(a.until) : std::nullopt, !timed);
    return false;
  }
  // Deficit round-robin: a turn starts with a quantum of recipients.
  if (G.deficit <= 0) {
    G.deficit += quantum_ * G.settings->weight;
    if (G.deficit <= 0) {
      active_.head = G.active_link.next;
      return false;
    }
  }
  // Source IP. First the blocked ones: addresses pinned to them (greylisting) lose the pin,
  // so that every source left has work whenever the group has; all blocked ends the group's
  // queue. Then round-robin over the others for one with room and tokens.
  // A source that is down (a dead proxy) counts as blocked for every group, but ends the
  // addresses with its own reason.
  const auto S = static_cast<uint32_t>(sources_.size());
  const uint64_t all = S == 64 ? ~uint64_t{0} : bit(S) - 1;
  const uint64_t by_group = blocked_mask(G, now);
  const uint64_t blocked = by_group | (down_mask_ & all);
  if (blocked == all) {
    const verdict::Classification c = by_group == all ? G.last_block : down_result_;
    fail_group(g, c);
    return false;
  }
  for (uint64_t pins = G.pin_mask & blocked; pins; pins &= pins - 1)
    unpin_all(G, static_cast<SourceId>(std::countr_zero(pins)), now);
  SourceId pick = kNone;
  std::optional<TimePoint> wake;
  bool on_sessions = false;
  for (uint32_t n = 0; n < S; ++n) {
    const SourceId s = (G.rr + n) % S;
    if ((blocked & bit(s)) || !has_work_for(G, s)) continue;
    refresh_source_group(G, s, now);
    SourceGroup& sg = G.per_source[s];
    if (sg.sessions >= source_session_limit(G, s)) {
      on_sessions = true;
      continue;
    }
    if (!sg.connect.can_take(1, now) || !sg.rcpt.can_take(1, now)) {
      const TimePoint t = std::max(sg.connect.ready_at(1, now), sg.rcpt.ready_at(1, now));
      wake = wake ? std::min(*wake, t) : t;
      continue;
    }
    pick = s;
    break;
  }
  if (pick == kNone) {
    if (!group_has_work(G) || (!wake && !on_sessions)) {
      deactivate_group(g);
      return false;
    }
    park_group(g, wake, on_sessions);
    return false;
  }
  G.rr = (pick + 1) % S;
  SourceGroup& sg = G.per_source[pick];

  // Domain: the head of the pinned lane for this source, else of the unpinned lane.
  const bool pinned_lane = G.pin_mask & bit(pick);
  Ring& lane = pinned_lane ? G.pin_rings[pick] : G.any_ring;
  const DomainId d = lane.head;
  Domain& D = domains_[d];
  const DomainSettings& ds = *D.settings;
  if (const Admission a = limits_->admit_domain(d, now); !a.open()) {
    limits_->wants(g, d, {1, 1, 1}, now);
    park_domain(d, a.kind == Admission::Kind::Until ? std::optional(a.until) : std::nullopt);
    return false;
  }

  // Grant: up to K recipients, K bounded by the session budget (recipients, and rejections so
  // that even an all-rejected batch stays under the error limit) and every RCPT bucket.
  // A remote limit that gives fewer RCPT tokens than the session could use hears how many more.
  const uint32_t budget = std::min(ds.recipients, ds.rejections);
  const uint32_t remote = limits_->rcpt_available(g, d, now);
  if (const uint32_t want = std::min(budget, D.ready_for(pick)); remote < want)
    limits_->wants(g, d, {0, 0, want - remote}, now);
  const uint32_t k = std::min({budget, remote, sg.rcpt.available(now)});
  uint32_t si;
  if (!free_sessions_.empty()) {
    si = free_sessions_.back();
    free_sessions_.pop_back();
  } else {
    si = static_cast<uint32_t>(sessions_.size());
    sessions_.emplace_back();
  }
  Session& ses = sessions_[si];
  const uint32_t gen = ses.gen;
  ses = Session{};
  ses.gen = gen;
  ses.live = true;
  ses.group = g;
  ses.domain = d;
  ses.source = pick;
  const SessionId sid{si, gen};

  out.session = sid;
  out.group = g;
  out.domain = d;
  out.source = pick;
  const uint32_t n = take_items(D, pick, k, ses, sid, out.items);
  limits_->session_opened(g, d, n, now);
  sg.connect.try_take(1, now);
  sg.rcpt.try_take(n, now);
  ++D.sessions;
  ++G.sessions;
  ++sg.sessions;
  ++open_sessions_;
  ++stats_.grants;

  // The domain goes to the back of the lane it was served from (if still there).
  if (lane.head == d) lane.head = pinned_lane ? D.pin_links[pick].next : D.any_link.next;
  domain_ring_update(d);
  G.deficit -= n;
  if (G.deficit <= 0 && active_.head == g) active_.head = G.active_link.next;
  return true;
}

uint32_t Scheduler::take_items(Domain& D, SourceId s, uint32_t k, Session& ses, SessionId sid,
                               std::vector<ItemRef>& out) {
  uint32_t n = 0;
  auto take = [&](ItemList& l) {
    while (n < k && l.head != kNone) {
      const uint32_t i = l.head;
      unlink_item(i);
      Item& it = items_[i];
      it.state = ItemState::InFlight;
      it.session = sid.index;
      list_push_back(ses.items, i);
      out.push_back({ItemId{i, it.gen}, it.key, it.tries});
      ++n;
    }
  };
  if (D.pinned_mask & bit(s)) take(D.pinned[s]);
  take(D.any);
  D.in_flight += n;
  ses.outstanding += n;
  ses.granted += n;
  stats_.in_flight += n;
  return n;
}

size_t Scheduler::refill(SessionId sid, TimePoint now, std::vector<ItemRef>& out) {
  advance(now);
  now = last_now_;
  Session* ses = session_of(sid);
  if (!ses) return 0;
  Domain& D = domains_[ses->domain];
  if (D.group != ses->group) return 0;
  Group& G = groups_[ses->group];
  if (source_blocked(G, ses->source, now) || source_down(ses->source)) return 0;
  const DomainSettings& ds = *D.settings;
  if (ses->granted >= ds.recipients || ses->rejections + ses->outstanding >= ds.rejections)
    return 0;
  refresh_source_group(G, ses->source, now);
  SourceGroup& sg = G.per_source[ses->source];
  const uint32_t budget =
      std::min(ds.recipients - ses->granted, ds.rejections - ses->rejections - ses->outstanding);
  const uint32_t remote = limits_->rcpt_available(ses->group, ses->domain, now);
  if (const uint32_t want = std::min(budget, D.ready_for(ses->source)); remote < want)
    limits_->wants(ses->group, ses->domain, {0, 0, want - remote}, now);
  const uint32_t k = std::min({budget, remote, sg.rcpt.available(now)});
  if (k == 0) return 0;
  const uint32_t n = take_items(D, ses->source, k, *ses, sid, out);
  if (n == 0) return 0;
  limits_->take_rcpts(ses->group, ses->domain, n, now);
  sg.rcpt.try_take(n, now);
  ++stats_.refills;
  domain_ring_update(ses->domain);
  return n;
}

}  // namespace mxp::sched
