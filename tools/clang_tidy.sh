#!/usr/bin/env bash
# Runs clang-tidy 14 (the checks of .clang-tidy, warnings as errors) over the engine's sources
# with the compile commands of the release build (cmake --preset release first). Prints the
# findings; exit 1 when there is any.
# Usage: tools/clang_tidy.sh [REGEX]   (default: every engine/*.cpp; e.g. 'engine/proxy/')
# Not part of tools/test.sh: about 4 CPU minutes (docs/testing.md).
set -euo pipefail
cd "$(dirname "$0")/.."
db=build/release/compile_commands.json
[[ -f $db ]] || { echo "clang_tidy: no $db: run cmake --preset release first" >&2; exit 1; }
tidy=$(command -v clang-tidy-14 || command -v clang-tidy)
mapfile -t files < <(git ls-files -- 'engine/*.cpp' | grep -E -- "${1:-.}")
((${#files[@]})) || { echo "clang_tidy: no engine source matches '${1:-}'" >&2; exit 1; }
set +e
printf '%s\n' "${files[@]}" |
  xargs -P "$(nproc)" -n 1 "$tidy" -p=build/release --quiet 2>&1 |
  grep -Ev '^[0-9]+ warnings? generated\.$|^Suppressed [0-9]+ warnings|^Use -header-filter'
status=("${PIPESTATUS[@]}")
set -e
if ((status[1] != 0)); then  # xargs: 123 when a clang-tidy run failed (a finding)
  echo "clang_tidy: findings (clang-tidy exit ${status[1]}) in ${#files[@]} files checked" >&2
  exit 1
fi
echo "clang_tidy: ${#files[@]} files, no findings"
