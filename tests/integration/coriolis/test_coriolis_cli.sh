#!/usr/bin/env bash
# test_coriolis_cli.sh - the stock Coriolis client (python-coriolisclient,
# unmodified, from ../shared/third_party) logs in to Ekman through the
# Keystone v3 facade (POST /v3/auth/tokens) and drives Ekman's /v1 API from
# the catalog it got: endpoint list/create/show, provider list, a wrong
# password, another domain, a project by name and by id, a member kept to its
# project, a token passed with --os-auth-token. Then the facade itself with
# curl: the token document, validation, revocation, unscoped tokens and their
# re-scoping, projects, users, role assignments, Keystone's error shape.
# Usage: test_coriolis_cli.sh BUILD_DIR SOURCE_DIR STACK_DIR
set -u
. "$(dirname "$0")/../lib.sh"
BUILD=$1 SRC=$2 STACK=$3
eval "$("$SRC/deploy/stack.sh" env "$STACK")"
TMP=$(mktemp -d /var/tmp/ekman-coriolis.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
  wait 2>/dev/null; [ -n "${EK_KEEP_TMP:-}" ] && echo "# kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT
. "$(dirname "$0")/../conductor_lib.sh"
PORT=$((EKMAN_API_PORT + 55))
URL="https://127.0.0.1:$PORT"
R=$RANDOM$RANDOM

# --- the client: Debian's packages, its metadata built here ---------------------------
. "$(dirname "$0")/lib_co.sh"
co_setup
check "the copy of the client is left as it was (no metadata written into it)" \
  bash -c "! ls -d '$THIRD'/*.dist-info '$THIRD'/*.egg-info 2>/dev/null | grep -q ."

# --- a conductor of our own, and accounts ----------------------------------------------
start_conductor c "$PORT"
# the CLI's user is a member (an admin sees every project's endpoints)
USR=co-user-$R UPW=User-pass-$R PROJ=co-proj-$R
ADMIN=co-admin-$R APW=Admin-pass-$R APROJ=co-admins-$R
MEMBER=co-member-$R MPW=Member-pass-$R MPROJ=co-other-$R
create_user "$USR" "$PROJ" member "$UPW"
create_user "$ADMIN" "$APROJ" admin "$APW"
create_user "$MEMBER" "$MPROJ" member "$MPW"
PID=$(psql_admin -c "SELECT id FROM projects WHERE name = '$PROJ'")
APID=$(psql_admin -c "SELECT id FROM projects WHERE name = '$APROJ'")
MPID=$(psql_admin -c "SELECT id FROM projects WHERE name = '$MPROJ'")

CO_USER=$USR CO_PASSWORD=$UPW CO_PROJECT=$PROJ # the CLI's user (lib_co.sh: co)

# --- the stock CLI --------------------------------------------------------------------
co version --version
check "coriolis --version (the metadata built here)" has version "coriolis 0.0.0"

co list0 endpoint list -f json
check "coriolis endpoint list: logs in and answers (exit 0)" is $RC 0 || show list0
check "endpoint list: an empty list" is "$(jq length "$TMP/list0.out" 2>/dev/null)" 0

mkdir -p "$TMP/images"
co create endpoint create --name "co-src-$R" --provider local --description "made by coriolis" \
  --connection "{\"path\": \"$TMP/images\"}" --skip-validation -f json
check "coriolis endpoint create --provider local: exit 0" is $RC 0 || show create
EPID=$(jq -r .id "$TMP/create.out" 2>/dev/null)
check "endpoint create: shows the name, type and description" \
  test "$(jq -r '.name + " " + .type + " " + .description' "$TMP/create.out" 2>/dev/null)" = "co-src-$R local made by coriolis"
check "endpoint create: an id" test "${#EPID}" = 36

co list1 endpoint list -f json
check "endpoint list: exit 0" is $RC 0 || show list1
check "endpoint list: the new endpoint, by id, name and type" \
  is "$(jq -r --arg id "$EPID" '.[] | select(.ID == $id) | .Name + " " + .Type' "$TMP/list1.out" 2>/dev/null)" "co-src-$R local"
co list2 endpoint list
check "endpoint list (table): the endpoint's name" has list2 "co-src-$R"

co show endpoint show "$EPID" -f json
check "coriolis endpoint show: exit 0" is $RC 0 || show show
check "endpoint show: its id, name and type" \
  is "$(jq -r '.id + " " + .name + " " + .type' "$TMP/show.out" 2>/dev/null)" "$EPID co-src-$R local"
check "endpoint show: its connection info" \
  is "$(jq -r '.connection_info.path // .connection_info' "$TMP/show.out" 2>/dev/null | tr -d '\n ' | grep -o "$TMP/images" | head -1)" "$TMP/images"

co providers provider list -f json
check "coriolis provider list: exit 0" is $RC 0 || show providers
check "provider list: local and libvirt" \
  bash -c "jq -r '.[][]' '$TMP/providers.out' | grep -qx local && jq -r '.[][]' '$TMP/providers.out' | grep -qx libvirt"

CO_ENV="OS_PASSWORD=not-the-password" co wrongpw endpoint list
check "wrong password: exit non-zero" test $RC -ne 0
# the client logs every 401 with its traceback (coriolisclient/base.py); its
# last line is the message
check "wrong password: says so, last" \
  bash -c "tail -1 '$TMP/wrongpw.err' | grep -q '^ERROR: Failed to authorize Keystone session.*wrong user name or password (HTTP 401)'"

CO_ENV="OS_USER_DOMAIN_NAME=Elsewhere" co domain endpoint list
check "another user domain: exit non-zero" test $RC -ne 0
check "another user domain: Ekman's one domain named, and what to set" \
  has_err domain 'Ekman has one domain, "Default".*OS_USER_DOMAIN_NAME=Default'

CO_ENV="OS_PROJECT_NAME= OS_PROJECT_ID=$PID" co byid endpoint list -f json
check "OS_PROJECT_ID instead of the name: the same endpoints" \
  is "$(jq -r '.[].ID' "$TMP/byid.out" 2>/dev/null)" "$EPID"

CO_ENV="OS_USERNAME=$MEMBER OS_PASSWORD=$MPW OS_PROJECT_NAME=$MPROJ" co member endpoint list -f json
check "another member in its own project: exit 0, none of the first one's endpoints" \
  test $RC -eq 0 -a "$(jq length "$TMP/member.out" 2>/dev/null)" = 0
CO_ENV="OS_USERNAME=$ADMIN OS_PASSWORD=$APW OS_PROJECT_NAME=$APROJ" co admin endpoint show "$EPID" -f json
check "an admin (in its own project): sees it too" is "$(jq -r .name "$TMP/admin.out" 2>/dev/null)" "co-src-$R"
CO_ENV="OS_USERNAME=$MEMBER OS_PASSWORD=$MPW" co member2 endpoint list
check "a member scoping to another project: refused, with its own project named" \
  bash -c "[ $RC -ne 0 ] && grep -q 'has no access to project $PROJ.*\"$MPROJ\"' '$TMP/member2.err'"

# a token from the facade, given to the CLI (keystoneauth's v3 Token: re-scoping)
tok_of() { # tok_of BODY: the X-Subject-Token of a POST /v3/auth/tokens; the body in TMP/body
  ek_curl -s -D "$TMP/hdr" -o "$TMP/body" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-binary "$1" "$URL/v3/auth/tokens" > "$TMP/code"
  tr -d '\r' < "$TMP/hdr" | sed -n 's/^[Xx]-[Ss]ubject-[Tt]oken: //p'
}
pw_body() { # pw_body USER PASSWORD [SCOPE_JSON]
  printf '{"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "%s", "domain": {"name": "Default"}, "password": "%s"}}}%s}}' \
    "$1" "$2" "${3:+, \"scope\": $3}"
}
T=$(tok_of "$(pw_body "$ADMIN" "$APW" "{\"project\": {\"name\": \"$PROJ\", \"domain\": {\"id\": \"default\"}}}")")
check "POST /v3/auth/tokens: 201 with X-Subject-Token (an admin scoped to another project)" \
  test "$(code)" = 201 -a -n "$T"
cp "$TMP/body" "$TMP/scoped.json"
# (with a token the client refuses OS_USER_DOMAIN_NAME itself: v3.Token takes none)
CO_ENV="OS_USERNAME= OS_PASSWORD= OS_USER_DOMAIN_NAME= OS_AUTH_TOKEN=$T" co bytoken endpoint list -f json
check "coriolis --os-auth-token (a token of the facade, re-scoped): the endpoint" \
  is "$(jq -r --arg id "$EPID" '.[] | select(.ID == $id) | .Name' "$TMP/bytoken.out" 2>/dev/null)" "co-src-$R"

# --- the facade, with curl --------------------------------------------------------------
j() { jq -r "$1" "$TMP/scoped.json"; }
check "token: user id, name and domain" \
  is "$(j '.token.user.name + " " + .token.user.domain.id + " " + .token.user.domain.name')" "$ADMIN default Default"
check "token: the project, by id and name" is "$(j '.token.project.id + " " + .token.project.name')" "$PID $PROJ"
check "token: methods [password], role admin" is "$(j '(.token.methods | join(",")) + " " + (.token.roles[0].name)')" "password admin"
check "token: expires_at and issued_at in ISO 8601 with microseconds and Z" \
  bash -c "jq -r '.token.expires_at, .token.issued_at' '$TMP/scoped.json' | grep -cE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z$' | grep -qx 2"
check "token: the catalog's migration service, public/internal/admin at /v1/<project id>" \
  is "$(j '[.token.catalog[] | select(.type == "migration" and .name == "coriolis") | .endpoints[] | .interface + "=" + .url] | join(" ")')" \
  "public=$URL/v1/$PID internal=$URL/v1/$PID admin=$URL/v1/$PID"
check "the token is not in the body" bash -c "! grep -qF -- '$T' '$TMP/scoped.json'"
api "$T" GET "/v1/$PID/endpoints" > /dev/null
check "the token works on /v1/<project id>/ (X-Auth-Token)" is "$(code)" 200

api "$T" GET /v3/auth/projects > "$TMP/projects.json"
check "GET /v3/auth/projects (an admin): every project" \
  test "$(jq "[.projects[] | select(.id == \"$PID\" or .id == \"$MPID\" or .id == \"$APID\") | select(.domain_id == \"default\")] | length" "$TMP/projects.json")" = 3

# unscoped, then re-scoped with the token method
U=$(tok_of "$(pw_body "$MEMBER" "$MPW")")
check "unscoped login: 201, no project, no catalog" \
  test "$(code)" = 201 -a "$(jq -r '(.token.project // "none") + " " + ((.token.catalog // []) | length | tostring)' "$TMP/body")" = "none 0"
api "$U" GET "/v1/$MPID/endpoints" > /dev/null
check "an unscoped token reaches no project route (403)" is "$(code)" 403
check "  and says to scope it" grep -q "unscoped" "$TMP/body"
api "$U" GET /v3/auth/projects > "$TMP/mprojects.json"
check "GET /v3/auth/projects (a member, unscoped): its one project" \
  is "$(jq -r '[.projects[].name] | join(",")' "$TMP/mprojects.json")" "$MPROJ"
S=$(tok_of "{\"auth\": {\"identity\": {\"methods\": [\"token\"], \"token\": {\"id\": \"$U\"}}, \"scope\": {\"project\": {\"id\": \"$MPID\"}}}}")
check "re-scoping an unscoped token with the token method: 201, role member" \
  test "$(code)" = 201 -a "$(jq -r '.token.project.id + " " + .token.roles[0].name' "$TMP/body")" = "$MPID member"
check "  ending when the unscoped one does" \
  is "$(jq -r .token.expires_at "$TMP/body")" "$(ek_curl -s -H "X-Auth-Token: $U" -H "X-Subject-Token: $U" "$URL/v3/auth/tokens" | jq -r .token.expires_at)"
MUID=$(jq -r .token.user.id "$TMP/body")
api "$S" GET "/v1/$MPID/endpoints" > /dev/null
check "the re-scoped token works on its project" is "$(code)" 200
api "$S" GET "/v1/$PID/endpoints" > /dev/null
check "  and not on another (404, as if it did not exist)" is "$(code)" 404
api "$S" GET "/v3/users/$MUID" > "$TMP/user.json"
check "GET /v3/users/{own id}" is "$(jq -r '.user.name + " " + .user.domain_id + " " + .user.default_project_id' "$TMP/user.json")" "$MEMBER default $MPID"
AUID=$(j .token.user.id)
api "$S" GET "/v3/users/$AUID" > /dev/null
check "GET /v3/users/{another user} as a member: 403" is "$(code)" 403
api "$S" GET "/v3/role_assignments?user.id=$MUID&include_names=1" > "$TMP/ra.json"
check "GET /v3/role_assignments: the member's one role on its project" \
  is "$(jq -r '[.role_assignments[] | .role.name + "@" + .scope.project.name] | join(",")' "$TMP/ra.json")" "member@$MPROJ"
api "$T" GET "/v3/role_assignments?scope.project.id=$APID" > "$TMP/ra2.json"
check "GET /v3/role_assignments?scope.project.id (an admin)" \
  is "$(jq -r '[.role_assignments[] | .user.id + ":" + .role.id] | join(",")' "$TMP/ra2.json")" "$AUID:admin"
api "$T" GET "/v3/role_assignments?scope.project.id=$PID" > "$TMP/ra3.json"
check "  of another project: its member" \
  is "$(jq -r '[.role_assignments[] | .role.id] | join(",")' "$TMP/ra3.json")" "member"

# validation and revocation (X-Auth-Token + X-Subject-Token)
sub() { # sub METHOD AUTH SUBJECT: the status; the body in TMP/body
  ek_curl -s -o "$TMP/body" -w '%{http_code}' -X "$1" -H "X-Auth-Token: $2" -H "X-Subject-Token: $3" \
    "$URL/v3/auth/tokens"
}
check "GET /v3/auth/tokens: 200 with the same document" \
  test "$(sub GET "$T" "$S")" = 200 -a "$(jq -r '.token.project.id + " " + .token.user.id' "$TMP/body")" = "$MPID $MUID"
check "GET /v3/auth/tokens: the catalog too" is "$(jq -r '.token.catalog[0].endpoints[0].url' "$TMP/body")" "$URL/v1/$MPID"
check "a member may not check another user's token (403)" is "$(sub GET "$S" "$T")" 403
check "DELETE /v3/auth/tokens: 204" is "$(sub DELETE "$S" "$S")" 204
check "the revoked token is invalid: GET /v3/auth/tokens 404 (asked with another)" is "$(sub GET "$T" "$S")" 404
check "  in Keystone's error shape" is "$(jq -r '(.error.code | tostring) + " " + .error.title' "$TMP/body")" "404 Not Found"
api "$S" GET "/v1/$MPID/endpoints" > /dev/null
check "  and refused on /v1 (401)" is "$(code)" 401

# errors
tok_of '{"auth": {"identity": {"methods": ["password"], "password": {"user": {"domain": {"name": "Default"}, "password": "x"}}}}}' > /dev/null
check "a user without name or id: 400 naming the field, Keystone's shape" \
  bash -c "[ \"\$(cat '$TMP/code')\" = 400 ] && jq -e '.error.code == 400 and .error.title == \"Bad Request\" and (.error.message | test(\"auth.identity.password.user needs\"))' '$TMP/body' > /dev/null"
tok_of '{"auth": {"identity": {"password": {}}}}' > /dev/null
check "no methods: 400 naming auth.identity.methods" \
  bash -c "[ \"\$(cat '$TMP/code')\" = 400 ] && grep -q 'auth.identity.methods is required' '$TMP/body'"
tok_of "$(pw_body "$ADMIN" wrong-password-x)" > /dev/null
check "a wrong password with curl: 401 Unauthorized, Keystone's shape" \
  bash -c "[ \"\$(cat '$TMP/code')\" = 401 ] && jq -e '.error.code == 401 and .error.title == \"Unauthorized\" and .error.message == \"wrong user name or password\"' '$TMP/body' > /dev/null"
tok_of "$(pw_body nobody-$R wrong-password-x)" > /dev/null
check "an unknown user: the same 401" bash -c "[ \"\$(cat '$TMP/code')\" = 401 ] && grep -q 'wrong user name or password' '$TMP/body'"
tok_of "$(pw_body "$ADMIN" "$APW" '{"domain": {"id": "default"}}')" > /dev/null
check "a domain scope: 401 saying Ekman has none" \
  bash -c "[ \"\$(cat '$TMP/code')\" = 401 ] && grep -q 'Ekman has no domain scope' '$TMP/body'"
ek_curl -s "$URL/v3" > "$TMP/version.json"
check "GET /v3: the version document" is "$(jq -r '.version.status + " " + .version.links[0].href' "$TMP/version.json")" "stable $URL/v3/"

# clean shutdown: under the sanitizers a leak makes the exit code non-zero
# shellcheck disable=SC2154 # PID_c: set by start_conductor
kill -TERM "$PID_c"; wait "$PID_c"; rc=$?
check "the conductor exits 0 on SIGTERM (got $rc)" test $rc -eq 0
check "no sanitizer report in its log" bash -c "! grep -q 'Sanitizer\|runtime error' '$TMP/c.log'"
check "no password or token in the conductor's log" \
  bash -c "! grep -qF -e '$UPW' -e '$APW' -e '$MPW' -e '$T' -e '$U' -e '$S' '$TMP/c.log'"
finish
