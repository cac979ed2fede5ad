// Plain epoll TCP server on a thread, for the loop tests: echoes, collects, or closes/resets after
// the first byte, and records what each peer did. Independent of mxp::loop on purpose. Also a
// Watchdog that aborts a hung test instead of letting it block ctest.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "loop/endpoint.hpp"

namespace mxp::loop::testing {

class TestServer {
 public:
  enum class Mode {
    Echo,                 // sends back what it reads; closes on EOF
    Collect,              // keeps what it reads; closes on EOF or error
    CloseAfterFirstByte,  // close() (FIN) once something arrived
    ResetAfterFirstByte,  // SO_LINGER 0 + close() (RST) once something arrived
  };
  struct Record {
    std::string peer;  // "ip:port" as accept() saw it
    std::string data;  // what arrived (Collect, Echo)
    bool eof = false;
    bool reset = false;
  };

  explicit TestServer(Mode mode, const char* ip = "127.0.0.1", int backlog = 4096) : mode_(mode) {
    const auto ep = Endpoint::parse(ip, 0);
    if (!ep) die("bad ip");
    listen_fd_ = ::socket(ep->family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    const int one = 1;
    setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(listen_fd_, ep->sa(), ep->len()) != 0) die("bind");
    if (::listen(listen_fd_, backlog) != 0) die("listen");
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&ss), &len);
    endpoint_ = *Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    add(listen_fd_, EPOLLIN);
    add(wake_fd_, EPOLLIN);
    thread_ = std::thread([this] { serve(); });
  }
  ~TestServer() {
    const uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof(one));
    thread_.join();
    for (auto& [fd, c] : clients_)
      ::close(fd);
    ::close(listen_fd_);
    ::close(epoll_fd_);
    ::close(wake_fd_);
  }

  const Endpoint& endpoint() const { return endpoint_; }

  // Blocks until n connections have ended (or 10 s: then returns what there is).
  std::vector<Record> wait_ended(size_t n) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(10), [&] { return ended_.size() >= n; });
    return ended_;
  }
  std::vector<std::string> wait_accepted(size_t n) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(10), [&] { return accepted_.size() >= n; });
    return accepted_;
  }

 private:
  struct Client {
    Record rec;
    std::string out;  // Echo: bytes not yet written back
    bool want_out = false;
  };

  [[noreturn]] static void die(const char* what) {
    std::fprintf(stderr, "TestServer: %s: %s\n", what, std::strerror(errno));
    std::abort();
  }
  void add(int fd, uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = fd;
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
  }
  void modify(int fd, uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = fd;
    epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev);
  }

  void serve() {
    epoll_event events[256];
    for (;;) {
      const int n = epoll_wait(epoll_fd_, events, 256, -1);
      for (int i = 0; i < n; ++i) {
        const int fd = events[i].data.fd;
        if (fd == wake_fd_) return;
        if (fd == listen_fd_) {
          accept_all();
          continue;
        }
        if (events[i].events & EPOLLOUT) flush(fd);
        if (clients_.count(fd) && (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) {
          readable(fd);
        }
      }
    }
  }

  void accept_all() {
    for (;;) {
      sockaddr_storage ss{};
      socklen_t len = sizeof(ss);
      const int fd =
          accept4(listen_fd_, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;
      Client c;
      c.rec.peer = Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len)->to_string();
      {
        std::lock_guard lock(mu_);
        accepted_.push_back(c.rec.peer);
      }
      cv_.notify_all();
      clients_.emplace(fd, std::move(c));
      add(fd, EPOLLIN);
    }
  }

  void readable(int fd) {
    Client& c = clients_.at(fd);
    char buf[65536];
    for (;;) {
      const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
      if (n > 0) {
        if (mode_ == Mode::CloseAfterFirstByte || mode_ == Mode::ResetAfterFirstByte) {
          if (mode_ == Mode::ResetAfterFirstByte) {
            const linger lg{1, 0};
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
          }
          c.rec.data.append(buf, static_cast<size_t>(n));
          end(fd);
          return;
        }
        c.rec.data.append(buf, static_cast<size_t>(n));
        if (mode_ == Mode::Echo) {
          c.out.append(buf, static_cast<size_t>(n));
          flush(fd);
          if (!clients_.count(fd)) return;
        }
        continue;
      }
      if (n == 0) {
        c.rec.eof = true;
        end(fd);
        return;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      c.rec.reset = errno == ECONNRESET;
      end(fd);
      return;
    }
  }

  void flush(int fd) {
    auto it = clients_.find(fd);
    if (it == clients_.end()) return;
    Client& c = it->second;
    while (!c.out.empty()) {
      const ssize_t n = ::send(fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
      if (n > 0) {
        c.out.erase(0, static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      c.rec.reset = true;
      end(fd);
      return;
    }
    const bool want = !c.out.empty();
    if (want != c.want_out) {
      modify(fd, want ? EPOLLIN | EPOLLOUT : EPOLLIN);
      c.want_out = want;
    }
  }

  void end(int fd) {
    auto node = clients_.extract(fd);
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
    ::close(fd);
    {
      std::lock_guard lock(mu_);
      ended_.push_back(std::move(node.mapped().rec));
    }
    cv_.notify_all();
  }

  Mode mode_;
  Endpoint endpoint_;
  int listen_fd_ = -1;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  std::thread thread_;
  std::map<int, Client> clients_;  // server thread only
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Record> ended_;
  std::vector<std::string> accepted_;
};

// Aborts the process if a test is still running after `limit`: a hung loop fails loudly and fast
// instead of blocking ctest. Not a sleep: it waits on a condition the destructor signals.
class Watchdog {
 public:
  explicit Watchdog(std::chrono::seconds limit = std::chrono::seconds(20)) {
    thread_ = std::thread([this, limit] {
      std::unique_lock lock(mu_);
      if (!cv_.wait_for(lock, limit, [this] { return done_; })) {
        std::fprintf(stderr, "Watchdog: test still running after %llds, aborting\n",
                     static_cast<long long>(limit.count()));
        std::abort();
      }
    });
  }
  ~Watchdog() {
    {
      std::lock_guard lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

}  // namespace mxp::loop::testing
