// mxprobe's command line: one subcommand per job (docs/usage.md). Parsing only; the work lives
// in the app library so that tests drive it without a process.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "app/syntax.hpp"

int main(int argc, char** argv) {
  CLI::App app{"mxprobe: verify email addresses by asking their mail servers (never sends DATA)"};
  app.set_version_flag("--version", "mxprobe 0.1.0");
  app.require_subcommand(1);

  mxp::app::SyntaxOptions syn;
  std::string format = "auto";
  bool no_progress = false, status_lines = false;
  auto* s = app.add_subcommand("syntax", "check and normalise addresses offline (no network)");
  s->add_option("-i,--input", syn.input, "input file, '-' for stdin")->capture_default_str();
  s->add_option("-o,--output", syn.output, "output file (JSON Lines), '-' for stdout")
      ->capture_default_str();
  auto* col = s->add_option("--column", syn.records.column, "CSV column holding the address")
                  ->capture_default_str();
  s->add_option("--input-format", format, "auto, lines or csv")
      ->check(CLI::IsMember({"auto", "lines", "csv"}))
      ->capture_default_str();
  s->add_flag("--no-progress", no_progress, "never show progress");
  s->add_flag("--progress", status_lines, "show progress even when stderr is not a terminal");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  if (*s) {
    syn.records.column_given = col->count() > 0;
    syn.records.format = format == "lines" ? mxp::app::InputFormat::Lines
                         : format == "csv" ? mxp::app::InputFormat::Csv
                                           : mxp::app::InputFormat::Auto;
    syn.progress = no_progress ? 0 : status_lines ? 1 : -1;
    return mxp::app::run_syntax(syn, stderr);
  }
  return 2;
}
