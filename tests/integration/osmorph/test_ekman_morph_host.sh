#!/usr/bin/env bash
# test_ekman_morph_host.sh - ekman-morph itself on this host, on loop devices
# (no worker VM, no services), for the bad inputs of issue #16 that need real
# disks:
#   - two disks that each hold a Linux root: refused, naming both, nothing left
#     mounted;
#   - a root whose distribution is unknown: refused, quoting its os-release;
#   - a run killed (SIGKILL) while it rebuilds the guest's initramfs: the next
#     run stops nothing half-done: it undoes the leftovers (mounts, loop
#     devices), starts again and completes; the guest then has virtio in its
#     initramfs and no open-vm-tools;
#   - after every run: nothing of the guest mounted, no loop device of it left.
# The guest: a copy of tests/fixtures/guest/build-guest.sh's Debian 12 image.
# This host's kernel may lack device-mapper: ekman-morph then reads the
# guest's LVM volume through a loop device (it says so in a WARNING).
# Usage: test_ekman_morph_host.sh BUILD_DIR SOURCE_DIR
set -u
. "$(dirname "$0")/../lib.sh"
BUILD=$1 SRC=$2
MORPH=$BUILD/worker/morph/ekman-morph
TMP=$(mktemp -d /var/tmp/ekman-morph-host.XXXXXX)
LOOPS=()
cleanup() {
  pkill -KILL -f "ekman-morph-host-test-$$" 2>/dev/null
  grep -o " $TMP[^ ]*" /proc/mounts | sort -r | while read -r m; do umount -l "$m"; done
  for l in $(losetup -j "$TMP/guest/guest.raw" -O NAME -n 2>/dev/null) "${LOOPS[@]}"; do losetup -d "$l" 2>/dev/null; done
  for l in $(losetup -a | grep "$TMP" | cut -d: -f1); do losetup -d "$l" 2>/dev/null; done
  [ -n "${KEEP_TMP:-}" ] || rm -rf "$TMP"
}
trap cleanup EXIT
attach() { local l; l=$(losetup -f --show "$1") && partx -a "$l" 2>/dev/null; LOOPS+=("$l"); echo "$l"; }
detach() { partx -d "$1" 2>/dev/null; losetup -d "$1"; }
# morph STATE DISK...: runs ekman-morph, its JSON lines in $TMP/out.json
morph() {
  local state=$1; shift
  jq -nc --arg s "$state" --arg p "$TMP/guest/packages" '{disks: $ARGS.positional, state_dir: $s, packages_dir: $p, set_dhcp: true}' \
    --args "$@" | (exec -a "ekman-morph-host-test-$$" "$MORPH") > "$TMP/out.json" 2> "$TMP/err.log"
}
error_of() { jq -r 'select(.error) | .error.message' "$TMP/out.json"; }
# nothing_left: no mount under the state directory, and as many loop devices
# as before the run (ekman-morph's own are over /dev/loopNpM, not files)
nloops() { losetup -a | wc -l; }
nothing_left() { ! grep -q " $TMP/state" /proc/mounts && [ "$(nloops)" = "$BEFORE" ]; }
# a filesystem image that looks like a Linux root (libguestfs' rules)
fake_root() { # fake_root IMAGE OS_RELEASE
  rm -rf "$TMP/tree"; mkdir -p "$TMP/tree/etc" "$TMP/tree/bin"
  echo "/dev/sda1 / ext4 defaults 0 1" > "$TMP/tree/etc/fstab"
  printf '%s\n' "$2" > "$TMP/tree/etc/os-release"
  truncate -s 32M "$1"; mkfs.ext4 -q -F -d "$TMP/tree" "$1"
}

"$SRC/tests/fixtures/guest/build-guest.sh" --out "$TMP/guest" > "$TMP/guest.log" 2>&1 ||
  { tail -20 "$TMP/guest.log"; echo "FAIL - the test guest could not be built"; exit 1; }

# --- two roots ---------------------------------------------------------------------------------
fake_root "$TMP/other.raw" 'ID=debian
VERSION_ID="12"'
G=$(attach "$TMP/guest/guest.raw") O=$(attach "$TMP/other.raw")
BEFORE=$(nloops)
morph "$TMP/state" "$G" "$O"; rc=$?
msg=$(error_of); echo "# two roots: $msg"
check "two OS roots: ekman-morph fails (exit $rc)" test $rc -ne 0
# (the guest's root is its LV: /dev/mapper/..., or here a loop device over it)
check "... naming both roots" bash -c "grep -q 'more than one operating system (/dev/[a-z0-9/-]* and /dev/' <<<\"\$1\" && grep -q '$O' <<<\"\$1\"" _ "$msg"
check "... with nothing left mounted or attached" nothing_left
detach "$O"

# --- unknown family ---------------------------------------------------------------------------
fake_root "$TMP/haiku.raw" 'ID=haiku
NAME="Haiku"'
H=$(attach "$TMP/haiku.raw")
BEFORE=$(nloops)
morph "$TMP/state" "$H"; rc=$?
msg=$(error_of); echo "# unknown family: $msg"
check "an unknown distribution: refused (exit $rc) quoting what os-release says" bash -c "[ $rc -ne 0 ] && grep -qi 'haiku' <<<\"\$1\" && grep -q 'not one OS morphing supports' <<<\"\$1\"" _ "$msg"
check "... with nothing left mounted" nothing_left
detach "$H"

# --- killed mid-morph, then run again -----------------------------------------------------
BEFORE=$(nloops)
morph "$TMP/state" "$G" & MP=$!
for _ in $(seq 1200); do grep -q '"step":"Adding the virtio drivers' "$TMP/out.json" 2>/dev/null && break; sleep 0.1; done
sleep 2
pkill -KILL -f "ekman-morph-host-test-$$"; wait "$MP" 2>/dev/null
left=$(grep -c " $TMP/state" /proc/mounts)
echo "# killed during the initramfs rebuild: $left mount(s) left behind"
check "the killed run left its mounts behind (the case to clean up)" test "$left" -gt 0
morph "$TMP/state" "$G"; rc=$?
grep -o '"message":"a previous run[^"]*"' "$TMP/out.json" | sed 's/^/# /'
check "the next run says it undoes the previous one" grep -q 'a previous run of ekman-morph stopped without cleaning up' "$TMP/out.json"
check "the next run completes (exit $rc)" bash -c "[ $rc -eq 0 ] && jq -e 'select(.result) | .result.os.family == \"debian\"' '$TMP/out.json' > /dev/null"
[ $rc -eq 0 ] || { error_of; tail -5 "$TMP/err.log"; }
check "nothing is left mounted or attached" nothing_left
# the guest afterwards, read through the loop device at its LV's offset (as build-guest.sh writes it)
mkdir -p "$TMP/check"
off=$(( $(partx -g -o START -n 3 "$TMP/guest/guest.raw") * 512 + 1048576 ))
L=$(losetup -f --show -r -o "$off" "$TMP/guest/guest.raw"); LOOPS+=("$L")
mount -o ro,noload "$L" "$TMP/check"
kv=$(ls "$TMP/check/lib/modules" | head -1)
B=$(losetup -f --show -r -o $(( $(partx -g -o START -n 2 "$TMP/guest/guest.raw") * 512 )) --sizelimit $(( $(partx -g -o SECTORS -n 2 "$TMP/guest/guest.raw") * 512 )) "$TMP/guest/guest.raw"); LOOPS+=("$B")
mkdir -p "$TMP/boot"; mount -o ro,noload "$B" "$TMP/boot"
check "the guest's initramfs now has virtio_blk" bash -c "lsinitramfs '$TMP/boot/initrd.img-$kv' | grep -q virtio_blk.ko"
check "open-vm-tools is purged from the guest" bash -c "! grep -A1 -x 'Package: open-vm-tools' '$TMP/check/var/lib/dpkg/status' | grep -q 'install ok installed'"
check "qemu-guest-agent is installed in the guest" bash -c "grep -A1 -x 'Package: qemu-guest-agent' '$TMP/check/var/lib/dpkg/status' | grep -q 'install ok installed'"
umount "$TMP/boot" "$TMP/check"
finish
