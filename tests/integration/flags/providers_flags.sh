#!/usr/bin/env bash
# Provider rules by MX pattern and the record's flags, with the real mxprobe against mxfarm (real
# dnsmasq, which answers for the MX names under yahoodns.net and google.com like for any other):
#  - offline, `mxprobe syntax` sets flags.disposable / flags.free from the domain data the build
#    made from the pinned npm packages (expected values read from that file, parents rule
#    included), suggests the big provider's domain for typos, and says null (with a warning) when
#    the data is missing;
#  - run 1, the built-in policy: the Yahoo-like MX (mta7.am0.yahoodns.net) accepts everything, so
#    its addresses come out risky / unverifiable with no catch-all probe sent (the farm counts the
#    RCPTs), its sessions are capped at one at a time and one connection per 5 s (the farm's peak
#    and timeline); the Google-like MX gets its probe and real verdicts; `check` and `verify`
#    records carry the flags and the suggestion; a second pass answered from the results cache
#    takes its flags from the domain data of the day (none given: null);
#  - run 2, the built-in providers dropped (tools/policy/lab.toml): the same Yahoo addresses are
#    probed and judged by the catch-all rule instead; CSV output carries the flag columns.
# Env MXFARM, MXPROBE, MXP_DOMAIN_DATA. Range 127.185-194.0.0/16.
source "$(dirname "$0")/../lib.sh"
MXPROBE=${MXPROBE:?MXPROBE must name the mxprobe binary}
DATA=${MXP_DOMAIN_DATA:?MXP_DOMAIN_DATA must name the built domain-data.txt}
LAB_POLICY=$ROOT/tools/policy/lab.toml
[[ -s $DATA ]] || fail "no domain data at $DATA (run tools/setup.sh, then build)"
SC=$WORK/scenario.json
REPORT=$WORK/report.json

# --- 0. Offline: `mxprobe syntax` -----------------------------------------------------------------
# A disposable domain that is not also free, picked from the file, one of its subdomains, and the
# expected flags of every address, computed from the file itself.
"$PY" - "$DATA" "$WORK/syntax_in.txt" "$WORK/syntax_expect.json" <<'PY'
import json, random, sys
lists, cur, header = {}, None, {}
for line in open(sys.argv[1]):
    line = line.rstrip("\n")
    if line.startswith("#") or not line:
        continue
    if line.startswith("@"):
        name, pkg, ver, match = line[1:].split(" ")
        cur = lists.setdefault(name, set())
        header[name] = match
        continue
    cur.add(line)
disp, free = lists["disposable"], lists["free"]
assert header["disposable"] == "parents" and header["free"] == "exact", header
def is_disp(d):
    parts = d.split(".")
    return any(".".join(parts[i:]) in disp for i in range(len(parts) - 1))
only_disp = sorted(d for d in disp if d not in free and d.count(".") == 1)
pick = random.Random(7).choice(only_disp)
addrs = ["anna@" + pick, "ben@inbox." + pick, "cleo@gmail.com", "dora@gmial.com",
         "emil@gmail.con", "fay@hotmial.com", "gus@ymail.com", "hal@farm-isp.test", "not-an-address"]
expect = {}
for a in addrs:
    if "@" not in a:
        expect[a] = {"disposable": None, "free": None, "suggestion": None}
        continue
    d = a.split("@")[1]
    expect[a] = {"disposable": is_disp(d), "free": d in free, "suggestion": None}
expect["dora@gmial.com"]["suggestion"] = "dora@gmail.com"
expect["emil@gmail.con"]["suggestion"] = "emil@gmail.com"
expect["fay@hotmial.com"]["suggestion"] = "fay@hotmail.com"
# What the picks stand for: a throwaway domain and its subdomain, a free provider, a real
# provider next to gmail.com that must not be "corrected".
assert expect["anna@" + pick]["disposable"] and expect["ben@inbox." + pick]["disposable"]
assert expect["cleo@gmail.com"]["free"] and not expect["cleo@gmail.com"]["disposable"]
assert expect["gus@ymail.com"]["free"] and not expect["gus@ymail.com"]["disposable"]
open(sys.argv[2], "w").write("\n".join(addrs) + "\n")
json.dump(expect, open(sys.argv[3], "w"))
PY
"$MXPROBE" syntax --no-progress -i "$WORK/syntax_in.txt" -o "$WORK/syntax_out.jsonl" 2>"$WORK/syntax.err" \
  || { cat "$WORK/syntax.err" >&2; fail "mxprobe syntax failed"; }
expect_no_match "$(cat "$WORK/syntax.err")" "warning" "syntax: the built domain data is found by default"
"$PY" - "$WORK/syntax_expect.json" "$WORK/syntax_out.jsonl" <<'PY' || fail "syntax: flags differ"
import json, sys
expect = json.load(open(sys.argv[1]))
got = {r["email"]: r for r in map(json.loads, open(sys.argv[2]))}
assert sorted(got) == sorted(expect), (sorted(got), sorted(expect))
for a, e in expect.items():
    g = {k: got[a][k] for k in e}
    assert g == e, (a, g, e)
PY
ok
# Without the data: null, never false, and a warning that says why.
"$MXPROBE" syntax --no-progress --domain-data "$WORK/missing.txt" -i "$WORK/syntax_in.txt" \
  -o "$WORK/syntax_nodata.jsonl" 2>"$WORK/syntax_nodata.err" || fail "mxprobe syntax without data failed"
expect_match "$(cat "$WORK/syntax_nodata.err")" "warning: domain data .*missing.txt: No such file.*are null" \
  "syntax: missing data is reported"
"$PY" - "$WORK/syntax_nodata.jsonl" <<'PY' || fail "syntax without data: flags must be null"
import json, sys
for r in map(json.loads, open(sys.argv[1])):
    assert r["disposable"] is None and r["free"] is None and r["suggestion"] is None, r
PY
ok

# --- The farm ---------------------------------------------------------------------------------------
# Hosts named like the providers' MX: dnsmasq answers locally for .net and .com names (the farm
# makes every TLD it uses local), so the engine's provider patterns see real names.
write_scenario() {
  "$PY" - "$SC" "$NET" "$DNS_PORT" <<'PY'
import json, sys
net, port = sys.argv[2], int(sys.argv[3])
hosts = [
    {"name": "mta7.am0.yahoodns.net", "ip": f"127.{net}.1.1", "style": "yahoo"},
    {"name": "aspmx.l.google.com", "ip": f"127.{net}.1.2", "style": "gmail"},
    {"name": "mx.farm-isp.test", "ip": f"127.{net}.1.3", "style": "postfix"},
]
def dom(name, host, style, boxes, catch_all=False):
    return {"name": name, "dns": "mx", "style": style, "catch_all": catch_all,
            "mx": [{"pref": 10, "host": host}], "mailboxes": {b: "ok" for b in boxes}}
domains = [
    # Yahoo's servers accept any address at RCPT: a catch-all in farm terms.
    dom("yahoo.com", "mta7.am0.yahoodns.net", "yahoo", ["user1", "user2", "user3"], True),
    dom("aol.com", "mta7.am0.yahoodns.net", "yahoo", ["user1", "user2"], True),
    dom("gmail.com", "aspmx.l.google.com", "gmail", ["alice"]),
    dom("mailinator.com", "mx.farm-isp.test", "postfix", ["bob"]),
    dom("gmial.com", "mx.farm-isp.test", "postfix", ["carol"]),
    dom("farm-isp.test", "mx.farm-isp.test", "postfix", ["dave"]),
]
json.dump({"dns": {"ip": "127.0.0.1", "port": port, "ttl": 60}, "hosts": hosts,
           "domains": domains}, open(sys.argv[1], "w"))
PY
}
farm_in_band 185 194 write_scenario

YAHOO=(user1@yahoo.com user2@yahoo.com user3@yahoo.com nobody1@yahoo.com user1@aol.com
       user2@aol.com nobody2@aol.com)
OTHERS=(alice@gmail.com nobody@gmail.com bob@mailinator.com dave@farm-isp.test)
printf '%s\n' "${YAHOO[@]}" "${OTHERS[@]}" >"$WORK/list1.txt"
common=(--dns "127.0.0.1:$DNS_PORT" --helo flags.client.test)

# --- Run 1: the built-in policy -------------------------------------------------------------------
"$MXPROBE" check --json "${common[@]}" carol@gmial.com >"$WORK/check.jsonl" 2>"$WORK/check.err" \
  || { cat "$WORK/check.err" >&2; fail "mxprobe check failed"; }
"$MXPROBE" verify "${common[@]}" --no-progress --cache "$WORK/cache.db" --no-journal -i "$WORK/list1.txt" \
  -o "$WORK/run1.jsonl" 2>"$WORK/run1.err" || { cat "$WORK/run1.err" >&2; fail "mxprobe verify (run 1) failed"; }
stop_farm
cp "$REPORT" "$WORK/report1.json"
# The same list from the results cache (the farm is down: any miss would fail DNS), without domain
# data: the cached verdicts, with flags from today's (missing) data, not the cached ones.
"$MXPROBE" verify "${common[@]}" --no-progress --cache "$WORK/cache.db" --no-journal \
  --domain-data "$WORK/missing.txt" -i "$WORK/list1.txt" -o "$WORK/run1c.jsonl" 2>"$WORK/run1c.err" \
  || { cat "$WORK/run1c.err" >&2; fail "mxprobe verify (from the cache) failed"; }
expect_match "$(cat "$WORK/run1c.err")" "warning: domain data .*missing.txt" "cached run: missing data is reported"
"$PY" - "$WORK/run1.jsonl" "$WORK/run1c.jsonl" <<'PY' || fail "cached run"
import json, sys
first = {r["email"]: r for r in map(json.loads, open(sys.argv[1]))}
again = {r["email"]: r for r in map(json.loads, open(sys.argv[2]))}
assert sorted(first) == sorted(again)
for e, r in again.items():
    assert r["cached"] is True and (r["verdict"], r["reason"]) == (first[e]["verdict"], first[e]["reason"]), r
    assert r["flags"]["disposable"] is None and r["flags"]["free"] is None and r["suggestion"] is None, r
PY
ok
"$PY" - "$WORK/run1.jsonl" "$WORK/check.jsonl" "$WORK/report1.json" "$WORK/syntax_expect.json" <<'PY' || fail "run 1 (built-in provider rules)"
import json, sys
recs = {r["email"]: r for r in map(json.loads, open(sys.argv[1]))}
check = [json.loads(l) for l in open(sys.argv[2])]
rep = json.load(open(sys.argv[3]))
yahoo = [e for e in recs if e.endswith(("@yahoo.com", "@aol.com"))]
assert len(yahoo) == 7, sorted(recs)
# Yahoo-like: every accepted address is risky / unverifiable, with no probe to say catch-all.
for e in yahoo:
    r = recs[e]
    assert (r["verdict"], r["reason"]) == ("risky", "unverifiable"), r
    assert r["smtp"]["code"] == 250 and r["catch_all"] is None, r
    assert r["mx"] == "mta7.am0.yahoodns.net", r
    assert r["flags"]["free"] is True and r["flags"]["disposable"] is False, r
# No catch-all probe to the provider with probing off: one RCPT per address, nothing more.
by_dom = rep["rcpt_by_domain"]
assert by_dom.get("yahoo.com") == 4 and by_dom.get("aol.com") == 3, by_dom
# Its caps: one session at a time from our source IP (two domains, so two sessions without the
# cap could overlap), and one connection per 5 s (burst 1): the second connection is >= 4 whole
# seconds after the first in the farm's per-second timeline.
ymx = rep["mx"]["mta7.am0.yahoodns.net"]
assert ymx["connections"] == 2, ymx
assert ymx["peak_concurrent"] == 1, ymx
secs = [i for i, n in enumerate(ymx["timeline"]["connections"]) for _ in range(n)]
assert len(secs) == 2 and secs[1] - secs[0] >= 4, secs
# Google-like: probing on (one probe RCPT for gmail.com), real verdicts.
assert by_dom.get("gmail.com") == 3, by_dom
assert (recs["alice@gmail.com"]["verdict"], recs["alice@gmail.com"]["reason"]) == ("deliverable", "accepted")
assert recs["alice@gmail.com"]["catch_all"] is False
assert recs["nobody@gmail.com"]["reason"] == "mailbox_not_found", recs["nobody@gmail.com"]
assert recs["alice@gmail.com"]["flags"] == {"role": False, "disposable": False, "free": True}
# Flags from the packaged lists on verified records.
b = recs["bob@mailinator.com"]
assert b["verdict"] == "deliverable" and b["flags"]["disposable"] is True, b
d = recs["dave@farm-isp.test"]
assert d["flags"] == {"role": False, "disposable": False, "free": False} and d["suggestion"] is None, d
# `check` on a typo domain: verified, flagged, and the suggestion.
assert len(check) == 1, check
c = check[0]
assert c["email"] == "carol@gmial.com" and c["verdict"] == "deliverable", c
assert c["suggestion"] == "carol@gmail.com", c
exp = json.load(open(sys.argv[4]))["dora@gmial.com"]
assert (c["flags"]["disposable"], c["flags"]["free"]) == (exp["disposable"], exp["free"]), (c, exp)
assert rep["total"]["data_commands"] == 0
PY
ok

# --- Run 2: built-in providers dropped (lab policy), CSV out --------------------------------------
start_farm "$SC" "$REPORT" || fail "the farm could not restart on its own range"
{ echo email; printf '%s\n' "${YAHOO[@]}" bob@mailinator.com carol@gmial.com; } >"$WORK/list2.csv"
"$MXPROBE" verify "${common[@]}" --policy "$LAB_POLICY" --no-progress --no-cache --no-journal \
  -i "$WORK/list2.csv" -o "$WORK/run2.csv" --format csv 2>"$WORK/run2.err" \
  || { cat "$WORK/run2.err" >&2; fail "mxprobe verify (run 2) failed"; }
stop_farm
"$PY" - "$WORK/run2.csv" "$REPORT" <<'PY' || fail "run 2 (built-in providers dropped)"
import csv, json, sys
rows = {r["mxprobe_email"]: r for r in csv.DictReader(open(sys.argv[1], newline=""))}
assert len(rows) == 9 and all(r["verdict"] != "undeliverable" for r in rows.values()), rows
rep = json.load(open(sys.argv[2]))
for e in ["user1@yahoo.com", "nobody1@yahoo.com", "user1@aol.com"]:
    r = rows[e]
    # No quirk, probing on: the probe is accepted too, so the catch-all rule decides.
    assert (r["verdict"], r["reason"], r["catch_all"]) == ("risky", "catch_all", "true"), r
    assert (r["disposable"], r["free"], r["suggestion"]) == ("false", "true", ""), r
by_dom = rep["rcpt_by_domain"]
assert by_dom.get("yahoo.com") == 5 and by_dom.get("aol.com") == 4, by_dom  # one probe each
assert rows["bob@mailinator.com"]["disposable"] == "true"
assert rows["carol@gmial.com"]["suggestion"] == "carol@gmail.com"
PY
ok
echo "PASS: $CHECKS checks"
