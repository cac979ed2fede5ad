// mxprobe's command line: one subcommand per job (docs/usage.md). Parsing only; the work lives
// in the app library so that tests drive it without a process.
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <optional>
#include <tuple>

#include "app/bench_server.hpp"
#include "app/cli_reference.hpp"
#include "app/doctor.hpp"
#include "app/domain_check.hpp"
#include "app/probe_server.hpp"
#include "app/serve.hpp"
#include "app/syntax.hpp"
#include "app/verify.hpp"
#include "app/worker.hpp"
#include "sched/policy.hpp"

namespace {

// The options every list-reading command shares: input, output, CSV column, input format,
// progress. finish() turns what CLI11 parsed into the command's settings.
struct ListOptions {
  std::string input = "-", output = "-", input_format = "auto";
  mxp::app::RecordOptions records;
  bool no_progress = false, status_lines = false, quiet = false;
  CLI::Option* column = nullptr;

  void add(CLI::App& cmd, const char* output_help) {
    cmd.add_option("-i,--input", input, "input file, '-' for stdin")->capture_default_str();
    cmd.add_option("-o,--output", output, output_help)->capture_default_str();
    column = cmd.add_option("--column", records.column, "CSV column holding the address")
                 ->capture_default_str();
    cmd.add_option("--input-format", input_format, "auto, lines or csv")
        ->check(CLI::IsMember({"auto", "lines", "csv"}))
        ->capture_default_str();
    cmd.add_flag("--no-progress", no_progress, "never show progress");
    cmd.add_flag("--progress", status_lines, "status lines even when stderr is not a terminal");
    cmd.add_flag("-q,--quiet", quiet,
                 "errors and warnings only on stderr: no progress, no summary");
  }
  void finish() {
    records.column_given = column->count() > 0;
    records.format = input_format == "lines" ? mxp::app::InputFormat::Lines
                     : input_format == "csv" ? mxp::app::InputFormat::Csv
                                             : mxp::app::InputFormat::Auto;
  }
  int progress() const { return no_progress || quiet ? 0 : status_lines ? 1 : -1; }
};

// What the CLI11 definition does not say about each command: exit codes (the same numbers mean
// the same things in every command: 0 ok, 2 usage, 3 the engine could not start) and examples.
// docs/cli.md is generated from these and the definition below.
std::vector<mxp::app::CommandDoc> command_docs() {
  const std::pair<int, std::string> usage{
      2,
      "usage error: unknown option, bad value, malformed --dns, --policy file that does not "
      "parse (nothing was started)"};
  const std::pair<int, std::string> engine{
      3, "the engine could not start (event loop, the system's DNS configuration)"};
  const std::pair<int, std::string> cluster{
      mxp::app::kExitCluster,
      "the cluster refused this node: Redis refused the handshake (wrong password, unknown ACL "
      "user, db out of range, no Redis 7 functions), its host name does not resolve, or "
      "--node-name is held by a live node (a Redis that does not answer is not an error: the "
      "node starts and keeps trying)"};
  return {
      {"check",
       {{0,
         "every address verified and none is undeliverable; with --domain: every domain takes "
         "mail, or could not be judged"},
        {4,
         "at least one address is undeliverable; with --domain: a domain takes no mail (null "
         "MX, no such domain, no mail server, every server refuses)"},
        {2,
         "usage error: unknown option, bad value, a --domain that is not a domain, addresses "
         "and --domain together, a --deny/--allow file with a bad line (nothing was started)"},
        engine},
       {"mxprobe check alice@example.org",
        "mxprobe check --verbose alice@example.org bob@example.net",
        "mxprobe check --json --tries 0 alice@example.org   # wait out greylisting",
        "mxprobe check --domain example.org"},
       "[usage.md](usage.md#mxprobe-check)"},
      {"verify",
       {{0, "every record written"},
        {1, "an I/O, journal or store error (what is written is kept; the journal can resume)"},
        {2,
         "usage error, or an up-front input error (unreadable input, a named --column not in "
         "the header, a journal holding an unfinished job without --resume)"},
        engine,
        {5,
         "the DNS resolver does not answer: the job stopped, finished work is kept; run it "
         "again with --resume and a resolver that answers"},
        {mxp::app::kExitNoSource,
         "the start-up checks left no source in rotation (every source IP listed on a "
         "blocklist, without working port 25, or not binding): nothing was verified "
         "(--keep-unhealthy-sources, mxprobe doctor)"},
        {130, "stopped by Ctrl-C or SIGTERM: run the same command with --resume"}},
       {"mxprobe verify -i list.csv -o results.jsonl",
        "mxprobe verify -i list.txt -o results.csv --format csv \\",
        "    --source-ip 198.51.100.7,198.51.100.8",
        "# after Ctrl-C or a crash:", "mxprobe verify -i list.csv -o results.jsonl --resume",
        "# the unknowns whose retry is now due:",
        "mxprobe verify --retry-unknown results.jsonl -o results2.jsonl"},
       "[usage.md](usage.md#mxprobe-verify), [jobs.md](jobs.md)"},
      {"syntax",
       {{0, "every record written (invalid addresses are results, not failures)"},
        {1, "an I/O error while reading or writing"},
        {2,
         "usage error, or an up-front input error (unreadable input, a named --column not in "
         "the header)"}},
       {"mxprobe syntax -i list.txt -o checked.jsonl", "mxprobe syntax --column Mail < list.csv"},
       "[usage.md](usage.md#mxprobe-syntax)"},
      {"serve",
       {{0, "stopped by SIGINT or SIGTERM"},
        {2,
         "usage error, or the server cannot start as asked (address in use, a non-loopback "
         "--listen without a token, an unreadable --token-file, --data not creatable, a "
         "--cluster URL that does not parse, a --webhook-ca-file without a PEM certificate)"},
        engine,
        cluster},
       {"mxprobe serve --listen 127.0.0.1:8025 --data ~/mxprobe-jobs",
        "mxprobe serve --listen 0.0.0.0:8025 --token-file token \\",
        "    --console build/release/admin-wasm/dist",
        "mxprobe serve --cluster redis://:secret@10.0.0.5:6379/0 \\",
        "    --source-ip 198.51.100.7"},
       "[api.md](api.md), [cluster.md](cluster.md)"},
      {"worker",
       {{0, "stopped by SIGINT or SIGTERM (its record deleted from the cluster)"},
        {2,
         "usage error: a --cluster URL that does not parse, a --metrics-listen that cannot "
         "start (address in use, non-loopback without a token)"},
        engine,
        cluster},
       {"mxprobe worker --cluster redis://:secret@10.0.0.5:6379/0 \\",
        "    --source-ip 198.51.100.8",
        "mxprobe worker --cluster redis://10.0.0.5 --node-name mx-b \\",
        "    --metrics-listen 127.0.0.1:8026"},
       "[cluster.md](cluster.md)"},
      {"doctor",
       {{0,
         "nothing found would make verification fail (warnings and \"could not check\" "
         "items may remain: docs/identity.md#reading-doctor)"},
        {1,
         "something would make verification fail: no usable source (every one listed, "
         "port-25-blocked or not binding), the resolver does not answer, port 25 blocked from "
         "every source, or an open-file limit too low"},
        usage,
        engine},
       {"mxprobe doctor --source-ip 198.51.100.7,198.51.100.8",
        "mxprobe doctor --dns 127.0.0.1 --json",
        "mxprobe doctor --dnsbl zen.spamhaus.org --port25-target mx.example.org:25"},
       "[identity.md](identity.md#doctor)"},
      {"probe-server",
       {{0, "every figure asked for was measured"},
        {1,
         "nothing was measured: the target could not be resolved or reached, or refused us at "
         "once (the report says why)"},
        usage,
        engine,
        {5, "some figures were not measured (the report lists them, each with why)"}},
       {"mxprobe probe-server mx1.example.org", "mxprobe probe-server example.org --json",
        "mxprobe probe-server 192.0.2.25:2525 --domain example.org --no-rate"},
       "[probe.md](probe.md)"},
      {"bench-server",
       {{0, "every step ran and was reported (a server that fell over is a finding, not an error)"},
        {1,
         "the target could not be resolved, or no session of any step completed (the report "
         "is still printed and says why)"},
        {2,
         "usage error: bad --rate/--ramp, a --domain that is not a domain, --data to a public "
         "address without --i-own-this-server, a --compare file that is not a bench-server "
         "run (nothing was started)"},
        engine,
        {4, "the report was printed but gnuplot could not draw --chart"}},
       {"mxprobe bench-server 127.0.0.1:2525 --rate 100,200,400 --step-time 10",
        "mxprobe bench-server mx1.example.org --ramp 100:2000:x2 --json > run.json",
        "mxprobe bench-server 10.0.0.5 --data --rate 500 --chart run.png",
        "mxprobe bench-server --compare before.json after.json --chart compare.png"},
       "[bench-server.md](bench-server.md)"},
      {"help",
       {{0, "the reference was printed"}, {2, "no such command"}},
       {"mxprobe help verify", "mxprobe help --markdown > docs/cli.md"},
       ""},
  };
}

// `mxprobe chek`: CLI11 would say "a subcommand is required". Say which one was meant.
int unknown_command(const CLI::App& app, const std::string& typed) {
  std::vector<std::string> names;
  for (const auto* c :
       app.get_subcommands([](const CLI::App* c) { return !c->get_group().empty(); }))
    names.push_back(c->get_name());
  std::string best = mxp::app::closest_command(typed, names);
  std::string list;
  for (const auto& n : names)
    list += (list.empty() ? "" : ", ") + n;
  const std::string msg =
      best.empty() ? "mxprobe: '" + typed + "' is not a command (commands: " + list +
                         "; mxprobe help COMMAND)"
                   : "mxprobe: '" + typed + "' is not a command; did you mean 'mxprobe " + best +
                         "'? (commands: " + list + ")";
  std::fprintf(stderr, "%s\n",
               mxp::app::wrap_text(msg, mxp::app::help_width(STDERR_FILENO), 2).c_str());
  return 2;
}

// The list of commands (mxprobe help; mxprobe alone).
void print_commands(const CLI::App& app, std::FILE* out) {
  const std::size_t width = mxp::app::help_width(fileno(out));
  std::fprintf(out, "%s\n\nUsage: mxprobe COMMAND [OPTIONS]\n\nCommands:\n",
               mxp::app::wrap_text(app.get_description(), width).c_str());
  for (const auto& d : command_docs())
    std::fprintf(
        out, "  %-14s%s\n", d.name.c_str(),
        mxp::app::wrap_text(app.get_subcommand(d.name)->get_description(), width, 16).c_str());
  std::fprintf(out, "\n%s\n",
               mxp::app::wrap_text("mxprobe help COMMAND: its options, exit codes and examples "
                                   "(all of them: docs/cli.md)",
                                   width)
                   .c_str());
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"mxprobe: verify email addresses by asking their mail servers (never sends DATA)"};
  app.set_version_flag("--version", "mxprobe 0.1.0");
  // Before any command is added: each takes its parent's formatter when it is made.
  app.formatter(mxp::app::wrapping_formatter(mxp::app::help_width(STDOUT_FILENO)));
  app.require_subcommand(1);

  ListOptions syn_list;
  auto* s = app.add_subcommand("syntax", "check and normalise addresses offline (no network)");
  syn_list.add(*s, "output file (JSON Lines), '-' for stdout");
  std::string syn_domain_data;
  s->add_option("--domain-data", syn_domain_data,
                "disposable/free domain lists (default: the one built with mxprobe)");

  mxp::app::EngineOptions eng;
  mxp::app::CheckOptions chk;
  auto* c = app.add_subcommand("check", "verify a few addresses and print a readable report");
  c->add_option("address", chk.addresses, "addresses to verify");
  std::vector<std::string> chk_domains;
  c->add_option("--domain", chk_domains,
                "check a domain instead: its MX hosts, whether it takes mail, catch-all, "
                "STARTTLS, provider (docs/usage.md)")
      ->allow_extra_args(false);
  c->add_flag("--json", chk.json, "print the JSON record of each address");
  c->add_flag("-v,--verbose", chk.verbose, "show the SMTP transcript and the event loop chosen");
  c->add_option("--tries", chk.max_tries,
                "tries per address at most; 1 answers at once (greylisted: unknown), 0: the "
                "policy's retry schedule")
      ->capture_default_str();
  mxp::app::add_engine_options(*c, eng);

  ListOptions ver_list;
  mxp::app::VerifyOptions ver;
  std::string format = "jsonl";
  auto* v =
      app.add_subcommand("verify", "verify a list of addresses (streamed; JSON Lines or CSV out)");
  ver_list.add(*v, "output file, '-' for stdout");
  v->add_option("--format", format,
                "output format: jsonl or csv (default: csv for an output named *.csv, else jsonl)")
      ->check(CLI::IsMember({"jsonl", "csv"}))
      ->capture_default_str();
  v->add_flag("--transcript", ver.transcripts, "add each address's SMTP dialogue to its record");
  std::string order = "input";
  v->add_option("--order", order,
                "output order: input (records in the order of their lines, within a window of "
                "10,000 records) or completion (as they finish)")
      ->check(CLI::IsMember({"input", "completion"}))
      ->capture_default_str();
  v->add_flag("-v,--verbose", ver.verbose, "say which event loop runs, and why");
  v->add_option("--journal", ver.journal,
                "SQLite journal of the job, for --resume (default: OUTPUT.journal)");
  v->add_flag("--no-journal", ver.no_journal, "keep no journal (the job cannot be resumed)");
  v->add_flag("--resume", ver.resume,
              "finish the job in the journal (after a crash or Ctrl-C): same input and output");
  v->add_flag("--keep-journal", ver.keep_journal, "keep the journal when the job finishes");
  v->add_option("--cache", ver.cache, "results cache, SQLite (default: ~/.cache/mxprobe/cache.db)");
  v->add_flag("--no-cache", ver.no_cache, "neither read nor write the results cache");
  std::string cache_ttl = "7d";
  v->add_option("--cache-ttl", cache_ttl, "reuse cached results this recent: 90s, 30m, 12h, 7d")
      ->capture_default_str();
  v->add_option("--retry-unknown", ver.retry_unknown,
                "ask again the unknowns of an earlier output (JSON Lines or CSV) whose "
                "retry_after has come; the other records are copied to -o unchanged")
      ->type_name("OLD_OUTPUT")
      ->excludes("--resume");
  mxp::app::add_engine_options(*v, eng);
  mxp::app::add_doctor_options(*v, eng.doctor, true);

  mxp::app::ServeOptions srv;
  std::string srv_ttl = "7d";
  auto* sv = app.add_subcommand(
      "serve", "HTTP API, WebSocket and metrics on the engine's loop (docs/api.md)");
  sv->add_option("--listen", srv.listen, "IP:PORT to listen on (loopback unless a token is set)")
      ->capture_default_str();
  sv->add_option("--token", srv.token, "Bearer token every endpoint but /healthz needs");
  sv->add_option("--token-file", srv.token_file, "read the token from this file (first line)")
      ->check(CLI::ExistingFile);
  sv->add_option("--console", srv.console, "directory served at / (the admin console)")
      ->check(CLI::ExistingDirectory);
  sv->add_option("--data", srv.data,
                 "where bulk jobs keep their files (default: ~/.local/share/mxprobe/jobs)");
  sv->add_option("--cache", srv.cache,
                 "results cache, SQLite (default: ~/.cache/mxprobe/cache.db)");
  sv->add_flag("--no-cache", srv.no_cache, "neither read nor write the results cache");
  sv->add_option("--max-upload", srv.max_upload,
                 "largest job upload, streamed to disk (bytes; 10MB, 2GiB... accepted)")
      ->transform(CLI::AsSizeValue(false))
      ->capture_default_str();
  sv->add_option("--cache-ttl", srv_ttl, "reuse cached results this recent")->capture_default_str();
  mxp::app::add_cluster_options(*sv, srv.cluster, false);
  sv->add_option("--chunks", srv.chunks,
                 "with --cluster: chunks of the cluster's work held at once (as a worker)")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  sv->add_option("--max-chunks", srv.max_chunks,
                 "with --cluster: chunks held at most while addresses wait for retries")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  std::string srv_shared_ttl = "0";
  sv->add_option("--shared-cache-ttl", srv_shared_ttl,
                 "with --cluster: share verified results through Redis for this long; 0: off")
      ->capture_default_str();
  sv->add_option("--webhook-ca-file", srv.webhook_ca_file,
                 "trust this CA (PEM) for https:// webhooks, besides the system's store")
      ->type_name("FILE");
  mxp::app::add_engine_options(*sv, eng);
  mxp::app::add_doctor_options(*sv, eng.doctor, true);

  mxp::app::WorkerOptions wrk;
  auto* wk = app.add_subcommand(
      "worker",
      "a cluster node that only verifies: takes chunks of jobs from the cluster's Redis (no API)");
  mxp::app::add_cluster_options(*wk, wrk.cluster, true);
  wk->add_option("--metrics-listen", wrk.metrics_listen,
                 "IP:PORT for /metrics, /healthz and /v1/cluster (loopback unless a token is "
                 "set); default: none");
  wk->add_option("--token", wrk.token, "Bearer token the metrics listener asks for");
  wk->add_option("--token-file", wrk.token_file, "read the token from this file (first line)")
      ->check(CLI::ExistingFile);
  wk->add_option("--chunks", wrk.chunks,
                 "chunks of work held at once when nothing waits for a retry")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  wk->add_option("--max-chunks", wrk.max_chunks,
                 "chunks held at most while addresses wait for greylisting retries")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  std::string wrk_cache_ttl = "0", wrk_catch_all_ttl = "7d";
  wk->add_option("--cache-ttl", wrk_cache_ttl,
                 "share verified results through Redis for this long (90s, 30m, 12h, 7d); 0: off")
      ->capture_default_str();
  wk->add_option("--catch-all-ttl", wrk_catch_all_ttl,
                 "how long a catch-all fact learned by one node holds for the cluster")
      ->capture_default_str();
  mxp::app::add_engine_options(*wk, eng);
  mxp::app::add_doctor_options(*wk, eng.doctor, true);

  mxp::app::DoctorOptions doc;
  auto* dr = app.add_subcommand(
      "doctor", "check each source IP or proxy before a job: bind, PTR, HELO, blocklists, port 25");
  mxp::app::add_doctor_options(*dr, doc, false);
  mxp::app::add_engine_options(*dr, eng);

  mxp::app::ProbeOptions prb;
  auto* pr = app.add_subcommand(
      "probe-server", "measure how one mail server behaves (latency, limits, greylisting...)");
  pr->add_option("target", prb.target, "HOST[:PORT], IP[:PORT], or a domain (its best MX)")
      ->required();
  pr->add_option("--domain", prb.domain, "domain of the RCPT probes (default: the target's)");
  pr->add_flag("--json", prb.json, "print the report as JSON (keys: docs/probe.md)");
  pr->add_option("--samples", prb.samples, "plain sessions for the latency figures")
      ->capture_default_str();
  pr->add_option("--greylist-step", prb.greylist_step, "seconds between greylisting retries")
      ->capture_default_str();
  pr->add_option("--greylist-wait", prb.greylist_wait, "seconds of greylisting retries at most")
      ->capture_default_str();
  pr->add_option("--max-connections", prb.max_connections,
                 "concurrency ramp: connections held at once at most")
      ->capture_default_str();
  pr->add_option("--max-rate", prb.max_rate, "connection-rate ramp: up to this many per second")
      ->capture_default_str();
  pr->add_option("--rate-step", prb.rate_step, "seconds per step of the rate ramp")
      ->capture_default_str();
  pr->add_option("--bad-rcpts", prb.bad_rcpts, "error-limit test: unknown recipients in a row")
      ->capture_default_str();
  pr->add_option("--tarpit-ms", prb.tarpit_ms, "a greeting or reply this slow is a tarpit")
      ->capture_default_str();
  pr->add_option("--timeout", prb.timeout, "seconds for the connect, greeting and each reply")
      ->capture_default_str();
  pr->add_option("--max-time", prb.max_time, "seconds for the whole probe, waits included")
      ->capture_default_str();
  pr->add_flag("--no-concurrency", prb.no_concurrency, "skip the concurrency ramp");
  pr->add_flag("--no-rate", prb.no_rate, "skip the connection-rate ramp");
  pr->add_flag("--no-error-limit", prb.no_error_limit, "skip the error-limit test");
  mxp::app::add_engine_options(*pr, eng, mxp::app::EngineOptionSet::ProbeServer);

  mxp::app::BenchOptions bch;
  auto* bs = app.add_subcommand(
      "bench-server",
      "load-test a mail server at fixed arrival rates: latency per stage, knee (open loop)");
  bs->add_option("target", bch.target, "HOST[:PORT], IP[:PORT], or a domain (its best MX)");
  bs->add_option("--rate", bch.rates,
                 "sessions started per second, or a list of steps: 100,200,400 (default: 10)");
  bs->add_option("--ramp", bch.ramp, "steps FROM:TO:xFACTOR or FROM:TO:+STEP (100:2000:x2)");
  bs->add_option("--step-time", bch.step_time, "seconds per step")
      ->check(mxp::app::positive_seconds())
      ->capture_default_str();
  bs->add_option("--warmup", bch.warmup, "seconds at the first rate first, not reported")
      ->check(CLI::Range(0.0, 3600.0));
  bs->add_option("--rcpts", bch.rcpts, "RCPT TO commands per session (random local parts)")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  bs->add_option("--domain", bch.domain, "domain of the RCPT addresses (default: the target's)");
  bs->add_flag("--data", bch.data,
               "send a small message (DATA) after the RCPTs: only to loopback/private addresses "
               "or with --i-own-this-server");
  bs->add_option("--message-size", bch.message_size, "with --data: body bytes")
      ->check(CLI::Range(0, 10 * 1024 * 1024))
      ->capture_default_str();
  bs->add_flag("--i-own-this-server", bch.i_own_this_server,
               "allow --data to a public address: you run this server and may load it");
  bs->add_option("--max-sessions", bch.max_sessions,
                 "sessions open at once at most; later arrivals wait, their wait counted")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  bs->add_flag("--json", bch.json, "print the run as JSON (keys: docs/bench-server.md)");
  bs->add_option("--chart", bch.chart, "draw latency against offered rate: FILE.png or FILE.svg");
  bs->add_option("--compare", bch.compare, "compare two earlier --json runs: A.json B.json")
      ->expected(2);
  bool bch_no_progress = false, bch_progress = false;
  bs->add_flag("--no-progress", bch_no_progress, "no progress lines on stderr");
  bs->add_flag("--progress", bch_progress, "progress lines even when stderr is not a terminal");
  mxp::app::add_engine_options(*bs, eng, mxp::app::EngineOptionSet::BenchServer);

  std::string help_for;
  bool help_markdown = false;
  auto* hp =
      app.add_subcommand("help", "print a command's reference: options, exit codes, examples");
  hp->add_option("command", help_for, "the command (without one: the list of commands)");
  hp->add_flag("--markdown", help_markdown, "every command's reference as Markdown (docs/cli.md)");

  if (argc == 1) {  // no command: what there is, instead of "A subcommand is required"
    print_commands(app, stderr);
    return 2;
  }
  if (argv[1][0] != '-') {
    bool known = false;
    for (const auto* sub : app.get_subcommands([](const CLI::App*) { return true; }))
      known = known || sub->get_name() == argv[1];
    if (!known) return unknown_command(app, argv[1]);
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  if (*hp) {
    const auto docs = command_docs();
    if (help_markdown) {
      std::fputs(mxp::app::cli_reference(app, docs).c_str(), stdout);
      return 0;
    }
    if (help_for.empty()) return print_commands(app, stdout), 0;
    for (const auto& d : docs)
      if (d.name == help_for) {
        std::fputs(mxp::app::command_reference_text(*app.get_subcommand(help_for), d,
                                                    mxp::app::help_width(STDOUT_FILENO))
                       .c_str(),
                   stdout);
        return 0;
      }
    return unknown_command(app, help_for);
  }
  // The engine's values are the user's to get right: a usage error before anything starts.
  if (*bs && !bch.compare.empty()) {  // reads two files: no server, no engine
    if (!bch.target.empty()) {
      std::fprintf(stderr,
                   "mxprobe bench-server: --compare reads two files; leave out the server\n");
      return 2;
    }
    return mxp::app::run_bench_compare(bch, stdout, stderr);
  }
  if ((*c || *v || *sv || *wk || *pr || *dr || *bs) && !mxp::app::check_engine_options(eng, stderr))
    return 2;
  if ((*v || *sv || *wk) && !mxp::sched::parse_duration(eng.doctor.recheck)) {
    std::fprintf(stderr, "mxprobe: --source-recheck '%s' is not a duration (90s, 30m, 12h)\n",
                 eng.doctor.recheck.c_str());
    return 2;
  }

  if (*s) {
    syn_list.finish();
    mxp::app::SyntaxOptions syn{syn_list.input, syn_list.output, syn_list.records,
                                syn_list.progress(), syn_domain_data};
    return mxp::app::run_syntax(syn, stderr);
  }
  if (*c) {
    if (chk_domains.empty() == chk.addresses.empty()) {
      std::fprintf(stderr,
                   "mxprobe check: give addresses, or --domain DOMAIN, not %s (mxprobe "
                   "help check)\n",
                   chk_domains.empty() ? "neither" : "both");
      return 2;
    }
    if (!chk_domains.empty())
      return mxp::app::run_check_domains(chk_domains, chk.json, chk.verbose, eng, stdout, stderr);
    return mxp::app::run_check(chk, eng, stdout, stderr);
  }
  if (*dr) return mxp::app::run_doctor(doc, eng, stdout, stderr);
  if (*pr) return mxp::app::run_probe_server(prb, eng, stdout, stderr);
  if (*bs) {
    bch.progress = bch_no_progress ? 0 : bch_progress ? 1 : -1;
    return mxp::app::run_bench_server(bch, eng, stdout, stderr);
  }
  if (*wk) {
    for (auto [flag, text, out] :
         {std::tuple{"--cache-ttl", &wrk_cache_ttl, &wrk.cache_ttl},
          std::tuple{"--catch-all-ttl", &wrk_catch_all_ttl, &wrk.catch_all_ttl}}) {
      auto ttl = *text == "0" ? std::optional<mxp::sched::Duration>(mxp::sched::Duration(0))
                              : mxp::sched::parse_duration(*text);
      if (!ttl) {
        std::fprintf(stderr, "mxprobe worker: %s '%s' is not a duration (90s, 30m, 12h, 7d)\n",
                     flag, text->c_str());
        return 2;
      }
      *out = std::chrono::duration_cast<std::chrono::seconds>(*ttl);
    }
    if (wrk.catch_all_ttl.count() <= 0) wrk.catch_all_ttl = std::chrono::seconds(1);
    wrk.max_chunks = std::max(wrk.max_chunks, wrk.chunks);
    return mxp::app::run_worker(wrk, eng, stderr);
  }
  if (*v) {
    if (!ver.retry_unknown.empty() && v->count("--input") > 0) {
      std::fprintf(stderr,
                   "mxprobe verify: --retry-unknown reads its addresses from the old output: "
                   "leave out -i\n");
      return 2;
    }
    ver_list.finish();
    ver.input = ver_list.input;
    ver.output = ver_list.output;
    ver.records = ver_list.records;
    ver.progress = ver_list.progress();
    ver.quiet = ver_list.quiet;
    ver.format = format == "csv" ? mxp::app::OutputFormat::Csv : mxp::app::OutputFormat::Jsonl;
    // Without --format, an output named *.csv is CSV (the user said so by its name).
    ver.format_given = v->count("--format") > 0;
    ver.order_input = order == "input";
    if (!ver.format_given && mxp::app::output_extension(ver.output) == ".csv")
      ver.format = mxp::app::OutputFormat::Csv;
    auto ttl = mxp::sched::parse_duration(cache_ttl);
    if (!ttl) {
      std::fprintf(stderr,
                   "mxprobe verify: --cache-ttl '%s' is not a duration (90s, 30m, 12h, 7d)\n",
                   cache_ttl.c_str());
      return 2;
    }
    ver.cache_ttl = std::chrono::duration_cast<std::chrono::seconds>(*ttl);
    return mxp::app::run_verify(ver, eng, stderr);
  }
  if (*sv) {
    auto ttl = mxp::sched::parse_duration(srv_ttl);
    if (!ttl) {
      std::fprintf(stderr, "mxprobe serve: --cache-ttl '%s' is not a duration\n", srv_ttl.c_str());
      return 2;
    }
    srv.cache_ttl = std::chrono::duration_cast<std::chrono::seconds>(*ttl);
    auto shared = srv_shared_ttl == "0"
                      ? std::optional<mxp::sched::Duration>(mxp::sched::Duration(0))
                      : mxp::sched::parse_duration(srv_shared_ttl);
    if (!shared) {
      std::fprintf(stderr, "mxprobe serve: --shared-cache-ttl '%s' is not a duration\n",
                   srv_shared_ttl.c_str());
      return 2;
    }
    srv.shared_cache_ttl = std::chrono::duration_cast<std::chrono::seconds>(*shared);
    srv.max_chunks = std::max(srv.max_chunks, srv.chunks);
    return mxp::app::run_serve(srv, eng, stderr);
  }
  return 2;
}
