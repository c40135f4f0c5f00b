#!/usr/bin/env bash
# test_ova_transfer.sh BUILD_DIR SOURCE_DIR - the `ova` source provider end
# to end through its task functions (ek-ova-run), to a `local` destination,
# with the real qemu-img, qemu-nbd, tar and ekman-writer; no service needed.
#
#   1. a raw disk with known content -> streamOptimized VMDK -> an OVA (ovf,
#      mf, vmdk); a transfer; the replica equals the raw disk (cmp)
#   2. a few 64 KiB blocks change, a new OVA of the same VM replaces the
#      first; the second transfer sends only those blocks
#   3. refusals, with nothing written to the destination: a wrong digest;
#      a qcow2 disk whose backing file is /etc/passwd; a path outside the
#      allowed roots; a symlink out of the root; no allowed roots at all
set -euo pipefail

BUILD=$(cd "$1" && pwd)
SRC=$(cd "$2" && pwd)
RUN=$BUILD/tests/integration/ova/ek-ova-run
export EKMAN_WRITER=$BUILD/worker/ekman-writer

fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
log() { printf '\n== %s\n' "$*"; }
for tool in jq qemu-img qemu-nbd tar sha256sum cmp; do
    command -v "$tool" >/dev/null || fail "$tool is not installed"
done
[[ -x $RUN && -x $EKMAN_WRITER ]] || fail "build ek-ova-run and ekman-writer first"

W=$(mktemp -d "${TMPDIR:-/var/tmp}/ekman-ova-XXXXXX")
trap '[[ -n ${KEEP:-} ]] || rm -rf "$W"' EXIT
ROOT=$W/root
mkdir -p "$ROOT/ovas" "$W/dst" "$W/build" "$W/outside"
printf '[ova]\nallowed_roots = %s\n' "$ROOT" >"$W/ekman.conf"
printf '[worker]\ntmp_dir = %s\n' "$W" >>"$W/ekman.conf"
# the destination is a local endpoint: its directory must lie under [local] allowed_roots
printf '[local]\nallowed_roots = %s\n' "$W/dst" >>"$W/ekman.conf"
MiB=1048576

rnd() { # rnd FILE OFFSET LENGTH (multiples of 64 KiB)
    dd if=/dev/urandom of="$1" bs=65536 seek=$(($2 / 65536)) count=$(($3 / 65536)) \
        conv=notrunc status=none
}

# pack NAME DISKFILE OUT.ova [FORMAT-SUFFIX]: an OVA with the .ovf first
pack() {
    local name=$1 disk=$2 out=$3 b=$W/build/$1
    rm -rf "$b" && mkdir -p "$b"
    cp "$disk" "$b/$name-disk1.${4:-vmdk}"
    sed -e "s|@NAME@|$name|g" -e "s|@DISK@|$name-disk1.${4:-vmdk}|" \
        -e "s|@FILESIZE@|$(stat -c %s "$disk")|" -e "s|@CAPMB@|64|" \
        "$SRC/tests/fixtures/ova/transfer.ovf.in" >"$b/$name.ovf"
    (cd "$b" && for f in "$name.ovf" "$name-disk1.${4:-vmdk}"; do
        printf 'SHA256(%s)= %s\r\n' "$f" "$(sha256sum "$f" | cut -d' ' -f1)"
    done >"$name.mf")
    tar -C "$b" -cf "$out" "$name.ovf" "$name.mf" "$name-disk1.${4:-vmdk}"
}

run() { # run REPORT SRC_DIR [CONFIG]: one transfer of web01
    "$RUN" --src "$2" --dst "$W/dst" --instance web01 --info "$W/info.json" \
        --config "${3:-$W/ekman.conf}" --network-map '{"VM Network": "default"}' \
        --report "$W/$1.json" >"$W/$1.log" 2>&1
}
sent() { jq -e '.transfer.web01.volumes_info[0].last_sync.data_bytes' "$W/info.json"; }
REPLICA=$W/dst/web01/disk-sda.img

log "1. a streamOptimized VMDK in an OVA, first transfer"
truncate -s 64M "$W/disk.raw"
rnd "$W/disk.raw" 0 $((2 * MiB))
rnd "$W/disk.raw" $((20 * MiB)) $MiB
rnd "$W/disk.raw" $((63 * MiB)) $MiB
qemu-img convert -q -f raw -O vmdk -o subformat=streamOptimized "$W/disk.raw" "$W/disk.vmdk"
pack web01 "$W/disk.vmdk" "$ROOT/ovas/web01.ova"
# sed reads the whole list: `head -1` would close the pipe early, and under
# pipefail tar's SIGPIPE failed the check now and then (a CI run)
[[ $(tar -tf "$ROOT/ovas/web01.ova" | sed -n 1p) == *.ovf ]] || fail "the .ovf is not first"
run r1 "$ROOT/ovas" || { cat "$W/r1.log"; fail "the first transfer failed"; }
jq -e '.transfer.web01.export_info | .num_cpu == 2 and .memory_mb == 1024
       and .firmware == "bios" and .os_type == "linux" and .guest_os_id == "debian11_64Guest"
       and (.disks | length == 1) and .disks[0].id == "sda" and .disks[0].format == "vmdk"
       and .disks[0].controller == "lsilogic" and .disks[0].bus == "scsi"
       and .disks[0].size_bytes == 67108864 and .disks[0].member == "web01-disk1.vmdk"
       and .nics[0].model == "vmxnet3" and .nics[0].network_name == "VM Network"
       and .nics[0].mac_generated and (.nics[0].mac | test("^[0-9a-f][26ae]:"))' \
    "$W/info.json" >/dev/null || { jq .transfer.web01.export_info "$W/info.json"; fail "export_info"; }
grep -q "match the manifest" "$W/r1.log" || fail "no event says the manifest was checked"
cmp "$REPLICA" "$W/disk.raw" || fail "the replica differs from the raw disk"
echo "  replica == raw disk; sent $(sent) bytes"
[[ $(sent) -eq $((4 * MiB)) ]] || fail "the full copy sent $(sent) bytes, not the 4 MiB of data"

log "2. a new export of the same VM with a few changed blocks: an incremental"
rnd "$W/disk.raw" $((MiB)) 65536                  # over data
rnd "$W/disk.raw" $((40 * MiB)) $((128 * 1024))   # in a hole
rnd "$W/disk.raw" $((63 * MiB)) 65536             # over data
CHANGED=$((256 * 1024))
qemu-img convert -q -f raw -O vmdk -o subformat=streamOptimized "$W/disk.raw" "$W/disk.vmdk"
pack web01 "$W/disk.vmdk" "$W/build/web01-v2.ova"
mv "$W/build/web01-v2.ova" "$ROOT/ovas/web01.ova"
run r2 "$ROOT/ovas" || { cat "$W/r2.log"; fail "the second transfer failed"; }
cmp "$REPLICA" "$W/disk.raw" || fail "the replica differs from the changed raw disk"
echo "  changed $CHANGED bytes; the incremental sent $(sent)"
[[ $(sent) -eq $CHANGED ]] || fail "the incremental sent $(sent) bytes for $CHANGED changed"
jq -e '.transfer.web01.volumes_info[0].last_sync.incremental' "$W/info.json" >/dev/null ||
    fail "the second transfer was not incremental"

# refusals: a fresh destination each time, which must stay without replica
refused() { # refused NAME SRC_DIR PATTERN [CONFIG]
    rm -rf "$W/dst" "$W/info.json" && mkdir -p "$W/dst"
    run "$1" "$2" "${4:-}" && { cat "$W/$1.log"; fail "$1: the transfer succeeded"; }
    grep -q -- "$3" "$W/$1.log" || { cat "$W/$1.log"; fail "$1: no error saying '$3'"; }
    [[ ! -e $REPLICA ]] || fail "$1: a replica was written"
    echo "  $1: refused: $(grep -m1 'ERROR:' "$W/$1.log" | sed 's/^.*ERROR: //')"
}

log "3a. a wrong digest"
mkdir -p "$ROOT/bad"
pack web01 "$W/disk.vmdk" "$W/build/bad.ova"
python3 - "$W/build/bad.ova" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
i = b.find(b'SHA256(web01-disk1.vmdk)= ') + len('SHA256(web01-disk1.vmdk)= ')
b[i] = ord('0') if b[i] != ord('0') else ord('1')
# the tar header checksum does not cover the data: the archive stays valid
open(p, 'wb').write(b)
PY
mv "$W/build/bad.ova" "$ROOT/bad/web01.ova"
refused digest "$ROOT/bad" "web01-disk1.vmdk\" of \"web01.ova\" does not match its manifest"

log "3b. a qcow2 disk whose backing file is /etc/passwd"
mkdir -p "$ROOT/backing"
qemu-img create -q -f qcow2 -F raw -b /etc/passwd "$W/evil.qcow2" 64M
pack web01 "$W/evil.qcow2" "$ROOT/backing/web01.ova" qcow2
refused backing "$ROOT/backing" 'backing file ("/etc/passwd")'

log "3c. a path outside the allowed roots"
cp "$ROOT/ovas/web01.ova" "$W/outside/web01.ova"
refused outside "$W/outside" "not under any of the directories the operator allows"
refused dotdot "$ROOT/../outside" "parent directory"

log "3d. a symlink out of the root"
mkdir -p "$ROOT/links"
ln -s "$W/outside/web01.ova" "$ROOT/links/web01.ova"
ln -s "$W/outside" "$ROOT/linkdir"
refused symlink-file "$ROOT/links" "no OVA or OVF"
refused symlink-dir "$ROOT/linkdir" "leads out of the allowed directory"

log "3e. no allowed roots configured"
printf '[worker]\ntmp_dir = %s\n' "$W" >"$W/noroots.conf"
refused noroots "$ROOT/ovas" "allowed_roots" "$W/noroots.conf"

echo
echo "PASS: ova transfer, incremental and refusals"
