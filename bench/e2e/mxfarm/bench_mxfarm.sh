#!/usr/bin/env bash
# mxfarm against Postfix's smtp-sink, both driven by Postfix's smtp-source the same way in the
# same run, printed side by side: sessions/s, commands/s, server CPU per session; then RCPT/s
# over reused sessions; then mxfarm's start-up time with 1,000 domains over 50 MX addresses.
# Server pinned to CPU 0, smtp-source to CPU 1 (docs/performance.md; docs/peers.md for smtp-sink).
# Usage: bench_mxfarm.sh MXFARM [SESSIONS] [ROUNDS]. Exits 1 if mxfarm makes fewer than half
# of smtp-sink's sessions/s. Range 127.70.0.0/16, DNS ports 15370-15371.
set -euo pipefail
MXFARM=${1:?usage: bench_mxfarm.sh MXFARM [SESSIONS] [ROUNDS]}
SESSIONS=${2:-20000}
ROUNDS=${3:-3}
WORK=$(mktemp -d /tmp/mxfarm-bench.XXXXXX)
SINK_IP=127.70.1.10
SERVER_PID=""
cleanup() {
  [[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

now_ns() { date +%s%N; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }  # utime + stime, in clock ticks
HZ=$(getconf CLK_TCK)

wait_port() {  # until something accepts on $1:$2 (the server is ready)
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0
    sleep 0.01
  done
  echo "nothing listens on $1:$2" >&2
  exit 1
}

start_sink() {
  taskset -c 0 smtp-sink -u nobody -f RCPT "$SINK_IP:25" 1024 &
  SERVER_PID=$!
  wait_port "$SINK_IP" 25
}

start_farm() {
  local fifo=$WORK/ready.fifo
  rm -f "$fifo"
  mkfifo "$fifo"
  taskset -c 0 "$MXFARM" run "$WORK/scenario.json" --report "$WORK/report.json" >"$fifo" &
  SERVER_PID=$!
  read -r -t 10 _ <"$fifo" || { echo "mxfarm not ready" >&2; exit 1; }
}

stop_server() {
  kill "$SERVER_PID"
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}

# drive IP ARGS...: runs smtp-source on CPU 1; prints "seconds server_cpu_seconds".
drive() {
  local ip=$1
  shift
  local c0 t0 t1 c1
  c0=$(cpu_ticks "$SERVER_PID")
  t0=$(now_ns)
  taskset -c 1 smtp-source -A "$@" -f x@a.test -t y@d1.test "$ip:25" 2>/dev/null
  t1=$(now_ns)
  c1=$(cpu_ticks "$SERVER_PID")
  echo "$(((t1 - t0) / 1000000)) $((c1 - c0))"
}

# The farm: one domain, one MX host on 127.70.0.1; y@d1.test does not exist, so RCPT is refused
# like smtp-sink -f RCPT refuses it, and smtp-source -A sends RSET instead of DATA.
"$MXFARM" gen --domains 1 --hosts 1 --special none --base-ip 127.70.0.0 --dns-port 15370 \
  >"$WORK/scenario.json"
FARM_IP=127.70.0.1

declare -a sink_ms farm_ms sink_cpu farm_cpu
echo "smtp-source -A -s 100 -m $SESSIONS -r 1 (one verification-shaped session each: HELO MAIL RCPT RSET QUIT), $ROUNDS rounds"
for round in $(seq 1 "$ROUNDS"); do
  start_sink
  read -r ms cpu < <(drive "$SINK_IP" -s 100 -m "$SESSIONS" -r 1)
  stop_server
  sink_ms+=("$ms")
  sink_cpu+=("$cpu")
  start_farm
  read -r ms cpu < <(drive "$FARM_IP" -s 100 -m "$SESSIONS" -r 1)
  stop_server
  farm_ms+=("$ms")
  farm_cpu+=("$cpu")
  cmds=$(python3 -c "import json; r=json.load(open('$WORK/report.json')); print(sum(r['total']['commands'].values()))")
  conns=$(python3 -c "import json; r=json.load(open('$WORK/report.json')); print(r['total']['connections'])")
  [[ $conns == "$SESSIONS" ]] || { echo "farm saw $conns sessions, want $SESSIONS" >&2; exit 1; }
  printf '  round %d: smtp-sink %6d sessions/s   mxfarm %6d sessions/s (%d commands counted)\n' \
    "$round" $((SESSIONS * 1000 / sink_ms[-1])) $((SESSIONS * 1000 / farm_ms[-1])) "$cmds"
done

# Median round of each.
median() { printf '%s\n' "$@" | sort -n | sed -n "$(((${#@} + 1) / 2))p"; }
s_ms=$(median "${sink_ms[@]}")
f_ms=$(median "${farm_ms[@]}")
s_cpu=$(median "${sink_cpu[@]}")
f_cpu=$(median "${farm_cpu[@]}")
per_session=5  # HELO MAIL RCPT RSET QUIT (counted by mxfarm's report above)
s_rate=$((SESSIONS * 1000 / s_ms))
f_rate=$((SESSIONS * 1000 / f_ms))
echo
printf '%-10s %12s %12s %18s %14s\n' server sessions/s commands/s "server CPU/session" "server CPU %"
for who in smtp-sink mxfarm; do
  if [[ $who == smtp-sink ]]; then ms=$s_ms cpu=$s_cpu rate=$s_rate; else ms=$f_ms cpu=$f_cpu rate=$f_rate; fi
  printf '%-10s %12d %12d %15d us %13d%%\n' "$who" "$rate" $((rate * per_session)) \
    $((cpu * 1000000 / HZ / SESSIONS)) $((cpu * 100000 / HZ / ms))
done

# RCPT throughput over reused sessions (smtp-source -d -r 10), median of the rounds too.
echo
echo "smtp-source -A -d -s 100 -m $((SESSIONS / 2)) -r 10 (sessions reused, 10 refused RCPTs per transaction)"
declare -a sr fr
for round in $(seq 1 "$ROUNDS"); do
  start_sink
  read -r ms _ < <(drive "$SINK_IP" -d -s 100 -m $((SESSIONS / 2)) -r 10)
  stop_server
  sr+=($((SESSIONS * 5 * 1000 / ms)))
  start_farm
  read -r ms _ < <(drive "$FARM_IP" -d -s 100 -m $((SESSIONS / 2)) -r 10)
  stop_server
  fr+=($((SESSIONS * 5 * 1000 / ms)))
done
printf '%-10s %12s\n' server RCPT/s
printf '%-10s %12d\n' smtp-sink "$(median "${sr[@]}")" mxfarm "$(median "${fr[@]}")"

# Start-up: 1,000 domains over 50 MX addresses, from exec to the ready line.
"$MXFARM" gen --domains 1000 --hosts 50 --special none --base-ip 127.70.0.0 --dns-port 15371 \
  >"$WORK/scenario.json"
t0=$(now_ns)
start_farm
t1=$(now_ns)
stop_server
startup=$(((t1 - t0) / 1000000))
echo
echo "mxfarm start-up, 1000 domains over 50 MX addresses: ${startup} ms (limit 2000 ms)"

echo
if ((f_rate * 2 >= s_rate && startup < 2000)); then
  echo "PASS: mxfarm makes $((f_rate * 100 / s_rate))% of smtp-sink's sessions/s (target >= 50%)"
else
  echo "FAIL: mxfarm $f_rate sessions/s vs smtp-sink $s_rate; start-up ${startup} ms"
  exit 1
fi
