#!/usr/bin/env bash
# test_worker_restart.sh - nothing strands an execution when a worker dies and
# a new one starts at once under the same host name (issue #18, items 1-3):
#   1 a task runs on host H; its worker is killed (-9) and ekman-worker starts
#     again as H at once, with a task process of the dead one still alive
#     (planted: a process group recorded in state_dir/tasks, as the
#     supervisor records each task process). The new worker kills that group
#     before it registers; its registration hands the task back at once -
#     missed_heartbeats is set so high that the reaper cannot be what does it
#     - and the execution COMPLETES on another worker.
#   2 a soft cancel of a task whose worker was killed: CANCELLING, then
#     CANCELED once a new instance of the host registers (not CANCELLING for
#     good).
#   3 a heartbeat of the replaced instance, arriving late, changes nothing.
# The running task is held by the stand-in worker (ek-test-worker --hang):
# what is under test is what the scheduler, conductor and the real
# ekman-worker do when the worker of a host is replaced.
# Usage: test_worker_restart.sh BUILD_DIR SOURCE_DIR STACK_DIR
set -u
. "$2/tests/integration/lib.sh"
BUILD=$1 SRC=$2 STACK=$3
eval "$("$SRC/deploy/stack.sh" env "$STACK")"
TMP=$(mktemp -d /tmp/ekman-fault-restart.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
  [ -n "${ORPHAN:-}" ] && kill -KILL -- "-$ORPHAN" 2>/dev/null
  wait 2>/dev/null; rm -rf "$TMP"
}
trap cleanup EXIT
. "$SRC/tests/integration/conductor_lib.sh"
PORT=$((EKMAN_API_PORT + 70))
URL="https://127.0.0.1:$PORT"
R=$RANDOM$RANDOM
H=flt$R
DB="${EKMAN_PG_ADMIN_URL/\/postgres\?//ekman?}"
q() { psql "$DB" -Atqc "$1"; }

# 2 s heartbeats; a silent worker is DOWN only after 120 s: the test ends before
sed -e "s|^state_dir = .*|state_dir = $TMP/state|" \
    -e "s/^\[worker\]/[scheduler]\nheartbeat_interval = 2\nmissed_heartbeats = 60\n\n[worker]\nhost = $H\nproviders = ova/" \
    "$EKMAN_CONFIG" > "$TMP/fast.conf"
mkdir -p "$TMP/state"
EKMAN_CONFIG=$TMP/fast.conf
# workers an earlier test killed (-9, seconds ago) are still UP in the registry;
# with this test's 120 s liveness window the conductor would hold the tasks
# while any of them counts as alive instead of offering them to the stand-in
# worker, which never heartbeats. The stack is this test's alone (under its
# lock) and none of its workers runs yet: every registered worker goes DOWN.
q "UPDATE services SET status = 'DOWN' WHERE binary_name = 'ekman-worker' AND status = 'UP'" > /dev/null
start_conductor c1 "$PORT"
"$BUILD/scheduler/ekman-scheduler" --config "$TMP/fast.conf" > "$TMP/s1.log" 2>&1 &
PIDS+=($!)
check "the scheduler starts" wait_for 30 grep -q "scheduler started" "$TMP/s1.log"

create_user "flt-$R" "flt-p-$R" member "Flt-pass-$R"
read -r A PA < <(login "flt-$R" "Flt-pass-$R")
EP=$(api "$A" POST "/v1/$PA/endpoints" "{\"endpoint\":{\"name\":\"dir-$R\",\"type\":\"local\",\"connection_info\":{\"path\":\"/var/tmp\"}}}" | jq -r .endpoint.id)
T=$(api "$A" POST "/v1/$PA/transfers" "{\"transfer\": {\"origin_endpoint_id\": \"$EP\", \"destination_endpoint_id\": \"$EP\", \"instances\": [\"vm1\"]}}" | jq -r .transfer.id)
check "transfer created" test "$(code)" = 201
rd_status() { q "SELECT status FROM tasks WHERE execution_id = '$1' AND task_type = 'REPLICATE_DISKS'"; }
rd_host() { q "SELECT coalesce(host, '') FROM tasks WHERE execution_id = '$1' AND task_type = 'REPLICATE_DISKS'"; }
bounded_stop() { # bounded_stop NAME SIGNAL: like stop_proc, SIGKILL after 15 s
  local pid; eval "pid=\$PID_$1"
  kill "-$2" "$pid" 2>/dev/null
  for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && { echo "  $1 did not stop on $2: killed"; kill -KILL "$pid"; }
  wait "$pid" 2>/dev/null
}
start_real_worker() { # start_real_worker NAME: ekman-worker as host H
  "$BUILD/worker/ekman-worker" --config "$TMP/fast.conf" > "$TMP/$1.log" 2>&1 &
  eval "PID_$1=$!"; PIDS+=($!)
}

# --- 1 kill -9 + immediate restart ------------------------------------------------------------
start_worker "$H" --hang REPLICATE_DISKS
E1=$(api "$A" POST "/v1/$PA/transfers/$T/executions" '{}' | jq -r .execution.id)
check "REPLICATE_DISKS runs on $H" wait_for 60 bash -c "[ \"\$(psql '$DB' -Atqc \"SELECT status || host FROM tasks WHERE execution_id = '$E1' AND task_type = 'REPLICATE_DISKS'\")\" = RUNNING$H ]"
# a task process the killed worker left: a process group (leader and child)
setsid bash -c 'sleep 600 & exec sleep 600' < /dev/null > /dev/null 2>&1 &
ORPHAN=$!
sleep 0.3
stat_f() { awk '{sub(/^.*\) /, ""); print $'"$1"'}' "/proc/$2/stat"; }
eval "WPID=\$PID_$H"  # the worker about to be killed: the orphan's parent
mkdir -p "$TMP/state/tasks"
echo "$ORPHAN $(stat_f 20 "$ORPHAN") $WPID $(stat_f 20 "$WPID")" > "$TMP/state/tasks/$ORPHAN.pid"
group_live() { ps -e -o pgid=,stat= | awk -v g="$1" '$1 == g && $2 !~ /^Z/' | wc -l; }
members_before=$(group_live "$ORPHAN")
stop_proc "$H" KILL
T0=$(date +%s.%N)
start_real_worker wk1
check "the new worker kills what the dead one left before it takes work" wait_for 20 grep -q "killing a task process a previous worker instance left" "$TMP/wk1.log"
check "the planted group had two processes" test "$members_before" = 2
check "none of them lives" test "$(group_live "$ORPHAN")" = 0
check "its file is gone" test ! -e "$TMP/state/tasks/$ORPHAN.pid"
check "the task is handed back at once (not after missed heartbeats)" wait_for 10 bash -c "[ \"\$(psql '$DB' -Atqc \"SELECT status FROM tasks WHERE execution_id = '$E1' AND task_type = 'REPLICATE_DISKS'\")\" = PENDING ]"
T1=$(date +%s.%N)
RECOVER1=$(awk "BEGIN {print $T1 - $T0}")
echo "  handed back ${RECOVER1} s after the restart"
check "the scheduler says why" grep -q "replaced one that was running tasks" "$TMP/s1.log"
check "the task's events say it runs again" test "$(q "SELECT count(*) FROM task_events e JOIN tasks t ON t.id = e.task_id WHERE t.execution_id = '$E1' AND e.message LIKE '%runs again%'")" -ge 1
check "no worker was reaped for missed heartbeats" bash -c "! grep -q 'missed its heartbeats' '$TMP/s1.log'"
INST1=$(q "SELECT specs->>'instance_id' FROM services WHERE host = '$H' AND binary_name = 'ekman-worker'")
check "the new instance is registered" test -n "$INST1"
# the new instance has no local provider: the task goes to another worker once
# this one is down (stopped cleanly: service.stopping)
bounded_stop wk1 TERM
start_worker "w2$R"
check "the execution completes on its own" test "$(wait_execution "$A" "$PA" "$T" "$E1" 90)" = COMPLETED
T2=$(date +%s.%N)
echo "  execution 1 completed $(awk "BEGIN {print $T2 - $T0}") s after the restart"
bounded_stop "w2$R" TERM

# --- 2 soft cancel of a task whose worker is gone -----------------------------------------------
start_worker "$H" --hang REPLICATE_DISKS
E2=$(api "$A" POST "/v1/$PA/transfers/$T/executions" '{}' | jq -r .execution.id)
check "REPLICATE_DISKS of execution 2 runs on $H" wait_for 60 bash -c "[ \"\$(psql '$DB' -Atqc \"SELECT status || host FROM tasks WHERE execution_id = '$E2' AND task_type = 'REPLICATE_DISKS'\")\" = RUNNING$H ]"
stop_proc "$H" KILL
api "$A" POST "/v1/$PA/transfers/$T/executions/$E2/actions" '{"cancel": {"force": false}}' > /dev/null
check "soft cancel accepted" test "$(code)" = 204
check "the task is CANCELLING" wait_for 10 bash -c "[ \"\$(psql '$DB' -Atqc \"SELECT status FROM tasks WHERE execution_id = '$E2' AND task_type = 'REPLICATE_DISKS'\")\" = CANCELLING ]"
T0=$(date +%s.%N)
start_real_worker wk2
check "a new instance of $H ends the cancel: the task is CANCELED" wait_for 20 bash -c "[ \"\$(psql '$DB' -Atqc \"SELECT status FROM tasks WHERE execution_id = '$E2' AND task_type = 'REPLICATE_DISKS'\")\" = CANCELED ]"
T1=$(date +%s.%N)
RECOVER2=$(awk "BEGIN {print $T1 - $T0}")
echo "  the cancel of the lost task completed ${RECOVER2} s after the restart"
INST2=$(q "SELECT specs->>'instance_id' FROM services WHERE host = '$H' AND binary_name = 'ekman-worker'")
check "another instance id" test -n "$INST2" -a "$INST2" != "$INST1"

# --- 3 a late heartbeat of a replaced instance changes nothing ----------------------------------
OLD=$(jq -nc --arg h "$H" --arg i "$INST1" '{type: "service.heartbeat", version: "1.0", id: "late-\($i)", body: {host: $h, binary: "ekman-worker", topic: "ekman.worker.\($h)", capacity: 1, instance_id: $i, instance_started_ms: 1}}')
awk -v u="$(sed -n 's/^worker_transport_url = //p' "$TMP/fast.conf")" \
  '/^transport_url = / {print "transport_url = " u; next} {print}' "$TMP/fast.conf" > "$TMP/as-worker.conf"
"$BUILD/tests/integration/tools/ek-amqp-send" --config "$TMP/as-worker.conf" ekman.scheduler "$OLD"
check "the scheduler ignores it" wait_for 10 grep -q "ignoring a message of a replaced worker instance" "$TMP/s1.log"
check "the registered instance stays the new one" test "$(q "SELECT specs->>'instance_id' FROM services WHERE host = '$H' AND binary_name = 'ekman-worker'")" = "$INST2"
check "the worker still runs" kill -0 "$PID_wk2"
# the cleanup tasks of the cancelled execution run on a worker with the provider
bounded_stop wk2 TERM
start_worker "w3$R"
check "the cancelled execution ends CANCELED" test "$(wait_execution "$A" "$PA" "$T" "$E2" 60)" = CANCELED
bounded_stop "w3$R" TERM
echo "RESULT restart_handback_s=$RECOVER1 cancel_after_restart_s=$RECOVER2"
for f in s1 c1 wk1 wk2; do grep -E "ERROR|WARNING" "$TMP/$f.log" | sed "s/^/  [$f] /" | head -20; done
finish
