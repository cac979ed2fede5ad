#!/usr/bin/env bash
# SIGHUP reloads the policy without losing work: mxprobe starts under a slow policy (2
# connections/s, one address per session), a broken file is refused and the old policy stays,
# then a fast policy takes over mid-run. Every address ends exactly once with its true verdict,
# the farm saw the slow rate before the reload, and far fewer sessions after it.
# Env MXFARM, MXPROBE. Range 127.61-69.0.0/16.
MXPROBE=${MXPROBE:?MXPROBE must name the mxprobe binary}
source "$(dirname "$0")/../lib.sh"

SC=$WORK/sc.json
launch 61 69 --domains 1 --hosts 1 --mx-per-domain 1 --mailboxes 300 --catch-all-share 0 \
  --special none
"$MXFARM" truth "$WORK/sc.json" >"$WORK/truth.csv"
tail -n +2 "$WORK/truth.csv" | cut -d, -f1 >"$WORK/list.txt"
total=$(wc -l <"$WORK/list.txt")
((total >= 300)) || fail "expected at least 300 addresses, got $total"

policy() {  # policy CONNECT_RATE RECIPIENTS
  cat >"$WORK/policy.toml" <<TOML
[global]
builtin_providers = false
[defaults]
per_mx = { sessions = 10, connect_rate = 0, rcpt_rate = 0 }
per_source = { sessions = 10, connect_rate = $1, connect_burst = 1, rcpt_rate = 0 }
per_domain = { sessions = 10, connect_rate = 0, rcpt_rate = 0 }
backoff = { initial_sessions = 10 }
session = { recipients = $2 }
catch_all_probe = false
TOML
}
policy 2 1

"$MXPROBE" verify --no-cache --policy "$WORK/policy.toml" --dns "127.0.0.1:$DNS_PORT" --no-progress \
  --input "$WORK/list.txt" --output "$WORK/out.jsonl" --helo reload.client.test \
  2>"$WORK/mxprobe.err" &
MX_PID=$!

# wait_for WHAT COMMAND...: until the command succeeds (the process under test moves on its own
# time; this only waits for the state to be reached), at most 30 s.
wait_for() {
  local what=$1
  shift
  for _ in $(seq 300); do
    "$@" && return 0
    kill -0 "$MX_PID" 2>/dev/null || fail "mxprobe exited while waiting for $what"
    sleep 0.1
  done
  cat "$WORK/mxprobe.err" >&2
  fail "timed out waiting for $what"
}
has_lines() { [[ -f $WORK/out.jsonl ]] && (($(wc -l <"$WORK/out.jsonl") >= $1)); }
err_has() { grep -q -- "$1" "$WORK/mxprobe.err"; }

wait_for "the first results" has_lines 6
# A file that does not parse: refused, the run goes on under the old policy.
echo "[defaults]
per_mx = { sessions = -1 }" >"$WORK/policy.toml"
kill -HUP "$MX_PID"
wait_for "the refusal" err_has "keeping the policy in force"
expect_match "$(cat "$WORK/mxprobe.err")" "policy.toml:2:.*per_mx.sessions" "the error names file and key"
has_lines 6 && ok
# The farm's view of the slow phase, just before the good reload.
kill -USR1 "$FARM_PID"
wait_for "the farm's report" test -s "$REPORT"
mv "$REPORT" "$WORK/slow.json"
before=$(wc -l <"$WORK/out.jsonl")
((before < total / 2)) || fail "the slow policy was not slow: $before of $total done"
policy 0 25
kill -HUP "$MX_PID"
rc=0
wait "$MX_PID" || rc=$?
((rc == 0)) || { cat "$WORK/mxprobe.err" >&2; fail "mxprobe verify exited $rc"; }
expect_match "$(cat "$WORK/mxprobe.err")" "SIGHUP: policy reloaded from .*policy.toml" "reload logged"

kill -USR1 "$FARM_PID"
for _ in $(seq 300); do  # mxprobe has exited: wait for the farm alone
  [[ -s $REPORT ]] && break
  sleep 0.1
done
[[ -s $REPORT ]] || fail "no report from the farm"
check_results() {
  "$PY" - "$WORK/truth.csv" "$WORK/out.jsonl" "$REPORT" "$before" "$WORK/slow.json"
}
check_results <<'PY' || fail "results or report wrong"
import csv, json, sys
truth = {r["email"]: (r["verdict"], r["reason"]) for r in csv.DictReader(open(sys.argv[1]))}
recs = [json.loads(l) for l in open(sys.argv[2])]
emails = [r["email"] for r in recs]
assert len(recs) == len(truth) and set(emails) == set(truth), (len(recs), len(set(emails)))
wrong = [(r["email"], r["verdict"], r["reason"]) for r in recs
         if truth[r["email"]] != (r["verdict"], r["reason"])]
assert not wrong, wrong[:5]
total = json.load(open(sys.argv[3]))["total"]
slow = json.load(open(sys.argv[5]))["total"]
# Slow phase: one address per session, at most 2/s + a burst of 1 from our one source IP, and
# the limit was reached.
peak = slow["peak_connections_per_second"]
assert 2 <= peak <= 3, peak
before = int(sys.argv[4])
# After the reload, up to 25 addresses per session: far fewer sessions than addresses left.
after = total["connections"] - before
assert after <= (len(truth) - before) / 5, (total["connections"], before)
print(f"reload: {before} addresses before (1 per session, peak {peak} connections/s), "
      f"{len(truth) - before} after in {after} sessions")
PY
ok
echo "PASS: $CHECKS checks"
