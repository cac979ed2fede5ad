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

}  // namespace mxp::smtp
