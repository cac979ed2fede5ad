// `mxprobe doctor`'s decisions, sans-I/O: what a DNS blocklist's answer means, what the port-25
// attempts of a source add up to, which source starts out of rotation, the exit code, and the
// report as an 80-column table, as JSON and as the short start-up lines. The checks themselves
// (sockets, DNS queries) run on the loop (doctor/runner.hpp) and hand their raw facts here.
// docs/identity.md ("Reading doctor") states the rules this file implements.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mxp::doctor {

// The status words of the table: ok, warn, FAIL, could not check.
enum class Status : uint8_t { Ok, Warn, Fail, Unchecked };
std::string_view word(Status s);       // "ok", "warn", "FAIL", "could not check"
std::string_view json_word(Status s);  // "ok", "warn", "fail", "could_not_check"

// One row of the table.
struct Check {
  std::string name;  // "bind", "ptr", "helo", "dnsbl", "port 25", "resolver"...
  Status status = Status::Ok;
  std::string detail;
};

// ---- DNS blocklists -------------------------------------------------------------------------

// The default zones (docs/identity.md says why each, and their terms of use).
const std::vector<std::string>& default_dnsbl_zones();

// "11.0.42.127.bl.example" for 127.42.0.11 and zone "bl.example"; nullopt when ip is not a
// dotted IPv4 address (IPv6 blocklists are not checked).
std::optional<std::string> dnsbl_query_name(std::string_view ipv4, std::string_view zone);

enum class DnsblResult : uint8_t {
  Clean,       // NXDOMAIN or no A record: not listed
  Listed,      // an answer in 127.0.0.0/8 outside 127.255.255.0/24
  Refused,     // 127.255.255.0/24: the list refuses this resolver or querier (Spamhaus's
               // 127.255.255.252/254/255): could not check, never clean
  Failed,      // no usable answer (SERVFAIL, REFUSED, timeout): could not check
  Unexpected,  // an address outside 127.0.0.0/8 (a resolver that rewrites NXDOMAIN): could not
               // check
};
struct DnsblVerdict {
  DnsblResult result = DnsblResult::Failed;
  std::string answer;  // the A record that decided ("127.0.0.2"), or the failure's text
};
// answered: the resolver gave an answer about the name (records, NODATA or NXDOMAIN);
// addresses: the A records, dotted.
DnsblVerdict interpret_dnsbl(bool answered, const std::vector<std::string>& addresses,
                             std::string_view error = {});

// ---- outbound port 25 -----------------------------------------------------------------------

enum class Port25 : uint8_t { Ok, Blocked, Refused, CouldNotCheck, NotChecked };
std::string_view to_string(Port25 p);  // "ok", "blocked", "refused", "could_not_check"...

struct Port25Attempt {
  enum class Outcome : uint8_t {
    Banner,      // the server spoke: `code` is its greeting's reply code
    Timeout,     // no connection (or no greeting) in time: filtered on the way
    Refused,     // connection refused (RST to our SYN)
    Reset,       // the connection was reset or closed before a greeting
    Unresolved,  // the target name has no address through the configured resolver
    LocalError,  // our side: bind failed, no descriptor...
  };
  std::string target;   // "gmail-smtp-in.l.google.com:25"
  std::string address;  // the IP connected to ("" when unresolved)
  Outcome outcome = Outcome::Unresolved;
  int code = 0;        // Banner: 220, 421, 554...
  std::string detail;  // the greeting's first line, or the error
};
// What a source's attempts add up to: ok when any target greeted us; else blocked when any
// resolved target timed out, refused when every resolved target refused or reset; could not
// check when no target resolved (or only our side failed); not checked without attempts.
Port25 summarize_port25(const std::vector<Port25Attempt>& attempts);

// ---- the facts gathered, and the report ---------------------------------------------------

struct SourceFacts {
  enum class Kind : uint8_t { Ip, Proxy, Default };
  std::string name;  // the IP, the proxy's display form, or "default" (the kernel chooses)
  Kind kind = Kind::Ip;
  bool binds = true;
  std::string bind_error;  // when !binds: why ("cannot assign requested address")
  // Identity (engine/identity): the HELO name used, whether it is fully qualified, the PTR name
  // and whether it is forward-confirmed. identity_checked false: not looked up (proxies, the
  // default source), identity_note says why.
  bool identity_checked = false;
  std::string helo;
  bool helo_given = false;  // --helo or the policy set it
  bool helo_fqdn = false;
  std::optional<std::string> ptr;
  bool fcrdns = false;
  std::string identity_note;  // a lookup that failed, or why nothing was looked up
  // Blocklists: one verdict per zone, in the order asked. dnsbl_skipped: why none was asked
  // (IPv6, a proxy, the default source).
  std::vector<std::pair<std::string, DnsblVerdict>> dnsbl;
  std::string dnsbl_skipped;
  std::vector<Port25Attempt> port25;
  std::string port25_skipped;  // why no attempt was made (a proxy, --no-port25...)
};

struct GlobalFacts {
  std::string resolver;  // "127.0.0.1:5353" or "the system resolver (/etc/resolv.conf)"
  bool resolver_answers = true;
  bool resolver_checked = true;
  int64_t now_unix = 0;    // this host's clock
  int64_t build_unix = 0;  // the binary's build date (0: unknown)
  std::optional<int64_t>
      skew;                 // seconds our clock is ahead of a greeting's Date (negative: behind)
  std::string skew_source;  // the host whose greeting carried the date
  bool fd_checked = false;
  uint64_t fd_soft = 0, fd_hard = 0, fd_in_use = 0;  // RLIMIT_NOFILE (hard: UINT64_MAX = none)
  uint32_t concurrency = 0;                          // SMTP sessions at once asked for
};

struct Options {
  bool keep_unhealthy = false;  // listed or port-25-blocked sources stay in rotation
  int64_t checked_at_ms = 0;    // wall clock of the check, for the report
};

struct SourceReport {
  SourceFacts facts;
  std::vector<Check> checks;
  Port25 port25 = Port25::NotChecked;
  std::vector<std::string> dnsbl_listed, dnsbl_unchecked;
  bool usable = true;                 // binds, not listed, port 25 not blocked
  bool in_rotation = true;            // usable, or kept (--keep-unhealthy-sources)
  std::string out_reason;             // why not in rotation ("listed on bl.example (127.0.0.2)")
  std::vector<std::string> problems;  // one line each, for the snapshot and the start-up lines
  int64_t checked_at_ms = 0;
};

struct Report {
  std::vector<SourceReport> sources;
  std::vector<Check> global;
  // 0: nothing would make verification fail; 1: something would (no usable source, resolver
  // dead, port 25 blocked on every source, open-file limit too low).
  int exit_code = 0;
  std::vector<std::string> failures;  // why exit_code is 1, one line each
  std::vector<std::string> warnings;  // the rest worth saying, one line each
};

// The sessions the open-file limit leaves room for: what verify would lower its concurrency to
// (engine/pipeline, size_to_fd_limit: the soft limit raised to the hard one, minus what is in
// use and a reserve of max(24, limit/8)).
uint64_t fd_room(uint64_t limit, uint64_t in_use);

Report evaluate(std::vector<SourceFacts> sources, const GlobalFacts& global, const Options& opts);

// The table: one block per source, then the global checks, then the verdict; every line at most
// `width` columns (details wrap under their column).
std::string format_table(const Report& r, size_t width = 80);
// The JSON report (schema: docs/identity.md, "doctor --json").
nlohmann::json to_json(const Report& r);
// A source's `doctor` object of serve's snapshot (docs/protocol.md).
nlohmann::json source_json(const SourceReport& s);
// The start-up summary: one line per problem (at most `width` columns each), then nothing else;
// "could not check" of blocklists and port 25 is folded into one line for all sources.
std::vector<std::string> short_lines(const Report& r, size_t width = 80);

// Seconds since the epoch of an RFC 5322 date in an SMTP greeting ("220 mx.example ESMTP ...
// Mon, 7 Dec 2026 05:01:02 +0000"), nullopt when the line has none.
std::optional<int64_t> greeting_date(std::string_view line);
// Seconds since the epoch of a __DATE__ string ("Dec  7 2026"), 0 when it does not parse.
int64_t build_date(std::string_view date);

}  // namespace mxp::doctor
