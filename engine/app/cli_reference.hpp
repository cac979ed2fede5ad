// The command-line reference (docs/cli.md, `mxprobe help COMMAND`) generated from the CLI11
// definition itself, so that it cannot drift from what the binary accepts: each command's
// synopsis, options with their values and defaults, exit codes and examples.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
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

// One command's reference, Markdown that reads as plain text too.
std::string command_reference(const CLI::App& cmd, const CommandDoc& doc);
// Every documented command, in the order given, under a title and the command list.
std::string cli_reference(const CLI::App& app, const std::vector<CommandDoc>& docs);

// The command name closest to `typed` (edit distance at most 2 or a prefix), "" when none is.
std::string closest_command(const std::string& typed, const std::vector<std::string>& names);

}  // namespace mxp::app
