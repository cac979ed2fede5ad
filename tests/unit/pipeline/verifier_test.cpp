// The Verifier end to end on a real loop (both backends): a table resolver (dns::TableResolver)
// names the MX hosts, and scripted SMTP peers on 127.41.0.x (one thread per connection) answer
// banner, EHLO, MAIL, RCPT per address, RSET, QUIT by script and log every command. Covers MX
// failover (refused connection, 421 greeting), catch-all holds (probe accepted: risky/catch_all;
// probe refused: the real verdicts), recipient limits (the per-session cap opens a second session;
// 452 too many recipients sends the rest again, not a verdict) and domain eviction under a tiny
// max_domains (no verdict changes). Every test checks the records (verdict, reason, attempts, mx)
// and what the peers saw (never DATA).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "address/address.hpp"
#include "dns/mx.hpp"
#include "loop/loop.hpp"
#include "pipeline/verifier.hpp"
#include "proxy/socks5.hpp"
#include "sched/policy.hpp"

namespace mxp::pipeline {
namespace {

using namespace std::chrono_literals;

// What a scripted peer answers.
struct Script {
  std::string banner = "220 mx.test ESMTP scripted";
  std::set<std::string> accepted;  // addresses that get 250 at RCPT; others 550 5.1.1
  bool accept_all = false;         // a catch-all: every RCPT gets 250
  uint32_t rcpt_cap = 0;           // RCPTs per transaction answered; later ones 452 4.5.3 (0: none)
};

Script accepting(std::set<std::string> addresses, uint32_t rcpt_cap = 0) {
  Script s;
  s.accepted = std::move(addresses);
  s.rcpt_cap = rcpt_cap;
  return s;
}

// Listens on ip:port; each connection runs the script on its own thread and logs its commands
// (one vector per session, in the order they were accepted).
class SmtpPeer {
 public:
  SmtpPeer(const std::string& ip, uint16_t port, Script script) : script_(std::move(script)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    ::inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
    ok_ = ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && ::listen(fd_, 64) == 0;
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    if (ok_) acceptor_ = std::thread([this] { serve(); });
  }
  ~SmtpPeer() {
    ::shutdown(fd_, SHUT_RDWR);  // wakes accept()
    if (acceptor_.joinable()) acceptor_.join();
    ::close(fd_);
    for (auto& t : conns_)
      t.join();
  }
  bool ok() const { return ok_; }
  uint16_t port() const { return port_; }
  // The sessions so far, once every connection accepted has ended (at most 5 s).
  std::vector<std::vector<std::string>> sessions() {
    std::unique_lock<std::mutex> g(mu_);
    EXPECT_TRUE(cv_.wait_for(g, 5s, [this] { return finished_ == log_.size(); }))
        << "a connection to the peer is still open";
    return log_;
  }
  // Every command of every session, in one list.
  std::vector<std::string> commands() {
    std::vector<std::string> all;
    for (const auto& s : sessions())
      all.insert(all.end(), s.begin(), s.end());
    return all;
  }

 private:
  void serve() {
    for (;;) {
      const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) return;
      size_t n;
      {
        std::lock_guard<std::mutex> g(mu_);
        n = log_.size();
        log_.emplace_back();
      }
      conns_.emplace_back([this, c, n] { talk(c, n); });
    }
  }
  static void put(int c, const std::string& s) {
    const std::string line = s + "\r\n";
    (void)!::write(c, line.data(), line.size());
  }
  void talk(int c, size_t n) {
    put(c, script_.banner);
    if (script_.banner.rfind("220", 0) != 0) {
      ::shutdown(c, SHUT_WR);  // a 421 greeting: then wait for the client to hang up
      char drain[256];
      while (::read(c, drain, sizeof drain) > 0) {
      }
      ::close(c);
      std::lock_guard<std::mutex> g(mu_);
      ++finished_;
      cv_.notify_all();
      return;
    }
    std::string buf;
    uint32_t rcpts = 0;
    char b[4096];
    for (;;) {
      pollfd p{c, POLLIN, 0};
      if (::poll(&p, 1, 10'000) <= 0) break;  // the verifier gone silent: give up
      const ssize_t r = ::read(c, b, sizeof b);
      if (r <= 0) break;
      buf.append(b, static_cast<size_t>(r));
      size_t eol;
      bool quit = false;
      while ((eol = buf.find("\r\n")) != std::string::npos) {
        const std::string cmd = buf.substr(0, eol);
        buf.erase(0, eol + 2);
        {
          std::lock_guard<std::mutex> g(mu_);
          log_[n].push_back(cmd);
        }
        std::string verb = cmd.substr(0, cmd.find_first_of(" :"));
        for (auto& ch : verb)
          ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
        if (verb == "EHLO") {
          put(c, "250-mx.test\r\n250 8BITMIME");  // no PIPELINING, no STARTTLS
        } else if (verb == "HELO" || verb == "MAIL" || verb == "RSET" || verb == "NOOP") {
          if (verb != "HELO" && verb != "NOOP") rcpts = 0;  // a new transaction
          put(c, "250 2.0.0 ok");
        } else if (verb == "RCPT") {
          const size_t lt = cmd.find('<'), gt = cmd.find('>');
          const std::string addr = cmd.substr(lt + 1, gt - lt - 1);
          ++rcpts;
          if (script_.rcpt_cap && rcpts > script_.rcpt_cap)
            put(c, "452 4.5.3 Too many recipients");
          else if (script_.accept_all || script_.accepted.count(addr))
            put(c, "250 2.1.5 ok");
          else
            put(c, "550 5.1.1 no such user here");
        } else if (verb == "QUIT") {
          put(c, "221 2.0.0 bye");
          quit = true;
          break;
        } else {
          put(c, "502 5.5.2 not here");
        }
      }
      if (quit) break;
    }
    ::close(c);
    std::lock_guard<std::mutex> g(mu_);
    ++finished_;
    cv_.notify_all();
  }

  Script script_;
  int fd_ = -1;
  bool ok_ = false;
  uint16_t port_ = 0;
  std::thread acceptor_;
  std::vector<std::thread> conns_;  // touched by the acceptor only, joined after it
  std::mutex mu_;
  std::condition_variable cv_;
  size_t finished_ = 0;  // connections ended
  std::vector<std::vector<std::string>> log_;
};

// A SOCKS5 proxy (no authentication) that relays to the CONNECT target. With `die_on_rcpt`, the
// first RCPT a client sends through it kills it: that connection is cut (the RCPT not relayed)
// and it stops listening, so the pool's health check finds it down. Counts CONNECTs.
class FakeSocks {
 public:
  FakeSocks(const std::string& ip, bool die_on_rcpt) : die_(die_on_rcpt) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    ::inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
    ok_ = ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && ::listen(fd_, 64) == 0;
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    url_ = "socks5://" + ip + ":" + std::to_string(ntohs(a.sin_port));
    if (ok_) acceptor_ = std::thread([this] { serve(); });
  }
  ~FakeSocks() {
    stop_listening();
    if (acceptor_.joinable()) acceptor_.join();
    for (auto& t : conns_)
      t.join();
  }
  bool ok() const { return ok_; }
  const std::string& url() const { return url_; }
  std::atomic<int> connects{0};
  std::atomic<bool> died{false};

 private:
  void stop_listening() {
    std::lock_guard<std::mutex> g(mu_);
    if (fd_ < 0) return;
    ::shutdown(fd_, SHUT_RDWR);  // wakes accept()
    ::close(fd_);
    fd_ = -1;
  }
  int listener() {
    std::lock_guard<std::mutex> g(mu_);
    return fd_;
  }
  void serve() {
    for (;;) {
      const int l = listener();
      if (l < 0) return;
      const int c = ::accept4(l, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) return;
      conns_.emplace_back([this, c] { relay(c); });
    }
  }
  static bool read_n(int fd, unsigned char* b, size_t n) {
    while (n) {
      const ssize_t r = ::read(fd, b, n);
      if (r <= 0) return false;
      b += r, n -= static_cast<size_t>(r);
    }
    return true;
  }
  void relay(int c) {
    unsigned char b[4096];
    int up = -1;
    // RFC 1928: greeting (no authentication), then CONNECT to an IPv4 address.
    if (read_n(c, b, 2) && read_n(c, b + 2, b[1]) && ::write(c, "\x05\x00", 2) == 2 &&
        read_n(c, b, 4) && b[3] == 1 && read_n(c, b + 4, 6)) {
      ++connects;
      sockaddr_in t{};
      t.sin_family = AF_INET;
      std::memcpy(&t.sin_addr, b + 4, 4);
      std::memcpy(&t.sin_port, b + 8, 2);
      up = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      const bool connected = ::connect(up, reinterpret_cast<sockaddr*>(&t), sizeof t) == 0;
      const unsigned char reply[10] = {5, static_cast<unsigned char>(connected ? 0 : 5), 0, 1};
      if (::write(c, reply, sizeof reply) == sizeof reply && connected) pump(c, up);
    }
    if (up >= 0) ::close(up);
    ::close(c);
  }
  void pump(int c, int up) {
    char b[4096];
    std::string line;
    for (;;) {
      pollfd p[2] = {{c, POLLIN, 0}, {up, POLLIN, 0}};
      if (::poll(p, 2, 10'000) <= 0) return;
      if (p[0].revents) {
        const ssize_t r = ::read(c, b, sizeof b);
        if (r <= 0) return;
        line.append(b, static_cast<size_t>(r));
        if (die_ && line.find("RCPT") != std::string::npos) {
          died = true;
          stop_listening();
          return;
        }
        if (::write(up, b, static_cast<size_t>(r)) != r) return;
      }
      if (p[1].revents) {
        const ssize_t r = ::read(up, b, sizeof b);
        if (r <= 0) return;
        if (::write(c, b, static_cast<size_t>(r)) != r) return;
      }
    }
  }

  bool die_;
  std::mutex mu_;
  int fd_ = -1;
  bool ok_ = false;
  std::string url_;
  std::thread acceptor_;
  std::vector<std::thread> conns_;  // touched by the acceptor only, joined after it
};

struct Watchdog final : loop::TimerHandler {
  loop::Loop* l = nullptr;
  bool fired = false;
  void on_timer(loop::TimerId, uint64_t) override { fired = true, l->stop(); }
};

// Stops the loop once `done` holds, checked every millisecond (the verifier's sessions end
// with QUIT after the last record, so the test waits for them instead of cutting them off).
struct Until final : loop::TimerHandler {
  loop::Loop* l = nullptr;
  std::function<bool()> done;
  void arm() { l->add_timer(l->now() + 1ms, *this); }
  void on_timer(loop::TimerId, uint64_t) override { done() ? l->stop() : arm(); }
};

dns::MxTarget mx(const std::string& host, const std::string& ip, uint16_t pref) {
  dns::MxTarget t;
  t.host = host;
  t.preference = pref;
  t.address = *loop::Endpoint::parse(ip, 0);
  return t;
}

std::string joined(const std::vector<std::string>& cmds) {
  std::string s;
  for (const auto& c : cmds)
    s += c + " | ";
  return s;
}

size_t count_verb(const std::vector<std::string>& cmds, const std::string& verb) {
  size_t n = 0;
  for (const auto& c : cmds)
    if (c.rfind(verb, 0) == 0) ++n;
  return n;
}

class VerifierTest : public ::testing::TestWithParam<loop::Backend> {
 protected:
  void SetUp() override {
    loop::LoopOptions lo;
    lo.backend = GetParam();
    made_ = loop::make_loop(lo);
    if (!made_.loop) GTEST_SKIP() << made_.why;
    // A free port on 127.41.0.1; every peer of the test listens on it (smtp_port is one).
    SmtpPeer probe("127.41.0.1", 0, {});
    ASSERT_TRUE(probe.ok());
    port_ = probe.port();
  }
  loop::Loop& loop() { return *made_.loop; }
  // No rate limits, fast retries: the scenarios run in milliseconds.
  static std::shared_ptr<const sched::Policy> policy(const std::string& extra = "") {
    auto p = sched::parse_policy(
        "[defaults.per_domain]\nconnect_rate = 0\nrcpt_rate = 0\n"
        "[defaults.per_mx]\nconnect_rate = 0\nrcpt_rate = 0\n"
        "[defaults.per_source]\nconnect_rate = 0\nrcpt_rate = 0\n"
        "[defaults.retry]\nschedule = [\"50ms\"]\n" +
            extra,
        "test.toml");
    EXPECT_TRUE(p) << p.error().to_string();
    return std::make_shared<sched::Policy>(std::move(*p));
  }
  VerifierConfig config(std::shared_ptr<const sched::Policy> p) {
    VerifierConfig cfg;
    cfg.session.helo_name = "probe.test";
    cfg.session.mail_from = "bounce@probe.test";
    cfg.smtp_port = port_;
    cfg.policy = std::move(p);
    return cfg;
  }
  // Submits the addresses and runs until every one has a record (or the watchdog).
  std::map<std::string, Result> verify(dns::MxResolver& dns, VerifierConfig cfg,
                                       const std::vector<std::string>& emails,
                                       VerifierStats* stats = nullptr) {
    std::map<std::string, Result> out;
    Verifier v(loop(), dns, std::move(cfg), [&](Result&& r) {
      std::string e = r.email;
      out.emplace(e, std::move(r));
    });
    Until until;
    until.l = &loop();
    until.done = [&] { return out.size() == emails.size() && v.stats().active_sessions == 0; };
    until.arm();
    for (size_t i = 0; i < emails.size(); ++i) {
      auto p = address::parse(emails[i]);
      EXPECT_TRUE(p.ok()) << emails[i];
      v.submit(i, i + 1, emails[i], std::move(p.address));
    }
    Watchdog w;
    w.l = &loop();
    const auto t = loop().add_timer(loop().now() + 10s, w);
    loop().run();
    EXPECT_FALSE(w.fired) << "the verifier did not finish: " << out.size() << " of "
                          << emails.size();
    if (!w.fired) loop().cancel_timer(t);
    if (stats) *stats = v.stats();
    return out;
  }
  loop::MakeLoopResult made_;
  uint16_t port_ = 0;
};

// The first MX refuses the connection: the second answers; the addresses took part in two
// sessions (the failed connect counts, docs/records.md) and name the MX that answered.
TEST_P(VerifierTest, FailoverFromARefusedMx) {
  SmtpPeer mx2("127.41.0.2", port_, accepting({"ok@fo.test"}));
  ASSERT_TRUE(mx2.ok());
  dns::TableResolver dns;
  dns::MxAnswer a;
  a.ok = true;
  a.targets = {mx("mx1.fo.test", "127.41.0.3", 10), mx("mx2.fo.test", "127.41.0.2", 20)};
  dns.set("fo.test", a);
  auto cfg = config(policy());
  cfg.catch_all_probe = false;
  VerifierStats st;
  auto out = verify(dns, cfg, {"ok@fo.test", "no@fo.test"}, &st);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out["ok@fo.test"].verdict, Verdict::Deliverable);
  EXPECT_EQ(out["ok@fo.test"].reason, Reason::Accepted);
  EXPECT_EQ(out["no@fo.test"].verdict, Verdict::Undeliverable);
  EXPECT_EQ(out["no@fo.test"].reason, Reason::MailboxNotFound);
  for (auto& [e, r] : out) {
    EXPECT_EQ(r.mx, "mx2.fo.test") << e;
    EXPECT_EQ(r.mx_ip, "127.41.0.2") << e;
    EXPECT_EQ(r.attempts, 2u) << e;
  }
  EXPECT_EQ(st.failovers, 1u);
  EXPECT_EQ(st.sessions_started, 2u);  // the refused one, then mx2
  const auto s = mx2.sessions();
  ASSERT_EQ(s.size(), 1u);
  ASSERT_EQ(s[0].size(), 5u) << joined(s[0]);
  EXPECT_EQ(s[0][0], "EHLO probe.test");
  EXPECT_EQ(s[0][1], "MAIL FROM:<bounce@probe.test>");
  std::set<std::string> rcpts{s[0][2], s[0][3]};  // in the scheduler's order
  EXPECT_EQ(rcpts, (std::set<std::string>{"RCPT TO:<ok@fo.test>", "RCPT TO:<no@fo.test>"}));
  EXPECT_EQ(s[0][4], "QUIT");
}

// The first MX greets 421: the second answers, the first saw no command.
TEST_P(VerifierTest, FailoverFromA421Greeting) {
  Script busy;
  busy.banner = "421 4.3.2 busy, try later";
  SmtpPeer mx1("127.41.0.4", port_, busy);
  SmtpPeer mx2("127.41.0.5", port_, accepting({"ok@busy.test"}));
  ASSERT_TRUE(mx1.ok() && mx2.ok());
  dns::TableResolver dns;
  dns::MxAnswer a;
  a.ok = true;
  a.targets = {mx("mx1.busy.test", "127.41.0.4", 10), mx("mx2.busy.test", "127.41.0.5", 20)};
  dns.set("busy.test", a);
  auto cfg = config(policy());
  cfg.catch_all_probe = false;
  auto out = verify(dns, cfg, {"ok@busy.test"});
  ASSERT_EQ(out.size(), 1u);
  const Result& r = out["ok@busy.test"];
  EXPECT_EQ(r.verdict, Verdict::Deliverable);
  EXPECT_EQ(r.reason, Reason::Accepted);
  EXPECT_EQ(r.mx, "mx2.busy.test");
  EXPECT_EQ(r.code, 250);
  EXPECT_EQ(r.attempts, 2u);
  ASSERT_EQ(mx1.sessions().size(), 1u);
  EXPECT_TRUE(mx1.sessions()[0].empty());
  EXPECT_EQ(count_verb(mx2.commands(), "RCPT"), 1u);
  EXPECT_EQ(count_verb(mx2.commands(), "DATA"), 0u);
}

// A domain whose probe address is accepted: its addresses are held until the probe answers and
// end risky/catch_all; a domain whose probe is refused keeps the real verdicts.
TEST_P(VerifierTest, CatchAllHoldsThenRiskyAndARefusedProbeKeepsVerdicts) {
  Script catch_all;
  catch_all.accept_all = true;
  SmtpPeer all("127.41.0.6", port_, catch_all);
  SmtpPeer real("127.41.0.7", port_, accepting({"ok@real.test"}));
  ASSERT_TRUE(all.ok() && real.ok());
  dns::TableResolver dns;
  dns::MxAnswer a;
  a.ok = true;
  a.targets = {mx("mx.all.test", "127.41.0.6", 10)};
  dns.set("all.test", a);
  a.targets = {mx("mx.real.test", "127.41.0.7", 10)};
  dns.set("real.test", a);
  std::map<std::string, std::optional<bool>> learned;
  auto cfg = config(policy());
  cfg.catch_all_learned = [&](const std::string& d, std::optional<bool> yes) { learned[d] = yes; };
  auto out = verify(dns, cfg, {"x@all.test", "y@all.test", "ok@real.test", "no@real.test"});
  ASSERT_EQ(out.size(), 4u);
  for (const char* e : {"x@all.test", "y@all.test"}) {
    EXPECT_EQ(out[e].verdict, Verdict::Risky) << e;
    EXPECT_EQ(out[e].reason, Reason::CatchAll) << e;
    EXPECT_EQ(out[e].catch_all, std::optional<bool>(true)) << e;
    EXPECT_EQ(out[e].mx, "mx.all.test") << e;
    EXPECT_EQ(out[e].attempts, 1u) << e;
  }
  EXPECT_EQ(out["ok@real.test"].verdict, Verdict::Deliverable);
  EXPECT_EQ(out["ok@real.test"].reason, Reason::Accepted);
  EXPECT_EQ(out["ok@real.test"].catch_all, std::optional<bool>(false));
  EXPECT_EQ(out["no@real.test"].verdict, Verdict::Undeliverable);
  EXPECT_EQ(out["no@real.test"].reason, Reason::MailboxNotFound);
  EXPECT_EQ(learned["all.test"], std::optional<bool>(true));
  EXPECT_EQ(learned["real.test"], std::optional<bool>(false));
  // Each domain got its probe (a random address) besides the two real ones, and no DATA.
  for (SmtpPeer* p : {&all, &real}) {
    const auto cmds = p->commands();
    EXPECT_EQ(count_verb(cmds, "RCPT"), 3u);
    EXPECT_EQ(count_verb(cmds, "DATA"), 0u);
  }
}

// recipients = 2 per session: five addresses take three sessions, each with at most two RCPTs;
// every address ends with its own verdict after one session.
TEST_P(VerifierTest, PerSessionRecipientCapOpensMoreSessions) {
  SmtpPeer p("127.41.0.8", port_, accepting({"a@cap.test", "c@cap.test", "e@cap.test"}));
  ASSERT_TRUE(p.ok());
  dns::TableResolver dns;
  dns::MxAnswer a;
  a.ok = true;
  a.targets = {mx("mx.cap.test", "127.41.0.8", 10)};
  dns.set("cap.test", a);
  auto cfg = config(policy("[defaults.session]\nrecipients = 2\n"));
  cfg.catch_all_probe = false;
  const std::vector<std::string> emails = {"a@cap.test", "b@cap.test", "c@cap.test", "d@cap.test",
                                           "e@cap.test"};
  auto out = verify(dns, cfg, emails);
  ASSERT_EQ(out.size(), 5u);
  for (const auto& e : emails) {
    const bool ok = e[0] == 'a' || e[0] == 'c' || e[0] == 'e';
    EXPECT_EQ(out[e].verdict, ok ? Verdict::Deliverable : Verdict::Undeliverable) << e;
    EXPECT_EQ(out[e].attempts, 1u) << e;
    EXPECT_EQ(out[e].mx, "mx.cap.test") << e;
  }
  const auto s = p.sessions();
  EXPECT_EQ(s.size(), 3u);
  size_t rcpts = 0;
  for (const auto& cmds : s) {
    EXPECT_LE(count_verb(cmds, "RCPT"), 2u);
    EXPECT_EQ(count_verb(cmds, "DATA"), 0u);
    rcpts += count_verb(cmds, "RCPT");
  }
  EXPECT_EQ(rcpts, 5u);
}

// The server answers 452 4.5.3 after two RCPTs in a transaction: the rest go again at once in a
// new transaction (RSET, MAIL FROM) of the same session (a recipient limit, not a verdict), and
// end with their own answer.
TEST_P(VerifierTest, TooManyRecipientsSendsTheRestAgain) {
  SmtpPeer p("127.41.0.9", port_, accepting({"a@lim.test", "b@lim.test", "c@lim.test"}, 2));
  ASSERT_TRUE(p.ok());
  dns::TableResolver dns;
  dns::MxAnswer a;
  a.ok = true;
  a.targets = {mx("mx.lim.test", "127.41.0.9", 10)};
  dns.set("lim.test", a);
  auto cfg = config(policy());
  cfg.catch_all_probe = false;
  const std::vector<std::string> emails = {"a@lim.test", "b@lim.test", "c@lim.test", "d@lim.test"};
  VerifierStats st;
  auto out = verify(dns, cfg, emails, &st);
  ASSERT_EQ(out.size(), 4u);
  const auto s = p.sessions();
  ASSERT_EQ(s.size(), 1u);
  const auto& cmds = s[0];
  // The first transaction's third and fourth RCPT got 452; exactly those two are sent again,
  // after RSET, each in a transaction of its own or together (the scheduler's refill decides).
  std::vector<std::string> limited, again;
  bool after_rset = false;
  size_t first_rcpts = 0;
  for (const auto& c : cmds) {
    if (c == "RSET") after_rset = true;
    if (c.rfind("RCPT TO:<", 0) != 0) continue;
    const std::string addr = c.substr(9, c.size() - 10);
    if (after_rset)
      again.push_back(addr);
    else if (++first_rcpts > 2)
      limited.push_back(addr);
  }
  ASSERT_EQ(limited.size(), 2u) << joined(cmds);
  std::sort(again.begin(), again.end());
  std::sort(limited.begin(), limited.end());
  EXPECT_EQ(again, limited) << joined(cmds);
  EXPECT_EQ(count_verb(cmds, "RCPT"), 6u) << joined(cmds);
  EXPECT_EQ(count_verb(cmds, "MAIL"), count_verb(cmds, "RSET") + 1) << joined(cmds);
  EXPECT_EQ(count_verb(cmds, "DATA"), 0u);
  EXPECT_EQ(cmds.back(), "QUIT");
  for (const auto& e : emails) {
    const bool ok = e[0] != 'd';
    EXPECT_EQ(out[e].verdict, ok ? Verdict::Deliverable : Verdict::Undeliverable) << e;
    EXPECT_EQ(out[e].reason, ok ? Reason::Accepted : Reason::MailboxNotFound) << e;
    EXPECT_EQ(out[e].code, ok ? 250 : 550) << e;
    // A try per transaction: the ones sent again took part twice (in the one session).
    const bool twice = std::find(limited.begin(), limited.end(), e) != limited.end();
    EXPECT_EQ(out[e].attempts, twice ? 2u : 1u) << e;
  }
  EXPECT_EQ(st.retries, 2u);
  EXPECT_EQ(st.sessions_started, 1u);
}

// max_domains = 1: a domain is forgotten as soon as it is idle. The same addresses submitted
// again once the first round is done (their domains forgotten) get the same verdicts, and the
// catch-all answers learned in the first round stand (no second probe).
TEST_P(VerifierTest, EvictionUnderATinyDomainCacheChangesNoVerdict) {
  Script s;
  s.accepted = {"ok@e1.test", "ok@e2.test", "ok@e3.test"};
  SmtpPeer p("127.41.0.10", port_, s);
  ASSERT_TRUE(p.ok());
  dns::TableResolver dns;
  dns::MxAnswer a;
  a.ok = true;
  a.targets = {mx("mx.e.test", "127.41.0.10", 10)};
  for (const char* d : {"e1.test", "e2.test", "e3.test"})
    dns.set(d, a);
  std::vector<std::string> emails;
  for (const char* d : {"e1.test", "e2.test", "e3.test"})
    for (const char* l : {"ok", "no"})
      emails.push_back(std::string(l) + "@" + d);
  auto cfg = config(policy());
  cfg.max_domains = 1;
  std::vector<Result> out;
  size_t rcpts_first = 0;
  // The second round starts once the first one is out and its sessions ended.
  struct {
    std::function<void()> f;
  } again;
  Verifier v(loop(), dns, cfg, [&](Result&& r) { out.push_back(std::move(r)); });
  bool second = false;
  Until until;
  until.l = &loop();
  until.done = [&] {
    if (v.stats().active_sessions) return false;
    // Round two once round one is out and two of its three domains are forgotten.
    if (!second && out.size() == emails.size() && v.stats().domains_evicted == 2) {
      second = true;
      again.f();
    }
    return out.size() == 2 * emails.size() && v.stats().domains_evicted == 4;
  };
  until.arm();
  auto submit = [&](uint64_t base) {
    for (size_t i = 0; i < emails.size(); ++i) {
      auto parsed = address::parse(emails[i]);
      ASSERT_TRUE(parsed.ok());
      v.submit(base + i, base + i + 1, emails[i], std::move(parsed.address));
    }
  };
  uint64_t evicted_first = 0;
  again.f = [&] {
    rcpts_first = count_verb(p.commands(), "RCPT");
    evicted_first = v.stats().domains_evicted;
    submit(100);
  };
  submit(0);
  Watchdog w;
  w.l = &loop();
  const auto t = loop().add_timer(loop().now() + 10s, w);
  loop().run();
  ASSERT_FALSE(w.fired) << out.size() << " records of " << 2 * emails.size();
  loop().cancel_timer(t);
  EXPECT_EQ(evicted_first, 2u);  // all but one of the three domains forgotten after round one
  EXPECT_EQ(v.stats().domains_evicted,
            4u);  // round two made two domains again (the one kept is reused)
  std::map<std::string, const Result*> first;
  for (const Result& r : out) {
    const bool ok = r.email.rfind("ok", 0) == 0;
    EXPECT_EQ(r.verdict, ok ? Verdict::Deliverable : Verdict::Undeliverable) << r.email;
    EXPECT_EQ(r.reason, ok ? Reason::Accepted : Reason::MailboxNotFound) << r.email;
    EXPECT_EQ(r.catch_all, std::optional<bool>(false)) << r.email;
    EXPECT_EQ(r.attempts, 1u) << r.email;
    EXPECT_EQ(r.mx, "mx.e.test") << r.email;
    if (r.id < 100) first[r.email] = &r;
  }
  EXPECT_EQ(first.size(), emails.size());
  EXPECT_EQ(rcpts_first, 9u);                        // six addresses and one probe per domain
  EXPECT_EQ(count_verb(p.commands(), "RCPT"), 15u);  // round two: the six, no probe again
  EXPECT_EQ(count_verb(p.commands(), "DATA"), 0u);
}

// Two SOCKS5 proxies; the first one dies when the first RCPT goes through it (its connection
// cut, then it refuses connections). The session's doubt is settled by a health check that finds
// it down, and the addresses go again through the second proxy without counting a try: one
// attempt each, the verdicts of the server, `proxy` naming the second one.
TEST_P(VerifierTest, ProxyDyingMidSessionGivesTheAddressesToAnotherWithoutATry) {
  SmtpPeer p("127.41.0.11", port_, accepting({"ok@px.test"}));
  FakeSocks dying("127.41.0.12", true), good("127.41.0.13", false);
  ASSERT_TRUE(p.ok() && dying.ok() && good.ok());
  dns::TableResolver dns;
  dns::MxAnswer a;
  a.ok = true;
  a.targets = {mx("mx.px.test", "127.41.0.11", 10)};
  dns.set("px.test", a);
  auto cfg = config(policy());
  cfg.catch_all_probe = false;
  for (const FakeSocks* s : {&dying, &good}) {
    auto url = proxy::parse_proxy_url(s->url());
    ASSERT_TRUE(url) << url.error();
    cfg.proxies.push_back(*url);
  }
  cfg.proxy_check_timeout = 2s;
  VerifierStats st;
  auto out = verify(dns, cfg, {"ok@px.test", "no@px.test"}, &st);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_TRUE(dying.died.load());
  EXPECT_EQ(dying.connects.load(), 1);
  EXPECT_GE(good.connects.load(), 1);
  EXPECT_EQ(out["ok@px.test"].verdict, Verdict::Deliverable);
  EXPECT_EQ(out["ok@px.test"].reason, Reason::Accepted);
  EXPECT_EQ(out["no@px.test"].verdict, Verdict::Undeliverable);
  EXPECT_EQ(out["no@px.test"].reason, Reason::MailboxNotFound);
  for (auto& [e, r] : out) {
    EXPECT_EQ(r.attempts, 1u) << e;  // the session lost with its proxy is not a try
    EXPECT_EQ(r.proxy, good.url()) << e;
    EXPECT_EQ(r.mx, "mx.px.test") << e;
    EXPECT_EQ(r.mx_ip, "127.41.0.11") << e;
  }
  // The server saw the cut session (no RCPT reached it) and the one that answered.
  const auto s = p.sessions();
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(count_verb(s[0], "RCPT"), 0u) << joined(s[0]);
  EXPECT_EQ(count_verb(s[1], "RCPT"), 2u) << joined(s[1]);
  EXPECT_EQ(s[1].back(), "QUIT");
  EXPECT_EQ(count_verb(p.commands(), "DATA"), 0u);
  EXPECT_EQ(st.sessions_started, 2u);
}

INSTANTIATE_TEST_SUITE_P(Backends, VerifierTest,
                         ::testing::Values(loop::Backend::Uring, loop::Backend::Uv),
                         [](const auto& info) {
                           return info.param == loop::Backend::Uring ? "uring" : "uv";
                         });

// The remote limits the config names are the ones the verifier's scheduler asks: every session
// it opens and ends goes through them (the seam a cluster's shared limits plug into).
class CountingLimits final : public sched::RemoteLimits {
 public:
  explicit CountingLimits(std::atomic<int>* opened, std::atomic<int>* ended)
      : opened_(opened), ended_(ended) {}
  void configure_group(sched::GroupId g, std::string_view key, const sched::GroupSettings& s,
                       sched::TimePoint now) override {
    local_.configure_group(g, key, s, now);
  }
  void configure_domain(sched::DomainId d, std::string_view name, const sched::LevelLimits& l,
                        sched::TimePoint now) override {
    local_.configure_domain(d, name, l, now);
  }
  void release_domain(sched::DomainId d) override { local_.release_domain(d); }
  sched::Admission admit_group(sched::GroupId g, sched::TimePoint now) const override {
    return local_.admit_group(g, now);
  }
  sched::Admission admit_domain(sched::DomainId d, sched::TimePoint now) const override {
    return local_.admit_domain(d, now);
  }
  uint32_t rcpt_available(sched::GroupId g, sched::DomainId d,
                          sched::TimePoint now) const override {
    return local_.rcpt_available(g, d, now);
  }
  void session_opened(sched::GroupId g, sched::DomainId d, uint32_t rcpts,
                      sched::TimePoint now) override {
    ++*opened_;
    local_.session_opened(g, d, rcpts, now);
  }
  void take_rcpts(sched::GroupId g, sched::DomainId d, uint32_t rcpts,
                  sched::TimePoint now) override {
    local_.take_rcpts(g, d, rcpts, now);
  }
  bool session_ended(sched::GroupId g, sched::DomainId d, bool clean,
                     sched::TimePoint now) override {
    ++*ended_;
    return local_.session_ended(g, d, clean, now);
  }
  bool backoff(sched::GroupId g, sched::TimePoint now) override { return local_.backoff(g, now); }
  sched::RemoteGroupView group_view(sched::GroupId g, sched::TimePoint now) const override {
    return local_.group_view(g, now);
  }

 private:
  sched::LocalRemoteLimits local_;
  std::atomic<int>*opened_, *ended_;
};

TEST_P(VerifierTest, TheConfiguredRemoteLimitsSeeEverySession) {
  SmtpPeer mx1("127.41.0.2", port_, accepting({"ok@rl.test"}));
  ASSERT_TRUE(mx1.ok());
  dns::TableResolver dns;
  dns::MxAnswer a;
  a.ok = true;
  a.targets = {mx("mx1.rl.test", "127.41.0.2", 10)};
  dns.set("rl.test", a);
  auto cfg = config(policy());
  cfg.catch_all_probe = false;
  std::atomic<int> made{0}, opened{0}, ended{0};
  cfg.remote_limits = [&] {
    ++made;
    return std::make_unique<CountingLimits>(&opened, &ended);
  };
  VerifierStats st;
  auto out = verify(dns, cfg, {"ok@rl.test", "no@rl.test"}, &st);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out["ok@rl.test"].verdict, Verdict::Deliverable);
  EXPECT_EQ(out["no@rl.test"].verdict, Verdict::Undeliverable);
  EXPECT_EQ(made.load(), 1);
  EXPECT_GE(st.sessions_started, 1u);
  EXPECT_EQ(opened.load(), static_cast<int>(st.sessions_started));
  EXPECT_EQ(ended.load(), opened.load());
}

}  // namespace
}  // namespace mxp::pipeline
