// Forward declarations of the CLI11 types that the option-registering headers name. CLI11 is
// header-only and costs seconds of compile time in every file that includes it; only the files
// that define options or parse a command line include <CLI/CLI.hpp>.
#pragma once

namespace CLI {
class App;
class Validator;
}  // namespace CLI
