// Building a Policy: the layers (code defaults < built-in document < user documents) resolved
// into settings per provider and per domain override, all at load time so that lookups while
// scheduling are a hash probe; clashes and bounds refused with the position of the culprit
// (PolicyBuilder); and those lookups. Reading documents is policy_toml.cpp, the key table
// policy_keys.cpp, the built-in document policy_builtin.cpp.
#include "sched/policy.hpp"

#include <algorithm>
#include <unordered_map>

#include "core/strings.hpp"
#include "sched/policy_layer.hpp"

namespace mxp::sched {

namespace {

using core::lower;
using detail::All;
using detail::apply;
using detail::code_defaults;
using detail::Layer;
using detail::ProviderDecl;

}  // namespace

// Bounds on what documents (a file, PUT /v1/policy, live group changes) may declare.
constexpr size_t kMaxProviders = 1024;
constexpr size_t kMaxDomainSettings = size_t{1} << 19;

template <class Decl>
core::Unexpected<PolicyError> PolicyBuilder::err(const Decl& d, std::string key,
                                                 std::string message) {
  PolicyError e;
  e.source = d.source;
  e.line = d.line;
  e.column = d.column;
  e.key = std::move(key);
  e.message = std::move(message);
  return core::unexpected(std::move(e));
}

core::Expected<Policy, PolicyError> PolicyBuilder::build(const std::vector<const Layer*>& layers,
                                                         bool builtin_providers_layer0) {
  All base = code_defaults();
  for (const Layer* l : layers)
    apply(base, l->global);
  for (const Layer* l : layers)
    apply(base, l->defaults);

  Policy p;
  p.max_sessions_ = base.max_sessions;
  p.warmup_ = base.warmup;
  p.group_defaults_ = base.group;
  p.domain_defaults_ = base.domain;

  // Providers: later layers replace same-named ones of earlier layers (found by name in a
  // hash: a scan per provider made thousands of them quadratic).
  std::vector<const ProviderDecl*> decls;
  std::unordered_map<std::string_view, size_t> by_name;
  for (size_t li = 0; li < layers.size(); ++li) {
    if (li == 0 && builtin_providers_layer0 && !base.builtin_providers) continue;
    for (const auto& d : layers[li]->providers) {
      const auto [same, fresh] = by_name.emplace(d.name, decls.size());
      if (!fresh) {
        if (li > 0 && decls[same->second]->source == d.source)
          return err(d, "provider." + d.name, "provider defined twice");
        decls[same->second] = &d;
      } else {
        if (decls.size() >= kMaxProviders)
          return err(d, "provider." + d.name,
                     "more than " + std::to_string(kMaxProviders) + " providers");
        decls.push_back(&d);
      }
    }
  }
  for (const ProviderDecl* d : decls) {
    All a = base;
    apply(a, d->sets);
    const auto idx = static_cast<uint32_t>(p.providers_.size());
    p.providers_.push_back({d->name, d->patterns, a.group, a.domain});
    p.provider_names_.emplace(d->name, idx);
    for (const auto& pat : d->patterns) {
      const bool wild = pat.rfind("*.", 0) == 0;
      auto& index = wild ? p.suffixes_ : p.exact_;
      const std::string key = wild ? pat.substr(1) : pat;  // "*.google.com" -> ".google.com"
      auto [it, fresh] = index.emplace(key, idx);
      if (!fresh)
        return err(*d, "provider." + d->name + ".match",
                   "pattern \"" + pat + "\" is already matched by provider." +
                       p.providers_[it->second].name);
    }
  }

  // Domain overrides, resolved against every provider (and none): bounded, as each one
  // costs a DomainSettings per provider.
  for (const Layer* l : layers) {
    for (const auto& d : l->domains) {
      if ((p.domain_overrides_.size() + 1) * (p.providers_.size() + 1) > kMaxDomainSettings)
        return err(d, "domain.\"" + d.name + "\"",
                   "too many domain overrides for " + std::to_string(p.providers_.size()) +
                       " providers (at most " + std::to_string(kMaxDomainSettings) +
                       " domain x provider pairs)");
      if (p.domain_index_.count(d.name))
        return err(d, "domain.\"" + d.name + "\"", "domain defined twice");
      Policy::DomainOverride o;
      for (size_t i = 0; i <= p.providers_.size(); ++i) {
        All a = base;
        if (i < p.providers_.size()) a.domain = p.providers_[i].domain;
        apply(a, d.sets);
        o.by_provider.push_back(a.domain);
      }
      p.domain_index_.emplace(d.name, static_cast<uint32_t>(p.domain_overrides_.size()));
      p.domain_overrides_.push_back(std::move(o));
    }
  }
  return p;
}

std::string PolicyError::to_string() const {
  std::string s = source;
  if (line) s += ":" + std::to_string(line) + ":" + std::to_string(column);
  s += ": ";
  if (!key.empty()) s += key + ": ";
  s += message;
  return s;
}

std::optional<uint32_t> Policy::provider_for_mx(std::string_view host) const {
  if (providers_.empty()) return std::nullopt;
  std::string h = lower(host);
  if (!h.empty() && h.back() == '.') h.pop_back();
  if (auto it = exact_.find(h); it != exact_.end()) return it->second;
  // Longest suffix first: ".aspmx.l.google.com" before ".google.com".
  for (size_t i = h.find('.'); i != std::string::npos; i = h.find('.', i + 1)) {
    if (auto it = suffixes_.find(std::string_view(h).substr(i)); it != suffixes_.end())
      return it->second;
  }
  return std::nullopt;
}

std::optional<uint32_t> Policy::provider_by_name(std::string_view name) const {
  auto it = provider_names_.find(name);
  if (it == provider_names_.end()) return std::nullopt;
  return it->second;
}

const GroupSettings& Policy::group_settings(std::optional<uint32_t> provider) const {
  if (provider && *provider < providers_.size()) return providers_[*provider].group;
  return group_defaults_;
}

const DomainSettings& Policy::domain_settings(std::string_view domain,
                                              std::optional<uint32_t> provider) const {
  const bool has = provider && *provider < providers_.size();
  if (!domain_index_.empty()) {
    auto it = domain_index_.find(domain);
    if (it == domain_index_.end() &&
        std::any_of(domain.begin(), domain.end(), [](char c) { return c >= 'A' && c <= 'Z'; }))
      it = domain_index_.find(lower(domain));
    if (it != domain_index_.end()) {
      const auto& o = domain_overrides_[it->second];
      return o.by_provider[has ? *provider : providers_.size()];
    }
  }
  return has ? providers_[*provider].domain : domain_defaults_;
}

}  // namespace mxp::sched
