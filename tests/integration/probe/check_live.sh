#!/usr/bin/env bash
# `mxprobe check` shows what it waits for and what happened, step by step:
# - on a terminal (a pty), a live status line on stderr, redrawn in place and cleared at the end,
#   while a server that accepts the connection never greets ("waiting for the banner from
#   mx.silent.test [IP]:25, 2 s"); nothing of it when stderr is not a terminal;
# - its transcript (--verbose) says which IP:port it connected to, when TLS started and with
#   what, and how long each step took.
# Usage: check_live.sh [uring|uv]. Env MXFARM, MXPROBE. Range 127.150-154.0.0/16.
MXPROBE=${MXPROBE:?MXPROBE must name the mxprobe binary}
BACKEND=${1:-auto}
source "$(dirname "$0")/../lib.sh"
HERE_PROBE=$(cd "$(dirname "$0")" && pwd)
skip_without_uring "$BACKEND"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -subj "/CN=mx.starttls.test" -keyout "$WORK/key.pem" -out "$WORK/cert.pem" \
  2>"$WORK/openssl.err" || fail "openssl req: $(cat "$WORK/openssl.err")"
write_scenario() {
  "$MXFARM" gen --domains 1 --hosts 1 --mailboxes 3 --catch-all-share 0 --special styles,starttls \
    --base-ip "$BASE" --dns-port "$DNS_PORT" >"$WORK/gen.json"
  # silent.test: a host that accepts connections and never greets (within the test).
  jq --arg ip "127.$NET.0.201" '.hosts += [{"ip": $ip, "name": "mx.silent.test", "port": 25,
      "style": "postfix", "banner_delay_ms": 600000}]
    | .domains += [{"dns": "mx", "name": "silent.test", "style": "postfix",
      "mailboxes": {"user1": "ok"}, "mx": [{"host": "mx.silent.test", "pref": 10}]}]' \
    "$WORK/gen.json" >"$SC"
}
farm_in_band 150 154 write_scenario --tls-cert "$WORK/cert.pem" --tls-key "$WORK/key.pem"
SILENT=127.$NET.0.201
check() { "$MXPROBE" check --backend "$BACKEND" --dns "127.0.0.1:$DNS_PORT" --helo probe.client.test "$@"; }

# 1. The live line on a terminal: the stage waited on, the server, the seconds, in place.
rc=0
"$PY" "$HERE_PROBE/pty_run.py" "$WORK/tty.bin" "$MXPROBE" check --backend "$BACKEND" \
  --dns "127.0.0.1:$DNS_PORT" --helo probe.client.test --timeout-banner 3 user1@silent.test \
  >"$WORK/tty.out" || rc=$?
expect_eq "$rc" 0 "pty: check exit status"
expect_match "$(cat "$WORK/tty.out")" '^user1@silent.test  unknown \(timeout\)' "pty: timed out"
tty=$(tr '\r\033' 'RE' <"$WORK/tty.bin")
for s in 1 2; do
  expect_match "$tty" "RE\\[Kwaiting for the banner from mx\\.silent\\.test \\[$SILENT:25\\], $s s" \
    "pty: the banner waited on, $s s"
done
expect_match "$tty" 'RE\[K$' "pty: the line cleared at the end"

# 2. Not a terminal: no status line.
check --timeout-banner 2 user1@silent.test >"$WORK/plain.out" 2>"$WORK/plain.err"
expect_no_match "$(cat "$WORK/plain.err")" 'waiting for' "not a terminal: no status line"
expect_no_match "$(tr '\r\033' 'RE' <"$WORK/plain.err")" 'RE' "not a terminal: no escapes"

# 3. The transcript: where, TLS, how long each step took.
check --verbose user1@starttls.test >"$WORK/tls.out" 2>"$WORK/tls.err" || fail "check starttls: $?"
T=$(cat "$WORK/tls.out")
TLS_IP=$(jq -r '.hosts[] | select(.name == "mx.starttls.test") | .ip' "$SC")
expect_match "$T" "^    \\* connecting to mx\\.starttls\\.test \\[$TLS_IP:25\\]$" "transcript: IP:port"
expect_match "$T" '^    \* connected in [0-9]+\.[0-9] ms$' "transcript: connect time"
expect_match "$T" '^    \* greeting after [0-9]+\.[0-9] ms$' "transcript: greeting time"
expect_match "$T" '^    \* EHLO answered in [0-9]+\.[0-9] ms$' "transcript: EHLO time"
expect_match "$T" '^    \* STARTTLS answered in [0-9]+\.[0-9] ms$' "transcript: STARTTLS time"
expect_match "$T" '^    \* TLS started: TLSv1\.[23] [A-Z0-9_-]+ in [0-9]+\.[0-9] ms' "transcript: TLS, what, when"
expect_match "$T" '^    \* RCPT answered in [0-9]+\.[0-9] ms$' "transcript: RCPT time"
# In order: connect, greeting, STARTTLS, TLS, then the EHLO inside TLS.
order=$(grep -E '^    (\* (connecting|connected|greeting|TLS started)|C: (STARTTLS|EHLO))' "$WORK/tls.out" |
  awk '{print $2}' | tr '\n' ' ')
expect_eq "$order" "connecting connected greeting EHLO STARTTLS TLS EHLO " \
  "transcript: the steps in order"
# The same lines in the JSON record.
check --json --verbose user1@starttls.test >"$WORK/tls.json" 2>/dev/null || fail "check --json"
expect_match "$(jq -r .transcript "$WORK/tls.json")" '^\* TLS started: TLSv1' "JSON transcript: TLS line"
# A server that never greets: the transcript says how long it waited, and for what.
check --verbose --timeout-banner 2 user1@silent.test >"$WORK/silent.out" 2>/dev/null
expect_match "$(cat "$WORK/silent.out")" \
  "^    \\* timed out after 2[0-9]{3}\\.[0-9] ms waiting for the banner$" "transcript: the timeout"

kill -TERM "$FARM_PID"
wait "$FARM_PID" || true
FARM_PID=""
echo "check_live ($BACKEND): $CHECKS checks passed"
