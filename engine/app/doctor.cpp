#include "app/doctor.hpp"

#include <CLI/CLI.hpp>
#include <chrono>

#include "app/engine_options.hpp"
#include "doctor/runner.hpp"
#include "identity/identity.hpp"
#include "pipeline/verifier.hpp"
#include "sched/policy.hpp"

namespace mxp::app {
namespace {

int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

loop::Duration seconds(double s) {
  return std::chrono::duration_cast<loop::Duration>(std::chrono::duration<double>(s));
}

// The start-up checks wait this long at most, whatever answers: a resolver that does not answer
// is found by the verifier's own check (and said in its words), and anything else still
// unanswered is "could not check", which never takes a source out of rotation.
constexpr auto kStartupBound = std::chrono::seconds(4);
constexpr double kStartupPort25Timeout = 3;

doctor::RunnerOptions runner_options(const Engine& e, const DoctorOptions& o,
                                     const std::string& host, bool startup) {
  doctor::RunnerOptions r;
  for (const auto& s : e.config.sources)
    r.sources.push_back(s.endpoint);
  r.proxies = e.config.proxies;
  r.proxy_timeout = e.config.proxy_check_timeout;
  r.helo_option = e.options.helo;
  r.host_name = host;
  if (!o.no_dnsbl) r.dnsbl_zones = o.dnsbl.empty() ? doctor::default_dnsbl_zones() : o.dnsbl;
  if (!o.no_port25)
    r.port25_targets =
        o.port25_targets.empty() ? doctor::default_port25_targets() : o.port25_targets;
  r.port25_timeout =
      seconds(startup ? std::min(o.port25_timeout, kStartupPort25Timeout) : o.port25_timeout);
  r.concurrency = e.config.policy ? e.config.policy->max_sessions() : 200;
  // The command waits for every answer (each has its own timeout); start-up is bounded.
  r.bound = startup ? loop::Duration(kStartupBound) : loop::Duration(std::chrono::seconds(60));
  return r;
}

}  // namespace

void add_doctor_options(CLI::App& cmd, DoctorOptions& o, bool startup) {
  const char* group = startup ? "Start-up checks (doctor)" : "Checks";
  cmd.add_option("--dnsbl", o.dnsbl,
                 "DNS blocklist zone to look each source IP up in (repeatable; default: "
                 "zen.spamhaus.org, bl.spamcop.net, b.barracudacentral.org, bl.mailspike.net, "
                 "psbl.surriel.com)")
      ->group(group);
  cmd.add_flag("--no-dnsbl", o.no_dnsbl, "look the source IPs up in no blocklist")->group(group);
  cmd.add_option("--port25-target", o.port25_targets,
                 "HOST[:PORT] to test outbound port 25 against (repeatable; default: "
                 "gmail-smtp-in.l.google.com, outlook-com.olc.protection.outlook.com, "
                 "mta5.am0.yahoodns.net)")
      ->group(group);
  cmd.add_flag("--no-port25", o.no_port25, "do not test outbound port 25")->group(group);
  cmd.add_option("--port25-timeout", o.port25_timeout,
                 startup ? "seconds for a port-25 test's connect and greeting (at start: 3 at "
                           "most)"
                         : "seconds for a port-25 test's connect and greeting")
      ->check(positive_seconds())
      ->capture_default_str()
      ->group(group);
  if (startup) {
    cmd.add_flag("--no-startup-checks", o.no_startup_checks,
                 "skip the checks at start (doctor's short form): every source in rotation")
        ->group(group);
    cmd.add_flag("--keep-unhealthy-sources", o.keep_unhealthy,
                 "keep source IPs found listed on a blocklist or without working port 25 in "
                 "rotation")
        ->group(group);
    cmd.add_option("--source-recheck", o.recheck,
                   "check sources out of rotation again this often (90s, 30m, 12h)")
        ->capture_default_str()
        ->group(group);
  } else {
    cmd.add_flag("--json", o.json, "print the report as JSON (schema: docs/identity.md)");
    cmd.add_flag("--keep-unhealthy-sources", o.keep_unhealthy,
                 "report listed or port-25-blocked sources as kept in rotation (as verify "
                 "would with this option)");
  }
}

int run_doctor(const DoctorOptions& o, const EngineOptions& eng, std::FILE* out, std::FILE* diag) {
  Engine e;
  if (!make_engine(eng, false, e, diag)) return 3;
  const std::string host = identity::host_name();
  auto [facts, global] = doctor::run_now(*e.loop, *e.resolver, runner_options(e, o, host, false));
  doctor::Options opts;
  opts.keep_unhealthy = o.keep_unhealthy;
  opts.checked_at_ms = wall_ms();
  auto report = doctor::evaluate(std::move(facts), global, opts);
  if (o.json) {
    std::fputs((doctor::to_json(report).dump(2) + "\n").c_str(), out);
  } else {
    std::fputs(doctor::format_table(report).c_str(), out);
  }
  return report.exit_code;
}

struct SourceHealth::Impl {
  std::string host;
  std::unique_ptr<doctor::Runner> runner;
  std::vector<std::unique_ptr<doctor::Runner>> done_runners;  // finished in their callback
  bool startup = true;
};

SourceHealth::SourceHealth(Engine& e, const DoctorOptions& o, Log log)
    : e_(e), o_(o), log_(std::move(log)), impl_(std::make_unique<Impl>()) {
  enabled_ = !o.no_startup_checks;
  auto d = sched::parse_duration(o.recheck);
  recheck_ =
      d ? std::chrono::duration_cast<loop::Duration>(*d) : loop::Duration(std::chrono::minutes(30));
  if (recheck_ < std::chrono::seconds(1)) recheck_ = std::chrono::seconds(1);
}

SourceHealth::~SourceHealth() {
  if (timer_armed_) e_.loop->cancel_timer(timer_);
  impl_->runner.reset();
}

void SourceHealth::start_run(bool startup) {
  if (impl_->runner) return;  // one run at a time; its end answers every waiter
  if (impl_->host.empty()) impl_->host = identity::host_name();
  impl_->startup = startup;
  impl_->runner = std::make_unique<doctor::Runner>(
      *e_.loop, *e_.resolver, runner_options(e_, o_, impl_->host, startup),
      [this](std::vector<doctor::SourceFacts> f, doctor::GlobalFacts g) {
        finished(std::move(f), std::move(g));
      });
  impl_->runner->start();
}

void SourceHealth::check_now() {
  if (!enabled_) return;
  start_run(true);
  // The loop runs only the checks (nothing else is started yet); the callback stops it.
  bool done = false;
  waiters_.push_back([&done, this] {
    done = true;
    e_.loop->stop();
  });
  while (!done && impl_->runner && !impl_->runner->finished()) {
    e_.loop->run();
    if (!done && e_.loop->connection_count() == 0 && e_.loop->timer_count() == 0) break;
  }
  if (!done) waiters_.clear();
  impl_->done_runners.clear();
  if (!report_ || !log_) return;
  for (const auto& line : doctor::short_lines(*report_)) {
    // The verifier says it in its own words: its check of the resolver (with --resume advice
    // for verify), and the open-file limit it sizes its concurrency to. The HELO name is
    // warned about by the identity start-up.
    if (line.rfind("doctor: resolver:", 0) == 0 || line.rfind("doctor: open files:", 0) == 0)
      continue;
    if (line.find(": helo: ") != std::string::npos) continue;
    log_(line);
  }
}

void SourceHealth::finished(std::vector<doctor::SourceFacts> facts, doctor::GlobalFacts global) {
  doctor::Options opts;
  opts.keep_unhealthy = o_.keep_unhealthy;
  opts.checked_at_ms = wall_ms();
  auto before = report_;
  report_ = doctor::evaluate(std::move(facts), global, opts);
  // The runner called us: it is freed later, outside its own callback.
  impl_->done_runners.push_back(std::move(impl_->runner));
  // Re-checks: changes of rotation are said as they happen.
  if (before && log_) {
    for (size_t i = 0; i < report_->sources.size() && i < before->sources.size(); ++i) {
      const auto& now_s = report_->sources[i];
      const bool was = before->sources[i].in_rotation;
      if (was && !now_s.in_rotation)
        log_("doctor: " + now_s.facts.name + " is out of rotation: " + now_s.out_reason +
             " (checked again every " + o_.recheck + ")");
      else if (!was && now_s.in_rotation)
        log_("doctor: " + now_s.facts.name + " is back in rotation");
    }
  }
  apply();
  auto w = std::move(waiters_);
  waiters_.clear();
  for (auto& f : w)
    f();
}

void SourceHealth::apply() {
  if (!report_) return;
  bool any_out = false;
  for (size_t i = 0; i < report_->sources.size(); ++i) {
    const auto& s = report_->sources[i];
    if (s.facts.kind != doctor::SourceFacts::Kind::Ip) continue;  // proxies: the pool decides
    any_out = any_out || !s.in_rotation;
    if (verifier_) verifier_->set_source_out(i, !s.in_rotation);
  }
  if (any_out && verifier_ && !timer_armed_) {
    timer_ = e_.loop->add_timer(e_.loop->now() + recheck_, *this);
    timer_armed_ = true;
  }
}

void SourceHealth::attach(pipeline::Verifier* v) {
  verifier_ = v;
  if (v) apply();
}

void SourceHealth::on_timer(loop::TimerId, uint64_t) {
  timer_armed_ = false;
  impl_->done_runners.clear();
  start_run(false);
}

void SourceHealth::refresh(std::function<void()> done) {
  impl_->done_runners.clear();
  if (done) waiters_.push_back(std::move(done));
  start_run(false);
}

size_t SourceHealth::in_rotation() const {
  if (!report_) return sources();
  size_t n = 0;
  for (const auto& s : report_->sources)
    n += s.in_rotation;
  return n;
}

bool SourceHealth::none_left() const {
  if (!report_ || report_->sources.empty()) return false;
  for (const auto& s : report_->sources)
    if (s.facts.kind == doctor::SourceFacts::Kind::Proxy || s.in_rotation) return false;
  return true;
}

size_t SourceHealth::sources() const {
  return report_ ? report_->sources.size() : e_.config.sources.size();
}

nlohmann::json SourceHealth::source_json(size_t i) const {
  if (!report_ || i >= report_->sources.size()) return nullptr;
  return doctor::source_json(report_->sources[i]);
}

nlohmann::json SourceHealth::report_json() const {
  if (!report_) return nullptr;
  return doctor::to_json(*report_);
}

}  // namespace mxp::app
