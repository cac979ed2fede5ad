// The SOCKS5 client's state machine (RFC 1928 §3-§6, RFC 1929 §2) and the proxy URL parser.
#include "proxy/socks5.hpp"

#include <arpa/inet.h>

#include <cstring>

#include "core/strings.hpp"

namespace mxp::proxy {

namespace {
constexpr uint8_t kVersion = 5;
constexpr uint8_t kAuthVersion = 1;  // RFC 1929 §2: "the current version of the subnegotiation"
constexpr uint8_t kMethodNone = 0x00, kMethodUserPass = 0x02, kNoAcceptable = 0xFF;
constexpr uint8_t kCmdConnect = 0x01;
constexpr uint8_t kAtypIpv4 = 0x01, kAtypDomain = 0x03, kAtypIpv6 = 0x04;

void put_port(std::string& out, uint16_t port) {
  out.push_back(static_cast<char>(port >> 8));
  out.push_back(static_cast<char>(port & 0xFF));
}
}  // namespace

std::string_view to_string(Error e) {
  switch (e) {
#define MXP_X(id, name, text, fault) \
  case Error::id:                    \
    return name;
    MXP_SOCKS5_ERRORS(MXP_X)
#undef MXP_X
  }
  return "?";
}

std::string_view describe(Error e) {
  switch (e) {
#define MXP_X(id, name, text, fault) \
  case Error::id:                    \
    return text;
    MXP_SOCKS5_ERRORS(MXP_X)
#undef MXP_X
  }
  return "?";
}

Fault fault_of(Error e) {
  switch (e) {
#define MXP_X(id, name, text, fault) \
  case Error::id:                    \
    return Fault::fault;
    MXP_SOCKS5_ERRORS(MXP_X)
#undef MXP_X
  }
  return Fault::Proxy;
}

Client::Client(Target target, const Credentials* credentials) : target_(std::move(target)) {
  if (credentials) credentials_ = *credentials;
  // RFC 1928 §3: VER, NMETHODS, METHODS.
  out_.push_back(static_cast<char>(kVersion));
  if (credentials_) {
    out_.push_back(2);
    out_.push_back(static_cast<char>(kMethodNone));
    out_.push_back(static_cast<char>(kMethodUserPass));
  } else {
    out_.push_back(1);
    out_.push_back(static_cast<char>(kMethodNone));
  }
  const bool bad_creds =
      credentials_ && (credentials_->user.empty() || credentials_->user.size() > 255 ||
                       credentials_->password.empty() || credentials_->password.size() > 255);
  const bool bad_target =
      target_.host.empty() ? !target_.address.valid() : target_.host.size() > 255;
  if (bad_creds || bad_target) {
    out_.clear();
    fail(Error::BadRequest);
  }
}

void Client::consume_output(size_t n) {
  sent_ += std::min(n, out_.size() - sent_);
  if (sent_ == out_.size()) {
    out_.clear();
    sent_ = 0;
  }
}

void Client::fail(Error e) {
  state_ = State::Failed;
  error_ = e;
  in_.clear();
}

void Client::on_closed() {
  if (state_ != State::Done && state_ != State::Failed) fail(Error::Closed);
}

void Client::send_auth() {
  // RFC 1929 §2: VER=1, ULEN, UNAME, PLEN, PASSWD.
  out_.push_back(static_cast<char>(kAuthVersion));
  out_.push_back(static_cast<char>(credentials_->user.size()));
  out_.append(credentials_->user);
  out_.push_back(static_cast<char>(credentials_->password.size()));
  out_.append(credentials_->password);
  state_ = State::Auth;
}

void Client::send_request() {
  // RFC 1928 §4: VER, CMD, RSV, ATYP, DST.ADDR, DST.PORT.
  out_.push_back(static_cast<char>(kVersion));
  out_.push_back(static_cast<char>(kCmdConnect));
  out_.push_back(0);
  if (!target_.host.empty()) {
    out_.push_back(static_cast<char>(kAtypDomain));
    out_.push_back(static_cast<char>(target_.host.size()));
    out_.append(target_.host);
    put_port(out_, target_.port);
  } else if (target_.address.family() == AF_INET) {
    out_.push_back(static_cast<char>(kAtypIpv4));
    const auto* sa = reinterpret_cast<const sockaddr_in*>(target_.address.sa());
    out_.append(reinterpret_cast<const char*>(&sa->sin_addr), 4);
    put_port(out_, target_.address.port());
  } else {
    out_.push_back(static_cast<char>(kAtypIpv6));
    const auto* sa = reinterpret_cast<const sockaddr_in6*>(target_.address.sa());
    out_.append(reinterpret_cast<const char*>(&sa->sin6_addr), 16);
    put_port(out_, target_.address.port());
  }
  state_ = State::Request;
}

void Client::step() {
  auto byte = [&](size_t i) { return static_cast<uint8_t>(in_[i]); };
  switch (state_) {
    case State::Greeting: {
      // RFC 1928 §3: VER, METHOD.
      if (byte(0) != kVersion) return fail(Error::BadVersion);
      const uint8_t m = byte(1);
      in_.erase(0, 2);
      if (m == kNoAcceptable) return fail(Error::NoAcceptableMethod);
      if (m == kMethodUserPass && credentials_) {
        send_auth();
      } else if (m == kMethodNone) {
        send_request();
      } else {
        return fail(Error::BadMethod);
      }
      return;
    }
    case State::Auth: {
      // RFC 1929 §2: VER, STATUS; 0 is success, anything else refusal (and the server closes).
      if (byte(0) != kAuthVersion) return fail(Error::AuthBadVersion);
      if (byte(1) != 0) return fail(Error::AuthRefused);
      in_.erase(0, 2);
      send_request();
      return;
    }
    case State::Request: {
      // RFC 1928 §6: VER, REP, RSV, ATYP, BND.ADDR, BND.PORT. A failure reply is decided on
      // REP alone (the server closes right after it).
      if (byte(0) != kVersion) return fail(Error::BadVersion);
      switch (byte(1)) {
        case 0:
          break;
        case 1:
          return fail(Error::GeneralFailure);
        case 2:
          return fail(Error::NotAllowed);
        case 3:
          return fail(Error::NetworkUnreachable);
        case 4:
          return fail(Error::HostUnreachable);
        case 5:
          return fail(Error::ConnectionRefused);
        case 6:
          return fail(Error::TtlExpired);
        case 7:
          return fail(Error::CommandNotSupported);
        case 8:
          return fail(Error::AddressTypeNotSupported);
        default:
          return fail(Error::UnknownReply);
      }
      size_t addr_len;
      switch (byte(3)) {
        case kAtypIpv4:
          addr_len = 4;
          break;
        case kAtypIpv6:
          addr_len = 16;
          break;
        case kAtypDomain:
          addr_len = 1 + byte(4);
          break;
        default:
          return fail(Error::BadAddressType);
      }
      const size_t total = 4 + addr_len + 2;
      const uint16_t port = static_cast<uint16_t>(byte(4 + addr_len) << 8 | byte(5 + addr_len));
      char text[INET6_ADDRSTRLEN] = {};
      if (byte(3) == kAtypIpv4) {
        inet_ntop(AF_INET, in_.data() + 4, text, sizeof text);
        bound_ = std::string(text) + ":" + std::to_string(port);
      } else if (byte(3) == kAtypIpv6) {
        inet_ntop(AF_INET6, in_.data() + 4, text, sizeof text);
        bound_ = "[" + std::string(text) + "]:" + std::to_string(port);
      } else {
        bound_.clear();
        for (size_t i = 5; i < 4 + addr_len; ++i) {  // printable ASCII only: it may be logged
          const uint8_t c = byte(i);
          bound_.push_back(c > 0x20 && c < 0x7F ? static_cast<char>(c) : '?');
        }
        bound_ += ":" + std::to_string(port);
      }
      in_.erase(0, total);
      state_ = State::Done;
      return;
    }
    case State::Done:
    case State::Failed:
      return;
  }
}

size_t Client::needed() const {
  if (state_ != State::Request || in_.size() < 2 || static_cast<uint8_t>(in_[0]) != kVersion ||
      in_[1] != 0)
    return 2;  // decided on VER and REP alone
  if (in_.size() < 5) return 5;
  switch (static_cast<uint8_t>(in_[3])) {
    case kAtypIpv4:
      return 4 + 4 + 2;
    case kAtypIpv6:
      return 4 + 16 + 2;
    case kAtypDomain:
      return 4 + 1 + static_cast<uint8_t>(in_[4]) + 2;
    default:
      return 5;  // step() fails on it
  }
}

size_t Client::feed(std::string_view bytes) {
  if (state_ == State::Done) return 0;
  // Take only what the current message needs, so that whatever follows the CONNECT reply stays
  // in `bytes` for the caller. The longest message is 4 + 1 + 255 + 2 = 262 bytes.
  size_t used = 0;
  while (state_ != State::Done && state_ != State::Failed) {
    const size_t need = needed();
    if (in_.size() < need) {
      if (used == bytes.size()) break;
      const size_t take = std::min(need - in_.size(), bytes.size() - used);
      in_.append(bytes.substr(used, take));
      used += take;
      continue;  // the need may grow (a reply's address type and length)
    }
    step();
  }
  return state_ == State::Failed ? bytes.size() : used;
}

core::Expected<ProxyUrl, std::string> parse_proxy_url(std::string_view text) {
  constexpr std::string_view kScheme = "socks5://";
  if (text.size() < kScheme.size() || text.substr(0, kScheme.size()) != kScheme)
    return core::unexpected("a proxy must be socks5://[user:pass@]host:port");
  std::string_view rest = text.substr(kScheme.size());
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  ProxyUrl url;
  // The last '@' ends the credentials (a raw '@' in a password is a common slip).
  if (auto at = rest.rfind('@'); at != std::string_view::npos) {
    std::string_view userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    const auto colon = userinfo.find(':');
    if (colon == std::string_view::npos)
      return core::unexpected("proxy credentials must be user:password");
    auto user = core::percent_decode(userinfo.substr(0, colon));
    auto pass = core::percent_decode(userinfo.substr(colon + 1));
    if (!user || !pass) return core::unexpected("bad %-escape in the proxy credentials");
    if (user->empty() || user->size() > 255 || pass->empty() || pass->size() > 255)
      return core::unexpected("proxy user and password must be 1 to 255 bytes each (RFC 1929)");
    url.credentials = Credentials{std::move(*user), std::move(*pass)};
  }
  // host:port, the port required; [v6]:port.
  auto ep = core::Endpoint::parse_host_port(rest, 0);
  if (!ep || !ep->valid() || ep->port() == 0) {
    std::string err = "proxy address must be a numeric IP and port, e.g. socks5://192.0.2.1:1080";
    if (url.credentials) err += " (credentials not shown)";
    return core::unexpected(std::move(err));
  }
  url.endpoint = *ep;
  url.display = "socks5://" + ep->to_string();
  return url;
}

}  // namespace mxp::proxy
