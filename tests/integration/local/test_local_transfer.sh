#!/usr/bin/env bash
# test_local_transfer.sh BUILD_DIR SOURCE_DIR - the `local` provider end to
# end, through its task functions (ek-local-run) and the real ekman-writer,
# qemu-nbd and qemu-img; no service needed.
#
# An instance with three disks (raw 8 GiB sparse with a little data, qcow2,
# small raw) and two NICs:
#   1. first execution: full copy; the replicas equal the sources
#   2. some 64 KiB blocks change; second execution: only they are sent; a
#      sync cancelled half-way makes the next one send every block
#   3. deployment (clones, no OS morphing): the deployed disks equal the sources
#   4. a second deployment of the same VM is refused
#   5. a deployment with OS morphing fails and is rolled back: the replicas
#      are restored, and an execution after it sends nothing
#   6. a deployment that takes the replicas (no clones); the next execution
#      makes new replicas and copies everything again, interrupted half-way
#      and resumed; the execution after it sends nothing
#   7. delete-disks removes the replicas, not the deployed VM
#   8. tenant isolation (issue #17): the provider reads only beneath the
#      operator's [local] allowed_roots (passed here as the worker's
#      ekman.conf); a source outside them, a disk image reached through a
#      link out of them and a qcow2 whose backing file is the worker's
#      ekman.conf are refused, and nothing of that file reaches the
#      destination
set -euo pipefail

BUILD=$(cd "$1" && pwd)
SRC=$(cd "$2" && pwd)
RUN=$BUILD/tests/integration/local/ek-local-run
export EKMAN_WRITER=$BUILD/worker/ekman-writer

fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
log() { printf '\n== %s\n' "$*"; }
for tool in jq qemu-img qemu-io qemu-nbd; do
    command -v "$tool" >/dev/null || fail "$tool is not installed (deploy/install-deps.sh)"
done
[[ -x $RUN && -x $EKMAN_WRITER ]] || fail "build ek-local-run and ekman-writer first"

W=$(mktemp -d "${TMPDIR:-/var/tmp}/ekman-local-XXXXXX")
trap '[[ -n ${KEEP:-} ]] || rm -rf "$W"' EXIT
mkdir -p "$W/src" "$W/dst" "$W/tenant" "$W/outside"
S=$W/src D=$W/dst/web01
# The worker's configuration: the operator allows the source, destination
# and tenant directories, not $W itself (where this file lies).
CONF=$W/ekman.conf
printf '# a stand-in for the key: EKMAN-SECRET-%s\n[local]\nallowed_roots = %s, %s, %s\n' \
    "$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')" "$W/src" "$W/dst" "$W/tenant" >"$CONF"
MiB=1048576

rnd() { # rnd FILE OFFSET_BYTES LENGTH_BYTES: random bytes written in place
    dd if=/dev/urandom of="$1" bs=65536 seek=$(($2 / 65536)) count=$(($3 / 65536)) \
        conv=notrunc status=none
}

log "source images"
truncate -s 8G "$S/web01-root.img"                  # vda: raw, 8 GiB, sparse
rnd "$S/web01-root.img" 0 $((4 * MiB))
rnd "$S/web01-root.img" $((3 << 30)) $MiB
rnd "$S/web01-root.img" $(((8 << 30) - MiB)) $MiB
truncate -s 256M "$W/data.raw"                      # vdb: qcow2, 256 MiB
rnd "$W/data.raw" 0 $((8 * MiB))
rnd "$W/data.raw" $((100 * MiB)) $((2 * MiB))
qemu-img convert -q -f raw -O qcow2 "$W/data.raw" "$S/web01-data.qcow2"
rm "$W/data.raw"
rnd "$S/web01-swap.img" 0 $((64 * MiB))             # sdc: raw, 64 MiB, all data
sed "s|@DIR@|$S|g" "$SRC/tests/fixtures/local/transfer-vm.xml.in" >"$S/web01.xml"
du -h --apparent-size "$S"/web01-* | sed 's/^/  /'
du -h "$S"/web01-* | sed 's/^/  allocated /'

NETMAP='{"default": "lan", "br-lan": "bridge:br0"}'
run() { # run REPORT ARGS...: one execution; its log in REPORT.log
    local report=$1
    shift
    "$RUN" --src "${SRC_DIR:-$S}" --dst "$W/dst" --instance "${INSTANCE:-web01}" \
        --info "$W/info.json" --network-map "$NETMAP" --report "$W/$report.json" \
        --config "$CONF" "$@" >"$W/$report.log" 2>&1
}
expect_ok() {
    run "$@" || { cat "$W/$1.log"; fail "$1: the execution failed"; }
    grep -E '^\[REPLICATE_DISKS\] (INFO|WARNING)' "$W/$1.log" || true
}
declare -A FMT=([vda]=raw [vdb]=qcow2 [sdc]=raw)
declare -A IMG=([vda]=web01-root.img [vdb]=web01-data.qcow2 [sdc]=web01-swap.img)
same_as_source() { # same_as_source DIR SUFFIX: each disk of DIR equals its source
    local d
    for d in vda vdb sdc; do
        qemu-img compare -q -f raw -F "${FMT[$d]}" "$1/disk-$d$2" "$S/${IMG[$d]}" ||
            fail "$1/disk-$d$2 differs from its source ${IMG[$d]}"
    done
    echo "  $1: the three disks are identical to their sources"
}
sent() { # sent DISK: data bytes the last sync of DISK sent
    jq -e --arg d "$1" '.transfer.web01.volumes_info[] | select(.disk_id == $d)
                        | .last_sync.data_bytes' "$W/info.json"
}
sent_total() {
    jq -e '[.transfer.web01.volumes_info[].last_sync.data_bytes] | add' "$W/info.json"
}
task_status() { # task_status REPORT TYPE
    jq -r --arg t "$2" '.tasks[] | select(.type == $t) | .status' "$W/$1.json"
}

log "1. first execution"
expect_ok r1 transfer
jq -e '.transfer.web01.export_info | .num_cpu == 2 and .memory_mb == 1536
       and (.disks | map(.id) == ["vda", "vdb", "sdc"])
       and (.disks | map(.format) == ["raw", "qcow2", "raw"])
       and .disks[0].size_bytes == 8589934592 and .disks[0].boot_order == 1
       and (.nics | map(.mac) == ["52:54:00:12:34:56", "52:54:00:ab:cd:ef"])' \
    "$W/info.json" >/dev/null || fail "export_info is not what the domain XML says"
# per-disk progress: one step per disk, each brought to its total
jq -e '[.tasks[] | select(.type == "REPLICATE_DISKS") | .steps[]]
       | length == 3 and all(.message | startswith("Replicating disk"))
       and all(.current == .total and .updates >= 1)' "$W/r1.json" >/dev/null ||
    fail "REPLICATE_DISKS did not report one finished step per disk"
jq -r '.tasks[] | select(.type == "REPLICATE_DISKS") | .steps[] | "  step: \(.message)"' \
    "$W/r1.json"
for d in vda vdb sdc; do echo "  $d: sent $(sent $d) bytes"; done
[[ $(sent vda) -eq $((6 * MiB)) && $(sent vdb) -eq $((10 * MiB)) &&
    $(sent sdc) -eq $((64 * MiB)) ]] || fail "the full copy did not send exactly the data"
same_as_source "$D" .img

log "2. some blocks change; second execution"
rnd "$S/web01-root.img" $((1 << 30)) 65536              # in a hole
rnd "$S/web01-root.img" $((2 * MiB)) 65536              # over data
rnd "$S/web01-root.img" $((5 << 30)) $((256 * 1024))    # in a hole
qemu-io -f qcow2 -c 'write -q -P 0x77 128M 192k' -c 'write -q -P 0x11 1M 64k' \
    "$S/web01-data.qcow2" >/dev/null
rnd "$S/web01-swap.img" $((10 * MiB)) $((128 * 1024))
CHANGED=$(((64 + 64 + 256 + 192 + 64 + 128) * 1024))
expect_ok r2 transfer
TOTAL=$(sent_total)
echo "  changed $CHANGED bytes; the second execution sent $TOTAL bytes of data" \
    "(vda $(sent vda), vdb $(sent vdb), sdc $(sent sdc))"
((TOTAL >= CHANGED)) || fail "fewer bytes sent ($TOTAL) than changed ($CHANGED)"
((TOTAL * 100 <= CHANGED * 105)) || fail "sent $TOTAL bytes for $CHANGED changed (> 5% more)"
jq -e '[.transfer.web01.volumes_info[].last_sync | select(.incremental and .zero_bytes == 0)]
       | length == 3' "$W/info.json" >/dev/null || fail "the second execution was not incremental"
grep -q "skipped" "$W/r2.log" || fail "no event tells what was sent and skipped"
same_as_source "$D" .img

log "2b. a sync that fails half-way leaves block hashes that cannot be trusted"
# A block changes, a sync writes it and is cancelled before it finishes, the
# source goes back to the old content: the next sync must still send it.
dd if="$S/web01-root.img" of="$W/block.orig" bs=65536 skip=32 count=1 status=none
rnd "$S/web01-root.img" $((2 * MiB)) 65536
run r2b transfer --cancel-replicate 8 && fail "the cancelled execution succeeded"
[[ $(task_status r2b REPLICATE_DISKS) == ERROR ]] || fail "REPLICATE_DISKS was not cancelled"
dd if="$W/block.orig" of="$S/web01-root.img" bs=65536 seek=32 conv=notrunc status=none
expect_ok r2c transfer
grep -q "the last sync did not finish" "$W/r2c.log" || fail "no warning about the unfinished sync"
same_as_source "$D" .img
expect_ok r2d transfer
[[ $(sent_total) -eq 0 ]] || fail "the sync after the full one sent $(sent_total) bytes"

log "2e. block hashes left by an older sync (a later one ran elsewhere) are not trusted"
# As with a map kept on a worker (oVirt): this worker's map is of sync N, the
# replica of sync N+1 (done by another worker); a block changed in N+1 and
# back to N's content must still be sent.
cp "$D/disk-vda.hashmap" "$W/old.hashmap" && cp "$D/disk-vda.hashmap.sync" "$W/old.sync" ||
    fail "no hash map with its sync token beside the replica"
rnd "$S/web01-root.img" $((2 * MiB)) 65536
expect_ok r2e transfer
cp "$W/old.hashmap" "$D/disk-vda.hashmap" && cp "$W/old.sync" "$D/disk-vda.hashmap.sync"
dd if="$W/block.orig" of="$S/web01-root.img" bs=65536 seek=32 conv=notrunc status=none
expect_ok r2f transfer
grep -q "not those of the replica's last sync" "$W/r2f.log" || fail "no warning about a stale map"
same_as_source "$D" .img

log "3. deployment (clone_disks, skip_os_morphing)"
expect_ok r3 deploy
XML=$D/web01.xml
[[ -f $XML ]] || fail "no domain XML at $XML"
same_as_source "$D/deployed" .img
same_as_source "$D" .img # the replicas stay the transfer's
for pattern in "<domain type=\"qemu\">" "<name>web01</name>" "<vcpu placement=\"static\">2</vcpu>" \
    "<memory unit=\"MiB\">1536</memory>" "<mac address=\"52:54:00:12:34:56\"/>" \
    "<source network=\"lan\"/>" "<source bridge=\"br0\"/>" "<boot order=\"1\"/>" \
    "<source file=\"$D/deployed/disk-vda.img\"/>"; do
    grep -qF "$pattern" "$XML" || fail "the domain XML lacks $pattern"
done
[[ $(grep -o 'disk-[a-z]*\.img' "$XML" | tr '\n' ' ') == "disk-vda.img disk-vdb.img disk-sdc.img " ]] ||
    fail "the deployed disks are not in the source's order"
if command -v virt-xml-validate >/dev/null; then
    virt-xml-validate "$XML" domain || fail "libvirt's schema rejects $XML"
fi
ls "$D"/*.snap.img 2>/dev/null && fail "snapshots were left behind"
jq -e '.deployment.transfer_result.xml_path' "$W/info.json" >/dev/null ||
    fail "no transfer_result"

log "4. deploying the same VM again is refused"
run r4 deploy && fail "a second deployment over the first one succeeded"
grep -q "already deployed" "$W/r4.log" || { cat "$W/r4.log"; fail "no clear conflict message"; }
same_as_source "$D/deployed" .img

log "5. a deployment with OS morphing fails and is rolled back"
rm -rf "$D/deployed" "$XML"
run r5 deploy --no-clone-disks --os-morphing && fail "OS morphing succeeded"
grep -q "OS morphing is not available for the local provider yet: deploy with skip_os_morphing" \
    "$W/r5.log" || { cat "$W/r5.log"; fail "OS_MORPHING did not say why it failed"; }
for t in DELETE_OS_MORPHING_RESOURCES CLEANUP_FAILED_INSTANCE_DEPLOYMENT \
    RESTORE_TRANSFER_DISK_SNAPSHOTS; do
    [[ $(task_status r5 $t) == COMPLETED ]] || { cat "$W/r5.log"; fail "$t did not run"; }
done
[[ ! -e $XML && ! -e $D/deployed ]] || fail "the rollback left the deployed VM behind"
ls "$D"/*.snap.img 2>/dev/null && fail "the rollback left snapshots behind"
same_as_source "$D" .img
expect_ok r5b transfer
[[ $(sent_total) -eq 0 ]] || fail "after the rollback, an unchanged source sent $(sent_total) bytes"
echo "  an execution after the rollback sent nothing"

log "6. a deployment that takes the replicas; the next execution starts over"
expect_ok r6 deploy --no-clone-disks
same_as_source "$D/deployed" .img
[[ ! -e $D/disk-vda.img ]] || fail "the replicas were not taken by the deployment"
jq -e '.transfer.web01.volumes_info == []' "$W/info.json" >/dev/null ||
    fail "the transfer still holds the replicas the deployment took"
# ... interrupted after its first state save, and resumed from it as the
# conductor re-runs a task whose worker died
expect_ok r7 transfer --interrupt-replicate 1
jq -e '[.tasks[] | select(.type == "REPLICATE_DISKS")] | length == 2
       and .[0].status == "ERROR" and (.[0].error | test("cancel")) and .[0].state_saves >= 1
       and .[1].status == "COMPLETED" and .[1].resumed' "$W/r7.json" >/dev/null ||
    fail "REPLICATE_DISKS was not interrupted and resumed"
RESUMED=$(jq '[.transfer.web01.volumes_info[].last_sync.resumed_bytes] | add' "$W/info.json")
# (the first attempt may have finished vda before it was stopped: the re-run
# then finds it complete and sends none of it)
((RESUMED > 0 || $(sent vda) == 0)) || fail "the resumed run sent again what the first attempt had written"
echo "  interrupted, then resumed: $RESUMED bytes acknowledged before were not sent again," \
    "vda sent $(sent vda) bytes"
same_as_source "$D" .img
[[ $(sent vdb) -ge $((10 * MiB)) ]] || fail "the new replicas were not copied whole"
grep -q "created" "$W/r7.log" || fail "no event tells the replicas were re-created"
expect_ok r7b transfer
[[ $(sent_total) -eq 0 ]] || fail "after the resumed sync, an unchanged source sent $(sent_total) bytes"

log "7. delete-disks"
expect_ok r8 delete-disks
[[ ! -e $D/disk-vda.img && ! -e $D/disk-vda.hashmap ]] || fail "delete-disks left replicas"
same_as_source "$D/deployed" .img
jq -e '.transfer.web01.volumes_info == []' "$W/info.json" >/dev/null ||
    fail "delete-disks did not empty volumes_info"

log "8. tenant isolation: allowed roots, links, backing files"
refused() { # refused REPORT WHAT: the execution failed, its log says WHAT
    local report=$1 what=$2
    shift 2
    run "$report" "$@" && { cat "$W/$report.log"; fail "$report: the execution succeeded"; }
    grep -qF -- "$what" "$W/$report.log" ||
        { cat "$W/$report.log"; fail "$report: the log does not say: $what"; }
    echo "  refused: $(grep -F -- "$what" "$W/$report.log" | head -1 | cut -c1-200)"
}
cp "$S/web01.xml" "$W/outside/web01.xml"
SRC_DIR=$W/outside refused r9 "not under any of the directories" transfer
# a domain XML in an allowed directory whose image is a link out of it
ln -s "$S/../outside" "$W/tenant/out"
cp "$S/web01-swap.img" "$W/outside/leak.img"
tenant_vm() { # tenant_vm NAME FORMAT SOURCE: a one-disk domain in $W/tenant
    printf "<domain type='kvm'><name>%s</name><memory unit='MiB'>64</memory><devices>
<disk type='file' device='disk'><driver name='qemu' type='%s'/><source file='%s'/>
<target dev='vda' bus='virtio'/></disk></devices></domain>\n" "$1" "$2" "$3" >"$W/tenant/$1.xml"
}
tenant_vm linked raw out/leak.img
SRC_DIR=$W/tenant INSTANCE=linked refused r10 "leads out of the allowed directory" transfer
# a qcow2 whose backing file is the worker's ekman.conf
qemu-img create -q -f qcow2 -b "$CONF" -F raw -u "$W/tenant/evil.qcow2" 1M
tenant_vm evil qcow2 evil.qcow2
SRC_DIR=$W/tenant INSTANCE=evil refused r11 "backing file" transfer
# ... and declared raw it is the guest's bytes, the header only
tenant_vm evilraw raw evil.qcow2
SRC_DIR=$W/tenant INSTANCE=evilraw expect_ok r12 transfer
if grep -rqa EKMAN-SECRET "$W/dst"; then fail "the worker's ekman.conf reached the destination"; fi
cmp -s "$W/tenant/evil.qcow2" "$W/dst/evilraw/disk-vda.img" ||
    fail "the raw disk was not copied as it is"
# a <target dev> that is a path
tenant_vm dots raw evil.qcow2
sed -i "s|dev='vda'|dev='../x'|" "$W/tenant/dots.xml"
SRC_DIR=$W/tenant INSTANCE=dots refused r13 "" transfer
grep -q "cannot be used\|no domain XML" "$W/r13.log" || { cat "$W/r13.log"; fail "r13: no reason"; }
[[ ! -e $W/dst/x && ! -e $W/x ]] || fail "a file was written outside the destination"

echo
echo "local provider: all checks passed"
