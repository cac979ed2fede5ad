// The address of the Redis a cluster node talks to, as `--cluster` will take it:
// redis://[[user]:password@]host[:port][/db]. Plain data and a parser; no I/O (the host name is
// resolved by the client, engine/cluster/redis_client.hpp). RESP2 over plain TCP only: rediss://
// (TLS) and unix sockets are refused with a message saying so.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/expected.hpp"

namespace mxp::cluster {

struct RedisUrl {
  std::string host;  // a name, an IPv4 address, or an IPv6 address (without its brackets)
  uint16_t port = 6379;
  // Redis 6 ACL user; empty: AUTH with the password alone (the "default" user, requirepass).
  std::string user;
  std::string password;  // empty: no AUTH
  int db = 0;            // SELECT after AUTH when not 0

  // "redis://host:6379/0", with ":***@" (or "user:***@") when there is a password: for logs,
  // /metrics and error messages, which must never show the password.
  std::string display() const;
};

// Parses a URL. user and password are percent-decoded (RFC 3986: a password with '@', ':' or
// '/' is written %40, %3A, %2F; a raw '@' in the password also works, the last '@' ends the
// credentials). Port 1-65535, db 0-65535 (Redis' `databases` setting caps it further). The error
// says what is wrong and never repeats the password.
core::Expected<RedisUrl, std::string> parse_redis_url(std::string_view text);

}  // namespace mxp::cluster
