#!/usr/bin/env bash
# Runs every test: set-up (idempotent), the format check (clang-format drift fails), the release
# build (g++) with all tests, then the ASan+UBSan build (clang, real libFuzzer targets) with the
# unit, fuzz-corpus and integration tests, then the ThreadSanitizer build of the store's tests
# (the writer thread; about 30 s CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
jobs=$(nproc)
# Tests run two per core: most integration tests spend their time waiting on servers, timers and
# retries, not computing (at -j2 on 2 cores the release suite used about half the CPU time it
# had), and each draws its addresses and ports from a band of its own (docs/testing.md).
tjobs=$((jobs * 2))

echo "== format check (clang-format --dry-run --Werror)"
bash tools/check_format.sh

echo "== release build (g++) and all tests"
cmake --preset release >/dev/null
cmake --build --preset release -j"$jobs"
ctest --preset release -j"$tjobs" --timeout 600

echo "== ASan+UBSan build (clang 14) and tests"
cmake --preset asan >/dev/null
cmake --build --preset asan -j"$jobs"
ctest --preset asan -j"$tjobs" --timeout 600

echo "== ThreadSanitizer build (clang 14): the store writer's tests"
cmake --preset tsan >/dev/null
cmake --build --preset tsan -j"$jobs"
ctest --preset tsan -j"$jobs" --timeout 600
