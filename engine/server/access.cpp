// The access checks of the security model (server.hpp): the bearer token (compared as SHA-256
// digests in constant time), in a header or a WebSocket subprotocol; Host on a loopback
// server (DNS rebinding); Origin against Host; and writes a cross-site form could send.
#include "server/conn.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <sys/socket.h>

#include <algorithm>

#include "core/strings.hpp"

namespace mxp::server {

namespace {

constexpr std::string_view kBearerPrefix = "bearer.";

using core::istarts_with;
using core::lower;
using core::trim;

}  // namespace

namespace detail {

std::array<unsigned char, 32> sha256(std::string_view s) {
  std::array<unsigned char, 32> d{};
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), d.data());
  return d;
}

bool is_loopback(const loop::Endpoint& ep) {
  if (ep.family() == AF_INET) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(ep.sa());
    return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
  }
  const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(ep.sa());
  if (IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr)) return true;
  return IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr) && sin6->sin6_addr.s6_addr[12] == 127;
}

}  // namespace detail

using detail::is_loopback;
using detail::sha256;

bool HttpServer::authorized(const http::Request& req) const {
  if (options_.token.empty()) return true;
  const std::string* h = req.header("authorization");
  if (h == nullptr) return false;
  std::string_view v = trim(*h);
  if (!istarts_with(v, "bearer ")) return false;
  v = trim(v.substr(7));
  const auto d = sha256(v);  // fixed-size digests: the comparison leaks neither length nor bytes
  return CRYPTO_memcmp(d.data(), token_digest_.data(), d.size()) == 0;
}

namespace {

// "host:port", "[v6]:port" or "host" -> lower-cased host without brackets and port.
std::string host_only(std::string_view authority) {
  std::string_view h = trim(authority);
  if (!h.empty() && h.front() == '[') {
    const size_t close = h.find(']');
    h = close == h.npos ? std::string_view{} : h.substr(1, close - 1);
  } else if (const size_t colon = h.rfind(':'); colon != h.npos) {
    h = h.substr(0, colon);
  }
  std::string out;
  for (const char ch : h)
    out += lower(ch);
  if (!out.empty() && out.back() == '.') out.pop_back();
  return out;
}

bool loopback_name(const std::string& h) {
  if (h == "localhost" || (h.size() > 10 && h.compare(h.size() - 10, 10, ".localhost") == 0))
    return true;
  in_addr a{};
  if (::inet_pton(AF_INET, h.c_str(), &a) == 1) return (ntohl(a.s_addr) >> 24) == 127;
  in6_addr a6{};
  return ::inet_pton(AF_INET6, h.c_str(), &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

bool simple_content_type(const std::string* ct) {
  if (ct == nullptr) return true;  // a body without a type is what a form or no-cors fetch sends
  std::string_view v = trim(*ct);
  v = trim(v.substr(0, v.find(';')));
  const auto is = [&](std::string_view t) { return v.size() == t.size() && istarts_with(v, t); };
  // The CORS-safelisted types (Fetch standard): a page may send them without a preflight.
  return v.empty() || is("text/plain") || is("application/x-www-form-urlencoded") ||
         is("multipart/form-data");
}

}  // namespace

bool HttpServer::host_allowed(const http::Request& req) const {
  if (!is_loopback(endpoint_)) return true;  // a token guards it (create() insists)
  const std::string* h = req.header("host");
  if (h == nullptr) return true;  // HTTP/1.0 without Host: not a browser
  const std::string host = host_only(*h);
  if (loopback_name(host)) return true;
  return std::find(options_.allowed_hosts.begin(), options_.allowed_hosts.end(), host) !=
         options_.allowed_hosts.end();
}

bool HttpServer::origin_allowed(const http::Request& req) const {
  const std::string* o = req.header("origin");
  if (o == nullptr) return true;  // not a browser's request (curl, scripts)
  std::string_view v = trim(*o);
  const size_t scheme = v.find("://");
  if (scheme == v.npos) return false;  // "null" (sandboxed pages, file:) and garbage
  std::string_view authority = v.substr(scheme + 3);
  authority = authority.substr(0, authority.find('/'));
  const std::string* h = req.header("host");
  if (h == nullptr) return false;
  std::string a(authority), b(trim(*h));
  for (auto& ch : a)
    ch = lower(ch);
  for (auto& ch : b)
    ch = lower(ch);
  // The default port may be written in one and not the other.
  const std::string_view sch = v.substr(0, scheme);
  const std::string dflt = istarts_with(sch, "https") && sch.size() == 5 ? ":443" : ":80";
  const auto strip = [&](std::string& x) {
    if (x.size() > dflt.size() && x.compare(x.size() - dflt.size(), dflt.size(), dflt) == 0)
      x.resize(x.size() - dflt.size());
  };
  strip(a);
  strip(b);
  return a == b;
}

bool HttpServer::write_allowed(const http::Request& req) const {
  if (req.method == "GET" || req.method == "HEAD" || req.method == "OPTIONS") return true;
  if (req.header("x-mxprobe") != nullptr) return true;
  if (!simple_content_type(req.header("content-type"))) return true;
  return !options_.token.empty() && authorized(req);
}

bool HttpServer::ws_authorized(const http::Request& req) const {
  if (options_.token.empty() || authorized(req)) return true;
  bool ok = false;
  for (const auto& p : http::ServerConnection::offered_subprotocols(req)) {
    if (!istarts_with(p, kBearerPrefix)) continue;
    const auto d = sha256(std::string_view(p).substr(kBearerPrefix.size()));
    ok |= CRYPTO_memcmp(d.data(), token_digest_.data(), d.size()) == 0;
  }
  return ok;
}

}  // namespace mxp::server
