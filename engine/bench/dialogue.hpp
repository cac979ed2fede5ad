// bench-server's SMTP dialogue, sans-I/O: bytes and time in, bytes to send and measurements out.
// Kept apart from the verification session (smtp::Session), which never sends DATA: this one
// may, for --data against the user's own server. One command at a time (no pipelining), so every
// reply is timed against the command it answers.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.hpp"
#include "smtp/reply_parser.hpp"

namespace mxp::bench {

using TimePoint = core::TimePoint;
using Duration = core::Duration;

// The stages measured. Session is the whole dialogue, from the intended start to its end.
enum class Stage : uint8_t { Connect, Greeting, Ehlo, Mail, Rcpt, Data, Quit, Session };
inline constexpr int kStageCount = 8;
inline constexpr std::array<std::string_view, kStageCount> kStageNames = {
    "connect", "greeting", "ehlo", "mail", "rcpt", "data", "quit", "session"};
constexpr std::string_view to_string(Stage s) {
  return kStageNames[static_cast<int>(s)];
}

// Why a session ended before its dialogue did (connection-level failures).
enum class Failure : uint8_t { None, Refused, Timeout, Reset, ClosedEarly, Protocol, Other };
inline constexpr int kFailureCount = 7;
inline constexpr std::array<std::string_view, kFailureCount> kFailureNames = {
    "none", "refused", "timeout", "reset", "closed_early", "protocol", "other"};
constexpr std::string_view to_string(Failure f) {
  return kFailureNames[static_cast<int>(f)];
}

struct DialogueConfig {
  std::string helo;       // EHLO/HELO argument
  std::string mail_from;  // "" is the null sender <>
  bool data = false;      // DATA and a message after the RCPTs
  std::string message;    // with data: make_message()'s output, sent after 354
  Duration banner_timeout = std::chrono::seconds(30);
  Duration command_timeout = std::chrono::seconds(30);
  Duration data_timeout = std::chrono::seconds(60);  // the reply after the final "."
};

// A generated message of about `body_bytes` of body: headers, a body of 76-character lines,
// dot-stuffed (RFC 5321 4.5.2), ending in CRLF "." CRLF.
std::string make_message(const std::string& from, const std::string& to, size_t body_bytes);
// Dot-stuffing of CRLF-separated text: a line starting with "." gets another.
std::string dot_stuff(std::string_view text);

// One reply timed: its stage, its code, and when its command was sent and the reply came.
// For the greeting "sent" is when the connection was made.
struct Measure {
  Stage stage;
  int code;
  TimePoint sent, received;
};

class Dialogue {
 public:
  // `cfg` must outlive the dialogue (one config is shared by every session of a run).
  Dialogue(const DialogueConfig& cfg, std::vector<std::string> rcpts);

  void on_connected(TimePoint now);
  void on_bytes(std::string_view bytes, TimePoint now);
  // The server closed (reset: with RST) or the connection failed after being made.
  void on_closed(TimePoint now, bool reset);
  void on_timeout(TimePoint now);  // next_deadline() has passed

  std::string_view pending_output() const { return out_; }
  void consume_output(size_t n) { out_.erase(0, n); }
  std::optional<TimePoint> next_deadline() const { return done_ ? std::nullopt : deadline_; }
  // Over: send what is pending, then close the connection.
  bool done() const { return done_; }
  // The dialogue ran to QUIT and the server took every step but RCPT (whose answers, any class,
  // are what a verification load measures): greeting, EHLO or HELO, MAIL and, with --data, the
  // message all accepted, no 421, no connection failure.
  bool ok() const { return done_ && ok_ && failure_ == Failure::None; }
  Failure failure() const { return failure_; }
  const std::vector<Measure>& measures() const { return measures_; }
  int rcpt_replies() const { return rcpt_replies_; }
  const std::string& error() const { return error_; }  // protocol or local error, for logs

 private:
  enum class Wait : uint8_t { Greeting, Ehlo, Helo, Mail, Rcpt, Data, Message, Quit, None };
  void reply(const smtp::Reply& r, TimePoint now);
  void send(std::string_view verb, std::string_view arg, Wait next, TimePoint now);
  void quit(TimePoint now);
  void refused(TimePoint now);  // a step refused: the session failed, QUIT
  void next_rcpt(TimePoint now);
  void finish(Failure f);
  void measure(Stage s, int code, TimePoint now) { measures_.push_back({s, code, sent_, now}); }

  const DialogueConfig& cfg_;
  std::vector<std::string> rcpts_;
  smtp::ReplyParser parser_;
  std::string out_, error_;
  std::vector<Measure> measures_;
  TimePoint sent_{}, data_sent_{};
  std::optional<TimePoint> deadline_;
  Wait wait_ = Wait::None;
  size_t next_rcpt_ = 0;
  int rcpt_replies_ = 0, accepted_ = 0;
  bool done_ = false, ok_ = true;
  Failure failure_ = Failure::None;
};

}  // namespace mxp::bench
