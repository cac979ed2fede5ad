// The verification pipeline: addresses in, results out. It groups addresses by domain, asks DNS
// for the mail servers, and lets the scheduler (engine/sched) decide which SMTP session to open
// next: per domain, MX group and source IP token buckets and caps, fair round-robin among MX
// groups, greylisting retries from the same source IP, AIMD back-off, rotation away from blocked
// source IPs. It runs the sessions on the event loop (several addresses of one domain share a
// session), fails over to the next MX, probes each domain once for catch-all, and turns every
// outcome into a verdict through the verdict policy. It owns no socket: the loop does.
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "address/address.hpp"
#include "dns/mx.hpp"
#include "flags/access_list.hpp"
#include "flags/domain_data.hpp"
#include "loop/loop.hpp"
#include "pipeline/domain_report.hpp"
#include "pipeline/proxy_pool.hpp"
#include "pipeline/result.hpp"
#include "pipeline/session_tls.hpp"
#include "sched/catch_all.hpp"
#include "sched/scheduler.hpp"
#include "smtp/session.hpp"
#include "verdict/classify.hpp"

namespace mxp::pipeline {

// What a session in `stage` waits for, in words: "the TCP connection", "the banner", "the
// EHLO reply", "the RCPT TO reply"...
std::string awaited_name(smtp::Stage stage);

struct SourceAddress {
  loop::Endpoint endpoint;
  bool warming = false;  // new to the pool: starts at the policy's first warm-up share
  // The EHLO/HELO name sessions from this address give (its forward-confirmed PTR name, chosen
  // at start-up: docs/identity.md); "": VerifierConfig::session.helo_name.
  std::string helo;
};

struct VerifierConfig {
  // HELO name, MAIL FROM, PIPELINING. Stage timeouts, recipients per session and STARTTLS come
  // from the policy, per domain.
  smtp::SessionConfig session;
  // The TLS client context for STARTTLS (session.starttls); null: made with the defaults (no
  // certificate verification) the first time a server says 220 to STARTTLS.
  std::shared_ptr<const tls::ClientContext> tls;
  uint16_t smtp_port = 25;
  std::vector<SourceAddress> sources;  // the source-IP pool; empty: the kernel chooses
  // SOCKS5 proxies (docs/proxies.md). When given they are the source pool instead of `sources`:
  // each proxy is a source for the scheduler (budgets, rotation, blocks, warm-up), every
  // session goes through one, and a proxy that fails is out of rotation until a health check
  // passes again. A session lost with its proxy gives its addresses to another proxy.
  std::vector<proxy::ProxyUrl> proxies;
  loop::Duration proxy_check_timeout = std::chrono::seconds(10);  // connect + greeting + auth
  proxy::HealthSettings proxy_health;                             // re-check back-off
  // Rates, caps, retries, timeouts (docs/policy.md). Null: the built-in policy.
  std::shared_ptr<const sched::Policy> policy;
  // The remote servers' limits (per MX group and per domain) that the scheduler asks before
  // each grant (docs/architecture.md, "Seams"). Called once, by the constructor; null: the
  // scheduler's own in-process limits (sched::LocalRemoteLimits).
  std::function<std::unique_ptr<sched::RemoteLimits>()> remote_limits;
  // Domains remembered at once. Past this, idle domains (nothing queued, in flight or held) are
  // forgotten oldest first, so a list with millions of domains runs in bounded memory; a
  // forgotten domain seen again is looked up (DNS cache) and probed again.
  size_t max_domains = 50'000;
  // Tries per address at most, whatever the policy's retry.attempts (0: as the policy says).
  // `check` answers in real time: 1, so a greylisted address says so instead of waiting.
  uint32_t max_tries = 0;
  bool catch_all_probe = true;  // false: never probe (else as the policy says, per domain)
  // Disposable/free lists and typo suggestions (engine/flags). Null: those fields are null.
  std::shared_ptr<const flags::DomainData> domain_data;
  // Deny and allow lists (docs/usage.md, "Deny and allow lists"): a listed address or domain is
  // answered from the list (unknown/denied, unknown/not_allowed) and never sent anywhere, its
  // MX lookup included. Null: no lists.
  std::shared_ptr<const flags::AccessLists> lists;
  // Where domain checks (check_domain) report; called on the loop, never from check_domain.
  std::function<void(DomainReport&&)> on_domain_report;
  bool transcripts = false;  // keep each address's SMTP dialogue in its result
  // With `transcripts`: each line of the dialogue as it is sent or received ("C: ...", "S: ..."),
  // for the addresses (by submit id) for which `watched` says yes — a check someone watches
  // live. A session that already talked when the address joined it replays its lines first.
  std::function<bool(uint64_t id)> watched;
  std::function<void(uint64_t id, std::string_view line)> on_transcript_line;
  // Called (from the loop, never from submit) when the scheduler has room for sessions but no
  // queued address may start now and no DNS answer is awaited: the feeder may submit more.
  std::function<void()> on_starved;
  // Catch-all facts from earlier runs (the results cache): yes/no, or nullopt when unknown; and
  // what this run learned (nullopt: the probe could not tell). Called on the loop.
  std::function<std::optional<bool>(const std::string& domain)> catch_all_known;
  std::function<void(const std::string& domain, std::optional<bool> catch_all)> catch_all_learned;
  // Time spent waiting in each SMTP stage of a session (connect, banner, EHLO, ...), reported as
  // the session moves on; with PIPELINING, MAIL FROM and RCPT TO replies arrive together.
  std::function<void(smtp::Stage stage, std::chrono::nanoseconds waited)> on_stage;
  // A session was opened (connects/s).
  std::function<void()> on_session;
  // A recipient's answer from an MX group: the reply class (2, 4, 5; 0 when no reply decided:
  // timeout, closed, refused).
  std::function<void(sched::GroupId group, int reply_class)> on_reply;
  // The scheduler's events (back-off, recovery, blocks), as they happen.
  std::function<void(const sched::SchedEvent& event)> on_event;
  // The DNS resolver does not answer (docs/usage.md, "A resolver that does not answer"):
  // called once, with one line saying so. Lookups that went unanswered are held, not emitted:
  // their addresses wait (verify stops the job, leaving them for --resume; serve's jobs wait),
  // the resolver is checked again every 10 s and, once it answers, they are looked up again.
  std::function<void(const std::string& line)> on_resolver_down;
  // Instead of holding them, end those addresses unknown/dns_error, the cause in `error` (check).
  bool fail_when_resolver_down = false;
  // Operator-facing lines (back-off, recovery, blocks), without a trailing newline.
  std::function<void(const std::string&)> log;
};

struct VerifierStats {
  uint64_t submitted = 0, finished = 0;
  uint64_t sessions_started = 0, connect_failures = 0, failovers = 0, domains_evicted = 0;
  uint64_t retries = 0;         // tries given another go later (greylisting, 4xx, recipient limits)
  uint64_t withdrawn = 0;       // taken back by withdraw()
  uint64_t local_failures = 0;  // our own sockets that could not be made (EMFILE...)
  uint32_t active_sessions = 0;
};

class Verifier final : private loop::TimerHandler {
 public:
  using Emit = std::function<void(Result&&)>;
  Verifier(loop::Loop& loop, dns::MxResolver& resolver, VerifierConfig config, Emit emit);
  ~Verifier();
  Verifier(const Verifier&) = delete;
  Verifier& operator=(const Verifier&) = delete;

  // Queues one address (already parsed and valid). Work starts on the loop's next iteration;
  // the result comes through emit (never from inside submit).
  void submit(uint64_t id, uint64_t line, std::string email, address::Address addr);
  // Queues a domain check (docs/usage.md, "Domain checks"): the domain's MX lookup, then one
  // session through the scheduler like any address's, asking RCPT for a random address (the
  // domain's catch-all probe, shared with the addresses of the domain) or, when the catch-all
  // answer is known already or probing is off, for postmaster. `domain` is normalised (the
  // address parser's form). The report comes through config().on_domain_report.
  void check_domain(uint64_t id, std::string domain);
  // Addresses submitted and not yet emitted (nor withdrawn).
  uint64_t pending() const { return stats_.submitted - stats_.finished - stats_.withdrawn; }
  // Takes back the addresses with lo <= id < hi that no session has taken yet (queued or waiting
  // for a retry): no result will come for them. Appends their ids to `out`. O(addresses held).
  size_t withdraw(uint64_t lo, uint64_t hi, std::vector<uint64_t>& out);
  const VerifierStats& stats() const { return stats_; }
  const VerifierConfig& config() const { return cfg_; }
  // The DNS resolver is known not to answer (docs/usage.md): lookups are held until it does.
  bool resolver_down() const { return dns_down_; }
  std::string resolver_name() const { return resolver_.describe(); }
  // A new policy (SIGHUP): queued and in-flight work is kept, limits apply from now on.
  void set_policy(std::shared_ptr<const sched::Policy> policy);
  // New deny/allow lists (SIGHUP): they apply to what is submitted from now on.
  void set_lists(std::shared_ptr<const flags::AccessLists> lists) { cfg_.lists = std::move(lists); }
  // What the lists say of an address (flags::Listed::No without lists), for callers that answer
  // from a cache before they submit: a listed address is answered from the list instead.
  flags::Listed listed(const address::Address& a) const {
    return cfg_.lists ? cfg_.lists->check(a) : flags::Listed::No;
  }
  // The remote limits (VerifierConfig::remote_limits) have more for group g and/or domain d
  // (sched::kNone: not that one): the scheduler looks again, and sessions open on the next
  // iteration. From the loop, never from inside a call of the RemoteLimits seam.
  void remote_limits_changed(sched::GroupId g, sched::DomainId d);
  const sched::Scheduler& scheduler() const { return sched_; }
  // The proxy pool (source i of the scheduler is proxy i); null without proxies.
  const ProxyPool* proxies() const { return proxies_.get(); }
  // Source IP i taken out of rotation (out) or back in, by the start-up checks (app/doctor.hpp:
  // listed on a blocklist, port 25 blocked): no session starts from it, addresses pinned to it
  // lose the pin, and an MX group left without any source ends its addresses unknown/blocked.
  // The scheduler's "source down" state, as for proxies; ignored with proxies (the pool decides).
  void set_source_out(size_t i, bool out);

  // The busiest domains (most addresses not yet finished), for the operator's view.
  struct DomainView {
    std::string name, group;
    uint32_t pending = 0;           // queued, in flight or held for the catch-all probe
    uint32_t sessions = 0;          // open now
    std::optional<bool> catch_all;  // once its probe answered
  };
  std::vector<DomainView> busiest_domains(size_t n) const;

  // What each open session waits for now, for a live status line (`check` on a terminal): the
  // MX host, the IP:port connected to, the stage whose reply (or connect) is awaited, and since
  // when (the last progress of the session).
  struct WaitView {
    std::string host, address;
    smtp::Stage stage = smtp::Stage::Connect;
    loop::TimePoint since{};
  };
  std::vector<WaitView> waiting() const;
  uint32_t resolving() const { return resolving_; }  // domains whose MX lookup is under way

 private:
  struct Item;
  struct Domain;
  class SessionSlot;
  friend class SessionSlot;

  void on_timer(loop::TimerId id, uint64_t cookie) override;
  void kick();      // run schedule() on the next loop iteration
  void schedule();  // open every session the scheduler allows now; arm its next deadline
  void on_resolved(Domain& d, const dns::MxAnswer& answer);
  void start_session(const sched::Grant& grant);
  void session_done(SessionSlot* s, sched::SessionEnd how);
  void on_proxy_change(size_t i, bool up, const std::string& why);
  // A recipient's outcome from a session: final, retried later, or held for the catch-all probe.
  void on_outcome(SessionSlot& s, Item* item, const smtp::Outcome& outcome);
  // outcome: the reply that decided, copied into the result when there is one.
  void finish_item(Domain& d, Item* item, const verdict::Classification& c,
                   const smtp::Outcome* outcome);
  // The domain cannot be verified (its DNS failed): everything queued ends with `failure`.
  void fail_domain(Domain& d);
  void release_held(Domain& d);
  void emit_item(Domain& d, Item* item);
  // The record's retry_after for an unknown (verdict/retry.hpp), from the domain's retry
  // schedule and, for a block, how long our source still rests.
  std::optional<std::chrono::system_clock::time_point> retry_after(Domain& d, Item& item);
  void maybe_idle(Domain& d);  // joins the idle list when nothing is left to do for it
  void evict_idle();
  void log_events();
  // For a session of a domain with settings ds from scheduler source `source` (its HELO name;
  // the policy's helo / mail_from for the domain win). `clear_text`: the same without STARTTLS,
  // for an MX whose TLS handshake failed.
  const smtp::SessionConfig& session_config(const sched::DomainSettings& ds, sched::SourceId source,
                                            bool clear_text);
  std::shared_ptr<const tls::ClientContext> tls_context();
  Item* new_item();
  void free_item(Item* item);
  std::string random_local_part();
  std::string block_error(sched::GroupId g);
  // The record's `error` when the server refused every MAIL FROM up to `last` (an index as in
  // smtp::Outcome::sender).
  std::string sender_error(const smtp::SessionConfig& cfg, int last) const;
  // The sender to start a session of MX group g with: the latest one a session of the group
  // moved on to because the ones before were refused (0: mail_from).
  size_t first_sender(sched::GroupId g) const;
  void note_sender(sched::GroupId g, size_t index);
  void on_local_failure(loop::Status status);
  void size_to_fd_limit();
  // The resolver's health (docs/usage.md): a lookup that got no answer is held while the
  // resolver is in doubt; a check query decides.
  void doubt_resolver();
  void on_resolver_check(bool answered);
  void resolver_answers();
  void resolve_domain(Domain& d);
  void fail_dns(Domain& d, const verdict::Classification& c, std::string error);
  // The lists say no: the record is made now and emitted on the next kick (never from submit).
  void answer_listed(uint64_t id, uint64_t line, std::string email, const address::Address& addr,
                     bool denied, std::string why);
  // Domain checks (verifier_domains.cpp): what the check's RCPT asks (the probe or postmaster)
  // once the domain is ready; what each of its sessions showed; its report.
  void assign_check(Domain& d, Item* item);
  void note_check(SessionSlot& s, Item* item, const smtp::Outcome& outcome);
  void emit_check(Domain& d, Item* item);
  Domain& domain_slot(std::string name);

  loop::Loop& loop_;
  dns::MxResolver& resolver_;
  VerifierConfig cfg_;
  Emit emit_;
  VerifierStats stats_;
  sched::Scheduler sched_;
  sched::CatchAllCache catch_all_;    // probe answers by domain, for the run (outlives eviction)
  sched::Grant grant_;                // reused by schedule()
  std::vector<sched::ItemRef> refs_;  // reused by refills
  std::vector<std::unique_ptr<Item>> items_;  // slab: the scheduler's key is the index
  std::vector<uint32_t> free_items_;
  std::unordered_map<std::string, std::unique_ptr<Domain>> domains_;
  std::vector<Domain*> by_sched_id_;          // sched::DomainId -> Domain
  std::list<Domain*> idle_;                   // oldest first
  std::vector<Domain*> to_fail_;              // failed domains with queued work, finished on kick
  std::vector<Result> listed_;                // answered from the deny/allow lists, emitted on kick
  std::vector<DomainReport> listed_domains_;  // domain checks the lists answered, likewise
  uint32_t resolving_ = 0;                    // domains waiting for DNS
  std::vector<std::unique_ptr<SessionSlot>> sessions_;   // live sessions (index kept in slot)
  std::vector<std::unique_ptr<SessionSlot>> graveyard_;  // ended in a callback; freed on kick
  // Session configurations by the policy's domain settings they were made from and the source;
  // the ones of a replaced policy stay alive (sessions point at them) until the verifier goes.
  using ConfigKey = std::pair<const sched::DomainSettings*, sched::SourceId>;
  struct ConfigKeyHash {
    size_t operator()(const ConfigKey& k) const {
      return std::hash<const void*>{}(k.first) * 31 + k.second;
    }
  };
  using Configs =
      std::unordered_map<ConfigKey, std::unique_ptr<smtp::SessionConfig>, ConfigKeyHash>;
  Configs configs_, clear_configs_;
  // MX addresses whose TLS handshake failed in `auto`: their later sessions skip STARTTLS
  // (docs/usage.md, "TLS"). Bounded: past kMaxNoTls entries it starts again empty.
  std::unordered_set<std::string> no_tls_;
  // Replies classified before (a run of "550 5.1.1 User unknown" is classified once).
  verdict::ClassifyMemo classify_memo_;
  std::vector<std::unique_ptr<smtp::SessionConfig>> retired_configs_;
  std::shared_ptr<const sched::Policy> policy_;
  std::unique_ptr<ProxyPool> proxies_;  // with cfg_.proxies
  // The latest reply that refused our source, by MX group: what an address that ends
  // unknown/blocked without its own reply says decided (its `error`, `mx`).
  struct BlockCause {
    sched::SourceId source = 0;
    std::string mx, mx_ip, source_ip, proxy, helo, reply;
  };
  std::unordered_map<sched::GroupId, BlockCause> block_cause_;
  // By MX group, the sender its servers made us move on to (absent: the first); see
  // first_sender().
  std::unordered_map<sched::GroupId, uint8_t> sender_start_;
  loop::TimerId kick_timer_{}, deadline_timer_{};
  bool kick_armed_ = false, deadline_armed_ = false;
  loop::TimePoint deadline_at_{};
  loop::TimePoint local_pause_until_{};  // after our own socket failure
  std::vector<Domain*> dns_held_;  // lookups unanswered while the resolver is in doubt or down
  uint32_t dns_silent_ = 0;        // lookups in a row that got no answer
  uint64_t dns_answers_ = 0;       // lookups that got an answer (any) since the last check began
  bool dns_checked_ = false;       // the first check was sent (with the first lookup)
  bool dns_checking_ = false, dns_down_ = false, dns_check_failed_ = false;
  bool dns_timer_armed_ = false;
  loop::TimerId dns_timer_{};
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // for the resolver's callbacks
  std::mt19937_64 rng_;
};

}  // namespace mxp::pipeline
