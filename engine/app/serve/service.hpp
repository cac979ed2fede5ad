// The `mxprobe serve` service: one class, its shared state and the declarations of its
// members, whose definitions live one concern per file beside this one (docs/architecture.md).
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <unordered_map>
#include <vector>

#include "address/address.hpp"
#include "app/chunk_exec.hpp"
#include "app/cluster_node.hpp"
#include "app/doctor.hpp"
#include "app/job/cluster_dispatch.hpp"
#include "app/job/file_job.hpp"
#include "app/probe_server.hpp"
#include "app/reload.hpp"
#include "app/serve.hpp"
#include "app/verify.hpp"
#include "core/clock.hpp"
#include "core/json_in.hpp"
#include "core/strings.hpp"
#include "metrics/metrics.hpp"
#include "pipeline/verifier.hpp"
#include "server/server.hpp"
#include "store/sqlite_store.hpp"
#include "verdict/classify.hpp"
#include "webhook/sender.hpp"

namespace mxp::app::serve_impl {

using json = nlohmann::ordered_json;
using core::Clock;
using pipeline::Result;

inline constexpr int kProtocolVersion = 1;
#ifndef MXP_VERSION
#define MXP_VERSION "unknown"
#endif
#if defined(__clang__)
inline constexpr const char* kCompiler = "clang " __clang_version__;
#else
inline constexpr const char* kCompiler = "g++ " __VERSION__;
#endif

// Each reason's verdict (docs/verdicts.md): the label pairs /metrics shows from the start.
inline constexpr auto kReasonVerdict = [] {
  std::array<Verdict, kReasonCount> a{};
  a.fill(Verdict::Unknown);
  auto set = [&](Reason r, Verdict v) { a[static_cast<int>(r)] = v; };
  set(Reason::Accepted, Verdict::Deliverable);
  for (Reason r : {Reason::InvalidSyntax, Reason::NoSuchDomain, Reason::NullMx,
                   Reason::NoMailServer, Reason::MailboxNotFound, Reason::MailboxDisabled})
    set(r, Verdict::Undeliverable);
  for (Reason r : {Reason::CatchAll, Reason::Unverifiable, Reason::MailboxFull})
    set(r, Verdict::Risky);
  return a;
}();
inline constexpr size_t kTopGroups = 20;
inline constexpr size_t kRecentCap = 100'000;  // real-time results kept in memory for retries
// set_group_policy: groups with live changes at once (each one is a provider of the policy).
inline constexpr size_t kMaxLiveGroups = 64;

inline http::Response json_response(int status, const json& j) {
  return http::Response::json(status, j.dump());
}
inline http::Response error(int status, std::string_view code, std::string_view message) {
  return server::HttpServer::json_error(status, code, message);
}

// The record as an object, fields in the record's own order (docs/records.md).
inline json record_json(const Result& r, bool transcript) {
  std::string line;
  pipeline::append_json(r, line, transcript && !r.transcript.empty());
  return json::parse(line, nullptr, false);
}

inline json level_json(const sched::LevelLimits& l) {
  return {{"sessions", l.sessions},
          {"connect_rate", l.connect.rate},
          {"connect_burst", l.connect.burst},
          {"rcpt_rate", l.rcpt.rate},
          {"rcpt_burst", l.rcpt.burst}};
}

inline json group_settings_json(const sched::GroupSettings& g) {
  return {{"per_mx", level_json(g.mx)},
          {"per_source", level_json(g.source)},
          {"weight", g.weight},
          {"block_cooldown_s", std::chrono::duration<double>(g.block_cooldown).count()},
          {"sources", g.sources},
          {"backoff",
           {{"decrease", g.backoff.decrease},
            {"min_factor", g.backoff.min_factor},
            {"rate_increase", g.backoff.rate_increase},
            {"window_increase", g.backoff.window_increase},
            {"initial_sessions", g.backoff.initial_sessions}}}};
}

inline json domain_settings_json(const sched::DomainSettings& d) {
  json retry = json::array();
  for (auto s : d.retry_schedule)
    retry.push_back(std::chrono::duration<double>(s).count());
  json timeouts = json::object();
  for (int i = 0; i < smtp::kStageCount; ++i)
    timeouts[std::string(smtp::kStageNames[i])] =
        std::chrono::duration<double>(d.timeouts[i]).count();
  return {{"per_domain", level_json(d.domain)},
          {"recipients", d.recipients},
          {"rejections", d.rejections},
          {"retry_schedule_s", retry},
          {"attempts", d.attempts},
          {"timeouts_s", timeouts},
          {"catch_all_probe", d.catch_all_probe},
          {"starttls", smtp::to_string(d.starttls)},
          {"helo", d.helo.empty() ? json(nullptr) : json(d.helo)},
          {"mail_from", d.mail_from ? json(*d.mail_from) : json(nullptr)}};
}

// The keys a live group change may set (per_mx.* and per_source.*), with their TOML form.
inline bool live_key(const std::string& k) {
  static const std::array<std::string_view, 10> kKeys = {
      "per_mx.sessions",         "per_mx.connect_rate",      "per_mx.connect_burst",
      "per_mx.rcpt_rate",        "per_mx.rcpt_burst",        "per_source.sessions",
      "per_source.connect_rate", "per_source.connect_burst", "per_source.rcpt_rate",
      "per_source.rcpt_burst"};
  return std::find(kKeys.begin(), kKeys.end(), k) != kKeys.end();
}

class Service final : public server::WsHandler, private loop::TimerHandler {
 public:
  // `cluster`: the node's link to the cluster (--cluster; null without): the remote servers'
  // limits are the cluster's, jobs are verified by the cluster's nodes, /metrics and
  // /v1/cluster show it, and SIGTERM leaves it first.
  Service(Engine& e, const ServeOptions& o, std::FILE* diag, ClusterNode* cluster)
      : e_(e),
        o_(o),
        diag_(diag),
        cluster_(cluster),
        verifier_(*e.loop, *e.resolver, hooks(e.config),
                  [this](Result&& r) { on_result(std::move(r)); }),
        reloader_(
            e, verifier_, diag, [this](int) { stop(); }, [this] { reload(); }) {
    // The cluster view's MX groups and their limits follow the policy in force (SIGHUP, PUT).
    if (cluster_) cluster_->set_policy([this] { return &verifier_.scheduler().policy(); });
    if (cluster_) make_executor();
  }
  // The node joined the cluster: it takes chunks from now on.
  void cluster_joined();

  // SIGHUP: the file again, with the command line, PUT /v1/policy and live group changes.
  void reload();

  bool start(std::string& err);

  void set_token(std::string t) { token_ = std::move(t); }
  // The TLS context of every https:// webhook of this process (run_serve makes it).
  void set_webhook_tls(std::shared_ptr<const tls::ClientContext> c) { webhook_tls_ = std::move(c); }
  // The start-up checks (app/doctor.hpp): their rotation applies to this service's verifier, the
  // snapshot's sources carry their `doctor` object, GET /v1/doctor returns their report.
  void set_health(SourceHealth* h);
  // The load figures this node's heartbeat carries.
  std::map<std::string, int64_t> cluster_load() const;

  // Every route through here: a handler that throws (a bug) answers 500 (the Responder does it
  // when unwound) and the server goes on.
  void route(std::string method, std::string path, server::Handler h);
  uint16_t port() const { return http_ ? http_->port() : 0; }
  void stop();

 private:
  struct Waiter {
    server::Responder http;   // or
    bool transcript = false;  // the SMTP dialogue in the answer
    uint64_t ws_client = 0;   // a WebSocket client and its request id
    json ws_request_id;
    Clock::time_point deadline;  // HTTP only: answer "still verifying" by then
  };
  struct Pending {
    std::string email, normalized;
    std::vector<Waiter> waiters;
  };

  pipeline::VerifierConfig hooks(pipeline::VerifierConfig c);

  // --- Real-time verification ---

  // Answers `r` with the record for `email` now (syntax error, cache, a result a moment ago), or
  // when the verification ends, or at the timeout with "still verifying".
  void verify(const std::string& email, bool missing, const std::string& timeout_text,
              bool transcript, server::Responder r);

  void check(const std::string& email, Waiter w);

  void answer(Waiter& w, json rec);

  void on_result(Result&& r);

  void count(const Result& r);

  // Every record answered, whatever answered it: SMTP, the results cache, a repeat, a syntax
  // error (the console's "Verified" and mxprobe_verifications_total).
  void tally(Verdict v, Reason r, bool from_cache);
  void tally(const json& rec, bool from_cache);

  // HTTP waiters past their deadline get the record "unknown / timeout, still verifying".
  // The DNS resolver does not answer: said on stderr and as an event; real-time waiters are
  // answered now (unknown/dns_error with the cause) while their lookups wait for it.
  void resolver_down(const std::string& line);
  void expire(Clock::time_point now);

  // --- Domain checks (domains.cpp): GET /v1/domains/{domain} ---

  void domain_get(const http::Request& q, server::Responder r);
  void on_domain_report(pipeline::DomainReport&& r);
  void expire_domains(Clock::time_point now);  // "still checking" past a waiter's deadline
  struct DomainPending {
    std::string domain;
    std::vector<Waiter> waiters;
  };
  std::unordered_map<uint64_t, DomainPending> domain_pending_;
  std::unordered_map<std::string, uint64_t> by_domain_;

  // --- Events ---

  // Stamps an event with the server's time, sends it to the WebSocket clients and keeps it for
  // the ones that connect later (the last kEventHistory).
  void publish_event(json ev);
  static constexpr size_t kEventHistory = 100;
  std::deque<std::string> event_history_;

  // --- Bulk jobs ---

  // A job: its files under --data DIR/ID/ (input as uploaded, journal, results), and the runner
  // that feeds the shared verifier.
  struct Job {
    uint64_t id = 0;
    std::string dir;
    VerifyOptions opts;
    InputFile in;
    OutputFile out;
    std::unique_ptr<store::SqliteStore> journal;
    // A cluster node's job: its addresses go to the cluster (declared before the runner, which
    // refers to it, so that it outlives the runner).
    std::unique_ptr<ClusterDispatch> dispatch;
    std::unique_ptr<FileJob> runner;
    std::chrono::system_clock::time_point created;
    Clock::time_point started, ended;
    bool finished = false, released = false;
    uint64_t input_bytes = 0;
    std::string name;  // given at upload (?name=), kept in DIR/ID/name; may be empty
    // A job that had ended before this run of the server: what its journal says (no runner).
    std::string ended_state, ended_error;
    std::array<uint64_t, kVerdictCount> ended_counts{};
    // Its webhook (docs/webhooks.md): the settings until the job starts, then the sender.
    std::optional<webhook::Config> hook_config;
    std::unique_ptr<webhook::Sender> hook;
  };
  static constexpr int kJobIdShift = 40;  // verifier ids: job << 40 | sequence; 0 = real time

  static std::string job_state(const Job& j);

  static std::string job_label(const Job& j) { return j.name.empty() ? "" : " (" + j.name + ")"; }
  // A job's name: up to 200 bytes of UTF-8 text without control characters.
  static bool valid_job_name(const std::string& n, std::string& err);

  json job_json(const Job& j) const;

  json jobs_summary() const;

  // POST /v1/jobs?format=jsonl|csv&column=NAME, body: the list (plain, CSV or gzip), written
  // to the job's input file as it arrives (never whole in memory); the job starts at its end.
  class Upload final : public server::BodySink {
   public:
    Upload(Service& s, std::unique_ptr<Job> job, server::Responder r, int fd)
        : s_(s), job_(std::move(job)), r_(std::move(r)), fd_(fd) {}
    ~Upload() override {
      if (fd_ >= 0) ::close(fd_);
      if (job_) std::filesystem::remove_all(job_->dir);  // never started: nothing to keep
    }
    bool on_body(std::string_view bytes) override {
      while (!bytes.empty()) {
        const ssize_t n = ::write(fd_, bytes.data(), bytes.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          r_.respond(
              error(507, "storage",
                    "writing " + job_->opts.input + ": " + std::strerror(n < 0 ? errno : ENOSPC)));
          return false;
        }
        bytes.remove_prefix(static_cast<size_t>(n));
        job_->input_bytes += static_cast<uint64_t>(n);
      }
      return true;
    }
    void on_body_end() override {
      ::close(std::exchange(fd_, -1));
      s_.create_job(std::move(job_), std::move(r_));
    }
    void on_body_error() override {}  // the destructor removes what was written

   private:
    Service& s_;
    std::unique_ptr<Job> job_;
    server::Responder r_;
    int fd_;
  };

  std::unique_ptr<server::BodySink> upload_job(const http::Request& q, server::Responder r);

  // The upload is complete: the job starts.
  void create_job(std::unique_ptr<Job> job, server::Responder r);

  // Opens a job's files and gives it a runner (not yet fed: begin()); `resume`: the journal's
  // job, whose finished records make the output again and whose other lines are done now.
  bool start_job(Job& job, const store::JobInfo* resume, std::string& err);

  // At start-up: the jobs under --data, as their journals left them. Ended ones are listed
  // (and their results downloadable); unfinished ones go on where they stopped (a paused one
  // stays paused), nothing done twice; an upload that never completed is removed.
  void restore_jobs();

  std::string restore_job(Job& job);
  void start_cluster_job(Job& job);

  // --- Webhooks (webhooks.cpp) ---

  bool webhook_settings(const http::Request& q, std::optional<webhook::Config>& out,
                        std::string& err);
  bool start_webhook(Job& j, const webhook::Config* fresh, std::string& err);
  void webhook_job_ended(Job& j);
  void poll_webhooks();
  json webhook_json(const Job& j) const;
  void webhooks_get(Job& j, const http::Request& q, server::Responder r);

  // --- The cluster's jobs (cluster_jobs.cpp) ---

  void cluster_start();
  void make_executor();
  // Verifier ids of the chunks this node verifies for the cluster: job number kExecutorJob.
  static constexpr uint64_t kExecutorJob = (uint64_t{1} << (64 - kJobIdShift)) - 1;
  void set_node_number(uint64_t n);
  std::string api_base() const;
  // This node's jobs in Redis for the other nodes (all: now, else at most once a second).
  void publish_jobs(bool all);
  void unpublish_job(uint64_t id);
  void list_cluster_jobs(server::Responder r);
  void remote_job(const http::Request& q, server::Responder r);
  uint64_t node_number_ = 0;  // 0: not known yet (a cluster node takes no job until it is)
  Clock::time_point last_publish_{};
  std::map<uint64_t, std::string> published_;

  void job_done(uint64_t id);

  // An ended job keeps its counts and state, not its input file nor its runner's buffers
  // (about 2 MiB each): done here, on the tick, never inside the runner's own call.
  void release_ended_jobs();

  bool job_action(uint64_t id, const std::string& action, std::string& err);

  // An ended job (finished, cancelled, failed) goes with its files: input, journal, results. A
  // running or paused one is refused (cancel it first).
  bool job_delete(uint64_t id, std::string& err);

  // "/v1/jobs/ID" or "/v1/jobs/ID/REST": the job (or null) and REST.
  Job* job_of(const std::string& path, std::string& rest);

  void job_get(const http::Request& q, server::Responder r);

  void job_post(const http::Request& q, server::Responder r);

  // The records committed so far, in line order, from the job's journal; pages are written as
  // the client takes them (at most ~1 MiB waiting), so a large job never sits in memory.
  struct Download {
    std::unique_ptr<store::SqliteStore> journal;  // its own connection: the job may be running
    RecordFormatter fmt;
    server::Responder r;
    uint64_t after = 0;
  };
  void stream_results(Job& j, OutputFormat f, server::Responder r);

  void pump_downloads();

  // --- Policy ---

  json policy_json() const;

  // Builds the policy from file + command line + `overrides` + one [provider] per live group
  // change, and swaps it in; on error nothing changes.
  bool apply_overrides(const std::string& overrides, const std::map<std::string, json>& groups,
                       std::string& err);

  // --- Metrics ---

  std::string prometheus() const;

  json snapshot();

  void on_timer(loop::TimerId, uint64_t cookie) override;

  // --- Probes (WebSocket `probe`: probe-server on this loop, docs/probe.md) ---

  static constexpr size_t kMaxProbes = 2;
  struct RunningProbe {
    uint64_t client = 0;
    json request_id;
    std::unique_ptr<Probe> probe;
    bool done = false;
  };

  // `{"cmd":"probe","target":T,"domain":D,"options":{...}}`: the CLI's options, bounded.
  static bool probe_options(const json& req, ProbeOptions& po, std::string& err);

  void start_probe(uint64_t client, json request_id, ProbeOptions po);
  void reap_probes();
  void send_probe(const RunningProbe& p, json body);

  // --- WebSocket ---

  void on_open(server::WsClient& c) override;
  void on_close(server::WsClient& c) override { ws_.erase(c.id()); }

  // A command that throws (a bug) answers an error ack; it never takes the server down.
  void on_message(server::WsClient& c, const http::WsMessage& m) override;

  void command(server::WsClient& c, const http::WsMessage& m);
  struct WsAck {
    server::WsClient& c;
    void operator()(const json& id, bool ok, std::string_view err = {}, json extra = nullptr) const;
  };
  void ws_ping(server::WsClient& c, const json& req, const json& id, const std::string& cmd,
               const WsAck& ack);
  void ws_check(server::WsClient& c, const json& req, const json& id, const std::string& cmd,
                const WsAck& ack);
  void ws_probe(server::WsClient& c, const json& req, const json& id, const std::string& cmd,
                const WsAck& ack);
  void ws_set_group_policy(server::WsClient& c, const json& req, const json& id,
                           const std::string& cmd, const WsAck& ack);
  void ws_delete(server::WsClient& c, const json& req, const json& id, const std::string& cmd,
                 const WsAck& ack);
  void ws_job_action(server::WsClient& c, const json& req, const json& id, const std::string& cmd,
                     const WsAck& ack);

 public:
  // The WebSocket commands (docs/protocol.md): the dispatch, the error that names them all and
  // the help an unknown command gets (its ack's `data`) all come from this table.
  struct WsCommand {
    std::string_view name;
    void (Service::*handler)(server::WsClient&, const json& req, const json& id,
                             const std::string& cmd, const WsAck& ack);
    std::string_view help;
  };
  static const std::vector<WsCommand>& ws_commands();
  static std::string ws_command_names();  // "ping, check, ..."
  static json ws_help();                  // {name: help}
  static std::string ws_command_error(const std::string* cmd);

 private:
  Engine& e_;
  const ServeOptions& o_;
  std::FILE* diag_;
  ClusterNode* cluster_ = nullptr;
  pipeline::Verifier verifier_;
  SourceHealth* health_ = nullptr;
  // A cluster node verifies the cluster's chunks on its verifier, as a worker does (made after
  // the verifier, gone before it).
  std::unique_ptr<ChunkExecutor> exec_;
  PolicyReloader reloader_;
  std::unique_ptr<store::SqliteStore> cache_;
  std::unique_ptr<store::Writer> cache_writer_;  // the cache's writes, off the loop's thread
  std::unique_ptr<server::HttpServer> http_;
  std::string token_;
  std::shared_ptr<const tls::ClientContext> webhook_tls_;
  std::string overrides_;
  std::map<std::string, json> live_groups_;
  std::unordered_map<uint64_t, Pending> pending_;
  std::unordered_map<std::string, uint64_t> by_addr_;
  // Results a moment ago, for retries after a timeout: an "unknown" one for a minute (it may be
  // gone by then), the others as long as the cache would keep them.
  struct Recent {
    std::string json;
    Clock::time_point at;
    bool unknown = false;
  };
  bool fresh(const Recent& r) const;
  std::unordered_map<std::string, Recent> recent_;
  std::unordered_map<std::string, Recent> domain_recent_;  // domain check reports, likewise
  std::unordered_map<uint64_t, server::WsClient*> ws_;
  uint64_t next_id_ = 1, requests_ = 0, total_ = 0, snapshot_seq_ = 0, last_dns_queries_ = 0;
  uint64_t cache_hits_ = 0;  // records answered from the results cache (real time and jobs)
  std::array<std::array<uint64_t, kReasonCount>, kVerdictCount> by_verdict_reason_{};
  std::array<metrics::RateWindow, kVerdictCount> finished_;
  metrics::RateWindow connects_, dns_queries_;
  std::array<metrics::Histogram, smtp::kStageCount> stage_;
  // Per MX group: recipients answered by reply class (0: no reply, 2, 4, 5).
  std::vector<std::array<uint64_t, 6>> replies_;
  json domains_json() const;
  // MX host -> its last deciding reply ("550 5.1.1 ..."); a provider group shows null.
  std::unordered_map<std::string, std::string> last_reply_;
  json last_reply_json(const std::string& group) const;
  json reply_classes(sched::GroupId g) const;
  // (source, group) -> blocked until.
  std::map<std::pair<sched::SourceId, sched::GroupId>, Clock::time_point> blocks_;
  loop::TimerId tick_{};
  bool stopping_ = false;
  std::map<uint64_t, std::unique_ptr<Job>> jobs_;
  std::map<uint64_t, RunningProbe> probes_;
  uint64_t next_probe_ = 0;
  uint64_t next_job_ = 1;
  std::vector<std::unique_ptr<Download>> downloads_;
  loop::TimerId download_timer_{};
  bool download_timer_armed_ = false;
};

}  // namespace mxp::app::serve_impl
