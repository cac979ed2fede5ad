// Tests of the webhook's sans-I/O parts: HMAC-SHA256 (RFC 4231 vectors), the signature header
// as a receiver recomputes it, the retry schedule and the API's checks of the settings.
#include <gtest/gtest.h>

#include "webhook/webhook.hpp"

namespace mxp::webhook {
namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;

TEST(Signature, HmacSha256MatchesRfc4231) {
  // RFC 4231 test case 2 and test case 1 (key 0x0b x 20).
  EXPECT_EQ(hmac_sha256_hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  EXPECT_EQ(hmac_sha256_hex(std::string(20, '\x0b'), "Hi There"),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
}

TEST(Signature, HeaderSignsTheTimestampWithTheBody) {
  const std::string body = R"({"event":"records","seq":1})";
  const std::string h = signature_header("s3cret-s3cret-s3cret", 1700000000, body);
  EXPECT_EQ(h, "t=1700000000,v1=" + hmac_sha256_hex("s3cret-s3cret-s3cret", "1700000000." + body));
  // Another time, body or secret: another signature.
  EXPECT_NE(h, signature_header("s3cret-s3cret-s3cret", 1700000001, body));
  EXPECT_NE(h, signature_header("s3cret-s3cret-s3cret", 1700000000, body + " "));
  EXPECT_NE(h, signature_header("s3cret-s3cret-s3creT", 1700000000, body));
}

TEST(Retry, DoublesUpToTheCapThenGivesUp) {
  RetryPolicy p;  // 1 s doubling, capped at 60 s, for 24 h
  const milliseconds t0{1'000'000};
  EXPECT_EQ(retry_delay(p, 1, t0, t0), 1s);
  EXPECT_EQ(retry_delay(p, 2, t0, t0 + 1s), 2s);
  EXPECT_EQ(retry_delay(p, 3, t0, t0 + 3s), 4s);
  EXPECT_EQ(retry_delay(p, 7, t0, t0 + 63s), 60s);  // 64 s capped
  EXPECT_EQ(retry_delay(p, 500, t0, t0 + 1h), 60s);
  EXPECT_EQ(retry_delay(p, 1000, t0, t0 + 24h - 60s), 60s);
  EXPECT_EQ(retry_delay(p, 1001, t0, t0 + 24h - 59s), std::nullopt);
  // Each wait is at least the one before (never shorter), whatever the attempt count.
  std::chrono::milliseconds last{0};
  for (uint64_t a = 1; a < 100; ++a) {
    auto d = retry_delay(p, a, t0, t0);
    ASSERT_TRUE(d);
    EXPECT_GE(*d, last);
    last = *d;
  }
  RetryPolicy quick{100ms, 400ms, 1s};
  EXPECT_EQ(retry_delay(quick, 1, t0, t0), 100ms);
  EXPECT_EQ(retry_delay(quick, 9, t0, t0 + 500ms), 400ms);
  EXPECT_EQ(retry_delay(quick, 9, t0, t0 + 700ms), std::nullopt);
}

std::string config_error(std::string_view url, std::string_view secret, std::string_view batch,
                         std::string_view interval) {
  bool given = false;
  std::string err;
  EXPECT_FALSE(parse_config(url, secret, batch, interval, given, err));
  EXPECT_TRUE(given);
  return err;
}

TEST(Config, TakesTheSettings) {
  bool given = true;
  std::string err;
  EXPECT_FALSE(parse_config("", "", "", "", given, err));
  EXPECT_FALSE(given);
  auto c = parse_config("http://127.0.0.1:9/h", "0123456789abcdef", "100", "2.5", given, err);
  ASSERT_TRUE(c) << err;
  EXPECT_EQ(c->url, "http://127.0.0.1:9/h");
  EXPECT_EQ(c->batch, 100u);
  EXPECT_EQ(c->interval, 2500ms);
  c = parse_config("http://127.0.0.1:9/h", "0123456789abcdef", "", "", given, err);
  ASSERT_TRUE(c) << err;
  EXPECT_EQ(c->batch, 0u);
  c = parse_config("https://hooks.example.com/in", "0123456789abcdef", "", "", given, err);
  ASSERT_TRUE(c) << err;
  EXPECT_EQ(c->url, "https://hooks.example.com/in");
}

TEST(Config, SaysWhatIsWrong) {
  const std::string s = "0123456789abcdef";
  EXPECT_NE(config_error("", s, "", "").find("webhook_url: required"), std::string::npos);
  EXPECT_NE(config_error("ws://h/", s, "", "").find("webhook_url: an absolute http://"),
            std::string::npos);
  EXPECT_NE(config_error("http://h/", "", "", "").find("webhook_secret: 16 to 256 bytes"),
            std::string::npos);
  EXPECT_NE(config_error("http://h/", "short", "", "").find("webhook_secret"), std::string::npos);
  EXPECT_NE(config_error("http://h/", s, "x", "").find("webhook_batch"), std::string::npos);
  EXPECT_NE(config_error("http://h/", s, "10001", "").find("webhook_batch"), std::string::npos);
  EXPECT_NE(config_error("http://h/", s, "10", "0").find("webhook_interval"), std::string::npos);
  EXPECT_NE(config_error("http://h/", s, "", "5").find("only with webhook_batch"),
            std::string::npos);
}

}  // namespace
}  // namespace mxp::webhook
