// Truth rules (see truth.hpp and docs/mxfarm.md). They follow what the farm's servers do, in
// the order a session meets them: DNS, connect, banner, EHLO/HELO, MAIL, RCPT.
#include "truth.hpp"

#include <string>
#include <vector>

namespace mxfarm {

namespace {

constexpr Truth kDeliverable{"deliverable", "accepted"};
constexpr Truth kNotFound{"undeliverable", "mailbox_not_found"};
constexpr Truth kDisabled{"undeliverable", "mailbox_disabled"};
constexpr Truth kFull{"risky", "mailbox_full"};
constexpr Truth kCatchAll{"risky", "catch_all"};
constexpr Truth kNoSuchDomain{"undeliverable", "no_such_domain"};
constexpr Truth kNullMx{"undeliverable", "null_mx"};
constexpr Truth kNoMailServer{"undeliverable", "no_mail_server"};
constexpr Truth kDnsError{"unknown", "dns_error"};
constexpr Truth kBlocked{"unknown", "blocked"};
constexpr Truth kTimeout{"unknown", "timeout"};
constexpr Truth kConnFailed{"unknown", "connection_failed"};
constexpr Truth kProtocol{"unknown", "protocol_error"};

struct HostOutcome {
  Truth truth;
  bool next_mx;  // the verifier moves on to the next MX (RFC 5321 section 5.1)
};

// What one host answers for local@d, for a verifier that sends EHLO (HELO when EHLO is
// refused), MAIL, RCPT, retries greylisted recipients after the delay, respects connection
// limits, and starts new transactions/sessions before recipient or error limits bite.
HostOutcome host_outcome(const Host& h, const Domain& d, std::string_view local,
                         const TruthOptions& o) {
  const HostBehaviour& b = h.b;
  if (!b.listen) return {kConnFailed, true};
  bool blocked = false;
  for (const auto& c : b.block_clients)
    blocked |= c.contains(o.client_ip);
  // The stage at which each scripted event happens: connect, greeting command, MAIL, RCPT.
  const Cmd greet = b.ehlo ? Cmd::Ehlo : Cmd::Helo;
  for (Cmd stage : {Cmd::Connect, greet, Cmd::Mail, Cmd::Rcpt}) {
    // A connection closed or reset after the TCP handshake is a session failure, not a failed
    // connect (docs/verdicts.md: "connection closed" is protocol_error).
    if (b.drop_after == stage) return {kProtocol, false};
    if (b.broken != BrokenKind::None && b.broken_at == stage) return {kProtocol, false};
    // A reply slower than the verifier's timeout: the banner first, then every command.
    uint32_t delay = stage == Cmd::Connect ? b.banner_delay_ms : b.reply_delay_ms;
    if (delay >= o.timeout_ms) return {kTimeout, false};
    if (b.tarpit_byte_ms > 0 && uint64_t{b.tarpit_byte_ms} * 20 >= o.timeout_ms)
      return {kTimeout, false};  // every reply is longer than 20 bytes
    Cmd block_stage = b.block_at == Cmd::Helo ? greet : b.block_at;
    if (blocked && block_stage == stage) return {kBlocked, false};
  }
  auto it = d.mailboxes.find(std::string(local));
  if (it == d.mailboxes.end()) return {d.catch_all ? kCatchAll : kNotFound, false};
  switch (it->second) {
    case MailboxStatus::Ok:
      return {d.catch_all ? kCatchAll : kDeliverable, false};
    case MailboxStatus::Full:
    case MailboxStatus::FullPerm:
      return {kFull, false};
    case MailboxStatus::Disabled:
      return {kDisabled, false};
  }
  return {kProtocol, false};
}

std::string lower(std::string_view s) {
  std::string r(s);
  for (char& c : r)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return r;
}

}  // namespace

Truth truth_for(const Scenario& sc, const Domain& d, std::string_view local,
                const TruthOptions& o) {
  switch (d.dns) {
    case DnsKind::NxDomain:
      return kNoSuchDomain;
    case DnsKind::NullMx:
      return kNullMx;
    case DnsKind::NoMail:
      return kNoMailServer;
    case DnsKind::ServFail:
    case DnsKind::Timeout:
      return kDnsError;
    case DnsKind::Mx:
    case DnsKind::AOnly:
      break;
  }
  std::string l = lower(local);
  Truth last = kConnFailed;
  for (int h : sc.mail_hosts(d)) {
    HostOutcome r = host_outcome(sc.hosts[h], d, l, o);
    if (!r.next_mx) return r.truth;
    last = r.truth;
  }
  return last;
}

void write_truth_csv(const Scenario& sc, std::ostream& out, size_t count, size_t invalid,
                     const TruthOptions& o) {
  out << "email,verdict,reason\n";
  // Candidates per domain: its mailboxes, then two addresses that do not exist.
  std::vector<std::vector<std::string>> cand(sc.domains.size());
  size_t total = 0;
  for (size_t i = 0; i < sc.domains.size(); ++i) {
    for (const auto& [local, st] : sc.domains[i].mailboxes)
      cand[i].push_back(local);
    cand[i].push_back("nobody1");
    cand[i].push_back("nobody2");
    total += cand[i].size();
  }
  if (count == 0) count = total;
  size_t written = 0;
  for (size_t round = 0; written < count && !sc.domains.empty(); ++round) {
    for (size_t i = 0; i < sc.domains.size() && written < count; ++i) {
      if (count == total && round >= cand[i].size()) continue;
      std::string local =
          round < cand[i].size() ? cand[i][round] : "nobody" + std::to_string(round);
      const Domain& d = sc.domains[i];
      Truth t = truth_for(sc, d, local, o);
      out << local << '@' << d.name << ',' << t.verdict << ',' << t.reason << '\n';
      ++written;
    }
  }
  // Syntactically invalid addresses (RFC 5321 section 4.1.2 / 4.5.3.1): no domain lookup.
  static const char* const kInvalid[] = {"plainaddress", "@{d}",      "user@",     "a..b@{d}",
                                         ".user@{d}",    "user.@{d}", "us er@{d}", "user@@{d}",
                                         "user@{d}..",   "user@-{d}"};
  std::string dom = sc.domains.empty() ? "example.test" : sc.domains[0].name;
  for (size_t i = 0; i < invalid && i < std::size(kInvalid); ++i) {
    std::string a = kInvalid[i];
    if (auto p = a.find("{d}"); p != std::string::npos) a.replace(p, 3, dom);
    out << a << ",undeliverable,invalid_syntax\n";
  }
}

}  // namespace mxfarm
