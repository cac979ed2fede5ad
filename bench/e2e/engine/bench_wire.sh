#!/usr/bin/env bash
# What each client puts on the wire and asks of the kernel per RCPT check (issue 22): Postfix's
# smtp-source and `mxprobe verify` on both loop backends, against the same smtp-sink, fresh
# sessions and 10 recipients per session. Counts, not times: they barely move with the load of a
# shared machine, so they explain the rates of bench_engine.sh part 1 without being rates.
#
# Per client and shape, one run of N RCPT checks at concurrency 100 (reject sink: every RCPT gets
# 550 5.1.1), and per RCPT check:
#   segments        TCP segments on the wire, both directions (tcpdump on lo)
#   c>s, s>c        segments client to server, server to client
#   pure ACKs       segments without payload, SYN, FIN or RST (ACKs nobody's data rode on)
#   client sys      system calls of the client (perf stat raw_syscalls:sys_enter)
#   sink sys        system calls of the sink (a fresh one per run; its start-up included)
#   client csw      context switches of the client
# and per session, the TIME_WAIT sockets the server is left with (ss, right after the run).
# With MXPROBE_BEFORE=path, that binary's two backends are measured too ("uring@before"...), so
# that one run shows a change's effect.
#
# Usage: bench_wire.sh MXPROBE [N=20000] [OUT=.]    (root: smtp-sink -u postfix, tcpdump)
# Range 127.70.8.0/24, DNS port 15378. Client on CPU 0, sink on CPU 1.
set -euo pipefail
USAGE="usage: bench_wire.sh MXPROBE [N] [OUT]"
MXPROBE=${1:?$USAGE}
N=${2:-20000}
OUT=${3:-.}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
SINK_IP=127.70.8.25
DNS_PORT=15378
CONC=100
WORK=$(mktemp -d /tmp/mxp-wire-bench.XXXXXX)
PIDS=()
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
for tool in smtp-sink smtp-source tcpdump perf dnsmasq dig ss; do
  command -v "$tool" >/dev/null || {
    echo "bench_wire.sh: $tool is missing (tools/setup.sh installs it)" >&2
    exit 1
  }
done
ulimit -n "$(ulimit -Hn)"

cat >"$WORK/dns.conf" <<EOF
local=/test/
mx-host=wire.test,mx.wire.test,10
host-record=mx.wire.test,$SINK_IP
EOF
dnsmasq --keep-in-foreground --no-resolv --no-hosts --conf-file="$WORK/dns.conf" --port=$DNS_PORT \
  --listen-address=127.0.0.1 --bind-interfaces --user=root --pid-file= 2>"$WORK/dnsmasq.err" &
PIDS+=($!)
for ((i = 0; i < 100; i++)); do
  [[ $(dig +short +time=1 +tries=1 -p $DNS_PORT @127.0.0.1 mx.wire.test 2>/dev/null) == "$SINK_IP" ]] &&
    break
  sleep 0.05
done
((i < 100)) || { echo "dnsmasq did not answer" >&2; exit 1; }
seq 1 "$N" | sed 's/^/user/; s/$/@wire.test/' >"$WORK/in.txt"

policy() {  # policy RCPTS: CONC sessions at once, no rate limits (as bench_engine.sh)
  cat >"$WORK/policy.toml" <<EOF
[global]
max_sessions = $CONC
builtin_providers = false
[defaults]
per_mx = { sessions = $CONC, connect_rate = 0, rcpt_rate = 0 }
per_source = { sessions = $CONC, connect_rate = 0, rcpt_rate = 0 }
per_domain = { sessions = $CONC, connect_rate = 0, rcpt_rate = 0 }
session = { recipients = $1, rejections = $1 }
backoff = { initial_sessions = $CONC }
retry = { schedule = ["1s"], attempts = 5 }
EOF
}

# count FILTER: segments in the capture matching a tcpdump filter
count() { tcpdump -nr "$WORK/cap.pcap" "$1" 2>/dev/null | wc -l; }
# perf_value FILE EVENT: a counter from `perf stat -x,` output
perf_value() { awk -F, -v e="$2" '$3 == e { print $1 + 0 }' "$1"; }

: >"$WORK/rows.dat"
measure() {  # measure LABEL CLIENT BINARY RCPTS (CLIENT: smtp-source, mxprobe-uring, mxprobe-uv)
  local label=$1 client=$2 bin=$3 rcpts=$4 sink_pid tcpdump_pid perf_pid tw
  # Nothing of an earlier run may count: TIME_WAIT sockets of the sink's address last 60 s, so
  # each run gets a sink port of its own.
  local port=$((2500 + ${#ROWS_DONE}))
  ROWS_DONE+=x
  # The sink runs under perf stat, which counts its system calls from its start: no attaching
  # to a running process, and so no moment to wait for.
  taskset -c 1 perf stat -x, -e raw_syscalls:sys_enter -o "$WORK/sink.perf" -- \
    smtp-sink -u postfix -f RCPT \
    -B "550 5.1.1 Recipient address rejected: User unknown in local recipient table" \
    -m 2000 "$SINK_IP:$port" 1024 2>"$WORK/sink.err" &
  perf_pid=$!
  PIDS+=("$perf_pid")
  for ((i = 0; i < 100; i++)); do
    [[ -n $(ss -Hltn src "$SINK_IP" "sport = :$port") ]] && break
    sleep 0.05
  done
  sink_pid=$(pgrep -P "$perf_pid" smtp-sink)
  # Packet-buffered and immediate: every segment is in the file as soon as tcpdump has it.
  tcpdump -i lo -n -s 96 -U --immediate-mode -w "$WORK/cap.pcap" \
    "host $SINK_IP and tcp port $port" 2>"$WORK/tcpdump.err" &
  tcpdump_pid=$!
  PIDS+=("$tcpdump_pid")
  for ((i = 0; i < 100; i++)); do
    grep -q "listening on" "$WORK/tcpdump.err" && break
    sleep 0.05
  done
  if [[ $client == smtp-source ]]; then
    taskset -c 0 perf stat -x, -e raw_syscalls:sys_enter,context-switches -o "$WORK/client.perf" \
      smtp-source -A -s $CONC -m $((N / rcpts)) -r "$rcpts" -f x@a.test -t y@wire.test \
      "$SINK_IP:$port" 2>"$WORK/client.err"
  else
    policy "$rcpts"
    taskset -c 0 perf stat -x, -e raw_syscalls:sys_enter,context-switches -o "$WORK/client.perf" \
      "$bin" verify --no-cache --dns 127.0.0.1:$DNS_PORT --input "$WORK/in.txt" \
      --output "$WORK/out.jsonl" --policy "$WORK/policy.toml" --no-journal \
      --backend "${client#mxprobe-}" --no-progress -c $CONC --domain-concurrency $CONC \
      --rcpts-per-session "$rcpts" --no-catch-all --smtp-port "$port" 2>"$WORK/client.err"
    local got
    got=$(grep -c '"reason":"mailbox_not_found"' "$WORK/out.jsonl" || true)
    ((got == N)) || echo "note: $label rcpts=$rcpts: $got of $N records mailbox_not_found" >&2
  fi
  tw=$(ss -Htan state time-wait src "$SINK_IP" "sport = :$port" | wc -l)
  # The capture is complete once no connection of the run is left (but TIME_WAIT, which sends
  # nothing) and the file has stopped growing.
  for ((i = 0; i < 100; i++)); do
    [[ -z $(ss -Htan exclude listening exclude time-wait src "$SINK_IP" "sport = :$port") ]] &&
      break
    sleep 0.05
  done
  local size=-1
  for ((i = 0; i < 100; i++)); do
    [[ $(stat -c %s "$WORK/cap.pcap") == "$size" ]] && break
    size=$(stat -c %s "$WORK/cap.pcap")
    sleep 0.05
  done
  kill "$tcpdump_pid"
  wait "$tcpdump_pid" 2>/dev/null || true
  kill "$sink_pid"  # perf stat writes its count when its workload ends
  wait "$perf_pid" 2>/dev/null || true
  local seg c2s s2c pure csys ssys csw
  seg=$(count "tcp")
  c2s=$(count "dst host $SINK_IP")
  s2c=$(count "src host $SINK_IP")
  pure=$(count "tcp[tcpflags] & (tcp-syn|tcp-fin|tcp-rst) == 0 and (((ip[2:2] - ((ip[0]&0xf)<<2)) - ((tcp[12]&0xf0)>>2)) == 0)")
  csys=$(perf_value "$WORK/client.perf" raw_syscalls:sys_enter)
  csw=$(perf_value "$WORK/client.perf" context-switches)
  ssys=$(perf_value "$WORK/sink.perf" raw_syscalls:sys_enter)
  echo "$label $rcpts $seg $c2s $s2c $pure $csys $ssys $csw $tw" >>"$WORK/rows.dat"
  awk -v n="$N" -v r="$rcpts" -v c="$label" -v seg="$seg" -v c2s="$c2s" -v s2c="$s2c" \
    -v pure="$pure" -v csys="$csys" -v ssys="$ssys" -v csw="$csw" -v tw="$tw" 'BEGIN {
      printf "%-20s %2d %8.2f %6.2f %6.2f %6.2f %8.2f %8.2f %7.3f %9.2f\n", c, r, seg / n,
        c2s / n, s2c / n, pure / n, csys / n, ssys / n, csw / n, tw / (n / r) }'
}

echo "== what goes on the wire and to the kernel per RCPT check ($N per run, concurrency $CONC,"
echo "   sink rejects every RCPT; TIME_WAIT: sockets left on the server per session)"
HEAD="client               rcpts segments    c>s    s>c  pure-ACK client-sys  sink-sys  cl-csw TIME_WAIT"
echo "$HEAD"
ROWS_DONE=""
CLIENTS=("smtp-source:" "mxprobe-uring:$MXPROBE" "mxprobe-uv:$MXPROBE")
if [[ -n ${MXPROBE_BEFORE:-} ]]; then
  CLIENTS+=("mxprobe-uring@before:$MXPROBE_BEFORE" "mxprobe-uv@before:$MXPROBE_BEFORE")
fi
for rcpts in 10 1; do
  for c in "${CLIENTS[@]}"; do
    label=${c%%:*}
    measure "$label" "${label%@before}" "${c#*:}" "$rcpts"
  done
done
{
  echo "| client | rcpts/session | segments | client→server | server→client | pure ACKs | client syscalls | sink syscalls | client context switches | server TIME_WAIT per session |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  awk -v n="$N" '{ printf "| %s | %d | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.3f | %.2f |\n",
    $1, $2, $3 / n, $4 / n, $5 / n, $6 / n, $7 / n, $8 / n, $9 / n, $10 / (n / $2) }' "$WORK/rows.dat"
} >"$OUT/bench-wire.md"
echo "(per RCPT check but the last column; Markdown: $OUT/bench-wire.md)"
