// The built-in policy document: the defaults of every key spelled out, and the provider rules
// (Google, Microsoft, Yahoo, Proofpoint, Mimecast, Mail.ru: MX patterns, limits, quirks) that
// apply unless global.builtin_providers = false. A --policy file is applied over it
// (docs/policy.md); policy_toml.cpp reads it once.
#include "sched/policy.hpp"

#include <string_view>

namespace mxp::sched {

namespace {

constexpr std::string_view kBuiltin =
    R"toml(# mxprobe built-in scheduling policy. A --policy file is applied over it (docs/policy.md).

[global]
max_sessions = 200          # SMTP sessions open at once, all destinations together
builtin_providers = true    # keep the [provider.*] tables of this document

[warmup]
enabled = false             # true: a source IP without saved warm-up state starts at shares[0]
shares = [0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0]
step = "1d"                 # clean time needed to climb one level
min_sessions = 20           # and clean sessions needed to climb one level

[defaults]
weight = 1                  # deficit round-robin share of an MX group
block_cooldown = "1h"       # how long a (source IP, MX group) rests after a block reply
catch_all_probe = true      # probe each domain once with a random address
quirks.rcpt_accepts_all = false  # true: 250 at RCPT proves nothing (risky / unverifiable)
starttls = "auto"           # STARTTLS: auto (when offered or demanded), never or require

[defaults.per_domain]       # per recipient domain
sessions = 4
connect_rate = 2            # new connections per second; 0 = unlimited
connect_burst = 4
rcpt_rate = 20              # RCPT commands per second; 0 = unlimited
rcpt_burst = 40

[defaults.per_mx]           # per MX group: one MX host, or a provider below
sessions = 10
connect_rate = 5
connect_burst = 10
rcpt_rate = 50
rcpt_burst = 100

[defaults.per_source]       # per source IP x MX group
sessions = 5
connect_rate = 2
connect_burst = 5
rcpt_rate = 20
rcpt_burst = 40

[defaults.session]
recipients = 25             # RCPT commands per session
recipients_per_transaction = 0  # per MAIL FROM (then RSET); 0 = as many as recipients
rejections = 8              # rejected RCPTs per session, then a new session (Postfix: 10)

[defaults.retry]            # retry_later outcomes (greylisting: same source IP)
schedule = ["1m", "5m", "15m", "30m"]
attempts = 5                # tries in all, the first included

[defaults.backoff]          # AIMD per MX group on 421 / 4.7.x rate limits / drops
decrease = 0.5
min_factor = 0.05
rate_increase = 0.05
window_increase = 1.0
holdoff = "2s"
initial_sessions = 2

[defaults.timeouts]         # per SMTP stage
connect = "30s"
banner = "60s"
ehlo = "60s"
helo = "60s"
mail_from = "60s"
rcpt_to = "60s"
rset = "30s"
quit = "10s"

# Google (Gmail, Google Workspace): aspmx.l.google.com, alt*.aspmx.l.google.com,
# gmail-smtp-in.l.google.com, smtp.google.com.
[provider.google]
match = ["*.google.com", "*.googlemail.com"]
per_mx = { sessions = 20, connect_rate = 5, connect_burst = 10, rcpt_rate = 50, rcpt_burst = 100 }
per_source = { sessions = 3, connect_rate = 1, connect_burst = 3, rcpt_rate = 10, rcpt_burst = 20 }
per_domain = { sessions = 20, connect_rate = 0, rcpt_rate = 0 }
session = { recipients = 20, rejections = 8 }
backoff = { holdoff = "5s", min_factor = 0.02 }
block_cooldown = "4h"

# Microsoft 365 (*.mail.protection.outlook.com) and Outlook.com / Hotmail
# (*.olc.protection.outlook.com). Their edge answers "452 4.5.3 Too many recipients" and
# "452 4.5.3 Recipients belong to multiple regions" to transactions far below its documented
# 200 recipients (docs/policy.md, "Sane defaults for the big providers"): 10 per transaction.
[provider.microsoft]
match = ["*.outlook.com"]
per_mx = { sessions = 20, connect_rate = 4, connect_burst = 8, rcpt_rate = 40, rcpt_burst = 80 }
per_source = { sessions = 2, connect_rate = 0.5, connect_burst = 2, rcpt_rate = 5, rcpt_burst = 10 }
per_domain = { sessions = 20, connect_rate = 0, rcpt_rate = 0 }
session = { recipients = 20, recipients_per_transaction = 10, rejections = 8 }
retry = { schedule = ["2m", "10m", "30m", "1h"], attempts = 5 }
backoff = { holdoff = "5s", min_factor = 0.02 }
block_cooldown = "4h"

# Yahoo and AOL: mta*.am0.yahoodns.net and friends. They answer 250 at RCPT for every address
# and reject unknown ones after DATA: a 250 is risky / unverifiable, and a catch-all probe would
# only be accepted too, so none is sent.
[provider.yahoo]
match = ["*.yahoodns.net"]
catch_all_probe = false
quirks = { rcpt_accepts_all = true }
per_mx = { sessions = 10, connect_rate = 2, connect_burst = 4, rcpt_rate = 20, rcpt_burst = 40 }
per_source = { sessions = 1, connect_rate = 0.2, connect_burst = 1, rcpt_rate = 2, rcpt_burst = 10 }
per_domain = { sessions = 10, connect_rate = 0, rcpt_rate = 0 }
session = { recipients = 10, rejections = 5 }
retry = { schedule = ["5m", "15m", "30m", "1h"], attempts = 5 }
backoff = { holdoff = "10s", min_factor = 0.02, rate_increase = 0.02 }
block_cooldown = "6h"

# Proofpoint (Essentials and enterprise gateways): *.pphosted.com, *.ppe-hosted.com.
[provider.proofpoint]
match = ["*.pphosted.com", "*.ppe-hosted.com"]
per_mx = { sessions = 10, connect_rate = 2, connect_burst = 4, rcpt_rate = 20, rcpt_burst = 40 }
per_source = { sessions = 2, connect_rate = 0.5, connect_burst = 2, rcpt_rate = 5, rcpt_burst = 10 }
session = { recipients = 10, rejections = 5 }
block_cooldown = "4h"

# Mimecast: *.mimecast.com and its regional grids; greylists unknown triplets for about a minute.
[provider.mimecast]
match = ["*.mimecast.com", "*.mimecast.co.za", "*.mimecast-offshore.com"]
per_mx = { sessions = 10, connect_rate = 2, connect_burst = 4, rcpt_rate = 20, rcpt_burst = 40 }
per_source = { sessions = 2, connect_rate = 0.5, connect_burst = 2, rcpt_rate = 5, rcpt_burst = 10 }
session = { recipients = 10, rejections = 5 }
retry = { schedule = ["2m", "5m", "15m", "30m", "1h"], attempts = 6 }
block_cooldown = "4h"

# Mail.ru (mail.ru, inbox.ru, list.ru, bk.ru...: mxs.mail.ru): like Yahoo, accepts every address
# at RCPT and bounces unknown ones later.
[provider.mailru]
match = ["*.mail.ru"]
per_mx = { sessions = 10, connect_rate = 2, connect_burst = 4, rcpt_rate = 20, rcpt_burst = 40 }
per_source = { sessions = 2, connect_rate = 0.5, connect_burst = 2, rcpt_rate = 5, rcpt_burst = 10 }
per_domain = { sessions = 10, connect_rate = 0, rcpt_rate = 0 }
session = { recipients = 10, rejections = 5 }
catch_all_probe = false
quirks = { rcpt_accepts_all = true }
block_cooldown = "4h"
)toml";

}  // namespace

std::string_view builtin_policy_toml() {
  return kBuiltin;
}

}  // namespace mxp::sched
