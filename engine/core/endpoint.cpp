// Endpoint parsing and formatting through inet_pton/inet_ntop (numeric addresses only: names are
// the DNS module's job).
#include "core/endpoint.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace mxp::core {

std::optional<Endpoint> Endpoint::parse(std::string_view ip, uint16_t port) {
  char buf[INET6_ADDRSTRLEN + 1];
  if (ip.empty() || ip.size() >= sizeof(buf)) return std::nullopt;
  std::memcpy(buf, ip.data(), ip.size());
  buf[ip.size()] = '\0';
  Endpoint e;
  in_addr a4{};
  in6_addr a6{};
  if (inet_pton(AF_INET, buf, &a4) == 1) {
    e.u_.v4.sin_family = AF_INET;
    e.u_.v4.sin_addr = a4;
  } else if (inet_pton(AF_INET6, buf, &a6) == 1) {
    e.u_.v6.sin6_family = AF_INET6;
    e.u_.v6.sin6_addr = a6;
  } else {
    return std::nullopt;
  }
  e.set_port(port);
  return e;
}

std::optional<Endpoint> Endpoint::parse_host_port(std::string_view text, uint16_t default_port) {
  std::string_view host = text;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {  // [v6]:port or [v6]
    const auto close = text.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    host = text.substr(1, close - 1);
    const auto rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return std::nullopt;
      port_text = rest.substr(1);
      if (port_text.empty()) return std::nullopt;
    }
  } else if (const auto colon = text.find(':');
             colon != std::string_view::npos &&
             text.find(':', colon + 1) == std::string_view::npos) {
    host = text.substr(0, colon);  // exactly one colon: v4:port
    port_text = text.substr(colon + 1);
    if (port_text.empty()) return std::nullopt;
  }
  uint16_t port = default_port;
  if (!port_text.empty()) {
    unsigned value = 0;
    const auto [end, ec] =
        std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
    if (ec != std::errc() || end != port_text.data() + port_text.size() || value > 65535) {
      return std::nullopt;
    }
    port = static_cast<uint16_t>(value);
  }
  return parse(host, port);
}

std::optional<Endpoint> Endpoint::from_sockaddr(const sockaddr* sa, socklen_t len) {
  Endpoint e;
  if (sa == nullptr) return std::nullopt;
  if (sa->sa_family == AF_INET && len >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
    std::memcpy(&e.u_.v4, sa, sizeof(sockaddr_in));
  } else if (sa->sa_family == AF_INET6 && len >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
    std::memcpy(&e.u_.v6, sa, sizeof(sockaddr_in6));
  } else {
    return std::nullopt;
  }
  return e;
}

uint16_t Endpoint::port() const {
  if (family() == AF_INET) return ntohs(u_.v4.sin_port);
  if (family() == AF_INET6) return ntohs(u_.v6.sin6_port);
  return 0;
}

void Endpoint::set_port(uint16_t port) {
  if (family() == AF_INET) u_.v4.sin_port = htons(port);
  if (family() == AF_INET6) u_.v6.sin6_port = htons(port);
}

std::string Endpoint::ip_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (family() == AF_INET) {
    inet_ntop(AF_INET, &u_.v4.sin_addr, buf, sizeof(buf));
  } else if (family() == AF_INET6) {
    inet_ntop(AF_INET6, &u_.v6.sin6_addr, buf, sizeof(buf));
  } else {
    return "";
  }
  return buf;
}

std::string Endpoint::to_string() const {
  if (!valid()) return "";
  const std::string ip = ip_string();
  const std::string port = std::to_string(this->port());
  return family() == AF_INET6 ? "[" + ip + "]:" + port : ip + ":" + port;
}

bool Endpoint::operator==(const Endpoint& o) const {
  if (family() != o.family()) return false;
  if (family() == AF_INET) {
    return u_.v4.sin_port == o.u_.v4.sin_port && u_.v4.sin_addr.s_addr == o.u_.v4.sin_addr.s_addr;
  }
  if (family() == AF_INET6) {
    return u_.v6.sin6_port == o.u_.v6.sin6_port &&
           std::memcmp(&u_.v6.sin6_addr, &o.u_.v6.sin6_addr, sizeof(in6_addr)) == 0 &&
           u_.v6.sin6_scope_id == o.u_.v6.sin6_scope_id;
  }
  return true;
}

}  // namespace mxp::core
