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
set -u
. "$(dirname "$0")/../lib.sh"
BUILD=$1 SRC=$2 STACK=$3
eval "$("$SRC/deploy/stack.sh" env "$STACK")"
TMP=$(mktemp -d /var/tmp/ekman-morph-e2e.XXXXXX)
chmod 755 "$TMP"
PIDS=()
R=$(printf '%04x%04x' $RANDOM $RANDOM)
N=morph-$R                    # prefix of every libvirt object of this test
GUEST=ekguest-$R              # the OVA's VM name
DST_POOL=$N-dst
export LIBVIRT_DEFAULT_URI=qemu:///system
v() { virsh -q "$@" 2>/dev/null; }
cleanup() {
  for p in "${PIDS[@]}"; do pkill -KILL -P "$p" 2>/dev/null; kill -KILL "$p" 2>/dev/null; done
  wait 2>/dev/null
  for d in $(v list --all --name | grep -E "^($GUEST|$N|ekman-minion-)"); do
    case $d in ekman-minion-*) grep -qx "$d" "$TMP/minions" 2>/dev/null || continue ;; esac
    v destroy "$d"; v undefine --nvram --tpm "$d" || v undefine "$d"
  done
  if v pool-info "$DST_POOL" > /dev/null; then
    for vol in $(v vol-list "$DST_POOL" | awk '{print $1}'); do v vol-delete --pool "$DST_POOL" "$vol"; done
    v pool-destroy "$DST_POOL"; v pool-undefine "$DST_POOL"
  fi
  rm -f /var/log/libvirt/qemu/"$GUEST"*-serial.log
  for m in $(sort -u "$TMP/minions" 2>/dev/null); do rm -f "/var/log/libvirt/qemu/$m-serial.log"; done
  [ -n "${KEEP_TMP:-}" ] || rm -rf "$TMP"
}
trap cleanup EXIT
. "$(dirname "$0")/../conductor_lib.sh"
PORT=$((EKMAN_API_PORT + 46))
URL="http://127.0.0.1:$PORT"
DB="${EKMAN_PG_ADMIN_URL/\/postgres\?//ekman?}"
T0=$SECONDS
elapsed() { echo "# [$((SECONDS - T0)) s] $*"; }

# --- the guest, its OVA, the worker image ---------------------------------------------------
"$SRC/tests/fixtures/guest/build-guest.sh" --out "$TMP/guest" > "$TMP/guest.log" 2>&1 ||
  { tail -30 "$TMP/guest.log"; echo "FAIL - the test guest could not be built"; exit 1; }
elapsed "test guest ready"
[ -n "${EKMAN_MORPH_SKIP_SOURCE_BOOT:-}" ] || # (a developer's shortcut: the guest is cached)
check "the VMware-like guest boots on pvscsi + vmxnet3" \
  "$SRC/tests/fixtures/guest/boot-check.sh" --disk "$TMP/guest/guest.raw" --bus pvscsi --nic vmxnet3 \
  --expect login --timeout 300 --log "$TMP/boot-src.log"
elapsed "source boot checked"
mkdir -p "$TMP/ova"
chmod 755 "$TMP/ova"
"$SRC/tests/fixtures/guest/make-ova.sh" --disk "$TMP/guest/guest.raw" --out "$TMP/ova/$GUEST.ova" \
  --name "$GUEST" --adapter pvscsi --nic vmxnet3 > "$TMP/ova.log" 2>&1 ||
  { cat "$TMP/ova.log"; echo "FAIL - the OVA could not be made"; exit 1; }
check "the OVA exists" test -s "$TMP/ova/$GUEST.ova"
IMAGE=${EKMAN_WORKER_IMAGE:-$BUILD/worker-image/ekman-worker.qcow2}
[ -n "${EKMAN_WORKER_IMAGE:-}" ] ||
  "$SRC/deploy/worker-image/build.sh" --build-dir "$BUILD" --output "$IMAGE" > "$TMP/image.log" 2>&1 ||
  { tail -20 "$TMP/image.log"; echo "FAIL - the worker image could not be built"; exit 1; }
elapsed "OVA and worker image ready"

# --- libvirt objects --------------------------------------------------------------------------
mkdir -p "$TMP/dstpool"; chmod 755 "$TMP/dstpool"
v pool-define-as "$DST_POOL" dir --target "$TMP/dstpool" && v pool-start "$DST_POOL"
v vol-create-as "$DST_POOL" "$N-worker.qcow2" "$(stat -c %s "$IMAGE")" --format raw
v vol-upload --pool "$DST_POOL" "$N-worker.qcow2" "$IMAGE"
v pool-refresh "$DST_POOL"
check "worker image uploaded to $DST_POOL" v vol-info --pool "$DST_POOL" "$N-worker.qcow2"
NET=$EKMAN_LIBVIRT_NETWORK
check "network $NET is active" bash -c "virsh -q net-info '$NET' | grep -q 'Active: *yes'"

# --- services ----------------------------------------------------------------------------------
mkdir -p "$TMP/wtmp"; chmod 700 "$TMP/wtmp"
# (a worker is lost after 40 s without heartbeats: the TCG guests load both CPUs)
sed -e "s/^\[worker\]/[scheduler]\nheartbeat_interval = 2\nmissed_heartbeats = 20\n\n[ova]\nallowed_roots = ${TMP//\//\\/}\/ova\n\n[libvirt_migration_provider]\nosmorphing_packages_dir = ${TMP//\//\\/}\/guest\/packages\n\n[worker]\nhost = morph-$R\nproviders = ova,libvirt\ncapacity = 4\ntmp_dir = ${TMP//\//\\/}\/wtmp/" \
    -e "s/^port = .*/port = $PORT/" "$EKMAN_CONFIG" > "$TMP/svc.conf"
"$BUILD/conductor/ekman-conductor" --config "$TMP/svc.conf" > "$TMP/c.log" 2>&1 & PIDS+=($!)
"$BUILD/scheduler/ekman-scheduler" --config "$TMP/svc.conf" > "$TMP/s.log" 2>&1 & PIDS+=($!)
"$BUILD/worker/ekman-worker" --config "$TMP/svc.conf" > "$TMP/w.log" 2>&1 & W=$!; PIDS+=($W)
check "the conductor answers" wait_for 60 curl -sf "$URL/healthz" || { tail -5 "$TMP/c.log"; exit 1; }
check "the worker registered UP" wait_for 30 bash -c "[ \"\$(psql '$DB' -Atqc \"SELECT count(*) FROM services WHERE host = 'morph-$R' AND status = 'UP'\")\" = 1 ]"
create_user "morph-$R" "morph-$R" member "Morph-pass-$R"
read -r TOK P < <(login "morph-$R" "Morph-pass-$R")

endpoint() { # endpoint NAME TYPE CONNECTION_INFO: prints the id
  api "$TOK" POST "/v1/$P/endpoints" "$(jq -nc --arg n "$1" --arg t "$2" --argjson c "$3" '{endpoint: {name: $n, type: $t, connection_info: $c}}')" | jq -r .endpoint.id
}
SRC_EP=$(endpoint ova ova "$(jq -nc --arg p "$TMP/ova" '{path: $p}')")
DST_EP=$(endpoint dst libvirt "$(jq -nc --arg k "$(base64 -w0 "$EKMAN_SSH_KEY")" --arg kh "$(cat "$EKMAN_SSH_KNOWN_HOSTS")" \
  --arg u "$EKMAN_SSH_USER" --argjson p "$EKMAN_SSH_PORT" '{host: "127.0.0.1", port: $p, username: $u, private_key: $k, known_hosts: $kh}')")
check "endpoints created" test -n "$SRC_EP" -a -n "$DST_EP" -a "$SRC_EP" != null -a "$DST_EP" != null
check "the OVA's VM is listed" bash -c "curl -s -H 'X-Auth-Token: $TOK' '$URL/v1/$P/endpoints/$SRC_EP/instances' | jq -e '.instances[] | select(.name == \"$GUEST\")' > /dev/null"

ENV=$(jq -nc --arg pool "$DST_POOL" --arg img "$DST_POOL/$N-worker.qcow2" --arg net "$NET" '{
  default_storage_pool: $pool, migr_image_map: {linux: $img}, migr_worker_network: $net,
  migr_worker_memory: 1024, migr_worker_vcpus: 1, migr_worker_volume_size: 1,
  migr_worker_boot_timeout: 300, domain_type: "qemu", migr_worker_iface_addr_src: "agent",
  data_transfer_mechanism: "https", cpu_mode: "", cpu_features: [], add_tpm_device: false,
  enable_vm_console_log: true, set_dhcp: true}')
T=$(api "$TOK" POST "/v1/$P/transfers" "$(jq -nc --arg s "$SRC_EP" --arg d "$DST_EP" --arg i "$GUEST" --arg net "$NET" --argjson env "$ENV" \
    '{transfer: {origin_endpoint_id: $s, destination_endpoint_id: $d, instances: [$i], network_map: {"VM Network": $net},
      destination_environment: $env}}')" | jq -r .transfer.id)
check "transfer created" test "$(code)" = 201
errors_of() { api "$TOK" GET "/v1/$P/${3:-transfers}/$1/executions/$2" | jq -r '[.execution.tasks[] | select(.exception_details != null and .exception_details != "") | .task_type + ": " + .exception_details] | join("\n")'; }
minions() { virsh -q list --all --name | grep '^ekman-minion-' | tee -a "$TMP/minions"; }

# --- 1: the copy --------------------------------------------------------------------------------
E1=$(api "$TOK" POST "/v1/$P/transfers/$T/executions" '{}' | jq -r .execution.id)
st=$(wait_execution "$TOK" "$P" "$T" "$E1" 900)
check "execution 1 completes ($st)" test "$st" = COMPLETED
[ "$st" = COMPLETED ] || { errors_of "$T" "$E1"; tail -30 "$TMP/w.log"; finish; exit 1; }
elapsed "execution 1 done"
REPLICA=$(ls "$TMP"/dstpool/*.img 2>/dev/null | grep -v -e clone -e snap | head -1)
check "the replica equals the OVA's disk" qemu-img compare -q -U -f raw -F raw "$REPLICA" "$TMP/guest/guest.raw"

# deploy DEPLOY_JSON_EXTRA: waits; prints "STATUS DEPLOYMENT_ID"
deploy() {
  local dep st
  dep=$(api "$TOK" POST "/v1/$P/deployments" "$(jq -nc --arg t "$T" --argjson x "$1" '{deployment: ({transfer_id: $t, clone_disks: true} + $x)}')" | jq -r .deployment.id)
  for _ in $(seq 1800); do
    st=$(api "$TOK" GET "/v1/$P/deployments/$dep" | jq -r .deployment.last_execution_status)
    [ "$st" = COMPLETED ] || [ "$st" = ERROR ] && break; sleep 1
  done
  echo "$st $dep"
}
dep_errors() { api "$TOK" GET "/v1/$P/deployments/$1" | jq -r '.. | .exception_details? // empty'; }
dep_events() { psql "$DB" -Atqc "SELECT e.message FROM task_events e JOIN tasks t ON t.id = e.task_id JOIN executions x ON x.id = t.execution_id WHERE x.action_id = '$1' ORDER BY e.created_at"; }
agent() { virsh -q qemu-agent-command "$1" "$2" 2>/dev/null; }
# gexec DOMAIN COMMAND...: runs a command in the guest (qemu-ga guest-exec), prints its stdout
gexec() {
  local dom=$1 pid out; shift
  pid=$(agent "$dom" "$(jq -nc --arg p "$1" --args '{execute: "guest-exec", arguments: {path: $p, arg: $ARGS.positional[1:], "capture-output": true}}' "$@")" | jq -r .return.pid)
  [ -n "$pid" ] && [ "$pid" != null ] || return 1
  for _ in $(seq 100); do
    out=$(agent "$dom" "{\"execute\":\"guest-exec-status\",\"arguments\":{\"pid\":$pid}}")
    [ "$(jq -r .return.exited <<<"$out")" = true ] && break; sleep 0.3
  done
  jq -r '.return."out-data" // empty' <<<"$out" | base64 -d
}

# --- 2: deploy with OS morphing ------------------------------------------------------------------
read -r st DEP < <(deploy '{}')
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
initrd=$(gexec "$DOM" /bin/sh -c 'lsinitramfs /boot/initrd.img-$(uname -r)')
check "the guest's initramfs lists virtio_blk" grep -q "virtio_blk.ko" <<<"$initrd"
check "open-vm-tools is gone (dpkg in the guest)" bash -c "[ \"\$1\" = absent ]" _ "$(gexec "$DOM" /bin/sh -c 'dpkg-query -W open-vm-tools >/dev/null 2>&1 && echo present || echo absent' | tr -d '\n')"
fstab=$(gexec "$DOM" /bin/cat /etc/fstab)
echo "$fstab" | grep -v '^#' | sed 's/^/# fstab: /'
check "fstab names /boot by UUID (no /dev/sdX left)" bash -c "grep -q '^UUID=.* /boot ' <<<\"\$1\" && ! grep -q '^/dev/sd' <<<\"\$1\"" _ "$fstab"
check "qemu-guest-agent runs as a service in the guest" bash -c "[ \"\$1\" = active ]" _ "$(gexec "$DOM" /bin/systemctl is-active qemu-guest-agent | tr -d '\n')"
v destroy "$DOM"; v undefine "$DOM"
rm -f "$LOG" # the next deployment has the same name, so the same console log

# --- 3: the same replica without OS morphing does not boot -------------------------------------
read -r st DEP2 < <(deploy '{"skip_os_morphing": true}')
check "the deployment without OS morphing completes ($st)" test "$st" = COMPLETED
DOM2=$(v list --all --name | grep "^$GUEST" | head -1)
LOG2=/var/log/libvirt/qemu/$DOM2-serial.log
check "without OS morphing the guest cannot find its root" wait_for 420 grep -qE "Gave up waiting for root|ALERT! .* does not exist|Dropping to a shell" "$LOG2"
check "... and never reaches a login prompt" bash -c "! grep -q 'login:' '$LOG2'"
v destroy "$DOM2"; v undefine "$DOM2"
elapsed "negative control done"

# --- 4: a disk with no OS --------------------------------------------------------------------------
BLANK=ekblank-$R
truncate -s 64M "$TMP/blank.raw"; mkfs.ext4 -q -F "$TMP/blank.raw"
"$SRC/tests/fixtures/guest/make-ova.sh" --disk "$TMP/blank.raw" --out "$TMP/ova/$BLANK.ova" --name "$BLANK" > "$TMP/ova2.log" 2>&1
T2=$(api "$TOK" POST "/v1/$P/transfers" "$(jq -nc --arg s "$SRC_EP" --arg d "$DST_EP" --arg i "$BLANK" --arg net "$NET" --argjson env "$ENV" \
    '{transfer: {origin_endpoint_id: $s, destination_endpoint_id: $d, instances: [$i], network_map: {"VM Network": $net},
      destination_environment: $env}}')" | jq -r .transfer.id)
E=$(api "$TOK" POST "/v1/$P/transfers/$T2/executions" '{}' | jq -r .execution.id)
check "the blank disk's execution completes" test "$(wait_execution "$TOK" "$P" "$T2" "$E" 600)" = COMPLETED
T_SAVE=$T T=$T2
read -r st DEP3 < <(deploy '{}')
T=$T_SAVE
msg=$(dep_errors "$DEP3"); echo "# no OS: $msg" | head -3
check "a disk with no OS: the deployment fails ($st) saying no operating system was found" bash -c "[ '$st' = ERROR ] && grep -qi 'no operating system' <<<\"\$1\"" _ "$msg"
check "... and no domain is left for it" test -z "$(v list --all --name | grep "^$BLANK")"

check "no worker VM is left" test -z "$(minions)"
check "no temporary key file is left in the worker's tmp_dir" test -z "$(find "$TMP/wtmp" -mindepth 1 | head -3)"
kill -TERM "$W"; wait "$W"; rc=$?
check "the worker exits 0 on SIGTERM (got $rc)" test $rc -eq 0
finish
