#!/usr/bin/env bash
# A cluster job's webhook (docs/webhooks.md, docs/cluster.md): `mxprobe serve --cluster` (io_uring)
# owns a job of 5,000 addresses with webhook_batch=200, and `mxprobe worker` (libuv) verifies
# chunks of it, each node from a source address of its own, against a redis-server this script
# starts (127.0.0.1, a free port of 27000-27999, its own directory, no persistence) and mxfarm.
# Checks: the owner sends the deliveries (a local Python receiver logs them): every batch
# acknowledged, the batches' records are every line of the job once and equal to its results
# (the worker's records included: both source addresses appear), the end event last with the
# finished summary; the delivery log has nothing pending or failed.
# Usage: cluster.sh (env MXFARM, MXPROBE). Range 127.254.0.0/16. Skipped (77) without redis-server.
source "$(dirname "$0")/../lib.sh"
MXPROBE=${MXPROBE:?MXPROBE must name the mxprobe binary}
REDIS_SERVER=$(command -v redis-server || true)
if [[ -z $REDIS_SERVER ]]; then
  echo "SKIP: redis-server is not installed (apt-get install redis-server)"
  exit 77
fi
TOTAL=5000
SECRET=whsec-$RANDOM$RANDOM-0123456789abcdef

launch 254 254 --domains 4 --hosts 2 --mailboxes 300 --catch-all-share 0 --special none
"$MXFARM" truth "$SC" --count $TOTAL | tail -n +2 | cut -d, -f1 >"$WORK/list.txt"

REDIS_PID="" WORKER_PID="" RECV_PID=""
stop_all() {
  local p
  for p in $WORKER_PID $RECV_PID $REDIS_PID; do kill -TERM "$p" 2>/dev/null || true; done
  for p in $WORKER_PID $RECV_PID $REDIS_PID; do wait "$p" 2>/dev/null || true; done
}
trap 'stop_all; cleanup' EXIT
REDIS_PORT=$(free_port 27000 27999)
[[ -n $REDIS_PORT ]] || fail "no free port for redis-server"
mkdir -p "$WORK/redis"
"$REDIS_SERVER" --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
  --daemonize no --dir "$WORK/redis" >"$WORK/redis/log" 2>&1 &
REDIS_PID=$!
redis_pong() { [[ $(redis-cli -p "$REDIS_PORT" PING 2>/dev/null) == PONG ]]; }
wait_for 20 redis_pong || fail "redis-server did not start: $(tail -5 "$WORK/redis/log")"
CLUSTER="redis://127.0.0.1:$REDIS_PORT/0"

# The receiver: acknowledges every delivery, logs its event and body first.
cat >"$WORK/receiver.py" <<'PY'
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

class Hook(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with open(sys.argv[1], "a") as f:
            f.write(json.dumps({"event": self.headers.get("Mxprobe-Event"),
                                "delivery": self.headers.get("Mxprobe-Delivery"),
                                "body": body.decode()}) + "\n")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass

server = HTTPServer(("127.0.0.1", 0), Hook)
print(server.server_address[1], flush=True)
server.serve_forever()
PY
"$PY" "$WORK/receiver.py" "$WORK/hooks.jsonl" >"$WORK/recv.port" 2>"$WORK/recv.err" &
RECV_PID=$!
wait_for 10 test -s "$WORK/recv.port" || fail "the receiver did not start: $(cat "$WORK/recv.err")"
HOOK_URL="http://127.0.0.1:$(cat "$WORK/recv.port")/hook"

# RCPTs rationed per MX host (for the whole cluster): the job lasts a few seconds, long enough
# for the worker to take chunks of it while the owner works on its own.
cat >"$WORK/policy.toml" <<'TOML'
[global]
max_sessions = 40
builtin_providers = false
[defaults]
per_mx = { sessions = 4, connect_rate = 0, rcpt_rate = 500, rcpt_burst = 20 }
per_source = { sessions = 20, connect_rate = 0, rcpt_rate = 0 }
per_domain = { sessions = 8, connect_rate = 0, rcpt_rate = 0 }
TOML
ENGINE=(--dns "127.0.0.1:$DNS_PORT" --policy "$WORK/policy.toml" --helo probe.client.test)
A1=127.254.9.1 A2=127.254.9.2
"$MXPROBE" worker --cluster "$CLUSTER" --node-name worker-1 --source-ip "$A2" --backend uv \
  "${ENGINE[@]}" 2>"$WORK/worker.err" &
WORKER_PID=$!
serve_start serve-1 --cluster "$CLUSTER" --node-name serve-1 --source-ip "$A1" --backend uring \
  "${ENGINE[@]}" --no-cache --data "$WORK/data"
in_cluster() { curl -sS "${URL}v1/cluster" | jq -e '[.nodes[].name] | index("worker-1")' >/dev/null; }
wait_for 20 in_cluster || fail "the worker did not join: $(tail -3 "$WORK/worker.err")"

req POST "/v1/jobs?webhook_url=$HOOK_URL&webhook_batch=200" -H "Mxprobe-Webhook-Secret: $SECRET" \
  --data-binary @"$WORK/list.txt"
expect_eq "$CODE" 201 "the cluster job with a webhook"
JOB=$(jq -r .id <<<"$BODY")
ended() { grep -q '"event": "job.ended"' "$WORK/hooks.jsonl" 2>/dev/null; }
wait_for 120 ended || fail "no end event: $(curl -sS "${URL}v1/jobs/$JOB" | head -c 600)"
settled() { [[ $(curl -sS "${URL}v1/jobs/$JOB" | jq -r .webhook.pending) == 0 ]]; }
wait_for 10 settled || fail "deliveries still pending: $(curl -sS "${URL}v1/jobs/$JOB" | jq -c .webhook)"
curl -sS "${URL}v1/jobs/$JOB/results" >"$WORK/results.jsonl"
curl -sS "${URL}v1/jobs/$JOB/webhooks?limit=1000" >"$WORK/log.json"
ok

"$PY" - "$WORK/hooks.jsonl" "$WORK/results.jsonl" "$WORK/log.json" "$TOTAL" "$JOB" "$A1" "$A2" <<'PY' ||
import json, sys
hooks = [json.loads(l) for l in open(sys.argv[1])]
results = {r["line"]: r for r in map(json.loads, open(sys.argv[2]))}
log = json.load(open(sys.argv[3]))
total, job, a1, a2 = int(sys.argv[4]), sys.argv[5], sys.argv[6], sys.argv[7]
assert len(results) == total, len(results)
assert [h["delivery"] for h in hooks] == [f"{job}-{i}" for i in range(1, len(hooks) + 1)], \
    [h["delivery"] for h in hooks]
assert hooks[-1]["event"] == "job.ended" and all(h["event"] == "records" for h in hooks[:-1])
summary = json.loads(hooks[-1]["body"])["summary"]
assert summary["state"] == "finished" and summary["done"] == total, summary
seen = {}
for h in hooks[:-1]:
    for r in json.loads(h["body"])["records"]:
        assert r["line"] not in seen, f"line {r['line']} sent twice"
        seen[r["line"]] = r
assert sorted(seen) == list(range(1, total + 1)), f"{len(seen)} of {total} lines"
for line, r in seen.items():
    assert r == results[line], (r, results[line])
sources = {r["source_ip"] for r in seen.values() if r["source_ip"]}
assert sources == {a1, a2}, f"records from {sources}: both nodes must have verified"
assert log["webhook"]["pending"] == 0 and log["webhook"]["failed"] == 0, log["webhook"]
print(f"{len(hooks)} deliveries, {total} records once each, from {sorted(sources)}")
PY
  fail "the deliveries"
ok
echo "webhooks (cluster): $CHECKS checks passed"
