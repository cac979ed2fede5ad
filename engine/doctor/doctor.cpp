#include "doctor/doctor.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace mxp::doctor {
namespace {

bool parse_ipv4(std::string_view s, unsigned char out[4]) {
  std::string z(s);
  in_addr a{};
  if (inet_pton(AF_INET, z.c_str(), &a) != 1) return false;
  std::memcpy(out, &a, 4);
  return true;
}

std::string join(const std::vector<std::string>& v, std::string_view sep = ", ") {
  std::string s;
  for (const auto& x : v)
    s += (s.empty() ? "" : std::string(sep)) + x;
  return s;
}

// Words of `text` wrapped to `width` columns (a word longer than that is cut).
std::vector<std::string> wrap(std::string_view text, size_t width) {
  std::vector<std::string> lines;
  std::string line;
  size_t i = 0;
  while (i < text.size()) {
    size_t j = text.find(' ', i);
    if (j == std::string_view::npos) j = text.size();
    std::string word(text.substr(i, j - i));
    i = j + 1;
    while (word.size() > width) {
      if (!line.empty()) lines.push_back(std::move(line)), line.clear();
      lines.push_back(word.substr(0, width));
      word.erase(0, width);
    }
    if (line.empty())
      line = word;
    else if (line.size() + 1 + word.size() <= width)
      line += " " + word;
    else
      lines.push_back(std::move(line)), line = word;
  }
  if (!line.empty() || lines.empty()) lines.push_back(line);
  return lines;
}

std::string clip(std::string s, size_t width) {
  if (s.size() > width) s = s.substr(0, width - 3) + "...";
  return s;
}

std::string_view attempt_word(Port25Attempt::Outcome o) {
  switch (o) {
    case Port25Attempt::Outcome::Banner:
      return "greeted";
    case Port25Attempt::Outcome::Timeout:
      return "timed out";
    case Port25Attempt::Outcome::Refused:
      return "refused";
    case Port25Attempt::Outcome::Reset:
      return "reset";
    case Port25Attempt::Outcome::Unresolved:
      return "does not resolve";
    case Port25Attempt::Outcome::LocalError:
      return "local error";
  }
  return "?";
}

}  // namespace

std::string_view word(Status s) {
  switch (s) {
    case Status::Ok:
      return "ok";
    case Status::Warn:
      return "warn";
    case Status::Fail:
      return "FAIL";
    case Status::Unchecked:
      return "could not check";
  }
  return "?";
}

std::string_view json_word(Status s) {
  switch (s) {
    case Status::Ok:
      return "ok";
    case Status::Warn:
      return "warn";
    case Status::Fail:
      return "fail";
    case Status::Unchecked:
      return "could_not_check";
  }
  return "?";
}

const std::vector<std::string>& default_dnsbl_zones() {
  // The lists big receivers consult most, each free for low-volume, non-commercial queries
  // (docs/identity.md gives the terms; Spamhaus refuses queries that come through public
  // resolvers and Barracuda answers only registered resolvers: "could not check" there).
  static const std::vector<std::string> zones{"zen.spamhaus.org", "bl.spamcop.net",
                                              "b.barracudacentral.org", "bl.mailspike.net",
                                              "psbl.surriel.com"};
  return zones;
}

std::optional<std::string> dnsbl_query_name(std::string_view ipv4, std::string_view zone) {
  unsigned char b[4];
  if (!parse_ipv4(ipv4, b) || zone.empty()) return std::nullopt;
  std::string z(zone);
  while (!z.empty() && z.back() == '.')
    z.pop_back();
  return std::to_string(b[3]) + "." + std::to_string(b[2]) + "." + std::to_string(b[1]) + "." +
         std::to_string(b[0]) + "." + z;
}

DnsblVerdict interpret_dnsbl(bool answered, const std::vector<std::string>& addresses,
                             std::string_view error) {
  if (!answered) return {DnsblResult::Failed, std::string(error)};
  if (addresses.empty()) return {DnsblResult::Clean, {}};
  // Any error code among the answers wins: the answer says nothing about our address.
  for (const auto& a : addresses) {
    unsigned char b[4];
    if (!parse_ipv4(a, b) || b[0] != 127) return {DnsblResult::Unexpected, a};
    if (b[1] == 255 && b[2] == 255) return {DnsblResult::Refused, a};
    // 127.0.0.1 is what a list answers for every name when it lists the world (a list that
    // shut down), never a listing of ours.
    if (b[1] == 0 && b[2] == 0 && b[3] == 1) return {DnsblResult::Unexpected, a};
  }
  return {DnsblResult::Listed, addresses.front()};
}

std::string_view to_string(Port25 p) {
  switch (p) {
    case Port25::Ok:
      return "ok";
    case Port25::Blocked:
      return "blocked";
    case Port25::Refused:
      return "refused";
    case Port25::CouldNotCheck:
      return "could_not_check";
    case Port25::NotChecked:
      return "not_checked";
  }
  return "?";
}

Port25 summarize_port25(const std::vector<Port25Attempt>& attempts) {
  if (attempts.empty()) return Port25::NotChecked;
  bool timeout = false, refused = false;
  for (const auto& a : attempts) {
    switch (a.outcome) {
      case Port25Attempt::Outcome::Banner:
        return Port25::Ok;  // any server that speaks proves the way out is open
      case Port25Attempt::Outcome::Timeout:
        timeout = true;
        break;
      case Port25Attempt::Outcome::Refused:
      case Port25Attempt::Outcome::Reset:
        refused = true;
        break;
      default:
        break;
    }
  }
  if (timeout) return Port25::Blocked;
  if (refused) return Port25::Refused;
  return Port25::CouldNotCheck;
}

uint64_t fd_room(uint64_t limit, uint64_t in_use) {
  const uint64_t reserve = std::max<uint64_t>(24, limit / 8);
  return limit > in_use + reserve ? limit - in_use - reserve : 0;
}

namespace {

void evaluate_source(SourceReport& r) {
  const SourceFacts& f = r.facts;
  auto add = [&](std::string name, Status st, std::string detail) {
    r.checks.push_back({std::move(name), st, std::move(detail)});
  };
  // Bind / proxy handshake.
  if (f.kind == SourceFacts::Kind::Default)
    add("bind", Status::Ok, "no --source-ip: the kernel picks the address");
  else if (f.binds)
    add("bind", Status::Ok, f.kind == SourceFacts::Kind::Proxy ? "the proxy answers" : "bound");
  else
    add("bind", Status::Fail,
        (f.kind == SourceFacts::Kind::Proxy ? "the proxy does not work: " : "cannot bind: ") +
            f.bind_error);

  // Identity.
  if (f.identity_checked) {
    if (f.ptr && f.fcrdns)
      add("ptr", Status::Ok, *f.ptr + " (forward-confirmed)");
    else if (f.ptr)
      add("ptr", Status::Warn, *f.ptr + ": its A/AAAA records do not contain " + f.name);
    else if (!f.identity_note.empty())
      add("ptr", Status::Unchecked, f.identity_note);
    else
      add("ptr", Status::Warn, "no PTR record for " + f.name);
  } else {
    add("ptr", Status::Unchecked, f.identity_note.empty() ? "not looked up" : f.identity_note);
  }
  if (!f.helo.empty()) {
    std::string how = f.helo_given ? "given" : f.ptr && f.fcrdns ? "from the PTR" : "this host";
    if (f.helo_fqdn)
      add("helo", Status::Ok, f.helo + " (" + how + ")");
    else
      add("helo", Status::Warn,
          f.helo + " (" + how + ") is not a fully-qualified name: servers may refuse it");
  }

  // Blocklists.
  std::vector<std::string> listed_text;
  for (const auto& [zone, v] : f.dnsbl) {
    switch (v.result) {
      case DnsblResult::Clean:
        break;
      case DnsblResult::Listed:
        r.dnsbl_listed.push_back(zone);
        listed_text.push_back(zone + " (" + v.answer + ")");
        break;
      default:
        r.dnsbl_unchecked.push_back(zone);
        break;
    }
  }
  if (!f.dnsbl_skipped.empty()) {
    add("dnsbl", Status::Unchecked, f.dnsbl_skipped);
  } else if (!f.dnsbl.empty()) {
    if (!listed_text.empty())
      add("dnsbl", Status::Fail, "listed on " + join(listed_text));
    else if (r.dnsbl_unchecked.size() == f.dnsbl.size())
      add("dnsbl", Status::Unchecked, "no list answered: " + join(r.dnsbl_unchecked));
    else
      add("dnsbl", Status::Ok,
          "not listed on " + std::to_string(f.dnsbl.size() - r.dnsbl_unchecked.size()) + " of " +
              std::to_string(f.dnsbl.size()) + " lists");
    if (!listed_text.empty() || r.dnsbl_unchecked.size() != f.dnsbl.size()) {
      for (const auto& [zone, v] : f.dnsbl) {
        if (v.result == DnsblResult::Refused)
          add("dnsbl", Status::Unchecked,
              zone + " refuses this resolver (" + v.answer + "): could not check");
        else if (v.result == DnsblResult::Failed)
          add("dnsbl", Status::Unchecked,
              zone + ": " + (v.answer.empty() ? "no answer" : v.answer));
        else if (v.result == DnsblResult::Unexpected)
          add("dnsbl", Status::Unchecked, zone + " answered " + v.answer + ", not a list's code");
      }
    } else {
      for (const auto& [zone, v] : f.dnsbl)
        if (v.result == DnsblResult::Refused)
          r.checks.back().detail += "; " + zone + " refuses this resolver (" + v.answer + ")";
    }
  }

  // Port 25.
  r.port25 = summarize_port25(f.port25);
  const Port25Attempt* decisive = nullptr;
  for (const auto& a : f.port25)
    if (a.outcome == Port25Attempt::Outcome::Banner) {
      decisive = &a;
      break;
    }
  switch (r.port25) {
    case Port25::Ok:
      add("port 25", decisive->code == 220 ? Status::Ok : Status::Warn,
          decisive->target + " greeted: " + decisive->detail);
      break;
    case Port25::Blocked: {
      std::vector<std::string> t;
      for (const auto& a : f.port25)
        if (a.outcome == Port25Attempt::Outcome::Timeout) t.push_back(a.target);
      add("port 25", Status::Fail,
          "port 25 looks blocked: use --proxy or another network (" + join(t) + " timed out)");
      break;
    }
    case Port25::Refused: {
      std::vector<std::string> t;
      for (const auto& a : f.port25)
        if (a.outcome == Port25Attempt::Outcome::Refused ||
            a.outcome == Port25Attempt::Outcome::Reset)
          t.push_back(a.target + " " + std::string(attempt_word(a.outcome)));
      add("port 25", Status::Fail, "connections to port 25 are refused: " + join(t));
      break;
    }
    case Port25::CouldNotCheck: {
      // Usually one cause for every target (a resolver that knows none of them): said once.
      const auto& a = f.port25.front();
      std::string first = a.target + (a.detail.empty() ? " " + std::string(attempt_word(a.outcome))
                                                       : ": " + a.detail);
      add("port 25", Status::Unchecked,
          f.port25.size() == 1 ? first
                               : "none of " + std::to_string(f.port25.size()) +
                                     " targets could be tried (" + first + ")");
      break;
    }
    case Port25::NotChecked:
      add("port 25", Status::Unchecked,
          f.port25_skipped.empty() ? "not checked" : f.port25_skipped);
      break;
  }

  // Usable, rotation, problems.
  std::vector<std::string> out;
  if (!f.binds)
    out.push_back(f.kind == SourceFacts::Kind::Proxy ? "the proxy does not work"
                                                     : "it does not bind");
  if (!listed_text.empty()) out.push_back("listed on " + join(listed_text));
  if (r.port25 == Port25::Blocked) out.push_back("port 25 looks blocked");
  if (r.port25 == Port25::Refused) out.push_back("port 25 connections are refused");
  r.usable = out.empty();
  r.out_reason = join(out, "; ");
  for (const auto& c : r.checks)
    if (c.status == Status::Warn || c.status == Status::Fail)
      r.problems.push_back(c.name + ": " + c.detail);
}

}  // namespace

Report evaluate(std::vector<SourceFacts> sources, const GlobalFacts& g, const Options& opts) {
  Report rep;
  for (auto& f : sources) {
    SourceReport r;
    r.facts = std::move(f);
    r.checked_at_ms = opts.checked_at_ms;
    evaluate_source(r);
    // A source that does not bind cannot be kept: no session could use it.
    r.in_rotation = r.usable || (opts.keep_unhealthy && r.facts.binds);
    rep.sources.push_back(std::move(r));
  }

  // Resolver.
  if (!g.resolver_checked)
    rep.global.push_back({"resolver", Status::Unchecked, g.resolver + ": not checked"});
  else if (g.resolver_answers)
    rep.global.push_back({"resolver", Status::Ok, g.resolver + " answers"});
  else
    rep.global.push_back({"resolver", Status::Fail,
                          "the resolver " + g.resolver +
                              " does not answer: nothing can be "
                              "verified (--dns IP[:PORT])"});

  // Clock: not before the binary was built; within 5 minutes of a greeting's date.
  {
    Status st = Status::Ok;
    std::string d;
    char buf[64] = "";
    std::time_t t = static_cast<std::time_t>(g.now_unix);
    std::tm tm{};
    gmtime_r(&t, &tm);
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
    d = buf;
    if (g.build_unix > 0 && g.now_unix + 86400 < g.build_unix) {
      st = Status::Warn;
      d += ": before this binary was built: the clock is wrong";
    } else if (g.skew && (*g.skew > 300 || *g.skew < -300)) {
      st = Status::Warn;
      d += ": " + std::to_string(*g.skew > 0 ? *g.skew : -*g.skew) + " s " +
           (*g.skew > 0 ? "ahead of " : "behind ") + g.skew_source + "'s clock";
    } else if (g.skew) {
      d += " (within " + std::to_string(std::max<int64_t>(1, *g.skew < 0 ? -*g.skew : *g.skew)) +
           " s of " + g.skew_source + ")";
    } else {
      d += " (after the build date; no greeting carried a date)";
    }
    rep.global.push_back({"clock", st, d});
  }

  // Open files.
  bool fd_fail = false;
  if (g.fd_checked) {
    const uint64_t limit = g.fd_hard;  // verify raises the soft limit to the hard one
    std::string lim =
        "soft " + std::to_string(g.fd_soft) + ", hard " +
        (g.fd_hard == UINT64_MAX ? std::string("unlimited") : std::to_string(g.fd_hard));
    if (g.fd_hard == UINT64_MAX) {
      rep.global.push_back({"open files", Status::Ok, lim});
    } else {
      const uint64_t room = fd_room(limit, g.fd_in_use);
      const uint64_t need = std::min<uint64_t>(g.concurrency, 16);
      if (room < std::max<uint64_t>(need, 1)) {
        fd_fail = true;
        rep.global.push_back(
            {"open files", Status::Fail,
             lim + ": room for " + std::to_string(room) + " sessions; raise it (ulimit -n)"});
      } else if (room < g.concurrency) {
        rep.global.push_back({"open files", Status::Warn,
                              lim + ": room for " + std::to_string(room) + " of the " +
                                  std::to_string(g.concurrency) +
                                  " sessions asked; verify lowers its concurrency"});
      } else {
        rep.global.push_back(
            {"open files", Status::Ok,
             lim + ": room for the " + std::to_string(g.concurrency) + " sessions asked"});
      }
    }
  }

  // The exit code.
  size_t usable = 0, blocked = 0, with_port25 = 0;
  for (const auto& s : rep.sources) {
    usable += s.usable;
    if (s.port25 != Port25::NotChecked && s.port25 != Port25::CouldNotCheck) ++with_port25;
    if (s.port25 == Port25::Blocked || s.port25 == Port25::Refused) ++blocked;
  }
  if (g.resolver_checked && !g.resolver_answers)
    rep.failures.push_back("the resolver " + g.resolver + " does not answer");
  if (!rep.sources.empty() && with_port25 == rep.sources.size() && blocked == rep.sources.size())
    rep.failures.push_back(
        "port 25 does not work from any source (blocked or refused): use --proxy or another "
        "network");
  else if (!rep.sources.empty() && usable == 0)
    rep.failures.push_back("no usable source: every source " +
                           std::string(rep.sources.size() == 1 ? "is" : "is") +
                           " listed, blocked or does not bind");
  if (fd_fail) rep.failures.push_back("the open-file limit is too low (ulimit -n)");
  rep.exit_code = rep.failures.empty() ? 0 : 1;
  for (const auto& s : rep.sources)
    for (const auto& p : s.problems)
      rep.warnings.push_back(s.facts.name + ": " + p);
  for (const auto& c : rep.global)
    if (c.status == Status::Warn) rep.warnings.push_back(c.name + ": " + c.detail);
  return rep;
}

namespace {

// "  name        status           detail", the detail wrapped under its column.
void row(std::string& out, const Check& c, size_t width) {
  constexpr size_t kName = 12, kStatus = 16;
  const size_t indent = 2 + kName + kStatus;
  const size_t room = width > indent + 20 ? width - indent : 20;
  auto lines = wrap(c.detail, room);
  char head[64];
  std::snprintf(head, sizeof head, "  %-*s%-*s", int(kName), c.name.c_str(), int(kStatus),
                std::string(word(c.status)).c_str());
  out += head + lines[0] + "\n";
  for (size_t i = 1; i < lines.size(); ++i)
    out += std::string(indent, ' ') + lines[i] + "\n";
}

}  // namespace

std::string format_table(const Report& r, size_t width) {
  std::string out;
  for (const auto& s : r.sources) {
    std::string kind = s.facts.kind == SourceFacts::Kind::Proxy     ? "proxy "
                       : s.facts.kind == SourceFacts::Kind::Default ? ""
                                                                    : "source ";
    std::string title = kind + s.facts.name;
    if (s.facts.kind == SourceFacts::Kind::Default) title = "source (the kernel's choice)";
    out += clip(title, width) + "\n";
    for (const auto& c : s.checks)
      row(out, c, width);
    if (s.in_rotation && !s.usable)
      row(out,
          {"rotation", Status::Warn,
           "kept in rotation (--keep-unhealthy-sources): " + s.out_reason},
          width);
    else if (!s.in_rotation)
      row(out, {"rotation", Status::Fail, "out of rotation: " + s.out_reason}, width);
    out += "\n";
  }
  out += "global\n";
  for (const auto& c : r.global)
    row(out, c, width);
  out += "\n";
  if (r.exit_code == 0) {
    size_t warns = 0;
    for (const auto& s : r.sources)
      for (const auto& c : s.checks)
        warns += c.status != Status::Ok;
    for (const auto& c : r.global)
      warns += c.status != Status::Ok;
    std::string v = warns ? "ready to verify, with " + std::to_string(warns) +
                                " warning(s) or unchecked item(s) above (exit 0)"
                          : "ready to verify: every check passed (exit 0)";
    for (const auto& l : wrap(v, width))
      out += l + "\n";
  } else {
    for (const auto& f : r.failures)
      for (const auto& l : wrap("FAIL: " + f, width))
        out += l + "\n";
    out += "verification would fail (exit 1)\n";
  }
  return out;
}

nlohmann::json source_json(const SourceReport& s) {
  const auto& f = s.facts;
  nlohmann::json j;
  j["helo"] = f.helo;
  j["helo_fqdn"] = f.helo_fqdn;
  j["ptr"] = f.ptr ? nlohmann::json(*f.ptr) : nlohmann::json(nullptr);
  j["fcrdns"] = f.fcrdns;
  j["dnsbl_listed"] = s.dnsbl_listed;
  j["dnsbl_unchecked"] = s.dnsbl_unchecked;
  j["port25"] = std::string(to_string(s.port25));
  j["in_rotation"] = s.in_rotation;
  j["checked_at_ms"] = s.checked_at_ms;
  j["problems"] = s.problems;
  return j;
}

nlohmann::json to_json(const Report& r) {
  nlohmann::json j;
  j["exit_code"] = r.exit_code;
  j["failures"] = r.failures;
  j["warnings"] = r.warnings;
  auto checks = [](const std::vector<Check>& cs) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& c : cs)
      a.push_back({{"check", c.name}, {"status", json_word(c.status)}, {"detail", c.detail}});
    return a;
  };
  j["global"] = checks(r.global);
  j["sources"] = nlohmann::json::array();
  for (const auto& s : r.sources) {
    nlohmann::json o = source_json(s);
    o["source"] = s.facts.name;
    o["kind"] = s.facts.kind == SourceFacts::Kind::Proxy     ? "proxy"
                : s.facts.kind == SourceFacts::Kind::Default ? "default"
                                                             : "ip";
    o["usable"] = s.usable;
    o["out_reason"] = s.out_reason;
    nlohmann::json bl = nlohmann::json::object();
    for (const auto& [zone, v] : s.facts.dnsbl) {
      static constexpr const char* kWords[] = {"clean", "listed", "refused", "failed",
                                               "unexpected"};
      bl[zone] = {{"result", kWords[static_cast<int>(v.result)]}, {"answer", v.answer}};
    }
    o["dnsbl"] = bl;
    nlohmann::json p25 = nlohmann::json::array();
    for (const auto& a : s.facts.port25) {
      static constexpr const char* kWords[] = {"banner", "timeout",    "refused",
                                               "reset",  "unresolved", "local_error"};
      p25.push_back({{"target", a.target},
                     {"address", a.address},
                     {"outcome", kWords[static_cast<int>(a.outcome)]},
                     {"code", a.code},
                     {"detail", a.detail}});
    }
    o["port25_attempts"] = p25;
    o["checks"] = checks(s.checks);
    j["sources"].push_back(std::move(o));
  }
  return j;
}

std::vector<std::string> short_lines(const Report& r, size_t width) {
  std::vector<std::string> lines;
  auto say = [&](std::string s) { lines.push_back(clip(std::move(s), width)); };
  std::vector<std::string> unchecked_zones, unchecked_port25;
  for (const auto& s : r.sources) {
    const std::string& n = s.facts.name;
    if (!s.in_rotation)
      say("doctor: " + n + " is out of rotation: " + s.out_reason);
    else if (!s.usable)
      say("doctor: " + n + " kept in rotation though " + s.out_reason);
    for (const auto& c : s.checks) {
      if (c.status == Status::Warn && c.name != "dnsbl" && c.name != "port 25")
        say("doctor: " + n + ": " + c.name + ": " + c.detail);
    }
    for (const auto& z : s.dnsbl_unchecked)
      if (std::find(unchecked_zones.begin(), unchecked_zones.end(), z) == unchecked_zones.end())
        unchecked_zones.push_back(z);
    if (s.port25 == Port25::CouldNotCheck &&
        std::find(unchecked_port25.begin(), unchecked_port25.end(), "port 25") ==
            unchecked_port25.end())
      unchecked_port25.push_back("port 25");
  }
  for (const auto& c : r.global)
    if (c.status == Status::Warn || c.status == Status::Fail)
      say("doctor: " + c.name + ": " + c.detail);
  if (!unchecked_zones.empty() || !unchecked_port25.empty()) {
    std::vector<std::string> what = unchecked_port25;
    if (!unchecked_zones.empty())
      what.push_back(std::to_string(unchecked_zones.size()) + " blocklist(s)");
    // A warning, not a finding: the check did not run (the resolver could not name the targets
    // or lists), so nothing is known either way; --quiet keeps it, as it keeps warnings.
    say("warning: doctor could not check " + join(what, " and ") + " (mxprobe doctor says why)");
  }
  return lines;
}

std::optional<int64_t> greeting_date(std::string_view line) {
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  // Look for "D Mon YYYY HH:MM:SS +ZZZZ" anywhere in the line.
  for (size_t i = 0; i + 3 <= line.size(); ++i) {
    int mon = -1;
    for (int m = 0; m < 12; ++m)
      if (line.substr(i, 3) == kMonths[m]) mon = m;
    if (mon < 0 || i < 2 || line[i - 1] != ' ') continue;
    size_t ds = i - 1;
    while (ds > 0 && line[ds - 1] >= '0' && line[ds - 1] <= '9')
      --ds;
    int day = 0, year = 0, hh = 0, mm = 0, ss = 0;
    char sign = '+';
    int zone = 0;
    std::string rest(line.substr(ds));
    char mname[4] = {};
    if (std::sscanf(rest.c_str(), "%d %3s %d %d:%d:%d %c%4d", &day, mname, &year, &hh, &mm, &ss,
                    &sign, &zone) != 8)
      continue;
    if (year < 1970 || day < 1 || day > 31 || (sign != '+' && sign != '-')) continue;
    std::tm tm{};
    tm.tm_year = year - 1900;
    tm.tm_mon = mon;
    tm.tm_mday = day;
    tm.tm_hour = hh;
    tm.tm_min = mm;
    tm.tm_sec = ss;
    int64_t t = timegm(&tm);
    const int64_t off = (zone / 100) * 3600 + (zone % 100) * 60;
    return sign == '+' ? t - off : t + off;
  }
  return std::nullopt;
}

int64_t build_date(std::string_view date) {
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  if (date.size() < 11) return 0;
  int mon = -1;
  for (int m = 0; m < 12; ++m)
    if (date.substr(0, 3) == kMonths[m]) mon = m;
  int day = 0, year = 0;
  std::string rest(date.substr(3));
  if (mon < 0 || std::sscanf(rest.c_str(), "%d %d", &day, &year) != 2) return 0;
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = mon;
  tm.tm_mday = day;
  return timegm(&tm);
}

}  // namespace mxp::doctor
