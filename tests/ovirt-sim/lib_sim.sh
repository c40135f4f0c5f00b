# shellcheck shell=bash disable=SC2034,SC2120  # globals and arguments are for the callers
# lib_sim.sh - start, stop and talk to the simulated oVirt engine from bash
# tests (sourced, not run). Needs curl and jq.
#
#   sim_start DIR [ovirt-sim flags...]   start it with its state in DIR/state;
#                                        sets SIM_PID SIM_PORT SIM_URL SIM_CA,
#                                        SIM_IMAGEIO_PORT (the host's imageio
#                                        daemon) and SIM_PROXY_PORT (the
#                                        engine's imageio proxy)
#   sim_stop                             stop it (its worker VMs' writers too)
#   sim_token [USER] [PASSWORD]          prints a new SSO token
#   sim_api METHOD PATH [JSON] [curl args...]
#                                        (curl args start with '-')
#                                        calls PATH under /ovirt-engine/api with
#                                        SIM_TOKEN (renewed once on 401); prints
#                                        the body; SIM_STATUS gets the status
#   sim_call METHOD PATH [JSON] [curl args...]
#                                        the same without a subshell: sets
#                                        SIM_BODY and SIM_STATUS
#   sim_ctl METHOD PATH [JSON]           calls a /sim/ control endpoint
#   sim_wait_status SECONDS PATH JQ VALUE   polls until `jq -r JQ` of PATH's
#                                        body is VALUE
#
# SIM_USER/SIM_PASSWORD (default admin@internal/admin) are the credentials.
SIM_DIR_=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SIM_BIN=$SIM_DIR_/ovirt-sim
SIM_USER=${SIM_USER:-admin@internal}
SIM_PASSWORD=${SIM_PASSWORD:-admin}
SIM_TOKEN=
SIM_TOKEN_FILE=
SIM_STATUS=
SIM_PID=
SIM_IMAGEIO_PORT=
SIM_PROXY_PORT=

sim_start() {
  local dir=$1; shift
  mkdir -p "$dir"
  rm -f "$dir/sim.port" "$dir/sim.imageio.port" "$dir/sim.proxy.port"
  "$SIM_BIN" --listen 127.0.0.1:0 --port-file "$dir/sim.port" --state-dir "$dir/state" \
    --imageio-port-file "$dir/sim.imageio.port" --proxy-port-file "$dir/sim.proxy.port" \
    --users "$SIM_USER:$SIM_PASSWORD" "$@" >>"$dir/sim.log" 2>&1 &
  SIM_PID=$!
  local _
  for _ in $(seq 200); do
    [ -s "$dir/sim.port" ] && break
    kill -0 "$SIM_PID" 2>/dev/null || { echo "ovirt-sim exited; see $dir/sim.log" >&2; return 1; }
    sleep 0.1
  done
  [ -s "$dir/sim.port" ] || { echo "ovirt-sim did not start; see $dir/sim.log" >&2; return 1; }
  SIM_PORT=$(cat "$dir/sim.port")
  # both written before sim.port
  SIM_IMAGEIO_PORT=$(cat "$dir/sim.imageio.port")
  SIM_PROXY_PORT=$(cat "$dir/sim.proxy.port")
  SIM_URL=https://localhost:$SIM_PORT/ovirt-engine/api
  SIM_CA=$dir/state/ca.pem
  SIM_TOKEN_FILE=$dir/token
  rm -f "$SIM_TOKEN_FILE"
}

sim_stop() {
  [ -n "$SIM_PID" ] || return 0
  kill "$SIM_PID" 2>/dev/null
  local _
  for _ in $(seq 100); do kill -0 "$SIM_PID" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$SIM_PID" 2>/dev/null
  wait "$SIM_PID" 2>/dev/null
  SIM_PID=
  return 0
}

sim_token() {
  curl -s --cacert "$SIM_CA" -H 'Accept: application/json' \
    --data-urlencode grant_type=password --data-urlencode scope=ovirt-app-api \
    --data-urlencode "username=${1:-$SIM_USER}" --data-urlencode "password=${2:-$SIM_PASSWORD}" \
    "https://localhost:$SIM_PORT/ovirt-engine/sso/oauth/token" | jq -r '.access_token // empty'
}

sim_api_once_() {
  local method=$1 path=$2 data=$3; shift 3
  local args=(-s --cacert "$SIM_CA" -X "$method" -H 'Accept: application/json'
              -H "Authorization: Bearer $SIM_TOKEN" -w '\n%{http_code}')
  [ -n "$data" ] && args+=(-H 'Content-Type: application/json' --data-binary "$data")
  curl "${args[@]}" "$@" "$SIM_URL$path"
}

sim_renew_() {
  SIM_TOKEN=$(sim_token)
  [ -n "${SIM_TOKEN_FILE:-}" ] && (umask 077; printf '%s' "$SIM_TOKEN" >"$SIM_TOKEN_FILE")
  return 0
}

sim_api() {
  local method=$1 path=$2 data=
  shift 2
  # JSON never starts with '-': what does is already a curl argument
  if [ $# -gt 0 ] && [ "${1:0:1}" != - ]; then data=$1; shift; fi
  # The token is kept in a file too, so that calls in subshells share it.
  [ -s "${SIM_TOKEN_FILE:-}" ] && SIM_TOKEN=$(cat "$SIM_TOKEN_FILE")
  [ -n "$SIM_TOKEN" ] || sim_renew_
  local out
  out=$(sim_api_once_ "$method" "$path" "$data" "$@")
  if [ "${out##*$'\n'}" = 401 ]; then
    sim_renew_
    out=$(sim_api_once_ "$method" "$path" "$data" "$@")
  fi
  SIM_STATUS=${out##*$'\n'}
  printf '%s\n' "${out%$'\n'*}"
}

sim_call() {
  local f
  f=$(mktemp)
  sim_api "$@" >"$f"
  SIM_BODY=$(cat "$f")
  rm -f "$f"
}

sim_ctl() {
  local args=(-s --cacert "$SIM_CA" -X "$1")
  [ -n "${3:-}" ] && args+=(-H 'Content-Type: application/json' --data-binary "$3")
  curl "${args[@]}" "https://localhost:$SIM_PORT$2"
}

sim_wait_status() {
  local limit=$1 path=$2 q=$3 want=$4
  local end=$((SECONDS + limit))
  while [ $SECONDS -le $end ]; do
    [ "$(sim_api GET "$path" | jq -r "$q")" = "$want" ] && return 0
    sleep 0.2
  done
  return 1
}
