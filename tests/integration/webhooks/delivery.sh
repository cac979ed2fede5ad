#!/usr/bin/env bash
# Webhooks of a bulk job, end to end: `mxprobe serve` runs a job of 1,200 addresses against
# mxfarm with webhook_batch=25 to a receiver (a Python http.server written here, named by the
# farm's DNS) that
#  - answers its first delivery 500 and closes the connection on the second without a word,
#  - is SIGKILLed once it acknowledged two batches; once serve met the refused connection,
#    serve is SIGKILLed too (a delivery waiting for its retry), the receiver started again on the
#    same port and serve on the same --data,
# and serve is SIGKILLed once more mid-job, while batches flow, and started again. At the end:
#  - every delivery (the batches 1..N-1 and the end event N) was acknowledged exactly once by
#    seq; a seq received again was never acknowledged before, except the one acknowledged last
#    before a kill (an answer sent but not yet recorded by serve, or a 200 logged by the
#    receiver but not sent: docs/webhooks.md says so);
#  - the batches' ranges follow each other (from = the previous to + 1), and the union of the
#    acknowledged batches' records is every line of the job once, equal to the job's results;
#  - every signature verifies with Python's hmac over "t.body", the delivery id header is
#    JOB-SEQ and matches the body;
#  - the end event carries the job's summary (finished, 1,200 done) and the delivery log in the
#    API shows the 500, the close and the refused connection, nothing pending or failed; the
#    delivery that waited for its retry at the first kill was acknowledged after the restart;
#  - the job's webhook.recent (GET /v1/jobs/ID) has the last 8 deliveries, newest first (the end
#    event first), as the delivery log has them; while a delivery waited for its retry it showed
#    it pending (or on its next try) with the refused connection.
# Then two jobs of 200: with webhook_batch=1000 and webhook_interval=0.2 several smaller batches
# go before the end (the RCPT rate makes the job last seconds); without webhook_batch only the
# end event (seq 1) goes.
# Usage: delivery.sh uring|uv   (env MXFARM, MXPROBE). Range 127.40.0.0/16 (the farm in
# 127.40.10-59.0 for uring, 127.40.60-109.0 for uv; the receiver beside its first host).
source "$(dirname "$0")/../lib.sh"
MXPROBE=${MXPROBE:?MXPROBE must name the mxprobe binary}
BACKEND=${1:?backend}
skip_without_uring "$BACKEND"
SC=$WORK/sc.json
REPORT=$WORK/report.json
SECRET=whsec-$RANDOM$RANDOM-0123456789abcdef
TOTAL=1200

# The two backends run side by side: each takes a third octet range of the band of its own.
write_scenario() {
  local off=10
  [[ $BACKEND == uv ]] && off=60
  BASE=127.40.$((off + RANDOM % 50)).0
  "$MXFARM" gen --domains 4 --hosts 2 --mailboxes 300 --catch-all-share 0 --special none \
    --base-ip "$BASE" --dns-port "$DNS_PORT" >"$SC"
}
farm_in_band 40 40 write_scenario
"$MXFARM" truth "$SC" --count $TOTAL >"$WORK/truth.csv"
tail -n +2 "$WORK/truth.csv" | cut -d, -f1 >"$WORK/list.txt"
# Slow on purpose (RCPTs rationed per MX host), as serve_restart: the job lasts several seconds,
# so both kills land in its middle.
cat >"$WORK/policy.toml" <<'TOML'
[global]
max_sessions = 20
builtin_providers = false
[defaults]
per_mx = { sessions = 2, connect_rate = 0, rcpt_rate = 60, rcpt_burst = 5 }
per_source = { sessions = 4, connect_rate = 0, rcpt_rate = 0 }
per_domain = { sessions = 2, connect_rate = 0, rcpt_rate = 0 }
TOML

# The receiver: answers by its plan ("500", "close", then 200s), logs every request (headers
# and body, and what it answered) before answering.
cat >"$WORK/receiver.py" <<'PY'
import json, os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

ip, port, log, plan = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
plan = plan.split(",") if plan else []

class Hook(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        answer = plan.pop(0) if plan else "200"
        entry = {h: self.headers.get(h) for h in
                 ("Mxprobe-Delivery", "Mxprobe-Event", "Mxprobe-Signature", "Content-Type")}
        entry.update(path=self.path, body=body.decode(), answer=answer)
        with open(log, "a") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())
        if answer == "close":  # no answer at all: the connection just ends
            self.close_connection = True
            return
        self.send_response(int(answer))
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass

server = HTTPServer((ip, port), Hook)
print(server.server_address[1], flush=True)
server.serve_forever()
PY
# The receiver listens beside a farm host (its address, another port) and the URL names that
# host: serve finds it through the farm's DNS, as it would a real endpoint.
read -r RECV_IP RECV_HOST < <("$PY" -c 'import json,sys; h=json.load(open(sys.argv[1]))["hosts"][0]; print(h["ip"], h["name"])' "$SC")
RECV_PID=""
receiver() {  # receiver PORT PLAN: starts it; sets RECV_PORT once it listens
  rm -f "$WORK/recv.port"
  "$PY" "$WORK/receiver.py" "$RECV_IP" "$1" "$WORK/hooks.jsonl" "$2" >"$WORK/recv.port" \
    2>>"$WORK/recv.err" &
  RECV_PID=$!
  wait_for 10 test -s "$WORK/recv.port" || fail "the receiver did not start: $(cat "$WORK/recv.err")"
  RECV_PORT=$(cat "$WORK/recv.port")
}
stop_receiver() {
  [[ -n $RECV_PID ]] && { kill -KILL "$RECV_PID" 2>/dev/null || true; wait "$RECV_PID" 2>/dev/null || true; }
  RECV_PID=""
}
trap 'stop_receiver; cleanup' EXIT
: >"$WORK/hooks.jsonl"
acked() { grep -c '"answer": "200"' "$WORK/hooks.jsonl" || true; }
acked_at_least() { (($(acked) >= $1)); }

serve() {
  serve_start "$1" --backend "$BACKEND" --policy "$WORK/policy.toml" --dns "127.0.0.1:$DNS_PORT" \
    --no-cache --helo webhooks.client.test --data "$WORK/data"
}
field() { curl -sS "${URL}v1/jobs/$JOB" | jq -r "$1"; }
hooklog() { curl -sS "${URL}v1/jobs/$JOB/webhooks?limit=1000"; }

receiver 0 "500,close"
serve first

# Bad settings are refused with a clear 400, before the list is read.
req POST "/v1/jobs?webhook_url=ws://127.0.0.1/x&webhook_secret=$SECRET" --data-binary @"$WORK/list.txt"
expect_eq "$CODE" 400 "a ws:// webhook URL"
expect_match "$BODY" 'webhook_url: an absolute http:// or https:// URL' "its message"
req POST "/v1/jobs?webhook_url=http://$RECV_IP:$RECV_PORT/hook" --data-binary @"$WORK/list.txt"
expect_eq "$CODE" 400 "a webhook without a secret"
expect_match "$BODY" 'webhook_secret: 16 to 256 bytes' "its message"
req POST "/v1/jobs?webhook_url=ftp://x/&webhook_secret=$SECRET" --data-binary @"$WORK/list.txt"
expect_match "$CODE $BODY" '^400 .*webhook_url: an absolute http:// or https:// URL' "another scheme"

req POST "/v1/jobs?webhook_url=http://$RECV_HOST:$RECV_PORT/hook%3Fk%3D1&webhook_batch=25&webhook_interval=0.5" \
  -H "Mxprobe-Webhook-Secret: $SECRET" --data-binary @"$WORK/list.txt"
expect_eq "$CODE" 201 "the job with a webhook"
JOB=$(jq -r .id <<<"$BODY")
expect_eq "$(jq -r .webhook.batch <<<"$BODY")" 25 "the job shows its webhook"
expect_eq "$(jq -r '.webhook | has("secret")' <<<"$BODY")" false "but never its secret"

# The receiver is killed once it acknowledged two batches, and comes back (same port) once
# serve has met the refused connection.
wait_for 60 acked_at_least 2 || fail "no two batches acknowledged: $(tail -3 "$WORK/hooks.jsonl")"
stop_receiver
KILL_RECV_AT=$(wc -l <"$WORK/hooks.jsonl")  # counted once it is dead: nothing comes after
refused() { hooklog | grep -q connection_refused; }
wait_for 60 refused || fail "serve never met the refused connection: $(hooklog | tail -c 600)"
# serve is killed too while the delivery waits for its next try: the restart must send it.
# A delivery on its next try shows "sending" for that moment (a slow build can catch it there):
# wait until one is "pending" again with its attempts counted.
waiting() {
  WAITING=$(hooklog | jq -r '[.deliveries[] | select(.state == "pending" and .attempts > 0)][0].seq')
  [[ $WAITING =~ ^[0-9]+$ ]]
}
wait_for 30 waiting || fail "no delivery waiting for a retry: $(hooklog | tail -c 600)"
curl -sS "${URL}v1/jobs/$JOB" >"$WORK/job_waiting.json"  # its webhook.recent, checked below
serve_stop KILL
KILL_SERVE1_AT=$(wc -l <"$WORK/hooks.jsonl")
receiver "$RECV_PORT" ""
serve second
expect_match "$(cat "$WORK/second.err")" "job $JOB restored: running" "the job goes on after the kill"

# serve is killed once two more batches were acknowledged, with the job still running.
ACKED=$(acked)
wait_for 60 acked_at_least $((ACKED + 2)) || fail "no batch acknowledged after the receiver's restart"
[[ $(field .state) == running ]] || fail "the job ended before serve could be killed: $(field .done) done"
DONE_AT_KILL=$(field .done)
serve_stop KILL
KILL_SERVE_AT=$(wc -l <"$WORK/hooks.jsonl")
echo "serve killed with $DONE_AT_KILL of $TOTAL done, $(acked) deliveries acknowledged"
((DONE_AT_KILL < TOTAL)) || fail "the job was over at the kill"

serve third
ended() { grep -q '"Mxprobe-Event": "job.ended".*"answer": "200"' "$WORK/hooks.jsonl"; }
wait_for 120 ended || fail "no end event acknowledged: $(hooklog | tail -c 800)"
expect_eq "$(field .state)" finished "the job finished after the restart"
settled() { [[ $(field '.webhook.pending') == 0 ]]; }
wait_for 10 settled || fail "deliveries still pending: $(field .webhook)"
curl -sS "${URL}v1/jobs/$JOB/results" >"$WORK/results.jsonl"
hooklog >"$WORK/log.json"
curl -sS "${URL}v1/jobs/$JOB" >"$WORK/job.json"
# Settled, the job's webhook lets its journal go (a server keeps many ended jobs): no fd of
# serve's names it once the log's reader is done.
journal_closed() { ! ls -l "/proc/$SERVE_PID/fd" 2>/dev/null | grep -q "data/$JOB/journal.db"; }
wait_for 10 journal_closed || fail "serve still holds the settled job's journal open"
ok

"$PY" - "$WORK/hooks.jsonl" "$WORK/results.jsonl" "$WORK/log.json" "$SECRET" "$JOB" \
  "$KILL_RECV_AT,$KILL_SERVE1_AT,$KILL_SERVE_AT" "$TOTAL" "$WAITING" \
  "$WORK/job.json" "$WORK/job_waiting.json" <<'PY' || fail "the deliveries"
import hashlib, hmac, json, sys, time
hooks = [json.loads(l) for l in open(sys.argv[1])]
results = {r["line"]: r for r in map(json.loads, open(sys.argv[2]))}
log = json.load(open(sys.argv[3]))
secret, job = sys.argv[4].encode(), sys.argv[5]
kills, total = [int(k) for k in sys.argv[6].split(",")], int(sys.argv[7])
waiting = int(sys.argv[8])

# Signatures: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">, t recent.
for h in hooks:
    parts = dict(p.split("=", 1) for p in h["Mxprobe-Signature"].split(","))
    want = hmac.new(secret, parts["t"].encode() + b"." + h["body"].encode(), hashlib.sha256).hexdigest()
    assert hmac.compare_digest(want, parts["v1"]), f"bad signature on {h['Mxprobe-Delivery']}"
    assert abs(time.time() - int(parts["t"])) < 300, "timestamp far off"
    assert h["Content-Type"] == "application/json" and h["path"] == "/hook?k=1", h
    b = json.loads(h["body"])
    assert h["Mxprobe-Delivery"] == f"{job}-{b['seq']}" == b["delivery"], h["Mxprobe-Delivery"]
    assert h["Mxprobe-Event"] == b["event"]

# Acknowledged exactly once each; a seq seen again was not acknowledged before, unless it is the
# last acknowledged before a kill.
may_repeat = set()
for k in kills:
    before = [json.loads(h["body"])["seq"] for h in hooks[:k] if h["answer"] == "200"]
    if before:
        may_repeat.add(before[-1])
acks = {}
for h in hooks:
    seq = json.loads(h["body"])["seq"]
    if h["answer"] == "200":
        acks[seq] = acks.get(seq, 0) + 1
for seq, n in acks.items():
    assert n == 1 or (n == 2 and seq in may_repeat), f"seq {seq} acknowledged {n} times"
end = [json.loads(h["body"]) for h in hooks if h["answer"] == "200" and h["Mxprobe-Event"] == "job.ended"]
last = end[0]["seq"]
assert sorted(acks) == list(range(1, last + 1)), f"acknowledged seqs {sorted(acks)} not 1..{last}"

# Batches: consecutive ranges, the union = every record once, as the job's results.
batches = {}
for h in hooks:
    b = json.loads(h["body"])
    if h["answer"] == "200" and b["event"] == "records":
        if b["seq"] in batches:
            assert batches[b["seq"]] == b, f"batch {b['seq']} differs when sent again"
        batches[b["seq"]] = b
expect_from = 1
lines = []
for seq in range(1, last):
    b = batches[seq]
    assert b["from"] == expect_from and b["count"] == b["to"] - b["from"] + 1 == len(b["records"]), b["seq"]
    assert b["count"] <= 25
    expect_from = b["to"] + 1
    for r in b["records"]:
        assert r == results[r["line"]], f"line {r['line']} differs from the job's results"
        lines.append(r["line"])
assert sorted(lines) == list(range(1, total + 1)), f"{len(lines)} records batched, {len(set(lines))} lines"
e = end[0]
assert e["batches"] == last - 1 and e["batched_records"] == total
assert e["summary"]["state"] == "finished" and e["summary"]["done"] == total, e["summary"]
assert e["summary"]["id"] == int(job)

# The delivery log in the API: everything acknowledged, the failures on record.
d = log["deliveries"]
assert [x["seq"] for x in d] == list(range(1, last + 1))
assert all(x["state"] == "acknowledged" and x["acknowledged"] for x in d), [x for x in d if x["state"] != "acknowledged"][:2]
errors = [a for x in d for a in x["attempt_log"]]
assert any(a["status"] == 500 for a in errors), "no 500 in the log"
assert any(a["error"] == "connection closed without a response" for a in errors), "no close in the log"
assert any("connection_refused" in (a["error"] or "") for a in errors), "no refused connection in the log"
assert log["webhook"]["failed"] == 0 and log["webhook"]["pending"] == 0
# The delivery that waited for its retry when serve was killed went after the restart.
w = d[waiting - 1]
assert any("connection_refused" in (a["error"] or "") for a in w["attempt_log"]), w
assert w["attempt_log"][-1]["status"] == 200, w

# The job's own last deliveries (webhook.recent, kept in serve's memory, read from the journal
# at the restart): the newest 8, newest first, the end event first, as the delivery log has them.
recent = json.load(open(sys.argv[9]))["webhook"]["recent"]
assert [x["seq"] for x in recent] == list(range(last, max(last - 8, 0), -1)), recent
assert recent[0]["event"] == "job.ended" and all(x["event"] == "records" for x in recent[1:])
keys = ["seq", "event", "state", "attempts", "last_status", "last_error", "next_try", "acknowledged"]
for x in recent:
    assert sorted(x) == sorted(keys), x
    assert {k: x[k] for k in keys} == {k: d[x["seq"] - 1][k] for k in keys}, (x, d[x["seq"] - 1])
    assert x["state"] == "acknowledged" and x["last_status"] == 200 and x["next_try"] is None
# While a delivery waited for its retry, the job showed it so (if it was among the newest 8).
before = json.load(open(sys.argv[10]))["webhook"]["recent"]
seqs = [x["seq"] for x in before]
assert 0 < len(before) <= 8 and seqs == sorted(seqs, reverse=True), seqs
shown = "not among the job's last 8"
for x in before:
    if x["seq"] == waiting:  # or already on its next try, which the dead receiver refuses
        shown = f"shown {x['state']} in the job's last 8"
        assert x["state"] in ("pending", "sending") and x["attempts"] > 0, x
        assert bool(x["next_try"]) == (x["state"] == "pending"), x
        assert "connection_refused" in x["last_error"] and x["last_status"] is None, x
print(f"{len(hooks)} requests, {last - 1} batches + the end event, "
      f"{sum(acks.values()) - len(acks)} repeated after a kill; delivery {waiting} waiting "
      f"for its retry: {shown}")
PY
ok
expect_match "$(cat "$WORK/first.err")" "webhook $JOB-1: HTTP 500; next try in 1.0 s" "the log says why and when"

# webhook_interval: batches of up to 1,000 records go out when their first record waited 0.2 s,
# so a job of 200 that lasts seconds sends several before its end. Without webhook_batch, only
# the end event is sent.
head -n 200 "$WORK/list.txt" >"$WORK/small.txt"
req POST "/v1/jobs?webhook_url=http://$RECV_HOST:$RECV_PORT/timed&webhook_batch=1000&webhook_interval=0.2" \
  -H "Mxprobe-Webhook-Secret: $SECRET" --data-binary @"$WORK/small.txt"
expect_eq "$CODE" 201 "a job with timed batches"
TIMED=$(jq -r .id <<<"$BODY")
req POST "/v1/jobs?webhook_url=http://$RECV_HOST:$RECV_PORT/end&webhook_secret=$SECRET" \
  --data-binary @"$WORK/small.txt"
expect_eq "$CODE" 201 "a job with the end event only"
END_ONLY=$(jq -r .id <<<"$BODY")
ended_both() {
  grep -q "\"Mxprobe-Delivery\": \"$TIMED-[0-9]*\", \"Mxprobe-Event\": \"job.ended\"" "$WORK/hooks.jsonl" &&
    grep -q "\"Mxprobe-Delivery\": \"$END_ONLY-1\", \"Mxprobe-Event\": \"job.ended\"" "$WORK/hooks.jsonl"
}
wait_for 60 ended_both || fail "the small jobs' end events: $(tail -c 600 "$WORK/hooks.jsonl")"
"$PY" - "$WORK/hooks.jsonl" "$TIMED" "$END_ONLY" <<'PY' || fail "timed batches and the end event alone"
import json, sys
hooks = [json.loads(l) for l in open(sys.argv[1])]
timed = [json.loads(h["body"]) for h in hooks if h["path"] == "/timed"]
batches = [b for b in timed if b["event"] == "records"]
assert len(batches) >= 2, f"{len(batches)} batch(es): webhook_interval did not send early"
assert all(b["count"] < 200 for b in batches)
assert sorted(r["line"] for b in batches for r in b["records"]) == list(range(1, 201))
assert timed[-1]["event"] == "job.ended" and timed[-1]["seq"] == len(batches) + 1
end = [json.loads(h["body"]) for h in hooks if h["path"] == "/end"]
assert [e["event"] for e in end] == ["job.ended"], end
assert end[0]["delivery"] == f"{sys.argv[3]}-1" and end[0]["batches"] == 0
assert end[0]["summary"]["done"] == 200 and end[0]["summary"]["state"] == "finished"
print(f"timed: {len(batches)} batches of {[b['count'] for b in batches]}")
PY
ok
echo "webhooks ($BACKEND): $CHECKS checks passed"
