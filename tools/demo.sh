#!/usr/bin/env bash
# The main job: set up, build, and run mxprobe on a sample list. For now that is the offline
# syntax check (network verification arrives with the engine); results go to build/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc)" --target mxprobe
mkdir -p build/demo
out=build/demo/syntax.jsonl
build/release/engine/app/mxprobe syntax --progress --input tools/demo/sample.csv --output "$out"
echo
echo "results: $out"
echo "first records:"
head -n 5 "$out"
