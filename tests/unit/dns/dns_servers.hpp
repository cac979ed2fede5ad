// DNS servers for the resolver tests: a real dnsmasq (started on 127.0.0.1 at a free high port
// with a generated config, stopped by pid) and a tiny UDP responder answering every query with
// one fixed RCODE (dnsmasq cannot answer SERVFAIL on demand, docs/peers.md).
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <unistd.h>
#include <random>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "loop/endpoint.hpp"

namespace mxp::dns::testing {

// A port that was free for both UDP and TCP on 127.0.0.1 a moment ago (dnsmasq binds both; the
// caller retries if it is taken meanwhile). Drawn below the kernel's ephemeral range
// (net.ipv4.ip_local_port_range starts at 32768), so the thousands of client connections other
// tests make at the same time cannot hold it; and above mxfarm tests' DNS ports (15000-16999).
inline uint16_t free_udp_port() {
  static std::mt19937 rng(std::random_device{}());
  for (;;) {
    const auto port = static_cast<uint16_t>(20000 + rng() % 12000);
    const auto ep = *loop::Endpoint::parse("127.0.0.1", port);
    bool free = true;
    for (int type : {SOCK_DGRAM, SOCK_STREAM}) {
      const int fd = ::socket(AF_INET, type | SOCK_CLOEXEC, 0);
      free = free && ::bind(fd, ep.sa(), ep.len()) == 0;
      ::close(fd);
    }
    if (free) return port;
  }
}

// dnsmasq serving only the given config lines, authoritative-style for *.test (unlisted names
// are NXDOMAIN), no upstream. It is started as a daemon: dnsmasq's launcher exits only after the
// daemon has bound its sockets and written its pid file, so "launcher exited 0" means ready.
class Dnsmasq {
 public:
  explicit Dnsmasq(const std::vector<std::string>& config_lines) {
    char tmpl[] = "/tmp/mxp-dns-test-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) return;
    dir_ = tmpl;
    {
      std::ofstream conf(dir_ + "/dnsmasq.conf");
      for (const auto& line : config_lines)
        conf << line << "\n";
    }
    for (int attempt = 0; attempt < 20 && pid_ <= 0; ++attempt) {
      port_ = free_udp_port();
      start();
    }
  }
  ~Dnsmasq() {
    if (pid_ > 0) {
      // Not our child (it daemonized): wait for its exit through a pidfd, no polling loop.
      const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid_, 0));
      ::kill(pid_, SIGTERM);
      if (pidfd >= 0) {
        pollfd p{pidfd, POLLIN, 0};
        ::poll(&p, 1, 5000);
        ::close(pidfd);
      }
    }
    if (!dir_.empty()) {
      std::remove((dir_ + "/dnsmasq.conf").c_str());
      std::remove((dir_ + "/dnsmasq.pid").c_str());
      std::remove((dir_ + "/dnsmasq.log").c_str());
      ::rmdir(dir_.c_str());
    }
  }
  bool ok() const { return pid_ > 0; }
  uint16_t port() const { return port_; }
  std::string server() const { return "127.0.0.1:" + std::to_string(port_); }
  const std::string& dir() const { return dir_; }

 private:
  void start() {
    const std::string port_arg = "--port=" + std::to_string(port_);
    const std::string conf_arg = "--conf-file=" + dir_ + "/dnsmasq.conf";
    const std::string pid_arg = "--pid-file=" + dir_ + "/dnsmasq.pid";
    const std::string log_arg = "--log-facility=" + dir_ + "/dnsmasq.log";
    std::vector<const char*> argv = {"/usr/sbin/dnsmasq",
                                     conf_arg.c_str(),
                                     port_arg.c_str(),
                                     pid_arg.c_str(),
                                     log_arg.c_str(),
                                     "--no-resolv",
                                     "--no-hosts",
                                     "--local=/test/",
                                     "--listen-address=127.0.0.1",
                                     "--bind-interfaces",
                                     "--local-ttl=300",
                                     "--user=root",
                                     nullptr};
    const pid_t launcher = fork();
    if (launcher == 0) {
      const int devnull = ::open("/dev/null", O_RDWR);
      dup2(devnull, 1);
      dup2(devnull, 2);
      execv(argv[0], const_cast<char* const*>(argv.data()));
      _exit(127);
    }
    int status = 0;
    if (launcher < 0 || waitpid(launcher, &status, 0) != launcher || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0) {
      return;  // e.g. the port was taken meanwhile
    }
    std::ifstream pidfile(dir_ + "/dnsmasq.pid");
    pidfile >> pid_;
  }

  std::string dir_;
  uint16_t port_ = 0;
  pid_t pid_ = 0;
};

// Answers every UDP query with the question echoed and a fixed RCODE (2 = SERVFAIL).
class RcodeServer {
 public:
  explicit RcodeServer(uint8_t rcode) : rcode_(rcode) {
    fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    const auto any = *loop::Endpoint::parse("127.0.0.1", 0);
    ::bind(fd_, any.sa(), any.len());
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len);
    port_ = loop::Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len)->port();
    wake_ = eventfd(0, EFD_CLOEXEC);
    thread_ = std::thread([this] { serve(); });
  }
  ~RcodeServer() {
    const uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_, &one, sizeof(one));
    thread_.join();
    ::close(fd_);
    ::close(wake_);
  }
  std::string server() const { return "127.0.0.1:" + std::to_string(port_); }
  int queries() const { return queries_; }  // read after the loop ran; joined in the destructor

 private:
  void serve() {
    for (;;) {
      pollfd p[2] = {{fd_, POLLIN, 0}, {wake_, POLLIN, 0}};
      if (::poll(p, 2, -1) < 0 || (p[1].revents & POLLIN)) return;
      unsigned char buf[512];
      sockaddr_storage from{};
      socklen_t len = sizeof(from);
      const ssize_t n =
          recvfrom(fd_, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &len);
      if (n < 12) continue;
      ++queries_;
      buf[2] = static_cast<unsigned char>(0x80 | (buf[2] & 0x79));  // QR=1, opcode and RD kept
      buf[3] = rcode_;                                              // RA=0, RCODE
      std::memset(buf + 6, 0, 6);                                   // no answer/NS/additional
      sendto(fd_, buf, static_cast<size_t>(n), 0, reinterpret_cast<sockaddr*>(&from), len);
    }
  }

  uint8_t rcode_;
  int fd_ = -1;
  int wake_ = -1;
  uint16_t port_ = 0;
  std::atomic<int> queries_{0};
  std::thread thread_;
};

}  // namespace mxp::dns::testing
