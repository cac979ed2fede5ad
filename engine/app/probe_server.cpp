// probe-server's driver: connections on the engine's loop, each an smtp::Session (sans-I/O) with
// a transcript hook that times every command and reply; the measurements run one after another
// and stop at the first sign of limiting. Conclusions are drawn by probe::analyze (pure).
#include "app/probe_server.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <vector>

#include "core/clock.hpp"
#include "core/strings.hpp"
#include "probe/report.hpp"
#include "smtp/session.hpp"

namespace mxp::app {
namespace {

using probe::ConnRecord;
using probe::Phase;
using Clock = core::Clock;

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

std::string random_local_part(std::mt19937_64& rng) {
  static constexpr char kChars[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::string s = "mxp";
  for (int i = 0; i < 12; ++i)
    s += kChars[rng() % (sizeof kChars - 1)];
  return s;
}

std::string fmt_s(double s) {
  char b[32];
  std::snprintf(b, sizeof b, "%g", s);
  return b;
}

// Why a TCP connect failed, in words: refused (nothing listens, or a firewall's RST) and timed
// out are different problems.
std::string connect_error(loop::Status st) {
  switch (st) {
    case loop::Status::ConnectionRefused:
      return "connection refused";
    case loop::Status::ConnectTimeout:
    case loop::Status::TimedOut:
      return "connect timed out";
    case loop::Status::NetworkUnreachable:
    case loop::Status::HostUnreachable:
      return "unreachable (" + std::string(loop::to_string(st)) + ")";
    default:
      return "could not connect (" + std::string(loop::to_string(st)) + ")";
  }
}

// One connection: an smtp::Session driven by the loop, its exchanges timed into a ConnRecord.
class ProbeConn final : public loop::ConnHandler, public loop::TimerHandler {
 public:
  // `hold`: greet and EHLO, then wait for release() (concurrency ramp).
  ProbeConn(loop::Loop& loop, const smtp::SessionConfig& cfg, ConnRecord& rec,
            std::function<void(ProbeConn&)> on_greeted, std::function<void(ProbeConn&)> on_end)
      : loop_(loop),
        session_(cfg),
        rec_(rec),
        on_greeted_(std::move(on_greeted)),
        on_end_(std::move(on_end)) {
    session_.set_transcript(&ProbeConn::on_line, this);
  }

  void start(const loop::Endpoint& peer, const std::optional<loop::Endpoint>& source,
             const std::vector<std::string>& rcpts, bool hold, double timeout_s) {
    const auto now = loop_.now();
    started_ = now;
    timeout_s_ = timeout_s;
    for (size_t i = 0; i < rcpts.size(); ++i)
      session_.add_recipient(rcpts[i], i, now);
    if (!hold) session_.finish(now);
    session_.start(now);
    loop::ConnectOptions co;
    co.peer = peer;
    co.source = source;
    co.timeout =
        std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000)) + std::chrono::seconds(5);
    auto r = loop_.connect(co, *this);
    if (r.status != loop::Status::Ok) {
      rec_.connect_error = connect_error(r.status);
      session_.on_closed(now);
    } else {
      conn_ = r.id;
      open_ = true;
    }
    pump();
  }
  void release() {
    session_.finish(loop_.now());
    pump();
  }
  bool ended() const { return ended_; }
  bool greeted() const { return greeted_; }

 private:
  static void on_line(void* self, smtp::Direction dir, std::string_view line) {
    static_cast<ProbeConn*>(self)->line(dir, line);
  }
  void line(smtp::Direction dir, std::string_view text) {
    const auto now = Clock::now();
    if (dir == smtp::Direction::Sent) {
      std::string verb(text.substr(0, text.find(' ')));  // "MAIL FROM:<>" -> MAIL
      rec_.exchanges.push_back({verb, 0, 0, ""});
      sent_at_ = now;
      awaiting_ = true;
      reply_lines_.clear();
      return;
    }
    reply_lines_.emplace_back(text);
    const bool last = text.size() < 4 || text[3] == ' ';
    if (!last) return;
    const int code = std::isdigit(static_cast<unsigned char>(text[0]))
                         ? std::atoi(std::string(text.substr(0, 3)).c_str())
                         : 0;
    const std::string rest(text.size() > 4 ? text.substr(4) : std::string_view());
    if (!banner_seen_) {
      banner_seen_ = true;
      rec_.banner_code = code;
      rec_.banner_ms = ms_between(connected_at_, now);
      rec_.banner_text = rest;
      reply_lines_.clear();
      return;
    }
    if (awaiting_ && !rec_.exchanges.empty()) {
      auto& e = rec_.exchanges.back();
      e.ms = ms_between(sent_at_, now);
      e.code = code;
      e.text = rest;
      if (e.verb == "EHLO" && code >= 200 && code < 300) {
        for (size_t i = 1; i < reply_lines_.size(); ++i) {
          std::string k = core::upper(reply_lines_[i].size() > 4 ? reply_lines_[i].substr(4) : "");
          if (!k.empty()) rec_.ehlo_keywords.push_back(k);
        }
      }
      if (e.verb == "QUIT") quit_answered_ = true;
    }
    awaiting_ = false;
    reply_lines_.clear();
  }

  void on_connect(loop::ConnId, loop::Status status) override {
    const auto now = loop_.now();
    if (status == loop::Status::Ok) {
      connected_at_ = now;
      rec_.connected = true;
      rec_.connect_ms = ms_between(started_, now);
      session_.on_connected(now);
    } else {
      open_ = false;
      rec_.connect_error = connect_error(status);
      session_.on_closed(now);
    }
    pump();
  }
  void on_data(loop::ConnId, std::string_view bytes) override {
    session_.on_bytes(bytes, loop_.now());
    pump();
  }
  void on_closed(loop::ConnId, loop::Status) override {
    open_ = false;
    if (!quit_answered_) rec_.closed_by_server = true;
    session_.on_closed(loop_.now());
    pump();
  }
  void on_timer(loop::TimerId, uint64_t) override {
    timer_armed_ = false;
    rec_.timed_out = true;
    if (!rec_.connected)
      rec_.connect_error = "timed out: no TCP answer within " + fmt_s(timeout_s_) + " s";
    session_.on_timeout(loop_.now());
    pump();
  }

  void pump() {
    if (ended_) return;
    while (session_.pop_result()) {
    }
    if (open_) {
      std::string_view out = session_.pending_output();
      if (!out.empty()) {
        loop_.send(conn_, out);
        session_.consume_output(out.size());
      }
    }
    // Greeted: the EHLO (or HELO) answered and nothing else asked (a held connection).
    if (!greeted_ && rec_.banner_code && (session_.idle() || session_.done())) {
      greeted_ = true;
      if (on_greeted_) on_greeted_(*this);
      if (ended_) return;
    }
    if (session_.done() || (!open_ && session_.want_close())) {
      if (open_) loop_.close(conn_, loop::CloseMode::Graceful);
      open_ = false;
      if (timer_armed_) loop_.cancel_timer(timer_);
      timer_armed_ = false;
      ended_ = true;
      if (!greeted_ && on_greeted_) on_greeted_(*this);  // refused: the ramp hears of it too
      on_end_(*this);
      return;
    }
    auto deadline = session_.next_deadline();
    if (deadline != armed_for_ || !timer_armed_) {
      if (timer_armed_) loop_.cancel_timer(timer_);
      timer_armed_ = false;
      if (deadline) {
        timer_ = loop_.add_timer(*deadline, *this);
        timer_armed_ = true;
        armed_for_ = deadline;
      }
    }
  }

  loop::Loop& loop_;
  smtp::Session session_;
  ConnRecord& rec_;
  std::function<void(ProbeConn&)> on_greeted_, on_end_;
  loop::ConnId conn_{};
  loop::TimerId timer_{};
  std::optional<Clock::time_point> armed_for_;
  Clock::time_point started_{}, connected_at_{}, sent_at_{};
  std::vector<std::string> reply_lines_;
  double timeout_s_ = 0;
  bool open_ = false, timer_armed_ = false, ended_ = false, greeted_ = false;
  bool banner_seen_ = false, awaiting_ = false, quit_answered_ = false;
};

// The measurements, one after another: samples, greylisting retries, concurrency ramp, error
// limit, connection-rate ramp. Each waits for the previous one's connections to end.
class Prober final : private loop::TimerHandler {
 public:
  Prober(loop::Loop& loop, const ProbeOptions& o, const smtp::SessionConfig& cfg,
         loop::Endpoint peer, std::optional<loop::Endpoint> source, std::string domain,
         std::function<void()> on_done)
      : loop_(loop),
        o_(o),
        cfg_(cfg),
        peer_(peer),
        source_(source),
        domain_(std::move(domain)),
        on_done_(std::move(on_done)) {
    std::random_device rd;
    rng_.seed((uint64_t(rd()) << 32) ^ rd());
    probe_addr_ = random_local_part(rng_) + "@" + domain_;
    bulk_cfg_ = cfg_;
    bulk_cfg_.max_rcpts_per_transaction = static_cast<uint32_t>(o_.bad_rcpts) + 1;
  }

  ~Prober() {
    for (auto& [id, p] : pending_)
      loop_.cancel_timer(p.first);
  }
  void start() {
    t0_ = loop_.now();
    next_sample();
  }
  bool done() const { return stopped_; }
  std::vector<ConnRecord> records() const { return {records_.begin(), records_.end()}; }
  const std::vector<std::string>& notes() const { return notes_; }
  double duration_s() const { return ms_between(t0_, end_) / 1000; }
  double rate_at_refusal() const { return rate_at_refusal_; }
  double rate_tried() const { return rate_tried_; }
  const std::string& stopped_why() const { return stopped_why_; }

 private:
  double now_s() const { return ms_between(t0_, loop_.now()) / 1000; }

  ConnRecord& new_record(Phase p) {
    records_.push_back({});
    ConnRecord& r = records_.back();
    r.phase = p;
    r.at_s = now_s();
    r.open_at_start = open_;
    return r;
  }
  // Opens one connection; `done` runs when it ended (or, for a held one, `greeted` first).
  void open(Phase p, std::vector<std::string> rcpts, bool hold, const smtp::SessionConfig& cfg,
            std::function<void(ProbeConn&, const ConnRecord&)> greeted,
            std::function<void(const ConnRecord&)> done) {
    ConnRecord& rec = new_record(p);
    ++open_;
    auto conn = std::make_unique<ProbeConn>(
        loop_, cfg, rec,
        greeted
            ? std::function<void(ProbeConn&)>([&rec, greeted](ProbeConn& c) { greeted(c, rec); })
            : nullptr,
        [this, &rec, done](ProbeConn&) {
          --open_;
          done(rec);
        });
    ProbeConn& c = *conn;
    conns_.push_back(std::move(conn));
    c.start(peer_, source_, rcpts, hold, o_.timeout);
  }
  // Continues on the next loop iteration (or after `s` seconds): never inside a connection's
  // own callback.
  void later(double s, std::function<void()> f) {
    const uint64_t id = ++next_id_;
    const loop::TimerId t =
        loop_.add_timer(loop_.now() + std::chrono::microseconds(int64_t(s * 1e6)), *this, id);
    pending_[id] = {t, std::move(f)};
  }
  void on_timer(loop::TimerId, uint64_t id) override {
    auto it = pending_.find(id);
    if (it == pending_.end()) return;
    auto f = std::move(it->second.second);
    pending_.erase(it);
    if (!stopped_) f();
  }
  void finish(const std::string& why = "") {
    if (stopped_) return;
    stopped_ = true;
    if (!why.empty()) notes_.push_back(why);
    stopped_why_ = why;
    end_ = loop_.now();
    if (on_done_) on_done_();
  }
  bool refused(const ConnRecord& r) const { return !r.accepted(); }
  // A refusal with none of ours open. The very first connection refused is a block: stop.
  // Else a limit (most likely the connection rate's): wait it out quietly — 1 s, then twice as
  // long each time, one connection after each wait — and `retry` the step, within --max-time.
  void wait_out(std::function<void()> retry) {
    if (records_.size() == 1 || !records_.front().accepted())
      return later(0, [this] { finish("no more probing after a refused first connection"); });
    rate_seen_ = true;
    quiet_ = quiet_ == 0 ? 1 : std::min(quiet_ * 2, 64.0);
    if (over_time(quiet_)) return stop_for_time("waiting out a refused connection");
    later(quiet_, std::move(retry));
  }
  bool over_time(double ahead = 0) const { return now_s() + ahead > o_.max_time; }
  void stop_for_time(const std::string& doing) {
    later(0, [this, doing] {
      finish("stopped by --max-time (" + fmt_s(o_.max_time) + " s) " + doing);
    });
  }
  // An accepted connection after waits: the quiet that worked is the rate window's measure.
  void accepted_again() {
    if (quiet_ > 0) window_ = std::max(window_, quiet_);
    quiet_ = 0;
  }

  // 1. Plain sessions: greeting, EHLO, MAIL, RCPT to a random address (catch-all), QUIT.
  void next_sample() {
    if (samples_done_ >= o_.samples) return later(0, [this] { greylist(); });
    if (over_time()) return stop_for_time("in the samples");
    open(Phase::Sample, {probe_addr_}, false, cfg_, nullptr, [this](const ConnRecord& r) {
      if (refused(r)) return wait_out([this] { next_sample(); });
      accepted_again();
      ++samples_done_;
      later(0, [this] { next_sample(); });
    });
  }

  // 2. Greylisting: the same random address again, every step, until not 4xx.
  static bool temporary(const probe::Exchange* e) { return e && e->code >= 400 && e->code < 500; }
  void greylist() {
    const probe::Exchange* first = nullptr;
    for (const auto& r : records_)
      if (r.phase == Phase::Sample && r.accepted() && (first = probe::first_rcpt(r))) break;
    if (!temporary(first)) return concurrency();
    grey_started_ = now_s();
    greylist_again();
  }
  void greylist_again() {
    if (now_s() - grey_started_ > o_.greylist_wait) {
      notes_.push_back("greylisting not passed within the wait");
      return concurrency();
    }
    if (over_time(o_.greylist_step)) return stop_for_time("while greylisted");
    later(o_.greylist_step, [this] { greylist_try(); });
  }
  void greylist_try() {
    open(Phase::Greylist, {probe_addr_}, false, cfg_, nullptr, [this](const ConnRecord& r) {
      if (refused(r)) return wait_out([this] { greylist_try(); });
      accepted_again();
      later(0, [this, again = temporary(probe::first_rcpt(r))] {
        again ? greylist_again() : concurrency();
      });
    });
  }

  // 3. Concurrency: hold connections one more at a time; stop at the first refused. Refused
  // with none held: wait out and start again. Refused with some held after a rate refusal was
  // seen: keep them, wait twice the rate's window and try once more (docs/probe.md).
  void concurrency() {
    if (o_.no_concurrency || o_.max_connections <= 0) return error_limit();
    if (over_time()) return stop_for_time("before the concurrency ramp");
    held_.clear();
    doubted_ = -1;
    hold_next();
  }
  void hold_next() {
    open(
        Phase::Concurrency, {}, true, cfg_,
        [this](ProbeConn& c, const ConnRecord& r) {
          if (c.ended() || refused(r)) return;  // the end callback decides
          accepted_again();
          held_.push_back(&c);
          if (static_cast<int>(held_.size()) < o_.max_connections)
            later(0, [this] { hold_next(); });
          else
            later(0, [this] { release_held(); });
        },
        [this](const ConnRecord& r) {
          if (releasing_) {
            if (open_ == 0) later(0, [this] { after_concurrency(); });
            return;
          }
          if (!refused(r)) return;  // a held one the server closed: the ramp goes on
          if (r.open_at_start == 0) return wait_out([this] { concurrency(); });
          if (rate_seen_ && doubted_ != r.open_at_start) {
            doubted_ = r.open_at_start;  // the rate's refusal, or the concurrency limit?
            const double wait = 2 * std::max(window_, 1.0);
            if (!over_time(wait)) return later(wait, [this] { hold_next(); });
          }
          later(0, [this] { release_held(); });
        });
  }
  void release_held() {
    releasing_ = true;
    for (ProbeConn* c : held_)
      if (!c->ended()) c->release();
    held_.clear();
    if (open_ == 0) later(0, [this] { after_concurrency(); });
  }
  void after_concurrency() {
    if (!releasing_) return;
    releasing_ = false;
    error_limit();
  }

  // 4. Error limit: unknown recipients one after another in one session.
  void error_limit() {
    if (o_.no_error_limit || o_.bad_rcpts <= 0) return rate();
    if (over_time()) return stop_for_time("before the error-limit test");
    std::vector<std::string> rcpts;
    for (int i = 0; i < o_.bad_rcpts; ++i)
      rcpts.push_back(random_local_part(rng_) + "@" + domain_);
    open(Phase::ErrorLimit, rcpts, false, bulk_cfg_, nullptr, [this](const ConnRecord& r) {
      if (refused(r)) return wait_out([this] { error_limit(); });
      accepted_again();
      later(0, [this] { rate(); });
    });
  }

  // 5. Connection rate: greet-and-quit connections at 1, 2, 4... per second, `rate_step` s each;
  // the first refusal is the finding and ends it (last, so no later step pays for it).
  void rate() {
    if (o_.no_rate || o_.max_rate <= 0) return finish();
    if (over_time()) return stop_for_time("before the connection-rate ramp");
    rate_ = std::min(1.0, o_.max_rate);
    step_started_ = now_s();
    rate_tick();
  }
  void rate_tick() {
    if (stop_rate_) return;
    if (now_s() - step_started_ >= o_.rate_step) {
      rate_tried_ = rate_;
      if (rate_ >= o_.max_rate || over_time(o_.rate_step)) {
        stop_rate_ = true;
        if (open_ == 0) finish();
        return;
      }
      rate_ = std::min(rate_ * 2, o_.max_rate);
      step_started_ = now_s();
    }
    open(Phase::Rate, {}, false, cfg_, nullptr, [this](const ConnRecord& r) {
      if (refused(r) && !stop_rate_) {
        stop_rate_ = true;
        rate_at_refusal_ = rate_;
      }
      if (stop_rate_ && open_ == 0) later(0, [this] { finish(); });
    });
    later(1.0 / rate_, [this] { rate_tick(); });
  }

  loop::Loop& loop_;
  const ProbeOptions& o_;
  const smtp::SessionConfig& cfg_;
  smtp::SessionConfig bulk_cfg_;
  loop::Endpoint peer_;
  std::optional<loop::Endpoint> source_;
  std::string domain_, probe_addr_;
  std::function<void()> on_done_;
  std::mt19937_64 rng_;
  std::deque<ConnRecord> records_;  // live connections point into it: a deque keeps them put
  std::vector<std::unique_ptr<ProbeConn>> conns_;
  std::vector<ProbeConn*> held_;
  std::vector<std::string> notes_;
  std::string stopped_why_;
  // later(): by timer cookie; cancelled when the probe goes first (serve drops a finished
  // probe while a ramp's or a wait's timer may still be due).
  std::map<uint64_t, std::pair<loop::TimerId, std::function<void()>>> pending_;
  uint64_t next_id_ = 0;
  bool stopped_ = false;
  Clock::time_point t0_{}, end_{};
  int open_ = 0, samples_done_ = 0;
  double grey_started_ = -1, rate_ = 0, step_started_ = 0, rate_at_refusal_ = 0, rate_tried_ = 0;
  bool releasing_ = false, stop_rate_ = false;
  bool rate_seen_ = false;  // a refusal with none of ours open, after accepted ones
  double quiet_ = 0;        // the current wait-out's quiet time
  double window_ = 0;       // the longest quiet after which a connection was accepted again
  int doubted_ = -1;        // a ramp refusal with this many held, being confirmed
};

}  // namespace

struct Probe::Impl {
  ProbeOptions opts;
  ProbeTarget target;
  smtp::SessionConfig cfg;
  std::unique_ptr<Prober> prober;
};

Probe::Probe(loop::Loop& loop, const ProbeOptions& opts, const smtp::SessionConfig& base,
             ProbeTarget target, std::function<void()> on_done)
    : impl_(std::make_unique<Impl>()) {
  impl_->opts = opts;
  impl_->target = std::move(target);
  smtp::SessionConfig& cfg = impl_->cfg;
  cfg = base;
  cfg.use_pipelining = false;                // one reply per command: each one timed
  cfg.starttls = smtp::StartTlsMode::Never;  // its own connections do no TLS; EHLO shows STARTTLS
  const auto t = std::chrono::milliseconds(static_cast<int64_t>(opts.timeout * 1000));
  cfg.timeouts.fill(t);
  cfg.timeouts[static_cast<int>(smtp::Stage::Quit)] = std::min(t, std::chrono::milliseconds(5000));
  cfg.max_rcpts_per_transaction = 10;
  impl_->prober =
      std::make_unique<Prober>(loop, impl_->opts, impl_->cfg, impl_->target.peer,
                               impl_->target.source, impl_->target.domain, std::move(on_done));
}
Probe::~Probe() = default;
void Probe::start() {
  impl_->prober->start();
}
bool Probe::done() const {
  return impl_->prober->done();
}

probe::Report Probe::report() const {
  const Prober& p = *impl_->prober;
  probe::Report r;
  r.target = impl_->opts.target;
  r.host = impl_->target.host;
  r.address = impl_->target.peer.to_string();
  probe::Thresholds th;
  th.tarpit_ms = impl_->opts.tarpit_ms;
  const ProbeOptions& o = impl_->opts;
  if (p.rate_at_refusal() > 0) r.rate_per_s = p.rate_at_refusal();
  r.rate_tried_per_s = p.rate_tried();
  r.ask_concurrency = !o.no_concurrency && o.max_connections > 0;
  r.ask_rate = !o.no_rate && o.max_rate > 0;
  r.ask_error_limit = !o.no_error_limit && o.bad_rcpts > 0;
  r.stopped = p.stopped_why();
  probe::analyze(p.records(), th, r);
  for (const auto& n : p.notes())
    r.notes.push_back(n);
  r.duration_s = p.duration_s();
  return r;
}

void resolve_probe_target(dns::MxResolver& resolver, const ProbeOptions& opts, uint16_t port,
                          const std::vector<pipeline::SourceAddress>& sources,
                          std::function<void(std::optional<ProbeTarget>, std::string)> done) {
  auto finish = [sources, opts](ProbeTarget t) {
    if (t.domain.empty()) t.domain = opts.domain.empty() ? t.host : opts.domain;
    // From the first source address of the target's family (limits are per client IP).
    for (const auto& s : sources)
      if (!t.source && s.endpoint.family() == t.peer.family()) t.source = s.endpoint;
    return t;
  };
  if (auto ep = loop::Endpoint::parse_host_port(opts.target, port); ep && ep->valid()) {
    ProbeTarget t;
    t.peer = *ep;
    t.host = ep->ip_string();
    return done(finish(std::move(t)), "");
  }
  std::string name = opts.target;
  if (auto colon = name.rfind(':'); colon != std::string::npos) {
    char* end = nullptr;
    const unsigned long p = std::strtoul(name.c_str() + colon + 1, &end, 10);
    if (!end || *end || p == 0 || p > 65535) return done(std::nullopt, "bad port in " + name);
    port = static_cast<uint16_t>(p);
    name.resize(colon);
  }
  if (name.empty() || name.find_first_of(" \r\n\t<>@") != std::string::npos)
    return done(std::nullopt, "not a host name, address or domain: " + opts.target);
  resolver.resolve(name, [=](const dns::MxAnswer& a) {
    if (!a.ok || a.targets.empty())
      return done(std::nullopt, name + ": no mail server found (" +
                                    std::string(verdict::to_string(a.failure)) + ")");
    ProbeTarget t;
    t.host = a.targets[0].host;
    t.peer = a.targets[0].address;
    t.peer.set_port(port);
    t.domain = opts.domain.empty() ? name : opts.domain;
    done(finish(std::move(t)), "");
  });
}

core::Expected<ProbeTarget, std::string> resolve_probe_target_now(
    loop::Loop& loop, dns::MxResolver& resolver, const ProbeOptions& opts, uint16_t port,
    const std::vector<pipeline::SourceAddress>& sources) {
  std::optional<ProbeTarget> target;
  std::string err;
  bool resolved = false, running = false;
  resolve_probe_target(resolver, opts, port, sources,
                       [&](std::optional<ProbeTarget> t, std::string why) {
                         target = std::move(t);
                         err = std::move(why);
                         resolved = true;
                         // An address answers at once, outside run(): a stop() then would
                         // make the next run() return at once (loop.hpp).
                         if (running) loop.stop();
                       });
  if (!resolved) {
    running = true;
    loop.run();
    running = false;
  }
  if (!target) return core::unexpected(err);
  return std::move(*target);
}

int run_probe_server(const ProbeOptions& opts, const EngineOptions& eng, std::FILE* out,
                     std::FILE* diag) {
  Engine e;
  if (!make_engine(eng, true, e, diag)) return 3;
  if (!e.config.proxies.empty()) {  // its probes connect directly (docs/proxies.md)
    std::fprintf(diag, "mxprobe: probe-server does not go through --proxy\n");
    return 2;
  }
  auto resolved =
      resolve_probe_target_now(*e.loop, *e.resolver, opts, eng.smtp_port, e.config.sources);
  if (!resolved) {
    std::fprintf(diag, "mxprobe probe-server: %s\n", resolved.error().c_str());
    return 1;
  }
  std::optional<ProbeTarget> target = std::move(*resolved);
  std::fprintf(diag, "mxprobe probe-server: %s (%s), RCPT probes at %s\n", target->host.c_str(),
               target->peer.to_string().c_str(), target->domain.c_str());
  Probe p(*e.loop, opts, e.config.session, *target, [&] { e.loop->stop(); });
  p.start();
  if (!p.done()) e.loop->run();
  const probe::Report r = p.report();
  if (opts.json)
    std::fprintf(
        out, "%s\n",
        probe::to_json(r).dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  else
    std::fputs(probe::to_text(r).c_str(), out);
  // 1: nothing measured (no connection accepted); 5: some figure not measured (docs/probe.md).
  if (r.measured.empty()) return 1;
  return r.not_measured.empty() ? 0 : 5;
}

}  // namespace mxp::app
