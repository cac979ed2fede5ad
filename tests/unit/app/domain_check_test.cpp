// `mxprobe check --domain`'s pieces without a network: the domain argument, the readable report
// (80 columns, nothing from a server obeyed by the terminal), its JSON (valid whatever the bytes)
// and the exit status rule.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "app/domain_check.hpp"
#include "app/engine_options.hpp"

namespace mxp::app {
namespace {

TEST(DomainCheck, NormalizesTheDomainOrSaysWhyNot) {
  auto d = normalize_domain("Bücher.Example");
  ASSERT_TRUE(d) << d.error();
  EXPECT_EQ(*d, "xn--bcher-kva.example");
  auto a = normalize_domain("alice@example.org");
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error(), "is an address, not a domain: give what follows the @");
  auto b = normalize_domain("x..example");
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error(), "is not a domain (domain_empty_label)");
  EXPECT_FALSE(normalize_domain(""));
  EXPECT_FALSE(normalize_domain("localhost"));
}

pipeline::DomainReport hostile() {
  pipeline::DomainReport r;
  r.domain = "example.org";
  r.mail = "accepts";
  r.accepts_mail = true;
  r.catch_all = false;
  r.starttls = true;
  r.tls_version = "TLSv1.3";
  r.mx.push_back({std::string(70, 'm') + ".example.org", 10, {}});
  for (int i = 0; i < 12; ++i)
    r.mx.back().addresses.push_back("2001:db8:ffff:ffff:ffff:ffff:ffff:" + std::to_string(i));
  r.mx_reached = r.mx.back().host;
  r.mx_ip = "192.0.2.1";
  r.banner = "mx ESMTP \x1b]0;owned\x07 \xff\xfe " + std::string(150, 'b');
  r.rcpt = "abcdefghijkl@example.org";
  r.has_smtp = true;
  r.code = 550;
  r.enhanced = "5.1.1";
  r.message = "\x1b[31mUser unknown\x1b[0m " + std::string(200, 'x');
  return r;
}

TEST(DomainCheck, TheReportFits80ColumnsAndEscapesServerText) {
  const std::string text = domain_report_text(hostile());
  std::istringstream in(text);
  std::string line;
  int lines = 0;
  while (std::getline(in, line)) {
    ++lines;
    EXPECT_LE(line.size(), 80u) << line;
  }
  EXPECT_GT(lines, 10);
  EXPECT_EQ(text.find('\x1b'), std::string::npos);
  EXPECT_EQ(text.find('\x07'), std::string::npos);
  EXPECT_NE(text.find("example.org  takes mail\n"), std::string::npos) << text;
  EXPECT_NE(text.find("  catch-all:  no\n"), std::string::npos) << text;
  EXPECT_NE(text.find("  starttls:   yes (TLSv1.3)\n"), std::string::npos) << text;
  // Every address is shown, on as many lines as it takes.
  for (int i = 0; i < 12; ++i)
    EXPECT_NE(text.find("ffff:" + std::to_string(i)), std::string::npos) << i;
}

TEST(DomainCheck, JsonIsValidWhateverTheServerSent) {
  std::string line;
  pipeline::append_json(hostile(), line);
  ASSERT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n');
  auto j = nlohmann::json::parse(line, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << line;
  EXPECT_EQ(j["mail"], "accepts");
  EXPECT_EQ(j["mx"][0]["preference"], 10);
  EXPECT_EQ(j["mx"][0]["addresses"].size(), 12u);
  EXPECT_EQ(j["tls"]["version"], "TLSv1.3");
  EXPECT_EQ(j["smtp"]["code"], 550);
  EXPECT_TRUE(j["provider"].is_null());
  EXPECT_TRUE(j["disposable"].is_null());
}

TEST(DomainCheck, WhatTakesNoMail) {
  pipeline::DomainReport r;
  for (const char* m : {"null_mx", "no_such_domain", "no_mail_server", "rejects"}) {
    r.mail = m;
    EXPECT_TRUE(takes_no_mail(r)) << m;
  }
  for (const char* m : {"accepts", "unknown", "denied", "not_allowed"}) {
    r.mail = m;
    EXPECT_FALSE(takes_no_mail(r)) << m;
  }
}

TEST(DomainCheck, ABadListIsAUsageError) {
  char path[] = "/tmp/deny-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  const std::string text = "ok.example\nnot a domain\n";
  ASSERT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  close(fd);
  EngineOptions o;
  o.deny_files = {path};
  char* buf = nullptr;
  size_t len = 0;
  std::FILE* diag = open_memstream(&buf, &len);
  EXPECT_FALSE(check_engine_options(o, diag));
  std::fclose(diag);
  EXPECT_EQ(std::string(buf, len), "mxprobe: --deny " + std::string(path) +
                                       ":2: 'not a domain' is not a domain "
                                       "(whitespace)\n");
  std::free(buf);
  std::remove(path);
}

}  // namespace
}  // namespace mxp::app
