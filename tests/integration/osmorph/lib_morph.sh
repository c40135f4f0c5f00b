# lib_morph.sh - what the OS-morphing end-to-end tests share (sourced after
# ../lib.sh with BUILD, SRC, STACK set): a private directory, a destination
# pool with Ekman's worker image, conductor + scheduler + a worker (ova and
# libvirt providers) on the test stack, a member's token, an `ova` endpoint on
# $TMP/ova and a `libvirt` destination endpoint, and the helpers below.
#   morph_setup NAME_PREFIX [EXTRA_CONFIG]   EXTRA_CONFIG: lines for svc.conf
# Environment (optional): EKMAN_WORKER_IMAGE (an image built already).
eval "$("$SRC/deploy/stack.sh" env "$STACK")"
TMP=$(mktemp -d /var/tmp/ekman-morph-e2e.XXXXXX)
chmod 755 "$TMP"
mkdir -p "$TMP/ova" "$TMP/dstpool" "$TMP/wtmp"
chmod 755 "$TMP/ova" "$TMP/dstpool"
chmod 700 "$TMP/wtmp"
PIDS=()
R=$(printf '%04x%04x' $RANDOM $RANDOM)
export LIBVIRT_DEFAULT_URI=qemu:///system
T0=$SECONDS
v() { virsh -q "$@" 2>/dev/null; }
elapsed() { echo "# [$((SECONDS - T0)) s] $*"; }
minions() { virsh -q list --all --name | grep '^ekman-minion-' | tee -a "$TMP/minions"; }
# DOMAINS: a regex of the domain names the test makes (removed at the end)
DOMAINS='^$'
DST_POOL='' # set by morph_setup
morph_cleanup() {
  [ -n "${HTTP_PID:-}" ] && kill "$HTTP_PID" 2>/dev/null # (before the wait below)
  for p in "${PIDS[@]}"; do pkill -KILL -P "$p" 2>/dev/null; kill -KILL "$p" 2>/dev/null; done
  wait 2>/dev/null
  for d in $(v list --all --name | grep -E "$DOMAINS|^ekman-minion-"); do
    case $d in ekman-minion-*) grep -qx "$d" "$TMP/minions" 2>/dev/null || continue ;; esac
    v destroy "$d"; v undefine --nvram --tpm "$d" || v undefine "$d"
    rm -f "/var/log/libvirt/qemu/$d-serial.log"
  done
  if [ -n "$DST_POOL" ] && v pool-info "$DST_POOL" > /dev/null; then
    for vol in $(v vol-list "$DST_POOL" | awk '{print $1}'); do v vol-delete --pool "$DST_POOL" "$vol"; done
    v pool-destroy "$DST_POOL"; v pool-undefine "$DST_POOL"
  fi
  for m in $(sort -u "$TMP/minions" 2>/dev/null); do rm -f "/var/log/libvirt/qemu/$m-serial.log"; done
  [ -n "${KEEP_TMP:-}" ] || rm -rf "$TMP"
}
trap morph_cleanup EXIT
. "$SRC/tests/integration/conductor_lib.sh"
DB="${EKMAN_PG_ADMIN_URL/\/postgres\?//ekman?}"

morph_setup() {
  local prefix=$1 extra=${2:-}
  N=$prefix-$R
  DST_POOL=$N-dst
  HOST=$N
  PORT=$((EKMAN_API_PORT + 46))
  URL="https://127.0.0.1:$PORT"
  IMAGE=${EKMAN_WORKER_IMAGE:-$BUILD/worker-image/ekman-worker.qcow2}
  [ -n "${EKMAN_WORKER_IMAGE:-}" ] ||
    "$SRC/deploy/worker-image/build.sh" --build-dir "$BUILD" --output "$IMAGE" > "$TMP/image.log" 2>&1 ||
    { tail -20 "$TMP/image.log"; echo "FAIL - the worker image could not be built"; exit 1; }
  v pool-define-as "$DST_POOL" dir --target "$TMP/dstpool" && v pool-start "$DST_POOL"
  v vol-create-as "$DST_POOL" "$N-worker.qcow2" "$(stat -c %s "$IMAGE")" --format raw
  v vol-upload --pool "$DST_POOL" "$N-worker.qcow2" "$IMAGE"
  v pool-refresh "$DST_POOL"
  check "worker image uploaded to $DST_POOL" v vol-info --pool "$DST_POOL" "$N-worker.qcow2"
  NET=$EKMAN_LIBVIRT_NETWORK
  check "network $NET is active" bash -c "virsh -q net-info '$NET' | grep -q 'Active: *yes'"
  # (a worker is lost after 40 s without heartbeats: the TCG guests load both CPUs)
  # (the stack's configuration first: sections given again later win)
  { sed -e "s|^\[worker\]|[worker]\nhost = $HOST\nproviders = ova,libvirt\ncapacity = 4\ntmp_dir = $TMP/wtmp|" \
        -e "s/^port = .*/port = $PORT/" "$EKMAN_CONFIG"
    printf '\n[scheduler]\nheartbeat_interval = 2\nmissed_heartbeats = 20\n\n[ova]\nallowed_roots = %s/ova\n\n' "$TMP"
    printf '%s\n' "$extra"; } > "$TMP/svc.conf"
  "$BUILD/conductor/ekman-conductor" --config "$TMP/svc.conf" > "$TMP/c.log" 2>&1 & PIDS+=($!)
  "$BUILD/scheduler/ekman-scheduler" --config "$TMP/svc.conf" > "$TMP/s.log" 2>&1 & PIDS+=($!)
  "$BUILD/worker/ekman-worker" --config "$TMP/svc.conf" > "$TMP/w.log" 2>&1 & W=$!; PIDS+=($W)
  check "the conductor answers" wait_for 60 ek_curl -sf "$URL/healthz" || { tail -5 "$TMP/c.log"; exit 1; }
  check "the worker registered UP" wait_for 30 bash -c "[ \"\$(psql '$DB' -Atqc \"SELECT count(*) FROM services WHERE host = '$HOST' AND status = 'UP'\")\" = 1 ]"
  create_user "$N" "$N" member "Morph-pass-$R"
  read -r TOK P < <(login "$N" "Morph-pass-$R")
  SRC_EP=$(endpoint ova ova "$(jq -nc --arg p "$TMP/ova" '{path: $p}')")
  DST_EP=$(endpoint dst libvirt "$(jq -nc --arg k "$(base64 -w0 "$EKMAN_SSH_KEY")" --arg kh "$(cat "$EKMAN_SSH_KNOWN_HOSTS")" \
    --arg u "$EKMAN_SSH_USER" --argjson p "$EKMAN_SSH_PORT" '{host: "127.0.0.1", port: $p, username: $u, private_key: $k, known_hosts: $kh}')")
  check "endpoints created" test -n "$SRC_EP" -a -n "$DST_EP" -a "$SRC_EP" != null -a "$DST_EP" != null
  # the destination environment of the tests: TCG, a small worker VM
  ENV=$(jq -nc --arg pool "$DST_POOL" --arg img "$DST_POOL/$N-worker.qcow2" --arg net "$NET" '{
    default_storage_pool: $pool, migr_image_map: {linux: $img, windows: $img}, migr_worker_network: $net,
    migr_worker_memory: 1024, migr_worker_vcpus: 1, migr_worker_volume_size: 1,
    migr_worker_boot_timeout: 300, domain_type: "qemu", migr_worker_iface_addr_src: "agent",
    data_transfer_mechanism: "https", cpu_mode: "", cpu_features: [], add_tpm_device: false,
    enable_vm_console_log: true, set_dhcp: true}')
}

endpoint() { # endpoint NAME TYPE CONNECTION_INFO: prints the id
  api "$TOK" POST "/v1/$P/endpoints" "$(jq -nc --arg n "$1" --arg t "$2" --argjson c "$3" '{endpoint: {name: $n, type: $t, connection_info: $c}}')" | jq -r .endpoint.id
}
# new_transfer INSTANCE [ENV]: prints the id
new_transfer() {
  api "$TOK" POST "/v1/$P/transfers" "$(jq -nc --arg s "$SRC_EP" --arg d "$DST_EP" --arg i "$1" --arg net "$NET" --argjson env "${2:-$ENV}" \
    '{transfer: {origin_endpoint_id: $s, destination_endpoint_id: $d, instances: [$i], network_map: {"VM Network": $net},
      destination_environment: $env}}')" | jq -r .transfer.id
}
# execute TRANSFER: runs an execution, prints its final status (its errors
# on stderr when it did not complete)
execute() {
  local e st
  e=$(api "$TOK" POST "/v1/$P/transfers/$1/executions" '{}' | jq -r .execution.id)
  st=$(wait_execution "$TOK" "$P" "$1" "$e" 900)
  [ "$st" = COMPLETED ] || errors_of "$1" "$e" | sed 's/^/# /' >&2
  echo "$st"
}
errors_of() { api "$TOK" GET "/v1/$P/transfers/$1/executions/$2" | jq -r '[.execution.tasks[] | select(.exception_details != null and .exception_details != "") | .task_type + ": " + .exception_details] | join("\n")'; }
# deploy TRANSFER DEPLOY_JSON_EXTRA: waits; prints "STATUS DEPLOYMENT_ID"
deploy() {
  local dep st
  dep=$(api "$TOK" POST "/v1/$P/deployments" "$(jq -nc --arg t "$1" --argjson x "$2" '{deployment: ({transfer_id: $t, clone_disks: true} + $x)}')" | jq -r .deployment.id)
  for _ in $(seq 1800); do
    st=$(api "$TOK" GET "/v1/$P/deployments/$dep" | jq -r .deployment.last_execution_status)
    [ "$st" = COMPLETED ] || [ "$st" = ERROR ] && break; sleep 1
  done
  echo "$st $dep"
}
dep_errors() { api "$TOK" GET "/v1/$P/deployments/$1" | jq -r '.. | .exception_details? // empty'; }
dep_events() { psql "$DB" -Atqc "SELECT e.message FROM task_events e JOIN tasks t ON t.id = e.task_id JOIN executions x ON x.id = t.execution_id WHERE x.action_id = '$1' ORDER BY e.created_at"; }
# the deployed clone volume of disk DISK_ID of INSTANCE
clone_of() { virsh -q vol-path --pool "$DST_POOL" "ekman-$1-$2.clone.img"; }
morph_finish() {
  check "no worker VM is left" test -z "$(minions)"
  check "no temporary key file is left in the worker's tmp_dir" test -z "$(find "$TMP/wtmp" -mindepth 1 | head -3)"
  kill -TERM "$W"; wait "$W"; local rc=$?
  check "the worker exits 0 on SIGTERM (got $rc)" test $rc -eq 0
  finish
}
