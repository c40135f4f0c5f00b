#!/usr/bin/env bash
# test_bus_security.sh - the stack's broker (issue #17, item 5): AMQPS only,
# the broker's certificate verified, one broker user per daemon role with
# permissions limited to what that role consumes and publishes.
#
# Usage: test_bus_security.sh BUILD_DIR SOURCE_DIR STACK_DIR
# Needs the running stack (ctest fixture "stack") and amqp-tools
# (amqp-consume, a librabbitmq client independent of Ekman's code).
set -uo pipefail
BUILD=$1 SRC=$2 STACK=$3
eval "$("$SRC/deploy/stack.sh" env "$STACK")"
TMP=$(mktemp -d /tmp/ek-bussec.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
FAILED=0
check() { # check DESCRIPTION CMD...
    local what=$1
    shift
    if "$@"; then echo "ok - $what"; else echo "FAIL - $what"; FAILED=1; fi
}
not_ok() { ! "$@" >/dev/null 2>&1; }
command -v amqp-consume >/dev/null || { echo "amqp-tools missing (apt-get install amqp-tools)"; exit 1; }
SEND=$BUILD/tests/integration/tools/ek-amqp-send
CA=$EKMAN_AMQP_CA
url_of() { sed -n "s/^$1 = //p" "$EKMAN_CONFIG"; }
WORKER_URL=$(url_of worker_transport_url)
SCHED_URL=$(url_of scheduler_transport_url)
check "the stack's ekman.conf uses amqps:// with the stack's CA for every role" \
    bash -c "[ \$(grep -c '_url = amqps://.*?cacertfile=$CA\$' '$EKMAN_CONFIG') = 4 ]"
# conf_with URL: a configuration whose transport_url is URL (ek-amqp-send
# has no role of its own: it uses transport_url).
conf_with() {
    local f=$TMP/c$RANDOM.conf
    grep -v '_url = ' "$EKMAN_CONFIG" | sed "s#^\[messaging\]#[messaging]\ntransport_url = $1#" >"$f"
    printf '%s\n' "$f"
}
# creds URL -> "user password"
user_of() { sed -E 's#^amqps://([^:]+):.*#\1#' <<<"$1"; }
pass_of() { sed -E 's#^amqps://[^:]+:([^@]+)@.*#\1#' <<<"$1"; }

# --- TLS only ------------------------------------------------------------------------------
check "no plain AMQP listener: a plain AMQP client gets no Connection.Start" python3 - "$EKMAN_AMQP_PORT" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"AMQP\x00\x00\x09\x01")
try:
    data = s.recv(7)
except (socket.timeout, ConnectionResetError):
    data = b""
# an AMQP broker answers with a method frame (type 1) on channel 0
sys.exit(1 if data[:1] == b"\x01" else 0)
PY
plain=$(conf_with "amqp://$(user_of "$WORKER_URL"):$(pass_of "$WORKER_URL")@localhost:$EKMAN_AMQP_PORT/ekman")
check "Ekman over plain amqp:// to the TLS port fails" not_ok "$SEND" --config "$plain" ekman.conductor '{}'

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$TMP/other.key" \
    -subj /CN=other-ca -days 1 -out "$TMP/other-ca.pem" 2>/dev/null
wrongca=$(conf_with "${WORKER_URL%%\?*}?cacertfile=$TMP/other-ca.pem")
"$SEND" --config "$wrongca" ekman.conductor '{}' >"$TMP/wrongca.log" 2>&1
rc=$?
check "a broker certificate from another CA is refused (rc $rc)" test $rc -ne 0
check "the error names cacertfile of [messaging] transport_url" \
    grep -q "cacertfile=$TMP/other-ca.pem of \[messaging\] transport_url" "$TMP/wrongca.log"

# --- authentication ----------------------------------------------------------------------
unauth() { # unauth USER PASSWORD: consuming must fail at login
    timeout 10 amqp-consume --ssl --cacert="$CA" --url="amqps://$1:$2@localhost:$EKMAN_AMQP_PORT/ekman" \
        -q ekman.worker -c 1 cat >"$TMP/unauth.log" 2>&1
    local rc=$?
    [[ $rc -ne 0 && $rc -ne 124 ]] && grep -qi "ACCESS_REFUSED\|login" "$TMP/unauth.log"
}
check "a wrong password is refused at login" unauth ekman-worker wrong-password
check "the default guest user does not exist" unauth guest guest
check "an unknown user is refused at login" unauth nobody nothing
badpw=$(conf_with "$(sed -E 's#^(amqps://[^:]+):[^@]+@#\1:Wrong-Pass-9@#' <<<"$WORKER_URL")")
"$SEND" --config "$badpw" ekman.conductor '{"type":"task.completed"}' >"$TMP/badpw.log" 2>&1
check "Ekman with a wrong broker password: 'broker login' error" grep -q "broker login" "$TMP/badpw.log"

# --- per-role permissions ------------------------------------------------------------------
as_worker=$(conf_with "$WORKER_URL")
"$SEND" --config "$as_worker" ekman.worker "{\"type\":\"task.dispatch\",\"id\":\"bussec-$$\"}" >"$TMP/w2w.log" 2>&1
check "the worker user cannot send tasks to workers (x.ekman.worker is the conductor's)" \
    grep -q "may not publish to exchange 'x.ekman.worker'" "$TMP/w2w.log"
"$SEND" --config "$as_worker" "ekman.worker.$(hostname)" '{}' >"$TMP/w2own.log" 2>&1
check "... nor to one worker's own queue" grep -q "may not publish to exchange 'x.ekman.worker'" "$TMP/w2own.log"
as_sched=$(conf_with "$SCHED_URL")
"$SEND" --config "$as_sched" ekman.conductor '{}' >"$TMP/s2c.log" 2>&1
check "the scheduler user cannot send to the conductor" \
    grep -q "may not publish to exchange 'x.ekman.conductor'" "$TMP/s2c.log"
consume_as() { # consume_as URL QUEUE: must be refused
    timeout 10 amqp-consume --ssl --cacert="$CA" --url="${1%%\?*}" -q "$2" -c 1 cat >"$TMP/consume.log" 2>&1
    local rc=$?
    [[ $rc -ne 0 && $rc -ne 124 ]] && grep -q "ACCESS_REFUSED" "$TMP/consume.log"
}
check "the worker user cannot consume the conductor's queue" consume_as "$WORKER_URL" ekman.conductor
check "the worker user cannot consume the scheduler's queue" consume_as "$WORKER_URL" ekman.scheduler
check "the scheduler user cannot consume the workers' queue" consume_as "$SCHED_URL" ekman.worker
# the same client where the role may read: not refused (a message or a wait)
timeout 3 amqp-consume --ssl --cacert="$CA" --url="${SCHED_URL%%\?*}" -q ekman.scheduler -c 1 cat \
    >"$TMP/own.log" 2>&1
rc=$?
check "control: the scheduler user may consume its own queue (rc $rc)" \
    bash -c "[ $rc -eq 124 -o $rc -eq 0 ] && ! grep -q ACCESS_REFUSED '$TMP/own.log'"

# --- who sent it: RabbitMQ validates user_id, consumers check the role -----------------------
# a conductor of its own; reports it receives must come from the workers' broker user
CPORT=$((EKMAN_API_PORT + 50))
sed "s/^port = .*/port = $CPORT/" "$EKMAN_CONFIG" >"$TMP/c.conf"
"$BUILD/conductor/ekman-conductor" --config "$TMP/c.conf" >"$TMP/c.log" 2>&1 &
CPID=$!
trap 'kill $CPID 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"' EXIT
for _ in $(seq 100); do ek_curl -sf "https://127.0.0.1:$CPORT/healthz" >/dev/null && break; sleep 0.2; done
report() { # report ID: a well-formed task.completed for a task that does not exist
    printf '{"type":"task.completed","version":"1.0","id":"%s","body":{"task_id":"%s","attempt_id":"%s","result":{}}}' \
        "$1" "$(cat /proc/sys/kernel/random/uuid)" "$(cat /proc/sys/kernel/random/uuid)"
}
as_tools=$(conf_with "$(url_of transport_url)")
"$SEND" --config "$as_tools" ekman.conductor "$(report tools-$$)" >"$TMP/t2c.log" 2>&1
check "the tools' broker user may publish to the conductor's queue (rc $?)" true
ok_dl() { grep -q "dead-lettering a message no worker sent.*broker_user=$(user_of "$(url_of transport_url)")" "$TMP/c.log"; }
for _ in $(seq 50); do ok_dl && break; sleep 0.2; done
check "... but the conductor dead-letters a report no worker sent, naming the broker user" ok_dl
"$SEND" --config "$as_worker" ekman.conductor "$(report worker-$$)" >"$TMP/wr2c.log" 2>&1
sleep 2
check "control: a report from the workers' broker user is not dead-lettered for its sender" \
    bash -c "[ \$(grep -c 'dead-lettering a message no worker sent' '$TMP/c.log') = 1 ]"

# no secret of the stack in what this test printed
for f in amqp_password amqp_worker_password amqp_scheduler_password; do
    check "no log holds $f" bash -c "! grep -rqF -- \"\$(cat '$STACK/secrets/$f')\" '$TMP'/*.log"
done
exit $FAILED
