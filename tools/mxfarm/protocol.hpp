// Pure helpers of the farm's SMTP server side: command verbs and reverse/forward paths.
// Deliberately written apart from the engine's parser (mxfarm is a test double).
#pragma once

#include <string_view>

#include "scenario.hpp"

namespace mxfarm {

// Splits "VERB args" (RFC 5321 section 4.1.1: verbs are case-insensitive). Returns Cmd::Other
// for unknown verbs; *arg gets the text after the first space (may be empty).
Cmd parse_command(std::string_view line, std::string_view* arg);

// Parses "FROM:<path> params" / "TO:<path> params" (keyword case-insensitive; like Postfix,
// tolerates spaces after the colon and a path without brackets). Source routes
// ("<@a,@b:user@d>", RFC 5321 section 4.1.2) are dropped. Returns false on bad syntax.
bool parse_path_arg(std::string_view arg, std::string_view keyword, std::string_view* path);

// A recipient worth looking up: local@domain, both non-empty, no spaces or control bytes.
bool split_mailbox(std::string_view addr, std::string_view* local, std::string_view* domain);

// ASCII lower-casing into a caller's buffer (no allocation); returns the lowered view, or an
// empty view when it does not fit.
std::string_view lower_into(std::string_view s, char* buf, size_t cap);

}  // namespace mxfarm
