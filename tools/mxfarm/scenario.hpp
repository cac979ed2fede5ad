// mxfarm's scenario: the DNS names, the MX hosts with their behaviour, and the mailboxes of each
// domain. Loaded from and saved to JSON (format in docs/mxfarm.md); `run`, `gen` and `truth` all
// work on this one model. Independent of engine/ on purpose: mxfarm is a test double.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace mxfarm {

// Reply texts are modelled on real servers; a host picks its banner/EHLO/MAIL texts from its
// style, a domain its RCPT texts from its own.
enum class Style : uint8_t { Postfix, Exchange, Gmail, Yahoo };
inline constexpr int kStyleCount = 4;

// How the scenario's DNS answers for a domain.
enum class DnsKind : uint8_t {
  Mx,        // MX records (the usual case)
  AOnly,     // no MX, an A record: the implicit MX (RFC 5321 section 5.1)
  NullMx,    // "MX 0 ." (RFC 7505): the domain accepts no mail
  NoMail,    // the name exists (a TXT record) but has neither MX nor A
  NxDomain,  // the name does not exist
  ServFail,  // the lookup fails with SERVFAIL
  Timeout,   // the lookup is never answered
};

enum class MailboxStatus : uint8_t { Ok, Full, FullPerm, Disabled };

// SMTP commands the farm knows, also used to say "at which command" a behaviour triggers.
// Connect = right after the TCP accept, before the banner.
enum class Cmd : uint8_t {
  Connect,
  Helo,
  Ehlo,
  Mail,
  Rcpt,
  Data,
  Rset,
  Noop,
  Quit,
  Vrfy,
  StartTls,
  Other
};
inline constexpr int kCmdCount = 12;

// A reply that breaks the protocol, sent instead of the normal reply to one command.
enum class BrokenKind : uint8_t { None, Garbage, Endless, Overlong };

struct Cidr {
  uint32_t net = 0;  // host byte order
  uint32_t mask = 0;
  bool contains(uint32_t ip) const { return (ip & mask) == net; }
};

struct HostBehaviour {
  bool listen = true;  // false: nothing listens, connections are refused
  uint32_t banner_delay_ms = 0;
  uint32_t reply_delay_ms = 0;      // before every reply after the banner
  uint32_t tarpit_byte_ms = 0;      // >0: every reply is sent one byte per this many ms
  uint32_t max_conn_per_ip = 0;     // >0: concurrent connections per client IP, more get 421
  uint32_t rate_count = 0;          // >0: more than this many connections per client IP ...
  uint32_t rate_window_s = 0;       // ... within this many seconds get 421
  std::vector<Cidr> block_clients;  // clients refused with a blocklist reply
  Cmd block_at = Cmd::Rcpt;         // Connect (banner), Helo, Mail or Rcpt
  uint32_t soft_error_limit = 0;    // Postfix-style error limits; 0 = off
  uint32_t hard_error_limit = 0;
  uint32_t error_sleep_ms = 0;
  uint32_t max_rcpts = 0;  // >0: RCPTs beyond this many per transaction get 452 4.5.3
  // >0: the host's replies (greetings included) go through one queue served at this many per
  // second: below it a reply waits about reply_delay_ms, above it the queue and the wait grow.
  uint32_t capacity_per_s = 0;
  // >0: every stall_every_s seconds from the farm's start the host answers nothing for stall_ms,
  // then sends what came due meanwhile.
  uint32_t stall_every_s = 0;
  uint32_t stall_ms = 0;
  bool pipelining = true;
  bool starttls = false;
  // MAIL before TLS gets "530 5.7.0 Must issue a STARTTLS command first" (needs starttls, and
  // `run --tls-cert/--tls-key` so that STARTTLS can succeed).
  bool tls_required = false;
  bool ehlo = true;               // false: EHLO is refused, HELO works
  std::optional<Cmd> drop_after;  // close (or reset) instead of replying to this command
  bool drop_reset = false;
  BrokenKind broken = BrokenKind::None;
  Cmd broken_at = Cmd::Connect;
  uint64_t broken_bytes = 0;      // endless: stop after this many bytes; overlong: line length
  uint32_t greylist_delay_s = 0;  // >0: greylist every recipient of this host
  // Postfix reject_non_fqdn_helo_hostname with smtpd_delay_reject = yes: a HELO name that is
  // neither a dotted host name nor an address literal is refused at RCPT TO (504 5.5.2).
  bool reject_non_fqdn_helo = false;
  // Sender checks (docs/mxfarm.md, `refuse_sender`): the null sender and/or senders at these
  // domains (lower case) are refused at MAIL, or at RCPT like Postfix's smtpd_delay_reject.
  bool refuse_null_sender = false;
  std::vector<std::string> refuse_sender_domains;
  Cmd refuse_sender_at = Cmd::Mail;  // Mail or Rcpt
};

struct Host {
  std::string name;
  std::string ip;      // dotted quad in 127.0.0.0/8
  uint32_t ip_v4 = 0;  // host byte order
  uint16_t port = 25;
  // IPv6: an address (e.g. "::1") gives the host an AAAA record and a listener there too, on
  // the same port; ipv4 false leaves out its A record and IPv4 listener (an IPv6-only host;
  // "ip" still names it in the report).
  std::string ip6;
  bool ipv4 = true;
  Style style = Style::Postfix;
  HostBehaviour b;
};

struct MxRecord {
  uint16_t pref = 10;
  std::string host;     // a Host's name
  int host_index = -1;  // resolved at load
};

struct Domain {
  std::string name;  // lower case
  DnsKind dns = DnsKind::Mx;
  std::vector<MxRecord> mx;  // DnsKind::Mx
  std::string a_host;        // DnsKind::AOnly: the Host that answers at the domain's A address
  int a_host_index = -1;
  Style style = Style::Postfix;
  bool catch_all = false;
  uint32_t greylist_delay_s = 0;
  std::map<std::string, MailboxStatus> mailboxes;  // local part (lower case) -> status
};

// A client (prober) address and its reverse DNS: `confirm` gives the PTR name an A record with
// the address too (forward-confirmed); false leaves the PTR alone (a PTR not confirming).
struct Client {
  std::string ip;  // in 127.0.0.0/8
  std::string ptr;
  bool confirm = true;
};

struct DnsConfig {
  std::string ip = "127.0.0.1";
  uint16_t port = 5353;
  uint32_t ttl = 60;
};

// A DNS blocklist zone served by the farm's dnsmasq (`mxprobe doctor`): names under it answer
// NXDOMAIN (not listed) unless listed; `listed` maps a client IPv4 address to its answer
// ("127.0.0.2": listed); `answer_all`, when set, is the A answer of every name under the zone
// (e.g. "127.255.255.254", Spamhaus's "public resolver refused").
struct DnsblZone {
  std::string zone;
  std::vector<std::pair<std::string, std::string>> listed;  // (client IP, A answer)
  std::string answer_all;
};

struct Scenario {
  DnsConfig dns;
  std::vector<DnsblZone> dnsbl;
  std::vector<Host> hosts;
  std::vector<Domain> domains;
  std::vector<Client> clients;

  // Hosts a domain's mail goes to, in the order a client tries them (MX preference; the implicit
  // MX for AOnly; none for the other DNS kinds). Ties keep the scenario's order.
  std::vector<int> mail_hosts(const Domain& d) const;
  const Host* find_host(std::string_view name) const;
};

// Names as written in JSON.
std::string_view to_string(Style s);
std::string_view to_string(DnsKind k);
std::string_view to_string(MailboxStatus s);
std::string_view to_string(Cmd c);
std::string_view to_string(BrokenKind k);
std::optional<Style> parse_style(std::string_view s);
std::optional<Cmd> parse_cmd(std::string_view s);  // case-insensitive: "mail", "MAIL"...

std::optional<uint32_t> parse_ipv4(std::string_view s);  // host byte order
std::string format_ipv4(uint32_t ip);

// Parses and validates (unknown fields, dangling host names, duplicate listeners, addresses
// outside 127.0.0.0/8 are errors). On error returns nullopt and sets *error.
std::optional<Scenario> scenario_from_json(const nlohmann::json& j, std::string* error);
std::optional<Scenario> load_scenario(const std::string& path, std::string* error);
nlohmann::json scenario_to_json(const Scenario& s);

}  // namespace mxfarm
