#!/usr/bin/env bash
# test_osmorph_libvirt.sh - a VMware-built Linux guest, exported as an OVA,
# migrated by Ekman to libvirt with OS morphing (issue #16), through the real
# services (conductor, scheduler, worker), a real OS-morphing worker VM
# (deploy/worker-image, running ekman-morph) and the real guest:
#   the guest: Debian 12 from debootstrap (tests/fixtures/guest/build-guest.sh):
#     GPT, /boot ext4, LVM root, open-vm-tools, ens192 on ifupdown, an
#     initramfs with the LSI/PVSCSI drivers and no virtio; it boots under QEMU
#     on pvscsi + vmxnet3 (checked) and not on virtio
#   1 transfer OVA -> libvirt, execute: the replica equals the OVA's disk
#   2 deploy with OS morphing: the domain (virtio disk and NIC) boots to a
#     login prompt on its serial console, qemu-guest-agent answers guest-ping,
#     the guest has an address on the NAT network; inside it (guest-exec):
#     virtio_blk in the initramfs, open-vm-tools gone, fstab by UUID
#   3 deploy with skip_os_morphing: the same replica does NOT boot (its
#     initramfs cannot find the root), so the morphing did the work
#   4 a disk with no OS: OS_MORPHING fails saying no operating system was
#     found, and nothing is left (worker VM, mounts)
# Usage: test_osmorph_libvirt.sh BUILD_DIR SOURCE_DIR STACK_DIR
# Environment (optional): EKMAN_WORKER_IMAGE (an image built already),
# EKMAN_MORPH_SKIP_SOURCE_BOOT=1 (skip the source guest's boot check).
# Shared set-up: lib_morph.sh.
set -u
. "$(dirname "$0")/../lib.sh"
BUILD=$1 SRC=$2 STACK=$3
. "$(dirname "$0")/lib_morph.sh"
GUEST=ekguest-$R              # the OVA's VM name
BLANK=ekblank-$R              # an OVA whose disk holds no OS
DOMAINS="^($GUEST|$BLANK)"

# --- the guest and its OVA -------------------------------------------------------------------
"$SRC/tests/fixtures/guest/build-guest.sh" --out "$TMP/guest" > "$TMP/guest.log" 2>&1 ||
  { tail -30 "$TMP/guest.log"; echo "FAIL - the test guest could not be built"; exit 1; }
elapsed "test guest ready"
[ -n "${EKMAN_MORPH_SKIP_SOURCE_BOOT:-}" ] || # (a developer's shortcut: the guest is cached)
check "the VMware-like guest boots on pvscsi + vmxnet3" \
  "$SRC/tests/fixtures/guest/boot-check.sh" --disk "$TMP/guest/guest.raw" --bus pvscsi --nic vmxnet3 \
  --expect login --timeout 300 --log "$TMP/boot-src.log"
elapsed "source boot checked"
"$SRC/tests/fixtures/guest/make-ova.sh" --disk "$TMP/guest/guest.raw" --out "$TMP/ova/$GUEST.ova" \
  --name "$GUEST" --adapter pvscsi --nic vmxnet3 > "$TMP/ova.log" 2>&1 ||
  { cat "$TMP/ova.log"; echo "FAIL - the OVA could not be made"; exit 1; }
check "the OVA exists" test -s "$TMP/ova/$GUEST.ova"

# --- services, endpoints (lib_morph.sh) -------------------------------------------------------
morph_setup morph "$(printf '[libvirt_migration_provider]\nosmorphing_packages_dir = %s/guest/packages' "$TMP")"
elapsed "services up"
check "the OVA's VM is listed" bash -c "ek_curl -s -H 'X-Auth-Token: $TOK' '$URL/v1/$P/endpoints/$SRC_EP/instances' | jq -e '.instances[] | select(.name == \"$GUEST\")' > /dev/null"
T=$(new_transfer "$GUEST")
check "transfer created" test "$(code)" = 201

# --- 1: the copy --------------------------------------------------------------------------------
st=$(execute "$T")
check "execution 1 completes ($st)" test "$st" = COMPLETED
[ "$st" = COMPLETED ] || { tail -30 "$TMP/w.log"; finish; exit 1; }
elapsed "execution 1 done"
REPLICA=$(ls "$TMP"/dstpool/*.img 2>/dev/null | grep -v -e clone -e snap | head -1)
check "the replica equals the OVA's disk" qemu-img compare -q -U -f raw -F raw "$REPLICA" "$TMP/guest/guest.raw"

# deploy and inspect helpers (qemu-guest-agent)
agent() { virsh -q qemu-agent-command "$1" "$2" 2>/dev/null; }
# gexec DOMAIN SCRIPT: runs a shell script in the guest (qemu-ga guest-exec),
# prints its stdout (waits up to 3 minutes: lsinitramfs is slow under TCG)
gexec() {
  local pid out
  pid=$(agent "$1" "$(jq -nc --arg s "$2" '{execute: "guest-exec", arguments: {path: "/bin/sh", arg: ["-c", $s], "capture-output": true}}')" | jq -r .return.pid)
  [ -n "$pid" ] && [ "$pid" != null ] || return 1
  for _ in $(seq 600); do
    out=$(agent "$1" "{\"execute\":\"guest-exec-status\",\"arguments\":{\"pid\":$pid}}")
    [ "$(jq -r .return.exited <<<"$out")" = true ] && break; sleep 0.3
  done
  jq -r '.return."out-data" // empty' <<<"$out" | base64 -d
}

# --- 2: deploy with OS morphing ------------------------------------------------------------------
read -r st DEP < <(deploy "$T" '{}')
check "the deployment with OS morphing completes ($st)" test "$st" = COMPLETED
elapsed "deployment with OS morphing: $st"
if [ "$st" != COMPLETED ]; then # nothing below can pass: say why and stop
  dep_errors "$DEP" | sed 's/^/# /'; grep -E "OS_MORPHING|ERROR" "$TMP/w.log" | tail -20
  finish; exit 1
fi
dep_events "$DEP" > "$TMP/dep-events.txt"
sed 's/^/# event: /' "$TMP/dep-events.txt" | grep -i -e morph -e found -e changed | head -20
check "OS_MORPHING found Debian 12" grep -qi "debian" "$TMP/dep-events.txt"
check "OS_MORPHING says what it changed" grep -q "OS morphing changed" "$TMP/dep-events.txt"
DOM=$(v list --all --name | grep "^$GUEST" | head -1)
check "the deployed domain runs ($DOM)" bash -c "virsh -q domstate '$DOM' | grep -q running"
virsh -q dumpxml --inactive "$DOM" > "$TMP/deployed.xml"
check "deployed XML: the disk on virtio" grep -q "<target dev='vda' bus='virtio'/>" "$TMP/deployed.xml"
check "deployed XML: the NIC is virtio" grep -q "<model type='virtio'/>" "$TMP/deployed.xml"
LOG=/var/log/libvirt/qemu/$DOM-serial.log
check "the morphed guest boots to a login prompt on its serial console" wait_for 420 grep -q "login:" "$LOG"
elapsed "morphed guest at login:"
check "qemu-guest-agent answers guest-ping" wait_for 180 bash -c "virsh -q qemu-agent-command '$DOM' '{\"execute\":\"guest-ping\"}' | grep -q return"
check "the guest has an address on $NET" wait_for 120 bash -c "virsh -q domifaddr '$DOM' --source lease | grep -q ipv4"
initrd=$(gexec "$DOM" 'lsinitramfs /boot/initrd.img-$(uname -r)')
check "the guest's initramfs lists virtio_blk" grep -q "virtio_blk.ko" <<<"$initrd"
# (dpkg status abbreviation: "ii " installed, "pn " purged, "" unknown; "|" shows the command ran)
ovt=$(gexec "$DOM" 'dpkg-query -W -f="\${db:Status-Abbrev}" open-vm-tools 2>/dev/null; echo "|"' | tr -d '\n')
echo "# open-vm-tools in the guest's dpkg: '$ovt'"
check "open-vm-tools is gone (dpkg in the guest)" bash -c "[[ \$1 == *'|' && \$1 != ii* ]]" _ "$ovt"
fstab=$(gexec "$DOM" 'cat /etc/fstab')
echo "$fstab" | grep -v '^#' | sed 's/^/# fstab: /'
check "fstab names /boot by UUID (no /dev/sdX left)" bash -c "grep -q '^UUID=.* /boot ' <<<\"\$1\" && ! grep -q '^/dev/sd' <<<\"\$1\"" _ "$fstab"
check "qemu-guest-agent runs as a service in the guest" bash -c "[ \"\$1\" = active ]" _ "$(gexec "$DOM" 'systemctl is-active qemu-guest-agent' | tr -d '\n')"
v destroy "$DOM"; v undefine "$DOM"
rm -f "$LOG" # the next deployment has the same name, so the same console log

# --- 3: the same replica without OS morphing does not boot -------------------------------------
read -r st DEP2 < <(deploy "$T" '{"skip_os_morphing": true}')
check "the deployment without OS morphing completes ($st)" test "$st" = COMPLETED
DOM2=$(v list --all --name | grep "^$GUEST" | head -1)
LOG2=/var/log/libvirt/qemu/$DOM2-serial.log
check "without OS morphing the guest cannot find its root" wait_for 420 grep -qE "Gave up waiting for root|ALERT! .* does not exist|Dropping to a shell" "$LOG2"
check "... and never reaches a login prompt" bash -c "! grep -q 'login:' '$LOG2'"
v destroy "$DOM2"; v undefine "$DOM2"
elapsed "negative control done"

# --- 4: a disk with no OS --------------------------------------------------------------------------
truncate -s 64M "$TMP/blank.raw"; mkfs.ext4 -q -F "$TMP/blank.raw"
"$SRC/tests/fixtures/guest/make-ova.sh" --disk "$TMP/blank.raw" --out "$TMP/ova/$BLANK.ova" --name "$BLANK" > "$TMP/ova2.log" 2>&1
T2=$(new_transfer "$BLANK")
check "the blank disk's execution completes" test "$(execute "$T2")" = COMPLETED
read -r st DEP3 < <(deploy "$T2" '{}')
msg=$(dep_errors "$DEP3"); echo "# no OS: $msg" | head -3
check "a disk with no OS: the deployment fails ($st) saying no operating system was found" bash -c "[ '$st' = ERROR ] && grep -qi 'no operating system' <<<\"\$1\"" _ "$msg"
check "... and no domain is left for it" test -z "$(v list --all --name | grep "^$BLANK")"
morph_finish
