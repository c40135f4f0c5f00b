#!/usr/bin/env bash
# test_incremental.sh - incrementals without change tracking in the source:
# the raw reader keeps a hash map of the last sync (64 KiB blocks) and a new
# sync sends only blocks whose content changed (and zero ranges that used to
# hold data). Checks bytes on the wire against the bytes changed.
# Usage: test_incremental.sh BUILD_DIR SOURCE_DIR
set -u
BUILD=$1 SRC=$2
. "$SRC/tests/integration/lib.sh"
T=$(mktemp -d /tmp/ekman-dp-incr.XXXXXX)
. "$SRC/tests/integration/dataplane/lib_dp.sh"
W_PID=
cleanup() { [ -n "$W_PID" ] && stop_pid "$W_PID"; rm -rf "$T"; }
trap cleanup EXIT

"$EKT" --gen-pki "$T/pki"
"$IMG" create "$T/src.img" 64M 31 >/dev/null
start_writer w
transfer "$T/full.json" --source "$T/src.img" --target "$T/dst.img" --create --hash-map "$T/map"
check "the full sync succeeds" test "$(jget "$T/full.json" complete)" = true
check "it leaves a hash map" test -s "$T/map"

CHANGED=$("$IMG" change "$T/src.img" 2 77 | jq .changed_bytes)
fallocate -p -o $((40 << 20)) -l $((1 << 20)) "$T/src.img"
CHANGED=$((CHANGED + (1 << 20))) # at most: a MiB punched out (was data or zeros)
transfer "$T/incr.json" --source "$T/src.img" --target "$T/dst.img" --hash-map "$T/map"
check "the incremental sync succeeds" test "$(jget "$T/incr.json" complete)" = true
check "the target is bit-identical" cmp -s "$T/src.img" "$T/dst.img"
SENT=$(( $(jget "$T/incr.json" data_bytes) + $(jget "$T/incr.json" zero_bytes) ))
WIRE=$(jget "$T/incr.json" wire_out)
check "it sends at most what changed ($SENT <= $CHANGED)" test "$SENT" -le "$CHANGED"
check "most of the disk is unchanged" \
  test "$(jget "$T/incr.json" unchanged_bytes)" -ge $(( (64 << 20) * 9 / 10 ))
check "bytes on the wire <= 1.05 x changed + handshakes ($WIRE)" \
  test "$WIRE" -le $(( CHANGED * 105 / 100 + 65536 ))

transfer "$T/none.json" --source "$T/src.img" --target "$T/dst.img" --hash-map "$T/map"
check "with nothing changed, nothing is sent" \
  test $(( $(jget "$T/none.json" data_bytes) + $(jget "$T/none.json" zero_bytes) )) -eq 0
check "... and the target stays identical" cmp -s "$T/src.img" "$T/dst.img"
stop_pid "$W_PID"; W_PID=
finish
