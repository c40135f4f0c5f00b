#!/usr/bin/env bash
# test_conductor.sh - the conductor against the real stack: secrets sealed at rest
# and masked, tenants, malformed requests, task graphs run in dependency order by
# a stand-in worker, errors with cleanup, cancellation, a broker and conductor
# restart mid-execution, deployments, schedules, listing calls and metrics.
# Usage: test_conductor.sh BUILD_DIR SOURCE_DIR STACK_DIR
set -u
. "$(dirname "$0")/lib.sh"
BUILD=$1 SRC=$2 STACK=$3
eval "$("$SRC/deploy/stack.sh" env "$STACK")"
TMP=$(mktemp -d /tmp/ekman-conductor.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
. "$(dirname "$0")/conductor_lib.sh"
PORT=$((EKMAN_API_PORT + 10))
URL="https://127.0.0.1:$PORT"
R=$RANDOM$RANDOM

start_conductor c1 "$PORT"
start_worker w1

create_user "admin-$R" "admins-$R" admin "Admin-pass-$R"
create_user "alice-$R" "proj-a-$R" member "Alice-pass-$R"
create_user "bob-$R" "proj-b-$R" member "Bob-pass-$R"
read -r ADMIN ADMIN_P < <(login "admin-$R" "Admin-pass-$R")
read -r A PA < <(login "alice-$R" "Alice-pass-$R")
read -r B PB < <(login "bob-$R" "Bob-pass-$R")
check "three users log in" test -n "$A" -a -n "$B" -a -n "$ADMIN" -a "$PA" != "$PB"
api "" POST /v1/auth/tokens "{\"auth\":{\"username\":\"alice-$R\",\"password\":\"wrong\"}}" > /dev/null
check "a wrong password is 401" test "$(code)" = 401

# --- secrets are sealed at rest and masked on the way out ---------------------------
SECRET="Sup3r-Secret-$R"
KEY_B64=$(printf -- '-----BEGIN OPENSSH PRIVATE KEY-----\nkey-material-%s\n-----END OPENSSH PRIVATE KEY-----\n' "$R" | base64 -w0)
EP_O=$(api "$A" POST "/v1/$PA/endpoints" "{\"endpoint\":{\"name\":\"olvm-$R\",\"type\":\"ovirt\",\"connection_info\":{\"url\":\"https://engine.example/ovirt-engine/api\",\"username\":\"admin@internal\",\"password\":\"$SECRET\",\"allow_untrusted\":true}}}" | jq -r .endpoint.id)
check "ovirt endpoint created (201)" test "$(code)" = 201
EP_L=$(api "$A" POST "/v1/$PA/endpoints" "{\"endpoint\":{\"name\":\"kvm-$R\",\"type\":\"libvirt\",\"connection_info\":{\"host\":\"127.0.0.1\",\"port\":2222,\"username\":\"ekman-libvirt\",\"private_key\":\"$KEY_B64\"}}}" | jq -r .endpoint.id)
check "libvirt endpoint created (201)" test "$(code)" = 201
EP_S=$(api "$A" POST "/v1/$PA/endpoints" "{\"endpoint\":{\"name\":\"dir-$R\",\"type\":\"local\",\"connection_info\":{\"path\":\"/var/tmp\"}}}" | jq -r .endpoint.id)
api "$A" GET "/v1/$PA/endpoints/$EP_O" > "$TMP/ep.json"
check "GET shows the password masked" test "$(jq -r .endpoint.connection_info.password "$TMP/ep.json")" = "***"
check "GET shows the other fields" test "$(jq -r .endpoint.connection_info.username "$TMP/ep.json")" = "admin@internal"
api "$A" GET "/v1/$PA/endpoints/$EP_L" > "$TMP/ep2.json"
check "GET shows the private key masked" test "$(jq -r .endpoint.connection_info.private_key "$TMP/ep2.json")" = "***"
pg_dump "${EKMAN_PG_ADMIN_URL/\/postgres\?//ekman?}" > "$TMP/dump.sql"
check "the database dump holds the endpoint" grep -q "olvm-$R" "$TMP/dump.sql"
check "the password is nowhere in the database dump" bash -c "! grep -q '$SECRET' '$TMP/dump.sql'"
check "the private key is nowhere in the dump (base64 or clear)" bash -c "! grep -qe 'key-material-$R' -e '${KEY_B64:0:40}' '$TMP/dump.sql'"
check "no user password in the dump" bash -c "! grep -q 'Alice-pass-$R' '$TMP/dump.sql'"
check "no API token in the dump" bash -c "! grep -q -- '$A' '$TMP/dump.sql'"

# --- tenants and bad requests ---------------------------------------------------------
rows_before=$(psql_admin -c "SELECT (SELECT count(*) FROM endpoints) + (SELECT count(*) FROM transfers) + (SELECT count(*) FROM executions)")
api "$B" GET "/v1/$PB/endpoints/$EP_O" > "$TMP/x.json"
check "project B gets 404 for A's endpoint" test "$(code)" = 404
check "the 404 tells nothing about it" bash -c "! grep -q olvm '$TMP/x.json'"
api "$B" GET "/v1/$PA/endpoints/$EP_O" > /dev/null
check "project B gets 404 in A's project path" test "$(code)" = 404
check "B's endpoint list does not show A's" test "$(api "$B" GET "/v1/$PB/endpoints" | jq '.endpoints | length')" = 0
check "an admin sees A's endpoint" test "$(api "$ADMIN" GET "/v1/$ADMIN_P/endpoints/$EP_O" | jq -r .endpoint.name)" = "olvm-$R"
api "" GET "/v1/$PA/endpoints" > /dev/null
check "no token is 401" test "$(code)" = 401
api "not-a-token" GET "/v1/$PA/endpoints" > /dev/null
check "a bad token is 401" test "$(code)" = 401
msg=$(api "$A" POST "/v1/$PA/endpoints" '{"endpoint": {"name": "x", ')
check "malformed JSON is 400" test "$(code)" = 400
check "malformed JSON says so" grep -q "malformed JSON" <<<"$msg"
msg=$(api "$A" POST "/v1/$PA/endpoints" '{"endpoint": {"type": "local", "connection_info": {"path": "/x"}}}')
check "a missing field is 400 naming it" test "$(code)" = 400 -a "$(jq -r .error.message <<<"$msg")" = "endpoint.name is required"
msg=$(api "$A" POST "/v1/$PA/endpoints" '{"endpoint": {"name": 5, "type": "local", "connection_info": {"path": "/x"}}}')
check "a wrong type is 400 naming the field" test "$(jq -r .error.message <<<"$msg")" = "endpoint.name must be a string, not integer"
msg=$(api "$A" POST "/v1/$PA/endpoints" '{"endpoint": {"name": "y", "type": "ovirt", "connection_info": {"url": "https://e", "username": "u"}}}')
check "schema errors name the nested field" test "$(jq -r .error.message <<<"$msg")" = "endpoint.connection_info.password is required"
msg=$(api "$A" POST "/v1/$PA/endpoints" '{"endpoint": {"name": "y", "type": "vmware", "connection_info": {}}}')
check "an unknown provider is 400" test "$(code)" = 400
msg=$(api "$A" POST "/v1/$PA/transfers" "{\"transfer\": {\"origin_endpoint_id\": \"$EP_S\", \"destination_endpoint_id\": \"$EP_S\", \"instances\": \"vm1\"}}")
check "transfer.instances of the wrong type is 400 naming it" test "$(jq -r .error.message <<<"$msg")" = "transfer.instances must be an array, not string"
msg=$(api "$A" POST "/v1/$PA/transfers" "{\"transfer\": {\"origin_endpoint_id\": \"$EP_S\", \"destination_endpoint_id\": \"$EP_O\", \"instances\": [\"vm1\"], \"destination_environment\": {\"default_optimized_for\": \"gaming\"}}}")
check "a bad destination option is 400 naming it" grep -q "transfer.destination_environment.default_optimized_for must be one of" <<<"$(jq -r .error.message <<<"$msg")"
msg=$(api "$A" POST "/v1/$PA/transfers" "{\"transfer\": {\"origin_endpoint_id\": \"$EP_O\", \"destination_endpoint_id\": \"$EP_S\", \"instances\": [\"vm1\"]}}")
check "ovirt as a source is refused" grep -q "cannot be a source" <<<"$msg"
api "$A" GET "/v1/$PA/nothing-here" > /dev/null
check "an unknown route is 404" test "$(code)" = 404
api "$A" DELETE "/v1/$PA/providers" > /dev/null
check "a wrong method is 405" test "$(code)" = 405
rows_after=$(psql_admin -c "SELECT (SELECT count(*) FROM endpoints) + (SELECT count(*) FROM transfers) + (SELECT count(*) FROM executions)")
check "no bad request left a row behind" test "$rows_before" = "$rows_after"

# --- a transfer execution, task by task --------------------------------------------------
T=$(api "$A" POST "/v1/$PA/transfers" "{\"transfer\": {\"origin_endpoint_id\": \"$EP_S\", \"destination_endpoint_id\": \"$EP_S\", \"instances\": [\"vm1\", \"vm2\"], \"notes\": \"first\"}}" | jq -r .transfer.id)
check "transfer created (201)" test "$(code)" = 201
E=$(api "$A" POST "/v1/$PA/transfers/$T/executions" '{"execution": {"shutdown_instances": true}}' | jq -r .execution.id)
check "execution created (201)" test "$(code)" = 201
check "the execution completes" test "$(wait_execution "$A" "$PA" "$T" "$E" 60)" = COMPLETED
api "$A" GET "/v1/$PA/transfers/$T/executions/$E" > "$TMP/exec.json"
check "20 tasks (10 per instance, shutdown included)" test "$(jq '.execution.tasks | length' "$TMP/exec.json")" = 20
check "every task completed" test "$(jq '[.execution.tasks[] | select(.status != "COMPLETED")] | length' "$TMP/exec.json")" = 0
check "tasks carry events" test "$(jq '[.execution.tasks[] | .events | length] | add' "$TMP/exec.json")" = 20
check "tasks carry progress" test "$(jq -r '.execution.tasks[0].progress_updates[0].current_step' "$TMP/exec.json")" = 50
# dependency order: each task ran after all its parents
jq -r '.execution.tasks[] | .id + " " + (.depends_on | join(","))' "$TMP/exec.json" > "$TMP/deps"
order_ok=1
while read -r id deps; do
  t=$(awk -v id="$id" '$2 == id {print $1}' "$TMP/w1.tasks")
  for d in ${deps//,/ }; do
    td=$(awk -v id="$d" '$2 == id {print $1}' "$TMP/w1.tasks")
    [ -n "$t" ] && [ -n "$td" ] && [ "$td" -le "$t" ] || order_ok=0
  done
done < "$TMP/deps"
check "tasks were published in dependency order" test $order_ok = 1
api "$A" GET "/v1/$PA/transfers/$T?include_task_info=true" > "$TMP/t.json"
check "task results are merged into the instance's info" test "$(jq -r '.transfer.info.vm1.volumes_info[0].written_by' "$TMP/t.json")" = REPLICATE_DISKS
check "every instance has its export_info" test "$(jq -r '.transfer.info.vm2.export_info.from' "$TMP/t.json")" = GET_INSTANCE_INFO
check "transfer shows the last status" test "$(jq -r .transfer.last_execution_status "$TMP/t.json")" = COMPLETED
check "task info is hidden unless asked" test "$(api "$A" GET "/v1/$PA/transfers/$T" | jq 'has("transfer") and (.transfer | has("info") | not)')" = true
E2=$(api "$A" POST "/v1/$PA/transfers/$T/executions" '{}' | jq -r .execution.id)
api "$A" POST "/v1/$PA/transfers/$T/executions" '{}' > /dev/null
check "a second execution while one runs is 409" test "$(code)" = 409
check "the second execution completes" test "$(wait_execution "$A" "$PA" "$T" "$E2" 60)" = COMPLETED
check "the second execution's REPLICATE_DISKS is incremental" test "$(psql_admin -c "SELECT params->>'incremental' FROM tasks WHERE execution_id = '$E2' AND task_type = 'REPLICATE_DISKS' LIMIT 1")" = true

# --- an injected error runs the cleanup tasks and ends in ERROR -------------------------------
stop_proc w1
start_worker w2 --fail REPLICATE_DISKS
E3=$(api "$A" POST "/v1/$PA/transfers/$T/executions" '{}' | jq -r .execution.id)
check "a failing execution ends in ERROR" test "$(wait_execution "$A" "$PA" "$T" "$E3" 60)" = ERROR
check "REPLICATE_DISKS is ERROR" test "$(task_status "$A" "$PA" "$T" "$E3" REPLICATE_DISKS vm1)" = ERROR
check "source resources were cleaned up" test "$(task_status "$A" "$PA" "$T" "$E3" DELETE_TRANSFER_SOURCE_RESOURCES vm1)" = COMPLETED
check "target resources were cleaned up" test "$(task_status "$A" "$PA" "$T" "$E3" DELETE_TRANSFER_TARGET_RESOURCES vm2)" = COMPLETED
check "the error message is kept" grep -q "injected failure" <<<"$(api "$A" GET "/v1/$PA/transfers/$T/executions/$E3" | jq -r '.execution.tasks[].exception_details // empty')"

# --- cancel --------------------------------------------------------------------------------
stop_proc w2
start_worker w3 --hang REPLICATE_DISKS
E4=$(api "$A" POST "/v1/$PA/transfers/$T/executions" '{}' | jq -r .execution.id)
wait_for 30 bash -c "[ \"\$(psql \"${EKMAN_PG_ADMIN_URL/\/postgres\?//ekman?}\" -Atqc \"SELECT count(*) FROM tasks WHERE execution_id = '$E4' AND task_type = 'REPLICATE_DISKS' AND status = 'RUNNING'\")\" = 2 ]"
api "$A" POST "/v1/$PA/transfers/$T/executions/$E4/actions" '{"cancel": {"force": false}}' > /dev/null
check "cancel is accepted (204)" test "$(code)" = 204
check "a cancelled execution ends CANCELED" test "$(wait_execution "$A" "$PA" "$T" "$E4" 60)" = CANCELED
check "the running task was cancelled by its worker" test "$(task_status "$A" "$PA" "$T" "$E4" REPLICATE_DISKS vm1)" = CANCELED
check "cleanup ran after the cancel" test "$(task_status "$A" "$PA" "$T" "$E4" DELETE_TRANSFER_TARGET_RESOURCES vm1)" = COMPLETED
api "$A" POST "/v1/$PA/transfers/$T/executions/$E4/actions" '{"cancel": {"force": false}}' > /dev/null
check "cancelling an ended execution is 409" test "$(code)" = 409
E5=$(api "$A" POST "/v1/$PA/transfers/$T/executions" '{}' | jq -r .execution.id)
wait_for 30 bash -c "[ \"\$(psql \"${EKMAN_PG_ADMIN_URL/\/postgres\?//ekman?}\" -Atqc \"SELECT count(*) FROM tasks WHERE execution_id = '$E5' AND task_type = 'REPLICATE_DISKS' AND status = 'RUNNING'\")\" = 2 ]"
api "$A" POST "/v1/$PA/transfers/$T/executions/$E5/actions" '{"cancel": {"force": true}}' > /dev/null
check "a forced cancel ends CANCELED" test "$(wait_execution "$A" "$PA" "$T" "$E5" 60)" = CANCELED
check "the task is FORCE_CANCELED" test "$(task_status "$A" "$PA" "$T" "$E5" REPLICATE_DISKS vm2)" = FORCE_CANCELED
stop_proc w3

# --- broker and conductor restart in the middle --------------------------------------------------
start_worker w4 --delay-ms 400
E6=$(api "$A" POST "/v1/$PA/transfers/$T/executions" '{}' | jq -r .execution.id)
sleep 2
beam=$(cat "$STACK/rabbitmq/rabbit.pid")
kill -KILL "$beam"
stop_proc c1 KILL
sleep 1
"$SRC/deploy/stack.sh" up "$STACK" > "$TMP/restack.log" 2>&1
check "the broker came back" test $? -eq 0
start_conductor c1 "$PORT"
check "after a broker and conductor restart the execution completes" test "$(wait_execution "$A" "$PA" "$T" "$E6" 180)" = COMPLETED
check "all its tasks completed" test "$(psql_admin -c "SELECT count(*) FROM tasks WHERE execution_id = '$E6' AND status <> 'COMPLETED'")" = 0
ran=$(psql_admin -c "SELECT string_agg(id::text, ' ') FROM tasks WHERE execution_id = '$E6'")
dup=0; for id in $ran; do n=$(grep -c " $id " "$TMP/w4.tasks"); [ "$n" = 1 ] || dup=1; done
check "no task of it ran twice" test $dup = 0
stop_proc w4

# --- deployment ----------------------------------------------------------------------------
start_worker w5
D=$(api "$A" POST "/v1/$PA/deployments" "{\"deployment\": {\"transfer_id\": \"$T\", \"clone_disks\": false}}" | jq -r .deployment.id)
check "deployment created (201)" test "$(code)" = 201
for _ in $(seq 200); do st=$(api "$A" GET "/v1/$PA/deployments/$D" | jq -r .deployment.last_execution_status); [ "$st" = COMPLETED ] || [ "$st" = ERROR ] && break; sleep 0.3; done
check "the deployment completes" test "$st" = COMPLETED
api "$A" GET "/v1/$PA/deployments/$D" > "$TMP/d.json"
check "the deployment ran OS morphing" test "$(jq -r '[.deployment.tasks[] | select(.task_type == "OS_MORPHING")][0].status' "$TMP/d.json")" = COMPLETED
check "rollback tasks were not needed" test "$(jq -r '[.deployment.tasks[] | select(.task_type == "CLEANUP_FAILED_INSTANCE_DEPLOYMENT")][0].status' "$TMP/d.json")" = UNSCHEDULED
check "the transfer result is saved" test "$(jq -r '.deployment.transfer_result.vm1.from' "$TMP/d.json")" = FINALIZE_INSTANCE_DEPLOYMENT
check "without clone_disks the transfer forgets the disks the VM now uses" test "$(api "$A" GET "/v1/$PA/transfers/$T?include_task_info=true" | jq -c .transfer.info.vm1.volumes_info)" = "[]"
api "$B" GET "/v1/$PB/deployments/$D" > /dev/null
check "B cannot see A's deployment" test "$(code)" = 404

# --- listing calls answered by a worker, schedules, metrics ----------------------------------
check "instances are listed through a worker" test "$(api "$A" GET "/v1/$PA/endpoints/$EP_S/instances" | jq -r '.instances[0].query')" = instances
check "validate-connection answers" test "$(api "$A" POST "/v1/$PA/endpoints/$EP_S/actions" '{"validate-connection": null}' | jq -r '."validate-connection".valid')" = true
S=$(api "$A" POST "/v1/$PA/transfers/$T/schedules" '{"schedule": {"minute": "*/5", "hour": "1-3"}, "enabled": true}' | jq -r .schedule.id)
check "schedule created (201)" test "$(code)" = 201
api "$A" POST "/v1/$PA/transfers/$T/schedules" '{"schedule": {"minute": "61"}}' > "$TMP/s.json"
check "a bad cron field is 400 naming it" test "$(jq -r .error.message "$TMP/s.json")" = "schedule.minute: '61' is outside 0-59"
api "$A" PUT "/v1/$PA/transfers/$T/schedules/$S" '{"enabled": false}' > "$TMP/s.json"
check "schedule disabled" test "$(jq -r .schedule.enabled "$TMP/s.json")" = false
api "$A" DELETE "/v1/$PA/transfers/$T/schedules/$S" > /dev/null
check "schedule deleted (204)" test "$(code)" = 204
ek_curl -s -H "X-Auth-Token: $ADMIN" "$URL/metrics" > "$TMP/metrics"
check "metrics count dispatched tasks" grep -q "^ekman_tasks_dispatched_total [1-9]" "$TMP/metrics"
check "metrics show executions by status" grep -q '^ekman_executions{status="COMPLETED"}' "$TMP/metrics"

# --- clean shutdown (under the sanitizers a leak makes the exit code non-zero) -------------
for p in c1 w5; do
  eval "pid=\$PID_$p"; kill -TERM "$pid"; wait "$pid"; rc=$?
  check "$p exits 0 on SIGTERM (got $rc)" test $rc -eq 0
done
check "no sanitizer report in any log" bash -c "! grep -l 'Sanitizer' '$TMP'/*.log"

# --- nothing secret in any log --------------------------------------------------------------
check "no log holds the endpoint password" bash -c "! grep -rq '$SECRET' '$TMP'/*.log"
check "no log holds a user password" bash -c "! grep -rq 'Alice-pass-$R' '$TMP'/*.log"
finish
