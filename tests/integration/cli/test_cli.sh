#!/usr/bin/env bash
# test_cli.sh - drives every `ekman` command against the real stack: a
# conductor, a scheduler and a worker started here, the `local` provider as
# source and destination so that a real transfer runs. Checks tables and
# JSON output (jq), exit codes (0 ok, 1 API error, 2 usage, 3 auth,
# 4 unreachable, 5 execution failed), the --wait progress lines, the token
# cache (0600, renewed when it expired) and the messages for a wrong
# password, an unreachable API and a missing argument.
# Usage: test_cli.sh BUILD_DIR SOURCE_DIR STACK_DIR
set -u
. "$(dirname "$0")/../lib.sh"
BUILD=$1 SRC=$2 STACK=$3
eval "$("$SRC/deploy/stack.sh" env "$STACK")"
TMP=$(mktemp -d /var/tmp/ekman-cli.XXXXXX)
chmod 755 "$TMP"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do pkill -KILL -P "$p" 2>/dev/null; kill -KILL "$p" 2>/dev/null; done
  wait 2>/dev/null; [ -n "${EK_KEEP_TMP:-}" ] && echo "# kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT
. "$(dirname "$0")/../conductor_lib.sh"
PORT=$((EKMAN_API_PORT + 45))
URL="https://127.0.0.1:$PORT"
R=$RANDOM$RANDOM
MiB=1048576
export XDG_CACHE_HOME=$TMP/cache
unset EKMAN_USERNAME EKMAN_PASSWORD EKMAN_PROJECT
export EKMAN_URL=$URL

sed -e "s/^\[worker\]/[worker]\nhost = cli-$R\nproviders = local\ncapacity = 2/" \
    -e "s/^port = .*/port = $PORT/" "$EKMAN_CONFIG" > "$TMP/svc.conf"
# the endpoints' directories are in TMP: the worker may read there
printf '\n[local]\nallowed_roots = %s\n' "$TMP" >> "$TMP/svc.conf"
"$BUILD/conductor/ekman-conductor" --config "$TMP/svc.conf" > "$TMP/c.log" 2>&1 & PIDS+=($!)
"$BUILD/scheduler/ekman-scheduler" --config "$TMP/svc.conf" > "$TMP/s.log" 2>&1 & PIDS+=($!)
"$BUILD/worker/ekman-worker" --config "$TMP/svc.conf" > "$TMP/w.log" 2>&1 & PIDS+=($!)
check "the conductor answers" wait_for 60 ek_curl -sf "$URL/healthz"

EK=$BUILD/client/ekman
# run NAME ARGS...: ekman's stdout in $TMP/NAME.out, stderr in $TMP/NAME.err, exit code in RC
run() { local n=$1; shift; "$EK" "$@" > "$TMP/$n.out" 2> "$TMP/$n.err"; RC=$?; }
out() { cat "$TMP/$1.out"; }
err() { cat "$TMP/$1.err"; }
has() { grep -q -- "$2" "$TMP/$1.out"; }      # has NAME TEXT: stdout holds TEXT
has_err() { grep -q -- "$2" "$TMP/$1.err"; }  # stderr holds TEXT
is() { [ "$1" = "$2" ] || { echo "#   got '$1', wanted '$2'"; return 1; }; }

# --- no login needed -----------------------------------------------------------------
run status status
check "status: exit 0, ok" test $RC -eq 0 -a -n "$(grep ': ok' "$TMP/status.out")"
run unreach --url http://127.0.0.1:1 --username x --password y endpoint list
check "unreachable API: exit 4" is $RC 4
check "unreachable API: names the URL and what to check" \
  grep -q "cannot reach the Ekman API at http://127.0.0.1:1.*conductor is running.*EKMAN_URL" "$TMP/unreach.err"
run missing transfer show
check "missing argument: exit 2" is $RC 2
check "missing argument: named, with the usage" bash -c "grep -q 'missing argument TRANSFER' '$TMP/missing.err' && grep -q 'Usage: ekman transfer show TRANSFER' '$TMP/missing.err'"
run missing_opt transfer create --origin-endpoint a --destination-endpoint b
check "missing option: exit 2, named" bash -c "[ $RC = 2 ] && grep -q 'missing option --instance' '$TMP/missing_opt.err'"
run unknown endpoint frobnicate
check "unknown subcommand: exit 2 with the group's subcommands" bash -c "[ $RC = 2 ] && grep -q 'endpoint list' '$TMP/unknown.err'"
run badfmt --format yaml status
check "bad --format: exit 2" is $RC 2

# every command and group answers --help with its usage
"$EK" --help > "$TMP/help.txt"; check "ekman --help: exit 0" is $? 0
n=0 bad=0
while read -r words; do
  n=$((n + 1))
  # shellcheck disable=SC2086
  "$EK" $words --help > "$TMP/h.txt" 2>&1 && grep -q "^Usage: ekman $words" "$TMP/h.txt" || { bad=$((bad + 1)); echo "# --help failed: $words"; }
done < <(awk '/^Commands:/ {f = 1; next} /^$/ {f = 0} f' "$TMP/help.txt" | sed 's/^  //; s/  .*//; s/ [A-Z[].*//')
check "--help on every command ($n commands, $bad failed)" test $n -ge 40 -a $bad -eq 0
bad=0
for g in endpoint "endpoint instance" transfer "transfer execution" "transfer schedule" deployment provider user project; do
  # shellcheck disable=SC2086
  "$EK" $g --help > "$TMP/h.txt" 2>&1 || bad=$((bad + 1))
done
check "--help on every group" test $bad -eq 0

# the man page and the bash completion
if command -v man > /dev/null && command -v nroff > /dev/null; then
  MANWIDTH=100 man --warnings -l "$SRC/docs/ekman.1" > "$TMP/man.txt" 2> "$TMP/man.err"
  check "the man page renders without warnings" test ! -s "$TMP/man.err" -a -s "$TMP/man.txt"
  check "the man page documents the exit codes" bash -c "grep -q 'EXIT STATUS' '$TMP/man.txt' && grep -q 'The API cannot be reached' '$TMP/man.txt'"
fi
comp() { # comp WORDS...: what the completion offers for the last word
  bash -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _ekman; echo "${COMPREPLY[*]}"' \
    _ "$SRC/deploy/ekman.bash-completion" "$EK" "$@"
}
check "completion: the groups" is "$(comp "")" "deployment endpoint login logout project provider status transfer user"
check "completion: subcommands" is "$(comp transfer exec)" "execute execution"
check "completion: after a global option" is "$(comp --format json transfer execution "")" "cancel delete list show"
check "completion: options of the command" is "$(comp transfer execute T --w)" "--wait"
check "completion: option values" is "$(comp endpoint create --provider lo)" "local"

# --- accounts ----------------------------------------------------------------------------
ADMIN=cli-admin-$R APW=Admin-pass-$R
create_user "$ADMIN" "cli-admins-$R" admin "$APW"
run wrongpw login --username "$ADMIN" --password "not-the-password"
check "wrong password: exit 3" is $RC 3
check "wrong password: says so" has_err wrongpw "wrong user name or password for user '$ADMIN'"
run login login --username "$ADMIN" --password "$APW"
check "login: exit 0" is $RC 0
check "login: says who and where" has login "Logged in to $URL as $ADMIN, an admin"
if command -v script > /dev/null; then
  # the password typed on a terminal, after the prompt (without echo)
  (sleep 2; printf '%s\n' "$APW") | script -qec "$EK login --username $ADMIN" /dev/null > "$TMP/plogin.out" 2>&1
  check "login on a terminal: asks for the password, does not echo it" bash -c "grep -q 'Password for $ADMIN at $URL: ' '$TMP/plogin.out' && grep -q 'Logged in to' '$TMP/plogin.out' && ! grep -q -- '$APW' '$TMP/plogin.out'"
fi
tokfile=$(ls "$XDG_CACHE_HOME"/ekman/token-*.json 2>/dev/null | head -1)
check "the token is cached in a file only its owner reads (0600)" test -n "$tokfile" -a "$(stat -c %a "$tokfile" 2>/dev/null)" = 600
check "in a directory only its owner enters (0700)" is "$(stat -c %a "$XDG_CACHE_HOME/ekman")" 700
check "the token is not printed" bash -c "! grep -qF \"\$(jq -r .token '$tokfile')\" '$TMP/login.out' '$TMP/login.err'"
# later commands find the last user of the URL without --username
run plist project list
check "project list (the cached token, no credentials given): exit 0" is $RC 0
check "project list: a table with the admin's project" bash -c "head -1 '$TMP/plist.out' | grep -q '^ID  *NAME  *CREATED' && grep -q 'cli-admins-$R' '$TMP/plist.out'"
run pcreate project create "cli-proj-$R" --format json
check "project create: JSON with an id" test "$(jq -r .name "$TMP/pcreate.out")" = "cli-proj-$R" -a "$(jq -r '.id | length' "$TMP/pcreate.out")" = 36
run plistj --format json project list
check "project list --format json: both projects" test "$(jq "[.[] | select(.name == \"cli-proj-$R\" or .name == \"cli-admins-$R\")] | length" "$TMP/plistj.out")" = 2

USER=cli-user-$R UPW=User-pass-$R
echo "$UPW" > "$TMP/pw"
run ucreate user create "$USER" --project "cli-proj-$R" --password-file "$TMP/pw" --format json
check "user create: exit 0, a member" test $RC -eq 0 -a "$(jq -r .role "$TMP/ucreate.out")" = member
run ucreate2 user create "cli-x-$R" --project "cli-proj-$R"  < /dev/null
check "user create without a password: exit 2, says how" bash -c "[ $RC = 2 ] && grep -q -- '--password-file' '$TMP/ucreate2.err'"
run ulist user list
check "user list: a table with the user" bash -c "head -1 '$TMP/ulist.out' | grep -q '^ID  *NAME  *ROLE  *PROJECT' && grep -q '$USER .*member .*cli-proj-$R' '$TMP/ulist.out'"
run ushow user show "$USER" --format json
check "user show --format json" is "$(jq -r .project_name "$TMP/ushow.out")" "cli-proj-$R"
V=cli-victim-$R
create_user "$V" "cli-proj-$R" member "Victim-pass-$R"
run vlogin login --username "$V" --password "Victim-pass-$R"
check "login of a second user" is $RC 0
run uupd --username "$ADMIN" user update "$V" --disable --format json
check "user update --disable" test $RC -eq 0 -a "$(jq -r .enabled "$TMP/uupd.out")" = false
run vlogin2 --username "$V" --password "Victim-pass-$R" transfer list
check "a disabled user: its cached token refused, the login too: exit 3" bash -c "[ $RC = 3 ] && grep -q 'wrong user name or password' '$TMP/vlogin2.err'"
echo "New-victim-pass-$R" > "$TMP/pw2"
run uupd2 --username "$ADMIN" user update "$V" --enable --role admin --password-file "$TMP/pw2" --format json
check "user update --enable --role --password-file" test "$(jq -r '.enabled, .role' "$TMP/uupd2.out" | xargs)" = "true admin"
run vlogin3 login --username "$V" --password "New-victim-pass-$R"
check "the new password works, the new role shows" grep -q "as $V, an admin" "$TMP/vlogin3.out"
run uupd3 --username "$ADMIN" user update "$V"
check "user update without changes: exit 2" is $RC 2
run udel --username "$ADMIN" user delete "$V"
check "user delete: exit 0" test $RC -eq 0 -a -n "$(grep "Deleted user $V" "$TMP/udel.out")"
run udel2 --username "$ADMIN" user delete "$V"
check "user delete of a missing user: exit 1" is $RC 1

# from now on the member works through the environment
export EKMAN_USERNAME=$USER EKMAN_PASSWORD=$UPW
run ulist_member user list
check "user list as a member: exit 3, admins only" bash -c "[ $RC = 3 ] && grep -q 'only an admin' '$TMP/ulist_member.err'"
run otherproj --project "cli-admins-$R" endpoint list
check "--project of another project as a member: exit 3" is $RC 3

# --- providers ------------------------------------------------------------------------------
run provs provider list
check "provider list: local as source and destination" grep -q "^local  *yes  *yes" "$TMP/provs.out"
run provsj provider list --format json
check "provider list --format json" test "$(jq -r '.local.types | length' "$TMP/provsj.out")" -ge 3
run schema provider schema local connection
check "provider schema local: a JSON schema naming path" test "$(jq -r '.properties.path.type' "$TMP/schema.out")" = string
run schema2 provider schema local nonsense
check "provider schema with a bad kind: exit 2" is $RC 2

# --- endpoints --------------------------------------------------------------------------------
S=$TMP/src D=$TMP/dst
mkdir -p "$S" "$D"; chmod 755 "$S" "$D"
rnd() { dd if=/dev/urandom of="$1" bs=65536 seek=$(($2 / 65536)) count=$(($3 / 65536)) conv=notrunc status=none; }
truncate -s 64M "$S/web01-root.img"; rnd "$S/web01-root.img" 0 $((24 * MiB))
truncate -s 32M "$TMP/data.raw"; rnd "$TMP/data.raw" 0 $((4 * MiB))
qemu-img convert -q -f raw -O qcow2 "$TMP/data.raw" "$S/web01-data.qcow2"; rm "$TMP/data.raw"
rnd "$S/web01-swap.img" 0 $((16 * MiB))
sed "s|@DIR@|$S|g" "$SRC/tests/fixtures/local/transfer-vm.xml.in" > "$S/web01.xml"
echo "{\"path\": \"$S\"}" > "$TMP/src.json"
echo "{\"path\": \"$D\"}" > "$TMP/dst.json"
echo "{\"path\": \"$TMP/nowhere\"}" > "$TMP/bad.json"

run epc endpoint create --name src --provider local --connection-file "$TMP/src.json" --description "the source"
check "endpoint create: a Field/Value table" bash -c "[ $RC = 0 ] && grep -q '^name  *src' '$TMP/epc.out' && grep -q '^type  *local' '$TMP/epc.out'"
run epc2 endpoint create --name dst --provider local --connection-file - --format json < "$TMP/dst.json"
check "endpoint create --connection-file - (stdin) --format json" is "$(jq -r .connection_info.path "$TMP/epc2.out")" "$D"
run epc3 endpoint create --name bad --provider local --connection-file "$TMP/bad.json"
run epc4 endpoint create --name src --provider local --connection-file "$TMP/src.json"
check "endpoint create with a taken name: exit 1, says so" bash -c "[ $RC = 1 ] && grep -q \"already exists\" '$TMP/epc4.err'"
run epc5 endpoint create --name x --provider local --connection-file "$TMP/none.json"
check "endpoint create with a missing connection file: exit 2, names it" bash -c "[ $RC = 2 ] && grep -q 'none.json' '$TMP/epc5.err'"
run epl endpoint list
check "endpoint list: header and rows aligned" bash -c "head -1 '$TMP/epl.out' | grep -q '^ID  *NAME  *TYPE  *DESCRIPTION  *CREATED' && [ \$(wc -l < '$TMP/epl.out') = 4 ] && [ \$(awk '{print index(\$0, \"local\")}' '$TMP/epl.out' | sed 1d | sort -u | wc -l) = 1 ]"
run eplj endpoint list --format json
check "endpoint list --format json: three endpoints" is "$(jq length "$TMP/eplj.out")" 3
SRC_EP=$(jq -r '.[] | select(.name == "src") | .id' "$TMP/eplj.out")
run eps endpoint show src --format json
check "endpoint show by name" is "$(jq -r .id "$TMP/eps.out")" "$SRC_EP"
run eps2 endpoint show "$SRC_EP"
check "endpoint show by id: a table" grep -q "^description  *the source" "$TMP/eps2.out"
run epu endpoint update src --description "changed" --format json
check "endpoint update" is "$(jq -r .description "$TMP/epu.out")" changed
run epu2 endpoint update src
check "endpoint update without changes: exit 2" is $RC 2
run epv endpoint validate src
check "endpoint validate: valid, exit 0" bash -c "[ $RC = 0 ] && grep -q 'the connection is valid' '$TMP/epv.out'"
run epv2 endpoint validate bad
check "endpoint validate of a bad endpoint: exit 1 with the reason" bash -c "[ $RC = 1 ] && grep -q 'not valid: .*nowhere' '$TMP/epv2.err'"
run epd endpoint delete bad
check "endpoint delete" bash -c "[ $RC = 0 ] && grep -q 'Deleted endpoint bad' '$TMP/epd.out'"
run epd2 endpoint show bad
check "endpoint show of a deleted endpoint: exit 1" is $RC 1
run inst endpoint instance list src
check "endpoint instance list: web01 with 2 CPUs" grep -q "^web01  *web01  *2 " "$TMP/inst.out"
run instj endpoint instance list src --format json --name web
check "endpoint instance list --name --format json" is "$(jq -r '.[0].name' "$TMP/instj.out")" web01
run inst2 endpoint instance show src web01 --format json
check "endpoint instance show: three disks" is "$(jq '.disks | length' "$TMP/inst2.out")" 3
run net endpoint network list src
check "endpoint network list: the NICs' networks" bash -c "grep -q '^default' '$TMP/net.out' && grep -q '^br-lan' '$TMP/net.out'"
check "completion: endpoint names from the API" is "$(comp endpoint show "")" "src dst"
run sto endpoint storage list dst
check "endpoint storage list" bash -c "[ $RC = 0 ] && grep -q '$D' '$TMP/sto.out'"

# --- transfers and schedules -----------------------------------------------------------------------
run tc transfer create --origin-endpoint src --destination-endpoint dst --instance web01 \
  --network-map default=lan --network-map br-lan=bridge:br0 --skip-os-morphing --notes "cli test" --format json
T=$(jq -r .id "$TMP/tc.out")
check "transfer create (endpoints by name): exit 0" test $RC -eq 0 -a ${#T} -eq 36
check "transfer create: the network map" is "$(jq -r '.network_map["br-lan"]' "$TMP/tc.out")" bridge:br0
run tc2 transfer create --origin-endpoint src --destination-endpoint nosuch --instance web01
check "transfer create with an unknown endpoint: exit 1, names it" bash -c "[ $RC = 1 ] && grep -q \"endpoint 'nosuch' not found\" '$TMP/tc2.err'"
run tc3 transfer create --origin-endpoint src --destination-endpoint dst --instance web01 --source-environment '{bad'
check "transfer create with bad JSON: exit 2, names the option" bash -c "[ $RC = 2 ] && grep -q -- '--source-environment' '$TMP/tc3.err'"
run tl transfer list
check "transfer list: a table with the transfer" bash -c "head -1 '$TMP/tl.out' | grep -q '^ID  *INSTANCES  *SCENARIO  *STATUS' && grep -q '^$T  *web01  *replica' '$TMP/tl.out'"
run tlj transfer list --format json
check "transfer list --format json" is "$(jq -r '.[0].id' "$TMP/tlj.out")" "$T"
run tu transfer update "$T" --notes "updated" --format json
check "transfer update" is "$(jq -r .notes "$TMP/tu.out")" updated
run ts transfer show "$T"
check "transfer show: a table" grep -q "^notes  *updated" "$TMP/ts.out"
run ts2 transfer show 00000000-0000-4000-8000-000000000000
check "transfer show of a missing transfer: exit 1, not found" bash -c "[ $RC = 1 ] && grep -q 'not found' '$TMP/ts2.err'"

run sc transfer schedule create "$T" "0 2 * * *" --disabled --format json
SCH=$(jq -r .id "$TMP/sc.out")
check "schedule create" test $RC -eq 0 -a "$(jq -r .enabled "$TMP/sc.out")" = false -a "$(jq -r .schedule.hour "$TMP/sc.out")" = 2
run sc2 transfer schedule create "$T" "0 2 *"
check "schedule create with a short expression: exit 2" is $RC 2
run sl transfer schedule list "$T"
check "schedule list: the cron expression" grep -q "^$SCH  *0 2 \* \* \*  *false" "$TMP/sl.out"
run su transfer schedule update "$T" "$SCH" --enabled --schedule "30 4 * * 1" --format json
check "schedule update" test "$(jq -r .enabled "$TMP/su.out")" = true -a "$(jq -r .cron "$TMP/su.out")" = "30 4 * * 1"
run ss transfer schedule show "$T" "$SCH" --format json
check "schedule show" is "$(jq -r .schedule.minute "$TMP/ss.out")" 30
run sd transfer schedule delete "$T" "$SCH"
check "schedule delete" is $RC 0
run slj transfer schedule list "$T" --format json
check "schedule list --format json: empty after the delete" is "$(jq length "$TMP/slj.out")" 0

# --- executions with --wait --------------------------------------------------------------------------
run exec1 transfer execute "$T" --wait --timeout 300
check "transfer execute --wait: exit 0" is $RC 0
echo "# --wait output:"; sed 's/^/#   /' "$TMP/exec1.out" | head -40
check "--wait: one progress line per disk reaching 100%" test "$(grep -c 'Replicating disk .*: 100% (.* of .*, .*/s, ETA 0s)' "$TMP/exec1.out")" -ge 3
check "--wait: percentages in between or at once, with rates" grep -q ': [0-9]\+% ([0-9.]\+ [KMG]\?i\?B of [0-9.]\+ [KMG]iB, [0-9.]\+ [KMG]\?i\?B/s' "$TMP/exec1.out"
check "--wait: task states" grep -q "^task REPLICATE_DISKS (web01): COMPLETED" "$TMP/exec1.out"
check "--wait: the execution's end" grep -q "^execution [0-9a-f-]*: COMPLETED" "$TMP/exec1.out"
check "--wait on a pipe: no terminal escapes" bash -c "! grep -q $'\033' '$TMP/exec1.out'"
run el transfer execution list "$T"
# execution 1 is the notes update above (an update with nothing for the
# replicas is recorded as a transfer_update execution without tasks)
E1=$(awk '$3 == "transfer_execution" {print $1; exit}' "$TMP/el.out")
check "execution list: a table" bash -c "grep -q '^$E1  *2  *transfer_execution  *COMPLETED' '$TMP/el.out' && grep -q '^[0-9a-f-]\{36\}  *1  *transfer_update  *COMPLETED' '$TMP/el.out'"
run es transfer execution show "$T" "$E1"
check "execution show: tasks and bars" bash -c "grep -q 'COMPLETED  *REPLICATE_DISKS  *web01' '$TMP/es.out' && grep -q '\[#*\] 100%' '$TMP/es.out'"
run esj transfer execution show "$T" "$E1" --format json
check "execution show --format json" is "$(jq -r .status "$TMP/esj.out")" COMPLETED
if command -v script > /dev/null; then
  EKMAN_URL=$URL script -qec "$EK transfer execute $T --wait" /dev/null > "$TMP/tty.out" 2>&1
  trc=$?
  check "--wait on a terminal: exit 0" is $trc 0
  check "--wait on a terminal: redrawn in place (cursor up), a bar per disk" bash -c "grep -q $'\033\\[[0-9]*A' '$TMP/tty.out' && [ \$(tail -20 '$TMP/tty.out' | grep -c '\[#*\] 100%') -ge 3 ] && grep -q 'web01: Replicating disk sdc' '$TMP/tty.out'"
fi

# a failing execution: exit 5 with the task's error
mv "$S/web01-swap.img" "$TMP/swap.img"
run fail transfer execute "$T" --wait --timeout 300
mv "$TMP/swap.img" "$S/web01-swap.img"
check "a failing execution: exit 5" is $RC 5
check "a failing execution: the task's error on stderr" bash -c "grep -q 'ended ERROR' '$TMP/fail.err' && grep -q 'web01-swap.img' '$TMP/fail.err'"

# cancel, then delete the canceled execution
run ex2 transfer execute "$T" --format json
E2=$(jq -r .id "$TMP/ex2.out")
run cancel transfer execution cancel "$T" "$E2" --force
check "execution cancel: exit 0" bash -c "[ $RC = 0 ] && grep -q 'Canceling execution $E2' '$TMP/cancel.out'"
for _ in $(seq 120); do st=$("$EK" transfer execution show "$T" "$E2" --format json | jq -r .status); case $st in CANCELED|ERROR|COMPLETED) break;; esac; sleep 0.5; done
check "the canceled execution ends CANCELED" is "$st" CANCELED
run cancel2 transfer execution cancel "$T" "$E2"
check "cancel of an ended execution: exit 1, says so" bash -c "[ $RC = 1 ] && grep -q 'already ended' '$TMP/cancel2.err'"
run edel transfer execution delete "$T" "$E2"
check "execution delete" is $RC 0
run elj transfer execution list "$T" --format json
check "execution list --format json: the deleted one is gone" is "$(jq "[.[] | select(.id == \"$E2\")] | length" "$TMP/elj.out")" 0

# --- the token: expired and revoked tokens are renewed transparently -----------------------------------
tokfile=$(grep -l "\"$USER\"" "$XDG_CACHE_HOME"/ekman/token-*.json)
jq '.expires_at = "2001-01-01T00:00:00+00:00"' "$tokfile" > "$TMP/t.json" && cat "$TMP/t.json" > "$tokfile"
run renew1 transfer list
check "an expired cached token: a new login, exit 0" test $RC -eq 0 -a "$(jq -r .expires_at "$tokfile")" != "2001-01-01T00:00:00+00:00"
jq '.token = "revoked-token"' "$tokfile" > "$TMP/t.json" && cat "$TMP/t.json" > "$tokfile"
run renew2 transfer list
check "a token the API refuses (401): a new login, exit 0" test $RC -eq 0 -a "$(jq -r .token "$tokfile")" != revoked-token
check "the cache file stays 0600" is "$(stat -c %a "$tokfile")" 600
jq '.token = "revoked-token"' "$tokfile" > "$TMP/t.json" && cat "$TMP/t.json" > "$tokfile"
EKMAN_PASSWORD= run renew3 transfer list < /dev/null
check "a refused token and no password: exit 3, says what to set" bash -c "[ $RC = 3 ] && grep -q 'EKMAN_PASSWORD' '$TMP/renew3.err'"

# --- the admin in the member's project -------------------------------------------------------------------
run adm --username "$ADMIN" --password "$APW" --project "cli-proj-$R" transfer list --format json
check "--project: an admin sees the project's transfers" is "$(jq "[.[] | select(.id == \"$T\")] | length" "$TMP/adm.out")" 1

# --- deployments -------------------------------------------------------------------------------------------
run dep2 deployment create "$T" --skip-os-morphing --format json
DEP2=$(jq -r .id "$TMP/dep2.out")
run dcancel deployment cancel "$DEP2" --force
check "deployment cancel: exit 0" bash -c "[ $RC = 0 ] && grep -q 'Canceling deployment $DEP2' '$TMP/dcancel.out'"
for _ in $(seq 120); do st=$("$EK" deployment show "$DEP2" --format json | jq -r .status); case $st in CANCELED|ERROR|COMPLETED) break;; esac; sleep 0.5; done
check "the canceled deployment ends CANCELED" is "$st" CANCELED
run dep deployment create "$T" --skip-os-morphing --wait --timeout 300
check "deployment create --wait: exit 0" is $RC 0
echo "# deployment --wait output:"; sed 's/^/#   /' "$TMP/dep.out" | head -30
check "deployment --wait: the deployment's end" grep -q "^deployment [0-9a-f-]*: COMPLETED" "$TMP/dep.out"
check "deployment --wait: its tasks" grep -q "^task DEPLOY_INSTANCE_RESOURCES (web01): COMPLETED\|^task .* (web01): COMPLETED" "$TMP/dep.out"
DEP=$(sed -n 's/^deployment \([0-9a-f-]*\): COMPLETED/\1/p' "$TMP/dep.out")
run dl deployment list
check "deployment list: a table" grep -q "^$DEP  *$T  *web01  *COMPLETED" "$TMP/dl.out"
run dlj deployment list --format json
check "deployment list --format json" is "$(jq -r '.[0].transfer_id' "$TMP/dlj.out")" "$T"
run ds deployment show "$DEP"
check "deployment show: fields and tasks" bash -c "grep -q '^status  *COMPLETED' '$TMP/ds.out' && grep -q 'COMPLETED  *[A-Z_]*  *web01' '$TMP/ds.out'"
run dsj deployment show "$DEP" --format json
check "deployment show --format json" is "$(jq -r .status "$TMP/dsj.out")" COMPLETED
run ddel deployment delete "$DEP2"
check "deployment delete" is $RC 0
run ddel2 deployment delete "$DEP"
check "deployment delete (the first)" is $RC 0

# --- cleaning up: delete-disks, delete ------------------------------------------------------------------------
run dd transfer delete-disks "$T" --wait --timeout 300
check "transfer delete-disks --wait: exit 0" bash -c "[ $RC = 0 ] && grep -q ': COMPLETED' '$TMP/dd.out'"
run epd3 endpoint delete src
check "endpoint delete of an endpoint in use: exit 1, names the transfer" bash -c "[ $RC = 1 ] && grep -q 'used by transfer $T' '$TMP/epd3.err'"
run td transfer delete "$T"
check "transfer delete" is $RC 0
run epd4 endpoint delete src
run epd5 endpoint delete dst
check "endpoint delete of both" test "$(cat "$TMP/epd4.out" "$TMP/epd5.out" | grep -c Deleted)" = 2
run tlj2 transfer list --format json
check "transfer list --format json: empty" is "$(jq length "$TMP/tlj2.out")" 0
run logout logout
check "logout: the token file is gone" test $RC -eq 0 -a ! -e "$tokfile"
finish
