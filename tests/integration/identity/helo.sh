#!/usr/bin/env bash
# The sender identity per source address (docs/identity.md) against a farm host that refuses
# HELO names that are not fully-qualified, as Postfix's reject_non_fqdn_helo_hostname does (at
# RCPT, smtpd_delay_reject = yes). The farm's dnsmasq holds the client addresses' PTR records:
#   a) no --helo, a source whose PTR is forward-confirmed: the PTR name is the HELO, verdicts are
#      the farm's truth, every record's helo says it, and the farm saw that name;
#   b) --helo mx-probe.example.test: the truth, helo says so;
#   c) no --helo, a source whose PTR does not confirm: this host's name. When that is not a
#      fully-qualified name (a bare "vm"), the start-up warning names the address and every
#      verdict is unknown/blocked with the server's HELO refusal, never undeliverable;
#   d) the policy's helo for the domain beats the PTR name;
#   e) the policy's source pool for the MX group: of two --source-ip, only the pool's is used.
# Usage: helo.sh uring|uv (env MXFARM, MXPROBE). Range 127.31-32.0.0/16.
source "$(dirname "$0")/../lib.sh"
LAB_POLICY=$ROOT/tools/policy/lab.toml
MXPROBE=${MXPROBE:?MXPROBE must name the mxprobe binary}
BACKEND=${1:?backend}
skip_without_uring "$BACKEND"

write_scenario() {
  PORT=$((20000 + RANDOM % 20000))
  "$PY" - "$SC" "$NET" "$DNS_PORT" "$PORT" <<'PY'
import json, sys
path, net, dns_port, port = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
s = {
    "version": 1,
    "dns": {"ip": "127.0.0.1", "port": dns_port, "ttl": 60},
    "hosts": [{"name": "mx.helo.test", "ip": f"127.{net}.0.2", "port": port,
               "style": "postfix", "reject_non_fqdn_helo": True}],
    "domains": [{"name": "helo.test", "dns": "mx", "mx": [{"pref": 10, "host": "mx.helo.test"}],
                 "style": "postfix",
                 "mailboxes": {"user1": "ok", "user2": "ok", "user3": "disabled"}}],
    "clients": [{"ip": f"127.{net}.0.10", "ptr": "probe1.farm.test", "confirm": True},
                {"ip": f"127.{net}.0.11", "ptr": "probe2.farm.test", "confirm": False}],
}
json.dump(s, open(path, "w"))
PY
}
farm_in_band 31 32 write_scenario
CONFIRMED=127.$NET.0.10
UNCONFIRMED=127.$NET.0.11

"$MXFARM" truth "$SC" >"$WORK/truth.csv"
tail -n +2 "$WORK/truth.csv" | cut -d, -f1 >"$WORK/list.txt"
N=$(wc -l <"$WORK/list.txt")
((N >= 5)) || fail "truth has only $N addresses"
grep -q ',undeliverable,' "$WORK/truth.csv" || fail "the truth has no undeliverable address"

# run NAME OPTIONS...: verify the list; records in $WORK/NAME.jsonl, stderr in $WORK/NAME.err.
run() {
  local name=$1
  shift
  "$MXPROBE" verify -i "$WORK/list.txt" -o "$WORK/$name.jsonl" --no-journal --no-cache \
    --no-progress --backend "$BACKEND" --dns "127.0.0.1:$DNS_PORT" --smtp-port "$PORT" \
    --timeout-command 3 "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" ||
    fail "$name: exit $? ($(tail -5 "$WORK/$name.err"))"
}

# truth_with NAME HELO SOURCE: every verdict is the farm's truth, every record's helo is HELO
# and its source_ip SOURCE.
truth_with() {
  "$PY" - "$WORK/truth.csv" "$WORK/$1.jsonl" "$2" "$3" "$1" <<'PY' || fail "$1: records differ"
import csv, json, sys
truth = {r["email"]: (r["verdict"], r["reason"]) for r in csv.DictReader(open(sys.argv[1]))}
recs = [json.loads(l) for l in open(sys.argv[2])]
helo, source, name = sys.argv[3], sys.argv[4], sys.argv[5]
assert sorted(r["email"] for r in recs) == sorted(truth), f"{name}: not one record per address"
bad = [f"{r['email']}: {r['verdict']}/{r['reason']} helo {r.get('helo')} from {r['source_ip']}"
       f" ({r['smtp']}), want {truth[r['email']]} helo {helo} from {source}"
       for r in recs
       if (r["verdict"], r["reason"]) != truth[r["email"]] or r.get("helo") != helo
       or r["source_ip"] != source]
assert not bad, "\n".join(bad)
PY
  ok
}

# The farm's count of EHLO names from a client, {name: count}, read from a fresh report.
farm_helo() {
  kill -USR1 "$FARM_PID"
  wait_for 5 test -s "$REPORT" || fail "no farm report"
  report_get "$REPORT" "r['mx']['mx.helo.test']['clients'].get('$1', {}).get('helo', {})"
}

# a) The forward-confirmed PTR name, found through --dns, without --helo.
run ptr --source-ip "$CONFIRMED"
truth_with ptr probe1.farm.test "$CONFIRMED"
expect_no_match "$(cat "$WORK/ptr.err")" "warning: HELO" "a: no HELO warning"
rm -f "$REPORT"
expect_match "$(farm_helo "$CONFIRMED")" "^\{'probe1.farm.test': [0-9]+\}$" "a: the farm saw the PTR name"

# b) --helo wins over everything.
run option --source-ip "$UNCONFIRMED" --helo mx-probe.example.test
truth_with option mx-probe.example.test "$UNCONFIRMED"
expect_no_match "$(cat "$WORK/option.err")" "warning: HELO" "b: no HELO warning"

# c) A PTR that does not confirm: this host's name.
run host --source-ip "$UNCONFIRMED"
if grep -q "warning: HELO name" "$WORK/host.err"; then
  expect_match "$(cat "$WORK/host.err")" \
    "warning: HELO name '[^']+' for $UNCONFIRMED is not a fully-qualified domain name .*probe2\.farm\.test" \
    "c: the warning names the address and the PTR that did not confirm"
  "$PY" - "$WORK/host.jsonl" "$N" <<'PY' || fail "c: records are not all unknown/blocked by the HELO refusal"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
assert len(recs) == int(sys.argv[2]), len(recs)
for r in recs:
    assert (r["verdict"], r["reason"]) == ("unknown", "blocked"), r
    assert "Helo command rejected" in ((r["smtp"] or {}).get("message") or "") + (r["error"] or ""), r
    assert r["helo"] and "." not in r["helo"], r
PY
  ok
else
  # This machine has a fully-qualified name: servers accept it.
  HOSTNAME_HELO=$("$PY" -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["helo"])' "$WORK/host.jsonl")
  truth_with host "$HOSTNAME_HELO" "$UNCONFIRMED"
fi

# d) The policy's helo for the domain, and e) its source pool for the MX group.
POLICY=$WORK/policy.toml
{
  cat "$LAB_POLICY"
  printf '\n[domain."helo.test"]\nhelo = "policy-probe.example.test"\n'
} >"$POLICY"
run policy_helo --source-ip "$CONFIRMED" --policy "$POLICY"
truth_with policy_helo policy-probe.example.test "$CONFIRMED"
{
  cat "$LAB_POLICY"
  printf '\n[provider.farm]\nmatch = ["mx.helo.test"]\nsources = ["%s"]\n' "$CONFIRMED"
} >"$POLICY"
run pool --source-ip "$UNCONFIRMED" --source-ip "$CONFIRMED" --policy "$POLICY"
truth_with pool probe1.farm.test "$CONFIRMED"
# A pool naming an address that is not a source is refused before anything starts.
rc=0
"$MXPROBE" verify -i "$WORK/list.txt" -o "$WORK/bad.jsonl" --no-journal --no-cache --no-progress \
  --backend "$BACKEND" --dns "127.0.0.1:$DNS_PORT" --source-ip "$UNCONFIRMED" --policy "$POLICY" \
  2>"$WORK/bad.err" || rc=$?
expect_eq "$rc" 2 "a pool of unknown sources is a usage error"
expect_match "$(cat "$WORK/bad.err")" "sources: $CONFIRMED is not one of our sources" "pool error"

stop_farm
echo "identity_helo $BACKEND: $CHECKS checks passed"
