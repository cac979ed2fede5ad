#!/usr/bin/env bash
# `mxprobe bench-server` against mxfarm hosts with known latency and limits:
#  (a) every reply 50 ms late: the measured RCPT p50 (from the command) is 50 ms within -5/+20 ms
#      (the farm's timer cannot fire early; the upper margin is for a busy 2-core machine: this
#      checks the measurement, not the client's speed);
#  (b) a host serving 1,000 replies/s through one queue (200 sessions/s of 5 replies) with 20 ms
#      per reply: steps 50, 100, 400/s show the knee at 400 (achieved < 95%), 100 the last good;
#  (c) a host that stalls 1 s every 4 s, at 50 sessions/s for 5 s (a whole stall falls inside):
#      the open loop reports it in p99.9/max of the session (>= 900 ms) while p50 stays low;
#  (d) a host allowing 2 connections per client: the others' 421 greetings counted as 421, not
#      as connection failures; a closed port counted as refused (exit 1: nothing completed);
# plus --timeout-banner as a timeout, --max-sessions queueing without skipping (its wait counted),
# --source-ip in turn, --data to a loopback host with --warmup, the usage errors (exit 2),
# --compare and --chart.
# Usage: bench_server.sh [uring|uv]. Env MXFARM, MXPROBE. Bands: 127.252 (uring), 127.253 (uv).
MXPROBE=${MXPROBE:?MXPROBE must name the mxprobe binary}
BACKEND=${1:-auto}
source "$(dirname "$0")/../lib.sh"
skip_without_uring "$BACKEND"

write_scenario() {
  cat >"$SC" <<JSON
{"version": 1, "dns": {"ip": "127.0.0.1", "port": $DNS_PORT},
 "hosts": [
  {"name": "mx.slow.test", "ip": "127.$NET.0.10", "reply_delay_ms": 50},
  {"name": "mx.cap.test", "ip": "127.$NET.0.11", "reply_delay_ms": 20, "capacity_per_s": 1000},
  {"name": "mx.stall.test", "ip": "127.$NET.0.12", "stall_every_s": 4, "stall_ms": 1000},
  {"name": "mx.limit.test", "ip": "127.$NET.0.13", "max_conn_per_ip": 2, "reply_delay_ms": 100},
  {"name": "mx.closed.test", "ip": "127.$NET.0.14", "listen": false},
  {"name": "mx.tarpit.test", "ip": "127.$NET.0.15", "tarpit_byte_ms": 1000}],
 "domains": [
  {"name": "slow.test", "dns": "mx", "mx": [{"pref": 10, "host": "mx.slow.test"}],
   "catch_all": true, "mailboxes": {}}]}
JSON
}
if [[ $BACKEND == uv ]]; then
  farm_in_band 253 253 write_scenario
else
  farm_in_band 252 252 write_scenario
fi

# bench NAME WANT_RC ARGS...: the --json run in $WORK/NAME.json, stderr in $WORK/NAME.err;
# BANNER: the --timeout-banner (5 s).
bench() {
  local name=$1 want=$2 rc=0
  shift 2
  "$MXPROBE" bench-server --backend "$BACKEND" --helo bench.client.test --json \
    --timeout-connect 5 --timeout-banner "${BANNER:-5}" --timeout-command 5 "$@" \
    >"$WORK/$name.json" 2>"$WORK/$name.err" || rc=$?
  [[ $rc == "$want" ]] || fail "$name: exit $rc, want $want ($(cat "$WORK/$name.err"))"
}
get() { jq -r "$2" "$WORK/$1.json"; }
# within VALUE LO HI WHAT
within() {
  jq -en --argjson v "$1" --argjson lo "$2" --argjson hi "$3" '$v >= $lo and $v <= $hi' \
    >/dev/null || fail "$4: $1 not within [$2, $3]"
  ok
}

# (a) Known latency.
bench slow 0 "127.$NET.0.10" --domain slow.test --rate 20 --step-time 2
expect_eq "$(get slow .backend)" "$([[ $BACKEND == uv ]] && echo uv || echo uring)" "slow: backend"
expect_eq "$(get slow '.steps[0].sessions.started')" 40 "slow: 20/s for 2 s"
expect_eq "$(get slow '.steps[0].sessions.completed')" 40 "slow: all completed"
expect_eq "$(get slow '.steps[0].stages.rcpt.replies["2xx"]')" 40 "slow: catch-all RCPTs"
within "$(get slow '.steps[0].stages.rcpt.service_ms.p50')" 45 70 "slow: RCPT p50 ~ 50 ms"
within "$(get slow '.steps[0].stages.ehlo.service_ms.p50')" 45 70 "slow: EHLO p50 ~ 50 ms"
# From the intended start: greeting (no delay) + EHLO, MAIL, RCPT, QUIT (50 ms each).
within "$(get slow '.steps[0].stages.session.latency_ms.p50')" 195 280 "slow: session ~ 200 ms"
expect_eq "$(get slow .knee.found)" false "slow: no knee at 20/s"
expect_eq "$(get slow .histogram_relative_error)" 0.00390625 "slow: the stated bound"
expect_no_match "$(cat "$WORK/slow.err")" "step 1/1" "slow: no progress when stderr is a file"

# (b) The knee at a known rate.
bench cap 0 "127.$NET.0.11" --domain slow.test --rate 50,100,400 --step-time 2
expect_eq "$(get cap .knee.step)" 3 "cap: knee at the third step"
expect_eq "$(get cap .knee.rate)" 400 "cap: knee at 400/s"
expect_eq "$(get cap .knee.last_good_rate)" 100 "cap: 100/s the last good rate"
expect_match "$(get cap .knee.criterion)" "achieved < 95% of offered" "cap: the criterion"
within "$(get cap '.steps[2].achieved_sessions_per_s')" 150 250 "cap: about its 200/s at 400/s"
expect_eq "$(get cap '.steps[2].sessions.completed')" 800 "cap: every arrival served, late"

# (c) A stall: in the open loop's tail, not in its median.
bench stall 0 "127.$NET.0.12" --domain slow.test --rate 50 --step-time 5
within "$(get stall '.steps[0].stages.session.latency_ms["p99.9"]')" 900 3000 "stall: p99.9"
within "$(get stall '.steps[0].stages.session.latency_ms.max')" 900 3000 "stall: max"
within "$(get stall '.steps[0].stages.greeting.service_ms.max')" 900 3000 "stall: greeting max"
within "$(get stall '.steps[0].stages.session.latency_ms.p50')" 0 300 "stall: p50 stays low"

# (d) Refusals by class.
bench limit 0 "127.$NET.0.13" --domain slow.test --rate 50 --step-time 1
started=$(get limit '.steps[0].sessions.started')
refused421=$(get limit '.steps[0].stages.greeting.replies["421"]')
completed=$(get limit '.steps[0].sessions.completed')
expect_eq "$((refused421 + completed))" "$started" "limit: every session greeted or refused 421"
within "$refused421" 30 48 "limit: most greetings 421"
expect_eq "$(get limit '[.steps[0].connection_failures[]] | add')" 0 "limit: no connection failure"
expect_match "$(get limit .knee.criterion)" "errors > 1% of sessions" "limit: errors"
# ... and a server that fell over stops the ramp, saying so.
bench closed 1 "127.$NET.0.14" --domain slow.test --rate 20,40 --step-time 1
expect_eq "$(get closed '.steps[0].connection_failures.refused')" 20 "closed: refused"
expect_eq "$(get closed '.steps[0].sessions.completed')" 0 "closed: nothing completed"
expect_eq "$(get closed '.steps | length')" 1 "closed: stopped after the first step"
expect_eq "$(get closed '.parameters.rates | length')" 2 "closed: two steps asked for"
expect_match "$(get closed .stopped_early)" "fell over at 20 sessions/s" "closed: why it stopped"

# --timeout-banner honoured: a greeting sent one byte a second times out, as a timeout.
BANNER=0.5 bench tarpit 1 "127.$NET.0.15" --domain slow.test --rate 10 --step-time 1
expect_eq "$(get tarpit '.steps[0].connection_failures.timeout')" 10 "tarpit: 10 timeouts"

# --max-sessions 2 with 200 ms sessions (4 replies 50 ms late) at 40/s: nothing is skipped, and
# the last arrivals wait ~3 s for a slot, which their latency from the intended start shows.
bench queued 0 "127.$NET.0.10" --domain slow.test --rate 40 --step-time 1 --max-sessions 2
expect_eq "$(get queued '.steps[0].sessions.completed')" 40 "queued: every arrival served"
within "$(get queued '.steps[0].behind_schedule_ms.max')" 2000 60000 "queued: started late"
within "$(get queued '.steps[0].stages.session.latency_ms.max')" 2000 60000 "queued: wait counted"
within "$(get queued '.steps[0].stages.rcpt.service_ms.p50')" 45 70 "queued: RCPT still ~50 ms"

# Several --source-ip: sessions take them in turn (the farm counts connections per client).
bench sources 0 "127.$NET.0.10" --domain slow.test --rate 20 --step-time 1 \
  --source-ip "127.$NET.1.1,127.$NET.1.2"
expect_eq "$(get sources '.sources | join(",")')" "127.$NET.1.1,127.$NET.1.2" "sources: listed"
rm -f "$REPORT"
kill -USR1 "$FARM_PID"
wait_for 5 test -s "$REPORT" || fail "no farm report after SIGUSR1"
for ip in "127.$NET.1.1" "127.$NET.1.2"; do
  expect_eq "$(jq ".mx[\"mx.slow.test\"].clients[\"$ip\"].connections" "$REPORT")" 10 \
    "sources: 10 sessions from $ip"
done

# --data to a loopback host: DATA, the message, its 250; a warm-up first, not reported.
bench data 0 "127.$NET.0.10" --domain slow.test --rate 10 --step-time 1 --data --rcpts 2 \
  --message-size 3000 --mail-from bench@client.test --warmup 0.5 --progress
expect_match "$(cat "$WORK/data.err")" "^mxprobe bench-server: warm-up at 10 sessions/s" \
  "data: --progress announces the warm-up"
expect_match "$(cat "$WORK/data.err")" "^  achieved [0-9.]+/s, 0 failed, session p50" \
  "data: --progress reports the step"
expect_eq "$(get data '.steps[0].sessions.started')" 10 "data: the warm-up not reported"
expect_eq "$(get data '.steps[0].stages.data.replies["2xx"]')" 10 "data: 10 messages accepted"
expect_eq "$(get data '.steps[0].stages.rcpt.replies["2xx"]')" 20 "data: 2 RCPTs each"
expect_eq "$(get data .parameters.data)" true "data: in the parameters"

# Usage errors: nothing is started.
usage() {
  local rc=0 err
  err=$("$MXPROBE" bench-server --backend "$BACKEND" "$@" 2>&1 >/dev/null) || rc=$?
  [[ $rc == 2 ]] || fail "usage $*: exit $rc, want 2 ($err)"
  echo "$err"
}
expect_match "$(usage 192.0.2.25 --data --helo x.test)" "only to loopback or private" \
  "--data to a public address refused"
expect_match "$(usage "127.$NET.0.10" --rate 0)" "--rate '0'" "--rate 0"
expect_match "$(usage "127.$NET.0.10" --ramp 100:50:x2)" "--ramp" "a ramp going down"
expect_match "$(usage "127.$NET.0.10" --domain $'a.test\r\nRSET')" "not a domain" "CR/LF domain"
expect_match "$(usage "127.$NET.0.10" --helo $'a.test\r\nRSET')" "--helo" "CR/LF HELO"

# The text report, --compare and --chart.
"$MXPROBE" bench-server --backend "$BACKEND" --helo bench.client.test "127.$NET.0.10" \
  --domain slow.test --rate 20 --step-time 1 >"$WORK/text.out" 2>/dev/null
expect_match "$(cat "$WORK/text.out")" "^  rcpt +20 +0 +0 +0 " "text: the RCPT row"
expect_eq "$(awk 'length > 80' "$WORK/text.out")" "" "text: within 80 columns"
"$MXPROBE" bench-server --compare "$WORK/slow.json" "$WORK/stall.json" \
  --chart "$WORK/cmp.svg" >"$WORK/cmp.out" 2>"$WORK/cmp.err" || fail "compare: $(cat "$WORK/cmp.err")"
expect_match "$(cat "$WORK/cmp.out")" "session p99.9 ms" "compare: percentiles side by side"
expect_match "$(head -c 2000 "$WORK/cmp.svg")" "<svg" "compare: the chart"
rc=0
"$MXPROBE" bench-server --compare "$WORK/slow.json" "$SC" 2>"$WORK/bad.err" || rc=$?
expect_eq "$rc" 2 "compare: not a run"
expect_match "$(cat "$WORK/bad.err")" "not the --json output" "compare: why"

echo "bench_server ($BACKEND): $CHECKS checks passed"
