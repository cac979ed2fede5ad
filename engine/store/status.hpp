// Errors as values for the job store: a Status (ok or an Error carrying the SQLite result code
// and message) and a small Expected<T>. The store never throws; callers test and propagate.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace mxp::store {

struct Error {
  int code = 0;         // SQLite primary/extended result code; 0 for store-level errors
  std::string message;  // sqlite3_errmsg() text plus what the store was doing
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error e) : err_(std::move(e)), failed_(true) {}  // NOLINT: implicit on purpose
  static Status ok_status() { return {}; }
  bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  const Error& error() const { return err_; }

 private:
  Error err_;
  bool failed_ = false;
};

template <class T>
class [[nodiscard]] Expected {
 public:
  Expected(T v) : v_(std::in_place_index<0>, std::move(v)) {}      // NOLINT
  Expected(Error e) : v_(std::in_place_index<1>, std::move(e)) {}  // NOLINT
  bool has_value() const { return v_.index() == 0; }
  explicit operator bool() const { return has_value(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &std::get<0>(v_); }
  const T* operator->() const { return &std::get<0>(v_); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  const Error& error() const { return std::get<1>(v_); }
  Status status() const { return has_value() ? Status{} : Status{error()}; }

 private:
  std::variant<T, Error> v_;
};

}  // namespace mxp::store
