#!/usr/bin/env bash
# Against peers (issue 9): one mxfarm scenario (the demo's: 200 ordinary domains on 20 hosts plus
# the special behaviours, 5,000 addresses from `mxfarm truth`) verified by `mxprobe verify` and by
# npm's deep-email-validator (pinned in package.json, driven by deep_email_validator.mjs), one
# after the other on a fresh farm each. Prints addresses/s, client CPU and peak RSS, and accuracy
# against the farm's truth; writes OUT/bench-peers.md. Exits 1 only when a run is wrong (records
# missing).
#
# Usage: bench_peers.sh MXPROBE MXFARM [COUNT=5000] [OUT=.] [PEER_CONCURRENCY=100]
# Client on CPU 0, farm on CPU 1. Hosts 127.71.0.0/24 on port 25, DNS port 15378.
set -euo pipefail
USAGE="usage: bench_peers.sh MXPROBE MXFARM [COUNT] [OUT] [PEER_CONCURRENCY]"
MXPROBE=${1:?$USAGE}
MXFARM=${2:?$USAGE}
COUNT=${3:-5000}
OUT=${4:-.}
PEER_CONC=${5:-100}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
DNS_PORT=15378
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d /tmp/mxp-peers-bench.XXXXXX)

PIDS=()
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ ! -d $HERE/node_modules/deep-email-validator ]]; then
  (cd "$HERE" && npm ci --no-audit --no-fund --silent)
fi
PEER_VERSION=$(jq -r .version "$HERE/node_modules/deep-email-validator/package.json")

special=styles,catchall,slow,blocked,blocked-banner,errlimit,rcptlimit,nopipelining,heloonly
special+=,drop-mail,reset-rcpt,garbage,endless,overlong,failover,aonly,nullmx,nomx,nxdomain,servfail
"$MXFARM" gen --domains 200 --hosts 20 --mailboxes 20 --base-ip 127.71.0.0 --dns-port $DNS_PORT \
  --special "$special" >"$WORK/farm.json"
"$MXFARM" truth "$WORK/farm.json" --count "$COUNT" --invalid 10 >"$WORK/truth.csv"
tail -n +2 "$WORK/truth.csv" | cut -d, -f1 >"$WORK/list.txt"
N=$(wc -l <"$WORK/list.txt")

FARM=""
start_farm() {
  rm -f "$WORK/ready"
  taskset -c 1 "$MXFARM" run "$WORK/farm.json" --ready-file "$WORK/ready" >/dev/null \
    2>"$WORK/farm.err" &
  FARM=$!
  PIDS+=("$FARM")
  local i
  for ((i = 0; i < 200; i++)); do
    [[ -s $WORK/ready ]] && return 0
    sleep 0.05
  done
  echo "mxfarm not ready: $(cat "$WORK/farm.err")" >&2
  exit 1
}
stop_farm() {
  kill "$FARM" 2>/dev/null || true
  wait "$FARM" 2>/dev/null || true
}

echo "== peers: $N addresses of one mxfarm scenario, $(date -u '+%Y-%m-%d %H:%M UTC')"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
echo "   load average $LOAD_START at start; deep-email-validator $PEER_VERSION, node $(node --version)"

# run NAME CMD...: the client pinned to CPU 0 on a fresh farm; sets WALL_MS.
run() {
  local name=$1 t0 t1
  shift
  start_farm
  t0=$(date +%s%N)
  taskset -c 0 /usr/bin/time -f '%U %S %M' -o "$WORK/$name.time" "$@" 2>"$WORK/$name.err" &
  local pid=$!
  PIDS+=("$pid")
  wait "$pid" || echo "   $name exited with $? ($(tail -n 2 "$WORK/$name.err" | tr '\n' ' '))" >&2
  t1=$(date +%s%N)
  stop_farm
  WALL_MS=$(((t1 - t0) / 1000000))
  echo "$name $WALL_MS $(cat "$WORK/$name.time")" >>"$WORK/runs.txt"
}
: >"$WORK/runs.txt"
# mxprobe as the demo runs it against the farm: the lab policy (no rate limits; 4 sessions per
# domain, 500 in all), short timeouts, catch-all probing on.
run mxprobe "$MXPROBE" verify --no-cache --no-journal --no-progress --input "$WORK/list.txt" \
  --output "$WORK/mxprobe.jsonl" --policy "$ROOT/tools/policy/lab.toml" \
  --dns 127.0.0.1:$DNS_PORT --helo bench.mxprobe.test --timeout-banner 5 --timeout-command 5 \
  --timeout-dns 1
# The same with as many checks in flight as the peer gets, and no per-domain cap below that.
run mxprobe-wide "$MXPROBE" verify --no-cache --no-journal --no-progress --input "$WORK/list.txt" \
  --output "$WORK/mxprobe-wide.jsonl" --policy "$ROOT/tools/policy/lab.toml" \
  --dns 127.0.0.1:$DNS_PORT --helo bench.mxprobe.test --timeout-banner 5 --timeout-command 5 \
  --timeout-dns 1 -c "$PEER_CONC" --domain-concurrency "$PEER_CONC"
run deep-email-validator node "$HERE/deep_email_validator.mjs" 127.0.0.1:$DNS_PORT "$PEER_CONC" \
  "$WORK/list.txt" "$WORK/deep-email-validator.jsonl"

python3 - "$WORK" "$N" "$PEER_CONC" "$OUT/bench-peers.md" "$PEER_VERSION" "$LOAD_START" \
  "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import collections, csv, json, sys
work, n, peer_conc, md, ver, load0, load1 = sys.argv[1:]
n = int(n)
truth = {r["email"]: (r["verdict"], r["reason"]) for r in csv.DictReader(open(f"{work}/truth.csv"))}
runs = {}
for line in open(f"{work}/runs.txt"):
    name, ms, u, s, rss = line.split()
    runs[name] = (int(ms), float(u), float(s), int(rss))
rows, fail = [], 0
for name in ("mxprobe", "mxprobe-wide", "deep-email-validator"):
    recs = [json.loads(l) for l in open(f"{work}/{name}.jsonl")]
    got = {r["email"]: r for r in recs}
    if len(got) != n:
        print(f"   FAIL {name}: {len(got)} distinct addresses of {n}", file=sys.stderr)
        fail = 1
    ms, u, s, rss = runs[name]
    v = sum(truth[e][0] == got[e]["verdict"] for e in got if e in truth)
    vr = sum(truth[e] == (got[e]["verdict"], got[e]["reason"]) for e in got if e in truth)
    if name.startswith("mxprobe"):
        lenient = v
    else:
        lenient = sum(truth[e][0] == got[e]["lenient"] for e in got if e in truth)
    # where the verdicts differ, by truth verdict,reason -> answer
    diff = collections.Counter(
        (",".join(truth[e]), got[e]["verdict"] + ("" if name.startswith("mxprobe") else "/" + got[e]["reason"]))
        for e in got if e in truth and truth[e][0] != got[e]["verdict"])
    el = sorted(r.get("elapsed_ms") or 0 for r in recs)
    slow = sum(x > 1000 for x in el)
    tail = f"{el[len(el) // 2]:.0f} / {el[len(el) * 99 // 100]:.0f} / {el[-1]:.0f} ms, {slow} over 1 s"
    rows.append((name, n, ms, n * 1000 / ms, (u + s) * 1e6 / n, rss / 1024, v, vr, lenient, tail,
                 diff))
label = {"mxprobe": "mxprobe verify (lab policy: 4 sessions per domain, 500 in all)",
         "mxprobe-wide": f"mxprobe verify -c {peer_conc} --domain-concurrency {peer_conc}",
         "deep-email-validator": f"deep-email-validator {ver} (node, {peer_conc} in flight)"}
out = []
out.append("| verifier | addresses | wall s | addresses/s | client CPU µs/address | peak RSS MiB |"
           " verdict = truth | verdict and reason = truth | verdict = truth, lenient mapping |"
           " time per address p50 / p99 / max |")
out.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for name, n_, ms, rate, cpu, rss, v, vr, le, tail, _ in rows:
    vr_s = f"{vr} ({100 * vr / n_:.1f}%)" if name.startswith("mxprobe") else "n/a (no reasons)"
    out.append(f"| {label[name]} | {n_:,} | {ms / 1000:.1f} | {rate:,.0f} | {cpu:,.0f} | {rss:.1f} |"
               f" {v} ({100 * v / n_:.1f}%) | {vr_s} | {le} ({100 * le / n_:.1f}%) | {tail} |")
print()
print("\n".join(out))
print(f"\nload average {load0} at start, {load1} at end")
for name, *_, diff in rows:
    print(f"\n{name}: where the verdict differs from the truth (truth verdict,reason -> answer: count)")
    for (t, a), c in diff.most_common(12):
        print(f"   {t:34} -> {a:40} {c}")
with open(md, "w") as f:
    f.write(f"# mxprobe against peers on one mxfarm scenario\n\nload average {load0} at start, "
            f"{load1} at end\n\n" + "\n".join(out) + "\n")
    for name, *_, diff in rows:
        if not diff:
            f.write(f"\n{name}: every verdict equals the truth.\n")
            continue
        f.write(f"\n{name}: where the verdict differs from the truth\n\n| truth | answer | addresses |\n"
                "| --- | --- | ---: |\n")
        for (t, a), c in diff.most_common(12):
            f.write(f"| {t} | {a} | {c} |\n")
print(f"\nwrote {md}")
sys.exit(fail)
PY
