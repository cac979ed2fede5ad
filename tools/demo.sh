#!/usr/bin/env bash
# The main job: set up, build, then (1) check the syntax of a sample CSV offline and (2) start
# mxfarm, a simulated farm of mail servers on 127.0.0.0/8 with a real DNS server, and
# `mxprobe serve` with the operator console, run a bulk job of 5,000 addresses over the farm
# through the HTTP API, download its results and score them against the farm's ground truth.
# Results go to build/demo/. Interactive (stdin a terminal): the console stays up until Ctrl-C;
# with --once (or without a terminal) it stops once the score is printed.
#   bash tools/demo.sh [--once]        env MXP_DEMO_LISTEN=127.0.0.1:8025 (default)
set -euo pipefail
cd "$(dirname "$0")/.."
once=0
[[ ${1:-} == --once || ! -t 0 ]] && once=1
listen=${MXP_DEMO_LISTEN:-127.0.0.1:8025}
bash tools/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc)" --target mxprobe mxfarm console
bin=build/release/engine/app/mxprobe
farm=build/release/tools/mxfarm/mxfarm
console=build/release/admin-wasm/dist
out=build/demo
mkdir -p "$out"

echo "== 1. syntax check of tools/demo/sample.csv (offline)"
"$bin" syntax --progress --input tools/demo/sample.csv --output "$out/syntax.jsonl"
echo "   results: $out/syntax.jsonl"

echo "== 2. a bulk job against a simulated mail-server farm, watched in the console"
special=styles,catchall,slow,blocked,blocked-banner,errlimit,rcptlimit,nopipelining,heloonly
special+=,drop-mail,reset-rcpt,garbage,endless,overlong,failover,aonly,nullmx,nomx,nxdomain,servfail
dns_port=5391
"$farm" gen --domains 200 --hosts 20 --mailboxes 20 --base-ip 127.30.0.0 --dns-port $dns_port \
  --special "$special" >"$out/farm.json"
"$farm" truth "$out/farm.json" --count 5000 --invalid 10 >"$out/truth.csv"

farm_pid="" serve_pid=""
stop() {
  [[ -n $serve_pid ]] && kill -TERM "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null
  [[ -n $farm_pid ]] && kill -TERM "$farm_pid" 2>/dev/null && wait "$farm_pid" 2>/dev/null
  serve_pid="" farm_pid=""
}
trap stop EXIT
trap 'echo; echo "   stopped"; exit 130' INT TERM
fifo=$(mktemp -u) && mkfifo "$fifo"
"$farm" run "$out/farm.json" --report "$out/farm-report.json" >"$fifo" 2>"$out/farm.log" &
farm_pid=$!
read -r -t 15 ready <"$fifo" || { echo "mxfarm did not start (see $out/farm.log)" >&2; exit 1; }
rm -f "$fifo"
echo "   farm: $ready"

# Our own farm: tools/policy/lab.toml lifts the rate limits of the polite built-in policy.
rm -rf "$out/serve-data"
"$bin" serve --listen "$listen" --console "$console" --data "$out/serve-data" --no-cache \
  --policy tools/policy/lab.toml --dns 127.0.0.1:$dns_port --helo demo.mxprobe.test \
  --timeout-banner 5 --timeout-command 5 --timeout-dns 1 2>"$out/serve.log" &
serve_pid=$!
url=""
for _ in $(seq 100); do
  url=$(grep -o 'listening on http://[^ ]*' "$out/serve.log" | head -n1 | cut -d' ' -f3) || true
  [[ -n $url ]] && break
  kill -0 "$serve_pid" 2>/dev/null || { cat "$out/serve.log" >&2; exit 1; }
  sleep 0.1
done
[[ -n $url ]] || { echo "mxprobe serve did not start (see $out/serve.log)" >&2; exit 1; }

job=$(curl -sS -H 'X-Mxprobe: 1' -X POST --data-binary @"$out/truth.csv" "${url}v1/jobs?format=csv" | jq -r .id)
echo "   console: $url   (open it in a browser)"
echo "   job $job: ${url}v1/jobs/$job; results will be in $out/results.jsonl"
last=""
while :; do
  state=$(curl -sS "${url}v1/jobs/$job" | jq -r '"\(.state) \(.done)/\(.records)"')
  [[ $state != "$last" && -t 1 ]] && printf '\r   %s      ' "$state"
  last=$state
  [[ $state == finished* || $state == cancelled* || $state == failed* ]] && break
  sleep 1
done
[[ -t 1 ]] && echo
curl -sS "${url}v1/jobs/$job/results" -o "$out/results.jsonl"
rm -f "$out/farm-report.json"
kill -USR1 "$farm_pid"  # the farm writes its report (atomically) and goes on
for _ in $(seq 100); do [[ -f $out/farm-report.json ]] && break; sleep 0.1; done

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
if ((once)); then
  exit 0
fi
echo "   the console stays up at $url  (Ctrl-C stops the server and the farm)"
wait "$serve_pid"
