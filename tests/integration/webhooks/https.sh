#!/usr/bin/env bash
# https:// webhooks with the receiver's certificate verified (docs/webhooks.md): a CA, a server
# certificate for the receiver's name in the farm's DNS and one for another name, made here with
# the openssl command; Python https receivers (http.server behind ssl.SSLContext) that log every
# request, the name each client sent (SNI) and each failed handshake.
#  - serve with --webhook-ca-file ca.pem: a job of 200 addresses with webhook_batch=50 to
#    https://NAME:PORT/hook: every delivery (the batches and the end event) acknowledged, in
#    order, once each; every signature verifies with Python's hmac over "t.body"; the batches'
#    records are the job's results; the receiver saw NAME as SNI; a job to https://ADDRESS:PORT
#    (the certificate names the address too) is acknowledged as well;
#  - the same serve, a job to the receiver whose certificate names another host: the delivery is
#    not acknowledged, its log says "tls: certificate verify failed: hostname mismatch", the
#    receiver saw the handshake fail and never got a request;
#  - serve without --webhook-ca-file, a job to the good receiver: likewise with "unable to get
#    local issuer certificate" (the CA is not in the system's store);
#  - --webhook-ca-file naming no file, or a file without a certificate: exit 2, the option named.
# Usage: https.sh uring|uv   (env MXFARM, MXPROBE). Range 127.250.0.0/16 (the farm in
# 127.250.10-59.0 for uring, 127.250.60-109.0 for uv; the receivers on its first host's address).
source "$(dirname "$0")/../lib.sh"
MXPROBE=${MXPROBE:?MXPROBE must name the mxprobe binary}
BACKEND=${1:?backend}
skip_without_uring "$BACKEND"
SC=$WORK/sc.json
REPORT=$WORK/report.json
SECRET=whsec-$RANDOM$RANDOM-0123456789abcdef
TOTAL=200

# The two backends run side by side: each takes a third octet range of the band of its own.
write_scenario() {
  local off=10
  [[ $BACKEND == uv ]] && off=60
  BASE=127.250.$((off + RANDOM % 50)).0
  "$MXFARM" gen --domains 4 --hosts 2 --mailboxes 60 --catch-all-share 0 --special none \
    --base-ip "$BASE" --dns-port "$DNS_PORT" >"$SC"
}
farm_in_band 250 250 write_scenario
"$MXFARM" truth "$SC" --count $TOTAL >"$WORK/truth.csv"
tail -n +2 "$WORK/truth.csv" | cut -d, -f1 >"$WORK/list.txt"
cat >"$WORK/policy.toml" <<'TOML'
[global]
max_sessions = 20
builtin_providers = false
TOML

# The receivers listen on a farm host's address and the URLs name that host: serve finds it
# through the farm's DNS and checks its certificate against that name.
read -r RECV_IP RECV_HOST < <("$PY" -c 'import json,sys; h=json.load(open(sys.argv[1]))["hosts"][0]; print(h["ip"], h["name"])' "$SC")

# A CA, a certificate for the receiver's name (and its address) and one for another name.
ossl() { openssl "$@" 2>>"$WORK/openssl.err" || fail "openssl $1: $(tail -3 "$WORK/openssl.err")"; }
ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -subj "/CN=mxprobe test CA" -keyout "$WORK/ca.key" -out "$WORK/ca.pem"
certificate() {  # certificate NAME SAN: NAME.pem and NAME.key, signed by the CA
  ossl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=mxprobe test $1" \
    -keyout "$WORK/$1.key" -out "$WORK/$1.csr"
  printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$2" >"$WORK/$1.ext"
  ossl x509 -req -in "$WORK/$1.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" -CAcreateserial \
    -days 1 -extfile "$WORK/$1.ext" -out "$WORK/$1.pem"
}
certificate good "DNS:$RECV_HOST,IP:$RECV_IP"
certificate wrong "DNS:hooks.elsewhere.test"

# The receiver: logs each request (headers, body) before answering 200, the SNI of each
# handshake and each handshake that failed (in the connection's own thread: the server goes on).
cat >"$WORK/receiver.py" <<'PY'
import json, os, ssl, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ip, cert, key, log = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]

def write(entry):
    with open(log, "a") as f:
        f.write(json.dumps(entry) + "\n")
        f.flush()
        os.fsync(f.fileno())

ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
ctx.sni_callback = lambda sock, name, c: write({"sni": name})

class Hook(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        try:
            self.request.do_handshake()
        except (ssl.SSLError, OSError) as e:
            write({"handshake_failed": str(e)})
            raise
        super().setup()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        entry = {h: self.headers.get(h) for h in
                 ("Mxprobe-Delivery", "Mxprobe-Event", "Mxprobe-Signature", "Host")}
        entry.update(path=self.path, body=body.decode())
        write(entry)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass

class Server(ThreadingHTTPServer):
    def handle_error(self, request, address):
        pass  # a failed handshake: logged by the handler

server = Server((ip, 0), Hook)
server.socket = ctx.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
print(server.server_address[1], flush=True)
server.serve_forever()
PY
RECV_PIDS=()
receiver() {  # receiver NAME: the receiver with NAME.pem, logging to NAME.jsonl; sets PORT
  : >"$WORK/$1.jsonl"
  "$PY" "$WORK/receiver.py" "$RECV_IP" "$WORK/$1.pem" "$WORK/$1.key" "$WORK/$1.jsonl" \
    >"$WORK/$1.port" 2>>"$WORK/$1.err" &
  RECV_PIDS+=($!)
  wait_for 10 test -s "$WORK/$1.port" || fail "receiver $1 did not start: $(cat "$WORK/$1.err")"
  PORT=$(cat "$WORK/$1.port")
}
stop_receivers() {
  local p
  for p in "${RECV_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
}
trap 'stop_receivers; cleanup' EXIT
receiver good
GOOD_PORT=$PORT
receiver wrong
WRONG_PORT=$PORT

serve() {  # serve NAME [ARGS...]
  local name=$1
  shift
  serve_start "$name" --backend "$BACKEND" --policy "$WORK/policy.toml" \
    --dns "127.0.0.1:$DNS_PORT" --no-cache --helo webhooks.client.test --data "$WORK/$name" "$@"
}
hooklog() { curl -sS "${1}v1/jobs/$2/webhooks?limit=1000"; }
# job URL WEBHOOK_URL [BATCH]: a job of the list with that webhook; sets JOB.
job() {
  req POST "/v1/jobs?webhook_url=$2${3:+&webhook_batch=$3}" -H "Mxprobe-Webhook-Secret: $SECRET" \
    --data-binary @"$WORK/list.txt"
  expect_eq "$CODE" 201 "a job with the webhook $2"
  JOB=$(jq -r .id <<<"$BODY")
}
# failed_attempt URL JOB: true once the job's first delivery has a failed attempt on record;
# sets LAST_ERROR and STATE.
failed_attempt() {
  local d
  d=$(hooklog "$1" "$2" | jq -c '.deliveries[0] // empty')
  [[ -n $d && $(jq -r .attempts <<<"$d") -ge 1 ]] || return 1
  LAST_ERROR=$(jq -r .last_error <<<"$d")
  STATE=$(jq -r .state <<<"$d")
}

# (d) A CA file that cannot be used stops serve at once: exit 2, the option named.
for bad in /nonexistent/ca.pem "$WORK/list.txt"; do
  rc=0
  "$MXPROBE" serve --listen 127.0.0.1:0 --data "$WORK/bad" --no-cache --dns "127.0.0.1:$DNS_PORT" \
    --webhook-ca-file "$bad" 2>"$WORK/bad.err" || rc=$?
  expect_eq "$rc" 2 "serve --webhook-ca-file $bad: exit status"
  expect_match "$(cat "$WORK/bad.err")" "^mxprobe serve: --webhook-ca-file: cannot load CA certificates from $bad" \
    "its message"
done

serve trusted --webhook-ca-file "$WORK/ca.pem"
TRUSTED=$URL
serve untrusted
UNTRUSTED=$URL

# (a) The private CA trusted: the job's deliveries arrive and are acknowledged.
URL=$TRUSTED
job "$TRUSTED" "https://$RECV_HOST:$GOOD_PORT/hook" 50
GOOD_JOB=$JOB
# The same receiver by its address (the certificate names it too): verified, no SNI.
job "$TRUSTED" "https://$RECV_IP:$GOOD_PORT/ip"
IP_JOB=$JOB
# (c) The same serve, a certificate for another name.
job "$TRUSTED" "https://$RECV_HOST:$WRONG_PORT/wrong"
WRONG_JOB=$JOB
# (b) Without the CA: the good receiver's certificate does not verify.
URL=$UNTRUSTED
job "$UNTRUSTED" "https://$RECV_HOST:$GOOD_PORT/noca"
NOCA_JOB=$JOB

ended() { grep -q "\"Mxprobe-Delivery\": \"$GOOD_JOB-[0-9]*\", \"Mxprobe-Event\": \"job.ended\"" "$WORK/good.jsonl"; }
wait_for 60 ended || fail "no end event over https: $(hooklog "$TRUSTED" "$GOOD_JOB" | tail -c 600)"
settled() { [[ $(curl -sS "${TRUSTED}v1/jobs/$GOOD_JOB" | jq -r .webhook.pending) == 0 ]]; }
wait_for 10 settled || fail "deliveries still pending: $(hooklog "$TRUSTED" "$GOOD_JOB" | tail -c 600)"
curl -sS "${TRUSTED}v1/jobs/$GOOD_JOB/results" >"$WORK/results.jsonl"
hooklog "$TRUSTED" "$GOOD_JOB" >"$WORK/log.json"
"$PY" - "$WORK/good.jsonl" "$WORK/results.jsonl" "$WORK/log.json" "$SECRET" "$GOOD_JOB" \
  "$TOTAL" "$RECV_HOST" "$GOOD_PORT" <<'PY' || fail "the deliveries over https"
import hashlib, hmac, json, sys
entries = [json.loads(l) for l in open(sys.argv[1])]
results = {r["line"]: r for r in map(json.loads, open(sys.argv[2]))}
log = json.load(open(sys.argv[3]))
secret, job, total, host, port = sys.argv[4].encode(), sys.argv[5], int(sys.argv[6]), sys.argv[7], sys.argv[8]
hooks = [e for e in entries if e.get("path") == "/hook"]
snis = {e["sni"] for e in entries if "sni" in e} - {None}  # None: the URL with an address
assert snis == {host}, f"SNI {snis}, want {host}"
lines = []
for i, h in enumerate(hooks):
    parts = dict(p.split("=", 1) for p in h["Mxprobe-Signature"].split(","))
    want = hmac.new(secret, parts["t"].encode() + b"." + h["body"].encode(), hashlib.sha256).hexdigest()
    assert hmac.compare_digest(want, parts["v1"]), f"bad signature on {h['Mxprobe-Delivery']}"
    assert h["Host"] == f"{host}:{port}", h["Host"]
    b = json.loads(h["body"])
    assert b["seq"] == i + 1 and h["Mxprobe-Delivery"] == f"{job}-{b['seq']}", h["Mxprobe-Delivery"]
    if b["event"] == "records":
        assert b["count"] <= 50
        for r in b["records"]:
            assert r == results[r["line"]], f"line {r['line']} differs from the job's results"
            lines.append(r["line"])
assert hooks[-1]["Mxprobe-Event"] == "job.ended" and len(hooks) >= 5, [h["Mxprobe-Event"] for h in hooks]
assert sorted(lines) == list(range(1, total + 1)), f"{len(lines)} records batched"
d = log["deliveries"]
assert [x["seq"] for x in d] == list(range(1, len(hooks) + 1))
assert all(x["state"] == "acknowledged" and x["attempts"] == 1 for x in d), d
print(f"https: {len(hooks)} deliveries acknowledged, SNI {host}")
PY
ok

ip_acked() { [[ $(hooklog "$TRUSTED" "$IP_JOB" | jq -r '.deliveries[0].state') == acknowledged ]]; }
wait_for 20 ip_acked || fail "the URL with an address: $(hooklog "$TRUSTED" "$IP_JOB" | tail -c 600)"
expect_match "$(cat "$WORK/good.jsonl")" '"Mxprobe-Delivery": "'"$IP_JOB"'-1".*"path": "/ip"' "delivered by address"

# (b) and (c): failed attempts with the certificate's reason, no request received, the handshake
# failed on the receiver's side too (serve reached it and left during the handshake).
wait_for 20 failed_attempt "$UNTRUSTED" "$NOCA_JOB" ||
  fail "no failed attempt without the CA: $(hooklog "$UNTRUSTED" "$NOCA_JOB" | tail -c 600)"
expect_eq "$LAST_ERROR" "tls: certificate verify failed: unable to get local issuer certificate" \
  "without the CA: last_error"
expect_match "$STATE" '^(pending|sending)$' "without the CA: not acknowledged"
wait_for 20 failed_attempt "$TRUSTED" "$WRONG_JOB" ||
  fail "no failed attempt to the wrong name: $(hooklog "$TRUSTED" "$WRONG_JOB" | tail -c 600)"
expect_eq "$LAST_ERROR" "tls: certificate verify failed: hostname mismatch" "another name: last_error"
expect_match "$STATE" '^(pending|sending)$' "another name: not acknowledged"
expect_match "$(cat "$WORK/wrong.jsonl")" '"handshake_failed"' "the wrong-name receiver saw the handshake fail"
expect_no_match "$(cat "$WORK/wrong.jsonl")" '"path"' "the wrong-name receiver got no request"
expect_match "$(cat "$WORK/good.jsonl")" '"handshake_failed"' "the receiver saw the untrusted handshake fail"
expect_no_match "$(cat "$WORK/good.jsonl")" '"path": "/noca"' "and got no request from it"
expect_match "$(cat "$WORK/untrusted.err")" \
  "webhook $NOCA_JOB-1: tls: certificate verify failed: unable to get local issuer certificate; next try in" \
  "serve's log line"
echo "webhooks https ($BACKEND): $CHECKS checks passed"
