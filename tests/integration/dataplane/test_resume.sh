#!/usr/bin/env bash
# test_resume.sh - the writer is killed half-way through a transfer; the run
# fails with its state saved (acknowledged, flushed ranges); a second run
# with that state sends only what was not acknowledged, and the target ends
# bit-identical. FLUSHes sent back to back are all answered, in order.
# Usage: test_resume.sh BUILD_DIR SOURCE_DIR
set -u
BUILD=$1 SRC=$2
. "$SRC/tests/integration/lib.sh"
T=$(mktemp -d /tmp/ekman-dp-resume.XXXXXX)
. "$SRC/tests/integration/dataplane/lib_dp.sh"
W_PID= X_PID=
cleanup() {
  [ -n "$W_PID" ] && stop_pid "$W_PID"
  [ -n "$X_PID" ] && stop_pid "$X_PID"
  rm -rf "$T"
}
trap cleanup EXIT

"$EKT" --gen-pki "$T/pki"
"$IMG" create "$T/src.img" 64M 21 >/dev/null
SIZE=$((64 << 20))

start_writer w1
# 8 MiB/s: the copy takes several seconds; state saved every 4 MiB.
transfer "$T/run1.json" --source "$T/src.img" --target "$T/dst.img" --create \
  --bandwidth 8 --state "$T/state.json" --state-every 4 --retries 2 --timeout 5 &
X_PID=$!
# Kill the writer once a few states were saved.
wait_for 60 bash -c "test -s '$T/state.json' && test \$(jq '[.acked[][1]] | add // 0' '$T/state.json') -ge $((12 << 20))"
kill -9 "$W_PID"; wait "$W_PID" 2>/dev/null; W_PID=
wait "$X_PID"; rc=$?; X_PID=
check "the first run fails when its writer dies" test "$rc" -ne 0
check "the first run says the writer is gone" grep -q -i "writer\|connection" "$T/run1.json"
check "its state is saved and not complete" test "$(jq -r .complete "$T/state.json")" = false
ACKED=$(jq '[.acked[][1]] | add // 0' "$T/state.json")
check "part of the disk was acknowledged ($ACKED bytes)" \
  bash -c "[ $ACKED -gt 0 ] && [ $ACKED -lt $SIZE ]"
check "acknowledged ranges are merged (few intervals)" \
  test "$(jq '.acked | length' "$T/state.json")" -le 64

start_writer w2
transfer "$T/run2.json" --source "$T/src.img" --target "$T/dst.img" --state "$T/state.json"
check "the second run succeeds" test "$(jget "$T/run2.json" complete)" = true
SENT=$(( $(jget "$T/run2.json" data_bytes) + $(jget "$T/run2.json" zero_bytes) ))
check "it sends only the missing ranges ($SENT = $SIZE - $ACKED)" test "$SENT" -eq $((SIZE - ACKED))
check "it skips what was acknowledged" test "$(jget "$T/run2.json" resumed_bytes)" -eq "$ACKED"
check "the target is bit-identical" cmp -s "$T/src.img" "$T/dst.img"
check "the state is now complete" test "$(jq -r .complete "$T/state.json")" = true
check "the verification covered the whole disk" test "$(jget "$T/run2.json" verified_blocks)" -eq 64

# A complete state starts a new sync: everything is sent again (no hash map).
transfer "$T/run3.json" --source "$T/src.img" --target "$T/dst.img" --state "$T/state.json"
check "after a complete sync, a new run starts over" test "$(jget "$T/run3.json" resumed_bytes)" -eq 0
stop_pid "$W_PID"; W_PID=

# FLUSHes back to back on one session: each waits for the requests before
# it, never for those after it (two waiting flushes once waited for each
# other until the client's timeout), and their replies come in order.
check "FLUSHes back to back are all answered, in order" test \
  "$(python3 "$SRC/tests/integration/dataplane/flushes.py" "$EKW" "$T")" = \
  "81:1 83:2 83:3 83:4 83:5 83:6 83:7 83:8 83:9"
finish
