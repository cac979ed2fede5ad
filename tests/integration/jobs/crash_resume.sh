#!/usr/bin/env bash
# Crash and resume: `mxprobe verify` killed with SIGKILL at random moments (and its output torn
# mid-line, as a crash in the middle of a write leaves it) finishes the job with --resume: one
# record per input line, none lost, none twice, the verdicts of an uninterrupted run, and no
# address that was finished before a crash asked again at the farm after it.
# Usage: crash_resume.sh   (env MXFARM, MXPROBE). Range 127.80-89.0.0/16.
source "$(dirname "$0")/../lib.sh"
MXPROBE=${MXPROBE:?MXPROBE must name the mxprobe binary}
KILLS=${CRASH_KILLS:-5}

SC=$WORK/scenario.json
REPORT=$WORK/report.json
# 100 domains on 10 MX hosts, 200 mailboxes each: 20,000 addresses (some catch-all; probes on).
launch 80 89 --domains 100 --hosts 10 --mailboxes 200 --special none
"$MXFARM" truth "$SC" --count 20000 >"$WORK/truth.csv"
cut -d, -f1 "$WORK/truth.csv" >"$WORK/in.csv" # header "email": data lines are records 2..20001
# 20 sessions a second per MX group, 5 recipients each: ~1000 addresses/s, ~20 s a run, so the
# kills below (0.5-3 s apart) land mid-run.
cat >"$WORK/policy.toml" <<'EOF'
[global]
builtin_providers = false
[defaults]
per_mx = { sessions = 10, connect_rate = 20, connect_burst = 5, rcpt_rate = 0 }
per_source = { sessions = 10, connect_rate = 0, rcpt_rate = 0 }
per_domain = { sessions = 4, connect_rate = 0, rcpt_rate = 0 }
backoff = { initial_sessions = 10 }
session = { recipients = 5 }
EOF

# The uninterrupted run that gives the reference has no reason to be slow: the same policy
# without the connection rate (about 3 s instead of 20).
sed 's/connect_rate = 20, connect_burst = 5/connect_rate = 0/' "$WORK/policy.toml" >"$WORK/ref.toml"
grep -q '^per_mx = { sessions = 10, connect_rate = 0, rcpt_rate = 0 }$' "$WORK/ref.toml" ||
  fail "ref.toml: the connection rate is still there"

# The job: the same command every time (plus --output, and --resume after a crash).
JOB=("$MXPROBE" verify --input "$WORK/in.csv" --dns "127.0.0.1:$DNS_PORT" --no-progress --no-cache
  --policy "$WORK/policy.toml" --timeout-connect 10 --timeout-banner 10 --timeout-command 10
  --helo probe.client.test)

# snapshot NAME: the farm's report once every connection of a killed mxprobe is closed (the
# farm has read all it will ever get from it), kept as $WORK/NAME.json.
snapshot() {
  local cur=""
  for _ in $(seq 1 100); do
    rm -f "$REPORT"
    kill -USR1 "$FARM_PID"
    for _ in $(seq 1 200); do [[ -s $REPORT ]] && break; sleep 0.02; done
    [[ -s $REPORT ]] || fail "the farm wrote no report on SIGUSR1"
    cur=$(report_get "$REPORT" "r['total']['current_connections']")
    ((cur == 0)) && { mv "$REPORT" "$WORK/$1.json"; return 0; }
    sleep 0.05
  done
  fail "the farm still has $cur connections after mxprobe was killed"
}

# --- An uninterrupted run first; the farm's counts after it are the baseline. (The job's
# command with ref.toml for policy.toml.)
"${JOB[@]/%policy.toml/ref.toml}" --output "$WORK/ref.jsonl" 2>"$WORK/ref.err" ||
  { cat "$WORK/ref.err" >&2; fail "uninterrupted mxprobe verify failed"; }
[[ ! -e $WORK/ref.jsonl.journal ]] || fail "the journal of a finished job was not deleted"
ok
snapshot base

# --- The same job, killed again and again.
OUT=$WORK/out.jsonl
: >"$WORK/run.err"
kills=0 truncated=0 appended=0 finished=0
while ((kills < 40)); do  # slow builds (ASan) need more tries to tear the output both ways
  resume=()
  ((kills > 0)) && resume=(--resume)
  # A simple command in the background: $! is mxprobe itself, not a subshell around it.
  "${JOB[@]}" --output "$OUT" "${resume[@]}" 2>>"$WORK/run.err" &
  pid=$!
  # The run is over once enough kills are done and the output was torn both ways.
  if ((kills >= KILLS && truncated && appended)); then
    rc=0
    wait "$pid" || rc=$?
    ((rc == 0)) || { tail -20 "$WORK/run.err" >&2; fail "the last resume exited $rc"; }
    finished=1
    break
  fi
  # A resumed run is killed only once it has said so ("resuming: N records"): under a sanitizer
  # on a loaded machine its start can take longer than the shortest delay below, and a run
  # killed before that line would leave the count of resumes short.
  resumed_or_gone() { (($(grep -c 'resuming: ' "$WORK/run.err") >= kills)) || ! kill -0 "$pid" 2>/dev/null; }
  ((kills == 0)) || wait_for 60 resumed_or_gone || true
  # The first run is killed only once its job is in the journal (its first record is out): a
  # run killed before that (a slow start under a sanitizer) leaves a journal with no job in it,
  # which a plain run rightly starts over instead of refusing.
  started_or_gone() { [[ -s $OUT ]] || ! kill -0 "$pid" 2>/dev/null; }
  ((kills > 0)) || wait_for 60 started_or_gone || true
  delay=$((500 + RANDOM % 2501)) # ms
  sleep "$((delay / 1000)).$(printf %03d $((delay % 1000)))"
  if ! kill -0 "$pid" 2>/dev/null; then
    rc=0
    wait "$pid" || rc=$?
    ((rc == 0)) || { tail -20 "$WORK/run.err" >&2; fail "mxprobe verify exited $rc"; }
    fail "mxprobe finished before it was killed $KILLS times (kills: $kills): make the run slower"
  fi
  [[ $(readlink "/proc/$pid/exe") -ef $MXPROBE ]] || fail "pid $pid is not mxprobe"
  kill -KILL "$pid"
  wait "$pid" 2>/dev/null || true
  kills=$((kills + 1))
  echo "--- kill $kills" >>"$WORK/run.err"
  [[ -e $OUT.journal ]] || fail "no journal $OUT.journal after kill $kills"
  snapshot "kill$kills"
  cp "$OUT" "$WORK/kill$kills.jsonl" # what mxprobe had written at the crash
  if ((kills == 1)); then
    # Without --resume an unfinished journal is refused, and nothing is touched.
    sum=$(md5sum <"$OUT")
    rc=0
    "${JOB[@]}" --output "$OUT" 2>"$WORK/refused.err" || rc=$?
    expect_eq "$rc" 2 "verify on an unfinished journal without --resume"
    expect_match "$(cat "$WORK/refused.err")" "unfinished job.*add --resume" "the refusal says add --resume"
    expect_eq "$(md5sum <"$OUT")" "$sum" "the output after the refusal"
  fi
  size=$(stat -c %s "$OUT")
  if ((!truncated && size > 300)); then
    # A torn write: cut the file at a random byte that is not the end of a line.
    at=$("$PY" -c 'import random, sys
d = open(sys.argv[1], "rb").read()
print(random.choice([i for i in range(1, len(d)) if d[i - 1] != 10]))' "$OUT")
    truncate -s "$at" "$OUT"
    echo "--- output cut to $at of $size bytes" >>"$WORK/run.err"
    truncated=$kills
  elif ((truncated && !appended && truncated < kills)); then
    # A torn write of the other kind: the first part of a record after the last complete line.
    printf '{"line":3,"email":"user1@d1.test","normalized":"us' >>"$OUT"
    echo "--- partial line appended" >>"$WORK/run.err"
    appended=$kills
  fi
done
((finished)) || fail "the job did not finish"
[[ ! -e $OUT.journal && ! -e $OUT.journal.lock ]] || fail "journal left behind after the job finished"
ok
snapshot final
stop_farm

"$PY" - "$WORK" "$kills" "$WORK/run.err" <<'PY' || fail "records or farm counts wrong after the crashes"
import csv, json, re, sys
work, kills, errlog = sys.argv[1], int(sys.argv[2]), sys.argv[3]
bad = []

def load(path):
    text = open(path, encoding="utf-8", errors="replace").read()
    complete = text.split("\n")[:-1]  # the part after the last newline is a torn line
    recs = []
    for i, l in enumerate(complete):
        try:
            recs.append(json.loads(l))
        except ValueError:
            bad.append(f"{path}: line {i + 1} is not JSON: {l[:80]!r}")
    return recs, text

truth = list(csv.DictReader(open(f"{work}/truth.csv")))
want = {i + 2: (r["email"], r["verdict"], r["reason"]) for i, r in enumerate(truth)}

# (a) one record per input line, all JSON, no torn line; (b) the verdicts of the truth and of
# the uninterrupted run.
def by_line(name):
    recs, text = load(f"{work}/{name}.jsonl")
    if text and not text.endswith("\n"):
        bad.append(f"{name}: ends with a torn line")
    lines = [r["line"] for r in recs]
    if sorted(lines) != sorted(want):
        dup = len(lines) - len(set(lines))
        miss = len(set(want) - set(lines))
        bad.append(f"{name}: {len(recs)} records, {dup} duplicated, {miss} lines missing")
    return recs, {r["line"]: (r["email"], r["verdict"], r["reason"]) for r in recs}

ref_recs, ref = by_line("ref")
out_recs, out = by_line("out")
for name, got in (("ref", ref), ("out", out)):
    wrong = [(l, got[l], want[l]) for l in sorted(got) if want.get(l) != got[l]]
    if wrong:
        bad.append(f"{name}: {len(wrong)} records differ from the truth, e.g. {wrong[:3]}")
diff = [l for l in want if ref.get(l) != out.get(l)]
if diff:
    bad.append(f"{len(diff)} records differ from the uninterrupted run, e.g. line {diff[0]}")

# The last resume wrote the journal's records first, in line order.
rebuilt = [int(n) for n in re.findall(r"resuming: (\d+) records from the journal", open(errlog).read())]
if len(rebuilt) != kills:
    bad.append(f"{len(rebuilt)} 'resuming' lines for {kills} resumes")
if rebuilt:
    head = [r["line"] for r in out_recs[: rebuilt[-1]]]
    if head != sorted(set(head)):
        bad.append("the rebuilt records are not in line order")

# (c) an address whose record was in the output at a crash is never asked again after it;
# (d) every address was asked during the crashed runs (redone if it was in flight).
base = json.load(open(f"{work}/base.json"))["rcpt_by_address"]
final = json.load(open(f"{work}/final.json"))["rcpt_by_address"]
checked = 0
for k in range(1, kills + 1):
    done, _ = load(f"{work}/kill{k}.jsonl")
    if k <= len(rebuilt) and rebuilt[k - 1] < len(done):
        bad.append(f"kill {k}: {len(done)} records in the output, only {rebuilt[k - 1]} in the journal")
    at = json.load(open(f"{work}/kill{k}.json"))["rcpt_by_address"]
    again = [r["email"] for r in done if final.get(r["email"], 0) != at.get(r["email"], 0)]
    if again:
        e = again[0]
        bad.append(f"kill {k}: {len(again)} of {len(done)} finished addresses asked again, e.g. "
                   f"{e}: {at.get(e, 0)} RCPTs at the kill, {final.get(e, 0)} at the end")
    checked += len(done)
never = [e for e, _, _ in want.values() if final.get(e, 0) - base.get(e, 0) < 1]
if never:
    bad.append(f"{len(never)} addresses never asked during the crashed runs, e.g. {never[:3]}")
redone = sum(1 for e, _, _ in want.values() if final.get(e, 0) - base.get(e, 0) > 1)
for b in bad:
    print("MISMATCH", b)
print(f"{len(out_recs)} records, {kills} kills, rebuilt from the journal {rebuilt}, "
      f"{checked} finished-at-crash records checked, {redone} addresses asked more than once")
sys.exit(1 if bad else 0)
PY
ok
echo "PASS crash_resume ($CHECKS checks)"
