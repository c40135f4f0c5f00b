# conductor_lib.sh - helpers for tests that drive the conductor's REST API
# (sourced after lib.sh, with the stack's environment loaded and TMP set).

# start_conductor NAME PORT: a conductor with its own API port (HTTPS, the
# stack's certificate: https://127.0.0.1:PORT), log $TMP/NAME.log
start_conductor() {
  local name=$1 port=$2
  sed "s/^port = .*/port = $port/" "$EKMAN_CONFIG" > "$TMP/$name.conf"
  "$BUILD/conductor/ekman-conductor" --config "$TMP/$name.conf" >> "$TMP/$name.log" 2>&1 &
  eval "PID_$name=$!"
  PIDS+=($!)
  wait_for 60 ek_curl -sf "https://127.0.0.1:$port/healthz" || { echo "conductor $name did not start:"; tail "$TMP/$name.log"; }
}
# start_worker NAME ARGS...: the test worker, tasks logged to $TMP/NAME.tasks
start_worker() {
  local name=$1; shift
  "$BUILD/tests/integration/tools/ek-test-worker" --config "$EKMAN_CONFIG" --host "$name" \
    --log "$TMP/$name.tasks" "$@" >> "$TMP/$name.log" 2>&1 &
  eval "PID_$name=$!"
  PIDS+=($!)
  wait_for 30 grep -q "ready" "$TMP/$name.log"
}
stop_proc() { # stop_proc NAME [SIGNAL]
  local pid; eval "pid=\$PID_$1"
  kill "-${2:-TERM}" "$pid" 2>/dev/null
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  wait "$pid" 2>/dev/null
}

# api TOKEN METHOD PATH [BODY]: prints the body; the status goes to $TMP/code
# ($URL: https://127.0.0.1:PORT of the conductor under test)
api() {
  local token=$1 method=$2 path=$3 body=${4:-}
  local args=(-s -o "$TMP/body" -w '%{http_code}' -X "$method" -H "Content-Type: application/json")
  [ -n "$token" ] && args+=(-H "X-Auth-Token: $token")
  [ -n "$body" ] && args+=(--data-binary "$body")
  ek_curl "${args[@]}" "$URL$path" > "$TMP/code"
  cat "$TMP/body"
}
code() { cat "$TMP/code"; }

# login USER PASSWORD: prints "TOKEN PROJECT_ID"
login() {
  api "" POST /v1/auth/tokens "{\"auth\":{\"username\":\"$1\",\"password\":\"$2\"}}" |
    jq -r '.token.id + " " + .token.project.id'
}
create_user() { # create_user NAME PROJECT ROLE PASSWORD
  EKMAN_PASSWORD=$4 "$BUILD/conductor/ekman-conductor" --config "$EKMAN_CONFIG" \
    --create-user "$1" --project "$2" --role "$3" > /dev/null
}

# wait_execution TOKEN PROJECT TRANSFER EXEC SECONDS: waits for a final status, prints it
wait_execution() {
  local end=$((SECONDS + $5)) st=""
  while [ $SECONDS -lt $end ]; do
    st=$(api "$1" GET "/v1/$2/transfers/$3/executions/$4" | jq -r .execution.status)
    case $st in COMPLETED|ERROR|CANCELED|DEADLOCKED) break ;; esac
    sleep 0.3
  done
  echo "$st"
}
task_status() { # task_status TOKEN PROJECT TRANSFER EXEC TYPE [INSTANCE]
  api "$1" GET "/v1/$2/transfers/$3/executions/$4" |
    jq -r --arg t "$5" --arg i "${6:-}" '[.execution.tasks[] | select(.task_type == $t and ($i == "" or .instance == $i))][0].status'
}
psql_admin() { psql "${EKMAN_PG_ADMIN_URL/\/postgres\?//ekman?}" -Atq "$@"; }
