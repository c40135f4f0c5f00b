#!/usr/bin/env bash
# test_late_writer.sh - a worker VM may have its address before its writer
# listens (the guest agent reports it before cloud-init's final stage starts
# the writer): the transfer waits for a writer that comes late (connection
# refused meanwhile), and gives up with a clear error, after --wait-writer,
# on one that never comes.
# Usage: test_late_writer.sh BUILD_DIR SOURCE_DIR
set -u
BUILD=$1 SRC=$2
. "$SRC/tests/integration/lib.sh"
T=$(mktemp -d /tmp/ekman-dp-late.XXXXXX)
. "$SRC/tests/integration/dataplane/lib_dp.sh"
W_PID= X_PID=
cleanup() { [ -n "$W_PID" ] && stop_pid "$W_PID"; [ -n "$X_PID" ] && stop_pid "$X_PID"; rm -rf "$T"; }
trap cleanup EXIT

"$EKT" --gen-pki "$T/pki"
"$IMG" create "$T/src.img" 16M 5 > /dev/null
# a port nothing listens on yet (bound and released)
W_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

transfer "$T/s1.json" --source "$T/src.img" --target "$T/dst.img" --create --verify full &
X_PID=$!
sleep 8 # refused connections meanwhile: more than the 5 retries (6.2 s of back-off) cover
"$EKW" --listen "127.0.0.1:$W_PORT" --cert "$T/pki/server.pem" --key "$T/pki/server.key" \
  --ca "$T/pki/ca.pem" --allow-path "$T" 2>>"$T/w.log" &
W_PID=$!
wait "$X_PID"; rc=$?; X_PID=
check "a transfer started 8 s before its writer succeeds (rc $rc)" test "$rc" = 0
check "the late writer got a bit-identical copy" cmp -s "$T/src.img" "$T/dst.img"
check "it said it was waiting for the writer" grep -q "does not answer yet, waiting" "$T/transfer.log"
check "it did not give up after its 5 retries" test "$(grep -c 'cannot reach the writer (' "$T/transfer.log")" = 0
stop_pid "$W_PID"; W_PID=

start=$SECONDS
transfer "$T/s2.json" --source "$T/src.img" --target "$T/dst2.img" --create --wait-writer 3
rc=$?
took=$((SECONDS - start))
check "no writer at all: the transfer fails (rc $rc)" test "$rc" != 0
check "... within --wait-writer plus one back-off ($took s)" test "$took" -le 12
check "... saying what it tried" grep -q "cannot reach the writer (.* attempts in" "$T/transfer.log"
"$EKT" --wait-writer soon --source "$T/src.img" --target "$T/x.img" > "$T/bad.out" 2>&1
check "... naming the option" grep -q "wait-writer takes seconds" "$T/bad.out"
finish
