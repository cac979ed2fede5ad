#include "bench/dialogue.hpp"

namespace mxp::bench {

std::string dot_stuff(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 16);
  bool line_start = true;
  for (char c : text) {
    if (line_start && c == '.') out += '.';
    out += c;
    line_start = c == '\n';
  }
  return out;
}

std::string make_message(const std::string& from, const std::string& to, size_t body_bytes) {
  std::string m;
  m += "From: " + (from.empty() ? std::string("mxprobe-bench@localhost") : from) + "\r\n";
  m += "To: " + to + "\r\n";
  m += "Subject: mxprobe bench-server test message\r\n";
  m += "Message-ID: <bench@mxprobe.invalid>\r\n";
  m += "\r\n";
  std::string body;
  static constexpr std::string_view kLine =
      "The quick brown fox jumps over the lazy dog. 0123456789 abcdefghijklmnopqrst";
  while (body.size() < body_bytes) {
    const size_t n = std::min(kLine.size(), body_bytes - body.size());
    body.append(kLine.substr(0, n));
    body += "\r\n";
  }
  m += dot_stuff(body);
  if (m.size() < 2 || m.compare(m.size() - 2, 2, "\r\n") != 0) m += "\r\n";
  m += ".\r\n";
  return m;
}

Dialogue::Dialogue(const DialogueConfig& cfg, std::vector<std::string> rcpts)
    : cfg_(cfg), rcpts_(std::move(rcpts)) {}

void Dialogue::on_connected(TimePoint now) {
  sent_ = now;
  wait_ = Wait::Greeting;
  deadline_ = now + cfg_.banner_timeout;
}

void Dialogue::finish(Failure f) {
  if (done_) return;
  if (f != Failure::None) failure_ = f;
  done_ = true;
  wait_ = Wait::None;
  deadline_.reset();
}

void Dialogue::on_bytes(std::string_view bytes, TimePoint now) {
  while (!done_) {
    auto r = parser_.next(bytes);
    if (!r) break;
    reply(*r, now);
  }
  if (parser_.failed() && !done_) {
    error_ = parser_.error();
    finish(Failure::Protocol);
  }
}

void Dialogue::on_closed(TimePoint, bool reset) {
  if (done_) return;
  // After QUIT was sent the server may close without a 221: that is the end we asked for.
  if (wait_ == Wait::Quit) return finish(Failure::None);
  finish(reset ? Failure::Reset : Failure::ClosedEarly);
}

void Dialogue::on_timeout(TimePoint) {
  if (!done_) finish(Failure::Timeout);
}

// Never lets CR or LF from an argument reach the wire: one argument, one line.
void Dialogue::send(std::string_view verb, std::string_view arg, Wait next, TimePoint now) {
  if (arg.find_first_of("\r\n") != std::string_view::npos) {
    error_ = "refused to send an argument with CR or LF";
    ok_ = false;
    return finish(Failure::Other);
  }
  out_.append(verb);
  out_.append(arg);
  out_ += "\r\n";
  sent_ = now;
  wait_ = next;
  deadline_ = now + (next == Wait::Message ? cfg_.data_timeout : cfg_.command_timeout);
}

void Dialogue::quit(TimePoint now) {
  send("QUIT", "", Wait::Quit, now);
}

void Dialogue::refused(TimePoint now) {
  ok_ = false;
  quit(now);
}

void Dialogue::next_rcpt(TimePoint now) {
  if (next_rcpt_ < rcpts_.size()) {
    const std::string& to = rcpts_[next_rcpt_++];
    return send("RCPT TO:<", to + ">", Wait::Rcpt, now);
  }
  if (cfg_.data && accepted_ > 0) {
    data_sent_ = now;
    return send("DATA", "", Wait::Data, now);
  }
  if (cfg_.data) ok_ = false;  // no recipient accepted: the message could not be sent
  quit(now);
}

void Dialogue::reply(const smtp::Reply& r, TimePoint now) {
  const int code = r.code;
  const bool good = code >= 200 && code < 400;
  // 421: the server is closing the connection (RFC 5321 3.8); no QUIT, it will not answer.
  auto closing = [&] {
    ok_ = false;
    finish(Failure::None);
  };
  switch (wait_) {
    case Wait::Greeting:
      measure(Stage::Greeting, code, now);
      if (code == 421) return closing();
      if (code / 100 != 2) return refused(now);
      return send("EHLO ", cfg_.helo, Wait::Ehlo, now);
    case Wait::Ehlo:
    case Wait::Helo:
      measure(Stage::Ehlo, code, now);
      if (code == 421) return closing();
      // A server that does not know EHLO (5xx) gets HELO (RFC 5321 4.1.4).
      if (wait_ == Wait::Ehlo && code / 100 == 5) return send("HELO ", cfg_.helo, Wait::Helo, now);
      if (code / 100 != 2) return refused(now);
      return send("MAIL FROM:<", cfg_.mail_from + ">", Wait::Mail, now);
    case Wait::Mail:
      measure(Stage::Mail, code, now);
      if (code == 421) return closing();
      if (code / 100 != 2) return refused(now);
      return next_rcpt(now);
    case Wait::Rcpt:
      measure(Stage::Rcpt, code, now);
      ++rcpt_replies_;
      if (code == 421) return closing();
      if (code / 100 == 2) ++accepted_;
      return next_rcpt(now);
    case Wait::Data:
      if (code == 354) {
        out_ += cfg_.message;
        sent_ = now;
        wait_ = Wait::Message;
        deadline_ = now + cfg_.data_timeout;
        return;
      }
      sent_ = data_sent_;
      measure(Stage::Data, code, now);
      if (code == 421) return closing();
      return refused(now);
    case Wait::Message:
      sent_ = data_sent_;  // the data stage: from DATA to the reply after the final "."
      measure(Stage::Data, code, now);
      if (code == 421) return closing();
      if (!good) ok_ = false;
      return quit(now);
    case Wait::Quit:
      measure(Stage::Quit, code, now);
      return finish(Failure::None);
    case Wait::None:
      return;  // a reply nobody asked for: ignored
  }
}

}  // namespace mxp::bench
