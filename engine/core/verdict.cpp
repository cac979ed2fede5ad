#include "core/verdict.hpp"

namespace mxp {

std::optional<Verdict> parse_verdict(std::string_view s) {
  for (int i = 0; i < kVerdictCount; ++i)
    if (to_string(static_cast<Verdict>(i)) == s) return static_cast<Verdict>(i);
  return std::nullopt;
}

std::optional<Reason> parse_reason(std::string_view s) {
  for (int i = 0; i < kReasonCount; ++i)
    if (to_string(static_cast<Reason>(i)) == s) return static_cast<Reason>(i);
  return std::nullopt;
}

}  // namespace mxp
