# lib.sh - helpers shared by the shell integration tests (sourced, not run).
# Each test counts its checks and ends with the line "N passed, N failed".
set -u
EK_PASSED=0
EK_FAILED=0

ok() { EK_PASSED=$((EK_PASSED + 1)); echo "ok   - $*"; }
not_ok() { EK_FAILED=$((EK_FAILED + 1)); echo "FAIL - $*"; }
# check "description" command...: passes when the command exits 0
check() { local d=$1; shift; if "$@"; then ok "$d"; else not_ok "$d"; fi; }
finish() {
  echo "$EK_PASSED passed, $EK_FAILED failed"
  [ "$EK_FAILED" -eq 0 ]
}
# wait_for SECONDS command...: polls every 0.1 s
wait_for() {
  local limit=$1; shift
  local end=$((SECONDS + limit))
  while [ $SECONDS -lt $end ]; do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  "$@" >/dev/null 2>&1
}
# ek_curl ARGS...: curl to Ekman's API, which the stack serves over HTTPS: the
# certificate is checked against the stack's CA (EKMAN_CA_FILE, from
# `deploy/stack.sh env`). Exported, so `bash -c "ek_curl ..."` works too.
ek_curl() { curl --cacert "${EKMAN_CA_FILE:?ek_curl: EKMAN_CA_FILE is not set (eval deploy/stack.sh env first)}" "$@"; }
export -f ek_curl
