// Parsing JSON that comes from outside (HTTP bodies, WebSocket commands) with bounds: its size,
// its nesting depth and its number of values are checked by a SAX pass (nlohmann's parser is
// iterative, so the check itself cannot overflow the stack) before any tree is built. A tree
// deeper than the bound is never built, copied, dumped or destroyed, all of which recurse.
// Every place that parses JSON from a client goes through parse_bounded().
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/expected.hpp"

namespace mxp::json {

struct ParseLimits {
  size_t max_bytes = 1 << 20;   // the text
  size_t max_depth = 32;        // nesting of arrays and objects (a scalar is depth 0)
  size_t max_values = 1 << 16;  // scalars, arrays, objects and keys, all together
};

// Limits of the `mxprobe serve` API: WebSocket commands and JSON request bodies.
inline constexpr ParseLimits kCommandLimits{64 * 1024, 16, 4096};
inline constexpr ParseLimits kBodyLimits{1 << 20, 16, 1 << 16};

// Checks `text` against `limits` without building anything; the error is a sentence for the
// client: "nested deeper than 16 levels", "not JSON (error at byte 7)", ...
core::Expected<void, std::string> check_json(std::string_view text, const ParseLimits& limits);

// check_json(), then the tree (nlohmann::json or nlohmann::ordered_json); check_json's error.
template <class Json = nlohmann::json>
core::Expected<Json, std::string> parse_bounded(std::string_view text, const ParseLimits& limits) {
  if (auto checked = check_json(text, limits); !checked) return core::unexpected(checked.error());
  Json j = Json::parse(text, nullptr, false);
  if (j.is_discarded()) return core::unexpected("not JSON");
  return j;
}

}  // namespace mxp::json
