// The policy's key table: every key a document may set, where it may appear (global, warm-up,
// MX group or recipient domain), what it holds (kind and range, for messages) and what it sets;
// the code defaults under the built-in document; and policy_keys(), the list docs/policy.md is
// checked against.
#include "sched/policy_layer.hpp"

#include <chrono>

namespace mxp::sched {

namespace detail {

using namespace std::chrono_literals;

namespace {

using LevelOf = LevelLimits& (*)(All&);

void add_level(std::vector<KeyDef>& t, const std::string& prefix, Where where, LevelOf get) {
  t.push_back({prefix + ".sessions", where, Kind::Count, 1, 1e6, "", [get](All& a, const Value& v) {
                 get(a).sessions = static_cast<uint32_t>(v.count);
               }});
  t.push_back({prefix + ".connect_rate", where, Kind::Number, 0, 1e6, "per second; 0 = unlimited",
               [get](All& a, const Value& v) { get(a).connect.rate = v.number; }});
  t.push_back(
      {prefix + ".connect_burst", where, Kind::Count, 1, 1e6, "",
       [get](All& a, const Value& v) { get(a).connect.burst = static_cast<uint32_t>(v.count); }});
  t.push_back({prefix + ".rcpt_rate", where, Kind::Number, 0, 1e6, "per second; 0 = unlimited",
               [get](All& a, const Value& v) { get(a).rcpt.rate = v.number; }});
  t.push_back(
      {prefix + ".rcpt_burst", where, Kind::Count, 1, 1e6, "",
       [get](All& a, const Value& v) { get(a).rcpt.burst = static_cast<uint32_t>(v.count); }});
}

std::vector<KeyDef> make_keys() {
  std::vector<KeyDef> t;
  // [global]
  t.push_back({"global.max_sessions", Where::Global, Kind::Count, 1, 1e6, "",
               [](All& a, const Value& v) { a.max_sessions = static_cast<uint32_t>(v.count); }});
  t.push_back({"global.builtin_providers", Where::Global, Kind::Bool, 0, 0, "",
               [](All& a, const Value& v) { a.builtin_providers = v.flag; }});
  // [warmup]
  t.push_back({"warmup.enabled", Where::Warmup, Kind::Bool, 0, 0, "",
               [](All& a, const Value& v) { a.warmup.enabled = v.flag; }});
  t.push_back({"warmup.shares", Where::Warmup, Kind::Shares, 0, 1, "",
               [](All& a, const Value& v) { a.warmup.shares = v.numbers; }});
  t.push_back({"warmup.step", Where::Warmup, Kind::Duration, 0.001, 365.0 * 86400, "",
               [](All& a, const Value& v) { a.warmup.step = v.duration; }});
  t.push_back(
      {"warmup.min_sessions", Where::Warmup, Kind::Count, 0, 1e9, "",
       [](All& a, const Value& v) { a.warmup.min_sessions = static_cast<uint32_t>(v.count); }});
  // MX group level
  add_level(t, "per_mx", Where::Group, [](All& a) -> LevelLimits& { return a.group.mx; });
  add_level(t, "per_source", Where::Group, [](All& a) -> LevelLimits& { return a.group.source; });
  t.push_back({"backoff.decrease", Where::Group, Kind::Number, 0.01, 0.99, "",
               [](All& a, const Value& v) { a.group.backoff.decrease = v.number; }});
  t.push_back({"backoff.min_factor", Where::Group, Kind::Number, 0.001, 1, "",
               [](All& a, const Value& v) { a.group.backoff.min_factor = v.number; }});
  t.push_back({"backoff.rate_increase", Where::Group, Kind::Number, 0.0001, 1, "",
               [](All& a, const Value& v) { a.group.backoff.rate_increase = v.number; }});
  t.push_back({"backoff.window_increase", Where::Group, Kind::Number, 0.01, 100, "",
               [](All& a, const Value& v) { a.group.backoff.window_increase = v.number; }});
  t.push_back({"backoff.holdoff", Where::Group, Kind::Duration, 0, 3600, "",
               [](All& a, const Value& v) { a.group.backoff.holdoff = v.duration; }});
  t.push_back({"backoff.initial_sessions", Where::Group, Kind::Count, 1, 1e6, "",
               [](All& a, const Value& v) {
                 a.group.backoff.initial_sessions = static_cast<uint32_t>(v.count);
               }});
  t.push_back({"weight", Where::Group, Kind::Count, 1, 1000, "",
               [](All& a, const Value& v) { a.group.weight = static_cast<uint32_t>(v.count); }});
  t.push_back({"block_cooldown", Where::Group, Kind::Duration, 0, 30.0 * 86400, "",
               [](All& a, const Value& v) { a.group.block_cooldown = v.duration; }});
  t.push_back({"sources", Where::Group, Kind::TextList, 0, 0, "source",
               [](All& a, const Value& v) { a.group.sources = v.texts; }});
  // Recipient domain level
  add_level(t, "per_domain", Where::Domain, [](All& a) -> LevelLimits& { return a.domain.domain; });
  t.push_back(
      {"session.recipients", Where::Domain, Kind::Count, 1, 1000, "",
       [](All& a, const Value& v) { a.domain.recipients = static_cast<uint32_t>(v.count); }});
  t.push_back({"session.recipients_per_transaction", Where::Domain, Kind::Count, 0, 1000,
               "0 = session.recipients", [](All& a, const Value& v) {
                 a.domain.recipients_per_transaction = static_cast<uint32_t>(v.count);
               }});
  t.push_back(
      {"session.rejections", Where::Domain, Kind::Count, 1, 1000, "",
       [](All& a, const Value& v) { a.domain.rejections = static_cast<uint32_t>(v.count); }});
  t.push_back({"retry.schedule", Where::Domain, Kind::DurationList, 0.001, 30.0 * 86400, "",
               [](All& a, const Value& v) { a.domain.retry_schedule = v.durations; }});
  t.push_back({"retry.attempts", Where::Domain, Kind::Count, 1, 100, "",
               [](All& a, const Value& v) { a.domain.attempts = static_cast<uint32_t>(v.count); }});
  for (int s = 0; s < smtp::kStageCount; ++s) {
    t.push_back({"timeouts." + std::string(smtp::kStageNames[s]), Where::Domain, Kind::Duration,
                 0.001, 3600, "", [s](All& a, const Value& v) {
                   a.domain.timeouts[s] =
                       std::chrono::duration_cast<std::chrono::milliseconds>(v.duration);
                 }});
  }
  t.push_back({"catch_all_probe", Where::Domain, Kind::Bool, 0, 0, "",
               [](All& a, const Value& v) { a.domain.catch_all_probe = v.flag; }});
  t.push_back({"quirks.rcpt_accepts_all", Where::Domain, Kind::Bool, 0, 0, "",
               [](All& a, const Value& v) { a.domain.rcpt_accepts_all = v.flag; }});
  std::string modes;
  for (auto m : smtp::kStartTlsModeNames)
    modes += (modes.empty() ? "" : "|") + std::string(m);
  t.push_back({"starttls", Where::Domain, Kind::Choice, 0, 0, modes, [](All& a, const Value& v) {
                 a.domain.starttls = static_cast<smtp::StartTlsMode>(v.count);
               }});
  // The sender identity (docs/identity.md).
  t.push_back({"helo", Where::Domain, Kind::Text, 0, 0, "host",
               [](All& a, const Value& v) { a.domain.helo = v.text; }});
  t.push_back({"mail_from", Where::Domain, Kind::Text, 0, 0, "sender",
               [](All& a, const Value& v) { a.domain.mail_from = v.text; }});
  return t;
}

}  // namespace

const std::vector<KeyDef>& keys() {
  static const std::vector<KeyDef> k = make_keys();
  return k;
}

const KeyDef* find_key(std::string_view name) {
  for (const auto& k : keys())
    if (k.name == name) return &k;
  return nullptr;
}

void apply(All& a, const std::vector<Set>& sets) {
  for (const auto& s : sets)
    s.key->apply(a, s.value);
}

// Code defaults for what the built-in document does not say (it says everything today).
All code_defaults() {
  All a;
  a.domain.retry_schedule = {1min, 5min, 15min, 30min};
  a.warmup.shares = {0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0};
  return a;
}

}  // namespace detail

using detail::keys;

std::vector<PolicyKeyInfo> policy_keys() {
  std::vector<PolicyKeyInfo> out;
  for (const auto& k : keys())
    out.push_back({k.name, k.where});
  out.push_back({"match", PolicyKeyInfo::Where::Provider});
  return out;
}

}  // namespace mxp::sched
