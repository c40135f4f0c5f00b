#!/usr/bin/env bash
# test_local_e2e.sh - a whole migration through the real services: conductor,
# scheduler and two workers on the real stack, a `local` instance with three
# disks (one sparse 8 GiB). Execute (the worker running REPLICATE_DISKS is
# killed -9: the task runs again on the other worker), change blocks, execute
# again (only the changes move), kill -9 a task process (ERROR naming the
# signal, cleanup runs), execute again, deploy; the deployed disks are
# bit-identical to the sources (qemu-img compare).
# Usage: test_local_e2e.sh BUILD_DIR SOURCE_DIR STACK_DIR
set -u
. "$(dirname "$0")/../integration/lib.sh"
BUILD=$1 SRC=$2 STACK=$3
eval "$("$SRC/deploy/stack.sh" env "$STACK")"
TMP=$(mktemp -d /var/tmp/ekman-e2e.XXXXXX)
chmod 755 "$TMP"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do pkill -KILL -P "$p" 2>/dev/null; kill -KILL "$p" 2>/dev/null; done
  wait 2>/dev/null; rm -rf "$TMP"
}
trap cleanup EXIT
. "$(dirname "$0")/../integration/conductor_lib.sh"
PORT=$((EKMAN_API_PORT + 40))
URL="https://127.0.0.1:$PORT"
R=$RANDOM$RANDOM
DB="${EKMAN_PG_ADMIN_URL/\/postgres\?//ekman?}"
MiB=1048576

# fast heartbeats: a lost worker is noticed in about 3 s
for w in 1 2; do
  # each worker its own key pair; the endpoints' directories are in TMP, so
  # the workers' [local] allowed_roots is TMP
  sed -e "s|^\[worker\]|[scheduler]\nheartbeat_interval = 1\nmissed_heartbeats = 3\n\n[worker]\nhost = e2e$w-$R\nproviders = local\ncapacity = 2\nbandwidth_limit = 64\nkey_file = $TMP/w$w.key|" \
      -e "s|^allowed_roots = .*/local$|allowed_roots = $TMP|" \
      -e "s/^port = .*/port = $PORT/" "$EKMAN_CONFIG" > "$TMP/w$w.conf"
done
cp "$TMP/w1.conf" "$TMP/svc.conf"
"$BUILD/conductor/ekman-conductor" --config "$TMP/svc.conf" > "$TMP/c.log" 2>&1 & PIDS+=($!)
"$BUILD/scheduler/ekman-scheduler" --config "$TMP/svc.conf" > "$TMP/s.log" 2>&1 & PIDS+=($!)
start_w() { "$BUILD/worker/ekman-worker" --config "$TMP/w$1.conf" >> "$TMP/w$1.log" 2>&1 & eval "W$1=$!"; PIDS+=($!); }
start_w 1; start_w 2
check "the conductor answers" wait_for 60 ek_curl -sf "$URL/healthz"
check "two workers registered UP" wait_for 30 bash -c "[ \"\$(psql '$DB' -Atqc \"SELECT count(*) FROM services WHERE host LIKE 'e2e%-$R' AND status = 'UP'\")\" = 2 ]"
check "each worker announced a key pair of its own (the conductor seals its tasks for it)" \
  test "$(psql "$DB" -Atqc "SELECT count(DISTINCT specs->>'box_key_id') FROM services WHERE host LIKE 'e2e%-$R' AND status = 'UP'")" = 2
check "the workers' private keys are files of mode 0600" \
  test "$(stat -c %a "$TMP/w1.key")$(stat -c %a "$TMP/w2.key")" = 600600

# --- the source instance ------------------------------------------------------------
S=$TMP/src D=$TMP/dst
mkdir -p "$S" "$D"; chmod 755 "$S" "$D"
rnd() { dd if=/dev/urandom of="$1" bs=65536 seek=$(($2 / 65536)) count=$(($3 / 65536)) conv=notrunc status=none; }
truncate -s 8G "$S/web01-root.img"; rnd "$S/web01-root.img" 0 $((4 * MiB)); rnd "$S/web01-root.img" $((3 << 30)) $MiB
truncate -s 256M "$TMP/data.raw"; rnd "$TMP/data.raw" 0 $((8 * MiB))
qemu-img convert -q -f raw -O qcow2 "$TMP/data.raw" "$S/web01-data.qcow2"; rm "$TMP/data.raw"
rnd "$S/web01-swap.img" 0 $((384 * MiB))   # enough data that a copy takes a moment
sed "s|@DIR@|$S|g" "$SRC/tests/fixtures/local/transfer-vm.xml.in" > "$S/web01.xml"
declare -A FMT=([vda]=raw [vdb]=qcow2 [sdc]=raw) IMG=([vda]=web01-root.img [vdb]=web01-data.qcow2 [sdc]=web01-swap.img)
same() { # same DIR: the three disks of DIR equal the sources
  local d
  for d in vda vdb sdc; do qemu-img compare -q -f raw -F "${FMT[$d]}" "$1/disk-$d.img" "$S/${IMG[$d]}" || return 1; done
}

create_user "e2e-$R" "e2e-$R" member "E2e-pass-$R"
read -r TOK P < <(login "e2e-$R" "E2e-pass-$R")
SRC_EP=$(api "$TOK" POST "/v1/$P/endpoints" "{\"endpoint\":{\"name\":\"src\",\"type\":\"local\",\"connection_info\":{\"path\":\"$S\"}}}" | jq -r .endpoint.id)
DST_EP=$(api "$TOK" POST "/v1/$P/endpoints" "{\"endpoint\":{\"name\":\"dst\",\"type\":\"local\",\"connection_info\":{\"path\":\"$D\"}}}" | jq -r .endpoint.id)
check "the source instance is listed by a worker" test "$(api "$TOK" GET "/v1/$P/endpoints/$SRC_EP/instances" | jq -r '.instances[0].name')" = web01
T=$(api "$TOK" POST "/v1/$P/transfers" "{\"transfer\":{\"origin_endpoint_id\":\"$SRC_EP\",\"destination_endpoint_id\":\"$DST_EP\",\"instances\":[\"web01\"],\"network_map\":{\"default\":\"lan\",\"br-lan\":\"bridge:br0\"},\"skip_os_morphing\":true}}" | jq -r .transfer.id)
check "transfer created" test "$(code)" = 201

replicate_host() { psql "$DB" -Atqc "SELECT host FROM tasks WHERE execution_id = '$1' AND task_type = 'REPLICATE_DISKS' AND status = 'RUNNING'"; }
sent_bytes() { # data bytes REPLICATE_DISKS of execution $1 reported sending
  psql "$DB" -Atqc "SELECT v.message FROM task_events v JOIN tasks t ON t.id = v.task_id WHERE t.execution_id = '$1' AND t.task_type = 'REPLICATE_DISKS'" ; }

# --- 1: full copy; the worker replicating is killed -9 -------------------------------
E1=$(api "$TOK" POST "/v1/$P/transfers/$T/executions" '{}' | jq -r .execution.id)
wait_for 120 bash -c "[ -n \"\$(psql '$DB' -Atqc \"SELECT host FROM tasks WHERE execution_id = '$E1' AND task_type = 'REPLICATE_DISKS' AND status = 'RUNNING'\")\" ]"
h=$(replicate_host "$E1")
sleep 1
if [ "$h" = "e2e1-$R" ]; then victim=$W1 n=1; else victim=$W2 n=2; fi
pkill -KILL -P "$victim"; kill -KILL "$victim"
check "the replicating worker was found and killed (host $h)" test -n "$h"
check "execution 1 completes after the worker was lost" test "$(wait_execution "$TOK" "$P" "$T" "$E1" 300)" = COMPLETED
other=$(psql "$DB" -Atqc "SELECT host FROM tasks WHERE execution_id = '$E1' AND task_type = 'REPLICATE_DISKS'")
check "REPLICATE_DISKS finished on the other worker ($other)" test -n "$other" -a "$other" != "$h"
check "it was told why it ran again" test "$(psql "$DB" -Atqc "SELECT count(*) FROM task_events v JOIN tasks t ON t.id = v.task_id WHERE t.execution_id = '$E1' AND v.message LIKE '%stopped answering%'")" -ge 1
check "the replicas equal the sources" same "$D/web01"
api "$TOK" GET "/v1/$P/transfers/$T/executions/$E1" > "$TMP/e1.json"
check "per-disk progress: one step per disk" test "$(jq '[.execution.tasks[] | select(.task_type == "REPLICATE_DISKS") | .progress_updates | length][0]' "$TMP/e1.json")" -ge 3
start_w "$n"

# --- 2: change blocks; only they move ---------------------------------------------------
rnd "$S/web01-root.img" $((5 << 30)) $((256 * 1024))
qemu-io -f qcow2 -c "write -P 0x5a 1M 128k" "$S/web01-data.qcow2" > /dev/null
rnd "$S/web01-swap.img" $((10 * MiB)) $((64 * 1024))
changed=$((256 * 1024 + 128 * 1024 + 64 * 1024))
E2=$(api "$TOK" POST "/v1/$P/transfers/$T/executions" '{}' | jq -r .execution.id)
check "execution 2 completes" test "$(wait_execution "$TOK" "$P" "$T" "$E2" 300)" = COMPLETED
check "the replicas equal the changed sources" same "$D/web01"
api "$TOK" GET "/v1/$P/transfers/$T?include_task_info=true" > "$TMP/t.json"
moved=$(jq '[.transfer.info.web01.volumes_info[].last_sync.data_bytes] | add' "$TMP/t.json")
echo "# changed $changed bytes, execution 2 sent $moved data bytes"
check "only the changed blocks moved ($moved <= 1.05 x $changed)" test "$moved" -le $((changed * 105 / 100)) -a "$moved" -ge "$changed"

# --- 3: a task process killed -9: ERROR naming the signal, cleanup runs --------------------
rnd "$S/web01-swap.img" 0 $((384 * MiB))
E3=$(api "$TOK" POST "/v1/$P/transfers/$T/executions" '{}' | jq -r .execution.id)
wait_for 120 bash -c "[ -n \"\$(psql '$DB' -Atqc \"SELECT host FROM tasks WHERE execution_id = '$E3' AND task_type = 'REPLICATE_DISKS' AND status = 'RUNNING'\")\" ]"
# (the workers copy at most 64 MiB/s: the 384 MiB take seconds, time to find the process)
child=""
for _ in $(seq 100); do
  for c in $(pgrep -f -- "--task-child"); do
    # the task process of REPLICATE_DISKS is the one that started qemu-nbd or the writer
    pgrep -P "$c" > /dev/null && { child=$c; break; }
  done
  [ -n "$child" ] && break
  sleep 0.1
done
check "the REPLICATE_DISKS task process was found" test -n "$child"
kill -KILL "$child"
check "execution 3 ends in ERROR" test "$(wait_execution "$TOK" "$P" "$T" "$E3" 120)" = ERROR
api "$TOK" GET "/v1/$P/transfers/$T/executions/$E3" > "$TMP/e3.json"
check "the error names the signal" grep -q "killed by SIGKILL" <<<"$(jq -r '.execution.tasks[] | select(.task_type == "REPLICATE_DISKS") | .exception_details' "$TMP/e3.json")"
check "the target resources were cleaned up" test "$(jq -r '.execution.tasks[] | select(.task_type == "DELETE_TRANSFER_TARGET_RESOURCES") | .status' "$TMP/e3.json")" = COMPLETED
check "both workers still run" kill -0 "$W1" "$W2"
E4=$(api "$TOK" POST "/v1/$P/transfers/$T/executions" '{}' | jq -r .execution.id)
check "an execution after the failure completes" test "$(wait_execution "$TOK" "$P" "$T" "$E4" 300)" = COMPLETED
check "the replicas equal the sources again" same "$D/web01"

# --- 4: deploy ------------------------------------------------------------------------
DEP=$(api "$TOK" POST "/v1/$P/deployments" "{\"deployment\":{\"transfer_id\":\"$T\",\"clone_disks\":true,\"skip_os_morphing\":true}}" | jq -r .deployment.id)
for _ in $(seq 300); do st=$(api "$TOK" GET "/v1/$P/deployments/$DEP" | jq -r .deployment.last_execution_status); [ "$st" = COMPLETED ] || [ "$st" = ERROR ] && break; sleep 0.5; done
check "the deployment completes" test "$st" = COMPLETED
check "the deployed disks are bit-identical to the sources" same "$D/web01/deployed"
check "the deployed domain XML names the source's CPUs" grep -q "<vcpu>2</vcpu>\|<vcpu placement=\"static\">2</vcpu>" "$D/web01/web01.xml"
for p in W1 W2; do
  eval "pid=\$$p"; kill -TERM "$pid"; wait "$pid"; rc=$?
  check "worker $p exits 0 on SIGTERM (got $rc)" test $rc -eq 0
done
finish
