#!/usr/bin/env bash
# quickstart.sh - Ekman's main job, on this machine, in one command: installs
# the Debian packages, builds, brings up the local stack (PostgreSQL, RabbitMQ,
# libvirtd, sshd on loopback, a storage pool, a NAT network and Ekman's worker
# image), starts conductor, scheduler and a worker, defines and starts a small
# source VM on the local libvirtd, and migrates it with the `ekman` client:
# two libvirt endpoints (the same host reached over SSH), a transfer, an
# execution and a deployment with live progress. It ends with the new VM,
# its disks compared with the source's, and how to look at it and tear all
# down. Run it again: what exists is reused, a new transfer is made.
#
# With --vmware, the demo is a VMware migration with OS morphing instead: a
# Debian 12 guest built the way VMware runs it (open-vm-tools, LSI/PVSCSI
# drivers and no virtio in its initramfs, a vmxnet3 NIC named ens192; from
# Debian packages with debootstrap, tests/fixtures/guest), exported as an OVA
# into the stack's OVA directory, transferred by an `ova` endpoint and deployed
# with OS morphing; the new VM boots on virtio disks and NIC to a login prompt
# and its qemu-guest-agent answers.
#   deploy/quickstart.sh [--vmware]   (as root, from a checkout, Debian 12)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${EKMAN_STACK_DIR:-$ROOT/.ekman-stack}
DOM=${EKMAN_DEMO_VM:-ekman-demo}
VMWARE=0
case ${1:-} in
    --vmware) VMWARE=1 ;;
    "") ;;
    *) printf 'usage: deploy/quickstart.sh [--vmware]\n' >&2; exit 2 ;;
esac
T0=$SECONDS
step() { printf '\n==> [%3ds] %s\n' $((SECONDS - T0)) "$*"; }
die() { printf 'quickstart: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run me as root: I install packages and start services"

step "installing dependencies"
"$ROOT/deploy/install-deps.sh"
step "building (build/)"
cmake -S "$ROOT" -B "$ROOT/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$ROOT/build" -j "$(nproc)" >/dev/null
if [ $VMWARE = 1 ]; then
    VM=ekman-vmware-demo
    step "building a VMware-built Debian 12 guest (debootstrap; cached after the first time)"
    mkdir -p "$DIR"
    "$ROOT/tests/fixtures/guest/build-guest.sh" --out "$DIR/vmware-guest" | grep '^\[build-guest\]' || true
    [ -s "$DIR/vmware-guest/guest.raw" ] || die "the guest could not be built (run tests/fixtures/guest/build-guest.sh --out $DIR/vmware-guest)"
    # qemu-guest-agent and cloud-init for it, as an operator offers them to guests
    # whose repositories are out of reach (osmorphing_packages_dir)
    rm -rf "$DIR/osmorphing-packages"
    cp -r "$DIR/vmware-guest/packages" "$DIR/osmorphing-packages"
    step "exporting it as an OVA, as vSphere does (streamOptimized VMDK, OVF, manifest)"
    mkdir -p "$DIR/ova"
    "$ROOT/tests/fixtures/guest/make-ova.sh" --disk "$DIR/vmware-guest/guest.raw" --out "$DIR/ova/$VM.ova" \
        --name "$VM" --adapter pvscsi --nic vmxnet3 >/dev/null
    rm -f "$DIR/vmware-guest/guest.raw" # the OVA holds it now
    ls -l "$DIR/ova/$VM.ova"
fi
step "bringing up the local stack in $DIR (and the worker image)"
EKMAN_WORKER_IMAGE=1 EKMAN_BUILD_DIR="$ROOT/build" "$ROOT/deploy/stack.sh" up "$DIR"
eval "$("$ROOT/deploy/stack.sh" env "$DIR")"
[ -n "${EKMAN_WORKER_IMAGE_VOLUME:-}" ] || die "the stack has no worker image volume (see the output above)"
step "starting Ekman's services (restarted: they run this build)"
"$ROOT/deploy/services.sh" stop "$DIR" >/dev/null
"$ROOT/deploy/services.sh" start --bin "$ROOT/build" "$DIR"
EKMAN=("$ROOT/build/client/ekman")
for _ in $(seq 120); do "${EKMAN[@]}" status >/dev/null 2>&1 && break; sleep 0.5; done
"${EKMAN[@]}" status

# ---- an account for the demo --------------------------------------------------------------
export EKMAN_USERNAME=demo EKMAN_PROJECT=demo
PWFILE=$DIR/secrets/demo_password
if [ ! -s "$PWFILE" ]; then
    head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$PWFILE"
    chmod 600 "$PWFILE"
    EKMAN_PASSWORD=$(cat "$PWFILE") "$ROOT/build/conductor/ekman-conductor" --config "$EKMAN_CONFIG" \
        --create-user demo --project demo --role admin >/dev/null
fi
EKMAN_PASSWORD=$(cat "$PWFILE")
export EKMAN_PASSWORD
"${EKMAN[@]}" login >/dev/null

v() { virsh -q -c qemu:///system "$@"; }

# ---- --vmware: the OVA through an ova endpoint, deployed with OS morphing --------------------
if [ $VMWARE = 1 ]; then
    step "creating the endpoints: the stack's OVA directory (source), libvirt over SSH (destination)"
    CONN=$DIR/demo-connection.json
    jq -n --arg k "$(base64 -w0 "$EKMAN_SSH_KEY")" --arg kh "$(cat "$EKMAN_SSH_KNOWN_HOSTS")" \
        --arg u "$EKMAN_SSH_USER" --argjson p "$EKMAN_SSH_PORT" \
        '{host: "127.0.0.1", port: $p, username: $u, private_key: $k, known_hosts: $kh}' > "$CONN"
    chmod 600 "$CONN"
    "${EKMAN[@]}" endpoint show demo-destination >/dev/null 2>&1 ||
        "${EKMAN[@]}" endpoint create --name demo-destination --provider libvirt --connection-file "$CONN" >/dev/null
    "${EKMAN[@]}" endpoint show demo-ova >/dev/null 2>&1 ||
        jq -n --arg p "$DIR/ova" '{path: $p}' |
        "${EKMAN[@]}" endpoint create --name demo-ova --provider ova --connection-file - >/dev/null
    "${EKMAN[@]}" endpoint instance list demo-ova
    for old in $(v list --all --name | grep -x "$VM" || true); do
        v destroy "$old" >/dev/null 2>&1 || true
        v undefine "$old" --remove-all-storage >/dev/null
    done
    step "transferring '$VM' out of its OVA (a full copy through a temporary worker VM)"
    ENV=$(jq -nc '{migr_worker_memory: 1024, migr_worker_vcpus: 1, migr_worker_volume_size: 1,
        domain_type: "qemu", add_tpm_device: false, cpu_mode: "", cpu_features: [], set_dhcp: true}')
    TRANSFER=$("${EKMAN[@]}" --format json transfer create --origin-endpoint demo-ova \
        --destination-endpoint demo-destination --instance "$VM" \
        --network-map "VM Network=$EKMAN_LIBVIRT_NETWORK" \
        --destination-environment "$ENV" | jq -r '.transfer.id // .id')
    "${EKMAN[@]}" transfer execute "$TRANSFER" --wait
    step "deploying it with OS morphing (VMware tools out, virtio in, qemu-guest-agent installed)"
    "${EKMAN[@]}" deployment create "$TRANSFER" --wait
    step "the new VM '$VM' boots on virtio"
    v dumpxml "$VM" | grep -E "<target dev='vd|<model type=" | sed 's/^ */  /'
    LOG=/var/log/libvirt/qemu/$VM-serial.log
    for _ in $(seq 600); do grep -qa 'login:' "$LOG" 2>/dev/null && break; sleep 1; done
    grep -qa 'login:' "$LOG" || die "'$VM' did not reach a login prompt in 10 minutes (see $LOG)"
    tail -n 3 "$LOG" | tr -d '\r'
    for _ in $(seq 120); do
        v qemu-agent-command "$VM" '{"execute":"guest-ping"}' >/dev/null 2>&1 && break; sleep 1
    done
    v qemu-agent-command "$VM" '{"execute":"guest-info"}' | jq -r '"qemu-guest-agent " + .return.version + " answers"'
    cat <<MSG

Done in $((SECONDS - T0)) s: the VMware-built '$VM' was migrated from its OVA and adapted
to KVM by Ekman. See what OS morphing did:
  eval "\$(deploy/stack.sh env $DIR)"; build/client/ekman deployment list
  virsh console $VM   (user root, password ekman; Ctrl-] to leave)
Tear it down:
  virsh destroy $VM; virsh undefine $VM --remove-all-storage
  deploy/services.sh stop $DIR && deploy/stack.sh destroy $DIR   (down: keep the data)
MSG
    exit 0
fi

# ---- the source VM: Ekman's small Linux image as its system disk, plus a data disk ---------
if ! v dominfo "$DOM" >/dev/null 2>&1; then
    step "defining the source VM '$DOM' (2 disks) on the local libvirtd"
    ROOTDISK=$EKMAN_POOL_DIR/$DOM-root.qcow2 DATADISK=$EKMAN_POOL_DIR/$DOM-data.raw
    qemu-img convert -q -O qcow2 "$EKMAN_POOL_DIR/$EKMAN_WORKER_IMAGE_VOLUME" "$ROOTDISK"
    truncate -s 64M "$DATADISK"
    # some data to copy: a text file and random blocks, holes between them
    head -c 4M /dev/urandom | dd of="$DATADISK" bs=1M seek=8 conv=notrunc status=none
    { yes "Ekman quick start: this text travels compressed" || true; } | head -c 2M |
        dd of="$DATADISK" bs=1M seek=32 conv=notrunc status=none
    chown libvirt-qemu:libvirt-qemu "$ROOTDISK" "$DATADISK" 2>/dev/null || true
    cat > "$DIR/$DOM.xml" <<XML
<domain type='qemu'>
  <name>$DOM</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <features><acpi/></features>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
      <source file='$ROOTDISK'/><target dev='vda' bus='virtio'/></disk>
    <disk type='file' device='disk'><driver name='qemu' type='raw'/>
      <source file='$DATADISK'/><target dev='vdb' bus='virtio'/></disk>
    <interface type='network'><source network='$EKMAN_LIBVIRT_NETWORK'/><model type='virtio'/></interface>
    <serial type='pty'><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
  </devices>
</domain>
XML
    v define "$DIR/$DOM.xml" >/dev/null
    v pool-refresh "$EKMAN_POOL" >/dev/null
fi
# (a run before this one powered it off at its cut-over)
[ "$(v domstate "$DOM")" = running ] || v start "$DOM" >/dev/null
v dominfo "$DOM" | grep -E "^(Name|State|CPU\(s\)|Max memory)"

# ---- endpoints: the same libvirt host over SSH, as source and as destination ----------------
step "creating the source and destination endpoints (libvirt over SSH)"
CONN=$DIR/demo-connection.json
jq -n --arg k "$(base64 -w0 "$EKMAN_SSH_KEY")" --arg kh "$(cat "$EKMAN_SSH_KNOWN_HOSTS")" \
    --arg u "$EKMAN_SSH_USER" --argjson p "$EKMAN_SSH_PORT" \
    '{host: "127.0.0.1", port: $p, username: $u, private_key: $k, known_hosts: $kh}' > "$CONN"
chmod 600 "$CONN"
for ep in demo-source demo-destination; do
    "${EKMAN[@]}" endpoint show "$ep" >/dev/null 2>&1 ||
        "${EKMAN[@]}" endpoint create --name "$ep" --provider libvirt --connection-file "$CONN" >/dev/null
done
"${EKMAN[@]}" endpoint validate demo-source
"${EKMAN[@]}" endpoint instance list demo-source

# ---- transfer, execution, deployment ------------------------------------------------------
# A run before this one: its VM, deployments, replicas and transfer go first.
for old in $(v list --all --name | grep -x "$DOM-migrated" || true); do
    step "removing the VM '$old' of an earlier run, with its disks"
    v destroy "$old" >/dev/null 2>&1 || true
    v undefine "$old" --remove-all-storage --nvram >/dev/null 2>&1 ||
        v undefine "$old" --remove-all-storage >/dev/null
done
for old in $("${EKMAN[@]}" transfer list --format json |
             jq -r --arg d "$DOM" '.[] | select(.instances | index($d)) | .id'); do
    step "removing transfer $old of an earlier run (its replica disks too)"
    for dep in $("${EKMAN[@]}" deployment list --format json |
                 jq -r --arg t "$old" '.[] | select(.transfer_id == $t) | .id'); do
        "${EKMAN[@]}" deployment delete "$dep" >/dev/null
    done
    "${EKMAN[@]}" transfer delete-disks "$old" --wait >/dev/null 2>&1 || true # none: fine
    "${EKMAN[@]}" transfer delete "$old" >/dev/null
done

step "transferring '$DOM' (a full copy through a temporary worker VM)"
ENV=$(jq -nc --arg net "$EKMAN_LIBVIRT_NETWORK" '{migr_worker_memory: 256, migr_worker_vcpus: 1,
    migr_worker_volume_size: 1, domain_type: "qemu", add_tpm_device: false, cpu_features: ["x2apic"],
    enable_vm_vnc_console: true, vnc_listen_address: "127.0.0.1"}')
TRANSFER=$("${EKMAN[@]}" --format json transfer create --origin-endpoint demo-source \
    --destination-endpoint demo-destination --instance "$DOM" \
    --network-map "$EKMAN_LIBVIRT_NETWORK=$EKMAN_LIBVIRT_NETWORK" \
    --destination-environment "$ENV" --skip-os-morphing | jq -r '.transfer.id // .id')
"${EKMAN[@]}" transfer execute "$TRANSFER" --wait
step "executing again: an incremental (only what changed moves)"
"${EKMAN[@]}" transfer execute "$TRANSFER" --wait
step "cut-over: the source is powered off, a last incremental copies its final state"
v destroy "$DOM" >/dev/null
"${EKMAN[@]}" transfer execute "$TRANSFER" --wait
step "deploying the replica as a new VM (the source's MAC, on the same network)"
"${EKMAN[@]}" deployment create "$TRANSFER" --skip-os-morphing --wait

# ---- the result ----------------------------------------------------------------------------
NEW=$DOM-migrated
step "the new VM '$NEW'"
v dominfo "$NEW" | grep -E "^(Name|State|CPU\(s\)|Max memory)"
v domblklist "$NEW"
same=yes
while read -r dev path; do
    src=$(v domblklist "$DOM" | awk -v d="$dev" '$1 == d {print $2}')
    if qemu-img compare -q -U "$src" "$path"; then
        echo "disk $dev: identical to the source ($path)"
    else
        echo "disk $dev: DIFFERS from the source"; same=no
    fi
done < <(v domblklist "$NEW" | awk '$2 ~ /^\// {print $1, $2}')
[ $same = yes ] || die "the deployed disks differ from the source's"

cat <<MSG

Done in $((SECONDS - T0)) s: '$DOM' was migrated to '$NEW' by Ekman.
Look at it:
  virsh console $NEW            (Ctrl-] to leave)     virsh dumpxml $NEW
  virsh vncdisplay $NEW         (VNC on 127.0.0.1; its password: virsh dumpxml --security-info $NEW | grep passwd)
  eval "\$(deploy/stack.sh env $DIR)"; build/client/ekman transfer show $TRANSFER
  (the client reads EKMAN_USERNAME=demo EKMAN_PROJECT=demo, password in $PWFILE)
Tear it all down:
  virsh destroy $NEW; virsh undefine $NEW --remove-all-storage
  virsh undefine $DOM --checkpoints-metadata --remove-all-storage   (Ekman's checkpoint goes too)
  deploy/services.sh stop $DIR && deploy/stack.sh destroy $DIR   (down: keep the data)
MSG
