#!/usr/bin/env bash
# test_ovirt_e2e.sh - the `ovirt` provider end to end: a `local` instance
# (three disks, two NICs) migrated into the simulated oVirt engine
# (tests/ovirt-sim) through the real conductor, scheduler and worker.
# Execute, change source blocks, execute again (only the changes move),
# deploy: the simulator's disk files equal the sources, the VM has the
# source's CPUs, memory and NICs on the mapped vNIC profiles, the configured
# OS type, optimisation, delete protection (a pool is refused), and no worker VM or
# temporary disk is left. Then the failures: a 409 injected while attaching
# disks (ERROR, nothing left), tokens expired mid-run (renewed), a wrong
# password, an untrusted certificate, an unknown cluster and a full storage
# domain (errors naming the problem).
# Usage: test_ovirt_e2e.sh BUILD_DIR SOURCE_DIR STACK_DIR
set -u
. "$(dirname "$0")/../lib.sh"
BUILD=$1 SRC=$2 STACK=$3
eval "$("$SRC/deploy/stack.sh" env "$STACK")"
TMP=$(mktemp -d /var/tmp/ekman-ovirt-e2e.XXXXXX)
chmod 755 "$TMP"
PIDS=()
. "$SRC/tests/ovirt-sim/lib_sim.sh"
cleanup() {
  sim_stop
  { for p in "${PIDS[@]}"; do pkill -KILL -P "$p"; kill -KILL "$p"; done; wait; } 2>/dev/null
  [ "${KEEP_TMP:-0}" = 1 ] || rm -rf "$TMP"
}
trap cleanup EXIT
. "$(dirname "$0")/../conductor_lib.sh"
PORT=$((EKMAN_API_PORT + 47))
URL="https://127.0.0.1:$PORT"
R=$RANDOM$RANDOM
DB="${EKMAN_PG_ADMIN_URL/\/postgres\?//ekman?}"
MiB=1048576

# --- the simulated engine ------------------------------------------------------------
sim_start "$TMP/sim" --config "$SRC/tests/ovirt-sim/config.json" --writer "$BUILD/worker/ekman-writer" \
  --delay 0.3 || { not_ok "the simulator starts"; finish; exit 1; }
ok "the simulator listens on $SIM_PORT"
state() { sim_ctl GET /sim/state; }

# --- services: conductor, scheduler, one worker with local and ovirt ---------------------
sed -e "s/^\[worker\]/[scheduler]\nheartbeat_interval = 1\nmissed_heartbeats = 5\n\n[worker]\nhost = ovirt-e2e-$R\nproviders = local,ovirt\ncapacity = 4/" \
    -e "s/^port = .*/port = $PORT/" "$EKMAN_CONFIG" > "$TMP/w.conf"
cat >> "$TMP/w.conf" <<EOF

[ovirt_migration_provider]
default_cluster = Default
default_storage_domain = data1
default_migr_minion_cluster = minions
default_migr_template_map = linux: ekman-worker, windows: ekman-worker-win
default_migr_template_username_map = linux: coriolis, windows: coriolis
default_migr_template_password_map = linux: Passw0rd, windows: Passw0rd

# the source instance's directory is in TMP
[local]
allowed_roots = $TMP
EOF
"$BUILD/conductor/ekman-conductor" --config "$TMP/w.conf" > "$TMP/c.log" 2>&1 & PIDS+=($!)
"$BUILD/scheduler/ekman-scheduler" --config "$TMP/w.conf" > "$TMP/s.log" 2>&1 & PIDS+=($!)
EKMAN_OVIRT_POLL_MS=200 "$BUILD/worker/ekman-worker" --config "$TMP/w.conf" > "$TMP/w.log" 2>&1 & W=$!; PIDS+=($W)
check "the conductor answers" wait_for 60 ek_curl -sf "$URL/healthz"
check "the worker registered UP" wait_for 30 bash -c "[ \"\$(psql '$DB' -Atqc \"SELECT count(*) FROM services WHERE host = 'ovirt-e2e-$R' AND status = 'UP'\")\" = 1 ]"

# --- the source instance: web01, three small disks, two NICs -----------------------------
S=$TMP/src
mkdir -p "$S"; chmod 755 "$S"
rnd() { dd if=/dev/urandom of="$1" bs=65536 seek=$(($2 / 65536)) count=$(($3 / 65536)) conv=notrunc status=none; }
truncate -s 64M "$S/web01-root.img"; rnd "$S/web01-root.img" 0 $((2 * MiB)); rnd "$S/web01-root.img" $((40 * MiB)) $MiB
truncate -s 32M "$TMP/data.raw"; rnd "$TMP/data.raw" 0 $((4 * MiB))
qemu-img convert -q -f raw -O qcow2 "$TMP/data.raw" "$S/web01-data.qcow2"; rm "$TMP/data.raw"
truncate -s 16M "$S/web01-swap.img"; rnd "$S/web01-swap.img" 0 $((3 * MiB))
sed "s|@DIR@|$S|g" "$SRC/tests/fixtures/local/transfer-vm.xml.in" > "$S/web01.xml"
declare -A FMT=([vda]=raw [vdb]=qcow2 [sdc]=raw) IMG=([vda]=web01-root.img [vdb]=web01-data.qcow2 [sdc]=web01-swap.img)
# disk_file NAME: the simulator's file of the disk called NAME
disk_file() { state | jq -r --arg n "$1" '[.disks[] | select(.name == $n)][0].file // empty'; }
# same_as_source PREFIX: the disks PREFIX-vda... equal the sources
same_as_source() {
  local d f
  for d in vda vdb sdc; do
    f=$(disk_file "$1$d"); [ -n "$f" ] || { echo "# no disk $1$d"; return 1; }
    qemu-img compare -q -f raw -F "${FMT[$d]}" "$f" "$S/${IMG[$d]}" || { echo "# $1$d differs"; return 1; }
  done
}
workers_left() { state | jq '[.vms[] | select(.worker)] | length'; }
disk_count() { state | jq '[.disks[] | select(.template == null)] | length'; }

create_user "ovirt-$R" "ovirt-$R" member "Ovirt-pass-$R"
read -r TOK P < <(login "ovirt-$R" "Ovirt-pass-$R")
endpoint() { # endpoint NAME CONNECTION_INFO_JSON: prints the id
  api "$TOK" POST "/v1/$P/endpoints" "{\"endpoint\":{\"name\":\"$1\",\"type\":\"$2\",\"connection_info\":$3}}" | jq -r .endpoint.id
}
SRC_EP=$(endpoint src local "{\"path\":\"$S\"}")
DST_EP=$(endpoint olvm ovirt "{\"url\":\"$SIM_URL\",\"username\":\"admin@internal\",\"password\":\"admin\",\"allow_untrusted\":true}")
validate() { api "$TOK" POST "/v1/$P/endpoints/$1/actions" '{"validate-connection": null}'; }
check "the oVirt endpoint validates" test "$(validate "$DST_EP" | jq -r '."validate-connection".valid')" = true
check "its networks list the vNIC profiles" test "$(api "$TOK" GET "/v1/$P/endpoints/$DST_EP/networks" | jq -r '[.networks[] | select(.name == "vmnet") | .vnic_profiles[].name] | sort | join(",")')" = "vmnet,vmnet-mirror"
check "its storage lists data1" test "$(api "$TOK" GET "/v1/$P/endpoints/$DST_EP/storage" | jq -r '[.storage.storage_backends[].name] | index("data1") != null')" = true

ENV='{"default_os_release":"rhel_9x64","default_optimized_for":"high_performance","default_delete_protected":true}'
NETMAP='{"default":"vmnet/vmnet-mirror","br-lan":"ovirtmgmt"}'
transfer() { # transfer ENV STORAGE_MAPPINGS: prints the id
  api "$TOK" POST "/v1/$P/transfers" "{\"transfer\":{\"origin_endpoint_id\":\"$SRC_EP\",\"destination_endpoint_id\":\"$DST_EP\",\"instances\":[\"web01\"],\"network_map\":$NETMAP,\"destination_environment\":$1,\"storage_mappings\":${2:-{\}},\"skip_os_morphing\":true}}" | jq -r .transfer.id
}
execute() { api "$TOK" POST "/v1/$P/transfers/$1/executions" '{}' | jq -r .execution.id; }
errors_of() { # errors_of TRANSFER EXEC: every task's exception_details
  api "$TOK" GET "/v1/$P/transfers/$1/executions/$2" | jq -r '.execution.tasks[] | select(.exception_details != null and .exception_details != "") | .task_type + ": " + .exception_details'
}
# default_vm_pool: the engine puts no existing VM in a pool; refused at validation
TP=$(transfer "$(jq -c '. + {default_vm_pool: "pool1"}' <<<"$ENV")")
EP=$(execute "$TP")
st=$(wait_execution "$TOK" "$P" "$TP" "$EP" 120)
check "a transfer with default_vm_pool ends in ERROR (got $st)" test "$st" = ERROR
errors_of "$TP" "$EP" > "$TMP/ep.txt"
check "... naming the option and why" grep -q "default_vm_pool is 'pool1', but oVirt cannot put a migrated VM in a pool" "$TMP/ep.txt"
# a network_map onto a network that carries no VMs (usages: migration only)
NETMAP_OK=$NETMAP NETMAP='{"default":"migration-net","br-lan":"ovirtmgmt"}'
TN=$(transfer "$ENV"); NETMAP=$NETMAP_OK
EN=$(execute "$TN")
st=$(wait_execution "$TOK" "$P" "$TN" "$EN" 120)
check "a network_map onto a non-VM network ends in ERROR (got $st)" test "$st" = ERROR
errors_of "$TN" "$EN" > "$TMP/en.txt"
check "... naming the network and its usages" grep -q "network 'migration-net', which is not a VM network .*(its usages: migration)" "$TMP/en.txt"
# a UEFI instance onto a cluster of compatibility level 4.2 (no BIOS types before 4.3)
sed -e 's|<name>web01</name>|<name>web02</name>|' -e "s|^  <os>|  <os firmware='efi'>|" "$S/web01.xml" > "$S/web02.xml"
TU=$(api "$TOK" POST "/v1/$P/transfers" "{\"transfer\":{\"origin_endpoint_id\":\"$SRC_EP\",\"destination_endpoint_id\":\"$DST_EP\",\"instances\":[\"web02\"],\"network_map\":$NETMAP,\"destination_environment\":$(jq -c '. + {default_cluster: "legacy42"}' <<<"$ENV"),\"skip_os_morphing\":true}}" | jq -r .transfer.id)
EU=$(execute "$TU")
st=$(wait_execution "$TOK" "$P" "$TU" "$EU" 120)
rm -f "$S/web02.xml"
check "a UEFI instance onto a 4.2 cluster ends in ERROR (got $st)" test "$st" = ERROR
errors_of "$TU" "$EU" > "$TMP/eu.txt"
check "... naming the cluster, its level and the 4.3 needed for UEFI" grep -q "boots with UEFI, but cluster 'legacy42' (default_cluster) has compatibility version 4.2, which has no BIOS types" "$TMP/eu.txt" || cat "$TMP/eu.txt"
T=$(transfer "$ENV")
check "transfer created" test "$(code)" = 201

# --- 1: first execution, with tokens expiring while it runs ---------------------------------
BEFORE=$(sim_ctl GET /sim/requests | jq '.requests | length')
E1=$(execute "$T")
( for _ in $(seq 40); do sim_ctl POST /sim/tokens/expire > /dev/null; sleep 1; done ) & EXP=$!
st=$(wait_execution "$TOK" "$P" "$T" "$E1" 300)
kill "$EXP" 2>/dev/null; wait "$EXP" 2>/dev/null
check "execution 1 completes (got $st)" test "$st" = COMPLETED
[ "$st" = COMPLETED ] || errors_of "$T" "$E1"
n401=$(sim_ctl GET /sim/requests | jq --argjson b "$BEFORE" '[.requests[$b:][] | select(.status == 401)] | length')
check "expired tokens were met ($n401 x 401) and renewed transparently" test "$n401" -ge 1
check "the replicas in the simulator equal the sources" same_as_source web01-
check "no worker VM is left" test "$(workers_left)" = 0
check "three disks: the replicas" test "$(disk_count)" = 3
TPL2=$(sim_api GET '/templates?search=name%3Dekman-worker' | jq -r '.template[] | select(.version.version_number == "2") | .id')
check "the disk-copy worker was made from the worker template's latest version (2 of 2)" grep -q "worker VM .ekman-web01-copy-.* created from template $TPL2;" <(psql "$DB" -Atqc "SELECT v.message FROM task_events v JOIN tasks t ON t.id = v.task_id WHERE t.execution_id = '$E1'")

# --- 2: change blocks; only they move -------------------------------------------------------
rnd "$S/web01-root.img" $((50 * MiB)) $((256 * 1024))
qemu-io -f qcow2 -c "write -P 0x5a 1M 128k" "$S/web01-data.qcow2" > /dev/null
rnd "$S/web01-swap.img" $((10 * MiB)) $((64 * 1024))
changed=$((256 * 1024 + 128 * 1024 + 64 * 1024))
# sync_and_check LABEL TRANSFER INSTANCE CHANGED: an execution completes, the
# replicas equal the sources, and it sent the changed bytes (within 5 %)
sync_and_check() {
  local label=$1 t=$2 inst=$3 changed=$4 e st moved
  e=$(execute "$t")
  st=$(wait_execution "$TOK" "$P" "$t" "$e" 300)
  check "$label completes (got $st)" test "$st" = COMPLETED
  [ "$st" = COMPLETED ] || errors_of "$t" "$e"
  check "$label: the replicas equal the changed sources" same_as_source "$inst-"
  api "$TOK" GET "/v1/$P/transfers/$t?include_task_info=true" > "$TMP/t.json"
  moved=$(jq --arg i "$inst" '[.transfer.info[$i].volumes_info[].last_sync.data_bytes] | add' "$TMP/t.json")
  echo "# $label: changed $changed bytes, sent $moved data bytes"
  check "$label: only the changed blocks moved ($moved <= 1.05 x $changed)" \
    test "$moved" -le $((changed * 105 / 100)) -a "$moved" -ge "$changed"
}
sync_and_check "execution 2" "$T" web01 "$changed"
check "no worker VM is left after execution 2" test "$(workers_left)" = 0

# --- 2b: data_transfer_mechanism = imageio: image transfers, no disk-copy worker VM ------------
# web03: the same disks as web01, through the other mechanism
sed -e 's|<name>web01</name>|<name>web03</name>|' "$S/web01.xml" > "$S/web03.xml"
transfer_io() { # transfer_io ENV: a transfer of web03, prints the id
  api "$TOK" POST "/v1/$P/transfers" "{\"transfer\":{\"origin_endpoint_id\":\"$SRC_EP\",\"destination_endpoint_id\":\"$DST_EP\",\"instances\":[\"web03\"],\"network_map\":$NETMAP,\"destination_environment\":$1,\"skip_os_morphing\":true}}" | jq -r .transfer.id
}
ENV_IO=$(jq -c '. + {data_transfer_mechanism: "imageio"}' <<<"$ENV")
out=$(api "$TOK" POST "/v1/$P/transfers" "{\"transfer\":{\"origin_endpoint_id\":\"$SRC_EP\",\"destination_endpoint_id\":\"$DST_EP\",\"instances\":[\"web03\"],\"destination_environment\":$(jq -c '. + {data_transfer_mechanism: "ftp"}' <<<"$ENV"),\"skip_os_morphing\":true}}")
check "data_transfer_mechanism = ftp is refused at once ($(code))" test "$(code)" = 400
check "... naming the option and its values" grep -q "data_transfer_mechanism.*https.*imageio" <<<"$out"
TI=$(transfer_io "$ENV_IO")
vms_posted() { sim_ctl GET /sim/requests | jq --argjson b "$1" '[.requests[$b:][] | select(.method == "POST" and .path == "/ovirt-engine/api/vms")] | length'; }
BEFORE=$(sim_ctl GET /sim/requests | jq '.requests | length')
EI1=$(execute "$TI")
st=$(wait_execution "$TOK" "$P" "$TI" "$EI1" 300)
check "imageio: execution 1 completes (got $st)" test "$st" = COMPLETED
[ "$st" = COMPLETED ] || errors_of "$TI" "$EI1"
check "imageio: the replicas equal the sources" same_as_source web03-
check "imageio: no VM was created (no disk-copy worker)" test "$(vms_posted "$BEFORE")" = 0
nput=$(sim_ctl GET /sim/requests | jq --argjson b "$BEFORE" '[.requests[$b:][] | select(.method == "PUT" and (.path | startswith("/images/")))] | length')
check "imageio: the data went in PUTs to the tickets ($nput)" test "$nput" -ge 3
sim_api GET /imagetransfers > "$TMP/it.json"
check "imageio: its three image transfers were finalized (finished_success)" \
  test "$(jq '[.image_transfer[] | select(.phase == "finished_success")] | length' "$TMP/it.json")" -ge 3
check "imageio: no image transfer is left open" \
  test "$(jq '[.image_transfer[] | select(.phase | test("finished") | not)] | length' "$TMP/it.json")" = 0
check "imageio: the writes went to the host's daemon, not the proxy" test "$(sim_ctl GET /sim/requests \
  | jq --argjson b "$BEFORE" '[.requests[$b:][] | select(.method == "PUT") | .listener] | unique | join(",")')" = '"imageio"'
# the ticket URLs are credentials: not in the API's answers, not in any log
# (the tickets, from the paths imageio was called on)
api "$TOK" GET "/v1/$P/transfers/$TI?include_task_info=true" > "$TMP/ti.json"
leaks=0 ntk=0
for tk in $(sim_ctl GET /sim/requests | jq -r --argjson b "$BEFORE" \
    '[.requests[$b:][] | select(.path | startswith("/images/")) | .path | sub("^/images/"; "") | sub("/.*"; "")] | unique | .[]'); do
  ntk=$((ntk + 1))
  grep -q -- "$tk" "$TMP/ti.json" "$TMP/w.log" "$TMP/c.log" "$TMP/s.log" && leaks=$((leaks + 1))
  psql "$DB" -Atqc "SELECT message FROM task_events" | grep -q -- "$tk" && leaks=$((leaks + 1))
done
check "imageio: none of its $ntk tickets appears in the API, the logs or the task events" \
  test "$leaks" = 0 -a "$ntk" = 3
rnd "$S/web01-root.img" $((20 * MiB)) $((192 * 1024))
rnd "$S/web01-swap.img" $((12 * MiB)) $((64 * 1024))
changed=$((192 * 1024 + 64 * 1024))
# the worker cannot reach the host's daemon (transfer_url refuses): the
# proxy's URL is used; and two PUTs fail on the way (500): sent again
sim_ctl PUT /sim/imageio '{"daemon_reachable":false}' > /dev/null
sim_ctl POST /sim/fail '{"method":"PUT","path_regex":"^/images/","status":500,"count":2,"detail":"simulated imageio failure"}' > /dev/null
BEFORE=$(sim_ctl GET /sim/requests | jq '.requests | length')
sync_and_check "imageio: execution 2 (through the proxy, two PUTs failed)" "$TI" web03 "$changed"
sim_ctl DELETE /sim/fail > /dev/null
sim_ctl PUT /sim/imageio '{"daemon_reachable":true}' > /dev/null
check "imageio: with the daemon unreachable the writes went through the proxy" test "$(sim_ctl GET /sim/requests \
  | jq --argjson b "$BEFORE" '[.requests[$b:][] | select(.method == "PUT") | .listener] | unique | join(",")')" = '"proxy"'
# web03's replicas go: the rest of the test counts web01's
for id in $(state | jq -r '.disks[] | select(.name | startswith("web03-")) | .id'); do
  sim_api DELETE "/disks/$id" > /dev/null
done
for _ in $(seq 100); do [ "$(state | jq '[.disks[] | select(.name | startswith("web03-"))] | length')" = 0 ] && break; sleep 0.2; done
rm -f "$S/web03.xml"

# --- 3: a 409 while attaching disks to the worker: ERROR, nothing left ---------------------------
disks_before=$(disk_count)
sim_ctl POST /sim/fail '{"method":"POST","path_regex":"/vms/[^/]+/diskattachments$","status":409,"count":1,"detail":"[Cannot attach Virtual Disk. Simulated conflict.]"}' > /dev/null
E3=$(execute "$T")
st=$(wait_execution "$TOK" "$P" "$T" "$E3" 300)
check "execution 3 ends in ERROR" test "$st" = ERROR
errors_of "$T" "$E3" > "$TMP/e3.txt"
check "the error quotes the engine's detail and names the VM" grep -q "attaching disk .* to VM 'ekman-web01-copy-.*Simulated conflict" "$TMP/e3.txt"
check "no orphan worker VM" test "$(workers_left)" = 0
check "no orphan disk" test "$(disk_count)" = "$disks_before"
sim_ctl DELETE /sim/fail > /dev/null
# a worker VM the engine accepts to start but no host runs: it falls back to down
sim_ctl POST /sim/fail '{"method":"POST","path_regex":"/vms/[^/]+/start$","boot_fails":true,"count":1}' > /dev/null
t0=$SECONDS
E3b=$(execute "$T")
st=$(wait_execution "$TOK" "$P" "$T" "$E3b" 300)
check "a worker VM that falls back to down ends the execution in ERROR (got $st)" test "$st" = ERROR
check "... at once, not after the start timeout ($((SECONDS - t0)) s)" test $((SECONDS - t0)) -lt 120
errors_of "$T" "$E3b" > "$TMP/e3b.txt"
check "... saying the VM went back to down" grep -q "went back to down after the engine accepted to start it" "$TMP/e3b.txt"
check "no orphan worker VM after it" test "$(workers_left)" = 0
sim_ctl DELETE /sim/fail > /dev/null
E4=$(execute "$T")
st=$(wait_execution "$TOK" "$P" "$T" "$E4" 300)
check "an execution after the failure completes (got $st)" test "$st" = COMPLETED

# --- 4: deploy --------------------------------------------------------------------------------
# first while another VM has one of web01's MACs: the engine's MAC pool allows no duplicates
HOLDER=$(sim_api POST /vms '{"name":"macholder","cluster":{"name":"Default"},"template":{"name":"Blank"}}' | jq -r .id)
sim_wait_status 10 "/vms/$HOLDER" .status down
sim_api POST "/vms/$HOLDER/nics" '{"name":"nic1","mac":{"address":"52:54:00:12:34:56"}}' > /dev/null
DEPX=$(api "$TOK" POST "/v1/$P/deployments" "{\"deployment\":{\"transfer_id\":\"$T\",\"clone_disks\":true,\"skip_os_morphing\":true}}" | jq -r .deployment.id)
for _ in $(seq 600); do st=$(api "$TOK" GET "/v1/$P/deployments/$DEPX" | jq -r .deployment.last_execution_status); [ "$st" = COMPLETED ] || [ "$st" = ERROR ] && break; sleep 0.5; done
check "a deployment whose source MAC another VM has ends in ERROR (got $st)" test "$st" = ERROR
api "$TOK" GET "/v1/$P/deployments/$DEPX" | jq -r '.. | .exception_details? // empty' > "$TMP/depx.txt"
check "... naming the MAC and what to do" grep -q "source's MAC 52:54:00:12:34:56 is kept .* remove or change that VM's NIC" "$TMP/depx.txt"
check "... and no half-made web01 is left" test "$(state | jq '[.vms[] | select(.name == "web01")] | length')" = 0
sim_api DELETE "/vms/$HOLDER" > /dev/null
DEP=$(api "$TOK" POST "/v1/$P/deployments" "{\"deployment\":{\"transfer_id\":\"$T\",\"clone_disks\":true,\"skip_os_morphing\":true}}" | jq -r .deployment.id)
for _ in $(seq 600); do st=$(api "$TOK" GET "/v1/$P/deployments/$DEP" | jq -r .deployment.last_execution_status); [ "$st" = COMPLETED ] || [ "$st" = ERROR ] && break; sleep 0.5; done
check "the deployment completes (got $st)" test "$st" = COMPLETED
[ "$st" = COMPLETED ] || api "$TOK" GET "/v1/$P/deployments/$DEP" | jq -r '.. | .exception_details? // empty' | sort -u
state > "$TMP/state.json"
vm() { jq -r --arg q "$1" '.vms[] | select(.name == "web01") | getpath($q | split("."))' "$TMP/state.json"; }
check "VM web01 is up" test "$(vm status)" = up
check "it has the source's 2 CPUs" test "$(vm cpu.sockets)" = 2
check "it has the source's memory (1536 MiB)" test "$(vm memory)" = $((1536 * MiB))
check "OS type rhel_9x64 (default_os_release)" test "$(vm os_type)" = rhel_9x64
check "optimised for high_performance" test "$(vm type)" = high_performance
check "delete protected" test "$(vm delete_protected)" = true
check "NICs on the mapped vNIC profiles" test "$(jq -r '.vms[] | select(.name == "web01") | [.nics[] | .mac + "=" + .vnic_profile] | sort | join(",")' "$TMP/state.json")" = "52:54:00:12:34:56=vmnet-mirror,52:54:00:ab:cd:ef=ovirtmgmt"
check "three disks attached, vda bootable" test "$(jq -r '.vms[] | select(.name == "web01") | [.attachments[] | select(.bootable)] | length' "$TMP/state.json")" = 1
dep_same() {
  local d f
  for d in vda vdb sdc; do
    f=$(jq -r --arg n "web01-$d-deploy" '[.disks[] | select(.vm == "web01" and (.name | startswith($n)))][0].file // empty' "$TMP/state.json")
    [ -n "$f" ] && qemu-img compare -q -f raw -F "${FMT[$d]}" "$f" "$S/${IMG[$d]}" || return 1
  done
}
check "the deployed VM's disks are bit-identical to the sources" dep_same
check "no worker VM is left after the deployment" test "$(workers_left)" = 0
check "no temporary disk: 3 replicas + 3 disks of web01" test "$(disk_count)" = 6

# --- 5: a failed deployment without clone_disks rolls back ------------------------------------
# web01 goes (as an operator would remove it), then a deployment that takes
# the replicas themselves and asks for OS morphing, which needs an SSH login
# to the OS-morphing worker VM (ekman-morph runs there): the simulator's
# guests run only ekman-writer, no sshd, so OS_MORPHING fails reaching it:
# ERROR, the worker and the VM are gone, the replicas are restored.
vid=$(jq -r '.vms[] | select(.name == "web01") | .id' "$TMP/state.json")
sim_api PUT "/vms/$vid" '{"delete_protected":"false"}' > /dev/null
sim_api POST "/vms/$vid/stop" '{"force":"true"}' > /dev/null
sim_wait_status 30 "/vms/$vid" .status down
sim_api DELETE "/vms/$vid" > /dev/null
check "the operator removed web01" wait_for 30 bash -c "[ \"\$(curl -s --cacert '$SIM_CA' https://localhost:$SIM_PORT/sim/state | jq '[.vms[] | select(.name == \"web01\")] | length')\" = 0 ]"
DEP2=$(api "$TOK" POST "/v1/$P/deployments" "{\"deployment\":{\"transfer_id\":\"$T\",\"clone_disks\":false,\"skip_os_morphing\":false}}" | jq -r .deployment.id)
for _ in $(seq 600); do st=$(api "$TOK" GET "/v1/$P/deployments/$DEP2" | jq -r .deployment.last_execution_status); [ "$st" = COMPLETED ] || [ "$st" = ERROR ] && break; sleep 0.5; done
check "a deployment with OS morphing ends in ERROR" test "$st" = ERROR
api "$TOK" GET "/v1/$P/deployments/$DEP2" > "$TMP/dep2.json"
check "... naming the OS-morphing worker VM it could not reach" grep -q "OS-morphing worker VM root@" "$TMP/dep2.json"
check "... after the OS-morphing worker came up" test "$(jq -r '[.. | objects | select(.task_type? == "DEPLOY_OS_MORPHING_RESOURCES") | .status][0]' "$TMP/dep2.json")" = COMPLETED
check "the rollback ran" test "$(jq -r '[.. | objects | select(.task_type? == "RESTORE_TRANSFER_DISK_SNAPSHOTS") | .status][0]' "$TMP/dep2.json")" = COMPLETED
check "no worker VM and no web01 left" test "$(state | jq '[.vms[] | select(.worker or .name == "web01")] | length')" = 0
check "only the three replicas are left" test "$(disk_count)" = 3
api "$TOK" GET "/v1/$P/transfers/$T?include_task_info=true" > "$TMP/t.json"
replicas_same() {
  local d id f
  for d in vda vdb sdc; do
    id=$(jq -r --arg d "$d" '.transfer.info.web01.volumes_info[] | select(.disk_id == $d) | .ovirt_disk_id' "$TMP/t.json")
    f=$(state | jq -r --arg i "$id" '.disks[] | select(.id == $i) | .file')
    [ -n "$f" ] && qemu-img compare -q -f raw -F "${FMT[$d]}" "$f" "$S/${IMG[$d]}" || return 1
  done
}
check "the restored replicas equal the sources" replicas_same
E5=$(execute "$T")
st=$(wait_execution "$TOK" "$P" "$T" "$E5" 300)
check "an execution after the rollback completes (got $st)" test "$st" = COMPLETED
api "$TOK" GET "/v1/$P/transfers/$T?include_task_info=true" > "$TMP/t.json"
moved=$(jq '[.transfer.info.web01.volumes_info[].last_sync.data_bytes] | add' "$TMP/t.json")
check "it moved nothing: the restored replicas kept their block hashes ($moved bytes)" test "$moved" = 0
check "the replicas still equal the sources" replicas_same

# a source disk that grew: its replica grows (PUT /disks), the data follows
truncate -s 24M "$S/web01-swap.img"; rnd "$S/web01-swap.img" $((20 * MiB)) $((128 * 1024))
E6=$(execute "$T")
st=$(wait_execution "$TOK" "$P" "$T" "$E6" 300)
check "an execution after disk sdc grew completes (got $st)" test "$st" = COMPLETED
api "$TOK" GET "/v1/$P/transfers/$T?include_task_info=true" > "$TMP/t.json"
sdc=$(jq -r '.transfer.info.web01.volumes_info[] | select(.disk_id == "sdc") | .ovirt_disk_id' "$TMP/t.json")
check "its replica grew in place to 24 MiB" test "$(state | jq -r --arg i "$sdc" '.disks[] | select(.id == $i) | .provisioned_size')" = $((24 * MiB))
check "the replicas equal the sources after the growth" replicas_same
# the same on an engine before 4.4, which cannot grow a disk attached to no VM
# (PUT /disks: 409): the replica is re-created at the new size
sim_ctl PUT /sim/engine '{"version":"4.3.10.4-1.el7"}' >/dev/null
truncate -s 32M "$S/web01-swap.img"; rnd "$S/web01-swap.img" $((28 * MiB)) $((128 * 1024))
E7=$(execute "$T")
st=$(wait_execution "$TOK" "$P" "$T" "$E7" 300)
sim_ctl PUT /sim/engine '{"version":"4.5.5-1.el8"}' >/dev/null
check "on a 4.3 engine an execution after disk sdc grew again completes (got $st)" test "$st" = COMPLETED
api "$TOK" GET "/v1/$P/transfers/$T?include_task_info=true" > "$TMP/t.json"
sdc2=$(jq -r '.transfer.info.web01.volumes_info[] | select(.disk_id == "sdc") | .ovirt_disk_id' "$TMP/t.json")
size2=$(state | jq -r --arg i "$sdc2" '.disks[] | select(.id == $i) | .provisioned_size')
check "  its replica was re-created (a new disk, $sdc2) at 32 MiB ($size2)" test "$sdc2" != "$sdc" -a "$size2" = $((32 * MiB))
check "  the old replica is gone" test -z "$(state | jq -r --arg i "$sdc" '.disks[] | select(.id == $i) | .id')"
check "  a warning says why (the engine's version, PUT /disks from 4.4)" bash -c "psql '$DB' -Atqc \"SELECT message FROM task_events v JOIN tasks t ON t.id = v.task_id JOIN executions e ON e.id = t.execution_id WHERE e.id = '$E7'\" | grep -q 'oVirt 4.3.10.4-1.el7) cannot grow a disk that is attached to no VM'"
check "  the replicas equal the sources" replicas_same

# --- 6: errors that name the problem ------------------------------------------------------------
BAD=$(endpoint olvm-badpw ovirt "{\"url\":\"$SIM_URL\",\"username\":\"admin@internal\",\"password\":\"wrong\",\"allow_untrusted\":true}")
validate "$BAD" > "$TMP/v.json"
check "a wrong password is refused, naming the user" grep -q "logging in as 'admin@internal'.*uthenticat" "$TMP/v.json"
check "the password is not in the answer" bash -c "! grep -q wrong '$TMP/v.json'"
UNTR=$(endpoint olvm-strict ovirt "{\"url\":\"$SIM_URL\",\"username\":\"admin@internal\",\"password\":\"admin\",\"allow_untrusted\":false}")
validate "$UNTR" > "$TMP/v.json"
check "an untrusted certificate is refused without allow_untrusted" grep -q "certificate .* is not trusted" "$TMP/v.json"
T2=$(transfer '{"default_cluster":"no-such-cluster"}')
E=$(execute "$T2"); st=$(wait_execution "$TOK" "$P" "$T2" "$E" 120)
check "an unknown cluster: ERROR" test "$st" = ERROR
check "... naming the cluster" grep -q "cluster 'no-such-cluster' (option default_cluster) does not exist" <(errors_of "$T2" "$E")
T3=$(transfer '{}' '{"default":"tiny"}')
E=$(execute "$T3"); st=$(wait_execution "$TOK" "$P" "$T3" "$E" 120)
check "a full storage domain: ERROR" test "$st" = ERROR
check "... naming the domain" grep -q "storage domain 'tiny' is full" <(errors_of "$T3" "$E")
check "nothing was made for them" test "$(disk_count)" = 3

grep -i 'Passw0rd\|"password"' "$TMP/w.log" "$TMP/c.log" > /dev/null && not_ok "secrets in the logs" || ok "no secrets in the logs"
kill -TERM "$W"; wait "$W"; rc=$?
check "the worker exits 0 on SIGTERM (got $rc)" test $rc -eq 0
finish
