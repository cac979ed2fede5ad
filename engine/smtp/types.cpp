#include "smtp/types.hpp"

#include <charconv>

namespace mxp::smtp {

std::string EnhancedCode::str() const {
  if (!present) return {};
  // Every record carries one or two of these: to_chars into one buffer, not three strings.
  char buf[20];  // room for the largest values the types hold: 255.65535.65535
  char* p = std::to_chars(buf, buf + 3, cls).ptr;
  *p++ = '.';
  p = std::to_chars(p, p + 5, subject).ptr;
  *p++ = '.';
  p = std::to_chars(p, p + 5, detail).ptr;
  return std::string(buf, p);
}

std::string Reply::text() const {
  std::string out;
  for (const auto& l : lines) {
    if (!out.empty()) out += ' ';
    out += l;
  }
  return out;
}

std::optional<StartTlsMode> parse_starttls_mode(std::string_view s) {
  for (size_t i = 0; i < kStartTlsModeNames.size(); ++i)
    if (s == kStartTlsModeNames[i]) return static_cast<StartTlsMode>(i);
  return std::nullopt;
}

}  // namespace mxp::smtp
