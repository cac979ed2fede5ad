// `mxprobe syntax` end to end: files in, JSON Lines out, exit codes, nothing lost on bad input.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

struct CliResult {
  int rc;
  std::string err;
};

class SyntaxCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("mxp-syntax-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path write(const std::string& name, const std::string& content) {
    fs::path p = dir_ / name;
    std::ofstream(p, std::ios::binary) << content;
    return p;
  }
  CliResult run(const std::string& args) {
    fs::path err = dir_ / "stderr.txt";
    std::string cmd = std::string(MXPROBE_BIN) + " " + args + " 2>" + err.string();
    int status = std::system(cmd.c_str());
    std::ifstream e(err);
    std::stringstream ss;
    ss << e.rdbuf();
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, ss.str()};
  }
  std::vector<nlohmann::json> records(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::vector<nlohmann::json> out;
    std::string line;
    while (std::getline(in, line))
      out.push_back(nlohmann::json::parse(line));
    return out;
  }
  fs::path dir_;
};

TEST_F(SyntaxCli, EveryLineGetsOneRecordWhateverItHolds) {
  std::string input = "good@example.org\n";
  input += std::string("\x00\x01\xff\xfe garbage", 13) + "\n";
  input += std::string(1 << 20, 'x') + "\n";  // a 1 MB line
  input += "a@b.example\r\nDATA\n";           // CR/LF smuggling: two lines, two records
  input += "\n";
  input += "last@example.org";  // no final newline
  auto in = write("in.txt", input);
  auto out = dir_ / "out.jsonl";
  CliResult r = run("syntax --input " + in.string() + " --output " + out.string());
  ASSERT_EQ(r.rc, 0) << r.err;
  auto recs = records(out);
  ASSERT_EQ(recs.size(), 7u);
  for (size_t i = 0; i < recs.size(); ++i)
    EXPECT_EQ(recs[i]["line"], i + 1);
  EXPECT_EQ(recs[0]["ok"], true);
  EXPECT_EQ(recs[1]["ok"], false);
  EXPECT_EQ(recs[2]["error"], "line_too_long");
  EXPECT_EQ(recs[3]["normalized"], "a@b.example");  // the CR is a line ending here
  EXPECT_EQ(recs[4]["ok"], false);                  // "DATA" alone is no address
  EXPECT_EQ(recs[5]["ok"], false);
  EXPECT_EQ(recs[6]["normalized"], "last@example.org");
}

TEST_F(SyntaxCli, CsvOnStdinToStdout) {
  auto in = write("in.csv", "id,email\n1,Bob@Example.ORG\n2,\"not valid\"\n");
  auto out = dir_ / "out.jsonl";
  CliResult r = run("syntax < " + in.string() + " > " + out.string());
  ASSERT_EQ(r.rc, 0) << r.err;
  auto recs = records(out);
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[0]["line"], 2);
  EXPECT_EQ(recs[0]["normalized"], "Bob@example.org");
  EXPECT_EQ(recs[1]["ok"], false);
}

TEST_F(SyntaxCli, UpFrontErrorsExitTwoWithAMessage) {
  CliResult r = run("syntax --input " + (dir_ / "missing.txt").string());
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("cannot open input"), std::string::npos) << r.err;

  auto in = write("in.csv", "id,mail\n1,a@b.example\n");
  r = run("syntax --column email --input " + in.string() + " --output " + (dir_ / "o").string());
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("no column named 'email'"), std::string::npos) << r.err;

  r = run("syntax --bogus-flag");
  EXPECT_EQ(r.rc, 2);
}

TEST_F(SyntaxCli, StatusLinesWhenAskedForProgress) {
  auto in = write("in.txt", "a@b.example\n");
  CliResult r =
      run("syntax --progress --input " + in.string() + " --output " + (dir_ / "o").string());
  ASSERT_EQ(r.rc, 0);
  EXPECT_NE(r.err.find("1 records, 1 valid, 0 invalid"), std::string::npos) << r.err;
}

}  // namespace
