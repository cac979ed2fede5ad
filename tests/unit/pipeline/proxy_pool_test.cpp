// ProxyPool on a real loop (both backends) against a tiny SOCKS5 responder on a thread: a proxy
// that failed is re-checked with back-off until its authentication passes, then rejoins; a
// session's doubt is answered by a check; a proxy that stops listening is found down.
#include "pipeline/proxy_pool.hpp"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>

namespace mxp::pipeline {
namespace {

using namespace std::chrono_literals;

// Accepts connections one at a time: method selection -> user/pass; the first `refuse`
// authentications are refused (status 1), later ones pass; then closes. Counts them.
class FakeSocks {
 public:
  FakeSocks() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(fd_, 16), 0);
    socklen_t len = sizeof a;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    endpoint_ = *loop::Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&a), len);
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeSocks() { stop(); }
  void stop() {
    if (fd_ < 0) return;
    ::shutdown(fd_, SHUT_RDWR);  // wakes accept()
    thread_.join();
    ::close(fd_);
    fd_ = -1;
  }
  const loop::Endpoint& endpoint() const { return endpoint_; }
  std::atomic<int> refuse{3};
  std::atomic<int> served{0};

 private:
  void serve() {
    for (;;) {
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      unsigned char buf[600];
      // greeting: 05 n methods...; we choose user/pass
      if (::read(c, buf, sizeof buf) > 0 && ::write(c, "\x05\x02", 2) == 2 &&
          ::read(c, buf, sizeof buf) > 0) {
        const int n = served++;  // counted before the answer goes out
        const char ok[2] = {1, static_cast<char>(n < refuse ? 1 : 0)};
        (void)!::write(c, ok, 2);
      }
      ::close(c);
    }
  }
  int fd_ = -1;
  loop::Endpoint endpoint_;
  std::thread thread_;
};

class ProxyPoolTest : public ::testing::TestWithParam<loop::Backend> {};

TEST_P(ProxyPoolTest, DownRecheckedUntilAuthPassesThenDoubtAndDeath) {
  loop::LoopOptions lo;
  lo.backend = GetParam();
  auto made = loop::make_loop(lo);
  if (!made.loop) GTEST_SKIP() << made.why;
  loop::Loop& loop = *made.loop;
  FakeSocks server;
  auto url = proxy::parse_proxy_url("socks5://u:pw@" + server.endpoint().to_string());
  ASSERT_TRUE(url) << url.error();
  std::vector<std::pair<bool, std::string>> changes;
  ProxyPool pool(loop, {*url}, 2s, {20ms, 80ms}, [&](size_t i, bool up, const std::string& why) {
    EXPECT_EQ(i, 0u);
    changes.emplace_back(up, why);
    if (up) loop.stop();
  });
  // A watchdog: a hung pool fails the test instead of blocking it.
  struct Stop final : loop::TimerHandler {
    loop::Loop* l;
    bool fired = false;
    void on_timer(loop::TimerId, uint64_t) override { fired = true, l->stop(); }
  } watchdog;
  watchdog.l = &loop;
  auto dog = loop.add_timer(loop.now() + 10s, watchdog);

  pool.failed(0, "auth_refused: test");
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_FALSE(changes[0].first);
  EXPECT_FALSE(pool.up(0));
  // Re-checks fail (auth refused) three times, then pass: it comes back.
  loop.run();
  ASSERT_FALSE(watchdog.fired) << "the proxy never came back";
  ASSERT_EQ(changes.size(), 2u);
  EXPECT_TRUE(changes[1].first);
  EXPECT_TRUE(pool.up(0));
  EXPECT_EQ(pool.health().checks(0), 4u);  // 20, 40, 80, 80 ms apart: three refused, one passed
  EXPECT_EQ(server.served.load(), 4);

  // A session's doubt: a check runs and answers "up".
  std::optional<bool> answer;
  pool.ask(0, [&](bool up) {
    answer = up;
    loop.stop();
  });
  loop.run();
  ASSERT_TRUE(answer);
  EXPECT_TRUE(*answer);
  // The proxy stops listening: the next doubt finds it down, and it leaves the rotation.
  server.stop();
  answer.reset();
  const uint64_t cancelled = pool.ask(0, [&](bool) { ADD_FAILURE() << "cancelled"; });
  pool.cancel(cancelled);
  pool.ask(0, [&](bool up) {
    answer = up;
    loop.stop();
  });
  loop.run();
  ASSERT_TRUE(answer);
  EXPECT_FALSE(*answer);
  EXPECT_FALSE(pool.up(0));
  ASSERT_EQ(changes.size(), 3u);
  EXPECT_FALSE(changes[2].first);
  EXPECT_NE(changes[2].second.find("connect"), std::string::npos) << changes[2].second;
  loop.cancel_timer(dog);
}

INSTANTIATE_TEST_SUITE_P(Backends, ProxyPoolTest,
                         ::testing::Values(loop::Backend::Uv, loop::Backend::Uring),
                         [](const auto& info) { return std::string(loop::to_string(info.param)); });

}  // namespace
}  // namespace mxp::pipeline
