// mxprobe's command line: one subcommand per job (docs/usage.md). Parsing only; the work lives
// in the app library so that tests drive it without a process.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "app/syntax.hpp"
#include "app/verify.hpp"

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

  mxp::app::EngineOptions eng;
  mxp::app::CheckOptions chk;
  auto* c = app.add_subcommand("check", "verify a few addresses and print a readable report");
  c->add_option("address", chk.addresses, "addresses to verify")->required();
  c->add_flag("--json", chk.json, "print the JSON record of each address");
  c->add_flag("-v,--verbose", chk.verbose, "show the SMTP transcript and the event loop chosen");
  mxp::app::add_engine_options(*c, eng);

  mxp::app::VerifyOptions ver;
  std::string vformat = "jsonl", vinformat = "auto";
  bool v_no_progress = false, v_status = false;
  auto* v =
      app.add_subcommand("verify", "verify a list of addresses (streamed; JSON Lines or CSV out)");
  v->add_option("-i,--input", ver.input, "input file, '-' for stdin")->capture_default_str();
  v->add_option("-o,--output", ver.output, "output file, '-' for stdout")->capture_default_str();
  v->add_option("--format", vformat, "output format: jsonl or csv")
      ->check(CLI::IsMember({"jsonl", "csv"}))
      ->capture_default_str();
  auto* vcol = v->add_option("--column", ver.records.column, "CSV column holding the address")
                   ->capture_default_str();
  v->add_option("--input-format", vinformat, "auto, lines or csv")
      ->check(CLI::IsMember({"auto", "lines", "csv"}))
      ->capture_default_str();
  v->add_flag("--transcript", ver.transcripts, "add each address's SMTP dialogue to its record");
  v->add_flag("--no-progress", v_no_progress, "never show progress");
  v->add_flag("--progress", v_status, "status lines even when stderr is not a terminal");
  mxp::app::add_engine_options(*v, eng);

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
  if (*c) return mxp::app::run_check(chk, eng, stdout, stderr);
  if (*v) {
    ver.records.column_given = vcol->count() > 0;
    ver.records.format = vinformat == "lines" ? mxp::app::InputFormat::Lines
                         : vinformat == "csv" ? mxp::app::InputFormat::Csv
                                              : mxp::app::InputFormat::Auto;
    ver.format = vformat == "csv" ? mxp::app::OutputFormat::Csv : mxp::app::OutputFormat::Jsonl;
    ver.progress = v_no_progress ? 0 : v_status ? 1 : -1;
    return mxp::app::run_verify(ver, eng, stderr);
  }
  return 2;
}
