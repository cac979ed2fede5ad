# Shared helpers of the integration tests (sourced, not run: `source "$(dirname "$0")/../lib.sh"`).
# Every test draws its 127.x.0.0/16 range and DNS port from its own band (see pick_net), so
# ctest -j runs them side by side, and concurrent runs of the same test do not collide.
set -euo pipefail

MXFARM=${MXFARM:?MXFARM must name the mxfarm binary}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)  # tests/integration
ROOT=$(cd "$HERE/../.." && pwd)                      # the repository
WORK=$(mktemp -d /tmp/mxfarm-test.XXXXXX)
FARM_PID=""
CHECKS=0
SC=$WORK/scenario.json   # the farm's scenario and report (farm_in_band, launch)
REPORT=$WORK/report.json
# Debian's interpreter directly: a version-manager shim on PATH can cost half a second a call.
PY=/usr/bin/python3
[[ -x $PY ]] || PY=python3

cleanup() {
  local p
  for p in "${SERVE_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${SERVE_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [[ -n $FARM_PID ]] && kill -0 "$FARM_PID" 2>/dev/null; then
    kill -TERM "$FARM_PID" 2>/dev/null || true
    wait "$FARM_PID" 2>/dev/null || true
  fi
  # MXP_KEEP_WORK=1 keeps the test's files (logs, farm reports) for a look after a failure.
  if [[ ${MXP_KEEP_WORK:-0} == 1 ]]; then echo "kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  [[ -f $WORK/farm.err ]] && { echo "--- farm stderr:" >&2; tail -20 "$WORK/farm.err" >&2; }
  exit 1
}

ok() { CHECKS=$((CHECKS + 1)); }

# serve_start NAME ARGS...: `$MXPROBE serve --listen 127.0.0.1:0 ARGS...` (the caller names its
# DNS, policy, data directory...). Waits for its "listening on" line (warnings may come first;
# read from a FIFO, no polling) and sets URL and SERVE_PID; its stderr goes to $WORK/NAME.err.
# Every server started so is stopped on exit. serve_stop [SIGNAL] stops the last one (TERM, or
# KILL for a crash) and sets SERVE_RC to its exit status.
SERVE_PIDS=()
SERVE_PID=""
serve_start() {
  local name=$1 fifo=$WORK/$1.fifo line
  shift
  rm -f "$fifo"
  mkfifo "$fifo"
  "$MXPROBE" serve --listen 127.0.0.1:0 "$@" 2>"$fifo" &
  SERVE_PID=$!
  SERVE_PIDS+=("$SERVE_PID")
  exec 4<"$fifo"
  URL=""
  while read -r -t 20 line <&4; do
    echo "$line" >>"$WORK/$name.err"
    [[ $line =~ listening\ on\ (http://[0-9.]+:[0-9]+/) ]] && { URL=${BASH_REMATCH[1]}; break; }
  done
  [[ -n $URL ]] || fail "$name: no start-up line ($(tail -3 "$WORK/$name.err" 2>/dev/null))"
  cat <&4 >>"$WORK/$name.err" &
  exec 4<&-
}
serve_stop() {
  SERVE_RC=""
  [[ -n $SERVE_PID ]] || return 0
  kill "-${1:-TERM}" "$SERVE_PID" 2>/dev/null || true
  SERVE_RC=0
  wait "$SERVE_PID" 2>/dev/null || SERVE_RC=$?
  SERVE_PID=""
}

# req METHOD PATH [curl args...]: a request to $URL; sets CODE and BODY. Writes carry
# X-Mxprobe: 1 (the API's cross-site rule, docs/api.md "Security model"); tests of that rule
# call curl without it.
req() {
  local method=$1 path=$2 xs=()
  shift 2
  [[ $method == GET || $method == HEAD ]] || xs=(-H 'X-Mxprobe: 1')
  BODY=$(curl -sS -o - -w '\n%{http_code}' -X "$method" "${xs[@]}" "$@" "${URL}${path#/}") ||
    fail "curl $path"
  CODE=${BODY##*$'\n'}
  BODY=${BODY%$'\n'*}
}

# expect_match TEXT REGEX WHAT: TEXT must contain a line matching the extended regex.
expect_match() {
  grep -Eq -- "$2" <<<"$1" || { echo "$1" | tail -30 >&2; fail "$3: no match for /$2/"; }
  ok
}
expect_no_match() {
  if grep -Eq -- "$2" <<<"$1"; then echo "$1" | tail -30 >&2; fail "$3: unexpected /$2/"; fi
  ok
}
expect_eq() {
  [[ "$1" == "$2" ]] || fail "$3: got '$1', want '$2'"
  ok
}

# start_farm SCENARIO REPORT [run options...]: starts mxfarm and waits for its ready line
# (read from a FIFO: no polling, no sleeping). Sets FARM_PID and READY_LINE. Returns 1 when the
# farm could not start because another run holds its addresses or DNS port; fails otherwise.
start_farm() {
  local fifo=$WORK/ready.fifo
  rm -f "$fifo"
  mkfifo "$fifo"
  "$MXFARM" run "$1" --report "$2" "${@:3}" >"$fifo" 2>"$WORK/farm.err" &
  FARM_PID=$!
  exec 3<"$fifo"
  if ! read -r -t 10 READY_LINE <&3; then
    exec 3<&-
    local rc=0
    kill -0 "$FARM_PID" 2>/dev/null && kill -TERM "$FARM_PID"
    wait "$FARM_PID" || rc=$?
    FARM_PID=""
    if ((rc == 1)) && grep -Eq "already in use|dnsmasq exited" "$WORK/farm.err"; then
      return 1
    fi
    fail "mxfarm did not print its ready line (exit $rc)"
  fi
  exec 3<&-
  [[ $READY_LINE == ready\ dns=* ]] || fail "unexpected ready line: $READY_LINE"
}

# pick_net LO HI: a random 127.NET.0.0/16 with LO <= NET <= HI, and a DNS port of its own.
# Each script has its own band, disjoint from every other script's (the ctest
# integration_bands_disjoint checks it: write the band as two literal numbers after pick_net,
# in_band, farm_in_band or launch). Two runs of one test (two build trees, two engineers) usually
# pick different ranges, and in_band/farm_in_band/launch retry when they do not.
pick_net() {
  NET=$((RANDOM % ($2 - $1 + 1) + $1))
  BASE=127.$NET.0.0
  DNS_PORT=$((15000 + NET * 10 + RANDOM % 10))
}

# farm_in_band LO HI WRITE [mxfarm run options...]: starts the farm in a free range of the band.
# Up to six times: pick_net LO HI, WRITE (a command, usually a function of the script, that
# writes the scenario $SC for $NET, $BASE and $DNS_PORT), start_farm "$SC" "$REPORT" OPTIONS.
# Fails when every range tried was taken.
farm_in_band() {
  local lo=$1 hi=$2 write=$3
  shift 3
  for _ in 1 2 3 4 5 6; do
    pick_net "$lo" "$hi"
    "$write"
    start_farm "$SC" "$REPORT" "$@" && return 0
    echo "range $BASE or DNS port $DNS_PORT taken, trying another" >&2
  done
  fail "no free address range in 127.$lo-$hi.0.0"
}

# in_band LO HI TRY [ARGS...]: for a test that starts its farm itself: up to six times,
# pick_net LO HI and run TRY ARGS, which returns 0 when done and 1 when the range or DNS port
# was taken (it fails the test itself on anything else). Fails when every range tried was taken.
in_band() {
  local lo=$1 hi=$2
  shift 2
  for _ in 1 2 3 4 5 6; do
    pick_net "$lo" "$hi"
    "$@" && return 0
    echo "range $BASE or DNS port $DNS_PORT taken, trying another" >&2
  done
  fail "no free address range in 127.$lo-$hi.0.0"
}

# launch LO HI GEN_OPTIONS...: generates $SC with `mxfarm gen GEN_OPTIONS --base-ip --dns-port`
# in a free range of the band and starts the farm (report in $REPORT).
launch() {
  local lo=$1 hi=$2
  shift 2
  GEN_OPTIONS=("$@")
  farm_in_band "$lo" "$hi" gen_scenario
}
gen_scenario() {
  "$MXFARM" gen "${GEN_OPTIONS[@]}" --base-ip "$BASE" --dns-port "$DNS_PORT" >"$SC"
}

# stop_farm: SIGTERM, and mxfarm must exit 0.
stop_farm() {
  kill -TERM "$FARM_PID"
  local rc=0
  wait "$FARM_PID" || rc=$?
  FARM_PID=""
  expect_eq "$rc" 0 "mxfarm exit status after SIGTERM"
}

# ip_of SCENARIO DOMAIN [N]: address of the domain's Nth mail host (MX preference order).
ip_of() {
  "$PY" - "$@" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
hosts = {h["name"]: h for h in s["hosts"]}
d = next(d for d in s["domains"] if d["name"] == sys.argv[2])
names = [m["host"] for m in sorted(d.get("mx", []), key=lambda m: m["pref"])] or [d["host"]]
print(hosts[names[int(sys.argv[3]) if len(sys.argv) > 3 else 0]]["ip"])
EOF
}

# jq-like access to the report: report_get FILE EXPR (a Python expression over r).
report_get() {
  "$PY" -c "import json,sys; r=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$1" "$2"
}

# sw SERVER ARGS...: swaks up to RCPT, as an independent SMTP client.
sw() {
  swaks --quit-after RCPT --server "$1" --from probe@client.test --timeout 3 "${@:2}" 2>&1 || true
}

raw() { "$PY" "$HERE/mxfarm/rawsmtp.py" "$@" 2>&1 || true; }

now_ms() { date +%s%3N; }

# wait_listening IP PORT PID: true once something accepts TCP connections on IP:PORT; false when
# process PID exits first (e.g. its bind failed) or after 5 s. A readiness poll, for servers
# that print no ready line (microsocks).
wait_listening() {
  "$PY" - "$@" <<'PY'
import os, socket, sys, time
ip, port, pid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
end = time.monotonic() + 5
while time.monotonic() < end:
    try:
        socket.create_connection((ip, port), timeout=1).close()
        sys.exit(0)
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit(1)  # the server exited: bind failed
    time.sleep(0.01)  # readiness poll: it has not bound its socket yet
sys.exit(1)
PY
}

# skip_without_uring BACKEND: for BACKEND uring where the kernel or sandbox has no io_uring,
# ends the test as skipped (exit 0, "SKIP: ..."). Needs MXPROBE.
skip_without_uring() {
  [[ $1 == uring ]] || return 0
  "$MXPROBE" check --backend uring --dns 127.0.0.1:1 x@y.test >/dev/null 2>"$WORK/probe.err" && return 0
  if grep -q "cannot start the event loop" "$WORK/probe.err"; then
    echo "SKIP: io_uring unavailable here: $(cat "$WORK/probe.err")"
    exit 0
  fi
}

# free_port LO HI: a TCP port of 127.0.0.1 nobody listens on, drawn from LO..HI (each script that
# starts a redis-server has a range of its own: docs/testing.md); empty when none was found.
free_port() {
  "$PY" - "$1" "$2" <<'PY'
import random, socket, sys
lo, hi = int(sys.argv[1]), int(sys.argv[2])
for _ in range(100):
    p = random.randint(lo, hi)
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
}

# stop_redis [SIGNAL]: stops the redis-server started as REDIS_PID (TERM by default) and waits.
REDIS_PID=""
stop_redis() {
  [[ -n $REDIS_PID ]] || return 0
  kill "-${1:-TERM}" "$REDIS_PID" 2>/dev/null || true
  wait "$REDIS_PID" 2>/dev/null || true
  REDIS_PID=""
}

# wait_for SECONDS CMD...: runs CMD every 0.1 s until it succeeds (0) or SECONDS pass (1): the
# one readiness poll the scripts share, for conditions that give no event to block on.
wait_for() {
  local end=$(($(now_ms) + $1 * 1000))
  shift
  while ! "$@"; do
    (($(now_ms) < end)) || return 1
    sleep 0.1
  done
}
