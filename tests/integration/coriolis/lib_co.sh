# lib_co.sh - the stock Coriolis client (python-coriolisclient, unmodified,
# from ../shared/third_party) made runnable, and the helpers its tests share.
# Sourced after ../lib.sh with SRC and TMP set.
#   co_setup: finds the client, installs its Debian packages if missing,
#     builds its metadata in TMP/site, writes TMP/bin/coriolis
#   co NAME ARGS...: the CLI as CO_USER/CO_PASSWORD in CO_PROJECT (CO_ENV:
#     more variables); stdout and stderr in TMP/NAME.{out,err}, exit code in RC
#   has/has_err NAME TEXT, is GOT WANTED, show NAME [LINES], cj NAME FILTER

co_setup() {
  # the unmodified copy beside the checkout (../shared/third_party), or where
  # EKMAN_CORIOLISCLIENT_DIR says; a checkout elsewhere looks in /work/shared
  THIRD=${EKMAN_CORIOLISCLIENT_DIR:-}
  local d
  for d in "$(cd "$SRC/.." && pwd)/shared/third_party/python-coriolisclient" \
    /work/shared/third_party/python-coriolisclient; do
    [ -z "$THIRD" ] && [ -f "$d/coriolisclient/cli/shell.py" ] && THIRD=$d
  done
  [ -f "$THIRD/coriolisclient/cli/shell.py" ] ||
    { echo "FAIL - no Coriolis client found (../shared/third_party/python-coriolisclient beside the checkout; set EKMAN_CORIOLISCLIENT_DIR)"; exit 1; }
  PY=/usr/bin/python3 # Debian's, which sees Debian's python3-* packages
  local imports="import keystoneauth1, keystoneclient, cliff, osc_lib, jsonschema, requests, pbr, six, oslo_config, oslo_i18n, oslo_utils, stevedore, future, websockets"
  if ! "$PY" -c "$imports" 2> /dev/null; then
    echo "# installing the Coriolis client's Debian packages (deploy/install-deps.sh)"
    "$SRC/deploy/install-deps.sh" > "$TMP/install.log" 2>&1 || { tail "$TMP/install.log"; }
  fi
  check "the client's Python packages are installed" "$PY" -c "$imports"
  "$PY" "$SRC/tests/integration/coriolis/mkdist.py" "$THIRD" "$TMP/site"
  mkdir -p "$TMP/bin"
  printf '#!%s\nimport sys\nfrom coriolisclient.cli.shell import main\nsys.exit(main(sys.argv[1:]))\n' \
    "$PY" > "$TMP/bin/coriolis"
  chmod 755 "$TMP/bin/coriolis"
  export PYTHONPATH=$TMP/site:$THIRD
  export XDG_CACHE_HOME=$TMP/cache # stevedore's entry point cache
}

co() {
  local n=$1; shift
  env OS_AUTH_URL="$URL/v3" OS_CACERT="$EKMAN_CA_FILE" OS_USERNAME="$CO_USER" OS_PASSWORD="$CO_PASSWORD" \
    OS_PROJECT_NAME="$CO_PROJECT" OS_USER_DOMAIN_NAME=Default OS_PROJECT_DOMAIN_NAME=Default \
    ${CO_ENV:-} "$TMP/bin/coriolis" "$@" > "$TMP/$n.out" 2> "$TMP/$n.err"
  RC=$?
}
has() { grep -q -- "$2" "$TMP/$1.out"; }
has_err() { grep -q -- "$2" "$TMP/$1.err"; }
is() { [ "$1" = "$2" ] || { echo "#   got '$1', wanted '$2'"; return 1; }; }
show() { echo "# --- $1: exit $RC"; sed 's/^/#   /' "$TMP/$1.out" "$TMP/$1.err" | head -"${2:-15}"; }
# cj NAME FILTER: jq -r FILTER on TMP/NAME.out (the CLI's -f json output)
cj() { jq -r "$2" "$TMP/$1.out" 2> /dev/null; }
