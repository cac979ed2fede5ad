// bench-server's driver: the arrival schedule of each step on the engine's loop (a timer per
// due arrival), one connection per session running a bench::Dialogue, and each session's
// outcome into its step's figures. Protocol and arithmetic live in engine/bench.
#include "app/bench_server.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <netinet/in.h>

#include <cctype>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>

#include "app/probe_server.hpp"
#include "bench/dialogue.hpp"
#include "bench/report.hpp"
#include "bench/run.hpp"

namespace mxp::app {
namespace {

using bench::Failure;
using bench::TimePoint;

Failure failure_of(loop::Status st) {
  switch (st) {
    case loop::Status::ConnectionRefused:
      return Failure::Refused;
    case loop::Status::ConnectTimeout:
    case loop::Status::TimedOut:
      return Failure::Timeout;
    case loop::Status::ConnectionReset:
    case loop::Status::BrokenPipe:
      return Failure::Reset;
    case loop::Status::PeerClosed:
      return Failure::ClosedEarly;
    default:
      return Failure::Other;
  }
}

std::string random_local_part(std::mt19937_64& rng) {
  static constexpr char kChars[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::string s = "mxb";
  for (int i = 0; i < 12; ++i)
    s += kChars[rng() % (sizeof kChars - 1)];
  return s;
}

// A domain name we may put after "@": letters, digits, hyphens and dots (no CR/LF, no spaces).
bool plain_domain(const std::string& d) {
  if (d.empty() || d.size() > 253 || d.front() == '.' || d.back() == '.') return false;
  for (unsigned char c : d)
    if (!std::isalnum(c) && c != '-' && c != '.') return false;
  return true;
}

struct Settings {
  bench::DialogueConfig dialogue;
  std::vector<bench::DialogueConfig> per_source;  // each source's HELO name
  loop::Endpoint peer;
  std::vector<loop::Endpoint> sources;
  std::string domain;
  int rcpts = 1;
  loop::Duration connect_timeout{};
  size_t max_sessions = 1;
};

class Bench;

// One session on one connection. Reused from a pool: the loop calls nothing on it once it has
// ended (ConnHandler's contract), so it may start again.
class Conn final : public loop::ConnHandler, public loop::TimerHandler {
 public:
  explicit Conn(Bench& b) : bench_(b) {}
  void start(TimePoint intended, const bench::DialogueConfig& cfg,
             std::optional<loop::Endpoint> source, std::vector<std::string> rcpts);

 private:
  void on_connect(loop::ConnId, loop::Status status) override;
  void on_data(loop::ConnId, std::string_view bytes) override;
  void on_closed(loop::ConnId, loop::Status status) override;
  void on_timer(loop::TimerId, uint64_t) override;
  void pump();
  void end();

  Bench& bench_;
  std::optional<bench::Dialogue> dialogue_;
  bench::SessionOutcome outcome_;
  loop::ConnId id_{};
  loop::TimerId timer_{};
  std::optional<TimePoint> armed_for_;
  bool open_ = false, ended_ = true;
};

class Bench final : private loop::TimerHandler {
 public:
  Bench(loop::Loop& loop, const Settings& s, std::vector<double> rates, double step_time,
        double warmup, bool progress, std::FILE* diag)
      : loop_(loop),
        s_(s),
        rates_(std::move(rates)),
        step_time_(step_time),
        warmup_(warmup),
        progress_(progress),
        diag_(diag) {
    std::random_device rd;
    rng_.seed((uint64_t(rd()) << 32) ^ rd());
  }
  ~Bench() {
    if (timer_armed_) loop_.cancel_timer(timer_);
  }

  void start() { start_step(warmup_ > 0 ? -1 : 0); }
  bool done() const { return done_; }
  const std::vector<bench::StepStats>& steps() const { return steps_; }
  const std::string& stopped_early() const { return stopped_early_; }
  loop::Loop& loop() { return loop_; }
  const Settings& settings() const { return s_; }

  void session_ended(Conn* c, const bench::SessionOutcome& o) {
    if (step_ >= 0) stats_.add(o);
    open_loop_->ended();
    free_.push_back(c);
    arm(loop_.now());  // a freed slot or the step's end: the generator looks at it next
  }

 private:
  // Step -1 is the warm-up: the first rate for --warmup seconds, not reported.
  void start_step(int k) {
    step_ = k;
    const double rate = rates_[k < 0 ? 0 : k];
    const double secs = k < 0 ? warmup_ : step_time_;
    const auto count = static_cast<uint64_t>(std::max<long long>(1, std::llround(rate * secs)));
    stats_ = bench::StepStats{};
    stats_.offered = rate;
    stats_.seconds = secs;
    open_loop_.emplace(rate, count, loop_.now(), s_.max_sessions);
    if (progress_) {
      const std::string what =
          k < 0 ? "warm-up at"
                : "step " + std::to_string(k + 1) + "/" + std::to_string(rates_.size()) + ":";
      std::fprintf(diag_, "mxprobe bench-server: %s %g sessions/s for %g s...\n", what.c_str(),
                   rate, secs);
    }
    tick();
  }

  void arm(TimePoint at) {
    if (timer_armed_ && armed_at_ <= at) return;
    if (timer_armed_) loop_.cancel_timer(timer_);
    timer_ = loop_.add_timer(at, *this);
    timer_armed_ = true;
    armed_at_ = at;
  }
  void on_timer(loop::TimerId, uint64_t) override {
    timer_armed_ = false;
    tick();
  }

  // Starts every arrival that is due and has a slot, then waits for the next one.
  void tick() {
    if (done_) return;
    const TimePoint now = loop_.now();
    while (auto intended = open_loop_->take(now))
      launch(*intended);
    if (open_loop_->all_taken() && open_loop_->active() == 0) return step_done();
    if (auto next = open_loop_->next_due()) arm(*next);
  }

  void launch(TimePoint intended) {
    Conn* c;
    if (!free_.empty()) {
      c = free_.back();
      free_.pop_back();
    } else {
      pool_.push_back(std::make_unique<Conn>(*this));
      c = pool_.back().get();
    }
    std::vector<std::string> rcpts;
    for (int i = 0; i < s_.rcpts; ++i)
      rcpts.push_back(random_local_part(rng_) + "@" + s_.domain);
    std::optional<loop::Endpoint> source;
    size_t which = 0;
    if (!s_.sources.empty()) {
      which = next_source_++ % s_.sources.size();
      source = s_.sources[which];
    }
    const bench::DialogueConfig& cfg = s_.per_source.empty() ? s_.dialogue : s_.per_source[which];
    c->start(intended, cfg, source, std::move(rcpts));
  }

  void step_done() {
    if (step_ < 0) return start_step(0);
    steps_.push_back(stats_);
    if (progress_) std::fputs(bench::progress_line(stats_).c_str(), diag_);
    const bool more = steps_.size() < rates_.size();
    if (more && bench::fell_over(stats_)) {
      char b[200];
      std::snprintf(b, sizeof b,
                    "the server fell over at %g sessions/s (achieved %.1f/s, %llu of %llu "
                    "sessions failed): the higher rates were not tried",
                    stats_.offered, stats_.achieved(),
                    static_cast<unsigned long long>(stats_.failed),
                    static_cast<unsigned long long>(stats_.started));
      stopped_early_ = b;
      return finish();
    }
    if (!more) return finish();
    start_step(step_ + 1);
  }
  void finish() {
    done_ = true;
    loop_.stop();
  }

  loop::Loop& loop_;
  const Settings& s_;
  std::vector<double> rates_;
  double step_time_, warmup_;
  bool progress_;
  std::FILE* diag_;
  std::mt19937_64 rng_;
  int step_ = 0;
  std::optional<bench::OpenLoop> open_loop_;
  bench::StepStats stats_;
  std::vector<bench::StepStats> steps_;
  std::vector<std::unique_ptr<Conn>> pool_;
  std::vector<Conn*> free_;
  size_t next_source_ = 0;
  loop::TimerId timer_{};
  TimePoint armed_at_{};
  bool timer_armed_ = false, done_ = false;
  std::string stopped_early_;
};

void Conn::start(TimePoint intended, const bench::DialogueConfig& cfg,
                 std::optional<loop::Endpoint> source, std::vector<std::string> rcpts) {
  loop::Loop& loop = bench_.loop();
  const TimePoint now = loop.now();
  outcome_ = {};
  outcome_.intended = intended;
  outcome_.started = now;
  dialogue_.emplace(cfg, std::move(rcpts));
  ended_ = false;
  armed_for_.reset();
  loop::ConnectOptions co;
  co.peer = bench_.settings().peer;
  co.source = source;
  co.timeout = bench_.settings().connect_timeout;
  auto r = loop.connect(co, *this);
  if (r.status != loop::Status::Ok) {
    outcome_.failure = failure_of(r.status);
    return end();
  }
  id_ = r.id;
  open_ = true;
}

void Conn::on_connect(loop::ConnId, loop::Status status) {
  const TimePoint now = bench_.loop().now();
  if (status != loop::Status::Ok) {
    open_ = false;
    outcome_.failure = failure_of(status);
    return end();
  }
  outcome_.connected = now;
  dialogue_->on_connected(now);
  pump();
}

void Conn::on_data(loop::ConnId, std::string_view bytes) {
  dialogue_->on_bytes(bytes, bench_.loop().now());
  pump();
}

void Conn::on_closed(loop::ConnId, loop::Status status) {
  open_ = false;
  dialogue_->on_closed(bench_.loop().now(), status == loop::Status::ConnectionReset);
  pump();
}

void Conn::on_timer(loop::TimerId, uint64_t) {
  armed_for_.reset();
  dialogue_->on_timeout(bench_.loop().now());
  pump();
}

void Conn::pump() {
  if (ended_) return;
  loop::Loop& loop = bench_.loop();
  if (open_) {
    std::string_view out = dialogue_->pending_output();
    if (!out.empty()) {
      loop.send(id_, out);
      dialogue_->consume_output(out.size());
    }
  }
  if (dialogue_->done()) {
    outcome_.failure = dialogue_->failure();
    if (open_)
      loop.close(id_, dialogue_->failure() == Failure::Timeout ? loop::CloseMode::Abort
                                                               : loop::CloseMode::Graceful);
    open_ = false;
    return end();
  }
  const auto deadline = dialogue_->next_deadline();
  if (deadline != armed_for_) {
    if (armed_for_) loop.cancel_timer(timer_);
    armed_for_ = deadline;
    if (deadline) timer_ = loop.add_timer(*deadline, *this);
  }
}

void Conn::end() {
  if (ended_) return;
  ended_ = true;
  if (armed_for_) bench_.loop().cancel_timer(timer_);
  armed_for_.reset();
  outcome_.ended = bench_.loop().now();
  outcome_.ok = dialogue_->ok();
  outcome_.rcpt_replies = dialogue_->rcpt_replies();
  outcome_.measures = dialogue_->measures();
  bench_.session_ended(this, outcome_);
}

bool read_json(const std::string& path, nlohmann::json& j, std::FILE* diag) {
  std::ifstream in(path);
  if (!in) {
    std::fprintf(diag, "mxprobe bench-server: --compare %s: cannot read it\n", path.c_str());
    return false;
  }
  try {
    in >> j;
  } catch (const std::exception& e) {
    std::fprintf(diag, "mxprobe bench-server: --compare %s: not JSON (%s)\n", path.c_str(),
                 e.what());
    return false;
  }
  if (auto why = bench::check_run(j)) {
    std::fprintf(diag, "mxprobe bench-server: --compare %s: %s\n", path.c_str(), why->c_str());
    return false;
  }
  return true;
}

bool chart_name_ok(const std::string& path, std::FILE* diag) {
  auto ends = [&](const char* ext) {
    const size_t n = std::strlen(ext);
    return path.size() > n && path.compare(path.size() - n, n, ext) == 0;
  };
  if (ends(".png") || ends(".svg")) return true;
  std::fprintf(diag, "mxprobe bench-server: --chart '%s' must end in .png or .svg\n", path.c_str());
  return false;
}

// Draws the chart with gnuplot: the data and script in temporary files, gnuplot run without a
// shell. False, with the reason on diag, when gnuplot is missing or fails.
bool draw_chart(const nlohmann::json& a, const nlohmann::json* b, const std::string& out,
                std::FILE* diag) {
  char dir[] = "/tmp/mxprobe-chart-XXXXXX";
  if (!mkdtemp(dir)) {
    std::fprintf(diag, "mxprobe bench-server: --chart: cannot make a temporary directory\n");
    return false;
  }
  const std::string d(dir);
  const std::string data_a = d + "/a.dat", data_b = d + "/b.dat", script = d + "/chart.gp";
  std::ofstream(data_a) << bench::chart_data(a);
  if (b) std::ofstream(data_b) << bench::chart_data(*b);
  std::ofstream(script) << bench::chart_script(a, data_a, out, b, data_b);
  const pid_t pid = fork();
  if (pid == 0) {
    execlp("gnuplot", "gnuplot", script.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  if (pid > 0) waitpid(pid, &status, 0);
  for (const auto& f : {data_a, data_b, script})
    std::remove(f.c_str());
  rmdir(dir);
  if (pid < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::fprintf(diag, "mxprobe bench-server: --chart %s: gnuplot %s\n", out.c_str(),
                 pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 127
                     ? "is not installed (Debian: apt install gnuplot-nox)"
                     : "failed");
    return false;
  }
  return true;
}

}  // namespace

int run_bench_compare(const BenchOptions& o, std::FILE* out, std::FILE* diag) {
  if (o.compare.size() != 2) {
    std::fprintf(diag, "mxprobe bench-server: --compare takes two --json files: A.json B.json\n");
    return 2;
  }
  if (!o.chart.empty() && !chart_name_ok(o.chart, diag)) return 2;
  nlohmann::json a, b;
  if (!read_json(o.compare[0], a, diag) || !read_json(o.compare[1], b, diag)) return 2;
  std::fputs(bench::compare_text(a, b, o.compare[0], o.compare[1]).c_str(), out);
  if (!o.chart.empty() && !draw_chart(a, &b, o.chart, diag)) return 4;
  return 0;
}

int run_bench_server(const BenchOptions& o, const EngineOptions& eng, std::FILE* out,
                     std::FILE* diag) {
  // Usage first: nothing starts on a bad value.
  std::vector<double> rates;
  if (!o.rates.empty() && !o.ramp.empty()) {
    std::fprintf(diag, "mxprobe bench-server: give --rate or --ramp, not both\n");
    return 2;
  }
  if (!o.ramp.empty()) {
    auto r = bench::parse_ramp(o.ramp);
    if (!r) {
      std::fprintf(diag,
                   "mxprobe bench-server: --ramp '%s' is not FROM:TO:xFACTOR or FROM:TO:+STEP "
                   "(e.g. 100:2000:x2, 100:1000:+100)\n",
                   o.ramp.c_str());
      return 2;
    }
    rates = *r;
  } else {
    auto r = bench::parse_rates(o.rates.empty() ? "10" : o.rates);
    if (!r) {
      std::fprintf(diag,
                   "mxprobe bench-server: --rate '%s' is not a rate or a list of rates above 0 "
                   "(e.g. 100 or 100,200,400)\n",
                   o.rates.c_str());
      return 2;
    }
    rates = *r;
  }
  if (!o.domain.empty() && !plain_domain(o.domain)) {
    std::fprintf(diag,
                 "mxprobe bench-server: --domain '%s' is not a domain name (letters, digits, "
                 "hyphens, dots)\n",
                 o.domain.c_str());
    return 2;
  }
  if (!o.chart.empty() && !chart_name_ok(o.chart, diag)) return 2;
  if (o.target.empty()) {
    std::fprintf(diag, "mxprobe bench-server: give the server: HOST[:PORT] (or --compare)\n");
    return 2;
  }

  Engine e;
  EngineOptions eo = eng;
  eo.no_domain_data = true;
  if (!make_engine(eo, false, e, diag)) return 3;
  const auto nofile = loop::raise_nofile_limit();
  if (nofile.status == loop::Status::Ok && nofile.soft < o.max_sessions + 64)
    std::fprintf(diag,
                 "mxprobe bench-server: warning: the open-file limit (%llu) is below "
                 "--max-sessions (%zu): sessions beyond it fail (ulimit -n)\n",
                 static_cast<unsigned long long>(nofile.soft), o.max_sessions);

  ProbeOptions po;
  po.target = o.target;
  po.domain = o.domain;
  auto resolved = resolve_probe_target_now(*e.loop, *e.resolver, po, eng.smtp_port, {});
  if (!resolved) {
    std::fprintf(diag, "mxprobe bench-server: %s\n", resolved.error().c_str());
    return 1;
  }
  std::optional<ProbeTarget> target = std::move(*resolved);
  if (o.domain.empty() && loop::Endpoint::parse(target->domain, 0)) {
    // An address target: RCPTs go to its address literal (RFC 5321 4.1.3).
    target->domain =
        (target->peer.family() == AF_INET6 ? "[IPv6:" : "[") + target->peer.ip_string() + "]";
  }
  if (o.data && !o.i_own_this_server && !bench::is_private(target->peer)) {
    std::fprintf(diag,
                 "mxprobe bench-server: --data sends real messages: only to loopback or private "
                 "addresses (127/8, 10/8, 172.16/12, 192.168/16, ::1, fc00::/7), and %s is "
                 "neither; add --i-own-this-server if it is your own sink\n",
                 target->peer.ip_string().c_str());
    return 2;
  }

  Settings s;
  s.peer = target->peer;
  s.domain = target->domain;
  s.rcpts = o.rcpts;
  s.max_sessions = o.max_sessions;
  const auto& t = e.config.policy->domain_settings(s.domain, std::nullopt).timeouts;
  s.connect_timeout = t[static_cast<int>(smtp::Stage::Connect)];
  s.dialogue.banner_timeout = t[static_cast<int>(smtp::Stage::Banner)];
  s.dialogue.command_timeout = t[static_cast<int>(smtp::Stage::RcptTo)];
  s.dialogue.data_timeout =
      std::max<loop::Duration>(s.dialogue.command_timeout, std::chrono::seconds(10));
  s.dialogue.helo = e.config.session.helo_name;
  s.dialogue.mail_from = e.config.session.mail_from;
  s.dialogue.data = o.data;
  if (o.data)
    s.dialogue.message =
        bench::make_message(s.dialogue.mail_from, "undisclosed-recipients:;", o.message_size);
  std::vector<std::string> source_names;
  for (const auto& src : e.config.sources)
    if (src.endpoint.family() == s.peer.family()) {
      s.sources.push_back(src.endpoint);
      source_names.push_back(src.endpoint.ip_string());
      bench::DialogueConfig c = s.dialogue;
      if (!src.helo.empty()) c.helo = src.helo;
      s.per_source.push_back(std::move(c));
    }
  if (!e.config.sources.empty() && s.sources.empty()) {
    std::fprintf(diag, "mxprobe bench-server: no --source-ip of %s's address family\n",
                 s.peer.to_string().c_str());
    return 2;
  }

  const bool progress = o.progress < 0 ? isatty(fileno(diag)) != 0 : o.progress > 0;
  if (progress)
    std::fprintf(diag, "mxprobe bench-server: %s (%s), RCPTs at %s, %s\n", target->host.c_str(),
                 s.peer.to_string().c_str(), s.domain.c_str(),
                 std::string(loop::to_string(e.loop->backend())).c_str());
  Bench b(*e.loop, s, rates, o.step_time, o.warmup, progress, diag);
  b.start();
  if (!b.done()) e.loop->run();

  bench::RunInfo info;
  info.target = o.target;
  info.address = s.peer.to_string();
  info.domain = s.domain;
  info.backend = std::string(loop::to_string(e.loop->backend()));
  info.sources = source_names;
  info.rates = rates;
  info.step_time = o.step_time;
  info.warmup = o.warmup;
  info.rcpts = o.rcpts;
  info.data = o.data;
  info.message_size = o.data ? o.message_size : 0;
  info.max_sessions = o.max_sessions;
  info.stopped_early = b.stopped_early();
  const nlohmann::json j = bench::to_json(info, b.steps());
  if (o.json)
    std::fprintf(out, "%s\n", j.dump(2).c_str());
  else
    std::fputs(bench::to_text(j).c_str(), out);
  std::fflush(out);
  if (!o.chart.empty() && !draw_chart(j, nullptr, o.chart, diag)) return 4;
  uint64_t completed = 0;
  for (const auto& st : b.steps())
    completed += st.completed;
  return completed > 0 ? 0 : 1;
}

}  // namespace mxp::app
