#!/usr/bin/env bash
# test_direct.sh - with --direct the writer writes with O_DIRECT: the data
# goes to the disk, not into the page cache, and only the unaligned tail of
# the disk through the cache; by default it writes through the cache and
# keeps at most --cache-limit of the disk there; on a filesystem that refuses
# O_DIRECT (tmpfs), it writes through the cache. All give bit-identical disks, of a
# size that is not a multiple of the page (8 MiB + 4097 bytes), with holes,
# written zeros and blocks that are part data, part zeros.
# Usage: test_direct.sh BUILD_DIR SOURCE_DIR
set -u
BUILD=$1 SRC=$2
. "$SRC/tests/integration/lib.sh"
T=$(mktemp -d /var/tmp/ekman-dp-direct.XXXXXX)
. "$SRC/tests/integration/dataplane/lib_dp.sh"
W_PID=
SHM=
cleanup() { [ -n "$W_PID" ] && stop_pid "$W_PID"; rm -rf "$T"; [ -n "$SHM" ] && rm -rf "$SHM"; }
trap cleanup EXIT

# logged "key=value" of the writer's "session ended" lines, summed
wsum() { grep -o "$2=\"\?[0-9]*" "$T/$1.log" | grep -o '[0-9]*$' | awk '{ s += $1 } END { print s + 0 }'; }
# bytes of FILE in the page cache
cached() { fincore --bytes --noheadings --output RES "$1" 2>/dev/null | tr -d ' '; }

"$EKT" --gen-pki "$T/pki"
SIZE=$(( (8 << 20) + 4097 ))
{
  head -c $((3 << 20)) /dev/urandom              # 3 MiB of data
  head -c $((512 << 10)) /dev/zero               # half a block of written zeros
  head -c $(( (4 << 20) + (512 << 10) )) /dev/urandom
  head -c 4097 /dev/urandom                      # the unaligned tail
} > "$T/src.img"
truncate -s "$SIZE" "$T/src.img"
# a hole of 1 MiB at 1 MiB (punched in the source too)
fallocate -p -o $((1 << 20)) -l $((1 << 20)) "$T/src.img" 2>/dev/null ||
  dd if=/dev/zero of="$T/src.img" bs=1M seek=1 count=1 conv=notrunc status=none
check "the source holds 8 MiB + 4097 bytes" test "$(stat -c %s "$T/src.img")" -eq "$SIZE"

# 1. O_DIRECT to a file on a disk filesystem
if [ "$(stat -f -c %T "$T")" = tmpfs ]; then
  echo "# $T is on tmpfs, which refuses O_DIRECT: nothing to test here"
  exit 77
fi
start_writer direct --log-level info --direct
transfer "$T/s1.json" --source "$T/src.img" --target "$T/dst1.img" --create --connections 2
stop_pid "$W_PID"; W_PID=
check "O_DIRECT: the transfer succeeds" test "$(jget "$T/s1.json" complete)" = true
if command -v fincore >/dev/null; then # before cmp reads it into the cache
  C1=$(cached "$T/dst1.img")
  check "O_DIRECT: the target is not in the page cache ($C1 bytes)" test "${C1:-0}" -le 65536
fi
check "O_DIRECT: the target is bit-identical" cmp -s "$T/src.img" "$T/dst1.img"
DIRECT=$(wsum direct direct_bytes) BUFFERED=$(wsum direct buffered_bytes)
check "O_DIRECT: the data went with O_DIRECT ($DIRECT bytes)" test "$DIRECT" -ge $((6 << 20))
check "O_DIRECT: only the unaligned tail went through the cache ($BUFFERED bytes)" \
  test "$BUFFERED" -gt 0 -a "$BUFFERED" -lt 4096
check "O_DIRECT: whole data blocks were verified from the writer's record" \
  test "$(wsum direct hashed_from_record)" -ge 5
check "O_DIRECT: the block of data and zeros was read back" \
  test "$(wsum direct hashed_blocks)" -gt "$(wsum direct hashed_from_record)"

# 2. through the page cache, with no limit on what stays there
start_writer buffered --log-level info --cache-limit 0
transfer "$T/s2.json" --source "$T/src.img" --target "$T/dst2.img" --create --connections 2
stop_pid "$W_PID"; W_PID=
if command -v fincore >/dev/null; then
  C2=$(cached "$T/dst2.img")
  check "no cache limit: the target is in the page cache ($C2 bytes)" test "${C2:-0}" -ge $((4 << 20))
fi
check "no cache limit: the target is bit-identical" cmp -s "$T/src.img" "$T/dst2.img"
check "no cache limit: nothing went with O_DIRECT" test "$(wsum buffered direct_bytes)" -eq 0

# 2b. the default: through the page cache, written ranges dropped once more
# than --cache-limit is cached (1 MiB here, 64 by default) and at the end
start_writer limited --log-level info --cache-limit 1
transfer "$T/s2b.json" --source "$T/src.img" --target "$T/dst2b.img" --create --connections 2 \
  --block-size 256
stop_pid "$W_PID"; W_PID=
check "cache limit: the transfer succeeds" test "$(jget "$T/s2b.json" complete)" = true
if command -v fincore >/dev/null; then
  C2B=$(cached "$T/dst2b.img")
  check "cache limit: the target left the page cache ($C2B bytes)" test "${C2B:-0}" -le $((1 << 20))
fi
check "cache limit: the target is bit-identical" cmp -s "$T/src.img" "$T/dst2b.img"
check "cache limit: it went through the cache" test "$(wsum limited buffered_bytes)" -ge $((6 << 20))
# 2c. while a 64 MiB disk is written (at 16 MiB/s), at most the limit (4 MiB)
# plus the chunks being written (2 threads x 1 MiB) stays in the cache
head -c $((64 << 20)) /dev/urandom > "$T/big.img"
start_writer limited2 --log-level info --cache-limit 4 --threads 2
transfer "$T/s2c.json" --source "$T/big.img" --target "$T/dst2c.img" --create --connections 2 \
  --bandwidth 16 &
TP=$!
MAXC=0
while kill -0 "$TP" 2>/dev/null; do
  c=$(cached "$T/dst2c.img"); c=${c:-0}
  [ "$c" -gt "$MAXC" ] && MAXC=$c
  sleep 0.1
done
wait "$TP"
stop_pid "$W_PID"; W_PID=
check "cache limit: the 64 MiB transfer succeeds" test "$(jget "$T/s2c.json" complete)" = true
check "cache limit: the target is bit-identical" cmp -s "$T/big.img" "$T/dst2c.img"
if command -v fincore >/dev/null; then
  check "cache limit: at most 6 MiB of the target was cached while it was written ($MAXC bytes)" \
    test "$MAXC" -le $((6 << 20)) -a "$MAXC" -gt 0
fi
check "cache limit: the writer refuses a limit that is not a number" \
  sh -c "! '$EKW' --stdio --allow-path '$T' --cache-limit 12x </dev/null 2>'$T/bad.err' && grep -q 'cache-limit' '$T/bad.err'"

# 3. tmpfs: before Linux 6.6 it refuses O_DIRECT and the writer falls back to
# the page cache (the default path); since 6.6 it takes it.
if [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ] && SHM=$(mktemp -d /dev/shm/ekman-dp.XXXXXX); then
  rm -f "$T/w3.port"
  "$EKW" --listen 127.0.0.1:0 --port-file "$T/w3.port" --cert "$T/pki/server.pem" \
    --key "$T/pki/server.key" --ca "$T/pki/ca.pem" --allow-path "$SHM" --log-level info --direct \
    2>>"$T/tmpfs.log" &
  W_PID=$!
  wait_for 20 test -s "$T/w3.port"
  W_PORT=$(cat "$T/w3.port")
  transfer "$T/s3.json" --source "$T/src.img" --target "$SHM/dst3.img" --create --connections 2
  stop_pid "$W_PID"; W_PID=
  check "tmpfs: the transfer succeeds" test "$(jget "$T/s3.json" complete)" = true
  check "tmpfs: the target is bit-identical" cmp -s "$T/src.img" "$SHM/dst3.img"
  if grep -q "O_DIRECT refused" "$T/tmpfs.log"; then
    check "tmpfs: refused O_DIRECT, nothing went with it" test "$(wsum tmpfs direct_bytes)" -eq 0
  else
    echo "# tmpfs took O_DIRECT on this kernel ($(uname -r)): $(wsum tmpfs direct_bytes) bytes"
  fi
else
  echo "# /dev/shm is not a writable tmpfs: the fallback part is skipped"
fi
finish
