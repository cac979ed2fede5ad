#include "verdict/provider.hpp"

#include <array>

#include "core/strings.hpp"

namespace mxp::verdict {
namespace {

using K = ProviderKind;

// Sources: the provider's own page that tells customers which MX records to publish, or, for a
// consumer service, the MX records its own domain publishes in public DNS (`dig MX gmail.com`).
// docs/providers.md shows the table with its sources for people.
constexpr std::array kRules = {
    // Google: Workspace domains publish aspmx.l.google.com and alt1..alt4.aspmx.l.google.com, or
    // smtp.google.com since 2023 ("Google Workspace MX record values",
    // https://support.google.com/a/answer/174125); older set-ups aspmx2..5.googlemail.com. Gmail's
    // own domain publishes gmail-smtp-in.l.google.com and alt1..4.gmail-smtp-in.l.google.com.
    // The hosts serve both: gmail.com and googlemail.com are Gmail, any other domain Workspace.
    ProviderRule{"google.com", "google_workspace", K::Mailbox, "Google Workspace",
                 "gmail.com googlemail.com", "gmail",
                 "https://support.google.com/a/answer/174125; MX of gmail.com"},
    ProviderRule{"googlemail.com", "google_workspace", K::Mailbox, "Google Workspace",
                 "gmail.com googlemail.com", "gmail",
                 "aspmx2.googlemail.com in old Workspace set-ups"},
    // Microsoft: Outlook.com (consumer) publishes outlook-com.olc.protection.outlook.com,
    // hotmail-com.olc.protection.outlook.com, live-com... and eur.olc.protection.outlook.com;
    // Microsoft 365 tenants publish <domain-key>.mail.protection.outlook.com ("Add DNS records
    // to connect your domain",
    // https://learn.microsoft.com/microsoft-365/admin/get-help-with-domains/
    // create-dns-records-at-any-dns-hosting-provider).
    ProviderRule{"olc.protection.outlook.com", "outlook_com", K::Mailbox, "Outlook.com", "", "",
                 "MX of outlook.com, hotmail.com, live.com"},
    ProviderRule{"mail.protection.outlook.com", "microsoft365", K::Mailbox, "Microsoft 365", "", "",
                 "https://learn.microsoft.com/microsoft-365/admin/get-help-with-domains/"
                 "create-dns-records-at-any-dns-hosting-provider"},
    // Yahoo publishes mta5/6/7.am0.yahoodns.net; AOL (run by Yahoo) mx-aol.mail.gm0.yahoodns.net.
    ProviderRule{"yahoodns.net", "yahoo", K::Mailbox, "Yahoo", "aol.com aim.com", "aol",
                 "MX of yahoo.com (mta5.am0.yahoodns.net) and aol.com "
                 "(mx-aol.mail.gm0.yahoodns.net)"},
    // Zoho Mail: mx.zoho.com, mx2.zoho.com, mx3.zoho.com and the regional data centres' mx.zoho.eu,
    // mx.zoho.in, mx.zoho.com.au, mx.zoho.jp, mx.zohocloud.ca, mx.zoho.sa
    // (https://www.zoho.com/mail/help/adminconsole/configure-email-delivery.html).
    ProviderRule{"zoho.com", "zoho", K::Mailbox, "Zoho Mail", "", "",
                 "https://www.zoho.com/mail/help/adminconsole/configure-email-delivery.html"},
    ProviderRule{"zoho.eu", "zoho", K::Mailbox, "Zoho Mail", "", "", "the same page (EU)"},
    ProviderRule{"zoho.in", "zoho", K::Mailbox, "Zoho Mail", "", "", "the same page (IN)"},
    ProviderRule{"zoho.com.au", "zoho", K::Mailbox, "Zoho Mail", "", "", "the same page (AU)"},
    ProviderRule{"zoho.jp", "zoho", K::Mailbox, "Zoho Mail", "", "", "the same page (JP)"},
    ProviderRule{"zohocloud.ca", "zoho", K::Mailbox, "Zoho Mail", "", "", "the same page (CA)"},
    ProviderRule{"zoho.sa", "zoho", K::Mailbox, "Zoho Mail", "", "", "the same page (SA)"},
    // Proton Mail custom domains: mail.protonmail.ch and mailsec.protonmail.ch
    // (https://proton.me/support/custom-domain); proton.me and protonmail.com publish the same.
    ProviderRule{"protonmail.ch", "proton", K::Mailbox, "Proton Mail", "", "",
                 "https://proton.me/support/custom-domain"},
    // Fastmail: in1-smtp.messagingengine.com and in2-smtp.messagingengine.com
    // (https://www.fastmail.help/hc/en-us/articles/360058753394-Custom-DNS-records).
    ProviderRule{"messagingengine.com", "fastmail", K::Mailbox, "Fastmail", "", "",
                 "https://www.fastmail.help/hc/en-us/articles/360058753394-Custom-DNS-records"},
    // Yandex 360: mx.yandex.net for customers' domains; yandex.ru itself publishes mx.yandex.ru.
    ProviderRule{"yandex.net", "yandex", K::Mailbox, "Yandex Mail", "", "",
                 "https://yandex.com/support/business/domains/mx.html"},
    ProviderRule{"yandex.ru", "yandex", K::Mailbox, "Yandex Mail", "", "", "MX of yandex.ru"},
    // Mail.ru (mail.ru, inbox.ru, list.ru, bk.ru publish mxs.mail.ru); VK WorkSpace domains
    // emx.mail.ru.
    ProviderRule{"mail.ru", "mailru", K::Mailbox, "Mail.ru", "", "",
                 "MX of mail.ru (mxs.mail.ru); https://help.mail.ru/biz/"},
    // iCloud Mail (icloud.com, me.com, mac.com and custom domains): mx01.mail.icloud.com and
    // mx02.mail.icloud.com (https://support.apple.com/102540).
    ProviderRule{"mail.icloud.com", "icloud", K::Mailbox, "iCloud Mail", "", "",
                 "https://support.apple.com/102540; MX of icloud.com"},
    // GMX (gmx.net, gmx.de, gmx.at publish mx00.gmx.net, mx01.gmx.net; gmx.com mx00.gmx.com) and
    // WEB.DE (mx-ha02.web.de, mx-ha03.web.de), both of United Internet.
    ProviderRule{"gmx.net", "gmx", K::Mailbox, "GMX", "", "", "MX of gmx.net and gmx.de"},
    ProviderRule{"gmx.com", "gmx", K::Mailbox, "GMX", "", "", "MX of gmx.com"},
    ProviderRule{"web.de", "web_de", K::Mailbox, "WEB.DE", "", "", "MX of web.de"},
    // Gateways: they filter mail in front of another provider (often Microsoft 365), so the
    // record names the gateway, which is what answers at RCPT.
    // Proofpoint: mx0a-<id>.pphosted.com / mx0b-<id>.pphosted.com (enterprise), gpphosted.com;
    // Proofpoint Essentials mx1-us1.ppe-hosted.com, mx2-us1.ppe-hosted.com.
    ProviderRule{"pphosted.com", "proofpoint", K::Gateway, "Proofpoint", "", "",
                 "https://help.proofpoint.com (MX records: mx0a/mx0b-<id>.pphosted.com)"},
    ProviderRule{"ppe-hosted.com", "proofpoint", K::Gateway, "Proofpoint Essentials", "", "",
                 "Proofpoint Essentials MX records: mx1-us1.ppe-hosted.com"},
    // Mimecast: <region>-smtp-inbound-1.mimecast.com (us-, eu-, de-, au-...), South Africa
    // za-smtp-inbound-1.mimecast.co.za, offshore grids mimecast-offshore.com.
    ProviderRule{"mimecast.com", "mimecast", K::Gateway, "Mimecast", "", "",
                 "Mimecast's MX records by region: us-smtp-inbound-1.mimecast.com"},
    ProviderRule{"mimecast.co.za", "mimecast", K::Gateway, "Mimecast", "", "",
                 "za-smtp-inbound-1.mimecast.co.za"},
    ProviderRule{"mimecast-offshore.com", "mimecast", K::Gateway, "Mimecast", "", "",
                 "Mimecast offshore grid"},
    // Barracuda Email Gateway Defense (Email Security Service): d<id>a.ess.barracudanetworks.com
    // and d<id>b.ess.barracudanetworks.com (e.g. d174024a.ess.barracudanetworks.com).
    ProviderRule{"barracudanetworks.com", "barracuda", K::Gateway, "Barracuda", "", "",
                 "Barracuda Email Gateway Defense MX: d174024a.ess.barracudanetworks.com"},
    // Cisco Secure Email (IronPort) Cloud Gateway: mx1.hc<id>.iphmx.com, esa1.hc3370-68.iphmx.com.
    ProviderRule{"iphmx.com", "cisco", K::Gateway, "Cisco Secure Email", "", "",
                 "Cisco Secure Email Cloud Gateway MX: mx1.hc<id>.iphmx.com"},
    // Trend Micro Email Security: <domain>.in.tmes.trendmicro.com (US/global) and
    // <domain>.in.tmes.trendmicro.eu (EU).
    ProviderRule{"tmes.trendmicro.com", "trendmicro", K::Gateway, "Trend Micro Email Security", "",
                 "", "Trend Micro Email Security MX: <domain>.in.tmes.trendmicro.com"},
    ProviderRule{"tmes.trendmicro.eu", "trendmicro", K::Gateway, "Trend Micro Email Security", "",
                 "", "Trend Micro Email Security MX (EU): in.tmes.trendmicro.eu"},
};

// Greeting phrases that name a provider when the host name in them does not. Google ends every
// reply, the greeting included, with " - gsmtp" ("220 mx.google.com ESMTP c24si3754682pfl.259 -
// gsmtp"), also on the hosts of a Workspace domain that publishes its own MX names.
struct BannerPhrase {
  std::string_view phrase;  // lower case
  std::string_view suffix;  // the rule it stands for
};
constexpr std::array kBannerPhrases = {
    BannerPhrase{" - gsmtp", "google.com"},
};

// `host` is `suffix` or ends in "." + suffix, both lower case.
bool has_suffix(std::string_view host, std::string_view suffix) {
  if (host.size() < suffix.size() || host.substr(host.size() - suffix.size()) != suffix)
    return false;
  return host.size() == suffix.size() || host[host.size() - suffix.size() - 1] == '.';
}

bool in_list(std::string_view list, std::string_view domain) {
  while (!list.empty()) {
    size_t sp = list.find(' ');
    if (list.substr(0, sp) == domain) return true;
    if (sp == std::string_view::npos) break;
    list.remove_prefix(sp + 1);
  }
  return false;
}

std::string_view id_of(const ProviderRule& r, std::string_view domain) {
  const std::string d = core::lower(domain);
  return !r.alt_domains.empty() && in_list(r.alt_domains, d) ? r.alt_id : r.id;
}

const ProviderRule* rule_for(std::string_view host) {
  while (!host.empty() && host.back() == '.')
    host.remove_suffix(1);
  if (host.empty()) return nullptr;
  const std::string h = core::lower(host);
  for (const auto& r : kRules)
    if (has_suffix(h, r.suffix)) return &r;
  return nullptr;
}

}  // namespace

std::span<const ProviderRule> provider_rules() {
  return kRules;
}

std::string_view provider_for_host(std::string_view host, std::string_view domain) {
  const ProviderRule* r = rule_for(host);
  return r ? id_of(*r, domain) : std::string_view();
}

std::string_view provider_for_banner(std::string_view banner, std::string_view domain) {
  banner = core::trim(banner);
  const std::string_view first = banner.substr(0, banner.find_first_of(" \t"));
  if (auto id = provider_for_host(first, domain); !id.empty()) return id;
  const std::string text = core::lower(banner);
  for (const auto& p : kBannerPhrases)
    if (text.find(p.phrase) != std::string::npos)
      if (const ProviderRule* r = rule_for(p.suffix)) return id_of(*r, domain);
  return {};
}

std::string_view identify_provider(std::string_view mx_host, std::string_view banner,
                                   std::string_view domain) {
  if (auto id = provider_for_host(mx_host, domain); !id.empty()) return id;
  return provider_for_banner(banner, domain);
}

std::string_view provider_name(std::string_view id) {
  for (const auto& r : kRules) {
    if (r.id == id) return r.name;
    if (r.alt_id == id) return id == "gmail" ? "Gmail" : id == "aol" ? "AOL" : r.name;
  }
  return {};
}

}  // namespace mxp::verdict
