#!/usr/bin/env bash
# test_scheduler.sh - the scheduler on the real stack: workers register through
# heartbeats and a killed worker goes DOWN; a corrupt or unknown message on any
# queue is dead-lettered and every process keeps running; a schedule for every
# minute fires exactly one execution per minute for three minutes with two
# schedulers running.
# Usage: test_scheduler.sh BUILD_DIR SOURCE_DIR STACK_DIR
set -u
. "$(dirname "$0")/lib.sh"
BUILD=$1 SRC=$2 STACK=$3
eval "$("$SRC/deploy/stack.sh" env "$STACK")"
TMP=$(mktemp -d /tmp/ekman-sched.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
. "$(dirname "$0")/conductor_lib.sh"
PORT=$((EKMAN_API_PORT + 30))
URL="https://127.0.0.1:$PORT"
R=$RANDOM$RANDOM
DB="${EKMAN_PG_ADMIN_URL/\/postgres\?//ekman?}"

# fast heartbeats for the test
sed -e "s/^\[worker\]/[scheduler]\nheartbeat_interval = 1\nmissed_heartbeats = 3\n\n[worker]\nhost = reg-$R\nproviders = local/" "$EKMAN_CONFIG" > "$TMP/fast.conf"
EKMAN_CONFIG_ORIG=$EKMAN_CONFIG
EKMAN_CONFIG=$TMP/fast.conf
start_conductor c1 "$PORT"
for s in s1 s2; do
  "$BUILD/scheduler/ekman-scheduler" --config "$TMP/fast.conf" > "$TMP/$s.log" 2>&1 &
  eval "PID_$s=$!"; PIDS+=($!)
done
check "both schedulers start" wait_for 30 bash -c "grep -q 'scheduler started' '$TMP/s1.log' && grep -q 'scheduler started' '$TMP/s2.log'"

# --- registry --------------------------------------------------------------------------
"$BUILD/worker/ekman-worker" --config "$TMP/fast.conf" > "$TMP/wk.log" 2>&1 &
PID_wk=$!; PIDS+=($!)
svc() { psql "$DB" -Atqc "SELECT status FROM services WHERE host = 'reg-$R' AND binary_name = 'ekman-worker'"; }
check "a worker registers through its heartbeat" wait_for 20 bash -c "[ \"\$(psql '$DB' -Atqc \"SELECT status FROM services WHERE host = 'reg-$R'\")\" = UP ]"
check "its queue is its own" test "$(psql "$DB" -Atqc "SELECT topic FROM services WHERE host = 'reg-$R'")" = "ekman.worker.reg-$R"
check "it announces its capacity" test "$(psql "$DB" -Atqc "SELECT capacity FROM services WHERE host = 'reg-$R'")" = 4

# --- corrupt and unknown messages are dead-lettered; nobody dies -----------------------
SEND="$BUILD/tests/integration/tools/ek-amqp-send --config $TMP/fast.conf"
dead_count() { eval "$EKMAN_RABBITMQCTL -q list_queues -p ekman name messages" | awk -v q="$1.dead" '$1 == q {n = $2} END {print n + 0}'; }
declare -A before
for q in ekman.conductor ekman.scheduler ekman.worker "ekman.worker.reg-$R"; do before[$q]=$(dead_count "$q"); done
for q in ekman.conductor ekman.scheduler ekman.worker "ekman.worker.reg-$R"; do
  $SEND "$q" 'this is not json' 2>/dev/null
  $SEND "$q" '{"type":"no.such.type","version":"1.0","id":"x","body":{}}' 2>/dev/null
  $SEND "$q" '{"type":"task.completed","version":"9.0","id":"x","body":{}}' 2>/dev/null
done
export -f dead_count; export EKMAN_RABBITMQCTL
for q in ekman.conductor ekman.scheduler ekman.worker "ekman.worker.reg-$R"; do
  check "3 bad messages on $q are dead-lettered" wait_for 20 bash -c "[ \$(dead_count '$q') = $((before[$q] + 3)) ]"
done
check "the conductor logged why" grep -q "dead-lettering a malformed message" "$TMP/c1.log"
check "the worker logged why" grep -q "dead-lettering a malformed message" "$TMP/wk.log"
check "a scheduler logged why" bash -c "grep -q 'dead-lettering a malformed message' '$TMP/s1.log' '$TMP/s2.log'"
check "a newer major version is named in the log" grep -rq "speaks 1.x" "$TMP"
for p in c1 s1 s2 wk; do
  eval "pid=\$PID_$p"
  check "$p still runs" kill -0 "$pid"
done
check "the conductor still answers" ek_curl -sf "$URL/healthz" -o /dev/null

# --- a killed worker goes DOWN after three missed heartbeats ---------------------------
kill -KILL "$PID_wk"
check "a killed worker is DOWN within 8 s" wait_for 8 bash -c "[ \"\$(psql '$DB' -Atqc \"SELECT status FROM services WHERE host = 'reg-$R'\")\" = DOWN ]"
check "one scheduler reported it" test "$(cat "$TMP/s1.log" "$TMP/s2.log" | grep -c "service missed its heartbeats: DOWN host=reg-$R")" = 1

# --- every-minute schedule, two schedulers, three minutes ------------------------------
start_worker tw
create_user "sch-$R" "sch-$R" member "Sch-pass-$R"
read -r TOK P < <(login "sch-$R" "Sch-pass-$R")
EP=$(api "$TOK" POST "/v1/$P/endpoints" '{"endpoint":{"name":"dir","type":"local","connection_info":{"path":"/var/tmp"}}}' | jq -r .endpoint.id)
T=$(api "$TOK" POST "/v1/$P/transfers" "{\"transfer\":{\"origin_endpoint_id\":\"$EP\",\"destination_endpoint_id\":\"$EP\",\"instances\":[\"vm1\"]}}" | jq -r .transfer.id)
# a disabled schedule must never fire
api "$TOK" POST "/v1/$P/transfers/$T/schedules" '{"schedule": {"minute": "*"}, "enabled": false}' > /dev/null
S=$(api "$TOK" POST "/v1/$P/transfers/$T/schedules" '{"schedule": {"minute": "*"}, "enabled": true}' | jq -r .schedule.id)
check "the every-minute schedule is created" test "$(code)" = 201
first=$(( $(date +%s) / 60 * 60 + 60 ))
echo "# waiting for three whole minutes from $(date -u -d @$first +%H:%M)"
while [ "$(date +%s)" -lt $((first + 180 + 15)) ]; do sleep 5; done
api "$TOK" PUT "/v1/$P/transfers/$T/schedules/$S" '{"enabled": false}' > /dev/null
for m in 0 1 2; do
  from=$((first + m * 60)) to=$((first + m * 60 + 60))
  n=$(psql "$DB" -Atqc "SELECT count(*) FROM executions WHERE action_id = '$T' AND created_at >= to_timestamp($from) AND created_at < to_timestamp($to)")
  check "minute $((m + 1)): exactly one execution (got $n)" test "$n" = 1
done
check "each fired execution completed" test "$(psql "$DB" -Atqc "SELECT count(*) FROM executions WHERE action_id = '$T' AND status <> 'COMPLETED'")" = 0
check "the schedule remembers its last minute" test -n "$(psql "$DB" -Atqc "SELECT last_fired_at FROM transfer_schedules WHERE id = '$S'")"
for p in c1 s1 s2 tw; do
  eval "pid=\$PID_$p"; kill -TERM "$pid"; wait "$pid"; rc=$?
  check "$p exits 0 on SIGTERM (got $rc)" test $rc -eq 0
done
finish
