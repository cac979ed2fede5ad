#!/usr/bin/env bash
# A DNS resolver that does not answer is not the domains' fault. Against a UDP port where nothing
# listens, and against a socket that reads and never answers: `verify` says so in one line and
# exits 5 without writing any dns_error record, and `--resume` with a working resolver then
# verifies every address to mxfarm's truth; `check` answers unknown/dns_error with the stage and
# cause in `error` and the real elapsed time.
# Usage: dead_resolver.sh uring|uv   (env MXFARM, MXPROBE). Range 127.225-229.0.0/16.
source "$(dirname "$0")/../lib.sh"
LAB_POLICY=$ROOT/tools/policy/lab.toml
MXPROBE=${MXPROBE:?MXPROBE must name the mxprobe binary}
BACKEND=${1:?backend}
skip_without_uring "$BACKEND"

SC=$WORK/scenario.json
REPORT=$WORK/report.json
launch 225 229 --domains 8 --hosts 2 --mailboxes 3 --special none --catch-all-share 0 \
  --greylist-share 0
"$MXFARM" truth "$SC" >"$WORK/truth.csv"
"$PY" - "$WORK/truth.csv" "$WORK/list.txt" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
open(sys.argv[2], "w").write("".join(r["email"] + "\n" for r in rows))
PY
FIRST=$(head -1 "$WORK/list.txt")

# A socket that reads every query and never answers; it prints its port when bound.
SILENT_PID=""
stop_silent() {
  if [[ -n $SILENT_PID ]]; then
    kill "$SILENT_PID" 2>/dev/null || true
    wait "$SILENT_PID" 2>/dev/null || true
  fi
  SILENT_PID=""
}
trap 'stop_silent; cleanup' EXIT
mkfifo "$WORK/silent.fifo"
"$PY" -u - "127.$NET.0.252" >"$WORK/silent.fifo" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 0))
print(s.getsockname()[1], flush=True)
while True:
    s.recvfrom(4096)
PY
SILENT_PID=$!
read -r -t 10 SILENT_PORT <"$WORK/silent.fifo" || fail "the silent resolver did not start"

run_verify() {  # run_verify DNS OUT [more options]: sets RC
  RC=0
  "$MXPROBE" verify --backend "$BACKEND" --policy "$LAB_POLICY" --no-cache --dns "$1" \
    --input "$WORK/list.txt" --output "$2" --no-progress --timeout-dns 0.5 --no-catch-all \
    --helo probe.client.test "${@:3}" 2>"$WORK/mxprobe.err" || RC=$?
}

# Nothing listens on 127.NET.0.251:DNS_PORT (ICMP port unreachable); the silent socket times out.
for dead in "127.$NET.0.251:$DNS_PORT" "127.$NET.0.252:$SILENT_PORT"; do
  out=$WORK/out-${dead//[:.]/_}.jsonl
  run_verify "$dead" "$out"
  err=$(cat "$WORK/mxprobe.err")
  expect_eq "$RC" 5 "verify against $dead: exit status ($(tail -2 "$WORK/mxprobe.err"))"
  expect_match "$err" "DNS resolver $dead does not answer" "verify against $dead: the one clear line"
  expect_match "$err" "--resume" "verify against $dead: says how to finish"
  n=$(grep -c '"dns_error"' "$out" || true)
  expect_eq "$n" 0 "verify against $dead: dns_error records written"
  # The same job, resumed against the farm's resolver: every address, as the truth says.
  run_verify "127.0.0.1:$DNS_PORT" "$out" --resume
  expect_eq "$RC" 0 "resume after $dead: exit status ($(tail -2 "$WORK/mxprobe.err"))"
  "$PY" - "$WORK/truth.csv" "$out" <<'PY' || fail "resume after $dead: results differ from the truth"
import csv, json, sys
want = {r["email"]: (r["verdict"], r["reason"]) for r in csv.DictReader(open(sys.argv[1]))}
recs = [json.loads(l) for l in open(sys.argv[2])]
bad = [f"{r['email']}: {r['verdict']}/{r['reason']} want {want.get(r['email'])}"
       for r in recs if want.get(r["email"]) != (r["verdict"], r["reason"])]
if sorted(r["email"] for r in recs) != sorted(want):
    bad.append(f"{len(recs)} records for {len(want)} addresses")
for b in bad[:20]:
    print("MISMATCH", b)
sys.exit(1 if bad else 0)
PY
  ok
done

# check: the answer comes with what failed and how long it took.
for dead in "127.$NET.0.251:$DNS_PORT" "127.$NET.0.252:$SILENT_PORT"; do
  RC=0
  rec=$("$MXPROBE" check --backend "$BACKEND" --json --dns "$dead" --timeout-dns 0.5 "$FIRST" \
    2>"$WORK/check.err") || RC=$?
  expect_eq "$RC" 0 "check against $dead: exit status"
  "$PY" - "$rec" "$dead" "$FIRST" <<'PY' || fail "check against $dead: $rec"
import json, sys
r = json.loads(sys.argv[1])
dead, email = sys.argv[2], sys.argv[3]
dom = email.split("@")[1]
assert (r["verdict"], r["reason"]) == ("unknown", "dns_error"), r
assert r["error"] == f"dns: {dead} does not answer (MX lookup of {dom})", r["error"]
# Nothing listening answers at once; the silent one takes the two 0.5 s tries.
assert r["elapsed_ms"] > 0, r["elapsed_ms"]
if ".0.252:" in dead:
    assert r["elapsed_ms"] >= 900, r["elapsed_ms"]
PY
  ok
done
# serve: a real-time check waiting when the resolver is found silent gets unknown/dns_error with
# the cause then (not "still_verifying" at its 30 s timeout); the next one is answered at once.
serve_start serve --backend "$BACKEND" --policy "$LAB_POLICY" --no-cache \
  --dns "127.$NET.0.252:$SILENT_PORT" --timeout-dns 0.5 --helo probe.client.test --data "$WORK/data"
for n in 1 2; do
  t0=$(date +%s%N)
  rec=$(curl -sS -m 40 "${URL}v1/verify?email=$FIRST&timeout=30") || fail "serve: /v1/verify $n"
  ms=$((($(date +%s%N) - t0) / 1000000))
  "$PY" - "$rec" "127.$NET.0.252:$SILENT_PORT" "$ms" "$n" <<'PY' || fail "serve: check $n: $rec"
import json, sys
r, dead, ms, n = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
assert (r["verdict"], r["reason"]) == ("unknown", "dns_error"), r
assert r["error"].startswith(f"dns: {dead} does not answer ("), r["error"]
assert "pending" not in r, r
# The first waits for the lookup's two 0.5 s tries and the check of the root; the second is
# answered from what is known. Neither waits for the 30 s timeout.
assert ms < (10000 if n == "1" else 2000), ms
PY
  ok
done
serve_stop TERM
expect_match "$(cat "$WORK/serve.err")" "does not answer" "serve: the one line on stderr"
stop_silent
stop_farm
echo "PASS dead_resolver $BACKEND ($CHECKS checks)"
