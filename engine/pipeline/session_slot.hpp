// The Verifier's SMTP sessions: a SessionSlot is one connection the scheduler granted. It drives
// an smtp::Session (sans-I/O) with the loop's events (connect, bytes, close, timers), through a
// SOCKS5 leg when proxies are the source pool and through TLS after STARTTLS, takes more
// recipients from the scheduler while it has room, and hands each recipient's outcome back to
// the Verifier (on_outcome, session_done). Also here: the Verifier's per-address and per-domain
// records (Item, Domain), which both read, and its timer cookies. Private to engine/pipeline:
// included by verifier*.cpp and session_slot.cpp only.
#pragma once

#include <deque>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pipeline/verifier.hpp"

namespace mxp::pipeline {

struct Verifier::Item {
  uint32_t slot = 0;  // index in items_: the scheduler's key
  uint64_t id = 0, line = 0;
  std::string email;
  Domain* domain = nullptr;  // alive while it has items (live > 0: never forgotten)
  bool role = false;         // a role account (address::Address::role)
  // addr.normalized(), what RCPT TO carries; empty when it is `email` itself (most lists), so
  // queued addresses hold one copy.
  std::string normalized;
  const std::string& wire() const { return normalized.empty() ? email : normalized; }
  bool probe = false;
  // A domain check (Verifier::check_domain): its outcome makes a DomainReport, not a record.
  // probe_role: its RCPT is the domain's catch-all probe (else it asks postmaster).
  bool check = false, probe_role = false;
  std::unique_ptr<DomainReport> report;  // with `check`: filled as its sessions go
  uint32_t attempts = 0;
  bool started = false;
  loop::TimePoint first_attempt{};
  loop::TimePoint submitted{};  // elapsed_ms counts from here when no session was tried (DNS)
  sched::ItemId sid;
  verdict::Classification cls;
  // The record being built, from the first outcome on: made then, so that the many addresses
  // queued or in flight carry no empty record (~400 bytes each).
  std::unique_ptr<Result> record;
  Result& result() {
    if (!record) record = std::make_unique<Result>();
    return *record;
  }
};

struct Verifier::Domain {
  enum class State : uint8_t { New, Resolving, Ready, Failed };
  enum class Probe : uint8_t { NotStarted, InFlight, Done };
  std::string name;
  sched::DomainId sid = sched::kNone;
  State state = State::New;
  dns::MxAnswer answer;
  size_t target = 0;  // the answer's target in use; past the end: every server failed
  uint32_t live = 0;  // items of this domain not yet emitted (queued, in flight, held)
  uint32_t active = 0;
  bool idle = false, failing = false;
  std::list<Domain*>::iterator idle_it;
  Probe probe = Probe::NotStarted;
  verdict::Classification probe_cls;
  std::vector<Item*> held;      // waiting for the catch-all probe
  std::vector<Item*> unqueued;  // submitted to a failed domain: finished on the next kick
  std::vector<Item*> checks;    // domain checks waiting for the MX answer (assign_check)
  // Why the domain cannot be verified (its DNS failure), and the stage and cause for `error`.
  verdict::Classification failure;
  std::string failure_error;
  std::optional<flags::DomainFlags> flags;  // looked up when its first result is emitted
  // The provider of the answer's most preferred MX (for records no session decided), worked
  // out once per answer rather than once per record.
  std::optional<std::string_view> mx_provider;
};

// The Verifier's timer cookies: the kick, the scheduler's next deadline, the resolver's re-check
// (armed in verifier.cpp and verifier_dns.cpp).
constexpr uint64_t kKickCookie = 1, kDeadlineCookie = 2, kResolverCookie = 3;

// One SMTP connection granted by the scheduler: drives an smtp::Session with the loop's events,
// takes more recipients from the scheduler when it has room, and hands each recipient's outcome
// back to the Verifier.
class Verifier::SessionSlot final : public loop::ConnHandler, public loop::TimerHandler {
 public:
  SessionSlot(Verifier& v, Domain& d, const sched::Grant& g, const smtp::SessionConfig& cfg);

  Domain& domain() { return d_; }
  sched::SessionId id() const { return sid_; }
  sched::GroupId group() const { return group_; }
  // The domain's target when the session began (fail-over moves the domain past it)...
  const dns::MxTarget& target() const { return d_.answer.targets[target_]; }
  // ...and the address connected to: the target's, or the same host's of the source's family.
  const dns::MxTarget& address() const { return d_.answer.targets[address_]; }
  size_t target_index() const { return target_; }
  // address()'s IP as text: made once per session, not once per recipient's record.
  const std::string& address_ip() const { return address_ip_; }
  // The mailbox provider behind this session's MX (verdict/provider.hpp), from the MX name and
  // the greeting: worked out at the first recipient's record, then reused for the others.
  std::string_view provider();
  const std::string& source_ip() const { return source_ip_; }
  sched::SourceId source_id() const { return source_id_; }
  std::string proxy_name() const { return leg_ ? leg_->display() : std::string(); }
  const std::string& transcript() const { return transcript_.text; }
  const std::string& banner() const { return session_.banner(); }
  const smtp::Capabilities& capabilities() const { return session_.capabilities(); }
  const smtp::SessionConfig& config() const { return cfg_; }
  const SessionTls& tls() const { return tls_; }
  // Why the TCP connect failed (the loop's status: refused, unreachable...); Ok when it did not
  // fail, or when it failed through a proxy (the proxy does not say why).
  loop::Status connect_status() const { return connect_status_; }

  void begin(const std::vector<sched::ItemRef>& refs);

  void abort();

 private:
  void add(const std::vector<sched::ItemRef>& refs, loop::TimePoint now);

  // Transcript lines: kept for the results, and streamed to whoever watches one of this
  // session's addresses (a live check).
  static void on_line(void* self, smtp::Direction dir, std::string_view line);
  // The lines appended from `from` on, to whoever watches.
  void streamed(size_t from);
  // A transcript line of our own, "* ...": where we connected, TLS, how long each step took.
  void note(const std::string& text);
  static std::string ms_since(loop::TimePoint since, loop::TimePoint now);
  // Each reply timed from its command (replies come in command order, pipelined or not); the
  // greeting from the connect.
  void time_line(smtp::Direction dir, std::string_view line);
  bool watched(const Item& item) const;
  void replay(const Item& item);

  void on_connect(loop::ConnId, loop::Status status) override;
  void on_data(loop::ConnId, std::string_view bytes) override;
  void on_closed(loop::ConnId, loop::Status status) override;
  void on_timer(loop::TimerId, uint64_t) override;

  // --- SOCKS5 (docs/proxies.md) ---------------------------------------------------------
  enum class Doubt : uint8_t { None, Closed, Timeout };
  // A step of the proxy handshake. True when `rest` (bytes after the CONNECT reply) should go
  // on to the SMTP session.
  bool on_leg(ProxyLeg::Step step, std::string_view rest);
  // The tunnel closed in the middle of SMTP: the server, or the proxy dying? Ask the pool (a
  // health check) before anything counts against the server.
  // The same for a stage timeout: meanwhile the connection stays open and bytes still go to
  // the session (a late reply); the timeout is applied after the check, if still due.
  void doubt_proxy(Doubt kind);
  void drop_doubt();
  // The proxy failed: out of rotation; the recipients not decided go back to the scheduler
  // untouched (no try counted, nothing against the mail server) and on to another proxy.
  void proxy_lost(const std::string& why);

  // Carries out what the session asks for, after every event.
  void pump();

  Verifier& v_;
  Domain& d_;
  sched::SessionId sid_;
  sched::GroupId group_;
  size_t target_;
  size_t address_;
  const smtp::SessionConfig& cfg_;
  std::optional<loop::Endpoint> source_;
  std::string source_ip_;
  std::string address_ip_;
  std::string_view provider_;  // a name from the provider table, or empty
  bool provider_known_ = false;
  // Through a SOCKS5 proxy (source proxy_ of the scheduler); on the heap: ~300 bytes that a
  // session without proxies (most) does not carry.
  std::unique_ptr<ProxyLeg> leg_;
  size_t proxy_ = 0;
  uint64_t ask_ticket_ = 0;
  Doubt doubt_ = Doubt::None;  // a health check of the proxy decides an event first
  smtp::Session session_;
  sched::SourceId source_id_;
  SessionTls tls_;
  smtp::TranscriptBuffer transcript_;
  std::vector<Item*> items_;  // by the session's recipient index; null once decided
  loop::ConnId conn_{};
  loop::TimerId timer_{};
  std::optional<loop::TimePoint> armed_for_;
  bool conn_open_ = false, timer_armed_ = false, ended_ = false, connect_failed_ = false;
  loop::Status connect_status_ = loop::Status::Ok;
  smtp::Stage stage_ = smtp::Stage::Connect;  // for on_stage
  loop::TimePoint stage_since_{};
  // For the transcript's own lines (with cfg.transcripts): when the connect began, when it
  // was made, when TLS began, and the commands awaiting their reply with when they were sent.
  loop::TimePoint started_at_{}, connected_at_{}, tls_started_at_{};
  std::deque<std::pair<std::string, loop::TimePoint>> sent_;
  bool greeted_ = false, tls_noted_ = false;

  // How the TLS handshake ended, once.
  void note_tls(loop::TimePoint now);
  void connected(loop::TimePoint now);

 public:
  // When the reply (or connect) now awaited began to be awaited: the stage's deadline less its
  // timeout (the deadline moves on with each reply).
  loop::TimePoint stage_started() const;
  smtp::Stage stage() const { return session_.stage(); }
  bool ended() const { return ended_; }
  std::string peer() const;

 public:
  size_t index = 0;  // position in Verifier::sessions_
};

}  // namespace mxp::pipeline
