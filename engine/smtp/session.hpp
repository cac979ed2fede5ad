// Sans-I/O SMTP client session for address verification: banner, EHLO (HELO fallback), STARTTLS
// (RFC 3207) when configured, MAIL FROM, RCPT TO for any number of recipients in batches
// separated by RSET, QUIT. It never sends DATA. TLS itself is the owner's job: the session says
// when to start it (want_tls()) and hears when it is up; it only ever sees plaintext.
// The owner feeds it events (connected, bytes, timer expiry, closed) and carries out its answers
// (bytes to write, one deadline to arm, close); it owns no socket and no timer (nghttp2 shape).
#pragma once

#include <array>
#include <bitset>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.hpp"
#include "smtp/reply_parser.hpp"
#include "smtp/types.hpp"

namespace mxp::smtp {

// All times are std::chrono::steady_clock time points supplied by the caller ("now"), so tests
// drive the clock by hand and the session never reads a clock itself.
using Clock = core::Clock;
using TimePoint = Clock::time_point;
// EHLO keywords we look for (RFC 5321 §4.1.1.1 ehlo-line; keywords are case-insensitive).
enum class Capability : uint8_t {
  Pipelining,           // RFC 2920
  Size,                 // RFC 1870
  StartTls,             // RFC 3207
  SmtpUtf8,             // RFC 6531
  EnhancedStatusCodes,  // RFC 2034
  EightBitMime,         // RFC 6152
};
inline constexpr int kCapabilityCount = 6;
using Capabilities = std::bitset<kCapabilityCount>;
inline constexpr std::array<std::string_view, kCapabilityCount> kCapabilityNames = {
    "PIPELINING", "SIZE", "STARTTLS", "SMTPUTF8", "ENHANCEDSTATUSCODES", "8BITMIME"};
constexpr std::string_view to_string(Capability c) {
  return kCapabilityNames[static_cast<int>(c)];
}
inline bool has(const Capabilities& caps, Capability c) {
  return caps.test(static_cast<int>(c));
}

// Shared by many sessions (a session keeps a pointer: the config must outlive it).
struct SessionConfig {
  std::string helo_name;  // EHLO/HELO argument, e.g. "probe.example.net" or "[192.0.2.1]"
  std::string mail_from;  // reverse-path; empty means the null sender "MAIL FROM:<>"
  // Senders tried after mail_from, in order, when a server refuses ours (docs/identity.md,
  // "MAIL FROM"); empty strings are the null sender. At most kMaxSenders - 1 are used.
  std::vector<std::string> fallback_senders;
  // Whether `reply` (to MAIL FROM or to RCPT TO) refuses our sender `sender` ("" for <>) rather
  // than judging a mailbox. When it does and another sender is configured, the session asks the
  // same recipients again in a new transaction (RSET, MAIL FROM with the next sender) instead of
  // deciding them. The Verifier sets it to the verdict policy's answer (verdict::refuses_sender);
  // null: a refused sender decides the recipients like any other reply.
  using SenderRefusedFn = bool (*)(const Reply& reply, Stage stage, std::string_view sender);
  SenderRefusedFn sender_refused = nullptr;
  StageTimeouts timeouts = kDefaultStageTimeouts;
  uint32_t max_rcpts_per_transaction = 50;  // then RSET and a new MAIL FROM; 0 is taken as 1
  bool use_pipelining = true;               // RFC 2920, only when the server offers it
  // Never here, so that an owner that cannot do TLS (probe-server) is never asked to; the
  // command line's default is auto (docs/usage.md).
  StartTlsMode starttls = StartTlsMode::Never;
  ReplyLimits reply_limits;
};

// Senders a session can use: mail_from and up to kMaxSenders - 1 fallbacks (Outcome::sender is
// an int8_t).
inline constexpr size_t kMaxSenders = 16;
// Sender `i` of `cfg` (0: mail_from, i: fallback_senders[i - 1]); "" is the null sender.
std::string_view sender_at(const SessionConfig& cfg, size_t i);
size_t sender_count(const SessionConfig& cfg);

// True when `arg` can travel as exactly one SMTP argument: non-empty, at most `max_len` bytes,
// no control byte (CR, LF, NUL, ...), no space, no '<' or '>'. Bytes >= 0x80 pass only when
// `allow_utf8` (RFC 6531 local parts); the session decides whether the server may see them.
bool is_safe_argument(std::string_view arg, size_t max_len, bool allow_utf8);
// The same for a RCPT TO path, which also allows spaces inside a quoted local part.
bool is_safe_path(std::string_view addr, size_t max_len);

struct RecipientResult {
  uint64_t id = 0;  // the caller's id given to add_recipient
  Outcome outcome;
};

// Counters for metrics and probe-server reports.
struct SessionStats {
  uint32_t commands_sent = 0;
  uint32_t replies_received = 0;
  uint32_t rcpts_sent = 0;
  uint32_t transactions = 0;  // MAIL FROM commands sent
  // Batches asked again with the next sender because the server refused ours.
  uint32_t sender_retries = 0;
  // Bytes that followed the 220 to STARTTLS in clear text and were thrown away (RFC 3207 §4.2:
  // an injected reply must not be taken for the answer to a command sent inside TLS).
  uint32_t tls_discarded_bytes = 0;
};

enum class Direction : uint8_t { Sent, Received };
// Transcript hook: every command line sent and every reply line received, without CRLF. Off (and
// free) when no hook is set.
using TranscriptFn = void (*)(void* user, Direction dir, std::string_view line);

// A ready-made transcript: "C: EHLO x\n", "S: 250-...\n" lines appended to `text`.
struct TranscriptBuffer {
  std::string text;
  static void append(void* self, Direction dir, std::string_view line);
};

// One connection to one MX. The owner's cycle: add_recipient()..., start(), begin the connect;
// then on each event call the matching on_*(), write pending_output() (consume_output() what was
// written), re-arm the one timer at next_deadline(), pop_result() until empty, and close the
// socket when want_close() and the output is written. Every recipient accepted (Queued) gets
// exactly one result. When no reply decided it, its Outcome carries the stage whose reply was
// awaited and the Failure (Timeout, Closed, ProtocolError; ConnectFailed at Connect).
class Session {
 public:
  enum class AddResult : uint8_t {
    Queued,   // will be checked on this connection; a result follows
    Refused,  // unsafe argument: a LocalError result is already queued, nothing was sent
    Closed,   // the session no longer takes recipients (finishing or failed): use another one
  };

  explicit Session(const SessionConfig& config);

  // ---- inputs ----
  void start(TimePoint now);         // the owner starts the TCP connect: arms its deadline
  void on_connected(TimePoint now);  // TCP connected: now waiting for the banner
  void on_bytes(std::string_view bytes, TimePoint now);
  void on_timeout(TimePoint now);  // the deadline passed (earlier calls are ignored)
  void on_closed(TimePoint now);   // connect failed, or the peer closed/reset
  // The TLS handshake the session asked for (want_tls()) is done: EHLO again, then go on. From
  // here on_bytes() takes the decrypted bytes and pending_output() is plaintext to encrypt.
  void on_tls_established(TimePoint now);
  void on_tls_failed(TimePoint now);  // the handshake failed: the connection is unusable

  // Queues a recipient (an address already validated by the address parser). May be called
  // before start() and while the connection is open, to reuse it for more recipients.
  // `alone`: the recipient gets a mail transaction of its own (RSET before it when one is open,
  // and before the next recipient): the catch-all probe, which must never share MAIL FROM..RCPT
  // with a real address (Outlook answers "452 4.5.3 Recipients belong to multiple regions").
  AddResult add_recipient(std::string_view address, uint64_t id, TimePoint now, bool alone = false);
  // The sender to start with (an index as in Outcome::sender): the one a server of the same MX
  // group accepted before, so that a session does not ask again with senders already refused.
  // Before start(); clamped to the senders configured.
  void set_sender(size_t index);
  size_t sender_index() const { return sender_; }  // the sender the next MAIL FROM carries
  // Nothing more will be added: QUIT once every recipient is decided.
  void finish(TimePoint now);

  // ---- outputs ----
  std::string_view pending_output() const { return std::string_view(out_).substr(out_off_); }
  void consume_output(size_t n);  // n bytes of pending_output() were written
  std::optional<TimePoint> next_deadline() const {
    return deadline_armed_ ? std::optional<TimePoint>(deadline_) : std::nullopt;
  }
  std::optional<RecipientResult> pop_result();
  size_t results_ready() const { return results_.size() - results_head_; }

  // The server said 220 to STARTTLS: the owner starts the TLS handshake on this connection (all
  // output was written before; nothing more comes until on_tls_established/on_tls_failed).
  bool want_tls() const { return tls_wait_; }
  bool tls_active() const { return tls_active_; }  // the handshake completed on this connection

  // Close the connection once pending_output() is written (after QUIT's reply, a 421, a timeout,
  // a protocol error or a local refusal).
  bool want_close() const { return want_close_; }
  // The server answered our QUIT: the dialogue ended as RFC 5321 says, nothing is left to read,
  // and the server closes its side after that reply.
  bool quit_answered() const { return quit_answered_; }
  // Nothing more will happen: closed, or closing with no output left.
  bool done() const { return closed_ || (want_close_ && out_off_ == out_.size()); }
  // Takes recipients now (add_recipient would return Queued).
  bool accepting() const { return !finishing_ && !failed_ && !want_close_ && !closed_; }
  // Connected, greeted, nothing in flight, nothing queued: a pool may reuse it.
  bool idle() const;

  Stage stage() const { return stage_; }  // the stage reached (of the reply awaited, or last)
  const Capabilities& capabilities() const { return caps_; }
  bool pipelining() const;  // PIPELINING offered and enabled
  const SessionStats& stats() const { return stats_; }
  size_t undecided() const { return undecided_; }  // recipients without a result yet
  // Why the session ended in Failure::ProtocolError (empty otherwise).
  std::string_view protocol_error() const;
  // The first line of the server's greeting after the code ("mx.google.com ESMTP ... - gsmtp"),
  // at most 200 bytes; "" until it came. It names the host, which tells the provider when the
  // MX names do not (verdict/provider.hpp).
  const std::string& banner() const;

  void set_transcript(TranscriptFn fn, void* user) {
    transcript_ = fn;
    transcript_user_ = user;
  }
  void set_transcript(TranscriptBuffer* buf) {
    set_transcript(buf ? &TranscriptBuffer::append : nullptr, buf);
  }

 private:
  struct Rcpt {
    std::string address;
    uint64_t id = 0;
    bool decided = false;
    bool alone = false;  // a transaction of its own (add_recipient)
  };

  static void on_raw_line(void* self, std::string_view line);
  void handle_reply(Reply&& r);
  bool advance();  // sends what may be sent now; true when something was sent
  void send(std::string_view a, std::string_view b = {}, std::string_view c = {},
            std::string_view d = {});
  bool form_batch();      // takes the next recipients into rcpts_[0, batch_n_)
  void send_batch();      // [RSET] MAIL RCPT...: all at once when pipelining, else the next one
  void end_batch();       // drops the finished batch from rcpts_
  Stage awaited() const;  // stage of the next reply due; only when in_flight()
  bool in_flight() const;
  void arm(TimePoint now);
  void decide(Rcpt& r, Stage stage, Failure f, const Reply* reply);
  // Decides every recipient still without a result (batch and queued ones).
  void decide_all(Stage stage, Failure f, const Reply* reply);
  void hard_close();  // stop now: nothing more is sent
  void parse_ehlo(const Reply& r);
  bool need_starttls() const;
  // The server refuses MAIL/RCPT until TLS is up, and we may still try STARTTLS (auto).
  bool tls_retry_possible(const Reply& r) const;
  void requeue_batch();  // after a TLS demand: the undecided recipients wait for the retry
  // The reply refuses the sender of this batch and another sender is left to try.
  bool sender_retry_possible(const Reply& r, Stage stage) const;

  const SessionConfig* cfg_;
  ReplyParser parser_;
  std::string out_;
  // See banner(). Behind a pointer: 8 bytes, not 32, in an object 10,000 sessions share memory
  // with (the SmallFootprint test).
  std::unique_ptr<std::string> banner_;
  size_t out_off_ = 0;
  // rcpts_[0, batch_n_) belong to the current transaction (sent or being sent); the rest wait.
  // Decided recipients of the current batch are removed when its replies are all in.
  std::vector<Rcpt> rcpts_;
  std::vector<RecipientResult> results_;
  size_t results_head_ = 0;
  TranscriptFn transcript_ = nullptr;
  void* transcript_user_ = nullptr;
  TimePoint deadline_{};
  SessionStats stats_;
  // Pipelining cursors over the current batch (Postfix smtp_proto style): RCPTs sent, and RCPT
  // replies received. Replies arrive in command order: [RSET] MAIL RCPT... [QUIT].
  uint32_t batch_n_ = 0;
  uint32_t rcpt_sent_ = 0;
  uint32_t rcpt_recv_ = 0;
  uint32_t undecided_ = 0;
  const char* session_error_ = nullptr;  // protocol error found by the session (not the parser)
  Stage stage_ = Stage::Connect;
  enum class Greeting : uint8_t { None, Ehlo, Helo };
  Greeting next_greeting_ = Greeting::None;  // the greeting command to send next
  Capabilities caps_;
  Failure local_error_ = Failure::None;  // LocalError when the config cannot be sent
  Stage local_error_stage_ = Stage::Connect;
  bool deadline_armed_ = false;
  bool connected_ = false;
  bool closed_ = false;
  bool want_close_ = false;
  bool finishing_ = false;
  bool failed_ = false;  // a rejection decided everyone: drain replies, then QUIT
  bool greeted_ = false;
  bool ehlo_ok_ = false;
  bool txn_open_ = false;    // MAIL sent and no RSET since
  bool mail_sent_ = false;   // MAIL of the current batch sent
  bool utf8_batch_ = false;  // the batch has a UTF-8 address: MAIL gets SMTPUTF8 (RFC 6531 §3.4)
  // Replies awaited, besides RCPT replies (rcpt_recv_ < rcpt_sent_).
  bool await_banner_ = false;
  bool await_ehlo_ = false;
  bool await_helo_ = false;
  bool await_rset_ = false;
  bool await_mail_ = false;
  bool await_quit_ = false;
  bool quit_answered_ = false;
  bool quit_sent_ = false;
  bool await_starttls_ = false;  // the reply to STARTTLS
  bool tls_wait_ = false;        // 220 received: the owner is doing the handshake
  bool tls_active_ = false;
  bool starttls_sent_ = false;  // once per connection
  bool tls_retry_ = false;      // a TLS demand (530) came: STARTTLS, then the batch again
  // Our sender was refused (at MAIL, or at RCPT as Postfix's smtpd_delay_reject reports it):
  // the batch's undecided recipients are asked again with sender_ once every reply is in.
  bool sender_retry_ = false;
  uint8_t sender_ = 0;        // the sender the next MAIL FROM carries
  uint8_t batch_sender_ = 0;  // the sender the current batch's MAIL FROM carried
  uint8_t senders_ = 1;       // senders configured (mail_from and the fallbacks)
};

}  // namespace mxp::smtp
