#!/usr/bin/env bash
# retry_after, verify --retry-unknown and mx_tried on real records: mxprobe against mxfarm.
#  - grey.test's host greylists for an hour, far longer than the policy's retry budget (2 tries,
#    2 s apart): its addresses end unknown/greylisted with retry_after = checked_at + the next
#    retry's wait (2 s) and both tries in mx_tried; dead.test's only MX refuses connections:
#    unknown/connection_failed, retry_after an hour on; deliverable addresses have none;
#  - fo.test's MX 10 refuses connections and MX 20 answers: mx_tried lists both, in order;
#  - the CSV output (of a CSV input with columns of its own) carries mx_tried (the same JSON
#    array) and retry_after as its last columns;
#  - the farm is then restarted without greylisting and with dead.test's MX listening, and
#    `verify --retry-unknown` (JSON Lines and CSV) asks again only the greylisted addresses, once
#    their retry_after has come: they get real verdicts on their original lines (a CSV row keeps
#    the input's own columns), every other record is copied unchanged, and the farm's
#    rcpt_by_address shows dead.test (not yet due) was never asked;
#  - serve's API record carries retry_after and mx_tried as well.
# Usage: retry_unknown.sh uring|uv   (env MXFARM, MXPROBE). Range 127.72.0.0/16.
source "$(dirname "$0")/../lib.sh"
MXPROBE=${MXPROBE:?MXPROBE must name the mxprobe binary}
BACKEND=${1:?backend}
skip_without_uring "$BACKEND"
GREY_DELAY=3600
DEAD_LISTENS=false
# The band is one /16: each backend's farm takes a /24 of it (127.72.1.x, 127.72.2.x), so the
# _uring and _uv runs can go side by side (their DNS ports are drawn apart, and retried).
SUB=$([[ $BACKEND == uring ]] && echo 1 || echo 2)

write_scenario() {
  "$PY" - "$SC" "$NET.$SUB" "$DNS_PORT" "$GREY_DELAY" "$DEAD_LISTENS" <<'PY'
import json, sys
net, port, grey, dead = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "true"
hosts = [
    {"name": "mx.grey.test", "ip": f"127.{net}.1", "style": "postfix", "greylist_delay_s": grey},
    {"name": "mx1.fo.test", "ip": f"127.{net}.2", "listen": False},
    {"name": "mx2.fo.test", "ip": f"127.{net}.3", "style": "postfix"},
    {"name": "mx.dead.test", "ip": f"127.{net}.4", "style": "postfix", "listen": dead},
]
def dom(name, mx, boxes):
    return {"name": name, "dns": "mx", "mx": [{"pref": 10 * (i + 1), "host": h} for i, h in enumerate(mx)],
            "mailboxes": {b: "ok" for b in boxes}}
domains = [
    dom("grey.test", ["mx.grey.test"], ["ann", "ben", "eve"]),
    dom("fo.test", ["mx1.fo.test", "mx2.fo.test"], ["cat"]),
    dom("dead.test", ["mx.dead.test"], ["dan"]),
]
json.dump({"dns": {"ip": "127.0.0.1", "port": port, "ttl": 60}, "hosts": hosts,
           "domains": domains}, open(sys.argv[1], "w"))
PY
}
farm_in_band 72 72 write_scenario

cat >"$WORK/policy.toml" <<'TOML'
[defaults]
retry = { schedule = ["2s"], attempts = 2 }
catch_all_probe = false
TOML
printf '%s\n' ann@grey.test cat@fo.test dan@dead.test ben@grey.test nobody@fo.test >"$WORK/list.txt"
common=(--backend "$BACKEND" --dns "127.0.0.1:$DNS_PORT" --helo retry.client.test
        --policy "$WORK/policy.toml" --no-progress --no-journal --no-cache)
"$MXPROBE" verify "${common[@]}" -i "$WORK/list.txt" -o "$WORK/run1.jsonl" 2>"$WORK/run1.err" ||
  { cat "$WORK/run1.err" >&2; fail "mxprobe verify failed"; }
# The CSV run reads a CSV of the user's own (";", a quoted note holding the delimiter): its columns
# come first and must survive --retry-unknown as they were.
i=0
{ echo 'id;email;note'; while read -r a; do i=$((i + 1)); echo "$i;$a;\"n$i; \"\"x\"\"\""; done <"$WORK/list.txt"; } >"$WORK/list.csv"
"$MXPROBE" verify "${common[@]}" -i "$WORK/list.csv" -o "$WORK/run1.csv" 2>"$WORK/run1csv.err" ||
  { cat "$WORK/run1csv.err" >&2; fail "mxprobe verify (CSV) failed"; }
# The API's record (serve's /v1/verify) carries both fields too.
serve_start serve --backend "$BACKEND" --dns "127.0.0.1:$DNS_PORT" --helo retry.client.test \
  --policy "$WORK/policy.toml" --no-cache --data "$WORK/data"
req GET "/v1/verify?email=eve@grey.test"
[[ $CODE == 200 ]] || fail "GET /v1/verify: $CODE $BODY"
echo "$BODY" >"$WORK/api.json"
serve_stop
grep -q "mxprobe verify: 3 unknown worth asking again, the first from .*: mxprobe verify --retry-unknown $WORK/run1.jsonl -o NEW_OUTPUT" "$WORK/run1.err" ||
  { cat "$WORK/run1.err" >&2; fail "the run's hint to ask again"; }
ok
stop_farm
cp "$REPORT" "$WORK/report1.json"
"$PY" - "$WORK/api.json" <<'PY' || fail "the API record"
import json, sys
from datetime import datetime
r = json.loads(open(sys.argv[1]).read())
assert (r["verdict"], r["reason"]) == ("unknown", "greylisted"), r
t = lambda s: datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ")
assert t(r["retry_after"]) > t(r["checked_at"]), r
# As many tries as the record's attempts (the API waits for the policy's retries), each the same.
assert [(x["mx"], x["stage"], x["code"]) for x in r["mx_tried"]] == [("mx.grey.test", "rcpt_to", 450)] * r["attempts"], r
PY
ok

"$PY" - "$WORK/run1.jsonl" "$WORK/run1.csv" "$NET.$SUB" <<'PY' || fail "retry_after and mx_tried"
import csv, json, sys
from datetime import datetime, timedelta
net = sys.argv[3]
recs = {r["email"]: r for r in map(json.loads, open(sys.argv[1]))}
t = lambda s: datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ")
for e in ("ann@grey.test", "ben@grey.test"):
    r = recs[e]
    assert (r["verdict"], r["reason"]) == ("unknown", "greylisted"), r
    # The next retry's wait: 2 s after the record (checked_at is cut to the second, retry_after
    # rounded up).
    d = t(r["retry_after"]) - t(r["checked_at"])
    assert timedelta(seconds=2) <= d <= timedelta(seconds=3), r
    tried = r["mx_tried"]
    assert len(tried) == 2, tried
    for x in tried:
        assert (x["mx"], x["ip"], x["stage"], x["error"]) == ("mx.grey.test", f"127.{net}.1", "rcpt_to", None), x
        assert x["code"] == 450 and x["enhanced"] == "4.2.0" and "Greylisted" in x["message"], x
r = recs["dan@dead.test"]
assert (r["verdict"], r["reason"]) == ("unknown", "connection_failed"), r
assert t(r["retry_after"]) - t(r["checked_at"]) >= timedelta(hours=1), r
assert all(x["mx"] == "mx.dead.test" and x["code"] is None and x["error"] == "connection refused"
           and x["stage"] == "connect" for x in r["mx_tried"]) and r["mx_tried"], r
r = recs["cat@fo.test"]
assert (r["verdict"], r["reason"], r["retry_after"]) == ("deliverable", "accepted", None), r
tried = r["mx_tried"]
assert [x["mx"] for x in tried] == ["mx1.fo.test", "mx2.fo.test"], tried
assert (tried[0]["ip"], tried[0]["stage"], tried[0]["code"], tried[0]["error"]) == (f"127.{net}.2", "connect", None, "connection refused"), tried
assert (tried[1]["ip"], tried[1]["stage"], tried[1]["code"], tried[1]["error"]) == (f"127.{net}.3", "rcpt_to", 250, None), tried
r = recs["nobody@fo.test"]
assert (r["verdict"], r["retry_after"]) == ("undeliverable", None), r
assert r["mx_tried"][-1]["code"] == 550 and r["mx_tried"][-1]["enhanced"] == "5.1.1", r
# CSV: the two new columns last, after score_factors; the same values as the JSON records.
rows = list(csv.DictReader(open(sys.argv[2], newline=""), delimiter=";"))
keys = list(rows[0].keys())
assert keys[:3] == ["id", "email", "note"] and keys[4] == "mxprobe_email", keys
assert keys[-3:] == ["score_factors", "mx_tried", "retry_after"], keys
assert len(rows) == len(recs), rows
for row in rows:
    j = recs[row["email"]]
    assert row["line"] == str(j["line"] + 1), (row, j)  # CSV: the header is record 1
    assert row["note"] == f'n{row["id"]}; "x"', row
    strip = lambda l: [{k: v for k, v in x.items() if k != "message"} for x in l]
    assert strip(json.loads(row["mx_tried"])) == strip(j["mx_tried"]), (row, j)
    assert (row["retry_after"] != "") == (j["retry_after"] is not None), (row, j)
PY
ok

"$PY" - "$WORK/report1.json" <<'PY' || fail "the first farm's report"
import json, sys
rcpt = json.load(open(sys.argv[1]))["rcpt_by_address"]
# Two runs (JSON Lines, CSV) of two tries each.
assert rcpt.get("ann@grey.test") == 4 and rcpt.get("ben@grey.test") == 4, rcpt
assert "dan@dead.test" not in rcpt, rcpt
PY
ok

# Nothing due (the records without the greylisted ones): nothing is asked (the farm is down: a
# try would fail), every record is copied byte for byte, and the user hears when the next is due.
grep -v '@grey.test' "$WORK/run1.jsonl" >"$WORK/notdue.jsonl"
"$MXPROBE" verify "${common[@]}" --retry-unknown "$WORK/notdue.jsonl" -o "$WORK/early.jsonl" \
  2>"$WORK/early.err" || { cat "$WORK/early.err" >&2; fail "--retry-unknown with nothing due failed"; }
cmp -s "$WORK/notdue.jsonl" "$WORK/early.jsonl" || fail "nothing due, but the output differs"
grep -q "0 unknown addresses are due to be asked again, 1 not yet due (the next at " "$WORK/early.err" ||
  { cat "$WORK/early.err" >&2; fail "the summary with nothing due"; }
ok

# The farm again, now without greylisting and with dead.test's MX listening.
GREY_DELAY=0
DEAD_LISTENS=true
restarted=false
for _ in 1 2 3 4 5 6; do  # the same addresses; a DNS port of its own again
  DNS_PORT=$((15000 + NET * 10 + RANDOM % 10))
  write_scenario
  start_farm "$SC" "$REPORT" && { restarted=true; break; }
done
$restarted || fail "the second farm could not start"
common=(--backend "$BACKEND" --dns "127.0.0.1:$DNS_PORT" --helo retry.client.test
        --policy "$WORK/policy.toml" --no-progress --no-journal --no-cache)
due() {
  "$PY" - "$WORK/run1.jsonl" "$WORK/run1.csv" <<'PY'
import csv, json, sys
from datetime import datetime, timezone
now = datetime.now(timezone.utc).replace(tzinfo=None)
times = [r["retry_after"] for r in map(json.loads, open(sys.argv[1])) if r["reason"] == "greylisted"]
times += [r["retry_after"] for r in csv.DictReader(open(sys.argv[2], newline=""), delimiter=";") if r["reason"] == "greylisted"]
sys.exit(0 if all(datetime.strptime(t, "%Y-%m-%dT%H:%M:%SZ") <= now for t in times) else 1)
PY
}
wait_for 20 due || fail "retry_after never came"
"$MXPROBE" verify "${common[@]}" --retry-unknown "$WORK/run1.jsonl" -o "$WORK/run2.jsonl" \
  2>"$WORK/run2.err" || { cat "$WORK/run2.err" >&2; fail "--retry-unknown (JSON Lines) failed"; }
"$MXPROBE" verify "${common[@]}" --retry-unknown "$WORK/run1.csv" -o "$WORK/run2.csv" \
  2>"$WORK/run2csv.err" || { cat "$WORK/run2csv.err" >&2; fail "--retry-unknown (CSV) failed"; }
stop_farm
for f in run2.err run2csv.err; do
  grep -q "2 unknown addresses are due to be asked again, 1 not yet due (the next at " "$WORK/$f" ||
    { cat "$WORK/$f" >&2; fail "$f: the plan"; }
  grep -q "2 asked again (2 now have a verdict, 0 still unknown), 1 not yet due" "$WORK/$f" ||
    { cat "$WORK/$f" >&2; fail "$f: the summary"; }
done
ok

"$PY" - "$WORK/run1.jsonl" "$WORK/run2.jsonl" "$WORK/run1.csv" "$WORK/run2.csv" "$REPORT" <<'PY' || fail "the retried output"
import csv, json, sys
old = open(sys.argv[1]).read().splitlines()
new = open(sys.argv[2]).read().splitlines()
assert len(old) == len(new) == 5, new
for o, n in zip(old, new):
    jo, jn = json.loads(o), json.loads(n)
    assert jo["line"] == jn["line"] and jo["email"] == jn["email"], (jo, jn)
    if jo["reason"] == "greylisted":
        assert (jn["verdict"], jn["reason"], jn["retry_after"]) == ("deliverable", "accepted", None), jn
        assert jn["mx_tried"][-1]["code"] == 250, jn
    else:
        assert o == n, (o, n)  # copied through, byte for byte
rows_old = list(csv.DictReader(open(sys.argv[3], newline=""), delimiter=";"))
rows_new = list(csv.DictReader(open(sys.argv[4], newline=""), delimiter=";"))
assert list(rows_old[0].keys()) == list(rows_new[0].keys())
assert [r["line"] for r in rows_old] == [r["line"] for r in rows_new]
for o, n in zip(rows_old, rows_new):
    if o["reason"] == "greylisted":
        assert (n["verdict"], n["reason"], n["retry_after"]) == ("deliverable", "accepted", ""), n
        # The user's own columns of a row asked again, as they were.
        assert (n["id"], n["email"], n["note"]) == (o["id"], o["email"], o["note"]), (o, n)
    else:
        assert o == n, (o, n)
rcpt = json.load(open(sys.argv[5]))["rcpt_by_address"]
# Each retry run asked each greylisted address once; dead.test's address, not due, never.
assert rcpt.get("ann@grey.test") == 2 and rcpt.get("ben@grey.test") == 2, rcpt
assert "dan@dead.test" not in rcpt and "cat@fo.test" not in rcpt, rcpt
PY
ok
echo "PASS: $CHECKS checks"
