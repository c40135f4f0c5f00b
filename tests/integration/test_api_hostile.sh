#!/usr/bin/env bash
# test_api_hostile.sh - the conductor's API against hostile input (issue #17,
# item 10): bytes that are not UTF-8 and NULs in bodies, paths and queries,
# limits on names, notes and instances, a wrong Content-Type, bodies sent
# without a token, a storm of wrong logins (scrypt must not starve the API),
# back-off, /metrics and diagnostics for operators only, connection info
# checked at create, and libmicrohttpd's messages in the log format. Also
# (issue #21) Coriolis's paging and sorting of lists, its error body and CORS.
# Usage: test_api_hostile.sh BUILD_DIR SOURCE_DIR STACK_DIR
set -u
. "$(dirname "$0")/lib.sh"
BUILD=$1 SRC=$2 STACK=$3
eval "$("$SRC/deploy/stack.sh" env "$STACK")"
TMP=$(mktemp -d /tmp/ekman-api-hostile.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
. "$(dirname "$0")/conductor_lib.sh"
PORT=$((EKMAN_API_PORT + 50))
URL="https://127.0.0.1:$PORT"
R=$RANDOM$RANDOM
METRICS_TOKEN="metrics-$R-$RANDOM$RANDOM"
UI_ORIGIN="https://ui-$R.example.test:8443" # CORS: a web UI served from elsewhere

# a conductor of its own, with a scraper token for /metrics
start_conductor c1 "$PORT"
stop_proc c1
awk -v t="$METRICS_TOKEN" -v o="$UI_ORIGIN" '{print} /^\[api\]/ {print "metrics_token = " t; print "cors_allowed_origins = " o}' "$TMP/c1.conf" > "$TMP/c1m.conf"
"$BUILD/conductor/ekman-conductor" --config "$TMP/c1m.conf" >> "$TMP/c1.log" 2>&1 &
PID_c1=$!
PIDS+=($!)
wait_for 60 ek_curl -sf "$URL/healthz" || { echo "conductor did not start:"; tail "$TMP/c1.log"; }

create_user "admin-$R" "admins-$R" admin "Admin-pass-$R"
create_user "alice-$R" "proj-a-$R" member "Alice-pass-$R"
create_user "bob-$R" "proj-b-$R" member "Bob-pass-$R"
read -r ADMIN _ < <(login "admin-$R" "Admin-pass-$R")
read -r A PA < <(login "alice-$R" "Alice-pass-$R")
check "users log in" test -n "$A" -a -n "$ADMIN"

# raw TOKEN METHOD PATH CONTENT-TYPE BODY-FILE: like api, but the body is a file
raw() {
  local args=(-s -o "$TMP/body" -w '%{http_code}' -X "$2" -H "Content-Type: $4" -H "Expect:")
  [ -n "$1" ] && args+=(-H "X-Auth-Token: $1")
  [ -n "${5:-}" ] && args+=(--data-binary "@$5")
  ek_curl "${args[@]}" "$URL$3" > "$TMP/code"
  cat "$TMP/body"
}
msg() { jq -r .error.message "$TMP/body" 2>/dev/null; }

# --- encoding and NUL at the edge ---------------------------------------------------------
printf '{"endpoint":{"name":"x\xffy","type":"local","connection_info":{"path":"/var/tmp"}}}' > "$TMP/ff.json"
raw "$A" POST "/v1/$PA/endpoints" application/json "$TMP/ff.json" > /dev/null
check "0xff in an endpoint name is 400" test "$(code)" = 400
check "the message names the field" bash -c "jq -r .error.message '$TMP/body' | grep -q '\"endpoint.name\": contains invalid UTF-8'"

api "$A" POST "/v1/$PA/endpoints" '{"endpoint":{"name":"cut\u0000here","type":"local","connection_info":{"path":"/var/tmp"}}}' > /dev/null
check "\\u0000 in a name is 400, not a name cut at the NUL" test "$(code)" = 400
check "the NUL message names the field" bash -c "jq -r .error.message '$TMP/body' | grep -q '\"endpoint.name\": contains a NUL'"
check "no endpoint named 'cut' was made" test "$(api "$A" GET "/v1/$PA/endpoints" | jq '[.endpoints[] | select(.name == "cut")] | length')" = 0

printf '{"auth":{"username":"\xff\xfe","password":"whatever-1"}}' > "$TMP/login-ff.json"
raw "" POST /v1/auth/tokens application/json "$TMP/login-ff.json" > /dev/null
check "0xff in a login user name is 400" test "$(code)" = 400
check "... naming auth.username" bash -c "jq -r .error.message '$TMP/body' | grep -q 'auth.username'"

api "$A" GET "/v1/$PA/transfers?status=%FF" > /dev/null
check "0xff in ?status= is 400" test "$(code)" = 400
check "... naming the query parameter" bash -c "jq -r .error.message '$TMP/body' | grep -q 'query parameter status'"
api "$A" GET "/v1/$PA/transfers?status=COMPLETED%00x" > /dev/null
check "%00 in a query value is 400" test "$(code)" = 400
api "$A" GET "/v1/$PA/endpoints/%FF%FE" > /dev/null
check "0xff in a path segment is 400" test "$(code)" = 400

printf '{"transfer":{"origin_endpoint_id":"a","destination_endpoint_id":"b","instances":["vm1"],"notes":"n\xffo"}}' > "$TMP/notes.json"
raw "$A" POST "/v1/$PA/transfers" application/json "$TMP/notes.json" > /dev/null
check "0xff in transfer notes is 400" test "$(code)" = 400
check "... naming transfer.notes" bash -c "jq -r .error.message '$TMP/body' | grep -q '\"transfer.notes\"'"
check "no 500 in the log for any of these" bash -c "! grep -q 'status=500' '$TMP/c1.log'"

# --- limits ------------------------------------------------------------------------------------
EP_S=$(api "$A" POST "/v1/$PA/endpoints" "{\"endpoint\":{\"name\":\"dir-$R\",\"type\":\"local\",\"connection_info\":{\"path\":\"/var/tmp\"}}}" | jq -r .endpoint.id)
check "a good endpoint is still 201" test "$(code)" = 201
long=$(head -c 256 /dev/zero | tr '\0' n)
api "$A" POST "/v1/$PA/endpoints" "{\"endpoint\":{\"name\":\"$long\",\"type\":\"local\",\"connection_info\":{\"path\":\"/var/tmp\"}}}" > /dev/null
check "a 256-byte name is 400" test "$(code)" = 400
check "... saying the limit" bash -c "jq -r .error.message '$TMP/body' | grep -q 'longer than 255'"
python3 -c "
import json
print(json.dumps({'transfer': {'origin_endpoint_id': '$EP_S', 'destination_endpoint_id': '$EP_S',
      'instances': ['vm%d' % i for i in range(50000)]}}))" > "$TMP/many.json"
t0=$(date +%s.%N)
raw "$A" POST "/v1/$PA/transfers" application/json "$TMP/many.json" > /dev/null
t1=$(date +%s.%N)
check "50,000 instances are refused with 400" test "$(code)" = 400
check "... naming the limit" bash -c "jq -r .error.message '$TMP/body' | grep -q 'max_transfer_instances'"
check "... in under 2 s" python3 -c "import sys; sys.exit(0 if $t1 - $t0 < 2 else 1)"
python3 -c "
import json
print(json.dumps({'transfer': {'origin_endpoint_id': '$EP_S', 'destination_endpoint_id': '$EP_S',
      'instances': ['vm%d' % i for i in range(1000)] + ['vm999']}}))" > "$TMP/dup.json"
raw "$A" POST "/v1/$PA/transfers" application/json "$TMP/dup.json" > /dev/null
check "1001 instances are over the limit too" test "$(code)" = 400
python3 -c "
import json
print(json.dumps({'transfer': {'origin_endpoint_id': '$EP_S', 'destination_endpoint_id': '$EP_S',
      'instances': ['vm%d' % i for i in range(999)] + ['vm998']}}))" > "$TMP/dup.json"
raw "$A" POST "/v1/$PA/transfers" application/json "$TMP/dup.json" > /dev/null
check "a duplicate instance is 400 naming it" bash -c "test \"\$(cat '$TMP/code')\" = 400 && jq -r .error.message '$TMP/body' | grep -q \"names 'vm998' twice\""
python3 -c "print('{\"transfer\":{\"origin_endpoint_id\":\"a\",\"destination_endpoint_id\":\"b\",\"instances\":[\"v\"],\"notes\":\"' + 'x' * 5000 + '\"}}')" > "$TMP/notes.json"
raw "$A" POST "/v1/$PA/transfers" application/json "$TMP/notes.json" > /dev/null
check "5000-byte notes are 400" test "$(code)" = 400

# --- Content-Type, and bodies before authentication ---------------------------------------------
echo "{\"endpoint\":{\"name\":\"tp-$R\",\"type\":\"local\",\"connection_info\":{\"path\":\"/var/tmp\"}}}" > "$TMP/ep.json"
raw "$A" POST "/v1/$PA/endpoints" text/plain "$TMP/ep.json" > /dev/null
check "Content-Type: text/plain is 415" test "$(code)" = 415
head -c 100000 /dev/zero | tr '\0' ' ' > "$TMP/big"
raw "" POST /v1/auth/tokens application/json "$TMP/big" > /dev/null
check "a 100 KB login body is 413 (small limit without a token)" test "$(code)" = 413
# a client announces 900 KB and sends none of it: without a token the answer
# must come at once, from the headers alone
check "a request without a token is answered before its body is read" python3 - "$PORT" "$PA" "$EKMAN_CA_FILE" <<'PY'
import socket, ssl, sys, time
port, project, ca = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = socket.create_connection(("127.0.0.1", port), timeout=5)
s = ssl.create_default_context(cafile=ca).wrap_socket(s, server_hostname="127.0.0.1")
s.sendall(("POST /v1/%s/endpoints HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           "Content-Length: 900000\r\n\r\n" % project).encode())
t0 = time.time()
try:
    data = s.recv(4096)
except socket.timeout:
    sys.exit(1)
sys.exit(0 if data.startswith(b"HTTP/1.1 401") and time.time() - t0 < 3 else 1)
PY

# --- connection info checked at create ---------------------------------------------------------
api "$A" POST "/v1/$PA/endpoints" "{\"endpoint\":{\"name\":\"kvm-bad-$R\",\"type\":\"libvirt\",\"connection_info\":{\"host\":\"127.0.0.1\",\"username\":\"u\",\"private_key\":\"this is not base64!\"}}}" > /dev/null
check "a private_key that is not base64 is 400 at create" test "$(code)" = 400
check "... naming connection_info.private_key" bash -c "jq -r .error.message '$TMP/body' | grep -q 'connection_info.private_key'"
NOTKEY=$(printf 'hello, this is just some text and not a key at all' | base64 -w0)
api "$A" POST "/v1/$PA/endpoints" "{\"endpoint\":{\"name\":\"kvm-bad2-$R\",\"type\":\"libvirt\",\"connection_info\":{\"host\":\"127.0.0.1\",\"username\":\"u\",\"private_key\":\"$NOTKEY\"}}}" > /dev/null
check "base64 of something that is not a key is 400" test "$(code)" = 400

# --- lists: Coriolis's paging and sorting; its error body (issue #21) ----------------------------
create_user "pager-$R" "proj-p-$R" member "Pager-pass-$R"
read -r PG PP < <(login "pager-$R" "Pager-pass-$R")
EPS=()
for n in b a c; do
  EPS+=("$(api "$PG" POST "/v1/$PP/endpoints" "{\"endpoint\":{\"name\":\"$n-$R\",\"type\":\"local\",\"connection_info\":{\"path\":\"/var/tmp\"}}}" | jq -r .endpoint.id)")
done
is() { [ "$1" = "$2" ] || { echo "#   got '$1', wanted '$2'"; return 1; }; }
ids() { api "$PG" GET "/v1/$PP/$1" | jq -r "[.${2:-endpoints}[].id] | join(\" \")"; }
check "three endpoints for paging" test "$(code)" = 201 -a "${#EPS[@]}" = 3
check "a list is the newest first by default (created_at desc)" is "$(ids endpoints)" "${EPS[2]} ${EPS[1]} ${EPS[0]}"
check "?limit=1: the newest only" is "$(ids 'endpoints?limit=1')" "${EPS[2]}"
check "?sort_dir=asc: the oldest first" is "$(ids 'endpoints?sort_dir=asc')" "${EPS[0]} ${EPS[1]} ${EPS[2]}"
check "?marker=ID&limit=1: the next page" is "$(ids "endpoints?marker=${EPS[2]}&limit=1")" "${EPS[1]}"
check "... and after the last item, an empty page" is "$(ids "endpoints/detail?marker=${EPS[0]}")" ""
check "?sort_key=name&sort_dir=asc (/detail too)" is "$(ids 'endpoints/detail?sort_key=name&sort_dir=asc')" "${EPS[1]} ${EPS[0]} ${EPS[2]}"
check "?limit=0: an empty list" is "$(ids 'endpoints?limit=0')" ""
check "other lists page too (transfers, empty)" is "$(ids 'transfers?limit=1&sort_dir=asc' transfers)" ""
api "$PG" GET "/v1/$PP/endpoints?limit=x" > /dev/null
check "?limit=x: 400 naming limit" bash -c "[ $(code) = 400 ] && jq -r .error.message '$TMP/body' | grep -q 'query parameter limit'"
check "  in Coriolis's error body {error: {fault, code, message}}" \
  jq -e '.error.fault == "badRequest" and .error.code == 400 and (.error | keys | sort) == ["code","fault","message"]' "$TMP/body"
api "$PG" GET "/v1/$PP/endpoints?limit=-1" > /dev/null
check "?limit=-1: 400" test "$(code)" = 400
api "$PG" GET "/v1/$PP/endpoints?sort_dir=sideways" > /dev/null
check "?sort_dir=sideways: 400 naming sort_dir" bash -c "[ $(code) = 400 ] && jq -r .error.message '$TMP/body' | grep -q sort_dir"
api "$PG" GET "/v1/$PP/endpoints?sort_key=no_such_field" > /dev/null
check "?sort_key=no_such_field: 400 naming sort_key" bash -c "[ $(code) = 400 ] && jq -r .error.message '$TMP/body' | grep -q sort_key"
api "$PG" GET "/v1/$PP/endpoints?marker=$EP_S" > /dev/null
check "a marker that is no listed item (another project's endpoint): 404 itemNotFound" \
  bash -c "[ $(code) = 404 ] && jq -e '.error.fault == \"itemNotFound\" and (.error.message | test(\"marker\"))' '$TMP/body' > /dev/null"
api "$PG" GET "/v1/$PP/no-such-thing" > /dev/null
check "an unknown route: 404 itemNotFound" jq -e '.error.fault == "itemNotFound" and .error.code == 404' "$TMP/body"
api "" GET "/v1/$PP/endpoints" > /dev/null
check "no token: 401 unauthorized" jq -e '.error.fault == "unauthorized" and .error.code == 401' "$TMP/body"
api "" GET "/v3/auth/tokens" > /dev/null
check "under /v3 the error stays Keystone's (title, no fault)" jq -e '.error.title == "Unauthorized" and (.error | has("fault") | not)' "$TMP/body"

# --- CORS ([api] cors_allowed_origins) --------------------------------------------------------------
# preflight ORIGIN METHOD HEADERS PATH: the status to $TMP/code, the headers to $TMP/cors
preflight() {
  ek_curl -s -o /dev/null -D "$TMP/cors" -w '%{http_code}' -X OPTIONS -H "Origin: $1" \
    -H "Access-Control-Request-Method: $2" ${3:+-H "Access-Control-Request-Headers: $3"} "$URL$4" > "$TMP/code"
}
hdr() { grep -i "^$1:" "$TMP/cors" | cut -d: -f2- | tr -d '\r' | sed 's/^ //'; }
preflight "$UI_ORIGIN" GET "X-Auth-Token, content-type" "/v1/$PP/endpoints"
check "preflight from an allowed origin, no token: 204" test "$(code)" = 204
check "  Access-Control-Allow-Origin: the origin" is "$(hdr Access-Control-Allow-Origin)" "$UI_ORIGIN"
check "  Access-Control-Allow-Methods: the path's methods" is "$(hdr Access-Control-Allow-Methods)" "GET, POST"
check "  Access-Control-Allow-Headers has X-Auth-Token" bash -c "grep -i '^Access-Control-Allow-Headers:' '$TMP/cors' | grep -q X-Auth-Token"
check "  Access-Control-Max-Age and Vary: Origin" bash -c "[ \"\$(grep -i '^Access-Control-Max-Age:' '$TMP/cors' | tr -dc 0-9)\" = 3600 ] && grep -qi '^Vary: Origin' '$TMP/cors'"
preflight "$UI_ORIGIN" POST "Content-Type" "/v3/auth/tokens"
check "preflight of the Keystone login: 204 with POST" bash -c "[ $(code) = 204 ] && grep -i '^Access-Control-Allow-Methods:' '$TMP/cors' | grep -q POST"
preflight "https://evil-$R.example.test" GET "X-Auth-Token" "/v1/$PP/endpoints"
check "preflight from another origin: 405, no CORS headers" bash -c "[ $(code) = 405 ] && ! grep -qi '^Access-Control-' '$TMP/cors'"
preflight "$UI_ORIGIN" GET "X-Not-Allowed" "/v1/$PP/endpoints"
check "preflight asking for a header not allowed: 405, no CORS headers" bash -c "[ $(code) = 405 ] && ! grep -qi '^Access-Control-' '$TMP/cors'"
preflight "$UI_ORIGIN" PATCH "" "/v1/$PP/endpoints"
check "preflight of a method the path does not have: 405" test "$(code)" = 405
ek_curl -s -o "$TMP/body" -D "$TMP/cors" -H "Origin: $UI_ORIGIN" -H "X-Auth-Token: $PG" "$URL/v1/$PP/endpoints?limit=1" > /dev/null
check "a request from the allowed origin: Access-Control-Allow-Origin" is "$(hdr Access-Control-Allow-Origin)" "$UI_ORIGIN"
check "  exposes X-Subject-Token" bash -c "grep -i '^Access-Control-Expose-Headers:' '$TMP/cors' | grep -q X-Subject-Token"
ek_curl -s -o "$TMP/body" -D "$TMP/cors" -H "Origin: $UI_ORIGIN" "$URL/v1/$PP/endpoints" > /dev/null
check "  an error answer (401) carries them too" bash -c "grep -q '^HTTP/1.1 401' '$TMP/cors' && [ \"\$(grep -ci '^Access-Control-Allow-Origin:' '$TMP/cors')\" = 1 ]"
ek_curl -s -o "$TMP/body" -D "$TMP/cors" -H "Origin: https://evil-$R.example.test" -H "X-Auth-Token: $PG" "$URL/v1/$PP/endpoints" > /dev/null
check "a request from another origin: no Access-Control-Allow-Origin, Vary: Origin" bash -c "! grep -qi '^Access-Control-' '$TMP/cors' && grep -qi '^Vary: Origin' '$TMP/cors'"

# --- /metrics and diagnostics: operators only --------------------------------------------------
check "anonymous /metrics is 401" test "$(ek_curl -s -o /dev/null -w '%{http_code}' "$URL/metrics")" = 401
check "a member's /metrics is 403" test "$(ek_curl -s -o /dev/null -w '%{http_code}' -H "X-Auth-Token: $A" "$URL/metrics")" = 403
check "an admin reads /metrics" bash -c "ek_curl -sf -H 'X-Auth-Token: $ADMIN' '$URL/metrics' | grep -q '^ekman_http_requests_total'"
check "the metrics token reads /metrics" bash -c "ek_curl -sf -H 'Authorization: Bearer $METRICS_TOKEN' '$URL/metrics' | grep -q '^ekman_http_requests_total'"
check "the metrics token is no API token" test "$(ek_curl -s -o /dev/null -w '%{http_code}' -H "X-Auth-Token: $METRICS_TOKEN" "$URL/v1/$PA/endpoints")" = 401
api "$A" GET "/v1/$PA/diagnostics" > /dev/null
check "a member's diagnostics are 403" test "$(code)" = 403
check "... and show no host name" bash -c "! grep -q \"$(hostname)\" '$TMP/body'"
read -r _ ADMIN_P < <(login "admin-$R" "Admin-pass-$R")
api "$ADMIN" GET "/v1/$ADMIN_P/diagnostics" > /dev/null
check "an admin reads diagnostics" test "$(code)" = 200

# --- users made and changed by an admin: passwords hashed off the API threads ----------------------
api "$ADMIN" POST /v1/users "{\"user\":{\"name\":\"carol-$R\",\"password\":\"Carol-pass-$R\",\"project\":\"proj-a-$R\"}}" > "$TMP/carol.json"
check "an admin creates a user (201)" test "$(code)" = 201
CAROL=$(jq -r .user.id "$TMP/carol.json")
read -r C _ < <(login "carol-$R" "Carol-pass-$R")
check "the new user logs in" test -n "$C" -a "$C" != null
api "$ADMIN" PUT "/v1/users/$CAROL" "{\"user\":{\"password\":\"Carol-new-$R\"}}" > /dev/null
check "an admin resets the password (200)" test "$(code)" = 200
api "" POST /v1/auth/tokens "{\"auth\":{\"username\":\"carol-$R\",\"password\":\"Carol-pass-$R\"}}" > /dev/null
check "the old password no longer works" test "$(code)" = 401
read -r C _ < <(login "carol-$R" "Carol-new-$R")
check "the new password works" test -n "$C" -a "$C" != null
api "$ADMIN" PUT "/v1/users/$CAROL" '{"user":{"role":"member","enabled":true}}' > /dev/null
check "an update without a password still works (200)" test "$(code)" = 200

# --- logins: same cost for unknown users, scrypt off the API threads ------------------------------
# login_time ADDRESS USER PASSWORD: seconds a login takes from ADDRESS; status in $TMP/lcode
login_time() {
  ek_curl -s -o /dev/null -w '%{http_code} %{time_total}\n' --interface "$1" -X POST \
    -H 'Content-Type: application/json' \
    --data-binary "{\"auth\":{\"username\":\"$2\",\"password\":\"$3\"}}" "$URL/v1/auth/tokens" |
    { read -r c t; echo "$c" > "$TMP/lcode"; echo "$t"; }
}
known=0 unknown=0
for i in 1 2 3; do
  t=$(login_time 127.0.0.4 "bob-$R" "wrong-$i"); known=$(python3 -c "print($known + $t)")
  t=$(login_time 127.0.0.5 "nobody-$R-$i" "wrong-$i"); unknown=$(python3 -c "print($unknown + $t)")
done
echo "# 3 wrong logins: known user ${known}s, unknown user ${unknown}s"
check "an unknown user costs what a known one costs (no enumeration by timing)" \
  python3 -c "import sys; sys.exit(0 if 0.6 < $unknown / $known < 1.6 else 1)"
check "unknown and known users get the same 401" test "$(cat "$TMP/lcode")" = 401

base=$(login_time 127.0.0.2 "alice-$R" "Alice-pass-$R")
check "a right login works from 127.0.0.2" test "$(cat "$TMP/lcode")" = 201
echo "# right login alone: ${base}s"
# 200 wrong logins at once from 127.0.0.1 (unknown users and a real one), from
# one light client (threads, not 200 processes competing for the CPU)
python3 - "$PORT" "$R" "$TMP/storm.codes" "$TMP/storm.end" "$EKMAN_CA_FILE" <<'PY' &
import http.client, json, ssl, sys, threading, time
port, r, codes_file, end_file = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
tls = ssl.create_default_context(cafile=sys.argv[5])
codes, lock = [], threading.Lock()
def one(i):
    user = ("storm-%d-%s" % (i, r)) if i % 2 else ("bob-" + r)
    try:
        c = http.client.HTTPSConnection("127.0.0.1", port, timeout=60, context=tls)
        c.request("POST", "/v1/auth/tokens", json.dumps({"auth": {"username": user, "password": "guess-%d" % i}}),
                  {"Content-Type": "application/json"})
        code = c.getresponse().status
    except Exception as e:
        code = "error:%s" % e
    with lock:
        codes.append(code)
threads = [threading.Thread(target=one, args=(i,)) for i in range(200)]
for t in threads:
    t.start()
    time.sleep(0.005)  # 200 in one second
for t in threads:
    t.join()
open(end_file, "w").write("%f\n" % time.time())
open(codes_file, "w").write("".join("%s\n" % c for c in codes))
PY
STORM=$!
sleep 0.3
# the right login and /healthz probes while the storm runs
right_start=$(date +%s.%N)
{ login_time 127.0.0.2 "alice-$R" "Alice-pass-$R" > "$TMP/during"; cp "$TMP/lcode" "$TMP/during.code"; } &
RIGHT=$!
hz_max=0
for i in 1 2 3 4 5; do
  t=$(ek_curl -s -o /dev/null -w '%{time_total}' "$URL/healthz")
  hz_max=$(python3 -c "print(max($hz_max, $t))")
  sleep 0.1
done
wait $RIGHT
wait $STORM
during=$(cat "$TMP/during")
during_code=$(cat "$TMP/during.code")
check "the right login started while the storm ran" python3 -c "import sys; sys.exit(0 if $right_start < $(cat "$TMP/storm.end") else 1)"
echo "# during the storm: right login ${during}s, /healthz at most ${hz_max}s"
echo "# storm answers: $(sort "$TMP/storm.codes" | uniq -c | tr '\n' ' ')"
check "the right login during the storm succeeds" test "$during_code" = 201
check "... slowed by less than 1 s" python3 -c "import sys; sys.exit(0 if $during - $base < 1 else 1)"
check "/healthz stays under 1 s during the storm" python3 -c "import sys; sys.exit(0 if $hz_max < 1 else 1)"
check "the storm gets 401, 429 or 503, never a 500" bash -c "! grep -qv -e '^401$' -e '^429$' -e '^503$' '$TMP/storm.codes'"
check "the storm was refused in part (bounded queue / back-off)" grep -q -e '^429$' -e '^503$' "$TMP/storm.codes"
ek_curl -s -D "$TMP/headers" -o "$TMP/body" -X POST -H 'Content-Type: application/json' \
  --data-binary "{\"auth\":{\"username\":\"storm-x-$R\",\"password\":\"x\"}}" "$URL/v1/auth/tokens" > /dev/null
check "after the storm, its address backs off: 429" grep -q "^HTTP/1.1 429" "$TMP/headers"
check "... with Retry-After" grep -qi "^Retry-After: [1-9]" "$TMP/headers"

# --- libmicrohttpd's own messages: in the log format, rate-limited -------------------------------
python3 - "$PORT" "$EKMAN_CA_FILE" <<'PY'
import socket, ssl, sys
port = int(sys.argv[1])
tls = ssl.create_default_context(cafile=sys.argv[2])
for i in range(300):
    s = tls.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="127.0.0.1")
    if i % 3 == 0:
        s.sendall(b"GARBAGE\r\n\r\n")
    elif i % 3 == 1:
        s.sendall(b"POST /v1/auth/tokens HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 500\r\n\r\n{\"auth\":")
    else:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 200000)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.close()
PY
sleep 1
echo "# libmicrohttpd messages in the log: $(grep -c 'HTTP server' "$TMP/c1.log")"
check "every line of the conductor's log has a timestamp" \
  bash -c "! grep -Evq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z ' '$TMP/c1.log'"
check "at most 20 HTTP server messages a minute reach the log" \
  test "$(grep -c 'HTTP server' "$TMP/c1.log")" -le 21
check "the conductor still answers" ek_curl -sf "$URL/healthz"
grep -v '^[0-9]' "$TMP/c1.log" | head -3

finish
