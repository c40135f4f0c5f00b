#!/usr/bin/env bash
# deploy/stack.sh — a complete local service stack for developing and testing
# Ekman: PostgreSQL, RabbitMQ, libvirtd (+ virtlogd) with a dir storage pool
# and a NAT network for worker VMs (both named ekman-<hash of DIR>; with
# EKMAN_WORKER_IMAGE=1 also Ekman's worker image as a volume of the pool),
# and an sshd through which Ekman reaches libvirt (qemu+libssh2://).
#
# Everything lives in one state directory DIR (default: .ekman-stack/ at the
# checkout root); every server listens on 127.0.0.1 only. No systemd, no D-Bus:
# the daemons are started by hand, as root, and their PIDs kept in DIR/pids.
#
# Usage: deploy/stack.sh up|down|status|env|destroy [DIR]
#   up       start what is not running (idempotent), wait until ready
#   down     stop exactly what `up` started; keep the data in DIR
#   status   one line per service; exit 0 if all run, 3 otherwise
#   env      print `export` lines for the stack, (re)write DIR/ekman.conf
#            (EKMAN_URL=https://127.0.0.1:PORT, EKMAN_CA_FILE: the stack's CA)
#   destroy  down, then delete DIR
#
# Ports (read at the first `up`, then kept in DIR/ports.env):
#   EKMAN_PG_PORT=55432  EKMAN_AMQP_PORT=55672 (Erlang dist port +1, epmd +2)
#   EKMAN_SSH_PORT=2222  EKMAN_API_PORT=7667 (Ekman's own API, HTTPS with a
#   certificate of the stack's CA in DIR/api/tls; not served here)
#
# libvirt access of the SSH account: Debian's libvirtd authorises the unix
# socket through polkit, which needs D-Bus (absent here). When this script
# starts libvirtd it therefore passes its own copy of /etc/libvirt/libvirtd.conf
# (-f DIR/libvirt/libvirtd.conf) with unix_sock_group="libvirt",
# unix_sock_rw_perms="0770" and auth_unix_rw="none": members of group libvirt
# (the account ekman-libvirt) get read-write access, /etc/libvirt is untouched.
# When it reuses a libvirtd it did not start and that daemon refuses
# ekman-libvirt, the SSH account falls back to root (with a warning).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT_DIR=$(dirname "$SCRIPT_DIR")
readonly SCRIPT_DIR ROOT_DIR
readonly SSH_ACCOUNT=ekman-libvirt
readonly SSH_ACCOUNT_GROUPS=libvirt,kvm
readonly RMQ_BIN=/usr/lib/rabbitmq/bin
readonly LIBVIRT_URI_LOCAL=qemu:///system
readonly LIBVIRTD_PIDFILE=/run/libvirtd.pid
readonly VIRTLOGD_PIDFILE=/run/virtlogd.pid
readonly WORKER_VOLUME=ekman-worker.qcow2

# Timeouts (seconds).
readonly PG_TIMEOUT=60 RMQ_TIMEOUT=90 LIBVIRT_TIMEOUT=90 SSH_TIMEOUT=20 STOP_TIMEOUT=30

# ---------------------------------------------------------------- helpers

log() { printf 'stack: %s\n' "$*"; }
warn() { printf 'stack: warning: %s\n' "$*" >&2; }
die() { printf 'stack: error: %s\n' "$*" >&2; exit 1; }

usage() {
    cat >&2 <<EOF
Usage: $0 up|down|status|env|destroy [DIR]   (DIR default: $ROOT_DIR/.ekman-stack)
  up       start what is not running (idempotent), wait until ready
  down     stop exactly what 'up' started; keep the data in DIR
  status   one line per service; exit 0 if all run, 3 otherwise
  env      print 'export' lines for the stack, (re)write DIR/ekman.conf
  destroy  down, then delete DIR
EOF
    exit 2
}

require_root() {
    [[ $(id -u) -eq 0 ]] || die "must run as root (it starts system daemons); try: sudo $0 $*"
}

now_ms() { local t=${EPOCHREALTIME//[.,]/}; printf '%s\n' $((t / 1000)); }

# pid_alive PID [COMM]: the process exists, is not a zombie, and (if given)
# its /proc/PID/comm is COMM (guards against reused PIDs).
pid_alive() {
    local pid=${1:-} comm=${2:-} stat='' state c=''
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    { read -r stat <"/proc/$pid/stat"; } 2>/dev/null || return 1
    state=${stat##*) }
    state=${state:0:1}
    [[ $state != Z && $state != X ]] || return 1
    [[ -z $comm ]] && return 0
    { read -r c <"/proc/$pid/comm"; } 2>/dev/null || return 1
    [[ $c == "$comm" ]]
}

pid_zombie() { # pid_zombie PID: exists as a zombie (not reaped yet)
    local stat=''
    { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
    stat=${stat##*) }
    [[ ${stat:0:1} == Z ]]
}

read_pid() { # read_pid FILE: first line if it is a number, else nothing
    local line=
    if [[ -r $1 ]]; then IFS= read -r line <"$1" 2>/dev/null || true; fi
    if [[ $line =~ ^[0-9]+$ ]]; then printf '%s\n' "$line"; fi
}

port_listening() { # port_listening PORT: a TCP listener exists on PORT
    [[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]]
}

port_pids() { # port_pids PORT: PIDs of the processes listening on PORT
    ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u
}

describe_port_owner() {
    local pid out=
    for pid in $(port_pids "$1"); do
        out+="${out:+, }$pid ($(cat "/proc/$pid/comm" 2>/dev/null || echo '?'))"
    done
    printf '%s\n' "${out:-unknown process}"
}

# check_port_free NAME PORT: fail if something already listens there.
check_port_free() {
    port_listening "$2" || return 0
    die "$1: port 127.0.0.1:$2 is already in use by $(describe_port_owner "$2"); stop it or choose other ports (see ports.env / EKMAN_*_PORT)"
}

# wait_for TIMEOUT CMD...: run CMD every 0.1 s until it succeeds.
wait_for() {
    local deadline=$(($(now_ms) + $1 * 1000))
    shift
    until "$@"; do
        (($(now_ms) < deadline)) || return 1
        sleep 0.1
    done
}

# stop_pid NAME PID COMM: SIGTERM, wait, SIGKILL after STOP_TIMEOUT.
stop_pid() {
    local name=$1 pid=$2 comm=$3
    pid_alive "$pid" "$comm" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_for "$STOP_TIMEOUT" not pid_alive "$pid" "$comm"; then
        warn "$name (pid $pid) still running after ${STOP_TIMEOUT}s: sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        wait_for 10 not pid_alive "$pid" "$comm" || warn "$name (pid $pid) survived SIGKILL"
    fi
}

not() { ! "$@"; }

has_output() { [[ -n $("$@") ]]; }

# service_failed NAME LOG MESSAGE: report a start failure and exit.
service_failed() {
    local name=$1 logfile=$2
    shift 2
    printf 'stack: error: %s failed to start: %s\n' "$name" "$*" >&2
    if [[ -n $logfile ]]; then
        printf 'stack: %s log: %s\n' "$name" "$logfile" >&2
        if [[ -s $logfile ]]; then
            printf -- '----- last lines of %s -----\n' "$logfile" >&2
            tail -n 20 "$logfile" >&2
            printf -- '-----\n' >&2
        fi
    fi
    exit 1
}

gen_secret() { # gen_secret FILE KIND: create a secret once (hex or base64 key)
    local file=$1 kind=$2
    [[ -s $file ]] && return 0
    (
        umask 077
        case $kind in
            password) openssl rand -hex 24 >"$file.tmp" ;;
            key) openssl rand -base64 32 >"$file.tmp" ;;
        esac
        mv -f "$file.tmp" "$file"
    )
}

secret() { tr -d '\n' <"$SECRETS/$1"; }

write_if_changed() { # write_if_changed FILE MODE < content; returns 0 if it changed
    local file=$1 mode=$2 tmp
    tmp=$(mktemp "$file.XXXXXX")
    cat >"$tmp"
    chmod "$mode" "$tmp"
    if [[ -f $file ]] && cmp -s "$tmp" "$file"; then
        rm -f "$tmp"
        return 1
    fi
    mv -f "$tmp" "$file"
}

# ---------------------------------------------------------------- state

set_dir() { # set_dir DIR: resolve the state directory and its paths
    local d=${1:-$ROOT_DIR/.ekman-stack}
    DIR=$(realpath -m -- "$d")
    # Paths go into sshd_config, postgresql.conf, rabbitmq.conf and libvirt
    # XML: keep to characters that need no quoting anywhere.
    [[ $DIR =~ ^/[A-Za-z0-9._/+@-]*$ ]] ||
        die "state directory '$DIR' contains characters this script does not quote (use [A-Za-z0-9._/+@-])"
    [[ $DIR != / ]] || die "refusing to use / as the state directory"
    # PostgreSQL's socket DIR/pg/.s.PGSQL.NNNNN must fit in sun_path (107).
    ((${#DIR} <= 80)) || die "state directory path too long for a unix socket (${#DIR} > 80 characters): $DIR"
    PORTS_ENV=$DIR/ports.env
    STATE_ENV=$DIR/state.env
    SECRETS=$DIR/secrets
    PIDS=$DIR/pids
    PG_DIR=$DIR/pg
    PG_DATA=$DIR/pg/data
    PG_LOG=$DIR/pg/server.log
    RMQ_DIR=$DIR/rabbitmq
    RMQ_CTL=$DIR/rabbitmq/rabbitmqctl
    RMQ_LOG=$DIR/rabbitmq/log/rabbit.log
    RMQ_STDOUT=$DIR/rabbitmq/log/stdout.log
    LV_DIR=$DIR/libvirt
    LV_LOG=$DIR/libvirt/libvirtd.log
    VL_LOG=$DIR/libvirt/virtlogd.log
    POOL_DIR=$DIR/pool
    SSH_DIR=$DIR/ssh
    SSH_LOG=$DIR/ssh/sshd.log
    SSH_KEY=$DIR/ssh/client_ed25519
    SSH_KH=$DIR/ssh/known_hosts
    CONF=$DIR/ekman.conf
    API_TLS=$DIR/api/tls
}

# kv_get FILE KEY: value of KEY=VALUE in FILE (no shell evaluation).
kv_get() {
    local k v out=
    [[ -r $1 ]] || return 0
    while IFS='=' read -r k v; do
        [[ $k == "$2" ]] && out=$v
    done <"$1"
    printf '%s\n' "$out"
}

valid_port() { [[ $1 =~ ^[0-9]+$ ]] && (($1 >= 1 && $1 <= 65535)); }

# load_ports [init]: read DIR/ports.env; with "init" create it from the
# EKMAN_*_PORT variables (or the defaults) when it does not exist yet.
load_ports() {
    local var stored requested
    if [[ ! -s $PORTS_ENV ]]; then
        [[ ${1:-} == init ]] || die "no stack in $DIR (no ports.env): run '$0 up $DIR' first"
        PG_PORT=${EKMAN_PG_PORT:-55432}
        AMQP_PORT=${EKMAN_AMQP_PORT:-55672}
        SSH_PORT=${EKMAN_SSH_PORT:-2222}
        API_PORT=${EKMAN_API_PORT:-7667}
        for var in PG_PORT AMQP_PORT SSH_PORT API_PORT; do
            valid_port "${!var}" || die "EKMAN_$var='${!var}' is not a TCP port"
        done
        valid_port $((AMQP_PORT + 2)) || die "EKMAN_AMQP_PORT=$AMQP_PORT: +1 and +2 (Erlang dist, epmd) must be ports too"
        POOL=ekman-$(printf '%s' "$DIR" | sha256sum | cut -c1-8)
        cat >"$PORTS_ENV.tmp" <<EOF
# written by deploy/stack.sh at the first 'up'; delete the stack to change
EKMAN_PG_PORT=$PG_PORT
EKMAN_AMQP_PORT=$AMQP_PORT
EKMAN_AMQP_DIST_PORT=$((AMQP_PORT + 1))
EKMAN_EPMD_PORT=$((AMQP_PORT + 2))
EKMAN_SSH_PORT=$SSH_PORT
EKMAN_API_PORT=$API_PORT
EKMAN_POOL=$POOL
EOF
        mv -f "$PORTS_ENV.tmp" "$PORTS_ENV"
    fi
    PG_PORT=$(kv_get "$PORTS_ENV" EKMAN_PG_PORT)
    AMQP_PORT=$(kv_get "$PORTS_ENV" EKMAN_AMQP_PORT)
    DIST_PORT=$(kv_get "$PORTS_ENV" EKMAN_AMQP_DIST_PORT)
    EPMD_PORT=$(kv_get "$PORTS_ENV" EKMAN_EPMD_PORT)
    SSH_PORT=$(kv_get "$PORTS_ENV" EKMAN_SSH_PORT)
    API_PORT=$(kv_get "$PORTS_ENV" EKMAN_API_PORT)
    POOL=$(kv_get "$PORTS_ENV" EKMAN_POOL)
    for var in PG_PORT AMQP_PORT DIST_PORT EPMD_PORT SSH_PORT API_PORT; do
        valid_port "${!var}" || die "$PORTS_ENV: bad or missing EKMAN_$var"
    done
    [[ $POOL =~ ^ekman-[0-9a-f]{8}$ ]] || die "$PORTS_ENV: bad or missing EKMAN_POOL"
    for var in PG_PORT AMQP_PORT SSH_PORT API_PORT; do
        requested=EKMAN_$var stored=${!var}
        if [[ -n ${!requested:-} && ${!requested} != "$stored" ]]; then
            warn "$requested=${!requested} ignored: this stack uses $stored (from $PORTS_ENV; 'destroy' to change)"
        fi
    done
    RMQ_NODE=ekman-$AMQP_PORT@localhost
}

state_set() { # state_set KEY VALUE in DIR/state.env
    local tmp
    tmp=$(mktemp "$STATE_ENV.XXXXXX")
    {
        if [[ -f $STATE_ENV ]]; then grep -v "^$1=" "$STATE_ENV" || true; fi
        printf '%s=%s\n' "$1" "$2"
    } >"$tmp"
    mv -f "$tmp" "$STATE_ENV"
}

ssh_user() {
    local u
    u=$(kv_get "$STATE_ENV" EKMAN_SSH_USER)
    printf '%s\n' "${u:-$SSH_ACCOUNT}"
}

libvirt_uri() {
    printf 'qemu+libssh2://%s@127.0.0.1:%s/system?keyfile=%s&known_hosts=%s&sshauth=privkey\n' \
        "$(ssh_user)" "$SSH_PORT" "$SSH_KEY" "$SSH_KH"
}

lock_dir() {
    exec 9>"$DIR/.lock"
    flock -w 600 9 || die "another deploy/stack.sh holds $DIR/.lock"
}

# Every daemon is started with `9>&-` so it does not inherit the lock.

# ---------------------------------------------------------------- checks

check_tools() {
    local t missing=()
    for t in ss flock openssl ssh ssh-keygen virsh psql sha256sum runuser setsid; do
        command -v "$t" >/dev/null 2>&1 || missing+=("$t")
    done
    [[ -x /usr/sbin/sshd ]] || missing+=(sshd)
    [[ -x /usr/sbin/libvirtd ]] || missing+=(libvirtd)
    [[ -x $RMQ_BIN/rabbitmq-server ]] || missing+=(rabbitmq-server)
    [[ -n $(pg_bin) ]] || missing+=(postgresql)
    ((${#missing[@]} == 0)) || die "missing: ${missing[*]}; run deploy/install-deps.sh first"
}

pg_bin() { find /usr/lib/postgresql -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1; }

# The services' own users (postgres, libvirt-qemu, ekman-libvirt) must be
# able to traverse DIR and all its parents.
check_traversable() {
    local d=$DIR
    chmod o+x "$DIR"
    while [[ $d != / ]]; do
        d=$(dirname "$d")
        if [[ -z $(find "$d" -maxdepth 0 -perm -o+x 2>/dev/null) ]]; then
            warn "$d is not traversable by other users (o+x): postgres, libvirt-qemu and $SSH_ACCOUNT need it to reach $DIR"
        fi
    done
}

ensure_ssh_account() {
    local grp shell
    if ! getent passwd "$SSH_ACCOUNT" >/dev/null; then
        log "creating system user $SSH_ACCOUNT"
        useradd --system --create-home --home-dir "/var/lib/$SSH_ACCOUNT" --shell /bin/sh \
            --groups "$SSH_ACCOUNT_GROUPS" --password '*' \
            --comment 'Ekman local stack, libvirt over SSH' "$SSH_ACCOUNT" ||
            die "could not create user $SSH_ACCOUNT (run deploy/install-deps.sh)"
    fi
    for grp in ${SSH_ACCOUNT_GROUPS//,/ }; do
        id -nG "$SSH_ACCOUNT" | tr ' ' '\n' | grep -qx "$grp" || usermod -aG "$grp" "$SSH_ACCOUNT"
    done
    shell=$(getent passwd "$SSH_ACCOUNT" | cut -d: -f7)
    [[ -x $shell && $shell != */nologin && $shell != */false ]] || usermod --shell /bin/sh "$SSH_ACCOUNT"
    # UsePAM no: sshd refuses "locked" accounts ('!' password prefix).
    if [[ $(getent shadow "$SSH_ACCOUNT" | cut -d: -f2) == '!'* ]]; then
        usermod --password '*' "$SSH_ACCOUNT"
    fi
}

# ---------------------------------------------------------------- PostgreSQL

pg_pid() {
    local pid
    pid=$(read_pid "$PG_DATA/postmaster.pid")
    if pid_alive "$pid" postgres; then printf '%s\n' "$pid"; fi
}

pg_running() { [[ -n $(pg_pid) ]] && port_listening "$PG_PORT"; }

pg_psql() { # pg_psql ARGS...: psql as the postgres superuser over the socket
    psql -X -q -v ON_ERROR_STOP=1 -h "$PG_DIR" -p "$PG_PORT" -U postgres "$@"
}

pg_up() {
    local bin pid
    bin=$(pg_bin)
    if [[ -z $(pg_pid) ]]; then
        check_port_free postgresql "$PG_PORT"
        # A killed postmaster stays a zombie until PID 1 reaps it (~1 s
        # here), and until then PostgreSQL takes postmaster.pid as live.
        pid=$(read_pid "$PG_DATA/postmaster.pid")
        if [[ -n $pid ]] && pid_zombie "$pid"; then
            wait_for 20 not pid_zombie "$pid" || warn "postmaster $pid is still a zombie: pg_ctl may refuse to start"
        fi
        mkdir -p "$PG_DIR"
        chown postgres:postgres "$PG_DIR"
        chmod 0755 "$PG_DIR"
        if [[ ! -s $PG_DATA/PG_VERSION ]]; then
            rm -rf "$PG_DATA"
            log "postgresql: initdb $PG_DATA"
            (cd "$PG_DIR" && runuser -u postgres -- "$bin/initdb" -D "$PG_DATA" -U postgres \
                -A trust --no-sync -E UTF8 --locale=C) >"$PG_DIR/initdb.log" 2>&1 9>&- ||
                service_failed postgresql "$PG_DIR/initdb.log" "initdb failed"
            echo "include 'ekman-stack.conf'" >>"$PG_DATA/postgresql.conf"
        fi
        runuser -u postgres -- tee "$PG_DATA/ekman-stack.conf" >/dev/null <<EOF
# written by deploy/stack.sh at every 'up'
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_DIR'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
        runuser -u postgres -- tee "$PG_DATA/pg_hba.conf" >/dev/null <<'EOF'
# written by deploy/stack.sh: superuser over the unix socket for tests,
# passwords (scram-sha-256) everywhere else
# TYPE  DATABASE  USER      ADDRESS        METHOD
local   all       postgres                 trust
local   all       all                      scram-sha-256
host    all       all       127.0.0.1/32   scram-sha-256
EOF
        log "postgresql: starting on 127.0.0.1:$PG_PORT"
        (cd "$PG_DIR" && setsid -w runuser -u postgres -- "$bin/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" \
            -w -t "$PG_TIMEOUT" start) </dev/null >>"$PG_DIR/pg_ctl.log" 2>&1 9>&- ||
            service_failed postgresql "$PG_LOG" "pg_ctl start failed (see also $PG_DIR/pg_ctl.log)"
        STARTED+=(postgresql)
    fi
    pid=$(pg_pid)
    [[ -n $pid ]] || service_failed postgresql "$PG_LOG" "postmaster not running after start"
    echo "$pid" >"$PIDS/postgres.pid"
    wait_for "$PG_TIMEOUT" port_listening "$PG_PORT" ||
        service_failed postgresql "$PG_LOG" "not listening on 127.0.0.1:$PG_PORT"
    # Role and database (idempotent; also re-syncs the password).
    pg_psql -d postgres >/dev/null <<EOF || service_failed postgresql "$PG_LOG" "could not create role/database ekman"
SELECT 'CREATE ROLE ekman' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ekman')\gexec
ALTER ROLE ekman WITH LOGIN CREATEDB PASSWORD '$(secret pg_password)';
SELECT 'CREATE DATABASE ekman OWNER ekman' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'ekman')\gexec
EOF
}

pg_down() {
    local pid bin
    pid=$(pg_pid)
    [[ -z $pid ]] && pid=$(read_pid "$PIDS/postgres.pid")
    if pid_alive "$pid" postgres; then
        log "postgresql: stopping (pid $pid)"
        bin=$(pg_bin)
        (cd "$PG_DIR" && runuser -u postgres -- "$bin/pg_ctl" -D "$PG_DATA" -m fast -w -t "$STOP_TIMEOUT" stop) \
            </dev/null >>"$PG_DIR/pg_ctl.log" 2>&1 9>&- || warn "pg_ctl stop failed; killing the postmaster"
        stop_pid postgresql "$pid" postgres
    fi
    rm -f "$PIDS/postgres.pid"
}

# ---------------------------------------------------------------- RabbitMQ

rmq_env() { # the environment shared by the server and rabbitmqctl
    RMQ_ENV=(
        "HOME=$RMQ_DIR"
        "RABBITMQ_NODENAME=$RMQ_NODE"
        "RABBITMQ_CONF_ENV_FILE=$RMQ_DIR/rabbitmq-env.conf"
        "RABBITMQ_CONFIG_FILE=$RMQ_DIR/rabbitmq.conf"
        "RABBITMQ_ADVANCED_CONFIG_FILE=$RMQ_DIR/advanced.config"
        "RABBITMQ_ENABLED_PLUGINS_FILE=$RMQ_DIR/enabled_plugins"
        "RABBITMQ_MNESIA_BASE=$RMQ_DIR/mnesia"
        "RABBITMQ_LOG_BASE=$RMQ_DIR/log"
        "RABBITMQ_LOGS=$RMQ_LOG"
        "RABBITMQ_PID_FILE=$RMQ_DIR/rabbit.pid"
        "RABBITMQ_DIST_PORT=$DIST_PORT"
        "ERL_EPMD_PORT=$EPMD_PORT"
        "ERL_EPMD_ADDRESS=127.0.0.1"
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}"
    )
}

# DIR/rabbitmq/rabbitmqctl: rabbitmqctl bound to this stack's node (same
# HOME/cookie, node name, epmd port; its own dist listener on loopback).
# Exported as EKMAN_RABBITMQCTL.
rmq_write_ctl() {
    mkdir -p "$RMQ_DIR"
    write_if_changed "$RMQ_CTL" 0755 <<EOF || true
#!/bin/sh
# written by deploy/stack.sh: rabbitmqctl for the node of the stack in $DIR
export HOME='$RMQ_DIR' RABBITMQ_NODENAME='$RMQ_NODE'
export RABBITMQ_CONF_ENV_FILE='$RMQ_DIR/rabbitmq-env.conf' RABBITMQ_CONFIG_FILE='$RMQ_DIR/rabbitmq.conf'
export RABBITMQ_MNESIA_BASE='$RMQ_DIR/mnesia' RABBITMQ_LOG_BASE='$RMQ_DIR/log'
export ERL_EPMD_PORT='$EPMD_PORT' ERL_EPMD_ADDRESS=127.0.0.1
export RABBITMQ_CTL_ERL_ARGS='-kernel inet_dist_use_interface {127,0,0,1}'
exec '$RMQ_BIN/rabbitmqctl' "\$@"
EOF
}

rmqctl() { "$RMQ_CTL" "$@" 9>&-; }

# rmq_pid: the beam of this stack's node. rabbit.pid appears only some
# seconds into the boot, so also look for a beam.smp whose arguments carry
# "-home DIR/rabbitmq" (HOME of the node).
rmq_pid() {
    local pid f args
    pid=$(read_pid "$RMQ_DIR/rabbit.pid")
    if pid_alive "$pid" beam.smp; then printf '%s\n' "$pid"; return 0; fi
    while read -r f; do
        pid=${f#/proc/}
        pid=${pid%/cmdline}
        pid_alive "$pid" beam.smp || continue
        args=$(tr '\0' '\n' <"$f" 2>/dev/null) || continue
        if grep -qxF -- "$RMQ_DIR" <<<"$args" && grep -qx -- -home <<<"$args"; then
            printf '%s\n' "$pid"
            return 0
        fi
    done < <(grep -lsF -- "$RMQ_DIR" /proc/[0-9]*/cmdline)
    return 0
}

rmq_running() { [[ -n $(rmq_pid) ]] && port_listening "$AMQP_PORT"; }

epmd_pid() { # the epmd listening on EPMD_PORT, if any
    local pid
    for pid in $(port_pids "$EPMD_PORT"); do
        pid_alive "$pid" epmd && { printf '%s\n' "$pid"; return 0; }
    done
    return 0
}

# epmd_ours PID: recorded by `up`, or started by an Erlang process of this
# stack (the node or a rabbitmqctl with its env starts epmd on demand):
# its environment then has HOME=DIR/rabbitmq.
epmd_ours() {
    pid_alive "$1" epmd || return 1
    [[ $1 == "$(read_pid "$PIDS/epmd.pid")" ]] && return 0
    tr '\0' '\n' <"/proc/$1/environ" 2>/dev/null | grep -qxF "HOME=$RMQ_DIR"
}

epmd_up() {
    local pid
    pid=$(epmd_pid)
    if [[ -n $pid ]]; then
        epmd_ours "$pid" ||
            die "rabbitmq: an epmd this stack did not start (pid $pid) listens on 127.0.0.1:$EPMD_PORT; stop it or change EKMAN_AMQP_PORT"
        echo "$pid" >"$PIDS/epmd.pid"
        return 0
    fi
    check_port_free epmd "$EPMD_PORT"
    env ERL_EPMD_PORT="$EPMD_PORT" ERL_EPMD_ADDRESS=127.0.0.1 setsid epmd -daemon \
        </dev/null >>"$RMQ_STDOUT" 2>&1 9>&- || service_failed epmd "$RMQ_STDOUT" "epmd -daemon failed"
    wait_for 10 port_listening "$EPMD_PORT" || service_failed epmd "$RMQ_STDOUT" "epmd not listening on 127.0.0.1:$EPMD_PORT"
    pid=$(epmd_pid)
    [[ -n $pid ]] || service_failed epmd "$RMQ_STDOUT" "cannot find the PID of epmd on port $EPMD_PORT"
    echo "$pid" >"$PIDS/epmd.pid"
}

# rmq_start: launch the node in the background (no wait: see rmq_wait).
rmq_start() {
    RMQ_LAUNCHED='' RMQ_FRESH=''
    if [[ -n $(rmq_pid) ]]; then
        rmq_tls_ready && return 0
        log "rabbitmq: restarting the node: it listens without TLS"
        rmq_down
    fi
    check_port_free rabbitmq "$AMQP_PORT"
    check_port_free "rabbitmq (Erlang distribution)" "$DIST_PORT"
    [[ -d $RMQ_DIR/mnesia/$RMQ_NODE ]] || RMQ_FRESH=1
    mkdir -p "$RMQ_DIR/log" "$RMQ_DIR/mnesia"
    RMQ_LOG_OFFSET=$(stat -c %s "$RMQ_LOG" 2>/dev/null || echo 0)
    : >"$RMQ_DIR/rabbitmq-env.conf"
    echo '[].' >"$RMQ_DIR/enabled_plugins"
    rmq_tls_files
    # TLS only (AMQPS): no plain listener, not even on loopback.
    cat >"$RMQ_DIR/rabbitmq.conf" <<EOF
# written by deploy/stack.sh at every 'up'
listeners.tcp = none
listeners.ssl.default = 127.0.0.1:$AMQP_PORT
ssl_options.cacertfile = $RMQ_TLS/ca.pem
ssl_options.certfile = $RMQ_TLS/server.pem
ssl_options.keyfile = $RMQ_TLS/server.key
ssl_options.versions.1 = tlsv1.3
ssl_options.versions.2 = tlsv1.2
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
log.console = false
log.file.level = ${EKMAN_RABBITMQ_LOG_LEVEL:-info}
EOF
    epmd_up
    rm -f "$RMQ_DIR/rabbit.pid"
    log "rabbitmq: starting node $RMQ_NODE on 127.0.0.1:$AMQP_PORT"
    env "${RMQ_ENV[@]}" setsid "$RMQ_BIN/rabbitmq-server" </dev/null >>"$RMQ_STDOUT" 2>&1 9>&- &
    echo "$!" >"$PIDS/rabbitmq-server.pid" # the sh wrapper around beam
    RMQ_LAUNCHED=1
    STARTED+=(rabbitmq)
}

rmq_ready() {
    local wrapper
    wrapper=$(read_pid "$PIDS/rabbitmq-server.pid")
    if [[ -z $(rmq_pid) && -n $RMQ_LAUNCHED ]] && ! pid_alive "$wrapper"; then
        RMQ_DIED=1
        return 0
    fi
    rmq_running || return 1
    # Launched now: also wait for the end of the boot in the log (cheaper
    # than a `rabbitmqctl await_startup`, which costs ~0.6 s of CLI start).
    [[ -z $RMQ_LAUNCHED ]] || tail -c +$((RMQ_LOG_OFFSET + 1)) "$RMQ_LOG" 2>/dev/null | grep -q 'Server startup complete'
}

rmq_wait() {
    local pid
    RMQ_DIED=
    if [[ -n $RMQ_LAUNCHED ]]; then
        wait_for "$RMQ_TIMEOUT" rmq_ready ||
            { rmq_kill_failed; service_failed rabbitmq "$RMQ_LOG" "not ready within ${RMQ_TIMEOUT}s (also see $RMQ_STDOUT)"; }
        [[ -z $RMQ_DIED ]] || service_failed rabbitmq "$RMQ_LOG" "the node exited (also see $RMQ_STDOUT)"
    elif ! rmq_running; then
        # A node of ours from before that is not listening (yet).
        if ! rmqctl -q await_startup --timeout "$RMQ_TIMEOUT" >>"$RMQ_STDOUT" 2>&1 || ! rmq_running; then
            rmq_kill_failed
            service_failed rabbitmq "$RMQ_LOG" "node $RMQ_NODE does not come up (also see $RMQ_STDOUT)"
        fi
    fi
    pid=$(rmq_pid)
    echo "$pid" >"$PIDS/rabbitmq.pid"
    rmq_provision 3>&1 >>"$RMQ_STDOUT" 2>&1 || service_failed rabbitmq "$RMQ_STDOUT" "could not create vhost/user ekman"
}

# rmq_tls_files: a CA (its key in DIR/secrets) and the broker's certificate
# for localhost and 127.0.0.1, made once. Clients check the broker against
# DIR/rabbitmq/tls/ca.pem (cacertfile= in the URLs). To rotate: delete
# DIR/secrets/amqp_ca.key, DIR/rabbitmq/tls, then down + up.
rmq_tls_files() {
    RMQ_TLS=$RMQ_DIR/tls
    mkdir -p "$RMQ_TLS"
    chmod 0755 "$RMQ_TLS"
    if [[ ! -s $SECRETS/amqp_ca.key || ! -s $RMQ_TLS/ca.pem ]]; then
        (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
            -out "$SECRETS/amqp_ca.key" 2>/dev/null) || die "rabbitmq: openssl could not make the CA key"
        openssl req -x509 -new -key "$SECRETS/amqp_ca.key" -subj "/CN=Ekman stack bus CA $POOL" \
            -days 3650 -sha256 -addext basicConstraints=critical,CA:TRUE \
            -addext keyUsage=critical,keyCertSign,cRLSign -out "$RMQ_TLS/ca.pem" 2>/dev/null ||
            die "rabbitmq: openssl could not make the CA certificate"
        rm -f "$RMQ_TLS/server.pem"
    fi
    if [[ ! -s $RMQ_TLS/server.pem || ! -s $RMQ_TLS/server.key ]]; then
        (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
            -out "$RMQ_TLS/server.key" 2>/dev/null) || die "rabbitmq: openssl could not make the broker key"
        openssl req -new -key "$RMQ_TLS/server.key" -subj /CN=localhost -out "$RMQ_TLS/server.csr" 2>/dev/null &&
            openssl x509 -req -in "$RMQ_TLS/server.csr" -CA "$RMQ_TLS/ca.pem" -CAkey "$SECRETS/amqp_ca.key" \
                -CAcreateserial -days 825 -sha256 -out "$RMQ_TLS/server.pem" \
                -extfile <(printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n') \
                2>/dev/null || die "rabbitmq: openssl could not sign the broker certificate"
        rm -f "$RMQ_TLS/server.csr" "$RMQ_TLS/ca.srl"
    fi
    chmod 0644 "$RMQ_TLS/ca.pem" "$RMQ_TLS/server.pem"
    chmod 0600 "$RMQ_TLS/server.key"
}

# api_tls_files: the certificate of Ekman's API (the conductor's HTTPS, [api]
# tls_cert_file/tls_key_file) for 127.0.0.1 and localhost, signed by the
# stack's CA (the one of the broker: clients trust DIR/rabbitmq/tls/ca.pem,
# EKMAN_CA_FILE). Made again when missing or when it no longer verifies
# against the CA (the CA was rotated, or it expired).
api_tls_files() {
    local ca=$RMQ_DIR/tls/ca.pem
    [[ -s $ca && -s $SECRETS/amqp_ca.key ]] ||
        die "api: the stack's CA ($ca, $SECRETS/amqp_ca.key) is missing: run '$0 up $DIR'"
    mkdir -p "$API_TLS"
    chmod 0755 "$API_TLS"
    if [[ -s $API_TLS/server.key && -s $API_TLS/server.pem ]] &&
        openssl verify -CAfile "$ca" -purpose sslserver "$API_TLS/server.pem" >/dev/null 2>&1; then
        return 0
    fi
    (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
        -out "$API_TLS/server.key.tmp" 2>/dev/null) || die "api: openssl could not make the API's key"
    openssl req -new -key "$API_TLS/server.key.tmp" -subj /CN=localhost -out "$API_TLS/server.csr" 2>/dev/null &&
        openssl x509 -req -in "$API_TLS/server.csr" -CA "$ca" -CAkey "$SECRETS/amqp_ca.key" \
            -CAcreateserial -CAserial "$API_TLS/ca.srl" -days 825 -sha256 -out "$API_TLS/server.pem.tmp" \
            -extfile <(printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n') \
            2>/dev/null || die "api: openssl could not sign the API's certificate"
    chmod 0600 "$API_TLS/server.key.tmp"
    chmod 0644 "$API_TLS/server.pem.tmp"
    mv -f "$API_TLS/server.key.tmp" "$API_TLS/server.key"
    mv -f "$API_TLS/server.pem.tmp" "$API_TLS/server.pem"
    rm -f "$API_TLS/server.csr" "$API_TLS/ca.srl"
    log "api: made the API's certificate $API_TLS/server.pem (signed by $ca)" >&2 # (env: stdout is eval'd)
}

# rmq_tls_ready: the node's configuration is the TLS-only one.
rmq_tls_ready() { grep -qx 'listeners.tcp = none' "$RMQ_DIR/rabbitmq.conf" 2>/dev/null; }

# One broker user per role, each allowed (configure, write, read regexes on
# the names of exchanges and queues) only what common/amqp.c needs for that
# role: queues ekman.<role>[.<name>] reached through exchanges x.ekman.<role>,
# dead letters through x.ekman.dead, answers through x.ekman.reply to
# exclusive ekman.reply.<uuid> queues. ekman (transport_url) is the
# operator's user for tools; daemons use their role's user.
readonly RMQ_ROLES='conductor worker scheduler'
rmq_role_perms() { # rmq_role_perms ROLE: configure write read
    local r='ekman\.reply\..+'
    case $1 in
        conductor) printf '%s\n' \
            "^(ekman\.conductor(\.dead)?|$r|x\.ekman\.(conductor|dead|reply))\$" \
            "^(ekman\.conductor(\.dead)?|$r|x\.ekman\.(worker|dead|reply))\$" \
            "^(ekman\.conductor|$r|x\.ekman\.(conductor|dead|reply))\$" ;;
        worker) printf '%s\n' \
            "^(ekman\.worker(\..+)?|$r|x\.ekman\.(worker|dead|reply))\$" \
            "^(ekman\.worker(\..+)?|$r|x\.ekman\.(conductor|scheduler|dead|reply))\$" \
            "^(ekman\.worker(\..+)?|$r|x\.ekman\.(worker|dead|reply))\$" ;;
        scheduler) printf '%s\n' \
            '^(ekman\.scheduler(\.dead)?|x\.ekman\.(scheduler|dead))$' \
            '^(ekman\.scheduler(\.dead)?|x\.ekman\.dead)$' \
            '^(ekman\.scheduler|x\.ekman\.(scheduler|dead))$' ;;
    esac
}

# rmq_user NAME SECRET: create or re-password a user.
rmq_user() {
    if [[ -z $RMQ_FRESH ]] && rmqctl -q list_users | cut -f1 | grep -qx "$1"; then
        secret "$2" | rmqctl -q change_password "$1" || return 1
    else
        secret "$2" | rmqctl -q add_user "$1" || return 1
    fi
}

# vhost + users. The definitions persist in mnesia, so this runs once per
# set of passwords and permissions (marker = hash of them), not at every
# start. A vhost from before the exchange topology (issue #17) is recreated:
# its queues dead-letter through the default exchange.
rmq_provision() {
    local marker role perms old
    marker=v2-$({ for f in amqp_password amqp_conductor_password amqp_worker_password amqp_scheduler_password; do secret $f; done
        for role in $RMQ_ROLES; do rmq_role_perms "$role"; done; } | sha256sum | cut -c1-16)
    old=$(cat "$RMQ_DIR/provisioned" 2>/dev/null || true)
    [[ $old == "$marker" ]] && return 0
    log "rabbitmq: creating vhost ekman and users ekman, ekman-conductor, ekman-worker, ekman-scheduler" >&3
    # (each rabbitmqctl call costs ~0.6 s: on a fresh node skip the lookups)
    if [[ -z $RMQ_FRESH && -n $old && $old != v2-* ]] && rmqctl -q list_vhosts name | grep -qx ekman; then
        log "rabbitmq: recreating vhost ekman (its queues predate the exchange topology)" >&3
        rmqctl -q delete_vhost ekman || return 1
        rmqctl -q add_vhost ekman || return 1
    elif [[ -n $RMQ_FRESH ]] || ! rmqctl -q list_vhosts name | grep -qx ekman; then
        rmqctl -q add_vhost ekman || return 1
    fi
    # the default guest user (full rights on /) is not needed
    if [[ -n $RMQ_FRESH ]] || rmqctl -q list_users | cut -f1 | grep -qx guest; then
        rmqctl -q delete_user guest || return 1
    fi
    rmq_user ekman amqp_password || return 1
    rmqctl -q set_permissions -p ekman ekman '.*' '.*' '.*' || return 1
    for role in $RMQ_ROLES; do
        rmq_user "ekman-$role" "amqp_${role}_password" || return 1
        mapfile -t perms < <(rmq_role_perms "$role")
        rmqctl -q set_permissions -p ekman "ekman-$role" "${perms[@]}" || return 1
    done
    echo "$marker" >"$RMQ_DIR/provisioned"
}

# amqp_url USER SECRET: the AMQPS URL of a broker user of the stack.
amqp_url() {
    printf 'amqps://%s:%s@localhost:%s/ekman?cacertfile=%s\n' "$1" "$(secret "$2")" "$AMQP_PORT" "$RMQ_DIR/tls/ca.pem"
}

rmq_kill_failed() { # stop a node that did not come up (e.g. BOOT FAILED)
    local pid
    pid=$(rmq_pid)
    [[ -n $pid ]] && stop_pid rabbitmq "$pid" beam.smp
    pid=$(read_pid "$PIDS/rabbitmq-server.pid")
    stop_pid rabbitmq-server "$pid" rabbitmq-server
    return 0
}

rmq_down() {
    local pid
    for pid in $(rmq_pid) $(read_pid "$PIDS/rabbitmq.pid"); do
        if pid_alive "$pid" beam.smp; then
            log "rabbitmq: stopping (pid $pid)"
            stop_pid rabbitmq "$pid" beam.smp
        fi
    done
    stop_pid rabbitmq-server "$(read_pid "$PIDS/rabbitmq-server.pid")" rabbitmq-server
    # epmd daemonizes and survives the node: stop the one on our port, but
    # only if this stack started it (recorded PID).
    for pid in $(epmd_pid) $(read_pid "$PIDS/epmd.pid"); do
        if epmd_ours "$pid"; then
            log "rabbitmq: stopping epmd (pid $pid)"
            stop_pid epmd "$pid" epmd
        fi
    done
    pid=$(epmd_pid)
    [[ -z $pid ]] || warn "an epmd this stack did not start (pid $pid) listens on 127.0.0.1:$EPMD_PORT: left alone"
    rm -f "$PIDS/rabbitmq.pid" "$PIDS/rabbitmq-server.pid" "$PIDS/epmd.pid" "$RMQ_DIR/rabbit.pid"
}

# ---------------------------------------------------------------- libvirt

libvirtd_pid() { # the system libvirtd (pid file /run/libvirtd.pid), if alive
    local pid
    pid=$(read_pid "$LIBVIRTD_PIDFILE")
    if pid_alive "$pid" libvirtd; then printf '%s\n' "$pid"; fi
}

virtlogd_pid() {
    local pid
    pid=$(read_pid "$VIRTLOGD_PIDFILE")
    if pid_alive "$pid" virtlogd; then printf '%s\n' "$pid"; fi
}

# ours NAME PID: this stack started the process (recorded in DIR/pids).
ours() { [[ -n $2 && $2 == "$(read_pid "$PIDS/$1.pid")" ]]; }

virsh_local() { timeout 30 virsh -q -c "$LIBVIRT_URI_LOCAL" "$@" 9>&-; }

libvirt_answers() { timeout 10 virsh -q -c "$LIBVIRT_URI_LOCAL" version >/dev/null 2>&1 9>&-; }

# kvm_device_mode: /dev/kvm as udev leaves it on any Debian host
# (systemd's 50-udev-default.rules: GROUP "kvm", MODE 0660). Where no udev
# runs (containers, this project's CI machines) it stays root 0600, and then
# libvirtd's QEMU capabilities never stay cached: its probe finds KVM, its
# check of whether QEMU's user (libvirt-qemu, group kvm) may use KVM says no,
# and every lookup ("KVM is not supported anymore") drops the cache and probes
# QEMU again, ~4 s each: defining a domain took 40 s instead of 0.03 s, a
# worker VM ~70 s. The stack's domains are type qemu (TCG) either way.
kvm_device_mode() {
    [[ -c /dev/kvm ]] && getent group kvm >/dev/null || return 0
    [[ $(stat -c '%G %a' /dev/kvm) == "kvm 660" ]] && return 0
    log "libvirt: /dev/kvm to group kvm, mode 0660 (udev's rule; no udev runs here to apply it)"
    chgrp kvm /dev/kvm && chmod 0660 /dev/kvm || warn "could not set /dev/kvm's group and mode"
}

# libvirt_start: launch virtlogd + libvirtd if needed (no wait).
libvirt_start() {
    local pid conf
    mkdir -p /run/libvirt "$LV_DIR"
    kvm_device_mode
    pid=$(virtlogd_pid)
    if [[ -z $pid ]]; then
        grep -Ev '^[[:space:]]*log_outputs[[:space:]]*=' /etc/libvirt/virtlogd.conf 2>/dev/null >"$LV_DIR/virtlogd.conf" || true
        echo "log_outputs = \"3:file:$VL_LOG\"" >>"$LV_DIR/virtlogd.conf"
        log "libvirt: starting virtlogd"
        setsid /usr/sbin/virtlogd -d -f "$LV_DIR/virtlogd.conf" </dev/null >>"$VL_LOG" 2>&1 9>&- ||
            service_failed virtlogd "$VL_LOG" "virtlogd -d failed"
        wait_for 10 has_output virtlogd_pid || service_failed virtlogd "$VL_LOG" "no live pid in $VIRTLOGD_PIDFILE"
        virtlogd_pid >"$PIDS/virtlogd.pid"
        STARTED+=(virtlogd)
    elif ! ours virtlogd "$pid"; then
        rm -f "$PIDS/virtlogd.pid"
    fi
    pid=$(libvirtd_pid)
    if [[ -n $pid ]]; then
        ours libvirtd "$pid" || { log "libvirt: reusing the running libvirtd (pid $pid), not started by this stack"; rm -f "$PIDS/libvirtd.pid"; }
        return 0
    fi
    rm -f "$PIDS/libvirtd.pid"
    if libvirt_answers; then
        log "libvirt: reusing the libvirt daemon answering $LIBVIRT_URI_LOCAL (not started by this stack)"
        return 0
    fi
    # Our copy of libvirtd.conf: socket rw for group libvirt without polkit.
    conf=$LV_DIR/libvirtd.conf
    {
        echo "# written by deploy/stack.sh: /etc/libvirt/libvirtd.conf + the overrides at the end"
        grep -Ev '^[[:space:]]*(unix_sock_group|unix_sock_ro_perms|unix_sock_rw_perms|auth_unix_ro|auth_unix_rw|log_outputs)[[:space:]]*=' \
            /etc/libvirt/libvirtd.conf 2>/dev/null || true
        cat <<EOF
unix_sock_group = "libvirt"
unix_sock_ro_perms = "0777"
unix_sock_rw_perms = "0770"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:file:$LV_LOG"
EOF
    } >"$conf"
    log "libvirt: starting libvirtd -f $conf"
    setsid /usr/sbin/libvirtd -d -f "$conf" </dev/null >>"$LV_LOG" 2>&1 9>&- ||
        service_failed libvirtd "$LV_LOG" "libvirtd -d failed"
    wait_for 10 has_output libvirtd_pid || service_failed libvirtd "$LV_LOG" "no live pid in $LIBVIRTD_PIDFILE"
    libvirtd_pid >"$PIDS/libvirtd.pid"
    STARTED+=(libvirtd)
}

libvirt_answers_or_died() { # PID: stop waiting when the daemon we started died
    libvirt_answers || { [[ -n $1 ]] && ! pid_alive "$1" libvirtd; }
}

libvirt_wait() {
    local pid
    pid=$(read_pid "$PIDS/libvirtd.pid")
    wait_for "$LIBVIRT_TIMEOUT" libvirt_answers_or_died "$pid" ||
        service_failed libvirtd "$LV_LOG" "$LIBVIRT_URI_LOCAL does not answer after ${LIBVIRT_TIMEOUT}s"
    libvirt_answers || service_failed libvirtd "$LV_LOG" "libvirtd (pid $pid) exited"
}

pool_state() { # prints: absent | inactive | running
    local info
    info=$(virsh_local pool-info "$POOL" 2>/dev/null) || { echo absent; return 0; }
    if grep -Eq '^State:[[:space:]]+running' <<<"$info"; then echo running; else echo inactive; fi
}

pool_up() {
    local state target
    mkdir -p "$POOL_DIR"
    chmod 0755 "$POOL_DIR"
    state=$(pool_state)
    if [[ $state == absent ]]; then
        log "libvirt: defining storage pool $POOL (dir $POOL_DIR)"
        virsh_local pool-define-as "$POOL" dir --target "$POOL_DIR" >/dev/null ||
            service_failed "libvirt pool" "$LV_LOG" "pool-define-as $POOL failed"
        state=inactive
    else
        target=$(virsh_local pool-dumpxml "$POOL" | sed -n 's:.*<path>\(.*\)</path>.*:\1:p' | head -n 1)
        [[ $target == "$POOL_DIR" ]] || die "libvirt: pool $POOL exists with target '$target', expected $POOL_DIR"
    fi
    if [[ $state != running ]]; then
        virsh_local pool-start "$POOL" >/dev/null || service_failed "libvirt pool" "$LV_LOG" "pool-start $POOL failed"
        STARTED+=(pool)
    fi
}

pool_down() {
    local state
    libvirt_answers || return 0
    state=$(pool_state)
    [[ $state == running ]] && { virsh_local pool-destroy "$POOL" >/dev/null || warn "pool-destroy $POOL failed"; }
    if [[ $state != absent ]]; then
        log "libvirt: removing storage pool $POOL (files in $POOL_DIR kept)"
        virsh_local pool-undefine "$POOL" >/dev/null || warn "pool-undefine $POOL failed"
    fi
}

# The stack's NAT network (named like the pool): worker VMs get a DHCP
# address on it and the host reaches them directly. Its /24 is derived from
# the pool's hash, moved on past subnets a route or another network uses.
net_state() { # prints: absent | inactive | running
    local info
    info=$(virsh_local net-info "$POOL" 2>/dev/null) || { echo absent; return 0; }
    if grep -Eq '^Active:[[:space:]]+yes' <<<"$info"; then echo running; else echo inactive; fi
}

net_pick_subnet() { # prints X of a free 192.168.X.0/24, X in 100..250
    local used x i n
    used=$(ip -4 route 2>/dev/null
        for n in $(virsh_local net-list --all --name 2>/dev/null); do virsh_local net-dumpxml "$n" 2>/dev/null; done)
    x=$((100 + 16#${POOL#ekman-} % 151))
    for ((i = 0; i < 151; i++)); do
        grep -q "192\.168\.$x\." <<<"$used" || { echo "$x"; return 0; }
        x=$(((x - 100 + 1) % 151 + 100))
    done
    return 1
}

net_up() {
    local state x
    state=$(net_state)
    if [[ $state == absent ]]; then
        x=$(net_pick_subnet) || die "libvirt: no free 192.168.100-250.0/24 subnet for network $POOL"
        log "libvirt: defining network $POOL (192.168.$x.0/24, bridge ekbr-${POOL#ekman-})"
        cat >"$LV_DIR/network.xml" <<EOF
<network xmlns:dnsmasq='http://libvirt.org/schemas/network/dnsmasq/1.0'>
  <name>$POOL</name>
  <forward mode='nat'/>
  <bridge name='ekbr-${POOL#ekman-}' stp='off' delay='0'/>
  <ip address='192.168.$x.1' netmask='255.255.255.0'>
    <dhcp><range start='192.168.$x.10' end='192.168.$x.250'/></dhcp>
  </ip>
  <dnsmasq:options><dnsmasq:option value='no-ping'/></dnsmasq:options>
</network>
EOF
        virsh_local net-define "$LV_DIR/network.xml" >/dev/null ||
            service_failed "libvirt network" "$LV_LOG" "net-define $POOL failed ($LV_DIR/network.xml)"
        state=inactive
    fi
    if [[ $state != running ]]; then
        virsh_local net-start "$POOL" >/dev/null ||
            service_failed "libvirt network" "$LV_LOG" "net-start $POOL failed (are dnsmasq-base and iptables installed?)"
        STARTED+=(network)
    fi
}

net_down() {
    local state
    libvirt_answers || return 0
    state=$(net_state)
    [[ $state == running ]] && { virsh_local net-destroy "$POOL" >/dev/null || warn "net-destroy $POOL failed"; }
    if [[ $state != absent ]]; then
        log "libvirt: removing network $POOL"
        virsh_local net-undefine "$POOL" >/dev/null || warn "net-undefine $POOL failed"
    fi
}

# With EKMAN_WORKER_IMAGE=1: build Ekman's worker image (deploy/worker-image,
# ekman-writer from EKMAN_BUILD_DIR, default build/) and upload it into the
# pool as volume ekman-worker.qcow2 whenever it changed.
worker_image_up() {
    local bdir=${EKMAN_BUILD_DIR:-$ROOT_DIR/build} img stamp=$LV_DIR/worker-image.manifest
    [[ ${EKMAN_WORKER_IMAGE:-0} == 1 ]] || return 0
    img=$bdir/worker-image/ekman-worker.qcow2
    "$ROOT_DIR/deploy/worker-image/build.sh" --build-dir "$bdir" --output "$img" 9>&- ||
        die "libvirt: building the worker image failed (deploy/worker-image/build.sh --build-dir $bdir)"
    if [[ -f $POOL_DIR/$WORKER_VOLUME ]] && cmp -s "$img.manifest" "$stamp"; then return 0; fi
    log "libvirt: uploading the worker image into pool $POOL as $WORKER_VOLUME"
    virsh_local vol-delete --pool "$POOL" "$WORKER_VOLUME" >/dev/null 2>&1 || true
    if ! { virsh_local vol-create-as "$POOL" "$WORKER_VOLUME" "$(stat -c %s "$img")" --format qcow2 >/dev/null &&
        timeout 300 virsh -q -c "$LIBVIRT_URI_LOCAL" vol-upload --pool "$POOL" "$WORKER_VOLUME" "$img" 9>&-; }; then
        die "libvirt: uploading $img into pool $POOL failed"
    fi
    cp "$img.manifest" "$stamp"
}

libvirt_down() {
    local pid n
    net_down
    pool_down
    pid=$(libvirtd_pid)
    if ours libvirtd "$pid"; then
        n=$(virsh_local list --name 2>/dev/null | grep -c . || true)
        ((n == 0)) || warn "libvirtd has $n running domain(s): their QEMU processes keep running without it"
        log "libvirt: stopping libvirtd (pid $pid)"
        stop_pid libvirtd "$pid" libvirtd
    elif [[ -n $pid ]]; then
        log "libvirt: leaving libvirtd (pid $pid) running: this stack did not start it"
    fi
    pid=$(virtlogd_pid)
    if ours virtlogd "$pid"; then
        log "libvirt: stopping virtlogd (pid $pid)"
        stop_pid virtlogd "$pid" virtlogd
    fi
    rm -f "$PIDS/libvirtd.pid" "$PIDS/virtlogd.pid"
}

# ---------------------------------------------------------------- sshd

sshd_pid() {
    local pid
    pid=$(read_pid "$PIDS/sshd.pid")
    if pid_alive "$pid" sshd; then printf '%s\n' "$pid"; fi
}

sshd_running() { [[ -n $(sshd_pid) ]] && port_listening "$SSH_PORT"; }

ssh_files() {
    local pub
    SSHD_CONF_CHANGED=
    mkdir -p "$SSH_DIR"
    chmod 0755 "$SSH_DIR"
    [[ -s $SSH_DIR/ssh_host_ed25519_key ]] ||
        ssh-keygen -q -t ed25519 -N '' -C ekman-stack-host -f "$SSH_DIR/ssh_host_ed25519_key"
    # ed25519 only: libssh2 1.10 signs RSA with SHA-1, which OpenSSH 9 refuses.
    [[ -s $SSH_KEY ]] || ssh-keygen -q -t ed25519 -N '' -C ekman-stack-client -f "$SSH_KEY"
    chmod 0600 "$SSH_KEY" "$SSH_DIR/ssh_host_ed25519_key"
    # sshd reads this file as the target user: world-readable.
    write_if_changed "$SSH_DIR/authorized_keys" 0644 <"$SSH_KEY.pub" || true
    read -r pub <"$SSH_DIR/ssh_host_ed25519_key.pub"
    printf '[127.0.0.1]:%s %s\n' "$SSH_PORT" "${pub% *}" | write_if_changed "$SSH_KH" 0644 || true
    write_if_changed "$SSH_DIR/sshd_config" 0644 <<EOF && SSHD_CONF_CHANGED=1
# written by deploy/stack.sh at every 'up'
ListenAddress 127.0.0.1
Port $SSH_PORT
HostKey $SSH_DIR/ssh_host_ed25519_key
PidFile $PIDS/sshd.pid
AuthorizedKeysFile $SSH_DIR/authorized_keys
AllowUsers $(ssh_user)
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AllowTcpForwarding yes
AllowStreamLocalForwarding yes
StreamLocalBindUnlink yes
X11Forwarding no
PrintMotd no
MaxStartups 100:30:200
MaxSessions 100
Subsystem sftp internal-sftp
LogLevel INFO
EOF
    return 0
}

sshd_up() {
    local pid
    ssh_files
    mkdir -p /run/sshd
    chmod 0755 /run/sshd
    /usr/sbin/sshd -t -f "$SSH_DIR/sshd_config" 2>"$SSH_DIR/sshd-check.log" ||
        service_failed sshd "$SSH_DIR/sshd-check.log" "sshd -t rejects $SSH_DIR/sshd_config"
    pid=$(sshd_pid)
    if [[ -n $pid ]]; then
        if [[ -n $SSHD_CONF_CHANGED ]]; then
            log "sshd: configuration changed, reloading (pid $pid)"
            kill -HUP "$pid"
        fi
    else
        check_port_free sshd "$SSH_PORT"
        log "sshd: starting on 127.0.0.1:$SSH_PORT"
        setsid /usr/sbin/sshd -f "$SSH_DIR/sshd_config" -E "$SSH_LOG" </dev/null >/dev/null 2>&1 9>&- ||
            service_failed sshd "$SSH_LOG" "sshd failed"
        STARTED+=(sshd)
    fi
    wait_for "$SSH_TIMEOUT" sshd_running || service_failed sshd "$SSH_LOG" "not listening on 127.0.0.1:$SSH_PORT"
    wait_for "$SSH_TIMEOUT" ssh_probe true ||
        service_failed sshd "$SSH_LOG" "'ssh -i $SSH_KEY $(ssh_user)@127.0.0.1 -p $SSH_PORT true' fails"
}

ssh_probe() { # ssh_probe CMD...: run CMD as the SSH account through our sshd
    timeout 15 ssh -q -F /dev/null -p "$SSH_PORT" -i "$SSH_KEY" -o IdentitiesOnly=yes -o BatchMode=yes \
        -o UserKnownHostsFile="$SSH_KH" -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes \
        -o ConnectTimeout=5 "$(ssh_user)@127.0.0.1" "$@" </dev/null >/dev/null 2>&1 9>&-
}

sshd_down() {
    local pid
    pid=$(sshd_pid)
    if [[ -n $pid ]]; then
        log "sshd: stopping (pid $pid)"
        stop_pid sshd "$pid" sshd
    fi
    rm -f "$PIDS/sshd.pid"
}

# Which account Ekman uses over SSH: ekman-libvirt if it may use
# qemu:///system through the unix socket, else root.
choose_ssh_user() {
    local user=$SSH_ACCOUNT
    if ! (cd / && runuser -u "$SSH_ACCOUNT" -- timeout 20 virsh -q -c "$LIBVIRT_URI_LOCAL" version) >/dev/null 2>"$LV_DIR/access-check.log" 9>&-; then
        # Only reachable when a libvirtd this stack did not start refuses the
        # group (e.g. polkit auth without D-Bus): root bypasses that check.
        warn "$SSH_ACCOUNT cannot use $LIBVIRT_URI_LOCAL ($(tail -n 1 "$LV_DIR/access-check.log")): falling back to root for SSH"
        user=root
    fi
    state_set EKMAN_SSH_USER "$user"
}

# ---------------------------------------------------------------- config

write_conf() {
    write_if_changed "$CONF" 0600 <<EOF || true
# Ekman configuration of the local stack, written by deploy/stack.sh
[DEFAULT]
log_level = info
encryption_key = $(secret encryption_key)
# this stack's own state (the worker's key pair: [worker] key_file)
state_dir = $DIR/state

[database]
connection = postgresql://ekman:$(secret pg_password)@127.0.0.1:$PG_PORT/ekman

# AMQPS, the broker checked against the stack's CA; one broker user per
# daemon role (<role>_transport_url), transport_url for tools
[messaging]
transport_url = $(amqp_url ekman amqp_password)
conductor_transport_url = $(amqp_url ekman-conductor amqp_conductor_password)
worker_transport_url = $(amqp_url ekman-worker amqp_worker_password)
scheduler_transport_url = $(amqp_url ekman-scheduler amqp_scheduler_password)

# HTTPS with a certificate of the stack's CA (clients: EKMAN_CA_FILE)
[api]
listen_address = 127.0.0.1
port = $API_PORT
tls_cert_file = $API_TLS/server.pem
tls_key_file = $API_TLS/server.key

[worker]
region =

[libvirt_migration_provider]
default_storage_pool = $POOL
migr_worker_network = $POOL
$([[ -f $POOL_DIR/$WORKER_VOLUME ]] && echo "migr_image_map = linux:$WORKER_VOLUME")
$([[ -d $DIR/osmorphing-packages ]] && echo "osmorphing_packages_dir = $DIR/osmorphing-packages")

# VMware exports (.ova) put in DIR/ova can be migrated (an "ova" endpoint)
[ova]
allowed_roots = $DIR/ova

# "local" endpoints (directories of disk images on the worker) only under DIR/local
[local]
allowed_roots = $DIR/local
EOF
}

# ---------------------------------------------------------------- commands

cmd_up() {
    local t0 s
    t0=$(now_ms)
    require_root up
    check_tools
    mkdir -p "$DIR" "$DIR/ova" "$DIR/local"
    mkdir -p -m 0700 "$DIR/state"
    chmod 0755 "$DIR" "$DIR/local"
    lock_dir
    load_ports init
    echo '*' >"$DIR/.gitignore"
    mkdir -p "$PIDS" "$SECRETS"
    chmod 0700 "$SECRETS"
    gen_secret "$SECRETS/pg_password" password
    gen_secret "$SECRETS/amqp_password" password
    for s in conductor worker scheduler; do gen_secret "$SECRETS/amqp_${s}_password" password; done
    gen_secret "$SECRETS/encryption_key" key
    rmq_env
    rmq_write_ctl
    # Fast path: everything already runs (and was provisioned) -> report.
    if [[ -s $CONF && $(cat "$RMQ_DIR/provisioned" 2>/dev/null) == v2-* ]] && rmq_tls_ready && status_lines >"$DIR/status.txt" && [[ -n $STATUS_ALL_RUNNING ]]; then
        worker_image_up
        RMQ_FRESH=''
        rmq_provision 3>&1 >>"$RMQ_STDOUT" 2>&1 || service_failed rabbitmq "$RMQ_STDOUT" "could not update the broker users"
        api_tls_files
        write_conf
        log "already up, nothing to start; stack dir $DIR"
        cat "$DIR/status.txt"
        return 0
    fi
    # Preflight: the ports of what is about to start must be free.
    [[ -n $(pg_pid) ]] || check_port_free postgresql "$PG_PORT"
    if [[ -z $(rmq_pid) ]]; then
        check_port_free rabbitmq "$AMQP_PORT"
        check_port_free "rabbitmq (Erlang distribution)" "$DIST_PORT"
    fi
    [[ -n $(epmd_pid) ]] || check_port_free epmd "$EPMD_PORT"
    [[ -n $(sshd_pid) ]] || check_port_free sshd "$SSH_PORT"
    check_traversable
    ensure_ssh_account
    STARTED=()

    # Slow starters first, in the background: libvirtd, RabbitMQ.
    libvirt_start
    rmq_start
    pg_up
    libvirt_wait
    pool_up
    net_up
    worker_image_up
    choose_ssh_user
    sshd_up
    rmq_wait
    if ((${#STARTED[@]} > 0)); then
        # End to end: the URI Ekman uses reaches libvirt and sees the pool.
        timeout 60 virsh -q -c "$(libvirt_uri)" pool-info "$POOL" >"$LV_DIR/uri-check.log" 2>&1 9>&- ||
            service_failed "libvirt over SSH" "$LV_DIR/uri-check.log" "virsh -c '$(libvirt_uri)' pool-info $POOL failed (sshd log: $SSH_LOG)"
    fi
    api_tls_files
    write_conf
    s=$(($(now_ms) - t0))
    if ((${#STARTED[@]} > 0)); then
        log "up in $((s / 1000)).$(printf '%03d' $((s % 1000)))s (started: ${STARTED[*]}); stack dir $DIR"
    else
        log "already up, nothing to start; stack dir $DIR"
    fi
    status_lines
}

cmd_down() {
    local t0 s pid f
    t0=$(now_ms)
    require_root down
    if [[ ! -d $DIR ]]; then
        log "no stack in $DIR: nothing to stop"
        return 0
    fi
    lock_dir
    if [[ ! -s $PORTS_ENV ]]; then
        log "no stack in $DIR (no ports.env): nothing to stop"
        return 0
    fi
    load_ports
    rmq_env
    sshd_down
    pg_down
    rmq_down
    libvirt_down
    # Every service removed its own record; anything else is unexpected.
    for f in "$PIDS"/*.pid; do
        [[ -e $f ]] || continue
        pid=$(read_pid "$f")
        pid_alive "$pid" && warn "unexpected record $f: pid $pid still running (not stopped)"
        rm -f "$f"
    done
    s=$(($(now_ms) - t0))
    log "down in $((s / 1000)).$(printf '%03d' $((s % 1000)))s; data kept in $DIR"
}

cmd_destroy() {
    require_root destroy
    [[ -d $DIR ]] || { log "$DIR does not exist: nothing to destroy"; return 0; }
    [[ -s $PORTS_ENV || -z $(ls -A "$DIR") ]] ||
        die "$DIR does not look like a stack directory (no ports.env): not deleting it"
    cmd_down
    exec 9>&-
    rm -rf -- "$DIR"
    log "destroyed $DIR"
}

# status_lines: print one line per service; set STATUS_ALL_RUNNING.
status_lines() {
    local pid lpid note state lv_state
    STATUS_ALL_RUNNING=1
    line() { # line NAME STATE PID ADDRESS [NOTE]
        printf '%-12s %-8s pid=%-8s %s%s\n' "$1" "$2" "${3:--}" "$4" "${5:+  ($5)}"
        [[ $2 == running ]] || STATUS_ALL_RUNNING=
    }
    pid=$(pg_pid)
    if [[ -n $pid ]] && port_listening "$PG_PORT"; then state=running; else state=stopped; fi
    line postgresql "$state" "$pid" "127.0.0.1:$PG_PORT" "socket dir $PG_DIR"
    pid=$(rmq_pid)
    if [[ -n $pid ]] && port_listening "$AMQP_PORT"; then state=running; else state=stopped; fi
    line rabbitmq "$state" "$pid" "127.0.0.1:$AMQP_PORT" "node $RMQ_NODE"
    pid=$(epmd_pid)
    if [[ -n $pid ]]; then state=running; else state=stopped; fi
    line epmd "$state" "$pid" "127.0.0.1:$EPMD_PORT"
    pid=$(sshd_pid)
    if [[ -n $pid ]] && port_listening "$SSH_PORT"; then state=running; else state=stopped; fi
    line sshd "$state" "$pid" "127.0.0.1:$SSH_PORT" "user $(ssh_user)"
    pid=$(virtlogd_pid)
    note="external"
    ours virtlogd "$pid" && note="started by this stack"
    if [[ -n $pid ]]; then state=running; else state=stopped; note=; fi
    line virtlogd "$state" "$pid" "$VIRTLOGD_PIDFILE" "$note"
    lpid=$(libvirtd_pid)
    note="external, not stopped by down"
    ours libvirtd "$lpid" && note="started by this stack"
    if libvirt_answers; then state=running; else state=stopped; note=; fi
    line libvirtd "$state" "$lpid" "$LIBVIRT_URI_LOCAL" "$note"
    lv_state=$state
    if [[ $state == running ]]; then state=$(pool_state); else state=stopped; fi
    [[ $state == inactive || $state == absent ]] && state=stopped
    line pool "$state" "" "$POOL" "$POOL_DIR"
    if [[ $lv_state == running ]]; then state=$(net_state); else state=stopped; fi
    [[ $state == inactive || $state == absent ]] && state=stopped
    line network "$state" "" "$POOL" "NAT, bridge ekbr-${POOL#ekman-}"
}

cmd_status() {
    [[ -s $PORTS_ENV ]] || { echo "no stack in $DIR (never brought up)"; return 3; }
    load_ports
    status_lines
    [[ -n $STATUS_ALL_RUNNING ]] || return 3
}

cmd_env() {
    local pw_pg
    [[ -s $PORTS_ENV ]] || die "no stack in $DIR: run '$0 up${DIR:+ $DIR}' first"
    load_ports
    local f
    for f in pg_password amqp_password amqp_conductor_password amqp_worker_password amqp_scheduler_password encryption_key; do
        [[ -r $SECRETS/$f ]] || die "cannot read $SECRETS/$f (run as root; was 'up' completed?)"
    done
    pw_pg=$(secret pg_password)
    rmq_write_ctl
    # (a stack brought up before the API had HTTPS: its certificate now)
    if ! openssl verify -CAfile "$RMQ_DIR/tls/ca.pem" -purpose sslserver "$API_TLS/server.pem" >/dev/null 2>&1; then
        lock_dir
        api_tls_files
    fi
    write_conf
    ex() { printf 'export %s=%q\n' "$1" "$2"; }
    ex EKMAN_STACK_DIR "$DIR"
    ex EKMAN_CONFIG "$CONF"
    ex EKMAN_PG_PORT "$PG_PORT"
    ex EKMAN_DB_URL "postgresql://ekman:$pw_pg@127.0.0.1:$PG_PORT/ekman"
    ex EKMAN_PG_ADMIN_URL "postgresql:///postgres?host=$PG_DIR&port=$PG_PORT&user=postgres"
    ex EKMAN_AMQP_PORT "$AMQP_PORT"
    ex EKMAN_AMQP_URL "$(amqp_url ekman amqp_password)"
    ex EKMAN_AMQP_CA "$RMQ_DIR/tls/ca.pem"
    ex EKMAN_RABBITMQ_NODENAME "$RMQ_NODE"
    ex EKMAN_RABBITMQCTL "$RMQ_CTL"
    ex EKMAN_SSH_HOST 127.0.0.1
    ex EKMAN_SSH_PORT "$SSH_PORT"
    ex EKMAN_SSH_USER "$(ssh_user)"
    ex EKMAN_SSH_KEY "$SSH_KEY"
    ex EKMAN_SSH_KNOWN_HOSTS "$SSH_KH"
    ex EKMAN_LIBVIRT_URI "$(libvirt_uri)"
    ex EKMAN_POOL "$POOL"
    ex EKMAN_POOL_DIR "$POOL_DIR"
    ex EKMAN_LIBVIRT_NETWORK "$POOL"
    if [[ -f $POOL_DIR/$WORKER_VOLUME ]]; then ex EKMAN_WORKER_IMAGE_VOLUME "$WORKER_VOLUME"; fi
    ex EKMAN_API_PORT "$API_PORT"
    ex EKMAN_URL "https://127.0.0.1:$API_PORT"
    ex EKMAN_CA_FILE "$RMQ_DIR/tls/ca.pem"
}

# close_inherited_fds: descriptors above 2 inherited from the caller (e.g. the
# lock that `flock LOCKFILE deploy/stack.sh up` keeps on fd 3) would pass on to
# the daemons, which outlive this script and would hold them (and a lock) for
# as long as they run.
close_inherited_fds() {
    local fd
    for fd in /proc/$$/fd/*; do
        fd=${fd##*/}
        [[ $fd =~ ^[0-9]+$ ]] && ((fd > 2 && fd != 255)) || continue
        eval "exec $fd>&-" 2>/dev/null || true
    done
}

main() {
    (($# >= 1 && $# <= 2)) || usage
    close_inherited_fds
    set_dir "${2:-}"
    case $1 in
        up) cmd_up ;;
        down) cmd_down ;;
        destroy) cmd_destroy ;;
        status) cmd_status ;;
        env) cmd_env ;;
        -h | --help | help) usage ;;
        *) usage ;;
    esac
}

main "$@"
