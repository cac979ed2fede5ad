#!/usr/bin/env bash
# The report's politeness facts: RCPTs and RCPT rejections per session (peaks, not sums, at every
# level), greylisting triplets / early retries / passes per client IP, and the per-second
# timelines of connections and limit rejects. Clients: rawsmtp.py, swaks (with
# --local-interface for other client IPs) and bash's /dev/tcp.
# Range 127.175-184.0.0/16 (see pick_net in lib.sh).
source "$(dirname "$0")/../lib.sh"

SC=$WORK/scenario.json
REPORT=$WORK/report.json
t_launch=$(now_ms)
launch 175 184 --domains 1 --hosts 1 --mailboxes 3 --full-share 0 --disabled-share 0 \
  --catch-all-share 0 --special greylist,connlimit --greylist-delay 1 --conn-limit 1
t_ready=$(now_ms)
ip1=$(ip_of "$SC" d1.test)
gip=$(ip_of "$SC" greylist.test)
cip=$(ip_of "$SC" connlimit.test)

# swl SOURCE_IP SERVER ARGS...: swaks up to RCPT from another loopback address.
swl() { sw "$2" --local-interface "$1" "${@:3}"; }

# --- RCPTs per session: 5 RCPTs, 4 refused, over two transactions of one session.
out=$(raw "$ip1" 25 "EHLO client.test" "MAIL FROM:<probe@client.test>" \
  "RCPT TO:<nobody1@d1.test>" "RCPT TO:<nobody2@d1.test>" "RCPT TO:<user1@d1.test>" "RSET" \
  "MAIL FROM:<probe@client.test>" "RCPT TO:<nobody3@d1.test>" "RCPT TO:<nobody4@d1.test>" "QUIT")
expect_eq "$(grep -c '^S: 550 5.1.1' <<<"$out")" 4 "session 1: four RCPTs refused"
expect_eq "$(grep -c '^S: 250 2.1.5' <<<"$out")" 1 "session 1: one RCPT accepted"
# A second session from the same IP with 2 refusals: the peak stays 4 (a sum would give 6).
out=$(sw "$ip1" --to nobody5@d1.test,nobody6@d1.test)
expect_eq "$(grep -c '550 5.1.1' <<<"$out")" 2 "session 2: two RCPTs refused"
# From 127.0.0.3: 7 RCPTs, 1 refused; its own client level must not see the 4 of 127.0.0.1.
out=$(swl 127.0.0.3 "$ip1" --to user1@d1.test,user2@d1.test,user3@d1.test,user1@d1.test,user2@d1.test,user3@d1.test,nobody7@d1.test)
expect_match "$out" "-> EHLO" "swaks from 127.0.0.3 connected"
expect_eq "$(grep -c '550 5.1.1' <<<"$out")" 1 "session 3: one RCPT refused"
expect_eq "$(grep -c '250 2.1.5' <<<"$out")" 6 "session 3: six RCPTs accepted"

# --- greylisting (delay 1 s): first attempt, early retries, then a pass, all from 127.0.0.1.
t0=$(now_ms)
out=$(sw "$gip" --to user1@greylist.test)
expect_match "$out" "450 4.2.0 <user1@greylist.test>: .*Greylisted" "greylist: first attempt"
early=0
passed=""
for _ in $(seq 1 40); do # a polite client retrying until the delay has passed
  out=$(sw "$gip" --to user1@greylist.test)
  if grep -q "250 2.1.5 Ok" <<<"$out"; then
    passed=$(now_ms)
    break
  fi
  expect_match "$out" "450 4.2.0" "greylist: retry before the delay"
  early=$((early + 1))
  sleep 0.2
done
[[ -n $passed ]] || fail "greylisted recipient never passed"
((passed - t0 >= 1000)) || fail "greylist passed after $((passed - t0)) ms, before its 1 s delay"
ok
# The same recipient from two other client IPs: two new triplets, greylisted again.
for src in 127.0.0.2 127.0.0.3; do
  out=$(swl "$src" "$gip" --to user2@greylist.test)
  expect_match "$out" "450 4.2.0 <user2@greylist.test>" "greylist: first attempt from $src"
done

# --- a connection limit of 1: a second concurrent connection gets 421.
exec 4<>/dev/tcp/"$cip"/25
read -r -t 3 l4 <&4 || fail "connlimit: no banner"
expect_match "$l4" "^220 " "connlimit: first connection held"
t_rej0=$(now_ms)
out=$(sw "$cip" --to user1@connlimit.test)
t_rej1=$(now_ms)
expect_match "$out" "421 4.7.0 .*too many connections" "connlimit: 421"
printf 'QUIT\r\n' >&4
timeout 3 cat <&4 >/dev/null || fail "connlimit: held session did not close"
exec 4>&-

stop_farm
r() { report_get "$REPORT" "$1"; }
m1="r['mx']['mx1.farm.test']"
mg="r['mx']['mx.greylist.test']"

# Peaks of RCPTs and refusals per session, at every level.
expect_eq "$(r "r['total']['peak_rcpt_rejections_per_session']")" 4 "total peak refusals"
expect_eq "$(r "r['total']['peak_rcpts_per_session']")" 7 "total peak RCPTs"
expect_eq "$(r "${m1}['peak_rcpt_rejections_per_session']")" 4 "mx1 peak refusals"
expect_eq "$(r "${m1}['peak_rcpts_per_session']")" 7 "mx1 peak RCPTs"
expect_eq "$(r "${m1}['clients']['127.0.0.1']['peak_rcpt_rejections_per_session']")" 4 "mx1 x 127.0.0.1 peak refusals"
expect_eq "$(r "${m1}['clients']['127.0.0.1']['peak_rcpts_per_session']")" 5 "mx1 x 127.0.0.1 peak RCPTs"
expect_eq "$(r "${m1}['clients']['127.0.0.3']['peak_rcpt_rejections_per_session']")" 1 "mx1 x 127.0.0.3 peak refusals"
expect_eq "$(r "${m1}['clients']['127.0.0.3']['peak_rcpts_per_session']")" 7 "mx1 x 127.0.0.3 peak RCPTs"
expect_eq "$(r "r['clients']['127.0.0.1']['peak_rcpt_rejections_per_session']")" 4 "client 127.0.0.1 peak refusals"
expect_eq "$(r "r['clients']['127.0.0.1']['peak_rcpts_per_session']")" 5 "client 127.0.0.1 peak RCPTs"
expect_eq "$(r "r['clients']['127.0.0.3']['peak_rcpt_rejections_per_session']")" 1 "client 127.0.0.3 peak refusals (greylisting included)"
expect_eq "$(r "r['clients']['127.0.0.2']['peak_rcpts_per_session']")" 1 "client 127.0.0.2 peak RCPTs"
expect_eq "$(r "${mg}['peak_rcpt_rejections_per_session']")" 1 "greylist MX: one greylisted RCPT per session"
expect_eq "$(r "r['mx']['mx.connlimit.test']['peak_rcpts_per_session']")" 0 "connlimit MX: no RCPT got through"
expect_eq "$(r "r['mx']['mx.connlimit.test']['replies']['421']")" 1 "connlimit MX: 421 is not an RCPT refusal"

# Greylisting: 1 triplet from 127.0.0.1 (early retries, then 1 pass), 1 from each other IP.
expect_eq "$(r "${mg}['greylist_triplets']")" 3 "greylist MX triplets"
expect_eq "$(r "${mg}['greylist_passed']")" 1 "greylist MX passes"
expect_eq "$(r "${mg}['greylist_early']")" "$early" "greylist MX early retries"
expect_eq "$(r "r['total']['greylist_triplets'], r['total']['greylist_passed'], r['total']['greylist_early']")" \
  "(3, 1, $early)" "greylisting at the total level"
expect_eq "$(r "${mg}['clients']['127.0.0.1']['greylist_triplets'], ${mg}['clients']['127.0.0.1']['greylist_passed']")" \
  "(1, 1)" "same IP retried after the delay: 1 triplet, 1 pass"
expect_eq "$(r "r['clients']['127.0.0.2']['greylist_triplets'] + r['clients']['127.0.0.3']['greylist_triplets']")" \
  2 "one address from two client IPs: 2 triplets"
expect_eq "$(r "${m1}['greylist_triplets'] + ${m1}['greylist_passed'] + ${m1}['greylist_early']")" 0 "no greylisting at mx1"
expect_eq "$(r "${mg}['replies']['450']")" $((early + 3)) "every greylisted RCPT answered 450"

# Timelines: sums equal the counters, levels add up second by second, arrays are trimmed, and
# entries sit at the second of uptime when their events happened.
"$PY" - "$REPORT" "$t_launch" "$t_ready" "$t_rej0" "$t_rej1" <<'EOF' || fail "timeline checks"
import json, sys
r = json.load(open(sys.argv[1]))
t_launch, t_ready, t_rej0, t_rej1 = map(int, sys.argv[2:])
errors = []
def check(cond, what):
    if not cond:
        errors.append(what)
levels = {"total": r["total"]}
levels.update({"client " + k: v for k, v in r["clients"].items()})
levels.update({"mx " + k: v for k, v in r["mx"].items()})
up_s = r["uptime_ms"] // 1000
for name, c in levels.items():
    for key in ("connections", "limit_rejects"):
        tl = c["timeline"][key]
        check(sum(tl) == c[key], f"{name}: sum of timeline {key} {sum(tl)} != {c[key]}")
        check(not tl or tl[-1] != 0, f"{name}: timeline {key} not trimmed: {tl}")
        check(len(tl) <= min(3600, up_s + 1), f"{name}: timeline {key} longer than the uptime")
for m in r["mx"].values():
    for ip, c in m["clients"].items():
        check("timeline" not in c, f"MX x client {ip} has a timeline")
def add(arrays):
    out = []
    for a in arrays:
        out += [0] * (len(a) - len(out))
        for i, n in enumerate(a):
            out[i] += n
    while out and out[-1] == 0:
        out.pop()
    return out
for key in ("connections", "limit_rejects"):
    tot = r["total"]["timeline"][key]
    check(add(m["timeline"][key] for m in r["mx"].values()) == tot, f"MX timelines of {key} do not add up to the total")
    check(add(c["timeline"][key] for c in r["clients"].values()) == tot, f"client timelines of {key} do not add up to the total")
check(r["total"]["connections"] > 0, "no connections")
# The greylisting wait spread the connections over at least two seconds.
check(sum(1 for n in r["total"]["timeline"]["connections"] if n) >= 2, "connections all in one second")
# The one limit reject: after the greylisting delay (>= 1 s of uptime), at its own second.
lr = r["mx"]["mx.connlimit.test"]["timeline"]["limit_rejects"]
check(sum(lr) == 1 and lr[-1] == 1, f"connlimit timeline {lr}")
sec = len(lr) - 1
lo, hi = (t_rej0 - t_ready) // 1000, (t_rej1 - t_launch) // 1000
check(sec >= 1 and lo <= sec <= hi, f"limit reject in second {sec}, expected {lo}..{hi}")
check(r["clients"]["127.0.0.1"]["timeline"]["limit_rejects"] == lr, "client timeline of the reject")
for e in errors:
    print("timeline:", e, file=sys.stderr)
sys.exit(1 if errors else 0)
EOF
ok
expect_eq "$(r "sum(r['total']['timeline']['connections']) == r['total']['connections']")" True "timeline connections sum"
echo "PASS report_politeness: $CHECKS checks"
