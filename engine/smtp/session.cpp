// The verification session's state machine. Replies are matched to commands in the order the
// commands were sent (RFC 2920 §3.1), using a send cursor and a receive cursor over the current
// batch of recipients, as Postfix's smtp_proto.c does; every failure path decides each recipient
// still open exactly once. STARTTLS is never pipelined: it goes out alone, after the EHLO reply
// or after every reply of a batch that a "530 Must issue a STARTTLS command first" refused.
#include "smtp/session.hpp"

#include <algorithm>
#include <utility>

#include "core/strings.hpp"

namespace mxp::smtp {

namespace {

// RFC 5321 §4.5.3.1.3: a path is at most 256 octets with its angle brackets; a domain at most 255.
constexpr size_t kMaxPath = 254;
constexpr size_t kMaxDomain = 255;
// Output capacity kept between writes; a larger buffer (a big pipelined batch) is released.
constexpr size_t kKeepOutCapacity = 1024;
// Likewise for the result queue: a long-idle pooled session keeps at most this many slots.
constexpr size_t kKeepResultCapacity = 4;

bool is_2xx(const Reply& r) {
  return r.code / 100 == 2;
}

bool has_utf8(std::string_view s) {
  return std::any_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
}

using core::icontains;
using core::iequals;

// RFC 3207 §4: "530 5.7.0 Must issue a STARTTLS command first"; other servers word it
// "TLS required" (the same phrases as the verdict policy's TlsRequired text rule), always with
// 530 or an X.7.x code: "starttls" in "550 5.1.1 <x@starttls.example>" is an address.
bool demands_tls(const Reply& r) {
  if (r.code != 530 && !(r.enhanced.present && r.enhanced.subject == 7)) return false;
  for (const auto& line : r.lines)
    if (icontains(line, "starttls") || icontains(line, "tls required") ||
        icontains(line, "requires tls"))
      return true;
  return false;
}

}  // namespace

bool is_safe_argument(std::string_view arg, size_t max_len, bool allow_utf8) {
  if (arg.empty() || arg.size() > max_len) return false;
  for (char ch : arg) {
    const auto c = static_cast<unsigned char>(ch);
    // Controls (CR, LF, NUL, TAB...), space and DEL would split or end the command line;
    // '<' and '>' would end the path early.
    if (c <= 0x20 || c == 0x7f || c == '<' || c == '>') return false;
    if (c >= 0x80 && !allow_utf8) return false;
  }
  return true;
}

size_t sender_count(const SessionConfig& cfg) {
  return std::min(kMaxSenders, cfg.fallback_senders.size() + 1);
}

std::string_view sender_at(const SessionConfig& cfg, size_t i) {
  if (i == 0 || i > cfg.fallback_senders.size()) return cfg.mail_from;
  return cfg.fallback_senders[i - 1];
}

void TranscriptBuffer::append(void* self, Direction dir, std::string_view line) {
  auto& t = static_cast<TranscriptBuffer*>(self)->text;
  t += dir == Direction::Sent ? "C: " : "S: ";
  t += line;
  t += '\n';
}

bool is_safe_path(std::string_view addr, size_t max_len) {
  // A quoted local part (`"john doe"@example.org`, RFC 5321 §4.1.2) may hold spaces: inside
  // the path's angle brackets they split nothing. Anywhere else the argument rules apply.
  if (addr.size() < 2 || addr.front() != '"') return is_safe_argument(addr, max_len, true);
  size_t i = 1;
  for (; i < addr.size() && addr[i] != '"'; ++i)
    if (addr[i] == '\\') ++i;
  if (i >= addr.size()) return false;
  std::string probe(addr);
  for (size_t k = 1; k < i; ++k)
    if (probe[k] == ' ') probe[k] = '_';
  return is_safe_argument(probe, max_len, true);
}

Session::Session(const SessionConfig& config) : cfg_(&config), parser_(config.reply_limits) {
  // Defence in depth: the caller validated these, but nothing unsafe may reach the wire.
  if (!is_safe_argument(cfg_->helo_name, kMaxDomain, false)) {
    local_error_ = Failure::LocalError;
    local_error_stage_ = Stage::Ehlo;
  } else {
    senders_ = static_cast<uint8_t>(sender_count(*cfg_));
    for (size_t i = 0; i < senders_; ++i) {
      const std::string_view from = sender_at(*cfg_, i);
      if (!from.empty() && !is_safe_argument(from, kMaxPath, false)) {
        local_error_ = Failure::LocalError;
        local_error_stage_ = Stage::MailFrom;
      }
    }
  }
  if (local_error_ != Failure::None) want_close_ = true;
}

const std::string& Session::banner() const {
  static const std::string kNone;
  return banner_ ? *banner_ : kNone;
}

std::string_view Session::protocol_error() const {
  if (parser_.failed()) return parser_.error();
  return session_error_ != nullptr ? std::string_view(session_error_) : std::string_view{};
}

bool Session::pipelining() const {
  return cfg_->use_pipelining && ehlo_ok_ && has(caps_, Capability::Pipelining);
}

bool Session::in_flight() const {
  return await_banner_ || await_ehlo_ || await_helo_ || await_starttls_ || tls_wait_ ||
         await_rset_ || await_mail_ || rcpt_recv_ < rcpt_sent_ || await_quit_;
}

Stage Session::awaited() const {
  // Replies come back in the order the commands went out: the greeting exchange is never
  // pipelined, then [RSET] MAIL RCPT... [QUIT].
  if (await_banner_) return Stage::Banner;
  if (await_ehlo_) return Stage::Ehlo;
  if (await_helo_) return Stage::Helo;
  if (await_starttls_ || tls_wait_) return Stage::StartTls;  // alone on the wire
  if (await_rset_) return Stage::Rset;
  if (await_mail_) return Stage::MailFrom;
  if (rcpt_recv_ < rcpt_sent_) return Stage::RcptTo;
  return Stage::Quit;
}

bool Session::idle() const {
  return connected_ && greeted_ && !in_flight() && undecided_ == 0 && !failed_ && !want_close_ &&
         !closed_;
}

// ---- outputs ----

void Session::send(std::string_view a, std::string_view b, std::string_view c, std::string_view d) {
  if (out_off_ == out_.size()) {
    out_.clear();
    out_off_ = 0;
  }
  const size_t begin = out_.size();
  out_.reserve(begin + a.size() + b.size() + c.size() + d.size() + 2);
  out_.append(a).append(b).append(c).append(d);
  if (transcript_ != nullptr)
    transcript_(transcript_user_, Direction::Sent, std::string_view(out_).substr(begin));
  out_.append("\r\n");
  ++stats_.commands_sent;
}

void Session::consume_output(size_t n) {
  out_off_ += std::min(n, out_.size() - out_off_);
  if (out_off_ == out_.size()) {
    out_.clear();
    out_off_ = 0;
    if (out_.capacity() > kKeepOutCapacity) std::string().swap(out_);
  }
}

std::optional<RecipientResult> Session::pop_result() {
  if (results_head_ >= results_.size()) return std::nullopt;
  RecipientResult r = std::move(results_[results_head_++]);
  if (results_head_ == results_.size()) {
    results_.clear();
    results_head_ = 0;
    if (results_.capacity() > kKeepResultCapacity) std::vector<RecipientResult>().swap(results_);
  }
  return r;
}

void Session::arm(TimePoint now) {
  if (want_close_ || closed_) {
    deadline_armed_ = false;
  } else if (in_flight()) {
    stage_ = awaited();
    deadline_ = now + cfg_->timeouts[static_cast<int>(stage_)];
    deadline_armed_ = true;
  } else if (connected_) {
    deadline_armed_ = false;  // idle between batches: the pool decides how long to keep us
  }
  // Not connected yet: the connect deadline armed by start() stays.
}

// ---- decisions ----

void Session::decide(Rcpt& r, Stage stage, Failure f, const Reply* reply) {
  if (r.decided) return;
  r.decided = true;
  --undecided_;
  RecipientResult res;
  res.id = r.id;
  res.outcome.stage = stage;
  res.outcome.failure = f;
  if (reply != nullptr) res.outcome.reply = *reply;
  // The sender of the current transaction: its recipients were asked with it, and a refused
  // MAIL FROM decides the queued ones too.
  if (mail_sent_ &&
      (stage == Stage::MailFrom || (&r >= rcpts_.data() && &r < rcpts_.data() + batch_n_)))
    res.outcome.sender = static_cast<int8_t>(batch_sender_);
  results_.push_back(std::move(res));
}

void Session::decide_all(Stage stage, Failure f, const Reply* reply) {
  for (auto& r : rcpts_)
    decide(r, stage, f, reply);
  // Only the current batch's slots are still needed (their RCPT replies may yet arrive).
  rcpts_.resize(std::min<size_t>(rcpts_.size(), batch_n_));
}

void Session::hard_close() {
  want_close_ = true;
  tls_wait_ = false;  // no handshake on a connection being closed
  deadline_armed_ = false;
  out_.clear();
  out_off_ = 0;
  rcpts_.clear();
  rcpts_.shrink_to_fit();
  batch_n_ = rcpt_sent_ = rcpt_recv_ = 0;
}

// ---- inputs ----

void Session::start(TimePoint now) {
  if (want_close_ || closed_ || connected_) return;
  deadline_ = now + cfg_->timeouts[static_cast<int>(Stage::Connect)];
  deadline_armed_ = true;
}

void Session::on_connected(TimePoint now) {
  if (want_close_ || closed_ || connected_) return;
  connected_ = true;
  await_banner_ = true;  // RFC 5321 §3.1: the server speaks first
  arm(now);
}

void Session::on_raw_line(void* self, std::string_view line) {
  auto* s = static_cast<Session*>(self);
  s->transcript_(s->transcript_user_, Direction::Received, line);
}

void Session::on_bytes(std::string_view bytes, TimePoint now) {
  if (want_close_ || closed_) return;  // after QUIT's reply, a 421 or a failure: ignored
  if (tls_wait_) {
    // Clear text while the handshake is due: the owner should have given these to TLS. Never
    // parse them (RFC 3207 §4.2).
    stats_.tls_discarded_bytes += static_cast<uint32_t>(bytes.size());
    return;
  }
  if (!connected_) on_connected(now);
  bool any = false;
  const ReplyParser::LineHook hook = transcript_ != nullptr ? &Session::on_raw_line : nullptr;
  while (auto r = parser_.next(bytes, hook, this)) {
    any = true;
    handle_reply(std::move(*r));
    if (want_close_) return;
    if (tls_wait_) {
      // RFC 3207 §4.2 (CVE-2011-0411 seen from the client): whatever followed the 220 in clear
      // text was not sent by the TLS peer; a reply injected here would be taken for the answer
      // to the EHLO we send inside TLS. Drop it, and any partial line with it.
      stats_.tls_discarded_bytes += static_cast<uint32_t>(bytes.size());
      parser_.reset();
      arm(now);
      return;
    }
  }
  if (parser_.failed()) {
    // Garbage, mismatched codes, an over-long line or a flood of lines: nothing more from this
    // server can be trusted.
    decide_all(in_flight() ? awaited() : stage_, Failure::ProtocolError, nullptr);
    hard_close();
    return;
  }
  // Commands go out only after every complete reply in this read is matched, so a reply is never
  // taken for the answer to a command sent after it arrived.
  if (any) {
    advance();
    arm(now);
  }
}

void Session::on_timeout(TimePoint now) {
  if (!deadline_armed_ || now < deadline_ || want_close_ || closed_) return;
  const Stage st = !connected_ ? Stage::Connect : in_flight() ? awaited() : stage_;
  stage_ = st;
  decide_all(st, Failure::Timeout, nullptr);
  hard_close();  // no QUIT: the server is not answering
}

void Session::on_tls_established(TimePoint now) {
  if (!tls_wait_ || want_close_ || closed_) return;
  tls_wait_ = false;
  tls_active_ = true;
  // RFC 3207 §4.2: the client must discard what it knew from the server before TLS and send
  // EHLO again; no transaction survives the handshake.
  caps_.reset();
  greeted_ = ehlo_ok_ = false;
  txn_open_ = false;
  tls_retry_ = false;
  parser_.reset();
  next_greeting_ = Greeting::Ehlo;
  advance();
  arm(now);
}

void Session::on_tls_failed(TimePoint /*now*/) {
  if (!tls_wait_ || want_close_ || closed_) return;
  tls_wait_ = false;
  stage_ = Stage::StartTls;
  decide_all(Stage::StartTls, Failure::TlsFailed, nullptr);
  hard_close();  // no QUIT: the connection is neither clear text nor TLS any more
}

void Session::on_closed(TimePoint /*now*/) {
  if (closed_) return;
  if (!connected_) {
    decide_all(Stage::Connect, Failure::ConnectFailed, nullptr);
  } else {
    // A close after every recipient was decided (after QUIT, or when idle) decides nothing.
    decide_all(in_flight() ? awaited() : stage_, Failure::Closed, nullptr);
  }
  hard_close();
  closed_ = true;
}

void Session::set_sender(size_t index) {
  if (connected_ || closed_) return;
  sender_ = batch_sender_ = static_cast<uint8_t>(std::min<size_t>(index, senders_ - 1u));
}

Session::AddResult Session::add_recipient(std::string_view address, uint64_t id, TimePoint now,
                                          bool alone) {
  if (local_error_ != Failure::None || (accepting() && !is_safe_path(address, kMaxPath))) {
    RecipientResult res;
    res.id = id;
    res.outcome.stage = local_error_ != Failure::None ? local_error_stage_ : Stage::RcptTo;
    res.outcome.failure = Failure::LocalError;
    results_.push_back(std::move(res));
    return AddResult::Refused;
  }
  if (!accepting()) return AddResult::Closed;
  rcpts_.push_back(Rcpt{std::string(address), id, false, alone});
  ++undecided_;
  if (greeted_ && !in_flight() && advance()) arm(now);
  return AddResult::Queued;
}

void Session::finish(TimePoint now) {
  if (finishing_ || want_close_ || closed_) return;
  finishing_ = true;
  if (greeted_ && !in_flight() && advance()) arm(now);
}

// ---- the protocol ----

void Session::parse_ehlo(const Reply& r) {
  // RFC 5321 §4.1.1.1: the first line greets; each further line is "keyword *(SP param)".
  for (size_t i = 1; i < r.lines.size(); ++i) {
    std::string_view line = r.lines[i];
    const std::string_view kw = line.substr(0, line.find(' '));
    for (int c = 0; c < kCapabilityCount; ++c)
      if (iequals(kw, kCapabilityNames[c])) caps_.set(c);
  }
}

void Session::handle_reply(Reply&& r) {
  ++stats_.replies_received;
  if (!in_flight()) {
    // RFC 5321 §3.8: a server may announce its shutdown with 421 at any time. Anything else
    // that answers no command breaks the command/reply pairing.
    if (r.code != 421) session_error_ = "reply received while no command was pending";
    decide_all(stage_, r.code == 421 ? Failure::None : Failure::ProtocolError,
               r.code == 421 ? &r : nullptr);
    hard_close();
    return;
  }
  const Stage st = awaited();
  stage_ = st;
  if (r.code == 421 && st != Stage::Quit) {
    // RFC 5321 §3.8 / §4.2.3: 421 means the server is closing the channel; no QUIT follows.
    decide_all(st, Failure::None, &r);
    hard_close();
    return;
  }
  switch (st) {
    case Stage::Banner:
      await_banner_ = false;
      if (!r.lines.empty()) banner_ = std::make_unique<std::string>(r.lines.front().substr(0, 200));
      if (is_2xx(r)) {
        next_greeting_ = Greeting::Ehlo;
      } else {
        // RFC 5321 §3.1: a 554 greeting refuses service; the client then sends QUIT.
        decide_all(st, Failure::None, &r);
        failed_ = true;
      }
      break;
    case Stage::Ehlo:
      await_ehlo_ = false;
      if (is_2xx(r)) {
        parse_ehlo(r);
        greeted_ = ehlo_ok_ = true;
        if (cfg_->starttls == StartTlsMode::Require && !tls_active_ &&
            !has(caps_, Capability::StartTls)) {
          decide_all(Stage::StartTls, Failure::TlsUnavailable, nullptr);
          failed_ = true;
        }
      } else if (r.code / 100 == 5) {
        // RFC 5321 §4.1.4 / §3.2: a server that does not take EHLO (500/502, or a policy 5xx)
        // may still take HELO.
        next_greeting_ = Greeting::Helo;
      } else {
        decide_all(st, Failure::None, &r);
        failed_ = true;
      }
      break;
    case Stage::Helo:
      await_helo_ = false;
      if (is_2xx(r)) {
        greeted_ = true;
        if (cfg_->starttls == StartTlsMode::Require && !tls_active_) {
          // HELO has no extensions: no STARTTLS to be had (RFC 3207 §4).
          decide_all(Stage::StartTls, Failure::TlsUnavailable, nullptr);
          failed_ = true;
        }
      } else {
        decide_all(st, Failure::None, &r);
        failed_ = true;
      }
      break;
    case Stage::Rset:
      // Decides no recipient of the finished batch; a refused RSET leaves the server in an
      // unknown state, so the queued recipients are decided by it and we leave.
      await_rset_ = false;
      if (!is_2xx(r)) {
        decide_all(st, Failure::None, &r);
        failed_ = true;
      }
      break;
    case Stage::StartTls:
      await_starttls_ = false;
      if (r.code == 220) {
        tls_wait_ = true;  // RFC 3207 §4: start the negotiation now; on_bytes drops the rest
      } else if (cfg_->starttls == StartTlsMode::Require || tls_retry_) {
        // 454 "TLS not available" (or anything else): TLS was needed and is not to be had.
        tls_retry_ = false;
        decide_all(st, Failure::TlsUnavailable, &r);
        failed_ = true;
      }
      // auto, offered and refused: go on in clear text with what EHLO said (RFC 3207 §4).
      break;
    case Stage::MailFrom:
      await_mail_ = false;
      if (!is_2xx(r) && tls_retry_possible(r)) {
        // Pipelined RCPT replies still to come (503 or 530) decide nothing: the batch is sent
        // again inside TLS. A refused MAIL opened no transaction.
        tls_retry_ = true;
        txn_open_ = false;
      } else if (!is_2xx(r) && sender_retry_possible(r, st)) {
        // Our sender was refused and another is configured: the same recipients are asked
        // with it (RFC 5321 §4.5.5 wants <> accepted, but some servers refuse it). Pipelined
        // RCPT replies still to come (typically 503) decide nothing.
        sender_retry_ = true;
        sender_ = static_cast<uint8_t>(batch_sender_ + 1);
        txn_open_ = false;
      } else if (!is_2xx(r)) {
        // The sender was refused: no RCPT can be judged on this connection. Pipelined RCPT
        // replies still to come (typically 503) decide nothing.
        decide_all(st, Failure::None, &r);
        failed_ = true;
      }
      break;
    case Stage::RcptTo:
      if (!tls_retry_ && tls_retry_possible(r)) tls_retry_ = true;
      if (tls_retry_ || (sender_retry_ && !txn_open_)) {
        ++rcpt_recv_;  // answered for the wrong reason: sent again inside TLS, or after MAIL
      } else if (!is_2xx(r) && sender_retry_possible(r, st)) {
        // Postfix (smtpd_delay_reject, its default) reports a refused sender at RCPT:
        // "554 5.7.1 <>: Sender address rejected". Not about this mailbox: it is asked again
        // with the next sender; the batch's other replies still decide their recipients.
        sender_retry_ = true;
        sender_ = static_cast<uint8_t>(batch_sender_ + 1);
        ++rcpt_recv_;
      } else {
        decide(rcpts_[rcpt_recv_++], st, Failure::None, &r);
      }
      break;
    case Stage::Quit:
      await_quit_ = false;
      quit_answered_ = true;
      want_close_ = true;  // RFC 5321 §4.1.1.10: the server closes after its reply
      deadline_armed_ = false;
      break;
    default:
      break;
  }
}

bool Session::need_starttls() const {
  if (cfg_->starttls == StartTlsMode::Never || tls_active_ || starttls_sent_) return false;
  return tls_retry_ || (ehlo_ok_ && has(caps_, Capability::StartTls));
}

bool Session::tls_retry_possible(const Reply& r) const {
  return cfg_->starttls == StartTlsMode::Auto && !tls_active_ && !starttls_sent_ && demands_tls(r);
}

bool Session::sender_retry_possible(const Reply& r, Stage stage) const {
  return cfg_->sender_refused != nullptr && batch_sender_ + 1u < senders_ &&
         cfg_->sender_refused(r, stage, sender_at(*cfg_, batch_sender_));
}

void Session::requeue_batch() {
  // The batch's undecided recipients move to the front of the queue, in their order.
  std::stable_partition(rcpts_.begin(), rcpts_.begin() + batch_n_,
                        [](const Rcpt& r) { return !r.decided; });
  const auto decided = std::find_if(rcpts_.begin(), rcpts_.begin() + batch_n_,
                                    [](const Rcpt& r) { return r.decided; });
  rcpts_.erase(decided, rcpts_.begin() + batch_n_);
  batch_n_ = rcpt_sent_ = rcpt_recv_ = 0;
  mail_sent_ = false;
}

bool Session::form_batch() {
  size_t max = std::max<uint32_t>(1, cfg_->max_rcpts_per_transaction);
  const bool smtputf8 = has(caps_, Capability::SmtpUtf8);
  utf8_batch_ = false;
  size_t n = 0;
  while (n < rcpts_.size() && n < max) {
    // A recipient that goes alone ends the batch before it, or is the whole batch.
    if (rcpts_[n].alone) {
      if (n > 0) break;
      max = 1;
    }
    if (has_utf8(rcpts_[n].address)) {
      if (!smtputf8) {
        // RFC 6531 §3.2: without SMTPUTF8 an internationalized address must not be sent.
        decide(rcpts_[n], Stage::RcptTo, Failure::LocalError, nullptr);
        rcpts_.erase(rcpts_.begin() + static_cast<std::ptrdiff_t>(n));
        continue;
      }
      utf8_batch_ = true;
    }
    ++n;
  }
  batch_n_ = static_cast<uint32_t>(n);
  rcpt_sent_ = rcpt_recv_ = 0;
  mail_sent_ = false;
  return n > 0;
}

void Session::send_batch() {
  const bool pipe = pipelining();
  if (!mail_sent_) {
    if (txn_open_ && !await_rset_) {
      // RFC 5321 §4.1.1.5: RSET ends the previous transaction; RFC 2920 §3.1 lets it lead a
      // pipelined group.
      send("RSET");
      await_rset_ = true;
      txn_open_ = false;
      if (!pipe) return;
    }
    // RFC 5321 §4.1.1.2; the null reverse-path is "<>" (§4.5.5).
    batch_sender_ = sender_;
    send("MAIL FROM:<", sender_at(*cfg_, sender_), ">", utf8_batch_ ? " SMTPUTF8" : "");
    mail_sent_ = true;
    txn_open_ = true;
    await_mail_ = true;
    ++stats_.transactions;
    if (!pipe) return;
  }
  // RFC 2920 §3.1: with PIPELINING, MAIL and every RCPT go out in one write; without it, one
  // command per reply.
  while (rcpt_sent_ < batch_n_) {
    send("RCPT TO:<", rcpts_[rcpt_sent_].address, ">");
    ++rcpt_sent_;
    ++stats_.rcpts_sent;
    if (!pipe) return;
  }
}

void Session::end_batch() {
  rcpts_.erase(rcpts_.begin(), rcpts_.begin() + batch_n_);
  batch_n_ = rcpt_sent_ = rcpt_recv_ = 0;
  mail_sent_ = false;
}

bool Session::advance() {
  if (want_close_ || closed_ || in_flight()) return false;
  const uint32_t before = stats_.commands_sent;
  if (failed_) {
    // Everyone is decided; say goodbye (RFC 5321 §4.1.1.10) unless already done.
    if (batch_n_ > 0) end_batch();
    if (!quit_sent_) {
      send("QUIT");
      quit_sent_ = await_quit_ = true;
    }
    return stats_.commands_sent != before;
  }
  if (next_greeting_ != Greeting::None) {
    // RFC 5321 §4.1.1.1: EHLO first; HELO only after EHLO was refused.
    const bool ehlo = next_greeting_ == Greeting::Ehlo;
    send(ehlo ? "EHLO " : "HELO ", cfg_->helo_name);
    (ehlo ? await_ehlo_ : await_helo_) = true;
    next_greeting_ = Greeting::None;
    return true;
  }
  if (!greeted_) return false;
  // Every reply of the refused batch is in: its undecided recipients go again, inside TLS or
  // with the next sender (send_batch ends an open transaction with RSET first).
  if ((tls_retry_ || sender_retry_) && batch_n_ > 0) requeue_batch();
  if (sender_retry_) {
    sender_retry_ = false;
    ++stats_.sender_retries;
  }
  if (tls_retry_ && txn_open_) {
    // MAIL was accepted and RCPT demanded TLS: end the transaction first (Postfix refuses
    // STARTTLS inside one: "503 5.5.1 Error: MAIL transaction in progress").
    send("RSET");
    await_rset_ = true;
    txn_open_ = false;
    return true;
  }
  if (need_starttls() && !(finishing_ && undecided_ == 0)) {
    // RFC 3207 §4: STARTTLS ends a pipelined group; we send it alone.
    send("STARTTLS");
    await_starttls_ = starttls_sent_ = true;
    return true;
  }
  if (batch_n_ > 0 && (!mail_sent_ || rcpt_sent_ < batch_n_)) {
    send_batch();  // not pipelining: the next command of this batch
    return true;
  }
  if (batch_n_ > 0) end_batch();  // every reply of the batch is in
  if (undecided_ > 0 && form_batch()) {
    send_batch();
  } else if (finishing_ && undecided_ == 0 && !quit_sent_) {
    send("QUIT");
    quit_sent_ = await_quit_ = true;
  }
  if (!in_flight() && rcpts_.empty()) {
    rcpts_.shrink_to_fit();  // idle: keep nothing
  }
  return stats_.commands_sent != before;
}

}  // namespace mxp::smtp
