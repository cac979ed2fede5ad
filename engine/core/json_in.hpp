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

namespace mxp::json {

struct ParseLimits {
  size_t max_bytes = 1 << 20;   // the text
  size_t max_depth = 32;        // nesting of arrays and objects (a scalar is depth 0)
  size_t max_values = 1 << 16;  // scalars, arrays, objects and keys, all together
};

// Limits of the `mxprobe serve` API: WebSocket commands and JSON request bodies.
inline constexpr ParseLimits kCommandLimits{64 * 1024, 16, 4096};
inline constexpr ParseLimits kBodyLimits{1 << 20, 16, 1 << 16};

// Checks `text` against `limits` without building anything; false with `err` set (a sentence
// for the client: "nested deeper than 16 levels", "not JSON: ... at byte 7", ...).
bool check_json(std::string_view text, const ParseLimits& limits, std::string& err);

// check_json(), then the tree. False with `err` set; `out` is then left as it was.
template <class Json>
bool parse_bounded(std::string_view text, const ParseLimits& limits, Json& out, std::string& err) {
  if (!check_json(text, limits, err)) return false;
  Json j = Json::parse(text, nullptr, false);
  if (j.is_discarded()) {
    err = "not JSON";
    return false;
  }
  out = std::move(j);
  return true;
}

}  // namespace mxp::json
