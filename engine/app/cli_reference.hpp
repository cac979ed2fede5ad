// The command-line reference (docs/cli.md, `mxprobe help COMMAND`) generated from the CLI11
// definition itself, so that it cannot drift from what the binary accepts: each command's
// synopsis, options with their values and defaults, exit codes and examples.
#pragma once

#include <CLI/CLI.hpp>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mxp::app {

// What the CLI11 definition does not say: exit codes and examples.
struct CommandDoc {
  std::string name;
  std::vector<std::pair<int, std::string>> exit_codes;
  std::vector<std::string> examples;  // shell lines (comments start with #)
  std::string more;                   // a pointer to the longer documentation
};

// One command's reference as Markdown (docs/cli.md).
std::string command_reference(const CLI::App& cmd, const CommandDoc& doc);
// The same as text for a terminal (`mxprobe help COMMAND`): what --help says, then the exit
// codes and the examples, every line within `width` columns where words allow.
std::string command_reference_text(const CLI::App& cmd, const CommandDoc& doc, std::size_t width);
// Every documented command, in the order given, under a title and the command list.
std::string cli_reference(const CLI::App& app, const std::vector<CommandDoc>& docs);

// `text` with its lines broken at spaces to fit `width` columns, the lines after the first of
// each paragraph (line breaks in `text` are kept) indented by `indent` spaces. A word longer
// than a line stays whole on a line of its own. No trailing spaces.
std::string wrap_text(std::string_view text, std::size_t width, std::size_t indent = 0);
// A CLI11 formatter whose descriptions (options, commands, the command's own, the footer) wrap
// within `width` columns, under their column; CLI11 2.3's own prints each on one line.
std::shared_ptr<CLI::Formatter> wrapping_formatter(std::size_t width);
// Columns for help text: the terminal's width when `fd` is one (clamped to 60-120), else 80.
std::size_t help_width(int fd);

// The command name closest to `typed` (edit distance at most 2 or a prefix), "" when none is.
std::string closest_command(const std::string& typed, const std::vector<std::string>& names);

}  // namespace mxp::app
