#!/usr/bin/env bash
# Runs every test: set-up (idempotent), the format check (clang-format drift fails), the release
# build (g++, in build/ci-release) with the integration tests and fuzz corpora, then the ASan+UBSan
# build (clang) with every unit test, the fuzz corpora and the integration tests, then the
# ThreadSanitizer build of the store's tests (the writer thread; about 30 s CPU).
# The unit tests run once, under the sanitizers: compiling them with g++ too was 40% of the
# release build's time on two cores, and a unit test finds no more with -O2 than with ASan+UBSan.
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

echo "== release build (g++): integration tests and fuzz corpora (unit tests: the ASan stage)"
# A tree of its own (the release preset without tests/unit), so that a developer's build/release
# keeps its unit tests.
cmake --preset release -B build/ci-release -DMXP_UNIT_TESTS=OFF >/dev/null
cmake --build build/ci-release -j"$jobs"
ctest --test-dir build/ci-release -j"$tjobs" --timeout 600 --output-on-failure

echo "== ASan+UBSan build (clang 14) and every test"
cmake --preset asan >/dev/null
cmake --build --preset asan -j"$jobs"
ctest --preset asan -j"$tjobs" --timeout 600

echo "== ThreadSanitizer build (clang 14): the store writer's tests"
cmake --preset tsan >/dev/null
cmake --build --preset tsan -j"$jobs"
ctest --preset tsan -j"$jobs" --timeout 600
