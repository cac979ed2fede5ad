// Names of loop statuses and the errno -> Status mapping shared by both backends.
#include "loop/status.hpp"

#include <array>
#include <cerrno>

namespace mxp::loop {

namespace {
constexpr std::array<std::string_view, kStatusCount> kNames = {
#define MXP_X(id, name) name,
    MXP_LOOP_STATUSES(MXP_X)
#undef MXP_X
};
}  // namespace

std::string_view to_string(Status s) {
  const auto i = static_cast<size_t>(s);
  return i < kNames.size() ? kNames[i] : std::string_view("invalid_status");
}

Status status_from_errno(int err) {
  switch (err) {
    case 0:
      return Status::Ok;
    case ECONNREFUSED:
      return Status::ConnectionRefused;
    case ETIMEDOUT:
      return Status::TimedOut;
    case ENETUNREACH:
    case ENETDOWN:
      return Status::NetworkUnreachable;
    case EHOSTUNREACH:
    case EHOSTDOWN:
      return Status::HostUnreachable;
    case EADDRNOTAVAIL:
      return Status::AddressNotAvailable;
    case EADDRINUSE:
      return Status::AddressInUse;
    case EACCES:
    case EPERM:
      return Status::PermissionDenied;
    case ECONNRESET:
    case ECONNABORTED:
      return Status::ConnectionReset;
    case EPIPE:
      return Status::BrokenPipe;
    case ECANCELED:
      return Status::Canceled;
    case EMFILE:
    case ENFILE:
      return Status::TooManyOpenFiles;
    case ENOMEM:
    case ENOBUFS:
      return Status::NoMemory;
    case EINVAL:
    case EAFNOSUPPORT:
      return Status::InvalidArgument;
    case ENOTCONN:
      return Status::NotConnected;
    default:
      return Status::SystemError;
  }
}

}  // namespace mxp::loop
