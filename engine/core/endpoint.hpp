// An IPv4 or IPv6 socket address (address + port) as the loop, DNS and proxy code pass it around:
// 28 bytes, no allocation, convertible to and from sockaddr. Below the loop, so a module that
// only names addresses (proxy, dns/mx.hpp) does not link a loop backend.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace mxp::core {

class Endpoint {
 public:
  Endpoint() { std::memset(&u_, 0, sizeof(u_)); }  // AF_UNSPEC: "no address"

  // Numeric IPv4 ("192.0.2.1") or IPv6 ("2001:db8::1", no brackets) address and a port.
  static std::optional<Endpoint> parse(std::string_view ip, uint16_t port);
  // "192.0.2.1:25", "[2001:db8::1]:25"; without a port (":25" missing) default_port is used.
  static std::optional<Endpoint> parse_host_port(std::string_view text, uint16_t default_port);
  static std::optional<Endpoint> from_sockaddr(const sockaddr* sa, socklen_t len);

  bool valid() const { return u_.sa.sa_family == AF_INET || u_.sa.sa_family == AF_INET6; }
  int family() const { return u_.sa.sa_family; }
  uint16_t port() const;
  void set_port(uint16_t port);

  const sockaddr* sa() const { return &u_.sa; }
  socklen_t len() const {
    return family() == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  }

  std::string ip_string() const;  // "192.0.2.1", "2001:db8::1"
  std::string to_string() const;  // "192.0.2.1:25", "[2001:db8::1]:25"

  bool operator==(const Endpoint& o) const;

 private:
  union {
    sockaddr sa;
    sockaddr_in v4;
    sockaddr_in6 v6;
  } u_;  // zeroed whole: value-initialising a union only zeroes its first member
};

}  // namespace mxp::core

// The name the loop, DNS and pipeline code (and their tests) know it by.
namespace mxp::loop {
using core::Endpoint;
}  // namespace mxp::loop
