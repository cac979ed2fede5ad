// The scheduling policy: how fast and how wide mxprobe may talk to each recipient domain, MX
// group and (source IP, MX group), how sessions are shaped, how retries are timed and how new
// source IPs warm up. A TOML file (docs/policy.md lists every key) applied over built-in
// defaults, with overrides by MX pattern ([provider.NAME], which also groups MX hosts) and by
// recipient domain ([domain."NAME"]). A Policy is an immutable value: the pipeline swaps a
// shared_ptr<const Policy> on SIGHUP and hands it to Scheduler::set_policy.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/expected.hpp"
#include "sched/clock.hpp"
#include "smtp/types.hpp"

namespace mxp::sched {

// rate: tokens per second, 0 = unlimited; burst: tokens a full bucket holds (>= 1).
struct RateLimit {
  double rate = 0;
  uint32_t burst = 1;
  bool operator==(const RateLimit&) const = default;
};

// The three limits every level has: concurrent sessions, new connections, RCPT commands.
struct LevelLimits {
  uint32_t sessions = 1;
  RateLimit connect;
  RateLimit rcpt;
  bool operator==(const LevelLimits&) const = default;
};

// AIMD on an MX group's concurrency window and rate (Postfix qmgr's per-destination window).
struct BackoffSettings {
  double decrease = 0.5;         // window and rate factor are multiplied by this on back-off
  double min_factor = 0.05;      // the rate factor never drops below this
  double rate_increase = 0.05;   // added to the rate factor per clean session (up to 1)
  double window_increase = 1.0;  // window grows by this / window per clean session
  Duration holdoff = std::chrono::seconds(2);  // back-off signals closer than this count once
  uint32_t initial_sessions = 2;  // "slow open": the window starts here, grows to the cap
  bool operator==(const BackoffSettings&) const = default;
};

// Settings that belong to an MX group (and to source IP x MX group).
struct GroupSettings {
  LevelLimits mx;      // per MX group
  LevelLimits source;  // per source IP x MX group
  BackoffSettings backoff;
  uint32_t weight = 1;                              // deficit round-robin share among groups
  Duration block_cooldown = std::chrono::hours(1);  // a blocked (IP, group) rests this long
  // The source pool of the group (docs/identity.md): the source addresses (or proxies, by their
  // "socks5://host:port") its sessions may come from; empty: every source. An MX-group setting
  // because the scheduler picks the source per MX group before it picks the domain.
  std::vector<std::string> sources;
  bool operator==(const GroupSettings&) const = default;
};

// Settings that belong to a recipient domain.
struct DomainSettings {
  LevelLimits domain;
  uint32_t recipients = 25;  // RCPTs per session
  // RCPTs per mail transaction (then RSET and a new MAIL FROM); 0: as many as `recipients`.
  uint32_t recipients_per_transaction = 0;
  uint32_t rejections = 8;  // rejected RCPTs per session, then rotate (Postfix soft limit: 10)
  // Retry delays for retry_later outcomes: try n (n >= 1) failed -> wait schedule[min(n-1, end)].
  std::vector<Duration> retry_schedule;
  uint32_t attempts = 5;  // tries in all, the first included
  smtp::StageTimeouts timeouts = smtp::kDefaultStageTimeouts;
  bool catch_all_probe = true;
  // Reply quirks of the domain's provider (docs/policy.md, "Provider quirks").
  // The servers accept every address at RCPT and reject unknown ones later: 250 => risky.
  bool rcpt_accepts_all = false;
  smtp::StartTlsMode starttls = smtp::StartTlsMode::Auto;  // docs/usage.md, "TLS"
  // The identity sessions to the domain use (docs/identity.md): the HELO name ("": the source
  // address's, chosen at start-up) and the sender (nullopt: --mail-from's; "": the null sender).
  std::string helo;
  std::optional<std::string> mail_from;
  bool operator==(const DomainSettings&) const = default;
};

struct WarmupSettings {
  bool enabled = false;                    // false: every source IP is at full share
  std::vector<double> shares;              // share of each level, ascending, the last is 1
  Duration step = std::chrono::hours(24);  // clean time needed to climb a level
  uint32_t min_sessions = 20;              // clean sessions needed to climb a level
  bool operator==(const WarmupSettings&) const = default;
};

// Where a policy error is: "file:line:column: key: message".
struct PolicyError {
  std::string source;  // file name, or the name given to parse_policy
  uint32_t line = 0, column = 0;
  std::string key;  // dotted key, e.g. "provider.google.per_mx.sessions"; may be empty
  std::string message;
  std::string to_string() const;
};

class Policy {
 public:
  // Built-in defaults, including the built-in provider table (docs/policy.md).
  static const Policy& builtin();

  uint32_t max_sessions() const { return max_sessions_; }  // global session cap
  const WarmupSettings& warmup() const { return warmup_; }

  // The provider whose match pattern fits an MX host name best (an exact name beats the longest
  // "*.suffix"); nullopt: the host is a group of its own. Case-insensitive, trailing dot ignored.
  std::optional<uint32_t> provider_for_mx(std::string_view host) const;
  std::optional<uint32_t> provider_by_name(std::string_view name) const;
  size_t provider_count() const { return providers_.size(); }
  const std::string& provider_name(uint32_t p) const { return providers_[p].name; }
  const std::vector<std::string>& provider_patterns(uint32_t p) const {
    return providers_[p].patterns;
  }

  // Settings of an MX group: the defaults, with the provider's overrides when given.
  const GroupSettings& group_settings(std::optional<uint32_t> provider) const;
  // Settings of a recipient domain whose mail goes to `provider` (nullopt: none): defaults, then
  // the provider's overrides, then the domain's own.
  const DomainSettings& domain_settings(std::string_view domain,
                                        std::optional<uint32_t> provider) const;

 private:
  friend struct PolicyBuilder;
  struct Provider {
    std::string name;
    std::vector<std::string> patterns;
    GroupSettings group;
    DomainSettings domain;
  };
  struct DomainOverride {
    std::vector<DomainSettings> by_provider;  // [provider_count] is "no provider"
  };
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using Index = std::unordered_map<std::string, uint32_t, Hash, std::equal_to<>>;

  uint32_t max_sessions_ = 200;
  WarmupSettings warmup_;
  GroupSettings group_defaults_;
  DomainSettings domain_defaults_;
  std::vector<Provider> providers_;
  Index exact_;     // "mx.example.com" -> provider
  Index suffixes_;  // ".google.com" (from "*.google.com") -> provider
  Index provider_names_;
  std::vector<DomainOverride> domain_overrides_;
  Index domain_index_;  // domain -> domain_overrides_ index
};

// Parses a policy document; `source` names it in errors. Keys not given keep the built-in
// defaults; the built-in providers stay unless [global] builtin_providers = false, and a
// [provider.NAME] in the document replaces the built-in one of that name.
core::Expected<Policy, PolicyError> parse_policy(std::string_view toml_text,
                                                 std::string_view source);
// Reads a policy file's text (errors name the path).
core::Expected<std::string, PolicyError> read_policy_file(const std::string& path);
// Reads and parses a policy file (errors name the path).
core::Expected<Policy, PolicyError> load_policy(const std::string& path);

// One policy document and the name its errors carry.
struct PolicySource {
  std::string text;
  std::string name;
};
// The built-in policy, then each document in order: a later document's [global], [warmup] and
// [defaults] keys replace earlier values one by one, a later [provider.NAME] replaces an
// earlier one. mxprobe passes the --policy file, then the command-line options written as a
// document (so -c 50 beats the file's [global] max_sessions, while provider and domain tables
// still apply over the defaults).
core::Expected<Policy, PolicyError> build_policy(const std::vector<PolicySource>& documents);

// Every key the policy accepts, for docs and tests: dotted name and where it may appear.
struct PolicyKeyInfo {
  std::string name;  // e.g. "per_mx.sessions", "timeouts.rcpt_to", "warmup.step"
  enum class Where : uint8_t { Global, Warmup, Group, Domain, Provider } where;
};
std::vector<PolicyKeyInfo> policy_keys();

// The built-in policy document (providers for Google, Microsoft, Yahoo, Proofpoint, Mimecast).
std::string_view builtin_policy_toml();

// "90", "1.5", "250ms", "30s", "5m", "2h", "1d" -> duration; nullopt if malformed or negative.
std::optional<Duration> parse_duration(std::string_view text);

}  // namespace mxp::sched
