// libFuzzer target driving smtp::Session with fuzzed server bytes, timeouts and a close: it must
// never write DATA or a command line with a stray CR/LF, and every recipient is decided once.
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>

#include "smtp/session.hpp"

using namespace mxp::smtp;

namespace {

void check_output(std::string_view out) {
  // Whole CRLF lines, each a command we know; DATA (or BDAT) never.
  if (out.empty()) return;
  if (out.size() < 2 || out.substr(out.size() - 2) != "\r\n") abort();
  size_t pos = 0;
  while (pos < out.size()) {
    const size_t end = out.find("\r\n", pos);
    const std::string_view line = out.substr(pos, end - pos);
    pos = end + 2;
    if (line.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos) abort();
    const bool known = line.rfind("EHLO ", 0) == 0 || line.rfind("HELO ", 0) == 0 ||
                       line.rfind("MAIL FROM:<", 0) == 0 || line.rfind("RCPT TO:<", 0) == 0 ||
                       line == "RSET" || line == "QUIT";
    if (!known) abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  static const SessionConfig cfg_pipe = [] {
    SessionConfig c;
    c.helo_name = "probe.mxprobe.test";
    c.mail_from = "verify@mxprobe.test";
    c.max_rcpts_per_transaction = 2;
    c.reply_limits.max_line_bytes = 256;
    c.reply_limits.max_lines = 8;
    return c;
  }();
  static const SessionConfig cfg_plain = [] {
    SessionConfig c = cfg_pipe;
    c.use_pipelining = false;
    c.mail_from.clear();
    return c;
  }();
  Session s(data[0] & 1 ? cfg_plain : cfg_pipe);
  TimePoint now{};
  const uint8_t seed = data[1];
  const int n_rcpt = 1 + (data[0] >> 1) % 5;
  size_t results = 0;
  std::set<uint64_t> ids;
  auto drain = [&] {
    check_output(s.pending_output());
    s.consume_output(s.pending_output().size());
    while (auto r = s.pop_result()) {
      if (!ids.insert(r->id).second) abort();  // decided twice
      if (r->outcome.failure == Failure::None &&
          (r->outcome.reply.code < 200 || r->outcome.reply.code > 599))
        abort();
      ++results;
    }
  };
  s.start(now);
  s.on_connected(now);
  for (int i = 0; i < n_rcpt - 1; ++i)
    s.add_recipient("user" + std::to_string(i) + "@example.org", i, now);
  drain();
  std::string_view wire(reinterpret_cast<const char*>(data + 2), size - 2);
  for (size_t i = 0; !wire.empty(); ++i) {
    const size_t n = std::min<size_t>(wire.size(), 1 + ((seed >> (i % 8)) ^ i) % 48);
    const std::string_view chunk = wire.substr(0, n);
    wire.remove_prefix(n);
    if (chunk[0] == '\x01' && s.next_deadline()) {  // a timer expiry instead of these bytes
      now = *s.next_deadline();
      s.on_timeout(now);
    } else {
      now += std::chrono::milliseconds(1);
      s.on_bytes(chunk, now);
    }
    if (i == 2) {  // a pool adding work while the session runs, then finishing
      s.add_recipient("late@example.org", n_rcpt - 1, now);
      s.finish(now);
    }
    drain();
  }
  if (size % 3 == 0) s.add_recipient("late@example.org", n_rcpt - 1, now);
  s.on_closed(now);
  drain();
  if (s.undecided() != 0 || !s.done()) abort();
  // Every recipient that was queued is decided exactly once.
  if (results != ids.size() || results > static_cast<size_t>(n_rcpt)) abort();
  if (results < static_cast<size_t>(n_rcpt - 1)) abort();
  return 0;
}
