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

# An incremental from a qcow2 dirty bitmap exported by qemu-nbd (what a
# libvirt backup job in pull mode offers as qemu:dirty-bitmap:backup-vda).
if command -v qemu-nbd >/dev/null && command -v qemu-io >/dev/null; then
  Q=(qemu-io -f qcow2)
  qemu-img create -q -f qcow2 "$T/disk.qcow2" 32M
  "${Q[@]}" -c 'write -P 0x11 0 8M' -c 'write -P 0x22 16M 4M' "$T/disk.qcow2" >/dev/null
  qemu-nbd -r -t -e 4 -f qcow2 -k "$T/q1.sock" "$T/disk.qcow2" &
  NBD_PID=$!
  wait_for 20 test -S "$T/q1.sock"
  "$EKT" --source "nbd+unix:///?socket=$T/q1.sock" --target "$T/q.img" --create \
    --stats "$T/q1.json" --exec "$EKW --stdio --allow-path $T" 2>>"$T/t.log"
  stop_pid "$NBD_PID"; NBD_PID=
  check "full copy of the qcow2 export" test "$(jget "$T/q1.json" complete)" = true
  qemu-img bitmap --add "$T/disk.qcow2" b0
  "${Q[@]}" -c 'write -P 0x33 1M 64k' -c 'write -z 16M 1M' -c 'write -P 0x44 30M 128k' \
    "$T/disk.qcow2" >/dev/null
  qemu-nbd -r -t -e 4 -f qcow2 -B b0 -k "$T/q2.sock" "$T/disk.qcow2" &
  NBD_PID=$!
  wait_for 20 test -S "$T/q2.sock"
  "$EKT" --source "nbd+unix:///?socket=$T/q2.sock" --dirty-bitmap qemu:dirty-bitmap:b0 \
    --target "$T/q.img" --stats "$T/q2.json" --exec "$EKW --stdio --allow-path $T" 2>>"$T/t.log"
  stop_pid "$NBD_PID"; NBD_PID=
  qemu-img convert -O raw "$T/disk.qcow2" "$T/now.raw"
  check "the incremental from the dirty bitmap succeeds" test "$(jget "$T/q2.json" complete)" = true
  check "... and the target equals the disk now" cmp -s "$T/now.raw" "$T/q.img"
  SENT=$(( $(jget "$T/q2.json" data_bytes) + $(jget "$T/q2.json" zero_bytes) ))
  check "only the dirty ranges were sent ($SENT bytes)" test "$SENT" -le $(( (64 + 1024 + 128) * 1024 ))
  check "the zeroed MiB went as a zero range" test "$(jget "$T/q2.json" zero_bytes)" -ge 1048576
  check "the rest was unchanged" test "$(jget "$T/q2.json" unchanged_bytes)" -ge $((30 << 20))
else
  echo "qemu-nbd/qemu-io not installed: dirty-bitmap case skipped"
fi
finish
