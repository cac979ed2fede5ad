#!/usr/bin/env bash
# The jobs of `mxprobe serve` from the outside: what an ended job keeps (no input file open, no
# per-job buffers: 150 small jobs leave fds and RSS where they were), a failed job stays failed
# across a restart, a paused job restored after a restart shows its progress, a multipart upload
# is refused with 415 (never read as addresses), and /v1/verify answered from the results cache
# says line 1 (not the line of the job that filled the cache). Env MXFARM, MXPROBE,
# MXP_JOBS_RSS_LIMIT_KIB (0: skip the RSS bound, as sanitizer builds do). Range 127.75-79.0.0/16.
MXPROBE=${MXPROBE:?MXPROBE must name the mxprobe binary}
RSS_LIMIT_KIB=${MXP_JOBS_RSS_LIMIT_KIB:-65536}
source "$(dirname "$0")/../lib.sh"

launch 75 79 --domains 2 --hosts 1 --mailboxes 50 --catch-all-share 0 --special none
"$MXFARM" truth "$SC" --count 100 >"$WORK/truth.csv"
tail -n +2 "$WORK/truth.csv" | cut -d, -f1 >"$WORK/all.txt"

# Slow on purpose (RCPTs rationed per MX host): a 100-line job is paused in its middle.
cat >"$WORK/policy.toml" <<'TOML'
[global]
max_sessions = 4
builtin_providers = false
[defaults]
per_mx = { sessions = 1, connect_rate = 0, rcpt_rate = 120, rcpt_burst = 5 }
per_source = { sessions = 4, connect_rate = 0, rcpt_rate = 0 }
per_domain = { sessions = 1, connect_rate = 0, rcpt_rate = 0 }
TOML

serve() {  # serve NAME: on an ephemeral port, --data $WORK/data; sets URL
  serve_start "$1" --dns "127.0.0.1:$DNS_PORT" --cache "$WORK/cache.db" \
    --policy "$WORK/policy.toml" --helo jobs.client.test --data "$WORK/data"
}
job() { curl -sS "${URL}v1/jobs/$1"; }
field() { job "$1" | jq -r "$2"; }
wait_ended() {  # wait_ended ID: within 60 s, any end state
  local s
  for _ in $(seq 600); do
    s=$(field "$1" .state)
    [[ $s == finished || $s == failed || $s == cancelled ]] && return 0
    sleep 0.1
  done
  fail "job $1 never ended: $(job "$1")"
}
fds() { ls "/proc/$SERVE_PID/fd" | wc -l; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$SERVE_PID/status"; }

serve first

# --- An ended job keeps neither its input open nor its buffers ---
# One-line jobs whose line is no address: they end without any network traffic.
printf 'not-an-address\n' >"$WORK/one.txt"
warm=$(curl -sS -H 'X-Mxprobe: 1' --data-binary @"$WORK/one.txt" "${URL}v1/jobs" | jq -r .id)
wait_ended "$warm"
fd0=$(fds)
rss0=$(rss_kib)
last=""
for i in $(seq 150); do  # jq only on the last answer: each jq costs ~60 ms, 150 of them 10 s
  last=$(curl -sS -H 'X-Mxprobe: 1' --data-binary @"$WORK/one.txt" "${URL}v1/jobs")
done
last=$(jq -r .id <<<"$last")
wait_ended "$last"
# Released on the server's next tick (every 250 ms): wait for the fd count to come back.
for _ in $(seq 100); do (($(fds) <= fd0 + 10)) && break; sleep 0.1; done
fd1=$(fds)
rss1=$(rss_kib)
echo "150 ended jobs: fds $fd0 -> $fd1, RSS $rss0 -> $rss1 KiB"
((fd1 <= fd0 + 10)) || fail "150 ended jobs hold $((fd1 - fd0)) more fds ($fd0 -> $fd1)"
ok
if ((RSS_LIMIT_KIB > 0)); then
  ((rss1 - rss0 <= RSS_LIMIT_KIB)) || fail "150 ended jobs grew RSS by $((rss1 - rss0)) KiB (limit $RSS_LIMIT_KIB)"
  ok
fi
expect_eq "$(field "$last" .counts.undeliverable)" 1 "an ended job keeps its counts"
expect_eq "$(curl -sS "${URL}v1/jobs/$last/results" | jq -r .error)" no_at \
  "an ended job keeps its results"

# --- A multipart upload is refused, never read as a list ---
code=$(curl -sS -H 'X-Mxprobe: 1' -o "$WORK/mp.json" -w '%{http_code}' -F "file=@$WORK/all.txt" "${URL}v1/jobs")
expect_eq "$code" 415 "multipart/form-data upload"
expect_match "$(cat "$WORK/mp.json")" "data-binary" "the 415 says how to send the list"
njobs=$(curl -sS "${URL}v1/jobs" | jq '.jobs | length')
expect_eq "$njobs" 151 "no job made of a refused upload"

# --- /v1/verify from the cache says line 1 ---
head -n 5 "$WORK/all.txt" >"$WORK/five.txt"
J=$(curl -sS -H 'X-Mxprobe: 1' --data-binary @"$WORK/five.txt" "${URL}v1/jobs" | jq -r .id)
wait_ended "$J"
fifth=$(sed -n 5p "$WORK/five.txt")
rec=$(curl -sS "${URL}v1/verify?email=$fifth")
expect_eq "$(jq -r .cached <<<"$rec")" true "/v1/verify of a job's address comes from the cache"
expect_eq "$(jq -r .line <<<"$rec")" 1 "/v1/verify from the cache: line"

# --- A failed job stays failed; a paused job shows its progress after a restart ---
FJ=$(curl -sS -H 'X-Mxprobe: 1' --data-binary @"$WORK/all.txt" "${URL}v1/jobs?column=foo" | jq -r .id)
wait_ended "$FJ"
expect_eq "$(field "$FJ" .state)" failed "a job with a missing column fails"
ferr=$(field "$FJ" .error)
expect_match "$ferr" "foo" "the failure names the column"
PJ=$(curl -sS -H 'X-Mxprobe: 1' --data-binary @"$WORK/all.txt" "${URL}v1/jobs" | jq -r .id)
for _ in $(seq 600); do (($(field "$PJ" .done) >= 10)) && break; sleep 0.05; done
expect_eq "$(curl -sS -H 'X-Mxprobe: 1' -X POST "${URL}v1/jobs/$PJ/pause" | jq -r .state)" paused "job paused"
# Its last sessions finish and are journalled: nothing in flight, everything saved.
settled() { [[ $(field "$PJ" '"\(.in_flight) \(.saved)"') == "0 true" ]]; }
wait_for 30 settled || true
expect_eq "$(field "$PJ" '"\(.in_flight) \(.saved)"')" "0 true" "a paused job settles"
pdone=$(field "$PJ" .done)
pprog=$(field "$PJ" .progress)
((pdone >= 10 && pdone < 100)) || fail "paused job: $pdone done"
serve_stop KILL
serve second
expect_eq "$(field "$FJ" .state)" failed "a failed job after a restart"
expect_eq "$(field "$FJ" .error)" "$ferr" "a failed job keeps its error after a restart"
expect_eq "$(field "$FJ" .done)" 0 "a failed job did nothing after the restart"
expect_eq "$(field "$last" .state)" finished "an ended job after a restart"
expect_eq "$(field "$PJ" .state)" paused "a paused job after a restart"
expect_eq "$(field "$PJ" .done)" "$pdone" "a paused job's records after a restart"
prog=$(field "$PJ" .progress)
echo "paused job: $pdone done, progress $pprog before the restart, $prog after"
awk -v p="$prog" -v d="$pdone" 'BEGIN { exit !(p >= d / 100 - 0.02 && p < 1) }' ||
  fail "paused job after a restart: progress $prog with $pdone of 100 done"
ok
expect_eq "$(field "$PJ" .records)" 100 "a paused job's input size after a restart"
expect_eq "$(curl -sS -H 'X-Mxprobe: 1' -X POST "${URL}v1/jobs/$PJ/resume" | jq -r .state)" running "job resumed"
wait_ended "$PJ"
expect_eq "$(field "$PJ" .done)" 100 "the resumed job's records"
expect_eq "$(curl -sS "${URL}v1/jobs/$PJ/results" | jq -r .line | sort -n | uniq | wc -l)" 100 \
  "every line once"

echo "ok: $CHECKS checks"
