#!/usr/bin/env bash
# IPv6 on loopback: mail hosts with AAAA records (a dual-stack domain whose two equal-preference
# MX hosts are one IPv4-only and one IPv6-only, and an IPv6-only domain), `--prefer ipv4|ipv6`,
# an IPv6 source address (::1), and an IPv4-only source pool that cannot reach an IPv6-only
# domain. Verdicts must be mxfarm's truth whatever the family; mx_ip and source_ip say which
# family was used. The machine has one IPv6 loopback address (::1), so the farm's IPv6 host
# listens there on a port of its own. Usage: ipv6.sh uring|uv (env MXFARM, MXPROBE).
# Range 127.195-204.0.0/16.
source "$(dirname "$0")/../lib.sh"
LAB_POLICY=$ROOT/tools/policy/lab.toml
MXPROBE=${MXPROBE:?MXPROBE must name the mxprobe binary}
BACKEND=${1:?backend}

if ! "$PY" -c 'import socket; s = socket.socket(socket.AF_INET6); s.bind(("::1", 0))' 2>/dev/null; then
  echo "SKIP: no IPv6 loopback (::1) on this machine"
  exit 0
fi
skip_without_uring "$BACKEND"

SC=$WORK/scenario.json
write_scenario() {
  PORT=$((20000 + RANDOM % 20000))
  "$PY" - "$SC" "$NET" "$DNS_PORT" "$PORT" <<'PY'
import json, sys
path, net, dns_port, port = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
boxes = {"user1": "ok", "user2": "ok", "full1": "full"}
s = {
    "version": 1,
    "dns": {"ip": "127.0.0.1", "port": dns_port, "ttl": 60},
    "hosts": [
        {"name": "mx4.dual.test", "ip": f"127.{net}.0.10", "port": port},
        {"name": "mx6.dual.test", "ip": f"127.{net}.0.11", "ipv4": False, "ip6": "::1",
         "port": port},
    ],
    "domains": [
        {"name": "dual.test", "dns": "mx", "style": "postfix", "mailboxes": boxes,
         "mx": [{"pref": 10, "host": "mx4.dual.test"}, {"pref": 10, "host": "mx6.dual.test"}]},
        {"name": "six.test", "dns": "mx", "style": "postfix", "mailboxes": boxes,
         "mx": [{"pref": 10, "host": "mx6.dual.test"}]},
    ],
}
json.dump(s, open(path, "w"))
PY
}
farm_in_band 195 204 write_scenario
V4=127.$NET.0.10

"$MXFARM" truth "$SC" >"$WORK/truth.csv"
# Every candidate address of both domains (mailboxes, unknown ones), as the truth lists them.
tail -n +2 "$WORK/truth.csv" | cut -d, -f1 >"$WORK/list.txt"
N=$(wc -l <"$WORK/list.txt")
((N >= 6)) || fail "truth has only $N addresses"

# run NAME OPTIONS...: verify the list; records in $WORK/NAME.jsonl.
run() {
  local name=$1
  shift
  "$MXPROBE" verify -i "$WORK/list.txt" -o "$WORK/$name.jsonl" --no-journal --no-cache --no-progress \
    --backend "$BACKEND" --dns "127.0.0.1:$DNS_PORT" --smtp-port "$PORT" --policy "$LAB_POLICY" \
    --helo probe.client.test --timeout-command 3 "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" ||
    fail "$name: exit $? ($(tail -5 "$WORK/$name.err"))"
}

# check NAME DUAL_MX_IP SIX_MX_IP SOURCE: every verdict is the farm's truth, except six.test's
# when SIX_MX_IP is "unreachable" (an IPv4-only pool): unknown/connection_failed, never tried.
check() {
  "$PY" - "$WORK/truth.csv" "$WORK/$1.jsonl" "$2" "$3" "$4" "$1" "$N" <<'PY' || fail "$1: records differ"
import csv, json, sys
truth = {r["email"]: (r["verdict"], r["reason"]) for r in csv.DictReader(open(sys.argv[1]))}
recs = [json.loads(l) for l in open(sys.argv[2])]
dual_ip, six_ip, source, name = sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
emails = [r["email"] for r in recs]
assert sorted(emails) == sorted(set(emails)) == sorted(truth) and len(emails) == int(sys.argv[7]), f"{name}: records {emails}"
bad = []
for r in recs:
    dom = r["email"].split("@")[1]
    want_ip = dual_ip if dom == "dual.test" else six_ip
    if want_ip == "unreachable":
        if (r["verdict"], r["reason"], r["mx_ip"]) != ("unknown", "connection_failed", None):
            bad.append(f"{r['email']}: {r['verdict']}/{r['reason']} mx_ip {r['mx_ip']}, want unknown/connection_failed, never tried")
        continue
    if (r["verdict"], r["reason"]) != truth[r["email"]]:
        bad.append(f"{r['email']}: {r['verdict']}/{r['reason']}, truth {truth[r['email']]}")
    if r["mx_ip"] != want_ip:
        bad.append(f"{r['email']}: mx_ip {r['mx_ip']}, want {want_ip}")
    if (r["source_ip"] or "") != source:
        bad.append(f"{r['email']}: source_ip {r['source_ip']}, want {source or None}")
for b in bad:
    print(f"{name}: {b}", file=sys.stderr)
sys.exit(1 if bad else 0)
PY
  ok
}

run prefer6 --prefer ipv6
check prefer6 ::1 ::1 ""
run prefer4 --prefer ipv4
check prefer4 "$V4" ::1 ""
run source6 --source-ip ::1
check source6 ::1 ::1 ::1
run source4 --source-ip "$V4"
check source4 "$V4" unreachable "$V4"
expect_match "$(cat "$WORK/source4.err")" "six.test: no source address of its mail servers' family \(IPv6\)" \
  "an IPv4-only pool says why six.test was not tried"

# The farm saw IPv6 clients, and no DATA.
stop_farm
"$PY" - "$WORK/report.json" <<'PY' || fail "farm report"
import json, sys
r = json.load(open(sys.argv[1]))
six = r["mx"]["mx6.dual.test"]
assert six["connections"] > 0 and "ipv6" in six["clients"], six
assert r["total"]["data_commands"] == 0, r["total"]
PY
ok
echo "ipv6 ($BACKEND): $CHECKS checks passed"
