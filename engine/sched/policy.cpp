// Policy parsing (toml++), validation with file:line:column errors, and resolution of the
// layers: code defaults < built-in document < user document, then provider and domain
// overrides, all resolved at load time so that lookups while scheduling are a hash probe.
#include "sched/policy.hpp"

#include <toml++/toml.h>
#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>

#include "core/strings.hpp"

namespace mxp::sched {

namespace {

using namespace std::chrono_literals;

using core::lower;

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
enum class Kind : uint8_t { Count, Number, Duration, DurationList, Bool, Shares, Choice };
using Where = PolicyKeyInfo::Where;

struct Value {
  uint64_t count = 0;
  double number = 0;
  bool flag = false;
  Duration duration{};
  std::vector<Duration> durations;
  std::vector<double> numbers;
};

struct KeyDef {
  std::string name;
  Where where;
  Kind kind;
  double min, max;   // Count / Number: value range; Duration(List): seconds range
  std::string unit;  // for messages: "per second; 0 = unlimited"
  std::function<void(All&, const Value&)> apply;
};

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
  // Recipient domain level
  add_level(t, "per_domain", Where::Domain, [](All& a) -> LevelLimits& { return a.domain.domain; });
  t.push_back(
      {"session.recipients", Where::Domain, Kind::Count, 1, 1000, "",
       [](All& a, const Value& v) { a.domain.recipients = static_cast<uint32_t>(v.count); }});
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
  return t;
}

const std::vector<KeyDef>& keys() {
  static const std::vector<KeyDef> k = make_keys();
  return k;
}

const KeyDef* find_key(std::string_view name) {
  for (const auto& k : keys())
    if (k.name == name) return &k;
  return nullptr;
}

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

std::string fmt_num(double d) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::fixed);
  return ec == std::errc() ? std::string(buf, end) : std::to_string(d);
}

enum class Scope : uint8_t { Global, Warmup, Defaults, Provider, Domain };

class DocParser {
 public:
  explicit DocParser(std::string source) : source_(std::move(source)) {}

  bool parse(std::string_view text, Layer& out) {
    toml::table root;
    try {
      root = toml::parse(text, source_);
    } catch (const toml::parse_error& e) {
      return fail(e.source(), "", std::string(e.description()));
    }
    for (auto&& [k, node] : root) {
      const std::string name(k.str());
      if (!node.is_table())
        return fail(k.source(), name,
                    "expected a table: [global], [warmup], [defaults], [provider.NAME] or "
                    "[domain.\"NAME\"]");
      const toml::table& t = *node.as_table();
      if (name == "global") {
        if (!walk(t, "global.", name + ".", Scope::Global, out.global)) return false;
      } else if (name == "warmup") {
        if (!walk(t, "warmup.", name + ".", Scope::Warmup, out.global)) return false;
      } else if (name == "defaults") {
        if (!walk(t, "", name + ".", Scope::Defaults, out.defaults)) return false;
      } else if (name == "provider") {
        for (auto&& [pk, pnode] : t) {
          const std::string pname(pk.str());
          const std::string where = "provider." + pname;
          if (!pnode.is_table())
            return fail(pk.source(), where, "expected a table [provider." + pname + "]");
          ProviderDecl p;
          p.name = pname;
          p.source = source_;
          p.line = pk.source().begin.line;
          p.column = pk.source().begin.column;
          bool has_match = false;
          for (auto&& [mk, mnode] : *pnode.as_table()) {
            if (mk.str() != "match") continue;
            has_match = true;
            if (!parse_patterns(mnode, where + ".match", p.patterns)) return false;
          }
          if (!has_match)
            return fail(pk.source(), where,
                        "a provider needs match = [\"*.example.com\", ...] (MX host patterns)");
          if (!walk(*pnode.as_table(), "", where + ".", Scope::Provider, p.sets)) return false;
          out.providers.push_back(std::move(p));
        }
      } else if (name == "domain") {
        for (auto&& [dk, dnode] : t) {
          const std::string dname = lower(dk.str());
          const std::string where = "domain.\"" + dname + "\"";
          if (!dnode.is_table()) return fail(dk.source(), where, "expected a table");
          if (dname.empty() || dname.find_first_of(" \t*") != std::string::npos)
            return fail(dk.source(), where, "not a domain name");
          DomainDecl d;
          d.name = dname;
          d.source = source_;
          d.line = dk.source().begin.line;
          d.column = dk.source().begin.column;
          if (!walk(*dnode.as_table(), "", where + ".", Scope::Domain, d.sets)) return false;
          out.domains.push_back(std::move(d));
        }
      } else {
        return fail(k.source(), name,
                    "unknown table: expected global, warmup, defaults, provider or domain");
      }
    }
    return true;
  }

  const PolicyError& error() const { return error_; }

 private:
  bool fail(const toml::source_region& r, std::string key, std::string message) {
    error_.source = source_;
    error_.line = r.begin.line;
    error_.column = r.begin.column;
    error_.key = std::move(key);
    error_.message = std::move(message);
    return false;
  }

  static bool allowed(Where w, Scope s) {
    switch (s) {
      case Scope::Global:
        return w == Where::Global;
      case Scope::Warmup:
        return w == Where::Warmup;
      case Scope::Defaults:
      case Scope::Provider:
        return w == Where::Group || w == Where::Domain;
      case Scope::Domain:
        return w == Where::Domain;
    }
    return false;
  }

  // Walks a table; nested tables and dotted keys flatten to "a.b.c".
  bool walk(const toml::table& t, const std::string& prefix, const std::string& shown, Scope scope,
            std::vector<Set>& out) {
    for (auto&& [k, node] : t) {
      const std::string key = prefix + std::string(k.str());
      const std::string full = shown + std::string(k.str());
      if (scope == Scope::Provider && key == "match") continue;  // parsed by the caller
      if (node.is_table()) {
        if (!walk(*node.as_table(), key + ".", full + ".", scope, out)) return false;
        continue;
      }
      const KeyDef* def = find_key(key);
      if (!def) {
        std::string msg = "unknown key";
        if (scope == Scope::Domain && key.find('.') != std::string::npos)
          msg += " (a domain name with dots must be quoted: [domain.\"example.com\"])";
        return fail(k.source(), full, msg);
      }
      if (!allowed(def->where, scope)) {
        if (scope == Scope::Domain && def->where == Where::Group)
          return fail(k.source(), full,
                      "is an MX-group setting; set it in [defaults] or [provider.NAME]");
        return fail(k.source(), full, "not allowed in this table");
      }
      Set s{def, {}};
      if (!parse_value(*def, node, full, s.value)) return false;
      out.push_back(std::move(s));
    }
    return true;
  }

  bool number_of(const toml::node& n, double& out) {
    if (n.is_integer()) {
      out = static_cast<double>(n.as_integer()->get());
      return true;
    }
    if (n.is_floating_point()) {
      out = n.as_floating_point()->get();
      return std::isfinite(out);
    }
    return false;
  }

  bool duration_of(const toml::node& n, const KeyDef& def, const std::string& key, Duration& out) {
    std::optional<Duration> d;
    double secs = 0;
    if (n.is_string()) {
      d = parse_duration(n.as_string()->get());
    } else if (number_of(n, secs) && secs >= 0) {
      d = std::chrono::duration_cast<Duration>(std::chrono::duration<double>(secs));
    }
    const std::string range = "from " + fmt_num(def.min) + " s to " + fmt_num(def.max) + " s";
    if (!d)
      return fail(n.source(), key,
                  "expected a duration " + range +
                      ": seconds (30, 0.5) or a string with a unit (\"250ms\", \"30s\", \"5m\", "
                      "\"2h\", \"1d\")");
    const double s = std::chrono::duration<double>(*d).count();
    if (s < def.min - 1e-12 || s > def.max + 1e-9)
      return fail(n.source(), key, "duration out of range: expected " + range);
    out = *d;
    return true;
  }

  bool parse_value(const KeyDef& def, const toml::node& n, const std::string& key, Value& v) {
    switch (def.kind) {
      case Kind::Count: {
        const std::string want =
            "expected an integer from " + fmt_num(def.min) + " to " + fmt_num(def.max);
        if (!n.is_integer()) return fail(n.source(), key, want);
        const int64_t x = n.as_integer()->get();
        if (x < def.min || x > def.max) return fail(n.source(), key, want);
        v.count = static_cast<uint64_t>(x);
        return true;
      }
      case Kind::Number: {
        std::string want = "expected a number from " + fmt_num(def.min) + " to " + fmt_num(def.max);
        if (!def.unit.empty()) want += " (" + def.unit + ")";
        double x = 0;
        if (!number_of(n, x) || x < def.min || x > def.max) return fail(n.source(), key, want);
        v.number = x;
        return true;
      }
      case Kind::Bool:
        if (!n.is_boolean()) return fail(n.source(), key, "expected true or false");
        v.flag = n.as_boolean()->get();
        return true;
      case Kind::Duration:
        return duration_of(n, def, key, v.duration);
      case Kind::DurationList: {
        const toml::array* a = n.as_array();
        if (!a || a->empty() || a->size() > 100)
          return fail(n.source(), key,
                      "expected a list of 1 to 100 durations, e.g. [\"1m\", \"5m\"]");
        for (const toml::node& el : *a) {
          Duration d{};
          if (!duration_of(el, def, key, d)) return false;
          v.durations.push_back(d);
        }
        return true;
      }
      case Kind::Choice: {
        std::string want = "expected one of ";
        for (char c : def.unit)
          want += c == '|' ? std::string(", ") : std::string(1, c);
        if (!n.is_string()) return fail(n.source(), key, want);
        const std::string s = n.as_string()->get();
        uint64_t i = 0;
        for (size_t at = 0;; ++i) {
          const size_t bar = def.unit.find('|', at);
          if (def.unit.substr(at, bar == std::string::npos ? bar : bar - at) == s) {
            v.count = i;
            return true;
          }
          if (bar == std::string::npos) return fail(n.source(), key, want);
          at = bar + 1;
        }
      }
      case Kind::Shares: {
        const toml::array* a = n.as_array();
        const std::string want =
            "expected a list of 1 to 100 shares in (0, 1], ascending, the last one 1";
        if (!a || a->empty() || a->size() > 100) return fail(n.source(), key, want);
        for (const toml::node& el : *a) {
          double x = 0;
          if (!number_of(el, x) || !(x > 0) || x > 1 ||
              (!v.numbers.empty() && x < v.numbers.back()))
            return fail(el.source(), key, want);
          v.numbers.push_back(x);
        }
        if (v.numbers.back() != 1.0) return fail(n.source(), key, want);
        return true;
      }
    }
    return false;
  }

  bool parse_patterns(const toml::node& n, const std::string& key, std::vector<std::string>& out) {
    const toml::array* a = n.as_array();
    const std::string want =
        "expected a non-empty list of MX host patterns: \"mx.example.com\" or \"*.example.com\"";
    if (!a || a->empty()) return fail(n.source(), key, want);
    for (const toml::node& el : *a) {
      if (!el.is_string()) return fail(el.source(), key, want);
      std::string p = lower(el.as_string()->get());
      if (!p.empty() && p.back() == '.') p.pop_back();
      const bool wild = p.rfind("*.", 0) == 0;
      const std::string_view rest = wild ? std::string_view(p).substr(2) : std::string_view(p);
      if (rest.empty() || rest.find_first_of("* \t") != std::string_view::npos ||
          rest.front() == '.' || rest.find("..") != std::string_view::npos)
        return fail(el.source(), key, "bad pattern \"" + p + "\": " + want.substr(9));
      out.push_back(std::move(p));
    }
    return true;
  }

  std::string source_;
  PolicyError error_;
};

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

constexpr std::string_view kBuiltin =
    R"toml(# mxprobe built-in scheduling policy. A --policy file is applied over it (docs/policy.md).

[global]
max_sessions = 200          # SMTP sessions open at once, all destinations together
builtin_providers = true    # keep the [provider.*] tables of this document

[warmup]
enabled = false             # true: a source IP without saved warm-up state starts at shares[0]
shares = [0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0]
step = "1d"                 # clean time needed to climb one level
min_sessions = 20           # and clean sessions needed to climb one level

[defaults]
weight = 1                  # deficit round-robin share of an MX group
block_cooldown = "1h"       # how long a (source IP, MX group) rests after a block reply
catch_all_probe = true      # probe each domain once with a random address
quirks.rcpt_accepts_all = false  # true: 250 at RCPT proves nothing (risky / unverifiable)
starttls = "auto"           # STARTTLS: auto (when offered or demanded), never or require

[defaults.per_domain]       # per recipient domain
sessions = 4
connect_rate = 2            # new connections per second; 0 = unlimited
connect_burst = 4
rcpt_rate = 20              # RCPT commands per second; 0 = unlimited
rcpt_burst = 40

[defaults.per_mx]           # per MX group: one MX host, or a provider below
sessions = 10
connect_rate = 5
connect_burst = 10
rcpt_rate = 50
rcpt_burst = 100

[defaults.per_source]       # per source IP x MX group
sessions = 5
connect_rate = 2
connect_burst = 5
rcpt_rate = 20
rcpt_burst = 40

[defaults.session]
recipients = 25             # RCPT commands per session
rejections = 8              # rejected RCPTs per session, then a new session (Postfix: 10)

[defaults.retry]            # retry_later outcomes (greylisting: same source IP)
schedule = ["1m", "5m", "15m", "30m"]
attempts = 5                # tries in all, the first included

[defaults.backoff]          # AIMD per MX group on 421 / 4.7.x rate limits / drops
decrease = 0.5
min_factor = 0.05
rate_increase = 0.05
window_increase = 1.0
holdoff = "2s"
initial_sessions = 2

[defaults.timeouts]         # per SMTP stage
connect = "30s"
banner = "60s"
ehlo = "60s"
helo = "60s"
mail_from = "60s"
rcpt_to = "60s"
rset = "30s"
quit = "10s"

# Google (Gmail, Google Workspace): aspmx.l.google.com, alt*.aspmx.l.google.com,
# gmail-smtp-in.l.google.com, smtp.google.com.
[provider.google]
match = ["*.google.com", "*.googlemail.com"]
per_mx = { sessions = 20, connect_rate = 5, connect_burst = 10, rcpt_rate = 50, rcpt_burst = 100 }
per_source = { sessions = 3, connect_rate = 1, connect_burst = 3, rcpt_rate = 10, rcpt_burst = 20 }
per_domain = { sessions = 20, connect_rate = 0, rcpt_rate = 0 }
session = { recipients = 20, rejections = 8 }
backoff = { holdoff = "5s", min_factor = 0.02 }
block_cooldown = "4h"

# Microsoft 365 (*.mail.protection.outlook.com) and Outlook.com / Hotmail
# (*.olc.protection.outlook.com).
[provider.microsoft]
match = ["*.outlook.com"]
per_mx = { sessions = 20, connect_rate = 4, connect_burst = 8, rcpt_rate = 40, rcpt_burst = 80 }
per_source = { sessions = 2, connect_rate = 0.5, connect_burst = 2, rcpt_rate = 5, rcpt_burst = 10 }
per_domain = { sessions = 20, connect_rate = 0, rcpt_rate = 0 }
session = { recipients = 20, rejections = 8 }
retry = { schedule = ["2m", "10m", "30m", "1h"], attempts = 5 }
backoff = { holdoff = "5s", min_factor = 0.02 }
block_cooldown = "4h"

# Yahoo and AOL: mta*.am0.yahoodns.net and friends. They answer 250 at RCPT for every address
# and reject unknown ones after DATA: a 250 is risky / unverifiable, and a catch-all probe would
# only be accepted too, so none is sent.
[provider.yahoo]
match = ["*.yahoodns.net"]
catch_all_probe = false
quirks = { rcpt_accepts_all = true }
per_mx = { sessions = 10, connect_rate = 2, connect_burst = 4, rcpt_rate = 20, rcpt_burst = 40 }
per_source = { sessions = 1, connect_rate = 0.2, connect_burst = 1, rcpt_rate = 2, rcpt_burst = 10 }
per_domain = { sessions = 10, connect_rate = 0, rcpt_rate = 0 }
session = { recipients = 10, rejections = 5 }
retry = { schedule = ["5m", "15m", "30m", "1h"], attempts = 5 }
backoff = { holdoff = "10s", min_factor = 0.02, rate_increase = 0.02 }
block_cooldown = "6h"

# Proofpoint (Essentials and enterprise gateways): *.pphosted.com, *.ppe-hosted.com.
[provider.proofpoint]
match = ["*.pphosted.com", "*.ppe-hosted.com"]
per_mx = { sessions = 10, connect_rate = 2, connect_burst = 4, rcpt_rate = 20, rcpt_burst = 40 }
per_source = { sessions = 2, connect_rate = 0.5, connect_burst = 2, rcpt_rate = 5, rcpt_burst = 10 }
session = { recipients = 10, rejections = 5 }
block_cooldown = "4h"

# Mimecast: *.mimecast.com and its regional grids; greylists unknown triplets for about a minute.
[provider.mimecast]
match = ["*.mimecast.com", "*.mimecast.co.za", "*.mimecast-offshore.com"]
per_mx = { sessions = 10, connect_rate = 2, connect_burst = 4, rcpt_rate = 20, rcpt_burst = 40 }
per_source = { sessions = 2, connect_rate = 0.5, connect_burst = 2, rcpt_rate = 5, rcpt_burst = 10 }
session = { recipients = 10, rejections = 5 }
retry = { schedule = ["2m", "5m", "15m", "30m", "1h"], attempts = 6 }
block_cooldown = "4h"

# Mail.ru (mail.ru, inbox.ru, list.ru, bk.ru...: mxs.mail.ru): like Yahoo, accepts every address
# at RCPT and bounces unknown ones later.
[provider.mailru]
match = ["*.mail.ru"]
per_mx = { sessions = 10, connect_rate = 2, connect_burst = 4, rcpt_rate = 20, rcpt_burst = 40 }
per_source = { sessions = 2, connect_rate = 0.5, connect_burst = 2, rcpt_rate = 5, rcpt_burst = 10 }
per_domain = { sessions = 10, connect_rate = 0, rcpt_rate = 0 }
session = { recipients = 10, rejections = 5 }
catch_all_probe = false
quirks = { rcpt_accepts_all = true }
block_cooldown = "4h"
)toml";

}  // namespace

// Bounds on what documents (a file, PUT /v1/policy, live group changes) may declare.
constexpr size_t kMaxProviders = 1024;
constexpr size_t kMaxDomainSettings = size_t{1} << 19;

// Assembles a Policy from layers; friend of Policy.
struct PolicyBuilder {
  static core::Expected<Policy, PolicyError> build(const std::vector<const Layer*>& layers,
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

  template <class Decl>
  static core::Unexpected<PolicyError> err(const Decl& d, std::string key, std::string message) {
    PolicyError e;
    e.source = d.source;
    e.line = d.line;
    e.column = d.column;
    e.key = std::move(key);
    e.message = std::move(message);
    return core::unexpected(std::move(e));
  }
};

namespace {

const Layer& builtin_layer() {
  static const Layer layer = [] {
    Layer l;
    DocParser parser("<built-in policy>");
    if (!parser.parse(kBuiltin, l)) {
      // The built-in document is covered by tests; failing here is a build defect.
      std::fprintf(stderr, "mxprobe: %s\n", parser.error().to_string().c_str());
      std::abort();
    }
    return l;
  }();
  return layer;
}

}  // namespace

std::string PolicyError::to_string() const {
  std::string s = source;
  if (line) s += ":" + std::to_string(line) + ":" + std::to_string(column);
  s += ": ";
  if (!key.empty()) s += key + ": ";
  s += message;
  return s;
}

std::string_view builtin_policy_toml() {
  return kBuiltin;
}

const Policy& Policy::builtin() {
  static const Policy p = [] {
    auto r = PolicyBuilder::build({&builtin_layer()}, false);
    if (!r) {
      std::fprintf(stderr, "mxprobe: %s\n", r.error().to_string().c_str());
      std::abort();
    }
    return std::move(*r);
  }();
  return p;
}

core::Expected<Policy, PolicyError> parse_policy(std::string_view text, std::string_view source) {
  Layer user;
  DocParser parser{std::string(source)};
  if (!parser.parse(text, user)) return core::unexpected(parser.error());
  return PolicyBuilder::build({&builtin_layer(), &user}, true);
}

core::Expected<Policy, PolicyError> build_policy(const std::vector<PolicySource>& documents) {
  std::vector<Layer> layers(documents.size());
  std::vector<const Layer*> order{&builtin_layer()};
  for (size_t i = 0; i < documents.size(); ++i) {
    DocParser parser{documents[i].name};
    if (!parser.parse(documents[i].text, layers[i])) return core::unexpected(parser.error());
    order.push_back(&layers[i]);
  }
  return PolicyBuilder::build(order, true);
}

core::Expected<std::string, PolicyError> read_policy_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    PolicyError e;
    e.source = path;
    e.message = std::string("cannot open: ") + std::strerror(errno);
    return core::unexpected(std::move(e));
  }
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad()) {
    PolicyError e;
    e.source = path;
    e.message = "read error";
    return core::unexpected(std::move(e));
  }
  return buf.str();
}

core::Expected<Policy, PolicyError> load_policy(const std::string& path) {
  auto text = read_policy_file(path);
  if (!text) return core::unexpected(text.error());
  return parse_policy(*text, path);
}

std::vector<PolicyKeyInfo> policy_keys() {
  std::vector<PolicyKeyInfo> out;
  for (const auto& k : keys())
    out.push_back({k.name, k.where});
  out.push_back({"match", PolicyKeyInfo::Where::Provider});
  return out;
}

std::optional<Duration> parse_duration(std::string_view t) {
  while (!t.empty() && (t.front() == ' ' || t.front() == '\t'))
    t.remove_prefix(1);
  while (!t.empty() && (t.back() == ' ' || t.back() == '\t'))
    t.remove_suffix(1);
  if (t.empty()) return std::nullopt;
  size_t n = 0;
  while (n < t.size() && ((t[n] >= '0' && t[n] <= '9') || t[n] == '.'))
    ++n;
  if (n == 0) return std::nullopt;
  double x = 0;
  auto [ptr, ec] = std::from_chars(t.data(), t.data() + n, x);
  if (ec != std::errc() || ptr != t.data() + n || !std::isfinite(x) || x < 0) return std::nullopt;
  const std::string_view unit = t.substr(n);
  double scale;
  if (unit.empty() || unit == "s")
    scale = 1;
  else if (unit == "ms")
    scale = 1e-3;
  else if (unit == "m")
    scale = 60;
  else if (unit == "h")
    scale = 3600;
  else if (unit == "d")
    scale = 86400;
  else
    return std::nullopt;
  const double secs = x * scale;
  if (secs > 1e9) return std::nullopt;
  return std::chrono::duration_cast<Duration>(std::chrono::duration<double>(secs));
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
