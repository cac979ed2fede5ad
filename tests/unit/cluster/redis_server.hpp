// A real redis-server for the cluster's tests and benchmarks (no GoogleTest here, so a benchmark
// can use it too). The server runs in the foreground as our child (--daemonize no) on 127.0.0.1
// at a port drawn from 17000-19999 (free a moment before; another is drawn if the server cannot
// bind it), in its own temporary directory, without persistence unless `extra` turns it on
// (--save '' --appendonly no come first, so later arguments win); it is ready once it prints
// "Ready to accept connections" (read from its stdout with a deadline), and is stopped by pid.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "loop/endpoint.hpp"

namespace mxp::cluster::testing {

// Where redis-server is (PATH, then Debian's /usr/bin), or "" when it is not installed.
inline std::string redis_server_path() {
  std::vector<std::string> dirs;
  if (const char* path = std::getenv("PATH")) {
    std::string p = path;
    for (size_t start = 0;;) {
      const size_t colon = p.find(':', start);
      dirs.push_back(p.substr(start, colon - start));
      if (colon == std::string::npos) break;
      start = colon + 1;
    }
  }
  dirs.push_back("/usr/bin");
  for (const auto& d : dirs) {
    const std::string f = d + "/redis-server";
    if (!d.empty() && ::access(f.c_str(), X_OK) == 0) return f;
  }
  return "";
}

class RedisServer {
 public:
  // extra: more arguments, e.g. {"--requirepass", "s3cret"}.
  explicit RedisServer(std::vector<std::string> extra = {}) : extra_(std::move(extra)) {
    binary_ = redis_server_path();
    if (binary_.empty()) {
      error_ = "redis-server is not installed";
      return;
    }
    char tmpl[] = "/tmp/mxp-redis-test-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) {
      error_ = "mkdtemp failed";
      return;
    }
    dir_ = tmpl;
    static std::mt19937 rng(std::random_device{}());
    for (int attempt = 0; attempt < 20 && pid_ <= 0; ++attempt) {
      port_ = static_cast<uint16_t>(17000 + rng() % 3000);
      if (port_free(port_)) start();
    }
  }
  ~RedisServer() {
    stop(SIGTERM);
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  }
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  bool ok() const { return pid_ > 0; }
  const std::string& error() const { return error_; }
  uint16_t port() const { return port_; }
  // "redis://[credentials@]127.0.0.1:PORT/db"
  std::string url(const std::string& credentials = "", int db = 0) const {
    return "redis://" + (credentials.empty() ? "" : credentials + "@") +
           "127.0.0.1:" + std::to_string(port_) + "/" + std::to_string(db);
  }

  // Starts it (again, on the same port); true once it accepts connections.
  bool start() {
    const std::string port = std::to_string(port_);
    std::vector<std::string> args = {
        binary_,     "--port",       port,     "--bind",
        "127.0.0.1", "--dir",        dir_,     "--save",
        "",          "--appendonly", "no",     "--daemonize",
        "no",        "--loglevel",   "notice", "--enable-debug-command",
        "local"};
    args.insert(args.end(), extra_.begin(), extra_.end());
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return false;
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::dup2(fds[1], 1);
      ::dup2(fds[1], 2);
      std::vector<char*> argv;
      for (auto& a : args)
        argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(fds[1]);
    if (pid < 0) {
      ::close(fds[0]);
      return false;
    }
    // Read its log until it is ready, or it exits (e.g. the port was taken), or 20 s pass.
    std::string log;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    bool ready = false;
    while (!ready) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                            deadline - std::chrono::steady_clock::now())
                            .count();
      if (left <= 0) break;
      pollfd p{fds[0], POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
      char buf[4096];
      const ssize_t n = ::read(fds[0], buf, sizeof(buf));
      if (n <= 0) break;
      log.append(buf, static_cast<size_t>(n));
      ready = log.find("Ready to accept connections") != std::string::npos;
    }
    // Redis ignores SIGPIPE: once our end is closed its later log lines are simply lost, and it
    // can never block on a full pipe.
    ::close(fds[0]);
    if (!ready) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      error_ = "redis-server did not start: " + log.substr(log.size() > 600 ? log.size() - 600 : 0);
      return false;
    }
    pid_ = pid;
    return true;
  }

  // Stops it (SIGKILL: it vanishes as a crashed or unplugged server does) and reaps it.
  void kill() { stop(SIGKILL); }

 private:
  static bool port_free(uint16_t port) {
    const auto ep = *loop::Endpoint::parse("127.0.0.1", port);
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const bool free = ::bind(fd, ep.sa(), ep.len()) == 0;
    ::close(fd);
    return free;
  }

  void stop(int sig) {
    if (pid_ <= 0) return;
    ::kill(pid_, sig);
    // Wait for the exit through a pidfd (bounded), then make sure.
    const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
    if (pidfd >= 0) {
      pollfd p{pidfd, POLLIN, 0};
      ::poll(&p, 1, 10000);
      ::close(pidfd);
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = 0;
  }

  std::string binary_;
  std::vector<std::string> extra_;
  std::string dir_;
  std::string error_;
  uint16_t port_ = 0;
  pid_t pid_ = 0;
};

}  // namespace mxp::cluster::testing
