// Appending JSON text to a buffer, for the hot output paths (one record per input line at
// millions per second, where building a DOM per record would dominate the cost).
// Strings are escaped per RFC 8259 §7; bytes that are not valid UTF-8 become U+FFFD so the
// output is always valid JSON even for binary garbage input.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mxp::json {

// Appends s as a quoted JSON string.
void append_string(std::string& out, std::string_view s);

// Appends s as a quoted JSON string, or null when s is empty (a field that has no value).
void append_string_or_null(std::string& out, std::string_view s);

// Appends true, false, or null when b has no value.
void append_bool_or_null(std::string& out, std::optional<bool> b);

// Appends an unsigned integer in decimal.
void append_uint(std::string& out, uint64_t v);

// True when s is valid UTF-8 (RFC 3629: no overlongs, no surrogates, at most U+10FFFF).
bool valid_utf8(std::string_view s);

}  // namespace mxp::json
