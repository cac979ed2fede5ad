#!/usr/bin/env bash
# Jobs outlive `mxprobe serve`: a server killed with SIGKILL while one job runs, one is paused
# and one has finished is started again on the same --data. The finished job is listed with its
# counts and results, the paused one stays paused until resumed, the running one goes on where
# its journal stopped; in the end every input line has exactly one record, with the farm's
# verdict, and new jobs get new ids. Env MXFARM, MXPROBE. Range 127.21-29.0.0/16 (its own band,
# see pick_net in tests/integration/lib.sh).
MXPROBE=${MXPROBE:?MXPROBE must name the mxprobe binary}
source "$(dirname "$0")/../lib.sh"

SC=$WORK/sc.json
launch 21 29 --domains 4 --hosts 2 --mailboxes 300 --catch-all-share 0 --special none
"$MXFARM" truth "$WORK/sc.json" --count 1200 >"$WORK/truth.csv"
tail -n +2 "$WORK/truth.csv" | cut -d, -f1 >"$WORK/big.txt"
head -n 40 "$WORK/big.txt" >"$WORK/small.txt"
{ echo "ref;mail"; awk '{print "r" NR ";" $0}' "$WORK/small.txt"; } >"$WORK/small.csv"
# Slow on purpose (RCPTs rationed per MX host): the big job takes several seconds, so the kill
# lands in its middle whatever the machine's speed.
cat >"$WORK/policy.toml" <<'EOF'
[global]
max_sessions = 20
builtin_providers = false
[defaults]
per_mx = { sessions = 2, connect_rate = 0, rcpt_rate = 60, rcpt_burst = 5 }
per_source = { sessions = 4, connect_rate = 0, rcpt_rate = 0 }
per_domain = { sessions = 2, connect_rate = 0, rcpt_rate = 0 }
EOF

serve() {  # serve NAME: on an ephemeral port, --data $WORK/data; sets URL
  serve_start "$1" --policy "$WORK/policy.toml" --dns "127.0.0.1:$DNS_PORT" --no-cache \
    --helo restart.client.test --data "$WORK/data"
}
job() { curl -sS "${URL}v1/jobs/$1"; }
field() { job "$1" | jq -r "$2"; }
wait_state() {  # wait_state ID STATE: within 60 s
  for _ in $(seq 600); do
    [[ $(field "$1" .state) == "$2" ]] && return 0
    sleep 0.1
  done
  fail "job $1 never $2: $(job "$1")"
}

serve first
J1=$(curl -sS -H 'X-Mxprobe: 1' --data-binary @"$WORK/small.txt" "${URL}v1/jobs" | jq -r .id)
wait_state "$J1" finished
COUNTS1=$(field "$J1" .counts)
J2=$(curl -sS -H 'X-Mxprobe: 1' --data-binary @"$WORK/big.txt" "${URL}v1/jobs" | jq -r .id)
# A CSV with its own column name and delimiter: the restart must keep reading it that way.
J3=$(curl -sS -H 'X-Mxprobe: 1' --data-binary @"$WORK/small.csv" "${URL}v1/jobs?column=mail&format=csv" | jq -r .id)
expect_eq "$(curl -sS -H 'X-Mxprobe: 1' -X POST "${URL}v1/jobs/$J3/pause" | jq -r .state)" paused "job 3 paused"
# Kill once the big job is well under way (some records journalled, most not).
for _ in $(seq 600); do
  d=$(field "$J2" .done)
  ((d >= 150)) && break
  sleep 0.05
done
DONE_AT_KILL=$(field "$J2" .done)
serve_stop KILL
((DONE_AT_KILL >= 150 && DONE_AT_KILL < 1200)) || fail "big job at the kill: $DONE_AT_KILL of 1200"
echo "killed with job $J2 at $DONE_AT_KILL of 1200"

serve second
expect_match "$(cat "$WORK/second.err")" "job $J2 restored: running" "the log says what was restored"
LIST=$(curl -sS "${URL}v1/jobs")
expect_eq "$(jq -r '[.jobs[].id] | join(",")' <<<"$LIST")" "$J1,$J2,$J3" "every job listed again"
expect_eq "$(field "$J1" .state)" finished "the finished job stays finished"
expect_eq "$(field "$J1" .counts)" "$COUNTS1" "with its counts"
expect_eq "$(curl -sS "${URL}v1/jobs/$J1/results" | wc -l)" 40 "and its results"
expect_eq "$(field "$J3" .state)" paused "the paused job stays paused"
wait_state "$J2" finished
expect_eq "$(field "$J2" .done)" 1200 "the big job finished after the restart"
expect_eq "$(curl -sS -H 'X-Mxprobe: 1' -X POST "${URL}v1/jobs/$J3/resume" | jq -r .state)" running "job 3 resumed"
wait_state "$J3" finished

# Every line of the big job once, with the farm's verdict.
curl -sS "${URL}v1/jobs/$J2/results" >"$WORK/r2.jsonl"
"$PY" - "$WORK/truth.csv" "$WORK/r2.jsonl" <<'PY' || fail "results of the resumed job"
import csv, json, sys
truth = {r["email"]: (r["verdict"], r["reason"]) for r in csv.DictReader(open(sys.argv[1]))}
recs = [json.loads(l) for l in open(sys.argv[2])]
lines = sorted(r["line"] for r in recs)
assert lines == list(range(1, 1201)), f"{len(lines)} records, lines not 1..1200 once each"
wrong = [r["email"] for r in recs if truth[r["email"]] != (r["verdict"], r["reason"])]
assert not wrong, f"{len(wrong)} verdicts differ from the truth, e.g. {wrong[:3]}"
PY
ok
expect_eq "$(curl -sS "${URL}v1/jobs/$J3/results?format=jsonl" | wc -l)" 40 "the resumed paused job's results"
expect_match "$(curl -sS "${URL}v1/jobs/$J3/results?format=csv" | head -1)" '^ref;mail;' \
  "its CSV keeps the user's columns and delimiter"
J4=$(curl -sS -H 'X-Mxprobe: 1' --data-binary @"$WORK/small.txt" "${URL}v1/jobs" | jq -r .id)
expect_eq "$J4" $((J3 + 1)) "a new job gets a new id"
echo "serve restart: $CHECKS checks passed (killed at $DONE_AT_KILL of 1200)"
