#!/usr/bin/env bash
# Domain checks: `mxprobe check --domain` and GET /v1/domains/{domain} against mxfarm, one domain
# of each behaviour:
#  - a domain whose server refuses unknown mailboxes: takes mail, catch-all no, no STARTTLS;
#  - a catch-all domain: catch-all yes (its random address accepted);
#  - a domain whose server offers STARTTLS (a throwaway certificate): starttls yes, TLS used;
#  - an A-only domain: implicit MX (the domain's own address), takes mail;
#  - null MX, a name without MX or address, NXDOMAIN: takes no mail, exit status 4, no session;
#  - MX hosts listed by preference with their addresses; the farm's report shows one RCPT per
#    checked domain (the random probe), never DATA;
#  - a greylisted domain: the check answers at once (catch-all unknown) and its probe, handed on
#    to the policy's retries, gives the domain's addresses their catch-all answer;
#  - the text report fits 80 columns; serve answers the same, a second ask from its memory, and a
#    serve restarted on the same results cache knows the catch-all answer without a new probe
#    (it asks postmaster instead).
# Usage: check.sh uring|uv   (env MXFARM, MXPROBE). Range 127.73.0.0/16.
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
hosts = [
    {"name": "mx1.plain.test", "ip": f"127.{net}.1", "style": "postfix"},
    {"name": "mx2.plain.test", "ip": f"127.{net}.2", "style": "postfix"},
    {"name": "mx.catch.test", "ip": f"127.{net}.3", "style": "exchange"},
    {"name": "mx.tls.test", "ip": f"127.{net}.4", "style": "postfix", "starttls": True},
    {"name": "aonly.test", "ip": f"127.{net}.5", "style": "postfix"},
    {"name": "mx.grey.test", "ip": f"127.{net}.6", "style": "postfix"},
]
domains = [
    {"name": "plain.test", "dns": "mx", "mailboxes": {"alice": "ok"},
     "mx": [{"pref": 20, "host": "mx2.plain.test"}, {"pref": 10, "host": "mx1.plain.test"}]},
    {"name": "catch.test", "dns": "mx", "catch_all": True, "mailboxes": {},
     "mx": [{"pref": 10, "host": "mx.catch.test"}]},
    {"name": "tls.test", "dns": "mx", "mailboxes": {"bob": "ok"},
     "mx": [{"pref": 10, "host": "mx.tls.test"}]},
    {"name": "aonly.test", "dns": "a", "host": "aonly.test", "mailboxes": {"carol": "ok"}},
    {"name": "nullmx.test", "dns": "null_mx", "mailboxes": {}},
    {"name": "nomail.test", "dns": "no_mail", "mailboxes": {}},
    {"name": "gone.test", "dns": "nxdomain", "mailboxes": {}},
    {"name": "grey.test", "dns": "mx", "mailboxes": {"dan": "ok"}, "greylist_delay_s": 1,
     "mx": [{"pref": 10, "host": "mx.grey.test"}]},
]
json.dump({"dns": {"ip": "127.0.0.1", "port": port, "ttl": 60}, "hosts": hosts,
           "domains": domains}, open(sys.argv[1], "w"))
PY
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -subj /CN=mx.tls.test -addext "subjectAltName=DNS:mx.tls.test" \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>"$WORK/openssl.err" ||
    fail "openssl req: $(cat "$WORK/openssl.err")"
}
farm_in_band 73 73 write_scenario --tls-cert "$WORK/cert.pem" --tls-key "$WORK/key.pem"

# Domain data of our own (the format of data/domains/build.mjs): catch.test disposable,
# plain.test free.
printf '%s\n' '@disposable test 1 exact' catch.test '@free test 1 exact' plain.test \
  >"$WORK/domain-data.txt"
common=(--backend "$BACKEND" --dns "127.0.0.1:$DNS_PORT" --helo domains.client.test
        --domain-data "$WORK/domain-data.txt")
DOMAINS=(plain.test catch.test tls.test aonly.test nullmx.test nomail.test gone.test)
args=()
for d in "${DOMAINS[@]}"; do args+=(--domain "$d"); done
rc=0
"$MXPROBE" check "${common[@]}" --json "${args[@]}" >"$WORK/check.jsonl" 2>"$WORK/check.err" || rc=$?
expect_eq "$rc" 4 "check --domain exit status with domains that take no mail ($(cat "$WORK/check.err"))"

"$PY" - "$WORK/check.jsonl" "$NET.$SUB" <<'PY' || fail "domain reports (CLI)"
import json, sys
net = sys.argv[2]
reps = [json.loads(l) for l in open(sys.argv[1])]
assert [r["domain"] for r in reps] == ["plain.test", "catch.test", "tls.test", "aonly.test",
                                       "nullmx.test", "nomail.test", "gone.test"], reps
r = {x["domain"]: x for x in reps}
p = r["plain.test"]
assert p["mail"] == "accepts" and p["accepts_mail"] is True, p
assert [(m["host"], m["preference"], m["addresses"]) for m in p["mx"]] == [
    ("mx1.plain.test", 10, [f"127.{net}.1"]), ("mx2.plain.test", 20, [f"127.{net}.2"])], p
assert p["catch_all"] is False and p["catch_all_cached"] is False, p
assert p["starttls"] is False and p["tls"] is None, p
assert p["mx_reached"] == "mx1.plain.test" and p["smtp"]["code"] == 550, p
assert p["implicit_mx"] is False and p["null_mx"] is False, p
assert p["rcpt"].endswith("@plain.test") and not p["rcpt"].startswith("postmaster@"), p
c = r["catch.test"]
assert c["mail"] == "accepts" and c["catch_all"] is True and c["smtp"]["code"] == 250, c
t = r["tls.test"]
assert t["starttls"] is True and t["tls"]["version"].startswith("TLSv1"), t
a = r["aonly.test"]
assert a["implicit_mx"] is True and a["mail"] == "accepts", a
assert [(m["host"], m["addresses"]) for m in a["mx"]] == [("aonly.test", [f"127.{net}.5"])], a
n = r["nullmx.test"]
assert n["mail"] == "null_mx" and n["null_mx"] is True and n["accepts_mail"] is False, n
assert n["mx"] == [] and n["mx_reached"] is None and n["reason"] == "null_mx", n
assert r["nomail.test"]["mail"] == "no_mail_server", r["nomail.test"]
g = r["gone.test"]
assert g["mail"] == "no_such_domain" and g["reason"] == "no_such_domain", g
for x in reps:
    assert x["starttls"] is None or x["mail"] == "accepts", x
    want = (x["domain"] == "catch.test", x["domain"] == "plain.test")
    assert (x["disposable"], x["free"]) == want, x
PY
ok

# The readable report: every line within 80 columns, the facts in words.
rc=0
"$MXPROBE" check "${common[@]}" --domain plain.test >"$WORK/check.txt" 2>"$WORK/check_txt.err" || rc=$?
expect_eq "$rc" 0 "check --domain plain.test exit status ($(cat "$WORK/check_txt.err"))"
out=$(cat "$WORK/check.txt")
expect_match "$out" "^plain\.test  takes mail$" "text report: first line"
expect_match "$out" "^  mx: +10 mx1\.plain\.test$" "text report: MX by preference"
expect_match "$out" "^  catch-all: +no" "text report: catch-all"
expect_match "$out" "^  starttls: +no" "text report: starttls"
awk 'length($0) > 80 { bad = 1 } END { exit bad }' "$WORK/check.txt" ||
  fail "text report wider than 80 columns: $out"
ok
rc=0
"$MXPROBE" check "${common[@]}" --domain nullmx.test >"$WORK/null.txt" 2>&1 || rc=$?
expect_eq "$rc" 4 "check --domain nullmx.test exit status"
expect_match "$(cat "$WORK/null.txt")" "takes no mail: null MX" "text report: null MX"
rc=0
"$MXPROBE" check "${common[@]}" --domain 'bad..domain' >/dev/null 2>"$WORK/bad.err" || rc=$?
expect_eq "$rc" 2 "check --domain with a malformed domain"
expect_match "$(cat "$WORK/bad.err")" "is not a domain \(domain_empty_label\)" "its message"
rc=0
"$MXPROBE" check "${common[@]}" --domain plain.test alice@plain.test >/dev/null 2>"$WORK/both.err" ||
  rc=$?
expect_eq "$rc" 2 "check with addresses and --domain"

# serve: the same through GET /v1/domains/{domain}; the second ask from its memory; a restart on
# the same results cache knows catch.test's answer and asks postmaster instead of a new probe.
# Retries seconds apart, so that greylisting clears within the test.
cat >"$WORK/policy.toml" <<'TOML'
[defaults]
retry = { schedule = ["2s"], attempts = 3 }
TOML
serve_opts=(--backend "$BACKEND" --dns "127.0.0.1:$DNS_PORT" --helo domains.client.test
            --policy "$WORK/policy.toml" --domain-data "$WORK/domain-data.txt" --cache "$WORK/cache.db" --data "$WORK/data")
serve_start serve "${serve_opts[@]}"
for d in catch.test tls.test nullmx.test gone.test aonly.test; do
  req GET "/v1/domains/$d?timeout=60"
  [[ $CODE == 200 ]] || fail "GET /v1/domains/$d: $CODE $BODY"
  echo "$BODY" >>"$WORK/api.jsonl"
done
req GET "/v1/domains/catch.test"
[[ $CODE == 200 ]] || fail "GET /v1/domains/catch.test (again): $CODE $BODY"
echo "$BODY" >"$WORK/api_again.json"
req GET "/v1/domains/not..a.domain"
expect_eq "$CODE" 400 "GET /v1/domains/ with a malformed domain"
# A greylisted domain: the check answers after one try (catch-all unknown); its probe goes on
# with the policy's retries, and an address of the domain gets the catch-all answer from it.
req GET "/v1/domains/grey.test?timeout=60"
[[ $CODE == 200 ]] || fail "GET /v1/domains/grey.test: $CODE $BODY"
echo "$BODY" >"$WORK/api_grey.json"
req GET "/v1/verify?email=dan@grey.test&timeout=60"
[[ $CODE == 200 ]] || fail "GET /v1/verify dan@grey.test: $CODE $BODY"
echo "$BODY" >"$WORK/api_dan.json"
"$PY" - "$WORK/api_grey.json" "$WORK/api_dan.json" <<'PY' || fail "greylisted domain check"
import json, sys
g = json.load(open(sys.argv[1]))
d = json.load(open(sys.argv[2]))
assert g["mail"] == "accepts" and g["reason"] == "greylisted" and g["catch_all"] is None, g
assert (d["verdict"], d["reason"], d["catch_all"]) == ("deliverable", "accepted", False), d
PY
ok
serve_stop
serve_start serve2 "${serve_opts[@]}"
req GET "/v1/domains/catch.test?timeout=60"
[[ $CODE == 200 ]] || fail "GET /v1/domains/catch.test (restarted): $CODE $BODY"
echo "$BODY" >"$WORK/api_restart.json"
serve_stop
"$PY" - "$WORK/api.jsonl" "$WORK/api_again.json" "$WORK/api_restart.json" <<'PY' || fail "domain reports (API)"
import json, sys
r = {x["domain"]: x for x in map(json.loads, open(sys.argv[1]))}
again = json.load(open(sys.argv[2]))
restart = json.load(open(sys.argv[3]))
c = r["catch.test"]
assert c["mail"] == "accepts" and c["catch_all"] is True and c["cached"] is False, c
assert c["disposable"] is True, c
assert r["tls.test"]["starttls"] is True, r["tls.test"]
assert r["nullmx.test"]["mail"] == "null_mx", r["nullmx.test"]
assert r["gone.test"]["mail"] == "no_such_domain", r["gone.test"]
assert r["aonly.test"]["implicit_mx"] is True, r["aonly.test"]
assert again["cached"] is True and again["catch_all"] is True, again
assert again["checked_at"] == c["checked_at"], (again, c)
assert restart["cached"] is False and restart["catch_all"] is True, restart
assert restart["catch_all_cached"] is True and restart["rcpt"] == "postmaster@catch.test", restart
PY
ok

# The farm saw one random RCPT per domain it serves and checked (the CLI's two runs of
# plain.test, and serve's first run), postmaster once, never DATA.
stop_farm
"$PY" - "$REPORT" <<'PY' || fail "farm report"
import json, sys
r = json.load(open(sys.argv[1]))
by = r["rcpt_by_domain"]
assert by.get("plain.test") == 2, by
assert by.get("catch.test") == 3 and by.get("tls.test") == 2 and by.get("aonly.test") == 2, by
assert r["rcpt_by_address"].get("postmaster@catch.test") == 1, r["rcpt_by_address"]
assert not any(d in by for d in ("nullmx.test", "nomail.test", "gone.test")), by
assert r["total"]["data_commands"] == 0, r["total"]
assert r["mx"]["mx2.plain.test"]["connections"] == 0, r["mx"]["mx2.plain.test"]
PY
ok
echo "PASS: $CHECKS checks"
