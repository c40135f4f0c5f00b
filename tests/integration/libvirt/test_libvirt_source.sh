#!/usr/bin/env bash
# test_libvirt_source.sh BUILD_DIR SOURCE_DIR STACK_DIR - the libvirt
# provider's source side against the stack's libvirtd, reached over the
# stack's loopback sshd (qemu+libssh2://) as its unprivileged account, with a
# tiny running TCG domain (busybox initramfs, lib_guest.sh) with two disks:
# vda qcow2 (v3) with data, vdb raw and sparse. Driven through ek-lv-src
# (the task functions themselves); the replicas are written by a local
# ekman-writer (the `local` provider as destination).
#   1. validate-connection: success; wrong key, unknown and mismatching host
#      key, unreachable port, unknown host: each message names the problem;
#      a host key fingerprint instead of known_hosts works
#   2. listings (instances, networks, storage pools) and instance info
#   3. full sync of the running domain (backup job): replicas bit-identical
#      to the disks at the moment of the sync
#   4. the guest writes; incremental: only the changed blocks move (vda
#      through the dirty bitmap; vdb, raw, by block hashes), bit-identical;
#      4b. the same with source_environment changed_block_tracking false:
#      no checkpoint, every block compared; back on: a checkpoint again
#   5. a sync killed half-way (the process dies) and re-run as a retry: it
#      re-attaches to the backup job and completes; bit-identical; when the
#      job is lost meanwhile, the retry verifies every block instead
#   6. a sync killed half-way, then a new execution: the leftovers (job,
#      unfinished checkpoint, host directory) are cleaned up, the base
#      checkpoint is used; a cancelled sync leaves nothing behind
#   7. shut-off domain changed offline: read through libvirt (volume
#      download), only the changed blocks are sent; bit-identical
#   8. the source cleanups remove the checkpoints
#   9. a running domain whose qcow2 disk is v2 (no dirty bitmaps)
#  10. tenant isolation (issue #17): an endpoint without a private_key does
#      not get the operator's ssh_key_path unless operator_key_uris lists
#      it; a shut-off domain whose qcow2's external data file is the
#      worker's ekman.conf is refused and nothing of that file reaches the
#      destination
#  11. the SSH account outside group libvirt (validation says to join it),
#      then outside group kvm (a backup job says QEMU must share a group)
# After every sync: at most one Ekman checkpoint, no backup job, no host
# directory, no key file, no ssh tunnel left.
set -uo pipefail

BUILD=$(cd "$1" && pwd)
SRC=$(cd "$2" && pwd)
STACK=$3
. "$SRC/tests/integration/lib.sh"
. "$SRC/tests/integration/libvirt/lib_guest.sh"

RUN=$BUILD/tests/integration/libvirt/ek-lv-src
export EKMAN_WRITER=$BUILD/worker/ekman-writer
# Under ASan: libvirt 9.0 leaks the libssh2 session of its qemu+libssh2
# transport now and then when a connection closes (indirect leaks only, all
# allocated inside libssh2/libcrypto; the provider's own libssh2 sessions
# are freed, and runs without libvirt's event loop show no leak).
LSAN_SUPP=$(mktemp "${TMPDIR:-/var/tmp}/lvsrc-lsan-XXXXXX")
printf 'leak:libssh2_session_init_ex\nleak:libssh2.so\nleak:libcrypto.so\n' >"$LSAN_SUPP"
export LSAN_OPTIONS=suppressions=$LSAN_SUPP${LSAN_OPTIONS:+:$LSAN_OPTIONS}
die() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
log() { printf '\n== %s\n' "$*"; }
for t in jq qemu-img qemu-io socat ssh-keygen virsh; do
    command -v "$t" >/dev/null || die "$t is not installed (deploy/install-deps.sh)"
done
[[ -x $RUN && -x $EKMAN_WRITER ]] || die "build ek-lv-src and ekman-writer first"
eval "$("$SRC/deploy/stack.sh" env "$STACK")" || die "no stack in $STACK"

W=$(mktemp -d "${TMPDIR:-/var/tmp}/lvsrc-test-XXXXXX")
chmod 755 "$W"
mkdir -p "$W/con" "$W/tmp" "$W/dst" "$W/ref"
chmod 777 "$W/con" # QEMU (libvirt-qemu) binds the console socket there
DOM=lvsrc-src-$$
EVIL=lvsrc-evil-$$ EVIL_VDA=lvsrc-evil-$$-vda.qcow2
VDA=$DOM-vda.qcow2 VDB=$DOM-vdb.img
TAG=$(printf '%08x' $((RANDOM * 32768 + RANDOM)))
DEST_ID=$TAG-0000-4000-8000-000000000000
export LIBVIRT_DEFAULT_URI=qemu:///system

cleanup() {
    if [[ -n ${GROUPS_OUT:-} ]]; then
        gpasswd -a "$EKMAN_SSH_USER" libvirt >/dev/null
        gpasswd -a "$EKMAN_SSH_USER" kvm >/dev/null
    fi
    virsh -q destroy "$DOM" >/dev/null 2>&1
    virsh -q undefine "$DOM" --checkpoints-metadata >/dev/null 2>&1
    virsh -q vol-delete --pool "$EKMAN_POOL" "$VDA" >/dev/null 2>&1
    virsh -q vol-delete --pool "$EKMAN_POOL" "$VDB" >/dev/null 2>&1
    virsh -q undefine "$EVIL" >/dev/null 2>&1
    rm -f "$EKMAN_POOL_DIR/$EVIL_VDA"
    rm -rf /var/tmp/ekman-backup-"$TAG"-*
    rm -f "$LSAN_SUPP"
    [[ -n ${KEEP:-} ]] || rm -rf "$W"
}
trap cleanup EXIT

# The worker's configuration; the comment stands for its secrets (issue #17:
# no tenant image may make it reach a destination). The destination is the
# `local` provider, in the operator's allowed roots.
printf '# EKMAN-SECRET-%s\n[worker]\ntmp_dir = %s\n[local]\nallowed_roots = %s\n' \
    "$TAG" "$W/tmp" "$W/dst" >"$W/ekman.conf"
jq -n --arg k "$(base64 -w0 "$EKMAN_SSH_KEY")" --arg kh "$(cat "$EKMAN_SSH_KNOWN_HOSTS")" \
    --arg u "$EKMAN_SSH_USER" --argjson p "$EKMAN_SSH_PORT" \
    '{host: "127.0.0.1", port: $p, username: $u, private_key: $k, known_hosts: $kh}' >"$W/conn.json"
INFO=$W/info.json
ep() { "$RUN" endpoint "$1" --conn "${2:-$W/conn.json}" --config "$W/ekman.conf" ${3:+--args "$3"}; }
task() { # task TYPE [ARGS...]: one task; its output in $W/last.log, report in $W/last.json
    local t=$1
    shift
    "$RUN" task "$t" --conn "$W/conn.json" --config "$W/ekman.conf" --dst "$W/dst" \
        --dest-id "$DEST_ID" --instance "${INSTANCE:-$DOM}" --info "${INFO_FILE:-$INFO}" \
        --report "$W/last.json" "$@" \
        >"$W/last.log" 2>&1
}
show() { sed 's/^/    /' "$W/last.log"; }
jqe() { jq -e "$@" >/dev/null; }
stat_of() { jq -r --arg d "$1" ".task_info.volumes_info[] | select(.disk_id == \$d) | .last_sync.$2" "$INFO"; }

# ---------------------------------------------------------------- guest
log "guest: $DOM (kernel + busybox initramfs, two disks)"
guest_build "$BUILD/tests/integration/libvirt/guest-cache" || die "cannot build the guest"
cat >"$W/vda.xml" <<EOF
<volume><name>$VDA</name><capacity unit='MiB'>32</capacity>
  <target><format type='qcow2'/><compat>1.1</compat></target></volume>
EOF
virsh -q vol-create "$EKMAN_POOL" "$W/vda.xml" || die "cannot create $VDA"
virsh -q vol-create-as "$EKMAN_POOL" "$VDB" 16M --format raw || die "cannot create $VDB"
head -c 4M /dev/urandom >"$W/data.raw"
qemu-img convert -q -n -f raw -O qcow2 "$W/data.raw" "$EKMAN_POOL_DIR/$VDA" || die "cannot fill $VDA"
dd if=/dev/urandom of="$EKMAN_POOL_DIR/$VDB" bs=64k seek=40 count=2 conv=notrunc status=none
guest_xml "$DOM" "$GUEST_KERNEL" "$GUEST_INITRD" "$W/con" "$EKMAN_POOL_DIR/$VDA" qcow2 \
    "$EKMAN_POOL_DIR/$VDB" raw >"$W/dom.xml"
virsh -q define "$W/dom.xml" >/dev/null && virsh -q start "$DOM" >/dev/null || die "cannot start $DOM"
guest_wait_ready "$W/con" || die "the guest did not boot: $(tail -5 "$W/con/con.log")"
echo "  guest up"

# ---------------------------------------------------------------- 1. validate
log "1. validate-connection"
check "validate-connection succeeds" ep validate_connection
ep validate_connection | jq -e '.libvirt_version and .hypervisor == "QEMU"' >/dev/null
check "it reports the host's libvirt and hypervisor" test $? -eq 0

expect_error() { # expect_error DESCRIPTION CONN_JQ_FILTER REGEX
    jq "$2" "$W/conn.json" >"$W/bad.json"
    local out
    out=$(ep validate_connection "$W/bad.json" 2>/dev/null)
    if [[ $out == ERROR:* && $out =~ $3 ]]; then ok "$1"; else not_ok "$1: got: $out"; fi
}
ssh-keygen -q -t ed25519 -N '' -f "$W/other_key"
OTHER=$(base64 -w0 "$W/other_key")
expect_error "a wrong key is an authentication failure naming the user" \
    ".private_key = \"$OTHER\"" "authentication failed.*'$EKMAN_SSH_USER'.*authorized_keys"
expect_error "a mismatching host key is named as such" \
    ".known_hosts = \"[127.0.0.1]:$EKMAN_SSH_PORT ssh-ed25519 $(cut -d' ' -f2 "$W/other_key.pub")\"" \
    "HOST KEY MISMATCH: 127.0.0.1:$EKMAN_SSH_PORT offers ssh-ed25519 key SHA256:"
expect_error "an unknown host key is named as such" \
    ".known_hosts = \"[10.9.9.9]:22 ssh-ed25519 $(cut -d' ' -f2 "$W/other_key.pub")\"" \
    "unknown host key: 127.0.0.1:$EKMAN_SSH_PORT offers ssh-ed25519"
expect_error "without known_hosts nor fingerprint the host key is unknown" \
    "del(.known_hosts)" "host key of 127.0.0.1 must be known"
FREE_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
expect_error "an unreachable port is a TCP failure" ".port = $FREE_PORT" \
    "cannot open a TCP connection to 127.0.0.1 port $FREE_PORT: Connection refused"
expect_error "an unknown host name is a DNS failure" '.host = "no-such-host.invalid"' \
    "cannot resolve host name 'no-such-host.invalid'"
expect_error "a libvirt refusal is named after SSH succeeded" \
    '.uri_path = "nosuchdriver"' "logged in to .* over SSH, but libvirt \(/nosuchdriver\) refused"
FP=$(ssh-keygen -lf "$EKMAN_SSH_KNOWN_HOSTS" | awk '{print $2; exit}')
jq --arg f "$FP" 'del(.known_hosts) | .host_key_fingerprint = $f' "$W/conn.json" >"$W/fp.json"
check "a host key fingerprint instead of known_hosts works" ep validate_connection "$W/fp.json"
expect_error "a wrong fingerprint is a host key mismatch" \
    'del(.known_hosts) | .host_key_fingerprint = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"' \
    "host key mismatch: 127.0.0.1:$EKMAN_SSH_PORT offers ssh-ed25519 key ${FP//+/\\+}"
check "no key directory is left behind" test -z "$(ls -A "$W/tmp")"

# ---------------------------------------------------------------- 2. listings
log "2. listings and instance info"
ep instances >"$W/instances.json"
check "instances list the domain with its disks" \
    jqe --arg d "$DOM" '.[] | select(.name == $d) | .num_disks == 2 and .num_cpu == 1 and .memory_mb == 128 and .state == "running"' "$W/instances.json"
check "instances filter by name" bash -c "'$RUN' endpoint instances --conn '$W/conn.json' --args '{\"name\": \"$DOM\"}' | jq -e 'length == 1' >/dev/null"
check "storage lists the stack's pool with its size" \
    bash -c "'$RUN' endpoint storage --conn '$W/conn.json' | jq -e --arg p '$EKMAN_POOL' '.storage_backends[] | select(.name == \$p) | .type == \"dir\" and .total_bytes > 0 and .free_bytes > 0' >/dev/null"
check "networks is a list" bash -c "'$RUN' endpoint networks --conn '$W/conn.json' | jq -e 'type == \"array\"' >/dev/null"
check "instance answers export_info" \
    bash -c "'$RUN' endpoint instance --conn '$W/conn.json' --args '{\"name\": \"$DOM\"}' | jq -e '.disks | length == 2' >/dev/null"
out=$(ep instance "$W/conn.json" '{"name": "lvsrc-no-such-domain"}')
if [[ $out == ERROR:*"no domain named 'lvsrc-no-such-domain'"* ]]; then ok "an unknown instance is named"; else not_ok "an unknown instance is named: $out"; fi

for t in VALIDATE_TRANSFER_SOURCE_INPUTS GET_INSTANCE_INFO DEPLOY_TRANSFER_DISKS \
    DEPLOY_TRANSFER_SOURCE_RESOURCES DEPLOY_TRANSFER_TARGET_RESOURCES; do
    task "$t" || { show; die "$t failed"; }
done
ok "validation, instance info, replica disks and writer"
check "export_info: CPUs, memory, firmware, machine" \
    jqe '.task_info.export_info | .num_cpu == 1 and .memory_mb == 128 and .firmware == "bios" and .os_type == "linux" and .state == "running"' "$INFO"
check "export_info: disks with formats, sizes, buses, boot order" \
    jqe '.task_info.export_info | (.disks | map([.id, .format, .size_bytes, .bus]) == [["vda","qcow2",33554432,"virtio"],["vdb","raw",16777216,"virtio"]]) and .boot_order == ["vda"] and .disks[0].volume != null' "$INFO"
check "export_info: NIC with its MAC" \
    jqe '.task_info.export_info.nics == [{"mac":"52:54:00:6c:76:01","network_name":null,"type":"user","model":"virtio"}]' "$INFO"

# ---------------------------------------------------------------- helpers of the syncs
# The moment of a sync: the domain is paused, its disks are exported, the
# sync runs (a backup job works on a paused domain) and the domain resumes.
reference() { # reference NAME
    virsh -q suspend "$DOM" >/dev/null || return 1
    qemu-img convert -U -f qcow2 -O raw "$EKMAN_POOL_DIR/$VDA" "$W/ref/$1-vda.raw" &&
        qemu-img convert -U -f raw -O raw "$EKMAN_POOL_DIR/$VDB" "$W/ref/$1-vdb.raw"
}
resume() { virsh -q resume "$DOM" >/dev/null 2>&1 || true; }
identical() { # identical NAME: the replicas equal the reference
    cmp -s "$W/ref/$1-vda.raw" "$W/dst/$DOM/disk-vda.img" &&
        cmp -s "$W/ref/$1-vdb.raw" "$W/dst/$DOM/disk-vdb.img"
}
checkpoints() { virsh -q checkpoint-list "$DOM" --name 2>/dev/null | grep -c "^ekman-$TAG-"; }
job_none() {
    case $(virsh domstate "$DOM" 2>/dev/null) in
    running | paused) virsh domjobinfo "$DOM" 2>/dev/null | grep 'Job type: *None' >/dev/null ;;
    *) true ;;
    esac
}
# libvirt ends an aborted pull job asynchronously: its job info may lag.
no_job() { wait_for 10 job_none; }
cp_names() { virsh -q checkpoint-list "$DOM" --name 2>/dev/null | grep "^ekman-$TAG-" | tr '\n' ' '; }
leftovers() { # what a finished sync must not leave
    local l=""
    no_job || l+=" backup-job($(virsh domjobinfo "$DOM" 2>&1 | head -2 | tr -s ' \n' ' '))"
    compgen -G "/var/tmp/ekman-backup-$TAG-*" >/dev/null && l+=" host-dir"
    [[ -z $(ls -A "$W/tmp") ]] || l+=" worker-tmp:$(ls "$W/tmp" | tr '\n' ' ')"
    pgrep -f "ssh -F /dev/null.*$W/tmp" >/dev/null && l+=" ssh-tunnel"
    ((${1:-1} >= $(checkpoints))) || l+=" checkpoints:$(checkpoints)"
    [[ -z $l ]] || { echo "    left:$l"; return 1; }
}
gwrite() { # gwrite TAG DEV SEEK_64K COUNT
    guest_cmd "$W/con" "$1" "dd if=/dev/urandom of=/dev/$2 bs=64k seek=$3 count=$4 conv=fsync 2>/dev/null"
}

# ---------------------------------------------------------------- 3. full
log "3. full sync of the running domain"
reference s1 || die "no reference"
task REPLICATE_DISKS --params '{"incremental": false}'
rc=$?
resume
((rc == 0)) || { show; die "the full sync failed"; }
check "replicas identical to the disks at the sync" identical s1
check "vda: its 4 MiB of data were sent" test "$(stat_of vda data_bytes)" -eq 4194304
check "one checkpoint, nothing else left" leftovers 1
check "the sync created a checkpoint ekman-$TAG-N" test "$(checkpoints)" -eq 1
CP1=$(cp_names)

# ---------------------------------------------------------------- 4. incremental
log "4. incremental: the guest wrote 128 KiB on vda, 64 KiB on vdb"
gwrite w1 vda 100 2 && gwrite w2 vdb 3 1 || die "the guest did not write"
reference s2 || die "no reference"
task REPLICATE_DISKS --params '{"incremental": true}'
rc=$?
resume
((rc == 0)) || { show; die "the incremental sync failed"; }
show | grep -E "backup job|vda|vdb"
check "replicas identical to the disks at the sync" identical s2
check "vda: exactly the 128 KiB the guest wrote were sent (dirty bitmap)" \
    test "$(stat_of vda data_bytes)" -eq 131072 -a "$(stat_of vda change_tracking)" = true
check "vda: the rest was skipped unchanged" test "$(stat_of vda unchanged_bytes)" -eq $((32 * 1048576 - 131072))
# Zero ranges cost a small frame each; data is what moves.
check "vdb (raw): only data of the differing 1 MiB block was sent, by block hashes" \
    test "$(stat_of vdb data_bytes)" -ge 65536 -a "$(stat_of vdb data_bytes)" -le 1048576 -a "$(stat_of vdb wire_bytes)" -le 1200000
check "one checkpoint, nothing else left" leftovers 1
CP2=$(cp_names)
check "the checkpoint is the new one ($CP1-> $CP2)" test -n "$CP2" -a "$CP1" != "$CP2"

# ---------------------------------------------------------------- 4b. CBT off
log "4b. source_environment changed_block_tracking false: no checkpoint, every disk read and compared"
gwrite w1b vda 300 2 && gwrite w2b vdb 5 1 || die "the guest did not write"
reference c2 || die "no reference"
task REPLICATE_DISKS --params '{"incremental": true}' --source-env '{"changed_block_tracking": false}'
rc=$?
resume
((rc == 0)) || { show; die "the CBT-off sync failed"; }
check "replicas identical to the disks at the sync" identical c2
check "vda: read whole and compared by block hashes, the event says why" \
    grep -q "changed_block_tracking is off in the source environment" "$W/last.log"
check "vda: only the changed blocks were sent" test "$(stat_of vda data_bytes)" -le 1048576
check "no checkpoint left (the earlier one deleted, none made)" test "$(checkpoints)" -eq 0
check "nothing else left" leftovers 0
gwrite w3b vda 200 1 || die "the guest did not write"
reference c3 || die "no reference"
task REPLICATE_DISKS --params '{"incremental": true}'
rc=$?
resume
((rc == 0)) || { show; die "the sync with CBT back on failed"; }
check "CBT back on (the default): identical, one checkpoint again" \
    bash -c "cmp -s '$W/ref/c3-vda.raw' '$W/dst/$DOM/disk-vda.img' && [ \"\$(virsh -q checkpoint-list '$DOM' --name | grep -c '^ekman-$TAG-')\" = 1 ]"
task VALIDATE_TRANSFER_SOURCE_INPUTS --source-env '{"bogus": 1}'
check "an unknown source environment key is refused, by name" grep -q "source_environment.bogus" "$W/last.log"
task VALIDATE_TRANSFER_SOURCE_INPUTS --source-env '{"changed_block_tracking": "no"}'
check "a non-boolean changed_block_tracking is refused" grep -q "changed_block_tracking must be true or false" "$W/last.log"

# ---------------------------------------------------------------- 5. killed, retried
log "5. a sync killed half-way, then retried (re-attach)"
gwrite w3 vda 200 3 && gwrite w4 vdb 50 1 || die "the guest did not write"
reference s3 || die "no reference"
task REPLICATE_DISKS --params '{"incremental": true}' --kill-after-saves 1
rc=$?
check "the first attempt died" test $rc -eq 137
check "it left its backup job and a second checkpoint" bash -c "! virsh domjobinfo '$DOM' | grep -q 'Job type: *None' && test \$(virsh -q checkpoint-list '$DOM' --name | grep -c '^ekman-$TAG-') -eq 2"
task REPLICATE_DISKS --params '{"incremental": true}' --resume
rc=$?
resume
((rc == 0)) || { show; die "the retried sync failed"; }
check "the retry re-attached to the job of the first attempt" grep -q "re-attached to the backup job" "$W/last.log"
check "replicas identical to the disks at the first attempt's moment" identical s3
check "one checkpoint, nothing else left (the dead attempt's key dir too)" leftovers 1

log "5b. a sync killed half-way whose backup job is then lost, retried"
gwrite w3b vda 250 1 || die "the guest did not write"
task REPLICATE_DISKS --params '{"incremental": true}' --kill-after-saves 1
virsh -q domjobabort "$DOM" >/dev/null 2>&1 # as if libvirtd had restarted
wait_for 10 job_none
gwrite w3c vda 251 1 || die "the guest did not write"
reference s3b || die "no reference"
task REPLICATE_DISKS --params '{"incremental": true}' --resume
rc=$?
resume
((rc == 0)) || { show; die "the retried sync failed"; }
check "the retry verifies every block (new point in time)" grep -q "every block is verified against the replica" "$W/last.log"
check "replicas identical to the disks at the retry's moment" identical s3b
check "the lost job's host directory and checkpoint are gone too" leftovers 1

# ---------------------------------------------------------------- 6. killed, new execution; cancelled
log "6. a sync killed half-way, then a new execution; a cancelled sync"
gwrite w5 vda 300 1 || die "the guest did not write"
task REPLICATE_DISKS --params '{"incremental": true}' --kill-after-saves 1
gwrite w6 vda 310 1 || die "the guest did not write"
reference s4 || die "no reference"
task REPLICATE_DISKS --params '{"incremental": true}'
rc=$?
resume
((rc == 0)) || { show; die "the new execution failed"; }
check "the new execution ended the dead one's job" grep -q "ended the backup job an earlier run left" "$W/last.log"
check "and deleted its unfinished checkpoint" grep -q "from an unfinished sync" "$W/last.log"
check "replicas identical" identical s4
check "vda: the writes since the last good sync, no more, were sent" test "$(stat_of vda data_bytes)" -eq 131072
check "one checkpoint, nothing else left" leftovers 1
gwrite w7 vda 320 1 || die "the guest did not write"
task REPLICATE_DISKS --params '{"incremental": true}' --cancel-after-saves 1
rc=$?
check "a cancelled sync fails" test $rc -eq 1
check "it says it was cancelled" grep -q "ERROR: .*cancelled" "$W/last.log"
check "and leaves nothing: its checkpoint, job, files are gone" leftovers 1
reference s5 || die "no reference"
task REPLICATE_DISKS --params '{"incremental": true}'
rc=$?
resume
((rc == 0)) || { show; die "the sync after the cancelled one failed"; }
check "the sync after it is complete: identical" identical s5

# ---------------------------------------------------------------- 7. shut off
log "7. shut-off domain, changed offline"
virsh -q destroy "$DOM" >/dev/null || die "cannot stop $DOM"
qemu-io -f qcow2 -c 'write -P 0x5a 20M 192k' "$EKMAN_POOL_DIR/$VDA" >/dev/null || die "qemu-io failed"
dd if=/dev/urandom of="$EKMAN_POOL_DIR/$VDB" bs=64k seek=120 count=1 conv=notrunc status=none
qemu-img convert -f qcow2 -O raw "$EKMAN_POOL_DIR/$VDA" "$W/ref/s6-vda.raw"
cp --sparse=always "$EKMAN_POOL_DIR/$VDB" "$W/ref/s6-vdb.raw"
task VALIDATE_TRANSFER_SOURCE_INPUTS || { show; die "validation of the shut-off domain failed"; }
task SHUTDOWN_INSTANCE
check "SHUTDOWN_INSTANCE of a shut-off domain says so" grep -q "is already shut off" "$W/last.log"
check "UPDATE_SOURCE_TRANSFER checks the endpoint" task UPDATE_SOURCE_TRANSFER
task REPLICATE_DISKS --params '{"incremental": true}' || { show; die "the shut-off sync failed"; }
show | grep -E "vda|vdb"
check "replicas identical to the shut-off disks" identical s6
check "vda: only data of the changed 1 MiB block went (block hashes)" \
    test "$(stat_of vda data_bytes)" -ge 196608 -a "$(stat_of vda data_bytes)" -le 1048576 -a "$(stat_of vda wire_bytes)" -le 1200000
check "the downloads are gone, one checkpoint stays" leftovers 1

# ---------------------------------------------------------------- 8. cleanups
log "8. source cleanups"
task DELETE_TRANSFER_SOURCE_RESOURCES || show
check "DELETE_TRANSFER_SOURCE_RESOURCES keeps the base checkpoint" test "$(checkpoints)" -eq 1
task DELETE_TRANSFER_SOURCE_DISK_SNAPSHOTS || show
check "DELETE_TRANSFER_SOURCE_DISK_SNAPSHOTS removes it" test "$(checkpoints)" -eq 0
check "and says the shut-off domain's image keeps its bitmap" grep -q "leaves its dirty bitmap" "$W/last.log"
check "nothing left at all" leftovers 0

# ---------------------------------------------------------------- 9. qcow2 v2
# What `virsh vol-create-as --format qcow2` makes: compat 0.10, which cannot
# hold the bitmap of a checkpoint (and libvirt's volume XML does not say so).
log "9. a running domain whose qcow2 disk is v2 (no dirty bitmaps)"
for b in $(qemu-img info --output=json "$EKMAN_POOL_DIR/$VDA" | jq -r '.["format-specific"].data.bitmaps[]?.name'); do
    qemu-img bitmap --remove "$EKMAN_POOL_DIR/$VDA" "$b"
done
qemu-img amend -q -f qcow2 -o compat=0.10 "$EKMAN_POOL_DIR/$VDA" || die "cannot make $VDA v2"
virsh -q start "$DOM" >/dev/null || die "cannot start $DOM"
reference s9 || die "no reference"
task REPLICATE_DISKS --params '{"incremental": true}'
rc=$?
resume
((rc == 0)) || { show; die "the sync of the v2 disk failed"; }
check "a warning says the disk cannot hold a dirty bitmap, and what to do" \
    grep -q "cannot hold a dirty bitmap.*compat=1.1" "$W/last.log"
check "replicas identical to the disks at the sync" identical s9
check "vda: nothing sent, its blocks equal the replica's (block hashes)" test "$(stat_of vda data_bytes)" -eq 0
check "no checkpoint, nothing else left" leftovers 0
virsh -q destroy "$DOM" >/dev/null 2>&1

# ---------------------------------------------------------------- 10. tenant isolation
log "10. tenant isolation: the operator's key; a qcow2 whose data file is the worker's ekman.conf"
jq 'del(.private_key)' "$W/conn.json" >"$W/nokey.json"
URI="qemu+ssh://$EKMAN_SSH_USER@127.0.0.1:$EKMAN_SSH_PORT/system"
cp "$W/ekman.conf" "$W/opkey.conf"
printf '[libvirt_migration_provider]\nssh_key_path = %s\n' "$EKMAN_SSH_KEY" >>"$W/opkey.conf"
out=$("$RUN" endpoint validate_connection --conn "$W/nokey.json" --config "$W/opkey.conf" 2>/dev/null)
if [[ $out == ERROR:*"operator_key_uris"* && $out == *"$URI"* ]]; then
    ok "a keyless endpoint does not get the operator's key: $(cut -c1-120 <<<"$out")..."
else not_ok "a keyless endpoint got the operator's key: $out"; fi
printf 'operator_key_uris = %s\n' "$URI" >>"$W/opkey.conf"
check "listed in operator_key_uris, it does" \
    "$RUN" endpoint validate_connection --conn "$W/nokey.json" --config "$W/opkey.conf"

truncate -s 1M "$W/dummy.raw"
qemu-img create -q -f qcow2 -o data_file="$W/dummy.raw",data_file_raw=on \
    "$EKMAN_POOL_DIR/$EVIL_VDA" 1M || die "cannot create $EVIL_VDA"
qemu-img amend -q -f qcow2 -o data_file="$W/ekman.conf" "$EKMAN_POOL_DIR/$EVIL_VDA" ||
    die "cannot point $EVIL_VDA at ekman.conf"
virsh -q pool-refresh "$EKMAN_POOL" >/dev/null
guest_xml "$EVIL" "$GUEST_KERNEL" "$GUEST_INITRD" "$W/con" "$EKMAN_POOL_DIR/$EVIL_VDA" qcow2 \
    "$EKMAN_POOL_DIR/$VDB" raw >"$W/evil.xml"
virsh -q define "$W/evil.xml" >/dev/null || die "cannot define $EVIL"
echo '{}' >"$W/evil-info.json"
for t in GET_INSTANCE_INFO DEPLOY_TRANSFER_DISKS DEPLOY_TRANSFER_TARGET_RESOURCES; do
    INSTANCE=$EVIL INFO_FILE=$W/evil-info.json task "$t" || { show; die "$t of $EVIL failed"; }
done
INSTANCE=$EVIL INFO_FILE=$W/evil-info.json task REPLICATE_DISKS --params '{"incremental": false}'
rc=$?
check "the sync of the shut-off domain is refused" test "$rc" -ne 0
check "the error names the data file" grep -q "disk 'vda'.*refers to other files\|external data file" "$W/last.log" ||
    show
check "nothing of the worker's ekman.conf reached the destination" \
    bash -c "! grep -rqa 'EKMAN-SECRET-$TAG' '$W/dst'"
check "no download, qemu-nbd or key left" test -z "$(ls -A "$W/tmp")"

# ---------------------------------------------------------------- 11. the account's groups
log "11. the SSH account outside group libvirt, then outside group kvm: the errors say which"
# (cleanup puts it back in both whatever happens; sshd reads groups at login)
GROUPS_OUT=1
gpasswd -d "$EKMAN_SSH_USER" libvirt >/dev/null
expect_error "outside group libvirt: the error says the account needs libvirtd's socket (group libvirt)" \
    '.' "refused the connection: the user needs read-write access to libvirtd's socket \(group libvirt"
gpasswd -a "$EKMAN_SSH_USER" libvirt >/dev/null
virsh -q start "$DOM" >/dev/null || die "cannot start $DOM"
gpasswd -d "$EKMAN_SSH_USER" kvm >/dev/null
task REPLICATE_DISKS --params '{"incremental": false}'
rc=$?
gpasswd -a "$EKMAN_SSH_USER" kvm >/dev/null
resume
check "outside group kvm: the sync of the running domain fails" test "$rc" -ne 0
check "  the error says the SSH user must share a group with QEMU (kvm on Debian)" \
    grep -q "share a group with QEMU, kvm on Debian" "$W/last.log" || show
check "  no backup directory is left on the host" bash -c "! ls -d /var/tmp/ekman-backup-$TAG-* 2>/dev/null"
virsh -q destroy "$DOM" >/dev/null 2>&1

finish
