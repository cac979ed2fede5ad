#include "core/json_out.hpp"

#include <array>
#include <charconv>

namespace mxp::json {
namespace {

// Length of the valid UTF-8 sequence starting at p (1..4), or 0 when it is not valid.
size_t utf8_seq_len(const unsigned char* p, size_t avail) {
  unsigned char c = p[0];
  if (c < 0x80) return 1;
  size_t n;
  uint32_t cp;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2, cp = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3, cp = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4, cp = c & 0x07;
  } else {
    return 0;
  }
  if (avail < n) return 0;
  for (size_t i = 1; i < n; ++i) {
    if ((p[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (p[i] & 0x3F);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
      (cp >= 0xD800 && cp <= 0xDFFF))
    return 0;
  return n;
}

}  // namespace

bool valid_utf8(std::string_view s) {
  auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t i = 0, n = s.size();
  while (i < n) {
    if (p[i] < 0x80) {
      ++i;
      continue;
    }
    size_t len = utf8_seq_len(p + i, n - i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

namespace {
// Bytes that go into a JSON string as they are: printable ASCII but '"' and '\\'.
constexpr std::array<bool, 256> kPlain = [] {
  std::array<bool, 256> t{};
  for (int c = 0x20; c < 0x80; ++c)
    t[c] = c != '"' && c != '\\';
  return t;
}();
}  // namespace

void append_string(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t n = s.size(), i = 0, run = 0;  // [run, i) is a stretch that needs no escaping
  auto flush = [&] { out.append(s.data() + run, i - run); };
  while (i < n) {
    // The common case, a stretch of plain ASCII: one table load per byte (every record is made
    // of such strings; this loop was the largest single cost of writing one).
    while (i < n && kPlain[p[i]])
      ++i;
    if (i == n) break;
    unsigned char c = p[i];
    if (c >= 0x80) {
      size_t len = utf8_seq_len(p + i, n - i);
      if (len != 0) {
        i += len;
        continue;
      }
      flush();
      out.append("\xEF\xBF\xBD");  // U+FFFD REPLACEMENT CHARACTER
      run = ++i;
      continue;
    }
    flush();
    switch (c) {
      case '"':
        out.append("\\\"");
        break;
      case '\\':
        out.append("\\\\");
        break;
      case '\n':
        out.append("\\n");
        break;
      case '\r':
        out.append("\\r");
        break;
      case '\t':
        out.append("\\t");
        break;
      default:
        out.append("\\u00");
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 0xF]);
    }
    run = ++i;
  }
  flush();
  out.push_back('"');
}

void append_uint(std::string& out, uint64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  (void)ec;
  out.append(buf, end);
}

void append_string_or_null(std::string& out, std::string_view s) {
  if (s.empty())
    out.append("null");
  else
    append_string(out, s);
}

void append_bool_or_null(std::string& out, std::optional<bool> b) {
  out.append(!b ? "null" : *b ? "true" : "false");
}

}  // namespace mxp::json
