#!/usr/bin/env bash
# run-all.sh - installs what is needed, builds Ekman twice (Release, and Debug
# with AddressSanitizer + UndefinedBehaviorSanitizer) and runs every test:
# the unit tests in both builds, then unit and integration tests (against a real
# PostgreSQL, RabbitMQ, libvirtd and sshd brought up by deploy/stack.sh) in the
# sanitizer build. Exits non-zero when anything fails.
#   tests/run-all.sh [--no-install] [-R REGEX]   (REGEX selects ctest tests)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
INSTALL=1
CTEST_ARGS=()
while [ $# -gt 0 ]; do
  case $1 in
    --no-install) INSTALL=0 ;;
    -R) CTEST_ARGS+=(-R "$2"); shift ;;
    *) echo "run-all.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
  shift
done
JOBS=$(nproc)
step() { printf '\n==> %s\n' "$*"; }

if [ "$INSTALL" = 1 ]; then
  step "installing dependencies"
  "$ROOT/deploy/install-deps.sh"
fi

# ASan's leak checker reports at exit; abort on the first UBSan finding.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

step "building Release (build/)"
cmake -S "$ROOT" -B "$ROOT/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$ROOT/build" -j "$JOBS"

step "building Debug + ASan + UBSan (build-asan/)"
cmake -S "$ROOT" -B "$ROOT/build-asan" -DCMAKE_BUILD_TYPE=Debug -DEKMAN_SANITIZE=ON >/dev/null
cmake --build "$ROOT/build-asan" -j "$JOBS"

step "unit tests, Release build"
(cd "$ROOT/build" && ctest --output-on-failure -L unit "${CTEST_ARGS[@]}")

step "all tests, sanitizer build (real services)"
(cd "$ROOT/build-asan" && ctest --output-on-failure "${CTEST_ARGS[@]}")
