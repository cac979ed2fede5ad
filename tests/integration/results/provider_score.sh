#!/usr/bin/env bash
# provider, tag/base/canonical and score on real records: mxprobe against mxfarm hosts that carry
# the providers' real MX names (aspmx.l.google.com, <key>.mail.protection.outlook.com,
# hotmail-com.olc.protection.outlook.com, mta7.am0.yahoodns.net, mx0a-...pphosted.com), which
# the farm's dnsmasq answers for like any other name (it makes every TLD of the scenario local,
# inside this test only), a host with a name of its own whose greeting is Google's, and a plain
# Postfix-like host:
#  - each record names its provider: Gmail vs Google Workspace by the recipient domain, Outlook.com
#    vs Microsoft 365 by the MX, Workspace behind a domain's own MX name by the greeting, a
#    Proofpoint gateway, null for the plain host;
#  - the score and its factors follow docs/score.md from what the farm did: 95 for an accepted
#    address whose domain refused the catch-all probe, 55 on a catch-all domain, 50 behind Yahoo's
#    accept-all, near 0 for a rejection, a role account lowered, greylisting cleared raised;
#  - Gmail's documented spellings give canonical, a +tag gives tag and base;
#  - CSV carries the same as appended columns; a second run answered from the results cache (the
#    farm stopped) gives the same provider and score.
# Usage: provider_score.sh uring|uv   (env MXFARM, MXPROBE). Range 127.70-71.0.0/16.
source "$(dirname "$0")/../lib.sh"
MXPROBE=${MXPROBE:?MXPROBE must name the mxprobe binary}
BACKEND=${1:?backend}
skip_without_uring "$BACKEND"
SC=$WORK/scenario.json
REPORT=$WORK/report.json

write_scenario() {
  "$PY" - "$SC" "$NET" "$DNS_PORT" <<'PY'
import json, sys
net, port = sys.argv[2], int(sys.argv[3])
hosts = [
    {"name": "aspmx.l.google.com", "ip": f"127.{net}.1.1", "style": "gmail"},
    {"name": "acme-co.mail.protection.outlook.com", "ip": f"127.{net}.1.2", "style": "exchange"},
    {"name": "hotmail-com.olc.protection.outlook.com", "ip": f"127.{net}.1.3", "style": "exchange"},
    {"name": "mta7.am0.yahoodns.net", "ip": f"127.{net}.1.4", "style": "yahoo"},
    {"name": "mx0a-00123401.pphosted.com", "ip": f"127.{net}.1.5", "style": "postfix"},
    # A Workspace domain that names its MX after itself: only the greeting (" - gsmtp") tells.
    {"name": "mx.own-mx.test", "ip": f"127.{net}.1.6", "style": "gmail"},
    {"name": "mx.plain.test", "ip": f"127.{net}.1.7", "style": "postfix"},
]
def dom(name, host, boxes, catch_all=False, **kw):
    d = {"name": name, "dns": "mx", "catch_all": catch_all, "mx": [{"pref": 10, "host": host}],
         "mailboxes": {b: "ok" for b in boxes}}
    d.update(kw)
    return d
domains = [
    dom("gmail.com", "aspmx.l.google.com", ["alice", "Al.Ice+promo"]),
    dom("acme-ws.test", "aspmx.l.google.com", ["bob"]),
    dom("acme-co.test", "acme-co.mail.protection.outlook.com", ["carol"]),
    dom("hotmail.com", "hotmail-com.olc.protection.outlook.com", ["dave"]),
    # Yahoo's servers accept any address at RCPT: a catch-all in farm terms.
    dom("yahoo.com", "mta7.am0.yahoodns.net", ["user1"], True),
    dom("acme-pp.test", "mx0a-00123401.pphosted.com", ["erin"], True),
    dom("own-mx.test", "mx.own-mx.test", ["frank"]),
    dom("plain.test", "mx.plain.test", ["gina", "info"]),
    dom("grey.test", "mx.plain.test", ["hal"], greylist_delay_s=1),
]
json.dump({"dns": {"ip": "127.0.0.1", "port": port, "ttl": 60}, "hosts": hosts,
           "domains": domains}, open(sys.argv[1], "w"))
PY
}
farm_in_band 70 71 write_scenario

# The built-in policy (its provider rules: Yahoo's accept-all) with retries seconds apart, so the
# greylisted address is asked again within the test.
cat >"$WORK/policy.toml" <<'TOML'
[defaults]
retry = { schedule = ["3s"], attempts = 3 }
TOML
LIST=(alice@gmail.com Al.Ice+promo@gmail.com nobody@gmail.com bob@acme-ws.test carol@acme-co.test
      dave@hotmail.com user1@yahoo.com erin@acme-pp.test frank@own-mx.test gina@plain.test
      info@plain.test hal@grey.test)
printf '%s\n' "${LIST[@]}" >"$WORK/list.txt"
common=(--backend "$BACKEND" --dns "127.0.0.1:$DNS_PORT" --helo results.client.test
        --policy "$WORK/policy.toml" --no-progress --no-journal)
"$MXPROBE" verify "${common[@]}" --cache "$WORK/cache.db" -i "$WORK/list.txt" -o "$WORK/run.jsonl" \
  2>"$WORK/run.err" || { cat "$WORK/run.err" >&2; fail "mxprobe verify failed"; }
{ echo email; printf '%s\n' "${LIST[@]}"; } >"$WORK/list.csv"
"$MXPROBE" verify "${common[@]}" --no-cache -i "$WORK/list.csv" -o "$WORK/run.csv" --format csv \
  2>"$WORK/csv.err" || { cat "$WORK/csv.err" >&2; fail "mxprobe verify --format csv failed"; }
# The API's record (serve's /v1/verify), then the same address from serve's results cache.
serve_opts=(--backend "$BACKEND" --dns "127.0.0.1:$DNS_PORT" --helo results.client.test
            --policy "$WORK/policy.toml" --cache "$WORK/serve-cache.db" --data "$WORK/data")
serve_start serve "${serve_opts[@]}"
req GET "/v1/verify?email=Al.Ice%2Bpromo@gmail.com"
[[ $CODE == 200 ]] || fail "GET /v1/verify: $CODE $BODY"
echo "$BODY" >"$WORK/api.json"
req GET "/v1/verify?email=user1@yahoo.com"
[[ $CODE == 200 ]] || fail "GET /v1/verify: $CODE $BODY"
echo "$BODY" >>"$WORK/api.json"
# Asked again: answered from serve's memory of recent answers.
req GET "/v1/verify?email=user1@yahoo.com"
[[ $CODE == 200 ]] || fail "GET /v1/verify (again): $CODE $BODY"
echo "$BODY" >"$WORK/api_again.json"
serve_stop
stop_farm
serve_start serve2 "${serve_opts[@]}"
req GET "/v1/verify?email=Al.Ice%2Bpromo@gmail.com"
[[ $CODE == 200 ]] || fail "GET /v1/verify (cached): $CODE $BODY"
echo "$BODY" >"$WORK/api_cached.json"
serve_stop
"$PY" - "$WORK/run.jsonl" "$WORK/api.json" "$WORK/api_cached.json" "$WORK/api_again.json" <<'PY' || fail "API records"
import json, sys
recs = {r["email"]: r for r in map(json.loads, open(sys.argv[1]))}
api = [json.loads(l) for l in open(sys.argv[2])]
cached = json.loads(open(sys.argv[3]).read())
again = json.loads(open(sys.argv[4]).read())
assert [a["email"] for a in api] == ["Al.Ice+promo@gmail.com", "user1@yahoo.com"], api
assert again["email"] == "user1@yahoo.com" and again["cached"] is True, again
for a in api + [cached, again]:
    j = recs[a["email"]]
    for k in ("provider", "tag", "base", "canonical", "score", "score_factors"):
        assert a[k] == j[k], (k, a, j)
assert api[0]["cached"] is False and cached["cached"] is True, (api[0], cached)
PY
ok

"$PY" - "$WORK/run.jsonl" <<'PY' || fail "provider, address fields and score"
import json, sys
recs = {r["email"]: r for r in map(json.loads, open(sys.argv[1]))}
def want(email, verdict, reason, provider):
    r = recs[email]
    assert (r["verdict"], r["reason"], r["provider"]) == (verdict, reason, provider), r
    assert r["score"] == max(0, min(100, sum(f["effect"] for f in r["score_factors"]))), r
    return r
def factors(r):
    return [f["factor"] for f in r["score_factors"]]
assert len(recs) == 12, sorted(recs)
r = want("alice@gmail.com", "deliverable", "accepted", "gmail")
assert r["score"] >= 93 and factors(r)[:2] == ["accepted", "catch_all_rejected"], r
assert (r["tag"], r["base"], r["canonical"]) == (None, "alice@gmail.com", "alice@gmail.com"), r
r = want("Al.Ice+promo@gmail.com", "deliverable", "accepted", "gmail")
assert (r["tag"], r["base"], r["canonical"]) == ("promo", "Al.Ice@gmail.com", "alice@gmail.com"), r
r = want("nobody@gmail.com", "undeliverable", "mailbox_not_found", "gmail")
assert r["score"] <= 5, r
r = want("bob@acme-ws.test", "deliverable", "accepted", "google_workspace")
assert r["canonical"] is None, r  # Workspace: dots matter, no canonical form
want("carol@acme-co.test", "deliverable", "accepted", "microsoft365")
want("dave@hotmail.com", "deliverable", "accepted", "outlook_com")
r = want("user1@yahoo.com", "risky", "unverifiable", "yahoo")
assert 45 <= r["score"] <= 55 and "provider_accepts_all" in factors(r), r
r = want("erin@acme-pp.test", "risky", "catch_all", "proofpoint")
assert 50 <= r["score"] <= 60 and "catch_all" in factors(r), r
want("frank@own-mx.test", "deliverable", "accepted", "google_workspace")
r = want("gina@plain.test", "deliverable", "accepted", None)
assert r["score"] >= 93, r
r = want("info@plain.test", "deliverable", "accepted", None)
assert "role" in factors(r) and r["score"] < recs["gina@plain.test"]["score"], r
r = want("hal@grey.test", "deliverable", "accepted", None)
assert r["attempts"] >= 2 and "greylisting_cleared" in factors(r), r
assert r["score"] > recs["gina@plain.test"]["score"], r
PY
ok

# CSV: the same values in the appended columns, factors as one "factor:effect;..." field.
"$PY" - "$WORK/run.csv" "$WORK/run.jsonl" <<'PY' || fail "CSV columns"
import csv, json, sys
rows = list(csv.DictReader(open(sys.argv[1], newline="")))
keys = list(rows[0].keys())
tail = ["provider", "tag", "base", "canonical", "score", "score_factors", "mx_tried",
        "retry_after"]
assert all(k in keys for k in tail) and keys.index("tls_cipher") < keys.index("provider"), keys
recs = {r["email"]: r for r in map(json.loads, open(sys.argv[2]))}
assert len(rows) == len(recs), rows
for row in rows:
    j = recs[row["mxprobe_email"]]
    assert row["provider"] == (j["provider"] or ""), (row, j)
    assert row["tag"] == (j["tag"] or "") and row["canonical"] == (j["canonical"] or ""), (row, j)
    assert row["base"] == j["base"], (row, j)
    # The farm remembers the greylisting triplet of the first run: this run is not greylisted.
    if j["email"] == "hal@grey.test":
        continue
    assert row["score"] == str(j["score"]), (row, j)
    assert row["score_factors"] == ";".join(f'{f["factor"]}:{f["effect"]}' for f in j["score_factors"]), (row, j)
PY
ok

# From the results cache (the farm is down: a miss would fail DNS): the same provider and score.
"$MXPROBE" verify "${common[@]}" --cache "$WORK/cache.db" -i "$WORK/list.txt" -o "$WORK/cached.jsonl" \
  2>"$WORK/cached.err" || { cat "$WORK/cached.err" >&2; fail "mxprobe verify (cached) failed"; }
"$PY" - "$WORK/run.jsonl" "$WORK/cached.jsonl" <<'PY' || fail "cached records"
import json, sys
first = {r["email"]: r for r in map(json.loads, open(sys.argv[1]))}
again = {r["email"]: r for r in map(json.loads, open(sys.argv[2]))}
assert sorted(first) == sorted(again)
for e, r in again.items():
    f = first[e]
    assert r["cached"] is True, r
    for k in ("provider", "tag", "base", "canonical", "score", "score_factors"):
        assert r[k] == f[k], (k, r, f)
PY
ok
echo "PASS: $CHECKS checks"
