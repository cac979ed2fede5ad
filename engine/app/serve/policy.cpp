// `mxprobe serve`: the policy read (GET /v1/policy) and changed live (PUT, set_group_policy,
// SIGHUP).
#include "app/serve/service.hpp"

namespace mxp::app::serve_impl {

json Service::policy_json() const {
  const sched::Policy& p = verifier_.scheduler().policy();
  json providers = json::array();
  for (uint32_t i = 0; i < p.provider_count(); ++i)
    providers.push_back({{"name", p.provider_name(i)},
                         {"match", p.provider_patterns(i)},
                         {"group", group_settings_json(p.group_settings(i))},
                         {"domain", domain_settings_json(p.domain_settings("", i))}});
  json groups = json::object();
  for (const auto& [g, keys] : live_groups_)
    groups[g] = keys;
  return {{"file", e_.options.policy_file},
          {"overrides", overrides_},
          {"live_groups", groups},
          {"effective",
           {{"max_sessions", p.max_sessions()},
            {"defaults",
             {{"group", group_settings_json(p.group_settings(std::nullopt))},
              {"domain", domain_settings_json(p.domain_settings("", std::nullopt))}}},
            {"providers", providers}}}};
}

// Builds the policy from file + command line + `overrides` + one [provider] per live group
// change, and swaps it in; on error nothing changes.
bool Service::apply_overrides(const std::string& overrides,
                              const std::map<std::string, json>& groups, std::string& err) {
  std::vector<sched::PolicySource> docs;
  if (!e_.options.policy_file.empty()) {
    auto text = sched::read_policy_file(e_.options.policy_file);
    if (!text) {
      err = text.error().to_string();
      return false;
    }
    docs.push_back({std::move(*text), e_.options.policy_file});
  }
  docs.push_back({policy_overrides(e_.options), "<command line>"});
  docs.push_back({overrides, "<PUT /v1/policy>"});
  std::string live;
  int n = 0;
  for (const auto& [host, keys] : groups) {
    live += "[provider.live_" + std::to_string(n++) + "]\nmatch = [" + json(host).dump() + "]\n";
    for (const auto& [k, v] : keys.items())
      live += k + " = " + v.dump() + "\n";
  }
  docs.push_back({live, "<live group changes>"});
  auto p = sched::build_policy(docs);
  if (!p) {
    err = p.error().to_string();
    return false;
  }
  overrides_ = overrides;
  live_groups_ = groups;
  verifier_.set_policy(std::make_shared<const sched::Policy>(std::move(*p)));
  return true;
}

}  // namespace mxp::app::serve_impl
