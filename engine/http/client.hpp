// Sans-I/O HTTP/1.1 client exchange (RFC 9112): one request out, one response in, on a
// connection of its own (Connection: close). Bytes out via pending_output()/consume_output(),
// bytes in via feed() and eof(); the outcome is the response's status line. Responses are parsed
// by libhttp-parser; the caller owns the socket and the timers (the webhook sender on the
// engine's loop, engine/webhook).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mxp::http {

// An http:// or https:// URL split for a client: where to connect and what to send.
struct ClientUrl {
  std::string host;    // a name, an IPv4 address, or an IPv6 address without its brackets
  uint16_t port = 80;  // as given, else 80 (http) or 443 (https)
  std::string target;  // path and query ("/" when the URL has no path)
  bool tls = false;    // https://: the exchange runs inside TLS (the caller's business)
  std::string authority() const;  // the Host header: "host[:port]", IPv6 in brackets
};

// Parses an absolute http:// or https:// URL. Refused, with a message a user understands:
// another scheme, user information, a fragment, an empty host, a port outside 1-65535, control
// characters or spaces, more than 2048 bytes.
std::optional<ClientUrl> parse_client_url(std::string_view url, std::string& err);

// The request's bytes: request line, Host, the given headers, Content-Length, Connection: close,
// then the body. Header names and values must not hold CR or LF (the caller's own values).
std::string build_request(std::string_view method, const ClientUrl& url,
                          const std::vector<std::pair<std::string, std::string>>& headers,
                          std::string_view body);

class ClientExchange {
 public:
  enum class State : uint8_t { Sending, Waiting, Done, Failed };

  // `max_response`: bytes of the response read at most. A response whose header is in by then
  // counts as answered (the rest of its body is not read); a longer header fails. The body is
  // never kept: the status is the answer.
  explicit ClientExchange(std::string request, size_t max_response = 64 * 1024);
  ~ClientExchange();
  ClientExchange(const ClientExchange&) = delete;
  ClientExchange& operator=(const ClientExchange&) = delete;

  std::string_view pending_output() const;
  void consume_output(size_t n);
  // Response bytes as they arrive.
  void feed(std::string_view bytes);
  // The server closed the connection: a response without a length ends here; one cut short is
  // a failure.
  void eof();

  State state() const { return state_; }
  bool finished() const { return state_ == State::Done || state_ == State::Failed; }
  // Done: the response's status code (any class; a 3xx is not followed).
  int status() const { return status_; }
  // Failed: why, e.g. "malformed response: invalid HTTP status code".
  const std::string& error() const { return error_; }

 private:
  struct Impl;
  void fail(std::string why);
  std::unique_ptr<Impl> impl_;
  std::string out_;
  size_t sent_ = 0, received_ = 0, max_response_;
  State state_ = State::Sending;
  int status_ = 0;
  bool headers_done_ = false;
  std::string error_;
};

}  // namespace mxp::http
