// Incremental, sans-I/O parser of SMTP server replies (RFC 5321 §4.2, enhanced status codes of
// RFC 3463 / RFC 2034). Bytes go in split anywhere; complete replies come out. Hard caps on line
// length and lines per reply turn a flooding server into a protocol error, never a memory blow-up.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "smtp/types.hpp"

namespace mxp::smtp {

struct ReplyLimits {
  // Longest accepted reply line, line terminator included. RFC 5321 §4.5.3.1.5 says servers send
  // at most 512 octets; real ones (long Exchange/Gmail diagnostics) send more, so accept more but
  // cap hard.
  uint32_t max_line_bytes = 4096;
  // Most lines accepted in one multi-line reply (an EHLO reply has ~10-15).
  uint32_t max_lines = 100;
};

// Accepted reply lines (RFC 5321 §4.2):  CODE "-" text  (continuation)  |  CODE [" " text]  (last),
// ending in CRLF or a bare LF. CODE is three digits in 200..599; every line of one reply carries
// the same code. An enhanced code "class.subject.detail" (1-3 digits each) at the start of a line's
// text, followed by a space or the end of the line, is split off when its class equals the reply
// code's first digit (RFC 3463 §2, RFC 2034 §4); otherwise it stays part of the text.
//
// Memory: between replies the parser holds only the bytes of a line that straddles two feeds;
// complete lines are parsed straight from the caller's buffer.
class ReplyParser {
 public:
  using Limits = ReplyLimits;
  // Observer of every raw reply line (terminator removed) as it is parsed; for transcripts.
  using LineHook = void (*)(void* user, std::string_view raw_line);

  ReplyParser() = default;
  explicit ReplyParser(Limits limits) : limits_(limits) {}

  // Zero-queue interface: consumes bytes from the front of `in` up to the end of the next complete
  // reply and returns it; returns nullopt once `in` is used up (a partial line is kept) or on a
  // protocol error (then failed() is true and the rest of `in` is left untouched).
  std::optional<Reply> next(std::string_view& in, LineHook hook = nullptr, void* user = nullptr);

  // Queue interface: feed any bytes, then pop() the complete replies in order. Returns !failed().
  bool feed(std::string_view bytes);
  std::optional<Reply> pop();

  // Sticky error state: once a protocol error is seen the parser consumes nothing more.
  bool failed() const { return failed_; }
  const std::string& error() const { return error_; }  // what was wrong; empty unless failed()

  // True when no partial line or partial multi-line reply is held (between replies).
  bool idle() const { return line_.empty() && !in_reply_; }
  const Limits& limits() const { return limits_; }
  void reset();  // back to the initial state, limits kept

 private:
  bool fail(std::string message);
  std::optional<Reply> parse_one(std::string_view& in, LineHook hook, void* user);
  // Parses one line (terminator removed) into cur_; sets `last` when it ends the reply.
  bool take_line(std::string_view line, bool& last);

  Limits limits_;
  bool failed_ = false;
  bool in_reply_ = false;
  Reply cur_;                 // the reply being assembled
  std::string line_;          // a line that straddles feeds (empty otherwise)
  std::string error_;         // set once, on failure
  std::vector<Reply> ready_;  // queue interface only
  size_t ready_head_ = 0;
};

// Parses exactly one complete reply, e.g. "550-5.1.1 ...\r\n550 5.1.1 ... - gsmtp\r\n". The final
// line terminator may be omitted. Returns nullopt on a protocol error, an incomplete reply, or
// bytes after the reply. Uses the default limits.
std::optional<Reply> parse_reply(std::string_view wire);

// Splits an RFC 3463 enhanced code off the front of `text` when its class is `reply_class`
// (2, 4 or 5); on success `text` keeps what follows the code and one separating space.
std::optional<EnhancedCode> take_enhanced_code(std::string_view& text, int reply_class);

}  // namespace mxp::smtp
