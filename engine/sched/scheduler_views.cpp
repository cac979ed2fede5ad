// The scheduler's visible state: per-group and per-(source, group) views, warm-up state, blocks
// and counters, for logs, metrics and the console.
#include "sched/scheduler_detail.hpp"

namespace mxp::sched {

// ---------------------------------------------------------------------------------------------
// State

GroupView Scheduler::group_view(GroupId g, TimePoint now) const {
  const Group& G = groups_[g];
  GroupView v;
  v.name = G.name;
  v.provider = G.provider;
  v.sessions = G.sessions;
  const RemoteGroupView r = limits_->group_view(g, now);
  v.session_limit = r.session_limit;
  v.aimd = r.aimd;
  v.connect_rate = r.connect_rate;
  v.rcpt_rate = r.rcpt_rate;
  v.connect_tokens = r.connect_tokens;
  v.connect_burst = r.connect_burst;
  v.rcpt_tokens = r.rcpt_tokens;
  v.rcpt_burst = r.rcpt_burst;
  v.ready = G.ready;
  v.active = G.active_link.linked();
  v.parked_on_timer = G.wake.valid();
  v.parked_on_sessions = G.cap_wait;
  v.deficit = G.deficit;
  return v;
}

SourceGroupView Scheduler::source_group_view(SourceId s, GroupId g, TimePoint now) {
  Group& G = groups_[g];
  refresh_source_group(G, s, now);
  const SourceGroup& sg = G.per_source[s];
  SourceGroupView v;
  v.sessions = sg.sessions;
  v.session_limit = source_session_limit(G, s);
  v.blocked = source_blocked(G, s, now);
  v.blocked_until = sg.blocked_until;
  v.share = sg.share;
  v.connect_rate = sg.connect.rate();
  v.rcpt_rate = sg.rcpt.rate();
  return v;
}

WarmupState Scheduler::warmup_state(SourceId s, TimePoint now) const {
  return sources_[s].warm.state(now);
}

bool Scheduler::blocked(SourceId s, GroupId g, TimePoint now) const {
  return source_blocked(groups_[g], s, now);
}

SchedulerStats Scheduler::stats() const {
  SchedulerStats s = stats_;
  s.sessions = open_sessions_;
  s.groups = groups_.size();
  s.domains = domains_.size() - free_domains_.size();
  s.timers = wheel_.size();
  return s;
}

WaitingSpan Scheduler::waiting_span() const {
  WaitingSpan w;
  for (const Domain& D : domains_)
    for (uint32_t i = D.waiting.head; i != kNone; i = items_[i].next) {
      const auto t = wheel_.when(items_[i].timer);
      if (!t) continue;
      if (w.count == 0 || *t < w.first) w.first = *t;
      if (w.count == 0 || *t > w.last) w.last = *t;
      ++w.count;
    }
  return w;
}

}  // namespace mxp::sched
