#!/usr/bin/env bash
# test_daemons.sh - every binary starts against the real local stack, reads its
# configuration, logs (without secrets), answers where it should, and exits 0 on
# SIGTERM. Usage: test_daemons.sh BUILD_DIR SOURCE_DIR STACK_DIR
set -u
. "$(dirname "$0")/lib.sh"
BUILD=$1 SRC=$2 STACK=$3
eval "$("$SRC/deploy/stack.sh" env "$STACK")"
TMP=$(mktemp -d /tmp/ekman-daemons.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done; rm -rf "$TMP"; }
trap cleanup EXIT

start() { # start NAME BINARY [ARGS...]: runs in the background, log in $TMP/NAME.log
  local name=$1; shift
  "$@" > "$TMP/$name.log" 2>&1 &
  PIDS+=($!)
  eval "PID_$name=$!"
}
stop_and_check() { # stop_and_check NAME: SIGTERM, exit 0 within 15 s, "stopped" logged
  local name=$1 pid
  eval "pid=\$PID_$name"
  kill -TERM "$pid"
  local end=$((SECONDS + 15))
  while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then not_ok "$name exits within 15 s of SIGTERM"; return; fi
  wait "$pid"; local rc=$?
  check "$name exits 0 on SIGTERM (got $rc)" test $rc -eq 0
  check "$name logs that it stopped" grep -q "stopped" "$TMP/$name.log"
}

start conductor "$BUILD/conductor/ekman-conductor" --config "$EKMAN_CONFIG"
start scheduler "$BUILD/scheduler/ekman-scheduler" --config "$EKMAN_CONFIG"
start worker "$BUILD/worker/ekman-worker" --config "$EKMAN_CONFIG"
# the writer serves HTTPS with mutual TLS: a throwaway CA and server certificate
( cd "$TMP" && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout ca.key -out ca.pem -subj /CN=test-ca -days 1 &&
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout w.key -out w.csr \
    -subj /CN=writer &&
  openssl x509 -req -in w.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out w.pem -days 1 ) \
  > "$TMP/openssl.log" 2>&1
start writer "$BUILD/worker/ekman-writer" --listen 127.0.0.1:0 --cert "$TMP/w.pem" \
  --key "$TMP/w.key" --ca "$TMP/ca.pem" --allow-path "$TMP" --port-file "$TMP/writer.port"

check "the API answers /healthz" wait_for 30 "$BUILD/client/ekman" status --url "$EKMAN_URL"
out=$("$BUILD/client/ekman" status --url "$EKMAN_URL")
check "ekman status reports ok" grep -q ": ok" <<<"$out"
code=$(ek_curl -s -o "$TMP/404.json" -w '%{http_code}' "$EKMAN_URL/v1/nope")
check "unknown route is 404" test "$code" = 404
check "404 body is a JSON error naming the route" \
  test "$(jq -r .error.message "$TMP/404.json")" = "no route for GET /v1/nope"
code=$(ek_curl -s -o /dev/null -w '%{http_code}' -X POST "$EKMAN_URL/healthz")
check "wrong method is 405" test "$code" = 405
# before authentication only a small body is read (16 KiB: a login)
code=$(ek_curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
  --data-binary @<(head -c 2000000 /dev/zero | tr '\0' a) "$EKMAN_URL/v1/auth/tokens")
check "an oversized body is 413" test "$code" = 413
# the stack's API is HTTPS (deploy/stack.sh: [api] tls_cert_file/tls_key_file)
check "EKMAN_URL is https and the certificate checks against EKMAN_CA_FILE" \
  bash -c "[[ '$EKMAN_URL' == https://* ]] && curl -sf -o /dev/null --cacert '$EKMAN_CA_FILE' '$EKMAN_URL/healthz'"
check "plain HTTP to the API gets no answer" \
  bash -c "! curl -s -m 5 -o /dev/null -w '%{http_code}' 'http://127.0.0.1:$EKMAN_API_PORT/healthz' | grep -q 200"

check "conductor logged its start with the API address" wait_for 10 grep -q "conductor started api=https://127.0.0.1:$EKMAN_API_PORT" "$TMP/conductor.log"
check "scheduler logged its start" wait_for 10 grep -q "scheduler started" "$TMP/scheduler.log"
check "worker logged its start" wait_for 10 grep -q "worker started host=" "$TMP/worker.log"
check "writer logged where it listens" wait_for 10 grep -q "writer listening" "$TMP/writer.log"
queues=$(eval "$EKMAN_RABBITMQCTL -q list_queues -p ekman name durable" 2>/dev/null)
check "queue ekman.conductor declared durable" grep -Eq '^ekman\.conductor\s+true' <<<"$queues"
check "queue ekman.scheduler declared durable" grep -Eq '^ekman\.scheduler\s+true' <<<"$queues"
check "queue ekman.worker declared durable" grep -Eq '^ekman\.worker\s+true' <<<"$queues"
check "the worker's own queue declared" grep -Eq "^ekman\.worker\.$(hostname)\s+true" <<<"$queues"

# the worker first: the scheduler records that it stopped
for name in worker scheduler conductor writer; do stop_and_check "$name"; done

# a wrong database password: exit 1, a message naming the database, no secret
sed "s#postgresql://ekman:[^@]*@#postgresql://ekman:Wrong-Pass-42@#" "$EKMAN_CONFIG" > "$TMP/wrong.conf"
"$BUILD/conductor/ekman-conductor" --config "$TMP/wrong.conf" > "$TMP/wrong.log" 2>&1
rc=$?
check "wrong database password exits 1 (got $rc)" test $rc -eq 1
check "the error names the database and the problem" grep -q "could not connect to the database postgresql://ekman:\*\*\*@127.0.0.1:$EKMAN_PG_PORT/ekman: .*password authentication failed" "$TMP/wrong.log"
# a wrong broker password
sed -E "s#(amqps?://[^:]+):[^@]*@#\1:Wrong-Pass-43@#" "$EKMAN_CONFIG" > "$TMP/wrong-mq.conf"
"$BUILD/worker/ekman-worker" --config "$TMP/wrong-mq.conf" > "$TMP/wrong-mq.log" 2>&1
rc=$?
check "wrong broker password exits 1 (got $rc)" test $rc -eq 1
check "the error says the login failed" grep -q "broker login" "$TMP/wrong-mq.log"
# the API port taken: a clear message
start conductor2 "$BUILD/conductor/ekman-conductor" --config "$EKMAN_CONFIG"
wait_for 30 "$BUILD/client/ekman" status --url "$EKMAN_URL" >/dev/null
"$BUILD/conductor/ekman-conductor" --config "$EKMAN_CONFIG" > "$TMP/busy.log" 2>&1
check "a second conductor on the same port fails clearly" grep -q "could not listen on 127.0.0.1:$EKMAN_API_PORT" "$TMP/busy.log"
stop_and_check conductor2

# no log line of any process holds a password of the stack
for secret in "$STACK/secrets/pg_password" "$STACK/secrets"/amqp_*password; do
  check "no log contains $(basename "$secret")" bash -c "! grep -qF -- \"\$(cat '$secret')\" '$TMP'/*.log"
done
check "no log contains the API's private key" \
  bash -c "! grep -qF -- \"\$(sed -n 2p '$STACK/api/tls/server.key')\" '$TMP'/*.log && ! grep -q 'PRIVATE KEY' '$TMP'/*.log"
finish
