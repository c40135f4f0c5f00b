#!/usr/bin/env bash
# test_worker_image.sh - Ekman's worker image (deploy/worker-image) boots in a
# real TCG guest on libvirt and does its job: it reads the ekman/ files of a
# NoCloud config drive, reports its address through qemu-ga, accepts root over
# SSH with the worker's key under the host key it was given (and no other),
# names a hot-plugged disk /dev/disk/by-id/virtio-<serial>, and its
# ekman-writer (HTTPS, mutual TLS) writes a file onto that disk bit-exactly.
# Uses the stack's network and pool when STACK_DIR has them, else makes its
# own (img-test-net, a pool under /var/tmp); removes everything it made.
# Usage: test_worker_image.sh BUILD_DIR SOURCE_DIR [STACK_DIR]
# Environment: EKMAN_WORKER_TEST_MACHINE=pc|q35 (default pc, as the provider),
#   EKMAN_WORKER_TEST_MEMORY=MiB (256), EKMAN_WORKER_TEST_RNG=0 (no virtio-rng),
#   EKMAN_TEST_KEEP=1 (leave it all, to debug)
set -u
BUILD=$(realpath "$1") SRC=$(realpath "$2") STACK=${3:-}
. "$SRC/tests/integration/lib.sh"
export LIBVIRT_DEFAULT_URI=qemu:///system
EKT=$BUILD/worker/ekman-transfer
T=$(mktemp -d /var/tmp/image-test.XXXXXX)
chmod 0755 "$T"
DOM=image-test-wi-$$
NET='' NET_OURS='' POOL='' POOL_OURS='' VOLS=()
MEM_MIB=${EKMAN_WORKER_TEST_MEMORY:-256}
MACHINE=${EKMAN_WORKER_TEST_MACHINE:-pc}
now_ms() { local t=${EPOCHREALTIME//[.,]/}; echo $((t / 1000)); }
say() { echo "# $*"; }

cleanup() {
  local v
  if [ -n "${EKMAN_TEST_KEEP:-}" ]; then say "EKMAN_TEST_KEEP: left $DOM, $T, pool $POOL, network $NET"; return; fi
  virsh -q destroy "$DOM" >/dev/null 2>&1
  virsh -q undefine "$DOM" >/dev/null 2>&1
  for v in "${VOLS[@]}"; do virsh -q vol-delete --pool "$POOL" "$v" >/dev/null 2>&1; done
  if [ -n "$POOL_OURS" ]; then virsh -q pool-destroy "$POOL" >/dev/null 2>&1; virsh -q pool-undefine "$POOL" >/dev/null 2>&1; fi
  if [ -n "$NET_OURS" ]; then virsh -q net-destroy "$NET" >/dev/null 2>&1; virsh -q net-undefine "$NET" >/dev/null 2>&1; fi
  rm -rf "$T"
}
trap cleanup EXIT
trap "exit 143" INT TERM

# free_subnet: a 192.168.X (100..250) that no route and no libvirt network uses.
free_subnet() {
  local x used
  used=$( { ip -4 route; for n in $(virsh -q net-list --all --name); do virsh net-dumpxml "$n"; done; } 2>/dev/null)
  for x in $(seq 250 -1 100); do
    grep -q "192\.168\.$x\." <<<"$used" || { echo "$x"; return 0; }
  done
  return 1
}

setup_network() {
  if [ -n "$STACK" ] && [ -x "$SRC/deploy/stack.sh" ]; then
    eval "$("$SRC/deploy/stack.sh" env "$STACK" 2>/dev/null | grep -E '^export EKMAN_(LIBVIRT_NETWORK|POOL)=')"
    if [ -n "${EKMAN_LIBVIRT_NETWORK:-}" ] && virsh -q net-info "$EKMAN_LIBVIRT_NETWORK" 2>/dev/null | grep -q 'Active:.*yes'; then
      NET=$EKMAN_LIBVIRT_NETWORK
    fi
    if [ -n "${EKMAN_POOL:-}" ] && virsh -q pool-info "$EKMAN_POOL" 2>/dev/null | grep -q 'State:.*running'; then
      POOL=$EKMAN_POOL
    fi
  fi
  if [ -z "$NET" ]; then
    NET=img-test-net
    virsh -q net-destroy "$NET" >/dev/null 2>&1; virsh -q net-undefine "$NET" >/dev/null 2>&1
    local x
    x=$(free_subnet) || { echo "no free 192.168.x.0/24 subnet"; return 1; }
    cat >"$T/net.xml" <<EOF
<network xmlns:dnsmasq='http://libvirt.org/schemas/network/dnsmasq/1.0'>
  <name>$NET</name><forward mode='nat'/>
  <bridge name='virbr-imgtest' stp='off' delay='0'/>
  <ip address='192.168.$x.1' netmask='255.255.255.0'>
    <dhcp><range start='192.168.$x.10' end='192.168.$x.250'/></dhcp></ip>
  <dnsmasq:options><dnsmasq:option value='no-ping'/></dnsmasq:options>
</network>
EOF
    virsh -q net-define "$T/net.xml" >/dev/null && NET_OURS=1 && virsh -q net-start "$NET" >/dev/null || return 1
  fi
  if [ -z "$POOL" ]; then
    POOL=image-test-pool-$$
    mkdir -p "$T/pool"
    virsh -q pool-define-as "$POOL" dir --target "$T/pool" >/dev/null && POOL_OURS=1 &&
      virsh -q pool-start "$POOL" >/dev/null || return 1
  fi
  say "network $NET, pool $POOL"
}

# make_boot_material: client key, host key, writer certificates, config drive.
make_boot_material() {
  mkdir -p "$T/cidata/ekman" "$T/other"
  ssh-keygen -q -t ed25519 -N '' -C ekman-worker -f "$T/client_key" &&
    ssh-keygen -q -t ed25519 -N '' -C '' -f "$T/host_key" &&
    ssh-keygen -q -t ed25519 -N '' -C '' -f "$T/other/host_key" || return 1
  "$EKT" --gen-pki "$T/pki" >/dev/null || return 1
  cp "$T/client_key.pub" "$T/cidata/ekman/authorized_keys"
  cp "$T/host_key" "$T/cidata/ekman/ssh_host_ed25519_key"
  cp "$T/pki/ca.pem" "$T/cidata/ekman/writer-ca.pem"
  cp "$T/pki/server.pem" "$T/cidata/ekman/writer-cert.pem"
  cp "$T/pki/server.key" "$T/cidata/ekman/writer-key.pem"
  echo 5566 >"$T/cidata/ekman/writer-port"
  printf 'instance-id: iid-%s\nlocal-hostname: %s\n' "$DOM" "$DOM" >"$T/cidata/meta-data"
  printf '#cloud-config\n{}\n' >"$T/cidata/user-data"
  genisoimage -quiet -output "$T/seed.iso" -volid cidata -joliet -rock "$T/cidata" 2>/dev/null
}

make_volumes() {
  local base=image-test-worker-$$.qcow2
  virsh -q vol-create-as "$POOL" "$base" "$(stat -c %s "$IMAGE")" --format qcow2 >/dev/null &&
    VOLS+=("$base") && virsh -q vol-upload --pool "$POOL" "$base" "$IMAGE" || return 1
  BASE_PATH=$(virsh -q vol-path --pool "$POOL" "$base")
  virsh -q vol-create-as "$POOL" "image-test-root-$$.qcow2" 64M --format qcow2 \
    --backing-vol "$BASE_PATH" --backing-vol-format qcow2 >/dev/null && VOLS+=("image-test-root-$$.qcow2") || return 1
  ROOT_PATH=$(virsh -q vol-path --pool "$POOL" "image-test-root-$$.qcow2")
  virsh -q vol-create-as "$POOL" "image-test-data-$$.qcow2" 16M --format qcow2 >/dev/null &&
    VOLS+=("image-test-data-$$.qcow2") || return 1
  DATA_PATH=$(virsh -q vol-path --pool "$POOL" "image-test-data-$$.qcow2")
  virsh -q vol-create-as "$POOL" "image-test-data2-$$.qcow2" 16M --format qcow2 >/dev/null &&
    VOLS+=("image-test-data2-$$.qcow2") || return 1
  DATA2_PATH=$(virsh -q vol-path --pool "$POOL" "image-test-data2-$$.qcow2")
}

# The devices the libvirt provider gives a worker (docs/worker-image.md):
# pc (cdrom on IDE) hot-plugs into its PCI root bus; q35 (cdrom on SATA)
# needs a free pcie-root-port per hot-plugged disk.
define_domain() {
  local PCI_PORTS='' CD_BUS=sata RNG=''
  # virtio-rng: without it the kernel's CRNG (that sshd and TLS wait for)
  # takes many seconds under TCG
  [ "${EKMAN_WORKER_TEST_RNG:-1}" = 1 ] &&
    RNG="<rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>"
  if [ "$MACHINE" = q35 ]; then
    PCI_PORTS="<controller type='pci' index='0' model='pcie-root'/>"
    PCI_PORTS="$PCI_PORTS$(printf "<controller type='pci' model='pcie-root-port'/>%.0s" 1 2 3 4 5 6)"
  else
    CD_BUS=ide
  fi
  cat >"$T/dom.xml" <<EOF
<domain type='qemu'>
  <name>$DOM</name><memory unit='MiB'>$MEM_MIB</memory><vcpu>1</vcpu>
  <os><type arch='x86_64' machine='$MACHINE'>hvm</type><boot dev='hd'/></os>
  <features><acpi/><apic/></features>
  <on_poweroff>destroy</on_poweroff><on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
      <source file='$ROOT_PATH'/><target dev='vda' bus='virtio'/></disk>
    <disk type='file' device='cdrom'><driver name='qemu' type='raw'/>
      <source file='$T/seed.iso'/><target dev='sda' bus='$CD_BUS'/><readonly/></disk>
    <interface type='network'><source network='$NET'/><model type='virtio'/></interface>
    <controller type='usb' model='none'/><memballoon model='none'/>$PCI_PORTS
    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>$RNG
    <serial type='file'><source path='$T/console.log'/><target port='0'/></serial>
  </devices>
</domain>
EOF
  virsh -q define "$T/dom.xml" >/dev/null
}

# agent_ip: the IPv4 address qemu-ga reports for the NIC (not lo).
agent_ip() {
  virsh -q domifaddr "$DOM" --source agent 2>/dev/null |
    awk '$1 != "lo" && $3 == "ipv4" { sub(/\/.*/, "", $4); print $4; exit }'
}
got_ip() { IP=$(agent_ip); [ -n "$IP" ]; }
port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }

guest_ssh() { # guest_ssh KNOWN_HOSTS CMD...
  local kh=$1; shift
  timeout 30 ssh -q -F /dev/null -i "$T/client_key" -o IdentitiesOnly=yes -o BatchMode=yes \
    -o UserKnownHostsFile="$kh" -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes \
    -o ConnectTimeout=10 "root@$IP" "$@"
}

IMAGE=$BUILD/worker-image/ekman-worker.qcow2
t0=$(now_ms)
check "the worker image builds" "$SRC/deploy/worker-image/build.sh" --build-dir "$BUILD" --output "$IMAGE"
say "image: $(du -k "$IMAGE" | cut -f1) KiB on disk, build/check $(($(now_ms) - t0)) ms"
check "a second build is a no-op (cache)" bash -c "'$SRC/deploy/worker-image/build.sh' --build-dir '$BUILD' --output '$IMAGE' 2>&1 | grep -q 'up to date'"
check "network and pool are ready" setup_network || { finish; exit 1; }
check "keys, certificates and the NoCloud drive are made" make_boot_material
check "volumes: image uploaded, overlay and data disk created" make_volumes
check "the worker domain is defined" define_domain || { finish; exit 1; }

t0=$(now_ms)
check "the worker domain starts" virsh -q start "$DOM" || { finish; exit 1; }
IP=
wait_for 180 got_ip
check "qemu-ga reports the worker's address ($IP, $(($(now_ms) - t0)) ms after start)" test -n "$IP"
# ready = the writer completes a TLS handshake (mutual) and answers
health() {
  curl -sf -o /dev/null --max-time 5 --cacert "$T/pki/ca.pem" --cert "$T/pki/client.pem" \
    --key "$T/pki/client.key" --resolve "ekman-writer:5566:$IP" https://ekman-writer:5566/v1/health
}
wait_for 120 health
check "ekman-writer answers GET /v1/health over mutual TLS on $IP:5566" health
BOOT_MS=$(($(now_ms) - t0))
say "virsh start -> writer reachable: $BOOT_MS ms (TCG, $MACHINE, $MEM_MIB MiB)"
wait_for 60 port_open "$IP" 22
check "the console shows the boot log" grep -q 'ekman-worker: .*boot complete' "$T/console.log"
grep '^ekman-worker: \[' "$T/console.log" | sed 's/^/#   /'

printf '%s\n' "$IP $(cut -d' ' -f1,2 "$T/host_key.pub")" >"$T/known_hosts"
printf '%s\n' "$IP $(cut -d' ' -f1,2 "$T/other/host_key.pub")" >"$T/other/known_hosts"
check "ssh as root with the worker key and the given host key" guest_ssh "$T/known_hosts" true
wrong_host_refused() { ! guest_ssh "$T/other/known_hosts" true 2>/dev/null; }
check "ssh refuses the worker when it expects another host key" wrong_host_refused

cat >"$T/data.xml" <<EOF
<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
  <source file='$DATA_PATH'/><target dev='vdb' bus='virtio'/><serial>ek-test-1</serial></disk>
EOF
check "a disk with serial ek-test-1 is hot-attached" virsh -q attach-device "$DOM" "$T/data.xml" --live
byid() { guest_ssh "$T/known_hosts" ls -l /dev/disk/by-id/ >"$T/byid.txt" 2>&1 && grep -q 'virtio-ek-test-1 -> ../../vd' "$T/byid.txt"; }
wait_for 30 byid
sed 's/^/#   /' "$T/byid.txt"
check "the guest names it /dev/disk/by-id/virtio-ek-test-1" grep -q 'virtio-ek-test-1 -> ../../vd' "$T/byid.txt"

head -c $((3 * 1048576 + 12345)) /dev/urandom >"$T/src.bin"
send() { # send TARGET: the file to the writer in the guest
  "$EKT" --https "$IP:5566" --ca "$T/pki/ca.pem" --cert "$T/pki/client.pem" --key "$T/pki/client.key" \
    --source "$T/src.bin" --target "$1" --verify full --stats "$T/stats.json" 2>"$T/transfer.log"
}
# serial:S is how the engine names disks (minion.h); an ekman-transfer that
# takes only absolute paths gets the by-id link the writer would resolve.
TARGET=serial:ek-test-1
if ! send "$TARGET" && grep -q 'must be an absolute path' "$T/transfer.log"; then
  TARGET=/dev/disk/by-id/virtio-ek-test-1
  say "ekman-transfer takes no serial: target yet; sending to $TARGET"
  send "$TARGET"
fi
sent() { jq -e '.complete == true' "$T/stats.json" >/dev/null 2>&1; }
check "ekman-transfer over HTTPS (mutual TLS) to $TARGET succeeds" sent
[ -s "$T/stats.json" ] || sed 's/^/#   /' "$T/transfer.log"

# data_transfer_mechanism = ssh: the engine runs the writer over SSH (stdio)
cat >"$T/data2.xml" <<EOF
<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
  <source file='$DATA2_PATH'/><target dev='vdc' bus='virtio'/><serial>ek-test-2</serial></disk>
EOF
check "a second disk (serial ek-test-2) is hot-attached" virsh -q attach-device "$DOM" "$T/data2.xml" --live
byid2() { guest_ssh "$T/known_hosts" test -b /dev/disk/by-id/virtio-ek-test-2; }
wait_for 30 byid2
check "the guest names it /dev/disk/by-id/virtio-ek-test-2" byid2
head -c $((2 * 1048576 + 777)) /dev/urandom >"$T/src2.bin"
TARGET2=${TARGET%-1}-2
"$EKT" --ssh "root@$IP" --ssh-key "$T/client_key" --ssh-known-hosts "$T/known_hosts" \
  --ssh-command "ekman-writer --stdio --allow-path /dev" --source "$T/src2.bin" --target "$TARGET2" \
  --verify full --stats "$T/stats2.json" 2>"$T/transfer2.log"
sent2() { jq -e '.complete == true' "$T/stats2.json" >/dev/null 2>&1; }
check "ekman-transfer over SSH (ekman-writer --stdio) to $TARGET2 succeeds" sent2
[ -s "$T/stats2.json" ] || sed 's/^/#   /' "$T/transfer2.log"

# qemu-ga's guest-shutdown runs the image's /sbin/shutdown: power off now
shut_off() { virsh -q domstate "$DOM" 2>/dev/null | grep -q 'shut off'; }
virsh -q shutdown "$DOM" --mode agent >/dev/null 2>&1
wait_for 60 shut_off
check "virsh shutdown --mode agent powers the worker off" shut_off
virsh -q destroy "$DOM" >/dev/null 2>&1
check "the HTTPS volume holds exactly its file (qemu-img compare)" \
  qemu-img compare -q -f raw -F qcow2 "$T/src.bin" "$DATA_PATH"
check "the SSH volume holds exactly its file (qemu-img compare)" \
  qemu-img compare -q -f raw -F qcow2 "$T/src2.bin" "$DATA2_PATH"
if [ "$EK_FAILED" -gt 0 ]; then say "console log:"; tail -n 60 "$T/console.log" | sed 's/^/#   /'; fi
finish
