#!/usr/bin/env bash
# test_verify.sh - what the end-of-disk check proves in each writer mode.
# A block is corrupted on the target behind the writer's back after it was
# written and before the check (a slow transfer: the block is rewritten with
# dd as soon as it is on the target).
#  - --verify-readback: the writer reads every block back from the disk;
#    the corruption is caught, the block sent again, the disk ends identical.
#  - default: blocks the writer wrote as one verified chunk are answered
#    from its record of what it wrote; a change made by someone else after
#    that is not seen (this is what --verify-readback is for), which shows
#    that the record, not a read-back, answered.
#  - a new writer process (nothing recorded) reads back, and a full check
#    then catches the corruption left by the default mode.
# Usage: test_verify.sh BUILD_DIR SOURCE_DIR
set -u
BUILD=$1 SRC=$2
. "$SRC/tests/integration/lib.sh"
T=$(mktemp -d /var/tmp/ekman-dp-verify.XXXXXX)
. "$SRC/tests/integration/dataplane/lib_dp.sh"
W_PID=
X_PID=
cleanup() {
  [ -n "$X_PID" ] && stop_pid "$X_PID"
  [ -n "$W_PID" ] && stop_pid "$W_PID"
  rm -rf "$T"
}
trap cleanup EXIT

wsum() { grep -o "$2=\"\?[0-9]*" "$T/$1.log" | grep -o '[0-9]*$' | awk '{ s += $1 } END { print s + 0 }'; }

"$EKT" --gen-pki "$T/pki"
head -c $((8 << 20)) /dev/urandom > "$T/src.img"

# corrupt_behind DST: waits until the first MiB of DST is the source's (the
# block was written), then flips a byte in it with a write of its own.
corrupt_behind() {
  local dst=$1 i
  for i in $(seq 600); do
    cmp -s -n 1048576 "$T/src.img" "$dst" 2>/dev/null && break
    sleep 0.02
  done
  printf '\xa5' | dd of="$dst" bs=1 seek=4242 conv=notrunc status=none
  sync "$dst"
}

# slow_copy NAME DST 'WRITER FLAGS' [transfer flags]: a transfer at 2 MiB/s,
# a byte of its first block corrupted on the target while it runs.
slow_copy() {
  local name=$1 dst=$2 wflags=$3; shift 3
  # shellcheck disable=SC2086
  start_writer "$name" --log-level info $wflags
  transfer "$T/$name.json" --source "$T/src.img" --target "$dst" --create --connections 1 \
    --bandwidth 2 "$@" &
  X_PID=$!
  corrupt_behind "$dst"
  wait "$X_PID"; X_PID=
  stop_pid "$W_PID"; W_PID=
}

slow_copy readback "$T/dst1.img" --verify-readback
check "read-back: the transfer succeeds" test "$(jget "$T/readback.json" complete)" = true
check "read-back: the corrupted block was found" test "$(jget "$T/readback.json" verify_mismatches)" -ge 1
check "read-back: ... and sent again" test "$(jget "$T/readback.json" resent_bytes)" -ge 1048576
check "read-back: the target is bit-identical" cmp -s "$T/src.img" "$T/dst1.img"
check "read-back: no block was answered from the record" test "$(wsum readback hashed_from_record)" -eq 0

slow_copy record "$T/dst2.img" "" --hash-map "$T/map"
check "record: the transfer succeeds" test "$(jget "$T/record.json" complete)" = true
check "record: the blocks were answered from the record" \
  test "$(wsum record hashed_from_record)" -eq 8
check "record: a change behind the writer's back is not seen" \
  test "$(jget "$T/record.json" verify_mismatches)" -eq 0
check "record: ... and stays on the target" bash -c "! cmp -s '$T/src.img' '$T/dst2.img'"

# A new writer knows nothing of this disk: with the hash map nothing is sent,
# and a full check reads every block back.
start_writer again --log-level info
transfer "$T/again.json" --source "$T/src.img" --target "$T/dst2.img" --verify full \
  --hash-map "$T/map"
stop_pid "$W_PID"; W_PID=
check "new writer: nothing was recorded, every block was read back" \
  test $(( $(wsum again hashed_blocks) - $(wsum again hashed_from_record) )) -ge 8
check "new writer: the corruption is found" \
  test "$(jget "$T/again.json" verify_mismatches)" -ge 1
check "new writer: the target ends bit-identical" cmp -s "$T/src.img" "$T/dst2.img"
finish
