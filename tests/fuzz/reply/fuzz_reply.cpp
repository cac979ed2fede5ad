// libFuzzer target for the SMTP reply parser. Input: 2 bytes of limits, 4 bytes of chunk sizes,
// then the server's bytes. Feeding in chunks must give exactly what feeding at once gives, and no
// reply may break the limits or the RFC 5321 §4.2 / RFC 3463 shape.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "smtp/reply_parser.hpp"

using mxp::smtp::parse_reply;
using mxp::smtp::Reply;
using mxp::smtp::ReplyLimits;
using mxp::smtp::ReplyParser;

namespace {

struct Result {
  std::vector<Reply> replies;
  bool failed;
  std::string error;
};

bool same(const Reply& a, const Reply& b) {
  return a.code == b.code && a.enhanced == b.enhanced && a.lines == b.lines;
}

bool same(const Result& a, const Result& b) {
  if (a.failed != b.failed || a.error != b.error || a.replies.size() != b.replies.size())
    return false;
  for (size_t i = 0; i < a.replies.size(); ++i)
    if (!same(a.replies[i], b.replies[i])) return false;
  return true;
}

Result whole(std::string_view wire, ReplyLimits lim) {
  ReplyParser p(lim);
  Result r;
  while (auto x = p.next(wire))
    r.replies.push_back(std::move(*x));
  r.failed = p.failed();
  r.error = p.error();
  return r;
}

Result chunked(std::string_view wire, ReplyLimits lim, const uint8_t* sizes) {
  ReplyParser p(lim);
  Result r;
  for (size_t i = 0; !wire.empty() && !p.failed(); ++i) {
    const size_t n = std::min<size_t>(wire.size(), 1 + sizes[i % 4] % 64);
    std::string_view chunk = wire.substr(0, n);
    wire.remove_prefix(n);
    while (auto x = p.next(chunk))
      r.replies.push_back(std::move(*x));
  }
  r.failed = p.failed();
  r.error = p.error();
  return r;
}

Result queued(std::string_view wire, ReplyLimits lim) {
  ReplyParser p(lim);
  Result r;
  for (size_t i = 0; i < wire.size(); i += 7)
    p.feed(wire.substr(i, 7));
  while (auto x = p.pop())
    r.replies.push_back(std::move(*x));
  r.failed = p.failed();
  r.error = p.error();
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 6) return 0;
  ReplyLimits lim;
  lim.max_line_bytes = 6 + data[0];  // small caps, so the fuzzer reaches them
  lim.max_lines = 1 + data[1] % 16;
  const uint8_t* sizes = data + 2;
  const std::string_view wire(reinterpret_cast<const char*>(data + 6), size - 6);

  const Result a = whole(wire, lim);
  if (!same(a, chunked(wire, lim, sizes))) abort();
  if (!same(a, queued(wire, lim))) abort();
  for (const Reply& r : a.replies) {
    if (r.code < 200 || r.code > 599) abort();
    if (r.lines.empty() || r.lines.size() > lim.max_lines) abort();
    for (const auto& l : r.lines)
      if (l.size() + 4 >= lim.max_line_bytes || l.find('\n') != std::string::npos) abort();
    if (r.enhanced.present &&
        (r.enhanced.cls != r.code / 100 || r.enhanced.subject > 999 || r.enhanced.detail > 999))
      abort();
  }
  if (a.failed == a.error.empty()) abort();

  // parse_reply accepts exactly one complete reply: the same one the stream parser sees first.
  if (auto one = parse_reply(wire)) {
    std::string w(wire);
    if (w.back() != '\n') w += '\n';
    const Result d = whole(w, ReplyLimits{});
    if (d.failed || d.replies.size() != 1 || !same(d.replies[0], *one)) abort();
  }
  return 0;
}
