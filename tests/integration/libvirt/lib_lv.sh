# lib_lv.sh - what the libvirt end-to-end tests share (sourced after ../lib.sh
# and ../conductor_lib.sh, with BUILD, SRC, TMP, PIDS and the stack's env set).

# lv_cleanup_objects: removes what a test made in libvirt: the domains named
# $N*, the worker VMs listed in $TMP/minions (and their console logs), the
# volumes $N* of the stack's pool and the destination pool $DST_POOL with its
# volumes (v: virsh -q, quiet).
lv_cleanup_objects() {
  local d m vol
  for d in $(v list --all --name | grep -E "^$N"); do v destroy "$d"; v undefine "$d"; done
  for m in $(sort -u "$TMP/minions" 2>/dev/null); do v destroy "$m"; v undefine "$m"; rm -f "/var/log/libvirt/qemu/$m-serial.log"; done
  for vol in $(v vol-list "$EKMAN_POOL" | awk '{print $1}' | grep "^$N"); do v vol-delete --pool "$EKMAN_POOL" "$vol"; done
  if v pool-info "$DST_POOL" > /dev/null; then
    for vol in $(v vol-list "$DST_POOL" | awk '{print $1}'); do v vol-delete --pool "$DST_POOL" "$vol"; done
    v pool-destroy "$DST_POOL"; v pool-undefine "$DST_POOL"
  fi
}

# lv_worker_pool POOL VOLUME: a directory pool POOL at TMP/dstpool holding
# Ekman's worker image as VOLUME (deploy/worker-image, built unless
# EKMAN_WORKER_IMAGE names an image built already, e.g. for a sanitizer build).
lv_worker_pool() {
  local pool=$1 vol=$2 image=${EKMAN_WORKER_IMAGE:-$BUILD/worker-image/ekman-worker.qcow2}
  [ -n "${EKMAN_WORKER_IMAGE:-}" ] ||
    "$SRC/deploy/worker-image/build.sh" --build-dir "$BUILD" --output "$image" > "$TMP/image.log" 2>&1 ||
    { tail -20 "$TMP/image.log"; echo "FAIL - the worker image could not be built"; exit 1; }
  mkdir -p "$TMP/dstpool"; chmod 755 "$TMP/dstpool"
  virsh -q pool-define-as "$pool" dir --target "$TMP/dstpool" > /dev/null 2>&1 &&
    virsh -q pool-start "$pool" > /dev/null 2>&1
  check "destination pool $pool defined" virsh -q pool-info "$pool"
  virsh -q vol-create-as "$pool" "$vol" "$(stat -c %s "$image")" --format raw > /dev/null 2>&1
  virsh -q vol-upload --pool "$pool" "$vol" "$image" > /dev/null 2>&1
  virsh -q pool-refresh "$pool" > /dev/null 2>&1
  check "worker image uploaded to $pool" virsh -q vol-info --pool "$pool" "$vol"
}

# lv_services HOST: the conductor (of EKMAN_E2E_SERVICES_BUILD if set, e.g. a
# sanitizer build), a scheduler and a libvirt worker called HOST on the stack,
# the API on PORT (URL), 1 s heartbeats (LV_HEARTBEAT: seconds, or default); logs TMP/{c,s,w}.log, the worker's
# pid in W; then a member user HOST and its token and project in TOK and P.
lv_services() {
  local host=$1 svc=${EKMAN_E2E_SERVICES_BUILD:-$BUILD}
  mkdir -p "$TMP/wtmp"; chmod 700 "$TMP/wtmp"
  # LV_HEARTBEAT=default keeps the configuration's own heartbeat settings (10 s, 3 missed)
  local hb="[scheduler]\nheartbeat_interval = ${LV_HEARTBEAT:-1}\nmissed_heartbeats = 3\n\n"
  [ "${LV_HEARTBEAT:-}" = default ] && hb=""
  sed -e "s/^\[worker\]/$hb[worker]\nhost = $host\nproviders = libvirt\ncapacity = 4\ntmp_dir = ${TMP//\//\\/}\/wtmp/" \
      -e "s/^port = .*/port = $PORT/" "$EKMAN_CONFIG" > "$TMP/svc.conf"
  "$svc/conductor/ekman-conductor" --config "$TMP/svc.conf" > "$TMP/c.log" 2>&1 & PIDS+=($!)
  "$BUILD/scheduler/ekman-scheduler" --config "$TMP/svc.conf" > "$TMP/s.log" 2>&1 & PIDS+=($!)
  "$BUILD/worker/ekman-worker" --config "$TMP/svc.conf" > "$TMP/w.log" 2>&1 & W=$!; PIDS+=($W)
  check "the conductor answers" wait_for 60 ek_curl -sf "$URL/healthz" || { tail -5 "$TMP/c.log"; exit 1; }
  check "the worker registered UP" wait_for 30 bash -c "[ \"\$(psql '$DB' -Atqc \"SELECT count(*) FROM services WHERE host = '$host' AND status = 'UP'\")\" = 1 ]"
  create_user "$host" "$host" member "${host^}-pass"
  read -r TOK P < <(login "$host" "${host^}-pass")
}
