// Provider identification (verdict/provider.hpp) from real MX host names and greetings of each
// provider of the table, and names that must not match.
#include "verdict/provider.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace mxp::verdict {
namespace {

struct MxCase {
  const char* host;
  const char* domain;
  const char* provider;
};

// Real MX host names, as the providers' domains or documented customer set-ups publish them.
const MxCase kMx[] = {
    {"gmail-smtp-in.l.google.com", "gmail.com", "gmail"},
    {"alt4.gmail-smtp-in.l.google.com.", "gmail.com", "gmail"},
    {"ASPMX.L.GOOGLE.COM", "googlemail.com", "gmail"},
    {"aspmx.l.google.com", "example.org", "google_workspace"},
    {"alt1.aspmx.l.google.com", "Example.ORG", "google_workspace"},
    {"smtp.google.com", "example.org", "google_workspace"},
    {"aspmx2.googlemail.com", "example.org", "google_workspace"},
    {"example-org.mail.protection.outlook.com", "example.org", "microsoft365"},
    {"qfb-com-qa.mail.protection.outlook.com", "qfb.com.qa", "microsoft365"},
    {"outlook-com.olc.protection.outlook.com", "outlook.com", "outlook_com"},
    {"hotmail-com.olc.protection.outlook.com", "hotmail.com", "outlook_com"},
    {"eur.olc.protection.outlook.com", "hotmail.co.uk", "outlook_com"},
    {"mta5.am0.yahoodns.net", "yahoo.com", "yahoo"},
    {"mta7.am0.yahoodns.net", "ymail.com", "yahoo"},
    {"mx-aol.mail.gm0.yahoodns.net", "aol.com", "aol"},
    {"mx.zoho.com", "example.org", "zoho"},
    {"mx3.zoho.com", "example.org", "zoho"},
    {"mx.zoho.eu", "example.org", "zoho"},
    {"mx.zoho.com.au", "example.org", "zoho"},
    {"mail.protonmail.ch", "proton.me", "proton"},
    {"mailsec.protonmail.ch", "example.org", "proton"},
    {"in1-smtp.messagingengine.com", "fastmail.com", "fastmail"},
    {"in2-smtp.messagingengine.com", "example.org", "fastmail"},
    {"mx.yandex.net", "example.ru", "yandex"},
    {"mx.yandex.ru", "yandex.ru", "yandex"},
    {"mxs.mail.ru", "mail.ru", "mailru"},
    {"emx.mail.ru", "example.ru", "mailru"},
    {"mx01.mail.icloud.com", "icloud.com", "icloud"},
    {"mx02.mail.icloud.com", "me.com", "icloud"},
    {"mx00.gmx.net", "gmx.de", "gmx"},
    {"mx01.gmx.net", "gmx.net", "gmx"},
    {"mx00.gmx.com", "gmx.com", "gmx"},
    {"mx-ha03.web.de", "web.de", "web_de"},
    {"mx-ha02.web.de", "web.de", "web_de"},
    {"mx0a-00123401.pphosted.com", "example.org", "proofpoint"},
    {"mx1-us1.ppe-hosted.com", "example.org", "proofpoint"},
    {"us-smtp-inbound-1.mimecast.com", "example.org", "mimecast"},
    {"eu-smtp-inbound-2.mimecast.com", "example.org", "mimecast"},
    {"za-smtp-inbound-1.mimecast.co.za", "example.co.za", "mimecast"},
    {"d174024a.ess.barracudanetworks.com", "regis.edu", "barracuda"},
    {"mx1.hc3370-68.iphmx.com", "example.org", "cisco"},
    {"esa2.hgst.iphmx.com", "wdc.com", "cisco"},
    {"example-org.in.tmes.trendmicro.com", "example.org", "trendmicro"},
    {"example-org.in.tmes.trendmicro.eu", "example.org", "trendmicro"},
};

TEST(Provider, RealMxNames) {
  for (const auto& c : kMx)
    EXPECT_EQ(provider_for_host(c.host, c.domain), c.provider) << c.host << " for " << c.domain;
}

// Every id of the table has a real MX name above, so no row goes untested.
TEST(Provider, EveryProviderHasARealMxCase) {
  std::set<std::string> tested;
  for (const auto& c : kMx)
    tested.insert(c.provider);
  for (const auto& r : provider_rules()) {
    EXPECT_TRUE(tested.count(std::string(r.id))) << r.id;
    if (!r.alt_id.empty()) {
      EXPECT_TRUE(tested.count(std::string(r.alt_id))) << r.alt_id;
    }
    EXPECT_FALSE(r.source.empty()) << r.suffix;
    EXPECT_FALSE(provider_name(r.id).empty()) << r.id;
  }
}

// Suffixes match whole labels only, and hosts that merely look alike are nobody's.
TEST(Provider, UnknownNames) {
  for (const char* host :
       {"mx.example.org", "notgoogle.com", "google.com.evil.test", "mail.protection.outlook.co",
        "xgmx.net", "mx1.farm.test", "", ".", "localhost", "fakemail.ru"})
    EXPECT_EQ(provider_for_host(host, "example.org"), "") << host;
}

// The greeting tells when the MX names do not (a domain's own name for the provider's hosts).
TEST(Provider, Banners) {
  struct Case {
    const char* banner;
    const char* domain;
    const char* provider;
  } cases[] = {
      {"mx.google.com ESMTP c24si3754682pfl.259 - gsmtp", "example.org", "google_workspace"},
      {"mx.google.com ESMTP c24si3754682pfl.259 - gsmtp", "gmail.com", "gmail"},
      {"smtp.example.org ESMTP a1b2c3 - gsmtp", "example.org", "google_workspace"},
      {"DB8EUR05FT061.mail.protection.outlook.com Microsoft ESMTP MAIL Service ready at Mon, 1 "
       "Jun 2015 12:00:00 +0000",
       "example.org", "microsoft365"},
      {"LN2PEPF000100CA.mail.protection.outlook.com Microsoft ESMTP MAIL Service ready",
       "example.org", "microsoft365"},
      {"esa1.hgst.iphmx.com ESMTP", "wdc.com", "cisco"},
      // Exchange on the customer's own server says the same words but is nobody's in the table.
      {"ex01.contosotom.ch Microsoft ESMTP MAIL Service ready at Wed, 30 Dec 2020 12:41:08 +0000",
       "contosotom.ch", ""},
      {"mx1.farm.test ESMTP Postfix", "d1.test", ""},
      {"", "d1.test", ""},
  };
  for (const auto& c : cases)
    EXPECT_EQ(provider_for_banner(c.banner, c.domain), c.provider) << c.banner;
}

TEST(Provider, MxNameBeforeBanner) {
  EXPECT_EQ(identify_provider("mx.example.org", "mx.google.com ESMTP x - gsmtp", "example.org"),
            "google_workspace");
  // A gateway in front of Microsoft 365: the MX (the gateway) is what answers at RCPT.
  EXPECT_EQ(identify_provider("mx0a-001.pphosted.com",
                              "x.mail.protection.outlook.com Microsoft ESMTP MAIL Service ready",
                              "example.org"),
            "proofpoint");
  EXPECT_EQ(identify_provider("mx.example.org", "mx.example.org ESMTP Postfix", "example.org"), "");
}

}  // namespace
}  // namespace mxp::verdict
