// Sans-I/O SOCKS5 client (RFC 1928 CONNECT; RFC 1929 username/password authentication) and the
// proxy URL form mxprobe takes (`socks5://[user:pass@]host:port`). The codec is fed the proxy's
// bytes and answers with bytes to send and a state; it owns no socket. Bytes that arrive after
// the CONNECT reply belong to the tunnelled protocol (an SMTP banner can come in the same read):
// feed() says how many bytes were the handshake's.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/endpoint.hpp"
#include "core/expected.hpp"

namespace mxp::proxy {

// Why a handshake failed: one X-macro list (id, name, text, whose fault). "proxy": the proxy
// cannot be used (unreachable, refuses us, speaks something else) — take it out of rotation;
// "target": the proxy works but could not reach the destination — the destination's problem,
// as if our own connect had failed. REP 0x01 "general failure" is the target's: proxies
// (microsocks, dante) report unmapped connect errors with it.
#define MXP_SOCKS5_ERRORS(X)                                                                     \
  X(None, "none", "no error", Proxy)                                                             \
  X(Closed, "closed", "the proxy closed the connection during the handshake", Proxy)             \
  X(BadVersion, "bad_version", "the proxy's reply is not SOCKS version 5", Proxy)                \
  X(NoAcceptableMethod, "no_acceptable_method",                                                  \
    "the proxy accepts none of our authentication methods", Proxy)                               \
  X(BadMethod, "bad_method", "the proxy chose an authentication method we did not offer", Proxy) \
  X(AuthBadVersion, "auth_bad_version",                                                          \
    "the proxy's authentication reply is not RFC 1929 version 1", Proxy)                         \
  X(AuthRefused, "auth_refused", "the proxy refused the username/password", Proxy)               \
  X(BadAddressType, "bad_address_type", "the proxy's reply has an unknown address type", Proxy)  \
  X(BadRequest, "bad_request", "credentials or target too long for SOCKS5", Proxy)               \
  X(GeneralFailure, "general_failure", "proxy: general SOCKS server failure (REP 1)", Target)    \
  X(NotAllowed, "not_allowed", "proxy: connection not allowed by ruleset (REP 2)", Proxy)        \
  X(NetworkUnreachable, "network_unreachable", "proxy: network unreachable (REP 3)", Target)     \
  X(HostUnreachable, "host_unreachable", "proxy: host unreachable (REP 4)", Target)              \
  X(ConnectionRefused, "connection_refused", "proxy: connection refused (REP 5)", Target)        \
  X(TtlExpired, "ttl_expired", "proxy: TTL expired (REP 6)", Target)                             \
  X(CommandNotSupported, "command_not_supported", "proxy: command not supported (REP 7)", Proxy) \
  X(AddressTypeNotSupported, "address_type_not_supported",                                       \
    "proxy: address type not supported (REP 8)", Proxy)                                          \
  X(UnknownReply, "unknown_reply", "proxy: unassigned reply code (REP > 8)", Proxy)

enum class Error : uint8_t {
#define MXP_X(id, name, text, fault) id,
  MXP_SOCKS5_ERRORS(MXP_X)
#undef MXP_X
};
enum class Fault : uint8_t { Proxy, Target };

std::string_view to_string(Error e);  // "auth_refused"
std::string_view describe(Error e);   // "the proxy refused the username/password"
Fault fault_of(Error e);

struct Credentials {
  std::string user, password;  // RFC 1929: 1..255 bytes each
};

// Where the proxy should connect: an IPv4/IPv6 address, or a host name the proxy resolves.
struct Target {
  core::Endpoint address;  // with the port; unused when `host` is set
  std::string host;        // ATYP 3 (domain name), 1..255 bytes
  uint16_t port = 0;       // with `host`
  static Target ip(const core::Endpoint& ep) { return {ep, {}, ep.port()}; }
  static Target name(std::string host, uint16_t port) { return {{}, std::move(host), port}; }
};

class Client {
 public:
  enum class State : uint8_t {
    Greeting,  // method selection sent, waiting for the proxy's choice
    Auth,      // RFC 1929 request sent, waiting for its status
    Request,   // CONNECT sent, waiting for the reply
    Done,      // the tunnel is up: everything after it belongs to the tunnelled protocol
    Failed,
  };

  // Queues the method selection at once: pending_output() has it. Null credentials: offer only
  // "no authentication"; with credentials offer both and authenticate if the proxy asks.
  Client(Target target, const Credentials* credentials);

  std::string_view pending_output() const { return std::string_view(out_).substr(sent_); }
  void consume_output(size_t n);

  // The proxy's bytes. Returns how many belonged to the handshake: once done(), the rest of
  // `bytes` (from the returned offset) is the tunnel's. After failure it returns bytes.size().
  size_t feed(std::string_view bytes);
  // The proxy closed the connection: a failure unless already done.
  void on_closed();

  State state() const { return state_; }
  bool done() const { return state_ == State::Done; }
  bool failed() const { return state_ == State::Failed; }
  Error error() const { return error_; }
  // The proxy accepted us (method chosen, authentication passed): what a health check needs.
  bool accepted() const { return state_ == State::Request || state_ == State::Done; }
  // BND.ADDR:BND.PORT of the reply ("192.0.2.1:4567", "[::1]:80", "name:80"), once done.
  const std::string& bound() const { return bound_; }

 private:
  void fail(Error e);
  void send_auth();
  void send_request();
  // Bytes the current message has at least, from what is buffered of it.
  size_t needed() const;
  // Consumes the current message from in_ (it holds needed() bytes).
  void step();

  Target target_;
  std::optional<Credentials> credentials_;
  State state_ = State::Greeting;
  Error error_ = Error::None;
  std::string out_;
  size_t sent_ = 0;
  std::string in_;  // a partial message (at most 262 bytes: a domain-name reply)
  std::string bound_;
};

// A proxy of the pool as given on the command line.
struct ProxyUrl {
  core::Endpoint endpoint;  // numeric IPv4/IPv6 and port
  std::optional<Credentials> credentials;
  // "socks5://host:port": what logs, results and metrics show (never the credentials).
  std::string display;
};

// "socks5://[user:pass@]host:port"; host a numeric IPv4 address or a bracketed IPv6 one; user
// and password percent-decoded (RFC 3986), 1..255 bytes each. An error otherwise (it never
// repeats the credentials).
core::Expected<ProxyUrl, std::string> parse_proxy_url(std::string_view text);

}  // namespace mxp::proxy
