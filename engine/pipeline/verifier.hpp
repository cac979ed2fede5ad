// The verification pipeline: addresses in, results out. It groups addresses by domain, asks DNS
// for the mail servers, runs SMTP sessions on the event loop (several addresses of one domain
// share a session), fails over to the next MX, probes each domain once for catch-all, and turns
// every outcome into a verdict through the verdict policy. It owns no socket: the loop does.
// Rate shaping and greylisting retries come with the scheduler (docs/architecture.md).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "address/address.hpp"
#include "dns/mx.hpp"
#include "loop/loop.hpp"
#include "pipeline/result.hpp"
#include "smtp/session.hpp"
#include "verdict/classify.hpp"

namespace mxp::pipeline {

struct VerifierConfig {
  smtp::SessionConfig session;  // HELO name, MAIL FROM, stage timeouts
  uint16_t smtp_port = 25;
  std::vector<loop::Endpoint> source_ips;  // bind sessions to these in turn; empty: any
  uint32_t max_sessions = 100;             // SMTP sessions open at once, all domains
  uint32_t max_sessions_per_domain = 4;    // at once, per recipient domain
  // Domains remembered at once. Past this, idle domains (nothing queued, in flight or held) are
  // forgotten oldest first, so a list with millions of domains runs in bounded memory; a
  // forgotten domain seen again is looked up (DNS cache) and probed again.
  size_t max_domains = 50'000;
  uint32_t rcpts_per_session = 8;  // stay under Postfix's 10-error soft limit
  bool catch_all_probe = true;     // one random address per domain, cached for the run
  bool transcripts = false;        // keep each address's SMTP dialogue in its result
};

struct VerifierStats {
  uint64_t submitted = 0, finished = 0;
  uint64_t sessions_started = 0, connect_failures = 0, failovers = 0, domains_evicted = 0;
  uint32_t active_sessions = 0;
};

class Verifier : private loop::TimerHandler {
 public:
  using Emit = std::function<void(Result&&)>;
  Verifier(loop::Loop& loop, dns::MxResolver& resolver, VerifierConfig config, Emit emit);
  ~Verifier();
  Verifier(const Verifier&) = delete;
  Verifier& operator=(const Verifier&) = delete;

  // Queues one address (already parsed and valid). Work starts on the loop's next iteration;
  // the result comes through emit (never from inside submit).
  void submit(uint64_t id, uint64_t line, std::string email, address::Address addr);
  // Addresses submitted and not yet emitted.
  uint64_t pending() const { return stats_.submitted - stats_.finished; }
  const VerifierStats& stats() const { return stats_; }
  const VerifierConfig& config() const { return cfg_; }

 private:
  struct Item;
  struct Domain;
  class SessionSlot;
  friend class SessionSlot;

  void on_timer(loop::TimerId id, uint64_t cookie) override;
  void kick();      // run schedule() on the next loop iteration
  void schedule();  // start sessions while there is room
  void on_resolved(Domain& d, const dns::MxAnswer& answer);
  void start_session(Domain& d);
  void session_done(SessionSlot* s);
  // A recipient's outcome from a session: final, requeued, or held for the catch-all probe.
  void on_outcome(SessionSlot& s, Item* item, const smtp::Outcome& outcome);
  // outcome: the reply that decided, copied into the result when there is one.
  void finish_item(Domain& d, Item* item, const verdict::Classification& c,
                   const smtp::Outcome* outcome);
  void fail_domain_queue(Domain& d, const verdict::Classification& c, const smtp::Outcome* outcome);
  void release_held(Domain& d);
  void emit_item(Domain& d, Item* item);
  void make_runnable(Domain& d);
  void maybe_idle(Domain& d);  // joins the idle list when nothing is left to do for it
  void evict_idle();
  std::string random_local_part();

  loop::Loop& loop_;
  dns::MxResolver& resolver_;
  VerifierConfig cfg_;
  Emit emit_;
  VerifierStats stats_;
  std::unordered_map<std::string, std::unique_ptr<Domain>> domains_;
  std::list<Domain*> idle_;       // oldest first
  std::deque<Domain*> runnable_;  // domains with queued work and room for a session
  std::vector<std::unique_ptr<SessionSlot>> sessions_;   // live sessions (index kept in slot)
  std::vector<std::unique_ptr<SessionSlot>> graveyard_;  // ended in a callback; freed on kick
  loop::TimerId kick_timer_{};
  bool kick_armed_ = false;
  size_t next_source_ = 0;
  std::mt19937_64 rng_;
};

}  // namespace mxp::pipeline
