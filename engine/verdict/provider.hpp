// Who runs the mail for a domain: a mailbox provider (Gmail, Microsoft 365, ...) or a filtering
// gateway in front of one (Proofpoint, Mimecast, ...), from the MX host names and, when those say
// nothing, the host name in the server's greeting. A data table with a source per entry
// (docs/providers.md); pure functions, no I/O.
#pragma once

#include <span>
#include <string_view>

namespace mxp::verdict {

enum class ProviderKind : uint8_t { Mailbox, Gateway };

// One row of the identification table: MX host names equal to `suffix` or ending in "." + suffix
// belong to `id`. A few providers run two services on the same hosts (Gmail and Google
// Workspace, Yahoo and AOL); then the recipient domain tells which: `alt_domains` get `alt_id`.
struct ProviderRule {
  std::string_view suffix;
  std::string_view id;  // the record's "provider" value
  ProviderKind kind;
  std::string_view name;  // for people: "Google Workspace"
  // Recipient domains, space-separated, that get `alt_id` instead ("" when the MX name alone
  // tells).
  std::string_view alt_domains;
  std::string_view alt_id;
  std::string_view source;  // where the MX name comes from (a documented page or a real MX)
};

// The table, most specific suffixes first (the first match wins).
std::span<const ProviderRule> provider_rules();

// The provider of one MX host name (any case, a trailing dot allowed), for mail to `domain`;
// "" when the table does not know the host.
std::string_view provider_for_host(std::string_view host, std::string_view domain);

// The provider from a server's greeting ("mx.google.com ESMTP c24si37 - gsmtp", the text after
// the reply code): the host name it starts with (RFC 5321 §4.2 asks servers to give it there),
// looked up like an MX name, or a phrase only one provider uses. "" when it says nothing.
std::string_view provider_for_banner(std::string_view banner, std::string_view domain);

// The MX name first, then the greeting.
std::string_view identify_provider(std::string_view mx_host, std::string_view banner,
                                   std::string_view domain);

// The people's name of an id ("Microsoft 365"), "" for an unknown id.
std::string_view provider_name(std::string_view id);

}  // namespace mxp::verdict
