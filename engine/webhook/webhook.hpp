// Webhooks of bulk jobs (docs/webhooks.md): the sans-I/O parts — a job's webhook settings and
// their checks, the signature every delivery carries, and the retry schedule. The store
// (store.hpp) keeps deliveries in the job's journal; the sender (sender.hpp) moves them over
// HTTP on the engine's loop.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "http/client.hpp"

namespace mxp::webhook {

// What POST /v1/jobs was given (webhook_url, webhook_secret, webhook_batch, webhook_interval).
struct Config {
  std::string url;
  std::string secret;
  // Finished records per batch; 0: no batches, only the end event.
  uint64_t batch = 0;
  // A batch goes out with fewer records once its first record waited this long (0: only full
  // batches, and the rest at the end).
  std::chrono::milliseconds interval{0};
};

inline constexpr uint64_t kMaxBatch = 10'000;
inline constexpr size_t kMinSecret = 16, kMaxSecret = 256;

// Checks the settings as the API takes them (texts; empty = not given). `given` is false when
// there is no webhook at all. On error, `err` is the 400's message ("webhook_url: ...").
std::optional<Config> parse_config(std::string_view url, std::string_view secret,
                                   std::string_view batch, std::string_view interval, bool& given,
                                   std::string& err);

// HMAC-SHA256 of `data` with `key`, in lower-case hex (64 characters).
std::string hmac_sha256_hex(std::string_view key, std::string_view data);

// The Mxprobe-Signature header's value: "t=<unix seconds>,v1=<hex HMAC-SHA256 of
// '<unix seconds>.<body>'>" (the timestamp is signed with the body, so a captured delivery
// cannot be replayed later with a new time).
std::string signature_header(std::string_view secret, int64_t unix_seconds, std::string_view body);

// When to try a failed delivery again: 1 s, 2 s, 4 s ... doubling up to `cap`, for at most
// `give_up_after` since its first attempt; then it is marked failed.
struct RetryPolicy {
  std::chrono::milliseconds first{1000};
  std::chrono::milliseconds cap{60'000};
  std::chrono::milliseconds give_up_after{std::chrono::hours(24)};
};

// The wait before the next attempt after `attempts` failed ones (>= 1), or nothing once the
// next attempt would start past `give_up_after` from `first_attempt`.
std::optional<std::chrono::milliseconds> retry_delay(const RetryPolicy& p, uint64_t attempts,
                                                     std::chrono::milliseconds first_attempt,
                                                     std::chrono::milliseconds now);

}  // namespace mxp::webhook
