#!/usr/bin/env bash
# The main job: set up, build, then (1) check the syntax of a sample CSV offline and (2) verify a
# list against mxfarm, a simulated farm of mail servers on 127.0.0.0/8 with a real DNS server,
# and score the verdicts against the farm's ground truth. Results go to build/demo/.
# Ctrl-C stops everything cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc)" --target mxprobe mxfarm
bin=build/release/engine/app/mxprobe
farm=build/release/tools/mxfarm/mxfarm
out=build/demo
mkdir -p "$out"

echo "== 1. syntax check of tools/demo/sample.csv (offline)"
"$bin" syntax --progress --input tools/demo/sample.csv --output "$out/syntax.jsonl"
echo "   results: $out/syntax.jsonl"

echo "== 2. verification against a simulated mail-server farm"
# Behaviours that need the scheduler (greylisting retries, connection-rate limits) are left out
# of the demo farm until the scheduler lands.
special=styles,catchall,slow,blocked,blocked-banner,errlimit,rcptlimit,nopipelining,heloonly
special+=,drop-mail,reset-rcpt,garbage,endless,overlong,failover,aonly,nullmx,nomx,nxdomain,servfail
dns_port=5391
"$farm" gen --domains 200 --hosts 20 --mailboxes 20 --base-ip 127.30.0.0 --dns-port $dns_port \
  --special "$special" >"$out/farm.json"
"$farm" truth "$out/farm.json" --count 5000 --invalid 10 >"$out/truth.csv"

farm_pid=""
cleanup() { [[ -n $farm_pid ]] && kill -TERM "$farm_pid" 2>/dev/null && wait "$farm_pid" 2>/dev/null || true; }
trap cleanup EXIT
trap 'echo; echo "interrupted"; exit 130' INT TERM
fifo=$(mktemp -u) && mkfifo "$fifo"
"$farm" run "$out/farm.json" --report "$out/farm-report.json" >"$fifo" 2>"$out/farm.log" &
farm_pid=$!
read -r -t 15 ready <"$fifo" || { echo "mxfarm did not start (see $out/farm.log)" >&2; exit 1; }
rm -f "$fifo"
echo "   farm: $ready"

# Our own farm: tools/policy/lab.toml lifts the rate limits of the polite built-in policy.
"$bin" verify --no-cache --dns 127.0.0.1:$dns_port --input "$out/truth.csv" --output "$out/results.jsonl" \
  --policy tools/policy/lab.toml \
  --concurrency 200 --domain-concurrency 4 --timeout-banner 5 --timeout-command 5 \
  --timeout-dns 1 --helo demo.mxprobe.test
kill -TERM "$farm_pid" && wait "$farm_pid" || true
farm_pid=""

python3 - "$out/truth.csv" "$out/results.jsonl" "$out/farm-report.json" <<'PY'
import collections, csv, json, sys
truth = {r["email"]: (r["verdict"], r["reason"]) for r in csv.DictReader(open(sys.argv[1]))}
recs = [json.loads(l) for l in open(sys.argv[2])]
right = sum(truth.get(r["email"]) == (r["verdict"], r["reason"]) for r in recs)
by = collections.Counter(r["verdict"] for r in recs)
rep = json.load(open(sys.argv[3]))["total"]
print(f"   {len(recs)} records: " + ", ".join(f"{k} {v}" for k, v in sorted(by.items())))
print(f"   agreement with the farm's truth: {right}/{len(recs)} ({100 * right / len(recs):.1f}%)")
print(f"   the farm saw {rep['connections']} connections, {rep['commands'].get('RCPT', 0)} RCPTs, "
      f"{rep['data_commands']} DATA commands")
PY
echo "   results: $out/results.jsonl  (schema: docs/usage.md, verdicts: docs/verdicts.md)"
