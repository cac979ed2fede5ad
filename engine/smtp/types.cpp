#include "smtp/types.hpp"

namespace mxp::smtp {

std::string EnhancedCode::str() const {
  if (!present) return {};
  return std::to_string(cls) + '.' + std::to_string(subject) + '.' + std::to_string(detail);
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
