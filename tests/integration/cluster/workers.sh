#!/usr/bin/env bash
# Two `mxprobe worker`s verify a job's chunks from a redis-server this script starts (127.0.0.1,
# a free port from 26000-26999, its own directory, no persistence, stopped by pid) against
# mxfarm (real dnsmasq), on one event-loop backend. The job's owner is a small Python RESP
# client here (the serve side does not push chunks yet): it pushes the chunks (the first with
# {"transcripts": true}) and reads the results stream. Checks: every line exactly once, with
# mxfarm's truth for its verdict and reason; transcripts only in the chunk that asked; each
# domain's catch-all fact written to Redis once for the whole cluster (the facts' keys equal the
# probes the two workers shared, and a worker used facts the other learned); both workers did
# chunks; SIGTERM stops both with exit 0; a third worker stopped while it holds a chunk (its
# server greets after 60 s) hands it back at once (pending, idle for a day). Usage: workers.sh uring|uv (env MXFARM, MXPROBE).
# Range 127.240-244.0.0/16. Skipped (exit 77) without redis-server.
MXPROBE=${MXPROBE:?MXPROBE must name the mxprobe binary}
source "$(dirname "$0")/../lib.sh"
BACKEND=${1:?backend}
LAB_POLICY=$ROOT/tools/policy/lab.toml

REDIS_SERVER=$(command -v redis-server || true)
if [[ -z $REDIS_SERVER ]]; then
  echo "SKIP: redis-server is not installed (apt-get install redis-server)"
  exit 77
fi
skip_without_uring "$BACKEND"

WORKER_PIDS=()
stop_all() {
  local p
  for p in "${WORKER_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${WORKER_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  stop_redis
}
trap 'stop_all; cleanup' EXIT

# Every server greets after 400 ms, so that the job lasts long enough for both workers to start
# and take chunks (a worker alone could otherwise finish it before the other has joined).
write_scenario() {
  "$MXFARM" gen --domains 8 --hosts 3 --mailboxes 4 --special none --catch-all-share 0.4 \
    --greylist-share 0 --seed 7 --base-ip "$BASE" --dns-port "$DNS_PORT" >"$SC.gen"
  "$PY" - "$SC.gen" "$SC" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
for h in s["hosts"]:
    h["banner_delay_ms"] = 400
# For the second part: a server that greets after 60 s, so a chunk of its domain stays held.
base = s["hosts"][0]["ip"].rsplit(".", 2)[0]
s["hosts"].append({"name": "mx.slow.test", "ip": f"{base}.1.9", "banner_delay_ms": 60000})
s["domains"].append({"name": "slow.test", "dns": "mx", "style": "postfix",
    "mx": [{"pref": 10, "host": "mx.slow.test"}], "mailboxes": {"user1": "ok"}})
json.dump(s, open(sys.argv[2], "w"))
PY
}
farm_in_band 240 244 write_scenario
"$MXFARM" truth "$SC" --timeout-ms 2000 --invalid 2 | grep -v '@slow\.test,' >"$WORK/truth.csv"

REDIS_PORT=$(free_port 26000 26999)
[[ -n $REDIS_PORT ]] || fail "no free port for redis-server"
mkdir -p "$WORK/redis"
"$REDIS_SERVER" --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
  --dir "$WORK/redis" >"$WORK/redis/log" 2>&1 &
REDIS_PID=$!
wait_listening 127.0.0.1 "$REDIS_PORT" "$REDIS_PID" ||
  fail "redis-server did not start: $(tail -5 "$WORK/redis/log")"

# The owner: pushes the job's chunks (6 lines each) now, before the workers start, so both find
# work at once; then reads the results (owner.py read).
cat >"$WORK/owner.py" <<'PY'
import csv, json, socket, sys, time

class Redis:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.f = self.s.makefile("rb")
    def __call__(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.s.sendall(out)
        return self.read()
    def read(self):
        line = self.f.readline()[:-2]
        t, rest = line[:1], line[1:]
        if t == b"+": return rest.decode()
        if t == b"-": raise RuntimeError(rest.decode())
        if t == b":": return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self.f.read(n + 2)[:-2]
        n = int(rest)
        return None if n < 0 else [self.read() for _ in range(n)]

def encode(lines):
    return b"".join(b"%d %d:%s" % (n, len(t), t) for n, t in lines)

def decode(s):
    out, i = [], 0
    while i < len(s):
        sp = s.index(b" ", i)
        colon = s.index(b":", sp)
        n, ln = int(s[i:sp]), int(s[sp + 1:colon])
        out.append((n, s[colon + 1:colon + 1 + ln]))
        i = colon + 1 + ln
    return out

mode, port, work = sys.argv[1], int(sys.argv[2]), sys.argv[3]
r = Redis(port)
emails = [row["email"] for row in csv.DictReader(open(f"{work}/truth.csv"))]
chunks = [list(enumerate(emails, 1))[i:i + 6] for i in range(0, len(emails), 6)]
if mode == "push":
    try:
        r("XGROUP", "CREATE", "mxp:chunks", "workers", "0", "MKSTREAM")
    except RuntimeError as e:
        assert "BUSYGROUP" in str(e), e
    r("SET", "mxp:job:j1", "1")
    for seq, c in enumerate(chunks):
        opts = '{"transcripts": true}' if seq == 0 else '{"transcripts": false}'
        r("XADD", "mxp:chunks", "*", "job", "j1", "seq", seq,
          "lines", encode([(n, e.encode()) for n, e in c]), "opts", opts)
    print(len(chunks))
    sys.exit(0)
if mode == "push-slow":
    r("XADD", "mxp:chunks", "*", "job", "j1", "seq", 100, "lines", encode([(1000, b"user1@slow.test")]))
    sys.exit(0)
if mode == "pending":
    # The chunk stream's pending entries: consumer and idle time (ms), one line each.
    for _, consumer, idle, _ in r("XPENDING", "mxp:chunks", "workers", "-", "+", 10):
        print(consumer.decode(), idle)
    sys.exit(0)

# read: every results entry until each line has a record (60 s at most).
seqs, records = [], {}
end = time.monotonic() + 60
while len(records) < len(emails) and time.monotonic() < end:
    entries = r("XRANGE", "mxp:job:j1:results", "-", "+")
    seqs, records = [], {}
    for _, fields in entries:
        f = dict(zip(fields[::2], fields[1::2]))
        seqs.append(int(f[b"seq"]))
        for n, text in decode(f[b"lines"]):
            if n in records:
                print(f"line {n} delivered twice"); sys.exit(1)
            records[n] = json.loads(text)
    time.sleep(0.1)  # a readiness poll of the results stream, as the owner does
truth = {row["email"]: (row["verdict"], row["reason"]) for row in csv.DictReader(open(f"{work}/truth.csv"))}
bad = []
if sorted(seqs) != list(range(len(chunks))):
    bad.append(f"results entries by chunk: {sorted(seqs)}")
if sorted(records) != list(range(1, len(emails) + 1)):
    bad.append(f"{len(records)} records for {len(emails)} lines")
first = {n for n, _ in chunks[0]}
for n, rec in records.items():
    e = emails[n - 1]
    if rec["email"] != e:
        bad.append(f"line {n}: email {rec['email']!r}, sent {e!r}")
    if (rec["verdict"], rec["reason"]) != truth[e]:
        bad.append(f"{e}: {rec['verdict']}/{rec['reason']}, truth {truth[e]}")
    if n in first and rec["smtp"] and not rec.get("transcript"):
        bad.append(f"{e}: no transcript in the chunk that asked")
    if n not in first and "transcript" in rec:
        bad.append(f"{e}: a transcript nobody asked for")
# The facts the cluster learned: each catch-all domain's "1", the others' "0".
sc = json.load(open(f"{work}/scenario.json"))
facts = 0
for d in sc["domains"]:
    if d["name"] == "slow.test":
        continue  # the second part's
    v = r("GET", f"mxp:ca:{d['name']}")
    want = b"1" if d.get("catch_all") else b"0"
    if v != want:
        bad.append(f"mxp:ca:{d['name']} is {v!r}, want {want!r}")
    facts += v is not None
print(facts)
for b in bad[:20]:
    print(b, file=sys.stderr)
sys.exit(1 if bad else 0)
PY
CHUNKS=$("$PY" "$WORK/owner.py" push "$REDIS_PORT" "$WORK") || fail "the owner could not push"

start_worker() {
  local name=$1 ip=$2
  "$MXPROBE" worker --cluster "redis://127.0.0.1:$REDIS_PORT" --node-name "$name" \
    --backend "$BACKEND" --policy "$LAB_POLICY" --dns "127.0.0.1:$DNS_PORT" \
    --helo probe.client.test --source-ip "$ip" --timeout-connect 2 --timeout-banner "${BANNER:-2}" \
    --timeout-command 2 --timeout-dns 0.5 --chunks 2 --metrics-listen 127.0.0.1:0 \
    2>"$WORK/$name.err" &
  WORKER_PIDS+=($!)
}
start_worker w1 "127.$NET.9.1"
start_worker w2 "127.$NET.9.2"

FACTS=$("$PY" "$WORK/owner.py" read "$REDIS_PORT" "$WORK" 2>"$WORK/owner.err") ||
  fail "results: $(cat "$WORK/owner.err"); w1: $(tail -3 "$WORK/w1.err"); w2: $(tail -3 "$WORK/w2.err")"
ok

metric() {
  local url
  url=$(grep -o 'metrics on http://127.0.0.1:[0-9]*/' "$WORK/$1.err" | sed 's/metrics on //')
  curl -sS "${url}metrics" | sed -n "s/^$2 //p"
}
DONE1=$(metric w1 mxprobe_cluster_chunks_completed_total)
DONE2=$(metric w2 mxprobe_cluster_chunks_completed_total)
SHARED=$(($(metric w1 mxprobe_cluster_catch_all_shared_total) + $(metric w2 mxprobe_cluster_catch_all_shared_total)))
USED=$(($(metric w1 mxprobe_cluster_catch_all_used_total) + $(metric w2 mxprobe_cluster_catch_all_used_total)))
WAITED=$(($(metric w1 mxprobe_cluster_catch_all_waited_total) + $(metric w2 mxprobe_cluster_catch_all_waited_total)))
expect_eq "$SHARED" "$FACTS" "each domain probed once in the cluster (facts shared = facts in Redis)"
# A worker used the other's facts (after waiting for its probe, or once it was written).
((USED > 0)) || fail "no worker used a fact the other learned (chunks: $DONE1 by w1, $DONE2 by w2)"
ok
expect_eq "$((DONE1 + DONE2))" "$CHUNKS" "chunks completed, all told"
((DONE1 > 0 && DONE2 > 0)) || fail "one worker did every chunk ($DONE1 / $DONE2)"
ok
expect_match "$(cat "$WORK/w1.err")" "taking work: holding 2 chunks" "w1 says it takes work"

for i in 0 1; do
  rc=0
  kill -TERM "${WORKER_PIDS[$i]}"
  wait "${WORKER_PIDS[$i]}" || rc=$?
  expect_eq "$rc" 0 "worker $((i + 1)) exit status after SIGTERM"
done
WORKER_PIDS=()

# A worker stopped while it holds a chunk (its server has not even greeted) hands it back at
# once: still pending, but idle for a day, so the next worker's reclaim pass takes it instead of
# waiting out min_idle (30 s).
"$PY" "$WORK/owner.py" push-slow "$REDIS_PORT" "$WORK" || fail "the owner could not push"
BANNER=90 start_worker w3 "127.$NET.9.3"
held=""
holds_slow_chunk() {
  [[ -f $WORK/w3.err ]] && grep -q 'metrics on' "$WORK/w3.err" || return 1
  held=$(metric w3 mxprobe_cluster_chunks_held)
  [[ $held == 1 ]]
}
wait_for 10 holds_slow_chunk || true
[[ $held == 1 ]] || fail "w3 does not hold the slow chunk (held: '$held'): $(cat "$WORK/w3.err")"
ok
rc=0
kill -TERM "${WORKER_PIDS[0]}"
wait "${WORKER_PIDS[0]}" || rc=$?
WORKER_PIDS=()
expect_eq "$rc" 0 "w3 exit status after SIGTERM"
PENDING=$("$PY" "$WORK/owner.py" pending "$REDIS_PORT" "$WORK")
[[ $PENDING =~ ^w3\ ([0-9]+)$ ]] || fail "pending after w3 left: '$PENDING'"
((BASH_REMATCH[1] > 3600000)) || fail "the chunk was not handed back: idle ${BASH_REMATCH[1]} ms"
ok
expect_match "$(cat "$WORK/w3.err")" "chunks_given_back|left the cluster" "w3 left"
stop_farm
echo "PASS: $CHECKS checks ($CHUNKS chunks: $DONE1 by w1, $DONE2 by w2; $FACTS catch-all facts, $USED used by the other worker, $WAITED lines waited for them)"
