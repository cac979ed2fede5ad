// Test driver for smtp::Session: plays the loop (clock, writes, results) and checks every byte the
// session ever writes: whole CRLF-terminated lines, known verbs only, never DATA.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "smtp/session.hpp"

namespace mxp::smtp::testing {

// Every line the session writes must be one of these commands with one argument at most.
inline void audit_output(std::string_view out) {
  if (out.empty()) return;
  EXPECT_TRUE(out.size() >= 2 && out.substr(out.size() - 2) == "\r\n") << "unterminated output";
  size_t pos = 0;
  while (pos < out.size()) {
    size_t end = out.find("\r\n", pos);
    if (end == std::string_view::npos) end = out.size();
    const std::string_view line = out.substr(pos, end - pos);
    pos = end + 2;
    EXPECT_EQ(line.find_first_of(std::string_view("\r\n\0", 3)), std::string_view::npos)
        << "control byte in a command line: " << line;
    std::string upper(line.substr(0, 4));
    for (auto& c : upper)
      c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 32 : c);
    EXPECT_NE(upper, "DATA");
    EXPECT_NE(upper, "BDAT");
    const bool known = line.rfind("EHLO ", 0) == 0 || line.rfind("HELO ", 0) == 0 ||
                       line.rfind("MAIL FROM:<", 0) == 0 || line.rfind("RCPT TO:<", 0) == 0 ||
                       line == "RSET" || line == "QUIT" || line == "STARTTLS";
    EXPECT_TRUE(known) << "unexpected command line: " << line;
    // One argument at most: no space inside EHLO/HELO names or paths (SMTPUTF8 is the one
    // MAIL parameter we add).
    if (line.rfind("EHLO ", 0) == 0 || line.rfind("HELO ", 0) == 0) {
      EXPECT_EQ(line.find(' ', 5), std::string_view::npos) << line;
    }
    if (line.rfind("RCPT TO:<", 0) == 0) {
      // Past a quoted local part (`<"john doe"@...>`: spaces inside its quotes split nothing).
      size_t from = 5;
      if (line.size() > 9 && line[9] == '"') {
        from = 10;
        while (from < line.size() && line[from] != '"')
          from += line[from] == '\\' ? 2 : 1;
      }
      EXPECT_EQ(line.find(' ', from), std::string_view::npos) << line;
      EXPECT_EQ(line.back(), '>') << line;
    }
    if (line.rfind("MAIL FROM:<", 0) == 0) {
      const auto close = line.find('>');
      EXPECT_NE(close, std::string_view::npos) << line;
      const auto rest = line.substr(close + 1);
      EXPECT_TRUE(rest.empty() || rest == " SMTPUTF8") << line;
    }
  }
}

inline SessionConfig default_config() {
  SessionConfig c;
  c.helo_name = "probe.mxprobe.test";
  c.mail_from = "verify@mxprobe.test";
  return c;
}

class Harness {
 public:
  explicit Harness(SessionConfig config = default_config()) : cfg(std::move(config)), s(cfg) {}
  Harness(const Harness&) = delete;
  Harness& operator=(const Harness&) = delete;
  ~Harness() { audit_output(all_output); }

  // Collects what the loop would: one write of all pending output, and every result.
  void flush() {
    const std::string_view out = s.pending_output();
    if (!out.empty()) {
      writes.emplace_back(out);
      all_output += out;
      s.consume_output(out.size());
    }
    while (auto r = s.pop_result()) {
      EXPECT_EQ(results.count(r->id), 0u) << "recipient " << r->id << " decided twice";
      order.push_back(r->id);
      results[r->id] = r->outcome;
    }
  }
  void connect() {
    s.start(now);
    s.on_connected(now);
    flush();
  }
  void server(std::string_view bytes) {
    s.on_bytes(bytes, now);
    flush();
  }
  void server_bytewise(std::string_view bytes) {
    for (size_t i = 0; i < bytes.size(); ++i)
      s.on_bytes(bytes.substr(i, 1), now);
    flush();
  }
  void closed() {
    s.on_closed(now);
    flush();
  }
  // Runs the clock to the armed deadline and fires it.
  void expire() {
    auto d = s.next_deadline();
    ASSERT_TRUE(d.has_value());
    now = *d;
    s.on_timeout(now);
    flush();
  }
  Session::AddResult add(std::string_view addr, uint64_t id, bool alone = false) {
    auto r = s.add_recipient(addr, id, now, alone);
    flush();
    return r;
  }
  void finish() {
    s.finish(now);
    flush();
  }
  // The writes since the last call, concatenated with '|' between writes.
  std::string take_writes() {
    std::string j;
    for (size_t i = 0; i < writes.size(); ++i)
      j += (i ? "|" : "") + writes[i];
    writes.clear();
    return j;
  }
  const Outcome& outcome(uint64_t id) {
    static const Outcome none{};
    auto it = results.find(id);
    EXPECT_NE(it, results.end()) << "recipient " << id << " undecided";
    return it == results.end() ? none : it->second;
  }

  SessionConfig cfg;
  Session s;
  TimePoint now = TimePoint{} + std::chrono::hours(1);
  std::vector<std::string> writes;
  std::string all_output;
  std::map<uint64_t, Outcome> results;
  std::vector<uint64_t> order;
};

}  // namespace mxp::smtp::testing
