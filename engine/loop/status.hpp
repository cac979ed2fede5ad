// Status codes of the event loop: one X-macro list, so enum, names and counts cannot drift apart
// (libuv's UV_ERRNO_MAP is the model). Both backends report errors only through this list.
#pragma once

#include <cstdint>
#include <string_view>

namespace mxp::loop {

#define MXP_LOOP_STATUSES(X)                                                               \
  X(Ok, "ok")                                                                              \
  X(ConnectionRefused, "connection_refused")      /* ECONNREFUSED: RST answered our SYN */ \
  X(ConnectTimeout, "connect_timeout")            /* our connect timer expired */          \
  X(TimedOut, "timed_out")                        /* ETIMEDOUT from the kernel */          \
  X(NetworkUnreachable, "network_unreachable")    /* ENETUNREACH */                        \
  X(HostUnreachable, "host_unreachable")          /* EHOSTUNREACH, EHOSTDOWN */            \
  X(AddressNotAvailable, "address_not_available") /* EADDRNOTAVAIL: source not local */    \
  X(AddressInUse, "address_in_use")               /* EADDRINUSE */                         \
  X(PermissionDenied, "permission_denied")        /* EACCES, EPERM (e.g. a firewall) */    \
  X(PeerClosed, "peer_closed")                    /* the peer closed its side (EOF) */     \
  X(ConnectionReset, "connection_reset")          /* ECONNRESET, ECONNABORTED */           \
  X(BrokenPipe, "broken_pipe")                    /* EPIPE */                              \
  X(Canceled, "canceled")                         /* ECANCELED */                          \
  X(TooManyOpenFiles, "too_many_open_files")      /* EMFILE, ENFILE */                     \
  X(NoMemory, "no_memory")                        /* ENOMEM, ENOBUFS */                    \
  X(InvalidArgument, "invalid_argument")          /* EINVAL, EAFNOSUPPORT, bad input */    \
  X(NotConnected, "not_connected")                /* unknown/stale id or not connected */  \
  X(Unsupported, "unsupported")                   /* backend not available here */         \
  X(SystemError, "system_error")                  /* any other errno */

enum class Status : uint8_t {
#define MXP_X(id, name) id,
  MXP_LOOP_STATUSES(MXP_X)
#undef MXP_X
};

inline constexpr int kStatusCount = 0
#define MXP_X(id, name) +1
    MXP_LOOP_STATUSES(MXP_X)
#undef MXP_X
    ;

std::string_view to_string(Status s);

// Maps a positive errno value (or libuv's negative one: pass -status) to a Status.
Status status_from_errno(int err);

}  // namespace mxp::loop
