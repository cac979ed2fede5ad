#!/usr/bin/env bash
# `mxprobe syntax` on a 1,000,000-line list, file to file, as a user runs it. Prints lines/s
# (wall clock) and CPU time, with `wc -l` over the same file as a floor for reading it.
set -euo pipefail
bin=${1:?usage: syntax_throughput.sh MXPROBE_BIN [WORKDIR]}
work=${2:-$(mktemp -d)}
mkdir -p "$work"
list=$work/list-1m.txt
if [[ ! -s $list ]]; then
  samples=(john.smith@example.com Jane.Doe+news@Sub.Example.ORG info@company.example not-an-address
           '"quoted name"@example.net' user@bücher.example a@b x..y@example.com someone@gmail.com)
  for ((i = 0; i < 1000000; i += 9)); do printf '%s\n' "${samples[@]}"; done | head -n 1000000 > "$list"
fi
lines=$(wc -l < "$list")
now() { date +%s.%N; }
t0=$(now); wc -l "$list" >/dev/null; t1=$(now)
/usr/bin/time -f '%U %S %M' -o "$work/time.txt" "$bin" syntax --no-progress --input "$list" --output "$work/out.jsonl"
t2=$(now)
read -r user sys rss < "$work/time.txt"
out=$(wc -l < "$work/out.jsonl")
[[ $out == "$lines" ]] || { echo "FAIL: $lines lines in, $out records out" >&2; exit 1; }
awk -v n="$lines" -v t0="$t0" -v t1="$t1" -v t2="$t2" -v u="$user" -v s="$sys" -v rss="$rss" 'BEGIN {
  w = t2 - t1; wc = t1 - t0
  printf "mxprobe syntax: %d lines in %.3f s wall = %.2f M lines/s; CPU %.3f s (%.0f ns/line); peak RSS %d KiB\n", n, w, n / w / 1e6, u + s, (u + s) * 1e9 / n, rss
  printf "reference wc -l on the same file: %.3f s (%.0fx faster than mxprobe syntax)\n", wc, w / wc
}'
