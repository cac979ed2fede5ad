// Incremental SMTP reply parser: splits bytes into lines (memchr, no per-byte work beyond the
// scan), checks each line against RFC 5321 §4.2 and assembles multi-line replies.
#include "smtp/reply_parser.hpp"

#include <cstring>
#include <utility>

namespace mxp::smtp {

namespace {

constexpr bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// A partial line larger than this is released after use, so an idle parser stays small even
// after a server once sent a long line split across reads.
constexpr size_t kKeepLineCapacity = 512;

}  // namespace

std::optional<EnhancedCode> take_enhanced_code(std::string_view& text, int reply_class) {
  // RFC 3463 §2: status-code = class "." subject "." detail; class = "2" / "4" / "5";
  // subject = 1*3digit; detail = 1*3digit.
  if (text.size() < 5) return std::nullopt;
  const char c = text[0];
  if (c != '2' && c != '4' && c != '5') return std::nullopt;
  if (c - '0' != reply_class) return std::nullopt;  // RFC 3463 §3: class matches the reply code
  if (text[1] != '.') return std::nullopt;
  size_t i = 2;
  uint16_t parts[2] = {0, 0};
  for (int p = 0; p < 2; ++p) {
    size_t digits = 0;
    uint16_t v = 0;
    while (i < text.size() && is_digit(text[i]) && digits < 4) {
      v = static_cast<uint16_t>(v * 10 + (text[i] - '0'));
      ++i;
      ++digits;
    }
    if (digits == 0 || digits > 3) return std::nullopt;
    parts[p] = v;
    if (p == 0) {
      if (i >= text.size() || text[i] != '.') return std::nullopt;
      ++i;
    }
  }
  // The code must stand alone: followed by a space or the end of the text.
  if (i < text.size() && text[i] != ' ') return std::nullopt;
  EnhancedCode e;
  e.present = true;
  e.cls = static_cast<uint8_t>(c - '0');
  e.subject = parts[0];
  e.detail = parts[1];
  text.remove_prefix(i < text.size() ? i + 1 : i);
  return e;
}

bool ReplyParser::fail(std::string message) {
  failed_ = true;
  error_ = std::move(message);
  return false;
}

bool ReplyParser::take_line(std::string_view s, bool& last) {
  // RFC 5321 §4.2: Reply-line = *( Reply-code "-" [ textstring ] CRLF )
  //                             Reply-code [ SP textstring ] CRLF
  if (s.size() < 3 || !is_digit(s[0]) || !is_digit(s[1]) || !is_digit(s[2]))
    return fail("garbage: reply line does not start with a 3-digit code");
  const int code = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
  // §4.2 restricts the first digit to 2..5 (1yz is unused in SMTP). The second digit's 0..5 rule is
  // not enforced: servers in the wild send e.g. 571, and rejecting those would hide their answer.
  if (code < 200 || code > 599)
    return fail("reply code " + std::to_string(code) + " outside 200..599");
  if (s.size() > 3 && s[3] != ' ' && s[3] != '-')
    return fail("garbage: reply code not followed by space, '-' or end of line");
  if (in_reply_ && code != cur_.code)
    return fail("mismatched codes in one reply: " + std::to_string(cur_.code) + " then " +
                std::to_string(code));
  if (cur_.lines.size() >= limits_.max_lines)
    return fail("more than " + std::to_string(limits_.max_lines) + " lines in one reply");
  if (!in_reply_) {
    in_reply_ = true;
    cur_.code = code;
  }
  last = s.size() == 3 || s[3] == ' ';
  std::string_view text = s.size() > 4 ? s.substr(4) : std::string_view{};
  if (auto e = take_enhanced_code(text, code / 100)) {
    if (!cur_.enhanced.present) cur_.enhanced = *e;  // the first line that carries one wins
  }
  cur_.lines.emplace_back(text);
  return true;
}

std::optional<Reply> ReplyParser::next(std::string_view& in, LineHook hook, void* user) {
  if (ready_head_ < ready_.size()) return pop();
  return parse_one(in, hook, user);
}

std::optional<Reply> ReplyParser::parse_one(std::string_view& in, LineHook hook, void* user) {
  while (!failed_ && !in.empty()) {
    const void* nl = std::memchr(in.data(), '\n', in.size());
    if (nl == nullptr) {
      // No terminator yet: the line will be at least one byte longer than what we have.
      if (line_.size() + in.size() + 1 > limits_.max_line_bytes) {
        fail("reply line longer than " + std::to_string(limits_.max_line_bytes) + " bytes");
        return std::nullopt;
      }
      line_.append(in);
      in = {};
      return std::nullopt;
    }
    const size_t n = static_cast<size_t>(static_cast<const char*>(nl) - in.data()) + 1;
    if (line_.size() + n > limits_.max_line_bytes) {
      fail("reply line longer than " + std::to_string(limits_.max_line_bytes) + " bytes");
      return std::nullopt;
    }
    std::string_view line;
    if (line_.empty()) {
      line = in.substr(0, n);  // common case: the whole line is in the caller's buffer
    } else {
      line_.append(in.data(), n);
      line = line_;
    }
    in.remove_prefix(n);
    line.remove_suffix(1);                                            // LF
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);  // CRLF, or a bare LF
    if (hook != nullptr) hook(user, line);
    bool last = false;
    const bool ok = take_line(line, last);
    if (!line_.empty()) {
      line_.clear();
      if (line_.capacity() > kKeepLineCapacity) std::string().swap(line_);
    }
    if (!ok) return std::nullopt;
    if (last) {
      in_reply_ = false;
      Reply r = std::move(cur_);
      cur_ = Reply{};
      return r;
    }
  }
  return std::nullopt;
}

bool ReplyParser::feed(std::string_view bytes) {
  if (ready_head_ == ready_.size()) {
    ready_.clear();
    ready_head_ = 0;
  }
  while (auto r = parse_one(bytes, nullptr, nullptr))
    ready_.push_back(std::move(*r));
  return !failed_;
}

std::optional<Reply> ReplyParser::pop() {
  if (ready_head_ >= ready_.size()) return std::nullopt;
  Reply r = std::move(ready_[ready_head_++]);
  if (ready_head_ == ready_.size()) {
    ready_.clear();
    ready_head_ = 0;
  }
  return r;
}

void ReplyParser::reset() {
  const Limits l = limits_;
  *this = ReplyParser(l);
}

std::optional<Reply> parse_reply(std::string_view wire) {
  ReplyParser p;
  std::string_view in = wire;
  std::optional<Reply> r = p.next(in);
  if (!r && !p.failed() && in.empty() && !wire.empty() && wire.back() != '\n') {
    std::string_view end = "\n";  // the final terminator may be omitted
    r = p.next(end);
  }
  if (!r || !in.empty()) return std::nullopt;
  return r;
}

}  // namespace mxp::smtp
