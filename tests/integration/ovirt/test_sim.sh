#!/usr/bin/env bash
# test_sim.sh - the simulated oVirt engine (tests/ovirt-sim) behaves like the
# real REST API v4: SSO tokens and their expiry, HTTPS with its own CA, string
# scalars and wrapped collections, 201/202 with locked -> ok, faults,
# search=/follow=, free space that runs out, delete protection, snapshots that
# restore content (and VMs cloned from them), image transfers with imageio,
# failure injection, and the guest emulation end to end: a worker-template VM
# runs the real ekman-writer and ekman-transfer copies a disk into the
# simulator's disk file through it, by serial.
# Usage: test_sim.sh BUILD_DIR SOURCE_DIR   (EK_KEEP=1 keeps the scratch dir)
set -u
BUILD=$1 SRC=$2
. "$SRC/tests/integration/lib.sh"
. "$SRC/tests/ovirt-sim/lib_sim.sh"
T=$(mktemp -d /tmp/ekman-ovirt-sim.XXXXXX)
EKT=$BUILD/worker/ekman-transfer
EKW=$BUILD/worker/ekman-writer
for b in "$EKT" "$EKW"; do [ -x "$b" ] || { echo "missing $b: build first"; exit 1; }; done
cleanup() { sim_stop; [ -n "${EK_KEEP:-}" ] || rm -rf "$T"; }
trap cleanup EXIT

SIM_USER=admin@internal SIM_PASSWORD='s3cret pw'
sim_start "$T" --config "$SRC/tests/ovirt-sim/config.json" --delay 1 --token-ttl 6 \
  --writer "$EKW" --guest-final-stage 3 || { cat "$T/sim.log"; exit 1; }
ENGINE=https://localhost:$SIM_PORT
check "the simulator writes its CA" test -s "$SIM_CA"

# ---- HTTPS and SSO --------------------------------------------------------
tok_call() { # tok_call CURL_ARGS...: status and body of the token endpoint
  curl -s --cacert "$SIM_CA" -w '\n%{http_code}' "$@" "$ENGINE/ovirt-engine/sso/oauth/token"
}
out=$(tok_call -H 'Accept: application/json' --data-urlencode grant_type=password \
  --data-urlencode scope=ovirt-app-api --data-urlencode username=admin@internal \
  --data-urlencode password=wrong)
check "a wrong password answers 400" test "${out##*$'\n'}" = 400
check "... with error_code access_denied" \
  test "$(jq -r .error_code <<<"${out%$'\n'*}")" = access_denied
check "... and an error naming the user" grep -q "admin@internal" <<<"${out%$'\n'*}"
out=$(tok_call -H 'Accept: application/json' -d 'grant_type=password&username=admin%40internal&password=s3cret+pw')
check "a token request without scope is refused" test "${out##*$'\n'}" = 400
out=$(tok_call -d 'grant_type=password&scope=ovirt-app-api&username=admin%40internal&password=s3cret+pw')
check "a token request without Accept: application/json is refused" test "${out##*$'\n'}" = 400
out=$(tok_call -H 'Accept: application/json' -d 'grant_type=password&scope=ovirt-app-api&username=admin&password=s3cret+pw')
check "a user without @profile is refused" grep -q "No valid profile" <<<"${out%$'\n'*}"
out=$(tok_call -H 'Accept: application/json' -d 'grant_type=password&scope=ovirt-app-api&username=admin%40internal&password=s3cret+pw')
body=${out%$'\n'*}
check "good credentials give a bearer token" test "$(jq -r .token_type <<<"$body")" = bearer
check "... whose exp is a string of epoch ms" \
  test "$(jq -r '.exp | type' <<<"$body")" = string -a "$(jq -r .exp <<<"$body")" -gt 1700000000000
TOKEN=$(jq -r .access_token <<<"$body")
TOKEN_AT=$(date +%s%N)
status() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
check "the engine's certificate is refused without its CA" \
  bash -c "! curl -s -o /dev/null '$ENGINE/ovirt-engine/api'"
check "... and accepted with it" test "$(status --cacert "$SIM_CA" -H 'Accept: application/json' \
  -H "Authorization: Bearer $TOKEN" "$ENGINE/ovirt-engine/api")" = 200
check "... and with verification off (allow_untrusted)" test "$(status -k \
  -H 'Accept: application/json' -H "Authorization: Bearer $TOKEN" "$ENGINE/ovirt-engine/api")" = 200
check "plain HTTP gets no API" bash -c "! curl -s -m 5 -o /dev/null -f http://localhost:$SIM_PORT/ovirt-engine/api"
check "the CA is served by pki-resource" cmp -s "$SIM_CA" <(curl -s --cacert "$SIM_CA" \
  "$ENGINE/ovirt-engine/services/pki-resource?resource=ca-certificate&format=X509-PEM-CA")
check "the API without a token answers 401" test "$(status --cacert "$SIM_CA" \
  -H 'Accept: application/json' "$ENGINE/ovirt-engine/api/vms")" = 401
check "an unknown token answers 401" test "$(status --cacert "$SIM_CA" \
  -H 'Accept: application/json' -H 'Authorization: Bearer nope' "$ENGINE/ovirt-engine/api/vms")" = 401
check "Basic auth (deprecated) still works" test "$(status --cacert "$SIM_CA" \
  -H 'Accept: application/json' -u 'admin@internal:s3cret pw' "$ENGINE/ovirt-engine/api")" = 200
left=$((TOKEN_AT + 6300000000 - $(date +%s%N)))
[ "$left" -gt 0 ] && sleep "$((left / 1000000000)).$(printf %09d $((left % 1000000000)))"
check "the token expires after --token-ttl (401)" test "$(status --cacert "$SIM_CA" \
  -H 'Accept: application/json' -H "Authorization: Bearer $TOKEN" "$ENGINE/ovirt-engine/api")" = 401
SIM_TOKEN=$(sim_token)
check "a new token works" test "$(status --cacert "$SIM_CA" -H 'Accept: application/json' \
  -H "Authorization: Bearer $SIM_TOKEN" "$ENGINE/ovirt-engine/api")" = 200
check "/sim/tokens/expire expires every token" \
  test "$(sim_ctl POST /sim/tokens/expire | jq -r .expired)" -ge 1
check "... so the next call is 401" test "$(status --cacert "$SIM_CA" -H 'Accept: application/json' \
  -H "Authorization: Bearer $SIM_TOKEN" "$ENGINE/ovirt-engine/api")" = 401
SIM_TOKEN=

# ---- JSON conventions -----------------------------------------------------
root=$(sim_api GET "")
check "GET /api names the product and the Blank template" \
  test "$(jq -r '.product_info.name + " " + .special_objects.blank_template.id' <<<"$root")" \
  = "oVirt Engine 00000000-0000-0000-0000-000000000000"
check "dates are epoch-ms numbers" test "$(jq -r '.time | type' <<<"$root")" = number
sds=$(sim_api GET /storagedomains)
check "collections are wrapped in their singular name" \
  test "$(jq -r '.storage_domain | length' <<<"$sds")" = 6
check "integers are strings" test "$(jq -r '.storage_domain[0].available | type' <<<"$sds")" = string
check "booleans are strings" \
  test "$(jq -r '[.storage_domain[].master] | unique | join(",")' <<<"$sds")" = "false,true"
check "nested lists are wrapped too" \
  test "$(jq -r '.storage_domain[0].data_centers.data_center[0].id | length' <<<"$sds")" = 36
check "the top-level storage domain has no status (attached to a DC)" \
  test "$(jq -r '.storage_domain[0] | has("status")' <<<"$sds")" = false
DC=$(sim_api GET "/datacenters?search=name%3DDefault" | jq -r '.data_center[0].id')
check "the data-center view has the status" test "$(sim_api GET "/datacenters/$DC/storagedomains" \
  | jq -r '[.storage_domain[] | select(.name=="maint") | .status][0]')" = maintenance
check "an empty collection is {}" test "$(sim_api GET /vms)" = "{}"
sim_api GET /vms/3e1d9d8e-0000-4000-8000-000000000000 >"$T/body"
check "an unknown id answers 404" test "$SIM_STATUS" = 404
check "... with an empty body" test ! -s "$T/body" -o "$(tr -d '\n' <"$T/body")" = ""
sim_api GET /nonsense >/dev/null
check "an unknown collection answers 404" test "$SIM_STATUS" = 404
sim_call POST /disks '{"name":'
out=$SIM_BODY
check "malformed JSON answers 400" test "$SIM_STATUS" = 400
check "... with a reason" test "$(jq -r .reason <<<"$out")" = "Request syntactically incorrect."
check "a call without Accept: application/json is refused (the engine would answer XML)" \
  test "$(status --cacert "$SIM_CA" -H "Authorization: Bearer $SIM_TOKEN" "$SIM_URL/vms")" = 406

# ---- search ---------------------------------------------------------------
check "search name=Blank finds the Blank template" test "$(sim_api GET \
  '/templates?search=name%3DBlank' | jq -r '.template[0].id')" = 00000000-0000-0000-0000-000000000000
check "search with a wildcard" test "$(sim_api GET '/templates?search=name%3Dekman-worker*' \
  | jq -r '.template | length')" = 3
check "a name search answers every version of a template" test "$(sim_api GET \
  '/templates?search=name%3Dekman-worker' | jq -r '[.template[] | .version.version_number] | sort | join(",")')" = 1,2
check "... a later version names its base" test "$(sim_api GET '/templates?search=name%3Dekman-worker' \
  | jq -r '[.template[] | select(.version.version_number == "2" or .version.version_number == 2)][0].version.base_template.id | length')" = 36
check "a VM network says usages vm" test "$(sim_api GET '/networks?search=name%3Dvmnet' | jq -r '.network[0].usages.usage | join(",")')" = vm
check "a migration network is no VM network, and has no vNIC profile" test "$(sim_api GET \
  '/networks?search=name%3Dmigration-net' | jq -r '.network[0].usages.usage | join(",")')/$(sim_api GET /vnicprofiles | jq -r \
  '[.vnic_profile[] | select(.name == "migration-net")] | length')" = migration/0
check "search of a name that is not there gives {}" \
  test "$(sim_api GET '/clusters?search=name%3Dnope')" = "{}"
check "search is case-sensitive by default" test "$(sim_api GET '/clusters?search=name%3Ddefault')" = "{}"
check "... unless case_sensitive=false" test "$(sim_api GET \
  '/clusters?search=name%3Ddefault&case_sensitive=false' | jq -r '.cluster[0].name')" = Default
sim_call GET '/vms?search=colour%3Dblue'
out=$SIM_BODY
check "search on an unknown field answers 400" test "$SIM_STATUS" = 400
SD1=$(sim_api GET '/storagedomains?search=name%3Ddata1' | jq -r '.storage_domain[0].id')
TINY=$(sim_api GET '/storagedomains?search=name%3Dtiny' | jq -r '.storage_domain[0].id')
PROF=$(sim_api GET /vnicprofiles | jq -r '.vnic_profile[] | select(.name=="vmnet") | .id')
check "vNIC profiles name their network" test "$(sim_api GET "/vnicprofiles/$PROF?follow=network" \
  | jq -r .network.name)" = vmnet

# ---- disks: 202, locked -> ok, free space ----------------------------------
disk_body() { # NAME SIZE SD [FORMAT] [SPARSE]
  printf '{"name":"%s","provisioned_size":"%s","format":"%s","sparse":"%s","storage_domains":{"storage_domain":[{"id":"%s"}]}}' \
    "$1" "$2" "${4:-raw}" "${5:-true}" "$3"
}
sim_call POST /disks "$(disk_body 'web01-/dev/vda' 4194304 "$SD1")"
check "a disk alias with '/' answers 400 (letters, digits, . _ - only)" test "$SIM_STATUS" = 400
check "... saying which characters" grep -q 'alphanumeric characters' <<<"$SIM_BODY"
sim_call POST /disks "$(disk_body d1 4194304 "$SD1")" -i
out=$SIM_BODY
check "creating a disk answers 202" test "$SIM_STATUS" = 202
D1=$(sed -n '/^{/,$p' <<<"$out" | jq -r .id)
check "... with the disk locked" test "$(sed -n '/^{/,$p' <<<"$out" | jq -r .status)" = locked
check "... and a Location" grep -qi "^Location: .*/ovirt-engine/api/disks/$D1" <<<"$out"
check "the disk turns ok" sim_wait_status 10 "/disks/$D1" .status ok
D1FILE=$(sim_ctl GET /sim/state | jq -r --arg d "$D1" '.disks[] | select(.id==$d) | .file')
check "the disk is a sparse file of provisioned_size" \
  test "$(stat -c %s "$D1FILE")" = 4194304 -a "$(stat -c %b "$D1FILE")" = 0
sim_call POST /disks '{"name":"x","storage_domains":{"storage_domain":[{"name":"data1"}]}}'
out=$SIM_BODY
check "a disk without size and format answers 400 Incomplete parameters" \
  test "$SIM_STATUS" = 400 -a "$(jq -r .reason <<<"$out")" = "Incomplete parameters"
check "... naming the fields" grep -q "provisionedSize, format" <<<"$out"
sim_call POST /disks "$(disk_body d2 1024 3e1d9d8e-0000-4000-8000-000000000000)"
out=$SIM_BODY
check "an unknown storage domain answers 404 with a detail" \
  test "$SIM_STATUS" = 404 -a -n "$(jq -r .detail <<<"$out")"
avail0=$(sim_api GET "/storagedomains/$TINY" | jq -r .available)
sim_call POST /disks "$(disk_body big 33554432 "$TINY")"
out=$SIM_BODY
check "a disk larger than the free space answers 409" test "$SIM_STATUS" = 409
check "... Low disk space on Storage Domain tiny" \
  grep -q "Low disk space on Storage Domain tiny" <<<"$(jq -r .detail <<<"$out")"
sim_api POST /disks "$(disk_body fits 12582912 "$TINY")" >/dev/null
check "a disk that fits is accepted" test "$SIM_STATUS" = 202
check "... and takes its space" test "$(sim_api GET "/storagedomains/$TINY" | jq -r .available)" \
  = $((avail0 - 12582912))
sim_api POST /disks "$(disk_body fits2 8388608 "$TINY")" >/dev/null
check "... so the next one no longer fits" test "$SIM_STATUS" = 409
ISCSI=$(sim_api GET '/storagedomains?search=name%3Discsi1' | jq -r '.storage_domain[0].id')
MAINT=$(sim_api GET '/storagedomains?search=name%3Dmaint' | jq -r '.storage_domain[0].id')
sim_call POST /disks "$(disk_body blk 1048576 "$ISCSI" raw true)"
check "raw sparse on block storage answers 409" test "$SIM_STATUS" = 409
sim_call POST /disks "$(disk_body m 1048576 "$MAINT")"
out=$SIM_BODY
check "a disk on a domain in maintenance answers 409" \
  test "$SIM_STATUS" = 409 -a -n "$(grep -o Maintenance <<<"$out")"

# ---- VMs ------------------------------------------------------------------
vm_body() { # NAME [TEMPLATE] [EXTRA JSON]
  jq -nc --arg n "$1" --arg t "${2:-Blank}" --argjson x "${3:-{\}}" \
    '{name:$n, cluster:{name:"Default"}, template:{name:$t}, memory:"268435456",
      memory_policy:{guaranteed:"268435456", max:"536870912"},
      cpu:{topology:{sockets:"1",cores:"2",threads:"1"}}, os:{type:"other_linux"},
      type:"server"} + $x'
}
# the engine's x86 CPU limits: 16 sockets, the APIC id bound (VmCpuCountHelper)
sim_call POST /vms "$(vm_body cpus17 Blank '{"cpu":{"topology":{"sockets":"17","cores":"1","threads":"1"}}}')"
check "17 sockets answer 409 (MaxNumOfVmSockets 16)" test "$SIM_STATUS" = 409
check "... saying so" grep -q "Max number of sockets" <<<"$SIM_BODY"
sim_call POST /vms "$(vm_body cpus17 Blank '{"cpu":{"topology":{"sockets":"1","cores":"17","threads":"1"}}}')"
check "17 vCPUs as 1 socket x 17 cores are accepted" test "$SIM_STATUS" = 201
sim_api DELETE "/vms/$(jq -r .id <<<"$SIM_BODY")" >/dev/null
sim_call POST /vms "$(vm_body plain)"
out=$SIM_BODY
check "a VM from the Blank template answers 201" test "$SIM_STATUS" = 201
check "... down at once" test "$(jq -r .status <<<"$out")" = down
PLAIN=$(jq -r .id <<<"$out")
check "... with the CPUs and memory asked for (as strings)" \
  test "$(jq -r '.cpu.topology.cores + "/" + .memory' <<<"$out")" = "2/268435456"
sim_api POST /vms "$(vm_body plain)" >"$T/body"
check "a second VM with the same name answers 409" test "$SIM_STATUS" = 409
check "... name already in use" grep -q "already in use" "$T/body"
sim_api POST /vms "$(vm_body 'bad name!')" >/dev/null
check "a VM name with special characters answers 409" test "$SIM_STATUS" = 409
sim_call POST /vms "$(vm_body nocluster Blank '{"cluster":{"name":"nope"}}')"
out=$SIM_BODY
check "an unknown cluster answers 404 naming it" \
  test "$SIM_STATUS" = 404 -a -n "$(grep -o 'name=nope' <<<"$out")"
sim_api POST /vms '{"name":"x"}' >"$T/body"
check "a VM without cluster answers 400" test "$SIM_STATUS" = 400
sim_api POST /vms "$(vm_body mem Blank '{"memory_policy":{"guaranteed":"536870912"}}')" >"$T/body"
check "guaranteed memory above memory answers 409" test "$SIM_STATUS" = 409
sim_api POST /vms "$(vm_body osx Blank '{"os":{"type":"beos"}}')" >/dev/null
check "an unknown os.type answers 400" test "$SIM_STATUS" = 400
sim_ctl POST /sim/timers '{"paused":true}' >/dev/null
sim_call POST /vms "$(vm_body fromtpl ekman-worker)"
out=$SIM_BODY
check "a VM from a template with disks answers 202" test "$SIM_STATUS" = 202
check "... image_locked" test "$(jq -r .status <<<"$out")" = image_locked
FROMTPL=$(jq -r .id <<<"$out")
sim_api POST "/vms/$FROMTPL/start" '{}' >"$T/body"
check "starting an image_locked VM answers 409" test "$SIM_STATUS" = 409
sim_api DELETE "/vms/$FROMTPL" >/dev/null
check "so does deleting it" test "$SIM_STATUS" = 409
sim_ctl POST /sim/timers '{"paused":false}' >/dev/null
check "... which becomes down" sim_wait_status 10 "/vms/$FROMTPL" .status down
check "it has its own copy of the template's disk and NIC" test "$(sim_api GET \
  "/vms/$FROMTPL?follow=disk_attachments.disk,nics" | jq -r \
  '[.disk_attachments.disk_attachment[0].disk.name, .nics.nic[0].name] | join(",")')" \
  = "ekman-worker-root,nic1"
sim_call POST /vms "$(vm_body blocking ekman-worker)" -H 'Expect: 201-created'
check "Expect: 201-created blocks until the VM is down" \
  test "$(jq -r .status <<<"$SIM_BODY")/$SIM_STATUS" = down/201

# delete protection and pools
sim_call POST /vms "$(vm_body prot Blank '{"delete_protected":"true","vm_pool":{"name":"pool1"}}')"
out=$SIM_BODY
PROT=$(jq -r .id <<<"$out")
check "delete_protected is kept, vm_pool is not read on input (as the engine)" \
  test "$(jq -r '.delete_protected + "/" + (has("vm_pool") | tostring)' <<<"$out")" = true/false
sim_call DELETE "/vms/$PROT"
out=$SIM_BODY
check "deleting a protected VM answers 409" test "$SIM_STATUS" = 409
check "... Delete protection is enabled" grep -q "Delete protection is enabled" <<<"$out"
sim_api PUT "/vms/$PROT" '{"delete_protected":"false"}' >/dev/null
sim_api DELETE "/vms/$PROT" >"$T/body"
check "once unprotected it can be deleted (200, empty body)" \
  test "$SIM_STATUS" = 200 -a ! -s "$T/body" -o "$(tr -d '\n' <"$T/body")" = ""
sim_api GET "/vms/$PROT" >/dev/null
check "... and is gone" test "$SIM_STATUS" = 404

# search on VMs
check "search name=X and cluster=Y finds the VM" test "$(sim_api GET \
  '/vms?search=name%3Dplain%20and%20cluster%3DDefault' | jq -r '.vm[0].id')" = "$PLAIN"
check "... and not in another cluster" \
  test "$(sim_api GET '/vms?search=name%3Dplain%20and%20cluster%3Dminions')" = "{}"
check "max= limits a list" test "$(sim_api GET '/vms?max=1' | jq -r '.vm | length')" = 1

# NICs
sim_call POST "/vms/$PLAIN/nics" "{\"name\":\"nic1\",\"interface\":\"virtio\",\"vnic_profile\":{\"id\":\"$PROF\"}}"
out=$SIM_BODY
check "adding a NIC answers 201 with a MAC" \
  test "$SIM_STATUS" = 201 -a "$(jq -r '.mac.address | length' <<<"$out")" = 17
check "... plugged and linked as strings" test "$(jq -r '.plugged + .linked' <<<"$out")" = truetrue
sim_api POST "/vms/$PLAIN/nics" '{"name":"nic1"}' >/dev/null
check "a second NIC of the same name answers 409" test "$SIM_STATUS" = 409
OTHERPROF=$(sim_api GET /vnicprofiles | jq -r '.vnic_profile[] | select(.name=="net2") | .id')
sim_api POST "/vms/$PLAIN/nics" "{\"name\":\"nic2\",\"vnic_profile\":{\"id\":\"$OTHERPROF\"}}" >/dev/null
check "a profile of a network not in the VM's cluster answers 409" test "$SIM_STATUS" = 409

# ---- disk attachments and snapshots -----------------------------------------
sim_ctl POST /sim/timers '{"paused":true}' >/dev/null
sim_api POST /disks "$(disk_body d3 2097152 "$SD1" cow)" >"$T/body"
D3=$(jq -r .id "$T/body")
att() { printf '{"disk":{"id":"%s"},"interface":"%s","bootable":"%s","active":"true"}' "$1" "$2" "${3:-false}"; }
sim_api POST "/vms/$PLAIN/diskattachments" "$(att "$D3" virtio)" >"$T/body"
check "attaching a locked disk answers 409" test "$SIM_STATUS" = 409
sim_ctl POST /sim/timers '{"paused":false}' >/dev/null
sim_wait_status 10 "/disks/$D3" .status ok
sim_api POST "/vms/$PLAIN/diskattachments" '{"disk":{"id":"'"$D1"'"}}' >"$T/body"
check "an attachment without interface answers 400" test "$SIM_STATUS" = 400
sim_call POST "/vms/$PLAIN/diskattachments" "$(att "$D1" virtio true)"
out=$SIM_BODY
check "attaching a disk answers 201; the attachment id is the disk id" \
  test "$SIM_STATUS/$(jq -r .id <<<"$out")" = "201/$D1"
check "... no logical_name while the VM is down" test "$(jq -r 'has("logical_name")' <<<"$out")" = false
sim_api POST "/vms/$PLAIN/diskattachments" "$(att "$D3" virtio_scsi true)" >"$T/body"
check "a second bootable disk answers 409" test "$SIM_STATUS" = 409
sim_api POST "/vms/$PLAIN/diskattachments" "$(att "$D3" virtio_scsi)" >/dev/null
check "a second, non-bootable disk attaches" test "$SIM_STATUS" = 201
sim_api POST "/vms/$FROMTPL/diskattachments" "$(att "$D3" virtio)" >"$T/body"
check "a disk attached elsewhere answers 409" test "$SIM_STATUS" = 409
D3FILE=$(sim_ctl GET /sim/state | jq -r --arg d "$D3" '.disks[] | select(.id==$d) | .file')
head -c 1048576 /dev/urandom >"$T/a1"; head -c 1048576 /dev/urandom >"$T/a3"
dd if="$T/a1" of="$D1FILE" conv=notrunc status=none
dd if="$T/a3" of="$D3FILE" conv=notrunc status=none
sim_call POST "/vms/$PLAIN/snapshots" \
  "{\"description\":\"pre\",\"persist_memorystate\":\"false\",\"disk_attachments\":{\"disk_attachment\":[{\"disk\":{\"id\":\"$D1\"}}]}}"
out=$SIM_BODY
SNAP=$(jq -r .id <<<"$out")
check "creating a snapshot answers 202, locked" \
  test "$SIM_STATUS/$(jq -r .snapshot_status <<<"$out")" = 202/locked
check "the snapshot turns ok" sim_wait_status 10 "/vms/$PLAIN/snapshots/$SNAP" .snapshot_status ok
check "the snapshot list starts with Active VM" test "$(sim_api GET "/vms/$PLAIN/snapshots" \
  | jq -r '.snapshot[0].snapshot_type + "/" + (.snapshot | length | tostring)')" = active/2
check "only the chosen disk is in the snapshot" \
  test "$(sim_api GET "/vms/$PLAIN/snapshots/$SNAP/disks" | jq -r '[.disk[].id] | join(",")')" = "$D1"
head -c 1048576 /dev/urandom >"$T/b1"
dd if="$T/b1" of="$D1FILE" conv=notrunc status=none
dd if="$T/b1" of="$D3FILE" conv=notrunc status=none
sim_api POST "/vms/$PLAIN/snapshots/$SNAP/restore" '{"restore_memory":"false"}' >"$T/body"
check "restoring answers 200 complete" \
  test "$SIM_STATUS/$(jq -r .status "$T/body")" = 200/complete
check "the VM is image_locked, then down" sim_wait_status 10 "/vms/$PLAIN" .status down
check "the snapshot's disk has its old content back" \
  cmp -s "$T/a1" <(head -c 1048576 "$D1FILE")
check "a disk outside the snapshot keeps its new content" \
  cmp -s "$T/b1" <(head -c 1048576 "$D3FILE")
dd if="$T/b1" of="$D1FILE" conv=notrunc status=none
sim_call POST /vms "$(vm_body fromsnap Blank "{\"snapshots\":{\"snapshot\":[{\"id\":\"$SNAP\"}]}}")"
FS=$(jq -r .id <<<"$SIM_BODY")
check "a VM cloned from a snapshot answers 202" test "$SIM_STATUS" = 202
sim_wait_status 10 "/vms/$FS" .status down
FSD=$(sim_api GET "/vms/$FS/diskattachments" | jq -r '.disk_attachment[0].id')
FSFILE=$(sim_ctl GET /sim/state | jq -r --arg d "$FSD" '.disks[] | select(.id==$d) | .file')
check "... with a new disk holding the snapshot's content" \
  test "$FSD" != "$D1" -a -n "$FSFILE" -a "$(cmp -s "$T/a1" <(head -c 1048576 "$FSFILE") && echo y)" = y
check "... leaving the source disk as it is" cmp -s "$T/b1" <(head -c 1048576 "$D1FILE")
sim_api DELETE "/vms/$PLAIN/snapshots/$SNAP" >/dev/null
check "deleting a snapshot answers 200" test "$SIM_STATUS" = 200
check "... and it goes away after the merge" sim_wait_status 10 "/vms/$PLAIN/snapshots/$SNAP" . ""

# ---- image transfers and imageio -------------------------------------------
# transfer_url names the host's imageio daemon (a real one on 54322),
# proxy_url the engine's imageio proxy (54323): listeners of their own
code() { curl -s --cacert "$SIM_CA" -o /dev/null -w '%{http_code}' "$@"; }
url_port() { local u=${1#https://}; u=${u%%/*}; echo "${u##*:}"; }
transfer_of() { # transfer_of DISK [DIRECTION]: starts one, waits for transferring, prints its id
  local id
  id=$(sim_api POST /imagetransfers "{\"disk\":{\"id\":\"$1\"},\"direction\":\"${2:-upload}\",\"format\":\"raw\",\"inactivity_timeout\":\"120\"}" | jq -r .id)
  sim_wait_status 10 "/imagetransfers/$id" .phase transferring && echo "$id"
}
gone() { sim_api GET "$1" >/dev/null; [ "$SIM_STATUS" = 404 ]; } # gone PATH: answers 404
sim_api POST /disks "$(disk_body up 4194304 "$SD1")" >"$T/body"
DU=$(jq -r .id "$T/body")
sim_wait_status 10 "/disks/$DU" .status ok
sim_call POST /imagetransfers "{\"disk\":{\"id\":\"$DU\"},\"direction\":\"upload\",\"format\":\"raw\",\"inactivity_timeout\":\"120\"}"
TR=$(jq -r .id <<<"$SIM_BODY")
check "an image transfer starts initializing (201)" \
  test "$SIM_STATUS/$(jq -r .phase <<<"$SIM_BODY")" = 201/initializing
check "... with no URL yet" test "$(jq -r '[has("transfer_url"), has("proxy_url")] | any' <<<"$SIM_BODY")" = false
check "... the disk is locked meanwhile" test "$(sim_api GET "/disks/$DU" | jq -r .status)" = locked
check "... then transferring" sim_wait_status 10 "/imagetransfers/$TR" .phase transferring
sim_api GET "/imagetransfers/$TR" >"$T/tr.json"
TURL=$(jq -r .transfer_url "$T/tr.json") PURL=$(jq -r .proxy_url "$T/tr.json")
TICKET=${TURL##*/}
check "transfer_url is the daemon's port ($SIM_IMAGEIO_PORT), not the API's ($SIM_PORT)" \
  test "$TURL" = "https://localhost:$SIM_IMAGEIO_PORT/images/$TICKET" -a "$SIM_IMAGEIO_PORT" != "$SIM_PORT"
check "proxy_url is the proxy's port ($SIM_PROXY_PORT), a third one, with the same ticket" \
  test "$PURL" = "https://localhost:$SIM_PROXY_PORT/images/$TICKET" -a "$SIM_PROXY_PORT" != "$SIM_PORT" \
  -a "$SIM_PROXY_PORT" != "$SIM_IMAGEIO_PORT"
check "the API's port serves no /images (404), as a real engine" \
  test "$(code -X OPTIONS "https://localhost:$SIM_PORT/images/$TICKET")" = 404
check "the daemon's and the proxy's ports serve nothing but /images (404)" test "$(code \
  -H 'Accept: application/json' "https://localhost:$SIM_IMAGEIO_PORT/ovirt-engine/api")/$(code \
  "https://localhost:$SIM_PROXY_PORT/sim/state")" = 404/404
IO=(curl -s --cacert "$SIM_CA")
"${IO[@]}" -X OPTIONS "$TURL" >"$T/opt.json"
check "imageio OPTIONS of an upload ticket: extents, flush, zero (no checksum: not served)" \
  test "$(jq -r '.features | sort | join(",")' "$T/opt.json")" = "extents,flush,zero"
check "... max_readers and max_writers" test "$(jq -r '"\(.max_readers)/\(.max_writers)"' "$T/opt.json")" = 8/8
check "... the daemon offers its unix socket" test "$(jq -r .unix_socket "$T/opt.json" | tr -d '\0')" = /org/ovirt/imageio
"${IO[@]}" -X OPTIONS "$PURL" >"$T/popt.json"
check "the proxy's OPTIONS offers the same features and limits, no unix socket" \
  test "$(jq -c '[(.features | sort), .max_readers, .max_writers, has("unix_socket")]' "$T/popt.json")" \
  = '[["extents","flush","zero"],8,8,false]'
check "OPTIONS /images/* answers the server's features (no ticket needed)" test "$("${IO[@]}" \
  -X OPTIONS "https://localhost:$SIM_PROXY_PORT/images/*" | jq -r '.features | sort | join(",")')" = "extents,flush,zero"
head -c 1048576 /dev/urandom >"$T/up"
check "PUT with Content-Range writes at the offset" test "$("${IO[@]}" -o /dev/null -w '%{http_code}' \
  -X PUT -H 'Content-Range: bytes 1048576-2097151/*' --data-binary @"$T/up" "$TURL?flush=n")" = 200
check "GET with Range answers 206 with the data" cmp -s "$T/up" <("${IO[@]}" -H 'Range: bytes=1048576-2097151' "$TURL")
check "... and so does the proxy: both serve the same ticket" \
  cmp -s "$T/up" <("${IO[@]}" -H 'Range: bytes=1048576-2097151' "$PURL")
head -c 65536 /dev/urandom >"$T/up2"
check "PUT through the proxy writes too" test "$(code -X PUT -H 'Content-Range: bytes 3145728-3211263/*' \
  --data-binary @"$T/up2" "$PURL")" = 200
check "... what the daemon then reads" cmp -s "$T/up2" <("${IO[@]}" -H 'Range: bytes=3145728-3211263' "$TURL")
check "extents show the data and the holes" test "$("${IO[@]}" "$TURL/extents" \
  | jq -c '[.[] | select(.zero|not) | [.start, .length]]')" = "[[1048576,1048576],[3145728,65536]]"
check "the request log names the listener of each call (imageio, proxy)" test "$(sim_ctl GET /sim/requests \
  | jq -r --arg t "/images/$TICKET" '[.requests[] | select(.path == $t and .method == "PUT") | .listener] | join(",")')" = imageio,proxy
check "PATCH zero without size answers 400" test "$("${IO[@]}" -o /dev/null -w '%{http_code}' \
  -X PATCH -H 'Content-Type: application/json' -d '{"op":"zero","offset":0}' "$TURL")" = 400
check "PATCH zero past the end answers 416" test "$("${IO[@]}" -o /dev/null -w '%{http_code}' \
  -X PATCH -H 'Content-Type: application/json' -d '{"op":"zero","offset":4194304,"size":4096}' "$TURL")" = 416
"${IO[@]}" -X PATCH -H 'Content-Type: application/json' -d '{"op":"zero","offset":1048576,"size":4096}' "$TURL"
check "PATCH zero zeroes" cmp -s <(head -c 4096 /dev/zero) <("${IO[@]}" -H 'Range: bytes=1048576-1052671' "$TURL")
check "an unknown ticket answers 403" test "$("${IO[@]}" -o /dev/null -w '%{http_code}' \
  -X OPTIONS "${TURL%/*}/nope")" = 403
check "injected imageio faults hit the daemon and the proxy alike" test "$(sim_ctl POST /sim/fail \
  '{"method":"PUT","path_regex":"^/images/","status":500,"count":2}' >/dev/null
  code -X PUT -H 'Content-Range: bytes 0-0/*' --data-binary x "$TURL"; echo -n /
  code -X PUT -H 'Content-Range: bytes 0-0/*' --data-binary x "$PURL"; echo -n /
  code -X PUT -H 'Content-Range: bytes 0-0/*' --data-binary x "$PURL")" = 500/500/200
sim_ctl DELETE /sim/fail >/dev/null
# a worker that cannot route to the host: transfer_url refuses, proxy_url works
check "GET /sim/imageio: the daemon is reachable by default" \
  test "$(sim_ctl GET /sim/imageio | jq -r '"\(.daemon_reachable)/\(.daemon_port)/\(.proxy_port)"')" \
  = "true/$SIM_IMAGEIO_PORT/$SIM_PROXY_PORT"
check "PUT /sim/imageio {daemon_reachable: false}" \
  test "$(sim_ctl PUT /sim/imageio '{"daemon_reachable":false}' | jq -r .daemon_reachable)" = false
sim_api GET "/imagetransfers/$TR" >"$T/tr.json"
TURL2=$(jq -r .transfer_url "$T/tr.json")
check "... then transfer_url names another port, same ticket" \
  test "$(url_port "$TURL2")" != "$SIM_IMAGEIO_PORT" -a "${TURL2##*/}" = "$TICKET"
"${IO[@]}" -o /dev/null -X OPTIONS "$TURL2"
check "... whose connections are refused (curl exit 7)" test $? = 7
check "... while proxy_url still serves the ticket" test "$(code -X OPTIONS "$(jq -r .proxy_url "$T/tr.json")")" = 200
sim_ctl PUT /sim/imageio '{"daemon_reachable":true}' >/dev/null
check "daemon_reachable true gives the daemon's port back" \
  test "$(sim_api GET "/imagetransfers/$TR" | jq -r .transfer_url)" = "$TURL"
sim_api POST "/imagetransfers/$TR/finalize" '{}' >/dev/null
check "finalize ends in finished_success (engine 4.5)" sim_wait_status 10 "/imagetransfers/$TR" .phase finished_success
check "... the disk is ok again" test "$(sim_api GET "/disks/$DU" | jq -r .status)" = ok
check "... the transfer stays (engines from 4.4.7 keep it)" test "$(sleep 1.2; sim_api GET /imagetransfers \
  | jq -r --arg t "$TR" '.image_transfer[] | select(.id == $t) | .phase')" = finished_success
check "... the ticket is gone on the daemon and the proxy (403)" \
  test "$(code -X OPTIONS "$TURL")/$(code -X OPTIONS "$PURL")" = 403/403
check "... and the finished transfer names no URL any more" test "$(sim_api GET "/imagetransfers/$TR" \
  | jq -r '[has("transfer_url"), has("proxy_url")] | any')" = false
DUFILE=$(sim_ctl GET /sim/state | jq -r --arg d "$DU" '.disks[] | select(.id==$d) | .file')
check "... and the disk file holds the upload" \
  cmp -s <(tail -c +4097 "$T/up") <(head -c 2097152 "$DUFILE" | tail -c +1052673)
# before 4.4.7 the engine removes the transfer as it ends: the disk tells
# (ovirt-engine-sdk examples/helpers/imagetransfer.py finalize_transfer)
sim_ctl PUT /sim/engine '{"version":"4.3.10.4-1.el7"}' >/dev/null
TR43=$(transfer_of "$DU")
check "a 4.3 engine's transfer starts too" test -n "$TR43"
sim_api POST "/imagetransfers/$TR43/finalize" '{}' >/dev/null
check "on a 4.3 engine the finalized transfer is gone (404) once it ends" wait_for 10 gone "/imagetransfers/$TR43"
check "... not listed any more" test "$(sim_api GET /imagetransfers \
  | jq -r --arg t "$TR43" '[.image_transfer[]? | select(.id == $t)] | length')" = 0
check "... and the disk is ok" test "$(sim_api GET "/disks/$DU" | jq -r .status)" = ok
sim_ctl PUT /sim/engine '{"version":"4.5.5-1.el8"}' >/dev/null
# the transfer owns its disk: cancelling an upload removes the disk
sim_api POST /disks "$(disk_body upcancel 1048576 "$SD1")" >"$T/body"
DC=$(jq -r .id "$T/body")
sim_wait_status 10 "/disks/$DC" .status ok
TRC=$(transfer_of "$DC")
CURL=$(sim_api GET "/imagetransfers/$TRC" | jq -r .transfer_url)
sim_api POST "/imagetransfers/$TRC/cancel" '{}' >/dev/null
check "cancel answers 200, the transfer cancelled_user" \
  test "$SIM_STATUS/$(sim_api GET "/imagetransfers/$TRC" | jq -r .phase)" = 200/cancelled_user
check "... its ticket is gone (403)" test "$(code -X OPTIONS "$CURL")" = 403
sim_api POST "/imagetransfers/$TRC/cancel" '{}' >/dev/null
check "... a second cancel answers 409" test "$SIM_STATUS" = 409
check "... it ends finished_failure" sim_wait_status 10 "/imagetransfers/$TRC" .phase finished_failure
check "... and the engine deletes the upload's disk" wait_for 10 gone "/disks/$DC"
check "... and its file" test -z "$(sim_ctl GET /sim/state | jq -r --arg d "$DC" '.disks[] | select(.id==$d) | .id')"
# a download ticket reads only
TRD=$(transfer_of "$DU" download)
DURL=$(sim_api GET "/imagetransfers/$TRD" | jq -r .proxy_url)
check "a download ticket's OPTIONS: extents only, GET only" test "$(curl -s --cacert "$SIM_CA" -i -X OPTIONS "$DURL" \
  | tr -d '\r' | sed -n 's/^Allow: //p')/$("${IO[@]}" -X OPTIONS "$DURL" | jq -r '.features | join(",")')" = "OPTIONS,GET/extents"
check "... it refuses a PUT (403)" test "$(code -X PUT -H 'Content-Range: bytes 0-0/*' --data-binary x "$DURL")" = 403
sim_api POST "/imagetransfers/$TRD/cancel" '{}' >/dev/null
check "cancelling a download ends finished_failure" sim_wait_status 10 "/imagetransfers/$TRD" .phase finished_failure
check "... and leaves its disk ok" test "$(sim_api GET "/disks/$DU" | jq -r .status)" = ok

# ---- failure injection ----------------------------------------------------
sim_api DELETE "/vms/$PLAIN/diskattachments/$D3" >/dev/null
sim_ctl POST /sim/fail '{"method":"POST","path_regex":"/vms/.*/diskattachments$","status":409,"count":1,"detail":"[Cannot attach Virtual Disk. Injected.]"}' >/dev/null
sim_call POST "/vms/$PLAIN/diskattachments" "$(att "$D3" virtio)"
out=$SIM_BODY
check "an injected 409 is answered once" \
  test "$SIM_STATUS/$(jq -r .detail <<<"$out")" = "409/[Cannot attach Virtual Disk. Injected.]"
check "... and had no effect" test "$(sim_api GET "/vms/$PLAIN/diskattachments/$D3" >/dev/null; echo "$SIM_STATUS")" = 404
sim_api POST "/vms/$PLAIN/diskattachments" "$(att "$D3" virtio)" >/dev/null
check "the next call succeeds" test "$SIM_STATUS" = 201
sim_ctl POST /sim/fail '{"method":"GET","path_regex":"/jobs$","timeout":true}' >/dev/null
curl -s -m 2 --cacert "$SIM_CA" -H 'Accept: application/json' \
  -H "Authorization: Bearer $SIM_TOKEN" "$SIM_URL/jobs" >/dev/null
check "an injected timeout hangs the call (curl exit 28)" test $? = 28
sim_ctl POST /sim/fail '{"path_regex":"/clusters$","status":500}' >/dev/null
sim_api GET /clusters >/dev/null
check "an injected 500" test "$SIM_STATUS" = 500
sim_ctl DELETE /sim/fail >/dev/null
check "DELETE /sim/fail clears the rules" test "$(sim_ctl GET /sim/fail | jq -r '.rules | length')" = 0
check "jobs are listed with their status" test "$(sim_api GET /jobs \
  | jq -r '[.job[] | select(.status=="finished")] | length')" -gt 3

# ---- more of the API ---------------------------------------------------------
sim_call POST /vms "$(vm_body misc ekman-worker '{"initialization":{"user_name":"u","root_password":"pw","custom_script":"#cloud-config\n{}"}}')" \
  -H 'Correlation-Id: misc-create'
MISC=$(jq -r .id <<<"$SIM_BODY")
sim_wait_status 10 "/vms/$MISC" .status down
check "/api/v4/... is the same API" test "$(sim_api GET "/../api/v4/vms/$MISC" | jq -r .name)" = misc
check "jobs can be searched by Correlation-Id" test "$(sim_api GET \
  '/jobs?search=correlation_id%3Dmisc-create' | jq -r '.job[0].status')" = finished
check "All-Content shows initialization without root_password" test "$(sim_api GET "/vms/$MISC" \
  -H 'All-Content: true' | jq -c '.initialization | [.user_name, has("root_password")]')" = '["u",false]'
sim_api GET "/vms/$MISC?follow=bogus" >/dev/null
check "following an unknown link answers 400" test "$SIM_STATUS" = 400
sim_api PUT "/vms/$MISC" '{"name":"misc2","memory":"4294967296"}' >/dev/null
check "an update beyond the maximum memory answers 409" test "$SIM_STATUS" = 409
check "... and changes nothing" test "$(sim_api GET "/vms/$MISC" | jq -r '.name + "/" + .memory')" = misc/268435456
check "an update of CPUs answers 200" test "$(sim_api PUT "/vms/$MISC" \
  '{"cpu":{"topology":{"sockets":"2","cores":"1","threads":"1"}}}' | jq -r .cpu.topology.sockets)" = 2
sim_call POST "/vms/$MISC/start" '{"async":"false"}'
check "start with async=false returns once the job is done" \
  test "$(sim_api GET "/jobs/$(jq -r .job.id <<<"$SIM_BODY")" | jq -r .status)" = finished
check "... the VM comes up" sim_wait_status 10 "/vms/$MISC" .status up
sim_api POST "/vms/$MISC/shutdown" '{}' >/dev/null
check "shutdown goes through powering_down" test "$(sim_api GET "/vms/$MISC" | jq -r .status)" = powering_down
check "... to down" sim_wait_status 10 "/vms/$MISC" .status down
sim_api POST "/vms/$MISC/stop" '{}' >/dev/null
check "stopping a VM that is down answers 409" test "$SIM_STATUS" = 409
MD=$(sim_api GET "/vms/$MISC/diskattachments" | jq -r '.disk_attachment[0].id')
check "a disk grows (PUT provisioned_size)" test "$(sim_api PUT "/disks/$MD" \
  '{"provisioned_size":"2097152"}' | jq -r .provisioned_size)" = 2097152
sim_api PUT "/disks/$MD" '{"provisioned_size":"1024"}' >/dev/null
check "... but does not shrink (409)" test "$SIM_STATUS" = 409
# PUT /disks by engine version (ovirt-engine BackendDiskResource.update)
sim_ctl PUT /sim/engine '{"version":"4.3.10.4-1.el7"}' >/dev/null
check "the API root reports the engine's version (4.3.10, numbers as strings)" \
  test "$(sim_api GET "" | jq -r '.product_info.version | .major + "." + .minor + "." + .build + " " + .full_version')" = "4.3.10 4.3.10.4-1.el7"
sim_call PUT "/disks/$MD" '{"provisioned_size":"3145728"}'
check "a 4.3.10 engine refuses to grow a disk through PUT /disks (409, names disk-attachments)" \
  bash -c '[ "$1" = 409 ] && grep -q "permitted only for disk-attachments" <<<"$2"' _ "$SIM_STATUS" "$SIM_BODY"
check "... and grows it through the VM's disk attachment" test "$(sim_api PUT "/vms/$MISC/diskattachments/$MD" \
  '{"disk":{"provisioned_size":"3145728"}}' >/dev/null; sim_api GET "/disks/$MD" | jq -r .provisioned_size)" = 3145728
sim_ctl PUT /sim/engine '{"version":"4.3.1"}' >/dev/null
sim_call PUT "/disks/$MD" '{"provisioned_size":"4194304"}'
check "a 4.3.1 engine answers 200 to PUT /disks and leaves the size as it was" \
  test "$(jq -r .provisioned_size <<<"$SIM_BODY")/$SIM_STATUS" = 3145728/200
sim_ctl PUT /sim/engine '{"version":"4.0.6"}' >/dev/null
sim_api PUT "/disks/$MD" '{"provisioned_size":"4194304"}' >/dev/null
check "a 4.0 engine has no PUT /disks (405)" test "$SIM_STATUS" = 405
sim_ctl PUT /sim/engine '{"version":"4.5.5-1.el8"}' >/dev/null
SD2=$(sim_api GET '/storagedomains?search=name%3Ddata2' | jq -r '.storage_domain[0].id')
sim_call POST "/disks/$MD/copy" "{\"storage_domain\":{\"id\":\"$SD2\"},\"disk\":{\"name\":\"misc-copy\"}}"
check "copying a disk answers 202 pending, the input echoed, no new disk id (as the engine)" \
  test "$SIM_STATUS/$(jq -r '.status + "/" + .disk.name + "/" + (.disk | has("id") | tostring)' <<<"$SIM_BODY")" = 202/pending/misc-copy/false
MC=$(sim_api GET '/disks?search=name%3Dmisc-copy' | jq -r '.disk[0].id')
check "the copy is found by its name, locked while it copies" \
  test "$(sim_api GET "/disks/$MC" | jq -r .status)" = locked
check "... then ok in the other domain" \
  sim_wait_status 10 "/disks/$MC" '.name + "/" + .status + "/" + .storage_domains.storage_domain[0].id' "misc-copy/ok/$SD2"
MMAC=$(sim_api GET "/vms/$MISC/nics" | jq -r '.nic[0].mac.address')
sim_call POST /vms "$(vm_body macdup)"
MD2=$(jq -r .id <<<"$SIM_BODY")
sim_call POST "/vms/$MD2/nics" "{\"name\":\"nic1\",\"mac\":{\"address\":\"$MMAC\"}}"
check "a MAC another VM has answers 409 (no duplicates in the MAC pool)" test "$SIM_STATUS" = 409
check "... saying so" grep -q "MAC address is already in use" <<<"$SIM_BODY"
sim_wait_status 10 "/vms/$MD2" .status down
sim_api DELETE "/vms/$MD2" >/dev/null
MN=$(sim_api GET "/vms/$MISC/nics" | jq -r '.nic[0].id')
check "a NIC can be unlinked" test "$(sim_api PUT "/vms/$MISC/nics/$MN" '{"linked":"false"}' | jq -r .linked)" = false
sim_api DELETE "/vms/$MISC/nics/$MN" >/dev/null
check "... and removed" test "$SIM_STATUS/$(sim_api GET "/vms/$MISC/nics")" = "200/{}"
sim_api DELETE "/vms/$MISC?detach_only=true" >/dev/null
check "a VM deleted with detach_only=true leaves its disk" \
  test "$SIM_STATUS/$(sim_api GET "/disks/$MD" | jq -r .status)" = 200/ok

# ---- guest emulation: a worker VM runs ekman-writer ------------------------
"$EKT" --gen-pki "$T/pki" 2>>"$T/transfer.log"
b64() { base64 -w0 "$1"; }
# custom_script as Ekman sends it: block YAML keys the engine never writes
# itself (the engine puts its own YAML and "#cloud-config" before it), the
# writer started by a per-boot script in cloud-init's final stage
WRITER_CMD='setsid ekman-writer --listen 0.0.0.0:5566 --cert /etc/ekman-writer/server.pem --key /etc/ekman-writer/server.key --ca /etc/ekman-writer/ca.pem --allow-path /dev </dev/null >>/var/log/ekman-writer.log 2>&1 &'
USERDATA=$(printf 'write_files: %s\n' "$(jq -nc --arg ca "$(b64 "$T/pki/ca.pem")" \
  --arg crt "$(b64 "$T/pki/server.pem")" --arg key "$(b64 "$T/pki/server.key")" \
  --arg sh "$(printf '#!/bin/sh\n%s\n' "$WRITER_CMD")" '[
    {path:"/etc/ekman-writer/ca.pem", content:$ca, encoding:"b64", permissions:"0644"},
    {path:"/etc/ekman-writer/server.pem", content:$crt, encoding:"b64", permissions:"0644"},
    {path:"/etc/ekman-writer/server.key", content:$key, encoding:"b64", permissions:"0600"},
    {path:"/var/lib/cloud/scripts/per-boot/ekman-writer.sh", content:$sh, permissions:"0755"}]')")
sim_call POST /vms "$(vm_body minion1 ekman-worker '{"cluster":{"name":"minions"}}')"
out=$SIM_BODY
W=$(jq -r .id <<<"$out")
sim_wait_status 10 "/vms/$W" .status down
sim_api POST /disks "$(disk_body target 8388608 "$SD1" raw true)" >"$T/body"
DT=$(jq -r .id "$T/body")
sim_wait_status 10 "/disks/$DT" .status ok
sim_api POST "/vms/$W/diskattachments" "$(att "$DT" virtio)" >/dev/null
check "the replica disk attaches to the worker" test "$SIM_STATUS" = 201
check "no reported devices while the VM is down" test "$(sim_api GET "/vms/$W/reporteddevices")" = "{}"
start_body=$(jq -nc --arg s "$USERDATA" \
  '{use_cloud_init:"true", vm:{initialization:{custom_script:$s, host_name:"minion1"}}}')
sim_call POST "/vms/$W/start" "$start_body"
out=$SIM_BODY
check "start answers 200 complete with a job" \
  test "$SIM_STATUS/$(jq -r .status <<<"$out")/$(jq -r '.job.id | length' <<<"$out")" = 200/complete/36
sim_api POST "/vms/$W/start" "$start_body" >/dev/null
check "starting it again answers 409" test "$SIM_STATUS" = 409
check "the VM comes up" sim_wait_status 15 "/vms/$W" .status up
ipq='[.reported_device[]?.ips.ip[]? | select(.version=="v4") | .address][0] // ""'
IP=
for _ in $(seq 100); do
  IP=$(sim_api GET "/vms/$W/reporteddevices" | jq -r "$ipq"); [ -n "$IP" ] && break; sleep 0.2
done
check "the guest reports a loopback IPv4 of its own (127.<port>.N)" grep -qE "^127\.$((SIM_PORT >> 8))\.$((SIM_PORT & 255))\.[0-9]+$" <<<"$IP"
check "... on its NIC's MAC" test "$(sim_api GET "/vms/$W/reporteddevices" | jq -r \
  '.reported_device[0].mac.address')" = "$(sim_api GET "/vms/$W/nics" | jq -r '.nic[0].mac.address')"
wrun() { sim_ctl GET /sim/state | jq -r --arg w "$1" '.vms[] | select(.id==$w) | .guest.writer_running'; }
check "the address is reported before cloud-init's final stage starts the writer" test "$(wrun "$W")" = false
for _ in $(seq 75); do [ "$(wrun "$W")" = true ] && break; sleep 0.2; done
check "the per-boot script starts the writer (final stage, 3 s after boot)" test "$(wrun "$W")" = true
check "the attachment has a logical_name while running" test "$(sim_api GET \
  "/vms/$W/diskattachments/$DT" | jq -r .logical_name)" = /dev/vdb
head -c 3145728 /dev/urandom >"$T/src.img"; truncate -s 8M "$T/src.img"
xfer() { # xfer TARGET STATS
  "$EKT" --https "$IP:5566" --ca "$T/pki/ca.pem" --cert "$T/pki/client.pem" \
    --key "$T/pki/client.key" --source "$T/src.img" --target "$1" --retries 2 --timeout 30 \
    --stats "$2" 2>>"$T/transfer.log"
}
xfer "serial:${DT:0:20}" "$T/s1.json"
check "ekman-transfer copies to serial:<first 20 of the disk id>" \
  test "$(jq -r .complete "$T/s1.json")" = true
DTFILE=$(sim_ctl GET /sim/state | jq -r --arg d "$DT" '.disks[] | select(.id==$d) | .file')
check "the simulator's disk file is bit-identical to the source" cmp -s "$T/src.img" "$DTFILE"

# hot plug while running: virtio_scsi, which udev names by the full id
sim_api POST /disks "$(disk_body hot 8388608 "$SD1")" >"$T/body"
DH=$(jq -r .id "$T/body")
sim_wait_status 10 "/disks/$DH" .status ok
sim_api POST "/vms/$W/diskattachments" "$(att "$DH" virtio_scsi)" >/dev/null
check "a disk hot-plugs into the running worker" test "$SIM_STATUS" = 201
check "... and is linked in its by-id directory" test "$(sim_ctl GET /sim/state | jq -r \
  --arg w "$W" --arg n "scsi-0QEMU_QEMU_HARDDISK_$DH" '.vms[] | select(.id==$w) | .guest.by_id[$n] // ""' \
  | xargs -r basename)" = "$DH"
xfer "serial:$DH" "$T/s2.json"
DHFILE=$(sim_ctl GET /sim/state | jq -r --arg d "$DH" '.disks[] | select(.id==$d) | .file')
check "the hot-plugged disk receives the copy too" cmp -s "$T/src.img" "$DHFILE"
sim_api DELETE "/vms/$W/diskattachments/$DH" >/dev/null
check "detaching an active disk from a running VM answers 409" test "$SIM_STATUS" = 409
sim_api PUT "/vms/$W/diskattachments/$DH" '{"active":"false"}' >/dev/null
check "deactivating it unlinks it" test "$(sim_ctl GET /sim/state | jq -r --arg w "$W" \
  '.vms[] | select(.id==$w) | .guest.by_id | length')" = 2
sim_api DELETE "/vms/$W/diskattachments/$DH" >/dev/null
check "... after which it detaches" test "$SIM_STATUS" = 200
sim_api DELETE "/vms/$W" >/dev/null
check "deleting a running VM answers 409" test "$SIM_STATUS" = 409
WPID=$(sim_ctl GET /sim/state | jq -r --arg w "$W" '.vms[] | select(.id==$w) | .guest.writer_pid')
sim_api POST "/vms/$W/stop" '{}' >/dev/null
check "stop answers 200" test "$SIM_STATUS" = 200
check "the VM is down" sim_wait_status 10 "/vms/$W" .status down
check "its writer is gone" bash -c "! kill -0 $WPID 2>/dev/null"
check "no reported devices once down" test "$(sim_api GET "/vms/$W/reporteddevices")" = "{}"
check "no logical_name once down" test "$(sim_api GET "/vms/$W/diskattachments/$DT" \
  | jq -r 'has("logical_name")')" = false
sim_api DELETE "/vms/$W/diskattachments/$DT" >/dev/null
WROOT=$(sim_api GET "/vms/$W/diskattachments" | jq -r '.disk_attachment[0].id')
sim_api DELETE "/vms/$W" >/dev/null
check "the worker is deleted" test "$SIM_STATUS" = 200
check "... and gone" sim_wait_status 10 "/vms/$W" . ""
check "... with its own disk" sim_wait_status 10 "/disks/$WROOT" . ""
check "the detached replica disk survives, with its data" cmp -s "$T/src.img" "$DTFILE"
# run-once initialization counts only with use_cloud_init, as in the engine
sim_call POST /vms "$(vm_body minion2 ekman-worker)"
W2=$(jq -r .id <<<"$SIM_BODY")
sim_wait_status 10 "/vms/$W2" .status down
sim_api POST "/vms/$W2/start" "$(jq -nc --arg s "$USERDATA" '{vm:{initialization:{custom_script:$s}}}')" >/dev/null
sim_wait_status 15 "/vms/$W2" .status up
check "without use_cloud_init the run-once user-data is ignored (no writer)" test "$(sim_ctl GET \
  /sim/state | jq -r --arg w "$W2" '.vms[] | select(.id==$w) | .guest.writer_pid')" = null
sim_api POST "/vms/$W2/stop" '{}' >/dev/null
sim_wait_status 10 "/vms/$W2" .status down
sim_api POST "/vms/$W2/start" "$start_body" >/dev/null
sim_wait_status 15 "/vms/$W2" .status up
for _ in $(seq 50); do [ "$(wrun "$W2")" = true ] && break; sleep 0.2; done
W2PID=$(sim_ctl GET /sim/state | jq -r --arg w "$W2" '.vms[] | select(.id==$w) | .guest.writer_pid')
check "with it, the writer runs" kill -0 "$W2PID"
# the user-data format Ekman used to send ("#cloud-config" + a JSON object):
# after the engine's YAML it is no YAML at all, and cloud-init ignores it
sim_api POST "/vms/$W2/stop" '{}' >/dev/null
sim_wait_status 10 "/vms/$W2" .status down
old_ud=$(printf '#cloud-config\n{"runcmd": [["ekman-writer", "--listen", "0.0.0.0:5566"]]}')
sim_api POST "/vms/$W2/start" "$(jq -nc --arg s "$old_ud" '{use_cloud_init:"true", vm:{initialization:{custom_script:$s}}}')" >/dev/null
sim_wait_status 15 "/vms/$W2" .status up
sleep 4
check "a JSON object after the engine's YAML starts nothing" test "$(sim_ctl GET /sim/state | jq -r \
  --arg w "$W2" '.vms[] | select(.id==$w) | .guest.writer_pid')" = null
check "... and the guest's console says why" grep -q "not valid YAML" "$(sim_ctl GET /sim/state | jq -r \
  --arg w "$W2" '.vms[] | select(.id==$w) | .guest.sandbox')/cloud-init.log"
sim_api POST "/vms/$W2/stop" '{}' >/dev/null
sim_wait_status 10 "/vms/$W2" .status down
sim_api POST "/vms/$W2/start" "$start_body" >/dev/null
sim_wait_status 15 "/vms/$W2" .status up
for _ in $(seq 50); do [ "$(wrun "$W2")" = true ] && break; sleep 0.2; done
W2PID=$(sim_ctl GET /sim/state | jq -r --arg w "$W2" '.vms[] | select(.id==$w) | .guest.writer_pid')
# a start the engine accepts but no host can run: back to down
sim_api POST "/vms/$W2/stop" '{}' >/dev/null
sim_wait_status 10 "/vms/$W2" .status down
sim_ctl POST /sim/fail "{\"method\":\"POST\",\"path_regex\":\"/vms/$W2/start\$\",\"boot_fails\":true}" >/dev/null
sim_api POST "/vms/$W2/start" "$start_body" >/dev/null
check "boot_fails: the start is accepted (200)" test "$SIM_STATUS" = 200
check "... the VM is wait_for_launch at once" test "$(sim_api GET "/vms/$W2" | jq -r .status)" = wait_for_launch
check "... then falls back to down" sim_wait_status 10 "/vms/$W2" .status down
check "... with no writer" test "$(wrun "$W2")" = false
sim_api POST "/vms/$W2/start" "$start_body" >/dev/null
sim_wait_status 15 "/vms/$W2" .status up
for _ in $(seq 50); do [ "$(wrun "$W2")" = true ] && break; sleep 0.2; done
W2PID=$(sim_ctl GET /sim/state | jq -r --arg w "$W2" '.vms[] | select(.id==$w) | .guest.writer_pid')
check "the next start runs it" kill -0 "$W2PID"
sim_ctl GET /sim/state >"$T/state.json"
check "/sim/state holds no secrets" bash -c "! grep -qE 'Passw0rd|PRIVATE KEY' '$T/state.json'"
check "the simulator logged no internal error" bash -c "! grep -q 'internal error' '$T/sim.log'"
sim_stop
check "a worker's writer dies with the simulator" wait_for 10 bash -c "! kill -0 $W2PID"
finish
