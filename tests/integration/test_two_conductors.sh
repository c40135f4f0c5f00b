#!/usr/bin/env bash
# test_two_conductors.sh - two conductors on one database and broker, two
# workers, 200 executions at once: every execution completes and no task runs
# twice (each task id appears once in the workers' logs of granted claims).
# Usage: test_two_conductors.sh BUILD_DIR SOURCE_DIR STACK_DIR [EXECUTIONS]
set -u
. "$(dirname "$0")/lib.sh"
BUILD=$1 SRC=$2 STACK=$3 N=${4:-200}
eval "$("$SRC/deploy/stack.sh" env "$STACK")"
TMP=$(mktemp -d /tmp/ekman-two.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done; wait 2>/dev/null; [ -n "${EKMAN_KEEP_TMP:-}" ] || rm -rf "$TMP"; }
trap cleanup EXIT
. "$(dirname "$0")/conductor_lib.sh"
P1=$((EKMAN_API_PORT + 20)) P2=$((EKMAN_API_PORT + 21))
R=$RANDOM$RANDOM

start_conductor c1 "$P1"
start_conductor c2 "$P2"
start_worker wa --prefetch 16
start_worker wb --prefetch 16
create_user "two-$R" "two-$R" member "Two-pass-$R"
URL="https://127.0.0.1:$P1"
read -r TOK PR < <(login "two-$R" "Two-pass-$R")
EP=$(api "$TOK" POST "/v1/$PR/endpoints" '{"endpoint":{"name":"dir","type":"local","connection_info":{"path":"/var/tmp"}}}' | jq -r .endpoint.id)

# N transfers, executed through both conductors' APIs alternately
start=$SECONDS
for i in $(seq "$N"); do
  URL="https://127.0.0.1:$P1"
  T=$(api "$TOK" POST "/v1/$PR/transfers" "{\"transfer\":{\"origin_endpoint_id\":\"$EP\",\"destination_endpoint_id\":\"$EP\",\"instances\":[\"vm$i\"]}}" | jq -r .transfer.id)
  [ $((i % 2)) = 0 ] && URL="https://127.0.0.1:$P2"
  api "$TOK" POST "/v1/$PR/transfers/$T/executions" '{}' > /dev/null
  [ "$(code)" = 201 ] || echo "execution $i: HTTP $(code)"
done
echo "created $N executions in $((SECONDS - start)) s"
DB="${EKMAN_PG_ADMIN_URL/\/postgres\?//ekman?}"
pending() { psql "$DB" -Atqc "SELECT count(*) FROM executions WHERE project_id = '$PR' AND finished_at IS NULL"; }
end=$((SECONDS + 600))
while [ "$(pending)" != 0 ] && [ $SECONDS -lt $end ]; do sleep 1; done
echo "all finished after $((SECONDS - start)) s"
check "all $N executions ended" test "$(pending)" = 0
check "all $N executions COMPLETED" test "$(psql "$DB" -Atqc "SELECT count(*) FROM executions WHERE project_id = '$PR' AND status = 'COMPLETED'")" = "$N"
tasks=$(psql "$DB" -Atqc "SELECT count(*) FROM tasks t JOIN executions e ON e.id = t.execution_id WHERE e.project_id = '$PR'")
ran=$(cat "$TMP/wa.tasks" "$TMP/wb.tasks" | wc -l)
unique=$(cat "$TMP/wa.tasks" "$TMP/wb.tasks" | awk '{print $2}' | sort -u | wc -l)
echo "tasks: $tasks in the database, $ran runs, $unique distinct"
check "every task ran" test "$unique" = "$tasks"
check "no task ran twice" test "$ran" = "$unique"
check "both workers took work" test -s "$TMP/wa.tasks" -a -s "$TMP/wb.tasks"
# /metrics is for operators: an admin's token
create_user "two-adm-$R" "two-adm-$R" admin "Two-adm-pass-$R"
read -r ATOK _ < <(login "two-adm-$R" "Two-adm-pass-$R")
d1=$(ek_curl -s -H "X-Auth-Token: $ATOK" "https://127.0.0.1:$P1/metrics" | awk '/^ekman_tasks_dispatched_total/ {print $2}')
d2=$(ek_curl -s -H "X-Auth-Token: $ATOK" "https://127.0.0.1:$P2/metrics" | awk '/^ekman_tasks_dispatched_total/ {print $2}')
echo "dispatched by conductor 1: $d1, by conductor 2: $d2"
check "both conductors dispatched" test "${d1:-0}" -gt 0 -a "${d2:-0}" -gt 0
for p in c1 c2 wa wb; do
  eval "pid=\$PID_$p"; kill -TERM "$pid"; wait "$pid"; rc=$?
  check "$p exits 0 on SIGTERM (got $rc)" test $rc -eq 0
done
finish
