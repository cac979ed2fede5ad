#!/usr/bin/env bash
# Out of file descriptors is ours, not the servers': with `ulimit -n 64` and -c 500, mxprobe
# sizes its concurrency to the limit at start and says so, a socket that still fails for lack of
# descriptors lowers it again and puts its addresses back, and no address ends
# connection_failed (nor any other verdict than mxfarm's truth); exit 0.
# Usage: fd_limit.sh uring|uv   (env MXFARM, MXPROBE). Range 127.230-234.0.0/16.
source "$(dirname "$0")/../lib.sh"
LAB_POLICY=$ROOT/tools/policy/lab.toml
MXPROBE=${MXPROBE:?MXPROBE must name the mxprobe binary}
BACKEND=${1:?backend}
skip_without_uring "$BACKEND"

SC=$WORK/scenario.json
REPORT=$WORK/report.json
launch 230 234 --domains 60 --hosts 6 --mailboxes 6 --special none --catch-all-share 0 \
  --greylist-share 0
"$MXFARM" truth "$SC" --timeout-ms 5000 >"$WORK/truth.csv"
"$PY" - "$WORK/truth.csv" "$WORK/list.txt" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
open(sys.argv[2], "w").write("".join(r["email"] + "\n" for r in rows))
PY

# One recipient per session and up to 8 sessions per domain: far more sessions wanted at once
# than 64 descriptors allow.
rc=0
(ulimit -n 64 && exec "$MXPROBE" verify --backend "$BACKEND" --policy "$LAB_POLICY" --no-cache \
  --dns "127.0.0.1:$DNS_PORT" --input "$WORK/list.txt" --output "$WORK/out.jsonl" --no-progress \
  --timeout-connect 5 --timeout-banner 5 --timeout-command 5 -c 500 --domain-concurrency 8 \
  --rcpts-per-session 1 --no-catch-all --helo probe.client.test) 2>"$WORK/mxprobe.err" || rc=$?
stop_farm
err=$(cat "$WORK/mxprobe.err")
expect_eq "$rc" 0 "mxprobe verify exit status ($(tail -3 "$WORK/mxprobe.err"))"
expect_match "$err" "open-file limit \(ulimit -n\) is 64 .*concurrency lowered from 500 to [0-9]+" \
  "the start says concurrency was sized to the open-file limit"
# A socket that still fails for lack of descriptors lowers concurrency again (logged); it is never
# a server's connect failure (no "back-off: ... (connect_failed" for an MX group).
expect_no_match "$err" "connect_failed|connection_failed" "no local socket failure blamed on a server"
"$PY" - "$WORK/truth.csv" "$WORK/out.jsonl" <<'PY' || fail "results differ from the truth"
import csv, json, sys
want = {r["email"]: (r["verdict"], r["reason"]) for r in csv.DictReader(open(sys.argv[1]))}
recs = [json.loads(l) for l in open(sys.argv[2])]
bad = [f"{r['email']}: {r['verdict']}/{r['reason']} want {want.get(r['email'])}"
       for r in recs if want.get(r["email"]) != (r["verdict"], r["reason"])]
bad += [f"{r['email']}: connection_failed" for r in recs if r["reason"] == "connection_failed"]
if sorted(r["email"] for r in recs) != sorted(want):
    bad.append(f"{len(recs)} records for {len(want)} addresses")
for b in bad[:20]:
    print("MISMATCH", b)
print(f"{len(recs)} records, {len(bad)} mismatches")
sys.exit(1 if bad else 0)
PY
ok
echo "PASS fd_limit $BACKEND ($CHECKS checks)"
