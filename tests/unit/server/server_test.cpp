// Tests of mxp::server::HttpServer over real sockets on 127.0.0.1 (port 0), on both loop backends.
// The loop runs in the test thread; clients run on a std::thread with blocking sockets and
// receive timeouts. run_until() stops the loop from a loop timer once a condition holds (the
// client is done, a connection is gone, ...), so no test sleeps to let a race settle.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "server/server.hpp"

namespace mxp::server {
namespace {

using namespace std::chrono_literals;
using loop::Backend;

// [SECTION] a blocking test client ------------------------------------------------------------

struct Resp {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-cased names
  std::string head;                            // raw status line and header fields
  std::string body;
  bool ok = false;
  std::string header(const std::string& n) const {
    const auto it = headers.find(n);
    return it == headers.end() ? "" : it->second;
  }
};

struct Frame {
  int opcode = -1;  // -1: nothing (EOF, timeout, garbage)
  std::string payload;
  uint16_t close_code() const {
    return payload.size() >= 2 ? static_cast<uint16_t>((static_cast<uint8_t>(payload[0]) << 8) |
                                                       static_cast<uint8_t>(payload[1]))
                               : 0;
  }
};

class Client {
 public:
  explicit Client(uint16_t port, std::chrono::milliseconds timeout = 5s) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&sin), sizeof sin) == 0;
  }
  ~Client() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool connected() const { return connected_; }
  int fd() const { return fd_; }

  bool send(std::string_view s) {
    while (!s.empty()) {
      const ssize_t n = ::send(fd_, s.data(), s.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      s.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
  // Closes with RST (SO_LINGER 0).
  void reset() {
    linger l{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    ::close(fd_);
    fd_ = -1;
  }
  // True when the server closed: EOF or reset (after whatever was buffered).
  bool closed_by_peer() {
    buf_.clear();
    for (;;) {
      char b[4096];
      const ssize_t n = ::recv(fd_, b, sizeof b, 0);
      if (n == 0) return true;
      if (n < 0) return errno == ECONNRESET;
    }
  }

  Resp get(const std::string& target, const std::string& extra = "", bool head = false) {
    send((head ? "HEAD " : "GET ") + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra + "\r\n");
    return read_response(head);
  }

  Resp read_response(bool head = false) {
    Resp r;
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos)
      if (!fill()) return r;
    r.head = buf_.substr(0, end);
    buf_.erase(0, end + 4);
    std::sscanf(r.head.c_str(), "HTTP/1.1 %d", &r.status);
    size_t pos = r.head.find("\r\n");
    while (pos != std::string::npos) {
      const size_t next = r.head.find("\r\n", pos + 2);
      const std::string line = r.head.substr(pos + 2, next - pos - 2);
      const size_t colon = line.find(':');
      std::string name = line.substr(0, colon);
      for (auto& ch : name)
        ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      std::string value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ')
        value.erase(0, 1);
      r.headers[name] = value;
      pos = next;
    }
    if (head || r.status == 101 || r.status == 204 || r.status == 304) {
      r.ok = true;
      return r;
    }
    if (r.header("transfer-encoding") == "chunked") {
      for (;;) {
        size_t eol;
        while ((eol = buf_.find("\r\n")) == std::string::npos)
          if (!fill()) return r;
        const size_t size = std::stoul(buf_.substr(0, eol), nullptr, 16);
        buf_.erase(0, eol + 2);
        if (!need(size + 2)) return r;
        r.body += buf_.substr(0, size);
        buf_.erase(0, size + 2);
        if (size == 0) break;
      }
    } else {
      const size_t len = std::stoul(
          r.header("content-length").empty() ? std::string("0") : r.header("content-length"));
      if (!need(len)) return r;
      r.body = buf_.substr(0, len);
      buf_.erase(0, len);
    }
    r.ok = true;
    return r;
  }

  // WebSocket opening handshake; `protocols` goes into Sec-WebSocket-Protocol when not empty.
  Resp ws_handshake(const std::string& path, const std::string& protocols,
                    const std::string& extra = "") {
    std::string req =
        "GET " + path +
        " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n";
    if (!protocols.empty()) req += "Sec-WebSocket-Protocol: " + protocols + "\r\n";
    send(req + extra + "\r\n");
    return read_response();
  }

  // A masked client frame (RFC 6455 §5.3).
  bool ws_send(uint8_t opcode, std::string_view payload) {
    std::string f;
    f += static_cast<char>(0x80 | opcode);
    if (payload.size() < 126) {
      f += static_cast<char>(0x80 | payload.size());
    } else {
      f += static_cast<char>(0x80 | 126);
      f += static_cast<char>(payload.size() >> 8);
      f += static_cast<char>(payload.size() & 0xff);
    }
    const char key[4] = {0x12, 0x34, 0x56, 0x78};
    f.append(key, 4);
    for (size_t i = 0; i < payload.size(); ++i)
      f += static_cast<char>(payload[i] ^ key[i % 4]);
    return send(f);
  }

  Frame ws_read() {
    Frame fr;
    if (!need(2)) return fr;
    const auto b0 = static_cast<uint8_t>(buf_[0]);
    uint64_t len = static_cast<uint8_t>(buf_[1]) & 0x7f;
    size_t at = 2;
    if (len == 126) {
      if (!need(4)) return fr;
      len = (uint64_t{static_cast<uint8_t>(buf_[2])} << 8) | static_cast<uint8_t>(buf_[3]);
      at = 4;
    } else if (len == 127) {
      if (!need(10)) return fr;
      len = 0;
      for (int i = 0; i < 8; ++i)
        len = (len << 8) | static_cast<uint8_t>(buf_[2 + i]);
      at = 10;
    }
    if (!need(at + len)) return fr;
    fr.opcode = b0 & 0x0f;
    fr.payload = buf_.substr(at, len);
    buf_.erase(0, at + len);
    return fr;
  }

 private:
  bool fill() {
    char b[65536];
    const ssize_t n = ::recv(fd_, b, sizeof b, 0);
    if (n <= 0) return false;
    buf_.append(b, static_cast<size_t>(n));
    return true;
  }
  bool need(size_t n) {
    while (buf_.size() < n)
      if (!fill()) return false;
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  std::string buf_;
};

// [SECTION] fixture ---------------------------------------------------------------------------

class ServerTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    auto made = loop::make_loop({.backend = GetParam()});
    if (!made.loop) GTEST_SKIP() << made.why;
    loop_ = std::move(made.loop);
  }
  void TearDown() override {
    if (client_.joinable()) client_.join();
  }

  std::unique_ptr<HttpServer> make(ServerOptions o = {}) {
    o.listen = "127.0.0.1:0";
    auto s = HttpServer::create(*loop_, std::move(o));
    EXPECT_TRUE(s) << s.error();
    if (!s) return nullptr;
    EXPECT_NE((*s)->port(), 0);
    return std::move(s).value();
  }

  // Runs `body` on the client thread; the loop runs until it finished and `also` holds.
  void run_client(
      std::function<void()> body, std::function<bool()> also = [] { return true; },
      std::chrono::milliseconds timeout = 15s) {
    done_ = false;
    client_ = std::thread([this, body = std::move(body)] {
      body();
      done_ = true;
    });
    EXPECT_TRUE(run_until([&] { return done_.load() && also(); }, timeout))
        << "timed out waiting for the client";
    client_.join();
  }

  // Runs the loop until pred() holds (checked every millisecond from a loop timer).
  bool run_until(std::function<bool()> pred, std::chrono::milliseconds timeout) {
    struct Poll : loop::TimerHandler {
      loop::Loop* loop = nullptr;
      std::function<bool()> pred;
      loop::TimePoint deadline;
      loop::TimerId armed;
      bool met = false;
      void on_timer(loop::TimerId, uint64_t) override {
        armed = {};
        met = pred();
        if (met || loop->now() > deadline) {
          loop->stop();
          return;
        }
        armed = loop->add_timer(loop->now() + 1ms, *this);
      }
    } poll;
    poll.loop = loop_.get();
    poll.pred = std::move(pred);
    poll.deadline = loop_->now() + timeout;
    poll.armed = loop_->add_timer(loop_->now(), poll);
    loop_->run();
    if (poll.armed.value != 0) loop_->cancel_timer(poll.armed);
    return poll.met;
  }

  std::unique_ptr<loop::Loop> loop_;
  std::thread client_;
  std::atomic<bool> done_{false};
};

std::string backend_name(const ::testing::TestParamInfo<Backend>& info) {
  return std::string(loop::to_string(info.param));
}

INSTANTIATE_TEST_SUITE_P(Backends, ServerTest, ::testing::Values(Backend::Uv, Backend::Uring),
                         backend_name);

// [SECTION] tests -----------------------------------------------------------------------------

TEST_P(ServerTest, GetRouteAnswersJsonAndNeverSendsCors) {
  auto s = make();
  s->route("GET", "/v1/hello", [](const http::Request& req, Responder r) {
    EXPECT_FALSE(r.peer().empty());
    http::Response resp = http::Response::json(200, "{\"hello\":\"" + req.path + "\"}");
    resp.headers.push_back({"Access-Control-Allow-Origin", "*"});
    r.respond(std::move(resp));
  });
  Resp got;
  run_client([&] {
    Client c(s->port());
    got = c.get("/v1/hello");
  });
  ASSERT_TRUE(got.ok);
  EXPECT_EQ(got.status, 200);
  EXPECT_EQ(got.header("content-type"), "application/json");
  EXPECT_EQ(got.body, "{\"hello\":\"/v1/hello\"}");
  EXPECT_EQ(got.head.find("Access-Control"), std::string::npos) << got.head;
  EXPECT_EQ(s->stats().requests, 1u);
  EXPECT_EQ(s->stats().responses[2], 1u);
}

TEST_P(ServerTest, NotFoundMethodNotAllowedPrefixAndHead) {
  auto s = make();
  s->route("GET", "/v1/hello",
           [](const http::Request&, Responder r) { r.respond(http::Response::json(200, "{}")); });
  s->route("POST", "/v1/jobs",
           [](const http::Request&, Responder r) { r.respond(http::Response::json(201, "{}")); });
  s->route("GET", "/v1/jobs/*", [](const http::Request& req, Responder r) {
    r.respond(http::Response::text(200, "job " + req.path.substr(9)));
  });
  s->route("DELETE", "/v1/jobs/*", [](const http::Request&, Responder r) {
    r.respond(http::Response::text(200, "deleted"));
  });
  Resp nf, na, pre, del, head, post, dflt;
  run_client([&] {
    Client c(s->port());
    nf = c.get("/nope");
    c.send("POST /v1/hello HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n");
    na = c.read_response();
    pre = c.get("/v1/jobs/42");
    c.send("DELETE /v1/jobs/42 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Mxprobe: 1\r\n\r\n");
    del = c.read_response();
    head = c.get("/v1/hello", "", /*head=*/true);
    c.send(
        "POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
        "application/json\r\nContent-Length: 2\r\n\r\n{}");
    post = c.read_response();
    c.send("PUT /v1/jobs/1 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n");
    dflt = c.read_response();
  });
  EXPECT_EQ(nf.status, 404);
  EXPECT_EQ(nf.header("content-type"), "application/json");
  EXPECT_NE(nf.body.find("\"error\":\"not_found\""), std::string::npos) << nf.body;
  EXPECT_NE(nf.body.find("\"message\":"), std::string::npos) << nf.body;
  EXPECT_EQ(na.status, 405);
  EXPECT_EQ(na.header("allow"), "GET, HEAD");
  EXPECT_NE(na.body.find("\"error\":\"method_not_allowed\""), std::string::npos);
  EXPECT_EQ(pre.status, 200);
  EXPECT_EQ(pre.body, "job 42");
  EXPECT_EQ(del.body, "deleted");
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.header("content-length"), "2");
  EXPECT_EQ(post.status, 201);
  EXPECT_EQ(dflt.status, 405);
  EXPECT_EQ(dflt.header("allow"), "DELETE, GET, HEAD");
}

TEST_P(ServerTest, KeepAliveServesTwoRequestsOnOneConnection) {
  auto s = make();
  int n = 0;
  s->route("GET", "/n", [&](const http::Request&, Responder r) {
    r.respond(http::Response::text(200, std::to_string(++n)));
  });
  Resp a, b;
  run_client([&] {
    Client c(s->port());
    a = c.get("/n");
    b = c.get("/n");
  });
  EXPECT_EQ(a.body, "1");
  EXPECT_EQ(b.body, "2");
  EXPECT_EQ(a.header("connection"), "");
  EXPECT_EQ(s->stats().connections_accepted, 1u);
}

TEST_P(ServerTest, PipelinedAnswersGoOutInRequestOrder) {
  auto s = make();
  // Each answer comes from its own timer, the second request's first, the first's last: every
  // respond() runs alone, so an answer given early must wait for the ones before it.
  struct Later : loop::TimerHandler {
    std::vector<Responder> held;
    std::vector<std::string> paths;
    std::vector<size_t> order;  // indexes as answered
    void on_timer(loop::TimerId, uint64_t i) override {
      order.push_back(i);
      EXPECT_TRUE(held[i].alive());
      held[i].respond(http::Response::text(200, paths[i]));
    }
  } later;
  s->route("GET", "/p/*", [&](const http::Request& req, Responder r) {
    later.held.push_back(std::move(r));
    later.paths.push_back(req.path);
    if (later.held.size() < 3) return;
    const auto now = loop_->now();
    loop_->add_timer(now + 10ms, later, 1);
    loop_->add_timer(now + 20ms, later, 2);
    loop_->add_timer(now + 40ms, later, 0);
  });
  std::vector<Resp> got;
  run_client([&] {
    Client c(s->port());
    c.send(
        "GET /p/1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /p/2 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        "GET /p/3 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    for (int i = 0; i < 3; ++i)
      got.push_back(c.read_response());
  });
  EXPECT_EQ(later.order, (std::vector<size_t>{1, 2, 0}));
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].body, "/p/1");
  EXPECT_EQ(got[1].body, "/p/2");
  EXPECT_EQ(got[2].body, "/p/3");
}

TEST_P(ServerTest, DeferredAnswerFromATimer) {
  auto s = make();
  struct Later : loop::TimerHandler {
    Responder r;
    bool alive_before = false;
    void on_timer(loop::TimerId, uint64_t) override {
      alive_before = r.alive();
      r.respond(http::Response::text(200, "late"));
    }
  } later;
  s->route("GET", "/slow", [&](const http::Request&, Responder r) {
    later.r = std::move(r);
    loop_->add_timer(loop_->now() + 50ms, later);
  });
  Resp got;
  run_client([&] {
    Client c(s->port());
    got = c.get("/slow");
  });
  EXPECT_TRUE(later.alive_before);
  EXPECT_FALSE(later.r.alive());
  EXPECT_EQ(got.status, 200);
  EXPECT_EQ(got.body, "late");
}

TEST_P(ServerTest, ChunkedDownloadOfSeveralMegabytes) {
  auto s = make();
  std::string expected;
  s->route("GET", "/dl", [&](const http::Request&, Responder r) {
    r.begin_chunked(200, {{"Content-Type", "application/octet-stream"}});
    for (char ch : {'a', 'b', 'c'}) {
      const std::string chunk(1 << 20, ch);  // larger than the socket buffer: partial writes
      expected += chunk;
      r.write_chunk(chunk);
    }
    r.end_chunked();
  });
  s->route("GET", "/after", [](const http::Request&, Responder r) {
    r.respond(http::Response::text(200, "after"));
  });
  Resp dl, after;
  run_client([&] {
    Client c(s->port());
    dl = c.get("/dl");
    after = c.get("/after");  // framing intact on the same connection
  });
  ASSERT_TRUE(dl.ok);
  EXPECT_EQ(dl.header("transfer-encoding"), "chunked");
  EXPECT_EQ(dl.body.size(), expected.size());
  EXPECT_TRUE(dl.body == expected);
  EXPECT_EQ(after.body, "after");
}

TEST_P(ServerTest, ResponderDroppedWithoutAnswerGives500) {
  auto s = make();
  s->route("GET", "/forgot", [](const http::Request&, Responder) {});
  Resp got;
  run_client([&] {
    Client c(s->port());
    got = c.get("/forgot");
  });
  EXPECT_EQ(got.status, 500);
  EXPECT_NE(got.body.find("\"error\":\"internal\""), std::string::npos);
}

TEST_P(ServerTest, AbandonedChunkedAnswerClosesTheConnection) {
  auto s = make();
  s->route("GET", "/half", [](const http::Request&, Responder r) {
    r.begin_chunked(200, {});
    r.write_chunk("part");
  });  // r dies here, mid-body
  bool closed = false;
  Resp got;
  run_client([&] {
    Client c(s->port());
    got = c.get("/half");  // never completes: no terminating chunk
    closed = !got.ok;
  });
  EXPECT_TRUE(closed);
  EXPECT_EQ(got.status, 200);
}

TEST_P(ServerTest, TokenGuardsTheApiButNotHealthz) {
  ServerOptions o;
  o.token = "s3cret-Token_1";
  auto s = make(o);
  s->route("GET", "/v1/x", [](const http::Request&, Responder r) {
    r.respond(http::Response::json(200, "{\"x\":1}"));
  });
  Resp none, wrong, prefix, right, lower, health, missing;
  run_client([&] {
    Client c(s->port());
    none = c.get("/v1/x");
    wrong = c.get("/v1/x", "Authorization: Bearer s3cret-Token_2\r\n");
    prefix = c.get("/v1/x", "Authorization: Bearer s3cret\r\n");
    right = c.get("/v1/x", "Authorization: Bearer s3cret-Token_1\r\n");
    lower = c.get("/v1/x", "Authorization: bearer   s3cret-Token_1 \r\n");
    health = c.get("/healthz");
    missing = c.get("/nothing-here");
  });
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(none.header("www-authenticate"), "Bearer");
  EXPECT_NE(none.body.find("\"error\":\"unauthorized\""), std::string::npos) << none.body;
  EXPECT_EQ(wrong.status, 401);
  EXPECT_EQ(prefix.status, 401);
  EXPECT_EQ(right.status, 200);
  EXPECT_EQ(right.body, "{\"x\":1}");
  EXPECT_EQ(lower.status, 200);
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(s->stats().unauthorized, 3u);
  EXPECT_EQ(s->stats().responses[4], 4u);
}

ServerOptions opts(std::string listen, std::string token = "") {
  ServerOptions o;
  o.listen = std::move(listen);
  o.token = std::move(token);
  return o;
}

TEST(ServerCreate, RefusesNonLoopbackWithoutTokenAndBadInput) {
  auto made = loop::make_loop({.backend = Backend::Uv});
  ASSERT_TRUE(made.loop);
  // The error of a create() that must fail ("" if it did not).
  auto refusal = [&](ServerOptions o) {
    auto s = HttpServer::create(*made.loop, std::move(o));
    EXPECT_FALSE(s);
    return s ? std::string() : s.error();
  };
  std::string err = refusal(opts("0.0.0.0:0"));
  EXPECT_NE(err.find("token"), std::string::npos) << err;
  err = refusal(opts("[::]:0"));
  EXPECT_NE(err.find("non-loopback"), std::string::npos) << err;
  err = refusal(opts("192.0.2.7:8025"));
  EXPECT_NE(err.find("token"), std::string::npos) << err;
  err = refusal(opts("localhost:80"));
  EXPECT_NE(err.find("invalid listen address"), std::string::npos) << err;
  err = refusal(opts("127.0.0.1:0", "a b"));
  EXPECT_NE(err.find("invalid token"), std::string::npos) << err;
  auto ok = HttpServer::create(*made.loop, opts("127.0.0.1:0"));
  ASSERT_TRUE(ok) << ok.error();
  EXPECT_NE((*ok)->port(), 0);
  // A second server on the same port fails cleanly.
  err = refusal(opts("127.0.0.1:" + std::to_string((*ok)->port())));
  EXPECT_NE(err.find("bind"), std::string::npos) << err;
  if (auto v6 = HttpServer::create(*made.loop, opts("[::1]:0"))) {
    EXPECT_NE((*v6)->port(), 0);
    EXPECT_EQ((*v6)->endpoint().family(), AF_INET6);
  }
}

struct Echo : WsHandler {
  HttpServer* server = nullptr;
  int opened = 0, closed = 0;
  size_t broadcast_at = 0;  // broadcast "news" once this many clients are open
  std::vector<uint64_t> ids;
  void on_open(WsClient& c) override {
    ++opened;
    ids.push_back(c.id());
    EXPECT_FALSE(c.peer().empty());
    if (broadcast_at != 0 && server->ws_clients() == broadcast_at) {
      EXPECT_EQ(server->broadcast_text("news"), broadcast_at);
    }
  }
  void on_message(WsClient& c, const http::WsMessage& m) override {
    if (m.data == "bye") {
      c.close(4000, "bye");
      return;
    }
    EXPECT_TRUE(c.send_text("echo:" + m.data));
  }
  void on_close(WsClient& c) override {
    ++closed;
    EXPECT_FALSE(c.send_text("too late"));
  }
};

TEST_P(ServerTest, WebSocketWithoutTokenEchoes) {
  auto s = make();
  Echo echo;
  echo.server = s.get();
  s->websocket("/v1/ws", echo);
  Resp hs, bare, wrong_proto, plain;
  Frame f1, f2;
  run_client(
      [&] {
        Client c(s->port());
        hs = c.ws_handshake("/v1/ws", "mxprobe.v1");
        c.ws_send(1, "hello");
        f1 = c.ws_read();
        Client d(s->port());
        bare = d.ws_handshake("/v1/ws", "");
        d.ws_send(1, std::string(300, 'x'));
        f2 = d.ws_read();
        Client e(s->port());
        wrong_proto = e.ws_handshake("/v1/ws", "chat");
        Client g(s->port());
        plain = g.get("/v1/ws");
      },
      [&] { return s->stats().connections_open == 0; });
  EXPECT_EQ(hs.status, 101);
  EXPECT_EQ(hs.header("sec-websocket-protocol"), "mxprobe.v1");
  EXPECT_EQ(f1.opcode, 1);
  EXPECT_EQ(f1.payload, "echo:hello");
  EXPECT_EQ(bare.status, 101);
  EXPECT_EQ(bare.header("sec-websocket-protocol"), "");
  EXPECT_EQ(f2.payload, "echo:" + std::string(300, 'x'));
  EXPECT_EQ(wrong_proto.status, 400);
  EXPECT_NE(wrong_proto.body.find("unsupported_subprotocol"), std::string::npos);
  EXPECT_EQ(plain.status, 426);
  EXPECT_EQ(echo.opened, 2);
  EXPECT_EQ(echo.closed, 2);
  EXPECT_EQ(s->ws_clients(), 0u);
  EXPECT_EQ(s->stats().ws_opened, 2u);
  EXPECT_EQ(s->stats().ws_messages_in, 2u);
}

TEST_P(ServerTest, WebSocketTokenTravelsAsSubprotocolAndIsNeverEchoed) {
  ServerOptions o;
  o.token = "tok-123";
  auto s = make(o);
  Echo echo;
  echo.server = s.get();
  s->websocket("/v1/ws", echo);
  Resp good, wrong, none, header;
  Frame f;
  run_client(
      [&] {
        Client c(s->port());
        good = c.ws_handshake("/v1/ws", "mxprobe.v1, bearer.tok-123");
        c.ws_send(1, "hi");
        f = c.ws_read();
        Client d(s->port());
        wrong = d.ws_handshake("/v1/ws", "mxprobe.v1, bearer.tok-124");
        Client e(s->port());
        none = e.ws_handshake("/v1/ws", "mxprobe.v1");
        Client g(s->port());
        header = g.ws_handshake("/v1/ws", "", "Authorization: Bearer tok-123\r\n");
      },
      [&] { return s->stats().connections_open == 0; });
  EXPECT_EQ(good.status, 101);
  EXPECT_EQ(good.header("sec-websocket-protocol"), "mxprobe.v1");
  EXPECT_EQ(good.head.find("tok-123"), std::string::npos) << good.head;
  EXPECT_EQ(f.payload, "echo:hi");
  EXPECT_EQ(wrong.status, 401);
  EXPECT_EQ(wrong.header("www-authenticate"), "Bearer");
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(header.status, 101);
  EXPECT_EQ(echo.opened, 2);
}

TEST_P(ServerTest, BroadcastReachesTwoClients) {
  auto s = make();
  Echo echo;
  echo.server = s.get();
  echo.broadcast_at = 2;
  s->websocket("/ws", echo);
  Frame a, b;
  run_client([&] {
    Client c(s->port()), d(s->port());
    c.ws_handshake("/ws", "mxprobe.v1");
    d.ws_handshake("/ws", "mxprobe.v1");
    a = c.ws_read();
    b = d.ws_read();
  });
  EXPECT_EQ(a.payload, "news");
  EXPECT_EQ(b.payload, "news");
  EXPECT_EQ(s->stats().ws_messages_out, 2u);
}

TEST_P(ServerTest, ServerClosesAWebSocket) {
  auto s = make();
  Echo echo;
  echo.server = s.get();
  s->websocket("/ws", echo);
  Frame close;
  bool eof = false;
  run_client(
      [&] {
        Client c(s->port());
        c.ws_handshake("/ws", "mxprobe.v1");
        c.ws_send(1, "bye");
        close = c.ws_read();
        c.ws_send(8, close.payload.substr(0, 2));  // echo the close (RFC 6455 §5.5.1)
        eof = c.closed_by_peer();
      },
      [&] { return echo.closed == 1 && s->stats().connections_open == 0; });
  EXPECT_EQ(close.opcode, 8);
  EXPECT_EQ(close.close_code(), 4000);
  EXPECT_EQ(close.payload.substr(2), "bye");
  EXPECT_TRUE(eof);
  EXPECT_EQ(echo.closed, 1);
  EXPECT_EQ(s->ws_clients(), 0u);
}

TEST_P(ServerTest, SlowWebSocketClientLosesMessagesInsteadOfGrowingMemory) {
  ServerOptions o;
  o.ws_max_pending = 256 * 1024;
  auto s = make(o);
  struct Flood : WsHandler {
    size_t accepted = 0, refused = 0;
    void on_open(WsClient& c) override {
      const std::string big(64 * 1024, 'z');
      for (int i = 0; i < 400; ++i)  // 25 MiB to a client that reads nothing
        (c.send_text(big) ? accepted : refused)++;
    }
    void on_message(WsClient&, const http::WsMessage&) override {}
    void on_close(WsClient&) override {}
  } flood;
  s->websocket("/ws", flood);
  run_client([&] {
    Client c(s->port());
    c.ws_handshake("/ws", "mxprobe.v1");
  });
  EXPECT_GT(flood.refused, 0u);
  EXPECT_LT(flood.accepted, 100u);  // at most cap + socket buffers' worth
  EXPECT_EQ(s->stats().ws_dropped, flood.refused);
}

TEST_P(ServerTest, SlowlorisIsCutOffAfterHeaderTimeout) {
  ServerOptions o;
  o.limits.header_timeout = 300ms;
  auto s = make(o);
  s->route("GET", "/", [](const http::Request&, Responder r) {
    r.respond(http::Response::text(200, "never"));
  });
  Resp got;
  bool eof = false;
  size_t sent = 0;
  std::chrono::milliseconds took{};
  run_client(
      [&] {
        Client c(s->port());
        const std::string req =
            "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaa\r\n";
        const auto start = std::chrono::steady_clock::now();
        // One byte per 100 ms until the server answers (poll is the pacing, not a race fix).
        for (; sent < req.size(); ++sent) {
          pollfd p{c.fd(), POLLIN, 0};
          if (::poll(&p, 1, 100) != 0) break;
          if (!c.send(req.substr(sent, 1))) break;
        }
        got = c.read_response();
        eof = c.closed_by_peer();
        took = std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::steady_clock::now() - start);
      },
      [&] { return s->stats().connections_open == 0; });
  EXPECT_EQ(got.status, 408);
  EXPECT_TRUE(eof);
  EXPECT_LT(sent, 20u);  // cut off long before the header was complete
  EXPECT_GE(took, 300ms);
  EXPECT_LT(took, 3000ms);
  EXPECT_EQ(s->stats().timeouts, 1u);
  EXPECT_EQ(s->stats().responses[4], 1u);
}

TEST_P(ServerTest, IdleConnectionIsClosedAfterIdleTimeout) {
  ServerOptions o;
  o.limits.idle_timeout = 200ms;
  auto s = make(o);
  bool eof = false;
  run_client([&] {
    Client c(s->port());
    eof = c.closed_by_peer();
  });
  EXPECT_TRUE(eof);
  EXPECT_EQ(s->stats().timeouts, 1u);
}

class StaticTest : public ServerTest {
 protected:
  void SetUp() override {
    ServerTest::SetUp();
    if (IsSkipped()) return;
    char tmpl[] = "/tmp/mxp_server_test_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    base_ = tmpl;
    namespace fs = std::filesystem;
    fs::create_directories(base_ + "/www/sub");
    write(base_ + "/www/index.html", "<h1>console</h1>");
    write(base_ + "/www/app.wasm", std::string("\0asm\1\0\0\0", 8));
    write(base_ + "/www/app.js", "console.log(1)");
    write(base_ + "/www/sub/index.html", "sub index");
    write(base_ + "/www/data.bin", "raw");
    write(base_ + "/www/.env", "TOKEN=x");
    write(base_ + "/secret.txt", "outside the root");
    fs::create_symlink(base_ + "/secret.txt", base_ + "/www/escape.txt");
  }
  void TearDown() override {
    ServerTest::TearDown();
    if (!base_.empty()) std::filesystem::remove_all(base_);
  }
  static void write(const std::string& path, const std::string& data) {
    std::ofstream(path, std::ios::binary) << data;
  }
  std::string base_;
};

INSTANTIATE_TEST_SUITE_P(Backends, StaticTest, ::testing::Values(Backend::Uv, Backend::Uring),
                         backend_name);

TEST_P(StaticTest, ServesFilesPubliclyAndRefusesTraversal) {
  ServerOptions o;
  o.token = "tok";  // static files stay public with a token
  auto s = make(o);
  s->static_dir(base_ + "/www");
  s->route("GET", "/v1/x",
           [](const http::Request&, Responder r) { r.respond(http::Response::text(200, "api")); });
  std::map<std::string, Resp> got;
  Resp head;
  run_client([&] {
    Client c(s->port());
    for (const char* t :
         {"/", "/app.wasm", "/app.js", "/sub/", "/data.bin", "/../etc/passwd", "/%2e%2e/secret.txt",
          "/sub/../../secret.txt", "/escape.txt", "/.env", "/nope.html", "/sub", "/v1/x"})
      got[t] = c.get(t);
    head = c.get("/app.wasm", "", /*head=*/true);
  });
  EXPECT_EQ(got["/"].status, 200);
  EXPECT_EQ(got["/"].header("content-type"), "text/html; charset=utf-8");
  EXPECT_EQ(got["/"].body, "<h1>console</h1>");
  EXPECT_EQ(got["/app.wasm"].header("content-type"), "application/wasm");
  EXPECT_EQ(got["/app.wasm"].body, std::string("\0asm\1\0\0\0", 8));
  EXPECT_EQ(got["/app.js"].header("content-type"), "text/javascript; charset=utf-8");
  EXPECT_EQ(got["/sub/"].body, "sub index");
  EXPECT_EQ(got["/data.bin"].header("content-type"), "application/octet-stream");
  for (const char* t : {"/../etc/passwd", "/%2e%2e/secret.txt", "/sub/../../secret.txt",
                        "/escape.txt", "/.env", "/nope.html", "/sub"}) {
    EXPECT_EQ(got[t].status, 404) << t;
    EXPECT_EQ(got[t].body.find("root:"), std::string::npos) << t;
    EXPECT_EQ(got[t].body.find("outside"), std::string::npos) << t;
  }
  EXPECT_EQ(got["/v1/x"].status, 401);
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.header("content-length"), "8");
}

TEST_P(ServerTest, ClientResetsDoNotHurt) {
  auto s = make();
  s->route("GET", "/v1/hello", [](const http::Request&, Responder r) {
    r.respond(http::Response::text(200, "hello"));
  });
  s->route("GET", "/big", [](const http::Request&, Responder r) {
    r.respond(http::Response::text(200, std::string(8 << 20, 'b')));
  });
  std::optional<Responder> held;
  std::promise<void> got_request;
  s->route("GET", "/hold", [&](const http::Request&, Responder r) {
    held.emplace(std::move(r));
    got_request.set_value();
  });
  Resp after;
  run_client(
      [&] {
        {  // reset in the middle of a request's header
          Client c(s->port());
          c.send("GET /v1/hello HTTP/1.1\r\nHo");
          c.reset();
        }
        {  // reset in the middle of a large answer
          Client c(s->port());
          c.send("GET /big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
          char b[100];
          (void)::recv(c.fd(), b, sizeof b, 0);
          c.reset();
        }
        {  // reset while the handler still owes the answer
          Client c(s->port());
          c.send("GET /hold HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
          got_request.get_future().wait_for(5s);
          c.reset();
        }
        Client c(s->port());
        after = c.get("/v1/hello");
      },
      [&] { return s->stats().connections_open == 0; });
  EXPECT_EQ(after.status, 200);
  EXPECT_EQ(after.body, "hello");
  ASSERT_TRUE(held);
  EXPECT_FALSE(held->alive());
  held->respond(http::Response::text(200, "nobody listens"));  // harmless
  EXPECT_EQ(held->pending_output(), 0u);
  EXPECT_EQ(s->stats().connections_accepted, 4u);
}

// Past the limit, a new connection takes the place of the oldest idle one (see
// BusyConnectionsAreNotEvicted for a full server with nothing to close).
TEST_P(ServerTest, ConnectionsBeyondTheLimitCloseTheOldestIdleOne) {
  ServerOptions o;
  o.max_connections = 2;
  auto s = make(o);
  s->route("GET", "/",
           [](const http::Request&, Responder r) { r.respond(http::Response::text(200, "ok")); });
  Resp a, b, c;
  bool first_closed = false;
  run_client([&] {
    Client c1(s->port()), c2(s->port());
    a = c1.get("/");
    b = c2.get("/");  // both accepted and served, then idle
    Client c3(s->port());
    c = c3.get("/");
    first_closed = c1.closed_by_peer();
  });
  EXPECT_EQ(a.status, 200);
  EXPECT_EQ(b.status, 200);
  EXPECT_EQ(c.status, 200);
  EXPECT_TRUE(first_closed);
  EXPECT_EQ(s->stats().connections_rejected, 0u);
  EXPECT_EQ(s->stats().connections_evicted, 1u);
}

TEST_P(ServerTest, ResponderOutlivesTheServer) {
  std::optional<Responder> held;
  std::promise<void> got_request;
  std::atomic<bool> eof{false}, finished{false};
  auto s = make();
  s->route("GET", "/hold", [&](const http::Request&, Responder r) {
    held.emplace(std::move(r));
    got_request.set_value();
  });
  auto fut = got_request.get_future();
  client_ = std::thread([&, port = s->port()] {
    Client c(port);
    c.send("GET /hold HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    fut.wait_for(5s);
    eof = c.closed_by_peer();
    finished = true;
  });
  ASSERT_TRUE(run_until([&] { return held.has_value(); }, 10s));
  EXPECT_TRUE(held->alive());
  s.reset();  // the server closes the connection
  EXPECT_FALSE(held->alive());
  held->respond(http::Response::text(200, "late"));  // harmless
  // io_uring releases a closed socket once its poll is removed: let the loop run for that.
  EXPECT_TRUE(run_until([&] { return finished.load(); }, 10s));
  client_.join();
  EXPECT_TRUE(eof);
  held.reset();  // harmless too
}

// [SECTION] streamed request bodies ------------------------------------------------------------

// Counts and checks what it is given; answers with the count at the end.
struct CountingSink : BodySink {
  Responder r;
  uint64_t* bytes;
  size_t* pieces;
  int* errors;
  bool* ok_content;
  CountingSink(Responder rr, uint64_t* b, size_t* p, int* e, bool* ok)
      : r(std::move(rr)), bytes(b), pieces(p), errors(e), ok_content(ok) {}
  bool on_body(std::string_view data) override {
    for (char ch : data)
      *ok_content &= ch == static_cast<char>('a' + (*bytes)++ % 26);
    ++*pieces;
    return true;
  }
  void on_body_end() override { r.respond(http::Response::text(201, std::to_string(*bytes))); }
  void on_body_error() override { ++*errors; }
};

TEST_P(ServerTest, StreamedUploadLargerThanTheBodyLimitArrivesInPieces) {
  ServerOptions o;
  o.limits.max_body_bytes = 64 << 10;
  o.token = "sesame";
  auto s = make(o);
  uint64_t bytes = 0;
  size_t pieces = 0;
  int errors = 0, handled = 0;
  bool ok_content = true;
  s->route_streamed("POST", "/up", [&](const http::Request& q, Responder r) {
    ++handled;
    EXPECT_TRUE(q.streamed);
    return std::make_unique<CountingSink>(std::move(r), &bytes, &pieces, &errors, &ok_content);
  });
  s->route("GET", "/after", [](const http::Request&, Responder r) {
    r.respond(http::Response::text(200, "after"));
  });
  const size_t kSize = 8 << 20;  // 128 times the in-memory limit
  std::string body(kSize, 0);
  for (size_t i = 0; i < kSize; ++i)
    body[i] = static_cast<char>('a' + i % 26);
  Resp up, after, denied;
  bool denied_closed = false;
  run_client([&] {
    Client c(s->port());
    c.send(
        "POST /up HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer sesame\r\nContent-Length: " +
        std::to_string(kSize) + "\r\n\r\n");
    c.send(body);
    up = c.read_response();
    after = c.get("/after", "Authorization: Bearer sesame\r\n");  // framing intact
    // Without the token: refused at the header, the body never read, the connection closed.
    Client d(s->port());
    d.send(
        "POST /up HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Mxprobe: 1\r\nContent-Length: "
        "100000000\r\n\r\n" +
        body.substr(0, 1000));
    denied = d.read_response();
    denied_closed = d.closed_by_peer();
  });
  EXPECT_EQ(up.status, 201);
  EXPECT_EQ(up.body, std::to_string(kSize));
  EXPECT_TRUE(ok_content);
  EXPECT_GT(pieces, 8u) << "handed over as it arrived, not whole";
  EXPECT_EQ(after.body, "after");
  EXPECT_EQ(denied.status, 401);
  EXPECT_TRUE(denied_closed);
  EXPECT_EQ(handled, 1) << "the handler never saw the unauthorized upload";
  EXPECT_EQ(errors, 0);
}

TEST_P(ServerTest, StreamedUploadCutShortTellsTheSink) {
  auto s = make();
  struct Sink : BodySink {
    Responder r;
    std::promise<size_t>* first;
    int* errors;
    bool told = false;
    bool on_body(std::string_view data) override {
      if (!told) first->set_value(data.size());
      told = true;
      return true;
    }
    void on_body_end() override { r.respond(http::Response::text(201, "")); }
    void on_body_error() override { ++*errors; }
  };
  std::promise<size_t> first;
  int errors = 0;
  s->route_streamed("POST", "/up", [&](const http::Request&, Responder r) {
    auto k = std::make_unique<Sink>();
    k->r = std::move(r);
    k->first = &first;
    k->errors = &errors;
    return k;
  });
  size_t got = 0;
  run_client(
      [&] {
        Client c(s->port());
        c.send(
            "POST /up HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Mxprobe: 1\r\nContent-Length: "
            "1000\r\n\r\nabcdefghij");
        auto f = first.get_future();
        if (f.wait_for(5s) == std::future_status::ready) got = f.get();
        c.reset();  // gone with 990 bytes owed
      },
      [&] { return errors == 1; });
  EXPECT_EQ(got, 10u);
  EXPECT_EQ(errors, 1);
}

// [SECTION] attacks (issue 16) -----------------------------------------------------------------

// A page on another site must not drive a loopback server through the operator's browser: Host
// (DNS rebinding), Origin (WebSocket and API) and writes a form could send are refused; curl
// (no Origin) and the server's own pages (same origin) go on working.
TEST_P(ServerTest, CrossSiteRequestsAreRefused) {
  auto s = make();
  int writes = 0;
  s->route("GET", "/v1/jobs",
           [](const http::Request&, Responder r) { r.respond(http::Response::json(200, "[]")); });
  s->route("POST", "/v1/jobs", [&](const http::Request&, Responder r) {
    ++writes;
    r.respond(http::Response::json(201, "{}"));
  });
  Echo echo;
  echo.server = s.get();
  s->websocket("/ws", echo);
  const std::string port = std::to_string(s->port());
  std::map<std::string, int> st;
  run_client(
      [&] {
        const auto get = [&](const std::string& name, const std::string& target,
                             const std::string& host, const std::string& extra) {
          Client c(s->port());
          c.send("GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\n" + extra + "\r\n");
          st[name] = c.read_response().status;
        };
        const auto post = [&](const std::string& name, const std::string& extra) {
          Client c(s->port());
          c.send("POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1:" + port + "\r\n" + extra +
                 "Content-Length: 5\r\n\r\na@b.c");
          st[name] = c.read_response().status;
        };
        const auto ws = [&](const std::string& name, const std::string& extra) {
          Client c(s->port());
          st[name] = c.ws_handshake("/ws", "mxprobe.v1", extra).status;
        };
        get("rebound", "/v1/jobs", "evil.example:" + port, "");
        get("rebound_healthz", "/healthz", "evil.example", "");
        get("localhost", "/v1/jobs", "localhost:" + port, "");
        get("ip", "/v1/jobs", "127.0.0.1:" + port, "");
        get("v6", "/v1/jobs", "[::1]:" + port, "");
        get("cross_get", "/v1/jobs", "127.0.0.1:" + port, "Origin: http://evil.example\r\n");
        post("form", "Content-Type: text/plain\r\n");
        post("form_urlencoded", "Content-Type: application/x-www-form-urlencoded\r\n");
        post("no_type", "");
        post("header", "X-Mxprobe: 1\r\nContent-Type: text/plain\r\n");
        post("json", "Content-Type: application/json\r\n");
        post("cross_header", "Origin: http://evil.example\r\nX-Mxprobe: 1\r\n");
        post("same_origin", "Origin: http://127.0.0.1:" + port + "\r\nX-Mxprobe: 1\r\n");
        ws("ws_evil", "Origin: http://evil.example\r\n");
        ws("ws_null", "Origin: null\r\n");
        ws("ws_same", "Origin: http://127.0.0.1\r\n");  // the test client's Host has no port
        ws("ws_curl", "");
      },
      [&] { return s->stats().connections_open == 0; });
  EXPECT_EQ(st["rebound"], 421);
  EXPECT_EQ(st["rebound_healthz"], 421);
  EXPECT_EQ(st["localhost"], 200);
  EXPECT_EQ(st["ip"], 200);
  EXPECT_EQ(st["v6"], 200);
  EXPECT_EQ(st["cross_get"], 403);
  EXPECT_EQ(st["form"], 403);
  EXPECT_EQ(st["form_urlencoded"], 403);
  EXPECT_EQ(st["no_type"], 403);
  EXPECT_EQ(st["header"], 201);
  EXPECT_EQ(st["json"], 201);
  EXPECT_EQ(st["cross_header"], 403);
  EXPECT_EQ(st["same_origin"], 201);
  EXPECT_EQ(st["ws_evil"], 403);
  EXPECT_EQ(st["ws_null"], 403);
  EXPECT_EQ(st["ws_same"], 101);
  EXPECT_EQ(st["ws_curl"], 101);
  EXPECT_EQ(writes, 3);
  EXPECT_EQ(echo.opened, 2);
  EXPECT_EQ(s->stats().cross_site, 9u);
}

// With a token, the bearer header is enough for a write (a page cannot send it unasked).
TEST_P(ServerTest, TokenWritesNeedNoExtraHeader) {
  ServerOptions o;
  o.token = "sesame";
  auto s = make(o);
  s->route("POST", "/w",
           [](const http::Request&, Responder r) { r.respond(http::Response::json(200, "{}")); });
  Resp with, without;
  run_client([&] {
    Client c(s->port()), d(s->port());
    c.send(
        "POST /w HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer sesame\r\n"
        "Content-Type: text/plain\r\nContent-Length: 0\r\n\r\n");
    with = c.read_response();
    d.send(
        "POST /w HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
        "Content-Length: 0\r\n\r\n");
    without = d.read_response();
  });
  EXPECT_EQ(with.status, 200);
  EXPECT_EQ(without.status, 401);
}

// Slowloris: the server full of connections trickling their headers (or saying nothing) still
// takes a new client, in all and per client address, by closing the oldest of them.
TEST_P(ServerTest, SlowClientsDoNotLockOthersOut) {
  for (const bool per_client : {false, true}) {
    ServerOptions o;
    if (per_client)
      o.max_connections_per_client = 4;
    else
      o.max_connections = 4;
    auto s = make(o);
    s->route("GET", "/v1/x",
             [](const http::Request&, Responder r) { r.respond(http::Response::text(200, "ok")); });
    Resp got;
    run_client([&] {
      std::vector<std::unique_ptr<Client>> slow;
      for (int i = 0; i < 6; ++i) {
        slow.push_back(std::make_unique<Client>(s->port()));
        if (i % 2 == 0) slow.back()->send("GET /v1/x HTTP/1.1\r\nHo");  // never finished
      }
      for (int i = 0; i < 3; ++i) {
        Client c(s->port());
        got = c.get("/v1/x");
        if (got.status != 200) break;
      }
    });
    EXPECT_EQ(got.status, 200) << "per_client=" << per_client;
    EXPECT_GE(s->stats().connections_evicted, 3u)
        << "per_client=" << per_client;  // 6 slow + 1 new into 4
    EXPECT_EQ(s->stats().connections_rejected, 0u);
  }
}

// An owed answer is work: such connections are never closed to make room.
TEST_P(ServerTest, BusyConnectionsAreNotEvicted) {
  ServerOptions o;
  o.max_connections = 2;
  auto s = make(o);
  std::vector<Responder> held;
  std::atomic<int> holding{0};
  s->route("GET", "/v1/slow", [&](const http::Request&, Responder r) {
    held.push_back(std::move(r));
    ++holding;
  });
  bool third_closed = false;
  run_client(
      [&] {
        Client a(s->port()), b(s->port());
        a.send("GET /v1/slow HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        b.send("GET /v1/slow HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        while (holding < 2)  // both answers owed
          std::this_thread::yield();
        Client c(s->port());
        third_closed = c.closed_by_peer();
      },
      [&] { return true; });
  EXPECT_TRUE(third_closed);
  EXPECT_EQ(s->stats().connections_rejected, 1u);
  EXPECT_EQ(s->stats().connections_evicted, 0u);
  for (auto& r : held)
    r.respond(http::Response::text(200, "late"));
}

// A WebSocket client that reads nothing costs at most about ws_max_pending: snapshots sent
// with send_latest() replace each other while it is behind, and the newest one reaches it when
// it reads again.
TEST_P(ServerTest, SlowWebSocketReaderGetsOnlyTheNewestSnapshot) {
  ServerOptions o;
  o.ws_latest_above = 32 << 10;
  o.ws_max_pending = 256 << 10;
  auto s = make(o);
  struct Keep : WsHandler {
    WsClient* client = nullptr;
    void on_open(WsClient& c) override { client = &c; }
    void on_message(WsClient&, const http::WsMessage&) override {}
    void on_close(WsClient&) override { client = nullptr; }
  } keep;
  s->websocket("/ws", keep);
  std::atomic<bool> go{false};
  std::atomic<int> sent{0};
  size_t peak = 0;
  std::string last;
  int frames = 0;
  done_ = false;
  client_ = std::thread([&] {
    Client c(s->port(), 20s);
    if (c.ws_handshake("/ws", "mxprobe.v1").status == 101) {
      while (!go)
        std::this_thread::yield();
      for (;;) {
        Frame f = c.ws_read();
        if (f.opcode != 1) break;
        ++frames;
        last = f.payload.substr(0, 12);
        if (last == "snapshot 499") break;
      }
    }
    done_ = true;
  });
  // One snapshot of 64 KiB per loop tick (1 ms) while the client is not reading.
  EXPECT_TRUE(run_until(
      [&] {
        if (keep.client && sent < 500) {
          std::string snap = "snapshot " + std::to_string(sent.load()) + " ";
          snap.resize(64 << 10, 'x');
          EXPECT_TRUE(keep.client->send_latest(snap));
          peak = std::max(peak, keep.client->pending_output());
          if (++sent == 500) go = true;
        }
        return done_.load();
      },
      60s));
  client_.join();
  EXPECT_EQ(sent.load(), 500);
  EXPECT_LE(peak, size_t{(32 << 10) + (64 << 10) + 64});  // never more than one past the mark
  EXPECT_EQ(last, "snapshot 499");
  EXPECT_LT(frames, 300);  // the others were replaced while it did not read
  EXPECT_GT(s->stats().ws_coalesced, 200u);
}

}  // namespace
}  // namespace mxp::server
