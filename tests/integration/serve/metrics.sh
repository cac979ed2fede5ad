#!/usr/bin/env bash
# `mxprobe serve`'s /metrics and the job endpoints that feed it, against mxfarm with a results
# cache: every metric name carries its unit (or is a documented exception) and is listed in
# docs/api.md; known label sets are there at 0 from the start; process_* and build_info; every
# record a job answers is counted, those from the cache too (mxprobe_result_cache_hits_total);
# jobs by state; job names; DELETE of an ended job (409 while it runs); the WebSocket replays
# recent events to a new client. Env MXFARM, MXPROBE. Range 127.35-39.0.0/16.
MXPROBE=${MXPROBE:?MXPROBE must name the mxprobe binary}
source "$(dirname "$0")/../lib.sh"
LAB_POLICY=$ROOT/tools/policy/lab.toml

launch 35 39 --domains 3 --hosts 1 --mx-per-domain 1 --mailboxes 20 --catch-all-share 0 \
  --special slow
"$MXFARM" truth "$SC" >"$WORK/truth.csv"

start_serve() {  # start_serve: mxprobe serve on an ephemeral port, the cache and --data kept
  serve_start serve --policy "$LAB_POLICY" --dns "127.0.0.1:$DNS_PORT" --cache "$WORK/cache.db" \
    --helo metrics.client.test --data "$WORK/data"
}
start_serve

metric() {  # metric 'NAME{LABELS}': its value in $M (0 when absent is an error)
  local v
  v=$(awk -v k="$1" '$1 == k {print $2}' <<<"$M")
  [[ -n $v ]] || fail "no series $1 in /metrics"
  echo "$v"
}
scrape() {
  M=$(curl -sS "${URL}metrics") || fail "GET /metrics"
}
sum_verifications() {
  awk '/^mxprobe_verifications_total\{/ {s += $2} END {print s + 0}' <<<"$M"
}
wait_state() {  # wait_state JOB STATE...: polls GET /v1/jobs/JOB until one of the states
  local i st
  for i in $(seq 600); do
    req GET "/v1/jobs/$1"
    st=$(jq -r .state <<<"$BODY")
    for want in "${@:2}"; do [[ $st == "$want" ]] && return 0; done
    sleep 0.1
  done
  fail "job $1 never reached ${*:2} (last: $st)"
}

# --- A fresh server --------------------------------------------------------------------------
scrape
# Every metric name ends in a unit: a counter NAME_UNIT_total, anything else NAME_UNIT; the
# exceptions are documented in docs/api.md (`_info`, `_up`).
units='seconds|bytes|fds|addresses|sessions|groups|clients|jobs|verifications|hits|lookups|queries|requests|retries|failovers|backoffs|blocks|failures|checks'
names=$(awk '/^# TYPE / {print $3 " " $4}' <<<"$M")
[[ $(wc -l <<<"$names") -ge 25 ]] || fail "too few metrics: $names"
while read -r name type; do
  base=$name
  [[ $type == counter ]] && { [[ $base == *_total ]] || fail "counter $name without _total"; base=${base%_total}; }
  if [[ $base =~ _(${units})$ || $base =~ _info$ || $base =~ _up$ ]]; then
    ok
  else
    fail "metric $name ($type) has no unit suffix and is no documented exception"
  fi
  grep -q "\`$name" "$ROOT/docs/api.md" || fail "metric $name is not in docs/api.md"
  ok
done <<<"$names"
# Label sets known in advance are there at 0 before anything happened.
for pair in deliverable:accepted undeliverable:invalid_syntax undeliverable:mailbox_not_found \
  undeliverable:no_such_domain risky:catch_all risky:mailbox_full unknown:blocked \
  unknown:greylisted unknown:timeout unknown:tls_required unknown:sender_refused unknown:denied \
  unknown:not_allowed; do
  expect_eq "$(metric "mxprobe_verifications_total{verdict=\"${pair%%:*}\",reason=\"${pair#*:}\"}")" 0 \
    "verifications $pair at 0 from the start"
done
expect_eq "$(grep -c '^mxprobe_verifications_total{' <<<"$M")" 23 "one series per reason"
for st in running paused finished cancelled failed; do
  expect_eq "$(metric "mxprobe_jobs{state=\"$st\"}")" 0 "jobs $st at 0"
done
expect_eq "$(metric mxprobe_result_cache_hits_total)" 0 "no cache hits yet"
expect_eq "$(metric 'mxprobe_smtp_stage_seconds_count{stage="rcpt_to"}')" 0 "rcpt_to histogram at 0"
expect_match "$M" '^mxprobe_build_info\{version="[0-9]+\.[0-9]+\.[0-9]+",compiler="[^"]+"\} 1$' "build info"
expect_match "$M" '^mxprobe_smtp_active_sessions 0$' "active sessions gauge"
expect_match "$M" '^mxprobe_scheduler_waiting_addresses 0$' "waiting addresses gauge"
expect_match "$M" '^mxprobe_pending_addresses 0$' "pending addresses gauge"
rss=$(metric process_resident_memory_bytes)
expect_eq "$((${rss%.*} > 1000000))" 1 "process RSS in bytes ($rss)"
fds=$(metric process_open_fds)
expect_eq "$((fds > 3 && fds < $(metric process_max_fds)))" 1 "open fds ($fds)"
start=$(metric process_start_time_seconds)
now=$(date +%s)
expect_eq "$((${start%.*} <= now && ${start%.*} > now - 600))" 1 "start time ($start, now $now)"
expect_match "$M" '^process_cpu_seconds_total [0-9.e+-]+$' "CPU seconds"

# --- Every record of a job is counted, those answered from the cache too ------------------------
awk -F, 'NR > 1 && $1 ~ /@d[0-9]+\.test$/ {print $1}' "$WORK/truth.csv" >"$WORK/list.txt"
n_unique=$(wc -l <"$WORK/list.txt")
((n_unique >= 40)) || fail "truth has $n_unique addresses"
# A repeat and a syntax error on top: each line is a record.
{ cat "$WORK/list.txt"; head -3 "$WORK/list.txt"; echo "not-an-address"; } >"$WORK/job.txt"
n_lines=$(wc -l <"$WORK/job.txt")
req POST "/v1/jobs?format=jsonl&name=first%20list" -H 'Content-Type: application/octet-stream' \
  --data-binary @"$WORK/job.txt"
expect_eq "$CODE" 201 "job 1 created"
JOB1=$(jq -r .id <<<"$BODY")
expect_eq "$(jq -r .name <<<"$BODY")" "first list" "the job's name"
wait_state "$JOB1" finished
scrape
expect_eq "$(sum_verifications)" "$n_lines" "every record of job 1 counted (repeats, syntax error)"
expect_eq "$(metric 'mxprobe_verifications_total{verdict="undeliverable",reason="invalid_syntax"}')" 1 \
  "the syntax error counted"
expect_eq "$(metric 'mxprobe_jobs{state="finished"}')" 1 "one finished job"
# The same list again: answered from the results cache, and counted.
req POST "/v1/jobs?format=jsonl&name=again" -H 'Content-Type: application/octet-stream' \
  --data-binary @"$WORK/job.txt"
expect_eq "$CODE" 201 "job 2 created"
JOB2=$(jq -r .id <<<"$BODY")
wait_state "$JOB2" finished
scrape
expect_eq "$(sum_verifications)" "$((2 * n_lines))" "every record of job 2 counted, cached ones too"
hits=$(metric mxprobe_result_cache_hits_total)
expect_eq "$((hits >= n_unique * 9 / 10))" 1 "cache hits counted ($hits of $n_unique addresses)"
# Real time from the cache: counted as a record and a hit.
one=$(head -1 "$WORK/list.txt")
req GET "/v1/verify?email=$one"
expect_eq "$(jq -r .cached <<<"$BODY")" true "real-time answer from the cache"
scrape
expect_eq "$(sum_verifications)" "$((2 * n_lines + 1))" "the real-time cache answer counted"
expect_eq "$(metric mxprobe_result_cache_hits_total)" "$((hits + 1))" "and its cache hit"
req GET /v1/jobs
expect_eq "$(jq -r "[.jobs[] | select(.id == $JOB2)][0].name" <<<"$BODY")" again "names in GET /v1/jobs"

# --- Names are checked -----------------------------------------------------------------------
req POST "/v1/jobs?name=bad%01name" -H 'Content-Type: application/octet-stream' --data-binary 'a@b.test'
expect_eq "$CODE" 400 "a name with a control character refused"
req POST "/v1/jobs?name=$(head -c 201 /dev/zero | tr '\0' n)" -H 'Content-Type: application/octet-stream' \
  --data-binary 'a@b.test'
expect_eq "$CODE" 400 "a name over 200 bytes refused"

# --- DELETE: refused while the job can still run, then its files go ---------------------------
awk -F, 'NR > 1 && $1 ~ /@slow\.test$/ {print $1}' "$WORK/truth.csv" | head -20 >"$WORK/slow.txt"
req POST "/v1/jobs?name=slow" -H 'Content-Type: application/octet-stream' --data-binary @"$WORK/slow.txt"
expect_eq "$CODE" 201 "job 3 created"
JOB3=$(jq -r .id <<<"$BODY")
req POST "/v1/jobs/$JOB3/pause"
expect_eq "$CODE" 200 "job 3 paused"
req DELETE "/v1/jobs/$JOB3"
expect_eq "$CODE" 409 "a paused job is not deleted"
expect_match "$(jq -r .message <<<"$BODY")" "cancel it first" "409 says what to do"
[[ -d $WORK/data/$JOB3 ]] || fail "the paused job's files are kept"
req POST "/v1/jobs/$JOB3/cancel"
wait_state "$JOB3" cancelled
scrape
expect_eq "$(metric 'mxprobe_jobs{state="cancelled"}')" 1 "one cancelled job"
for _ in $(seq 100); do  # a cancelled job ends once its sessions are done
  req DELETE "/v1/jobs/$JOB3"
  [[ $CODE != 409 ]] && break
  sleep 0.1
done
expect_eq "$CODE" 200 "an ended job deleted"
expect_eq "$(jq -r .state <<<"$BODY")" deleted "the answer says deleted"
[[ ! -e $WORK/data/$JOB3 ]] || fail "job 3's files still there"
ok
req GET "/v1/jobs/$JOB3"
expect_eq "$CODE" 404 "a deleted job is gone"
req DELETE "/v1/jobs/$JOB3"
expect_eq "$CODE" 404 "deleting it again: 404"
req DELETE "/v1/jobs/$JOB1"
expect_eq "$CODE" 200 "a finished job deleted"
scrape
expect_eq "$(metric 'mxprobe_jobs{state="cancelled"}')" 0 "no cancelled job left"
expect_eq "$(metric 'mxprobe_jobs{state="finished"}')" 1 "one finished job left"

# --- A WebSocket client that connects now sees the recent events first -----------------------
"$PY" - "ws://${URL#http://}ws" "$JOB2" "$JOB3" <<'EOF' || fail "event history on connect"
import asyncio, json, sys
import websockets
url, job2, job3 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
async def main():
    async with websockets.connect(url, subprotocols=["mxprobe.v1"]) as ws:
        seen = []
        while True:
            m = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if m["type"] == "snapshot":
                break
            if m["type"] == "event":
                assert m.get("history") is True, m
                assert isinstance(m.get("time_ms"), int), m
                seen.append((m["event"], m.get("job")))
    for want in [("job_started", job2), ("job_done", job2), ("job_deleted", job3)]:
        assert want in seen, (want, seen)
    print(f"history on connect: {len(seen)} events")
asyncio.run(main())
EOF
ok

serve_stop TERM
((SERVE_RC == 0)) || fail "serve did not exit 0 on SIGTERM (rc $SERVE_RC)"
ok

# --- Names outlive the server -----------------------------------------------------------------
start_serve
req GET "/v1/jobs/$JOB2"
expect_eq "$(jq -r .name <<<"$BODY")" again "the name kept across a restart"
scrape
expect_eq "$(metric 'mxprobe_jobs{state="finished"}')" 1 "the restored finished job counted by state"
serve_stop TERM
((SERVE_RC == 0)) || fail "serve did not exit 0 on SIGTERM (rc $SERVE_RC)"
ok
echo "PASS: $CHECKS checks"
