#!/usr/bin/env bash
# deploy/install-deps.sh — install every Debian 12 package that Ekman's build,
# its tests and the local service stack (deploy/stack.sh) need, and create the
# system account the stack uses for libvirt over SSH (ekman-libvirt).
#
# Idempotent and fast: package states are read with dpkg-query first, and
# `apt-get update` + `apt-get install` run only when something is missing.
# apt never starts services on the CI image (policy-rc.d); deploy/stack.sh does.
#
# Usage (as root): deploy/install-deps.sh
set -euo pipefail

readonly PACKAGES=(
    # build (clang + libclang-rt for libFuzzer)
    build-essential pkg-config cmake clang clang-format libclang-rt-14-dev
    # libraries linked by Ekman (headers + pkg-config files)
    librabbitmq-dev libcurl4-openssl-dev libvirt-dev libssh2-1-dev libjson-c-dev
    libpq-dev libssl-dev libzstd-dev libcmocka-dev libmicrohttpd-dev libnbd-dev libxml2-dev
    libxxhash-dev
    # services of the local stack (postgresql-contrib: pgbench)
    postgresql postgresql-contrib rabbitmq-server
    libvirt-daemon-system libvirt-clients libvirt-daemon-driver-qemu
    qemu-system-x86 qemu-utils dnsmasq-base openssh-server openssh-client swtpm swtpm-tools
    # tools used by scripts and tests
    netcat-openbsd socat nbdkit libnbd-bin cloud-image-utils genisoimage xorriso
    cpio busybox-static curl jq iproute2 procps psmisc openssl python3 time
    # an AMQP client independent of Ekman (tests/integration/test_bus_security.sh)
    amqp-tools
    # worker-VM image (deploy/worker-image/build.sh) and the libvirt NAT network
    dosfstools mtools syslinux syslinux-common iptables
    # benchmarks (tests/bench/): HTTP load
    wrk bc
    # OS morphing: Windows hives (libhivex), the worker image's disk tools (lvm2,
    # xfsprogs, btrfs-progs, ntfs-3g, fdisk), the test guest (debootstrap, grub),
    # and virt-v2v / guestfs-tools as the side-by-side reference
    libhivex-dev libhivex-bin libwin-hivex-perl lvm2 xfsprogs btrfs-progs ntfs-3g fdisk
    e2fsprogs debootstrap grub-pc-bin grub2-common virt-v2v guestfs-tools libguestfs-tools
    initramfs-tools-core libxml2-utils
    # the stock Coriolis client, run against Ekman's Keystone v3 facade
    # (tests/integration/coriolis/; its requirements.txt, all in Debian 12)
    python3-keystoneauth1 python3-cliff python3-osc-lib python3-jsonschema python3-requests
    python3-pbr python3-six python3-keystoneclient python3-oslo.config python3-oslo.i18n
    python3-oslo.utils python3-stevedore python3-future python3-websockets
)

# Service account for libvirt over SSH (see deploy/stack.sh).
readonly SSH_ACCOUNT=ekman-libvirt
readonly SSH_ACCOUNT_GROUPS=libvirt,kvm

die() { printf 'install-deps: error: %s\n' "$*" >&2; exit 1; }
log() { printf 'install-deps: %s\n' "$*"; }

[[ $(id -u) -eq 0 ]] || die "must run as root (it runs apt-get and useradd); try: sudo $0"
command -v dpkg-query >/dev/null 2>&1 || die "dpkg-query not found: this script is for Debian 12"

# Print the packages of "$@" that are not installed (one dpkg-query call).
not_installed() {
    local -A state=()
    local name st pkg
    while read -r name st; do
        state[${name%%:*}]=$st
    done < <(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "$@" 2>/dev/null || true)
    for pkg in "$@"; do
        [[ ${state[$pkg]:-} == installed ]] || printf '%s\n' "$pkg"
    done
}

mapfile -t missing < <(not_installed "${PACKAGES[@]}")

if ((${#missing[@]} > 0)); then
    log "installing ${#missing[@]} missing package(s): ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
    mapfile -t still < <(not_installed "${missing[@]}")
    ((${#still[@]} == 0)) || die "still not installed after apt-get: ${still[*]}"
fi

# System users/groups: postgres (postgresql-common), libvirt, kvm, libvirt-qemu
# (libvirt-daemon-system) come with the packages; check they are there.
for grp in libvirt kvm libvirt-qemu; do
    getent group "$grp" >/dev/null || die "group '$grp' is missing (libvirt-daemon-system should create it)"
done
for usr in postgres libvirt-qemu; do
    getent passwd "$usr" >/dev/null || die "user '$usr' is missing (its package should create it)"
done
if ! getent passwd "$SSH_ACCOUNT" >/dev/null; then
    log "creating system user $SSH_ACCOUNT (groups $SSH_ACCOUNT_GROUPS)"
    useradd --system --create-home --home-dir "/var/lib/$SSH_ACCOUNT" \
        --shell /bin/sh --groups "$SSH_ACCOUNT_GROUPS" --password '*' \
        --comment 'Ekman local stack, libvirt over SSH' "$SSH_ACCOUNT"
else
    # Existing account: make sure of the groups and a usable shell.
    for grp in ${SSH_ACCOUNT_GROUPS//,/ }; do
        id -nG "$SSH_ACCOUNT" | tr ' ' '\n' | grep -qx "$grp" || usermod -aG "$grp" "$SSH_ACCOUNT"
    done
    shell=$(getent passwd "$SSH_ACCOUNT" | cut -d: -f7)
    [[ -x $shell && $shell != */nologin && $shell != */false ]] || usermod --shell /bin/sh "$SSH_ACCOUNT"
fi
# sshd runs with UsePAM no and then refuses accounts whose password field
# starts with '!' (locked, useradd's default): '*' means "no password" but
# not locked, so key-only logins work.
if [[ $(getent shadow "$SSH_ACCOUNT" | cut -d: -f2) == '!'* ]]; then
    usermod --password '*' "$SSH_ACCOUNT"
fi

echo "ekman: all ${#PACKAGES[@]} packages present"
