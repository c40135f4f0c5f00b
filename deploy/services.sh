#!/usr/bin/env bash
# services.sh - starts and stops Ekman's own daemons (conductor, scheduler, one
# worker) against the local stack of deploy/stack.sh, in its state directory:
# logs in DIR/logs/, pids in DIR/pids/ekman-*.pid.
#   deploy/services.sh start|stop|status [--bin BUILD_DIR] [DIR]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CMD=${1:-}
shift || true
BIN="$ROOT/build"
DIR=""
while [ $# -gt 0 ]; do
  case $1 in
    --bin) BIN=$(cd "$2" && pwd); shift ;;
    *) DIR=$1 ;;
  esac
  shift
done
DIR=${DIR:-$ROOT/.ekman-stack}
mkdir -p "$DIR/logs" "$DIR/pids"
SERVICES=(conductor scheduler worker)

binary() {
  case $1 in
    conductor) echo "$BIN/conductor/ekman-conductor" ;;
    scheduler) echo "$BIN/scheduler/ekman-scheduler" ;;
    worker) echo "$BIN/worker/ekman-worker" ;;
  esac
}
pid_of() { # prints the pid when the service runs
  local f="$DIR/pids/ekman-$1.pid" p
  [ -f "$f" ] || return 1
  p=$(cat "$f")
  kill -0 "$p" 2>/dev/null && grep -q "ekman-$1" "/proc/$p/cmdline" 2>/dev/null && echo "$p"
}

start() {
  [ -f "$DIR/ekman.conf" ] || { echo "services.sh: $DIR/ekman.conf is missing: run deploy/stack.sh up first" >&2; exit 1; }
  for s in "${SERVICES[@]}"; do
    local b; b=$(binary "$s")
    [ -x "$b" ] || { echo "services.sh: $b is not built (cmake --build $BIN)" >&2; exit 1; }
    if p=$(pid_of "$s"); then echo "ekman-$s already running (pid $p)"; continue; fi
    setsid "$b" --config "$DIR/ekman.conf" >> "$DIR/logs/ekman-$s.log" 2>&1 < /dev/null &
    echo $! > "$DIR/pids/ekman-$s.pid"
  done
  # ready when each logged its start, or failed when it died
  for s in "${SERVICES[@]}"; do
    local end=$((SECONDS + 60))
    until grep -q "$s started" "$DIR/logs/ekman-$s.log" 2>/dev/null; do
      if ! pid_of "$s" >/dev/null; then
        echo "services.sh: ekman-$s failed to start; the end of $DIR/logs/ekman-$s.log:" >&2
        tail -n 20 "$DIR/logs/ekman-$s.log" >&2
        exit 1
      fi
      [ $SECONDS -lt $end ] || { echo "services.sh: ekman-$s did not start within 60 s (see $DIR/logs/ekman-$s.log)" >&2; exit 1; }
      sleep 0.2
    done
    echo "ekman-$s running (pid $(pid_of "$s"), log $DIR/logs/ekman-$s.log)"
  done
}

stop() {
  for s in "${SERVICES[@]}"; do
    local p
    if p=$(pid_of "$s"); then
      kill -TERM "$p"
      local end=$((SECONDS + 30))
      while kill -0 "$p" 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.1; done
      kill -0 "$p" 2>/dev/null && kill -KILL "$p"
      echo "ekman-$s stopped"
    fi
    rm -f "$DIR/pids/ekman-$s.pid"
  done
}

status() {
  local rc=0
  for s in "${SERVICES[@]}"; do
    if p=$(pid_of "$s"); then echo "ekman-$s  running  pid=$p"; else echo "ekman-$s  stopped"; rc=3; fi
  done
  return $rc
}

case $CMD in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: deploy/services.sh start|stop|status [--bin BUILD_DIR] [DIR]" >&2; exit 2 ;;
esac
