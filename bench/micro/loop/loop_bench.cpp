// Loop benchmark (a program, not a test): for each backend, request/response ping-pong of small
// messages over N loopback connections against an echo server (round trips/s, client CPU µs per
// round trip), and the resident memory per idle open connection with 10,000 connections.
// The echo server is a forked process (plain epoll) so that getrusage(RUSAGE_SELF) and RSS count
// the client only; each measurement runs in its own forked child so one cannot warm the other's
// allocator. Usage: loop_bench [--backend uv|uring|both] [--conns 1,100] [--round-trips 50000]
//                              [--idle 10000] [--msg 32] [--uring-buf-ring on|off]
//                              [--uring-defer-taskrun on|off]
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

#include "loop/loop.hpp"

namespace {

using namespace mxp::loop;
using namespace std::chrono_literals;

// ---- echo server (child process) ------------------------------------------------------------

[[noreturn]] void echo_server(int listen_fd) {
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = listen_fd;
  epoll_ctl(ep, EPOLL_CTL_ADD, listen_fd, &ev);
  std::unordered_map<int, std::string> pending;  // bytes a full socket did not take yet
  std::vector<epoll_event> events(1024);
  char buf[65536];
  for (;;) {
    const int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), -1);
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == listen_fd) {
        for (int c;
             (c = accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0;) {
          epoll_event cev{};
          cev.events = EPOLLIN;
          cev.data.fd = c;
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
        }
        continue;
      }
      bool dead = false;
      if (events[i].events & EPOLLOUT) {
        std::string& out = pending[fd];
        const ssize_t w = ::send(fd, out.data(), out.size(), MSG_NOSIGNAL);
        if (w > 0) out.erase(0, static_cast<size_t>(w));
        if (out.empty()) {
          pending.erase(fd);
          epoll_event cev{};
          cev.events = EPOLLIN;
          cev.data.fd = fd;
          epoll_ctl(ep, EPOLL_CTL_MOD, fd, &cev);
        }
      }
      if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        const ssize_t r = ::recv(fd, buf, sizeof(buf), 0);
        if (r <= 0) {
          dead = r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
        } else if (pending.count(fd)) {
          pending[fd].append(buf, static_cast<size_t>(r));
        } else {
          const ssize_t w = ::send(fd, buf, static_cast<size_t>(r), MSG_NOSIGNAL);
          if (w < r) {
            pending[fd].assign(buf + (w > 0 ? w : 0), static_cast<size_t>(r - (w > 0 ? w : 0)));
            epoll_event cev{};
            cev.events = EPOLLIN | EPOLLOUT;
            cev.data.fd = fd;
            epoll_ctl(ep, EPOLL_CTL_MOD, fd, &cev);
          }
        }
      }
      if (dead) {
        pending.erase(fd);
        epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
        ::close(fd);
      }
    }
  }
}

// ---- measurement helpers --------------------------------------------------------------------

double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

long rss_bytes() {
  long pages_total = 0, pages_resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages_total, &pages_resident) != 2) pages_resident = 0;
    std::fclose(f);
  }
  return pages_resident * sysconf(_SC_PAGESIZE);
}

LoopOptions g_options;  // io_uring switches from the command line

std::unique_ptr<Loop> make(Backend backend) {
  LoopOptions o = g_options;
  o.backend = backend;
  auto made = make_loop(o);
  if (!made.loop)
    std::printf("%-6s skipped: %s\n", std::string(to_string(backend)).c_str(), made.why.c_str());
  return std::move(made.loop);
}

// ---- ping-pong ------------------------------------------------------------------------------

struct PingPong;
struct Client final : ConnHandler {
  PingPong* bench = nullptr;
  ConnId id;
  size_t got = 0;
  void on_connect(ConnId id, Status s) override;
  void on_data(ConnId id, std::string_view bytes) override;
  void on_closed(ConnId, Status s) override {
    std::fprintf(stderr, "connection closed: %s\n", std::string(to_string(s)).c_str());
    std::exit(1);
  }
};

struct PingPong {
  Loop* loop = nullptr;
  std::string msg;
  uint64_t target = 0;
  uint64_t done = 0;
  size_t connected = 0;
  std::vector<Client> clients;
  std::chrono::steady_clock::time_point t0;
  double cpu0 = 0;

  void start_all() {
    t0 = std::chrono::steady_clock::now();
    cpu0 = cpu_seconds();
    for (auto& c : clients)
      loop->send(c.id, msg);
  }
};

void Client::on_connect(ConnId conn, Status s) {
  if (s != Status::Ok) {
    std::fprintf(stderr, "connect failed: %s\n", std::string(to_string(s)).c_str());
    std::exit(1);
  }
  id = conn;
  if (++bench->connected == bench->clients.size()) bench->start_all();
}

void Client::on_data(ConnId conn, std::string_view bytes) {
  got += bytes.size();
  while (got >= bench->msg.size()) {  // one full echo = one round trip
    got -= bench->msg.size();
    if (++bench->done == bench->target) {
      bench->loop->stop();
      return;
    }
    bench->loop->send(conn, bench->msg);
  }
}

void run_ping_pong(Backend backend, const Endpoint& server, size_t conns, uint64_t round_trips,
                   size_t msg_size) {
  auto loop = make(backend);
  if (!loop) return;
  PingPong b;
  b.loop = loop.get();
  b.msg.assign(msg_size, 'p');
  b.target = round_trips;
  b.clients.resize(conns);
  for (auto& c : b.clients) {
    c.bench = &b;
    ConnectOptions o;
    o.peer = server;
    if (loop->connect(o, c).status != Status::Ok) std::exit(1);
  }
  loop->run();
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - b.t0).count();
  const double cpu = cpu_seconds() - b.cpu0;
  std::printf("%-6s ping-pong conns=%-5zu msg=%zuB round_trips=%llu  %9.0f rt/s  %6.2f us CPU/rt\n",
              std::string(to_string(backend)).c_str(), conns, msg_size,
              static_cast<unsigned long long>(b.done), static_cast<double>(b.done) / secs,
              cpu * 1e6 / static_cast<double>(b.done));
  for (auto& c : b.clients)
    loop->close(c.id, CloseMode::Abort);
}

// ---- idle connections -------------------------------------------------------------------------

struct IdleBench;
struct IdleClient final : ConnHandler {
  IdleBench* bench = nullptr;
  ConnId id;
  void on_connect(ConnId id, Status s) override;
  void on_data(ConnId id, std::string_view bytes) override;
  void on_closed(ConnId, Status s) override {
    std::fprintf(stderr, "idle connection closed: %s\n", std::string(to_string(s)).c_str());
    std::exit(1);
  }
};

struct IdleBench {
  Loop* loop = nullptr;
  Endpoint server;
  std::vector<IdleClient> clients;
  size_t started = 0;
  size_t echoed = 0;
  void start_next() {
    if (started == clients.size()) return;
    IdleClient& c = clients[started++];
    ConnectOptions o;
    o.peer = server;
    o.timeout = 30s;
    const auto r = loop->connect(o, c);
    if (r.status != Status::Ok) {
      std::fprintf(stderr, "connect #%zu: %s\n", started, std::string(to_string(r.status)).c_str());
      std::exit(1);
    }
  }
};

void IdleClient::on_connect(ConnId conn, Status s) {
  if (s != Status::Ok) {
    std::fprintf(stderr, "idle connect failed: %s\n", std::string(to_string(s)).c_str());
    std::exit(1);
  }
  id = conn;
  bench->loop->send(conn, "hello");  // one exchange, so the receive path is armed and used
}

void IdleClient::on_data(ConnId, std::string_view) {
  if (++bench->echoed == bench->clients.size()) {
    bench->loop->stop();
    return;
  }
  bench->start_next();  // keeps a bounded number of connects in flight
}

void run_idle(Backend backend, const Endpoint& server, size_t count) {
  auto loop = make(backend);
  if (!loop) return;
  IdleBench b;
  b.loop = loop.get();
  b.server = server;
  b.clients.resize(count);  // handlers exist before the baseline: we measure the loop's share
  for (auto& c : b.clients)
    c.bench = &b;
  const long before = rss_bytes();
  for (size_t i = 0; i < 500 && i < count; ++i)
    b.start_next();
  loop->run();
  const long after = rss_bytes();
  std::printf("%-6s idle conns=%zu  RSS %ld KiB -> %ld KiB  = %ld bytes per idle connection\n",
              std::string(to_string(backend)).c_str(), loop->connection_count(), before / 1024,
              after / 1024, (after - before) / static_cast<long>(count));
  for (auto& c : b.clients)
    loop->close(c.id, CloseMode::Abort);
}

template <class Fn>
void in_child(Fn fn) {
  std::fflush(stdout);
  const pid_t pid = fork();
  if (pid == 0) {
    fn();
    std::fflush(stdout);
    std::_Exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) std::printf("(measurement failed)\n");
}

}  // namespace

int main(int argc, char** argv) {
  std::string backends = "both";
  std::vector<size_t> conn_counts = {1, 100};
  uint64_t round_trips = 50000;
  size_t idle = 10000;
  size_t msg = 32;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i], value = argv[i + 1];
    if (key == "--backend") {
      backends = value;
    } else if (key == "--conns") {
      conn_counts.clear();
      for (size_t pos = 0; pos < value.size();) {
        const size_t comma = value.find(',', pos);
        conn_counts.push_back(std::stoul(value.substr(pos, comma - pos)));
        pos = comma == std::string::npos ? value.size() : comma + 1;
      }
    } else if (key == "--round-trips") {
      round_trips = std::stoull(value);
    } else if (key == "--idle") {
      idle = std::stoul(value);
    } else if (key == "--msg") {
      msg = std::stoul(value);
    } else if (key == "--uring-buf-ring") {
      g_options.uring_allow_buf_ring = value == "on";
    } else if (key == "--uring-defer-taskrun") {
      g_options.uring_allow_defer_taskrun = value == "on";
    } else {
      std::fprintf(stderr, "unknown option %s\n", key.c_str());
      return 2;
    }
  }
  const auto lim = raise_nofile_limit();
  std::printf("RLIMIT_NOFILE %llu (hard %llu)\n", static_cast<unsigned long long>(lim.soft),
              static_cast<unsigned long long>(lim.hard));
  if (lim.soft < idle + 100) {
    idle = lim.soft > 200 ? lim.soft - 200 : 0;
    std::printf("idle connections reduced to %zu by RLIMIT_NOFILE\n", idle);
  }

  const int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const Endpoint any = *Endpoint::parse("127.0.0.1", 0);
  if (::bind(lfd, any.sa(), any.len()) != 0 || ::listen(lfd, 4096) != 0) {
    std::perror("echo server");
    return 1;
  }
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  getsockname(lfd, reinterpret_cast<sockaddr*>(&ss), &len);
  const Endpoint server = *Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
  const pid_t server_pid = fork();
  if (server_pid == 0) {
    fcntl(lfd, F_SETFL, O_NONBLOCK);
    echo_server(lfd);
  }
  ::close(lfd);
  std::printf("echo server pid %d on %s\n", static_cast<int>(server_pid),
              server.to_string().c_str());

  std::vector<Backend> list;
  if (backends == "both" || backends == "uv") list.push_back(Backend::Uv);
  if (backends == "both" || backends == "uring") list.push_back(Backend::Uring);
  for (const Backend b : list) {
    for (const size_t n : conn_counts) {
      in_child([&] { run_ping_pong(b, server, n, round_trips, msg); });
    }
    if (idle > 0) in_child([&] { run_idle(b, server, idle); });
  }
  kill(server_pid, SIGTERM);
  waitpid(server_pid, nullptr, 0);
  return 0;
}
