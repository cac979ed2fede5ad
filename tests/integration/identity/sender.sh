#!/usr/bin/env bash
# MAIL FROM that servers accept (docs/identity.md, "MAIL FROM"), on one event-loop backend:
# mxprobe against mxfarm hosts that refuse the null sender at MAIL (`550 5.7.1 <>: null sender
# not accepted`) and at RCPT, as Postfix reports sender restrictions with smtpd_delay_reject
# (`554 5.7.1 <>: Sender address rejected: Access denied`), one that refuses every sender we
# have, and a plain one.
# - `--mail-from '<>' --mail-from verify@farm.test`: the refusing hosts' addresses get the farm's
#   truth through the fallback sender, and each record's `mail_from` (JSON, CSV) names the
#   sender that asked; the plain host's say `<>`.
# - `<>` alone (the default): the refusing hosts' addresses are unknown/sender_refused, never
#   undeliverable, with the error telling what to do; every sender refused likewise names them.
# - On the farm's transaction record (`run --transactions`): the catch-all probe (an address not
#   in the list) never shares a MAIL FROM..RCPT transaction with a real address.
# Usage: sender.sh uring|uv   (env MXFARM, MXPROBE). Range 127.33-34.0.0/16.
source "$(dirname "$0")/../lib.sh"
MXPROBE=${MXPROBE:?MXPROBE must name the mxprobe binary}
BACKEND=${1:?backend}
LAB_POLICY=$ROOT/tools/policy/lab.toml

skip_without_uring "$BACKEND"

write_scenario() {
  "$PY" - "$SC" "$NET" "$DNS_PORT" <<'PY'
import json, sys
net, port = sys.argv[2], int(sys.argv[3])
boxes = {"user1": "ok", "user2": "ok", "full1": "full", "disabled1": "disabled"}
hosts = [
    {"name": "mx.nullmail.test", "ip": f"127.{net}.0.1", "refuse_sender": {"null": True}},
    {"name": "mx.nullrcpt.test", "ip": f"127.{net}.0.2",
     "refuse_sender": {"null": True, "at": "rcpt"}},
    {"name": "mx.allrefuse.test", "ip": f"127.{net}.0.3",
     "refuse_sender": {"null": True, "domains": ["farm.test"]}},
    {"name": "mx.plain.test", "ip": f"127.{net}.0.4"},
]
domains = [{"name": n + ".test", "mx": [{"pref": 10, "host": "mx." + n + ".test"}],
            "mailboxes": boxes} for n in ("nullmail", "nullrcpt", "allrefuse", "plain")]
json.dump({"version": 1, "dns": {"ip": "127.0.0.1", "port": port}, "hosts": hosts,
           "domains": domains}, open(sys.argv[1], "w"))
PY
}
farm_in_band 33 34 write_scenario --transactions 100000

"$MXFARM" truth "$SC" >"$WORK/truth.csv"
tail -n +2 "$WORK/truth.csv" | cut -d, -f1 >"$WORK/list.txt"
(($(wc -l <"$WORK/list.txt") == 24)) || fail "unexpected list: $(cat "$WORK/list.txt")"

# run NAME [options]: mxprobe verify of list.txt into $WORK/NAME.jsonl (.csv with --format csv).
run() {
  local name=$1 ext=jsonl
  shift
  [[ " $* " == *" --format csv "* ]] && ext=csv
  "$MXPROBE" verify --backend "$BACKEND" --policy "$LAB_POLICY" --no-cache --no-progress \
    --dns "127.0.0.1:$DNS_PORT" --helo probe.client.test --timeout-command 5 \
    --input "$WORK/list.txt" --output "$WORK/$name.$ext" "$@" 2>"$WORK/$name.err" ||
    fail "mxprobe verify ($name) failed: $(cat "$WORK/$name.err")"
}

# check NAME RULES: each record of NAME.jsonl by domain, RULES = "DOMAIN=EXPECT ..." where
# EXPECT is truth:SENDER (the farm's verdict, asked by SENDER) or unknown/REASON:ERROR-PHRASE.
check() {
  "$PY" - "$WORK/truth.csv" "$WORK/$1.jsonl" "$2" <<'PY' || fail "$1: records differ"
import csv, json, sys
truth = {r["email"]: (r["verdict"], r["reason"]) for r in csv.DictReader(open(sys.argv[1]))}
rules = dict(kv.split("=", 1) for kv in sys.argv[3].split())
recs = [json.loads(l) for l in open(sys.argv[2])]
bad = []
if sorted(r["email"] for r in recs) != sorted(truth):
    bad.append("records are not one per address")
for r in recs:
    dom = r["email"].split("@")[1].split(".")[0]
    want = rules[dom]
    got = (r["verdict"], r["reason"])
    if r["verdict"] == "undeliverable" and want.startswith("unknown"):
        bad.append(f"{r['email']}: undeliverable from a refused sender: {r}")
    if want.startswith("truth:"):
        sender = want.split(":", 1)[1]
        if got != truth[r["email"]]:
            bad.append(f"{r['email']}: {got}, truth {truth[r['email']]} ({r.get('error')})")
        if r.get("mail_from") != sender:
            bad.append(f"{r['email']}: mail_from {r.get('mail_from')!r}, want {sender!r}")
    else:
        verdict_reason, phrase = want.split(":", 1)
        if "/".join(got) != verdict_reason:
            bad.append(f"{r['email']}: {got}, want {verdict_reason}")
        if phrase.replace("_", " ") not in (r.get("error") or ""):
            bad.append(f"{r['email']}: error {r.get('error')!r} lacks {phrase!r}")
for b in bad:
    print(b, file=sys.stderr)
sys.exit(1 if bad else 0)
PY
  ok
}

# With a fallback sender: real verdicts where <> is refused, at MAIL or at RCPT.
run fallback --mail-from '<>' --mail-from verify@farm.test
check fallback "nullmail=truth:verify@farm.test nullrcpt=truth:verify@farm.test plain=truth:<> \
allrefuse=unknown/sender_refused:every_MAIL_FROM_we_have_(<>,_verify@farm.test):_give_--mail-from"

# The null sender alone (the default): unknown, never undeliverable, and the error says why.
run nullonly
check nullonly "nullmail=unknown/sender_refused:refused_our_MAIL_FROM_(<>):_give_--mail-from \
nullrcpt=unknown/sender_refused:refused_our_MAIL_FROM_(<>) plain=truth:<> \
allrefuse=unknown/sender_refused:docs/identity.md"

# CSV: mail_from comes right after helo (columns added later follow them).
run fallback_csv --mail-from '<>' --mail-from verify@farm.test --format csv
"$PY" - "$WORK/fallback_csv.csv" <<'PY' || fail "CSV mail_from column"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
keys = list(rows[0].keys())
assert keys[keys.index("helo") + 1] == "mail_from", keys
for r in rows:
    want = "<>" if "@plain." in r["email"] else "verify@farm.test"
    if "@allrefuse." not in r["email"]:
        assert r["mail_from"] == want, r
PY
ok

# A bad sender is refused before anything is sent.
rc=0
"$MXPROBE" verify --backend "$BACKEND" --no-cache --no-progress --dns "127.0.0.1:$DNS_PORT" \
  --input "$WORK/list.txt" --mail-from 'not an address' >/dev/null 2>"$WORK/bad.err" || rc=$?
expect_eq "$rc" 2 "verify with a malformed --mail-from"
expect_match "$(cat "$WORK/bad.err")" "--mail-from 'not an address' is not a valid address" \
  "its message"

# The farm's transactions: a probe (an address not in the list) always alone; there were probes.
stop_farm
"$PY" - "$REPORT" "$WORK/list.txt" <<'PY' || fail "transactions"
import json, sys
r = json.load(open(sys.argv[1]))
listed = {l.strip().lower() for l in open(sys.argv[2])}
txns = r["transactions"]
assert not r["transactions_truncated"]
probes = [t for t in txns if any(a not in listed for a in t["rcpts"])]
mixed = [t for t in probes if len(t["rcpts"]) > 1]
assert not mixed, f"a probe shared a transaction: {mixed[:3]}"
assert len(probes) >= 4, f"expected catch-all probes in every run, saw {len(probes)}"
# The refusing hosts: no transaction opened with <> at MAIL; at RCPT it opened, refused, and
# the same addresses went again with the fallback sender.
def at(host, sender):
    return [t for t in txns if t["mx"] == host and t["mail_from"] == sender]
assert not at("mx.nullmail.test", ""), "MAIL FROM:<> was accepted at mx.nullmail.test"
assert at("mx.nullmail.test", "verify@farm.test")
assert at("mx.nullrcpt.test", "") and at("mx.nullrcpt.test", "verify@farm.test")
assert not at("mx.plain.test", "verify@farm.test"), "the plain host needed no fallback"
PY
ok
expect_eq "$(report_get "$REPORT" 'r["total"]["data_commands"]')" 0 "no DATA"
echo "identity sender ($BACKEND): $CHECKS checks passed"
