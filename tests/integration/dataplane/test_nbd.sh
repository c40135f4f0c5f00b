#!/usr/bin/env bash
# test_nbd.sh - an NBD export as the source (the way the libvirt provider
# reads a backup job): nbdkit serves the image; holes and zeros come from
# base:allocation and are sent as zero ranges. Exits 77 without nbdkit.
# Usage: test_nbd.sh BUILD_DIR SOURCE_DIR
set -u
BUILD=$1 SRC=$2
. "$SRC/tests/integration/lib.sh"
command -v nbdkit >/dev/null || { echo "nbdkit not installed: skipped"; exit 77; }
T=$(mktemp -d /tmp/ekman-dp-nbd.XXXXXX)
. "$SRC/tests/integration/dataplane/lib_dp.sh"
NBD_PID=
cleanup() { [ -n "$NBD_PID" ] && stop_pid "$NBD_PID"; rm -rf "$T"; }
trap cleanup EXIT

"$IMG" create "$T/src.img" 32M 51 > "$T/layout.json"
nbdkit -f -r -U "$T/nbd.sock" file "$T/src.img" &
NBD_PID=$!
wait_for 20 test -S "$T/nbd.sock"
"$EKT" --source "nbd+unix:///?socket=$T/nbd.sock" --target "$T/dst.img" --create \
  --stats "$T/s1.json" --exec "$EKW --stdio --allow-path $T" 2>"$T/t.log"
check "the transfer from NBD succeeds" test "$(jget "$T/s1.json" complete)" = true
check "the target is bit-identical" cmp -s "$T/src.img" "$T/dst.img"
check "holes were sent as zero ranges" \
  test "$(jget "$T/s1.json" zero_bytes)" -ge "$(jq .hole "$T/layout.json")"
check "holes were not read" \
  test "$(jget "$T/s1.json" read_bytes)" -le $(( (32 << 20) - $(jq .hole "$T/layout.json") + (4 << 20) ))
stop_pid "$NBD_PID"; NBD_PID=
finish
