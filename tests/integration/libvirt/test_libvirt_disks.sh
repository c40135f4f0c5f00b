#!/usr/bin/env bash
# test_libvirt_disks.sh - replica updates on a libvirt destination when the
# source's disks change between executions (issue #26), and the worker VM's
# sizing options read back from its live domain:
#   source: a shut-off TCG domain with three disks, vda qcow2, vdb raw, vdc raw
#   1 execute: the replicas equal the source; while it runs, the worker VM's
#     live XML has migr_worker_memory, migr_worker_vcpus, and its root volume
#     migr_worker_volume_size; its address comes from ARP
#     (migr_worker_iface_addr_src = arp); its console log goes when it goes
#   2 vda grown, vdb shrunk (re-created smaller), vdc detached; execute: the
#     replicas equal the changed disks, vdc's replica is gone
# Usage: test_libvirt_disks.sh BUILD_DIR SOURCE_DIR STACK_DIR
# Environment (optional): EKMAN_WORKER_IMAGE (an image built already).
set -u
. "$(dirname "$0")/../lib.sh"
BUILD=$1 SRC=$2 STACK=$3
eval "$("$SRC/deploy/stack.sh" env "$STACK")"
TMP=$(mktemp -d /var/tmp/ekman-lvdisks.XXXXXX)
chmod 755 "$TMP"
PIDS=()
R=$(printf '%04x%04x' $RANDOM $RANDOM)
N=lvdk-$R
SRC_DOM=$N-src DST_POOL=$N-dst
export LIBVIRT_DEFAULT_URI=qemu:///system
v() { virsh -q "$@" 2>/dev/null; }
. "$(dirname "$0")/../conductor_lib.sh"
. "$(dirname "$0")/lib_lv.sh"
cleanup() {
  for p in "${PIDS[@]}"; do pkill -KILL -P "$p" 2>/dev/null; kill -KILL "$p" 2>/dev/null; done
  wait 2>/dev/null
  lv_cleanup_objects
  rm -rf "$TMP"
}
trap cleanup EXIT
PORT=$((EKMAN_API_PORT + 46))
URL="https://127.0.0.1:$PORT"
DB="${EKMAN_PG_ADMIN_URL/\/postgres\?//ekman?}"
MiB=1048576

lv_worker_pool "$DST_POOL" "$N-worker.qcow2"
NET=$EKMAN_LIBVIRT_NETWORK

# source: vda qcow2 64 MiB, vdb raw 48 MiB, vdc raw 16 MiB, each with data
v vol-create-as "$EKMAN_POOL" "$N-vda.qcow2" 64M --format qcow2
v vol-create-as "$EKMAN_POOL" "$N-vdb.img" 48M --format raw
v vol-create-as "$EKMAN_POOL" "$N-vdc.img" 16M --format raw
VDA=$(v vol-path --pool "$EKMAN_POOL" "$N-vda.qcow2") VDB=$(v vol-path --pool "$EKMAN_POOL" "$N-vdb.img")
VDC=$(v vol-path --pool "$EKMAN_POOL" "$N-vdc.img")
head -c $((4 * MiB)) /dev/urandom > "$TMP/a.raw"; truncate -s 64M "$TMP/a.raw"
qemu-img convert -q -f raw -O qcow2 -o compat=1.1 "$TMP/a.raw" "$VDA"
qemu-io -f raw -c "write -P 0x42 0 2M" -c "write -P 0x43 40M 1M" "$VDB" > /dev/null
qemu-io -f raw -c "write -P 0x44 1M 1M" "$VDC" > /dev/null
domxml() { # domxml DISKS...: the source domain with these targets (vda vdb vdc)
  echo "<domain type='qemu'><name>$SRC_DOM</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>"
  echo " <os><type arch='x86_64'>hvm</type></os><devices>"
  for d in "$@"; do
    case $d in
      vda) echo "  <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='$VDA'/><target dev='vda' bus='virtio'/></disk>" ;;
      vdb) echo "  <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='$VDB'/><target dev='vdb' bus='virtio'/></disk>" ;;
      vdc) echo "  <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='$VDC'/><target dev='vdc' bus='virtio'/></disk>" ;;
    esac
  done
  echo " </devices></domain>"
}
domxml vda vdb vdc > "$TMP/src.xml"; v define "$TMP/src.xml"
check "source domain $SRC_DOM defined (shut off)" v dominfo "$SRC_DOM"
dst_vol() { v vol-path --pool "$DST_POOL" "ekman-$SRC_DOM-$1.img"; }
same() { # same DEV FILE FORMAT: the replica of DEV equals FILE
  qemu-img compare -q -f raw -F "$3" "$(dst_vol "$1")" "$2"
}

# --- services ----------------------------------------------------------------------------
lv_services "lvdk-$R"
conn=$(jq -nc --arg k "$(base64 -w0 "$EKMAN_SSH_KEY")" --arg kh "$(cat "$EKMAN_SSH_KNOWN_HOSTS")" \
  --arg u "$EKMAN_SSH_USER" --argjson p "$EKMAN_SSH_PORT" '{host: "127.0.0.1", port: $p, username: $u, private_key: $k, known_hosts: $kh}')
endpoint() { api "$TOK" POST "/v1/$P/endpoints" "$(jq -nc --arg n "$1" --argjson c "$conn" '{endpoint: {name: $n, type: "libvirt", connection_info: $c}}')" | jq -r .endpoint.id; }
SRC_EP=$(endpoint src) DST_EP=$(endpoint dst)
# worker VM console logs in a directory the SSH account may clean up
mkdir -p "$TMP/clog"; chown "$EKMAN_SSH_USER" "$TMP/clog"; chmod 755 "$TMP/clog"
ENV=$(jq -nc --arg clog "$TMP/clog" --arg pool "$DST_POOL" --arg img "$DST_POOL/$N-worker.qcow2" --arg net "$NET" '{
  default_storage_pool: $pool, migr_image_map: {linux: $img}, migr_worker_network: $net,
  migr_worker_memory: 320, migr_worker_vcpus: 2, migr_worker_volume_size: 2,
  migr_worker_boot_timeout: 240, domain_type: "qemu", migr_worker_iface_addr_src: "arp",
  data_transfer_mechanism: "https", cpu_mode: "", cpu_features: [], add_tpm_device: false,
  enable_vm_console_log: true, vm_console_log_dir: $clog}')
T=$(api "$TOK" POST "/v1/$P/transfers" "$(jq -nc --arg s "$SRC_EP" --arg d "$DST_EP" --arg i "$SRC_DOM" --argjson env "$ENV" \
  '{transfer: {origin_endpoint_id: $s, destination_endpoint_id: $d, instances: [$i], network_map: {},
    destination_environment: $env, skip_os_morphing: true}}')" | jq -r .transfer.id)
check "transfer created" test -n "$T" -a "$T" != null
execute() { api "$TOK" POST "/v1/$P/transfers/$1/executions" '{}' | jq -r .execution.id; }
errors_of() { api "$TOK" GET "/v1/$P/transfers/$1/executions/$2" | jq -r '[.execution.tasks[] | select(.exception_details != null and .exception_details != "") | .task_type + ": " + .exception_details] | join("\n")'; }

# --- 1: full copy; the worker VM's live domain while it runs -----------------------------------
E1=$(execute "$T")
live=""
for _ in $(seq 600); do
  m=$(v list --name | grep '^ekman-minion-' | head -1)
  if [ -n "$m" ]; then echo "$m" >> "$TMP/minions"; v dumpxml "$m" > "$TMP/minion.xml" && live=$m && break; fi
  sleep 0.5
done
check "a worker VM ran" test -n "$live"
check "its memory is migr_worker_memory (320 MiB)" grep -q "<memory unit='KiB'>$((320 * 1024))</memory>" "$TMP/minion.xml"
check "its vCPUs are migr_worker_vcpus (2)" grep -qE "<vcpu placement='static'>2</vcpu>" "$TMP/minion.xml"
root=$(grep -o "<source file='[^']*'" "$TMP/minion.xml" | head -1 | cut -d"'" -f2)
check "its console goes to vm_console_log_dir" test -e "$TMP/clog/$live-serial.log"
check "its root volume is migr_worker_volume_size (2 GiB)" test "$(qemu-img info -U --output=json "$root" | jq '."virtual-size"')" = $((2048 * MiB))
st=$(wait_execution "$TOK" "$P" "$T" "$E1" 600)
check "execution 1 completes ($st)" test "$st" = COMPLETED
[ "$st" = COMPLETED ] || { errors_of "$T" "$E1"; tail -30 "$TMP/w.log"; }
check "the worker's address came from ARP (migr_worker_iface_addr_src)" bash -c "psql '$DB' -Atqc \"SELECT message FROM task_events v JOIN tasks t ON t.id = v.task_id WHERE t.execution_id = '$E1'\" | grep -q 'reachable at .* (address from the arp'"
check "the removed worker VM's console log went with it" test ! -e "$TMP/clog/$live-serial.log"
check "execution 1: vda's replica equals it" same vda "$VDA" qcow2
check "execution 1: vdb's replica equals it" same vdb "$VDB" raw
check "execution 1: vdc's replica equals it" same vdc "$VDC" raw

# --- 2: vda grown, vdb shrunk (re-created), vdc detached ----------------------------------------
qemu-img resize -q -f qcow2 "$VDA" 96M
qemu-io -f qcow2 -c "write -P 0x55 80M 1M" "$VDA" > /dev/null
v vol-delete --pool "$EKMAN_POOL" "$N-vdb.img"
v vol-create-as "$EKMAN_POOL" "$N-vdb.img" 24M --format raw
qemu-io -f raw -c "write -P 0x66 0 1M" -c "write -P 0x67 20M 1M" "$VDB" > /dev/null
virsh -q detach-disk "$SRC_DOM" vdc --config > /dev/null
check "vdc detached from the source domain" test "$(virsh -q domblklist "$SRC_DOM" | awk '{print $1}' | paste -sd,)" = vda,vdb
E2=$(execute "$T")
st=$(wait_execution "$TOK" "$P" "$T" "$E2" 600)
check "execution 2 completes ($st)" test "$st" = COMPLETED
[ "$st" = COMPLETED ] || { errors_of "$T" "$E2"; tail -30 "$TMP/w.log"; }
check "execution 2: the grown vda's replica grew and equals it" same vda "$VDA" qcow2
check "... 96 MiB" test "$(qemu-img info --output=json "$(dst_vol vda)" | jq '."virtual-size"')" = $((96 * MiB))
check "execution 2: the shrunk vdb's replica equals it" same vdb "$VDB" raw
check "... 24 MiB" test "$(qemu-img info --output=json "$(dst_vol vdb)" | jq '."virtual-size"')" = $((24 * MiB))
check "execution 2: the detached vdc's replica is gone" bash -c "! virsh -q vol-info --pool '$DST_POOL' 'ekman-$SRC_DOM-vdc.img' >/dev/null 2>&1"
check "no worker VM is left" test -z "$(v list --all --name | grep '^ekman-minion-' | grep -Fx -f "$TMP/minions")"
finish
