#!/usr/bin/env bash
# A bulk job shared by a cluster (docs/cluster.md): one `mxprobe serve --cluster` and two
# `mxprobe worker --cluster`, each with a source address of its own (127.N.9.1-3) and the same
# --policy, against a redis-server this script starts (127.0.0.1, a free port of 23000-23999, its
# own directory, appendonly yes + appendfsync always so that a restart loses nothing, stopped by
# pid) and mxfarm (4 MX hosts, 12 domains of which 3 are catch-all; the farm's truth gives each
# address its verdict). The policy's per-MX-group limits (4 sessions, 10 connections/s, burst 4)
# are global: the farm must see them per MX host, not three times them. Four scenarios, each with
# a fresh farm, Redis and nodes:
#   1. 20,000 addresses: every input line once with the farm's verdict; each MX's peak
#      concurrency <= 4 and connections in any 1-s window <= 10 + 4 (and both limits reached, so
#      the checks can fail); one catch-all probe RCPT per domain across the cluster, no listed
#      address asked twice; the results' source_ip names all three nodes (in every scenario:
#      the node disrupted below had verified part of the job before).
#   2. a worker kill -9'ed when a third is done: the job finishes, every line once, verdicts right.
#   3. the owner (serve) kill -9'ed when a third is done and started again with the same --data
#      and --node-name: the job resumes and finishes, every line once; no address whose result
#      was in the journal at the kill is asked again (its RCPT count in the farm's report at the
#      end equals its count right after the kill, taken with SIGUSR1, and is at most 1).
#   4. redis-server kill -9'ed when a third is done and started again from its append-only file:
#      the job finishes, nothing lost or doubled.
# CLUSTER_JOBS_MODE=single runs scenario 1's list through one `mxprobe verify` (no cluster) and
# scenario 3 as `verify` killed and resumed, with the same checks except the spread over nodes:
# it validates the farm scenario, the list and the checks without the cluster.
# CLUSTER_JOBS_MODE=local3 runs scenario 1's list cut in three through three `mxprobe verify` at
# once, each from one of the three addresses and holding the policy alone: its politeness checks
# must FAIL (the farm sees up to three times the limits), which shows they can. CLUSTER_JOBS_N
# (default 10000) sizes scenarios 2-4, CLUSTER_JOBS_KEEP_GOING=1 goes on to the next scenario
# after a failed one (exit 1 at the end). Env MXFARM, MXPROBE. Band 127.235-239.0.0/16.
# Skipped (exit 77) without redis-server.
MXPROBE=${MXPROBE:?MXPROBE must name the mxprobe binary}
source "$(dirname "$0")/../lib.sh"

REDIS_SERVER=$(command -v redis-server || true)
if [[ -z $REDIS_SERVER ]]; then
  echo "SKIP: redis-server is not installed (apt-get install redis-server)"
  exit 77
fi
MODE=${CLUSTER_JOBS_MODE:-cluster}
[[ $MODE =~ ^(cluster|single|local3)$ ]] || fail "CLUSTER_JOBS_MODE: cluster, single or local3"
N1=20000
N=${CLUSTER_JOBS_N:-10000}
KEEP_GOING=${CLUSTER_JOBS_KEEP_GOING:-0}
# The global per-MX-group limits (and the farm's reply delay, which makes a session last long
# enough, about 0.4 s, that the session cap binds as well as the connection rate).
CAP=4 RATE=10 BURST=4 REPLY_DELAY_MS=8
t_start=$(now_ms)

trap 'stop_redis; cleanup' EXIT

# start_redis DIR: on REDIS_PORT (drawn on the first start of a scenario), persistence on: every
# write is in the append-only file before Redis answers it, so a kill -9 loses nothing.
start_redis() {
  mkdir -p "$1"
  "$REDIS_SERVER" --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly yes \
    --appendfsync always --daemonize no --dir "$1" >>"$1/log" 2>&1 &
  REDIS_PID=$!
  wait_listening 127.0.0.1 "$REDIS_PORT" "$REDIS_PID" ||
    fail "redis-server did not start: $(tail -5 "$1/log")"
  # Loading the append-only file: Redis answers -LOADING until it is in.
  wait_for 20 redis_pong || fail "redis-server did not answer PING"
}
redis_pong() { [[ $(redis_cli PING 2>/dev/null) == PONG ]]; }
redis_cli() { redis-cli -p "$REDIS_PORT" "$@"; }

# until_ok SECONDS WHAT CMD...: wait_for, failing with the nodes' last log lines after SECONDS.
until_ok() {
  local t=$1 what=$2
  shift 2
  wait_for "$t" "$@" && return 0
  [[ -n ${SCEN:-} ]] && tail -n 5 "$WORK/$SCEN"/*.err >&2 2>/dev/null
  fail "$what: not within $t s"
}

# --- The farm: 4 MX hosts (4 MX groups), 12 domains, 3 of them catch-all ---------------------
write_scenario() {
  "$PY" - "$SC" "$NET" "$DNS_PORT" "$REPLY_DELAY_MS" <<'PY'
import json, sys
path, net, port, delay = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
hosts = [{"name": f"mx{h}.jobs.test", "ip": f"127.{net}.1.{h}", "style": "postfix",
          "reply_delay_ms": delay} for h in range(1, 5)]
domains = []
for i in range(1, 13):
    # 1,200 mailboxes (one in ten disabled); `truth --count` adds nobodyK past them.
    boxes = {f"user{k}": ("disabled" if k % 10 == 0 else "ok") for k in range(1, 1201)}
    domains.append({"name": f"d{i}.jobs.test", "dns": "mx",
                    "mx": [{"pref": 10, "host": f"mx{(i - 1) % 4 + 1}.jobs.test"}],
                    "catch_all": i in (3, 6, 9), "mailboxes": boxes})
json.dump({"version": 1, "dns": {"ip": "127.0.0.1", "port": port, "ttl": 300},
           "hosts": hosts, "domains": domains}, open(path, "w"))
PY
}

# The policy: only the per-MX-group limits bind. Per source IP (local to a node) and per domain
# nothing lower than the group's; 40 recipients a session (and as many rejections: a fifth of the
# list is unknown mailboxes, which must not cut sessions short); no retries are needed (the farm
# sends no temporary failure), so every listed address is asked once.
cat >"$WORK/policy.toml" <<EOF
[global]
max_sessions = 100
builtin_providers = false

[defaults]
per_mx = { sessions = $CAP, connect_rate = $RATE, connect_burst = $BURST, rcpt_rate = 0 }
per_source = { sessions = $CAP, connect_rate = 0, rcpt_rate = 0 }
per_domain = { sessions = 20, connect_rate = 0, rcpt_rate = 0 }
session = { recipients = 40, rejections = 40 }
backoff = { initial_sessions = $CAP }
EOF

# Engine options every node (and the single verify) gets, set once the farm is up. A worker has
# no results cache; serve and verify are given --no-cache so that every address is asked.
ENGINE=()
engine_options() {
  ENGINE=(--dns "127.0.0.1:$DNS_PORT" --policy "$WORK/policy.toml"
    --helo probe.client.test --timeout-connect 5 --timeout-banner 5 --timeout-command 5)
  A1=127.$NET.9.1 A2=127.$NET.9.2 A3=127.$NET.9.3
}

# make_list NAME COUNT: $WORK/NAME/truth.csv (email,verdict,reason) and list.txt.
make_list() {
  mkdir -p "$WORK/$1"
  "$MXFARM" truth "$SC" --count "$2" --timeout-ms 5000 | tail -n +2 >"$WORK/$1/truth.csv"
  cut -d, -f1 "$WORK/$1/truth.csv" >"$WORK/$1/list.txt"
  expect_eq "$(wc -l <"$WORK/$1/list.txt")" "$2" "$1: list length"
}

# snapshot_farm FILE: the farm's report as it is now (SIGUSR1 writes it and the farm goes on).
snapshot_farm() {
  rm -f "$REPORT"
  kill -USR1 "$FARM_PID"
  until_ok 10 "the farm's report after SIGUSR1" test -s "$REPORT"
  mv "$REPORT" "$1"
}

# journal_lines DB OUT: the lines with a result in a job journal (read after its writer died).
journal_lines() {
  "$PY" - "$1" "$2" <<'PY'
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
with open(sys.argv[2], "w") as f:
    for (line,) in db.execute("SELECT line FROM results ORDER BY line"):
        print(line, file=f)
PY
}

# journal_has_lines DB: the live journal already holds a result (read-only, beside its writer).
journal_has_lines() {
  [[ -f $1 ]] || return 1
  journal_lines "$1" "$WORK/journal-now.txt" 2>/dev/null && [[ -s $WORK/journal-now.txt ]]
}

# --- Nodes ---------------------------------------------------------------------------------------
# The nodes run on both event-loop backends at once: worker-1 on libuv, serve-1 and worker-2 on
# io_uring where the kernel allows it (auto), so one cluster mixes the two.
declare -A WPID
worker_start() {  # worker_start NAME SOURCE-IP BACKEND
  "$MXPROBE" worker --cluster "$CLUSTER" --node-name "$1" --source-ip "$2" --backend "$3" \
    "${ENGINE[@]}" 2>>"$WORK/$SCEN/$1.err" &
  WPID[$1]=$!
  SERVE_PIDS+=("$!")
}
# serve2_start: a second serve node (scenario 1), which owns no job: it must list the job and
# hand its results over (a redirect to the owner). Sets URL2.
serve2_start() {
  "$MXPROBE" serve --cluster "$CLUSTER" --node-name serve-2 --source-ip "$A3" \
    --listen 127.0.0.1:0 --data "$WORK/$SCEN/data2" --no-cache "${ENGINE[@]}" \
    2>>"$WORK/$SCEN/serve-2.err" &
  WPID[serve-2]=$!
  SERVE_PIDS+=("$!")
  until_ok 20 "serve-2 listening" grep -q "listening on" "$WORK/$SCEN/serve-2.err"
  URL2=$(grep -Eo 'listening on http://[0-9.]+:[0-9]+/' "$WORK/$SCEN/serve-2.err" | head -1 | cut -d' ' -f3)
}
owner_start() {
  serve_start "$SCEN/serve-1" --cluster "$CLUSTER" --node-name serve-1 --source-ip "$A1" \
    --data "$WORK/$SCEN/data" --no-cache "${ENGINE[@]}"
}
listed() {  # listed COUNT: GET /v1/cluster lists COUNT nodes
  req GET /v1/cluster
  [[ $CODE == 200 ]] && (($("$PY" -c 'import json,sys; print(len(json.loads(sys.argv[1])["nodes"]))' "$BODY") == $1))
}
stop_nodes() {
  local p
  for p in "${SERVE_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${SERVE_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  SERVE_PIDS=()
  SERVE_PID=""
}

# job_poll: GET /v1/jobs/$JOB; sets STATE and DONE.
job_poll() {
  req GET "/v1/jobs/$JOB"
  [[ $CODE == 200 ]] || return 1
  STATE=$(grep -Eo '"state":"[a-z]+"' <<<"$BODY" | cut -d'"' -f4)
  DONE=$(grep -Eo '"done":[0-9]+' <<<"$BODY" | cut -d: -f2)
}
job_ended() { job_poll && [[ $STATE != running && $STATE != paused ]]; }
third_done() { job_poll && ((DONE >= COUNT / 3)); }

# --- The checks (Python over the files of one scenario) ---------------------------------------
cat >"$WORK/check.py" <<'PY'
"""check.py DIR COUNT MODE SCENARIO CAP RATE BURST NODE-IPS: the checks of one scenario.
DIR holds list.txt, truth.csv, results.jsonl, report.json (the farm's, at the end) and, for the
restart scenario, killed-lines.txt and report-at-kill.json."""
import collections, csv, json, os, sys
d, count, mode, scen = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
cap, rate, burst = int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
node_ips = sys.argv[8].split(",")
bad, checks = [], 0
def check(cond, what):
    global checks
    checks += 1
    if not cond:
        bad.append(what)
    return cond

listed = [l.rstrip("\n") for l in open(f"{d}/list.txt")]
truth = {r[0]: (r[1], r[2]) for r in csv.reader(open(f"{d}/truth.csv"))}
R = json.load(open(f"{d}/report.json"))
recs = [json.loads(l) for l in open(f"{d}/results.jsonl") if l.strip()]

# Every input line exactly once, the right address on it, the farm's verdict.
lines = collections.Counter(r["line"] for r in recs)
doubled = sorted(l for l, n in lines.items() if n > 1)
missing = sorted(set(range(1, count + 1)) - set(lines))
check(not doubled, f"{len(doubled)} lines more than once: {doubled[:10]}")
check(not missing, f"{len(missing)} lines missing: {missing[:10]}")
check(len(recs) == count, f"{len(recs)} records for {count} lines")
wrong_addr = [r["line"] for r in recs if 1 <= r["line"] <= count and r["email"] != listed[r["line"] - 1]]
check(not wrong_addr, f"{len(wrong_addr)} records with another line's address: {wrong_addr[:5]}")
wrong = [f"{r['email']}: {r['verdict']}/{r['reason']}, want {'/'.join(truth.get(r['email'], ('?', '?')))}"
         for r in recs if (r["verdict"], r["reason"]) != truth.get(r["email"])]
check(not wrong, f"{len(wrong)} wrong verdicts: {wrong[:5]}")

# Politeness: the global per-MX-group limits as the farm saw them (each MX host is a group).
peaks, rates = {}, {}
for h, m in sorted(R["mx"].items()):
    peaks[h], rates[h] = m["peak_concurrent"], m["peak_connections_per_second"]
    check(m["peak_concurrent"] <= cap, f"{h}: {m['peak_concurrent']} sessions at once, cap {cap}")
    # Redis grants the tokens (GCRA: burst + rate x T in any T seconds); a node uses a token of
    # its lease a moment later, so a window of the farm's clock may hold one lease more, at most
    # a burst (docs/cluster.md, "Global politeness"). Three nodes each holding the limit alone
    # reach 3 x (rate + burst) a second (CLUSTER_JOBS_MODE=local3).
    check(m["peak_connections_per_second"] <= rate + 2 * burst,
          f"{h}: {m['peak_connections_per_second']} connections in one second, limit {rate}+{burst}+{burst}")
    conns = m.get("timeline", {}).get("connections", [])
    for i in range(max(0, len(conns) - 4)):
        check(sum(conns[i:i + 5]) <= rate * 5 + 2 * burst,
              f"{h}: {sum(conns[i:i + 5])} connections in 5 s from second {i}: over {rate}/s + {burst} + {burst}")
    first = next((i for i, n in enumerate(conns) if n), 0)
    span = len(conns) - first  # whole seconds touched
    check(sum(conns) <= burst + rate * span,
          f"{h}: {sum(conns)} connections in {span} s: over {burst} + {rate}/s")
    check(m["data_commands"] == 0, f"{h}: DATA sent")
if scen == "1":  # the limits bound (a test that cannot fail proves nothing)
    check(max(peaks.values()) >= cap, f"peak concurrency {peaks}: the cap {cap} was never reached")
    check(max(rates.values()) >= rate, f"peak connections/s {rates}: the rate {rate} never bound")

# Catch-all probes: RCPTs of addresses not in the list, per domain.
by_addr = R["rcpt_by_address"]
check(not R["rcpt_by_address_truncated"], "rcpt_by_address truncated")
inlist = set(listed)
probes = collections.Counter()
for a, n in by_addr.items():
    if a not in inlist:
        probes[a.split("@")[1]] += n
catch_all = sorted({e.split("@")[1] for e, t in truth.items() if t[1] == "catch_all"})
if scen == "1":
    for dom in catch_all:
        check(probes[dom] == 1, f"{dom} (catch-all): {probes[dom]} probe RCPTs, want 1")
    for dom, n in probes.items():
        check(n <= 1, f"{dom}: {n} probe RCPTs, want at most 1")
    twice = sorted(a for a in inlist if by_addr.get(a, 0) > 1)
    check(not twice, f"{len(twice)} listed addresses asked more than once: {twice[:5]}")
    unasked = sorted(a for a in inlist if truth[a][1] != "catch_all" and by_addr.get(a, 0) == 0)
    check(not unasked, f"{len(unasked)} addresses never asked: {unasked[:5]}")

# Work spread over the nodes: the results' source_ip, and the farm's clients.
srcs = collections.Counter(r.get("source_ip") for r in recs)
if mode == "cluster" and scen == "1":
    for ip in node_ips:
        check(srcs[ip] > 0, f"no result from node address {ip}: source_ip counts {dict(srcs)}")
        check(ip in R["clients"], f"the farm saw no connection from {ip}")
# 2-4 check loss and duplication, not the share: a node killed, restarted late, or waiting on a
# dead node's catch-all claim may end up with none of the work, which is right.
check(set(srcs) <= set(node_ips), f"results from unknown sources: {set(srcs) - set(node_ips)}")

# The owner restarted: nothing in the journal at the kill was asked again.
if os.path.exists(f"{d}/killed-lines.txt"):
    written = [listed[int(l) - 1] for l in open(f"{d}/killed-lines.txt")]
    at_kill = json.load(open(f"{d}/report-at-kill.json"))["rcpt_by_address"]
    check(0 < len(written) < count, f"{len(written)} of {count} lines in the journal at the kill")
    again = [f"{a}: {at_kill.get(a, 0)} -> {by_addr.get(a, 0)}" for a in written
             if by_addr.get(a, 0) != at_kill.get(a, 0) or by_addr.get(a, 0) > 1]
    check(not again, f"{len(again)} addresses asked again after their result was written: {again[:5]}")
    print(f"{len(written)} lines were in the journal at the kill; none asked again" if not again else "")

print(f"results by source_ip {dict(srcs)}; peak sessions per MX {peaks}; peak connections/s {rates}; "
      f"probe RCPTs {dict(probes)}")
for b in bad:
    print("MISMATCH", b)
print(f"{checks} checks, {len(bad)} failed")
sys.exit(1 if bad else 0)
PY

FAILED=()
# verdict NAME: runs check.py over $WORK/$SCEN.
verdict() {
  local rc=0 n
  "$PY" "$WORK/check.py" "$WORK/$SCEN" "$COUNT" "$MODE" "$1" "$CAP" "$RATE" "$BURST" \
    "$NODE_IPS" >"$WORK/$SCEN/check.out" || rc=$?
  cat "$WORK/$SCEN/check.out"
  n=$(awk '/ checks, / {print $1}' "$WORK/$SCEN/check.out")
  CHECKS=$((CHECKS + ${n:-0}))
  if ((rc == 0)); then
    echo "PASS scenario $SCEN ($(($(now_ms) - t_scen)) ms)"
  else
    FAILED+=("$SCEN")
    echo "FAIL scenario $SCEN" >&2
    for f in "$WORK/$SCEN"/*.err; do [[ -e $f ]] && { echo "--- $f" >&2; tail -5 "$f" >&2; }; done
    # The mismatches last, where a report that keeps only the end of the output still has them.
    grep '^MISMATCH' "$WORK/$SCEN/check.out" >&2 || true
    ((KEEP_GOING)) || fail "scenario $SCEN"
  fi
}

# --- One scenario in the cluster ---------------------------------------------------------------
# cluster_scenario NAME NUMBER COUNT DISRUPTION (none, worker, owner, redis)
cluster_scenario() {
  SCEN=$1 COUNT=$3
  local num=$2 what=$4 data
  t_scen=$(now_ms)
  farm_in_band 235 239 write_scenario
  engine_options
  NODE_IPS=$A1,$A2,$A3
  make_list "$SCEN" "$COUNT"
  REDIS_PORT=$(free_port 23000 23999)
  [[ -n $REDIS_PORT ]] || fail "no free port for redis-server"
  start_redis "$WORK/$SCEN/redis"
  CLUSTER="redis://127.0.0.1:$REDIS_PORT/0"
  owner_start
  worker_start worker-1 "$A2" uv
  # Scenario 1's third node is a second serve node (it verifies as a worker does, and answers
  # for the job it does not own); the others' is a worker.
  if [[ $what == none ]]; then serve2_start; else worker_start worker-2 "$A3" auto; fi
  until_ok 20 "$SCEN: three nodes listed" listed 3

  req POST /v1/jobs --data-binary "@$WORK/$SCEN/list.txt"
  expect_eq "$CODE" 201 "$SCEN: POST /v1/jobs ($BODY)"
  JOB=$(grep -Eo '"id":[0-9]+' <<<"$BODY" | head -1 | cut -d: -f2)
  if [[ $what != none ]]; then
    until_ok 60 "$SCEN: a third of the job done" third_done
    # The owner's kill must find results in its journal, or "none asked again" proves nothing:
    # its writer commits on its own schedule, which a loaded (sanitizer) run can put behind the
    # records already counted done.
    [[ $what == owner ]] &&
      until_ok 60 "$SCEN: results in the owner's journal" journal_has_lines "$WORK/$SCEN/data/$JOB/journal.db"
    echo "$SCEN: $DONE of $COUNT done: disrupting ($what)"
    case $what in
      worker)
        kill -KILL "${WPID[worker-2]}"
        wait "${WPID[worker-2]}" 2>/dev/null || true
        ;;
      owner)
        serve_stop KILL
        data=$WORK/$SCEN/data/$JOB
        journal_lines "$data/journal.db" "$WORK/$SCEN/killed-lines.txt"
        snapshot_farm "$WORK/$SCEN/report-at-kill.json"
        echo "$SCEN: $(wc -l <"$WORK/$SCEN/killed-lines.txt") lines in the journal at the kill"
        owner_start  # the same --data and --node-name
        ;;
      redis)
        stop_redis KILL
        start_redis "$WORK/$SCEN/redis"
        ;;
    esac
  fi
  until_ok 120 "$SCEN: the job ends" job_ended
  expect_eq "$STATE" finished "$SCEN: job state ($BODY)"
  curl -sS -o "$WORK/$SCEN/results.jsonl" "${URL}v1/jobs/$JOB/results" || fail "$SCEN: download"
  if [[ $what == none ]]; then
    # Any serve node answers for any job: serve-2 lists it (owned by serve-1), answers GET with
    # it, and its results are a redirect to the owner that curl -L follows to the same bytes.
    local listing code
    listing=$(curl -sS "${URL2}v1/jobs")
    expect_eq "$("$PY" -c 'import json,sys; j=[x for x in json.loads(sys.argv[1])["jobs"] if x["id"]==int(sys.argv[2])]; print(j[0]["node"] if j else "missing")' "$listing" "$JOB")" \
      serve-1 "$SCEN: serve-2 lists job $JOB as serve-1's"
    code=$(curl -sS -o /dev/null -w '%{http_code}' "${URL2}v1/jobs/$JOB")
    expect_eq "$code" 200 "$SCEN: GET /v1/jobs/$JOB on serve-2"
    code=$(curl -sS -o /dev/null -w '%{http_code}' "${URL2}v1/jobs/$JOB/results")
    expect_eq "$code" 307 "$SCEN: results of serve-1's job on serve-2"
    curl -sSL -o "$WORK/$SCEN/results-via-2.jsonl" "${URL2}v1/jobs/$JOB/results" ||
      fail "$SCEN: download through serve-2"
    expect_eq "$(cmp -s "$WORK/$SCEN/results.jsonl" "$WORK/$SCEN/results-via-2.jsonl" && echo same)" \
      same "$SCEN: the results through serve-2 (redirected) are the owner's"
  fi
  stop_nodes
  stop_redis
  stop_farm
  mv "$REPORT" "$WORK/$SCEN/report.json"
  verdict "$num"
}

# --- The same without the cluster: `mxprobe verify` ------------------------------------------
# single_scenario NAME NUMBER COUNT DISRUPTION (none, or owner: verify killed, then --resume)
single_scenario() {
  SCEN=$1 COUNT=$3
  local num=$2 what=$4 pid rc
  t_scen=$(now_ms)
  farm_in_band 235 239 write_scenario
  engine_options
  NODE_IPS=$A1
  make_list "$SCEN" "$COUNT"
  local run=("$MXPROBE" verify --input "$WORK/$SCEN/list.txt" --output "$WORK/$SCEN/results.jsonl"
    --no-progress --no-cache --source-ip "$A1" "${ENGINE[@]}")
  if [[ $what == owner ]]; then
    "${run[@]}" 2>"$WORK/$SCEN/verify.err" &
    pid=$!
    local out=$WORK/$SCEN/results.jsonl
    # A third of the list in the output (every output line is in the journal already).
    until_ok 60 "$SCEN: a third done" bash -c "[[ -f '$out' ]] && (( \$(wc -l <'$out') >= $COUNT / 3 ))"
    kill -KILL "$pid"
    wait "$pid" 2>/dev/null || true
    journal_lines "$out.journal" "$WORK/$SCEN/killed-lines.txt"
    snapshot_farm "$WORK/$SCEN/report-at-kill.json"
    echo "$SCEN: $(wc -l <"$WORK/$SCEN/killed-lines.txt") lines in the journal at the kill"
    "${run[@]}" --resume 2>>"$WORK/$SCEN/verify.err" || fail "$SCEN: verify --resume failed"
  else
    rc=0
    "${run[@]}" 2>"$WORK/$SCEN/verify.err" || rc=$?
    ((rc == 0 || rc == 1)) || fail "$SCEN: verify exit $rc: $(tail -3 "$WORK/$SCEN/verify.err")"
  fi
  stop_farm
  mv "$REPORT" "$WORK/$SCEN/report.json"
  verdict "$num"
}

# --- Three nodes enforcing the limits alone (what the cluster must not do) ----------------------
# local3_scenario NAME NUMBER COUNT: the list cut in three (line mod 3), each third through its own
# `mxprobe verify` from its own source address, at the same time. Each holds the policy by
# itself, so together they reach an MX up to three times as hard: the politeness checks must
# fail here (CLUSTER_JOBS_MODE=local3 shows that the test can see a limit that is not global).
local3_scenario() {
  SCEN=$1 COUNT=$3
  local num=$2 k pids=() ips
  t_scen=$(now_ms)
  farm_in_band 235 239 write_scenario
  engine_options
  NODE_IPS=$A1,$A2,$A3
  make_list "$SCEN" "$COUNT"
  ips=("$A1" "$A2" "$A3")
  for k in 0 1 2; do
    awk -v k=$k 'NR % 3 == k' "$WORK/$SCEN/list.txt" >"$WORK/$SCEN/part$k.txt"
    "$MXPROBE" verify --input "$WORK/$SCEN/part$k.txt" --output "$WORK/$SCEN/part$k.jsonl" \
      --no-progress --no-cache --source-ip "${ips[k]}" "${ENGINE[@]}" 2>"$WORK/$SCEN/verify$k.err" &
    pids+=($!)
  done
  for k in 0 1 2; do wait "${pids[k]}" || true; done
  # One results file in the list's line numbers: part k's line j is line 3(j-1)+k (k=0: 3j).
  "$PY" - "$WORK/$SCEN" <<'PY'
import json, sys
d = sys.argv[1]
with open(f"{d}/results.jsonl", "w") as out:
    for k in range(3):
        for l in open(f"{d}/part{k}.jsonl"):
            r = json.loads(l)
            r["line"] = 3 * r["line"] if k == 0 else 3 * (r["line"] - 1) + k
            out.write(json.dumps(r) + "\n")
PY
  stop_farm
  mv "$REPORT" "$WORK/$SCEN/report.json"
  verdict "$num"
}

if [[ $MODE == local3 ]]; then
  local3_scenario s1-local-limits 1 "$N1"
elif [[ $MODE == single ]]; then
  single_scenario s1-single 1 "$N1" none
  single_scenario s3-single-killed 3 "$N" owner
else
  cluster_scenario s1-spread 1 "$N1" none
  cluster_scenario s2-worker-killed 2 "$N" worker
  cluster_scenario s3-owner-killed 3 "$N" owner
  cluster_scenario s4-redis-killed 4 "$N" redis
fi
((${#FAILED[@]} == 0)) || fail "scenarios failed: ${FAILED[*]}"
echo "cluster_jobs ($MODE): $CHECKS checks passed in $(($(now_ms) - t_start)) ms"
