#!/usr/bin/env bash
# `mxprobe serve` with real clients: curl for every endpoint and error path, a WebSocket client
# (python3-websockets) for snapshots and commands, a token-protected instance, and the refusal
# to listen beyond loopback without a token. Env MXFARM, MXPROBE. Range 127.11-19.0.0/16.
MXPROBE=${MXPROBE:?MXPROBE must name the mxprobe binary}
source "$(dirname "$0")/../lib.sh"
LAB_POLICY=$ROOT/tools/policy/lab.toml
HERE_SERVE=$(cd "$(dirname "$0")" && pwd)

SC=$WORK/sc.json
launch 11 19 --domains 2 --hosts 1 --mx-per-domain 1 --mailboxes 5 --catch-all-share 0 \
  --special slow
"$MXFARM" truth "$WORK/sc.json" >"$WORK/truth.csv"
OK_ADDR=$(awk -F, '$2=="deliverable" && $1 ~ /@d1\./ {print $1; exit}' "$WORK/truth.csv")
BAD_ADDR=$(awk -F, '$3=="mailbox_not_found" && $1 ~ /@d1\./ {print $1; exit}' "$WORK/truth.csv")
SLOW_ADDR=$(awk -F, '$1 ~ /@slow\./ && $2=="deliverable" {print $1; exit}' "$WORK/truth.csv")
# Verified for the first time over the WebSocket (nothing in memory yet): its dialogue is live.
WS_ADDR=$(awk -F, '$2=="deliverable" && $1 ~ /@d2\./ {print $1; exit}' "$WORK/truth.csv")
[[ -n $OK_ADDR && -n $BAD_ADDR && -n $SLOW_ADDR && -n $WS_ADDR ]] || fail "truth lacks the addresses we need"

# serve NAME ARGS...: mxprobe serve on an ephemeral port, --data $WORK/data-NAME; sets URL.
serve() {
  local name=$1
  shift
  serve_start "$name" --policy "$LAB_POLICY" --dns "127.0.0.1:$DNS_PORT" --no-cache \
    --helo serve.client.test --data "$WORK/data-$name" "$@"
}
jq_eq() {  # jq_eq FILTER WANT WHAT
  local got
  got=$(jq -r "$1" <<<"$BODY") || fail "$3: not JSON: $BODY"
  expect_eq "$got" "$2" "$3"
}

serve open

req GET /healthz
expect_eq "$CODE" 200 "healthz"
jq_eq .status ok "healthz body"

# Real-time verification, GET and POST, and their errors.
req GET "/v1/verify?email=$OK_ADDR"
expect_eq "$CODE" 200 "verify GET"
jq_eq .verdict deliverable "verify GET verdict"
jq_eq '.smtp.code' 250 "verify GET smtp code"
jq_eq '.transcript' null "no transcript unless asked"
req POST /v1/verify -H 'Content-Type: application/json' -d "{\"email\":\"$BAD_ADDR\",\"transcript\":true}"
expect_eq "$CODE" 200 "verify POST"
jq_eq .reason mailbox_not_found "verify POST reason"
expect_match "$(jq -r .transcript <<<"$BODY")" "RCPT TO:<$BAD_ADDR>" "transcript when asked"
req GET "/v1/verify?email=no-at-sign"
jq_eq .reason invalid_syntax "syntax error is a record"
req GET /v1/verify
expect_eq "$CODE" 400 "missing email"
jq_eq .error bad_request "missing email error"
req GET "/v1/verify?email=$OK_ADDR&timeout=abc"
expect_eq "$CODE" 400 "bad timeout"
req POST /v1/verify -d 'not json'
expect_eq "$CODE" 400 "bad JSON body"
req GET /nope
expect_eq "$CODE" 404 "unknown path"
req DELETE /v1/verify
expect_eq "$CODE" 405 "wrong method"
req POST /v1/verify --data-binary @<(head -c 17000000 /dev/zero | tr '\0' x)
expect_eq "$CODE" 413 "body too large"
req POST /v1/verify -d "{\"email\":\"$OK_ADDR\",\"transcript\":\"yes\"}"
expect_eq "$CODE" 400 "wrong JSON types are a 400, not a crash"
req GET /healthz -H "X-Big: $(head -c 20000 /dev/zero | tr '\0' y)"
expect_eq "$CODE" 431 "headers too large"

# Timeout: the slow domain answers after ~1 s; with timeout=0.2 the record says so at once,
# the work goes on, and asking again later gets the result (from memory: "cached").
req GET "/v1/verify?email=$SLOW_ADDR&timeout=0.2"
expect_eq "$CODE" 200 "timed-out verify"
jq_eq .reason timeout "timed-out reason"
jq_eq .pending true "timed-out record says pending"
for _ in $(seq 100); do
  req GET "/v1/verify?email=$SLOW_ADDR&timeout=0.2"
  [[ $(jq -r .pending <<<"$BODY") != true ]] && break
  sleep 0.1
done
jq_eq .verdict deliverable "a retry gets the result"
req GET "/v1/verify?email=$SLOW_ADDR&timeout=0.2"
jq_eq .verdict deliverable "a later retry too"
jq_eq .cached true "a later retry is answered from the cache"

# Policy: read, change live (validated), refuse a bad one.
req GET /v1/policy
expect_eq "$CODE" 200 "policy GET"
jq_eq '.effective.defaults.group.per_mx.sessions' 50 "lab policy in force"
req PUT /v1/policy --data-binary $'[defaults]\nper_mx.sessions = 7\n'
expect_eq "$CODE" 200 "policy PUT"
jq_eq '.effective.defaults.group.per_mx.sessions' 7 "policy PUT applied"
req PUT /v1/policy --data-binary $'[defaults]\nper_mx.sessions = -1\n'
expect_eq "$CODE" 400 "bad policy refused"
expect_match "$(jq -r .message <<<"$BODY")" "per_mx.sessions" "bad policy names the key"
req GET /v1/policy
jq_eq '.effective.defaults.group.per_mx.sessions' 7 "bad policy changed nothing"

# WebSocket: snapshots, check, live group policy, errors.
WS_URL="ws://${URL#http://}ws"
"$PY" "$HERE_SERVE/ws_client.py" "$WS_URL" - mx1.farm.test "$WS_ADDR" "$BAD_ADDR" ||
  fail "WebSocket checks"
ok
req GET /v1/policy
jq_eq '.live_groups["mx1.farm.test"]["per_mx.connect_rate"]' 3 "group change by WebSocket"
jq_eq '.effective.providers[] | select(.match == ["mx1.farm.test"]) | .group.per_mx.sessions' 2 \
  "group change in the effective policy"

# Bulk jobs: upload, progress, pause/resume, results as JSON Lines and CSV, cancel, errors.
"$PY" - "$WORK/truth.csv" "$WORK/job.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
with open(sys.argv[2], "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["ref", "email"])
    for i, r in enumerate(rows * 20):  # duplicates on purpose: verified once each
        w.writerow([f"r{i}", r["email"]])
PY
req POST "/v1/jobs?format=csv" --data-binary @"$WORK/job.csv"
expect_eq "$CODE" 201 "job created"
JOB=$(jq -r .id <<<"$BODY")
jq_eq .state running "new job runs"
req POST "/v1/jobs/$JOB/pause"
expect_eq "$CODE" 200 "pause"
jq_eq .state paused "paused"
req GET "/v1/jobs/$JOB"
jq_eq .state paused "still paused"
req POST "/v1/jobs/$JOB/resume"
jq_eq .state running "resumed"
for _ in $(seq 300); do
  req GET "/v1/jobs/$JOB"
  [[ $(jq -r .state <<<"$BODY") == finished ]] && break
  sleep 0.1
done
jq_eq .state finished "job finished"
ROWS=$(($(wc -l <"$WORK/job.csv") - 1))
jq_eq .done "$ROWS" "every row done"
jq_eq .records "$ROWS" "records counted"
req GET /v1/jobs
jq_eq ".jobs | map(.id) | index($JOB) != null" true "job listed"
curl -sS "${URL}v1/jobs/$JOB/results" >"$WORK/job.jsonl"
curl -sS "${URL}v1/jobs/$JOB/results?format=csv" >"$WORK/job.out.csv"
check_job() {
  "$PY" - "$WORK/truth.csv" "$WORK/job.csv" "$WORK/job.jsonl" "$WORK/job.out.csv"
}
check_job <<'PY' || fail "job results"
import csv, json, sys
truth = {r["email"]: (r["verdict"], r["reason"]) for r in csv.DictReader(open(sys.argv[1]))}
inp = list(csv.reader(open(sys.argv[2], newline="")))
recs = [json.loads(l) for l in open(sys.argv[3])]
assert [r["line"] for r in recs] == list(range(2, len(inp) + 1)), "line order, each once"
for r in recs:
    assert (r["verdict"], r["reason"]) == truth[r["email"]], r
out = list(csv.reader(open(sys.argv[4], newline="")))
assert out[0][:3] == ["ref", "email", "line"] and "mxprobe_email" in out[0], out[0][:5]
assert [row[:2] for row in out[1:]] == inp[1:], "the user's columns first, as they were"
PY
ok
req POST "/v1/jobs/$JOB/cancel"
expect_eq "$CODE" 409 "a finished job cannot be cancelled"
req POST /v1/jobs --data-binary @"$WORK/job.csv"
JOB2=$(jq -r .id <<<"$BODY")
req POST "/v1/jobs/$JOB2/cancel"
expect_eq "$CODE" 200 "cancel"
for _ in $(seq 300); do
  req GET "/v1/jobs/$JOB2"
  [[ $(jq -r .eta_s <<<"$BODY") == null ]] && break
  sleep 0.1
done
jq_eq .state cancelled "cancelled"
req GET /v1/jobs/999
expect_eq "$CODE" 404 "no such job"
req POST /v1/jobs/999/pause
expect_eq "$CODE" 404 "no such job to pause"
req POST "/v1/jobs/$JOB/fly"
expect_eq "$CODE" 404 "no such job action"
req POST /v1/jobs
expect_eq "$CODE" 400 "empty upload"
req POST "/v1/jobs?column=nope" --data-binary @"$WORK/job.csv"
JOB3=$(jq -r .id <<<"$BODY")
for _ in $(seq 100); do
  req GET "/v1/jobs/$JOB3"
  [[ $(jq -r .state <<<"$BODY") == failed ]] && break
  sleep 0.1
done
jq_eq .state failed "a job whose column is missing fails"
expect_match "$(jq -r .error <<<"$BODY")" "nope" "and says which column"

# A large plain upload is streamed to disk as it arrives, never held whole in memory: 72 MB
# (2 million addresses); the server's peak resident memory grows by far less than that.
python3 - "$WORK/big.txt" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    f.writelines(f"someone{i:07d}@nxdomain-upload.test\n" for i in range(2_000_000))
PY
hwm() { awk '$1 == "VmHWM:" {print $2}' "/proc/${SERVE_PIDS[0]}/status"; }
hwm0=$(hwm)
req POST /v1/jobs --data-binary @"$WORK/big.txt"
expect_eq "$CODE" 201 "a 72 MB plain list is taken"
JOB4=$(jq -r .id <<<"$BODY")
jq_eq .input_bytes "$(stat -c %s "$WORK/big.txt")" "all of it, on disk"
req POST "/v1/jobs/$JOB4/cancel"
expect_eq "$CODE" 200 "the big job cancelled"
hwm1=$(hwm)
echo "upload: 72 MB list, peak RSS ${hwm0} -> ${hwm1} KiB"
limit=${MXP_UPLOAD_RSS_LIMIT_KIB:-16384}  # 0: a sanitizer build, where RSS means nothing
if ((limit > 0)); then
  expect_eq "$(((hwm1 - hwm0) < limit))" 1 "peak RSS grew by less than $limit KiB during a 72 MB upload"
fi
rm -f "$WORK/big.txt"

# Metrics.
req GET /metrics
expect_eq "$CODE" 200 "metrics"
expect_match "$BODY" '^mxprobe_verifications_total\{verdict="deliverable",reason="accepted"\} [1-9]' "verdict counter"
expect_match "$BODY" '^mxprobe_smtp_stage_seconds_bucket\{stage="rcpt_to",le="\+Inf"\} [1-9]' "stage histogram"
expect_match "$BODY" '^# TYPE mxprobe_smtp_active_sessions gauge' "gauge type"
CT=$(curl -sS -o /dev/null -w '%{content_type}' "${URL}metrics")
expect_match "$CT" '^text/plain; version=0.0.4' "metrics content type"

# Cross-site requests (no token, loopback): a page elsewhere cannot create or cancel jobs, use
# the WebSocket, or read answers through DNS rebinding; curl with the header can.
printf 'email\n%s\n' "$OK_ADDR" >"$WORK/xs.csv"
xs() { curl -sS -o /dev/null -w '%{http_code}' "$@"; }
expect_eq "$(xs -X POST -H 'Content-Type: text/plain' --data-binary @"$WORK/xs.csv" "${URL}v1/jobs?format=csv")" 403 "text/plain job upload without X-Mxprobe"
expect_eq "$(xs -X POST --data-binary @"$WORK/xs.csv" "${URL}v1/jobs?format=csv")" 403 "form-type job upload without X-Mxprobe"
expect_eq "$(xs -X POST "${URL}v1/jobs/$JOB/cancel")" 403 "cancel without X-Mxprobe"
expect_eq "$(xs -X POST -H 'X-Mxprobe: 1' -H 'Origin: http://evil.example' "${URL}v1/jobs/$JOB/cancel")" 403 "cancel from another origin"
expect_eq "$(xs -H 'Host: evil.example' "${URL}v1/jobs")" 421 "DNS-rebound Host"
expect_eq "$(xs -H "Host: localhost:${URL##*:}" "${URL}v1/jobs")" 200 "localhost Host"
expect_eq "$(xs -H "Origin: ${URL%/}" "${URL}v1/jobs")" 200 "same origin"
expect_eq "$(xs -H 'Upgrade: websocket' -H 'Connection: Upgrade' -H 'Sec-WebSocket-Version: 13' \
  -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' -H 'Origin: http://evil.example' "${URL}ws")" 403 "WebSocket from another origin"
req POST /v1/verify -H 'Content-Type: application/json' -d "{\"email\":\"$OK_ADDR\"}"
expect_eq "$CODE" 200 "JSON body with its type is a write a page cannot send unasked"
ok

# Security: beyond loopback only with a token; with one, everything but /healthz needs it.
rc=0
"$MXPROBE" serve --listen 0.0.0.0:0 --dns "127.0.0.1:$DNS_PORT" 2>"$WORK/open.err" || rc=$?
expect_eq "$rc" 2 "non-loopback listen without a token refused"
expect_match "$(cat "$WORK/open.err")" "token" "refusal says why"
echo "s3cret-token" >"$WORK/token"
serve locked --token-file "$WORK/token"
req GET /healthz
expect_eq "$CODE" 200 "healthz needs no token"
req GET "/v1/verify?email=$OK_ADDR"
expect_eq "$CODE" 401 "no token"
HDRS=$(curl -sS -D - -o /dev/null "${URL}v1/policy")
expect_match "$HDRS" "^WWW-Authenticate: Bearer" "401 says Bearer"
expect_no_match "$HDRS" "^Access-Control-" "no CORS headers"
req GET "/v1/verify?email=$OK_ADDR" -H "Authorization: Bearer wrong"
expect_eq "$CODE" 401 "wrong token"
req GET "/v1/verify?email=$OK_ADDR" -H "Authorization: Bearer s3cret-token"
expect_eq "$CODE" 200 "right token"
expect_eq "$(curl -sS -o /dev/null -w '%{http_code}' -X POST -H 'Authorization: Bearer s3cret-token' \
  "${URL}v1/jobs/1/pause")" 404 "a write with the token needs no X-Mxprobe"
"$PY" "$HERE_SERVE/ws_client.py" "ws://${URL#http://}ws" s3cret-token mx1.farm.test "$WS_ADDR" \
  "$BAD_ADDR" || fail "WebSocket checks with a token"
ok

# A clean stop.
kill -TERM "${SERVE_PIDS[0]}"
wait "${SERVE_PIDS[0]}" || fail "serve did not exit 0 on SIGTERM"
ok
echo "PASS: $CHECKS checks"
