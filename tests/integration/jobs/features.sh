#!/usr/bin/env bash
# Jobs, end to end against mxfarm: duplicates are verified once (the farm counts the RCPTs), CSV
# output keeps the user's columns, gzip input gives the same records, the results cache answers
# a second run without a single RCPT (catch-all facts included) and expires, and Ctrl-C stops
# cleanly with a resumable journal, and records come out in input order (--order). Env MXFARM,
# MXPROBE. Range 127.45-54.0.0/16.
MXPROBE=${MXPROBE:?MXPROBE must name the mxprobe binary}
source "$(dirname "$0")/../lib.sh"
LAB_POLICY=$ROOT/tools/policy/lab.toml

SC=$WORK/sc.json
launch 45 54 --domains 4 --hosts 2 --mailboxes 30 --catch-all-share 0 --special catchall
"$MXFARM" truth "$WORK/sc.json" >"$WORK/truth.csv"

# The input: CSV with the user's own columns, every address of d1 three times, an invalid line.
"$PY" - "$WORK/truth.csv" "$WORK/in.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
with open(sys.argv[2], "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["id", "Email", "note, with comma"])
    n = 0
    for r in rows:
        copies = 3 if r["email"].endswith("@d1.test") else 1
        for c in range(copies):
            n += 1
            w.writerow([n, r["email"], f'copy "{c}"'])
    w.writerow([n + 1, "not-an-address", "bad"])
PY
gzip -k "$WORK/in.csv"

# report_now FILE: the farm's report as it stands (SIGUSR1 rewrites it atomically).
report_now() {
  rm -f "$REPORT"
  kill -USR1 "$FARM_PID"
  for _ in $(seq 100); do
    [[ -s $REPORT ]] && { cp "$REPORT" "$1"; return 0; }
    sleep 0.05
  done
  fail "no report from the farm"
}

verify() {  # verify ERRFILE ARGS...
  local err=$1
  shift
  "$MXPROBE" verify --policy "$LAB_POLICY" --dns "127.0.0.1:$DNS_PORT" --no-progress \
    --helo jobs.client.test "$@" 2>"$err" || { cat "$err" >&2; fail "mxprobe verify $* failed"; }
}

# 1. First run: CSV in, CSV out, a fresh cache.
report_now "$WORK/r0.json"
verify "$WORK/e1.txt" -i "$WORK/in.csv" -o "$WORK/out1.csv" --format csv --cache "$WORK/cache.db"
report_now "$WORK/r1.json"
# 2. The same list gzipped, JSON out, no cache: the same verdicts (and a second set of RCPTs).
verify "$WORK/e2.txt" -i "$WORK/in.csv.gz" -o "$WORK/out2.jsonl" --no-cache
report_now "$WORK/r2.json"
# 3. Again with the cache: nothing reaches the farm, every valid record says cached.
verify "$WORK/e3.txt" -i "$WORK/in.csv" -o "$WORK/out3.jsonl" --cache "$WORK/cache.db"
report_now "$WORK/r3.json"

"$PY" - "$WORK" <<'PY' || fail "dedupe, CSV, gzip or cache checks failed"
import csv, json, sys
w = sys.argv[1]
inp = list(csv.reader(open(f"{w}/in.csv", newline="")))
truth = {r["email"]: (r["verdict"], r["reason"]) for r in csv.DictReader(open(f"{w}/truth.csv"))}
rep = [json.load(open(f"{w}/r{i}.json")) for i in range(4)]
def rcpts(r):
    return r["rcpt_by_address"]
def delta(a, b, addr):
    return rcpts(b).get(addr.lower(), 0) - rcpts(a).get(addr.lower(), 0)

# CSV output: the user's columns first, as they were; ours after, "email" renamed.
out1 = list(csv.reader(open(f"{w}/out1.csv", newline="")))
head = out1[0]
assert head[:3] == ["id", "Email", "note, with comma"], head[:4]
assert head[3:6] == ["line", "mxprobe_email", "normalized"], head[3:6]
assert len(out1) == len(inp), (len(out1), len(inp))
col = {n: i for i, n in enumerate(head)}
by_line = {int(r[col["line"]]): r for r in out1[1:]}
assert sorted(by_line) == list(range(2, len(inp) + 1)), "one record per input line"
for line, r in by_line.items():
    assert r[:3] == inp[line - 1], (r[:3], inp[line - 1])
    email = r[col["mxprobe_email"]]
    want = truth.get(email, ("undeliverable", "invalid_syntax"))
    assert (r[col["verdict"]], r[col["reason"]]) == want, (email, r[col["verdict"]], want)

# Dedupe: each d1 address was asked once in run 1 although it is on three lines.
dups = sorted({r[1] for r in inp[1:] if r[1].endswith("@d1.test")})
assert dups
for a in dups:
    assert delta(rep[0], rep[1], a) == 1, (a, delta(rep[0], rep[1], a))
    assert sum(1 for r in out1[1:] if r[col["mxprobe_email"]] == a) == 3, a

# gzip: the same records (but JSON), from the farm again (no cache).
out2 = [json.loads(l) for l in open(f"{w}/out2.jsonl")]
assert len(out2) == len(inp) - 1
got2 = {(r["line"], r["email"], r["verdict"], r["reason"]) for r in out2}
got1 = {(l, r[col["mxprobe_email"]], r[col["verdict"]], r[col["reason"]]) for l, r in by_line.items()}
assert got1 == got2, got1 ^ got2
assert all(not r["cached"] for r in out2)
assert sum(rep[2]["total"]["commands"].get("RCPT", 0) for _ in [0]) > \
       rep[1]["total"]["commands"].get("RCPT", 0)

# Cache: run 3 sent no RCPT at all (no probes either: catch-all facts come from the cache).
rc2 = rep[2]["total"]["commands"].get("RCPT", 0)
rc3 = rep[3]["total"]["commands"].get("RCPT", 0)
assert rc3 == rc2, ("RCPTs during the cached run", rc3 - rc2)
assert rep[3]["total"]["connections"] == rep[2]["total"]["connections"]
out3 = [json.loads(l) for l in open(f"{w}/out3.jsonl")]
assert len(out3) == len(inp) - 1
first = {l: r for l, r in by_line.items()}
for r in out3:
    if r["reason"] == "invalid_syntax":
        assert not r["cached"]
        continue
    assert r["cached"], r
    f = first[r["line"]]
    assert (r["verdict"], r["reason"]) == (f[col["verdict"]], f[col["reason"]]), r
    assert r["checked_at"] == f[col["checked_at"]], "a cached record keeps its check time"
    if r["domain"] == "catchall.test":
        assert r["catch_all"] is True and r["verdict"] == "risky", r
print(f"jobs: {len(inp) - 1} lines, {len(dups)} addresses x3 asked once; cached run: 0 RCPTs")
PY
ok
expect_match "$(tail -1 "$WORK/e1.txt")" " [1-9][0-9]* duplicates" "duplicates counted"
expect_match "$(tail -1 "$WORK/e3.txt")" " [1-9][0-9]* from cache" "cache hits counted"

# 4. The cache expires: with a 1-second TTL, two seconds later, the farm is asked again.
sleep 2.1  # the TTL under test (check times are whole seconds)
report_now "$WORK/r4.json"
verify "$WORK/e5.txt" -i "$WORK/in.csv" -o "$WORK/out5.jsonl" --cache "$WORK/cache.db" \
  --cache-ttl 1s
report_now "$WORK/r5.json"
"$PY" - "$WORK/r4.json" "$WORK/r5.json" "$WORK/out5.jsonl" <<'PY' || fail "expired cache was used"
import json, sys
a, b = (json.load(open(p))["total"]["commands"].get("RCPT", 0) for p in sys.argv[1:3])
recs = [json.loads(l) for l in open(sys.argv[3])]
assert b > a, "no RCPT after the TTL"
assert not any(r["cached"] for r in recs)
PY
ok

# 5. Ctrl-C: a clean stop with a resumable journal, then --resume finishes the job.
cat >"$WORK/slow.toml" <<'TOML'
[global]
builtin_providers = false
[defaults]
per_mx = { sessions = 2, connect_rate = 4, connect_burst = 1, rcpt_rate = 0 }
per_source = { sessions = 2, connect_rate = 0, rcpt_rate = 0 }
per_domain = { sessions = 2, connect_rate = 0, rcpt_rate = 0 }
session = { recipients = 1 }
TOML
"$MXPROBE" verify --policy "$WORK/slow.toml" --dns "127.0.0.1:$DNS_PORT" --no-progress --no-cache \
  -i "$WORK/in.csv" -o "$WORK/out6.jsonl" 2>"$WORK/e6.txt" &
MX=$!
for _ in $(seq 200); do
  [[ -s $WORK/out6.jsonl ]] && break
  sleep 0.05
done
kill -INT "$MX"
rc=0
wait "$MX" || rc=$?
expect_eq "$rc" 130 "exit status after Ctrl-C"
expect_match "$(cat "$WORK/e6.txt")" "run the same command with --resume" "how to resume"
[[ -f $WORK/out6.jsonl.journal ]] || fail "no journal kept after Ctrl-C"
ok
"$MXPROBE" verify --policy "$LAB_POLICY" --dns "127.0.0.1:$DNS_PORT" --no-progress --no-cache \
  -i "$WORK/in.csv" -o "$WORK/out6.jsonl" --resume 2>"$WORK/e7.txt" ||
  { cat "$WORK/e7.txt" >&2; fail "resume after Ctrl-C failed"; }
"$PY" - "$WORK/out6.jsonl" "$WORK/out2.jsonl" <<'PY' || fail "resumed output differs"
import json, sys
a = sorted((r["line"], r["verdict"], r["reason"]) for r in map(json.loads, open(sys.argv[1])))
b = sorted((r["line"], r["verdict"], r["reason"]) for r in map(json.loads, open(sys.argv[2])))
assert a == b, set(a) ^ set(b)
PY
[[ ! -f $WORK/out6.jsonl.journal ]] || fail "journal left behind after the job finished"
ok
# 7. Without --format an output named .csv is CSV (the name says so); a --format against the
# name (JSON Lines into a .csv, or the reverse) is refused before any work.
head -n 4 "$WORK/in.csv" >"$WORK/in7.csv"
"$MXPROBE" verify --dns "127.0.0.1:$DNS_PORT" --no-progress --no-cache -i "$WORK/in7.csv" \
  -o "$WORK/out7.csv" 2>"$WORK/e7.txt" || fail "verify into a .csv: $(cat "$WORK/e7.txt")"
expect_eq "$(head -n 1 "$WORK/out7.csv" | cut -c1)" "$(head -n 1 "$WORK/in7.csv" | cut -c1)" \
  ".csv without --format: CSV with the input's columns first"
expect_eq "$(wc -l <"$WORK/out7.csv")" 4 ".csv without --format: a header and three rows"
rc=0
"$MXPROBE" verify --dns "127.0.0.1:$DNS_PORT" --no-progress --no-cache -i "$WORK/in.csv" \
  -o "$WORK/out7b.csv" --format jsonl 2>"$WORK/e8.txt" || rc=$?
expect_eq "$rc" 2 "--format jsonl into a .csv: exit status"
expect_match "$(cat "$WORK/e8.txt")" "use --format csv" "--format jsonl into a .csv: the message"
[[ ! -e $WORK/out7b.csv ]] || fail "--format jsonl into a .csv: the file was written"
ok
rc=0
"$MXPROBE" verify --dns "127.0.0.1:$DNS_PORT" --no-progress --no-cache -i "$WORK/in.csv" \
  -o "$WORK/out7.jsonl" --format csv 2>"$WORK/e8.txt" || rc=$?
expect_eq "$rc" 2 "csv into a .jsonl: exit status"

# 8. --resume of an input changed since its journal: refused, nothing verified twice or lost.
cp "$WORK/in.csv" "$WORK/in8.csv"
"$MXPROBE" verify --policy "$WORK/slow.toml" --dns "127.0.0.1:$DNS_PORT" --no-progress --no-cache \
  -i "$WORK/in8.csv" -o "$WORK/out8.jsonl" 2>"$WORK/e9.txt" &
MX=$!
for _ in $(seq 200); do
  [[ -s $WORK/out8.jsonl ]] && break
  sleep 0.05
done
kill -INT "$MX"
wait "$MX" || true
before=$(wc -l <"$WORK/out8.jsonl")
"$PY" - "$WORK/in8.csv" <<'PY'
import sys
lines = open(sys.argv[1]).read().splitlines(True)
open(sys.argv[1], "w").writelines(lines[:1] + ["900,new1@d1.test,x\n", "901,new2@d1.test,x\n"] + lines[1:])
PY
rc=0
"$MXPROBE" verify --policy "$LAB_POLICY" --dns "127.0.0.1:$DNS_PORT" --no-progress --no-cache \
  -i "$WORK/in8.csv" -o "$WORK/out8.jsonl" --resume 2>"$WORK/e10.txt" || rc=$?
expect_eq "$rc" 2 "--resume of a changed input: exit status"
expect_match "$(cat "$WORK/e10.txt")" "in8.csv changed since the journal was written" \
  "--resume of a changed input: the message"
expect_eq "$(wc -l <"$WORK/out8.jsonl")" "$before" "--resume of a changed input: output untouched"
# 9. A full disk: the error names the file and says how to go on.
printf 'not-an-address\nnor-this\n' >"$WORK/bad9.txt"
rc=0
"$MXPROBE" verify --dns "127.0.0.1:$DNS_PORT" --no-progress --no-cache -i "$WORK/bad9.txt" \
  -o /dev/full --journal "$WORK/j9.db" 2>"$WORK/e11.txt" || rc=$?
expect_eq "$rc" 1 "a full disk: exit status"
expect_match "$(cat "$WORK/e11.txt")" "cannot write /dev/full: No space left on device" \
  "a full disk: the file named"
expect_match "$(cat "$WORK/e11.txt")" "j9.db: free some space, then run the same command with --resume" \
  "a full disk: how to resume"

# 10. Output order: a list whose head is greylisted (answered ~3 s later, after the retry) and
# slow comes out in input order with --order input, in completion order with --order completion, with
# the same records either way. A MAIL FROM of its own per run: each run is greylisted afresh.
stop_farm
launch 45 54 --domains 4 --hosts 2 --mailboxes 20 --special greylist,slow
"$MXFARM" truth "$SC" >"$WORK/truth10.csv"
"$PY" - "$WORK/truth10.csv" "$WORK/in10.txt" <<'PY'
import csv, sys
emails = [r["email"] for r in csv.DictReader(open(sys.argv[1]))]
head = [e for e in emails if e.endswith("@greylist.test")] + [e for e in emails if e.endswith("@slow.test")]
rest = [e for e in emails if e not in head]
open(sys.argv[2], "w").write("\n".join(head[:3] + rest + head[3:]) + "\n")
PY
for run in input:jsonl completion:jsonl input:csv; do
  order=${run%:*} fmt=${run#*:}
  args=(--order "$order")
  verify "$WORK/e10.txt" -i "$WORK/in10.txt" -o "$WORK/out10-$order.$fmt" --no-cache \
    --mail-from "order-$order-$fmt@client.test" "${args[@]}"
done
"$PY" - "$WORK" <<'PY' || fail "output order checks failed"
import csv, json, sys
w = sys.argv[1]
n = sum(1 for _ in open(f"{w}/in10.txt"))
def recs(path):
    if path.endswith(".csv"):
        return [(int(r["line"]), r["verdict"], r["reason"]) for r in csv.DictReader(open(path, newline=""))]
    return [(r["line"], r["verdict"], r["reason"]) for r in map(json.loads, open(path))]
inp, comp, csvin = (recs(f"{w}/out10-{o}") for o in ("input.jsonl", "completion.jsonl", "input.csv"))
lines = [r[0] for r in inp]
assert lines == list(range(1, n + 1)), f"--order input: lines {lines[:12]}..."
assert [r[0] for r in csvin] == lines, "CSV: not in input order"
clines = [r[0] for r in comp]
assert clines != sorted(clines), "--order completion came out in input order: no greylisting?"
assert sorted(clines) == lines, "--order completion: not one record per line"
assert sorted(comp) == inp, set(comp) ^ set(inp)
assert sorted(csvin) == inp
grey = [r for r in inp if r[0] == 1][0]
assert grey[1] != "unknown", f"the greylisted head was not answered: {grey}"
PY
ok
stop_farm
echo "PASS: $CHECKS checks"
