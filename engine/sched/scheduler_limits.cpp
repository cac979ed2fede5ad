// The scheduler's limits: the policy resolved into the buckets of each (source IP, MX group),
// blocks, the settings of each MX group and domain handed to the RemoteLimits (and its word that
// it has more), and the policy swap (SIGHUP) that re-resolves them all.
#include "sched/scheduler_detail.hpp"

#include <algorithm>

namespace mxp::sched {

using detail::scaled_burst;

// ---------------------------------------------------------------------------------------------
// Limits

void Scheduler::configure_group(GroupId g, TimePoint now) {
  Group& G = groups_[g];
  G.settings = &policy_->group_settings(G.provider_index);
  // The group's source pool. A pool that names none of our sources is ignored rather than
  // starving the group: the commands refuse such a policy at start-up and on reload.
  G.outside = 0;
  if (!G.settings->sources.empty()) {
    uint64_t inside = 0;
    for (uint32_t s = 0; s < sources_.size(); ++s)
      if (std::find(G.settings->sources.begin(), G.settings->sources.end(), sources_[s].name) !=
          G.settings->sources.end())
        inside |= uint64_t{1} << s;
    if (inside != 0) G.outside = ~inside;
  }
  // The same key on every node: a provider by name, else the MX host (as in group_by_name_).
  const std::string key = G.provider ? "provider:" + G.name : G.name;
  limits_->configure_group(g, key, *G.settings, now);
  ++G.cfg_epoch;
}

void Scheduler::configure_domain(DomainId d, TimePoint now) {
  Domain& D = domains_[d];
  const auto provider = D.group == kNone ? std::nullopt : groups_[D.group].provider_index;
  D.settings = &policy_->domain_settings(D.name, provider);
  limits_->configure_domain(d, D.name, D.settings->domain, now);
}

// Wakes what is parked: a group or domain parked on something else only looks again and parks
// again, so waking too much costs one pass, never a wrong grant.
void Scheduler::remote_limits_changed(GroupId g, DomainId d, TimePoint now) {
  advance(now);
  if (g < groups_.size()) {
    Group& G = groups_[g];
    if (G.wake.valid()) wheel_.cancel(G.wake);
    G.wake = {};
    G.cap_wait = false;
    activate_group(g);
  }
  if (d < domains_.size() && !domains_[d].name.empty()) {
    Domain& D = domains_[d];
    if (D.wake.valid()) wheel_.cancel(D.wake);
    D.wake = {};
    D.cap_wait = false;
    activate_domain(d);
  }
}

// (Re)derives a (source, group)'s buckets when the group's settings or the source's warm-up
// share changed since they were last set.
void Scheduler::refresh_source_group(Group& G, SourceId s, TimePoint now) {
  SourceGroup& sg = G.per_source[s];
  Warmup& w = sources_[s].warm;
  const double share = w.share(now);
  if (sg.cfg_epoch == G.cfg_epoch && sg.warm_epoch == w.epoch() && sg.share == share) return;
  const LevelLimits& l = G.settings->source;
  sg.share = share;
  sg.connect.configure(l.connect.rate * share, scaled_burst(l.connect.burst, share), now);
  sg.rcpt.configure(l.rcpt.rate * share, scaled_burst(l.rcpt.burst, share), now);
  sg.cfg_epoch = G.cfg_epoch;
  sg.warm_epoch = w.epoch();
}

// ---------------------------------------------------------------------------------------------
// Policy swap

void Scheduler::set_policy(std::shared_ptr<const Policy> policy, TimePoint now) {
  advance(now);
  now = last_now_;
  if (!policy) return;
  policy_ = std::move(policy);
  const DomainSettings& dd = policy_->domain_settings("", std::nullopt);
  quantum_ = std::max<uint32_t>(1, std::min(dd.recipients, dd.rejections));
  // New lookups follow the new patterns; a host that has a group of its own keeps it (a new
  // provider pattern for it changes its settings below, it does not split it in two).
  std::erase_if(group_by_host_, [this](const auto& kv) { return groups_[kv.second].provider; });
  for (auto& s : sources_)
    s.warm.set_settings(policy_->warmup(), now);
  for (GroupId g = 0; g < groups_.size(); ++g) {
    Group& G = groups_[g];
    G.provider_index =
        G.provider ? policy_->provider_by_name(G.name) : policy_->provider_for_mx(G.host);
    configure_group(g, now);
    if (G.wake.valid()) wheel_.cancel(G.wake);
    G.wake = {};
    G.cap_wait = false;
  }
  for (DomainId d = 0; d < domains_.size(); ++d) {
    Domain& D = domains_[d];
    configure_domain(d, now);
    if (D.wake.valid()) wheel_.cancel(D.wake);
    D.wake = {};
    D.cap_wait = false;
    domain_ring_update(d);
  }
  for (GroupId g = 0; g < groups_.size(); ++g)
    activate_group(g);
}

}  // namespace mxp::sched
