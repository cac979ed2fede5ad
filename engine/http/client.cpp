// The client side of HTTP/1.1: URL splitting, request framing and response parsing
// (libhttp-parser in HTTP_RESPONSE mode). No sockets here (client.hpp).
#include "http/client.hpp"

#include <http_parser.h>

#include <cctype>
#include <charconv>

#include "core/strings.hpp"

namespace mxp::http {

std::string ClientUrl::authority() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  if (port != (tls ? 443 : 80)) h += ":" + std::to_string(port);
  return h;
}

std::optional<ClientUrl> parse_client_url(std::string_view url, std::string& err) {
  if (url.size() > 2048) {
    err = "at most 2048 bytes";
    return std::nullopt;
  }
  for (unsigned char c : url)
    if (c <= 0x20 || c == 0x7f) {
      err = "no spaces or control characters (percent-encode them)";
      return std::nullopt;
    }
  const std::string lower = core::lower(url.substr(0, std::min<size_t>(url.size(), 8)));
  const bool tls = lower.starts_with("https://");
  if (!tls && !lower.starts_with("http://")) {
    err = "an absolute http:// or https:// URL, e.g. https://hooks.example.com/mxprobe";
    return std::nullopt;
  }
  std::string_view rest = url.substr(tls ? 8 : 7);
  const size_t end = rest.find_first_of("/?#");
  std::string_view auth = rest.substr(0, end);
  std::string_view tail = end == std::string_view::npos ? std::string_view() : rest.substr(end);
  if (auth.find('@') != std::string_view::npos) {
    err = "no user name or password in the URL (sign with webhook_secret instead)";
    return std::nullopt;
  }
  if (tail.find('#') != std::string_view::npos) {
    err = "no #fragment";
    return std::nullopt;
  }
  ClientUrl u;
  u.tls = tls;
  u.port = tls ? 443 : 80;
  std::string_view port_text;
  if (auth.starts_with('[')) {
    const size_t close = auth.find(']');
    if (close == std::string_view::npos) {
      err = "an IPv6 address needs its closing ']'";
      return std::nullopt;
    }
    u.host = std::string(auth.substr(1, close - 1));
    std::string_view after = auth.substr(close + 1);
    if (!after.empty() && !after.starts_with(':')) {
      err = "unexpected text after the IPv6 address";
      return std::nullopt;
    }
    if (!after.empty()) port_text = after.substr(1);
    if (!after.empty() && port_text.empty()) port_text = "x";  // "[::1]:" is no port
  } else {
    const size_t colon = auth.rfind(':');
    u.host = std::string(auth.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = auth.substr(colon + 1);
      if (port_text.empty()) port_text = "x";
    }
  }
  if (u.host.empty()) {
    err = "no host";
    return std::nullopt;
  }
  for (unsigned char c : u.host)
    if (!(std::isalnum(c) || c == '.' || c == '-' || c == '_' || c == ':')) {
      err = "the host may hold letters, digits, '.', '-' and '_' (or be an IP address)";
      return std::nullopt;
    }
  if (!port_text.empty()) {
    unsigned p = 0;
    auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), p);
    if (ec != std::errc() || ptr != port_text.data() + port_text.size() || p == 0 || p > 65535) {
      err = "the port must be a number from 1 to 65535";
      return std::nullopt;
    }
    u.port = static_cast<uint16_t>(p);
  }
  u.host = core::lower(u.host);
  u.target =
      tail.empty() ? "/" : (tail.starts_with('?') ? "/" + std::string(tail) : std::string(tail));
  return u;
}

std::string build_request(std::string_view method, const ClientUrl& url,
                          const std::vector<std::pair<std::string, std::string>>& headers,
                          std::string_view body) {
  std::string out;
  out.reserve(256 + body.size());
  out.append(method).append(" ").append(url.target).append(" HTTP/1.1\r\n");
  out.append("Host: ").append(url.authority()).append("\r\n");
  for (const auto& [name, value] : headers)
    out.append(name).append(": ").append(value).append("\r\n");
  out.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
  out.append("Connection: close\r\n\r\n");
  out.append(body);
  return out;
}

struct ClientExchange::Impl {
  http_parser parser{};
  http_parser_settings settings{};
  ClientExchange* self = nullptr;
  bool complete = false;

  static Impl& of(http_parser* p) { return *static_cast<Impl*>(p->data); }
  static int on_headers_complete(http_parser* p) {
    Impl& i = of(p);
    // 1xx answers are interim (RFC 9110 §15.2): the final one follows.
    if (p->status_code >= 100 && p->status_code < 200) return 0;
    i.self->status_ = p->status_code;
    i.self->headers_done_ = true;
    return 0;
  }
  static int on_message_complete(http_parser* p) {
    Impl& i = of(p);
    if (i.self->headers_done_) {
      i.complete = true;
      http_parser_pause(p, 1);  // nothing after the answer matters
    }
    return 0;
  }
};

ClientExchange::ClientExchange(std::string request, size_t max_response)
    : impl_(std::make_unique<Impl>()), out_(std::move(request)), max_response_(max_response) {
  http_parser_init(&impl_->parser, HTTP_RESPONSE);
  impl_->parser.data = impl_.get();
  impl_->self = this;
  http_parser_settings_init(&impl_->settings);
  impl_->settings.on_headers_complete = &Impl::on_headers_complete;
  impl_->settings.on_message_complete = &Impl::on_message_complete;
}

ClientExchange::~ClientExchange() = default;

std::string_view ClientExchange::pending_output() const {
  if (state_ != State::Sending) return {};
  return std::string_view(out_).substr(sent_);
}

void ClientExchange::consume_output(size_t n) {
  if (state_ != State::Sending) return;
  sent_ = std::min(out_.size(), sent_ + n);
  if (sent_ == out_.size()) {
    state_ = State::Waiting;
    out_.clear();
    out_.shrink_to_fit();
  }
}

void ClientExchange::fail(std::string why) {
  state_ = State::Failed;
  error_ = std::move(why);
}

void ClientExchange::feed(std::string_view bytes) {
  if (finished() || bytes.empty()) return;
  // Past the limit, a response whose status line and header are in is taken as answered (its
  // body is not wanted); one whose header is not is refused.
  if (received_ + bytes.size() > max_response_) {
    bytes = bytes.substr(0, max_response_ - received_);
    http_parser_execute(&impl_->parser, &impl_->settings, bytes.data(), bytes.size());
    received_ = max_response_;
    if (headers_done_ || impl_->complete) {
      state_ = State::Done;
      return;
    }
    return fail("response header larger than " + std::to_string(max_response_) + " bytes");
  }
  received_ += bytes.size();
  http_parser_execute(&impl_->parser, &impl_->settings, bytes.data(), bytes.size());
  if (impl_->complete) {
    state_ = State::Done;
    return;
  }
  const auto errno_ = HTTP_PARSER_ERRNO(&impl_->parser);
  if (errno_ != HPE_OK) fail(std::string("malformed response: ") + http_errno_description(errno_));
}

void ClientExchange::eof() {
  if (finished()) return;
  // A length of 0 tells http_parser the stream ended: a body delimited by the close ends here.
  http_parser_execute(&impl_->parser, &impl_->settings, nullptr, 0);
  if (impl_->complete) {
    state_ = State::Done;
    return;
  }
  fail(received_ == 0  ? "connection closed without a response"
       : headers_done_ ? "connection closed in the middle of the response body"
                       : "connection closed in the middle of the response header");
}

}  // namespace mxp::http
