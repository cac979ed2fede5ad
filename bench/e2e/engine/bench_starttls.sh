#!/usr/bin/env bash
# The cost of STARTTLS per session in client CPU: `mxprobe verify` against one mxfarm host that
# offers STARTTLS with a real handshake (a throwaway P-256 certificate made here), every session
# fresh with one recipient, at the same concurrency, with --starttls never and then auto, on
# both loop backends; then auto again against the same host issuing no session tickets (every
# handshake full: a first contact, or a server without resumption). Client CPU (user+sys, GNU
# time) per session for each, and the difference to never: what TLS costs the client. Called by
# bench_engine.sh (section 4); runs on its own too. Writes OUT/bench-starttls.md.
#
# Usage: bench_starttls.sh MXPROBE MXFARM [SESSIONS=20000] [CONCURRENCY=100] [OUT=.]
# Environment: REPEAT=3 (rounds, interleaved; the table shows medians), BACKENDS="uring uv".
# Client on CPU 0, mxfarm on CPU 1. Range 127.70.8.0/24, DNS port 15378.
set -euo pipefail
USAGE="usage: bench_starttls.sh MXPROBE MXFARM [SESSIONS] [CONCURRENCY] [OUT]"
MXPROBE=${1:?$USAGE}
MXFARM=${2:?$USAGE}
N=${3:-20000}
CONC=${4:-100}
OUT=${5:-.}
REPEAT=${REPEAT:-3}
BACKENDS=${BACKENDS:-uring uv}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
DNS_PORT=15378
HOST_IP=127.70.8.1
HZ=$(getconf CLK_TCK)
WORK=$(mktemp -d /tmp/mxp-starttls-bench.XXXXXX)
FARM_PID=""
CLIENT_PID=""
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  local p
  for p in $CLIENT_PID $FARM_PID; do
    kill "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ulimit -n "$(ulimit -Hn)"
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=mx.tls.test \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>"$WORK/openssl.err" ||
  { cat "$WORK/openssl.err" >&2; exit 1; }
printf '%s\n' '{"version": 1, "comment": "bench_starttls.sh: one host offering STARTTLS; every RCPT unknown",' \
  " \"dns\": {\"ip\": \"127.0.0.1\", \"port\": $DNS_PORT, \"ttl\": 3600}," \
  " \"hosts\": [{\"name\": \"mx.tls.test\", \"ip\": \"$HOST_IP\", \"starttls\": true}]," \
  ' "domains": [{"name": "tls.test", "mx": [{"pref": 10, "host": "mx.tls.test"}]}]}' \
  >"$WORK/farm.json"
# start_farm REPORT [run options]: mxfarm on CPU 1, waiting for its ready line on a FIFO.
start_farm() {
  rm -f "$WORK/ready"
  mkfifo "$WORK/ready"
  taskset -c 1 "$MXFARM" run "$WORK/farm.json" --tls-cert "$WORK/cert.pem" \
    --tls-key "$WORK/key.pem" --report "$1" "${@:2}" >"$WORK/ready" 2>"$WORK/farm.err" &
  FARM_PID=$!
  read -r -t 10 _ <"$WORK/ready" || { echo "mxfarm not ready: $(cat "$WORK/farm.err")" >&2; exit 1; }
}
stop_farm() {
  kill "$FARM_PID"
  wait "$FARM_PID" || true
  FARM_PID=""
}
seq 1 "$N" | sed 's/^/user/; s/$/@tls.test/' >"$WORK/in.txt"
printf '%s\n' "[global]" "max_sessions = $CONC" "builtin_providers = false" "[defaults]" \
  "per_mx = { sessions = $CONC, connect_rate = 0, rcpt_rate = 0 }" \
  "per_source = { sessions = $CONC, connect_rate = 0, rcpt_rate = 0 }" \
  "per_domain = { sessions = $CONC, connect_rate = 0, rcpt_rate = 0 }" \
  "session = { recipients = 1, rejections = 1 }" "backoff = { initial_sessions = $CONC }" \
  'retry = { schedule = ["1s"], attempts = 5 }' >"$WORK/policy.toml"

echo "== STARTTLS cost: $N fresh sessions (1 RCPT each) at concurrency $CONC against mxfarm with TLS"
echo "   $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) at start; client CPU 0, mxfarm CPU 1"
: >"$WORK/rows.dat"
FAILED=0
# measure ROUND BACKEND MODE LABEL: one run, a row in rows.dat.
measure() {
  local round=$1 backend=$2 mode=$3 label=$4 f0 f1 t0 t1 user sys got tls want_tls
  f0=$(cpu_ticks "$FARM_PID")
  t0=$(date +%s%N)
  taskset -c 0 /usr/bin/time -f '%U %S' -o "$WORK/time.txt" \
    "$MXPROBE" verify --no-cache --no-journal --no-progress --dns 127.0.0.1:$DNS_PORT \
    --input "$WORK/in.txt" --output "$WORK/out.jsonl" --policy "$WORK/policy.toml" \
    --backend "$backend" -c "$CONC" --domain-concurrency "$CONC" --rcpts-per-session 1 \
    --no-catch-all --starttls "$mode" 2>"$WORK/client.err" &
  CLIENT_PID=$!
  wait "$CLIENT_PID" || { echo "mxprobe failed: $(tail -3 "$WORK/client.err")" >&2; FAILED=1; }
  CLIENT_PID=""
  t1=$(date +%s%N)
  f1=$(cpu_ticks "$FARM_PID")
  read -r user sys <"$WORK/time.txt"
  got=$(grep -c '"verdict":"undeliverable","reason":"mailbox_not_found"' "$WORK/out.jsonl" || true)
  tls=$(grep -c '"tls":{"version"' "$WORK/out.jsonl" || true)
  want_tls=0
  [[ $mode == auto ]] && want_tls=$N
  if ((got != N || tls != want_tls)); then
    echo "   FAIL $backend $mode: $got of $N verdicts as expected, $tls over TLS (want $want_tls)" >&2
    FAILED=1
  fi
  awk -v b="$backend" -v m="$label" -v n="$N" -v u="$user" -v s="$sys" \
    -v ms=$(((t1 - t0) / 1000000)) -v ft=$((f1 - f0)) -v hz="$HZ" 'BEGIN {
      printf "%s %s %.0f %.1f %.1f %.1f\n", b, m, n * 1000 / ms, (u + s) * 1e6 / n, s * 1e6 / n,
        ft * 1e6 / hz / n }' >>"$WORK/rows.dat"
  echo "   round $round: $(tail -n 1 "$WORK/rows.dat")"
}
start_farm "$WORK/report.json"
for ((round = 1; round <= REPEAT; round++)); do
  for backend in $BACKENDS; do
    for mode in never auto; do measure "$round" "$backend" "$mode" "$mode"; done
  done
done
stop_farm
RESUMED=$(jq -r '"\(.total.tls_resumed) of \(.total.tls_handshakes)"' "$WORK/report.json")
# The same host issuing no tickets: full handshakes only.
start_farm "$WORK/report-full.json" --tls-no-tickets
for ((round = 1; round <= REPEAT; round++)); do
  for backend in $BACKENDS; do measure "$round" "$backend" auto auto-full; done
done
stop_farm
FULL=$(jq -r '"\(.total.tls_resumed) of \(.total.tls_handshakes)"' "$WORK/report-full.json")

# Medians per backend and mode; then the table with the difference auto - never.
sort -s -k1,1 "$WORK/rows.dat" | awk '{ k = $1 " " $2; if (!(k in n)) order[++m] = k; n[k]++
       for (i = 3; i <= NF; i++) v[k, i, n[k]] = $i; nf = NF }
  function median(k, i,   a, j, l, t, c) {
    c = n[k]; for (j = 1; j <= c; j++) a[j] = v[k, i, j]
    for (j = 2; j <= c; j++) { t = a[j]; for (l = j - 1; l >= 1 && a[l] + 0 > t + 0; l--) a[l + 1] = a[l]; a[l + 1] = t }
    return c % 2 ? a[(c + 1) / 2] : (a[c / 2] + a[c / 2 + 1]) / 2 }
  END { for (j = 1; j <= m; j++) { k = order[j]; line = k
    for (i = 3; i <= nf; i++) line = line " " median(k, i); print line } }' >"$WORK/median.dat"
table() {  # table text|md
  awk -v fmt="$1" '
    BEGIN {
      if (fmt == "md") {
        print "| backend | --starttls | sessions/s | client CPU µs/session (sys) | TLS cost µs/session | mxfarm CPU µs/session |"
        print "| --- | --- | ---: | ---: | ---: | ---: |"
      } else printf "%-7s %-9s %10s %20s %14s %12s\n", "backend", "mode", "sess/s", "CPU us/sess (sys)", "TLS cost us", "farm us/sess"
    }
    { if ($2 == "never") base[$1] = $4
      cost = $2 != "never" && ($1 in base) ? sprintf("%+.0f", $4 - base[$1]) : "-"
      if (fmt == "md") printf "| %s | %s | %d | %.0f (%.0f) | %s | %.0f |\n", $1, $2, $3, $4, $5, cost, $6
      else printf "%-7s %-9s %10d %13.0f (%4.0f) %14s %12.0f\n", $1, $2, $3, $4, $5, cost, $6 }' \
    "$WORK/median.dat"
}
echo
table text
echo "(median of $REPEAT rounds; TLS cost: client CPU per session minus never's; auto: the"
echo " host issues tickets, resumed handshakes in all auto runs: $RESUMED; auto-full: no tickets,"
echo " resumed: $FULL)"
{
  echo "## STARTTLS cost per session"
  echo
  echo "$N fresh sessions (one RCPT each) at concurrency $CONC against one mxfarm host with a real"
  echo "TLS handshake (P-256 certificate), client on CPU 0, mxfarm on CPU 1; median of $REPEAT"
  echo "rounds. Command: \`REPEAT=$REPEAT bash bench/e2e/engine/bench_starttls.sh $MXPROBE $MXFARM $N $CONC $OUT\`"
  echo
  table md
  echo
  echo "auto: the host issues session tickets (resumed handshakes, mxfarm's count over the auto"
  echo "runs: $RESUMED); auto-full: \`mxfarm run --tls-no-tickets\`, every handshake full (resumed:"
  echo "$FULL)."
} >"$OUT/bench-starttls.md"
echo "wrote $OUT/bench-starttls.md"
exit "$FAILED"
