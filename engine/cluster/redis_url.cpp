// Parsing redis:// URLs (see redis_url.hpp).
#include "cluster/redis_url.hpp"

#include "core/strings.hpp"

#include <charconv>
#include <optional>

namespace mxp::cluster {
namespace {

using Result = core::Expected<RedisUrl, std::string>;

Result fail(std::string why) {
  return core::unexpected("bad Redis URL: " + why +
                          " (expected redis://[[user]:password@]host[:port][/db])");
}

// A decimal number in [lo, hi], digits only (no sign, no spaces).
std::optional<int> number(std::string_view s, int lo, int hi) {
  if (s.empty() || s.size() > 9) return std::nullopt;
  int v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v < lo || v > hi) return std::nullopt;
  return v;
}

bool host_char_ok(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_';
}

}  // namespace

std::string RedisUrl::display() const {
  std::string s = "redis://";
  if (!password.empty()) s += user + ":***@";
  s += host.find(':') != std::string::npos ? "[" + host + "]" : host;
  s += ":" + std::to_string(port) + "/" + std::to_string(db);
  return s;
}

core::Expected<RedisUrl, std::string> parse_redis_url(std::string_view text) {
  constexpr std::string_view kScheme = "redis://";
  if (text.substr(0, 9) == "rediss://") {
    return fail("rediss:// (TLS) is not supported; use redis:// on a trusted network or a tunnel");
  }
  if (text.substr(0, 8) == "unix:///" || text.substr(0, 9) == "redis+unix") {
    return fail("unix sockets are not supported, only TCP");
  }
  if (text.substr(0, kScheme.size()) != kScheme) return fail("it must start with redis://");
  std::string_view rest = text.substr(kScheme.size());
  if (rest.find_first_of("?#") != std::string_view::npos) {
    return fail("query strings and fragments (?...#...) are not supported");
  }
  RedisUrl url;
  // The path: "/db" (or nothing, or a lone "/"). Credentials cannot contain a raw '/', so the
  // first '/' after the last '@' starts it.
  const size_t at = rest.rfind('@');
  const size_t slash = rest.find('/', at == std::string_view::npos ? 0 : at + 1);
  if (slash != std::string_view::npos) {
    const std::string_view db = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
    if (!db.empty()) {
      const auto n = number(db, 0, 65535);
      if (!n)
        return fail("the database must be a number from 0 to 65535, not \"" + std::string(db) +
                    "\"");
      url.db = *n;
    }
  }
  if (at != std::string_view::npos) {
    const std::string_view userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    const size_t colon = userinfo.find(':');
    if (colon == std::string_view::npos) {
      // redis://secret@host is ambiguous (user or password?); Redis' own tools read it as a
      // user without a password, which cannot log in. Ask for the explicit form.
      return fail("credentials must be :password or user:password (note the colon)");
    }
    auto user = core::percent_decode(userinfo.substr(0, colon));
    auto pass = core::percent_decode(userinfo.substr(colon + 1));
    if (!user || !pass) return fail("bad %-escape in the credentials (credentials not shown)");
    if (pass->empty()) return fail("the password after ':' is empty");
    url.user = std::move(*user);
    url.password = std::move(*pass);
  }
  // host[:port], [v6][:port]
  std::string_view host = rest;
  std::string_view port;
  if (!rest.empty() && rest.front() == '[') {
    const size_t close = rest.find(']');
    if (close == std::string_view::npos) return fail("'[' without ']' around an IPv6 address");
    host = rest.substr(1, close - 1);
    const std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return fail("unexpected text after ']'");
      port = after.substr(1);
      if (port.empty()) return fail("':' without a port");
    }
    if (host.empty() || host.find_first_not_of("0123456789abcdefABCDEF:.") != host.npos) {
      return fail("\"" + std::string(host) + "\" is not an IPv6 address");
    }
  } else {
    const size_t colon = rest.rfind(':');
    if (colon != std::string_view::npos) {
      host = rest.substr(0, colon);
      port = rest.substr(colon + 1);
      if (port.empty()) return fail("':' without a port");
    }
    if (host.empty()) return fail("the host is missing");
    for (char c : host) {
      if (!host_char_ok(c)) {
        return fail("\"" + std::string(host) +
                    "\" is not a host name or IP address (IPv6 goes in brackets)");
      }
    }
  }
  if (!port.empty()) {
    const auto p = number(port, 1, 65535);
    if (!p)
      return fail("the port must be a number from 1 to 65535, not \"" + std::string(port) + "\"");
    url.port = static_cast<uint16_t>(*p);
  }
  url.host = std::string(host);
  return url;
}

}  // namespace mxp::cluster
