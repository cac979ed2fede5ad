// A value or the error that stopped it (C++20 has no std::expected). Small on purpose: ok(),
// value(), error(), operator bool. Build an error with core::unexpected(e), so an Expected whose
// value and error types coincide is never ambiguous. The engine's convention: a function that can
// fail returns Expected<T, E> (Expected<void, E> when there is no value), with E a std::string
// when the error is only a message for a person, or a small struct when callers tell causes
// apart (sched::PolicyError, store::Error). [[nodiscard]]: an error is never dropped unseen.
#pragma once

#include <cassert>
#include <type_traits>
#include <utility>
#include <variant>

namespace mxp::core {

template <typename E>
struct Unexpected {
  E error;
};

template <typename U>
inline constexpr bool is_unexpected_v = false;
template <typename E>
inline constexpr bool is_unexpected_v<Unexpected<E>> = true;

template <typename E>
Unexpected<std::decay_t<E>> unexpected(E&& e) {
  return {std::forward<E>(e)};
}

template <typename T, typename E>
class [[nodiscard]] Expected {
 public:
  Expected() requires std::is_default_constructible_v<T> : v_(std::in_place_index<0>) {}
  Expected(T value) : v_(std::in_place_index<0>, std::move(value)) {}
  // Whatever converts to T, so `return derived_ptr;` or `return std::nullopt;` need no cast.
  template <typename U>
  requires(std::is_convertible_v<U&&, T> && !std::is_same_v<std::remove_cvref_t<U>, T> &&
           !std::is_same_v<std::remove_cvref_t<U>, Expected> &&
           !is_unexpected_v<std::remove_cvref_t<U>>) Expected(U&& value)
      : v_(std::in_place_index<0>, std::forward<U>(value)) {}
  template <typename G>
  Expected(Unexpected<G> u) : v_(std::in_place_index<1>, std::move(u.error)) {}

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & {
    assert(ok());
    return std::get<0>(v_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<0>(v_);
  }
  T&& value() && {
    assert(ok());
    return std::get<0>(std::move(v_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const E& error() const {
    assert(!ok());
    return std::get<1>(v_);
  }

 private:
  std::variant<T, E> v_;
};

// Success without a value, or the error.
template <typename E>
class [[nodiscard]] Expected<void, E> {
 public:
  Expected() = default;
  template <typename G>
  Expected(Unexpected<G> u) : failed_(true), e_(std::move(u.error)) {}

  bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  void value() const { assert(ok()); }
  const E& error() const {
    assert(!ok());
    return e_;
  }

 private:
  bool failed_ = false;
  E e_{};
};

}  // namespace mxp::core
