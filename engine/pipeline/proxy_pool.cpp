// SOCKS5 legs of SMTP connections and the proxy pool's health checks (see proxy_pool.hpp).
#include "pipeline/proxy_pool.hpp"

#include <algorithm>

namespace mxp::pipeline {

namespace {
// A target a health check never reaches: it stops once the proxy accepted us.
const proxy::Target kCheckTarget = proxy::Target::ip(*loop::Endpoint::parse("127.0.0.1", 25));

std::string status_why(std::string_view what, loop::Status s) {
  return std::string(what) + ": " + std::string(loop::to_string(s));
}
}  // namespace

// ---------------------------------------------------------------------------------------------
// ProxyLeg

ProxyLeg::ProxyLeg(const proxy::ProxyUrl& proxy, const loop::Endpoint& target)
    : proxy_(proxy),
      client_(proxy::Target::ip(target), proxy.credentials ? &*proxy.credentials : nullptr) {}

ProxyLeg::Step ProxyLeg::failed() {
  const proxy::Error e = client_.error();
  why_ = std::string(proxy::to_string(e)) + ": " + std::string(proxy::describe(e));
  return proxy::fault_of(e) == proxy::Fault::Target ? Step::TargetFailed : Step::ProxyFailed;
}

ProxyLeg::Step ProxyLeg::flush(loop::Loop& loop, loop::ConnId id) {
  std::string_view out = client_.pending_output();
  if (!out.empty()) {
    if (loop.send(id, out) != loop::Status::Ok) {
      why_ = "send to the proxy failed";
      return Step::ProxyFailed;
    }
    client_.consume_output(out.size());
  }
  return Step::Pending;
}

ProxyLeg::Step ProxyLeg::on_connect(loop::Loop& loop, loop::ConnId id, loop::Status status) {
  if (status != loop::Status::Ok) {
    why_ = status_why("connect", status);
    return Step::ProxyFailed;
  }
  if (client_.failed()) return failed();
  return flush(loop, id);
}

ProxyLeg::Step ProxyLeg::on_data(loop::Loop& loop, loop::ConnId id, std::string_view& bytes) {
  const size_t used = client_.feed(bytes);
  bytes.remove_prefix(std::min(used, bytes.size()));
  if (client_.failed()) return failed();
  if (client_.done()) return Step::Ready;
  return flush(loop, id);
}

ProxyLeg::Step ProxyLeg::on_closed(loop::Status status) {
  client_.on_closed();
  if (client_.done()) return Step::Ready;
  const proxy::Error e = client_.error();
  why_ = std::string(proxy::describe(e)) + " (" + std::string(loop::to_string(status)) + ")";
  return Step::ProxyFailed;
}

// ---------------------------------------------------------------------------------------------
// Health checks

// One check: TCP connect, greeting, authentication; passes once the proxy accepted us.
class ProxyPool::Check final : public loop::ConnHandler, public loop::TimerHandler {
 public:
  Check(ProxyPool& pool, size_t i)
      : pool_(pool), i_(i), client_(kCheckTarget, cred(pool.proxies_[i])) {}

  void start() {
    loop::ConnectOptions co;
    co.peer = pool_.proxies_[i_].endpoint;
    co.timeout = pool_.check_timeout_;
    auto r = pool_.loop_.connect(co, *this);
    if (r.status != loop::Status::Ok) return finish(false, status_why("connect", r.status));
    conn_ = r.id;
    open_ = true;
    timer_ = pool_.loop_.add_timer(pool_.loop_.now() + pool_.check_timeout_, *this);
    timer_armed_ = true;
  }
  void abort() {
    if (open_) pool_.loop_.close(conn_, loop::CloseMode::Abort);
    open_ = false;
    if (timer_armed_) pool_.loop_.cancel_timer(timer_);
    timer_armed_ = false;
    ended_ = true;
  }

 private:
  static const proxy::Credentials* cred(const proxy::ProxyUrl& u) {
    return u.credentials ? &*u.credentials : nullptr;
  }
  void on_connect(loop::ConnId, loop::Status status) override {
    if (status != loop::Status::Ok) {
      open_ = false;
      return finish(false, status_why("connect", status));
    }
    if (client_.failed()) return finish(false, std::string(proxy::describe(client_.error())));
    send();
  }
  void on_data(loop::ConnId, std::string_view bytes) override {
    client_.feed(bytes);
    if (client_.accepted()) return finish(true, "");
    if (client_.failed()) return finish(false, describe());
    send();
  }
  void on_closed(loop::ConnId, loop::Status status) override {
    open_ = false;
    client_.on_closed();
    finish(false, std::string(proxy::describe(client_.error())) + " (" +
                      std::string(loop::to_string(status)) + ")");
  }
  void on_timer(loop::TimerId, uint64_t) override {
    timer_armed_ = false;
    finish(false, "no answer from the proxy within the check timeout");
  }
  void send() {
    std::string_view out = client_.pending_output();
    if (out.empty() || !open_) return;
    pool_.loop_.send(conn_, out);
    client_.consume_output(out.size());
  }
  std::string describe() const {
    return std::string(proxy::to_string(client_.error())) + ": " +
           std::string(proxy::describe(client_.error()));
  }
  void finish(bool ok, std::string why) {
    if (ended_) return;
    abort();
    pool_.check_done(i_, ok, std::move(why));  // may free this (deferred: done_checks_)
  }

  ProxyPool& pool_;
  size_t i_;
  proxy::Client client_;
  loop::ConnId conn_{};
  loop::TimerId timer_{};
  bool open_ = false, timer_armed_ = false, ended_ = false;
};

ProxyPool::ProxyPool(loop::Loop& loop, std::vector<proxy::ProxyUrl> proxies,
                     loop::Duration check_timeout, proxy::HealthSettings settings,
                     OnChange on_change)
    : loop_(loop),
      proxies_(std::move(proxies)),
      check_timeout_(check_timeout),
      health_(proxies_.size(), settings),
      on_change_(std::move(on_change)),
      sessions_(proxies_.size()),
      checks_(proxies_.size()) {}

ProxyPool::~ProxyPool() {
  for (auto& c : checks_)
    if (c) c->abort();
  if (timer_armed_) loop_.cancel_timer(timer_);
}

void ProxyPool::failed(size_t i, std::string why) {
  if (health_.on_failure(i, loop_.now(), why) == proxy::Health::Change::WentDown && on_change_)
    on_change_(i, false, why);
  arm();
}

uint64_t ProxyPool::ask(size_t i, std::function<void(bool up)> done) {
  const uint64_t t = next_ticket_++;
  waiters_.push_back({t, i, std::move(done)});
  if (health_.up(i) && !health_.checking(i)) health_.want_check(i);  // one running answers too
  arm();
  return t;
}

void ProxyPool::cancel(uint64_t ticket) {
  std::erase_if(waiters_, [&](const Waiter& w) { return w.ticket == ticket; });
}

void ProxyPool::arm() {
  std::optional<loop::TimePoint> at = health_.next_deadline();
  for (const Waiter& w : waiters_)
    if (!health_.up(w.proxy)) at = loop_.now();  // answered at once: it is down
  if (!at) return;
  at = std::max(*at, loop_.now());
  if (timer_armed_ && armed_at_ <= *at) return;
  if (timer_armed_) loop_.cancel_timer(timer_);
  timer_ = loop_.add_timer(*at, *this);
  timer_armed_ = true;
  armed_at_ = *at;
}

void ProxyPool::on_timer(loop::TimerId, uint64_t) {
  timer_armed_ = false;
  done_checks_.clear();
  // Sessions asking about a proxy already out of rotation: no need to wait for its re-check.
  std::vector<Waiter> answer;
  std::erase_if(waiters_, [&](Waiter& w) {
    if (health_.up(w.proxy)) return false;
    answer.push_back(std::move(w));
    return true;
  });
  for (auto& w : answer)
    w.done(false);
  std::vector<size_t> due;
  health_.due(loop_.now(), due);
  for (size_t i : due) {
    checks_[i] = std::make_unique<Check>(*this, i);
    checks_[i]->start();
  }
  arm();
}

void ProxyPool::check_done(size_t i, bool ok, std::string why) {
  done_checks_.push_back(std::move(checks_[i]));
  const auto change = health_.on_check(i, ok, loop_.now(), why);
  if (change != proxy::Health::Change::None && on_change_)
    on_change_(i, change == proxy::Health::Change::CameUp, why);
  std::vector<Waiter> answer;
  std::erase_if(waiters_, [&](Waiter& w) {
    if (w.proxy != i) return false;
    answer.push_back(std::move(w));
    return true;
  });
  for (auto& w : answer)
    w.done(ok);
  arm();
}

}  // namespace mxp::pipeline
