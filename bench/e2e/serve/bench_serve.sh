#!/usr/bin/env bash
# `mxprobe serve` benchmarks: (1) GET /v1/verify driven by wrk (Debian's wrk 4, LuaJIT script
# verify.lua) at a fixed rate, a new existing address per request on a fast mxfarm with a warm
# DNS cache: wrk's latency p50/p99 next to the farm's own reply time as mxprobe saw it (the
# record's "elapsed_ms", connect to verdict), the difference being what the server adds;
# (2) GET /metrics scraped during a 100,000-address bulk job (POST /v1/jobs); (3) GET /v1/verify
# of addresses a results cache holds (a fresh server on the cache file). Prints a Markdown
# table and writes it to $BENCH_OUT/bench-serve.md (default: the current directory). Exits 1
# only when a run is wrong (non-200 answers, cached answers, a repeated address, a job that did
# not move), not when a target is missed: the targets are printed with the numbers.
#
# Usage: bench_serve.sh MXPROBE MXFARM   (env: RATE=1000 DURATION=30 CONNS=20 SCRAPES=200
#                                           SCRAPE_MS=0 JOB=100000 RT=1
#                                           CACHED=10000)
# Server on CPU 1; wrk, mxfarm and the scraper on CPU 0. Range 127.44.0.0/16, DNS port 15444.
# RT=1 (default, when allowed): server, farm and wrk run SCHED_FIFO (chrt -f 10) during part 1,
# so that other processes on these CPUs (a shared build machine) cannot preempt them: their
# time slices otherwise land in the server's tail latency as bursts of several milliseconds.
# Part 2 runs with the normal policy (the job keeps a CPU busy: a real-time hog there would
# starve everything else).
set -euo pipefail
MXPROBE=${1:?usage: bench_serve.sh MXPROBE MXFARM}
MXFARM=${2:?usage: bench_serve.sh MXPROBE MXFARM}
RATE=${RATE:-1000}
DURATION=${DURATION:-30}
CONNS=${CONNS:-20}
SCRAPES=${SCRAPES:-200}
SCRAPE_MS=${SCRAPE_MS:-0}
JOB=${JOB:-100000}
CACHED=${CACHED:-10000}
RT=${RT:-1}
OUT=${BENCH_OUT:-$PWD}/bench-serve.md
HERE=$(cd "$(dirname "$0")" && pwd)
LAB_POLICY=$(cd "$HERE/../../.." && pwd)/tools/policy/lab.toml
BASE=127.44.0.0
DNS_PORT=15444
# 200 domains x 500 mailboxes: 100,000 distinct addresses, enough for the job and for wrk
# (RATE x DURATION must stay below DOMAINS x MAILBOXES: an address is never asked twice).
DOMAINS=200
MAILBOXES=500
PY=/usr/bin/python3
[[ -x $PY ]] || PY=python3
WORK=$(mktemp -d /tmp/mxp-serve-bench.XXXXXX)
FAILED=0

# Every process started here is recorded and stopped by pid on any exit.
PIDS=()
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM  # so that the EXIT trap runs
fail() {
  echo "FAIL: $*" >&2
  exit 1
}
status_kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 | wc -l; }
# farm_counters: "RCPTs connections" from a fresh farm report (SIGUSR1 writes it).
farm_counters() {
  rm -f "$WORK/report.json"
  kill -USR1 "$FARM_PID"
  local i
  for ((i = 0; i < 200; i++)); do
    [[ -s $WORK/report.json ]] && break
    sleep 0.01
  done
  jq -r '"\(.total.commands.RCPT // 0) \(.total.connections)"' "$WORK/report.json"
}
# listen_url: reads the server's stderr (fd 4) up to its "listening on" line; sets URL.
listen_url() {
  while read -r -t 10 line <&4; do
    [[ $line =~ listening\ on\ (http://[0-9.]+:[0-9]+/) ]] && { URL=${BASH_REMATCH[1]}; return 0; }
  done
  return 1
}
metric() {  # metric NAME: the value of an unlabelled series from a /metrics scrape
  curl -sS "${URL}metrics" | awk -v n="$1" '$1 == n {print $2}'
}

echo "== mxprobe serve benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
CPU_MODEL=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
echo "   $(nproc) CPUs ($CPU_MODEL), kernel $(uname -r)," \
  "load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
echo "   $("$MXPROBE" --version 2>/dev/null | head -1), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-3)"
rt=()
if ((RT)) && chrt -f 10 true 2>/dev/null; then rt=(chrt -f 10); else RT=0; fi
((RATE * DURATION * 11 / 10 < DOMAINS * MAILBOXES)) ||
  fail "RATE x DURATION too close to the $((DOMAINS * MAILBOXES)) distinct addresses"

# The farm: 2 MX hosts, every domain on both, no catch-all, no special domain: each RCPT is
# answered at once. TTL one hour: the DNS answers stay cached for the whole run.
"$MXFARM" gen --domains $DOMAINS --hosts 2 --mailboxes $MAILBOXES --catch-all-share 0 \
  --special none --ttl 3600 --base-ip $BASE --dns-port $DNS_PORT >"$WORK/sc.json"
mkfifo "$WORK/farm.fifo"
"${rt[@]}" taskset -c 0 "$MXFARM" run "$WORK/sc.json" --report "$WORK/report.json" \
  >"$WORK/farm.fifo" 2>"$WORK/farm.err" &
FARM_PID=$!
PIDS+=("$FARM_PID")
exec 3<"$WORK/farm.fifo"
read -r -t 10 line <&3 || fail "mxfarm did not start: $(cat "$WORK/farm.err")"
exec 3<&-
[[ $line == ready\ * ]] || fail "mxfarm: '$line'"

# The server, on an ephemeral port; the URL is on its first stderr line.
mkfifo "$WORK/serve.fifo"
"${rt[@]}" taskset -c 1 "$MXPROBE" serve --listen 127.0.0.1:0 --policy "$LAB_POLICY" --no-cache \
  --data "$WORK/data" --dns 127.0.0.1:$DNS_PORT --helo bench.client.test 2>"$WORK/serve.fifo" &
SERVE_PID=$!
PIDS+=("$SERVE_PID")
exec 4<"$WORK/serve.fifo"
# Start-up check warnings (doctor's short form) may come before the "listening on" line.
listen_url || fail "mxprobe serve did not start: $line"
cat <&4 >"$WORK/serve.err" &
PIDS+=($!)
exec 4<&-
echo "   serve at $URL (CPU 1), farm $BASE/16 with DNS on 127.0.0.1:$DNS_PORT (CPU 0)"

# ---------------------------------------------------------------------------------------------
# 1. GET /v1/verify at RATE requests/s. Warm-up: one address per domain (nobody1@dN, never asked
# again), which fills the DNS cache (MX and host addresses) for every domain.
echo
echo "== 1. GET /v1/verify, ${RATE}/s for ${DURATION}s, a new address each (wrk on CPU 0)," \
  "$( ((RT)) && echo "SCHED_FIFO" || echo "normal scheduling")"
warm=()
for ((d = 1; d <= DOMAINS; d++)); do warm+=("${URL}v1/verify?email=nobody1@d$d.test"); done
curl -sS -w '\n' "${warm[@]}" >"$WORK/warm.jsonl"
bad=$(jq -r 'select(.reason != "mailbox_not_found") | .email' "$WORK/warm.jsonl" | wc -l)
n=$(wc -l <"$WORK/warm.jsonl")
((n == DOMAINS && bad == 0)) || fail "warm-up: $n answers, $bad not mailbox_not_found"
dns0=$(metric mxprobe_dns_lookups_total)
hits0=$(metric mxprobe_dns_cache_hits_total)
queries0=$(metric mxprobe_dns_queries_total)
read -r rcpt0 conn0 < <(farm_counters)
echo "   warm-up: $DOMAINS addresses (nobody1@dN), $conn0 connections and $rcpt0 RCPTs at the" \
  "farm (catch-all probes included)"
rss0=$(status_kib "$SERVE_PID" VmRSS)
fd0=$(fds "$SERVE_PID")
preempt0=$(status_kib "$SERVE_PID" nonvoluntary_ctxt_switches)

# One wrk thread is plenty at 1,000/s; CONNS connections so that a slow answer never holds back
# the next slot. --timeout 11s: the server itself answers "pending" after 10 s.
"${rt[@]}" taskset -c 0 wrk -t1 -c"$CONNS" -d"${DURATION}s" --timeout 11s --latency \
  -s "$HERE/verify.lua" "$URL" -- $DOMAINS $MAILBOXES "$RATE" 1 >"$WORK/wrk.out" 2>&1 || {
  rc=$?
  cat "$WORK/wrk.out" >&2
  fail "wrk exited $rc"
}
sed -n '/^Running/,/^Transfer/p' "$WORK/wrk.out" | sed 's/^/   /'
result=$(grep '^RESULT ' "$WORK/wrk.out") || fail "no RESULT line from verify.lua"
declare -A R
for kv in ${result#RESULT }; do R[${kv%%=*}]=${kv#*=}; done

dns1=$(metric mxprobe_dns_lookups_total)
hits1=$(metric mxprobe_dns_cache_hits_total)
queries1=$(metric mxprobe_dns_queries_total)
read -r rcpt1 conn1 < <(farm_counters)
rss1=$(status_kib "$SERVE_PID" VmRSS)
fd1=$(fds "$SERVE_PID")
preempt1=$(status_kib "$SERVE_PID" nonvoluntary_ctxt_switches)
echo "   verdicts: ${R[verdicts]}"
echo "   server DNS during the run: $((dns1 - dns0)) lookups, $((hits1 - hits0)) from the cache," \
  "$((queries1 - queries0)) queries sent (after the warm-up: $dns0 lookups, $queries0 queries)"
echo "   farm during the run: $((conn1 - conn0)) connections, $((rcpt1 - rcpt0)) RCPTs for" \
  "${R[responses]} answers"
echo "   server: RSS ${rss0} -> ${rss1} KiB, open fds ${fd0} -> ${fd1}, preempted" \
  "$((preempt1 - preempt0)) times (other processes on its CPU: they show in the tail)"
((R[non200] == 0)) || { echo "   FAIL: ${R[non200]} non-200 answers" >&2; FAILED=1; }
((R[cached] == 0)) || { echo "   FAIL: ${R[cached]} answers from memory (cached)" >&2; FAILED=1; }
((R[exhausted] == 0)) || { echo "   FAIL: ${R[exhausted]} addresses asked twice" >&2; FAILED=1; }
((R[pending] == 0 && R[no_elapsed] == 0 && R[unmatched] == 0)) || {
  echo "   FAIL: ${R[pending]} pending, ${R[no_elapsed]} without elapsed_ms," \
    "${R[unmatched]} unmatched answers" >&2
  FAILED=1
}
((R[sock_errors] == 0)) || { echo "   FAIL: ${R[sock_errors]} wrk socket errors" >&2; FAILED=1; }
((R[samples] > 0)) || fail "no answer with elapsed_ms"

# ---------------------------------------------------------------------------------------------
# 2. GET /metrics during a bulk job of JOB addresses (the farm's own list, round-robin over the
# domains). A keep-alive connection, scrapes back to back (or one every SCRAPE_MS ms); the job's
# "done" before and after, and every 10 scrapes whether its input has been read yet (scrapes are
# split by that too: the server reads the whole input in the job's first second or so).
echo
echo "== 2. GET /metrics x $SCRAPES during a $JOB-address job, normal scheduling"
if ((RT)); then
  chrt -o -a -p 0 "$SERVE_PID" >/dev/null
  chrt -o -a -p 0 "$FARM_PID" >/dev/null
fi
# Gzipped: the plain list (about 1.7 MB for 100,000) is over the server's 1 MiB body limit.
"$MXFARM" truth "$WORK/sc.json" --count "$JOB" | tail -n +2 | cut -d, -f1 | gzip >"$WORK/job.gz"
curl -sS -o "$WORK/job.json" -w '%{http_code}' -H 'X-Mxprobe: 1' --data-binary @"$WORK/job.gz" \
  "${URL}v1/jobs" >"$WORK/job.code"
[[ $(cat "$WORK/job.code") == 201 ]] ||
  fail "POST /v1/jobs: $(cat "$WORK/job.code") $(cat "$WORK/job.json")"
JOB_ID=$(jq -r .id "$WORK/job.json")
scrape=$(taskset -c 0 "$PY" - "$URL" "$JOB_ID" "$SCRAPES" "$SCRAPE_MS" <<'PY'
import http.client, json, sys, time, urllib.parse
url, job, n = urllib.parse.urlsplit(sys.argv[1]), sys.argv[2], int(sys.argv[3])
every = float(sys.argv[4]) / 1000
c = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
def get(path):
    t0 = time.perf_counter()
    c.request("GET", path)
    r = c.getresponse()
    body = r.read()
    return r.status, body, (time.perf_counter() - t0) * 1000
def progress():
    s, b, _ = get(f"/v1/jobs/{job}")
    j = json.loads(b)
    return time.perf_counter(), j["done"], j["state"], j["records"] is not None
t_a, done_a, _, read = progress()
ms, by_phase, bad, size = [], ([], []), 0, 0
for i in range(n):
    if i and i % 10 == 0:  # the job's state every 10 scrapes: is its input read yet?
        _, _, _, read = progress()
    s, b, t = get("/metrics")
    ms.append(t)
    by_phase[read].append(t)
    size = len(b)
    if s != 200 or b"mxprobe_verifications_total" not in b:
        bad += 1
    if every:
        time.sleep(max(0.0, every - t / 1000))
t_b, done_b, state, _ = progress()
def pct(v, q):
    v = sorted(v)
    return v[max(0, -(-len(v) * q // 100) - 1)] if v else float("nan")
print(f"p50={pct(ms, 50):.3f} p99={pct(ms, 99):.3f} max={max(ms):.3f} bad={bad} bytes={size} "
      f"done_a={done_a} done_b={done_b} state={state} secs={t_b - t_a:.2f} "
      f"rate={(done_b - done_a) / (t_b - t_a):.0f} "
      f"n_reading={len(by_phase[0])} reading_p50={pct(by_phase[0], 50):.3f} "
      f"reading_max={max(by_phase[0], default=float('nan')):.3f} "
      f"n_read={len(by_phase[1])} read_p50={pct(by_phase[1], 50):.3f} "
      f"read_p99={pct(by_phase[1], 99):.3f} read_max={max(by_phase[1], default=float('nan')):.3f}")
PY
)
declare -A S
for kv in $scrape; do S[${kv%%=*}]=${kv#*=}; done
echo "   $SCRAPES scrapes of ${S[bytes]} bytes in ${S[secs]} s: p50 ${S[p50]} ms, p99 ${S[p99]}" \
  "ms, max ${S[max]} ms; job done ${S[done_a]} -> ${S[done_b]} (${S[rate]}/s), ${S[state]}"
echo "   while the job's input was being read: ${S[n_reading]} scrapes, p50 ${S[reading_p50]} ms," \
  "max ${S[reading_max]} ms; after: ${S[n_read]} scrapes, p50 ${S[read_p50]} ms," \
  "p99 ${S[read_p99]} ms, max ${S[read_max]} ms"
((S[bad] == 0)) || { echo "   FAIL: ${S[bad]} bad scrapes" >&2; FAILED=1; }
if ((S[done_b] <= S[done_a])) || [[ ${S[state]} != running ]]; then
  echo "   FAIL: the job did not run through the scrapes" >&2
  FAILED=1
fi
# Let the job end: every address must get its record, and the server must stop cleanly.
for ((i = 0; i < 3000; i++)); do
  curl -sS -o "$WORK/job.json" "${URL}v1/jobs/$JOB_ID"
  [[ $(jq -r .state "$WORK/job.json") == running ]] || break
  sleep 0.1
done
read -r jstate jdone jrate < <(jq -r '"\(.state) \(.done) \(.rate_per_s | floor)"' "$WORK/job.json")
echo "   job: $jstate, $jdone of $JOB done, ${jrate}/s over the whole job;" \
  "verdicts $(jq -c .counts "$WORK/job.json")"
((jdone == JOB)) || { echo "   FAIL: job $jstate with $jdone of $JOB" >&2; FAILED=1; }
rss2=$(status_kib "$SERVE_PID" VmRSS)
fd2=$(fds "$SERVE_PID")
echo "   server after the job: RSS ${rss2} KiB, open fds ${fd2}"
kill -TERM "$SERVE_PID"
rc=0
wait "$SERVE_PID" || rc=$?
((rc == 0)) || { echo "   FAIL: serve exited $rc on SIGTERM" >&2; FAILED=1; }
if grep -Eiv '^$' "$WORK/serve.err" | grep -Eiq 'error|fail|warn'; then
  echo "   server stderr:" >&2
  grep -Ei 'error|fail|warn' "$WORK/serve.err" | sort | uniq -c | sort -rn | head -5 >&2
fi

# ---------------------------------------------------------------------------------------------
# 3. GET /v1/verify for cached addresses: a job of CACHED addresses fills a results cache (a
# server of its own, with --cache), then a new server on the same cache file (nothing in its
# memory: every answer is read from SQLite, parsed, its score and flags written anew) answers
# them at RATE/s. The real-time API's promise for an address it knows: p99 under 1 ms.
echo
echo "== 3. GET /v1/verify, ${RATE}/s for ${DURATION}s, addresses in the results cache" \
  "($CACHED of them; a fresh server on the cache file)"
start_cached_serve() {  # start_cached_serve: URL and SERVE_PID of a server with the cache
  mkfifo "$WORK/serve$1.fifo"
  "${rt[@]}" taskset -c 1 "$MXPROBE" serve --listen 127.0.0.1:0 --policy "$LAB_POLICY" \
    --cache "$WORK/cache.db" --data "$WORK/data$1" --dns 127.0.0.1:$DNS_PORT \
    --helo bench.client.test 2>"$WORK/serve$1.fifo" &
  SERVE_PID=$!
  PIDS+=("$SERVE_PID")
  exec 4<"$WORK/serve$1.fifo"
  listen_url || fail "mxprobe serve (cache) did not start: $line"
  cat <&4 >"$WORK/serve$1.err" &
  PIDS+=($!)
  exec 4<&-
}
start_cached_serve 3a
cmb=$((CACHED / DOMAINS))
for ((m = 1; m <= cmb; m++)); do
  for ((d = 1; d <= DOMAINS; d++)); do echo "user$m@d$d.test"; done
done >"$WORK/cached.txt"
curl -sS -o "$WORK/job3.json" -w '%{http_code}' -H 'X-Mxprobe: 1' \
  --data-binary @"$WORK/cached.txt" "${URL}v1/jobs" >"$WORK/job3.code"
[[ $(cat "$WORK/job3.code") == 201 ]] || fail "POST /v1/jobs (cache fill): $(cat "$WORK/job3.json")"
JOB_ID=$(jq -r .id "$WORK/job3.json")
for ((i = 0; i < 1200; i++)); do
  curl -sS -o "$WORK/job3.json" "${URL}v1/jobs/$JOB_ID"
  [[ $(jq -r .state "$WORK/job3.json") == running ]] || break
  sleep 0.1
done
[[ $(jq -r '"\(.state) \(.done)"' "$WORK/job3.json") == "finished $((cmb * DOMAINS))" ]] ||
  fail "cache fill job: $(jq -c '{state, done}' "$WORK/job3.json")"
kill -TERM "$SERVE_PID"
wait "$SERVE_PID" || true
start_cached_serve 3b
"${rt[@]}" taskset -c 0 wrk -t1 -c"$CONNS" -d"${DURATION}s" --timeout 11s \
  -s "$HERE/cached.lua" "$URL" -- $DOMAINS "$cmb" "$RATE" >"$WORK/wrk3.out" 2>&1 || {
  rc=$?
  cat "$WORK/wrk3.out" >&2
  fail "wrk (cached) exited $rc"
}
result=$(grep '^RESULT ' "$WORK/wrk3.out") || fail "no RESULT line from cached.lua"
declare -A C
for kv in ${result#RESULT }; do C[${kv%%=*}]=${kv#*=}; done
echo "   ${C[requests]} requests in ${C[secs]} s: p50 ${C[p50]} ms, p90 ${C[p90]} ms, p99" \
  "${C[p99]} ms, p99.9 ${C[p999]} ms, max ${C[max]} ms"
((C[non200] == 0 && C[sock_errors] == 0)) ||
  { echo "   FAIL: ${C[non200]} non-200 answers, ${C[sock_errors]} socket errors" >&2; FAILED=1; }
((C[not_cached] == 0)) || { echo "   FAIL: ${C[not_cached]} answers not cached" >&2; FAILED=1; }
((C[no_fields] == 0)) ||
  { echo "   FAIL: ${C[no_fields]} answers without score/provider/base" >&2; FAILED=1; }
((C[samples] > 0 && C[unmatched] == 0)) ||
  { echo "   FAIL: ${C[samples]} samples, ${C[unmatched]} unmatched" >&2; FAILED=1; }
kill -TERM "$SERVE_PID"
wait "$SERVE_PID" || true

# ---------------------------------------------------------------------------------------------
yes_no() { awk -v a="$1" -v b="$2" 'BEGIN { print (a < b) ? "yes" : "NO" }'; }
{
  echo "| mxprobe serve, $(date -u '+%Y-%m-%d'), $(nproc) CPUs," \
    "load $(cut -d' ' -f1 /proc/loadavg) | value |"
  echo "| --- | --- |"
  printf '| GET /v1/verify rate (wrk, %d connections, paced; %s) | %.0f/s (%d in %.1f s) |\n' \
    "$CONNS" "$( ((RT)) && echo SCHED_FIFO || echo normal scheduling)" "${R[rate]}" \
    "${R[requests]}" "${R[secs]}"
  printf '| wrk latency p50 / p99 | %.2f / %.2f ms |\n' "${R[wrk_p50]}" "${R[wrk_p99]}"
  printf '| SMTP elapsed_ms p50 / p99 (the farm, connect to verdict) | %.2f / %.2f ms |\n' \
    "${R[el_p50]}" "${R[el_p99]}"
  printf '| server overhead p50 / p99 (wrk minus elapsed_ms) | %.2f / %.2f ms |\n' \
    "${R[ov_p50]}" "${R[ov_p99]}"
  printf '| server overhead p50 / p99 / max, per request | %.2f / %.2f / %.2f ms |\n' \
    "${R[req_ov_p50]}" "${R[req_ov_p99]}" "${R[req_ov_max]}"
  printf '| non-200 / "cached":true answers | %d / %d |\n' "${R[non200]}" "${R[cached]}"
  printf '| GET /metrics during a %d-address job, p50 / p99 / max (%d scrapes) |' "$JOB" "$SCRAPES"
  printf ' %.2f / %.2f / %.2f ms |\n' "${S[p50]}" "${S[p99]}" "${S[max]}"
  printf '| the same, max while / after the job input is read (scrapes) |'
  printf ' %.2f (%d) / %.2f (%d) ms |\n' \
    "${S[reading_max]}" "${S[n_reading]}" "${S[read_max]}" "${S[n_read]}"
  printf '| job addresses/s during the scrapes | %d |\n' "${S[rate]}"
  printf '| GET /v1/verify of a cached address (%d in the cache, %.0f/s), p50 / p99 / p99.9 / max |' \
    "$CACHED" "${C[rate]}"
  printf ' %.2f / %.2f / %.2f / %.2f ms |\n' "${C[p50]}" "${C[p99]}" "${C[p999]}" "${C[max]}"
} >"$OUT"
echo
cat "$OUT"
echo
echo "overhead p99 under 1 ms at ${RATE}/s: $(yes_no "${R[ov_p99]}" 1) (percentiles)," \
  "$(yes_no "${R[req_ov_p99]}" 1) (per request);" \
  "/metrics max under 5 ms: $(yes_no "${S[max]}" 5);" \
  "cached address p99 under 1 ms: $(yes_no "${C[p99]}" 1)"
echo "(per request: wrk's request() to response() in verify.lua, minus that answer's elapsed_ms;"
echo " elapsed_ms has 0.1 ms steps. Table also in $OUT)"
echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at end"
exit "$FAILED"
