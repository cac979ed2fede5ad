#!/usr/bin/env bash
# mxprobe's scheduler is polite, as the farm sees it (its JSON report): per-source connection
# rate, per-MX concurrency, RCPT rejections per session, greylisting retried from the same source
# IP, rotation away from a blocking source IP, AIMD back-off from a 421 storm and recovery, and
# warm-up of a new source IP. One farm with one MX host per part; three mxprobe runs at once,
# each from source addresses of its own (so the farm's per-client timelines are theirs alone):
#   A (127.N.9.5):               rate, concurrency, rejections
#   B (127.N.9.1, 127.N.9.2):    greylisting, block rotation, 421 storm
#   C (127.N.9.3 established, 127.N.9.4 new):  warm-up
# Every check also makes sure its limit was reached (the peak equals the cap, not 0).
# Env MXFARM, MXPROBE. Range 127.205-214.0.0/16 (see pick_net in lib.sh).
source "$(dirname "$0")/../lib.sh"
MXPROBE=${MXPROBE:?MXPROBE must name the mxprobe binary}
SC=$WORK/scenario.json
REPORT=$WORK/report.json
t_start=$(now_ms)

# --- The farm: one MX host per part, each serving one domain.
write_scenario() {
  "$PY" - "$SC" "$NET" "$DNS_PORT" <<'PY'
import json, sys
path, net, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
hosts, domains = [], []
def part(i, name, mailboxes, **host):
    hosts.append({"name": f"mx.{name}.test", "ip": f"127.{net}.1.{i}", "style": "postfix", **host})
    domains.append({"name": f"{name}.test", "dns": "mx",
                    "mx": [{"pref": 10, "host": f"mx.{name}.test"}], "mailboxes": mailboxes})
ok = lambda n: {f"user{i}": "ok" for i in range(1, n + 1)}
mixed = ok(4) | {"full1": "full", "disabled1": "disabled"}
part(1, "rate", ok(70))
part(2, "conc", ok(16), reply_delay_ms=200)
part(3, "rej", ok(4))
part(4, "grey", mixed)
part(5, "block", mixed, block={"clients": [f"127.{net}.9.1"], "at": "rcpt"})
part(6, "storm", ok(60), max_conn_per_ip=2, reply_delay_ms=100)
part(7, "warm", ok(140))
domains[3]["greylist_delay_s"] = 2
json.dump({"version": 1, "dns": {"ip": "127.0.0.1", "port": port, "ttl": 60},
           "hosts": hosts, "domains": domains}, open(path, "w"), indent=1)
PY
}
farm_in_band 205 214 write_scenario
A_SRC=127.$NET.9.5
B_SRC1=127.$NET.9.1
B_SRC2=127.$NET.9.2
C_OLD=127.$NET.9.3
C_NEW=127.$NET.9.4

# The truth, per domain: a scenario holding just that domain, so that `truth --count N` gives
# its mailboxes and then nobodyK addresses up to N.
truth() { # DOMAIN COUNT
  "$PY" - "$SC" "$1" "$WORK/sub-$1.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
d = next(d for d in s["domains"] if d["name"] == sys.argv[2])
s["domains"] = [d]
s["hosts"] = [h for h in s["hosts"] if h["name"] == d["mx"][0]["host"]]
json.dump(s, open(sys.argv[3], "w"))
PY
  "$MXFARM" truth "$WORK/sub-$1.json" --count "$2" --timeout-ms 5000 | tail -n +2
}
{
  truth rate.test 72
  truth conc.test 16
  truth rej.test 40
} >"$WORK/truth-a.csv"
{
  truth grey.test 8
  truth block.test 8
  truth storm.test 60
} >"$WORK/truth-b.csv"
truth warm.test 140 >"$WORK/truth-c.csv"
for r in a b c; do cut -d, -f1 "$WORK/truth-$r.csv" >"$WORK/list-$r.txt"; done

# --- Policies: nothing limited but what each part checks. Every policy has session.rejections
# = 4, so every level of the farm's report must show at most 4 rejected RCPTs per session.
cat >"$WORK/common.toml" <<'EOF'
[global]
max_sessions = 100
builtin_providers = false

[defaults]
per_mx = { sessions = 20, connect_rate = 0, rcpt_rate = 0 }
per_source = { sessions = 20, connect_rate = 0, rcpt_rate = 0 }
per_domain = { sessions = 20, connect_rate = 0, rcpt_rate = 0 }
session = { recipients = 4, rejections = 4 }
backoff = { initial_sessions = 20 }
retry = { schedule = ["1s"], attempts = 4 }
catch_all_probe = false
EOF
# A: 5 connections/s (burst 3) per source IP at mx.rate.test, 2 recipients a session so that
# sessions are many; 3 sessions at once at mx.conc.test, whose replies take 200 ms each;
# 20 recipients a session but 4 rejections at mx.rej.test.
cat "$WORK/common.toml" - >"$WORK/a.toml" <<'EOF'

[provider.rate]
match = ["mx.rate.test"]
per_source = { sessions = 20, connect_rate = 5, connect_burst = 3, rcpt_rate = 0 }
session = { recipients = 2, rejections = 4 }

[provider.conc]
match = ["mx.conc.test"]
per_mx = { sessions = 3, connect_rate = 0, rcpt_rate = 0 }
backoff = { initial_sessions = 3 }
session = { recipients = 2, rejections = 4 }

[provider.rej]
match = ["mx.rej.test"]
session = { recipients = 20, rejections = 4 }
EOF
# B: greylisted addresses retried 3 s later (the farm's delay: 2 s), 4 tries; mx.block.test
# refuses B_SRC1 at RCPT; mx.storm.test answers 421 to a third connection from one client IP
# while mxprobe starts with 8 sessions at once.
cat "$WORK/common.toml" - >"$WORK/b.toml" <<'EOF'

[provider.grey]
match = ["mx.grey.test"]
retry = { schedule = ["3s"], attempts = 4 }

[provider.storm]
match = ["mx.storm.test"]
per_mx = { sessions = 8, connect_rate = 20, connect_burst = 8, rcpt_rate = 0 }
per_source = { sessions = 8, connect_rate = 0, rcpt_rate = 0 }
session = { recipients = 2, rejections = 4 }
backoff = { initial_sessions = 8, holdoff = "500ms", rate_increase = 0.2, window_increase = 2 }
retry = { schedule = ["500ms"], attempts = 8 }
EOF
# C: warm-up: the new IP starts at a quarter of the per-source budget (8 connections/s, burst
# 2) and climbs to all of it after 3 s and 3 clean sessions. One recipient a session.
cat "$WORK/common.toml" - >"$WORK/c.toml" <<'EOF'

[warmup]
enabled = true
shares = [0.25, 1.0]
step = "3s"
min_sessions = 3

[provider.warm]
match = ["mx.warm.test"]
per_source = { sessions = 4, connect_rate = 8, connect_burst = 2, rcpt_rate = 0 }
session = { recipients = 1, rejections = 4 }
EOF

run() { # NAME SOURCE-OPTIONS...
  "$MXPROBE" verify --no-cache --policy "$WORK/$1.toml" --dns "127.0.0.1:$DNS_PORT" \
    --input "$WORK/list-$1.txt" --output "$WORK/out-$1.jsonl" --no-progress \
    --timeout-connect 5 --timeout-banner 5 --timeout-command 5 --helo probe.client.test \
    "${@:2}" 2>"$WORK/err-$1.txt"
}
t_runs=$(now_ms)
run a --source-ip "$A_SRC" &
pa=$!
run b --source-ip "$B_SRC1,$B_SRC2" &
pb=$!
run c --source-ip "$C_OLD" --new-source-ip "$C_NEW" &
pc=$!
for r in a:$pa b:$pb c:$pc; do
  wait "${r#*:}" || {
    kill "$pa" "$pb" "$pc" 2>/dev/null || true
    cat "$WORK/err-${r%%:*}.txt" >&2
    fail "mxprobe run ${r%%:*} failed"
  }
done
t_done=$(now_ms)
stop_farm
for r in a b c; do echo "--- run $r: $(tail -1 "$WORK/err-$r.txt")"; done

"$PY" - "$WORK" "$REPORT" "$NET" <<'PY' || fail "politeness checks failed"
import csv, json, re, sys
work, report_path, net = sys.argv[1], sys.argv[2], sys.argv[3]
R = json.load(open(report_path))
bad, checks = [], 0
def check(cond, what):
    global checks
    checks += 1
    if not cond:
        bad.append(what)
    return cond
src = lambda h: f"127.{net}.9.{h}"
def mx(name):
    return R["mx"].get(f"mx.{name}.test", {})
recs, truth, err = {}, {}, {}
for r in "abc":
    recs[r] = {j["email"]: j for j in map(json.loads, open(f"{work}/out-{r}.jsonl"))}
    truth[r] = {row[0]: (row[1], row[2]) for row in csv.reader(open(f"{work}/truth-{r}.csv"))}
    err[r] = open(f"{work}/err-{r}.txt").read()
    check(set(recs[r]) == set(truth[r]), f"run {r}: {len(recs[r])} records for {len(truth[r])} addresses")
def verdicts(run, domain):
    wrong = [f"{e}: {j['verdict']}/{j['reason']} (smtp {(j.get('smtp') or {}).get('code')}), want {'/'.join(truth[run][e])}"
             for e, j in recs[run].items() if e.endswith("@" + domain)
             and (j["verdict"], j["reason"]) != truth[run][e]]
    check(not wrong, f"{domain}: {len(wrong)} wrong verdicts: {wrong[:5]}")
def tl(level, key="connections"):
    return level.get("timeline", {}).get(key, [])

# Rejections per session, everywhere (every policy says session.rejections = 4).
def levels():
    yield "total", R["total"]
    for ip, c in R["clients"].items():
        yield f"client {ip}", c
    for h, m in R["mx"].items():
        yield h, m
        for ip, c in m.get("clients", {}).items():
            yield f"{h} x {ip}", c
for name, lv in levels():
    check(lv["peak_rcpt_rejections_per_session"] <= 4,
          f"{name}: {lv['peak_rcpt_rejections_per_session']} rejected RCPTs in one session, limit 4")
    check(lv["data_commands"] == 0, f"{name}: DATA sent")

# 1. Connection rate: 5/s, burst 3, per source IP: at most 8 in any second, and reached.
m = mx("rate")
for ip, c in m.get("clients", {}).items():
    check(c["peak_connections_per_second"] <= 5 + 3,
          f"rate: {ip} opened {c['peak_connections_per_second']} connections in one second, limit 5+3")
peak = m.get("peak_connections_per_second", 0)
check(peak >= 5, f"rate: peak {peak} connections/s: the 5/s limit never bound")
conns = tl(m)
first = next((i for i, n in enumerate(conns) if n), 0)
span = len(conns) - first  # whole seconds touched
# Over the whole run: a token bucket lets through burst + rate * T in any window T.
check(sum(conns) <= 3 + 5 * span, f"rate: {sum(conns)} connections in {span} s: over 3 + 5/s")
check(m.get("connections", 0) >= 30, f"rate: only {m.get('connections', 0)} connections")
verdicts("a", "rate.test")
print(f"rate: peak {peak}/s, {sum(conns)} connections over {span} s {conns[first:]}")

# 2. Concurrency: 3 sessions at once at mx.conc.test, and reached.
m = mx("conc")
check(m.get("peak_concurrent", 0) <= 3, f"conc: {m.get('peak_concurrent')} sessions at once, cap 3")
check(m.get("peak_concurrent", 0) == 3, f"conc: peak {m.get('peak_concurrent')} sessions: cap 3 never reached")
verdicts("a", "conc.test")
print(f"conc: peak {m.get('peak_concurrent')} concurrent, {m.get('connections')} connections")

# 3. Rejections per session: 4, reached, and the verdicts right.
m = mx("rej")
for name, lv in [("mx", m)] + list(m.get("clients", {}).items()):
    check(lv.get("peak_rcpt_rejections_per_session") == 4,
          f"rej: {name}: peak {lv.get('peak_rcpt_rejections_per_session')} rejections per session, want 4")
verdicts("a", "rej.test")
print(f"rej: peak {m.get('peak_rcpt_rejections_per_session')} rejections/session, {m.get('connections')} sessions")

# 4. Greylisting: every triplet greylisted once (retries from the same source IP), all passed.
m = mx("grey")
rcpted = [a for a in R["rcpt_by_address"] if a.endswith("@grey.test")]
check(m.get("greylist_triplets") == len(rcpted) == 8,
      f"grey: {m.get('greylist_triplets')} triplets for {len(rcpted)} addresses RCPT'd (8 listed)")
check(m.get("greylist_passed", 0) > 0, "grey: nothing passed the greylisting")
check(m.get("greylist_passed") == m.get("greylist_triplets"),
      f"grey: {m.get('greylist_passed')} passed for {m.get('greylist_triplets')} triplets")
check(m.get("greylist_early") == 0, f"grey: {m.get('greylist_early')} retries before the delay")
verdicts("b", "grey.test")
pool = {src(1), src(2)}
srcs = {j["source_ip"] for e, j in recs["b"].items() if e.endswith("@grey.test")}
check(srcs <= pool, f"grey: source_ip {srcs}, not from the pool")
tries = sorted({j["attempts"] for e, j in recs["b"].items() if e.endswith("@grey.test")})
check(tries == [2], f"grey: tries per address {tries}, want 2 (greylisted once, then passed)")
print(f"grey: {m.get('greylist_triplets')} triplets, {m.get('greylist_passed')} passed, "
      f"{m.get('greylist_early')} early; sources {sorted(srcs)}")

# 5. Block rotation: src 1 is blocked at RCPT, src 2 gets the true answers.
m = mx("block")
verdicts("b", "block.test")
check(f"blocked: source {src(1)} by MX group mx.block.test" in err["b"],
      "block: no 'blocked: source' line for the blocked source")
srcs = {j["source_ip"] for e, j in recs["b"].items() if e.endswith("@block.test")}
check(srcs == {src(2)}, f"block: results from {srcs}, want only {src(2)}")
check(src(1) in m.get("clients", {}), f"block: {src(1)} never tried the blocking host")
print(f"block: clients {sorted(m.get('clients', {}))}, results from {sorted(srcs)}")

# 6. 421 storm: 8 sessions at once from two source IPs, 2 allowed per IP: 4 of the first 8
# connections get 421. mxprobe must back off (halve the window), retry those addresses, then
# climb back (AIMD probes the limit again, so a 421 now and then is expected, but far fewer
# than the 1 in 2 of a scheduler that keeps 8 sessions open).
m = mx("storm")
lines = [l for l in err["b"].splitlines() if "MX group storm " in l or "MX group storm:" in l]
backoffs = [float(x) for l in lines if "back-off:" in l for x in re.findall(r"window ([0-9.]+) of", l)]
ups = [float(x) for l in lines if "recovered:" in l for x in re.findall(r"window ([0-9.]+) of", l)]
check(backoffs and backoffs[0] <= 4, f"storm: back-off windows {backoffs}: no back-off to half of 8")
check(ups and max(ups) > backoffs[0] if backoffs else False,
      f"storm: no 'recovered:' line with a window above the first back-off's ({ups})")
rej, conns = tl(m, "limit_rejects"), tl(m)
first = next((i for i, n in enumerate(conns) if n), 0)
check(sum(rej[first:first + 2]) >= 4, f"storm: limit rejects {rej}: no storm at the start")
later_conns, later_rej = m.get("connections", 0) - 8, m.get("limit_rejects", 0) - 4
check(later_conns >= 20, f"storm: only {later_conns} connections after the first 8")
check(later_rej <= 0.35 * later_conns,
      f"storm: after the first 8 connections, {later_rej} of {later_conns} more got 421: no back-off")
retried = sum(1 for e, j in recs["b"].items() if e.endswith("@storm.test") and j["attempts"] > 1)
check(retried >= 8, f"storm: only {retried} addresses tried again after a 421")
print(f"storm: connections {conns[first:]}, limit_rejects {rej[first:]}, back-off windows "
      f"{backoffs}, recovered windows {ups}, {retried} addresses retried")
verdicts("b", "storm.test")

# 7. Warm-up: the new IP gets ~1/4 of the established one's connections for 3 s, then more.
old, new = R["clients"].get(src(3), {}), R["clients"].get(src(4), {})
to, tn = tl(old), tl(new)
n = max(len(to), len(tn))
to, tn = to + [0] * (n - len(to)), tn + [0] * (n - len(tn))
t0 = next((i for i in range(n) if to[i] or tn[i]), 0)
early_old, early_new = sum(to[t0:t0 + 3]), sum(tn[t0:t0 + 3])
late_old, late_new = sum(to[t0 + 4:]), sum(tn[t0 + 4:])
check(early_old > 0 and early_new / early_old <= 0.45,
      f"warm-up: first 3 s: new {early_new} vs established {early_old} connections")
check(early_new > 0, "warm-up: the new IP was not used at all in its first 3 s")
check(late_old > 0 and late_new / late_old >= 0.6,
      f"warm-up: after the step: new {late_new} vs established {late_old} connections")
verdicts("c", "warm.test")
print(f"warm-up: established {to[t0:]}, new {tn[t0:]}")

for b in bad:
    print("MISMATCH", b)
print(f"{checks} checks, {len(bad)} failed")
sys.exit(1 if bad else 0)
PY
echo "PASS sched_politeness (runs $((t_done - t_runs)) ms, all $(($(now_ms) - t_start)) ms)"
