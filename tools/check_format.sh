#!/usr/bin/env bash
# Fails when a C++ file of the repository drifts from .clang-format (clang-format 14, as
# tools/setup.sh installs it). Lists the files that drift; `clang-format -i FILE` fixes one.
# Usage: tools/check_format.sh [FILE...]   (default: every tracked C++ file outside third_party/)
set -euo pipefail
cd "$(dirname "$0")/.."
if (($#)); then
  files=("$@")
elif git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  mapfile -t files < <(git ls-files -- '*.cpp' '*.hpp' '*.h' '*.cc' ':!:third_party/*')
else
  mapfile -t files < <(find admin-wasm bench engine tests tools -name node_modules -prune -o \
    -type f \( -name '*.cpp' -o -name '*.hpp' -o -name '*.h' -o -name '*.cc' \) -print | sort)
fi
((${#files[@]})) || { echo "check_format: no C++ files found" >&2; exit 1; }
# One clang-format process for every file (a process per file costs a minute on a busy machine).
out=$(clang-format --dry-run --Werror "${files[@]}" 2>&1) && rc=0 || rc=$?
mapfile -t bad < <(grep -oE '^[^:]+:[0-9]+:[0-9]+: error:' <<<"$out" | cut -d: -f1 | sort -u)
if ((rc != 0)) && ((${#bad[@]} == 0)); then
  echo "check_format: clang-format failed (exit $rc):" >&2
  echo "$out" | tail -20 >&2
  exit 1
fi
if ((${#bad[@]})); then
  echo "check_format: ${#bad[@]} of ${#files[@]} C++ files drift from .clang-format:" >&2
  printf '  %s\n' "${bad[@]}" >&2
  echo "$out" | head -40 >&2
  echo "fix with: clang-format -i ${bad[*]}" >&2
  exit 1
fi
echo "check_format: ${#files[@]} C++ files match .clang-format"
