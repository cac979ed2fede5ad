// Policy tests: the built-in document, overrides by [defaults], [provider.NAME] (MX patterns) and
// [domain."NAME"], MX pattern matching, durations, and precise errors (file:line:column, key)
// for each way a document can be wrong; docs/policy.md documents every key and its examples
// parse.
#include <gtest/gtest.h>

#include <chrono>

#include <fstream>
#include <sstream>
#include <string>

#include "sched/policy.hpp"

namespace mxp::sched {
namespace {

using namespace std::chrono_literals;

Policy parse_ok(std::string_view text) {
  auto r = parse_policy(text, "test.toml");
  EXPECT_TRUE(r.ok()) << (r ? "" : r.error().to_string());
  return r ? std::move(*r) : Policy::builtin();
}

PolicyError parse_err(std::string_view text) {
  auto r = parse_policy(text, "test.toml");
  EXPECT_FALSE(r.ok()) << "parsed, but should not have:\n" << text;
  return r ? PolicyError{} : r.error();
}

TEST(Policy, BuiltinDefaults) {
  const Policy& p = Policy::builtin();
  EXPECT_EQ(p.max_sessions(), 200u);
  const DomainSettings& d = p.domain_settings("example.com", std::nullopt);
  EXPECT_EQ(d.recipients, 25u);
  EXPECT_EQ(d.rejections, 8u);  // under Postfix's smtpd_soft_error_limit of 10
  EXPECT_LT(d.rejections, 10u);
  EXPECT_EQ(d.retry_schedule, (std::vector<Duration>{1min, 5min, 15min, 30min}));
  EXPECT_EQ(d.attempts, 5u);
  EXPECT_TRUE(d.catch_all_probe);
  EXPECT_EQ(d.domain.sessions, 4u);
  EXPECT_EQ(d.domain.connect.rate, 2.0);
  EXPECT_EQ(d.timeouts[static_cast<int>(smtp::Stage::Connect)], 30s);
  EXPECT_EQ(d.timeouts[static_cast<int>(smtp::Stage::Quit)], 10s);
  const GroupSettings& g = p.group_settings(std::nullopt);
  EXPECT_EQ(g.mx.sessions, 10u);
  EXPECT_EQ(g.source.sessions, 5u);
  EXPECT_EQ(g.backoff.decrease, 0.5);
  EXPECT_EQ(g.backoff.holdoff, 2s);
  EXPECT_EQ(g.block_cooldown, 1h);
  EXPECT_FALSE(p.warmup().enabled);
  EXPECT_EQ(p.warmup().shares.back(), 1.0);
  EXPECT_EQ(p.provider_count(), 6u);
}

TEST(Policy, BuiltinProvidersMatchTheirMxHosts) {
  const Policy& p = Policy::builtin();
  auto name_of = [&](std::string_view host) -> std::string {
    auto i = p.provider_for_mx(host);
    return i ? p.provider_name(*i) : "";
  };
  EXPECT_EQ(name_of("aspmx.l.google.com"), "google");
  EXPECT_EQ(name_of("ALT1.ASPMX.L.GOOGLE.COM."), "google");  // case and trailing dot
  EXPECT_EQ(name_of("gmail-smtp-in.l.google.com"), "google");
  EXPECT_EQ(name_of("example-com.mail.protection.outlook.com"), "microsoft");
  EXPECT_EQ(name_of("hotmail-com.olc.protection.outlook.com"), "microsoft");
  EXPECT_EQ(name_of("mta5.am0.yahoodns.net"), "yahoo");
  EXPECT_EQ(name_of("mx0a-001234.pphosted.com"), "proofpoint");
  EXPECT_EQ(name_of("eu-smtp-inbound-1.mimecast.com"), "mimecast");
  EXPECT_EQ(name_of("mx-aol.mail.gm0.yahoodns.net"), "yahoo");  // AOL's MX
  EXPECT_EQ(name_of("mx0b-00123.ppe-hosted.com"), "proofpoint");
  EXPECT_EQ(name_of("mxs.mail.ru"), "mailru");
  EXPECT_EQ(name_of("google.com"), "");  // "*.google.com" needs a label before the suffix
  EXPECT_EQ(name_of("mx.example.com"), "");
  EXPECT_EQ(name_of("notgoogle.com"), "");
  // Provider settings differ from the defaults where the document says so.
  auto google = p.provider_by_name("google");
  ASSERT_TRUE(google);
  EXPECT_EQ(p.group_settings(google).mx.sessions, 20u);
  EXPECT_EQ(p.group_settings(google).source.sessions, 3u);
  EXPECT_EQ(p.domain_settings("gmail.com", google).recipients, 20u);
  EXPECT_EQ(p.domain_settings("gmail.com", google).attempts, 5u);  // inherited default
}

TEST(Policy, DefaultsOverrideBuiltins) {
  Policy p = parse_ok(R"(
[global]
max_sessions = 50
[defaults.per_domain]
sessions = 2
connect_rate = 0.5
[defaults.retry]
schedule = [1, "2s", 3.5]
attempts = 3
[defaults]
timeouts.rcpt_to = "250ms"
per_mx.sessions = 7
)");
  EXPECT_EQ(p.max_sessions(), 50u);
  const auto& d = p.domain_settings("x.example", std::nullopt);
  EXPECT_EQ(d.domain.sessions, 2u);
  EXPECT_EQ(d.domain.connect.rate, 0.5);
  EXPECT_EQ(d.domain.connect.burst, 4u);  // untouched keys keep the built-in value
  EXPECT_EQ(d.retry_schedule, (std::vector<Duration>{1s, 2s, 3500ms}));
  EXPECT_EQ(d.attempts, 3u);
  EXPECT_EQ(d.timeouts[static_cast<int>(smtp::Stage::RcptTo)], 250ms);
  EXPECT_EQ(p.group_settings(std::nullopt).mx.sessions, 7u);
  // Built-in providers inherit the new defaults for keys they do not set themselves...
  auto yahoo = p.provider_by_name("yahoo");
  ASSERT_TRUE(yahoo);
  EXPECT_EQ(p.domain_settings("yahoo.com", yahoo).timeouts[static_cast<int>(smtp::Stage::RcptTo)],
            250ms);
  // ...and keep the ones they set.
  EXPECT_EQ(p.group_settings(yahoo).mx.sessions, 10u);
}

TEST(Policy, OverridesByPatternAndDomain) {
  Policy p = parse_ok(R"(
[provider.acme]
match = ["*.mx.acme.test", "smtp.acme-mail.test"]
per_mx.sessions = 3
per_source = { connect_rate = 0.25, connect_burst = 1 }
session.recipients = 5
weight = 4

[domain."big.test"]
per_domain.sessions = 9
session.rejections = 2
catch_all_probe = false

[domain."Mixed.Case.TEST"]
retry.attempts = 2
starttls = "require"
)");
  auto acme = p.provider_for_mx("in1.mx.acme.test");
  ASSERT_TRUE(acme);
  EXPECT_EQ(p.provider_name(*acme), "acme");
  EXPECT_EQ(p.provider_for_mx("smtp.acme-mail.test"), acme);  // exact pattern
  EXPECT_FALSE(p.provider_for_mx("other.acme-mail.test"));    // exact means exact
  EXPECT_EQ(p.group_settings(acme).mx.sessions, 3u);
  EXPECT_EQ(p.group_settings(acme).source.connect.rate, 0.25);
  EXPECT_EQ(p.group_settings(acme).source.connect.burst, 1u);
  EXPECT_EQ(p.group_settings(acme).source.sessions, 5u);  // default kept
  EXPECT_EQ(p.group_settings(acme).weight, 4u);
  EXPECT_EQ(p.group_settings(std::nullopt).weight, 1u);

  // Domain over provider over defaults.
  const auto& at_acme = p.domain_settings("big.test", acme);
  EXPECT_EQ(at_acme.domain.sessions, 9u);
  EXPECT_EQ(at_acme.rejections, 2u);
  EXPECT_EQ(at_acme.recipients, 5u);  // from the provider
  EXPECT_FALSE(at_acme.catch_all_probe);
  const auto& alone = p.domain_settings("big.test", std::nullopt);
  EXPECT_EQ(alone.domain.sessions, 9u);
  EXPECT_EQ(alone.recipients, 25u);  // no provider: the default
  EXPECT_TRUE(p.domain_settings("small.test", acme).catch_all_probe);
  // Domain names are case-insensitive.
  EXPECT_EQ(p.domain_settings("mixed.case.test", std::nullopt).attempts, 2u);
  EXPECT_EQ(p.domain_settings("MIXED.case.test", std::nullopt).attempts, 2u);
  EXPECT_EQ(p.domain_settings("mixed.case.test", std::nullopt).starttls,
            smtp::StartTlsMode::Require);
  EXPECT_EQ(at_acme.starttls, smtp::StartTlsMode::Auto);  // the built-in default
}

TEST(Policy, MostSpecificPatternWins) {
  Policy p = parse_ok(R"(
[provider.broad]
match = ["*.example.net"]
[provider.narrow]
match = ["*.in.example.net"]
[provider.one]
match = ["mx.in.example.net"]
)");
  auto name = [&](std::string_view h) { return p.provider_name(*p.provider_for_mx(h)); };
  EXPECT_EQ(name("a.b.example.net"), "broad");
  EXPECT_EQ(name("a.in.example.net"), "narrow");
  EXPECT_EQ(name("x.y.in.example.net"), "narrow");
  EXPECT_EQ(name("mx.in.example.net"), "one");
}

TEST(Policy, ProviderReplacesBuiltinOfSameName) {
  Policy p = parse_ok(R"(
[provider.google]
match = ["*.google.example"]
per_mx.sessions = 2
)");
  EXPECT_FALSE(p.provider_for_mx("aspmx.l.google.com"));
  auto g = p.provider_for_mx("mx.google.example");
  ASSERT_TRUE(g);
  EXPECT_EQ(p.group_settings(g).mx.sessions, 2u);
  EXPECT_EQ(p.group_settings(g).source.sessions, 5u);  // the defaults, not the old google
  EXPECT_TRUE(p.provider_by_name("yahoo"));
}

// Recipients per transaction (docs/policy.md, "Recipients per transaction"): 0 (as many as the
// session's) by default, 10 built in for Microsoft, settable per provider and per domain.
TEST(Policy, RecipientsPerTransaction) {
  const Policy& b = Policy::builtin();
  EXPECT_EQ(b.domain_settings("a.example", std::nullopt).recipients_per_transaction, 0u);
  const auto ms = b.provider_for_mx("hotmail-com.olc.protection.outlook.com");
  ASSERT_TRUE(ms);
  EXPECT_EQ(b.domain_settings("hotmail.com", ms).recipients_per_transaction, 10u);
  EXPECT_EQ(b.domain_settings("gmail.com", b.provider_for_mx("gmail-smtp-in.l.google.com"))
                .recipients_per_transaction,
            0u);
  Policy p = parse_ok(R"(
[provider.acme]
match = ["*.acme.test"]
session.recipients_per_transaction = 3

[domain."slow.example"]
session = { recipients = 10, recipients_per_transaction = 1 }
)");
  EXPECT_EQ(
      p.domain_settings("x.example", p.provider_for_mx("mx.acme.test")).recipients_per_transaction,
      3u);
  EXPECT_EQ(p.domain_settings("slow.example", std::nullopt).recipients_per_transaction, 1u);
}

// Reply quirks and catch-all probing per provider (docs/policy.md, "Provider quirks"): built in
// for Yahoo/AOL and Mail.ru, off elsewhere; a policy file's provider table replaces the built-in
// one whole, and a domain table beats its provider.
TEST(Policy, ProviderQuirksAndCatchAllProbing) {
  const Policy& b = Policy::builtin();
  struct Row {
    const char* mx;
    bool accepts_all, probe;
  } rows[] = {
      {"mta7.am0.yahoodns.net", true, false}, {"mxs.mail.ru", true, false},
      {"aspmx.l.google.com", false, true},    {"x.mail.protection.outlook.com", false, true},
      {"mx0a-1.pphosted.com", false, true},   {"eu-smtp-inbound-1.mimecast.com", false, true},
      {"mx.example.org", false, true},
  };
  for (const auto& r : rows) {
    const auto& d = b.domain_settings("some.example", b.provider_for_mx(r.mx));
    EXPECT_EQ(d.rcpt_accepts_all, r.accepts_all) << r.mx;
    EXPECT_EQ(d.catch_all_probe, r.probe) << r.mx;
  }

  // A file's [provider.yahoo] replaces the built-in table: what it does not say comes from the
  // defaults (no quirk, probing on) unless it says it again.
  Policy p = parse_ok(R"(
[provider.yahoo]
match = ["*.yahoodns.net"]
per_source.sessions = 4

[provider.acme]
match = ["*.acme.test"]
quirks.rcpt_accepts_all = true
catch_all_probe = false

[domain."yahoo.com"]
quirks.rcpt_accepts_all = true

[domain."trusted.acme.test"]
quirks = { rcpt_accepts_all = false }
)");
  auto yahoo = p.provider_for_mx("mta5.am0.yahoodns.net");
  ASSERT_TRUE(yahoo);
  EXPECT_EQ(p.group_settings(yahoo).source.sessions, 4u);
  EXPECT_FALSE(p.domain_settings("aol.com", yahoo).rcpt_accepts_all);
  EXPECT_TRUE(p.domain_settings("aol.com", yahoo).catch_all_probe);
  EXPECT_TRUE(p.domain_settings("yahoo.com", yahoo).rcpt_accepts_all);  // its domain table
  auto acme = p.provider_for_mx("mx1.acme.test");
  ASSERT_TRUE(acme);
  EXPECT_TRUE(p.domain_settings("x.acme.test", acme).rcpt_accepts_all);
  EXPECT_FALSE(p.domain_settings("x.acme.test", acme).catch_all_probe);
  EXPECT_FALSE(p.domain_settings("trusted.acme.test", acme).rcpt_accepts_all);  // domain wins
  EXPECT_FALSE(p.domain_settings("trusted.acme.test", acme).catch_all_probe);   // rest: provider
  EXPECT_TRUE(p.provider_for_mx("mxs.mail.ru"));  // the other built-ins stay

  // Dropping the built-ins drops their quirks.
  Policy none = parse_ok("[global]\nbuiltin_providers = false\n");
  EXPECT_FALSE(none.domain_settings("yahoo.com", none.provider_for_mx("mta5.am0.yahoodns.net"))
                   .rcpt_accepts_all);
  // A quirk key is a domain key: not in [global], and typed.
  auto bad = parse_policy("[defaults]\nquirks.rcpt_accepts_all = 1\n", "q.toml");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().to_string(),
            "q.toml:2:27: defaults.quirks.rcpt_accepts_all: expected true or false");
  EXPECT_FALSE(parse_policy("[defaults]\nquirks.nope = true\n", "q.toml"));
}

TEST(Policy, BuiltinProvidersCanBeDropped) {
  Policy p = parse_ok("[global]\nbuiltin_providers = false\n");
  EXPECT_EQ(p.provider_count(), 0u);
  EXPECT_FALSE(p.provider_for_mx("aspmx.l.google.com"));
}

TEST(Policy, Warmup) {
  Policy p = parse_ok(R"(
[warmup]
enabled = true
shares = [0.1, 0.5, 1]
step = "10s"
min_sessions = 3
)");
  EXPECT_TRUE(p.warmup().enabled);
  EXPECT_EQ(p.warmup().shares, (std::vector<double>{0.1, 0.5, 1.0}));
  EXPECT_EQ(p.warmup().step, 10s);
  EXPECT_EQ(p.warmup().min_sessions, 3u);
}

struct BadCase {
  const char* text;
  uint32_t line;
  const char* key;
  const char* message_part;
};

// The sender identity (docs/identity.md): helo and mail_from per domain, provider or default;
// the source pool per MX group, source addresses written the way the engine names sources.
TEST(Policy, IdentityKeys) {
  const Policy p = parse_ok(R"toml(
[defaults]
mail_from = "verify@example.test"
[provider.acme]
match = ["*.acme.test"]
sources = ["192.0.2.10", "2001:DB8:0::1", "socks5://proxy.test:1080"]
helo = "probe1.example.test"
[domain."null.test"]
mail_from = ""
helo = "[192.0.2.10]"
)toml");
  const auto acme = p.provider_by_name("acme");
  ASSERT_TRUE(acme);
  EXPECT_EQ(p.group_settings(acme).sources,
            (std::vector<std::string>{"192.0.2.10", "2001:db8::1", "socks5://proxy.test:1080"}));
  EXPECT_TRUE(p.group_settings(std::nullopt).sources.empty());  // every source
  const DomainSettings& d = p.domain_settings("x.test", acme);
  EXPECT_EQ(d.helo, "probe1.example.test");
  EXPECT_EQ(d.mail_from, "verify@example.test");
  const DomainSettings& plain = p.domain_settings("x.test", std::nullopt);
  EXPECT_EQ(plain.helo, "");  // the source address's own
  EXPECT_EQ(plain.mail_from, "verify@example.test");
  const DomainSettings& null = p.domain_settings("null.test", std::nullopt);
  EXPECT_EQ(null.mail_from, "");  // the null sender, set
  EXPECT_EQ(null.helo, "[192.0.2.10]");
  EXPECT_FALSE(Policy::builtin().domain_settings("x.test", std::nullopt).mail_from);
}

TEST(Policy, ErrorsArePrecise) {
  const BadCase cases[] = {
      {"[defaults]\nper_mx.sessions = 0\n", 2, "defaults.per_mx.sessions",
       "integer from 1 to 1000000"},
      {"[defaults]\n\nper_mx.sessions = \"ten\"\n", 3, "defaults.per_mx.sessions", "integer"},
      {"[defaults]\nper_domain.connect_rate = -1\n", 2, "defaults.per_domain.connect_rate",
       "0 = unlimited"},
      {"[defaults]\nper_mx.sesions = 3\n", 2, "defaults.per_mx.sesions", "unknown key"},
      {"[defaults.retry]\nschedule = []\n", 2, "defaults.retry.schedule", "list of 1 to 100"},
      {"[defaults.retry]\nschedule = [\"5 min\"]\n", 2, "defaults.retry.schedule", "duration"},
      {"[defaults.retry]\nschedule = [\"-5s\"]\n", 2, "defaults.retry.schedule", "duration"},
      {"[defaults]\ntimeouts.rcpt_to = \"2h\"\n", 2, "defaults.timeouts.rcpt_to", "out of range"},
      {"[defaults]\ncatch_all_probe = 1\n", 2, "defaults.catch_all_probe", "true or false"},
      {"[defaults]\nstarttls = \"yes\"\n", 2, "defaults.starttls",
       "expected one of never, auto, require"},
      {"[defaults]\nstarttls = true\n", 2, "defaults.starttls", "one of never, auto, require"},
      {"[domain.\"x.test\"]\nper_mx.sessions = 3\n", 2, "domain.\"x.test\".per_mx.sessions",
       "MX-group setting"},
      {"[domain.x.test]\nper_domain.sessions = 3\n", 2, "domain.\"x\".test.per_domain.sessions",
       "must be quoted"},
      {"[provider.acme]\nper_mx.sessions = 3\n", 1, "provider.acme", "needs match"},
      {"[provider.acme]\nmatch = [\"*\"]\n", 2, "provider.acme.match", "bad pattern"},
      {"[provider.acme]\nmatch = [\"mx.*.acme.test\"]\n", 2, "provider.acme.match", "bad pattern"},
      {"[provider.a]\nmatch = [\"*.x.test\"]\n[provider.b]\nmatch = [\"*.X.test\"]\n", 3,
       "provider.b.match", "already matched by provider.a"},
      {"[provider.mine]\nmatch = [\"*.google.com\"]\n", 1, "provider.mine.match",
       "already matched by provider.google"},
      {"[warmup]\nshares = [0.5, 0.2, 1]\n", 2, "warmup.shares", "ascending"},
      {"[warmup]\nshares = [0.1, 0.5]\n", 2, "warmup.shares", "the last one 1"},
      {"[global]\nmax_sessions = 10\nper_mx.sessions = 1\n", 3, "global.per_mx.sessions",
       "unknown key"},
      {"[limits]\nx = 1\n", 1, "limits", "unknown table"},
      {"title = \"x\"\n", 1, "title", "expected a table"},
      {"[defaults]\nper_mx.sessions = 3\nper_mx.sessions = 4\n", 3, "", ""},  // TOML itself
      {"[defaults\n", 1, "", ""},
      {"[defaults]\nhelo = \"bad name\"\n", 2, "defaults.helo", "host name"},
      {"[defaults]\nhelo = 3\n", 2, "defaults.helo", "host name"},
      {"[defaults]\nmail_from = \"<x@y.test>\"\n", 2, "defaults.mail_from", "sender address"},
      {"[defaults]\nmail_from = \"nobody\"\n", 2, "defaults.mail_from", "sender address"},
      {"[defaults]\nsources = [\"300.1.1.1\"]\n", 2, "defaults.sources", "source address"},
      {"[defaults]\nsources = \"192.0.2.1\"\n", 2, "defaults.sources", "list of"},
      {"[domain.\"x.test\"]\nsources = [\"192.0.2.1\"]\n", 2, "domain.\"x.test\".sources",
       "MX-group setting"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    PolicyError e = parse_err(c.text);
    EXPECT_EQ(e.source, "test.toml");
    EXPECT_EQ(e.line, c.line);
    EXPECT_GE(e.column, 1u);
    if (*c.key) {
      EXPECT_EQ(e.key, c.key);
    }
    EXPECT_NE(e.message.find(c.message_part), std::string::npos) << e.message;
    const std::string s = e.to_string();
    EXPECT_EQ(s.rfind("test.toml:" + std::to_string(c.line) + ":", 0), 0u) << s;
  }
}

TEST(Policy, LoadPolicyReadsFilesAndNamesThemInErrors) {
  const std::string dir = ::testing::TempDir();
  const std::string good = dir + "/sched_policy_good.toml";
  const std::string bad = dir + "/sched_policy_bad.toml";
  std::ofstream(good) << "[defaults.session]\nrecipients = 3\n";
  std::ofstream(bad) << "[defaults.session]\n\nrecipients = 0\n";
  auto p = load_policy(good);
  ASSERT_TRUE(p) << p.error().to_string();
  EXPECT_EQ(p->domain_settings("a.test", std::nullopt).recipients, 3u);
  auto e = load_policy(bad);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().to_string().rfind(bad + ":3:", 0), 0u) << e.error().to_string();
  auto missing = load_policy(dir + "/no/such/policy.toml");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().to_string().find("cannot open"), std::string::npos);
  std::remove(good.c_str());
  std::remove(bad.c_str());
}

TEST(Policy, LayersLaterDocumentsWinOverDefaultsNotOverProviders) {
  // The file, then the command line as a document (what mxprobe does with -c, --timeout-*...).
  auto p = build_policy({{"[global]\nmax_sessions = 40\n[defaults]\nper_domain.sessions = 3\n"
                          "[provider.big]\nmatch = [\"*.big.test\"]\nper_domain.sessions = 9\n",
                          "file.toml"},
                         {"[global]\nmax_sessions = 7\n[defaults]\nper_domain.sessions = 2\n"
                          "timeouts.rcpt_to = \"1500ms\"\n",
                          "<command line>"}});
  ASSERT_TRUE(p) << p.error().to_string();
  EXPECT_EQ(p->max_sessions(), 7u);
  EXPECT_EQ(p->domain_settings("x.test", std::nullopt).domain.sessions, 2u);
  const auto big = p->provider_for_mx("mx1.big.test");
  ASSERT_TRUE(big);
  EXPECT_EQ(p->domain_settings("x.test", big).domain.sessions, 9u);  // the provider's own
  EXPECT_EQ(p->domain_settings("x.test", big).timeouts[static_cast<int>(smtp::Stage::RcptTo)],
            std::chrono::milliseconds(1500));  // not set by the provider: the layered default
  // Errors name the document they are in.
  auto bad = build_policy({{"[defaults]\n", "file.toml"}, {"[global]\nnope = 1\n", "<cli>"}});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().source, "<cli>");
}

TEST(Policy, Durations) {
  EXPECT_EQ(parse_duration("90"), Duration(90s));
  EXPECT_EQ(parse_duration("1.5"), Duration(1500ms));
  EXPECT_EQ(parse_duration("250ms"), Duration(250ms));
  EXPECT_EQ(parse_duration("30s"), Duration(30s));
  EXPECT_EQ(parse_duration("5m"), Duration(5min));
  EXPECT_EQ(parse_duration("2h"), Duration(2h));
  EXPECT_EQ(parse_duration("1d"), Duration(24h));
  EXPECT_EQ(parse_duration(" 3s "), Duration(3s));
  EXPECT_FALSE(parse_duration(""));
  EXPECT_FALSE(parse_duration("s"));
  EXPECT_FALSE(parse_duration("-1s"));
  EXPECT_FALSE(parse_duration("5 m"));
  EXPECT_FALSE(parse_duration("5min"));
  EXPECT_FALSE(parse_duration("1e3"));
}

std::string read_docs() {
  std::ifstream in(MXP_DOCS_POLICY_MD);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(Policy, DocsListEveryKeyAndTheirExamplesParse) {
  const std::string doc = read_docs();
  ASSERT_FALSE(doc.empty()) << MXP_DOCS_POLICY_MD;
  for (const auto& k : policy_keys()) {
    // Global and warm-up keys are documented with their table: `max_sessions` under [global].
    std::string name = k.name;
    if (auto dot = name.find('.');
        k.where == PolicyKeyInfo::Where::Global || k.where == PolicyKeyInfo::Where::Warmup)
      name = name.substr(dot + 1);
    EXPECT_NE(doc.find("`" + name + "`"), std::string::npos)
        << "docs/policy.md does not document `" << name << "`";
  }
  // Every ```toml block parses.
  int blocks = 0;
  const std::string open = "```toml\n", close = "```";
  for (size_t at = doc.find(open); at != std::string::npos; at = doc.find(open, at)) {
    const size_t begin = at + open.size(), end = doc.find(close, begin);
    ASSERT_NE(end, std::string::npos);
    auto r = parse_policy(doc.substr(begin, end - begin),
                          "docs/policy.md block " + std::to_string(blocks));
    EXPECT_TRUE(r) << r.error().to_string();
    ++blocks;
    at = end + close.size();
  }
  EXPECT_GE(blocks, 2);
  // The built-in document is printed in full.
  EXPECT_NE(doc.find(std::string(builtin_policy_toml())), std::string::npos)
      << "docs/policy.md must include the built-in policy verbatim";
}

// Live group changes and PUT /v1/policy come from clients: what a policy may declare is bounded
// (3,000 live groups made every command and GET /v1/policy slow and large), and many providers
// still build in linear time (the same-name check was a scan per provider).
TEST(Policy, ProviderAndDomainOverrideCountsAreBounded) {
  auto providers = [](size_t n) {
    std::string t;
    for (size_t i = 0; i < n; ++i)
      t += "[provider.p" + std::to_string(i) + "]\nmatch = [\"mx" + std::to_string(i) +
           ".example\"]\nper_mx.sessions = 2\n";
    return t;
  };
  // 1,000 of ours and the built-in ones: within the bound, and each still found by its MX.
  const auto t0 = std::chrono::steady_clock::now();
  auto ok = build_policy({{providers(1000), "<live>"}});
  ASSERT_TRUE(ok) << ok.error().to_string();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  EXPECT_EQ(ok->provider_for_mx("mx999.example").has_value(), true);
  EXPECT_EQ(ok->group_settings(ok->provider_for_mx("mx999.example")).mx.sessions, 2u);
  auto many = build_policy({{providers(3000), "<live>"}});
  ASSERT_FALSE(many);
  EXPECT_NE(many.error().to_string().find("more than 1024 providers"), std::string::npos)
      << many.error().to_string();
  // Domain overrides cost one setting per provider: 1,000 providers x 1,000 domains is refused.
  std::string domains;
  for (int i = 0; i < 1000; ++i)
    domains += "[domain.\"d" + std::to_string(i) + ".example\"]\nper_domain.sessions = 1\n";
  auto pairs = build_policy({{providers(1000) + domains, "<put>"}});
  ASSERT_FALSE(pairs);
  EXPECT_NE(pairs.error().to_string().find("too many domain overrides"), std::string::npos)
      << pairs.error().to_string();
  EXPECT_TRUE(build_policy({{domains, "<put>"}}));  // with the few built-in providers: fine
}

}  // namespace
}  // namespace mxp::sched
