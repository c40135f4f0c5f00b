#!/usr/bin/env bash
# check_format.sh - every C source and header git tracks is as clang-format
# (.clang-format at the top of the tree) writes it. On failure it lists the
# files and the command that fixes them.
# Usage: check_format.sh SOURCE_DIR
set -euo pipefail
SRC=${1:?usage: check_format.sh SOURCE_DIR}
cd "$SRC"
command -v clang-format >/dev/null || { echo "clang-format is missing: apt-get install clang-format (deploy/install-deps.sh does)"; exit 1; }
if git rev-parse --git-dir >/dev/null 2>&1; then
  mapfile -t files < <(git ls-files '*.c' '*.h')
else # an exported tree (git archive): every C file under the project's directories
  mapfile -t files < <(find client common conductor proto scheduler tests worker -name '*.[ch]' | sort)
fi
[ "${#files[@]}" -gt 0 ] || { echo "no C files found under $SRC"; exit 1; }
bad=()
if ! clang-format --dry-run --Werror "${files[@]}" >/dev/null 2>&1; then
  for f in "${files[@]}"; do
    clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
  done
  [ "${#bad[@]}" -gt 0 ] || { echo "clang-format failed:"; clang-format --dry-run --Werror "${files[@]}" 2>&1 | head; exit 1; }
fi
if [ "${#bad[@]}" -gt 0 ]; then
  echo "${#bad[@]} of ${#files[@]} files are not formatted as .clang-format says:"
  printf '  %s\n' "${bad[@]}"
  echo "fix: clang-format -i ${bad[*]}"
  exit 1
fi
echo "all ${#files[@]} C files are formatted ($(clang-format --version | head -1))"
