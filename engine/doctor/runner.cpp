#include "doctor/runner.hpp"

#include <dirent.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include "identity/identity.hpp"
#include "pipeline/proxy_pool.hpp"

namespace mxp::doctor {

const std::vector<std::string>& default_port25_targets() {
  static const std::vector<std::string> targets{
      "gmail-smtp-in.l.google.com",              // Gmail's inbound MX
      "outlook-com.olc.protection.outlook.com",  // Outlook.com / Hotmail's inbound MX
      "mta5.am0.yahoodns.net",                   // Yahoo's inbound MX
  };
  return targets;
}

namespace {

// "host", "host:2525", "192.0.2.1:25", "[2001:db8::1]:25" -> host and port.
std::pair<std::string, uint16_t> split_target(const std::string& t) {
  if (auto ep = loop::Endpoint::parse_host_port(t, 25)) return {ep->ip_string(), ep->port()};
  auto colon = t.rfind(':');
  if (colon != std::string::npos && t.find(':') == colon) {
    int port = std::atoi(t.c_str() + colon + 1);
    if (port > 0 && port < 65536) return {t.substr(0, colon), static_cast<uint16_t>(port)};
  }
  return {t, 25};
}

std::string target_label(const std::string& host, uint16_t port) {
  return port == 25 ? host : host + ":" + std::to_string(port);
}

// socket + bind to ip:0: does this host hold the address? Empty when it does, else why.
std::string try_bind(const loop::Endpoint& ip) {
  int fd = ::socket(ip.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::strerror(errno);
  loop::Endpoint a = ip;
  a.set_port(0);
  std::string why;
  if (::bind(fd, a.sa(), a.len()) != 0) why = std::strerror(errno);
  ::close(fd);
  return why;
}

}  // namespace

struct Runner::State final : std::enable_shared_from_this<Runner::State>, loop::TimerHandler {
  loop::Loop& loop;
  dns::Resolver& resolver;
  RunnerOptions opts;
  Done done;
  std::vector<SourceFacts> facts;
  GlobalFacts global;
  int outstanding = 0;
  bool finished = false;
  loop::TimerId bound_timer{};
  bool bound_armed = false;
  std::unique_ptr<pipeline::ProxyPool> proxies;

  // The port-25 targets' addresses, by family (AF_INET, AF_INET6), once resolved.
  struct Target {
    std::string host, label;
    uint16_t port = 25;
    std::vector<loop::Endpoint> v4, v6;
    bool resolved = false;
    std::string error;
  };
  std::vector<Target> targets;

  class Probe;
  std::vector<std::unique_ptr<Probe>> probes;

  State(loop::Loop& l, dns::Resolver& r, RunnerOptions o, Done d)
      : loop(l), resolver(r), opts(std::move(o)), done(std::move(d)) {}
  ~State();

  void begin() { ++outstanding; }
  void end() {
    if (finished) return;
    if (--outstanding == 0) finish();
  }
  void finish();
  void on_timer(loop::TimerId, uint64_t) override {
    bound_armed = false;
    if (!finished) finish();
  }
  void start();
  void start_port25(size_t source);
};

// One connection to a port-25 target from one source: connect, read the greeting, QUIT.
class Runner::State::Probe final : public loop::ConnHandler, public loop::TimerHandler {
 public:
  Probe(State& st, size_t source, size_t attempt) : st_(st), source_(source), attempt_(attempt) {}
  ~Probe() { stop(); }

  void start(const loop::ConnectOptions& co) {
    st_.begin();
    auto r = st_.loop.connect(co, *this);
    if (r.status != loop::Status::Ok) {
      settle(r.status == loop::Status::AddressNotAvailable ||
                     r.status == loop::Status::TooManyOpenFiles
                 ? Port25Attempt::Outcome::LocalError
                 : Port25Attempt::Outcome::Refused,
             0, std::string(loop::to_string(r.status)));
      return;
    }
    id_ = r.id;
    open_ = true;
  }
  // The run is over (bound reached or done): no callback may reach us any more.
  void stop() {
    if (timer_armed_) st_.loop.cancel_timer(timer_);
    timer_armed_ = false;
    if (open_) st_.loop.close(id_, loop::CloseMode::Abort);
    open_ = false;
  }

  void on_connect(loop::ConnId, loop::Status s) override {
    if (s != loop::Status::Ok) {
      open_ = false;
      using O = Port25Attempt::Outcome;
      O o = O::Timeout;
      if (s == loop::Status::ConnectionRefused) o = O::Refused;
      if (s == loop::Status::ConnectionReset || s == loop::Status::PeerClosed) o = O::Reset;
      if (s == loop::Status::AddressNotAvailable || s == loop::Status::TooManyOpenFiles ||
          s == loop::Status::NetworkUnreachable || s == loop::Status::NoMemory)
        o = O::LocalError;
      settle(o, 0, std::string(loop::to_string(s)));
      return;
    }
    timer_ = st_.loop.add_timer(st_.loop.now() + st_.opts.port25_timeout, *this);
    timer_armed_ = true;
  }
  void on_data(loop::ConnId, std::string_view bytes) override {
    if (settled_) return;
    buf_.append(bytes.substr(0, std::min<size_t>(bytes.size(), 4096)));
    // The greeting is complete at its last line ("220 text", not "220-text").
    size_t start = 0;
    for (size_t nl; (nl = buf_.find('\n', start)) != std::string::npos; start = nl + 1) {
      std::string line = buf_.substr(start, nl - start);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (first_.empty()) first_ = line;
      if (line.size() < 4 || line[3] != '-') {
        int code = std::atoi(line.substr(0, 3).c_str());
        if (timer_armed_) st_.loop.cancel_timer(timer_);
        timer_armed_ = false;
        st_.loop.send(id_, "QUIT\r\n");
        st_.loop.close(id_, loop::CloseMode::Graceful);
        open_ = false;
        settle(Port25Attempt::Outcome::Banner, code, first_);
        return;
      }
    }
    if (buf_.size() > 4096) buf_.clear();
  }
  void on_closed(loop::ConnId, loop::Status s) override {
    open_ = false;
    if (timer_armed_) st_.loop.cancel_timer(timer_);
    timer_armed_ = false;
    settle(Port25Attempt::Outcome::Reset, 0,
           "closed before a greeting (" + std::string(loop::to_string(s)) + ")");
  }
  void on_timer(loop::TimerId, uint64_t) override {
    timer_armed_ = false;
    if (open_) st_.loop.close(id_, loop::CloseMode::Abort);
    open_ = false;
    settle(Port25Attempt::Outcome::Timeout, 0, "connected, but no greeting in time");
  }

 private:
  void settle(Port25Attempt::Outcome o, int code, std::string detail) {
    if (settled_) return;
    settled_ = true;
    if (!st_.finished) {
      auto& a = st_.facts[source_].port25[attempt_];
      a.outcome = o;
      a.code = code;
      a.detail = std::move(detail);
      if (o == Port25Attempt::Outcome::Banner && !st_.global.skew) {
        if (auto t = greeting_date(a.detail)) {
          st_.global.skew = static_cast<int64_t>(std::time(nullptr)) - *t;
          st_.global.skew_source = a.target;
        }
      }
    }
    st_.end();
  }

  State& st_;
  size_t source_, attempt_;
  loop::ConnId id_{};
  bool open_ = false, settled_ = false;
  loop::TimerId timer_{};
  bool timer_armed_ = false;
  std::string buf_, first_;
};

Runner::State::~State() {
  for (auto& p : probes)
    p->stop();
  if (bound_armed) loop.cancel_timer(bound_timer);
}

void Runner::State::finish() {
  finished = true;
  if (bound_armed) loop.cancel_timer(bound_timer);
  bound_armed = false;
  for (auto& p : probes)
    p->stop();
  // What did not answer within the bound could not be checked.
  for (auto& f : facts) {
    for (auto& [zone, v] : f.dnsbl)
      if (v.result == DnsblResult::Failed && v.answer.empty()) v.answer = "no answer in time";
    for (auto& a : f.port25)
      if (a.outcome == Port25Attempt::Outcome::Unresolved && a.detail.empty())
        a.detail = "no answer in time";
    // The targets were still being looked up: none of them could be tried.
    if (f.port25.empty() && f.port25_skipped.empty() && f.binds)
      for (const auto& tg : targets)
        f.port25.push_back({tg.label,
                            {},
                            Port25Attempt::Outcome::Unresolved,
                            0,
                            "its address was not known in time"});
    if (f.identity_checked && f.helo.empty()) {
      auto c = identity::choose_helo(opts.helo_option, nullptr, opts.host_name);
      f.helo = c.name;
      f.helo_fqdn = identity::is_fqdn(c.name);
      f.identity_note = "the PTR lookup did not answer in time";
    }
  }
  auto d = std::move(done);
  done = nullptr;
  if (d) d(std::move(facts), std::move(global));
}

void Runner::State::start() {
  auto self = shared_from_this();
  begin();  // held until everything is started, so nothing finishes early
  global.now_unix = std::time(nullptr);
  global.build_unix = build_date(__DATE__);
  global.resolver = resolver.describe();
  global.concurrency = opts.concurrency;

  // Open files: as verify will find them (soft raised to hard).
  if (rlimit rl{}; getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    global.fd_checked = true;
    global.fd_soft = rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : rl.rlim_cur;
    global.fd_hard = rl.rlim_max == RLIM_INFINITY ? UINT64_MAX : rl.rlim_max;
    if (DIR* dir = opendir("/proc/self/fd")) {
      while (dirent* e = readdir(dir))
        if (e->d_name[0] != '.') ++global.fd_in_use;
      closedir(dir);
    }
  }

  // The resolver.
  begin();
  resolver.check([self](bool answered) {
    if (self->finished) return;
    self->global.resolver_answers = answered;
    self->end();
  });

  // The sources.
  if (!opts.proxies.empty()) {
    proxies = std::make_unique<pipeline::ProxyPool>(loop, opts.proxies, opts.proxy_timeout,
                                                    proxy::HealthSettings{},
                                                    [](size_t, bool, const std::string&) {});
    for (size_t i = 0; i < opts.proxies.size(); ++i) {
      SourceFacts f;
      f.kind = SourceFacts::Kind::Proxy;
      f.name = opts.proxies[i].display;
      auto c = identity::choose_helo(opts.helo_option, nullptr, opts.host_name);
      f.helo = c.name;
      f.helo_given = c.source == identity::HeloSource::Option;
      f.helo_fqdn = identity::is_fqdn(c.name);
      f.identity_note = "not looked up through a proxy (its outgoing address is not known)";
      f.dnsbl_skipped = "not checked through a proxy (its outgoing address is not known)";
      f.port25_skipped = "not checked through a proxy";
      facts.push_back(std::move(f));
      begin();
      proxies->ask(i, [self, i](bool up) {
        if (self->finished) return;
        self->facts[i].binds = up;
        if (!up) self->facts[i].bind_error = self->proxies->health().last_error(i);
        self->end();
      });
    }
  } else if (opts.sources.empty()) {
    SourceFacts f;
    f.kind = SourceFacts::Kind::Default;
    f.name = "default";
    auto c = identity::choose_helo(opts.helo_option, nullptr, opts.host_name);
    f.helo = c.name;
    f.helo_given = c.source == identity::HeloSource::Option;
    f.helo_fqdn = identity::is_fqdn(c.name);
    f.identity_note = "no --source-ip: the address is the kernel's choice";
    f.dnsbl_skipped = "no --source-ip: the address is the kernel's choice";
    facts.push_back(std::move(f));
  } else {
    for (const auto& ip : opts.sources) {
      SourceFacts f;
      f.name = ip.ip_string();
      std::string why = try_bind(ip);
      f.binds = why.empty();
      f.bind_error = why;
      if (ip.family() != AF_INET) f.dnsbl_skipped = "IPv6: blocklists not checked";
      facts.push_back(std::move(f));
    }
  }

  // Identity: PTR, forward confirmation, the HELO it gives.
  if (proxies == nullptr && !opts.sources.empty()) {
    for (auto& f : facts)
      f.identity_checked = opts.check_identity;
    if (opts.check_identity) {
      begin();
      identity::check_ptrs(resolver, opts.sources, [self](std::vector<identity::PtrCheck> v) {
        if (self->finished) return;
        for (size_t i = 0; i < v.size() && i < self->facts.size(); ++i) {
          auto& f = self->facts[i];
          const auto& p = v[i];
          if (p.status == identity::PtrStatus::LookupFailed) f.identity_note = p.detail;
          if (!p.names.empty()) f.ptr = p.confirmed.empty() ? p.names.front() : p.confirmed;
          f.fcrdns = p.status == identity::PtrStatus::Confirmed;
          auto c = identity::choose_helo(self->opts.helo_option, &p, self->opts.host_name);
          f.helo = c.name;
          f.helo_given = c.source == identity::HeloSource::Option;
          f.helo_fqdn = identity::is_fqdn(c.name);
        }
        self->end();
      });
    } else {
      for (auto& f : facts) {
        auto c = identity::choose_helo(opts.helo_option, nullptr, opts.host_name);
        f.helo = c.name;
        f.helo_given = c.source == identity::HeloSource::Option;
        f.helo_fqdn = identity::is_fqdn(c.name);
      }
    }
  }

  // Blocklists: reversed octets under each zone, A, through the configured resolver.
  for (size_t i = 0; proxies == nullptr && i < opts.sources.size(); ++i) {
    if (!facts[i].dnsbl_skipped.empty()) continue;
    for (const auto& zone : opts.dnsbl_zones) {
      auto name = dnsbl_query_name(facts[i].name, zone);
      if (!name) continue;
      const size_t k = facts[i].dnsbl.size();
      facts[i].dnsbl.push_back({zone, {DnsblResult::Failed, {}}});
      begin();
      resolver.lookup_addresses(*name, AF_INET, [self, i, k](const dns::RecordsAnswer& a) {
        if (self->finished) return;
        std::vector<std::string> addrs;
        for (const auto& e : a.addresses)
          addrs.push_back(e.ip_string());
        self->facts[i].dnsbl[k].second = interpret_dnsbl(a.answered, addrs, a.error);
        self->end();
      });
    }
  }

  // Port 25: resolve the targets, then connect from every source.
  if (proxies == nullptr && !opts.port25_targets.empty()) {
    for (const auto& t : opts.port25_targets) {
      auto [host, port] = split_target(t);
      Target tg;
      tg.host = host;
      tg.port = port;
      tg.label = target_label(host, port);
      targets.push_back(std::move(tg));
    }
    auto pending = std::make_shared<int>(0);
    auto resolved = [self, pending]() {
      if (--*pending > 0 || self->finished) return;
      for (size_t s = 0; s < self->facts.size(); ++s)
        self->start_port25(s);
      self->end();
    };
    begin();  // until every target is resolved
    for (size_t k = 0; k < targets.size(); ++k) {
      auto& tg = targets[k];
      if (auto ep = loop::Endpoint::parse(tg.host, tg.port)) {
        (ep->family() == AF_INET ? tg.v4 : tg.v6).push_back(*ep);
        tg.resolved = true;
        continue;
      }
      for (int fam : {AF_INET, AF_INET6}) {
        ++*pending;
        resolver.lookup_addresses(tg.host, fam,
                                  [self, k, fam, resolved](const dns::RecordsAnswer& a) {
                                    if (self->finished) return;
                                    auto& tg = self->targets[k];
                                    for (auto e : a.addresses) {
                                      e.set_port(tg.port);
                                      (fam == AF_INET ? tg.v4 : tg.v6).push_back(e);
                                    }
                                    if (!a.addresses.empty()) tg.resolved = true;
                                    if (!a.answered && tg.error.empty()) tg.error = a.error;
                                    resolved();
                                  });
      }
    }
    ++*pending;
    resolved();  // the literal targets, and the end of the loop above
  } else {
    for (auto& f : facts)
      if (f.port25_skipped.empty()) f.port25_skipped = "no target to try";
  }

  if (opts.bound.count() > 0 && !finished) {
    bound_timer = loop.add_timer(loop.now() + opts.bound, *this);
    bound_armed = true;
  }
  end();
}

void Runner::State::start_port25(size_t s) {
  SourceFacts& f = facts[s];
  if (f.kind == SourceFacts::Kind::Proxy || !f.binds) return;
  std::optional<loop::Endpoint> src;
  if (f.kind == SourceFacts::Kind::Ip) src = opts.sources[s];
  const int fam = src ? src->family() : AF_INET;
  for (const auto& tg : targets) {
    Port25Attempt a;
    a.target = tg.label;
    const auto& addrs = fam == AF_INET6 ? tg.v6 : tg.v4;
    const auto& any = addrs.empty() && !src ? tg.v6 : addrs;
    if (any.empty()) {
      a.outcome = Port25Attempt::Outcome::Unresolved;
      a.detail = tg.error.empty() ? "does not resolve through " + resolver.describe() : tg.error;
      if (tg.resolved && addrs.empty())
        a.detail = "no " + std::string(fam == AF_INET6 ? "IPv6" : "IPv4") + " address";
      f.port25.push_back(std::move(a));
      continue;
    }
    a.address = any.front().to_string();
    f.port25.push_back(std::move(a));
    loop::ConnectOptions co;
    co.peer = any.front();
    if (src) {
      co.source = *src;
      co.source->set_port(0);
    }
    co.timeout = opts.port25_timeout;
    auto p = std::make_unique<Probe>(*this, s, f.port25.size() - 1);
    Probe* raw = p.get();
    probes.push_back(std::move(p));
    raw->start(co);
  }
}

Runner::Runner(loop::Loop& loop, dns::Resolver& resolver, RunnerOptions options, Done done)
    : st_(std::make_shared<State>(loop, resolver, std::move(options), std::move(done))) {}

Runner::~Runner() {
  st_->proxies.reset();  // its waiters hold the state
  st_->finished = true;
  st_->done = nullptr;
  for (auto& p : st_->probes)
    p->stop();
  if (st_->bound_armed) st_->loop.cancel_timer(st_->bound_timer);
  st_->bound_armed = false;
}

void Runner::start() {
  st_->start();
}
bool Runner::finished() const {
  return st_->finished;
}

std::pair<std::vector<SourceFacts>, GlobalFacts> run_now(loop::Loop& loop, dns::Resolver& resolver,
                                                         RunnerOptions options) {
  struct Out {
    std::vector<SourceFacts> facts;
    GlobalFacts global;
    bool finished = false, running = false;
  };
  auto out = std::make_shared<Out>();
  Runner r(loop, resolver, std::move(options),
           [out, &loop](std::vector<SourceFacts> f, GlobalFacts g) {
             out->facts = std::move(f);
             out->global = std::move(g);
             out->finished = true;
             if (out->running) loop.stop();
           });
  r.start();
  while (!out->finished) {
    out->running = true;
    loop.run();
    out->running = false;
    if (!out->finished && loop.connection_count() == 0 && loop.timer_count() == 0) break;
  }
  return {std::move(out->facts), std::move(out->global)};
}

}  // namespace mxp::doctor
