// SOCKS5 proxies on the loop: ProxyLeg is the SOCKS5 part of one proxied SMTP connection (what
// the session slot calls from on_connect / on_data / on_closed before SMTP starts); ProxyPool
// runs the health checks (connect, greeting, authentication; proxy::Health decides) with its
// own connections and timers, and says when a proxy leaves or rejoins the rotation.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "loop/loop.hpp"
#include "proxy/health.hpp"
#include "proxy/socks5.hpp"

namespace mxp::pipeline {

class ProxyLeg {
 public:
  enum class Step : uint8_t {
    Pending,       // handshake under way
    Ready,         // tunnel up: SMTP from here on
    ProxyFailed,   // the proxy cannot be used: why()
    TargetFailed,  // the proxy could not reach the mail server: a connect failure of it
  };
  ProxyLeg(const proxy::ProxyUrl& proxy, const loop::Endpoint& target);

  const loop::Endpoint& proxy_endpoint() const { return proxy_.endpoint; }
  const std::string& display() const { return proxy_.display; }
  // TCP to the proxy is up (status Ok) or failed: sends the greeting.
  Step on_connect(loop::Loop& loop, loop::ConnId id, loop::Status status);
  // Proxy bytes: `bytes` is left holding what belongs to SMTP (maybe nothing).
  Step on_data(loop::Loop& loop, loop::ConnId id, std::string_view& bytes);
  Step on_closed(loop::Status status);  // before Ready: the proxy's failure
  bool ready() const { return client_.done(); }
  // The CONNECT is out: from here until Ready, waiting is the mail server's (the proxy is
  // connecting to it), so a timeout is the server's connect timeout.
  bool awaiting_target() const { return client_.state() == proxy::Client::State::Request; }
  const std::string& why() const { return why_; }

 private:
  Step flush(loop::Loop& loop, loop::ConnId id);
  Step failed();

  const proxy::ProxyUrl& proxy_;
  proxy::Client client_;
  std::string why_;
};

class ProxyPool final : private loop::TimerHandler {
 public:
  // on_change(i, up, why): proxy i left (up false) or rejoined the rotation.
  using OnChange = std::function<void(size_t i, bool up, const std::string& why)>;
  ProxyPool(loop::Loop& loop, std::vector<proxy::ProxyUrl> proxies, loop::Duration check_timeout,
            proxy::HealthSettings settings, OnChange on_change);
  ~ProxyPool();
  ProxyPool(const ProxyPool&) = delete;
  ProxyPool& operator=(const ProxyPool&) = delete;

  size_t size() const { return proxies_.size(); }
  const proxy::ProxyUrl& url(size_t i) const { return proxies_[i]; }
  bool up(size_t i) const { return health_.up(i); }
  uint64_t sessions(size_t i) const { return sessions_[i]; }
  void note_session(size_t i) { ++sessions_[i]; }
  const proxy::Health& health() const { return health_; }
  // A session could not use proxy i (why never holds credentials).
  void failed(size_t i, std::string why);
  // A session's tunnel closed in the middle of SMTP: is proxy i alive? done(up) is called from
  // the loop once a check answered (at once if the proxy is already known to be down). Returns
  // a ticket for cancel().
  uint64_t ask(size_t i, std::function<void(bool up)> done);
  void cancel(uint64_t ticket);

 private:
  class Check;
  void on_timer(loop::TimerId, uint64_t) override;
  void arm();
  void check_done(size_t i, bool ok, std::string why);

  loop::Loop& loop_;
  std::vector<proxy::ProxyUrl> proxies_;
  loop::Duration check_timeout_;
  proxy::Health health_;
  OnChange on_change_;
  std::vector<uint64_t> sessions_;                   // SMTP sessions started through each proxy
  std::vector<std::unique_ptr<Check>> checks_;       // by proxy; null when none runs
  std::vector<std::unique_ptr<Check>> done_checks_;  // finished in a callback; freed later
  struct Waiter {
    uint64_t ticket;
    size_t proxy;
    std::function<void(bool)> done;
  };
  std::vector<Waiter> waiters_;
  uint64_t next_ticket_ = 1;
  loop::TimerId timer_{};
  bool timer_armed_ = false;
  loop::TimePoint armed_at_{};
};

}  // namespace mxp::pipeline
