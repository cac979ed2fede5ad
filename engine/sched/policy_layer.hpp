// The policy's private vocabulary, shared by the files of engine/sched that read and build it:
// the key table (policy_keys.cpp: where each key may appear, what it holds, what it sets), one
// document's settings as read (Layer, filled in by policy_toml.cpp), and PolicyBuilder, which
// resolves the layers into a Policy (policy.cpp). Private to engine/sched.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "sched/policy.hpp"

namespace mxp::sched {

namespace detail {

// Everything a key can set. Group and domain settings are resolved per provider / domain;
// the rest is global.
struct All {
  GroupSettings group;
  DomainSettings domain;
  uint32_t max_sessions = 200;
  bool builtin_providers = true;
  WarmupSettings warmup;
};

// Choice: one of the strings listed in the key's `unit`, "a|b|c"; the value is its index.
// Text: a string, TextList: a list of them; the key's `unit` says which strings are valid
// ("host", "sender", "source").
enum class Kind : uint8_t {
  Count,
  Number,
  Duration,
  DurationList,
  Bool,
  Shares,
  Choice,
  Text,
  TextList
};
using Where = PolicyKeyInfo::Where;

struct Value {
  uint64_t count = 0;
  double number = 0;
  bool flag = false;
  Duration duration{};
  std::vector<Duration> durations;
  std::vector<double> numbers;
  std::string text;
  std::vector<std::string> texts;
};

struct KeyDef {
  std::string name;
  Where where;
  Kind kind;
  double min, max;   // Count / Number: value range; Duration(List): seconds range
  std::string unit;  // for messages: "per second; 0 = unlimited"
  std::function<void(All&, const Value&)> apply;
};

// The key table, made once; find_key: the key named `name` ("per_mx.sessions"), or null.
const std::vector<KeyDef>& keys();
const KeyDef* find_key(std::string_view name);

// One key set in one table of one document.
struct Set {
  const KeyDef* key;
  Value value;
};

struct ProviderDecl {
  std::string name;
  std::vector<std::string> patterns;
  std::vector<Set> sets;
  std::string source;
  uint32_t line = 0, column = 0;
};

struct DomainDecl {
  std::string name;
  std::vector<Set> sets;
  std::string source;
  uint32_t line = 0, column = 0;
};

// What one document says.
struct Layer {
  std::vector<Set> global;  // [global] and [warmup]
  std::vector<Set> defaults;
  std::vector<ProviderDecl> providers;
  std::vector<DomainDecl> domains;
};

// Sets the keys of `sets` in `a`, in order.
void apply(All& a, const std::vector<Set>& sets);

// Code defaults for what the built-in document does not say (it says everything today).
All code_defaults();

}  // namespace detail

// Assembles a Policy from layers; friend of Policy.
struct PolicyBuilder {
  static core::Expected<Policy, PolicyError> build(const std::vector<const detail::Layer*>& layers,
                                                   bool builtin_providers_layer0);

  template <class Decl>
  static core::Unexpected<PolicyError> err(const Decl& d, std::string key, std::string message);
};

}  // namespace mxp::sched
