#!/usr/bin/env bash
# Cluster scaling (docs/performance.md, "Cluster scaling"): one bulk job (POST /v1/jobs) of JOB
# addresses against an mxfarm whose servers answer every command REPLY_MS late, so that a node's
# session cap (--concurrency CONC) is what limits it, and global limits that never bind
# (per-MX-group, per-source and per-domain caps far above, rates unlimited). Four runs in one go,
# each with a fresh redis-server and fresh nodes, the same farm and list:
#   ref      one `mxprobe serve` WITHOUT --cluster (the single-node reference)
#   1 node   `serve --cluster`
#   2 nodes  `serve --cluster` + one `mxprobe worker`
#   3 nodes  `serve --cluster` + two workers
# Each node has a source address of its own. Prints a table: addresses/s (wall clock from the
# POST's answer to the job seen finished, polled every 0.1 s, and the job's own rate_per_s), the
# speed-up over 1 node, the 1-node cluster over the reference (target: within 10%), Redis
# commands per verification (INFO stats total_commands_processed before the POST and after the
# job, heartbeats included, divided by JOB) with the busiest commands (INFO commandstats), and the
# nodes' CPU seconds per 1,000 verifications. Writes the table to $BENCH_OUT/bench-cluster-scaling.md
# (default: the current directory). Exits 1 only when a run is wrong (a job that did not finish
# with every address, verdict counts unlike the farm's truth), not when a target is missed.
#
# Usage: bench_cluster_scaling.sh MXPROBE MXFARM
#   env: JOB=10000 CONC=20 REPLY_MS=50 RCPTS=10 RUNS="ref 1 2 3"
# Range 127.251.0.0/16, DNS port 15251, Redis on a free port of 24000-24999 (docs/testing.md).
# Nodes, farm and Redis share the machine's CPUs (no pinning: on 2 cores the nodes' CPU is small
# next to the farm's delays, which is the point: the session cap must be the limit).
set -euo pipefail
USAGE="usage: bench_cluster_scaling.sh MXPROBE MXFARM"
MXPROBE=${1:?$USAGE}
MXFARM=${2:?$USAGE}
JOB=${JOB:-10000}
CONC=${CONC:-20}
REPLY_MS=${REPLY_MS:-50}
RCPTS=${RCPTS:-10}
RUNS=${RUNS:-ref 1 2 3}
mkdir -p "${BENCH_OUT:-$PWD}"
OUT=$(cd "${BENCH_OUT:-$PWD}" && pwd)/bench-cluster-scaling.md
BASE=127.251.0.0
DNS_PORT=15251
SRC=(127.251.9.1 127.251.9.2 127.251.9.3)
# 100 domains x 70 mailboxes over 4 MX hosts; `truth --count` adds nobodyK addresses beyond
# them, so any JOB works (10,000: 7,000 deliverable, 3,000 unknown mailboxes).
DOMAINS=100
MAILBOXES=70
PY=/usr/bin/python3
[[ -x $PY ]] || PY=python3
WORK=$(mktemp -d /tmp/mxp-cluster-bench.XXXXXX)
FAILED=0
command -v redis-server >/dev/null || { echo "redis-server is not installed" >&2; exit 1; }

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
now_ms() { date +%s%3N; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }  # utime + stime
HZ=$(getconf CLK_TCK)
# wait_for SECONDS CMD...: polls CMD every 0.1 s; 1 when SECONDS pass first.
wait_for() {
  local end=$(($(now_ms) + $1 * 1000))
  shift
  while ! "$@"; do
    (($(now_ms) < end)) || return 1
    sleep 0.1
  done
}

echo "== mxprobe cluster scaling benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
CPU_MODEL=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
echo "   $(nproc) CPUs ($CPU_MODEL), kernel $(uname -r)," \
  "load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
echo "   $("$MXPROBE" --version 2>/dev/null | head -1), $(redis-server --version | cut -d' ' -f1-3)"
echo "   $JOB addresses per run, --concurrency $CONC per node, $RCPTS recipients per session," \
  "every reply $REPLY_MS ms late"

# --- The farm: 4 MX hosts, no catch-all, no special domain, every reply REPLY_MS late ----------
"$MXFARM" gen --domains $DOMAINS --hosts 4 --mailboxes $MAILBOXES --catch-all-share 0 \
  --full-share 0 --disabled-share 0 --special none --ttl 3600 --base-ip $BASE \
  --dns-port $DNS_PORT >"$WORK/gen.json"
"$PY" - "$WORK/gen.json" "$WORK/sc.json" "$REPLY_MS" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
for h in s["hosts"]:
    h["reply_delay_ms"] = int(sys.argv[3])
json.dump(s, open(sys.argv[2], "w"))
PY
mkfifo "$WORK/farm.fifo"
"$MXFARM" run "$WORK/sc.json" --report "$WORK/report.json" >"$WORK/farm.fifo" 2>"$WORK/farm.err" &
FARM_PID=$!
PIDS+=("$FARM_PID")
exec 3<"$WORK/farm.fifo"
read -r -t 10 line <&3 || fail "mxfarm did not start: $(cat "$WORK/farm.err")"
exec 3<&-
[[ $line == ready\ * ]] || fail "mxfarm: '$line'"
"$MXFARM" truth "$WORK/sc.json" --count "$JOB" | tail -n +2 >"$WORK/truth.csv"
cut -d, -f1 "$WORK/truth.csv" | gzip >"$WORK/list.gz"
TRUTH_COUNTS=$(cut -d, -f2 "$WORK/truth.csv" | sort | uniq -c | awk '{print $2 "=" $1}')

# --- The policy: nothing but a node's --concurrency binds -------------------------------------
cat >"$WORK/policy.toml" <<EOF
[global]
max_sessions = $CONC
builtin_providers = false

[defaults]
per_mx = { sessions = 10000, connect_rate = 0, rcpt_rate = 0 }
per_source = { sessions = 10000, connect_rate = 0, rcpt_rate = 0 }
per_domain = { sessions = 10000, connect_rate = 0, rcpt_rate = 0 }
session = { recipients = $RCPTS, rejections = $RCPTS }
backoff = { initial_sessions = 10000 }
EOF
ENGINE=(--dns "127.0.0.1:$DNS_PORT" --policy "$WORK/policy.toml" --concurrency "$CONC"
  --helo bench.client.test)

# --- Redis, nodes ------------------------------------------------------------------------------
REDIS_PORT=$("$PY" - <<'PY'
import random, socket
for _ in range(100):
    p = random.randint(24000, 24999)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        s.close()
    print(p)
    break
PY
)
[[ -n $REDIS_PORT ]] || fail "no free port for redis-server"
rcli() { redis-cli -p "$REDIS_PORT" "$@"; }
REDIS_PID=""
start_redis() {
  rm -rf "$WORK/redis"
  mkdir -p "$WORK/redis"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly yes \
    --daemonize no --dir "$WORK/redis" >"$WORK/redis/log" 2>&1 &
  REDIS_PID=$!
  PIDS+=("$REDIS_PID")
  wait_for 10 bash -c "[[ \$(redis-cli -p $REDIS_PORT PING 2>/dev/null) == PONG ]]" ||
    fail "redis-server did not start: $(tail -3 "$WORK/redis/log")"
}
stop_pid() {
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
NODE_PIDS=()
URL=""
# serve_start ARGS...: serve on an ephemeral port; sets URL (its first "listening on" line).
serve_start() {
  rm -f "$WORK/serve.fifo"
  mkfifo "$WORK/serve.fifo"
  "$MXPROBE" serve --listen 127.0.0.1:0 --no-cache --data "$WORK/data" --source-ip "${SRC[0]}" \
    "${ENGINE[@]}" "$@" 2>"$WORK/serve.fifo" &
  NODE_PIDS+=($!)
  PIDS+=($!)
  exec 4<"$WORK/serve.fifo"
  URL=""
  while read -r -t 30 line <&4; do
    echo "$line" >>"$WORK/serve.err"
    [[ $line =~ listening\ on\ (http://[0-9.]+:[0-9]+/) ]] && { URL=${BASH_REMATCH[1]}; break; }
  done
  [[ -n $URL ]] || fail "serve did not start: $(tail -3 "$WORK/serve.err")"
  cat <&4 >>"$WORK/serve.err" &
  PIDS+=($!)
  exec 4<&-
}
METRICS=()  # each node's /metrics URL: the commands it sent to Redis
worker_start() {  # worker_start NAME SOURCE-IP
  "$MXPROBE" worker --cluster "$CLUSTER" --node-name "$1" --source-ip "$2" "${ENGINE[@]}" \
    --metrics-listen 127.0.0.1:0 2>>"$WORK/$1.err" &
  NODE_PIDS+=($!)
  PIDS+=($!)
  wait_for 20 grep -q "metrics on" "$WORK/$1.err" || fail "$1 did not start: $(tail -3 "$WORK/$1.err")"
  METRICS+=("$(grep -Eo 'metrics on http://[0-9.]+:[0-9]+/' "$WORK/$1.err" | head -1 | cut -d' ' -f3)metrics")
}
# The commands the nodes themselves sent to Redis (round trips: what the nodes pay), as
# opposed to total_commands_processed, which counts the commands run inside the functions too.
node_commands() {
  local u t=0 n
  for u in "${METRICS[@]}"; do
    n=$(curl -sS "$u" | awk '$1 == "mxprobe_cluster_redis_commands_total" {print $2+0}')
    t=$((t + ${n:-0}))
  done
  echo "$t"
}
listed() {
  local n
  n=$(curl -sS "${URL}v1/cluster" | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)["nodes"]))' 2>/dev/null) &&
    [[ $n == "$1" ]]
}
job_json() { curl -sS "${URL}v1/jobs/$JOB_ID"; }
job_ended() {
  job_json >"$WORK/job.json" && ! grep -Eq '"state":"(running|paused)"' "$WORK/job.json"
}
memory_info() { rcli INFO memory | tr -d '\r' | awk -F: -v k="$1" '$1 == k {print $2+0}'; }
commands_total() { rcli INFO stats | awk -F: '$1 == "total_commands_processed" {print $2+0}'; }

# run NAME NODES: one job on NODES nodes (ref: no cluster). Sets RES[NAME,...].
declare -A RES
run() {
  local name=$1 nodes=$2 i cmd0 cmd1 ncmd0 t0 t1 ticks=0 p
  rm -rf "$WORK/data" "$WORK"/*.err
  NODE_PIDS=()
  local cluster=()
  if [[ $name != ref ]]; then
    start_redis
    CLUSTER="redis://127.0.0.1:$REDIS_PORT/0"
    cluster=(--cluster "$CLUSTER" --node-name serve-1)
  fi
  serve_start "${cluster[@]}"
  METRICS=("${URL}metrics")
  for ((i = 2; i <= nodes; i++)); do worker_start "worker-$((i - 1))" "${SRC[i - 1]}"; done
  if [[ $name != ref ]]; then
    wait_for 30 listed "$nodes" || fail "$name: $nodes nodes not listed"
    rcli CONFIG RESETSTAT >/dev/null
    RES[$name.mem0]=$(memory_info used_memory)
    ncmd0=$(node_commands)
    cmd0=$(commands_total)
  fi
  t0=$(now_ms)
  curl -sS -o "$WORK/job.json" -w '%{http_code}' -H 'X-Mxprobe: 1' --data-binary @"$WORK/list.gz" \
    "${URL}v1/jobs" >"$WORK/job.code"
  [[ $(cat "$WORK/job.code") == 201 ]] || fail "$name: POST /v1/jobs: $(cat "$WORK/job.json")"
  JOB_ID=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$WORK/job.json")
  wait_for 1800 job_ended || fail "$name: the job did not end in 30 min"
  t1=$(now_ms)
  if [[ $name != ref ]]; then
    cmd1=$(commands_total)
    RES[$name.ncmds]=$(($(node_commands) - ncmd0))
    # The two INFO calls count themselves (and CONFIG RESETSTAT is before cmd0).
    RES[$name.cmds]=$(((cmd1 - cmd0 - 1)))
    rcli INFO commandstats | tr -d '\r' |
      awk -F'[:=,]' '/^cmdstat_/ && !/^cmdstat_(info|config):/ {
        sub("cmdstat_", "", $1); print $3, $1 }' | sort -rn | head -5 |
      awk '{printf "%s%s %s", (NR > 1 ? ", " : ""), $2, $1}' >"$WORK/top"
    RES[$name.top]=$(cat "$WORK/top")
    # What the job added to Redis at its peak: its window of chunks and results, leases, the
    # registry (a fresh Redis per run, so the peak is this run's).
    RES[$name.mem]=$(awk -v p="$(memory_info used_memory_peak)" -v b="${RES[$name.mem0]}" \
      'BEGIN {printf "%.2f", (p - b) / 1048576}')
  fi
  for p in "${NODE_PIDS[@]}"; do ticks=$((ticks + $(cpu_ticks "$p"))); done
  RES[$name.rcpu]="-"
  [[ -n $REDIS_PID ]] && RES[$name.rcpu]=$(awk -v t="$(cpu_ticks "$REDIS_PID")" -v hz="$HZ" -v n="$JOB" \
    'BEGIN {printf "%.2f", t / hz * 1000 / n}')
  read -r state done rate counts < <("$PY" -c '
import json, sys
j = json.load(open(sys.argv[1]))
c = " ".join(f"{k}={v}" for k, v in sorted(j["counts"].items()) if v)
print(j["state"], j["done"], round(j["rate_per_s"]), c.replace(" ", ","))' "$WORK/job.json")
  RES[$name.secs]=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", (b - a) / 1000}')
  RES[$name.rate]=$(awk -v n="$JOB" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", n * 1000 / (b - a)}')
  RES[$name.jobrate]=$rate
  RES[$name.cpu]=$(awk -v t="$ticks" -v hz="$HZ" -v n="$JOB" 'BEGIN {printf "%.2f", t / hz * 1000 / n}')
  echo "   $name ($nodes node$( ((nodes > 1)) && echo s || true)): $state, $done of $JOB in ${RES[$name.secs]} s," \
    "${RES[$name.rate]}/s (job's rate_per_s $rate); verdicts $counts" \
    "${RES[$name.cmds]:+; Redis ${RES[$name.cmds]} commands (${RES[$name.top]})}"
  if [[ $state != finished || $done != "$JOB" ]]; then
    echo "   FAIL: $name: job $state with $done of $JOB" >&2
    FAILED=1
  fi
  local want
  want=$(sort <<<"$TRUTH_COUNTS" | tr '\n' ',' | sed 's/,$//')
  if [[ $(tr ',' '\n' <<<"$counts" | sort | tr '\n' ',' | sed 's/,$//') != "$want" ]]; then
    echo "   FAIL: $name: verdict counts $counts, the farm's truth $want" >&2
    FAILED=1
  fi
  for p in "${NODE_PIDS[@]}"; do stop_pid "$p"; done
  [[ -n $REDIS_PID ]] && stop_pid "$REDIS_PID"
  REDIS_PID=""
}

echo
for r in $RUNS; do
  case $r in
    ref) run ref 1 ;;
    1 | 2 | 3) run "$r" "$r" ;;
    *) fail "RUNS: ref, 1, 2 or 3, not $r" ;;
  esac
done
kill -TERM "$FARM_PID"
wait "$FARM_PID" || true

# ---------------------------------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
{
  echo "| cluster scaling, $(date -u '+%Y-%m-%d'), $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg);" \
    "$JOB addresses, --concurrency $CONC per node, replies $REPLY_MS ms late |" \
    "addresses/s | job rate_per_s | x 1 node | s | Redis cmds / verification | node CPU s / 1,000 | Redis CPU s / 1,000 |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
  for r in $RUNS; do
    case $r in
      ref) label="1 node, no --cluster (reference)" ;;
      1) label="1 node (serve --cluster)" ;;
      *) label="$r nodes (serve --cluster + $((r - 1)) worker$( ((r > 2)) && echo s || true))" ;;
    esac
    per="-"
    [[ -n ${RES[$r.cmds]:-} ]] && per=$(awk -v c="${RES[$r.cmds]}" -v n="$JOB" 'BEGIN {printf "%.2f", c / n}')
    x="-"
    [[ $r != ref && -n ${RES[1.rate]:-} ]] && x=$(ratio "${RES[$r.rate]}" "${RES[1.rate]}")
    echo "| $label | ${RES[$r.rate]} | ${RES[$r.jobrate]} | $x | ${RES[$r.secs]} | $per | ${RES[$r.cpu]} | ${RES[$r.rcpu]} |"
  done
} >"$OUT"
echo
cat "$OUT"
echo
if [[ -n ${RES[ref.rate]:-} && -n ${RES[1.rate]:-} ]]; then
  q=$(ratio "${RES[1.rate]}" "${RES[ref.rate]}")
  echo "1 node with --cluster / without: $q (target: within 10%, i.e. >= 0.90):" \
    "$(awk -v q="$q" 'BEGIN { print (q >= 0.90) ? "yes" : "NO" }')"
fi
for r in 2 3; do
  [[ -n ${RES[$r.rate]:-} && -n ${RES[1.rate]:-} ]] &&
    echo "$r nodes / 1 node: $(ratio "${RES[$r.rate]}" "${RES[1.rate]}") (ideal $r.00)"
done
for r in $RUNS; do
  [[ -n ${RES[$r.top]:-} ]] && echo "Redis commands, $r node(s), busiest: ${RES[$r.top]}"
  [[ -n ${RES[$r.ncmds]:-} ]] && echo "Redis commands the nodes sent, $r node(s): ${RES[$r.ncmds]}, $(awk -v c="${RES[$r.ncmds]}" -v n="$JOB" 'BEGIN {printf "%.4f", c / n}') per verification, one per $(awk -v c="${RES[$r.ncmds]}" -v n="$JOB" 'BEGIN {printf "%.0f", n / (c > 0 ? c : 1)}') verifications (target: one per 20 or fewer)"
  [[ -n ${RES[$r.mem]:-} ]] && echo "Redis peak memory above its idle start, $r node(s): ${RES[$r.mem]} MiB (the job: $JOB addresses)"
done
echo "(Redis commands include the nodes' heartbeats; the table is also in $OUT)"
echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at end"
exit "$FAILED"
