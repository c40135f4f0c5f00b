#!/usr/bin/env bash
# test_key_rotation.sh - rotating the conductors' encryption key on the real
# stack (ekman-conductor --rotate-encryption-key): every endpoint's connection
# info and every secret in task info moves to the new key in one go; a
# conductor with the new key reads them, the old key opens nothing any more; a
# second rotation with the wrong key in the configuration changes nothing. The
# stack's key is restored at the end (also when a check fails).
# Usage: test_key_rotation.sh BUILD_DIR SOURCE_DIR STACK_DIR
set -u
. "$(dirname "$0")/lib.sh"
BUILD=$1 SRC=$2 STACK=$3
eval "$("$SRC/deploy/stack.sh" env "$STACK")"
TMP=$(mktemp -d /tmp/ekman-rotation.XXXXXX)
PIDS=()
ROTATED=0
restore() {
  # the other tests of this stack need its own key back
  [ "$ROTATED" = 1 ] || return 0
  sed -n 's/^encryption_key = //p' "$EKMAN_CONFIG" > "$TMP/old.key"
  "$BUILD/conductor/ekman-conductor" --config "$TMP/new.conf" \
    --rotate-encryption-key "$TMP/old.key" > "$TMP/restore.out" 2>&1 && ROTATED=0
}
cleanup() {
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
  wait 2>/dev/null
  restore || cat "$TMP/restore.out"
  rm -rf "$TMP"
}
trap cleanup EXIT
. "$(dirname "$0")/conductor_lib.sh"
PORT=$((EKMAN_API_PORT + 40))
URL="https://127.0.0.1:$PORT"
R=$RANDOM$RANDOM
DB="${EKMAN_PG_ADMIN_URL/\/postgres\?//ekman?}"

start_conductor c1 "$PORT"
create_user "rot-$R" "rot-$R" member "Rot-pass-$R"
read -r TOK P < <(login "rot-$R" "Rot-pass-$R")
SECRET="Rot-Secret-$R"
EP=$(api "$TOK" POST "/v1/$P/endpoints" "{\"endpoint\":{\"name\":\"olvm-$R\",\"type\":\"ovirt\",\"connection_info\":{\"url\":\"https://engine.example/ovirt-engine/api\",\"username\":\"rot-user-$R\",\"password\":\"$SECRET\",\"allow_untrusted\":true}}}" | jq -r .endpoint.id)
EP_S=$(api "$TOK" POST "/v1/$P/endpoints" "{\"endpoint\":{\"name\":\"dir-$R\",\"type\":\"local\",\"connection_info\":{\"path\":\"/var/tmp\"}}}" | jq -r .endpoint.id)
T=$(api "$TOK" POST "/v1/$P/transfers" "{\"transfer\": {\"origin_endpoint_id\": \"$EP_S\", \"destination_endpoint_id\": \"$EP\", \"instances\": [\"vm1\"]}}" | jq -r .transfer.id)
check "endpoints and a transfer created" test -n "$EP" -a "$EP" != null -a -n "$T" -a "$T" != null
# task info as an older Ekman left it: a worker VM's key in clear
psql "$DB" -qc "UPDATE transfers SET info = '{\"vm1\": {\"minion\": {\"host\": \"10.0.0.9\", \"private_key\": \"PLAIN-$R\"}}}' WHERE id = '$T'"
stop_proc c1
before=$(psql "$DB" -Atqc "SELECT connection_info FROM endpoints WHERE id = '$EP'")

openssl rand -base64 32 > "$TMP/new.key"
sed "s|^encryption_key = .*|encryption_key = $(cat "$TMP/new.key")|" "$TMP/c1.conf" > "$TMP/new.conf"
"$BUILD/conductor/ekman-conductor" --config "$TMP/c1.conf" --rotate-encryption-key "$TMP/new.key" \
  > "$TMP/rot.out" 2>&1 && ROTATED=1
check "the rotation succeeds and says what to do next" \
  bash -c "[ $ROTATED = 1 ] && grep -q 'put the new key in' '$TMP/rot.out'"
cat "$TMP/rot.out"
after=$(psql "$DB" -Atqc "SELECT connection_info FROM endpoints WHERE id = '$EP'")
check "the endpoint's connection info was sealed again" test -n "$after" -a "$after" != "$before"
psql "$DB" -Atqc "SELECT info::text FROM transfers WHERE id = '$T'" > "$TMP/info.txt"
check "the worker VM's key in the task info is now sealed" \
  bash -c "! grep -q 'PLAIN-$R' '$TMP/info.txt' && grep -q '\\\$box' '$TMP/info.txt' && grep -q 10.0.0.9 '$TMP/info.txt'"

# the old key no longer opens anything, and a rotation with it changes nothing
openssl rand -base64 32 > "$TMP/third.key"
"$BUILD/conductor/ekman-conductor" --config "$TMP/c1.conf" --rotate-encryption-key "$TMP/third.key" \
  > "$TMP/again.out" 2>&1
rc=$?
check "rotating again with the old key configured fails ($rc), naming the cause" \
  bash -c "[ $rc = 1 ] && grep -q 'does not open with the key in the configuration' '$TMP/again.out'"
check "... and changes nothing" \
  test "$(psql "$DB" -Atqc "SELECT connection_info FROM endpoints WHERE id = '$EP'")" = "$after"
"$BUILD/conductor/ekman-conductor" --config "$TMP/new.conf" --rotate-encryption-key "$TMP/new.key" \
  > "$TMP/same.out" 2>&1
check "the same key as the new one is refused" grep -q "is the one in the configuration" "$TMP/same.out"
printf 'not-base64!\n' > "$TMP/bad.key"
"$BUILD/conductor/ekman-conductor" --config "$TMP/new.conf" --rotate-encryption-key "$TMP/bad.key" \
  > "$TMP/bad.out" 2>&1
check "a malformed new key is refused, naming the file" grep -q "bad.key" "$TMP/bad.out"

# a conductor with the new key reads the endpoint
SAVED=$EKMAN_CONFIG
EKMAN_CONFIG=$TMP/new.conf start_conductor c2 "$PORT"
EKMAN_CONFIG=$SAVED
read -r TOK P < <(login "rot-$R" "Rot-pass-$R")
api "$TOK" GET "/v1/$P/endpoints/$EP" > "$TMP/ep.json"
check "a conductor with the new key opens the connection info" \
  test "$(jq -r .endpoint.connection_info.username "$TMP/ep.json")" = "rot-user-$R"
stop_proc c2

# back to the stack's key (what the other tests use)
restore
check "rotating back to the stack's key succeeds" test "$ROTATED" = 0
start_conductor c3 "$PORT"
read -r TOK P < <(login "rot-$R" "Rot-pass-$R")
api "$TOK" GET "/v1/$P/endpoints/$EP" > "$TMP/ep.json"
check "the stack's conductor opens it again" \
  test "$(jq -r .endpoint.connection_info.username "$TMP/ep.json")" = "rot-user-$R"
stop_proc c3
finish
