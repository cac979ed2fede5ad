#!/usr/bin/env bash
# Cluster nodes (docs/cluster.md): `mxprobe serve --cluster` and two `mxprobe worker`s register
# with a redis-server this script starts (127.0.0.1, a free port from 20000-22999, its own
# directory, --save '' --appendonly no, stopped by pid). GET /v1/cluster lists the three with
# their roles and source addresses; a worker stopped with SIGTERM is gone at once; one killed
# with SIGKILL is gone once its record's TTL (10 s) has passed; Redis stopped: /metrics says
# mxprobe_cluster_redis_up 0 and the log says so once, Redis started again (empty): the nodes
# are listed again by their heartbeats and redis_up is 1; a wrong password and a missing one end
# a worker with exit 6, a bad URL with 2; an unreachable Redis does not stop a worker from
# starting; without --cluster /v1/cluster is 404 and no cluster series appear. Source addresses
# from 127.245-249.0.0/16 (announced, never used: no mail is verified). Env MXPROBE (and MXFARM
# for lib.sh). Skipped (exit 77) without redis-server.
MXPROBE=${MXPROBE:?MXPROBE must name the mxprobe binary}
source "$(dirname "$0")/../lib.sh"

REDIS_SERVER=$(command -v redis-server || true)
if [[ -z $REDIS_SERVER ]]; then
  echo "SKIP: redis-server is not installed (apt-get install redis-server)"
  exit 77
fi

pick_net 245 249
REDIS_PASS=s3cret
trap 'stop_redis; cleanup' EXIT

REDIS_PORT=$(free_port 20000 22999)
[[ -n $REDIS_PORT ]] || fail "no free port for redis-server"
mkdir -p "$WORK/redis"
start_redis() {
  "$REDIS_SERVER" --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize no --dir "$WORK/redis" --requirepass "$REDIS_PASS" \
    >>"$WORK/redis/log" 2>&1 &
  REDIS_PID=$!
  wait_listening 127.0.0.1 "$REDIS_PORT" "$REDIS_PID" ||
    fail "redis-server did not start: $(tail -5 "$WORK/redis/log")"
}
start_redis
CLUSTER="redis://:$REDIS_PASS@127.0.0.1:$REDIS_PORT/0"
A1=127.$NET.0.1 A2=127.$NET.0.2 A3=127.$NET.0.3 A4=127.$NET.0.4 A5=127.$NET.0.5

# until SECONDS WHAT CMD...: polls CMD (every 0.1 s) until it succeeds; fails after SECONDS.
until_ok() {
  local t=$1 what=$2
  shift 2
  wait_for "$t" "$@" || fail "$what: not within $t s"
}

# worker_start NAME ARGS...: `mxprobe worker --cluster $CLUSTER --node-name NAME ARGS`, stderr
# in $WORK/NAME.err; its pid in WPID[NAME] (stopped on exit with the servers).
declare -A WPID
worker_start() {
  local name=$1
  shift
  "$MXPROBE" worker --cluster "$CLUSTER" --node-name "$name" --dns 127.0.0.1:1 "$@" \
    2>"$WORK/$name.err" &
  WPID[$name]=$!
  SERVE_PIDS+=("$!")
}
logged() { grep -Eq -- "$2" "$WORK/$1.err"; }  # logged NAME REGEX

# Nodes listed by GET /v1/cluster: "name role addr,addr" lines.
cluster_nodes() {
  req GET /v1/cluster
  [[ $CODE == 200 ]] || return 1
  NODES=$("$PY" -c '
import json, sys
for n in json.loads(sys.argv[1])["nodes"]:
    print(n["name"], n["role"], ",".join(n["addresses"]))' "$BODY")
}
listed() { cluster_nodes && [[ $(grep -c . <<<"$NODES") == "$1" ]]; }  # listed COUNT
has_node() { cluster_nodes && grep -q "^$1 " <<<"$NODES"; }
lacks_node() { cluster_nodes && ! grep -q "^$1 " <<<"$NODES"; }
metric() { awk -v k="$2" '$1 == k {print $2}' <<<"$1"; }  # metric TEXT NAME
serve_metric_is() {  # serve_metric_is NAME VALUE
  local m
  m=$(curl -sS "${URL}metrics") || return 1
  [[ $(metric "$m" "$1") == "$2" ]]
}

# --- Three nodes -------------------------------------------------------------------------------
serve_start serve-1 --cluster "$CLUSTER" --node-name serve-1 --source-ip "$A1" \
  --dns 127.0.0.1:1 --data "$WORK/data" --no-cache
SERVE1=$SERVE_PID
worker_start worker-1 --source-ip "$A2,$A3"
worker_start worker-2 --source-ip "$A4" --metrics-listen 127.0.0.1:0
until_ok 20 "three nodes listed" listed 3
expect_match "$NODES" "^serve-1 serve $A1\$" "serve-1 listed with its role and address"
expect_match "$NODES" "^worker-1 worker $A2,$A3\$" "worker-1 listed with both addresses"
expect_match "$NODES" "^worker-2 worker $A4\$" "worker-2 listed"
req GET /v1/cluster
expect_match "$BODY" '"node":"serve-1"' "/v1/cluster names the node answering"
expect_match "$BODY" '"version":"[0-9]+\.[0-9]+\.[0-9]+"' "each node's version"
expect_match "$BODY" '"heartbeat_age_s":[0-9.]+' "each node's heartbeat age"
expect_match "$BODY" '"load":\{[^}]*"sessions":0' "load figures"
expect_no_match "$BODY" "$REDIS_PASS" "no password in /v1/cluster"
# The view's readings (every 2 s): the providers' groups, idle, and the chunk queue, empty.
view_read() {
  req GET /v1/cluster
  [[ $BODY == *'"chunks":{"waiting":0,"claimed":0'* &&
     $BODY == *'"group":"provider:google","sessions":0,"sessions_limit":'* ]]
}
until_ok 5 "groups and chunks in /v1/cluster" view_read
ok
expect_match "$(cat "$WORK/worker-1.err")" "registered as worker-1 \(worker; source addresses: $A2, $A3\)" \
  "worker-1 says it is registered"
expect_match "$(cat "$WORK/worker-1.err")" "taking work: holding [0-9]+ chunks" "worker-1 says it takes work"
expect_no_match "$(cat "$WORK"/*.err)" "$REDIS_PASS" "no password in any log"

# Metrics: serve's, and worker-2's own listener.
until_ok 5 "mxprobe_cluster_nodes 3 on serve" serve_metric_is mxprobe_cluster_nodes 3
M=$(curl -sS "${URL}metrics")
expect_eq "$(metric "$M" mxprobe_cluster_redis_up)" 1 "serve: redis_up"
expect_eq "$(metric "$M" mxprobe_cluster_node_up)" 1 "serve: node_up"
expect_match "$M" '^mxprobe_cluster_redis_rtt_seconds_count [1-9]' "serve: Redis round trips"
expect_match "$M" '^mxprobe_cluster_node_info\{node="serve-1",role="serve",redis="redis://:\*\*\*@' \
  "serve: node_info with the password masked"
for name in $(grep -Eo '^mxprobe_cluster_[a-z_]+' <<<"$M" | sed -E 's/_(bucket|sum|count)$//' | sort -u); do
  grep -q "\`$name" "$ROOT/docs/api.md" || fail "metric $name is not in docs/api.md"
  ok
done
W2URL=$(grep -Eo 'metrics on http://[0-9.]+:[0-9]+/' "$WORK/worker-2.err" | sed 's/metrics on //')
[[ -n $W2URL ]] || fail "worker-2 printed no metrics address"
W2M=$(curl -sS "${W2URL}metrics")
expect_eq "$(metric "$W2M" mxprobe_cluster_node_up)" 1 "worker-2 metrics: registered"
expect_eq "$(metric "$W2M" mxprobe_cluster_redis_up)" 1 "worker-2 metrics: redis_up"
expect_match "$W2M" '^mxprobe_cluster_node_info\{node="worker-2",role="worker"' "worker-2 node_info"
expect_match "$(curl -sS "${W2URL}v1/cluster")" '"name":"worker-1"' "worker-2 lists the cluster too"

# --- SIGTERM: gone at once; SIGKILL: gone after the TTL --------------------------------------
kill -TERM "${WPID[worker-1]}"
rc=0
wait "${WPID[worker-1]}" || rc=$?
expect_eq "$rc" 0 "worker-1 exit status after SIGTERM"
cluster_nodes || fail "GET /v1/cluster after worker-1 left"
expect_no_match "$NODES" '^worker-1 ' "worker-1 gone as soon as it exited"
expect_match "$(cat "$WORK/worker-1.err")" "left the cluster \(record deleted\)" "worker-1 says it left"

worker_start worker-3 --source-ip "$A5"
until_ok 20 "worker-3 listed" has_node worker-3
kill -KILL "${WPID[worker-3]}"
wait "${WPID[worker-3]}" 2>/dev/null || true
killed_at=$(now_ms)
cluster_nodes || fail "GET /v1/cluster after worker-3 was killed"
expect_match "$NODES" '^worker-3 ' "a killed worker stays listed until its record expires"
until_ok 15 "worker-3 gone after its TTL" lacks_node worker-3
gone_ms=$(($(now_ms) - killed_at))
((gone_ms >= 7000)) || fail "worker-3 gone after $gone_ms ms, before its TTL (10 s, heartbeat 2 s)"
ok
until_ok 5 "serve logs worker-3's departure" logged serve-1 "node worker-3 left"

# --- Redis goes away and comes back ----------------------------------------------------------
stop_redis
until_ok 10 "redis_up 0 on serve" serve_metric_is mxprobe_cluster_redis_up 0
until_ok 5 "serve logs Redis down" logged serve-1 "cluster: Redis redis://:\*\*\*@127.0.0.1:$REDIS_PORT/0 is down: .*; retrying in [0-9.]+ s"
req GET /v1/cluster
expect_eq "$CODE" 503 "/v1/cluster while Redis is down"
expect_match "$BODY" '"error":"redis_unavailable"' "503 says why"
W2M=$(curl -sS "${W2URL}metrics")
expect_eq "$(metric "$W2M" mxprobe_cluster_redis_up)" 0 "worker-2 metrics: redis_up 0"
# Several reconnect attempts fail meanwhile (back-off from 0.2 s): still one line each.
until_ok 10 "failed attempts counted" bash -c \
  "curl -sS '${URL}metrics' | awk '\$1 == \"mxprobe_cluster_redis_failures_total\" && \$2 >= 4 {f=1} END {exit !f}'"
expect_eq "$(grep -c 'is down:' "$WORK/serve-1.err")" 1 "one 'down' line per outage (serve)"
expect_eq "$(grep -c 'is down:' "$WORK/worker-2.err")" 1 "one 'down' line per outage (worker-2)"

start_redis  # empty: no persistence; the heartbeats write the records again
until_ok 15 "serve-1 and worker-2 listed again" listed 2
expect_match "$NODES" "^serve-1 serve $A1\$" "serve-1 back"
expect_match "$NODES" "^worker-2 worker $A4\$" "worker-2 back"
until_ok 5 "redis_up 1 again" serve_metric_is mxprobe_cluster_redis_up 1
M=$(curl -sS "${URL}metrics")
expect_match "$M" '^mxprobe_cluster_redis_reconnects_total [1-9]' "the reconnect counted"
expect_match "$(cat "$WORK/serve-1.err")" "Redis redis://:\*\*\*@127.0.0.1:$REDIS_PORT/0 is back" \
  "serve logs Redis back"
expect_eq "$(grep -c 'is back' "$WORK/worker-2.err")" 1 "worker-2 logs Redis back once"

# --- Start-up errors -------------------------------------------------------------------------
# run_worker NAME URL: runs a worker that must end by itself; sets RC and ERR.
run_worker() {
  RC=0
  timeout 20 "$MXPROBE" worker --cluster "$2" --node-name "$1" --dns 127.0.0.1:1 \
    2>"$WORK/$1.err" || RC=$?
  ERR=$(cat "$WORK/$1.err")
}
run_worker bad-pass "redis://:wrong@127.0.0.1:$REDIS_PORT/0"
expect_eq "$RC" 6 "wrong password: exit 6"
expect_match "$ERR" "refused this node: AUTH refused: WRONGPASS" "wrong password: says so"
expect_no_match "$ERR" "wrong@" "wrong password: not shown"
run_worker no-pass "redis://127.0.0.1:$REDIS_PORT/0"
expect_eq "$RC" 6 "no password: exit 6"
expect_match "$ERR" "refused this node: .*NOAUTH" "no password: says so"
run_worker bad-url "rediss://127.0.0.1:$REDIS_PORT"
expect_eq "$RC" 2 "TLS URL: usage error"
expect_match "$ERR" "--cluster: .*rediss" "TLS URL: says why"
# A live node's name: refused once its holder has kept it past one TTL (a node restarted at once
# after a kill -9 finds its own old record and waits it out).
RC=0
timeout 30 "$MXPROBE" worker --cluster "$CLUSTER" --node-name worker-2 --dns 127.0.0.1:1 \
  2>"$WORK/dup.err" || RC=$?
expect_eq "$RC" 6 "a live node's name: exit 6 after one TTL"
expect_match "$(cat "$WORK/dup.err")" "node name worker-2 is held by a live node" "duplicate name said"

# Unreachable Redis at start-up: the worker starts, says so, keeps trying; SIGTERM ends it (0).
DEAD_PORT=$(free_port 20000 22999)
"$MXPROBE" worker --cluster "redis://127.0.0.1:$DEAD_PORT" --node-name lonely \
  --dns 127.0.0.1:1 2>"$WORK/lonely.err" &
LONELY=$!
SERVE_PIDS+=("$LONELY")
until_ok 10 "lonely says Redis is not reachable" logged lonely "is not reachable yet: connect: .*; retrying in"
kill -0 "$LONELY" 2>/dev/null || fail "a worker with an unreachable Redis exited"
ok
kill -TERM "$LONELY"
rc=0
wait "$LONELY" || rc=$?
expect_eq "$rc" 0 "lonely: exit 0 after SIGTERM"

# serve-1 stops with SIGTERM: its record goes at once (checked from worker-2's listener).
SERVE_PID=$SERVE1
serve_stop TERM
expect_eq "$SERVE_RC" 0 "serve-1 exit status"
expect_no_match "$(curl -sS "${W2URL}v1/cluster")" '"name":"serve-1"' "serve-1 gone at once"

# --- Without --cluster -----------------------------------------------------------------------
serve_start plain --dns 127.0.0.1:1 --data "$WORK/data2" --no-cache
req GET /v1/cluster
expect_eq "$CODE" 404 "/v1/cluster without --cluster"
expect_match "$BODY" '"error":"no_cluster"' "404 says why"
expect_no_match "$(curl -sS "${URL}metrics")" '^mxprobe_cluster_' "no cluster series without --cluster"

echo "cluster_nodes: $CHECKS checks passed"
