#!/usr/bin/env bash
# test_osmorph_windows.sh - the Windows path of OS morphing through the whole
# pipeline (issue #16): no Windows image can run here, so the guest is a
# synthetic Windows Server 2019 system volume (NTFS on an MBR disk, made with
# mkntfs and ntfs-3g; SYSTEM and SOFTWARE hives made with hivexregedit from
# tests/fixtures/morph-windows; System32/cmd.exe), exported as an OVA with a
# Windows guest type. The VirtIO drivers are a synthetic virtio-win ISO (the
# real layout: <driver>/2k19/amd64/, guest-agent/*.msi) given by a file:// URL.
#   1 transfer + execution: the replica equals the disk
#   2 deploy with OS morphing: OS_MORPHING (the worker downloads the ISO, copies
#     it to the OS-morphing worker VM, which mounts the NTFS volume with ntfs-3g
#     and edits the hives with hivex) completes; on the deployed disk: viostor
#     is a boot-start service, its .sys is in System32\drivers, the drivers are
#     in Windows\Drivers\VirtIO, DevicePath names them, the first-boot service
#     is registered with its scripts
#   3 windows_virtio_iso_url answering 404: the deployment fails saying it
#     cannot download windows_virtio_iso_url, and nothing is left
# Usage: test_osmorph_windows.sh BUILD_DIR SOURCE_DIR STACK_DIR
# Needs: ntfs-3g (mkntfs), libhivex-bin (hivexget), libwin-hivex-perl
# (hivexregedit), genisoimage, /dev/fuse. Shared set-up: lib_morph.sh.
set -u
. "$(dirname "$0")/../lib.sh"
BUILD=$1 SRC=$2 STACK=$3
. "$(dirname "$0")/lib_morph.sh"
WIN=ekwin-$R
DOMAINS="^$WIN"
FIX=$SRC/tests/fixtures/morph-windows
MNT=$TMP/mnt LOOP=""
win_cleanup() {
  mountpoint -q "$MNT" && umount "$MNT"
  [ -n "$LOOP" ] && losetup -d "$LOOP" 2>/dev/null
  morph_cleanup
}
trap win_cleanup EXIT

# hive KIND OUT REG...: a hive (SYSTEM or SOFTWARE) from .reg fixtures
hive() {
  local kind=$1 out=$2; shift 2
  "$BUILD/tests/integration/tools/ek-mkhive" "$out" || return 1
  for reg in "$@"; do
    hivexregedit --merge --prefix "HKEY_LOCAL_MACHINE\\$kind" "$out" "$FIX/$reg" || return 1
  done
}
# loop_attach IMAGE [ro]: the partition of IMAGE at 1 MiB on $LOOP
loop_attach() { LOOP=$(losetup -f --show -o 1048576 ${2:+-r} "$1"); }
# ntfs_attach IMAGE [ro]: that partition's NTFS mounted on $MNT
ntfs_attach() {
  loop_attach "$@" || return 1
  mkdir -p "$MNT"
  ntfs-3g -o "${2:-rw}" "$LOOP" "$MNT"
}
ntfs_detach() { umount "$MNT"; losetup -d "$LOOP"; LOOP=""; }

# --- the synthetic Windows guest ------------------------------------------------------------
truncate -s 256M "$TMP/win.raw"
echo 'start=2048, type=7, bootable' | sfdisk -q --label dos "$TMP/win.raw"
loop_attach "$TMP/win.raw" || { echo "FAIL - cannot attach the partition"; exit 1; }
mkntfs -q -Q -F -L Windows "$LOOP" > /dev/null 2>&1 || { echo "FAIL - mkntfs"; exit 1; }
mkdir -p "$MNT"
ntfs-3g "$LOOP" "$MNT" || { echo "FAIL - ntfs-3g"; exit 1; }
mkdir -p "$MNT/Windows/System32/config" "$MNT/Windows/System32/drivers" "$MNT/Program Files"
printf 'MZ' > "$MNT/Windows/System32/cmd.exe"
hive SYSTEM "$MNT/Windows/System32/config/SYSTEM" system.reg > "$TMP/hive.log" 2>&1 &&
  hive SOFTWARE "$MNT/Windows/System32/config/SOFTWARE" software-win2k19.reg >> "$TMP/hive.log" 2>&1 ||
  { cat "$TMP/hive.log"; echo "FAIL - the hives could not be made"; exit 1; }
ntfs_detach
check "the synthetic Windows Server 2019 disk is made" test -s "$TMP/win.raw"
"$SRC/tests/fixtures/guest/make-ova.sh" --disk "$TMP/win.raw" --out "$TMP/ova/$WIN.ova" --name "$WIN" \
  --adapter lsilogic --nic e1000 --os-type windows2019srv_64Guest > "$TMP/ova.log" 2>&1 ||
  { cat "$TMP/ova.log"; echo "FAIL - the OVA could not be made"; exit 1; }

# a virtio-win ISO with the real layout, for 2k19 amd64 (and a 2k16 one that must not be taken)
VW=$TMP/virtio-win
for d in viostor:viostor vioscsi:vioscsi NetKVM:netkvm Balloon:balloon; do
  for os in 2k19 2k16; do
    mkdir -p "$VW/${d%%:*}/$os/amd64"
    for ext in sys inf cat; do echo "${d#*:} $os" > "$VW/${d%%:*}/$os/amd64/${d#*:}.$ext"; done
  done
done
mkdir -p "$VW/guest-agent"; echo msi > "$VW/guest-agent/qemu-ga-x86_64.msi"
genisoimage -quiet -J -R -V virtio-win -o "$TMP/virtio-win.iso" "$VW"
check "the virtio-win ISO is made" test -s "$TMP/virtio-win.iso"

# --- services, endpoints, the copy ------------------------------------------------------------
# the ISO is served from this machine (file://, and http:// for the 404): schemes a
# worker refuses unless the operator allows them ([worker] download_schemes)
morph_setup mwin "$(printf '[worker]\ndownload_schemes = https,http,file')"
SHA=$(sha256sum "$TMP/virtio-win.iso" | cut -d' ' -f1)
WENV=$(jq -c --arg u "file://$TMP/virtio-win.iso" --arg s "$SHA" \
  '.windows_virtio_iso_url = $u | .windows_virtio_iso_sha256 = $s' <<<"$ENV")
T=$(new_transfer "$WIN" "$WENV")
check "transfer created" test "$(code)" = 201
st=$(execute "$T")
check "the execution completes ($st)" test "$st" = COMPLETED
[ "$st" = COMPLETED ] || { tail -30 "$TMP/w.log"; finish; exit 1; }
REPLICA=$(ls "$TMP"/dstpool/*.img 2>/dev/null | grep -v -e clone -e snap | head -1)
check "the replica equals the disk" qemu-img compare -q -U -f raw -F raw "$REPLICA" "$TMP/win.raw"

# --- 2: deploy with OS morphing -------------------------------------------------------------
read -r st DEP < <(deploy "$T" '{}')
check "the deployment with OS morphing completes ($st)" test "$st" = COMPLETED
dep_events "$DEP" > "$TMP/dep-events.txt"
grep -i -e virtio -e windows -e changed -e found "$TMP/dep-events.txt" | sed 's/^/# event: /' | head -12
if [ "$st" != COMPLETED ]; then
  dep_errors "$DEP" | sed 's/^/# /'; grep -E "OS_MORPHING|ERROR" "$TMP/w.log" | tail -20
  finish; exit 1
fi
check "OS_MORPHING found Windows Server 2019" grep -q "Windows Server 2019" "$TMP/dep-events.txt"
check "OS_MORPHING says what it changed" grep -q "OS morphing changed" "$TMP/dep-events.txt"
DOM=$(v list --all --name | grep "^$WIN" | head -1)
check "the deployed domain exists ($DOM)" test -n "$DOM"
virsh -q dumpxml --inactive "$DOM" > "$TMP/deployed.xml"
check "deployed XML: the disk on virtio" grep -q "<target dev='vda' bus='virtio'/>" "$TMP/deployed.xml"
v destroy "$DOM"
DISK=$(virsh -q domblklist "$DOM" | awk '$1 == "vda" {print $2}')
ntfs_attach "$DISK" ro || { echo "FAIL - cannot mount the deployed disk"; exit 1; }
SYS=$MNT/Windows/System32/config/SYSTEM SW=$MNT/Windows/System32/config/SOFTWARE
check "SYSTEM: viostor is a boot-start kernel driver" bash -c "[ \"\$(hivexget '$SYS' 'ControlSet001\\Services\\viostor' Start)\" = 0 ] && [ \"\$(hivexget '$SYS' 'ControlSet001\\Services\\viostor' Type)\" = 1 ]"
check "SYSTEM: its ImagePath is system32\\drivers\\viostor.sys" bash -c "hivexget '$SYS' 'ControlSet001\\Services\\viostor' ImagePath | grep -qi 'system32.drivers.viostor.sys'"
check "SYSTEM: the first-boot service ekman-firstboot starts at boot" bash -c "[ \"\$(hivexget '$SYS' 'ControlSet001\\Services\\ekman-firstboot' Start)\" = 2 ]"
check "SOFTWARE: DevicePath names Drivers\\VirtIO" bash -c "hivexget '$SW' 'Microsoft\\Windows\\CurrentVersion' DevicePath | grep -qi 'Drivers.VirtIO'"
check "viostor.sys (the 2k19 one) is in System32\\drivers" bash -c "grep -q '2k19' '$MNT/Windows/System32/drivers/viostor.sys'"
check "the 2k19 drivers are in Windows\\Drivers\\VirtIO, the 2k16 ones are not" bash -c "grep -q 2k19 '$MNT/Windows/Drivers/VirtIO/netkvm.inf' && ! grep -rqs 2k16 '$MNT/Windows/Drivers/VirtIO'"
check "the first-boot scripts are in Program Files\\Ekman\\Firstboot" bash -c "ls '$MNT/Program Files/Ekman/Firstboot' | grep -qi '\\.bat'"
ntfs_detach
v undefine "$DOM"

# --- 3: the VirtIO drivers' URL answers 404 ---------------------------------------------------
mkdir -p "$TMP/www"
HPORT=$((EKMAN_API_PORT + 47))
python3 -m http.server --bind 127.0.0.1 --directory "$TMP/www" "$HPORT" > "$TMP/http.log" 2>&1 & HTTP_PID=$!
wait_for 10 curl -s -o /dev/null "http://127.0.0.1:$HPORT/"
BAD=$(jq -c --arg u "http://127.0.0.1:$HPORT/virtio-win.iso" '.windows_virtio_iso_url = $u' <<<"$ENV")
UE=$(api "$TOK" PUT "/v1/$P/transfers/$T" "{\"transfer\": {\"destination_environment\": $BAD}}" | jq -r '.execution.id // empty')
[ -z "$UE" ] || check "the update execution completes" test "$(wait_execution "$TOK" "$P" "$T" "$UE" 300)" = COMPLETED
read -r st DEP2 < <(deploy "$T" '{}')
msg=$(dep_errors "$DEP2" | grep -i virtio | head -1); echo "# 404: $msg"
check "a 404 for windows_virtio_iso_url: the deployment fails ($st) saying so" bash -c "[ '$st' = ERROR ] && grep -qi 'cannot download windows_virtio_iso_url' <<<\"\$1\" && grep -q 404 <<<\"\$1\"" _ "$msg"
check "... and no domain is left for it" test -z "$(v list --all --name | grep "^$WIN")"
morph_finish
