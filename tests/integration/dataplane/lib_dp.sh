# lib_dp.sh - helpers of the data-plane tests (sourced after ../lib.sh).
# Needs BUILD (the build directory) and T (the test's scratch directory).
EKW=$BUILD/worker/ekman-writer
EKT=$BUILD/worker/ekman-transfer
IMG=$BUILD/tests/bench/ek-bench-image
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}

# start_writer NAME [flags...]: an HTTPS writer on a free port of 127.0.0.1,
# certificates from $T/pki, disks under $T; sets W_PID and W_PORT.
start_writer() {
  local name=$1; shift
  rm -f "$T/$name.port"
  "$EKW" --listen 127.0.0.1:0 --port-file "$T/$name.port" --cert "$T/pki/server.pem" \
    --key "$T/pki/server.key" --ca "$T/pki/ca.pem" --allow-path "$T" "$@" \
    2>>"$T/$name.log" &
  W_PID=$!
  wait_for 20 test -s "$T/$name.port"
  W_PORT=$(cat "$T/$name.port")
}

# transfer STATS_FILE [flags...]: ekman-transfer over HTTPS to W_PORT.
transfer() {
  local stats=$1; shift
  "$EKT" --https "127.0.0.1:$W_PORT" --ca "$T/pki/ca.pem" --cert "$T/pki/client.pem" \
    --key "$T/pki/client.key" --stats "$stats" "$@" 2>>"$T/transfer.log"
}

# jget FILE KEY: a number from a stats JSON line
jget() { jq -r ".$2" "$1"; }

# stop_pid PID: TERM, then KILL after 5 s, and reap it (our own children only)
stop_pid() {
  local pid=$1 i
  kill "$pid" 2>/dev/null || return 0
  for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
