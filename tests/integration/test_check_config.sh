#!/usr/bin/env bash
# test_check_config.sh - `--check-config` of every binary on the seeds' sections:
# typed values, masked secrets, exit codes, and errors naming file and line.
# Usage: test_check_config.sh BUILD_DIR SOURCE_DIR
set -u
. "$(dirname "$0")/lib.sh"
BUILD=$1 SRC=$2
TMP=$(mktemp -d /tmp/ekman-cc.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
cat "$SRC/tests/fixtures/config/ovirt_migration_provider.conf" \
    "$SRC/tests/fixtures/config/libvirt_migration_provider.conf" > "$TMP/both.conf"

for bin in conductor/ekman-conductor scheduler/ekman-scheduler worker/ekman-worker \
           worker/ekman-writer client/ekman; do
  name=$(basename "$bin")
  out="$TMP/$name.json"
  "$BUILD/$bin" --config "$TMP/both.conf" --check-config > "$out" 2> "$TMP/$name.err"
  check "$name --check-config exits 0" test $? -eq 0
  check "$name: says sqlite_database_file has no effect" \
    grep -q "sqlite_database_file has no effect: Ekman keeps the provider's state in PostgreSQL" "$TMP/$name.err"
  check "$name: default_migr_template_map is the seed's map" \
    test "$(jq -c '.ovirt_migration_provider.default_migr_template_map' "$out")" = \
         '{"linux":"Bionic-passworded","windows":"WS2016"}'
  check "$name: migr_worker_vcpus is the integer 2" \
    test "$(jq -c '.libvirt_migration_provider.migr_worker_vcpus' "$out")" = 2
  check "$name: cpu_features is a list of three names" \
    test "$(jq -c '.libvirt_migration_provider.cpu_features' "$out")" = '["rdtscp","invtsc","x2apic"]'
  check "$name: default_storage_domain is the empty string" \
    test "$(jq -c '.ovirt_migration_provider.default_storage_domain' "$out")" = '""'
  check "$name: the template password map is masked" \
    test "$(jq -c '.ovirt_migration_provider.default_migr_template_password_map' "$out")" = \
         '{"linux":"***","windows":"***"}'
  check "$name: no password in the output" bash -c "! grep -q Passw0rd '$out' '$TMP/$name.err'"
  check "$name: no warning for the seeds' sections (notes only)" test -z "$(grep -v ': note: ' "$TMP/$name.err")"
done

# secrets of the core sections are masked too
cat > "$TMP/secret.conf" <<'CONF'
[DEFAULT]
encryption_key = MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=
[database]
connection = postgresql://ekman:Db-pass-1234@127.0.0.1:5432/ekman
[messaging]
transport_url = amqp://ekman:Mq-pass-5678@127.0.0.1:5672/ekman
CONF
"$BUILD/conductor/ekman-conductor" --config "$TMP/secret.conf" --check-config > "$TMP/s.json"
check "database password masked" test "$(jq -r .database.connection "$TMP/s.json")" = \
  "postgresql://ekman:***@127.0.0.1:5432/ekman"
check "broker password masked" test "$(jq -r .messaging.transport_url "$TMP/s.json")" = \
  "amqp://ekman:***@127.0.0.1:5672/ekman"
check "encryption key masked" test "$(jq -r .DEFAULT.encryption_key "$TMP/s.json")" = "***"

# a broken line: non-zero exit, file and line named
{ cat "$TMP/both.conf"; echo "this is not an option line"; } > "$TMP/broken.conf"
line=$(wc -l < "$TMP/broken.conf")
"$BUILD/conductor/ekman-conductor" --config "$TMP/broken.conf" --check-config > "$TMP/b.out" 2> "$TMP/b.err"
rc=$?
check "broken file exits non-zero" test $rc -ne 0
check "broken file: error names file and line" grep -q "$TMP/broken.conf:$line: malformed line" "$TMP/b.err"
check "broken file: nothing on stdout" test ! -s "$TMP/b.out"

# an unknown key is a warning, not an error
printf '[api]\nport = 7000\nno_such_option = 1\n' > "$TMP/warn.conf"
"$BUILD/scheduler/ekman-scheduler" --config "$TMP/warn.conf" --check-config > "$TMP/w.out" 2> "$TMP/w.err"
check "unknown key exits 0" test $? -eq 0
check "unknown key warned with file and line" grep -q "warning: $TMP/warn.conf:3: unknown option 'no_such_option'" "$TMP/w.err"
check "known value applied" test "$(jq .api.port "$TMP/w.out")" = 7000

# a missing file is an error naming it
"$BUILD/worker/ekman-worker" --config "$TMP/nope.conf" --check-config > /dev/null 2> "$TMP/m.err"
check "missing file exits non-zero" test $? -ne 0
check "missing file named" grep -q "$TMP/nope.conf" "$TMP/m.err"
# EKMAN_CONFIG is the default location
EKMAN_CONFIG="$TMP/warn.conf" "$BUILD/conductor/ekman-conductor" --check-config 2>/dev/null > "$TMP/e.out"
check "EKMAN_CONFIG is read" test "$(jq .api.port "$TMP/e.out")" = 7000
# docs/configuration.md is the catalogue as the binaries know it
"$BUILD/conductor/ekman-conductor" --list-options > "$TMP/options.md"
check "docs/configuration.md is up to date (regenerate with --list-options)" \
  diff -u "$SRC/docs/configuration.md" "$TMP/options.md"
finish
