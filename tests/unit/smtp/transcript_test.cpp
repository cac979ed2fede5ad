// Replays the server dialogues under tests/transcripts/ through smtp::Session: our writes must be
// exactly the C: lines (one write per run of C: lines) and each recipient's outcome as declared.
//
// File format: "#" comments; "@helo NAME", "@from ADDR" (or "@from <>"), "@max_rcpts N",
// "@pipelining off", "@rcpt ADDR => STAGE CODE [ENHANCED]" or "@rcpt ADDR => STAGE FAILURE";
// then the dialogue: "S: line" (server, sent with CRLF), "C: line" (client), "-- close" (the server
// closes), "-- timeout" (the stage's timer fires). Recipients are added in order and finish() is
// called before connecting.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "session_harness.hpp"

namespace mxp::smtp {
namespace {

struct Expect {
  std::string address;
  Stage stage = Stage::Connect;
  Failure failure = Failure::None;
  int code = 0;
  std::string enhanced;
};

struct Event {
  char kind;  // 'S', 'C', 'x' (close), 't' (timeout)
  std::string text;
};

struct Script {
  SessionConfig cfg = testing::default_config();
  std::vector<Expect> rcpts;
  std::vector<Event> events;
};

std::optional<Stage> stage_named(std::string_view n) {
  for (int i = 0; i < kStageCount; ++i)
    if (kStageNames[i] == n) return static_cast<Stage>(i);
  return std::nullopt;
}

std::optional<Failure> failure_named(std::string_view n) {
  for (size_t i = 0; i < kFailureNames.size(); ++i)
    if (kFailureNames[i] == n) return static_cast<Failure>(i);
  return std::nullopt;
}

Script load(const std::filesystem::path& p) {
  Script s;
  std::ifstream in(p);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    std::istringstream ls(line);
    std::string word;
    ls >> word;
    if (word == "@helo") {
      ls >> s.cfg.helo_name;
    } else if (word == "@from") {
      ls >> s.cfg.mail_from;
      if (s.cfg.mail_from == "<>") s.cfg.mail_from.clear();
    } else if (word == "@max_rcpts") {
      ls >> s.cfg.max_rcpts_per_transaction;
    } else if (word == "@pipelining") {
      ls >> word;
      s.cfg.use_pipelining = word != "off";
    } else if (word == "@rcpt") {
      Expect e;
      std::string arrow, stage, what;
      ls >> e.address >> arrow >> stage >> what;
      EXPECT_EQ(arrow, "=>") << line;
      auto st = stage_named(stage);
      EXPECT_TRUE(st) << "unknown stage in: " << line;
      e.stage = st.value_or(Stage::Connect);
      if (auto f = failure_named(what)) {
        e.failure = *f;
      } else {
        e.code = std::stoi(what);
        ls >> e.enhanced;
      }
      s.rcpts.push_back(e);
    } else if (line.rfind("S: ", 0) == 0 || line.rfind("C: ", 0) == 0) {
      s.events.push_back({line[0], line.substr(3)});
    } else if (line == "-- close") {
      s.events.push_back({'x', {}});
    } else if (line == "-- timeout") {
      s.events.push_back({'t', {}});
    } else {
      ADD_FAILURE() << p << ": cannot read line: " << line;
    }
  }
  return s;
}

// Replays one script; server bytes go in whole per S: run, or one byte at a time.
void replay(const Script& sc, bool bytewise) {
  testing::Harness h(sc.cfg);
  for (size_t i = 0; i < sc.rcpts.size(); ++i)
    EXPECT_EQ(h.add(sc.rcpts[i].address, i), Session::AddResult::Queued);
  h.finish();
  h.connect();
  size_t i = 0;
  while (i < sc.events.size()) {
    const char kind = sc.events[i].kind;
    if (kind == 'S') {
      std::string bytes;
      for (; i < sc.events.size() && sc.events[i].kind == 'S'; ++i)
        bytes += sc.events[i].text + "\r\n";
      bytewise ? h.server_bytewise(bytes) : h.server(bytes);
    } else if (kind == 'C') {
      std::string want;
      for (; i < sc.events.size() && sc.events[i].kind == 'C'; ++i)
        want += sc.events[i].text + "\r\n";
      EXPECT_EQ(h.take_writes(), want) << "at event " << i;
    } else {
      if (kind == 'x') h.closed();
      if (kind == 't') h.expire();
      ++i;
    }
  }
  EXPECT_EQ(h.take_writes(), "") << "written but not in the transcript";
  EXPECT_TRUE(h.s.done());
  ASSERT_EQ(h.results.size(), sc.rcpts.size());
  for (size_t r = 0; r < sc.rcpts.size(); ++r) {
    const Expect& e = sc.rcpts[r];
    const Outcome& o = h.outcome(r);
    SCOPED_TRACE(e.address);
    EXPECT_EQ(o.stage, e.stage);
    EXPECT_EQ(o.failure, e.failure);
    EXPECT_EQ(o.reply.code, e.code);
    EXPECT_EQ(o.reply.enhanced.str(), e.enhanced);
  }
}

TEST(Transcripts, ReplayEveryDialogue) {
  const std::filesystem::path dir = MXP_TRANSCRIPTS_DIR;
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().extension() == ".txt") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  ASSERT_GE(files.size(), 4u) << "transcripts missing in " << dir;
  for (const auto& f : files) {
    SCOPED_TRACE(f.filename().string());
    const Script sc = load(f);
    EXPECT_FALSE(sc.rcpts.empty());
    EXPECT_FALSE(sc.events.empty());
    replay(sc, false);
    replay(sc, true);
  }
}

}  // namespace
}  // namespace mxp::smtp
