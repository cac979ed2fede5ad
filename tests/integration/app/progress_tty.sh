#!/usr/bin/env bash
# The progress line as a user sees it on an 80-column terminal (tmux, a real pty): `mxprobe
# verify` against mxfarm with greylisting domains whose retries wait 15 s. Every redraw fits in
# 79 columns, the pane ends with exactly one progress row (redraws never add lines), and while
# the greylisted addresses wait the line says how many and when the next retry is due, and its
# ETA is not before the last one. Env MXFARM, MXPROBE. Range 127.55-59.0.0/16.
MXPROBE=${MXPROBE:?MXPROBE must name the mxprobe binary}
source "$(dirname "$0")/../lib.sh"
command -v tmux >/dev/null || fail "tmux is missing (tools/setup.sh installs it)"

launch 55 59 --domains 3 --hosts 2 --mailboxes 8 --catch-all-share 0 --greylist-share 0.67 \
  --greylist-delay 1 --special none
"$MXFARM" truth "$SC" >"$WORK/truth.csv"

# The lab policy with greylisting retries 15 s apart: long enough to be seen waiting.
LAB_POLICY=$ROOT/tools/policy/lab.toml
sed 's/^retry = .*/retry = { schedule = ["15s"], attempts = 3 }/' "$LAB_POLICY" >"$WORK/policy.toml"
grep -q '"15s"' "$WORK/policy.toml" || fail "could not set the retry schedule"

SOCK=$WORK/tmux.sock
stop_tmux() { tmux -S "$SOCK" kill-server 2>/dev/null || true; }
trap 'stop_tmux; cleanup' EXIT

# The session's shell waits for "go" so that the pane's output is logged from the first byte,
# runs mxprobe with stderr on the pty, says "done", and keeps the pane until the server ends.
cat >"$WORK/run.sh" <<SH
tmux -S "$SOCK" wait-for go
"$MXPROBE" verify --policy "$WORK/policy.toml" --dns 127.0.0.1:$DNS_PORT --no-cache \
  --helo tty.client.test -i "$WORK/truth.csv" -o "$WORK/out.jsonl"
echo "EXIT=\$?"
tmux -S "$SOCK" wait-for -S done
exec cat
SH
env -u TMUX tmux -S "$SOCK" -f /dev/null new-session -d -x 80 -y 50 -s p "bash $WORK/run.sh"
tmux -S "$SOCK" pipe-pane -t p -o "cat >>$WORK/pane.log"
tmux -S "$SOCK" wait-for -S go
timeout 100 tmux -S "$SOCK" wait-for done || fail "mxprobe verify did not finish in 100 s"
PANE=$(tmux -S "$SOCK" capture-pane -p -t p -S - -E -)
[[ -n ${KEEP_PANE:-} ]] && cp "$WORK/pane.log" "$KEEP_PANE"
tmux -S "$SOCK" pipe-pane -t p
expect_match "$PANE" '^EXIT=0$' "verify's exit status"
[[ $(wc -l <"$WORK/out.jsonl") -eq $(($(wc -l <"$WORK/truth.csv") - 1)) ]] || fail "records missing"

# Every redraw (what follows a \r, escape sequences removed) fits in 79 columns.
"$PY" - "$WORK/pane.log" <<'PY' || fail "a redraw is wider than the terminal"
import re, sys
raw = open(sys.argv[1], "rb").read().decode("utf-8", "replace")
draws = [re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", d) for d in raw.split("\r")]
draws = [d for d in draws if "verified" in d]
assert len(draws) >= 10, f"only {len(draws)} redraws"
wide = [d for d in draws if len(d.rstrip("\n")) > 79]
for d in wide[:3]:
    print(len(d), repr(d), file=sys.stderr)
sys.exit(1 if wide else 0)
PY
ok
# One progress row in the pane at the end: redraws replaced it, never added to it.
ROWS=$(grep -c ' verified' <<<"$PANE" || true)
[[ $ROWS -eq 1 ]] || { echo "$PANE" >&2; fail "$ROWS progress rows in the pane, want 1"; }
ok
# While the greylisted addresses waited: how many, when the next retry is due, an ETA that
# counts the wait (at least the time to the last retry, not the few seconds the rate says).
LOG=$(tr '\r' '\n' <"$WORK/pane.log")
expect_match "$LOG" '[0-9]+ waiting, next retry 0:1[0-5]' "the next retry on the status line"
expect_match "$LOG" 'ETA >=0:1[0-5]' "an ETA counting the retry wait"
expect_match "$PANE" 'mxprobe verify: [0-9]+ records: deliverable [0-9]+' "the summary"
echo "PASS: $CHECKS checks"
