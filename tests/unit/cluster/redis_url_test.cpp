// parse_redis_url: the forms --cluster will take, and clear refusals that never show a password.
#include <gtest/gtest.h>

#include "cluster/redis_url.hpp"

namespace mxp::cluster {
namespace {

RedisUrl good(std::string_view text) {
  auto u = parse_redis_url(text);
  EXPECT_TRUE(u.ok()) << text << ": " << (u.ok() ? "" : u.error());
  return u.ok() ? *u : RedisUrl{};
}

std::string bad(std::string_view text) {
  auto u = parse_redis_url(text);
  EXPECT_FALSE(u.ok()) << text << " was accepted";
  return u.ok() ? "" : u.error();
}

TEST(RedisUrl, Defaults) {
  const auto u = good("redis://localhost");
  EXPECT_EQ(u.host, "localhost");
  EXPECT_EQ(u.port, 6379);
  EXPECT_EQ(u.db, 0);
  EXPECT_EQ(u.user, "");
  EXPECT_EQ(u.password, "");
  EXPECT_EQ(u.display(), "redis://localhost:6379/0");
  EXPECT_EQ(good("redis://localhost/").db, 0);
}

TEST(RedisUrl, PortAndDb) {
  const auto u = good("redis://10.0.0.5:6380/3");
  EXPECT_EQ(u.host, "10.0.0.5");
  EXPECT_EQ(u.port, 6380);
  EXPECT_EQ(u.db, 3);
  EXPECT_EQ(good("redis://redis.internal.example:1/65535").db, 65535);
}

TEST(RedisUrl, PasswordOnly) {
  const auto u = good("redis://:s3cret@127.0.0.1:6379/0");
  EXPECT_EQ(u.user, "");
  EXPECT_EQ(u.password, "s3cret");
  EXPECT_EQ(u.display(), "redis://:***@127.0.0.1:6379/0");
}

TEST(RedisUrl, AclUserAndPassword) {
  const auto u = good("redis://mxprobe:pa%3Ass%40w%2Frd@redis:7000/2");
  EXPECT_EQ(u.user, "mxprobe");
  EXPECT_EQ(u.password, "pa:ss@w/rd");
  EXPECT_EQ(u.host, "redis");
  EXPECT_EQ(u.port, 7000);
  EXPECT_EQ(u.db, 2);
  EXPECT_EQ(u.display(), "redis://mxprobe:***@redis:7000/2");
}

TEST(RedisUrl, RawAtInPasswordLastAtWins) {
  const auto u = good("redis://:p@ss@host:6379");
  EXPECT_EQ(u.password, "p@ss");
  EXPECT_EQ(u.host, "host");
}

TEST(RedisUrl, Ipv6) {
  const auto u = good("redis://[::1]:6390/1");
  EXPECT_EQ(u.host, "::1");
  EXPECT_EQ(u.port, 6390);
  EXPECT_EQ(u.db, 1);
  EXPECT_EQ(u.display(), "redis://[::1]:6390/1");
  EXPECT_EQ(good("redis://:pw@[2001:db8::7]").port, 6379);
}

TEST(RedisUrl, Refusals) {
  EXPECT_NE(bad("").find("must start with redis://"), std::string::npos);
  EXPECT_NE(bad("http://host").find("must start with redis://"), std::string::npos);
  EXPECT_NE(bad("rediss://host").find("TLS"), std::string::npos);
  EXPECT_NE(bad("unix:///run/redis.sock").find("unix sockets"), std::string::npos);
  EXPECT_NE(bad("redis://").find("host is missing"), std::string::npos);
  EXPECT_NE(bad("redis://:6379").find("host is missing"), std::string::npos);
  EXPECT_NE(bad("redis://host:").find("without a port"), std::string::npos);
  EXPECT_NE(bad("redis://host:0").find("port must be a number from 1 to 65535"), std::string::npos);
  EXPECT_NE(bad("redis://host:65536").find("port"), std::string::npos);
  EXPECT_NE(bad("redis://host:63x").find("port"), std::string::npos);
  EXPECT_NE(bad("redis://host:-1").find("port"), std::string::npos);
  EXPECT_NE(bad("redis://host/x").find("database must be a number"), std::string::npos);
  EXPECT_NE(bad("redis://host/-1").find("database"), std::string::npos);
  EXPECT_NE(bad("redis://host/65536").find("database"), std::string::npos);
  EXPECT_NE(bad("redis://host/1/2").find("database"), std::string::npos);
  EXPECT_NE(bad("redis://host?timeout=1").find("query"), std::string::npos);
  EXPECT_NE(bad("redis://[::1").find("']'"), std::string::npos);
  EXPECT_NE(bad("redis://[::1]x").find("after ']'"), std::string::npos);
  EXPECT_NE(bad("redis://[zz]:1").find("IPv6"), std::string::npos);
  EXPECT_NE(bad("redis://::1:6379").find("IPv6 goes in brackets"), std::string::npos);
  EXPECT_NE(bad("redis://ho st").find("not a host name"), std::string::npos);
  EXPECT_NE(bad("redis://user@host").find("note the colon"), std::string::npos);
  EXPECT_NE(bad("redis://user:@host").find("password after ':' is empty"), std::string::npos);
}

TEST(RedisUrl, ErrorsNeverShowThePassword) {
  for (std::string_view text : {"redis://:hunter2%zz@host", "redis://u:hunter2@host:99999",
                                "redis://u:hunter2@host/db", "redis://u:hunter2@"}) {
    const std::string err = bad(text);
    EXPECT_EQ(err.find("hunter2"), std::string::npos) << err;
    EXPECT_NE(err.find("redis://[[user]:password@]host[:port][/db]"), std::string::npos) << err;
  }
}

}  // namespace
}  // namespace mxp::cluster
