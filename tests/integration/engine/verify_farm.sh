#!/usr/bin/env bash
# The real mxprobe binary against mxfarm (real dnsmasq), on one event-loop backend: every
# behaviour that needs no scheduler (greylist retries and rate shaping come with it) must give
# mxfarm's truth, address by address; the farm must see no DATA and no smuggled command; every
# input line gets exactly one record; a server flooding bytes cannot grow memory without bound;
# and with --max-domains 5 idle domains are forgotten all the time without changing any verdict.
# Usage: verify_farm.sh uring|uv   (env MXFARM, MXPROBE). Range 127.165-174.0.0/16.
source "$(dirname "$0")/../lib.sh"
# Our own farm: no rate limits, retries seconds apart (the politeness tests use real limits).
LAB_POLICY=$ROOT/tools/policy/lab.toml
MXPROBE=${MXPROBE:?MXPROBE must name the mxprobe binary}
BACKEND=${1:?backend}

skip_without_uring "$BACKEND"

SC=$WORK/scenario.json
REPORT=$WORK/report.json
SPECIAL=styles,catchall,slow,tarpit,blocked,blocked-banner,errlimit,rcptlimit,nopipelining,starttls,heloonly,drop-connect,drop-mail,reset-rcpt,garbage,endless,overlong,failover,aonly,nullmx,nomx,nxdomain,servfail,dnstimeout

# The farm, plus one domain of our own for the 421 greeting: its first MX takes one connection per
# client at a time (a slow greeting holds it), so concurrent sessions get "421" and must move on
# to the second MX (RFC 5321 §5.1).
write_scenario() {
  "$MXFARM" gen --domains 12 --hosts 4 --mailboxes 6 --catch-all-share 0.2 --greylist-share 0 \
    --tarpit-byte-ms 200 --special "$SPECIAL" --base-ip "$BASE" --dns-port "$DNS_PORT" >"$SC.gen"
  "$PY" - "$SC.gen" "$SC" "$NET" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
net = sys.argv[3]
s["hosts"] += [
    {"name": "mx1.busy.test", "ip": f"127.{net}.1.1", "max_conn_per_ip": 1, "banner_delay_ms": 1000},
    {"name": "mx2.busy.test", "ip": f"127.{net}.1.2"},
]
s["domains"].append({"name": "busy.test", "dns": "mx", "style": "exchange",
    "mx": [{"pref": 10, "host": "mx1.busy.test"}, {"pref": 20, "host": "mx2.busy.test"}],
    "mailboxes": {f"user{i}": "ok" for i in range(1, 4)} | {"full1": "full"}})
# Postfix echoes the recipient: "550 5.1.1 <spamhaus@blacklist.test>: Recipient address rejected:
# User unknown ...". Blocklist and greylist words in the echo are not the server's.
s["hosts"].append({"name": "mx.blacklist.test", "ip": f"127.{net}.1.3"})
s["domains"].append({"name": "blacklist.test", "dns": "mx", "style": "postfix",
    "mx": [{"pref": 10, "host": "mx.blacklist.test"}],
    "mailboxes": {f"user{i}": "ok" for i in range(1, 9)}})
json.dump(s, open(sys.argv[2], "w"))
PY
}
farm_in_band 165 174 write_scenario

# The truth (timeouts: 2 s, as mxprobe is told below), plus hostile lines of our own.
"$MXFARM" truth "$SC" --timeout-ms 2000 --invalid 5 >"$WORK/truth.csv"
"$PY" - "$WORK/truth.csv" "$WORK/list.csv" "$WORK/expect.json" <<'PY'
import csv, json, sys
rows = list(csv.DictReader(open(sys.argv[1])))
busy = [f"user{i}@busy.test" for i in range(1, 4)] + ["full1@busy.test", "nobody1@busy.test"]
expect = {r["email"]: [r["verdict"], r["reason"]] for r in rows}
for a in busy:
    expect[a] = ["risky", "mailbox_full"] if a.startswith("full") else \
        ["undeliverable", "mailbox_not_found"] if a.startswith("nobody") else ["deliverable", "accepted"]
emails = [r["email"] for r in rows]
# The echo domain (its user1..8 exist; the truth lists them): unknown mailboxes named with
# blocklist/greylist words, so a block read into an echo would end its other addresses
# unknown/blocked too.
for lp in ["spamhaus", "greylist", "dnsbl", "blacklist", "abuse", "greylisted", "rbl", "starttls"]:
    a = f"{lp}@blacklist.test"
    emails.append(a)
    expect[a] = ["undeliverable", "mailbox_not_found"]
with open(sys.argv[2].replace("list.csv", "busy.txt"), "w") as f:
    f.write("\n".join(busy) + "\n")
# Hostile: CR/LF smuggling inside a quoted CSV field, a NUL, a 1 MB field; and a duplicate line.
hostile = ['user1@postfix.test\r\nDATA\r\nRSET', 'user1@postfix.test\r\nRCPT TO:<x@evil.test>',
           'a\x00b@postfix.test', 'x' * 1_000_000 + '@postfix.test']
with open(sys.argv[2], "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["id", "email"])
    for i, e in enumerate(emails + hostile + [emails[0]]):
        w.writerow([i, e])
for h in hostile:
    expect[h] = ["undeliverable", "invalid_syntax"]
json.dump({"expect": expect, "records": len(emails) + len(hostile) + 1, "busy": len(busy)},
          open(sys.argv[3], "w"))
PY

/usr/bin/time -f '%M' -o "$WORK/rss.txt" "$MXPROBE" verify --backend "$BACKEND" --policy "$LAB_POLICY" --no-cache \
  --dns "127.0.0.1:$DNS_PORT" --input "$WORK/list.csv" --output "$WORK/out.jsonl" --no-progress \
  --timeout-connect 2 --timeout-banner 2 --timeout-command 2 --timeout-dns 0.5 \
  -c 50 --domain-concurrency 2 --helo probe.client.test --max-domains 5 \
  --source-ip "127.$NET.9.1,127.$NET.9.2" 2>"$WORK/mxprobe.err" ||
  { cat "$WORK/mxprobe.err" >&2; fail "mxprobe verify failed"; }
forgotten=$(sed -n 's/.* \([0-9]*\) idle domains forgotten.*/\1/p' "$WORK/mxprobe.err")
((forgotten > 0)) || fail "no idle domain was forgotten with --max-domains 5: $(cat "$WORK/mxprobe.err")"
# The 421 greeting: two sessions at once from one address, two recipients each, so one of them
# meets the busy first MX and must go on to the second.
"$MXPROBE" verify --backend "$BACKEND" --policy "$LAB_POLICY" --no-cache --dns "127.0.0.1:$DNS_PORT" --input "$WORK/busy.txt" \
  --output "$WORK/busy.jsonl" --no-progress --domain-concurrency 2 --rcpts-per-session 2 \
  --timeout-banner 3 --helo probe.client.test 2>"$WORK/mxprobe.err" ||
  { cat "$WORK/mxprobe.err" >&2; fail "mxprobe verify (busy) failed"; }
# CSV out: the same fields flattened, RFC 4180 quoting (Exchange's texts hold commas).
"$MXPROBE" verify --backend "$BACKEND" --policy "$LAB_POLICY" --no-cache --dns "127.0.0.1:$DNS_PORT" --input "$WORK/busy.txt" \
  --output "$WORK/busy.csv" --format csv --no-progress --helo probe.client.test \
  2>"$WORK/mxprobe.err" || { cat "$WORK/mxprobe.err" >&2; fail "mxprobe verify --format csv failed"; }
stop_farm
"$PY" - "$WORK/busy.csv" "$WORK/busy.jsonl" <<'PY' || fail "CSV output differs from JSON Lines"
import csv, json, sys
rows = list(csv.DictReader(open(sys.argv[1], newline="")))
recs = {r["email"]: r for r in map(json.loads, open(sys.argv[2]))}
want = ["line", "email", "normalized", "verdict", "reason", "domain", "mx", "mx_ip", "smtp_code",
        "smtp_enhanced", "smtp_message", "catch_all", "role", "disposable", "free", "suggestion", "attempts",
        "source_ip", "proxy", "elapsed_ms", "error", "checked_at", "cached", "tls_version", "tls_cipher",
         "helo", "mail_from",
        "provider", "tag", "base", "canonical", "score", "score_factors", "mx_tried", "retry_after"]
assert list(rows[0].keys()) == want, list(rows[0].keys())
assert sorted(r["email"] for r in rows) == sorted(recs), "not one row per address"
for r in rows:
    j = recs[r["email"]]
    assert (r["verdict"], r["reason"]) == (j["verdict"], j["reason"]), (r, j)
    assert r["mail_from"] == (j["mail_from"] or ""), (r, j)
    if j["smtp"]:
        assert r["smtp_code"] == str(j["smtp"]["code"]) and r["smtp_message"] == j["smtp"]["message"], r
    assert r["helo"] == (j["helo"] or ""), (r, j)
PY
cat "$WORK/busy.jsonl" >>"$WORK/out.jsonl"

"$PY" - "$WORK/expect.json" "$WORK/out.jsonl" "$REPORT" "$(cat "$WORK/rss.txt")" "127.$NET.9.1" "127.$NET.9.2" "${MXP_RSS_LIMIT_KIB:-49152}" <<'PY' || fail "results differ from the truth"
import json, re, sys
exp = json.load(open(sys.argv[1]))
recs = [json.loads(l) for l in open(sys.argv[2])]
report = json.load(open(sys.argv[3]))
rss_kib = int(sys.argv[4])
bad = []
lines = sorted(r["line"] for r in recs)
want_lines = sorted(list(range(2, exp["records"] + 2)) + list(range(1, exp["busy"] + 1)))
if lines != want_lines:
    bad.append(f"records: {len(recs)} for {exp['records']} input records, lines not each exactly once")
for r in recs:
    want = exp["expect"].get(r["email"])
    if want is None:
        bad.append(f"unexpected email {r['email'][:60]!r}")
    elif [r["verdict"], r["reason"]] != want:
        bad.append(f"{r['email'][:60]}: got {r['verdict']}/{r['reason']} smtp={r['smtp']} want {want[0]}/{want[1]}")
total = report["total"]
if total["data_commands"] != 0:
    bad.append(f"the farm received {total['data_commands']} DATA commands")
cmds = total["commands"]
if cmds.get("OTHER", 0) or cmds.get("DATA", 0):
    bad.append(f"unexpected commands at the farm: {cmds}")
for addr in report["rcpt_by_address"]:
    if "evil" in addr or "data" in addr.lower():
        bad.append(f"a smuggled recipient reached the farm: {addr}")
busy1 = report["mx"].get("mx1.busy.test", {})
busy2 = report["mx"].get("mx2.busy.test", {})
if busy1.get("limit_rejects", 0) < 1 or busy2.get("connections", 0) < 1:
    bad.append(f"421 greeting failover not exercised: mx1 {busy1.get('limit_rejects')} rejects, mx2 {busy2.get('connections')} connections")
# Sessions come from the --source-ip addresses, in turn, and records say which.
sources = set(sys.argv[5:7])
if set(report["clients"]) - {"127.0.0.1"} != sources:
    bad.append(f"client addresses at the farm {sorted(report['clients'])}, want {sorted(sources)}")
if {r["source_ip"] for r in recs if r["mx"] and r["domain"] != "busy.test"} != sources:
    bad.append(f"source_ip in records: {sorted({str(r['source_ip']) for r in recs if r['mx']})}")
# The endless (16 MiB) and over-long (1 MiB) replies must not be buffered: stay far below them.
# (Sanitizer builds pass 0: ASan's shadow memory and quarantine make RSS meaningless there.)
limit = int(sys.argv[7])
if limit and rss_kib > limit:
    bad.append(f"peak RSS {rss_kib} KiB: a flooding server grew our memory")
# What decided an address that ends unknown/blocked: the record's error names the source, until
# when it rests and the reply; mx names the MX group's server (also for an address never sent).
for r in recs:
    if [r["verdict"], r["reason"]] == ["unknown", "blocked"] and r["domain"] != "busy.test":
        err = r.get("error") or ""
        # Never sent (attempts 0): the source rests; sent: it rests, or the block is pending.
        how = r" resting until \d\d:\d\d:\d\d UTC" if r["attempts"] == 0 else \
            r"( resting until \d\d:\d\d:\d\d UTC| refused)"
        if not (r["mx"] and re.fullmatch(r"source IP 127\.[0-9.]+" + how + r" after 5\d\d .* at " +
                                         re.escape(r["mx"]), err)):
            bad.append(f"{r['email']}: unknown/blocked without what decided: error={err!r} mx={r['mx']}")
for b in bad:
    print("MISMATCH", b)
print(f"{len(recs)} records checked, {len(bad)} mismatches, peak RSS {rss_kib} KiB, "
      f"farm: {total['connections']} connections, {cmds.get('RCPT', 0)} RCPTs, 0 DATA")
sys.exit(1 if bad else 0)
PY
echo "PASS verify_farm $BACKEND"
