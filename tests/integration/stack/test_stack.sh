#!/usr/bin/env bash
# tests/integration/stack/test_stack.sh — integration test of deploy/stack.sh.
#
# Brings a complete stack up in a temporary directory on ports of its own
# (so a developer's stack on the default ports is not disturbed), checks
# every service for real (PostgreSQL login, AMQP login, libvirt over
# qemu+libssh2:// and qemu+ssh://, ssh exec, the API's HTTPS certificate),
# then down/up/destroy, and
# that nothing it started is left behind. Always tears down (trap).
#
# Run as root on Debian 12 after deploy/install-deps.sh. Ports can be moved
# with TEST_PG_PORT, TEST_AMQP_PORT (+1, +2 used too), TEST_SSH_PORT.
# Prints "N passed, M failed"; exit 0 only if nothing failed (77: not root).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
STACK=$ROOT/deploy/stack.sh

if [[ $(id -u) -ne 0 ]]; then
    echo "test_stack: needs root (the stack starts system daemons); skipped" >&2
    exit 77
fi

export EKMAN_PG_PORT=${TEST_PG_PORT:-56432}
export EKMAN_AMQP_PORT=${TEST_AMQP_PORT:-56672}
export EKMAN_SSH_PORT=${TEST_SSH_PORT:-2322}
export EKMAN_API_PORT=${TEST_API_PORT:-7767}
DIST_PORT=$((EKMAN_AMQP_PORT + 1))
EPMD_PORT=$((EKMAN_AMQP_PORT + 2))
ALL_PORTS=("$EKMAN_PG_PORT" "$EKMAN_AMQP_PORT" "$DIST_PORT" "$EPMD_PORT" "$EKMAN_SSH_PORT")

DIR=$(mktemp -d /tmp/ekman-stack-test.XXXXXX)
chmod 755 "$DIR"
AUX=$(mktemp -d /tmp/ekman-stack-test-aux.XXXXXX)
PASSED=0
FAILED=0

cleanup() {
    local rc=$?
    if [[ -d $DIR ]]; then
        echo "test_stack: cleanup: destroying $DIR"
        "$STACK" destroy "$DIR" >"$AUX/cleanup.log" 2>&1 || { echo "test_stack: destroy failed:"; cat "$AUX/cleanup.log"; }
    fi
    rm -rf "$AUX"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

now_ms() { local t=${EPOCHREALTIME//[.,]/}; echo $((t / 1000)); }
secs() { printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)); }

# check NAME CMD...: run CMD (output to a log), count and report.
check() {
    local name=$1 log
    shift
    log=$AUX/check-$((PASSED + FAILED)).log
    if "$@" >"$log" 2>&1; then
        PASSED=$((PASSED + 1))
        printf 'ok     %s\n' "$name"
    else
        FAILED=$((FAILED + 1))
        printf 'FAIL   %s\n' "$name"
        sed 's/^/       | /' "$log" | tail -n 25
    fi
}

pid_alive() { # PID: alive and not a zombie
    local stat
    { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
    stat=${stat##*) }
    [[ ${stat:0:1} != Z && ${stat:0:1} != X ]]
}

libvirtd_running() {
    local pid
    pid=$(head -n 1 /run/libvirtd.pid 2>/dev/null) || return 1
    pid_alive "$pid" && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == libvirtd ]]
}

not() { ! "$@"; }

port_closed() { [[ -z $(ss -Hltn "sport = :$1") ]]; }

ports_closed() {
    local p bad=0
    for p in "${ALL_PORTS[@]}"; do
        port_closed "$p" || { echo "port $p still listening: $(ss -Hltnp "sport = :$p")"; bad=1; }
    done
    return "$bad"
}

ports_loopback_only() { # every listener on our ports is 127.0.0.1 or ::1
    local p addrs bad=0
    for p in "${ALL_PORTS[@]}"; do
        addrs=$(ss -Hltn "sport = :$p" | awk '{print $4}')
        [[ -n $addrs ]] || { echo "nothing listens on $p"; bad=1; continue; }
        while read -r a; do
            [[ $a == 127.0.0.1:* || $a == "[::1]:"* ]] || { echo "port $p bound to $a"; bad=1; }
        done <<<"$addrs"
    done
    return "$bad"
}

# Processes whose command line mentions DIR (postgres -D, sshd -f, beam,
# libvirtd -f ...), other than grep itself.
procs_in_dir() {
    local f pid
    while read -r f; do
        pid=${f#/proc/}
        pid=${pid%/cmdline}
        [[ $pid != "$$" ]] || continue
        [[ $(cat "/proc/$pid/comm" 2>/dev/null) != grep ]] || continue
        pid_alive "$pid" && echo "$pid $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)"
    done < <(grep -lsF -- "$DIR" /proc/[0-9]*/cmdline)
    return 0
}

no_procs_in_dir() { local l; l=$(procs_in_dir); [[ -z $l ]] || { echo "left behind: $l"; return 1; }; }

recorded_pids() { cat "$DIR"/pids/*.pid 2>/dev/null | grep -E '^[0-9]+$' || true; }

pids_gone() { # PIDS...: none alive
    local p bad=0
    for p in "$@"; do
        pid_alive "$p" && { echo "pid $p still alive: $(tr '\0' ' ' <"/proc/$p/cmdline")"; bad=1; }
    done
    return "$bad"
}

load_env() { # eval the stack's env output in this shell
    local out
    out=$("$STACK" env "$DIR") || return 1
    eval "$out"
}

psql_ekman() { psql -X -v ON_ERROR_STOP=1 "$EKMAN_DB_URL" -Atc "$1"; }

# AMQP 0-9-1 handshake + login + vhost open with the URL's credentials.
amqp_login() {
    python3 - "$1" <<'PY'
import socket, ssl, struct, sys, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
vhost = urllib.parse.unquote(u.path[1:]) if len(u.path) > 1 else "/"
s = socket.create_connection((u.hostname, u.port), timeout=10)
if u.scheme == "amqps":  # the broker's certificate checked against the stack's CA
    ca = urllib.parse.parse_qs(u.query).get("cacertfile", [None])[0]
    s = ssl.create_default_context(cafile=ca).wrap_socket(s, server_hostname=u.hostname)
s.sendall(b"AMQP\x00\x00\x09\x01")
buf = b""
def frame():
    global buf
    while True:
        if len(buf) >= 7:
            _, _, size = struct.unpack(">BHI", buf[:7])
            if len(buf) >= 8 + size:
                payload, end = buf[7:7 + size], buf[7 + size]
                buf = buf[8 + size:]
                assert end == 0xCE, "bad frame end"
                return payload
        data = s.recv(65536)
        if not data:
            sys.exit("connection closed by the server (authentication refused?)")
        buf += data
def send(cls, mid, args):
    p = struct.pack(">HH", cls, mid) + args
    s.sendall(struct.pack(">BHI", 1, 0, len(p)) + p + b"\xce")
def shortstr(x):
    x = x.encode()
    return bytes([len(x)]) + x
def expect(cls, mid):
    p = frame()
    c, m = struct.unpack(">HH", p[:4])
    if (c, m) == (10, 50):
        code = struct.unpack(">H", p[4:6])[0]
        sys.exit("server closed the connection: %d %s" % (code, p[7:7 + p[6]].decode()))
    if (c, m) != (cls, mid):
        sys.exit("unexpected method %d.%d, wanted %d.%d" % (c, m, cls, mid))
    return p[4:]
expect(10, 10)                                   # connection.start
cred = b"\0" + urllib.parse.unquote(u.username).encode() + b"\0" + urllib.parse.unquote(u.password).encode()
send(10, 11, struct.pack(">I", 0) + shortstr("PLAIN") + struct.pack(">I", len(cred)) + cred + shortstr("en_US"))
chmax, fmax, _ = struct.unpack(">HIH", expect(10, 30)[:8])   # connection.tune
send(10, 31, struct.pack(">HIH", chmax, fmax, 0))
send(10, 40, shortstr(vhost) + shortstr("") + b"\0")         # connection.open
expect(10, 41)
send(10, 50, struct.pack(">H", 200) + shortstr("bye") + struct.pack(">HH", 0, 0))
expect(10, 51)
print("AMQP login as %s on vhost %s: ok" % (u.username, vhost))
PY
}

amqp_banner() { # the port answers the AMQP 0-9-1 header with connection.start, over TLS
    local out=$AUX/amqp-banner.bin
    { printf 'AMQP\0\0\x09\x01'; sleep 2; } | timeout 10 openssl s_client -quiet -verify_return_error \
        -CAfile "$EKMAN_AMQP_CA" -verify_hostname localhost -connect "127.0.0.1:$EKMAN_AMQP_PORT" \
        >"$out" 2>/dev/null || true
    [[ $(head -c 1 "$out" | od -An -tx1 | tr -d ' ') == 01 ]] && grep -aq PLAIN "$out"
}

ssh_id() {
    ssh -F /dev/null -p "$EKMAN_SSH_PORT" -i "$EKMAN_SSH_KEY" -o IdentitiesOnly=yes -o BatchMode=yes \
        -o UserKnownHostsFile="$EKMAN_SSH_KNOWN_HOSTS" -o GlobalKnownHostsFile=/dev/null \
        -o StrictHostKeyChecking=yes "$EKMAN_SSH_USER@${EKMAN_SSH_HOST:?}" id
}

# grep without -q: it reads all its input, so the writer never dies of SIGPIPE (pipefail)
rabbitmqctl_vhost() { "$EKMAN_RABBITMQCTL" -q list_vhosts name | grep -x ekman >/dev/null; }

ssh_id_user() { ssh_id | tee /dev/stderr | grep "uid=[0-9]*($EKMAN_SSH_USER)" >/dev/null; }

status_is_3() {
    local rc=0
    "$STACK" status "$DIR" || rc=$?
    [[ $rc -eq 3 ]] || { echo "status exit code $rc"; return 1; }
}

virsh_libssh2_pool() {
    virsh -q -c "$EKMAN_LIBVIRT_URI" pool-list --all --name | tee /dev/stderr | awk '{print $1}' | grep -x "$EKMAN_POOL" >/dev/null &&
        virsh -q -c "$EKMAN_LIBVIRT_URI" pool-dumpxml "$EKMAN_POOL" | grep "<path>$EKMAN_POOL_DIR</path>" >/dev/null
}

virsh_ssh_list() {
    # qemu+ssh runs the ssh binary from PATH: this shim gives it the stack's
    # known_hosts (a copy) so nothing is written to ~/.ssh.
    mkdir -p "$AUX/bin"
    cp "$EKMAN_SSH_KNOWN_HOSTS" "$AUX/known_hosts"
    printf '#!/bin/sh\nexec /usr/bin/ssh -o UserKnownHostsFile=%s -o GlobalKnownHostsFile=/dev/null "$@"\n' \
        "$AUX/known_hosts" >"$AUX/bin/ssh"
    chmod +x "$AUX/bin/ssh"
    PATH=$AUX/bin:$PATH virsh -c "qemu+ssh://$EKMAN_SSH_USER@127.0.0.1:$EKMAN_SSH_PORT/system?keyfile=$EKMAN_SSH_KEY&no_verify=1" list --all
}

conf_ok() {
    [[ $(stat -c %a "$EKMAN_CONFIG") == 600 ]] || { echo "mode $(stat -c %a "$EKMAN_CONFIG")"; return 1; }
    local s
    for s in '^\[DEFAULT\]$' '^log_level = info$' '^encryption_key = [A-Za-z0-9+/]{43}=$' '^\[database\]$' \
        "^connection = postgresql://ekman:[0-9a-f]+@127.0.0.1:$EKMAN_PG_PORT/ekman$" '^\[messaging\]$' \
        "^transport_url = amqps://ekman:[0-9a-f]+@localhost:$EKMAN_AMQP_PORT/ekman\\?cacertfile=$DIR/rabbitmq/tls/ca.pem$" \
        "^worker_transport_url = amqps://ekman-worker:[0-9a-f]+@localhost:$EKMAN_AMQP_PORT/ekman\\?cacertfile=" '^\[api\]$' \
        '^listen_address = 127.0.0.1$' "^port = $EKMAN_API_PORT$" "^tls_cert_file = $DIR/api/tls/server.pem$" \
        "^tls_key_file = $DIR/api/tls/server.key$" '^\[worker\]$' '^region =$' \
        '^\[libvirt_migration_provider\]$' "^default_storage_pool = $EKMAN_POOL$"; do
        grep -Eq "$s" "$EKMAN_CONFIG" || { echo "no line matching $s"; return 1; }
    done
}

api_cert_ok() { # the API's certificate: key 0600, signed by EKMAN_CA_FILE for 127.0.0.1 and localhost, 825 days
    local crt=$DIR/api/tls/server.pem key=$DIR/api/tls/server.key text
    [[ $(stat -c %a "$key") == 600 ]] || { echo "key mode $(stat -c %a "$key")"; return 1; }
    openssl verify -CAfile "$EKMAN_CA_FILE" -purpose sslserver "$crt" || return 1
    text=$(openssl x509 -in "$crt" -noout -text) || return 1
    grep -q 'IP Address:127.0.0.1' <<<"$text" && grep -q 'DNS:localhost' <<<"$text" || { echo "SAN: $text"; return 1; }
    openssl x509 -in "$crt" -noout -checkend $((824 * 86400)) && ! openssl x509 -in "$crt" -noout -checkend $((826 * 86400))
    cmp <(openssl x509 -in "$crt" -noout -pubkey) <(openssl pkey -in "$key" -pubout)
}

api_https_curl() { # a TLS server with the stack's API certificate is trusted by curl --cacert EKMAN_CA_FILE
    local port=$((EKMAN_API_PORT + 90)) pid rc=1
    openssl s_server -quiet -www -accept "127.0.0.1:$port" -cert "$DIR/api/tls/server.pem" \
        -key "$DIR/api/tls/server.key" </dev/null >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 50); do port_closed "$port" || break; sleep 0.1; done
    curl -sf -o /dev/null --cacert "$EKMAN_CA_FILE" "https://127.0.0.1:$port/" &&
        curl -sf -o /dev/null --cacert "$EKMAN_CA_FILE" "https://localhost:$port/" &&
        ! curl -sf -o /dev/null "https://127.0.0.1:$port/" && rc=0
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return "$rc"
}

echo "test_stack: DIR=$DIR ports pg=$EKMAN_PG_PORT amqp=$EKMAN_AMQP_PORT(+1,+2) ssh=$EKMAN_SSH_PORT"
LIBVIRTD_BEFORE=no
libvirtd_running && LIBVIRTD_BEFORE=yes
echo "test_stack: libvirtd running before the test: $LIBVIRTD_BEFORE"
check "ports are free" ports_closed

# ------------------------------------------------------------------ up
t0=$(now_ms)
check "up (cold)" flock "$AUX/caller.lock" "$STACK" up "$DIR"
T_UP_COLD=$(($(now_ms) - t0))
cat "$AUX/check-1.log"
check "the daemons do not keep the caller's descriptors (its flock lock is free)" flock -n "$AUX/caller.lock" true
check "status exits 0" "$STACK" status "$DIR"
check "env" load_env
load_env || true
check "env values" test "${EKMAN_PG_PORT:-}" = "${TEST_PG_PORT:-56432}" -a "${EKMAN_SSH_USER:-}" != "" \
    -a "${EKMAN_URL:-}" = "https://127.0.0.1:$EKMAN_API_PORT" -a "${EKMAN_STACK_DIR:-}" = "$DIR" \
    -a "${EKMAN_CA_FILE:-}" = "$DIR/rabbitmq/tls/ca.pem"
check "ekman.conf (0600, all sections)" conf_ok
check "the API's certificate (signed by the stack's CA, key 0600)" api_cert_ok
check "curl with EKMAN_CA_FILE trusts the API's certificate, without it not" api_https_curl
API_SERIAL=$(openssl x509 -in "$DIR/api/tls/server.pem" -noout -serial 2>&1)
check "listeners on loopback only" ports_loopback_only
check "psql EKMAN_DB_URL as ekman" test "$(psql_ekman 'select current_user||current_database()')" = ekmanekman
check "ekman can create a table" psql_ekman 'create table stack_test(x int); insert into stack_test values (42)'
check "psql EKMAN_PG_ADMIN_URL is superuser" test "$(psql -X "$EKMAN_PG_ADMIN_URL" -Atc 'select rolsuper from pg_roles where rolname = current_user')" = t
check "wrong PostgreSQL password refused" not psql -X "postgresql://ekman:wrong@127.0.0.1:$EKMAN_PG_PORT/ekman" -Atc 'select 1'
check "AMQP port answers the protocol header" amqp_banner
check "AMQP login + vhost open (EKMAN_AMQP_URL)" amqp_login "$EKMAN_AMQP_URL"
check "AMQP wrong password refused" not amqp_login "amqps://ekman:wrong@localhost:$EKMAN_AMQP_PORT/ekman?cacertfile=$EKMAN_AMQP_CA"
check "AMQP without TLS refused (no plain listener)" not amqp_login "amqp://ekman:x@127.0.0.1:$EKMAN_AMQP_PORT/ekman"
check "rabbitmqctl (EKMAN_RABBITMQCTL) sees vhost ekman" rabbitmqctl_vhost
check "ssh with the key runs id" ssh_id_user
check "virsh over qemu+libssh2 lists the pool" virsh_libssh2_pool
check "virsh over qemu+ssh (no_verify) list --all" virsh_ssh_list
check "nothing written to ~/.ssh/known_hosts" not grep -qs "127.0.0.1\]:$EKMAN_SSH_PORT" ~/.ssh/known_hosts

# ------------------------------------------------------------------ up again
PIDS_BEFORE=$(recorded_pids | sort | tr '\n' ' ')
check "up again is harmless" "$STACK" up "$DIR"
check "up again: same pids" test "$(recorded_pids | sort | tr '\n' ' ')" = "$PIDS_BEFORE"

# ------------------------------------------------------------------ down
mapfile -t PIDS < <(recorded_pids)
t0=$(now_ms)
check "down" "$STACK" down "$DIR"
T_DOWN=$(($(now_ms) - t0))
check "down: recorded pids (${#PIDS[@]}) gone" pids_gone "${PIDS[@]}"
check "down: ports closed" ports_closed
check "down: no process runs from DIR" no_procs_in_dir
check "status exits 3 after down" status_is_3
if [[ $LIBVIRTD_BEFORE == yes ]]; then
    check "libvirtd (not started by the stack) still running" libvirtd_running
else
    check "libvirtd (started by the stack) stopped" not libvirtd_running
fi
check "down again is harmless" "$STACK" down "$DIR"

# ------------------------------------------------------------------ up after down
t0=$(now_ms)
check "up after down" "$STACK" up "$DIR"
T_UP_WARM=$(($(now_ms) - t0))
check "status exits 0" "$STACK" status "$DIR"
load_env || true
check "data kept across down/up" test "$(psql_ekman 'select x from stack_test')" = 42
check "the API's certificate kept across down/up" test "$API_SERIAL" = "$(openssl x509 -in "$DIR/api/tls/server.pem" -noout -serial)"
rm -f "$DIR/api/tls/server.pem"
check "env makes a missing API certificate again" load_env
check "... signed by the stack's CA" api_cert_ok
check "AMQP login after restart" amqp_login "$EKMAN_AMQP_URL"
check "virsh over qemu+libssh2 after restart" virsh_libssh2_pool
check "ssh after restart" ssh_id

# ------------------------------------------------------------------ destroy
mapfile -t PIDS < <(recorded_pids)
check "destroy" "$STACK" destroy "$DIR"
check "destroy: DIR removed" test ! -e "$DIR"
check "destroy: recorded pids gone" pids_gone "${PIDS[@]}"
check "destroy: ports closed" ports_closed
check "destroy: no process runs from DIR" no_procs_in_dir
if libvirtd_running; then
    check "destroy: pool undefined" not virsh -q -c qemu:///system pool-info "$EKMAN_POOL"
fi

echo "test_stack: up cold $(secs "$T_UP_COLD")s, down $(secs "$T_DOWN")s, up after down $(secs "$T_UP_WARM")s"
echo "$PASSED passed, $FAILED failed"
((FAILED == 0))
