#!/usr/bin/env bash
# Deny and allow lists (docs/usage.md, "Deny and allow lists") with the real mxprobe against
# mxfarm, whose dnsmasq logs every query:
#  - verify --deny: a denied address, a denied domain and a denied *.domain are answered
#    unknown/denied, naming the file and line, and never contacted: no RCPT for them, no session
#    with the denied domains, not even their MX lookup; the rest of the list verifies normally;
#  - verify --allow: only the listed domain is contacted, the rest unknown/not_allowed;
#  - a bad line is a usage error naming the file and line;
#  - check --domain of a denied domain: answered from the list, no lookup;
#  - serve --deny: /v1/verify and /v1/domains answer from the list; after the file changes,
#    SIGHUP reloads it: an address verified (and cached) before is now denied, not answered from
#    the cache, and a domain no longer listed is verified.
# Usage: lists.sh uring|uv   (env MXFARM, MXPROBE). Range 127.74.0.0/16.
source "$(dirname "$0")/../lib.sh"
MXPROBE=${MXPROBE:?MXPROBE must name the mxprobe binary}
BACKEND=${1:?backend}
skip_without_uring "$BACKEND"
# The band is one /16: each backend's farm takes a /24 of it (127.N.1.x for uring, 127.N.2.x
# for uv), so the _uring and _uv runs can go side by side.
SUB=$([[ $BACKEND == uring ]] && echo 1 || echo 2)

write_scenario() {
  "$PY" - "$SC" "$NET.$SUB" "$DNS_PORT" <<'PY'
import json, sys
net, port = sys.argv[2], int(sys.argv[3])
hosts = [{"name": "mx.farm.test", "ip": f"127.{net}.1", "style": "postfix"}]
def dom(name, boxes):
    return {"name": name, "dns": "mx", "mx": [{"pref": 10, "host": "mx.farm.test"}],
            "mailboxes": {b: "ok" for b in boxes}}
domains = [dom("plain.test", ["alice", "bob"]), dom("own.test", ["dave"]),
           dom("sub.wild.test", ["erin"]), dom("other.test", ["frank"])]
json.dump({"dns": {"ip": "127.0.0.1", "port": port, "ttl": 60}, "hosts": hosts,
           "domains": domains}, open(sys.argv[1], "w"))
PY
}
farm_in_band 74 74 write_scenario --log-dns

cat >"$WORK/deny.txt" <<'EOF2'
# Our own domains, and one person who asked not to be contacted.
own.test
*.wild.test   # every subdomain

Alice@Plain.TEST
EOF2
printf '%s\n' alice@plain.test bob@plain.test dave@own.test erin@sub.wild.test frank@other.test \
  >"$WORK/list.txt"
common=(--backend "$BACKEND" --dns "127.0.0.1:$DNS_PORT" --helo lists.client.test --no-progress
        --no-journal)
"$MXPROBE" verify "${common[@]}" --cache "$WORK/cache.db" --deny "$WORK/deny.txt" \
  -i "$WORK/list.txt" -o "$WORK/deny.jsonl" 2>"$WORK/deny.err" ||
  { cat "$WORK/deny.err" >&2; fail "mxprobe verify --deny failed"; }
"$PY" - "$WORK/deny.jsonl" "$WORK/deny.txt" <<'PY' || fail "records with --deny"
import json, sys
recs = {r["email"]: r for r in map(json.loads, open(sys.argv[1]))}
deny = sys.argv[2]
want = {"alice@plain.test": 5, "dave@own.test": 2, "erin@sub.wild.test": 3}
for email, line in want.items():
    r = recs[email]
    assert (r["verdict"], r["reason"]) == ("unknown", "denied"), r
    assert r["error"].startswith(f"on the deny list ({deny}:{line})"), r
    assert r["mx"] is None and r["attempts"] == 0 and r["provider"] is None, r
for email in ("bob@plain.test", "frank@other.test"):
    assert (recs[email]["verdict"], recs[email]["reason"]) == ("deliverable", "accepted"), recs[email]
PY
ok
# The farm's view so far (SIGUSR1 writes the report): no RCPT for the denied, and the dnsmasq log
# holds the other domains' lookups but none of the denied domains'.
kill -USR1 "$FARM_PID"
wait_for 10 test -s "$REPORT" || fail "no farm report after SIGUSR1"
"$PY" - "$REPORT" <<'PY' || fail "farm report after verify --deny"
import json, sys
r = json.load(open(sys.argv[1]))
by, addr = r["rcpt_by_domain"], r["rcpt_by_address"]
assert "alice@plain.test" not in addr and addr.get("bob@plain.test") == 1, addr
assert addr.get("frank@other.test") == 1, addr
assert "own.test" not in by and "sub.wild.test" not in by, by
PY
ok
dns_log=$(grep -E 'query\[' "$WORK/farm.err" || true)
expect_match "$dns_log" 'query\[MX\] plain\.test ' "dnsmasq logged the lookups"
expect_no_match "$dns_log" 'own\.test|wild\.test' "no lookup of a denied domain"

# --allow: only other.test is contacted.
echo other.test >"$WORK/allow.txt"
printf '%s\n' bob@plain.test frank@other.test >"$WORK/list2.txt"
"$MXPROBE" verify "${common[@]}" --no-cache --allow "$WORK/allow.txt" -i "$WORK/list2.txt" \
  -o "$WORK/allow.jsonl" 2>"$WORK/allow.err" ||
  { cat "$WORK/allow.err" >&2; fail "mxprobe verify --allow failed"; }
"$PY" - "$WORK/allow.jsonl" <<'PY' || fail "records with --allow"
import json, sys
recs = {r["email"]: r for r in map(json.loads, open(sys.argv[1]))}
b = recs["bob@plain.test"]
assert (b["verdict"], b["reason"]) == ("unknown", "not_allowed"), b
assert b["error"].startswith("not on the allow list"), b
f = recs["frank@other.test"]
assert (f["verdict"], f["reason"]) == ("deliverable", "accepted"), f
PY
ok

# A bad line: a usage error with the file and line, nothing started.
printf '%s\n' '# fine' example.org 'x..y' >"$WORK/bad.txt"
rc=0
"$MXPROBE" verify "${common[@]}" --no-cache --deny "$WORK/bad.txt" -i "$WORK/list2.txt" \
  -o "$WORK/bad.jsonl" 2>"$WORK/bad.err" || rc=$?
expect_eq "$rc" 2 "verify --deny with a bad line"
expect_match "$(cat "$WORK/bad.err")" "--deny $WORK/bad.txt:3: 'x\.\.y' is not a domain \(domain_empty_label\)" \
  "its message"

# check --domain of a denied domain: from the list.
rc=0
"$MXPROBE" check --backend "$BACKEND" --dns "127.0.0.1:$DNS_PORT" --deny "$WORK/deny.txt" --json \
  --domain own.test >"$WORK/own.json" 2>"$WORK/own.err" || rc=$?
expect_eq "$rc" 0 "check --domain of a denied domain ($(cat "$WORK/own.err"))"
"$PY" - "$WORK/own.json" <<'PY' || fail "domain report of a denied domain"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["mail"] == "denied" and r["reason"] == "denied" and r["mx"] == [], r
assert r["accepts_mail"] is None and r["mx_reached"] is None, r
PY
ok

# serve: the lists, then SIGHUP with a changed file.
serve_start serve --backend "$BACKEND" --dns "127.0.0.1:$DNS_PORT" --helo lists.client.test \
  --cache "$WORK/cache.db" --data "$WORK/data" --deny "$WORK/deny.txt"
req GET "/v1/verify?email=dave@own.test"
[[ $CODE == 200 ]] || fail "GET /v1/verify: $CODE $BODY"
expect_match "$BODY" '"reason":"denied"' "serve: a denied domain's address"
req GET "/v1/domains/sub.wild.test"
[[ $CODE == 200 ]] || fail "GET /v1/domains: $CODE $BODY"
expect_match "$BODY" '"mail":"denied"' "serve: a denied domain's check"
req GET "/v1/verify?email=frank@other.test"
expect_match "$BODY" '"cached":true' "serve: frank@other.test from the results cache"
printf '%s\n' other.test >"$WORK/deny.txt"
kill -HUP "$SERVE_PID"
wait_for 10 grep -q "lists reloaded (1 deny, 0 allow entries)" "$WORK/serve.err" ||
  fail "serve did not reload the lists: $(tail -3 "$WORK/serve.err")"
req GET "/v1/verify?email=frank@other.test"
expect_match "$BODY" '"reason":"denied"' "serve after SIGHUP: a newly denied, cached address"
req GET "/v1/verify?email=dave@own.test&timeout=60"
expect_match "$BODY" '"verdict":"deliverable"' "serve after SIGHUP: a domain no longer denied"
serve_stop
stop_farm
"$PY" - "$REPORT" <<'PY' || fail "final farm report"
import json, sys
r = json.load(open(sys.argv[1]))
addr = r["rcpt_by_address"]
assert "alice@plain.test" not in addr and "erin@sub.wild.test" not in addr, addr
assert addr.get("frank@other.test") == 2 and addr.get("bob@plain.test") == 1, addr
assert addr.get("dave@own.test") == 1, addr
assert r["total"]["data_commands"] == 0, r["total"]
PY
ok
echo "PASS: $CHECKS checks"
