// `mxprobe doctor` (the command), and the same checks in short form when verify, serve and
// worker start: sources found listed on a blocklist or without working port 25 start out of
// rotation and are checked again on a schedule (docs/identity.md, docs/usage.md).
#pragma once

#include <cstdio>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "app/cli_fwd.hpp"
#include "doctor/doctor.hpp"
#include "loop/loop.hpp"

namespace mxp::pipeline {
class Verifier;
}

namespace mxp::app {

struct Engine;
struct EngineOptions;

// verify's exit code when the start-up checks leave no source in rotation (nothing was verified).
inline constexpr int kExitNoSource = 7;

struct DoctorOptions {
  std::vector<std::string> dnsbl;  // zones; empty: doctor::default_dnsbl_zones()
  bool no_dnsbl = false;
  std::vector<std::string> port25_targets;  // HOST[:PORT]; empty: the defaults
  bool no_port25 = false;
  double port25_timeout = 5;  // seconds (the start-up checks use at most 3)
  // Start-up (verify, serve, worker).
  bool no_startup_checks = false;
  bool keep_unhealthy = false;  // listed / port-25-blocked sources stay in rotation
  std::string recheck = "30m";  // sources out of rotation are checked again this often
  // The command.
  bool json = false;
};

// The options of `doctor` (startup false) or of verify/serve/worker (startup true).
void add_doctor_options(CLI::App& cmd, DoctorOptions& o, bool startup);

// `mxprobe doctor`: the table (or --json) on out; exit 0, 1 (something would make verification
// fail), 3 (the engine could not start).
int run_doctor(const DoctorOptions& o, const EngineOptions& eng, std::FILE* out, std::FILE* diag);

// The start-up checks and the rotation they decide, for one engine (one verifier).
class SourceHealth final : private loop::TimerHandler {
 public:
  using Log = std::function<void(const std::string& line)>;
  // who: "verify", "serve", "worker" (for the lines). log: operator lines (may be null).
  SourceHealth(Engine& e, const DoctorOptions& o, Log log);
  ~SourceHealth();
  SourceHealth(const SourceHealth&) = delete;
  SourceHealth& operator=(const SourceHealth&) = delete;

  bool enabled() const { return enabled_; }
  // Runs the short checks, running the loop until they are done (bounded: a few seconds; the
  // loop must have nothing else to do yet), and logs one line per problem.
  void check_now();
  // Applies the rotation to v (sources out of rotation are not granted) and, when some are out,
  // schedules the re-checks. v must outlive this object or be detached (nullptr).
  void attach(pipeline::Verifier* v);
  // Sources in rotation / all (with no report: all of them).
  size_t in_rotation() const;
  size_t sources() const;
  // Every source IP (or the kernel-chosen one) is out of rotation. Never with proxies: the proxy
  // pool keeps them out and in itself (docs/proxies.md), and what it cannot reach ends
  // unknown/proxy_failed as before.
  bool none_left() const;
  const std::optional<doctor::Report>& report() const { return report_; }
  // The full checks again in the background (serve's GET /v1/doctor?refresh=1): done(report)
  // is called from the loop when they end; a refresh already running is joined.
  void refresh(std::function<void()> done);
  // Source i's `doctor` object for serve's snapshot; null until checked.
  nlohmann::json source_json(size_t i) const;
  nlohmann::json report_json() const;

 private:
  struct Impl;
  void on_timer(loop::TimerId, uint64_t) override;
  void finished(std::vector<doctor::SourceFacts> facts, doctor::GlobalFacts global);
  void start_run(bool startup);
  void apply();

  Engine& e_;
  DoctorOptions o_;
  Log log_;
  bool enabled_ = true;
  std::optional<doctor::Report> report_;
  pipeline::Verifier* verifier_ = nullptr;
  std::unique_ptr<Impl> impl_;
  std::vector<std::function<void()>> waiters_;
  loop::TimerId timer_{};
  bool timer_armed_ = false;
  loop::Duration recheck_{};
};

}  // namespace mxp::app
