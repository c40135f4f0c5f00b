#!/usr/bin/env bash
# test_coriolis_migrate.sh - a migration driven only by the stock Coriolis CLI
# (python-coriolisclient, unmodified; issue #21): OS_AUTH_URL points at
# Ekman's Keystone v3 facade, no session is injected, no curl on the way.
# On the stack's libvirtd, reached over the stack's loopback sshd as source
# and as destination, through a real worker VM:
#   endpoints: create (two libvirt, one to delete), list, show, update,
#     validate-connection, delete; instance list/show; network and storage
#     lists; destination and source options
#   providers: list, schema list (every kind of every libvirt schema)
#   region create/list/show; diagnostics get; minion pool create/list/show
#   transfer create (libvirt -> libvirt)/list/show/update; transfer execute,
#     execution list/show; a second execution canceled
#   schedule create/list/show/update/delete
#   deployment create, canceled at once, delete; deployment create (the
#     replica, skip OS morphing)/list/show: it completes, the domain runs,
#     its disk equals the source; transfer delete
# Each command's output is checked for the values it should show.
# Usage: test_coriolis_migrate.sh BUILD_DIR SOURCE_DIR STACK_DIR
set -u
. "$(dirname "$0")/../lib.sh"
BUILD=$1 SRC=$2 STACK=$3
eval "$("$SRC/deploy/stack.sh" env "$STACK")"
TMP=$(mktemp -d /var/tmp/ekman-comig.XXXXXX)
chmod 755 "$TMP"
PIDS=()
R=$(printf '%04x%04x' $RANDOM $RANDOM)
N=comig-$R # prefix of every libvirt object of this test
SRC_DOM=$N-src DST_POOL=$N-dst NET=$EKMAN_LIBVIRT_NETWORK
export LIBVIRT_DEFAULT_URI=qemu:///system
v() { virsh -q "$@" 2> /dev/null; }
. "$(dirname "$0")/../libvirt/lib_lv.sh"
cleanup() {
  for p in "${PIDS[@]}"; do pkill -KILL -P "$p" 2> /dev/null; kill -KILL "$p" 2> /dev/null; done
  wait 2> /dev/null
  virsh -q list --all --name 2> /dev/null | grep '^ekman-minion-' >> "$TMP/minions"
  lv_cleanup_objects
  rm -f /var/log/libvirt/qemu/"$N"-*-serial.log
  [ -n "${EK_KEEP_TMP:-}" ] && echo "# kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT
. "$(dirname "$0")/../conductor_lib.sh"
PORT=$((EKMAN_API_PORT + 57))
URL="https://127.0.0.1:$PORT"
DB="${EKMAN_PG_ADMIN_URL/\/postgres\?//ekman?}"
. "$(dirname "$0")/lib_co.sh"
co_setup

# --- libvirt: the destination pool with the worker image; the source domain ------------
lv_worker_pool "$DST_POOL" "$N-worker.qcow2"
MiB=1048576
head -c $((4 * MiB)) /dev/urandom > "$TMP/data.raw"
truncate -s 64M "$TMP/data.raw"
v vol-create-as "$EKMAN_POOL" "$N-vda.qcow2" 64M --format qcow2
VDA=$(virsh -q vol-path --pool "$EKMAN_POOL" "$N-vda.qcow2")
# qcow2 v3: libvirt's v2 cannot hold the dirty bitmaps of checkpoints
qemu-img convert -q -f raw -O qcow2 -o compat=1.1 "$TMP/data.raw" "$VDA"
MAC=52:54:00:$(printf '%02x:%02x:%02x' $((RANDOM % 256)) $((RANDOM % 256)) $((RANDOM % 256)))
cat > "$TMP/src.xml" << EOF
<domain type='qemu'><name>$SRC_DOM</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>
 <os><type arch='x86_64'>hvm</type><boot dev='hd'/></os>
 <devices>
  <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='$VDA'/><target dev='vda' bus='virtio'/></disk>
  <interface type='network'><mac address='$MAC'/><source network='$NET'/><model type='virtio'/></interface>
 </devices></domain>
EOF
v define "$TMP/src.xml" && v start "$SRC_DOM"
check "source domain $SRC_DOM runs" bash -c "virsh -q domstate '$SRC_DOM' | grep -q running"

# --- services, and the CLI's user -----------------------------------------------------
# Under ASan: libvirt 9.0 leaks the libssh2 session of its qemu+libssh2
# transport now and then when a connection closes (indirect leaks inside
# libssh2/libcrypto only; see test_libvirt_source.sh): not counted here
printf 'leak:libssh2_session_init_ex\nleak:libssh2.so\nleak:libcrypto.so\n' > "$TMP/lsan.supp"
export LSAN_OPTIONS=suppressions=$TMP/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}
lv_services "comig-$R" # a member user comig-$R in its own project: TOK, P
CO_USER=comig-$R CO_PASSWORD=Comig-$R-pass CO_PROJECT=comig-$R
# regions and diagnostics are an admin's (as Coriolis's policy has them)
create_user "coadm-$R" "coadm-$R" admin "Coadm-$R-pass"
AS_ADMIN="OS_USERNAME=coadm-$R OS_PASSWORD=Coadm-$R-pass OS_PROJECT_NAME=coadm-$R"

# --- endpoints ------------------------------------------------------------------------
CONN=$(jq -nc --arg k "$(base64 -w0 "$EKMAN_SSH_KEY")" --arg kh "$(cat "$EKMAN_SSH_KNOWN_HOSTS")" \
  --arg u "$EKMAN_SSH_USER" --argjson p "$EKMAN_SSH_PORT" \
  '{host: "127.0.0.1", port: $p, username: $u, private_key: $k, known_hosts: $kh}')
co ep_src endpoint create --name "src-$R" --provider libvirt --description "the source" --connection "$CONN" -f json
check "endpoint create (libvirt, validated): exit 0" is $RC 0 || show ep_src
SRC_EP=$(cj ep_src .id)
check "  shows its name, type and description" is "$(cj ep_src '.name + " " + .type + " " + .description')" "src-$R libvirt the source"
check "  its private key masked, not shown" bash -c "! grep -qF '$(base64 -w0 "$EKMAN_SSH_KEY" | cut -c1-40)' '$TMP/ep_src.out'"
co ep_dst endpoint create --name "dst-$R" --provider libvirt --connection "$CONN" -f json
DST_EP=$(cj ep_dst .id)
check "a second libvirt endpoint (the destination)" test "${#DST_EP}" = 36 -a "${#SRC_EP}" = 36
co ep_tmp endpoint create --name "tmp-$R" --provider libvirt --connection "$CONN" --skip-validation -f json
TMP_EP=$(cj ep_tmp .id)

co ep_list endpoint list -f json
check "endpoint list: exit 0" is $RC 0 || show ep_list
check "endpoint list: the three, by id, name and type" \
  is "$(cj ep_list "[.[] | select(.ID == \"$SRC_EP\" or .ID == \"$DST_EP\" or .ID == \"$TMP_EP\") | .Name + \"/\" + .Type] | sort | join(\" \")")" \
  "dst-$R/libvirt src-$R/libvirt tmp-$R/libvirt"
co ep_show endpoint show "$SRC_EP" -f json
check "endpoint show: its connection info, the key masked" \
  is "$(cj ep_show '.connection_info | fromjson? // . | .host + " " + (.port | tostring) + " " + .private_key')" \
  "127.0.0.1 $EKMAN_SSH_PORT ***"
co ep_upd endpoint update "$TMP_EP" --name "tmp2-$R" --description "renamed" -f json
check "endpoint update: the new name and description" is "$(cj ep_upd '.name + " " + .description')" "tmp2-$R renamed"
# the web UI's way: send back what show gave, the key masked: the stored key stays
co ep_upd2 endpoint update "$SRC_EP" --connection "$(jq -c .connection_info "$TMP/ep_show.out")" -f json
check "endpoint update --connection with private_key \"***\": exit 0" is $RC 0 || show ep_upd2
co ep_upd3 endpoint update "$SRC_EP" --connection "$(jq -c '.connection_info + {password: "***"}' "$TMP/ep_show.out")"
check "  a masked password where none is stored: refused, naming the field" \
  bash -c "[ $RC -ne 0 ] && grep -q 'connection_info.password is \"\*\*\*\"' '$TMP/ep_upd3.err'" || show ep_upd3
co ep_val endpoint validate connection "$SRC_EP"
# (connection info is sealed in the database: that the key is still the real
# one shows in the validation, and in the migration from this endpoint below)
check "endpoint validate connection (with the kept key): exit 0" is $RC 0 || show ep_val
co ep_del endpoint delete "$TMP_EP"
check "endpoint delete: exit 0" is $RC 0 || show ep_del
co ep_gone endpoint show "$TMP_EP"
check "  then endpoint show fails, saying not found" bash -c "[ $RC -ne 0 ] && grep -qi 'not found' '$TMP/ep_gone.err'" || show ep_gone

co inst_list endpoint instance list "$SRC_EP" -f json
check "endpoint instance list: the source domain" \
  is "$(cj inst_list ".[] | select(.Name == \"$SRC_DOM\") | .Name")" "$SRC_DOM" || show inst_list
co inst_show endpoint instance show "$SRC_EP" "$SRC_DOM" -f json
check "endpoint instance show: 1 vCPU, 64 MB, linux, BIOS" \
  is "$(cj inst_show '(.Cores | tostring) + " " + (."Memory MB" | tostring) + " " + ."OS Type" + " " + ."Firmware Type"')" "1 64 linux BIOS" || show inst_show 30
check "  its disk vda and its NIC with the source MAC" \
  bash -c "grep -q vda '$TMP/inst_show.out' && grep -q '$MAC' '$TMP/inst_show.out'"
co nets endpoint network list "$DST_EP" -f json
check "endpoint network list: the stack's network" is "$(cj nets "[.[] | select(.Name == \"$NET\")] | length")" 1 || show nets
co stor endpoint storage list "$DST_EP" -f json
check "endpoint storage list: the destination pool" is "$(cj stor "[.[] | select(.Name == \"$DST_POOL\")] | length")" 1 || show stor
co dopts endpoint destination options list "$DST_EP" -f json
check "endpoint destination options list: exit 0, with the storage pools" \
  bash -c "[ $RC = 0 ] && grep -q '$DST_POOL' '$TMP/dopts.out'" || show dopts
co sopts endpoint source options list "$SRC_EP" -f json
check "endpoint source options list: exit 0" is $RC 0 || show sopts

# --- providers, regions, diagnostics, minion pools ------------------------------------
co prov provider list -f json
check "provider list: libvirt" bash -c "jq -r '.[][]' '$TMP/prov.out' | grep -qx libvirt" || show prov
for kind in connection destination source; do
  co "schema_$kind" provider schema list libvirt "$kind" -f json
done
# sk KIND: the schema type and the property names of the one schema listed
sk() { cj "schema_$1" '.[0]["Schema Type"] + ": " + (.[0].Schema | fromjson | .properties | keys | join(","))'; }
check "provider schema list libvirt connection: connection_info_schema, with private_key and known_hosts" \
  bash -c '[[ $1 == connection_info_schema:* && $1 == *private_key* && $1 == *known_hosts* ]]' _ "$(sk connection)" || show schema_connection
check "  destination: destination_environment_schema, with migr_image_map" \
  bash -c '[[ $1 == destination_environment_schema:* && $1 == *migr_image_map* ]]' _ "$(sk destination)" || show schema_destination
check "  source: source_environment_schema, changed_block_tracking" \
  is "$(sk source)" "source_environment_schema: changed_block_tracking" || show schema_source
for kind in source_minion_pool destination_minion_pool; do
  co "schema_$kind" provider schema list libvirt "$kind" -f json
  check "  $kind: refused, saying Ekman's providers have no minion pool operations" \
    bash -c "[ $RC -ne 0 ] && grep -q 'no minion pool operations' '$TMP/schema_$kind.err'"
done

CO_ENV=$AS_ADMIN co reg_c region create "reg-$R" --description "the lab" -f json
REG=$(cj reg_c .ID)
check "region create: exit 0" test $RC = 0 -a "${#REG}" = 36 || show reg_c
CO_ENV=$AS_ADMIN co reg_l region list -f json
check "region list: the region" is "$(cj reg_l ".[] | select(.ID == \"$REG\") | .Name")" "reg-$R" || show reg_l
CO_ENV=$AS_ADMIN co reg_s region show "$REG" -f json
check "region show: name and description" is "$(cj reg_s '.Name + " " + .Description')" "reg-$R the lab" || show reg_s

CO_ENV=$AS_ADMIN co diag diagnostics get -f json
check "diagnostics get: exit 0" is $RC 0 || show diag
check "  the conductor's host name and its packages" \
  bash -c "jq -e '[.[] | select(.Hostname == \"$(hostname)\")] | length > 0' '$TMP/diag.out' > /dev/null" || show diag 30

# (the client refuses an empty object: the pool's worker VMs' environment)
POOL_ENV=$(jq -nc --arg pool "$DST_POOL" '{default_storage_pool: $pool, domain_type: "qemu"}')
co pool_c minion pool create "pool-$R" --os-type linux --platform destination --endpoint-id "$DST_EP" \
  --environment-options "$POOL_ENV" --skip-allocation -f json
POOL=$(cj pool_c .ID)
check "minion pool create (skip allocation): exit 0" test $RC = 0 -a "${#POOL}" = 36 || show pool_c
co pool_l minion pool list -f json
check "minion pool list: the pool" is "$(cj pool_l ".[] | select(.ID == \"$POOL\") | .\"Pool Name\"")" "pool-$R" || show pool_l
co pool_s minion pool show "$POOL" -f json
check "minion pool show: endpoint, platform, os type" \
  is "$(cj pool_s '.Endpoint + " " + ."Pool Platform" + " " + ."OS Type"')" "$DST_EP destination linux" || show pool_s 30
co pool_d minion pool delete "$POOL"

# --- a transfer -----------------------------------------------------------------------
DENV=$(jq -nc --arg pool "$DST_POOL" --arg img "$DST_POOL/$N-worker.qcow2" --arg net "$NET" '{
  default_storage_pool: $pool, migr_image_map: {linux: $img}, migr_worker_network: $net,
  migr_worker_memory: 256, migr_worker_vcpus: 1, migr_worker_boot_timeout: 240, domain_type: "qemu",
  cpu_features: ["x2apic"]}')
SENV=${CO_SOURCE_ENV:-'{"changed_block_tracking": true}'}
co tr_c transfer create --origin-endpoint "$SRC_EP" --destination-endpoint "$DST_EP" --instance "$SRC_DOM" \
  --destination-environment "$DENV" --source-environment "$SENV" --network-map "{\"$NET\": \"$NET\"}" \
  --notes "made by coriolis" --skip-os-morphing -f json
T=$(cj tr_c .id)
check "transfer create (libvirt -> libvirt): exit 0" test $RC = 0 -a "${#T}" = 36 || show tr_c 30
check "  instances, notes, endpoints, scenario" \
  is "$(cj tr_c '.instances + " " + .notes + " " + .origin_endpoint_id + " " + .destination_endpoint_id + " " + .scenario_type')" \
  "$SRC_DOM made by coriolis $SRC_EP $DST_EP replica"
co tr_l transfer list -f json
check "transfer list: the transfer" is "$(cj tr_l ".[] | select(.ID == \"$T\") | .Instances + \" \" + .Notes")" "$SRC_DOM made by coriolis" || show tr_l
co tr_u transfer update "$T" --notes "renamed by coriolis" -f json
# Coriolis answers an update with the execution that applies it
check "transfer update: exit 0, the update's execution" \
  bash -c "[ $RC = 0 ] && [ \"\$(jq -r .transfer_id '$TMP/tr_u.out')\" = '$T' ]" || show tr_u 30
co tr_s transfer show "$T" -f json
check "transfer show: the new notes, the environments" \
  bash -c "[ \"\$(jq -r .notes '$TMP/tr_s.out')\" = 'renamed by coriolis' ] && grep -q migr_image_map '$TMP/tr_s.out'" || show tr_s 40

# executions and deployments: the CLI polls like a user would
# wait_final SECONDS COMMAND...: runs COMMAND (which prints a status) every 2 s
# until the status is final; prints it
wait_final() {
  local end=$((SECONDS + $1)) st=""
  shift
  while [ $SECONDS -lt $end ]; do
    st=$("$@")
    case $st in COMPLETED | ERROR | CANCELED | DEADLOCKED) break ;; esac
    sleep 2
  done
  echo "$st"
}
exec_status() { co es transfer execution show "$T" "$1" -f json; cj es .status; }
wait_exec() { if [ -n "$1" ]; then wait_final "$2" exec_status "$1"; else echo "(no execution)"; fi; }
UE=$(cj tr_u '.id // empty')
[ -z "$UE" ] || check "  the update execution completes" is "$(wait_exec "$UE" 300)" COMPLETED
co ex_c transfer execute "$T" -f json
E1=$(cj ex_c .id)
check "transfer execute: an execution" test $RC = 0 -a "${#E1}" = 36 || show ex_c
st=$(wait_exec "$E1" 900)
check "the execution completes ($st)" is "$st" COMPLETED || show es 60
co ex_s transfer execution show "$T" "$E1" -f json
check "transfer execution show: the transfer, the instance, its tasks" \
  bash -c "[ \"\$(jq -r '.transfer_id + \" \" + .instances' '$TMP/ex_s.out')\" = '$T $SRC_DOM' ] && grep -q REPLICATE_DISKS '$TMP/ex_s.out'" || show ex_s 40
REPLICA=$(virsh -q vol-path --pool "$DST_POOL" "ekman-$SRC_DOM-vda.img" 2> /dev/null)
qemu-img convert -U -q -f qcow2 -O raw "$VDA" "$TMP/snap.raw"
check "the replica equals the source disk" qemu-img compare -q -U -f raw -F raw "$REPLICA" "$TMP/snap.raw"

# a second execution, canceled
co ex_c2 transfer execute "$T" -f json
E2=$(cj ex_c2 .id)
co ex_x transfer execution cancel "$T" "$E2"
check "transfer execution cancel: exit 0" is $RC 0 || show ex_x
st=$(wait_exec "$E2" 600)
check "  the execution ends CANCELED or, if it had finished, COMPLETED ($st)" bash -c "[ '$st' = CANCELED ] || [ '$st' = COMPLETED ]"
co ex_l transfer execution list "$T" -f json
# (the API answers newest first; the CLI sorts its table by creation itself)
check "transfer execution list: the update's and the two" \
  is "$(cj ex_l '[.[].ID] | join(" ")')" "${UE:+$UE }$E1 $E2" || show ex_l

# schedules
co sc_c transfer schedule create "$T" --minute 30 --hour 2 --disabled -f json
SC=$(cj sc_c .id)
check "transfer schedule create: exit 0" test $RC = 0 -a "${#SC}" = 36 || show sc_c 30
co sc_l transfer schedule list "$T" -f json
check "transfer schedule list: the schedule" is "$(cj sc_l "[.[] | select(.ID == \"$SC\")] | length")" 1 || show sc_l
co sc_u transfer schedule update "$T" "$SC" --enabled -f json
check "transfer schedule update --enabled: exit 0" is $RC 0 || show sc_u 30
co sc_s transfer schedule show "$T" "$SC" -f json
check "transfer schedule show: enabled, minute 30, hour 2" \
  bash -c "jq -e '(.enabled == true or .enabled == \"True\") and (.schedule | tostring | test(\"30\")) and (.schedule | tostring | test(\"2\"))' '$TMP/sc_s.out' > /dev/null" || show sc_s 30
co sc_d transfer schedule delete "$T" "$SC"
co sc_l2 transfer schedule list "$T" -f json
check "transfer schedule delete: gone from the list" is "$(cj sc_l2 "[.[] | select(.ID == \"$SC\")] | length")" 0

# --- deploy -----------------------------------------------------------------------------
dep_status() { co ds deployment show "$1" -f json; cj ds .status; }
wait_dep() { if [ -n "$1" ]; then wait_final "$2" dep_status "$1"; else echo "(no deployment)"; fi; }
# a deployment canceled at once (it clones the disks, defines and starts the
# domain: it is still running when the cancel comes), then deleted
co dp_c0 deployment create "$T" --skip-os-morphing -f json
D0=$(cj dp_c0 .id)
co dp_x deployment cancel "$D0"
check "deployment cancel: exit 0" is $RC 0 || show dp_x
st=$(wait_dep "$D0" 600)
check "  it ends CANCELED ($st)" is "$st" CANCELED
check "  no domain is left of it" bash -c "! virsh -q dominfo '$SRC_DOM-migrated' > /dev/null 2>&1"
co dp_d deployment delete "$D0"
check "deployment delete: exit 0" is $RC 0 || show dp_d
co dp_l0 deployment list -f json
check "  gone from the list" is "$(cj dp_l0 "[.[] | select(.ID == \"$D0\")] | length")" 0

co dp_c deployment create "$T" --skip-os-morphing -f json
D=$(cj dp_c .id)
check "deployment create: exit 0" test $RC = 0 -a "${#D}" = 36 || show dp_c 30
check "  of the transfer, its instance, scenario replica" \
  is "$(cj dp_c '.transfer_id + " " + .instances + " " + .transfer_scenario_type')" "$T $SRC_DOM replica" || show dp_c 40
st=$(wait_dep "$D" 900)
check "the deployment completes ($st)" is "$st" COMPLETED || show ds 60
DOM=$SRC_DOM-migrated # the same host as the source: the source keeps its name
check "the deployed domain $DOM runs" bash -c "virsh -q domstate '$DOM' | grep -q running"
DISK=$(virsh -q domblklist "$DOM" | awk '$1 == "vda" {print $2}')
check "its disk equals the source disk" qemu-img compare -q -U -f raw -F raw "$DISK" "$TMP/snap.raw"
co dp_l deployment list -f json
check "deployment list: the deployment, completed" \
  is "$(cj dp_l ".[] | select(.ID == \"$D\") | .Status")" COMPLETED || show dp_l
co dp_s deployment show "$D" -f json
check "deployment show: its tasks, the transfer" \
  bash -c "[ \"\$(jq -r .transfer_id '$TMP/dp_s.out')\" = '$T' ] && grep -q DEPLOY_INSTANCE_RESOURCES '$TMP/dp_s.out'" || show dp_s 40

co tr_d transfer delete "$T"
check "transfer delete: exit 0" is $RC 0 || show tr_d
co tr_l2 transfer list -f json
check "  gone from the list" is "$(cj tr_l2 "[.[] | select(.ID == \"$T\")] | length")" 0

virsh -q list --all --name | grep '^ekman-minion-' >> "$TMP/minions"
check "no worker VM is left" test ! -s "$TMP/minions"
# shellcheck disable=SC2154 # set by lv_services
kill -TERM "${PIDS[0]}"
wait "${PIDS[0]}"
rc=$?
check "the conductor exits 0 on SIGTERM (got $rc)" test $rc -eq 0
check "no sanitizer report in the services' logs" bash -c "! grep -q 'Sanitizer\|runtime error' '$TMP'/{c,s,w}.log"
check "no password in the services' logs" bash -c "! grep -qF 'Comig-$R-pass' '$TMP'/{c,s,w}.log"
finish
