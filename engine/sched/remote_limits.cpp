// LocalRemoteLimits: the remote limits kept in this process, exactly as the scheduler enforced
// them before they had a seam of their own (per MX group: session cap within the AIMD window,
// connection and RCPT buckets at per_mx rates times the AIMD factor; per domain: session cap,
// connection and RCPT buckets).
#include "sched/remote_limits.hpp"

namespace mxp::sched {

namespace {

// Refused at the cap until a session ends; else until both buckets hold a token (the later).
inline Admission admit(const auto& c, TimePoint now) {
  if (c.sessions >= c.session_limit) return Admission::event();
  if (c.connect.can_take(1, now) && c.rcpt.can_take(1, now)) return {};
  return Admission::until_time(std::max(c.connect.ready_at(1, now), c.rcpt.ready_at(1, now)));
}

}  // namespace

void LocalRemoteLimits::retune(GroupId g, TimePoint now) {
  Counted& G = groups_[g];
  const GroupState& st = group_state_[g];
  const double f = st.aimd.rate_factor();
  G.session_limit = std::min(st.aimd.limit(), st.mx.sessions);
  G.connect.configure(st.mx.connect.rate * f, st.mx.connect.burst, now);
  G.rcpt.configure(st.mx.rcpt.rate * f, st.mx.rcpt.burst, now);
}

void LocalRemoteLimits::configure_group(GroupId g, std::string_view key, const GroupSettings& s,
                                        TimePoint now) {
  (void)key;
  if (g >= groups_.size()) {
    groups_.resize(g + 1);
    group_state_.resize(g + 1);
  }
  GroupState& st = group_state_[g];
  st.mx = s.mx;
  st.aimd.configure(s.backoff, s.mx.sessions);
  retune(g, now);
}

void LocalRemoteLimits::configure_domain(DomainId d, std::string_view name, const LevelLimits& l,
                                         TimePoint now) {
  (void)name;
  if (d >= domains_.size()) domains_.resize(d + 1);
  Counted& D = domains_[d];
  D.session_limit = l.sessions;
  D.connect.configure(l.connect.rate, l.connect.burst, now);
  D.rcpt.configure(l.rcpt.rate, l.rcpt.burst, now);
}

void LocalRemoteLimits::release_domain(DomainId d) {
  if (d < domains_.size()) domains_[d] = Counted{};
}

Admission LocalRemoteLimits::admit_group(GroupId g, TimePoint now) const {
  return admit(groups_[g], now);
}

Admission LocalRemoteLimits::admit_domain(DomainId d, TimePoint now) const {
  return admit(domains_[d], now);
}

uint32_t LocalRemoteLimits::rcpt_available(GroupId g, DomainId d, TimePoint now) const {
  return std::min(groups_[g].rcpt.available(now), domains_[d].rcpt.available(now));
}

void LocalRemoteLimits::session_opened(GroupId g, DomainId d, uint32_t rcpts, TimePoint now) {
  Counted& G = groups_[g];
  Counted& D = domains_[d];
  G.connect.try_take(1, now);
  D.connect.try_take(1, now);
  G.rcpt.try_take(rcpts, now);
  D.rcpt.try_take(rcpts, now);
  ++G.sessions;
  ++D.sessions;
}

void LocalRemoteLimits::take_rcpts(GroupId g, DomainId d, uint32_t rcpts, TimePoint now) {
  groups_[g].rcpt.try_take(rcpts, now);
  domains_[d].rcpt.try_take(rcpts, now);
}

bool LocalRemoteLimits::session_ended(GroupId g, DomainId d, bool clean, TimePoint now) {
  --groups_[g].sessions;
  --domains_[d].sessions;
  if (!clean) return false;
  const GroupState& st = group_state_[g];
  Aimd& aimd = group_state_[g].aimd;
  const double before = aimd.rate_factor();
  aimd.on_clean();
  // The window grew: the cap may have. The rates are retuned only when the factor moved (a
  // retune keeps the tokens held, but to the nanosecond only up to rounding).
  if (aimd.rate_factor() == before) {
    groups_[g].session_limit = std::min(aimd.limit(), st.mx.sessions);
    return false;
  }
  retune(g, now);
  return aimd.rate_factor() >= 1.0;
}

bool LocalRemoteLimits::backoff(GroupId g, TimePoint now) {
  if (!group_state_[g].aimd.on_backoff(now)) return false;
  retune(g, now);
  return true;
}

RemoteGroupView LocalRemoteLimits::group_view(GroupId g, TimePoint now) const {
  const Counted& G = groups_[g];
  RemoteGroupView v;
  v.session_limit = G.session_limit;
  v.aimd = group_state_[g].aimd.view();
  v.connect_rate = G.connect.rate();
  v.rcpt_rate = G.rcpt.rate();
  if (!G.connect.unlimited()) {
    v.connect_tokens = G.connect.available(now);
    v.connect_burst = G.connect.burst();
  }
  if (!G.rcpt.unlimited()) {
    v.rcpt_tokens = G.rcpt.available(now);
    v.rcpt_burst = G.rcpt.burst();
  }
  return v;
}

}  // namespace mxp::sched
