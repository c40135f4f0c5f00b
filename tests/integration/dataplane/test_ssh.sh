#!/usr/bin/env bash
# test_ssh.sh - the SSH transport: ekman-transfer opens libssh2 sessions to a
# throwaway sshd (on a free port of 127.0.0.1, keys in a scratch directory)
# that runs `ekman-writer --stdio`; checks the copy and the host-key check.
# Exits 77 (skipped) when OpenSSH's sshd is not installed.
# Usage: test_ssh.sh BUILD_DIR SOURCE_DIR
set -u
BUILD=$1 SRC=$2
. "$SRC/tests/integration/lib.sh"
[ -x /usr/sbin/sshd ] || { echo "sshd not installed: skipped"; exit 77; }
T=$(mktemp -d /tmp/ekman-dp-ssh.XXXXXX)
chmod 755 "$T"
. "$SRC/tests/integration/dataplane/lib_dp.sh"
SSHD_PID=
cleanup() { [ -n "$SSHD_PID" ] && stop_pid "$SSHD_PID"; rm -rf "$T"; }
trap cleanup EXIT

ssh-keygen -q -t ed25519 -N '' -f "$T/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$T/user_key"
cp "$T/user_key.pub" "$T/authorized_keys"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$T/sshd_config" <<CONF
Port $PORT
ListenAddress 127.0.0.1
HostKey $T/host_key
AuthorizedKeysFile $T/authorized_keys
PidFile $T/sshd.pid
StrictModes no
UsePAM no
PasswordAuthentication no
PermitRootLogin prohibit-password
CONF
mkdir -p /run/sshd
/usr/sbin/sshd -D -f "$T/sshd_config" -E "$T/sshd.log" &
SSHD_PID=$!
wait_for 20 bash -c "ssh-keyscan -p $PORT 127.0.0.1 2>/dev/null | grep -q ssh-ed25519"
ssh-keyscan -p "$PORT" 127.0.0.1 2>/dev/null > "$T/known_hosts"
check "sshd is up and known" test -s "$T/known_hosts"

"$IMG" create "$T/src.img" 32M 41 >/dev/null
SSH=(--ssh "$(id -un)@127.0.0.1:$PORT" --ssh-key "$T/user_key" --ssh-known-hosts "$T/known_hosts"
     --ssh-command "$EKW --stdio --allow-path $T")
"$EKT" "${SSH[@]}" --source "$T/src.img" --target "$T/dst.img" --create --stats "$T/s1.json" \
  2>"$T/t1.log"
check "the transfer over SSH succeeds" test "$(jget "$T/s1.json" complete)" = true
check "the target is bit-identical" cmp -s "$T/src.img" "$T/dst.img"
check "the bytes went through the SSH connections" \
  test "$(jget "$T/s1.json" wire_out)" -ge "$(jget "$T/s1.json" payload_bytes)"

# a host whose key is not the known one
ssh-keygen -q -t ed25519 -N '' -f "$T/other_key"
sed "s|ssh-ed25519 .*|$(cut -d' ' -f1,2 "$T/other_key.pub")|" "$T/known_hosts" > "$T/wrong_hosts"
"$EKT" --ssh "$(id -un)@127.0.0.1:$PORT" --ssh-key "$T/user_key" --ssh-known-hosts "$T/wrong_hosts" \
  --ssh-command "$EKW --stdio --allow-path $T" --source "$T/src.img" --target "$T/dst3.img" \
  --create --stats "$T/s2.json" 2>"$T/t2.log"
check "a host with another key is refused" grep -q "HOST KEY MISMATCH" "$T/s2.json"
check "... before anything was written" test ! -e "$T/dst3.img"
stop_pid "$SSHD_PID"; SSHD_PID=
finish
