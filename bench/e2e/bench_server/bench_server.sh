#!/usr/bin/env bash
# bench-server against Postfix's own load generator (issue 22 B): one smtp-sink (every RCPT
# refused 550, as in bench-engine's "reject" sink), driven first by smtp-source -A (a closed
# loop of CONC sessions, N sessions of one RCPT) and then by `mxprobe bench-server` with a ramp
# of fixed arrival rates up to and past the rate smtp-source reached. Prints side by side:
# sessions/s (smtp-source: N over its wall time; bench-server: its best step with under 1% failed
# sessions and achieved >= 95% of offered), client CPU per session (GNU time, user + sys) and the
# ratios. Target: bench-server reaches at least smtp-source's rate at less client CPU per session.
# Writes OUT/bench-server-sink.{txt,json,png} (the bench-server run, its chart).
#
# Usage: bench_server.sh MXPROBE [SESSIONS=20000] [OUT=.]
# Environment: CONC (smtp-source's sessions at once, 100), STEP_TIME (s per step, 5), BACKEND (uring).
# Client on CPU 0, smtp-sink on CPU 1. Address 127.70.9.10. Runs as root (smtp-sink -u postfix).
set -euo pipefail
USAGE="usage: bench_server.sh MXPROBE [SESSIONS] [OUT]"
MXPROBE=${1:?$USAGE}
N=${2:-20000}
OUT=${3:-.}
CONC=${CONC:-100}
STEP_TIME=${STEP_TIME:-5}
BACKEND=${BACKEND:-uring}
SINK_IP=127.70.9.10
WORK=$(mktemp -d /tmp/bench-server.XXXXXX)
SINK_PID=""
cleanup() {
  [[ -n $SINK_PID ]] && kill "$SINK_PID" 2>/dev/null && wait "$SINK_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
for tool in smtp-sink smtp-source gnuplot taskset jq; do
  command -v "$tool" >/dev/null || { echo "bench_server.sh: $tool is needed" >&2; exit 1; }
done
ulimit -n "$(ulimit -Hn)"

start_sink() {
  if [[ -n $(ss -Hltn src "$SINK_IP" 'sport = :25') ]]; then
    echo "something already listens on $SINK_IP:25" >&2
    exit 1
  fi
  taskset -c 1 smtp-sink -u postfix -f RCPT \
    -B "550 5.1.1 Recipient address rejected: User unknown in local recipient table" \
    -m 20000 "$SINK_IP:25" 4096 2>"$WORK/sink.err" &
  SINK_PID=$!
  for _ in $(seq 50); do
    [[ -n $(ss -Hltn src "$SINK_IP" 'sport = :25') ]] && return
    sleep 0.1
  done
  echo "smtp-sink did not start: $(cat "$WORK/sink.err")" >&2
  exit 1
}
stop_sink() {
  kill "$SINK_PID" && wait "$SINK_PID" 2>/dev/null || true
  SINK_PID=""
}
cpu_s() { awk '{print $1 + $2}' "$WORK/time.txt"; }

# 1. smtp-source: N sessions, CONC at once, one RCPT each (-A: go on after the 550).
start_sink
t0=$(date +%s%N)
taskset -c 0 /usr/bin/time -f '%U %S' -o "$WORK/time.txt" \
  smtp-source -A -s "$CONC" -m "$N" -r 1 -f x@client.test -t y@sink.test "$SINK_IP:25" \
  2>"$WORK/source.err"
t1=$(date +%s%N)
stop_sink
SRC_RATE=$(awk -v n="$N" -v ns=$((t1 - t0)) 'BEGIN {printf "%.1f", n / (ns / 1e9)}')
SRC_CPU=$(awk -v c="$(cpu_s)" -v n="$N" 'BEGIN {printf "%.1f", c * 1e6 / n}')
echo "smtp-source: $N sessions at concurrency $CONC: $SRC_RATE sessions/s, $SRC_CPU µs CPU/session"

# 2. bench-server: a ramp from a quarter of smtp-source's rate to 3x it, x1.5 a step.
FROM=$(awk -v r="$SRC_RATE" 'BEGIN {printf "%d", r / 4}')
TO=$(awk -v r="$SRC_RATE" 'BEGIN {printf "%d", r * 3}')
start_sink
taskset -c 0 /usr/bin/time -f '%U %S' -o "$WORK/time.txt" \
  "$MXPROBE" bench-server "$SINK_IP" --domain sink.test --helo client.test --backend "$BACKEND" \
  --ramp "$FROM:$TO:x1.5" --step-time "$STEP_TIME" --json --no-progress \
  --chart "$OUT/bench-server-sink.png" >"$WORK/run.json" 2>"$WORK/bench.err" ||
  { echo "bench-server failed: $(cat "$WORK/bench.err")" >&2; exit 1; }
stop_sink
cp "$WORK/run.json" "$OUT/bench-server-sink.json"
"$MXPROBE" bench-server --compare "$WORK/run.json" "$WORK/run.json" >/dev/null  # parses back
SESSIONS=$(jq '[.steps[].sessions.started] | add' "$WORK/run.json")
BS_RATE=$(jq '[.steps[] | select(.sessions.failed <= 0.01 * .sessions.started
  and .achieved_sessions_per_s >= 0.95 * .offered_per_s) | .achieved_sessions_per_s] | max // 0' \
  "$WORK/run.json")
BS_RATE=$(printf "%.1f" "$BS_RATE")
BS_CPU=$(awk -v c="$(cpu_s)" -v n="$SESSIONS" 'BEGIN {printf "%.1f", c * 1e6 / n}')

{
  echo "bench-server vs smtp-source on one smtp-sink (RCPT refused 550), client CPU 0, sink CPU 1"
  printf "%-14s %14s %18s\n" client "sessions/s" "CPU µs/session"
  printf "%-14s %14s %18s\n" smtp-source "$SRC_RATE" "$SRC_CPU"
  printf "%-14s %14s %18s\n" bench-server "$BS_RATE" "$BS_CPU"
  awk -v a="$BS_RATE" -v b="$SRC_RATE" -v c="$BS_CPU" -v d="$SRC_CPU" 'BEGIN {
    printf "%-14s %14.2f %18.2f\n", "ratio", a / b, c / d
    printf "target (rate >= 1x, CPU < 1x): %s\n", (a >= b && c < d) ? "met" : "NOT met" }'
  echo "(bench-server: $SESSIONS sessions over the ramp $FROM:$TO:x1.5, $STEP_TIME s per step;" \
    "its rate is its best step with achieved >= 95% of offered and <= 1% failed)"
  echo
  jq -r '"bench-server steps: " + ([.steps[] | "\(.offered_per_s | round)/s -> \(.achieved_sessions_per_s | round)/s, p99 \(.stages.session.latency_ms.p99) ms"] | join("; "))' "$WORK/run.json"
  jq -r 'if .knee.found then "knee: \(.knee.rate)/s (\(.knee.criterion))" else "knee: none" end' \
    "$WORK/run.json"
} | tee "$OUT/bench-server-sink.txt"
