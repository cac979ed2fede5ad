#!/usr/bin/env bash
# `mxprobe doctor` against mxfarm's dnsmasq, and the rotation it decides at verify's start.
# Two client addresses: 127.NET.200.11 has a PTR record whose name resolves back to it (a
# farm host record that nothing listens on) and is on no list; 127.NET.200.12 has no PTR and is
# listed on bl.farm.test; every name under refused.farm.test answers 127.255.255.254 (Spamhaus's
# "public resolver refused"). Checked: PTR/FCrDNS present and absent, the listing, the refused
# answer as "could not check", a closed port-25 target ("refused"), a dead resolver, the exit
# codes of docs/identity.md ("Reading doctor"), --json; and a verify job with both addresses whose
# listed one is out of rotation (a log line) so that every record comes from the other, with
# verdicts as the farm's truth says; with only the listed address, verify stops before the job.
# Usage: doctor.sh uring|uv   (env MXFARM, MXPROBE). Range 127.42-44.0.0/16.
source "$(dirname "$0")/../lib.sh"
LAB_POLICY=$ROOT/tools/policy/lab.toml
MXPROBE=${MXPROBE:?MXPROBE must name the mxprobe binary}
BACKEND=${1:?backend}
skip_without_uring "$BACKEND"

write_scenario() {
  "$MXFARM" gen --domains 6 --hosts 2 --mailboxes 3 --special none --catch-all-share 0 \
    --greylist-share 0 --base-ip "$BASE" --dns-port "$DNS_PORT" >"$WORK/gen.json"
  "$PY" - "$WORK/gen.json" "$SC" "$NET" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
net = sys.argv[3]
good, listed = f"127.{net}.200.11", f"127.{net}.200.12"
# A host record gives the client address its A and PTR records (forward-confirmed); nothing
# listens there.
s["hosts"].append({"name": "probe1.client.test", "ip": good, "port": 25, "style": "postfix",
                   "listen": False})
s["dnsbl"] = [{"zone": "bl.farm.test", "listed": {listed: "127.0.0.2"}},
              # Spamhaus's "refused" answer, 127.255.255.254 (spelt so that the band check
              # does not take it for this script's address band).
              {"zone": "refused.farm.test", "answer_all": ".".join(["127", "255", "255", "254"])}]
json.dump(s, open(sys.argv[2], "w"), indent=1)
PY
}
farm_in_band 42 44 write_scenario
GOOD=127.$NET.200.11
LISTED=127.$NET.200.12
DNS=127.0.0.1:$DNS_PORT
"$MXFARM" truth "$SC" >"$WORK/truth.csv"
"$PY" - "$WORK/truth.csv" "$WORK/list.txt" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
open(sys.argv[2], "w").write("".join(r["email"] + "\n" for r in rows))
PY

doctor() {  # doctor ARGS...: sets RC, OUT (stdout), ERR (stderr)
  RC=0
  "$MXPROBE" doctor --backend "$BACKEND" --policy "$LAB_POLICY" "$@" >"$WORK/doctor.out" \
    2>"$WORK/doctor.err" || RC=$?
  OUT=$(cat "$WORK/doctor.out")
  ERR=$(cat "$WORK/doctor.err")
}
LISTS=(--dnsbl bl.farm.test --dnsbl refused.farm.test)

# Both addresses, a working target: one source usable, exit 0; the table says why for the other.
doctor --dns "$DNS" --source-ip "$GOOD,$LISTED" "${LISTS[@]}" --port25-target mx1.farm.test
expect_eq "$RC" 0 "doctor, one source listed: exit status ($ERR)"
expect_match "$OUT" "source $LISTED" "the table has a block for the listed source"
expect_match "$OUT" "listed on bl.farm.test \(127.0.0.2\)" "the listing, with its answer"
expect_match "$OUT" "out of rotation: listed on bl.farm.test" "the listed source is out of rotation"
expect_match "$OUT" "could not check +refused.farm.test refuses this resolver" \
  "the refused answer is 'could not check'"
expect_match "$OUT" "probe1.client.test \(forward-confirmed\)" "the PTR of $GOOD, confirmed"
expect_match "$OUT" "no PTR record for $LISTED" "the PTR of $LISTED, absent (NXDOMAIN, not 'could not check')"
expect_match "$OUT" "mx1.farm.test greeted: 220" "port 25 works against the farm's host"
"$PY" - "$WORK/doctor.out" <<'PY' || fail "the table is wider than 80 columns"
import sys
sys.exit(1 if any(len(l.rstrip("\n")) > 80 for l in open(sys.argv[1])) else 0)
PY
ok

# The same as JSON.
doctor --dns "$DNS" --source-ip "$GOOD,$LISTED" "${LISTS[@]}" --port25-target mx1.farm.test --json
expect_eq "$RC" 0 "doctor --json: exit status ($ERR)"
"$PY" - "$WORK/doctor.out" "$GOOD" "$LISTED" <<'PY' || fail "doctor --json differs from the farm"
import json, sys
r = json.load(open(sys.argv[1]))
good, listed = sys.argv[2], sys.argv[3]
src = {s["source"]: s for s in r["sources"]}
bad = []
def want(cond, what):
    if not cond: bad.append(what)
want(r["exit_code"] == 0, f"exit_code {r['exit_code']}")
g, l = src[good], src[listed]
want(g["ptr"] == "probe1.client.test" and g["fcrdns"] is True, f"good ptr {g['ptr']} {g['fcrdns']}")
want(g["helo"] == "probe1.client.test" and g["helo_fqdn"], f"good helo {g['helo']}")
want(g["dnsbl_listed"] == [] and g["dnsbl_unchecked"] == ["refused.farm.test"],
     f"good dnsbl {g['dnsbl_listed']} {g['dnsbl_unchecked']}")
want(g["port25"] == "ok" and g["in_rotation"], f"good port25 {g['port25']} {g['in_rotation']}")
want(l["ptr"] is None and l["fcrdns"] is False, f"listed ptr {l['ptr']}")
want(l["dnsbl_listed"] == ["bl.farm.test"], f"listed dnsbl {l['dnsbl_listed']}")
want(l["dnsbl"]["refused.farm.test"]["result"] == "refused", "refused result")
want(l["in_rotation"] is False, "listed in rotation")
want(any("bl.farm.test" in p for p in l["problems"]), f"listed problems {l['problems']}")
want([c["check"] for c in r["global"]] == ["resolver", "clock", "open files"], "global checks")
want(r["global"][0]["status"] == "ok", "resolver status")
for b in bad: print("MISMATCH", b)
sys.exit(1 if bad else 0)
PY
ok

# Only the listed address: no usable source, exit 1.
doctor --dns "$DNS" --source-ip "$LISTED" "${LISTS[@]}" --port25-target mx1.farm.test
expect_eq "$RC" 1 "doctor, the only source listed: exit status"
expect_match "$OUT" "FAIL: no usable source" "says there is no usable source"

# A closed port-25 target (nothing listens on probe1's address): refused, from every source.
doctor --dns "$DNS" --source-ip "$GOOD" --no-dnsbl --port25-target probe1.client.test \
  --port25-timeout 3
expect_eq "$RC" 1 "doctor, port 25 refused everywhere: exit status"
expect_match "$OUT" "port 25     FAIL +connections to port 25 are refused:" "the refused row"
expect_match "$OUT" "probe1.client.test refused" "the refused target, in words"
expect_match "$OUT" "FAIL: port 25 does not work from any source" "the verdict line"
# A target name the resolver does not know: could not check, not blocked; exit 0.
doctor --dns "$DNS" --source-ip "$GOOD" --no-dnsbl --port25-target nowhere.invalid
expect_eq "$RC" 0 "doctor, an unknown target: exit status ($OUT)"
expect_match "$OUT" "port 25 +could not check" "an unknown target is 'could not check'"

# A dead resolver (nothing listens there): exit 1, in the words of verify's own check.
DEAD=127.$NET.0.251:$DNS_PORT
doctor --dns "$DEAD" --timeout-dns 0.5 --source-ip "$GOOD" "${LISTS[@]}" \
  --port25-target mx1.farm.test
expect_eq "$RC" 1 "doctor, dead resolver: exit status"
expect_match "$OUT" "the resolver $DEAD does not answer" "the dead resolver, in words"
expect_no_match "$OUT" "FAIL +listed" "a dead resolver lists nothing"

# A usage error: exit 2.
doctor --dns "$DNS" --source-ip not-an-ip
expect_eq "$RC" 2 "doctor, a bad --source-ip: exit status"

# verify with both addresses: the listed one starts out of rotation, every record comes from
# the other, verdicts as the truth says.
RC=0
"$MXPROBE" verify --backend "$BACKEND" --policy "$LAB_POLICY" --no-cache --dns "$DNS" \
  --input "$WORK/list.txt" --output "$WORK/out.jsonl" --no-progress --no-catch-all \
  --helo probe.client.test --source-ip "$GOOD,$LISTED" "${LISTS[@]}" \
  --port25-target mx1.farm.test 2>"$WORK/verify.err" || RC=$?
err=$(cat "$WORK/verify.err")
expect_eq "$RC" 0 "verify with a listed source: exit status ($(tail -3 "$WORK/verify.err"))"
expect_match "$err" "doctor: $LISTED is out of rotation: listed on bl.farm.test" \
  "verify says the listed source is out of rotation"
"$PY" - "$WORK/truth.csv" "$WORK/out.jsonl" "$GOOD" <<'PY' || fail "verify: records differ"
import csv, json, sys
want = {r["email"]: (r["verdict"], r["reason"]) for r in csv.DictReader(open(sys.argv[1]))}
recs = [json.loads(l) for l in open(sys.argv[2])]
bad = [f"{r['email']}: {r['verdict']}/{r['reason']} want {want.get(r['email'])}"
       for r in recs if want.get(r["email"]) != (r["verdict"], r["reason"])]
bad += [f"{r['email']}: source_ip {r['source_ip']}" for r in recs if r["source_ip"] != sys.argv[3]]
if sorted(r["email"] for r in recs) != sorted(want):
    bad.append(f"{len(recs)} records for {len(want)} addresses")
for b in bad[:20]:
    print("MISMATCH", b)
sys.exit(1 if bad else 0)
PY
ok

# verify with only the listed address: nothing is verified, a clear message, exit 7.
RC=0
"$MXPROBE" verify --backend "$BACKEND" --policy "$LAB_POLICY" --no-cache --dns "$DNS" \
  --input "$WORK/list.txt" --output "$WORK/out2.jsonl" --no-progress --no-catch-all \
  --helo probe.client.test --source-ip "$LISTED" "${LISTS[@]}" \
  --port25-target mx1.farm.test 2>"$WORK/verify.err" || RC=$?
err=$(cat "$WORK/verify.err")
expect_eq "$RC" 7 "verify with every source listed: exit status"
expect_match "$err" "no source left in rotation" "verify says why it stopped"
n=$(cat "$WORK/out2.jsonl" 2>/dev/null | wc -l)
expect_eq "$n" 0 "verify with every source listed: records written"

# serve: the listed source is out of rotation from the start; GET /v1/doctor gives the report;
# ?refresh=1 needs X-Mxprobe: 1 and runs the checks again.
serve_start serve --backend "$BACKEND" --policy "$LAB_POLICY" --no-cache --data "$WORK/jobs" \
  --dns "$DNS" --source-ip "$GOOD,$LISTED" "${LISTS[@]}" --port25-target mx1.farm.test
err=$(cat "$WORK/serve.err")
expect_match "$err" "doctor: $LISTED is out of rotation: listed on bl.farm.test" \
  "serve says the listed source is out of rotation"
req GET /v1/doctor
expect_eq "$CODE" 200 "GET /v1/doctor"
printf '%s' "$BODY" >"$WORK/doctor.json"
"$PY" - "$GOOD" "$LISTED" "$WORK/doctor.json" <<'PY' || fail "GET /v1/doctor: report differs"
import json, sys
r = json.load(open(sys.argv[3]))
src = {s["source"]: s for s in r["sources"]}
ok = (src[sys.argv[1]]["in_rotation"] and not src[sys.argv[2]]["in_rotation"]
      and src[sys.argv[2]]["dnsbl_listed"] == ["bl.farm.test"] and r["exit_code"] == 0)
sys.exit(0 if ok else 1)
PY
ok
CODE=$(curl -s -o /dev/null -w '%{http_code}' "${URL}v1/doctor?refresh=1")
expect_eq "$CODE" 403 "GET /v1/doctor?refresh=1 without X-Mxprobe"
before=$("$PY" -c 'import json,sys; print(json.load(sys.stdin)["sources"][0]["checked_at_ms"])' \
  <<<"$BODY")
req GET "/v1/doctor?refresh=1" -H 'X-Mxprobe: 1'
expect_eq "$CODE" 200 "GET /v1/doctor?refresh=1"
after=$("$PY" -c 'import json,sys; print(json.load(sys.stdin)["sources"][0]["checked_at_ms"])' \
  <<<"$BODY")
[[ $after -ge $before ]] || fail "refresh: checked_at_ms went back ($before -> $after)"
ok
serve_stop
expect_eq "$SERVE_RC" 0 "serve exit status"

stop_farm
echo "PASS doctor $BACKEND ($CHECKS checks)"
