// HTTP/1.1 request parsing on Debian's libhttp-parser and answers serialised by hand: the
// http_parser glue (ServerConnection::Impl) and the HTTP side of ServerConnection. The
// WebSocket upgrade is in ws_upgrade.cpp, reason phrases and percent-decoding in message.cpp.
// [SECTION] helpers  [SECTION] http_parser glue  [SECTION] HTTP
#include "http/server_connection.hpp"

#include <http_parser.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstring>

#include "core/strings.hpp"

namespace mxp::http {

// [SECTION] helpers ---------------------------------------------------------------------------

namespace {

using core::iequals;
using core::lower;
using core::trim;

// Methods the admin server answers; anything else that parses gets 501 (RFC 9110 §15.6.2).
bool supported_method(unsigned m) {
  switch (m) {
    case HTTP_GET:
    case HTTP_HEAD:
    case HTTP_POST:
    case HTTP_PUT:
    case HTTP_DELETE:
    case HTTP_OPTIONS:
    case HTTP_PATCH:
      return true;
    default:
      return false;
  }
}

bool safe_header_text(std::string_view s) {
  return s.find_first_of("\r\n", 0) == std::string_view::npos && s.find('\0') == s.npos;
}

}  // namespace

// [SECTION] http_parser glue ------------------------------------------------------------------

struct ServerConnection::Impl {
  ServerConnection* self = nullptr;
  http_parser parser{};
  http_parser_settings settings{};
  Request req;
  bool in_message = false;
  bool headers_done = false;
  bool streamed = false;  // the current request was handed out at its header
  uint64_t streamed_bytes = 0;
  bool last_was_value = false;
  size_t header_bytes = 0;
  int fail_status = 0;  // set by a callback before it returns an error
  std::string prefix;   // first bytes of the current request: tells 501 from 400 on a bad method

  bool method_pending = false;  // an unknown method: waiting to see where its token ends

  // After HPE_INVALID_METHOD: 501 for a well-formed but unknown method token followed by a
  // space (RFC 9110 §15.6.2), 400 for anything else, 0 while the token may still go on.
  int bad_method_status() const {
    std::string_view t = prefix;
    while (!t.empty() && (t.front() == '\r' || t.front() == '\n'))
      t.remove_prefix(1);
    for (size_t i = 0; i < t.size(); ++i) {
      const char c = t[i];
      if (c == ' ') return i > 0 ? 501 : 400;
      if (!((c >= 'A' && c <= 'Z') || c == '-' || c == '_')) return 400;
    }
    return prefix.size() < 24 ? 0 : 400;
  }

  static Impl& of(http_parser* p) { return *static_cast<Impl*>(p->data); }

  int fail(int status) {
    fail_status = status;
    return -1;
  }

  static int on_message_begin(http_parser* p) {
    Impl& m = of(p);
    m.req = Request{};
    m.in_message = true;
    m.headers_done = false;
    m.streamed = false;
    m.streamed_bytes = 0;
    m.last_was_value = false;
    m.header_bytes = 0;
    return 0;
  }

  static int on_url(http_parser* p, const char* at, size_t len) {
    Impl& m = of(p);
    m.req.target.append(at, len);
    m.header_bytes += len;
    if (m.req.target.size() > m.self->limits_.max_url_bytes) return m.fail(414);
    if (m.header_bytes > m.self->limits_.max_header_bytes) return m.fail(431);
    return 0;
  }

  static int on_header_field(http_parser* p, const char* at, size_t len) {
    Impl& m = of(p);
    if (m.headers_done) return 0;  // trailer fields of a chunked body are not kept
    if (m.req.headers.empty() || m.last_was_value) {
      if (m.req.headers.size() >= m.self->limits_.max_headers) return m.fail(431);
      m.req.headers.emplace_back();
      m.header_bytes += 4;  // ": " and CRLF
    }
    m.last_was_value = false;
    for (size_t i = 0; i < len; ++i)
      m.req.headers.back().name += lower(at[i]);
    m.header_bytes += len;
    return m.header_bytes > m.self->limits_.max_header_bytes ? m.fail(431) : 0;
  }

  static int on_header_value(http_parser* p, const char* at, size_t len) {
    Impl& m = of(p);
    if (m.headers_done) return 0;
    m.last_was_value = true;
    m.req.headers.back().value.append(at, len);
    m.header_bytes += len;
    return m.header_bytes > m.self->limits_.max_header_bytes ? m.fail(431) : 0;
  }

  static int on_headers_complete(http_parser* p) {
    Impl& m = of(p);
    ServerConnection& c = *m.self;
    m.headers_done = true;
    // RFC 9112 §5.1: whitespace around a field value is not part of it (http_parser keeps the
    // trailing part).
    for (auto& h : m.req.headers) {
      const std::string_view v = trim(h.value);
      if (v.size() != h.value.size()) h.value = std::string(v);
    }
    if (p->http_major != 1) return m.fail(505);
    if (!supported_method(p->method)) return m.fail(501);
    // RFC 9112 §3.2: a 1.1 request without exactly one Host field gets 400.
    if (p->http_minor >= 1) {
      int hosts = 0;
      for (const auto& h : m.req.headers)
        hosts += h.name == "host";
      if (hosts != 1) return m.fail(400);
    }
    Request& r = m.req;
    r.method = http_method_str(static_cast<http_method>(p->method));
    if (!m.split_target(r)) return m.fail(400);
    r.version_minor = p->http_minor;
    r.keep_alive = http_should_keep_alive(p) != 0;
    r.upgrade = p->upgrade != 0;
    m.streamed = !r.upgrade && c.stream_pred_ && c.stream_pred_(r);
    // Content-Length is known up front (ULLONG_MAX means none); chunked bodies count in on_body.
    if (p->content_length != ULLONG_MAX &&
        p->content_length >
            (m.streamed ? c.limits_.max_stream_body_bytes : uint64_t{c.limits_.max_body_bytes}))
      return m.fail(413);
    // RFC 9110 §10.1.1: answer 100 only if no earlier answer is owed (it must not overtake one).
    const std::string* expect = r.header("expect");
    if (expect != nullptr && iequals(trim(*expect), "100-continue") && p->http_minor >= 1 &&
        c.owed_.empty())
      c.out_ += "HTTP/1.1 100 Continue\r\n\r\n";
    if (m.streamed) {
      // Handed out now; the body follows through take_body(), each piece restarting the clock.
      r.streamed = true;
      c.owed_.push_back(Owed{false, r.keep_alive, false, p->http_minor == 0});
      c.ready_.push_back(r);
      c.body_ = Body::arriving;
      c.stream_answer_owed_ = true;
      c.body_start_ = c.now_;
      c.request_deadline_ = c.now_ + c.limits_.header_timeout;
    }
    return 0;
  }

  static int on_body(http_parser* p, const char* at, size_t len) {
    Impl& m = of(p);
    ServerConnection& c = *m.self;
    if (m.streamed) {
      m.streamed_bytes += len;
      if (m.streamed_bytes > c.limits_.max_stream_body_bytes) return m.fail(413);
      c.body_in_.append(at, len);
      // A gap longer than header_timeout ends it, and so does falling behind min_body_rate
      // (after a grace of header_timeout): a trickle must not hold the connection for ever.
      TimePoint deadline = c.now_ + c.limits_.header_timeout;
      if (c.limits_.min_body_rate > 0) {
        const auto earned = std::chrono::duration_cast<Clock::duration>(
            std::chrono::duration<double>(static_cast<double>(m.streamed_bytes) /
                                          static_cast<double>(c.limits_.min_body_rate)));
        deadline = std::min(deadline, c.body_start_ + c.limits_.header_timeout + earned);
      }
      c.request_deadline_ = deadline;
      return 0;
    }
    if (m.req.body.size() + len > c.limits_.max_body_bytes) return m.fail(413);
    m.req.body.append(at, len);
    return 0;
  }

  // Splits the request target (RFC 9112 §3.2: origin-form, absolute-form, asterisk-form).
  bool split_target(Request& r) {
    std::string_view path, query;
    std::string_view t = r.target;
    if (!t.empty() && t.front() == '/') {
      const size_t q = t.find('?');
      path = t.substr(0, q);
      if (q != t.npos) query = t.substr(q + 1);
    } else if (t == "*" && r.method == "OPTIONS") {
      path = t;
    } else {
      http_parser_url u;
      http_parser_url_init(&u);
      if (http_parser_parse_url(t.data(), t.size(), 0, &u) != 0) return false;
      if (u.field_set & (1 << UF_PATH))
        path = t.substr(u.field_data[UF_PATH].off, u.field_data[UF_PATH].len);
      else
        path = "/";
      if (u.field_set & (1 << UF_QUERY))
        query = t.substr(u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len);
    }
    const size_t hash = query.find('#');
    query = query.substr(0, hash);
    auto p = percent_decode(path, false);
    if (!p) return false;
    r.path = std::move(*p);
    r.query = std::string(query);
    while (!query.empty()) {
      const size_t amp = query.find('&');
      const std::string_view item = query.substr(0, amp);
      if (!item.empty()) {
        const size_t eq = item.find('=');
        auto k = percent_decode(item.substr(0, eq), true);
        auto v = percent_decode(eq == item.npos ? std::string_view{} : item.substr(eq + 1), true);
        if (!k || !v) return false;
        r.params.emplace_back(std::move(*k), std::move(*v));
      }
      if (amp == query.npos) break;
      query.remove_prefix(amp + 1);
    }
    return true;
  }

  static int on_message_complete(http_parser* p) {
    Impl& m = of(p);
    ServerConnection& c = *m.self;
    Request& r = m.req;
    const bool last = !r.keep_alive || r.upgrade;
    if (m.streamed) {
      c.body_ = Body::ended;  // parsing waits until the owner has taken it (body_taken)
    } else {
      c.owed_.push_back(Owed{r.method == "HEAD", r.keep_alive, r.upgrade, p->http_minor == 0});
      c.ready_.push_back(std::move(r));
    }
    c.request_deadline_.reset();
    m.in_message = false;
    m.prefix.clear();
    // Nothing after a "Connection: close" request is read (RFC 9112 §9.6); after an upgrade
    // request the bytes belong to the new protocol.
    if (last) c.stop_parsing_ = true;
    http_parser_pause(p, 1);  // one request per execute() so pipelining is under our control
    return 0;
  }
};

// [SECTION] HTTP ------------------------------------------------------------------------------

ServerConnection::ServerConnection(Limits limits, TimePoint now)
    : limits_(limits), impl_(std::make_unique<Impl>()) {
  impl_->self = this;
  http_parser_init(&impl_->parser, HTTP_REQUEST);
  impl_->parser.data = impl_.get();
  auto& s = impl_->settings;
  http_parser_settings_init(&s);
  s.on_message_begin = &Impl::on_message_begin;
  s.on_url = &Impl::on_url;
  s.on_header_field = &Impl::on_header_field;
  s.on_header_value = &Impl::on_header_value;
  s.on_headers_complete = &Impl::on_headers_complete;
  s.on_body = &Impl::on_body;
  s.on_message_complete = &Impl::on_message_complete;
  // A connection that never sends a byte: no longer than a request's header may take.
  idle_deadline_ = now + std::min<Clock::duration>(limits_.idle_timeout, limits_.header_timeout);
}

ServerConnection::~ServerConnection() = default;

void ServerConnection::feed(std::string_view bytes, TimePoint now) {
  if (bytes.empty()) return;
  if (state_ == State::websocket) {
    ws_->feed(bytes);
    ws_sync();
    return;
  }
  if (impl_->method_pending && state_ == State::http) {
    impl_->prefix.append(bytes.substr(0, 24 - std::min<size_t>(24, impl_->prefix.size())));
    if (const int status = impl_->bad_method_status(); status != 0) {
      impl_->method_pending = false;
      fail(status);
    }
    return;
  }
  if (state_ != State::http) return;
  now_ = now;
  if (stop_parsing_) {
    // Frames may follow an upgrade request before the owner accepts it: keep them (bounded)
    // for wslay. After an error or "Connection: close" the rest is ignored.
    if (!owed_.empty() && owed_.back().upgrade && pending_error_ == 0 &&
        in_.size() + bytes.size() <= limits_.max_ws_message + 16)
      in_.append(bytes);
    return;
  }
  in_.append(bytes);
  pump(now);
}

void ServerConnection::feed_eof() {
  if (body_ == Body::arriving) fail_body();
  if (state_ == State::websocket || owed_.empty()) {
    state_ = State::closing;
    return;
  }
  peer_eof_ = true;
  stop_parsing_ = true;
  request_deadline_.reset();
}

void ServerConnection::pump(TimePoint now) {
  Impl& m = *impl_;
  // A streamed body's end stops parsing until the owner has taken it (body_taken()).
  while (state_ == State::http && !stop_parsing_ && !in_.empty() &&
         owed_.size() < limits_.max_pipelined && body_ != Body::ended && body_ != Body::failed) {
    if (!m.in_message && m.prefix.empty()) {
      // The first byte of a request: the slowloris clock starts (RFC 9112 §9.5 allows 408).
      if (!request_deadline_) request_deadline_ = now + limits_.header_timeout;
      idle_deadline_.reset();
    }
    if (m.prefix.size() < 24) m.prefix.append(in_, 0, 24 - m.prefix.size());
    http_parser_pause(&m.parser, 0);
    const size_t n = http_parser_execute(&m.parser, &m.settings, in_.data(), in_.size());
    in_.erase(0, n);
    const auto err = HTTP_PARSER_ERRNO(&m.parser);
    if (err == HPE_PAUSED) continue;  // one request complete
    if (err == HPE_OK) break;         // all consumed, request incomplete
    int status = 400;
    if (m.fail_status != 0) {
      status = m.fail_status;
    } else if (err == HPE_HEADER_OVERFLOW) {
      status = 431;
    } else if (err == HPE_INVALID_METHOD) {
      status = m.bad_method_status();
      if (status == 0) {  // the token may go on: decide when more bytes come
        m.method_pending = true;
        stop_parsing_ = true;
        in_.clear();
        return;
      }
    }
    fail(status);
  }
}

void ServerConnection::fail_body() {
  body_ = Body::failed;
  body_in_.clear();
  if (!stream_answer_owed_) return;
  // Its answer is the codec's error now (or nothing, when the client is gone).
  stream_answer_owed_ = false;
  owed_.pop_back();
  if (!ready_.empty() && ready_.back().streamed) ready_.pop_back();
}

ServerConnection::Body ServerConnection::body_state() const {
  // Nothing to say of the body before its request is handed out.
  if (!ready_.empty() && ready_.back().streamed) return Body::none;
  return body_;
}

std::string ServerConnection::take_body() {
  std::string out;
  out.swap(body_in_);
  return out;
}

void ServerConnection::body_taken(TimePoint now) {
  if (body_ != Body::ended && body_ != Body::failed) return;
  body_ = Body::none;
  if (state_ == State::http) pump(now);
}

void ServerConnection::fail(int status) {
  if (body_ == Body::arriving) fail_body();
  stop_parsing_ = true;
  in_.clear();
  request_deadline_.reset();
  pending_error_ = status;
  maybe_send_error();
}

void ServerConnection::maybe_send_error() {
  if (pending_error_ == 0 || !owed_.empty() || chunking_ || state_ != State::http) return;
  const int status = pending_error_;
  pending_error_ = 0;
  error_status_ = status;
  std::string body(reason_phrase(status));
  body += '\n';
  write_head(status, {{"Content-Type", "text/plain; charset=utf-8"}}, true, false, body.size());
  out_ += body;
  state_ = State::closing;
}

void ServerConnection::write_head(int status, const std::vector<Header>& headers, bool close,
                                  bool chunked, size_t content_length) {
  out_ += "HTTP/1.1 ";
  out_ += std::to_string(status);
  out_ += ' ';
  out_ += reason_phrase(status);
  out_ += "\r\n";
  for (const auto& h : headers) {
    // Framing headers are ours; CR/LF in a field would split the response (RFC 9110 §5.5).
    if (iequals(h.name, "content-length") || iequals(h.name, "transfer-encoding") ||
        iequals(h.name, "connection") || !safe_header_text(h.name) || !safe_header_text(h.value))
      continue;
    out_ += h.name;
    out_ += ": ";
    out_ += h.value;
    out_ += "\r\n";
  }
  // RFC 9110 §8.6: no Content-Length on 1xx and 204 answers.
  if (chunked) {
    out_ += "Transfer-Encoding: chunked\r\n";
  } else if (status >= 200 && status != 204 && status != 304) {
    out_ += "Content-Length: ";
    out_ += std::to_string(content_length);
    out_ += "\r\n";
  }
  if (close) out_ += "Connection: close\r\n";
  out_ += "\r\n";
}

std::optional<Request> ServerConnection::next_request() {
  if (ready_.empty()) return std::nullopt;
  Request r = std::move(ready_.front());
  ready_.pop_front();
  return r;
}

namespace {
bool wants_close(const std::vector<Header>& headers) {
  return std::any_of(headers.begin(), headers.end(), [](const Header& h) {
    return iequals(h.name, "connection") && iequals(trim(h.value), "close");
  });
}
}  // namespace

bool ServerConnection::respond(const Response& r, TimePoint now) {
  if (state_ != State::http || chunking_ || owed_.size() <= ready_.size()) return false;
  const Owed o = owed_.front();
  owed_.pop_front();
  // Answering a streamed request whose body is still coming (an early error): the rest of the
  // body is not read, so the connection ends after the answer.
  const bool cut = answer_cuts_body();
  // A plain answer to an upgrade request ends the connection: what follows is not HTTP.
  const bool close = !o.keep_alive || o.upgrade || wants_close(r.headers) || cut;
  const bool bodyless = r.status < 200 || r.status == 204 || r.status == 304;
  write_head(r.status, r.headers, close, false, r.body.size());
  if (!o.head && !bodyless) out_ += r.body;
  after_answer(close, now);
  return true;
}

void ServerConnection::after_answer(bool close, TimePoint now) {
  if (close || (peer_eof_ && owed_.empty() && pending_error_ == 0)) {
    state_ = State::closing;
    in_.clear();
    ready_.clear();
    owed_.clear();
    return;
  }
  maybe_send_error();
  if (state_ != State::http) return;
  if (owed_.empty() && !request_deadline_) idle_deadline_ = now + limits_.idle_timeout;
  pump(now);
}

bool ServerConnection::begin_chunked(int status, const std::vector<Header>& headers) {
  if (state_ != State::http || chunking_ || owed_.size() <= ready_.size()) return false;
  const Owed& o = owed_.front();
  chunking_ = true;
  // HTTP/1.0 has no chunked coding: the body then ends with the connection (RFC 9112 §6.3).
  chunk_close_ = !o.keep_alive || o.upgrade || o.http10 || wants_close(headers) ||
                 (owed_.size() == 1 && stream_answer_owed_ && body_ == Body::arriving);
  write_head(status, headers, chunk_close_, !o.http10, 0);
  if (o.http10) {
    // write_head wrote a Content-Length of 0; replace it by nothing for a close-delimited body.
    const std::string cl = "Content-Length: 0\r\n";
    const size_t at = out_.rfind(cl);
    if (at != std::string::npos) out_.erase(at, cl.size());
  }
  return true;
}

bool ServerConnection::write_chunk(std::string_view data) {
  if (!chunking_) return false;
  const Owed& o = owed_.front();
  if (data.empty() || o.head) return true;  // an empty chunk would end the body
  if (o.http10) {
    out_ += data;
    return true;
  }
  char size[20];
  const int n = std::snprintf(size, sizeof size, "%zx\r\n", data.size());
  out_.append(size, static_cast<size_t>(n));
  out_ += data;
  out_ += "\r\n";
  return true;
}

bool ServerConnection::end_chunked(TimePoint now) {
  if (!chunking_) return false;
  const Owed o = owed_.front();
  owed_.pop_front();
  (void)answer_cuts_body();  // chunk_close_ already said so
  chunking_ = false;
  if (!o.http10 && !o.head) out_ += "0\r\n\r\n";
  after_answer(chunk_close_, now);
  return true;
}

void ServerConnection::consume_output(size_t n) {
  out_pos_ += std::min(n, out_.size() - out_pos_);
  if (out_pos_ == out_.size()) {
    out_.clear();
    out_pos_ = 0;
  }
}

std::optional<TimePoint> ServerConnection::next_deadline() const {
  if (state_ != State::http) return std::nullopt;
  if (request_deadline_) return request_deadline_;
  if (owed_.empty() && pending_error_ == 0) return idle_deadline_;
  return std::nullopt;  // the application owes an answer; its own timers apply
}

void ServerConnection::on_timeout(TimePoint now) {
  if (state_ != State::http) return;
  if (request_deadline_ && now >= *request_deadline_) {
    fail(408);  // RFC 9110 §15.5.9
  } else if (!request_deadline_ && owed_.empty() && idle_deadline_ && now >= *idle_deadline_) {
    state_ = State::closing;  // an idle keep-alive connection closes silently (RFC 9112 §9.5)
  }
}

}  // namespace mxp::http
