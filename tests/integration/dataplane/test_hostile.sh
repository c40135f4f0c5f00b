#!/usr/bin/env bash
# test_hostile.sh - ekman-writer under unauthenticated load (issue #17):
# 500 TCP connections that never handshake, and 20 that send the first bytes
# of a TLS record and stall, cost the writer no thread each and leave it
# serving a real transfer at the same time; every one of them is closed
# after the handshake timeout; refusals do not fill the log; the writer
# listens on the address it was given; disks it creates are 0600, and a
# link planted at a target's name is not followed.
# Usage: test_hostile.sh BUILD_DIR SOURCE_DIR
set -u
BUILD=$1 SRC=$2
. "$SRC/tests/integration/lib.sh"
T=$(mktemp -d /tmp/ekman-dp-hostile.XXXXXX)
. "$SRC/tests/integration/dataplane/lib_dp.sh"
W_PID= H_PID=
cleanup() {
  [ -n "$H_PID" ] && stop_pid "$H_PID"
  [ -n "$W_PID" ] && stop_pid "$W_PID"
  rm -rf "$T"
}
trap cleanup EXIT
command -v python3 >/dev/null || { echo "python3 is needed"; exit 77; }

HANDSHAKE=5   # --handshake-timeout, seconds
IDLE=500      # connections that send nothing
SLOW=20       # connections that send 5 bytes of a TLS record, then nothing

# hold.py PORT IDLE SLOW SECONDS OUT: opens the connections, reports "held"
# in OUT.ready, then watches them and writes to OUT, for each one closed by
# the writer, the seconds from its connect to the close, and "open" for the
# others when SECONDS have passed.
cat > "$T/hold.py" <<'EOF'
import json, os, select, socket, sys, time
port, idle, slow, limit, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
socks = {}
for i in range(idle + slow):
    s = socket.create_connection(("127.0.0.1", port))
    if i >= idle:
        s.sendall(b"\x16\x03\x01\x02\x00")  # a ClientHello record header, no body
    socks[s.fileno()] = (s, time.monotonic())
open(out + ".ready", "w").write("held\n")
poller = select.poll()
for fd in socks:
    poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
closed = {}
end = time.monotonic() + limit
while len(closed) < len(socks) and time.monotonic() < end:
    for fd, ev in poller.poll(200):
        s, t0 = socks[fd]
        try:
            data = s.recv(4096)
        except OSError:
            data = b""
        if not data:
            closed[fd] = time.monotonic() - t0
            poller.unregister(fd)
res = {"closed": len(closed), "total": len(socks),
       "max_seconds": max(closed.values()) if closed else None}
json.dump(res, open(out, "w"))
EOF

"$EKT" --gen-pki "$T/pki" || { echo "ekman-transfer --gen-pki failed"; exit 1; }
"$IMG" create "$T/src.img" 32M 7 >/dev/null

start_writer w --handshake-timeout "$HANDSHAKE"
check "writer listens" test -n "$W_PORT"
# /proc/net/tcp: local address 0100007F:PORT in state 0A (LISTEN), none on 00000000
hexport=$(printf '%04X' "$W_PORT")
check "it listens on the address it was given (127.0.0.1), not on every interface" \
  bash -c "grep -q ' 0100007F:$hexport 00000000:0000 0A ' /proc/net/tcp && ! grep -q ' 00000000:$hexport 00000000:0000 0A ' /proc/net/tcp"
fds_before=$(ls "/proc/$W_PID/fd" | wc -l)

python3 "$T/hold.py" "$W_PORT" "$IDLE" "$SLOW" $((HANDSHAKE + 20)) "$T/hold.json" &
H_PID=$!
wait_for 30 test -s "$T/hold.json.ready"
check "$((IDLE + SLOW)) unauthenticated connections are open" test -s "$T/hold.json.ready"
threads=$(awk '/^Threads:/ {print $2}' "/proc/$W_PID/status")
check "they cost the writer no thread each ($threads threads)" test "$threads" -lt 64

# a real transfer while they are held
start=$SECONDS
transfer "$T/s1.json" --source "$T/src.img" --target "$T/dst.img" --create --verify full \
  --retries 3
check "a real transfer succeeds meanwhile" test "$(jget "$T/s1.json" complete)" = true
check "... bit-identical" cmp -s "$T/src.img" "$T/dst.img"
check "... without waiting for the squatters to time out ($((SECONDS - start)) s)" \
  test $((SECONDS - start)) -lt "$HANDSHAKE"
check "the disk it created is private (0600)" test "$(stat -c %a "$T/dst.img")" = 600

wait "$H_PID"; H_PID=
check "every unauthenticated connection was closed" \
  test "$(jq -r '.closed == .total' "$T/hold.json")" = true
check "... within the handshake timeout and a margin ($(jq -r .max_seconds "$T/hold.json") s)" \
  test "$(jq -r ".max_seconds <= $((HANDSHAKE + 3))" "$T/hold.json")" = true
wait_for 5 test "$(ls "/proc/$W_PID/fd" | wc -l)" -le "$fds_before"
check "the writer holds no descriptor for them any more" \
  test "$(ls "/proc/$W_PID/fd" | wc -l)" -le "$fds_before"
refusals=$(grep -c "connection refused" "$T/w.log")
check "refusals do not fill the log ($refusals lines)" test "$refusals" -le 10
wait_for 12 grep -q "unauthenticated connections closed" "$T/w.log"
check "they are summed up instead" grep -q "unauthenticated connections closed" "$T/w.log"

# a link planted at a target's name is not followed
echo "worker secret" > "$T/secret.conf"
ln -s "$T/secret.conf" "$T/planted.img"
transfer "$T/s2.json" --source "$T/src.img" --target "$T/planted.img" --create --retries 1
check "a transfer to a planted link is refused" grep -q "symbolic link" "$T/s2.json"
check "... and the file it points at is untouched" \
  test "$(cat "$T/secret.conf")" = "worker secret"

# the writer still serves after all this
transfer "$T/s3.json" --source "$T/src.img" --target "$T/dst2.img" --create
check "the writer serves a second transfer" test "$(jget "$T/s3.json" complete)" = true

kill "$W_PID"; wait "$W_PID"; rc=$?; W_PID=
check "the writer stops cleanly on SIGTERM (exit $rc; ASan finds no leak)" test "$rc" -eq 0
finish
