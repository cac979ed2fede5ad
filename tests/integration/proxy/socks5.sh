#!/usr/bin/env bash
# SOCKS5 proxy pools, end to end, on one event-loop backend: mxprobe verifies an mxfarm scenario
# through two real SOCKS5 proxies (Debian's microsocks, username/password auth, each binding its
# outgoing connections to an address of its own so the farm can tell them apart):
#   1. both proxies good: every record is the farm's truth, exactly one per input line, each says
#      which proxy it went through (source_ip null), the farm saw only the proxies' addresses,
#      and the password appears nowhere (output, stderr);
#   2. wrong credentials on both: nothing is lost — addresses that need no mail server keep their
#      verdict (DNS, syntax), every other one ends unknown/proxy_failed; stderr says why
#      (auth_refused) without the password;
#   3. a proxy killed mid-run (SIGKILL once the farm has seen RCPTs through it, read from the
#      farm's log as it streams): every address still gets exactly one record with the farm's
#      verdict, through the other proxy; stderr says the dead one left the rotation;
#   4. the same with a proxy that hangs (SIGSTOP): found by the health check a silent session
#      asks for, not blamed on the mail servers.
# Farm hosts answer 40 ms late so that sessions are in flight when the proxy dies.
# Usage: socks5.sh uring|uv   (env MXFARM, MXPROBE). Range 127.155-164.0.0/16.
source "$(dirname "$0")/../lib.sh"
LAB_POLICY=$ROOT/tools/policy/lab.toml
MXPROBE=${MXPROBE:?MXPROBE must name the mxprobe binary}
BACKEND=${1:?backend}
command -v microsocks >/dev/null || fail "microsocks is not installed (tools/setup.sh)"

skip_without_uring "$BACKEND"

# Proxies are stopped by pid, on failure too (lib.sh's cleanup stops the farm).
PROXY_PIDS=()
stop_proxies() {
  local p
  for p in "${PROXY_PIDS[@]}"; do
    # CONT first: a stopped process would keep a TERM pending and never exit.
    if kill -0 "$p" 2>/dev/null; then kill -CONT "$p" 2>/dev/null || true; kill -TERM "$p" 2>/dev/null || true; fi
    wait "$p" 2>/dev/null || true
  done
  PROXY_PIDS=()
}
trap 'stop_proxies; cleanup' EXIT

SC=$WORK/scenario.json
REPORT=$WORK/report.json
SPECIAL=styles,catchall,nopipelining,heloonly,drop-mail,reset-rcpt,failover,rcptlimit,aonly,nullmx,nomx,nxdomain
write_scenario() {
  "$MXFARM" gen --domains 8 --hosts 3 --mailboxes 5 --catch-all-share 0.2 --greylist-share 0 \
    --special "$SPECIAL" --base-ip "$BASE" --dns-port "$DNS_PORT" >"$SC.gen"
  "$PY" -c '
import json, sys
s = json.load(open(sys.argv[1]))
for h in s["hosts"]:
    h["reply_delay_ms"] = max(h.get("reply_delay_ms", 0), 40)
json.dump(s, open(sys.argv[2], "w"))' "$SC.gen" "$SC"
}
farm_in_band 155 164 write_scenario
"$MXFARM" truth "$SC" --timeout-ms 2000 --invalid 3 >"$WORK/truth.csv"
"$PY" -c '
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
open(sys.argv[2], "w").write("".join(r["email"] + "\n" for r in rows))' "$WORK/truth.csv" "$WORK/list.txt"

USER=probe
PASS="pw-$RANDOM$RANDOM-secret"
BAD_PASS="wrong-$RANDOM$RANDOM-pw"
A_IP=127.$NET.9.1
B_IP=127.$NET.9.2
# start_proxy IP: microsocks on IP, a random port; waits until it accepts connections (or fails
# when it exited: the port was taken). Sets PORT.
start_proxy() {
  local ip=$1 pid
  for _ in 1 2 3 4 5; do
    PORT=$((20000 + RANDOM % 10000))
    microsocks -i "$ip" -p "$PORT" -u "$USER" -P "$PASS" -b "$ip" >"$WORK/socks-$ip.log" 2>&1 &
    pid=$!
    PROXY_PIDS+=("$pid")
    if wait_listening "$ip" "$PORT" "$pid"; then
      LAST_PID=$pid
      return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  fail "microsocks could not listen on $ip"
}
start_proxy "$A_IP"
A_PORT=$PORT
A_PID=$LAST_PID
start_proxy "$B_IP"
B_PORT=$PORT
A_URL="socks5://$USER:$PASS@$A_IP:$A_PORT"
B_URL="socks5://$USER:$PASS@$B_IP:$B_PORT"
A_SHOW="socks5://$A_IP:$A_PORT"
B_SHOW="socks5://$B_IP:$B_PORT"

run_verify() {  # run_verify OUT ERR [options...]
  local out=$1 err=$2
  shift 2
  "$MXPROBE" verify --backend "$BACKEND" --policy "$LAB_POLICY" --no-cache \
    --dns "127.0.0.1:$DNS_PORT" --input "$WORK/list.txt" --output "$out" --no-progress \
    --timeout-connect 2 --timeout-banner 2 --timeout-command 2 --timeout-dns 0.5 \
    --helo probe.client.test "$@" 2>"$err"
}

# check.py CASE OUT ERR: records against the truth, as the case expects.
cat >"$WORK/check.py" <<'PY'
import csv, json, sys
case, out, err, truth = sys.argv[1:5]
proxies = set(sys.argv[5].split(","))
secrets = sys.argv[6].split(",")
rows = list(csv.DictReader(open(truth)))
want = {r["email"]: (r["verdict"], r["reason"]) for r in rows}
recs = [json.loads(l) for l in open(out)]
errtext = open(err).read()
bad = []
lines = sorted(r["line"] for r in recs)
if lines != list(range(1, len(rows) + 1)):
    bad.append(f"{len(recs)} records for {len(rows)} lines, not exactly one per line")
DNS_ONLY = {"no_such_domain", "null_mx", "no_mail_server", "invalid_syntax", "dns_error"}
for r in recs:
    w = want.get(r["email"])
    if w is None:
        bad.append(f"unexpected {r['email']!r}")
        continue
    if case == "badauth" and w[1] not in DNS_ONLY:
        w = ("unknown", "proxy_failed")
    if (r["verdict"], r["reason"]) != w:
        bad.append(f"{r['email']}: got {r['verdict']}/{r['reason']} smtp={r['smtp']} proxy={r['proxy']} want {w[0]}/{w[1]}")
    if r["source_ip"] is not None:
        bad.append(f"{r['email']}: source_ip {r['source_ip']} through a proxy")
    if r["mx"] and r["proxy"] not in proxies:
        bad.append(f"{r['email']}: proxy {r['proxy']!r}, not one of {sorted(proxies)}")
used = {r["proxy"] for r in recs if r["proxy"]}
if case == "good" and used != proxies:
    bad.append(f"records went through {sorted(used)}, want both {sorted(proxies)}")
if case == "kill" and not used:
    bad.append("no record went through a proxy")
for s in secrets:
    for name, text in (("output", open(out).read()), ("stderr", errtext)):
        if s in text:
            bad.append(f"a password appears in the {name}")
for b in bad[:40]:
    print("MISMATCH", b)
print(f"{case}: {len(recs)} records, {len(bad)} mismatches, through {sorted(used)}")
sys.exit(1 if bad else 0)
PY

# 1. Both proxies good.
run_verify "$WORK/good.jsonl" "$WORK/good.err" --proxy "$A_URL" --proxy "$B_URL" -c 20 ||
  { cat "$WORK/good.err" >&2; fail "mxprobe verify through proxies failed"; }
"$PY" "$WORK/check.py" good "$WORK/good.jsonl" "$WORK/good.err" "$WORK/truth.csv" \
  "$A_SHOW,$B_SHOW" "$PASS" || { tail -20 "$WORK/good.err" >&2; fail "case good"; }
ok

# 2. Wrong credentials on both (from a --proxy-file, with a comment line).
printf '# two proxies, wrong password\nsocks5://%s:%s@%s:%s\n  socks5://%s:%s@%s:%s  # B\n' \
  "$USER" "$BAD_PASS" "$A_IP" "$A_PORT" "$USER" "$BAD_PASS" "$B_IP" "$B_PORT" >"$WORK/proxies.txt"
run_verify "$WORK/bad.jsonl" "$WORK/bad.err" --proxy-file "$WORK/proxies.txt" ||
  { cat "$WORK/bad.err" >&2; fail "mxprobe verify with wrong credentials failed"; }
"$PY" "$WORK/check.py" badauth "$WORK/bad.jsonl" "$WORK/bad.err" "$WORK/truth.csv" \
  "$A_SHOW,$B_SHOW" "$BAD_PASS" || { tail -20 "$WORK/bad.err" >&2; fail "case wrong credentials"; }
expect_match "$(cat "$WORK/bad.err")" "proxy $A_SHOW is out of rotation: auth_refused" "why A left"
expect_match "$(cat "$WORK/bad.err")" "proxy $B_SHOW is out of rotation: auth_refused" "why B left"
stop_farm

# 3. Proxy A killed mid-run. The farm runs again with --log on a pipe that the driver reads as it
# streams: once the farm has seen KILL_AFTER RCPTs from A's address, A gets SIGKILL. One try per
# address (no retry of 4xx, timeouts or closed connections): a session lost with its proxy must
# not count as a try nor end as the server's protocol_error, or the verdicts would differ.
sed 's/^retry = .*/retry = { schedule = ["3s"], attempts = 1 }/' "$LAB_POLICY" >"$WORK/once.toml"
grep -q 'attempts = 1 }' "$WORK/once.toml" || fail "could not derive the one-try policy"
cat >"$WORK/kill.py" <<'PY'
import os, signal, subprocess, sys, threading
(mxfarm, sc, report, a_ip, a_pid, kill_after, sig, out, err) = sys.argv[1:10]
cmd = sys.argv[10:]
farm = subprocess.Popen([mxfarm, "run", sc, "--report", report, "--log"],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
mx = None
try:
    ready = farm.stdout.readline()
    if not ready.startswith("ready "):
        sys.exit(f"farm did not start: {ready!r} {farm.stderr.read()[-500:]}")
    reached = threading.Event()
    seen = {"a": 0, "all": 0}
    log = open(out + ".farm.log", "w")
    def pump():  # drains the farm's log (it must never block on it) and counts
        for line in farm.stderr:
            log.write(line)
            if " C: RCPT" in line:
                seen["all"] += 1
                if f" {a_ip} C: RCPT" in line:
                    seen["a"] += 1
                    if seen["a"] >= int(kill_after):
                        reached.set()
    t = threading.Thread(target=pump, daemon=True)
    t.start()
    with open(err, "w") as e:
        mx = subprocess.Popen(cmd, stderr=e)
        while not reached.wait(0.5):
            if mx.poll() is not None:
                sys.exit(f"mxprobe finished before {kill_after} RCPTs went through proxy A")
        os.kill(int(a_pid), getattr(signal, "SIG" + sig))
        at = seen["all"]
        rc = mx.wait(timeout=120)
    print(f"proxy A got SIG{sig} after {at} RCPTs at the farm; mxprobe exit {rc}")
    if rc != 0:
        sys.exit(f"mxprobe exit {rc}")
finally:
    if mx is not None and mx.poll() is None:
        mx.kill()
        mx.wait()
    farm.send_signal(signal.SIGTERM)
    farm.wait()
PY
"$PY" "$WORK/kill.py" "$MXFARM" "$SC" "$WORK/report-kill.json" "$A_IP" "$A_PID" 8 KILL \
  "$WORK/kill.jsonl" "$WORK/kill.err" \
  "$MXPROBE" verify --backend "$BACKEND" --policy "$WORK/once.toml" --no-cache \
  --dns "127.0.0.1:$DNS_PORT" --input "$WORK/list.txt" --output "$WORK/kill.jsonl" --no-progress \
  --timeout-connect 2 --timeout-banner 2 --timeout-command 2 --timeout-dns 0.5 \
  --helo probe.client.test --proxy "$A_URL" --proxy "$B_URL" -c 6 --rcpts-per-session 2 ||
  { tail -20 "$WORK/kill.err" >&2; fail "mxprobe verify with a proxy killed mid-run"; }
wait "$A_PID" 2>/dev/null || true
"$PY" "$WORK/check.py" kill "$WORK/kill.jsonl" "$WORK/kill.err" "$WORK/truth.csv" \
  "$A_SHOW,$B_SHOW" "$PASS" || { tail -20 "$WORK/kill.err" >&2; fail "case proxy killed"; }
expect_match "$(cat "$WORK/kill.err")" "proxy $A_SHOW is out of rotation" "the dead proxy left the rotation"
# The mail servers saw only the proxies (their bound addresses), never us.
clients=$(report_get "$WORK/report-kill.json" "sorted(r['clients'])")
expect_eq "$clients" "$(printf "%s\n" "$A_IP" "$B_IP" | sort | "$PY" -c "import sys; print(sorted(sys.stdin.read().split()))")" "farm clients"
clients=$(report_get "$REPORT" "sorted(r['clients'])")
expect_eq "$clients" "$("$PY" -c "import sys; print(sorted(sys.argv[1:]))" "$A_IP" "$B_IP")" "farm clients (cases 1-2)"

# 4. A proxy that hangs (SIGSTOP: its port still accepts, nothing is forwarded): the sessions
# through it go silent; their stage timeouts first health-check the proxy, which does not answer
# its greeting within --proxy-timeout, so it leaves the rotation and nothing counts against the
# mail servers (one try per address: a timeout blamed on a server would show as a verdict).
start_proxy "$A_IP"
C_PID=$LAST_PID
C_URL="socks5://$USER:$PASS@$A_IP:$PORT"
C_SHOW="socks5://$A_IP:$PORT"
"$PY" "$WORK/kill.py" "$MXFARM" "$SC" "$WORK/report-hang.json" "$A_IP" "$C_PID" 8 STOP \
  "$WORK/hang.jsonl" "$WORK/hang.err" \
  "$MXPROBE" verify --backend "$BACKEND" --policy "$WORK/once.toml" --no-cache \
  --dns "127.0.0.1:$DNS_PORT" --input "$WORK/list.txt" --output "$WORK/hang.jsonl" --no-progress \
  --timeout-connect 2 --timeout-banner 2 --timeout-command 2 --timeout-dns 0.5 --proxy-timeout 1 \
  --helo probe.client.test --proxy "$C_URL" --proxy "$B_URL" -c 6 --rcpts-per-session 2 ||
  { tail -20 "$WORK/hang.err" >&2; fail "mxprobe verify with a proxy hung mid-run"; }
"$PY" "$WORK/check.py" kill "$WORK/hang.jsonl" "$WORK/hang.err" "$WORK/truth.csv" \
  "$C_SHOW,$B_SHOW" "$PASS" || { tail -20 "$WORK/hang.err" >&2; fail "case proxy hung"; }
expect_match "$(cat "$WORK/hang.err")" "proxy $C_SHOW is out of rotation: no (SOCKS5 )?answer" "the hung proxy left the rotation"
stop_proxies
echo "PASS proxy_socks5 $BACKEND ($CHECKS checks)"
