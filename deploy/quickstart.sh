#!/usr/bin/env bash
# quickstart.sh - from a fresh checkout to a running Ekman on this machine:
# installs the Debian packages, builds, brings up the local stack (PostgreSQL,
# RabbitMQ, libvirtd, sshd on loopback) and starts conductor, scheduler and a
# worker, then prints where the API listens and how to stop everything.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${EKMAN_STACK_DIR:-$ROOT/.ekman-stack}
step() { printf '\n==> %s\n' "$*"; }

step "installing dependencies"
"$ROOT/deploy/install-deps.sh"
step "building (build/)"
cmake -S "$ROOT" -B "$ROOT/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$ROOT/build" -j "$(nproc)"
step "bringing up the local stack in $DIR"
"$ROOT/deploy/stack.sh" up "$DIR"
step "starting Ekman's services"
"$ROOT/deploy/services.sh" start --bin "$ROOT/build" "$DIR"
eval "$("$ROOT/deploy/stack.sh" env "$DIR")"
"$ROOT/build/client/ekman" status --url "$EKMAN_URL"
cat <<MSG

Ekman is running.
  API:            $EKMAN_URL   (try: build/client/ekman status --url $EKMAN_URL)
  configuration:  $EKMAN_CONFIG
  logs:           $DIR/logs/
  shell settings: eval "\$(deploy/stack.sh env $DIR)"
Stop everything:  deploy/services.sh stop $DIR && deploy/stack.sh down $DIR
MSG
