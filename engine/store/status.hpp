// Errors as values for the job store: an Error carries the SQLite result code and message;
// Status (ok or an Error) and Expected<T> are core's Expected with that error. The store never
// throws; callers test and propagate, and build a failure with core::unexpected(Error{...}).
#pragma once

#include <string>

#include "core/expected.hpp"

namespace mxp::store {

struct Error {
  int code = 0;         // SQLite primary/extended result code; 0 for store-level errors
  std::string message;  // sqlite3_errmsg() text plus what the store was doing
};

using Status = core::Expected<void, Error>;

template <class T>
using Expected = core::Expected<T, Error>;

}  // namespace mxp::store
