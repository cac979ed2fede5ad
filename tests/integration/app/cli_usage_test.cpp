// What a new user trips over on the command line, run as a user would: a mistyped command gets
// a suggestion, every usage error exits 2 before anything starts (never 3, "the engine could not
// start"), numbers out of range get a short message, --quiet is quiet, the backend line only on
// request, exact final counts, and probe-server's --help lists only the options it uses.
// No network: addresses are invalid or the resolver is 127.0.0.1:1.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

struct Outcome {
  int rc;
  std::string out, err;
};

class CliUsage : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("mxp-cli-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path write(const std::string& name, const std::string& content) {
    fs::path p = dir_ / name;
    std::ofstream(p, std::ios::binary) << content;
    return p;
  }
  static std::string slurp(const fs::path& p) {
    std::ifstream f(p);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }
  // The binary: $MXPROBE (another build's, e.g. to see these fail before a change), else ours.
  static std::string bin() {
    const char* env = std::getenv("MXPROBE");
    return env && *env ? env : MXPROBE_BIN;
  }
  // stdin is /dev/null; HOME and XDG_CACHE_HOME point into the test's directory. At most 30 s:
  // a usage error taken for a valid value could start a server that never ends.
  Outcome run(const std::string& args) {
    const fs::path out = dir_ / "stdout.txt", err = dir_ / "stderr.txt";
    std::string cmd = "cd " + dir_.string() + " && HOME=" + dir_.string() +
                      " XDG_CACHE_HOME=" + dir_.string() + " timeout -s KILL 30 " + bin() + " " +
                      args + " </dev/null >" + out.string() + " 2>" + err.string();
    int status = std::system(cmd.c_str());
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(out), slurp(err)};
  }
  // stderr without "warning:" lines.
  static std::string without_warnings(const std::string& err) {
    std::string out;
    std::istringstream in(err);
    for (std::string line; std::getline(in, line);)
      if (line.find("warning:") == std::string::npos) out += line + "\n";
    return out;
  }
  fs::path dir_;
};

TEST_F(CliUsage, MistypedCommandGetsASuggestion) {
  Outcome r = run("chek alice@example.org");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("did you mean 'mxprobe check'"), std::string::npos) << r.err;
  r = run("verfy -i x");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("did you mean 'mxprobe verify'"), std::string::npos) << r.err;
  r = run("frobnicate");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("not a command"), std::string::npos) << r.err;
}

TEST_F(CliUsage, NoCommandListsThem) {
  Outcome r = run("");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("  verify "), std::string::npos) << r.err;
}

TEST_F(CliUsage, HelpListsCommandsAndPrintsEachReference) {
  Outcome r = run("help");
  EXPECT_EQ(r.rc, 0) << r.err;
  for (const char* c : {"check", "verify", "syntax", "serve", "worker", "probe-server"})
    EXPECT_NE(r.out.find(std::string("  ") + c + " "), std::string::npos) << c << "\n" << r.out;
  r = run("help verify");
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("Usage: mxprobe verify [OPTIONS]"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\n  --resume "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\nExit status:\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\n  130  stopped by Ctrl-C"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\nMore: docs/usage.md#mxprobe-verify"), std::string::npos) << r.out;
  r = run("help --markdown");  // docs/cli.md
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("## mxprobe verify"), std::string::npos);
  EXPECT_NE(r.out.find("| `--resume` |"), std::string::npos);
  EXPECT_NE(r.out.find("| 130 |"), std::string::npos);
  r = run("help chek");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("did you mean 'mxprobe check'"), std::string::npos) << r.err;
}

// An 80-column terminal (and any pipe): no line of help wider than 80 columns, whichever way
// it is asked for. CLI11 2.3 printed each description on one line, up to 170 columns.
TEST_F(CliUsage, HelpFitsEightyColumns) {
  std::vector<std::string> asks = {"--help", "help", "chek", ""};
  for (const char* c : {"syntax", "check", "verify", "serve", "worker", "doctor", "probe-server",
                        "bench-server", "help"}) {
    asks.push_back(std::string(c) + " --help");
    asks.push_back(std::string("help ") + c);
  }
  for (const auto& ask : asks) {
    Outcome r = run(ask);
    std::string text = r.out + r.err;
    // CLI11's usage line names the binary as it was run: ours is a long build path.
    for (std::size_t p; (p = text.find(bin())) != std::string::npos;)
      text.replace(p, bin().size(), "mxprobe");
    EXPECT_GT(text.size(), 40u) << ask;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
      EXPECT_LE(line.size(), 80u) << "mxprobe " << ask << ":\n" << line;
  }
}

// Values that are the user's to get right: exit 2 in every command that takes them, with the
// option named, before any loop, resolver or server starts.
TEST_F(CliUsage, UsageErrorsExitTwoEverywhere) {
  const auto bad_policy = write("bad.toml", "[defaults]\nper_mx = nonsense\n");
  const auto list = write("list.txt", "alice@example.org\n");
  const std::string cmds[] = {"check x@y.invalid", "verify -i " + list.string() + " -o out.jsonl",
                              "serve --listen 127.0.0.1:0", "worker --cluster redis://127.0.0.1:1",
                              "probe-server 127.0.0.1:1"};
  for (const auto& cmd : cmds) {
    Outcome r = run(cmd + " --dns nonsense");
    EXPECT_EQ(r.rc, 2) << cmd << ": " << r.err;
    EXPECT_NE(r.err.find("--dns 'nonsense'"), std::string::npos) << cmd << ": " << r.err;
    r = run(cmd + " --timeout-dns -1");
    EXPECT_EQ(r.rc, 2) << cmd << ": " << r.err;
    EXPECT_NE(r.err.find("--timeout-dns"), std::string::npos) << cmd << ": " << r.err;
    r = run(cmd + " --timeout-dns 0");
    EXPECT_EQ(r.rc, 2) << cmd << ": " << r.err;
    if (cmd.rfind("probe-server", 0) == 0) continue;  // no policy, no --concurrency there
    r = run(cmd + " --policy " + bad_policy.string());
    EXPECT_EQ(r.rc, 2) << cmd << ": " << r.err;
    EXPECT_NE(r.err.find("bad.toml"), std::string::npos) << cmd << ": " << r.err;
    r = run(cmd + " --concurrency 0");
    EXPECT_EQ(r.rc, 2) << cmd << ": " << r.err;
    EXPECT_NE(r.err.find("--concurrency: must be a number above 0"), std::string::npos) << r.err;
    EXPECT_LT(r.err.size(), 120u) << r.err;  // not "0 to 1.79e308"
    r = run(cmd + " --source-ip 300.1.1.1");
    EXPECT_EQ(r.rc, 2) << cmd << ": " << r.err;
  }
}

// --cluster: required by worker; a URL that does not parse is a usage error (exit 2) naming the
// option and never repeating the password, in serve and worker alike, before anything starts.
TEST_F(CliUsage, ClusterUrlErrorsExitTwo) {
  Outcome r = run("worker --dns 127.0.0.1:1");
  EXPECT_EQ(r.rc, 2) << r.err;
  EXPECT_NE(r.err.find("--cluster"), std::string::npos) << r.err;
  for (const std::string cmd : {"worker", "serve --listen 127.0.0.1:0"}) {
    r = run(cmd + " --dns 127.0.0.1:1 --cluster rediss://:hunter2@127.0.0.1:1");
    EXPECT_EQ(r.rc, 2) << cmd << ": " << r.err;
    EXPECT_NE(r.err.find("--cluster: "), std::string::npos) << cmd << ": " << r.err;
    EXPECT_EQ(r.err.find("hunter2"), std::string::npos) << cmd << ": " << r.err;
    r = run(cmd + " --dns 127.0.0.1:1 --cluster redis://127.0.0.1:99999");
    EXPECT_EQ(r.rc, 2) << cmd << ": " << r.err;
    EXPECT_NE(r.err.find("--cluster: "), std::string::npos) << cmd << ": " << r.err;
    r = run(cmd + " --dns 127.0.0.1:1 --cluster redis://127.0.0.1:1 --node-name 'a b'");
    EXPECT_EQ(r.rc, 2) << cmd << ": " << r.err;
    EXPECT_NE(r.err.find("--node-name"), std::string::npos) << cmd << ": " << r.err;
  }
}

// A repeatable option takes one value: the address after --dns is the address, also when
// another option follows it (CLI11 took it as a second resolver: "address is required").
TEST_F(CliUsage, RepeatableOptionsLeaveThePositionalAlone) {
  Outcome r = run("check --dns 127.0.0.1:1 x@y.invalid --timeout-dns 0.2");
  EXPECT_NE(r.rc, 2) << r.err;
  EXPECT_EQ(r.err.find("required"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("x@y.invalid"), std::string::npos) << r.out;
}

// 1,500 invalid lines (no network): the summary counts exactly, the backend line only with -v,
// nothing at all with --quiet.
TEST_F(CliUsage, VerifySummaryIsExactAndQuietIsQuiet) {
  std::string lines;
  for (int i = 0; i < 1500; ++i)
    lines += "not-an-address-" + std::to_string(i) + "\n";
  const auto in = write("in.txt", lines);
  const std::string base = "verify --dns 127.0.0.1:1 --no-cache --no-journal --no-progress -i " +
                           in.string() + " -o " + (dir_ / "out.jsonl").string();
  Outcome r = run(base);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("1500 records: deliverable 0  undeliverable 1500"), std::string::npos)
      << r.err;
  EXPECT_EQ(r.err.find("1.5k"), std::string::npos) << r.err;
  const std::string quiet_default = r.err;
  Outcome v = run(base + " --verbose");
  ASSERT_EQ(v.rc, 0) << v.err;
  // The verbose run says one more line: which loop runs. The default run does not.
  const std::string extra = without_warnings(v.err);
  const std::string loop_line = extra.substr(0, extra.find('\n'));
  EXPECT_EQ(loop_line.rfind("mxprobe verify: ", 0), 0u) << v.err;
  EXPECT_EQ(loop_line.find("records"), std::string::npos) << v.err;
  EXPECT_EQ(quiet_default.find(loop_line), std::string::npos) << quiet_default;
  Outcome q = run(base + " --quiet");
  EXPECT_EQ(q.rc, 0) << q.err;
  EXPECT_EQ(without_warnings(q.err), "");  // warnings stay (no domain data in some builds)
  const std::string out = slurp(dir_ / "out.jsonl");
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1500);
  q = run("syntax --quiet --progress -i " + in.string() + " -o " + (dir_ / "s.jsonl").string());
  EXPECT_EQ(q.rc, 0) << q.err;
  EXPECT_EQ(without_warnings(q.err), "");
}

TEST_F(CliUsage, ProbeServerHelpListsOnlyItsOptions) {
  Outcome r = run("probe-server --help");
  EXPECT_EQ(r.rc, 0) << r.err;
  for (const char* used : {"--dns", "--helo", "--mail-from", "--source-ip", "--timeout-dns",
                           "--smtp-port", "--backend", "--timeout ", "--samples"})
    EXPECT_NE(r.out.find(used), std::string::npos) << used;
  for (const char* unused : {"--concurrency", "--policy", "--proxy", "--starttls", "--tls-verify",
                             "--timeout-connect", "--rcpts-per-session", "--max-domains",
                             "--no-catch-all", "--new-source-ip", "--domain-data"})
    EXPECT_EQ(r.out.find(unused), std::string::npos) << unused;
}

}  // namespace
