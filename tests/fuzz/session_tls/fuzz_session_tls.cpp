// libFuzzer target for the STARTTLS paths of smtp::Session (RFC 3207), driven as its owner
// would: fuzzed server bytes, timer expiries, and when the session asks for TLS (want_tls()) a
// fuzzed handshake outcome (established or failed); the TLS bytes themselves are the owner's
// and not needed here. Input: byte 0 the set-up (bit 0: require, else auto; bit 1: pipelining;
// bits 2-3: recipients - 1), byte 1 how the bytes are cut into reads, byte 2 the handshake
// outcomes (bit k: the k-th request fails; bit 7: the owner also hands the session clear text
// during the handshake), then the server's bytes ('\x01' starting a read: a timeout instead).
// Must hold: only whole known command lines are written, never DATA; STARTTLS at most once and
// the last line before the handshake; nothing written while the handshake runs or after it
// failed; with require, no MAIL FROM or RCPT TO before TLS is up, and no recipient decided by a
// MAIL or RCPT reply without TLS; every recipient decided exactly once.
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>

#include "smtp/session.hpp"

using namespace mxp::smtp;

namespace {

// Whole CRLF lines, each a command we know; DATA (or BDAT) never. Counts STARTTLS and MAIL/RCPT.
void check_output(std::string_view out, int& starttls, int& mail_or_rcpt) {
  if (out.empty()) return;
  if (out.size() < 2 || out.substr(out.size() - 2) != "\r\n") abort();
  size_t pos = 0;
  while (pos < out.size()) {
    const size_t end = out.find("\r\n", pos);
    const std::string_view line = out.substr(pos, end - pos);
    pos = end + 2;
    if (line.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos) abort();
    const bool txn = line.rfind("MAIL FROM:<", 0) == 0 || line.rfind("RCPT TO:<", 0) == 0;
    const bool known = line.rfind("EHLO ", 0) == 0 || line.rfind("HELO ", 0) == 0 || txn ||
                       line == "RSET" || line == "QUIT" || line == "STARTTLS";
    if (!known) abort();
    starttls += line == "STARTTLS";
    mail_or_rcpt += txn;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  const bool require = data[0] & 1;
  SessionConfig cfg;
  cfg.helo_name = "probe.mxprobe.test";
  cfg.mail_from = "verify@mxprobe.test";
  cfg.max_rcpts_per_transaction = 2;
  cfg.use_pipelining = data[0] & 2;
  cfg.starttls = require ? StartTlsMode::Require : StartTlsMode::Auto;
  cfg.reply_limits.max_line_bytes = 256;
  cfg.reply_limits.max_lines = 8;
  Session s(cfg);
  TimePoint now{};
  const uint8_t seed = data[1];
  const uint8_t tls_plan = data[2];
  const int n_rcpt = 1 + (data[0] >> 2) % 4;
  std::set<uint64_t> ids;
  int starttls = 0, handshakes = 0;
  bool tls_failed = false;
  auto drain = [&] {
    const std::string_view out = s.pending_output();
    int txn = 0;
    if (tls_failed && !out.empty()) abort();  // the connection is unusable: not even QUIT
    check_output(out, starttls, txn);
    if (starttls > 1) abort();                       // once per connection
    if (require && txn && !s.tls_active()) abort();  // an address in clear text
    if (s.want_tls() && (out.size() < 10 || out.substr(out.size() - 10) != "STARTTLS\r\n") &&
        !out.empty())
      abort();  // STARTTLS is the last thing written before the handshake
    s.consume_output(out.size());
    while (auto r = s.pop_result()) {
      if (!ids.insert(r->id).second) abort();  // decided twice
      const Outcome& o = r->outcome;
      if (o.failure == Failure::None && (o.reply.code < 200 || o.reply.code > 599)) abort();
      if (require && !s.tls_active() && o.failure == Failure::None &&
          (o.stage == Stage::MailFrom || o.stage == Stage::RcptTo))
        abort();  // decided by a transaction that must not have happened
      if (o.failure == Failure::TlsFailed && !tls_failed) abort();
    }
  };
  // The owner's side of the handshake, when the session asks for it.
  auto handshake = [&] {
    if (!s.want_tls()) return;
    if (tls_plan & 0x80) {  // clear text handed over during the handshake: ignored
      s.on_bytes("250 2.1.5 Ok\r\n", now);
      if (!s.pending_output().empty() || !s.want_tls() || s.results_ready() != 0) abort();
    }
    if (tls_plan >> (handshakes++ % 7) & 1) {
      tls_failed = true;
      s.on_tls_failed(now);
      if (s.want_tls() || s.tls_active() || s.undecided() != 0) abort();
    } else {
      s.on_tls_established(now);
      if (s.want_tls() || !s.tls_active()) abort();
    }
    drain();
  };
  s.start(now);
  s.on_connected(now);
  for (int i = 0; i < n_rcpt - 1; ++i)
    s.add_recipient("user" + std::to_string(i) + "@example.org", i, now);
  drain();
  std::string_view wire(reinterpret_cast<const char*>(data + 3), size - 3);
  for (size_t i = 0; !wire.empty(); ++i) {
    const size_t n = std::min<size_t>(wire.size(), 1 + ((seed >> (i % 8)) ^ i) % 48);
    const std::string_view chunk = wire.substr(0, n);
    wire.remove_prefix(n);
    if (chunk[0] == '\x01' && s.next_deadline()) {  // a timer expiry instead of these bytes
      now = *s.next_deadline();
      s.on_timeout(now);
    } else if (!s.want_tls()) {
      now += std::chrono::milliseconds(1);
      s.on_bytes(chunk, now);
    }
    if (i == 2) {  // a pool adding work while the session runs, then finishing
      s.add_recipient("late@example.org", n_rcpt - 1, now);
      s.finish(now);
    }
    drain();
    handshake();
  }
  s.on_closed(now);
  drain();
  if (s.undecided() != 0 || !s.done()) abort();
  if (ids.size() > static_cast<size_t>(n_rcpt) || ids.size() < static_cast<size_t>(n_rcpt - 1))
    abort();
  return 0;
}
