#!/usr/bin/env bash
# test_libvirt_e2e.sh - a whole migration between two libvirt endpoints
# through the real services (conductor, scheduler, worker) on the stack: the
# same libvirtd reached over the stack's loopback sshd as source and as
# destination, the destination writing into a second storage pool through a
# real worker VM (deploy/worker-image) on a NAT network.
#   source: a running TCG domain with two disks, vda qcow2 with data, vdb raw
#           and sparse (no OS: QEMU runs, the backup API reads; new data is
#           written through QEMU's block layer with the qemu-io monitor
#           command, so the dirty bitmaps see it)
#   1 execute: the replicas equal the source
#   2 write, execute: only the changed blocks move, the replicas equal it
#   3 write, execute, the worker VM is destroyed during REPLICATE_DISKS:
#     ERROR, every temporary resource removed; 4 execute again: equal
#   5 deploy (skip_os_morphing, clone_disks): the domain runs, its XML
#     carries the configured options, its disks equal the source
#   errors: a wrong key, an unknown host key, a missing pool, a missing
#     worker image each give an error that names the problem
# Nothing is left: no worker VM, config drive, checkpoint beyond the base of
# the next incremental, temporary key file.
# Usage: test_libvirt_e2e.sh BUILD_DIR SOURCE_DIR STACK_DIR
# Environment (optional): EKMAN_WORKER_IMAGE (an image built already: no
# build), EKMAN_E2E_SERVICES_BUILD (the conductor of another build, e.g. a
# sanitizer one), EKMAN_E2E_SOURCE_RUNNING=0 (a shut-off source domain, read
# by volume with block hashes instead of the backup API).
set -u
. "$(dirname "$0")/../lib.sh"
BUILD=$1 SRC=$2 STACK=$3
eval "$("$SRC/deploy/stack.sh" env "$STACK")"
TMP=$(mktemp -d /var/tmp/ekman-lve2e.XXXXXX)
chmod 755 "$TMP"
PIDS=()
R=$(printf '%04x%04x' $RANDOM $RANDOM)
N=lve2e-$R                    # prefix of every libvirt object of this test
SRC_DOM=$N-src DST_POOL=$N-dst NET="" OWN_NET=""
export LIBVIRT_DEFAULT_URI=qemu:///system
v() { virsh -q "$@" 2>/dev/null; }
cleanup() {
  for p in "${PIDS[@]}"; do pkill -KILL -P "$p" 2>/dev/null; kill -KILL "$p" 2>/dev/null; done
  wait 2>/dev/null
  for d in $(v list --all --name | grep -E "^($N|ekman-minion-)" ); do
    case $d in ekman-minion-*) grep -qx "$d" "$TMP/minions" 2>/dev/null || continue ;; esac
    v destroy "$d"; v undefine --nvram --tpm --checkpoints-metadata "$d" || v undefine --checkpoints-metadata "$d"
  done
  for vol in $(v vol-list "$EKMAN_POOL" | awk '{print $1}' | grep "^$N"); do v vol-delete --pool "$EKMAN_POOL" "$vol"; done
  if v pool-info "$DST_POOL" > /dev/null; then
    for vol in $(v vol-list "$DST_POOL" | awk '{print $1}'); do v vol-delete --pool "$DST_POOL" "$vol"; done
    v pool-destroy "$DST_POOL"; v pool-undefine "$DST_POOL"
  fi
  [ -n "$OWN_NET" ] && { v net-destroy "$OWN_NET"; v net-undefine "$OWN_NET"; }
  rm -f /var/log/libvirt/qemu/"$N"-*-serial.log
  for m in $(sort -u "$TMP/minions" 2>/dev/null); do rm -f "/var/log/libvirt/qemu/$m-serial.log"; done
  rm -rf "$TMP"
}
trap cleanup EXIT
. "$(dirname "$0")/../conductor_lib.sh"
PORT=$((EKMAN_API_PORT + 45))
URL="https://127.0.0.1:$PORT"
DB="${EKMAN_PG_ADMIN_URL/\/postgres\?//ekman?}"
MiB=1048576

# --- libvirt objects: destination pool with the worker image, NAT network, source domain ---
. "$(dirname "$0")/lib_lv.sh"
lv_worker_pool "$DST_POOL" "$N-worker.qcow2"
if [ -n "${EKMAN_LIBVIRT_NETWORK:-}" ]; then
  NET=$EKMAN_LIBVIRT_NETWORK
else # a NAT network of our own, on a free /24
  for x in $(seq 201 250); do ip -4 addr | grep -q "192.168.$x\." || break; done
  NET=$N-net OWN_NET=$N-net
  cat > "$TMP/net.xml" <<EOF
<network xmlns:dnsmasq='http://libvirt.org/schemas/network/dnsmasq/1.0'><name>$NET</name><forward mode='nat'/>
  <bridge name='ekv${R:0:6}' stp='off' delay='0'/><ip address='192.168.$x.1' netmask='255.255.255.0'>
  <dhcp><range start='192.168.$x.10' end='192.168.$x.250'/></dhcp></ip>
  <dnsmasq:options><dnsmasq:option value='no-ping'/></dnsmasq:options></network>
EOF
  v net-define "$TMP/net.xml" && v net-start "$NET"
fi
check "worker network $NET is active" bash -c "virsh -q net-info '$NET' | grep -q 'Active: *yes'"

# source disks: vda qcow2 128 MiB with 8 MiB of data, vdb raw 64 MiB, sparse
head -c $((8 * MiB)) /dev/urandom > "$TMP/data.raw"; truncate -s 128M "$TMP/data.raw"
v vol-create-as "$EKMAN_POOL" "$N-vda.qcow2" 128M --format qcow2
v vol-create-as "$EKMAN_POOL" "$N-vdb.img" 64M --format raw --allocation 0
VDA=$(virsh -q vol-path --pool "$EKMAN_POOL" "$N-vda.qcow2") VDB=$(virsh -q vol-path --pool "$EKMAN_POOL" "$N-vdb.img")
# qcow2 v3 (libvirt creates v2, which cannot hold the dirty bitmaps of checkpoints)
qemu-img convert -q -f raw -O qcow2 -o compat=1.1 "$TMP/data.raw" "$VDA"
MAC=52:54:00:$(printf '%02x:%02x:%02x' $((RANDOM % 256)) $((RANDOM % 256)) $((RANDOM % 256)))
cat > "$TMP/src.xml" <<EOF
<domain type='qemu'><name>$SRC_DOM</name><memory unit='MiB'>64</memory><vcpu>2</vcpu>
 <os><type arch='x86_64'>hvm</type><boot dev='hd'/></os>
 <devices>
  <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='$VDA'/><target dev='vda' bus='virtio'/></disk>
  <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='$VDB'/><target dev='vdb' bus='virtio'/></disk>
  <interface type='network'><mac address='$MAC'/><source network='$NET'/><model type='virtio'/></interface>
 </devices></domain>
EOF
# EKMAN_E2E_SOURCE_RUNNING=0: a shut-off source (read by volume, block hashes)
RUNNING=${EKMAN_E2E_SOURCE_RUNNING:-1}
v define "$TMP/src.xml"
if [ "$RUNNING" = 1 ]; then
  v start "$SRC_DOM"
  check "source domain $SRC_DOM runs" bash -c "virsh -q domstate '$SRC_DOM' | grep -q running"
fi
# gwrite DEV OFFSET LEN PATTERN: a write through QEMU's block layer
gwrite() {
  if [ "$RUNNING" = 1 ]; then
    virsh -q qemu-monitor-command "$SRC_DOM" --hmp "qemu-io -d virtio-disk$1/virtio-backend \"write -P $4 $2 $3\"" > /dev/null
  elif [ "$1" = 0 ]; then qemu-io -f qcow2 -c "write -P $4 $2 $3" "$VDA" > /dev/null
  else qemu-io -f raw -c "write -P $4 $2 $3" "$VDB" > /dev/null; fi
}
# snap: the source disks as they are now (QEMU holds them: -U)
snap() { qemu-img convert -U -q -f qcow2 -O raw "$VDA" "$TMP/snap-vda.raw"; qemu-img convert -U -q -f raw -O raw "$VDB" "$TMP/snap-vdb.raw"; }
dst_vol() { virsh -q vol-path --pool "$DST_POOL" "$1"; }
same() { # same SUFFIX: the destination volumes of vda and vdb equal the snapshot
  qemu-img compare -q -U -f raw -F raw "$(dst_vol "ekman-$SRC_DOM-vda$1")" "$TMP/snap-vda.raw" &&
    qemu-img compare -q -U -f raw -F raw "$(dst_vol "ekman-$SRC_DOM-vdb$1")" "$TMP/snap-vdb.raw"
}

# --- services ----------------------------------------------------------------------------
lv_services "lve2e-$R"

KEY_B64=$(base64 -w0 "$EKMAN_SSH_KEY")
KH=$(cat "$EKMAN_SSH_KNOWN_HOSTS")
conn() { # conn KEY_B64 KNOWN_HOSTS: connection_info JSON
  jq -nc --arg k "$1" --arg kh "$2" --arg u "$EKMAN_SSH_USER" --argjson p "$EKMAN_SSH_PORT" \
    '{host: "127.0.0.1", port: $p, username: $u, private_key: $k, known_hosts: $kh}'
}
endpoint() { # endpoint NAME CONNECTION_INFO: prints the id
  api "$TOK" POST "/v1/$P/endpoints" "$(jq -nc --arg n "$1" --argjson c "$2" '{endpoint: {name: $n, type: "libvirt", connection_info: $c}}')" | jq -r .endpoint.id
}
SRC_EP=$(endpoint src "$(conn "$KEY_B64" "$KH")")
DST_EP=$(endpoint dst "$(conn "$KEY_B64" "$KH")")
check "endpoints created" test -n "$SRC_EP" -a -n "$DST_EP" -a "$SRC_EP" != null
check "the source domain is listed over SSH" bash -c "ek_curl -s -H 'X-Auth-Token: $TOK' '$URL/v1/$P/endpoints/$SRC_EP/instances' | jq -e '.instances[] | select(.name == \"$SRC_DOM\")' > /dev/null"

# --- errors that name the problem --------------------------------------------------------
ssh-keygen -q -t ed25519 -N '' -f "$TMP/wrong" > /dev/null
ssh-keygen -q -t ed25519 -N '' -f "$TMP/hostkey" > /dev/null
validate() { api "$TOK" POST "/v1/$P/endpoints/$1/actions" '{"validate-connection": null}' | jq -r '."validate-connection".message'; }
BAD_KEY_EP=$(endpoint badkey "$(conn "$(base64 -w0 "$TMP/wrong")" "$KH")")
msg=$(validate "$BAD_KEY_EP"); echo "# wrong key: $msg"
check "a wrong key: the error says the key was refused" grep -qiE "auth|key.*(refused|rejected|not accepted)" <<<"$msg"
# known_hosts that knows another host only, then one with another key for this host
UNK_EP=$(endpoint unknownhost "$(conn "$KEY_B64" "[192.0.2.1]:22 $(cut -d' ' -f1,2 "$TMP/hostkey.pub")")")
msg=$(validate "$UNK_EP"); echo "# unknown host key: $msg"
check "an unknown host key: the error names the host key" grep -qi "host key" <<<"$msg"
MIS_EP=$(endpoint otherhostkey "$(conn "$KEY_B64" "[127.0.0.1]:$EKMAN_SSH_PORT $(cut -d' ' -f1,2 "$TMP/hostkey.pub")")")
msg=$(validate "$MIS_EP"); echo "# changed host key: $msg"
check "a host key that differs from known_hosts: the error says so" grep -qi "host key" <<<"$msg"

ENV_OK=$(jq -nc --arg pool "$DST_POOL" --arg img "$DST_POOL/$N-worker.qcow2" --arg net "$NET" '{
  default_storage_pool: $pool, migr_image_map: {linux: $img}, migr_worker_network: $net,
  migr_worker_memory: 256, migr_worker_vcpus: 1, migr_worker_volume_size: 1,
  migr_worker_boot_timeout: 240, domain_type: "qemu", migr_worker_iface_addr_src: "agent",
  data_transfer_mechanism: "https", cpu_mode: "host-passthrough", cpu_migratable: true,
  cpu_features: ["x2apic"], add_tpm_device: true, enable_vm_console_log: true,
  enable_vm_vnc_console: true, vnc_listen_address: "127.0.0.1", use_config_drive: true}')
transfer() { # transfer ENV: prints the id
  api "$TOK" POST "/v1/$P/transfers" "$(jq -nc --arg s "$SRC_EP" --arg d "$DST_EP" --arg i "$SRC_DOM" --arg net "$NET" --argjson env "$1" \
    '{transfer: {origin_endpoint_id: $s, destination_endpoint_id: $d, instances: [$i], network_map: {($net): $net},
      destination_environment: $env, skip_os_morphing: true}}')" | jq -r .transfer.id
}
execute() { api "$TOK" POST "/v1/$P/transfers/$1/executions" '{}' | jq -r .execution.id; }
errors_of() { api "$TOK" GET "/v1/$P/transfers/$1/executions/$2" | jq -r '[.execution.tasks[] | select(.exception_details != null and .exception_details != "") | .task_type + ": " + .exception_details] | join("\n")'; }
minions() { virsh -q list --all --name | grep '^ekman-minion-' | tee -a "$TMP/minions"; }
# no_minions WHAT: checks that no worker VM is defined; for one that is, says
# what libvirt and the services knew of it (a CI run once found one left over)
no_minions() {
  local left m
  left=$(minions)
  check "$1" test -z "$left"
  for m in $left; do
    echo "# left over: $m ($(virsh -q domstate "$m" 2>&1), persistent: $(virsh -q dominfo "$m" 2>&1 | awk '/^Persistent/ {print $2}'))"
    virsh -q domblklist "$m" 2>&1 | sed 's/^/#   disk /'
    psql "$DB" -Atqc "SELECT to_char(e.created_at, 'HH24:MI:SS.MS'), t.task_type, t.status, e.level, e.message FROM task_events e JOIN tasks t ON t.id = e.task_id WHERE t.id::text LIKE '${m#ekman-minion-}%' OR e.message LIKE '%$m%' ORDER BY e.id" 2>&1 | tail -40 | sed 's/^/#   event /'
    grep -h -- "${m#ekman-minion-}" "$TMP/w.log" "$TMP/c.log" "$TMP/s.log" 2>/dev/null | tail -40 | sed 's/^/#   /'
  done
  grep -hE "DOWN|lost|stopped answering|restarted" "$TMP/s.log" "$TMP/c.log" 2>/dev/null | tail -10 | sed 's/^/#   /'
}
missing() { # missing WHAT ENV_CHANGE NEEDLE
  local T E st msg
  T=$(transfer "$(jq -c "$2" <<<"$ENV_OK")")
  E=$(execute "$T")
  st=$(wait_execution "$TOK" "$P" "$T" "$E" 120); msg=$(errors_of "$T" "$E"); echo "# missing $1: $msg"
  check "a missing $1: the execution fails ($st) naming '$3'" bash -c "[ '$st' = ERROR ] && grep -q -- '$3' <<<\"\$1\"" _ "$msg"
}
missing pool ".default_storage_pool = \"$N-nopool\"" "$N-nopool"
missing "worker image" ".migr_image_map = {linux: \"$DST_POOL/$N-noimage.qcow2\"}" "$N-noimage.qcow2"
# migr_worker_boot_timeout: a worker image that boots nothing never answers
virsh -q vol-create-as "$DST_POOL" "$N-blank.img" 1M --format raw > /dev/null
T0=$SECONDS
TB=$(transfer "$(jq -c ".migr_image_map = {linux: \"$DST_POOL/$N-blank.img\"} | .migr_worker_boot_timeout = 10" <<<"$ENV_OK")")
EB=$(execute "$TB")
st=$(wait_execution "$TOK" "$P" "$TB" "$EB" 180); msg=$(errors_of "$TB" "$EB"); echo "# a worker VM that never answers: $msg"
check "a worker VM that never answers: the execution fails ($st) naming migr_worker_boot_timeout" \
  bash -c "[ '$st' = ERROR ] && grep -q 'DEPLOY_TRANSFER_TARGET_RESOURCES.*within 10 s (migr_worker_boot_timeout)' <<<\"\$1\"" _ "$msg"
check "  it waited 10 s, not the default 600 ($((SECONDS - T0)) s for the whole execution)" test $((SECONDS - T0)) -lt 120
no_minions "  the worker VM that never answered is removed"
check "  its boot volume and config drive are removed" test -z "$(virsh -q vol-list "$DST_POOL" | grep ekman-minion-)"
clog=$(grep -o "console log: /[^ ;]*-serial.log" <<<"$msg" | cut -d' ' -f3)
check "  the error points at its console log, which is kept for the operator ($clog)" test -n "$clog" -a -e "$clog"
[ -n "$clog" ] && rm -f "$clog"
# its replica volumes (DEPLOY_TRANSFER_DISKS ran) go as an operator removes them
ED=$(api "$TOK" POST "/v1/$P/transfers/$TB/actions" '{"delete-disks": null}' | jq -r .execution.id)
st=$(wait_execution "$TOK" "$P" "$TB" "$ED" 120)
check "  delete-disks of that transfer completes ($st) and removes its replicas" \
  bash -c "[ '$st' = COMPLETED ] && ! virsh -q vol-list '$DST_POOL' | grep -q 'ekman-$SRC_DOM-'"

# --- 1: full copy ---------------------------------------------------------------------------
T=$(transfer "$ENV_OK")
check "transfer created" test "$(code)" = 201
E1=$(execute "$T")
st=$(wait_execution "$TOK" "$P" "$T" "$E1" 600)
check "execution 1 completes ($st)" test "$st" = COMPLETED
[ "$st" = COMPLETED ] || { errors_of "$T" "$E1"; tail -30 "$TMP/w.log"; }
snap
check "execution 1: the replicas equal the source" same .img
api "$TOK" GET "/v1/$P/transfers/$T?include_task_info=true" > "$TMP/t1.json"
check "volumes_info names each disk by serial (<= 20 chars)" test "$(jq -r "[.transfer.info[\"$SRC_DOM\"].volumes_info[].path | select(test(\"^serial:.{1,20}$\"))] | length" "$TMP/t1.json")" = 2
no_minions "no worker VM is left"
# --- 2: incremental -------------------------------------------------------------------------
gwrite 0 $((1 * MiB)) 65536 0x5a; gwrite 0 $((40 * MiB)) 131072 0xa5; gwrite 0 $((100 * MiB)) 65536 0x11
changed=$((65536 + 131072 + 65536))
E2=$(execute "$T")
st=$(wait_execution "$TOK" "$P" "$T" "$E2" 600)
check "execution 2 completes ($st)" test "$st" = COMPLETED
[ "$st" = COMPLETED ] || errors_of "$T" "$E2"
snap
check "execution 2: the replicas equal the changed source" same .img
api "$TOK" GET "/v1/$P/transfers/$T?include_task_info=true" > "$TMP/t2.json"
moved=$(jq "[.transfer.info[\"$SRC_DOM\"].volumes_info[].last_sync.data_bytes] | add" "$TMP/t2.json")
echo "# changed $changed bytes, execution 2 sent $moved data bytes"
check "execution 2 moved only the changed blocks ($moved)" test "$moved" -ge "$changed" -a "$moved" -le $((changed * 105 / 100))

# --- 3: the worker VM dies during REPLICATE_DISKS -------------------------------------------
for i in 0 1 2; do # 48 MiB of new data in vda, so that the copy takes a while
  gwrite 0 $(((8 + 16 * i) * MiB)) 16M 0x$((21 + i))
done
E3=$(execute "$T")
killed=""
for _ in $(seq 1200); do
  if [ "$(task_status "$TOK" "$P" "$T" "$E3" REPLICATE_DISKS)" = RUNNING ]; then
    # the disk-copy VM's credentials (its writer's client key), as the conductor keeps
    # them while the copy runs: sealed for the conductors, {"$box": ...}, never in clear
    psql "$DB" -Atqc "SELECT info::text FROM transfers WHERE id = '$T'" > "$TMP/info3.txt"
    m=$(minions | head -1)
    [ -n "$m" ] && virsh -q destroy "$m" > /dev/null && killed=$m && break
  fi
  sleep 0.2
done
check "the worker VM was destroyed during REPLICATE_DISKS ($killed)" test -n "$killed"
check "while it ran, the database held the worker VM's keys only sealed" \
  bash -c "grep -q 'target_resources_connection_info' '$TMP/info3.txt' && grep -q '\"\\\$box\"' '$TMP/info3.txt' && ! grep -qE 'PRIVATE KEY|LS0tLS1CRUdJTi' '$TMP/info3.txt'"
st=$(wait_execution "$TOK" "$P" "$T" "$E3" 300)
check "execution 3 ends in ERROR ($st)" test "$st" = ERROR
errors_of "$T" "$E3" | sed 's/^/# /'
check "DELETE_TRANSFER_TARGET_RESOURCES completed" test "$(task_status "$TOK" "$P" "$T" "$E3" DELETE_TRANSFER_TARGET_RESOURCES)" = COMPLETED
no_minions "the killed worker VM is gone"
check "its boot volume and config drive are gone" test -z "$(virsh -q vol-list "$DST_POOL" | grep ekman-minion-)"
check "its console log is gone (/var/log/libvirt/qemu is root's: libvirt removed it)" test ! -e "/var/log/libvirt/qemu/$killed-serial.log"
# execution 4 goes the other way: data over SSH (ekman-writer --stdio), the
# worker's address from the network's DHCP leases
ENV_SSH=$(jq -c '.data_transfer_mechanism = "ssh" | .migr_worker_iface_addr_src = "lease"' <<<"$ENV_OK")
UE=$(api "$TOK" PUT "/v1/$P/transfers/$T" "{\"transfer\": {\"destination_environment\": $ENV_SSH}}" | jq -r '.execution.id // empty')
# (the replicas are told by an update execution; the next one waits for it)
[ -z "$UE" ] || check "the update execution completes" test "$(wait_execution "$TOK" "$P" "$T" "$UE" 300)" = COMPLETED
E4=$(execute "$T")
st=$(wait_execution "$TOK" "$P" "$T" "$E4" 600)
check "execution 4 after the failure completes ($st)" test "$st" = COMPLETED
[ "$st" = COMPLETED ] || errors_of "$T" "$E4"
ev4=$(psql "$DB" -Atqc "SELECT message FROM task_events WHERE task_id IN (SELECT id FROM tasks WHERE execution_id = '$E4')")
check "execution 4: the worker's address came from the DHCP leases" grep -q "address from the lease" <<<"$ev4"
check "execution 4: the data went over SSH" grep -q "written by ekman-writer on .* (ssh)" <<<"$ev4"
snap
check "execution 4: the replicas equal the source" same .img

# --- 5: deploy ------------------------------------------------------------------------------
DEP=$(api "$TOK" POST "/v1/$P/deployments" "{\"deployment\":{\"transfer_id\":\"$T\",\"clone_disks\":true,\"skip_os_morphing\":true}}" | jq -r .deployment.id)
for _ in $(seq 600); do st=$(api "$TOK" GET "/v1/$P/deployments/$DEP" | jq -r .deployment.last_execution_status); [ "$st" = COMPLETED ] || [ "$st" = ERROR ] && break; sleep 0.5; done
check "the deployment completes ($st)" test "$st" = COMPLETED
[ "$st" = COMPLETED ] || api "$TOK" GET "/v1/$P/deployments/$DEP" | jq -r '.. | .exception_details? // empty'
DOM=$SRC_DOM-migrated   # same host as the source: the source keeps its name
check "the deployed domain $DOM runs" bash -c "virsh -q domstate '$DOM' | grep -q running"
virsh -q dumpxml --inactive "$DOM" > "$TMP/deployed.xml"
has() { grep -q -- "$1" "$TMP/deployed.xml"; }
check "deployed XML: TCG domain (domain_type qemu)" has "<domain type='qemu'"
check "deployed XML: the source's 2 vCPUs and 64 MiB" bash -c "grep -q \">2</vcpu>\" '$TMP/deployed.xml' && grep -q \"<memory unit='KiB'>65536</memory>\" '$TMP/deployed.xml'"
check "deployed XML: cpu_mode host-passthrough as 'maximum' on TCG, migratable" has "<cpu mode='maximum' check='none' migratable='on'"
check "deployed XML: cpu_features" has "<feature policy='require' name='x2apic'/>"
check "deployed XML: the TPM (add_tpm_device)" has "<backend type='emulator' version='2.0'"
check "deployed XML: the console log (enable_vm_console_log, vm_console_log_dir)" has "<log file='/var/log/libvirt/qemu/$DOM-serial.log'"
check "deployed XML: VNC on vnc_listen_address" has "<graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1'"
check "the VNC console has a password of its own" bash -c "virsh -q dumpxml --security-info '$DOM' | grep -qE \"<graphics type='vnc'[^>]* passwd='[A-Za-z0-9]{8}'\""
check "deployed XML: the source MAC on the mapped network" bash -c "grep -q \"<mac address='$MAC'/>\" '$TMP/deployed.xml' && grep -q \"<source network='$NET'/>\" '$TMP/deployed.xml'"
check "deployed XML: the config drive (use_config_drive)" has "ekman-$DOM-config.iso"
check "deployed XML: the disks in the source's order" bash -c "grep -o \"ekman-$SRC_DOM-vd[ab].clone.img\" '$TMP/deployed.xml' | tr '\n' ' ' | grep -q 'vda.clone.img ekman-$SRC_DOM-vdb.clone.img'"
check "the deployed disks (clones) equal the source" same .clone.img
check "the replicas are kept for a later execution" same .img
no_minions "no worker VM is left"
check "no worker volume or snapshot is left in $DST_POOL" test -z "$(virsh -q vol-list "$DST_POOL" | awk '{print $1}' | grep -E 'ekman-minion-|\.snap\.img')"
ncp=$(virsh -q checkpoint-list "$SRC_DOM" --name 2>/dev/null | grep -c .)
check "at most one checkpoint (the next incremental's base) on the source ($ncp)" test "$ncp" -le 1
check "no temporary key file is left in the worker's tmp_dir" test -z "$(find "$TMP/wtmp" -mindepth 1 | head -3)"
check "the worker is still running" kill -0 "$W"
kill -TERM "$W"; wait "$W"; rc=$?
check "the worker exits 0 on SIGTERM (got $rc)" test $rc -eq 0
finish
