#!/usr/bin/env bash
# STARTTLS (RFC 3207) end to end, on one event-loop backend: mxprobe against mxfarm hosts that
# offer STARTTLS with a real handshake (starttls.test), require it (starttls-required.test: 530
# before TLS) or do not offer it (postfix.test). With the default --starttls auto every verdict
# is the farm's truth and the record's "tls" says the protocol and cipher where TLS was used;
# --starttls never against the requiring host and --starttls require against the plain host give
# unknown/tls_required; a certificate that fails --tls-verify makes auto go on without TLS; the
# the same through a SOCKS5 proxy (microsocks with auth: TLS inside the tunnel); the farm sees
# no DATA. The certificate is a throwaway one made here with the openssl command.
# Usage: starttls.sh uring|uv   (env MXFARM, MXPROBE). Range 127.140-149.0.0/16.
source "$(dirname "$0")/../lib.sh"
LAB_POLICY=$ROOT/tools/policy/lab.toml
MXPROBE=${MXPROBE:?MXPROBE must name the mxprobe binary}
BACKEND=${1:?backend}

skip_without_uring "$BACKEND"

SC=$WORK/scenario.json
REPORT=$WORK/report.json
write_scenario() {
  "$MXFARM" gen --domains 1 --hosts 1 --mailboxes 3 --catch-all-share 0 \
    --special styles,starttls,starttls-required --base-ip "$BASE" --dns-port "$DNS_PORT" >"$SC.gen"
  # Plus a host that hangs up on STARTTLS instead of answering (auto must go on without TLS).
  "$PY" - "$SC.gen" "$SC" "$NET" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
s["hosts"].append({"name": "mx.tlsdrop.test", "ip": f"127.{sys.argv[3]}.1.1", "starttls": True,
                   "drop": {"after": "starttls", "mode": "close"}})
s["domains"].append({"name": "tlsdrop.test", "mx": [{"pref": 10, "host": "mx.tlsdrop.test"}],
                     "mailboxes": {"user1": "ok", "user2": "ok", "full1": "full"}})
json.dump(s, open(sys.argv[2], "w"))
PY
  # A certificate naming the two TLS hosts (so that --tls-verify can succeed with it as the CA).
  hosts=$("$PY" - "$SC" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(",".join("DNS:" + h["name"] for h in s["hosts"] if h.get("starttls")))
PY
  )
  [[ $hosts == *DNS:* ]] || fail "no STARTTLS host in the scenario"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -subj /CN=mxfarm.test -addext "subjectAltName=$hosts" \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>"$WORK/openssl.err" ||
    fail "openssl req: $(cat "$WORK/openssl.err")"
}
farm_in_band 140 149 write_scenario --tls-cert "$WORK/cert.pem" --tls-key "$WORK/key.pem"

"$MXFARM" truth "$SC" >"$WORK/truth.csv"
# A requiring host cannot run without a certificate; cert and key go together.
rc=0
"$MXFARM" run "$SC" >/dev/null 2>"$WORK/nocert.err" || rc=$?
expect_eq "$rc" 2 "mxfarm run without a certificate refuses a tls_required host"
expect_match "$(cat "$WORK/nocert.err")" "requires STARTTLS: give --tls-cert and --tls-key" "its message"
rc=0
"$MXFARM" run "$SC" --tls-cert "$WORK/cert.pem" >/dev/null 2>&1 || rc=$?
expect_eq "$rc" 2 "--tls-cert without --tls-key"
grep -E '@(starttls|starttls-required|postfix)\.test,' "$WORK/truth.csv" | cut -d, -f1 >"$WORK/list.txt"
(($(wc -l <"$WORK/list.txt") >= 12)) || fail "too few addresses: $(cat "$WORK/list.txt")"

# run NAME [options]: mxprobe verify of $LIST (default list.txt) into $WORK/NAME.jsonl
# ($WORK/NAME.csv with --format csv).
run() {
  local name=$1 ext=jsonl
  shift
  [[ " $* " == *" --format csv "* ]] && ext=csv
  "$MXPROBE" verify --backend "$BACKEND" --policy "$LAB_POLICY" --no-cache --no-progress \
    --dns "127.0.0.1:$DNS_PORT" --helo probe.client.test --timeout-command 5 \
    --input "${LIST:-$WORK/list.txt}" --output "$WORK/$name.$ext" "$@" 2>"$WORK/$name.err" ||
    fail "mxprobe verify ($name) failed: $(cat "$WORK/$name.err")"
}

# check_records NAME RULES: each record against the truth, per domain ($LIST: the input):
#   RULES = "domain=truth|unknown/REASON:tls|notls ..." (tls: "tls" must name a version+cipher).
check_records() {
  "$PY" - "$WORK/truth.csv" "$WORK/$1.jsonl" "$2" "${LIST:-$WORK/list.txt}" <<'PY' || fail "$1: records differ"
import csv, json, sys
truth = {r["email"]: (r["verdict"], r["reason"]) for r in csv.DictReader(open(sys.argv[1]))}
rules = dict(kv.split("=") for kv in sys.argv[3].split())
recs = [json.loads(l) for l in open(sys.argv[2])]
emails = [l.strip() for l in open(sys.argv[4])]
assert sorted(r["email"] for r in recs) == sorted(emails), "not one record per address"
bad = []
for r in recs:
    want, tls = rules[r["domain"].split(".")[0]].split(":")
    want = truth[r["email"]] if want == "truth" else tuple(want.split("/"))
    if (r["verdict"], r["reason"]) != want:
        bad.append(f'{r["email"]}: {r["verdict"]}/{r["reason"]}, want {want} ({r["smtp"]})')
    t = r["tls"]
    if tls == "tls" and not (isinstance(t, dict) and t["version"] in ("TLSv1.2", "TLSv1.3")
                             and t["cipher"]):
        bad.append(f'{r["email"]}: tls {t}, want a version and cipher')
    if tls == "notls" and t is not None:
        bad.append(f'{r["email"]}: tls {t}, want null')
assert not bad, "\n".join(bad)
PY
  ok
}

# --- auto (the default): TLS where offered or required, the truth everywhere.
run auto
check_records auto "starttls=truth:tls starttls-required=truth:tls postfix=truth:notls"
expect_match "$(grep -m1 '@starttls.test' "$WORK/auto.jsonl")" '"tls":\{"version":"TLSv1\.3","cipher":"TLS_' \
  "auto: the record names TLS 1.3 and its cipher"

# --- per domain in the policy file: never for starttls.test, the default (auto) elsewhere.
{ cat "$LAB_POLICY"; printf '\n[domain."starttls.test"]\nstarttls = "never"\n'; } >"$WORK/policy.toml"
LAB_POLICY=$WORK/policy.toml run policy
check_records policy "starttls=truth:notls starttls-required=truth:tls postfix=truth:notls"

# --- a host that hangs up on STARTTLS: nothing lost, auto verifies it again without TLS.
grep -E '@tlsdrop\.test,' "$WORK/truth.csv" | cut -d, -f1 >"$WORK/drop.txt"
LIST=$WORK/drop.txt run drop
LIST=$WORK/drop.txt check_records drop "tlsdrop=truth:notls"
expect_match "$(cat "$WORK/drop.jsonl")" '"attempts":2,' "drop: the second session (without TLS) decided"
expect_match "$(cat "$WORK/drop.err")" "STARTTLS with mx\.tlsdrop\.test .* failed \(closed\)" "drop logged"

# --- one address per session, one session at a time: every session after the first resumes
# with a ticket from the one before (the farm counts them: checked in its report at the end).
grep -E '@starttls\.test,' "$WORK/truth.csv" | cut -d, -f1 >"$WORK/resume.txt"
LIST=$WORK/resume.txt run resume --rcpts-per-session 1 --domain-concurrency 1 -c 1
LIST=$WORK/resume.txt check_records resume "starttls=truth:tls"

# --- through a SOCKS5 proxy (a real microsocks): TLS runs inside the tunnel, end to end with
# the mail server, and the records name the proxy.
command -v microsocks >/dev/null || fail "microsocks is not installed (tools/setup.sh)"
PROXY_IP=127.$NET.9.1
for _ in 1 2 3 4 5; do
  PROXY_PORT=$((20000 + RANDOM % 10000))
  microsocks -i "$PROXY_IP" -p "$PROXY_PORT" -u probe -P "pw-$NET" >"$WORK/socks.log" 2>&1 &
  SOCKS_PID=$!
  trap 'kill "$SOCKS_PID" 2>/dev/null || true; cleanup' EXIT
  wait_listening "$PROXY_IP" "$PROXY_PORT" "$SOCKS_PID" && break
  kill "$SOCKS_PID" 2>/dev/null || true
  wait "$SOCKS_PID" 2>/dev/null || true
  SOCKS_PID=""
done
[[ -n $SOCKS_PID ]] || fail "microsocks could not listen on $PROXY_IP"
run proxied --proxy "socks5://probe:pw-$NET@$PROXY_IP:$PROXY_PORT"
check_records proxied "starttls=truth:tls starttls-required=truth:tls postfix=truth:notls"
expect_eq "$(jq -r .proxy "$WORK/proxied.jsonl" | sort -u)" "socks5://$PROXY_IP:$PROXY_PORT" \
  "proxied: every record names the proxy"
kill "$SOCKS_PID"
wait "$SOCKS_PID" 2>/dev/null || true

# --- never: the requiring host cannot be judged; the others as without TLS.
run never --starttls never
check_records never "starttls=truth:notls starttls-required=unknown/tls_required:notls postfix=truth:notls"

# --- require: the plain host cannot be judged; TLS hosts as in auto.
run require --starttls require
check_records require "starttls=truth:tls starttls-required=truth:tls postfix=unknown/tls_required:notls"

# --- --tls-verify with the system's CAs: the self-signed certificate fails the handshake; auto
# goes on without TLS on a new connection (the requiring host then says 530: tls_required).
run verify_fail --tls-verify
check_records verify_fail "starttls=truth:notls starttls-required=unknown/tls_required:notls postfix=truth:notls"
expect_match "$(cat "$WORK/verify_fail.err")" "STARTTLS with mx\.starttls\.test \[.*\] failed .*certificate.*going on without TLS" \
  "verify failure logged"
expect_eq "$(grep -c 'STARTTLS with mx\.starttls\.test ' "$WORK/verify_fail.err")" 1 "logged once per MX"
# ... and with our certificate as the CA it verifies (names in subjectAltName).
run verify_ok --tls-verify --tls-ca-file "$WORK/cert.pem"
check_records verify_ok "starttls=truth:tls starttls-required=truth:tls postfix=truth:notls"

# --- CSV: the tls columns, flattened.
run csv --format csv
"$PY" - "$WORK/csv.csv" <<'PY' || fail "CSV tls columns"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1], newline="")))
keys = list(rows[0].keys())
assert keys[keys.index("cached") + 1:keys.index("cached") + 3] == ["tls_version", "tls_cipher"], keys
for r in rows:
    tls = r["domain"].startswith("starttls")
    assert (r["tls_version"] in ("TLSv1.2", "TLSv1.3")) == tls and bool(r["tls_cipher"]) == tls, r
PY
ok

# --- the farm's side of RFC 3207, with Python's ssl as an independent client: STARTTLS
# required before MAIL, a command pipelined after STARTTLS dropped (CVE-2011-0411), EHLO inside
# TLS without STARTTLS, MAIL then accepted, a second STARTTLS refused.
"$PY" - "$(ip_of "$SC" starttls-required.test)" <<'PY' || fail "farm STARTTLS dialogue"
import socket, ssl, sys
s = socket.create_connection((sys.argv[1], 25), timeout=5)
def reply(f):
    lines = []
    while True:
        line = f.readline().decode()
        lines.append(line.rstrip("\r\n"))
        if len(line) < 4 or line[3] != "-":
            return lines
f = s.makefile("rb")
assert reply(f)[0].startswith("220")
s.sendall(b"EHLO client.test\r\n")
r = reply(f); assert "250-STARTTLS" in r, r
s.sendall(b"MAIL FROM:<a@client.test>\r\n")
r = reply(f); assert r[0].startswith("530 5.7.0"), r
s.sendall(b"STARTTLS\r\nRSET\r\n")
r = reply(f); assert r[0].startswith("220"), r
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
t = ctx.wrap_socket(s)
tf = t.makefile("rb")
t.sendall(b"EHLO client.test\r\n")
r = reply(tf)  # the EHLO's multi-line reply, not an answer to the dropped RSET
assert len(r) > 1 and r[0].startswith("250-") and not any("STARTTLS" in l for l in r), r
t.sendall(b"MAIL FROM:<a@client.test>\r\n")
r = reply(tf); assert r[0].startswith("250"), r
t.sendall(b"STARTTLS\r\n")
r = reply(tf); assert r[0][:3] in ("503", "554"), r
t.sendall(b"QUIT\r\n")
assert reply(tf)[0].startswith("221")
PY
ok

# --- check and serve take the option too (engine options are shared).
addr=$(grep -m1 '^user1@starttls-required' "$WORK/list.txt")
out=$("$MXPROBE" check --backend "$BACKEND" --json --dns "127.0.0.1:$DNS_PORT" --helo probe.client.test \
  --no-catch-all --starttls never "$addr" 2>&1) || true
expect_match "$out" '"verdict":"unknown","reason":"tls_required"' "check --starttls never: tls_required"
out=$("$MXPROBE" check --backend "$BACKEND" --json --dns "127.0.0.1:$DNS_PORT" --helo probe.client.test \
  --no-catch-all "$addr" 2>&1) || true
expect_match "$out" '"verdict":"deliverable".*"tls":\{"version":"TLSv1\.[23]"' "check (auto): deliverable over TLS"
out=$("$MXPROBE" check --backend "$BACKEND" --dns "127.0.0.1:$DNS_PORT" --helo probe.client.test \
  --no-catch-all "$addr" 2>&1) || true
expect_match "$out" '^  tls: TLSv1\.[23] TLS_' "check's report names TLS"
expect_match "$("$MXPROBE" serve --help 2>&1)" '--starttls' "serve has --starttls"
expect_match "$("$MXPROBE" verify --starttls sometimes x 2>&1 || true)" 'starttls' "a bad --starttls value is refused"

stop_farm
r() { report_get "$REPORT" "$1"; }
expect_eq "$(r "r['total']['data_commands']")" 0 "no DATA was sent"
tls_host=$("$PY" -c "import json,sys; s=json.load(open(sys.argv[1])); print(next(h['name'] for h in s['hosts'] if h.get('tls_required')))" "$SC")
expect_eq "$(r "r['mx']['$tls_host']['tls_handshakes'] > 0")" True "handshakes at the requiring host"
expect_eq "$(r "r['mx']['$tls_host']['replies'].get('530', 0) > 0")" True "530 before TLS (never, and after the failed verify)"
expect_eq "$(r "r['mx']['mx.starttls.test']['tls_resumed'] >= $(($(wc -l <"$WORK/resume.txt") - 1))")" True \
  "one session at a time to one MX: all but the first resume TLS with a ticket"
expect_eq "$(r "r['mx']['mx.postfix.test']['tls_handshakes']")" 0 "no TLS at the plain host"
expect_eq "$(r "r['mx']['mx.postfix.test']['commands'].get('STARTTLS', 0)")" 0 "STARTTLS never sent to the plain host"
expect_eq "$(r "r['total']['tls_failures'] > 0")" True "the verify failures were seen by the farm"
echo "PASS tls_starttls $BACKEND: $CHECKS checks"
