#!/usr/bin/env bash
# test_checksum.sh - a bit flipped in a chunk after its checksum was computed
# (ekman-transfer --test-corrupt-frame) is caught by the writer, never
# acknowledged nor written, and sent again; the target ends bit-identical.
# Over HTTPS and over the stdin/stdout transport (what SSH runs).
# Usage: test_checksum.sh BUILD_DIR SOURCE_DIR
set -u
BUILD=$1 SRC=$2
. "$SRC/tests/integration/lib.sh"
T=$(mktemp -d /tmp/ekman-dp-sum.XXXXXX)
. "$SRC/tests/integration/dataplane/lib_dp.sh"
W_PID=
cleanup() { [ -n "$W_PID" ] && stop_pid "$W_PID"; rm -rf "$T"; }
trap cleanup EXIT

"$EKT" --gen-pki "$T/pki"
head -c $((16 << 20)) /dev/urandom > "$T/src.img"
start_writer w
transfer "$T/s1.json" --source "$T/src.img" --target "$T/dst.img" --create --connections 1 \
  --test-corrupt-frame 3
check "the transfer succeeds" test "$(jget "$T/s1.json" complete)" = true
check "the writer refused one chunk for its checksum" test "$(jget "$T/s1.json" checksum_errors)" -eq 1
check "... and said so" grep -q "fails its checksum" "$T/w.log"
check "the chunk was sent again" test "$(jget "$T/s1.json" resent_bytes)" -ge 1048576
check "the target is bit-identical" cmp -s "$T/src.img" "$T/dst.img"
check "the bad chunk was never acknowledged (acknowledged = disk size)" \
  test $(( $(jget "$T/s1.json" data_bytes) + $(jget "$T/s1.json" zero_bytes) )) -eq $((16 << 20))

"$EKT" --source "$T/src.img" --target "$T/dst2.img" --create --connections 2 \
  --test-corrupt-frame 5 --stats "$T/s2.json" \
  --exec "$EKW --stdio --allow-path '$T'" 2>"$T/stdio.log"
check "over stdin/stdout too" test "$(jget "$T/s2.json" checksum_errors)" -eq 1
check "... bit-identical" cmp -s "$T/src.img" "$T/dst2.img"
stop_pid "$W_PID"; W_PID=
finish
