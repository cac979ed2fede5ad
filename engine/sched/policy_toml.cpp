// Reading policy documents: TOML (toml++) into Layers, every key checked against the key table
// (policy_keys.cpp) and refused with its file:line:column; the entry points that read documents
// (parse_policy, build_policy, load_policy, Policy::builtin) and hand their layers to
// PolicyBuilder (policy.cpp); and parse_duration. The only file of engine/sched that sees toml++.
#include "sched/policy.hpp"

#include <toml++/toml.h>
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/endpoint.hpp"
#include "core/strings.hpp"
#include "sched/policy_layer.hpp"

namespace mxp::sched {

namespace {

using core::lower;
using detail::DomainDecl;
using detail::find_key;
using detail::KeyDef;
using detail::Kind;
using detail::Layer;
using detail::ProviderDecl;
using detail::Set;
using detail::Value;
using detail::Where;

std::string fmt_num(double d) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::fixed);
  return ec == std::errc() ? std::string(buf, end) : std::to_string(d);
}

// What a Text key's value must be, by the key's unit: a host name for HELO, a sender address,
// a source address.
std::string text_want(std::string_view unit) {
  if (unit == "host") return "a host name (\"probe.example.net\") or an address literal";
  if (unit == "sender") return "a sender address (\"probe@example.net\"; \"\" = the null sender)";
  return "a source address (\"192.0.2.10\") or proxy (\"socks5://host:port\")";
}

// "" when `s` is a valid value of a Text key of this unit; else the message. A source address
// is rewritten in the form the engine names sources ("2001:db8::1", not "2001:DB8:0::1").
std::string text_error(std::string_view unit, std::string& s) {
  const auto bad = [&] { return "\"" + s + "\" is not " + text_want(unit); };
  const auto all_of = [&](std::string_view v, std::string_view allowed) {
    return std::all_of(v.begin(), v.end(), [&](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || allowed.find(c) != std::string::npos;
    });
  };
  if (unit == "host") {
    if (s.empty() || s.size() > 255) return bad();
    if (s.front() == '[')
      return s.size() > 2 && s.back() == ']' && all_of(s.substr(1, s.size() - 2), ":.") ? ""
                                                                                        : bad();
    return all_of(s, ".-") && s.front() != '.' && s.front() != '-' ? "" : bad();
  }
  if (unit == "sender") {
    if (s.empty()) return "";
    const size_t at = s.rfind('@');
    const bool ok =
        s.size() <= 254 && at != std::string::npos && at > 0 && at + 1 < s.size() &&
        std::none_of(s.begin(), s.end(), [](char c) {
          return static_cast<unsigned char>(c) <= ' ' || c == '<' || c == '>' || c == 0x7f;
        });
    return ok ? "" : bad();
  }
  if (s.starts_with("socks5://")) return "";
  auto ep = core::Endpoint::parse(s, 0);
  if (!ep) return bad();
  s = ep->ip_string();
  return "";
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
      case Kind::Text: {
        if (!n.is_string()) return fail(n.source(), key, "expected " + text_want(def.unit));
        v.text = n.as_string()->get();
        if (const std::string why = text_error(def.unit, v.text); !why.empty())
          return fail(n.source(), key, why);
        return true;
      }
      case Kind::TextList: {
        const toml::array* a = n.as_array();
        const std::string want = "expected a list of " + text_want(def.unit) + "s";
        if (!a || a->size() > 64) return fail(n.source(), key, want + " (at most 64)");
        for (const toml::node& el : *a) {
          if (!el.is_string()) return fail(el.source(), key, want);
          v.texts.push_back(el.as_string()->get());
          if (const std::string why = text_error(def.unit, v.texts.back()); !why.empty())
            return fail(el.source(), key, why);
        }
        return true;
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

const Layer& builtin_layer() {
  static const Layer layer = [] {
    Layer l;
    DocParser parser("<built-in policy>");
    if (!parser.parse(builtin_policy_toml(), l)) {
      // The built-in document is covered by tests; failing here is a build defect.
      std::fprintf(stderr, "mxprobe: %s\n", parser.error().to_string().c_str());
      std::abort();
    }
    return l;
  }();
  return layer;
}

}  // namespace

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

}  // namespace mxp::sched
