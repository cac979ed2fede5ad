// Webhook settings, signatures and the retry schedule (webhook.hpp).
#include "webhook/webhook.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <charconv>
#include <cmath>

namespace mxp::webhook {

std::optional<Config> parse_config(std::string_view url, std::string_view secret,
                                   std::string_view batch, std::string_view interval, bool& given,
                                   std::string& err) {
  given = !url.empty() || !secret.empty() || !batch.empty() || !interval.empty();
  if (!given) return std::nullopt;
  if (url.empty()) {
    err = "webhook_url: required with the other webhook_ options";
    return std::nullopt;
  }
  std::string why;
  if (!http::parse_client_url(url, why)) {
    err = "webhook_url: " + why;
    return std::nullopt;
  }
  if (secret.size() < kMinSecret || secret.size() > kMaxSecret) {
    err = "webhook_secret: " + std::to_string(kMinSecret) + " to " + std::to_string(kMaxSecret) +
          " bytes, required with webhook_url (e.g. openssl rand -hex 32)";
    return std::nullopt;
  }
  for (unsigned char c : secret)
    if (c < 0x20 || c == 0x7f) {
      err = "webhook_secret: no control characters";
      return std::nullopt;
    }
  Config c;
  c.url = std::string(url);
  c.secret = std::string(secret);
  if (!batch.empty()) {
    uint64_t n = 0;
    auto [p, ec] = std::from_chars(batch.data(), batch.data() + batch.size(), n);
    if (ec != std::errc() || p != batch.data() + batch.size() || n > kMaxBatch) {
      err = "webhook_batch: records per batch, 0 (none) to " + std::to_string(kMaxBatch);
      return std::nullopt;
    }
    c.batch = n;
  }
  if (!interval.empty()) {
    double s = -1;
    auto [p, ec] = std::from_chars(interval.data(), interval.data() + interval.size(), s);
    if (ec != std::errc() || p != interval.data() + interval.size() || !std::isfinite(s) ||
        s < 0.1 || s > 86400) {
      err = "webhook_interval: seconds a record may wait for its batch, 0.1 to 86400";
      return std::nullopt;
    }
    if (c.batch == 0) {
      err = "webhook_interval: only with webhook_batch (records per batch)";
      return std::nullopt;
    }
    c.interval = std::chrono::milliseconds(static_cast<int64_t>(s * 1000));
  }
  return c;
}

std::string hmac_sha256_hex(std::string_view key, std::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &len);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned i = 0; i < len; ++i) {
    out.push_back(kHex[mac[i] >> 4]);
    out.push_back(kHex[mac[i] & 15]);
  }
  return out;
}

std::string signature_header(std::string_view secret, int64_t unix_seconds, std::string_view body) {
  const std::string t = std::to_string(unix_seconds);
  std::string signed_text;
  signed_text.reserve(t.size() + 1 + body.size());
  signed_text.append(t).append(".").append(body);
  return "t=" + t + ",v1=" + hmac_sha256_hex(secret, signed_text);
}

std::optional<std::chrono::milliseconds> retry_delay(const RetryPolicy& p, uint64_t attempts,
                                                     std::chrono::milliseconds first_attempt,
                                                     std::chrono::milliseconds now) {
  std::chrono::milliseconds d = p.first;
  for (uint64_t i = 1; i < attempts && d < p.cap; ++i)
    d *= 2;
  d = std::min(d, p.cap);
  if (now + d - first_attempt > p.give_up_after) return std::nullopt;
  return d;
}

}  // namespace mxp::webhook
