#!/usr/bin/env bash
# `mxprobe serve` against hostile clients (hostile.py: malformed requests, huge headers, URLs and
# bodies, slowloris, 1,030 slow connections, bad WebSocket frames, nested JSON): the server stays up and keeps
# verifying. Env MXFARM, MXPROBE, optional SERVE_BACKEND (auto, uring or uv; default auto).
# Range 127.2-10.0.0/16.
MXPROBE=${MXPROBE:?MXPROBE must name the mxprobe binary}
source "$(dirname "$0")/../lib.sh"
LAB_POLICY=$ROOT/tools/policy/lab.toml
HERE_SERVE=$(cd "$(dirname "$0")" && pwd)

SC=$WORK/sc.json
launch 2 10 --domains 2 --hosts 1 --mx-per-domain 1 --mailboxes 20 --catch-all-share 0 \
  --special none
"$MXFARM" truth "$WORK/sc.json" >"$WORK/truth.csv"
OK_ADDRS=$(awk -F, '$2=="deliverable" {print $1}' "$WORK/truth.csv" | paste -sd,)
BAD_ADDR=$(awk -F, '$3=="mailbox_not_found" && $1 ~ /@d1\./ {print $1; exit}' "$WORK/truth.csv")
[[ -n $OK_ADDRS && -n $BAD_ADDR ]] || fail "truth lacks the addresses we need"

# 1,030 slow connections plus the rest: the client needs the descriptors (mxprobe raises its own).
if (($(ulimit -n) < 2048)); then
  ulimit -n 2048 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
fi
(($(ulimit -n) >= 1200)) || fail "open files limit $(ulimit -n) is too low for 1,030 connections"

serve_start serve --policy "$LAB_POLICY" --dns "127.0.0.1:$DNS_PORT" \
  --backend "${SERVE_BACKEND:-auto}" --no-cache --helo serve.client.test --data "$WORK/data"

"$PY" "$HERE_SERVE/hostile.py" "$URL" "$OK_ADDRS" "$BAD_ADDR" "$SERVE_PID" "$WORK/serve.err" ||
  fail "hostile clients (serve stderr: $(tail -5 "$WORK/serve.err"))"
ok
kill -0 "$SERVE_PID" 2>/dev/null || fail "serve died"
ok

# It still stops cleanly.
serve_stop TERM
expect_eq "$SERVE_RC" 0 "serve exit status after SIGTERM"
if grep -Eq "AddressSanitizer|LeakSanitizer|runtime error" "$WORK/serve.err"; then
  tail -40 "$WORK/serve.err" >&2
  fail "sanitizer report in serve stderr"
fi
ok
echo "PASS: $CHECKS checks"
