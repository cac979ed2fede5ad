// The farm's event loop: listeners, SMTP sessions with scripted behaviour, DNS helpers, signals
// and the report. One thread, one libuv loop; sessions are pooled and reuse their buffers, and
// replies are gathered per read and written with one uv_try_write, so that the farm is never
// the bottleneck of a benchmark. STARTTLS (with `run --tls-cert/--tls-key`) is OpenSSL behind
// memory BIOs: the session's plaintext in_/out_ stay as they are, the socket sees ciphertext.
//
// [SECTION] index: Farm state - Session state - connection start - input - commands - replies
//                  and output - closing - DNS sockets - signals and report - run_farm
#include "farm.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "dns.hpp"
#include "protocol.hpp"
#include "stats.hpp"
#include "styles.hpp"

namespace mxfarm {

namespace {

constexpr size_t kInCap = 1024;         // per-session input: RFC 5321 lines are <= 512 octets
constexpr size_t kStreamChunk = 65536;  // endless / over-long replies are written in chunks
constexpr size_t kTlsRead = 16384;      // ciphertext read per callback (one TLS record)

// What Postfix's reject_non_fqdn_helo_hostname lets pass: an address literal ("[192.0.2.1]")
// or a host name with a dot (one trailing dot ignored) of letters, digits, hyphens and dots.
bool fqdn_or_literal(std::string_view name) {
  if (name.size() > 2 && name.front() == '[' && name.back() == ']') return true;
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty() || name.find('.') == std::string_view::npos) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.';
  });
}

// ---------------------------------------------------------------------------------------------
// [SECTION] Farm state

class Farm;

struct HostRt {
  std::string ehlo;      // EHLO reply template for this host's style and extensions
  std::string ehlo_tls;  // the same inside TLS: no STARTTLS (RFC 3207 section 4.2)
  std::string endless;   // one chunk of "250-..." continuation lines
  uv_tcp_t listener{};   // listener.data points back to this HostRt
  uv_tcp_t listener6{};  // on the host's IPv6 address, when it has one
  bool listening = false, listening6 = false;
  Farm* farm = nullptr;
  int index = -1;
  double queue_free_ms = 0;  // capacity_per_s: when the host's one queue is next free

  // The wait, on top of `delay_ms`, of a reply ready to go out `delay_ms` after `now_ms` (ms
  // since the farm started): capacity_per_s queues it behind the host's earlier replies, and
  // a stall (stall_every_s, stall_ms) holds it until the stall is over.
  uint32_t extra_wait(const HostBehaviour& b, double now_ms, uint32_t delay_ms) {
    const double ready = now_ms + delay_ms;
    double out = ready;
    if (b.capacity_per_s > 0) {
      out = std::max(ready, queue_free_ms) + 1000.0 / b.capacity_per_s;
      queue_free_ms = out;
    }
    if (b.stall_every_s > 0) {
      const double every = b.stall_every_s * 1000.0;
      const double k = std::floor(out / every);
      if (k >= 1 && out - k * every < b.stall_ms) out = k * every + b.stall_ms;
      if (b.capacity_per_s > 0) queue_free_ms = std::max(queue_free_ms, out);
    }
    return static_cast<uint32_t>(std::ceil(out - ready));
  }
};

struct DomainRt {
  std::vector<int> hosts;  // hosts that accept mail for the domain
  std::unordered_map<std::string, MailboxStatus, StringHash, std::equal_to<>> mailboxes;
};

class Session;

// What greylisting made of one RCPT.
enum class Grey : uint8_t { First, Early, Passed };

class Farm {
 public:
  Farm(const Scenario& sc, const RunOptions& opt);
  int run();

  // Used by sessions.
  uv_loop_t* loop() { return &loop_; }
  const Scenario& sc() const { return sc_; }
  HostRt& host_rt(int h) { return hosts_[h]; }
  double elapsed_ms() const { return static_cast<double>(uv_hrtime() - started_ns_) / 1e6; }
  Stats& stats() { return stats_; }
  bool log() const { return opt_.log; }
  SSL_CTX* tls_ctx() const { return tls_ctx_; }  // null: no --tls-cert, STARTTLS answers 454
  const std::string& overlong_chunk() const { return overlong_; }
  // Domain index, or -1 when the farm does not know the domain.
  int find_domain(std::string_view lower_name) const {
    auto it = domain_index_.find(lower_name);
    return it == domain_index_.end() ? -1 : it->second;
  }
  const DomainRt& domain_rt(int d) const { return domains_[d]; }
  // Greylisting (postgrey-like): the first attempt of a triplet is refused; retries pass once
  // `delay_s` seconds have gone by since that first attempt.
  Grey greylist(std::string_view key, uint32_t delay_s);
  std::string& scratch() { return scratch_; }
  void release(Session* s);
  void link(Session* s);
  void unlink(Session* s);
  uint64_t next_session_id() { return ++session_serial_; }

 private:
  static void on_connection(uv_stream_t* server, int status);
  static void on_signal(uv_signal_t* h, int signum);
  static void on_probe_timer(uv_timer_t* t);
  static void on_udp_alloc(uv_handle_t*, size_t, uv_buf_t* buf);
  static void on_servfail_recv(uv_udp_t* h, ssize_t n, const uv_buf_t* buf, const sockaddr* addr,
                               unsigned flags);
  static void on_silent_recv(uv_udp_t* h, ssize_t n, const uv_buf_t* buf, const sockaddr* addr,
                             unsigned flags);
  static void on_probe_recv(uv_udp_t* h, ssize_t n, const uv_buf_t* buf, const sockaddr* addr,
                            unsigned flags);

  bool open_dns_sockets();
  bool open_listeners();
  void send_probe();
  void on_ready();
  void write_report();
  void shutdown(int code);
  void remove_workdir() {
    if (workdir_.empty()) return;
    ::unlink((workdir_ + "/dnsmasq.conf").c_str());
    rmdir(workdir_.c_str());
    workdir_.clear();
  }
  bool write_file_atomically(const std::string& path, const std::string& text);
  bool load_tls();

  const Scenario& sc_;
  RunOptions opt_;
  std::string dns_ip_;
  uint16_t dns_port_;
  uv_loop_t loop_{};
  std::vector<HostRt> hosts_;
  std::vector<DomainRt> domains_;
  std::unordered_map<std::string, int, StringHash, std::equal_to<>> domain_index_;
  std::unordered_map<std::string, uint64_t, StringHash, std::equal_to<>> greylist_;
  Stats stats_;
  std::string overlong_;
  std::string scratch_;
  std::vector<std::unique_ptr<Session>> sessions_;  // owns every session ever made
  std::vector<Session*> free_;
  Session* live_ = nullptr;  // intrusive list of open sessions, closed at shutdown
  uint64_t session_serial_ = 0;

  uv_signal_t sig_int_{}, sig_term_{}, sig_usr1_{}, sig_chld_{};
  uv_udp_t servfail_{}, silent_{}, probe_{};
  uv_timer_t probe_timer_{};
  uint16_t probe_id_ = 0x4d58;
  // The name the readiness probe asks (DnsmasqParams::ready_name): unique to this process.
  std::string ready_name_ = "ready-" + std::to_string(getpid()) + "-" +
                            std::to_string(std::random_device{}() % 1000000) + ".mxfarm-probe";
  uint64_t probe_deadline_ = 0;
  bool ready_ = false;
  bool stopping_ = false;
  int exit_code_ = 0;
  pid_t dnsmasq_pid_ = -1;
  std::string workdir_;
  uint64_t started_ns_ = 0;
  int listeners_ = 0;
  SSL_CTX* tls_ctx_ = nullptr;

 public:
  ~Farm() { SSL_CTX_free(tls_ctx_); }
};

// ---------------------------------------------------------------------------------------------
// [SECTION] Session state

class Session {
 public:
  explicit Session(Farm* f) : farm_(f) {}
  ~Session() { tls_free(); }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  void start(int host, uv_stream_t* server);
  void close_now(bool reset);
  bool closing() const { return closing_; }

  Session* prev = nullptr;
  Session* next = nullptr;

 private:
  enum class Phase : uint8_t { Greeting, Commands, Data, Rejected };
  enum class After : uint8_t { None, Close, Stream };

  static void on_alloc(uv_handle_t* h, size_t, uv_buf_t* buf);
  static void on_read(uv_stream_t* h, ssize_t n, const uv_buf_t* buf);
  static void on_write(uv_write_t* req, int status);
  static void on_timer(uv_timer_t* t);
  static void on_closed(uv_handle_t* h);

  void reset_state();
  void begin();
  void pump();
  void pump_lines();
  void handle_line(std::string_view line);
  void on_helo(Cmd cmd, std::string_view arg);
  void on_mail(std::string_view arg);
  void on_rcpt(std::string_view arg);
  void on_data();
  void count_rcpt(std::string_view arg);
  // The host refuses the sender of this MAIL (from_, lower case; "" is <>): refuse_sender.
  bool sender_refused() const;
  void reset_transaction() {
    mail_ = false;
    rcpts_ = 0;
    accepted_ = 0;
    txn_ = -1;
  }

  // Replies: `respond` expands a template into reply_ and sends it now or after a delay.
  void respond(Rk k, Style st, After after = After::None);
  void respond_text(std::string_view tmpl, After after, bool greeting);
  void send_reply(uint32_t delay_ms, After after);
  void finish_reply();
  void apply_after(After a);
  void drop(bool reset);
  void broken(bool greeting);
  void flush();
  void resume_reading();
  void log_line(char dir, std::string_view text);
  // STARTTLS: begin_tls() after the 220 is queued; tls_input() takes ciphertext from the socket,
  // tls_pull() decrypts into in_, tls_seal() encrypts out_ into cout_.
  void begin_tls();
  bool tls_input(const char* data, size_t n);  // false: the session is closing
  size_t tls_pull();
  void tls_seal();
  void tls_free();

  Farm* farm_;
  uv_tcp_t tcp_{};
  uv_timer_t timer_{};
  uv_write_t wreq_{};
  int handles_open_ = 0;

  int host_idx_ = -1;
  const Host* host_ = nullptr;
  uint32_t client_ip_ = 0;
  char ip_[INET6_ADDRSTRLEN] = {};
  char id_[20] = {};
  PairStats* pair_ = nullptr;
  bool blocked_ = false;

  Phase phase_ = Phase::Greeting;
  bool helo_ = false, mail_ = false;
  uint32_t rcpts_ = 0, accepted_ = 0, errors_ = 0;
  // RCPTs of the whole session, and how many were answered >= 400 (for the report's peaks);
  // rcpt_reply_ is set while the reply to an RCPT is being decided.
  uint32_t session_rcpts_ = 0, session_rcpt_rejections_ = 0;
  bool rcpt_reply_ = false;
  std::string from_;
  std::string helo_name_;  // the client's EHLO/HELO argument
  int64_t txn_ = -1;       // this transaction in the report's "transactions" (run --transactions)
  std::string_view rcpt_, rcpt_domain_;

  char in_[kInCap];
  size_t len_ = 0;
  bool skip_line_ = false;
  bool reading_ = false;

  std::string reply_;  // the reply being sent (kept while delayed or dribbled)
  std::string out_;    // replies waiting for the socket
  std::string wbuf_;   // bytes of the write in flight
  bool writing_ = false;
  bool busy_ = false;  // a delayed/dribbled reply or a stream is in progress: input waits
  bool done_ = false;  // no more input is processed (closing after output)
  bool closing_ = false;
  bool close_when_drained_ = false;
  bool dribbling_ = false;
  size_t dribble_pos_ = 0;
  After pending_after_ = After::None;

  SSL* ssl_ = nullptr;  // with its two memory BIOs
  BIO* rbio_ = nullptr;
  BIO* wbio_ = nullptr;
  bool tls_on_ = false;        // the socket carries TLS from here on
  bool starttls_now_ = false;  // 220 to STARTTLS queued: switch once it is out of the input loop
  std::string cout_;           // ciphertext (and the clear-text 220 before it) for the socket
  std::string raw_;            // ciphertext read buffer

  const std::string* stream_ = nullptr;  // chunk repeated by an endless/over-long reply
  uint64_t stream_left_ = 0;
  std::string_view stream_tail_;
  size_t in_flight_stream_ = 0;
};

Farm::Farm(const Scenario& sc, const RunOptions& opt)
    : sc_(sc),
      opt_(opt),
      dns_ip_(opt.dns_ip.value_or(sc.dns.ip)),
      dns_port_(opt.dns_port.value_or(sc.dns.port)),
      hosts_(sc.hosts.size()),
      domains_(sc.domains.size()),
      stats_(sc.hosts.size(), opt.rcpt_map_cap) {
  stats_.keep_transactions(opt.transactions);
  for (size_t h = 0; h < sc.hosts.size(); ++h) {
    const Host& host = sc.hosts[h];
    HostRt& rt = hosts_[h];
    rt.ehlo = ehlo_template(host.style, host.b.pipelining, host.b.starttls);
    rt.ehlo_tls = ehlo_template(host.style, host.b.pipelining, false);
    if (host.b.broken == BrokenKind::Endless) {
      // Well-formed continuation lines (RFC 5321 section 4.2.1) that never reach a last line.
      std::string code = host.b.broken_at == Cmd::Connect ? "220-" : "250-";
      std::string line = code + host.name + " endless reply line";
      line.resize(62, '.');
      line += "\r\n";
      while (rt.endless.size() + line.size() <= kStreamChunk)
        rt.endless += line;
    }
  }
  overlong_.assign(kStreamChunk, 'x');
  for (size_t d = 0; d < sc.domains.size(); ++d) {
    const Domain& dom = sc.domains[d];
    domain_index_.emplace(dom.name, static_cast<int>(d));
    domains_[d].hosts = sc.mail_hosts(dom);
    for (const auto& [local, st] : dom.mailboxes)
      domains_[d].mailboxes.emplace(local, st);
  }
  scratch_.reserve(512);
}

Grey Farm::greylist(std::string_view key, uint32_t delay_s) {
  uint64_t now = uv_now(&loop_);
  auto it = greylist_.find(key);
  if (it == greylist_.end()) {
    greylist_.emplace(std::string(key), now);
    return Grey::First;
  }
  return now - it->second >= uint64_t{delay_s} * 1000 ? Grey::Passed : Grey::Early;
}

void Farm::link(Session* s) {
  s->prev = nullptr;
  s->next = live_;
  if (live_) live_->prev = s;
  live_ = s;
}

void Farm::unlink(Session* s) {
  if (s->prev) s->prev->next = s->next;
  if (s->next) s->next->prev = s->prev;
  if (live_ == s) live_ = s->next;
  s->prev = s->next = nullptr;
}

void Farm::release(Session* s) {
  free_.push_back(s);
}

// ---------------------------------------------------------------------------------------------
// [SECTION] connection start

void Farm::on_connection(uv_stream_t* server, int status) {
  auto* rt = static_cast<HostRt*>(server->data);
  Farm* f = rt->farm;
  if (status < 0 || f->stopping_) return;
  Session* s;
  if (f->free_.empty()) {
    f->sessions_.push_back(std::make_unique<Session>(f));
    s = f->sessions_.back().get();
  } else {
    s = f->free_.back();
    f->free_.pop_back();
  }
  s->start(rt->index, server);
}

void Session::reset_state() {
  phase_ = Phase::Greeting;
  helo_ = mail_ = false;
  rcpts_ = accepted_ = errors_ = 0;
  session_rcpts_ = session_rcpt_rejections_ = 0;
  rcpt_reply_ = false;
  from_.clear();
  helo_name_.clear();
  rcpt_ = rcpt_domain_ = {};
  len_ = 0;
  skip_line_ = reading_ = false;
  reply_.clear();
  out_.clear();
  wbuf_.clear();
  writing_ = busy_ = done_ = closing_ = close_when_drained_ = dribbling_ = false;
  dribble_pos_ = 0;
  pending_after_ = After::None;
  stream_ = nullptr;
  stream_left_ = 0;
  stream_tail_ = {};
  in_flight_stream_ = 0;
  blocked_ = false;
  txn_ = -1;
  pair_ = nullptr;
  tls_free();
}

void Session::start(int host, uv_stream_t* server) {
  reset_state();
  host_idx_ = host;
  host_ = &farm_->sc().hosts[host];
  uv_tcp_init(farm_->loop(), &tcp_);
  uv_timer_init(farm_->loop(), &timer_);
  tcp_.data = this;
  timer_.data = this;
  handles_open_ = 2;
  if (uv_accept(server, reinterpret_cast<uv_stream_t*>(&tcp_)) != 0) {
    closing_ = true;
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), on_closed);
    uv_close(reinterpret_cast<uv_handle_t*>(&timer_), on_closed);
    return;
  }
  sockaddr_storage ss{};
  int len = sizeof ss;
  uv_tcp_getpeername(&tcp_, reinterpret_cast<sockaddr*>(&ss), &len);
  client_ip_ =
      ss.ss_family == AF_INET ? ntohl(reinterpret_cast<sockaddr_in*>(&ss)->sin_addr.s_addr) : 0;
  if (ss.ss_family == AF_INET6)
    uv_ip6_name(reinterpret_cast<sockaddr_in6*>(&ss), ip_, sizeof ip_);
  else
    uv_ip4_name(reinterpret_cast<sockaddr_in*>(&ss), ip_, sizeof ip_);
  uint64_t serial = farm_->next_session_id();
  snprintf(id_, sizeof id_, "%012llx",
           static_cast<unsigned long long>((serial * 0x9E3779B97F4A7C15ull) >> 16));
  uv_tcp_nodelay(&tcp_, 1);
  farm_->link(this);
  uint64_t now = uv_now(farm_->loop());
  pair_ = &farm_->stats().open(host_idx_, client_ip_, now);
  for (const auto& c : host_->b.block_clients)
    if (c.contains(client_ip_)) blocked_ = true;
  if (farm_->log()) fprintf(stderr, "mxfarm: %s connect %s\n", host_->name.c_str(), ip_);
  reading_ = true;
  uv_read_start(reinterpret_cast<uv_stream_t*>(&tcp_), on_alloc, on_read);
  begin();
}

// What happens before the first command: limits, drops, broken or blocked greetings, banner.
void Session::begin() {
  const HostBehaviour& b = host_->b;
  const uint64_t now = uv_now(farm_->loop());
  // Connection-rate limit (like Postfix's anvil): every connection attempt counts.
  bool too_fast =
      b.rate_count > 0 && pair_->rate.add(now, uint64_t{b.rate_window_s} * 1000) > b.rate_count;
  bool too_many = b.max_conn_per_ip > 0 && pair_->level.current > b.max_conn_per_ip;
  if (too_many || too_fast) {
    farm_->stats().limit_reject(*pair_, now);
    done_ = true;
    respond(too_many ? Rk::TooManyConns : Rk::TooFastConns, host_->style, After::Close);
    flush();
    return;
  }
  if (b.drop_after == Cmd::Connect) {
    drop(b.drop_reset);
    return;
  }
  if (b.broken != BrokenKind::None && b.broken_at == Cmd::Connect) {
    broken(true);
    flush();
    return;
  }
  if (blocked_ && b.block_at == Cmd::Connect) {
    // RFC 5321 section 3.1: after a 554 greeting the server answers 503 to everything but QUIT.
    phase_ = Phase::Rejected;
    respond_text(reply_template(host_->style, Rk::BannerBlocked), After::None, true);
  } else {
    phase_ = Phase::Commands;
    respond_text(reply_template(host_->style, Rk::Banner), After::None, true);
  }
  flush();
}

// ---------------------------------------------------------------------------------------------
// [SECTION] input

void Session::on_alloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
  auto* s = static_cast<Session*>(h->data);
  if (s->tls_on_) {
    *buf = uv_buf_init(s->raw_.data(), static_cast<unsigned>(s->raw_.size()));
    return;
  }
  *buf = uv_buf_init(s->in_ + s->len_, static_cast<unsigned>(kInCap - s->len_));
}

void Session::on_read(uv_stream_t* h, ssize_t n, const uv_buf_t*) {
  auto* s = static_cast<Session*>(h->data);
  if (s->closing_) return;
  if (n < 0) {
    if (n == UV_ENOBUFS) {  // buffer full while busy: wait until input is consumed
      uv_read_stop(h);
      s->reading_ = false;
      return;
    }
    if (s->farm_->log())
      fprintf(stderr, "mxfarm: %s closed by %s\n", s->host_->name.c_str(), s->ip_);
    s->close_now(false);
    return;
  }
  if (s->tls_on_) {
    if (!s->tls_input(s->raw_.data(), static_cast<size_t>(n))) return;
  } else {
    s->len_ += static_cast<size_t>(n);
  }
  if (!s->busy_ && !s->done_)
    s->pump();
  else
    s->flush();  // handshake records
  if (!s->closing_ && s->len_ == kInCap && s->reading_) {
    uv_read_stop(h);
    s->reading_ = false;
  }
}

void Session::resume_reading() {
  if (!reading_ && !closing_ && len_ < kInCap) {
    reading_ = true;
    uv_read_start(reinterpret_cast<uv_stream_t*>(&tcp_), on_alloc, on_read);
  }
}

// Processes complete lines until a reply must wait (delay, tarpit, stream) or input runs out.
void Session::pump() {
  for (;;) {
    pump_lines();
    if (starttls_now_ && !busy_ && !closing_) {
      // RFC 3207 section 4.2 (CVE-2011-0411): commands pipelined after STARTTLS arrived in
      // clear text; they are thrown away, never answered inside TLS.
      starttls_now_ = false;
      len_ = 0;
      skip_line_ = false;
      begin_tls();
      break;
    }
    // Plaintext that OpenSSL decrypted beyond what in_ could hold.
    if (tls_on_ && !busy_ && !done_ && !closing_ && len_ < kInCap && tls_pull() > 0) continue;
    break;
  }
  flush();
  if (!busy_ && !done_) resume_reading();
}

void Session::pump_lines() {
  size_t start = 0;
  while (!busy_ && !done_ && !closing_ && !starttls_now_) {
    const char* base = in_ + start;
    const void* nl = memchr(base, '\n', len_ - start);
    if (!nl) {
      if (start == 0 && len_ == kInCap) {
        // A line longer than we keep: drop it, and answer once it ends (outside DATA).
        skip_line_ = true;
        len_ = 0;
      }
      break;
    }
    size_t end = static_cast<size_t>(static_cast<const char*>(nl) - in_);
    std::string_view line(base, end - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    start = end + 1;
    if (skip_line_) {
      skip_line_ = false;
      if (phase_ != Phase::Data) respond(Rk::LineTooLong, host_->style);
      continue;
    }
    handle_line(line);
  }
  if (start > 0 && !closing_) {
    memmove(in_, in_ + start, len_ - start);
    len_ -= start;
  }
}

// ---------------------------------------------------------------------------------------------
// [SECTION] commands

void Session::handle_line(std::string_view line) {
  if (phase_ == Phase::Data) {
    // RFC 5321 section 4.1.1.4: the data ends with a line holding a single ".".
    if (line == ".") {
      phase_ = Phase::Commands;
      reset_transaction();
      respond(Rk::DataOk, host_->style);
    }
    return;
  }
  if (farm_->log()) log_line('C', line);
  std::string_view arg;
  Cmd cmd = parse_command(line, &arg);
  ++pair_->commands[static_cast<int>(cmd)];
  if (cmd == Cmd::Data) ++pair_->data;
  if (cmd == Cmd::Rcpt) {  // every RCPT received, whatever the answer
    count_rcpt(arg);
    pair_->session_rcpts(++session_rcpts_);
  }
  rcpt_reply_ = cmd == Cmd::Rcpt;  // every command's reply is decided before this returns
  const HostBehaviour& b = host_->b;
  // Postfix checks the hard error limit before each command (smtpd_hard_error_limit).
  if (b.hard_error_limit > 0 && errors_ >= b.hard_error_limit) {
    done_ = true;
    respond(Rk::TooManyErrors, host_->style, After::Close);
    return;
  }
  if (b.drop_after == cmd) {
    drop(b.drop_reset);
    return;
  }
  if (b.broken != BrokenKind::None && b.broken_at == cmd) {
    broken(false);
    return;
  }
  if (phase_ == Phase::Rejected) {
    if (cmd == Cmd::Quit) {
      done_ = true;
      respond(Rk::QuitOk, host_->style, After::Close);
    } else {
      respond(Rk::BadSequence, host_->style);
    }
    return;
  }
  switch (cmd) {
    case Cmd::Helo:
    case Cmd::Ehlo:
      on_helo(cmd, arg);
      break;
    case Cmd::Mail:
      on_mail(arg);
      break;
    case Cmd::Rcpt:
      on_rcpt(arg);
      break;
    case Cmd::Data:
      on_data();
      break;
    case Cmd::Rset:
      reset_transaction();
      respond(Rk::RsetOk, host_->style);
      break;
    case Cmd::Noop:
      respond(Rk::NoopOk, host_->style);
      break;
    case Cmd::Quit:
      done_ = true;
      respond(Rk::QuitOk, host_->style, After::Close);
      break;
    case Cmd::Vrfy:
      respond(Rk::Vrfy, host_->style);
      break;
    case Cmd::StartTls:
      if (!b.starttls) {
        respond(Rk::NotImplemented, host_->style);
      } else if (!farm_->tls_ctx()) {
        // No certificate given: answered like a server whose certificate is broken, and the
        // client goes on in clear text (RFC 3207 section 4).
        respond(Rk::TlsUnavailable, host_->style);
      } else if (tls_on_) {
        respond(Rk::TlsActive, host_->style);
      } else if (mail_) {
        respond(Rk::BadSequence, host_->style);  // Postfix: "MAIL transaction in progress"
      } else {
        respond(Rk::TlsReady, host_->style);
        starttls_now_ = true;  // the handshake starts once the 220 is queued
      }
      break;
    case Cmd::Connect:
    case Cmd::Other:
      respond(Rk::Unrecognized, host_->style);
      break;
  }
}

void Session::on_helo(Cmd cmd, std::string_view arg) {
  if (cmd == Cmd::Ehlo && !host_->b.ehlo) {  // an old server: the client must fall back to HELO
    respond(Rk::Unrecognized, host_->style);
    return;
  }
  if (arg.empty()) {
    respond(Rk::SyntaxHelo, host_->style);
    return;
  }
  if (blocked_ && host_->b.block_at == Cmd::Helo) {
    respond(Rk::Blocked, host_->style);
    return;
  }
  // RFC 5321 section 4.1.4: EHLO/HELO resets any transaction in progress.
  reset_transaction();
  helo_ = true;
  helo_name_.assign(arg);
  pair_->helo(arg);
  if (cmd == Cmd::Ehlo) {
    const HostRt& rt = farm_->host_rt(host_idx_);
    respond_text(tls_on_ ? rt.ehlo_tls : rt.ehlo, After::None, false);
  } else {
    respond(Rk::Helo, host_->style);
  }
}

void Session::on_mail(std::string_view arg) {
  if (!helo_) return respond(Rk::NeedHelo, host_->style);
  if (host_->b.tls_required && !tls_on_) return respond(Rk::TlsRequired, host_->style);
  if (mail_) return respond(Rk::NestedMail, host_->style);
  std::string_view path;
  if (!parse_path_arg(arg, "FROM:", &path)) return respond(Rk::SyntaxMail, host_->style);
  if (blocked_ && host_->b.block_at == Cmd::Mail) return respond(Rk::Blocked, host_->style);
  from_.resize(path.size());
  lower_into(path, from_.data(), from_.size());
  if (host_->b.refuse_sender_at == Cmd::Mail && sender_refused())
    return respond(from_.empty() ? Rk::NullSenderRefused : Rk::SenderRefused, host_->style);
  mail_ = true;
  rcpts_ = accepted_ = 0;
  txn_ = farm_->stats().transaction(host_idx_, client_ip_, from_);
  respond(Rk::MailOk, host_->style);
}

void Session::on_rcpt(std::string_view arg) {
  if (!mail_) return respond(Rk::NeedMail, host_->style);
  std::string_view path, local, domain;
  if (!parse_path_arg(arg, "TO:", &path) || !split_mailbox(path, &local, &domain))
    return respond(Rk::SyntaxRcpt, host_->style);
  char lbuf[512];
  std::string_view addr = lower_into(path, lbuf, sizeof lbuf);
  if (addr.empty()) return respond(Rk::SyntaxRcpt, host_->style);
  std::string_view laddr_local = addr.substr(0, local.size());
  std::string_view ldomain = addr.substr(local.size() + 1);
  rcpt_ = path;
  rcpt_domain_ = domain;
  const HostBehaviour& b = host_->b;
  if (b.max_rcpts > 0 && rcpts_ >= b.max_rcpts) return respond(Rk::TooManyRcpts, host_->style);
  ++rcpts_;
  if (blocked_ && b.block_at == Cmd::Rcpt) return respond(Rk::Blocked, host_->style);
  if (b.reject_non_fqdn_helo && !fqdn_or_literal(helo_name_)) {
    // Postfix's words (smtpd_check.c), sent at RCPT as smtpd_delay_reject = yes does. Braces
    // in the echoed name would read as template variables: they cannot be in a valid one.
    std::string t =
        "504 5.5.2 <" + helo_name_ + ">: Helo command rejected: need fully-qualified hostname";
    std::replace(t.begin(), t.end(), '{', '?');
    return respond_text(t, After::None, false);
  }
  // Postfix with smtpd_delay_reject (its default) applies the sender restrictions at RCPT.
  if (b.refuse_sender_at == Cmd::Rcpt && sender_refused())
    return respond(Rk::SenderRefused, host_->style);
  int d = farm_->find_domain(ldomain);
  const DomainRt* drt = d >= 0 ? &farm_->domain_rt(d) : nullptr;
  bool served = false;
  if (drt)
    for (int h : drt->hosts)
      served |= h == host_idx_;
  if (!served) return respond(Rk::RelayDenied, host_->style);
  const Domain& dom = farm_->sc().domains[d];
  uint32_t grey = dom.greylist_delay_s ? dom.greylist_delay_s : b.greylist_delay_s;
  if (grey > 0) {
    std::string& key = farm_->scratch();
    key.assign(ip_);
    key += '/';
    key += from_;
    key += '/';
    key += addr;
    switch (farm_->greylist(key, grey)) {
      case Grey::First:
        ++pair_->greylist_triplets;
        return respond(Rk::Greylisted, dom.style);
      case Grey::Early:
        ++pair_->greylist_early;
        return respond(Rk::Greylisted, dom.style);
      case Grey::Passed:
        ++pair_->greylist_passed;
        break;
    }
  }
  auto it = drt->mailboxes.find(laddr_local);
  if (it == drt->mailboxes.end()) {
    if (!dom.catch_all) return respond(Rk::RcptUnknown, dom.style);
    ++accepted_;
    return respond(Rk::RcptOk, dom.style);
  }
  switch (it->second) {
    case MailboxStatus::Ok:
      ++accepted_;
      return respond(Rk::RcptOk, dom.style);
    case MailboxStatus::Full:
      return respond(Rk::RcptFull, dom.style);
    case MailboxStatus::FullPerm:
      return respond(Rk::RcptFullPerm, dom.style);
    case MailboxStatus::Disabled:
      return respond(Rk::RcptDisabled, dom.style);
  }
}

bool Session::sender_refused() const {
  const HostBehaviour& b = host_->b;
  if (from_.empty()) return b.refuse_null_sender;
  const size_t at = from_.rfind('@');
  if (at == std::string::npos) return false;
  const std::string_view domain = std::string_view(from_).substr(at + 1);
  for (const auto& d : b.refuse_sender_domains)
    if (d == domain) return true;
  return false;
}

void Session::count_rcpt(std::string_view arg) {
  std::string_view path, local, domain;
  char lbuf[512];
  if (!parse_path_arg(arg, "TO:", &path) || !split_mailbox(path, &local, &domain)) return;
  std::string_view addr = lower_into(path, lbuf, sizeof lbuf);
  if (!addr.empty()) farm_->stats().rcpt(addr, addr.substr(local.size() + 1));
  if (!addr.empty() && mail_) farm_->stats().transaction_rcpt(txn_, addr);
}

void Session::on_data() {
  if (!mail_) return respond(Rk::NeedMail, host_->style);
  if (accepted_ == 0) return respond(Rk::DataNoRcpt, host_->style);
  phase_ = Phase::Data;
  respond(Rk::DataStart, host_->style);
}

// ---------------------------------------------------------------------------------------------
// [SECTION] replies and output

void Session::respond(Rk k, Style st, After after) {
  respond_text(reply_template(st, k), after, false);
}

void Session::respond_text(std::string_view tmpl, After after, bool greeting) {
  reply_.clear();
  ReplyVars v{host_->name, ip_, rcpt_, rcpt_domain_, from_, id_};
  int code = expand_reply(reply_, tmpl, v);
  pair_->reply(code);
  if (rcpt_reply_) {
    rcpt_reply_ = false;
    if (code >= 400) pair_->session_rcpt_rejections(++session_rcpt_rejections_);
  }
  const HostBehaviour& b = host_->b;
  uint32_t delay = greeting ? b.banner_delay_ms : b.reply_delay_ms;
  // Postfix's smtpd_error_sleep_time: once the client has made soft_error_limit errors, every
  // reply is delayed.
  if (b.soft_error_limit > 0 && errors_ >= b.soft_error_limit) delay += b.error_sleep_ms;
  if (b.capacity_per_s > 0 || b.stall_every_s > 0)
    delay += farm_->host_rt(host_idx_).extra_wait(b, farm_->elapsed_ms(), delay);
  if (code >= 400) ++errors_;
  if (farm_->log()) log_line('S', std::string_view(reply_).substr(0, reply_.size() - 2));
  send_reply(delay, after);
}

void Session::send_reply(uint32_t delay_ms, After after) {
  if (host_->b.tarpit_byte_ms > 0) {
    busy_ = dribbling_ = true;
    dribble_pos_ = 0;
    pending_after_ = after;
    uv_timer_start(&timer_, on_timer, host_->b.tarpit_byte_ms, host_->b.tarpit_byte_ms);
    return;
  }
  if (delay_ms > 0) {
    busy_ = true;
    pending_after_ = after;
    uv_timer_start(&timer_, on_timer, delay_ms, 0);
    return;
  }
  out_ += reply_;
  apply_after(after);
}

void Session::on_timer(uv_timer_t* t) {
  auto* s = static_cast<Session*>(t->data);
  if (s->closing_) return;
  if (s->dribbling_) {  // tarpit: one byte per tick
    s->out_ += s->reply_[s->dribble_pos_++];
    if (s->dribble_pos_ < s->reply_.size()) {
      s->flush();
      return;
    }
    uv_timer_stop(t);
    s->dribbling_ = false;
  } else {
    s->out_ += s->reply_;
  }
  s->finish_reply();
}

void Session::finish_reply() {
  busy_ = false;
  apply_after(pending_after_);
  pending_after_ = After::None;
  if (!busy_ && !done_) {
    pump();  // flushes
  } else {
    flush();
  }
}

void Session::apply_after(After a) {
  switch (a) {
    case After::None:
      break;
    case After::Close:
      done_ = true;
      close_when_drained_ = true;
      break;
    case After::Stream:
      busy_ = done_ = true;
      close_when_drained_ = true;
      break;
  }
}

// Closes (FIN) or resets (RST, SO_LINGER 0) instead of answering; earlier replies still go out.
void Session::drop(bool reset) {
  done_ = true;
  if (farm_->log())
    fprintf(stderr, "mxfarm: %s %s %s\n", host_->name.c_str(), reset ? "reset" : "close", ip_);
  if (!reset) {
    close_when_drained_ = true;
    flush();
    return;
  }
  if (tls_on_) tls_seal();
  std::string& wire = tls_on_ ? cout_ : out_;
  if (!wire.empty() && !writing_) {
    uv_buf_t b = uv_buf_init(wire.data(), static_cast<unsigned>(wire.size()));
    uv_try_write(reinterpret_cast<uv_stream_t*>(&tcp_), &b, 1);
  }
  close_now(true);
}

// A reply that breaks the protocol, instead of the normal one.
void Session::broken(bool greeting) {
  const HostBehaviour& b = host_->b;
  ++pair_->broken_replies;
  rcpt_reply_ = false;  // no reply code: not a rejection
  switch (b.broken) {
    case BrokenKind::None:
      break;
    case BrokenKind::Garbage:
      // Garbage, then the server goes on as if it had answered normally.
      reply_.assign(kGarbage);
      if (farm_->log()) log_line('S', "<garbage>");
      if (greeting) phase_ = Phase::Commands;
      send_reply(greeting ? b.banner_delay_ms : b.reply_delay_ms, After::None);
      break;
    case BrokenKind::Endless:
      // Continuation lines until the client gives up or broken_bytes are out, then close.
      if (farm_->log()) log_line('S', "<endless reply>");
      stream_ = &farm_->host_rt(host_idx_).endless;
      stream_left_ = b.broken_bytes;
      stream_tail_ = {};
      apply_after(After::Stream);
      break;
    case BrokenKind::Overlong:
      // One line of broken_bytes octets (RFC 5321 section 4.5.3.1.5 allows 512), then close.
      if (farm_->log()) log_line('S', "<over-long line>");
      out_ += greeting ? "220 " : "250 ";
      stream_ = &farm_->overlong_chunk();
      stream_left_ = b.broken_bytes;
      stream_tail_ = "\r\n";
      apply_after(After::Stream);
      break;
  }
}

void Session::flush() {
  if (writing_ || closing_) return;
  auto* stream = reinterpret_cast<uv_stream_t*>(&tcp_);
  if (tls_on_) tls_seal();
  std::string& wire = tls_on_ ? cout_ : out_;
  if (!wire.empty()) {
    uv_buf_t b = uv_buf_init(wire.data(), static_cast<unsigned>(wire.size()));
    int n = uv_try_write(stream, &b, 1);
    if (n == static_cast<int>(wire.size())) {
      wire.clear();
    } else if (n >= 0 || n == UV_EAGAIN) {
      if (n > 0) wire.erase(0, static_cast<size_t>(n));
      wbuf_.swap(wire);
      wire.clear();
      writing_ = true;
      in_flight_stream_ = 0;
      uv_buf_t w = uv_buf_init(wbuf_.data(), static_cast<unsigned>(wbuf_.size()));
      uv_write(&wreq_, stream, &w, 1, on_write);
      return;
    } else {
      close_now(false);
      return;
    }
  }
  if (stream_ && (stream_left_ > 0 || !stream_tail_.empty())) {
    uv_buf_t w;
    if (stream_left_ > 0) {
      in_flight_stream_ = std::min<uint64_t>(stream_left_, stream_->size());
      w = uv_buf_init(const_cast<char*>(stream_->data()), static_cast<unsigned>(in_flight_stream_));
    } else {
      in_flight_stream_ = 0;
      w = uv_buf_init(const_cast<char*>(stream_tail_.data()),
                      static_cast<unsigned>(stream_tail_.size()));
      stream_tail_ = {};
    }
    writing_ = true;
    uv_write(&wreq_, stream, &w, 1, on_write);
    return;
  }
  if (close_when_drained_) close_now(false);
}

void Session::on_write(uv_write_t* req, int status) {
  auto* s = static_cast<Session*>(req->handle->data);
  s->writing_ = false;
  s->wbuf_.clear();
  if (s->closing_) return;
  if (status < 0) {
    s->close_now(false);
    return;
  }
  s->stream_left_ -= s->in_flight_stream_;
  s->in_flight_stream_ = 0;
  s->flush();
}

void Session::log_line(char dir, std::string_view text) {
  fprintf(stderr, "mxfarm: %s %s %c: %.*s\n", host_->name.c_str(), ip_, dir,
          static_cast<int>(std::min<size_t>(text.size(), 300)), text.data());
}

// ---------------------------------------------------------------------------------------------
// [SECTION] TLS

void Session::begin_tls() {
  ssl_ = SSL_new(farm_->tls_ctx());
  rbio_ = BIO_new(BIO_s_mem());
  wbio_ = BIO_new(BIO_s_mem());
  if (!ssl_ || !rbio_ || !wbio_) {
    if (!ssl_) {
      BIO_free(rbio_);
      BIO_free(wbio_);
    }
    close_now(false);
    return;
  }
  BIO_set_mem_eof_return(rbio_, -1);
  BIO_set_mem_eof_return(wbio_, -1);
  SSL_set_bio(ssl_, rbio_, wbio_);
  SSL_set_accept_state(ssl_);
  raw_.resize(kTlsRead);
  cout_ = std::move(out_);  // the 220, if still unwritten, goes out in clear text first
  out_.clear();
  tls_on_ = true;
  if (farm_->log()) fprintf(stderr, "mxfarm: %s %s TLS handshake\n", host_->name.c_str(), ip_);
}

bool Session::tls_input(const char* data, size_t n) {
  BIO_write(rbio_, data, static_cast<int>(n));
  if (!SSL_is_init_finished(ssl_)) {
    ERR_clear_error();
    int r = SSL_do_handshake(ssl_);
    if (r != 1) {
      int e = SSL_get_error(ssl_, r);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return true;
      ++pair_->tls_failures;
      if (farm_->log()) {
        char buf[256];
        ERR_error_string_n(ERR_peek_error(), buf, sizeof buf);
        fprintf(stderr, "mxfarm: %s %s TLS handshake failed: %s\n", host_->name.c_str(), ip_, buf);
      }
      ERR_clear_error();
      // The alert goes out, then the connection closes.
      done_ = true;
      close_when_drained_ = true;
      flush();
      return false;
    }
    ++pair_->tls_handshakes;
    if (SSL_session_reused(ssl_)) ++pair_->tls_resumed;
    // RFC 3207 section 4.2: the server forgets what the client said before TLS.
    helo_ = false;
    reset_transaction();
    if (farm_->log())
      fprintf(stderr, "mxfarm: %s %s TLS %s %s\n", host_->name.c_str(), ip_, SSL_get_version(ssl_),
              SSL_CIPHER_get_name(SSL_get_current_cipher(ssl_)));
  }
  tls_pull();
  return !closing_;
}

size_t Session::tls_pull() {
  if (!ssl_ || !SSL_is_init_finished(ssl_)) return 0;
  size_t got = 0;
  while (len_ < kInCap) {
    ERR_clear_error();
    int r = SSL_read(ssl_, in_ + len_, static_cast<int>(kInCap - len_));
    if (r > 0) {
      len_ += static_cast<size_t>(r);
      got += static_cast<size_t>(r);
      continue;
    }
    int e = SSL_get_error(ssl_, r);
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
      ERR_clear_error();
      done_ = true;  // close_notify or a broken record: nothing more is read
      close_when_drained_ = true;
    }
    break;
  }
  return got;
}

void Session::tls_seal() {
  if (!out_.empty()) {
    SSL_write(ssl_, out_.data(), static_cast<int>(out_.size()));  // a memory BIO takes it all
    out_.clear();
  }
  size_t n = BIO_ctrl_pending(wbio_);
  if (n == 0) return;
  size_t at = cout_.size();
  cout_.resize(at + n);
  int got = BIO_read(wbio_, cout_.data() + at, static_cast<int>(n));
  cout_.resize(at + static_cast<size_t>(got > 0 ? got : 0));
}

void Session::tls_free() {
  SSL_free(ssl_);  // and its BIOs
  ssl_ = nullptr;
  rbio_ = wbio_ = nullptr;
  tls_on_ = starttls_now_ = false;
  cout_.clear();
  std::string().swap(raw_);
}

// ---------------------------------------------------------------------------------------------
// [SECTION] closing

void Session::close_now(bool reset) {
  if (closing_) return;
  closing_ = done_ = true;
  tls_free();
  uv_timer_stop(&timer_);
  farm_->stats().close(*pair_);
  farm_->unlink(this);
  if (!reset || uv_tcp_close_reset(&tcp_, on_closed) != 0)
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), on_closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), on_closed);
}

void Session::on_closed(uv_handle_t* h) {
  auto* s = static_cast<Session*>(h->data);
  if (--s->handles_open_ == 0) s->farm_->release(s);
}

// ---------------------------------------------------------------------------------------------
// [SECTION] DNS sockets

alignas(8) char g_udp_buf[4096];

void Farm::on_udp_alloc(uv_handle_t*, size_t, uv_buf_t* buf) {
  *buf = uv_buf_init(g_udp_buf, sizeof g_udp_buf);
}

void Farm::on_servfail_recv(uv_udp_t* h, ssize_t n, const uv_buf_t* buf, const sockaddr* addr,
                            unsigned) {
  if (n <= 0 || !addr) return;
  uint8_t out[1024];
  size_t len = build_servfail(reinterpret_cast<const uint8_t*>(buf->base), static_cast<size_t>(n),
                              out, sizeof out);
  if (len == 0) return;
  uv_buf_t b = uv_buf_init(reinterpret_cast<char*>(out), static_cast<unsigned>(len));
  uv_udp_try_send(h, &b, 1, addr);
}

void Farm::on_silent_recv(uv_udp_t*, ssize_t, const uv_buf_t*, const sockaddr*, unsigned) {
  // Never answers: the lookup times out at the client (dnsmasq keeps waiting for us).
}

bool Farm::open_dns_sockets() {
  sockaddr_in a{};
  uv_ip4_addr(dns_ip_.c_str(), 0, &a);
  for (uv_udp_t* u : {&servfail_, &silent_, &probe_}) {
    uv_udp_init(&loop_, u);
    u->data = this;
  }
  for (uv_udp_t* u : {&servfail_, &silent_, &probe_}) {
    int r = uv_udp_bind(u, reinterpret_cast<const sockaddr*>(&a), 0);
    if (r != 0) {
      fprintf(stderr, "mxfarm: bind UDP %s: %s\n", dns_ip_.c_str(), uv_strerror(r));
      return false;
    }
  }
  uv_udp_recv_start(&servfail_, on_udp_alloc, on_servfail_recv);
  uv_udp_recv_start(&silent_, on_udp_alloc, on_silent_recv);
  uv_udp_recv_start(&probe_, on_udp_alloc, on_probe_recv);
  return true;
}

static uint16_t udp_port(uv_udp_t* u) {
  sockaddr_in a{};
  int len = sizeof a;
  uv_udp_getsockname(u, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

bool Farm::open_listeners() {
  for (size_t h = 0; h < sc_.hosts.size(); ++h) {
    const Host& host = sc_.hosts[h];
    if (!host.b.listen) continue;
    HostRt& rt = hosts_[h];
    rt.farm = this;
    rt.index = static_cast<int>(h);
    for (int v6 = 0; v6 < 2; ++v6) {
      if (v6 ? host.ip6.empty() : !host.ipv4) continue;
      uv_tcp_t& l = v6 ? rt.listener6 : rt.listener;
      uv_tcp_init(&loop_, &l);
      l.data = &rt;
      (v6 ? rt.listening6 : rt.listening) = true;
      sockaddr_storage a{};
      if (v6)
        uv_ip6_addr(host.ip6.c_str(), host.port, reinterpret_cast<sockaddr_in6*>(&a));
      else
        uv_ip4_addr(host.ip.c_str(), host.port, reinterpret_cast<sockaddr_in*>(&a));
      int r = uv_tcp_bind(&l, reinterpret_cast<const sockaddr*>(&a), v6 ? UV_TCP_IPV6ONLY : 0);
      if (r == 0) r = uv_listen(reinterpret_cast<uv_stream_t*>(&l), 1024, on_connection);
      if (r != 0) {
        const std::string& ip = v6 ? "[" + host.ip6 + "]" : host.ip;
        fprintf(stderr, "mxfarm: listen on %s:%u (%s): %s\n", ip.c_str(), host.port,
                host.name.c_str(), uv_strerror(r));
        return false;
      }
      ++listeners_;
    }
  }
  return true;
}

// Readiness: dnsmasq is up once it answers a real query (any answer will do).
void Farm::send_probe() {
  uint8_t q[300];
  size_t n = build_dns_query(q, sizeof q, probe_id_, ready_name_, 1);
  sockaddr_in a{};
  uv_ip4_addr(dns_ip_.c_str(), dns_port_, &a);
  uv_buf_t b = uv_buf_init(reinterpret_cast<char*>(q), static_cast<unsigned>(n));
  uv_udp_try_send(&probe_, &b, 1, reinterpret_cast<const sockaddr*>(&a));
}

void Farm::on_probe_timer(uv_timer_t* t) {
  auto* f = static_cast<Farm*>(t->data);
  if (f->ready_ || f->stopping_) return;
  if (uv_now(&f->loop_) >= f->probe_deadline_) {
    fprintf(stderr, "mxfarm: dnsmasq did not answer on %s:%u within %u ms\n", f->dns_ip_.c_str(),
            f->dns_port_, f->opt_.ready_timeout_ms);
    f->shutdown(1);
    return;
  }
  f->send_probe();
}

void Farm::on_probe_recv(uv_udp_t* h, ssize_t n, const uv_buf_t* buf, const sockaddr*, unsigned) {
  auto* f = static_cast<Farm*>(h->data);
  if (n < 12 || f->ready_ || f->stopping_) return;
  auto* p = reinterpret_cast<const uint8_t*>(buf->base);
  if (((p[0] << 8) | p[1]) != f->probe_id_ || (p[2] & 0x80) == 0) return;
  // Only our own dnsmasq has an address for ready_name_: an answer without one (NXDOMAIN,
  // REFUSED) comes from another server on this port, and ours will fail to bind and exit.
  const int rcode = p[3] & 0x0f, answers = (p[6] << 8) | p[7];
  if (rcode != 0 || answers == 0) return;
  f->on_ready();
}

void Farm::on_ready() {
  ready_ = true;
  remove_workdir();  // dnsmasq has read its configuration: leave nothing behind, even on kill -9
  uv_timer_stop(&probe_timer_);
  uv_udp_recv_stop(&probe_);
  char line[128];
  snprintf(line, sizeof line, "ready dns=%s:%u listeners=%d", dns_ip_.c_str(), dns_port_,
           listeners_);
  printf("%s\n", line);
  fflush(stdout);
  if (!opt_.ready_file.empty()) write_file_atomically(opt_.ready_file, std::string(line) + "\n");
  if (opt_.log) fprintf(stderr, "mxfarm: ready after %.1f ms\n", (uv_hrtime() - started_ns_) / 1e6);
}

// ---------------------------------------------------------------------------------------------
// [SECTION] signals and report

bool Farm::write_file_atomically(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream o(tmp, std::ios::trunc);
    o << text;
    if (!o) {
      fprintf(stderr, "mxfarm: cannot write %s\n", tmp.c_str());
      return false;
    }
  }
  return rename(tmp.c_str(), path.c_str()) == 0;
}

bool Farm::load_tls() {
  if (opt_.tls_cert.empty()) return true;
  tls_ctx_ = SSL_CTX_new(TLS_server_method());
  if (tls_ctx_ && SSL_CTX_use_certificate_chain_file(tls_ctx_, opt_.tls_cert.c_str()) == 1 &&
      SSL_CTX_use_PrivateKey_file(tls_ctx_, opt_.tls_key.c_str(), SSL_FILETYPE_PEM) == 1 &&
      SSL_CTX_check_private_key(tls_ctx_) == 1) {
    SSL_CTX_set_mode(tls_ctx_, SSL_MODE_RELEASE_BUFFERS);
    if (opt_.tls_no_tickets) {  // like a server without resumption: no TLS 1.3 tickets, no 1.2
      SSL_CTX_set_num_tickets(tls_ctx_, 0);
      SSL_CTX_set_options(tls_ctx_, SSL_OP_NO_TICKET);
      SSL_CTX_set_session_cache_mode(tls_ctx_, SSL_SESS_CACHE_OFF);
    }
    return true;
  }
  char buf[256];
  ERR_error_string_n(ERR_peek_error(), buf, sizeof buf);
  fprintf(stderr, "mxfarm: --tls-cert %s / --tls-key %s: %s\n", opt_.tls_cert.c_str(),
          opt_.tls_key.c_str(), buf);
  return false;
}

void Farm::write_report() {
  uint64_t up = (uv_hrtime() - started_ns_) / 1'000'000;
  std::string text = stats_.report(sc_, up).dump(1) + "\n";
  if (opt_.report_path.empty()) {
    fputs(text.c_str(), stderr);
  } else {
    write_file_atomically(opt_.report_path, text);
  }
}

void Farm::on_signal(uv_signal_t* h, int signum) {
  auto* f = static_cast<Farm*>(h->data);
  if (signum == SIGUSR1) {
    f->write_report();
  } else if (signum == SIGCHLD) {
    int status = 0;
    if (f->dnsmasq_pid_ > 0 && waitpid(f->dnsmasq_pid_, &status, WNOHANG) == f->dnsmasq_pid_) {
      f->dnsmasq_pid_ = -1;
      if (!f->stopping_) {
        fprintf(stderr, "mxfarm: dnsmasq exited (%s %d)\n", WIFEXITED(status) ? "status" : "signal",
                WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        f->shutdown(1);
      }
    }
  } else {
    f->shutdown(0);
  }
}

void Farm::shutdown(int code) {
  if (stopping_) return;
  stopping_ = true;
  exit_code_ = code;
  write_report();
  stop_child(dnsmasq_pid_);
  dnsmasq_pid_ = -1;
  // Close every handle; uv_run returns once their callbacks have run.
  while (live_)
    live_->close_now(false);
  for (auto& rt : hosts_) {
    if (rt.listening) uv_close(reinterpret_cast<uv_handle_t*>(&rt.listener), nullptr);
    if (rt.listening6) uv_close(reinterpret_cast<uv_handle_t*>(&rt.listener6), nullptr);
  }
  for (uv_signal_t* s : {&sig_int_, &sig_term_, &sig_usr1_, &sig_chld_})
    uv_close(reinterpret_cast<uv_handle_t*>(s), nullptr);
  for (uv_udp_t* u : {&servfail_, &silent_, &probe_})
    if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(u)))
      uv_close(reinterpret_cast<uv_handle_t*>(u), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&probe_timer_), nullptr);
}

int Farm::run() {
  started_ns_ = uv_hrtime();
  uv_loop_init(&loop_);
  stats_.start(uv_now(&loop_));
  signal(SIGPIPE, SIG_IGN);
  struct {
    uv_signal_t* h;
    int sig;
  } sigs[] = {
      {&sig_int_, SIGINT}, {&sig_term_, SIGTERM}, {&sig_usr1_, SIGUSR1}, {&sig_chld_, SIGCHLD}};
  for (auto& s : sigs) {
    uv_signal_init(&loop_, s.h);
    s.h->data = this;
    uv_signal_start(s.h, on_signal, s.sig);
  }
  uv_timer_init(&loop_, &probe_timer_);
  probe_timer_.data = this;

  bool ok = open_dns_sockets();
  if (ok) {
    char tmpl[] = "/tmp/mxfarm.XXXXXX";
    if (!mkdtemp(tmpl)) {
      perror("mxfarm: mkdtemp");
      ok = false;
    } else {
      workdir_ = tmpl;
    }
  }
  if (ok) {
    DnsmasqParams p{dns_ip_,      dns_port_,  udp_port(&servfail_), udp_port(&silent_),
                    opt_.log_dns, ready_name_};
    std::string conf = workdir_ + "/dnsmasq.conf";
    std::ofstream(conf) << dnsmasq_config(sc_, p);
    std::string err;
    dnsmasq_pid_ = spawn_dnsmasq(opt_.dnsmasq, conf, &err);
    if (dnsmasq_pid_ < 0) {
      fprintf(stderr, "mxfarm: %s\n", err.c_str());
      ok = false;
    }
  }
  ok = ok && load_tls() && open_listeners();
  if (ok) {
    probe_deadline_ = uv_now(&loop_) + opt_.ready_timeout_ms;
    uv_timer_start(&probe_timer_, on_probe_timer, 0, 20);
  } else {
    exit_code_ = 1;
    shutdown(1);
  }
  uv_run(&loop_, UV_RUN_DEFAULT);
  remove_workdir();
  int r = uv_loop_close(&loop_);
  if (r != 0) fprintf(stderr, "mxfarm: loop close: %s\n", uv_strerror(r));
  return exit_code_;
}

}  // namespace

int run_farm(const Scenario& sc, const RunOptions& opt) {
  Farm f(sc, opt);
  return f.run();
}

}  // namespace mxfarm
