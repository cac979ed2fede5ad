#!/usr/bin/env bash
# A delivery acknowledged while the job's journal is locked by another writer (past SQLite's
# 5 s busy timeout) is not sent again: serve keeps the attempt's outcome, says so on stderr,
# sends nothing else meanwhile, and writes it once the journal takes writes again.
#  - a job of 600 addresses that fail their syntax check (records at once, no mail server) with
#    webhook_batch=100 to a Python receiver that holds its answer to the first delivery until
#    told;
#  - once the job has finished, another process takes the journal's write lock (BEGIN
#    EXCLUSIVE) and the receiver answers 200; serve's stderr says the outcome will be written
#    again; the lock is released;
#  - the receiver got every delivery (6 batches and the end event) exactly once, and the
#    delivery log shows each acknowledged at its first attempt.
# Before the fix the first delivery went a second time right after the failed write.
# Usage: journal_busy.sh (env MXFARM, MXPROBE). No farm: 127.0.0.1 only.
source "$(dirname "$0")/../lib.sh"
MXPROBE=${MXPROBE:?MXPROBE must name the mxprobe binary}
SECRET=whsec-$RANDOM$RANDOM-0123456789abcdef
for i in $(seq 1 600); do echo "not-an-address-$i"; done >"$WORK/list.txt"

RECV_PID="" LOCK_PID=""
stop_all() {
  local p
  for p in $RECV_PID $LOCK_PID; do kill -KILL "$p" 2>/dev/null || true; done
  for p in $RECV_PID $LOCK_PID; do wait "$p" 2>/dev/null || true; done
}
trap 'stop_all; cleanup' EXIT

# The receiver: logs every delivery; answers the first only once the test writes to the FIFO
# `go` (the read blocks until then: an event, not a poll).
cat >"$WORK/receiver.py" <<'PY'
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

log, go = sys.argv[1], sys.argv[2]

class Hook(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    first = True

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with open(log, "a") as f:
            f.write(json.dumps({"delivery": self.headers.get("Mxprobe-Delivery"),
                                "event": self.headers.get("Mxprobe-Event")}) + "\n")
        if Hook.first:
            Hook.first = False
            with open(go) as signal:
                signal.read()
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass

server = HTTPServer(("127.0.0.1", 0), Hook)
print(server.server_address[1], flush=True)
server.serve_forever()
PY
mkfifo "$WORK/go" "$WORK/unlock"
# tell FIFO: the line that ends a wait on the other side (at most 10 s: a dead reader fails).
tell() { timeout 10 bash -c 'echo go >"$1"' _ "$1" || fail "nobody read $1"; }
"$PY" "$WORK/receiver.py" "$WORK/hooks.jsonl" "$WORK/go" >"$WORK/recv.port" 2>"$WORK/recv.err" &
RECV_PID=$!
wait_for 10 test -s "$WORK/recv.port" || fail "the receiver did not start: $(cat "$WORK/recv.err")"

serve_start serve --dns 127.0.0.1:1 --no-startup-checks --no-cache --data "$WORK/data"
req POST "/v1/jobs?webhook_url=http://127.0.0.1:$(cat "$WORK/recv.port")/hook&webhook_batch=100" \
  -H "Mxprobe-Webhook-Secret: $SECRET" --data-binary @"$WORK/list.txt"
expect_eq "$CODE" 201 "the job with a webhook"
JOB=$(jq -r .id <<<"$BODY")
finished() { [[ $(curl -sS "${URL}v1/jobs/$JOB" | jq -r .state) == finished ]]; }
wait_for 30 finished || fail "the job did not finish: $(curl -sS "${URL}v1/jobs/$JOB" | head -c 400)"
first_held() { grep -q "\"$JOB-1\"" "$WORK/hooks.jsonl" 2>/dev/null; }
wait_for 10 first_held || fail "the first delivery never reached the receiver"

# Another writer holds the journal until told (the FIFO `unlock`).
cat >"$WORK/lock.py" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
with open(sys.argv[2]) as signal:  # blocks until the test writes
    signal.read()
db.execute("ROLLBACK")
PY
"$PY" "$WORK/lock.py" "$WORK/data/$JOB/journal.db" "$WORK/unlock" >"$WORK/lock.out" 2>&1 &
LOCK_PID=$!
wait_for 30 grep -q locked "$WORK/lock.out" || fail "no lock: $(cat "$WORK/lock.out")"
tell "$WORK/go"
kept() { grep -q "webhook store: .*database is locked" "$WORK/serve.err"; }
wait_for 30 kept || fail "serve never met the locked journal: $(tail -5 "$WORK/serve.err")"
ok
tell "$WORK/unlock"
wait "$LOCK_PID" || fail "the locker: $(cat "$WORK/lock.out")"
LOCK_PID=""
ended() { grep -q '"job.ended"' "$WORK/hooks.jsonl"; }
wait_for 30 ended || fail "no end event: $(tail -5 "$WORK/serve.err")"
settled() { [[ $(curl -sS "${URL}v1/jobs/$JOB" | jq -r .webhook.pending) == 0 ]]; }
wait_for 10 settled || fail "deliveries still pending: $(curl -sS "${URL}v1/jobs/$JOB" | jq -c .webhook)"
curl -sS "${URL}v1/jobs/$JOB/webhooks?limit=100" >"$WORK/log.json"
"$PY" - "$WORK/hooks.jsonl" "$WORK/log.json" "$JOB" <<'PY' || fail "the deliveries"
import json, sys
got = [json.loads(l)["delivery"] for l in open(sys.argv[1])]
log, job = json.load(open(sys.argv[2])), sys.argv[3]
want = [f"{job}-{i}" for i in range(1, 8)]  # 6 batches of 100, then the end event
assert got == want, f"received {got}"
d = log["deliveries"]
assert [x["seq"] for x in d] == list(range(1, 8)), d
for x in d:
    assert x["state"] == "acknowledged" and x["attempts"] == 1 and x["last_status"] == 200, x
print(f"{len(got)} deliveries, each once, each acknowledged at its first attempt")
PY
ok
expect_match "$(cat "$WORK/serve.err")" "database is locked.*written again on the next tick" \
  "the kept outcome said"
expect_match "$(cat "$WORK/serve.err")" "webhook: the journal takes writes again" "the recovery said"
echo "webhooks (journal locked): $CHECKS checks passed"
