// Scenario JSON <-> model, with strict validation: a typo in a field name is an error rather
// than a silently ignored behaviour, since tests rely on every behaviour being really in place.
#include "scenario.hpp"

#include <arpa/inet.h>
#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

namespace mxfarm {

using nlohmann::json;

namespace {

constexpr std::string_view kStyleNames[] = {"postfix", "exchange", "gmail", "yahoo"};
constexpr std::string_view kDnsNames[] = {"mx",       "a",        "null_mx", "no_mail",
                                          "nxdomain", "servfail", "timeout"};
constexpr std::string_view kStatusNames[] = {"ok", "full", "full_perm", "disabled"};
constexpr std::string_view kCmdNames[] = {"connect", "helo", "ehlo", "mail", "rcpt",     "data",
                                          "rset",    "noop", "quit", "vrfy", "starttls", "other"};
constexpr std::string_view kBrokenNames[] = {"none", "garbage", "endless", "overlong"};
static_assert(std::size(kCmdNames) == kCmdCount);
static_assert(std::size(kStyleNames) == kStyleCount);

template <typename E, size_t N>
std::optional<E> parse_enum(const std::string_view (&names)[N], std::string_view s) {
  for (size_t i = 0; i < N; ++i) {
    if (names[i].size() != s.size()) continue;
    bool eq = true;
    for (size_t k = 0; k < s.size(); ++k) {
      char c = s[k];
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      if (c != names[i][k]) {
        eq = false;
        break;
      }
    }
    if (eq) return static_cast<E>(i);
  }
  return std::nullopt;
}

std::string lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

// Reads the fields of one JSON object, remembering which were used so that unknown ones can be
// reported. Every accessor records the first error and then returns defaults.
class ObjectReader {
 public:
  ObjectReader(const json& j, std::string where, std::string* error)
      : j_(j), where_(std::move(where)), error_(error) {
    if (!j.is_object()) fail("must be an object");
  }
  bool ok() const { return error_->empty(); }
  void fail(const std::string& msg) {
    if (error_->empty()) *error_ = where_ + ": " + msg;
  }
  const json* get(const char* key) {
    used_.insert(key);
    if (!j_.is_object()) return nullptr;
    auto it = j_.find(key);
    return it == j_.end() ? nullptr : &*it;
  }
  std::string str(const char* key, std::string def, bool required = false) {
    const json* v = get(key);
    if (!v) {
      if (required) fail(std::string("missing \"") + key + "\"");
      return def;
    }
    if (!v->is_string()) {
      fail(std::string("\"") + key + "\" must be a string");
      return def;
    }
    return v->get<std::string>();
  }
  uint64_t num(const char* key, uint64_t def, uint64_t max = UINT32_MAX) {
    const json* v = get(key);
    if (!v) return def;
    if (!v->is_number_unsigned() || v->get<uint64_t>() > max) {
      fail(std::string("\"") + key + "\" must be an integer in 0.." + std::to_string(max));
      return def;
    }
    return v->get<uint64_t>();
  }
  bool flag(const char* key, bool def) {
    const json* v = get(key);
    if (!v) return def;
    if (!v->is_boolean()) {
      fail(std::string("\"") + key + "\" must be true or false");
      return def;
    }
    return v->get<bool>();
  }
  template <typename E, size_t N>
  E enumeration(const char* key, const std::string_view (&names)[N], E def) {
    const json* v = get(key);
    if (!v) return def;
    if (!v->is_string()) {
      fail(std::string("\"") + key + "\" must be a string");
      return def;
    }
    auto e = parse_enum<E>(names, v->get<std::string>());
    if (!e) {
      fail(std::string("\"") + key + "\": unknown value \"" + v->get<std::string>() + "\"");
      return def;
    }
    return *e;
  }
  // Call after reading every field.
  void finish() {
    if (!j_.is_object()) return;
    for (auto it = j_.begin(); it != j_.end(); ++it) {
      if (!used_.count(it.key())) fail("unknown field \"" + it.key() + "\"");
    }
  }
  const std::string& where() const { return where_; }
  std::string* error() const { return error_; }

 private:
  const json& j_;
  std::string where_;
  std::string* error_;
  std::set<std::string, std::less<>> used_;
};

std::optional<Cidr> parse_cidr(std::string_view s) {
  if (s == "*") return Cidr{0, 0};
  uint32_t bits = 32;
  auto slash = s.find('/');
  if (slash != std::string_view::npos) {
    std::string b(s.substr(slash + 1));
    if (b.empty() || b.size() > 2 || !std::all_of(b.begin(), b.end(), ::isdigit)) return {};
    bits = static_cast<uint32_t>(std::stoul(b));
    if (bits > 32) return {};
    s = s.substr(0, slash);
  }
  auto ip = parse_ipv4(s);
  if (!ip) return {};
  uint32_t mask = bits == 0 ? 0 : ~uint32_t{0} << (32 - bits);
  return Cidr{*ip & mask, mask};
}

std::string format_cidr(const Cidr& c) {
  if (c.mask == 0) return "*";
  int bits = __builtin_popcount(c.mask);
  std::string s = format_ipv4(c.net);
  if (bits != 32) s += "/" + std::to_string(bits);
  return s;
}

void read_host_behaviour(ObjectReader& r, HostBehaviour& b) {
  b.listen = r.flag("listen", true);
  b.banner_delay_ms = static_cast<uint32_t>(r.num("banner_delay_ms", 0));
  b.reply_delay_ms = static_cast<uint32_t>(r.num("reply_delay_ms", 0));
  b.tarpit_byte_ms = static_cast<uint32_t>(r.num("tarpit_byte_ms", 0));
  b.capacity_per_s = static_cast<uint32_t>(r.num("capacity_per_s", 0));
  b.stall_every_s = static_cast<uint32_t>(r.num("stall_every_s", 0));
  b.stall_ms = static_cast<uint32_t>(r.num("stall_ms", 0));
  if (b.stall_every_s > 0 && (b.stall_ms == 0 || b.stall_ms >= b.stall_every_s * 1000))
    r.fail("stall_ms must be above 0 and shorter than stall_every_s");
  b.max_conn_per_ip = static_cast<uint32_t>(r.num("max_conn_per_ip", 0));
  b.max_rcpts = static_cast<uint32_t>(r.num("max_rcpts", 0));
  b.pipelining = r.flag("pipelining", true);
  b.starttls = r.flag("starttls", false);
  b.tls_required = r.flag("tls_required", false);
  if (b.tls_required && !b.starttls) r.fail("tls_required needs starttls");
  b.ehlo = r.flag("ehlo", true);
  b.greylist_delay_s = static_cast<uint32_t>(r.num("greylist_delay_s", 0));
  b.reject_non_fqdn_helo = r.flag("reject_non_fqdn_helo", false);
  if (const json* v = r.get("conn_rate")) {
    ObjectReader o(*v, r.where() + ".conn_rate", r.error());
    b.rate_count = static_cast<uint32_t>(o.num("count", 0));
    b.rate_window_s = static_cast<uint32_t>(o.num("window_s", 60));
    o.finish();
    if (b.rate_count > 0 && b.rate_window_s == 0) r.fail("conn_rate.window_s must be > 0");
  }
  if (const json* v = r.get("block")) {
    ObjectReader o(*v, r.where() + ".block", r.error());
    if (const json* c = o.get("clients")) {
      if (!c->is_array()) o.fail("\"clients\" must be an array");
      for (const auto& x : c->is_array() ? *c : json::array()) {
        auto cidr = x.is_string() ? parse_cidr(x.get<std::string>()) : std::nullopt;
        if (!cidr) {
          o.fail("bad client pattern " + x.dump() + " (want \"*\", an IPv4 address or CIDR)");
          break;
        }
        b.block_clients.push_back(*cidr);
      }
    } else {
      o.fail("missing \"clients\"");
    }
    b.block_at = o.enumeration("at", kCmdNames, Cmd::Rcpt);
    o.finish();
    if (b.block_at != Cmd::Connect && b.block_at != Cmd::Helo && b.block_at != Cmd::Mail &&
        b.block_at != Cmd::Rcpt)
      r.fail("block.at must be connect, helo, mail or rcpt");
  }
  if (const json* v = r.get("refuse_sender")) {
    ObjectReader o(*v, r.where() + ".refuse_sender", r.error());
    b.refuse_null_sender = o.flag("null", false);
    if (const json* d = o.get("domains")) {
      if (!d->is_array()) o.fail("\"domains\" must be an array");
      for (const auto& x : d->is_array() ? *d : json::array()) {
        if (!x.is_string()) {
          o.fail("\"domains\" must hold strings");
          break;
        }
        std::string name = x.get<std::string>();
        for (auto& c : name)
          c = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
        b.refuse_sender_domains.push_back(std::move(name));
      }
    }
    b.refuse_sender_at = o.enumeration("at", kCmdNames, Cmd::Mail);
    o.finish();
    if (b.refuse_sender_at != Cmd::Mail && b.refuse_sender_at != Cmd::Rcpt)
      r.fail("refuse_sender.at must be mail or rcpt");
  }
  if (const json* v = r.get("error_limits")) {
    ObjectReader o(*v, r.where() + ".error_limits", r.error());
    b.soft_error_limit = static_cast<uint32_t>(o.num("soft", 10));
    b.hard_error_limit = static_cast<uint32_t>(o.num("hard", 20));
    b.error_sleep_ms = static_cast<uint32_t>(o.num("sleep_ms", 1000));
    o.finish();
  }
  if (const json* v = r.get("drop")) {
    ObjectReader o(*v, r.where() + ".drop", r.error());
    b.drop_after = o.enumeration("after", kCmdNames, Cmd::Connect);
    std::string mode = o.str("mode", "close");
    if (mode == "reset") {
      b.drop_reset = true;
    } else if (mode != "close") {
      o.fail("\"mode\" must be close or reset");
    }
    o.finish();
  }
  if (const json* v = r.get("broken")) {
    ObjectReader o(*v, r.where() + ".broken", r.error());
    b.broken = o.enumeration("kind", kBrokenNames, BrokenKind::None);
    b.broken_at = o.enumeration("at", kCmdNames, Cmd::Connect);
    uint64_t def = b.broken == BrokenKind::Endless ? 16u << 20 : 1u << 20;
    b.broken_bytes = o.num("bytes", def, uint64_t{1} << 32);
    o.finish();
    if (b.broken != BrokenKind::None && b.broken_bytes < 1024)
      r.fail("broken.bytes must be at least 1024");
  }
}

json host_behaviour_to_json(const HostBehaviour& b) {
  json j = json::object();
  HostBehaviour d;
  if (b.listen != d.listen) j["listen"] = b.listen;
  if (b.banner_delay_ms) j["banner_delay_ms"] = b.banner_delay_ms;
  if (b.reply_delay_ms) j["reply_delay_ms"] = b.reply_delay_ms;
  if (b.tarpit_byte_ms) j["tarpit_byte_ms"] = b.tarpit_byte_ms;
  if (b.capacity_per_s) j["capacity_per_s"] = b.capacity_per_s;
  if (b.stall_every_s) {
    j["stall_every_s"] = b.stall_every_s;
    j["stall_ms"] = b.stall_ms;
  }
  if (b.max_conn_per_ip) j["max_conn_per_ip"] = b.max_conn_per_ip;
  if (b.rate_count) j["conn_rate"] = {{"count", b.rate_count}, {"window_s", b.rate_window_s}};
  if (!b.block_clients.empty()) {
    json c = json::array();
    for (const auto& x : b.block_clients)
      c.push_back(format_cidr(x));
    j["block"] = {{"clients", c}, {"at", to_string(b.block_at)}};
  }
  if (b.hard_error_limit || b.soft_error_limit)
    j["error_limits"] = {
        {"soft", b.soft_error_limit}, {"hard", b.hard_error_limit}, {"sleep_ms", b.error_sleep_ms}};
  if (b.max_rcpts) j["max_rcpts"] = b.max_rcpts;
  if (b.pipelining != d.pipelining) j["pipelining"] = b.pipelining;
  if (b.starttls != d.starttls) j["starttls"] = b.starttls;
  if (b.tls_required) j["tls_required"] = true;
  if (b.ehlo != d.ehlo) j["ehlo"] = b.ehlo;
  if (b.drop_after)
    j["drop"] = {{"after", to_string(*b.drop_after)}, {"mode", b.drop_reset ? "reset" : "close"}};
  if (b.broken != BrokenKind::None)
    j["broken"] = {
        {"kind", to_string(b.broken)}, {"at", to_string(b.broken_at)}, {"bytes", b.broken_bytes}};
  if (b.greylist_delay_s) j["greylist_delay_s"] = b.greylist_delay_s;
  if (b.reject_non_fqdn_helo) j["reject_non_fqdn_helo"] = true;
  if (b.refuse_null_sender || !b.refuse_sender_domains.empty())
    j["refuse_sender"] = {{"null", b.refuse_null_sender},
                          {"domains", b.refuse_sender_domains},
                          {"at", to_string(b.refuse_sender_at)}};
  return j;
}

bool valid_dns_name(std::string_view s) {
  if (s.empty() || s.size() > 253 || s.front() == '.' || s.back() == '.') return false;
  size_t label = 0;
  for (char c : s) {
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
      continue;
    }
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_')) return false;
    if (++label > 63) return false;
  }
  return true;
}

}  // namespace

std::string_view to_string(Style s) {
  return kStyleNames[static_cast<int>(s)];
}
std::string_view to_string(DnsKind k) {
  return kDnsNames[static_cast<int>(k)];
}
std::string_view to_string(MailboxStatus s) {
  return kStatusNames[static_cast<int>(s)];
}
std::string_view to_string(Cmd c) {
  return kCmdNames[static_cast<int>(c)];
}
std::string_view to_string(BrokenKind k) {
  return kBrokenNames[static_cast<int>(k)];
}
std::optional<Style> parse_style(std::string_view s) {
  return parse_enum<Style>(kStyleNames, s);
}
std::optional<Cmd> parse_cmd(std::string_view s) {
  return parse_enum<Cmd>(kCmdNames, s);
}

std::optional<uint32_t> parse_ipv4(std::string_view s) {
  if (s.size() > 15) return std::nullopt;
  char buf[16];
  s.copy(buf, s.size());
  buf[s.size()] = '\0';
  in_addr a{};
  if (inet_pton(AF_INET, buf, &a) != 1) return std::nullopt;
  return ntohl(a.s_addr);
}

std::string format_ipv4(uint32_t ip) {
  in_addr a{};
  a.s_addr = htonl(ip);
  char buf[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &a, buf, sizeof buf);
  return buf;
}

std::vector<int> Scenario::mail_hosts(const Domain& d) const {
  std::vector<int> out;
  if (d.dns == DnsKind::AOnly) {
    out.push_back(d.a_host_index);
  } else if (d.dns == DnsKind::Mx) {
    std::vector<const MxRecord*> mx;
    for (const auto& m : d.mx)
      mx.push_back(&m);
    std::stable_sort(mx.begin(), mx.end(),
                     [](const MxRecord* a, const MxRecord* b) { return a->pref < b->pref; });
    for (const auto* m : mx)
      out.push_back(m->host_index);
  }
  return out;
}

const Host* Scenario::find_host(std::string_view name) const {
  for (const auto& h : hosts)
    if (h.name == name) return &h;
  return nullptr;
}

std::optional<Scenario> scenario_from_json(const json& j, std::string* error) {
  error->clear();
  Scenario s;
  ObjectReader top(j, "scenario", error);
  uint64_t version = top.num("version", 1);
  if (version != 1) top.fail("unsupported version " + std::to_string(version));
  if (const json* d = top.get("dns")) {
    ObjectReader r(*d, "dns", error);
    s.dns.ip = r.str("ip", s.dns.ip);
    s.dns.port = static_cast<uint16_t>(r.num("port", s.dns.port, 65535));
    s.dns.ttl = static_cast<uint32_t>(r.num("ttl", s.dns.ttl));
    r.finish();
    auto ip = parse_ipv4(s.dns.ip);
    if (!ip || (*ip >> 24) != 127) r.fail("\"ip\" must be an address in 127.0.0.0/8");
  }
  if (const json* bl = top.get("dnsbl")) {
    if (!bl->is_array()) top.fail("\"dnsbl\" must be an array");
    for (size_t i = 0; bl->is_array() && i < bl->size() && error->empty(); ++i) {
      ObjectReader r((*bl)[i], "dnsbl[" + std::to_string(i) + "]", error);
      DnsblZone z;
      z.zone = r.str("zone", "", true);
      z.answer_all = r.str("answer_all", "");
      if (const json* l = r.get("listed")) {
        if (!l->is_object()) r.fail("\"listed\" must be an object {\"client IP\": \"answer\"}");
        for (auto it = l->begin(); l->is_object() && it != l->end(); ++it) {
          if (!it.value().is_string() || !parse_ipv4(it.key()) ||
              !parse_ipv4(it.value().get<std::string>()))
            r.fail("\"listed\": \"" + it.key() + "\" must map an IPv4 address to an IPv4 answer");
          else
            z.listed.emplace_back(it.key(), it.value().get<std::string>());
        }
      }
      r.finish();
      if (!z.zone.empty() && !valid_dns_name(z.zone)) r.fail("bad zone \"" + z.zone + "\"");
      if (!z.answer_all.empty() && !parse_ipv4(z.answer_all))
        r.fail("\"answer_all\" must be an IPv4 address");
      s.dnsbl.push_back(std::move(z));
    }
  }
  const json* hosts = top.get("hosts");
  const json* domains = top.get("domains");
  const json* clients = top.get("clients");
  top.get("comment");  // free text, ignored
  top.finish();
  if (!error->empty()) return std::nullopt;
  if (hosts && !hosts->is_array()) top.fail("\"hosts\" must be an array");
  if (domains && !domains->is_array()) top.fail("\"domains\" must be an array");
  if (clients && !clients->is_array()) top.fail("\"clients\" must be an array");
  if (!error->empty()) return std::nullopt;
  for (size_t i = 0; clients && i < clients->size() && error->empty(); ++i) {
    Client c;
    ObjectReader r((*clients)[i], "clients[" + std::to_string(i) + "]", error);
    c.ip = r.str("ip", "", true);
    c.ptr = lower(r.str("ptr", "", true));
    c.confirm = r.flag("confirm", true);
    r.finish();
    auto ip = parse_ipv4(c.ip);
    if (!ip || (*ip >> 24) != 127) r.fail("\"ip\" must be an address in 127.0.0.0/8");
    if (!valid_dns_name(c.ptr)) r.fail("\"ptr\" must be a host name");
    s.clients.push_back(std::move(c));
  }
  if (!error->empty()) return std::nullopt;

  std::map<std::string, int, std::less<>> host_index;
  std::set<std::pair<uint32_t, uint16_t>> listeners;
  for (size_t i = 0; hosts && i < hosts->size() && error->empty(); ++i) {
    Host h;
    ObjectReader r((*hosts)[i], "hosts[" + std::to_string(i) + "]", error);
    h.name = lower(r.str("name", "", true));
    h.ip = r.str("ip", "", true);
    h.port = static_cast<uint16_t>(r.num("port", 25, 65535));
    h.ip6 = r.str("ip6", "");
    h.ipv4 = r.flag("ipv4", true);
    h.style = r.enumeration("style", kStyleNames, Style::Postfix);
    read_host_behaviour(r, h.b);
    r.finish();
    if (!error->empty()) break;
    if (!valid_dns_name(h.name)) r.fail("bad host name \"" + h.name + "\"");
    auto ip = parse_ipv4(h.ip);
    if (!ip || (*ip >> 24) != 127) r.fail("\"ip\" must be an address in 127.0.0.0/8");
    if (h.port == 0) r.fail("\"port\" must not be 0");
    in6_addr a6{};
    if (!h.ip6.empty() && inet_pton(AF_INET6, h.ip6.c_str(), &a6) != 1)
      r.fail("\"ip6\" must be an IPv6 address");
    if (!h.ipv4 && h.ip6.empty()) r.fail("\"ipv4\": false needs an \"ip6\"");
    if (!error->empty()) break;
    h.ip_v4 = *ip;
    if (!host_index.emplace(h.name, static_cast<int>(s.hosts.size())).second)
      r.fail("duplicate host name \"" + h.name + "\"");
    if (h.b.listen && h.ipv4 && !listeners.emplace(h.ip_v4, h.port).second)
      r.fail("two listening hosts on " + h.ip + ":" + std::to_string(h.port));
    s.hosts.push_back(std::move(h));
  }
  std::set<std::string, std::less<>> seen_domains;
  for (size_t i = 0; domains && i < domains->size() && error->empty(); ++i) {
    Domain d;
    ObjectReader r((*domains)[i], "domains[" + std::to_string(i) + "]", error);
    d.name = lower(r.str("name", "", true));
    d.dns = r.enumeration("dns", kDnsNames, DnsKind::Mx);
    d.style = r.enumeration("style", kStyleNames, Style::Postfix);
    d.catch_all = r.flag("catch_all", false);
    d.greylist_delay_s = static_cast<uint32_t>(r.num("greylist_delay_s", 0));
    if (const json* mx = r.get("mx")) {
      if (!mx->is_array()) r.fail("\"mx\" must be an array");
      for (size_t k = 0; mx->is_array() && k < mx->size(); ++k) {
        ObjectReader m((*mx)[k], r.where() + ".mx[" + std::to_string(k) + "]", error);
        MxRecord rec;
        rec.pref = static_cast<uint16_t>(m.num("pref", 10, 65535));
        rec.host = lower(m.str("host", "", true));
        m.finish();
        auto it = host_index.find(rec.host);
        if (error->empty() && it == host_index.end()) m.fail("unknown host \"" + rec.host + "\"");
        if (!error->empty()) break;
        rec.host_index = it->second;
        d.mx.push_back(std::move(rec));
      }
    }
    d.a_host = lower(r.str("host", ""));
    if (const json* mb = r.get("mailboxes")) {
      if (!mb->is_object()) r.fail("\"mailboxes\" must be an object");
      for (auto it = mb->begin(); mb->is_object() && it != mb->end(); ++it) {
        auto st = it->is_string() ? parse_enum<MailboxStatus>(kStatusNames, it->get<std::string>())
                                  : std::nullopt;
        if (!st) {
          r.fail("mailbox \"" + it.key() + "\": status must be ok, full, full_perm or disabled");
          break;
        }
        d.mailboxes[lower(it.key())] = *st;
      }
    }
    r.finish();
    if (!error->empty()) break;
    if (!valid_dns_name(d.name)) r.fail("bad domain name \"" + d.name + "\"");
    if (!seen_domains.insert(d.name).second) r.fail("duplicate domain \"" + d.name + "\"");
    if (d.dns == DnsKind::Mx && d.mx.empty()) r.fail("dns \"mx\" needs at least one \"mx\" record");
    if (d.dns != DnsKind::Mx && !d.mx.empty()) r.fail("\"mx\" records need dns \"mx\"");
    if (d.dns == DnsKind::AOnly) {
      auto it = host_index.find(d.a_host);
      if (it == host_index.end()) {
        r.fail("dns \"a\" needs \"host\": the name of the host answering at the domain's address");
      } else {
        d.a_host_index = it->second;
      }
    } else if (!d.a_host.empty()) {
      r.fail("\"host\" is only for dns \"a\"");
    }
    if (!error->empty()) break;
    s.domains.push_back(std::move(d));
  }
  if (!error->empty()) return std::nullopt;
  return s;
}

std::optional<Scenario> load_scenario(const std::string& path, std::string* error) {
  std::ifstream in(path);
  if (!in) {
    *error = "cannot open " + path;
    return std::nullopt;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  json j = json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    *error = path + ": not valid JSON";
    return std::nullopt;
  }
  auto s = scenario_from_json(j, error);
  if (!s) *error = path + ": " + *error;
  return s;
}

json scenario_to_json(const Scenario& s) {
  json j;
  j["version"] = 1;
  j["dns"] = {{"ip", s.dns.ip}, {"port", s.dns.port}, {"ttl", s.dns.ttl}};
  if (!s.dnsbl.empty()) {
    json bl = json::array();
    for (const auto& z : s.dnsbl) {
      json o = {{"zone", z.zone}};
      if (!z.listed.empty()) {
        json l = json::object();
        for (const auto& [ip, answer] : z.listed)
          l[ip] = answer;
        o["listed"] = std::move(l);
      }
      if (!z.answer_all.empty()) o["answer_all"] = z.answer_all;
      bl.push_back(std::move(o));
    }
    j["dnsbl"] = std::move(bl);
  }
  json hosts = json::array();
  for (const auto& h : s.hosts) {
    json o = {{"name", h.name}, {"ip", h.ip}, {"port", h.port}, {"style", to_string(h.style)}};
    if (!h.ip6.empty()) o["ip6"] = h.ip6;
    if (!h.ipv4) o["ipv4"] = false;
    o.update(host_behaviour_to_json(h.b));
    hosts.push_back(std::move(o));
  }
  json domains = json::array();
  for (const auto& d : s.domains) {
    json o = {{"name", d.name}, {"dns", to_string(d.dns)}};
    if (d.dns == DnsKind::Mx) {
      json mx = json::array();
      for (const auto& m : d.mx)
        mx.push_back({{"pref", m.pref}, {"host", m.host}});
      o["mx"] = std::move(mx);
    }
    if (d.dns == DnsKind::AOnly) o["host"] = d.a_host;
    o["style"] = to_string(d.style);
    if (d.catch_all) o["catch_all"] = true;
    if (d.greylist_delay_s) o["greylist_delay_s"] = d.greylist_delay_s;
    json mb = json::object();
    for (const auto& [k, v] : d.mailboxes)
      mb[k] = to_string(v);
    o["mailboxes"] = std::move(mb);
    domains.push_back(std::move(o));
  }
  j["hosts"] = std::move(hosts);
  j["domains"] = std::move(domains);
  if (!s.clients.empty()) {
    json clients = json::array();
    for (const auto& c : s.clients)
      clients.push_back({{"ip", c.ip}, {"ptr", c.ptr}, {"confirm", c.confirm}});
    j["clients"] = std::move(clients);
  }
  return j;
}

}  // namespace mxfarm
