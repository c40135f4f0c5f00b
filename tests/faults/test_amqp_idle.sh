#!/usr/bin/env bash
# test_amqp_idle.sh - a connection that sat idle longer than two heartbeat
# intervals (when RabbitMQ drops a client it hears nothing from) still
# publishes at the first try (issue #18 item 4): one that only publishes (it
# is replaced before use), and one that consumes (kept alive by
# ek_amqp_service). A 1 s heartbeat and 5 s of idleness stand for the
# 30 s / 70 s of the issue.
# Usage: test_amqp_idle.sh BUILD_DIR SOURCE_DIR STACK_DIR
set -u
. "$2/tests/integration/lib.sh"
BUILD=$1 SRC=$2 STACK=$3
eval "$("$SRC/deploy/stack.sh" env "$STACK")"
TMP=$(mktemp -d /tmp/ekman-fault-idle.XXXXXX)
Q=ekman.faults.idle$RANDOM
cleanup() { eval "$EKMAN_RABBITMQCTL -q delete_queue -p ekman $Q" >/dev/null 2>&1
            eval "$EKMAN_RABBITMQCTL -q delete_queue -p ekman $Q.dead" >/dev/null 2>&1; rm -rf "$TMP"; }
trap cleanup EXIT
"$BUILD/tests/faults/ek-fault-amqp-idle" --config "$EKMAN_CONFIG" "$Q" 1 5 > "$TMP/out" 2>&1
rc=$?
cat "$TMP/out"
check "the broker agreed to a 1 s heartbeat" grep -q "negotiated heartbeat: 1 s" "$TMP/out"
check "a publish after 5 s idle (> 2 heartbeats) succeeds at once" test $rc = 0
check "no socket error" bash -c "! grep -qi 'socket error' '$TMP/out'"
n=$(eval "$EKMAN_RABBITMQCTL -q list_queues -p ekman name messages" | awk -v q="$Q" '$1 == q {print $2}')
check "a consuming connection kept alive by ek_amqp_service publishes after 5 s too" grep -q "all three publishes confirmed" "$TMP/out"
check "the three messages are in the queue" test "${n:-0}" = 3
finish
