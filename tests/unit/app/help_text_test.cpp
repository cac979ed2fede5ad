// Help text on an 80-column terminal: wrap_text's lines fit and keep every word in order, the
// CLI11 formatter wraps descriptions under their column without losing a word, and a command's
// text reference (mxprobe help COMMAND) has its usage, options, exit codes and examples.
#include <gtest/gtest.h>

#include <CLI/CLI.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "app/cli_reference.hpp"

namespace mxp::app {
namespace {

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);)
    out.push_back(l);
  return out;
}

std::vector<std::string> words_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string w; in >> w;)
    out.push_back(w);
  return out;
}

// Words of 1 to 23 letters from a fixed linear congruential sequence, some paragraphs.
std::string sample_text(unsigned seed, int words) {
  std::string text;
  for (int i = 0; i < words; ++i) {
    seed = seed * 1103515245u + 12345u;
    const unsigned len = 1 + (seed >> 16) % 23;
    if (i > 0) text += (seed >> 8) % 17 == 0 ? "\n" : ((seed >> 4) % 9 == 0 ? "  " : " ");
    for (unsigned k = 0; k < len; ++k)
      text += static_cast<char>('a' + (seed >> (k % 16)) % 26);
  }
  return text;
}

TEST(WrapText, LinesFitTheirWidthAndKeepEveryWordInOrder) {
  for (unsigned seed = 1; seed <= 40; ++seed)
    for (std::size_t width : {24u, 50u, 80u, 120u})
      for (std::size_t indent : {0u, 2u, 7u, 16u}) {
        const std::string text = sample_text(seed, 60);
        const std::string out = wrap_text(text, width, indent);
        SCOPED_TRACE("seed " + std::to_string(seed) + " width " + std::to_string(width) +
                     " indent " + std::to_string(indent) + "\n" + out);
        EXPECT_EQ(words_of(out), words_of(text));
        // Paragraphs stay paragraphs: with an indent, a line that does not start with it is
        // the first of a line of `text`.
        std::size_t paragraphs = 1, starts = 0;
        for (char c : text)
          paragraphs += c == '\n';
        for (const std::string& l : lines_of(out)) {
          const bool continuation = indent > 0 && l.rfind(std::string(indent, ' '), 0) == 0;
          starts += !continuation;
          EXPECT_TRUE(l.empty() || l.back() != ' ') << "trailing space: [" << l << "]";
          // The first line of a paragraph follows `indent` columns of someone else's text.
          const std::size_t used = continuation ? l.size() : indent + l.size();
          if (words_of(l).size() > 1) {
            EXPECT_LE(used, width) << "[" << l << "]";
          }
        }
        if (indent > 0) {
          EXPECT_EQ(starts, paragraphs);
        }
      }
}

TEST(WrapText, KeepsBreaksLeadingSpacesAndLongWords) {
  EXPECT_EQ(wrap_text("short", 80), "short");
  EXPECT_EQ(wrap_text("one two three four", 9), "one two\nthree\nfour");
  EXPECT_EQ(wrap_text("one two three four", 11, 2), "one two\n  three\n  four");
  EXPECT_EQ(wrap_text("a\n\n  indented line\nlast\n", 80), "a\n\n  indented line\nlast\n");
  EXPECT_EQ(wrap_text("see https://example.com/a/very/long/path/that/does/not/fit ok", 20),
            "see\nhttps://example.com/a/very/long/path/that/does/not/fit\nok");
  EXPECT_EQ(wrap_text("a   b", 80), "a b");
  EXPECT_EQ(wrap_text("", 80), "");
}

TEST(WrappingFormatter, DescriptionsWrapUnderTheirColumnAndSayEverything) {
  const std::string long_desc =
      "address family tried first among mail hosts of equal MX preference (a domain whose "
      "hosts have only the other family still works)";
  auto build = [&](CLI::App& app, int& n, std::string& s, bool& json) {
    app.add_option("--tries", n, "tries per address at most; " + long_desc);
    app.add_option("--source-ip-with-a-long-name-and-type", s, long_desc);
    app.add_flag("--json", json, "print the JSON record of each address");
    app.add_subcommand("worker", "a cluster node that only verifies: " + long_desc);
    app.footer("Footer: " + long_desc);
  };
  CLI::App plain{"mxprobe: " + long_desc, "mxprobe"}, wrapped{"mxprobe: " + long_desc, "mxprobe"};
  wrapped.formatter(wrapping_formatter(80));
  int n1 = 1, n2 = 1;
  std::string s1, s2;
  bool j1 = false, j2 = false;
  build(plain, n1, s1, j1);
  build(wrapped, n2, s2, j2);
  const std::string before = plain.help(), after = wrapped.help();
  SCOPED_TRACE(after);
  EXPECT_EQ(words_of(after), words_of(before));
  bool over_before = false;
  for (const auto& l : lines_of(before))
    over_before = over_before || l.size() > 80;
  EXPECT_TRUE(over_before) << "the sample must need wrapping";
  for (const auto& l : lines_of(after))
    EXPECT_LE(l.size(), 80u) << "[" << l << "]";
  // A continued description starts under its column (30 in CLI11 2.3).
  EXPECT_NE(
      after.find("\n" + std::string(30, ' ') + "equal MX preference (a domain whose hosts have\n"),
      std::string::npos);
}

TEST(CommandReferenceText, UsageOptionsExitCodesExamplesWithinWidth) {
  CLI::App app{"mxprobe", "mxprobe"};
  app.formatter(wrapping_formatter(80));
  auto* cmd = app.add_subcommand("verify", "verify a list of addresses (streamed)");
  std::string in;
  cmd->add_option("-i,--input", in, "input file, one address per line or CSV; '-' for stdin");
  CommandDoc doc{"verify",
                 {{0, "every record written"},
                  {7,
                   "the start-up checks left no source in rotation (every source IP listed on a "
                   "blocklist, without working port 25, or not binding): nothing was verified"},
                  {130, "stopped by Ctrl-C"}},
                 {"mxprobe verify -i list.csv -o results.jsonl"},
                 "[usage.md](usage.md#mxprobe-verify), [jobs.md](jobs.md)"};
  const std::string text = command_reference_text(*cmd, doc, 80);
  SCOPED_TRACE(text);
  EXPECT_NE(text.find("Usage: mxprobe verify [OPTIONS]"), std::string::npos);
  EXPECT_NE(text.find("  -i,--input TEXT"), std::string::npos);
  EXPECT_NE(text.find("\n\nExit status:\n  0    every record written\n"), std::string::npos);
  EXPECT_NE(
      text.find(
          "\n  7    the start-up checks left no source in rotation (every source IP listed on\n"
          "       a blocklist,"),
      std::string::npos);
  EXPECT_NE(text.find("\n  130  stopped by Ctrl-C\n"), std::string::npos);
  EXPECT_NE(text.find("\nExamples:\n  mxprobe verify -i list.csv -o results.jsonl\n"),
            std::string::npos);
  EXPECT_NE(text.find("\nMore: docs/usage.md#mxprobe-verify, docs/jobs.md\n"), std::string::npos);
  EXPECT_EQ(text.find("\n\n\n"), std::string::npos);
  for (const auto& l : lines_of(text))
    EXPECT_LE(l.size(), 80u) << "[" << l << "]";
}

}  // namespace
}  // namespace mxp::app
