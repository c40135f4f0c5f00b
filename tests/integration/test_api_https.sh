#!/usr/bin/env bash
# test_api_https.sh - the conductor's API over HTTPS ([api] tls_cert_file and
# tls_key_file, libmicrohttpd's TLS): a client that checks the certificate gets
# in, plain HTTP and unknown certificates do not, TLS older than 1.2 is refused,
# the ekman CLI works with --ca-file / EKMAN_CA_FILE and says what to do
# without it, and half a TLS configuration stops the conductor with a clear error.
# Usage: test_api_https.sh BUILD_DIR SOURCE_DIR STACK_DIR
set -u
. "$(dirname "$0")/lib.sh"
BUILD=$1 SRC=$2 STACK=$3
eval "$("$SRC/deploy/stack.sh" env "$STACK")"
TMP=$(mktemp -d /tmp/ekman-https.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
. "$(dirname "$0")/conductor_lib.sh"
PORT=$((EKMAN_API_PORT + 60))
R=$RANDOM$RANDOM
EK=$BUILD/client/ekman

# a CA and a certificate for 127.0.0.1 and localhost
openssl req -x509 -newkey ed25519 -nodes -days 1 -subj "/CN=test CA $R" \
  -keyout "$TMP/ca.key" -out "$TMP/ca.pem" 2>/dev/null
openssl req -newkey ed25519 -nodes -subj "/CN=127.0.0.1" -keyout "$TMP/api.key" \
  -out "$TMP/api.csr" 2>/dev/null
printf 'subjectAltName = IP:127.0.0.1, DNS:localhost\n' > "$TMP/san.ext"
openssl x509 -req -in "$TMP/api.csr" -CA "$TMP/ca.pem" -CAkey "$TMP/ca.key" -CAcreateserial \
  -days 1 -extfile "$TMP/san.ext" -out "$TMP/api.pem" 2>/dev/null
chmod 600 "$TMP/api.key"
openssl req -x509 -newkey ed25519 -nodes -days 1 -subj "/CN=other CA" \
  -keyout "$TMP/other.key" -out "$TMP/other.pem" 2>/dev/null
check "test certificates made" test -s "$TMP/api.pem" -a -s "$TMP/ca.pem"

# the stack's configuration, on a port of its own, with HTTPS by a CA of this
# test (the stack's own certificate and CA left out)
{ sed -e "s/^port = .*/port = $PORT/" -e '/^tls_\(cert\|key\)_file = /d' "$EKMAN_CONFIG"
  printf '\n[api]\ntls_cert_file = %s\ntls_key_file = %s\n' "$TMP/api.pem" "$TMP/api.key"; } > "$TMP/c.conf"
"$BUILD/conductor/ekman-conductor" --config "$TMP/c.conf" > "$TMP/c.log" 2>&1 &
PIDS+=($!)
URL="https://127.0.0.1:$PORT"
check "the conductor answers over HTTPS, its certificate checked" \
  wait_for 60 curl -sf --cacert "$TMP/ca.pem" "$URL/healthz"
check "it logs its address as https://" grep -q "conductor started api=https://127.0.0.1:$PORT" "$TMP/c.log"
check "plain HTTP to the HTTPS port gets no answer" \
  bash -c "! curl -s -m 5 -o /dev/null -w '%{http_code}' 'http://127.0.0.1:$PORT/healthz' | grep -q 200"
check "a client that trusts another CA is refused" \
  bash -c "! curl -s -m 5 --cacert '$TMP/other.pem' '$URL/healthz'"
check "TLS 1.1 is refused" \
  bash -c "! curl -s -m 5 --cacert '$TMP/ca.pem' --tlsv1.1 --tls-max 1.1 '$URL/healthz'"
check "TLS 1.3 is spoken" \
  bash -c "curl -s -m 5 --cacert '$TMP/ca.pem' --tlsv1.3 '$URL/healthz' > /dev/null"

# the CLI, as an operator would use it
create_user "https-$R" "https-$R" member "Https-pass-$R"
EKMAN_URL=$URL EKMAN_USERNAME="https-$R" EKMAN_PASSWORD="Https-pass-$R" EKMAN_CA_FILE=$TMP/ca.pem \
  XDG_CACHE_HOME=$TMP/cache "$EK" endpoint list > "$TMP/cli.out" 2>&1
rc=$?
check "ekman with EKMAN_CA_FILE logs in and lists endpoints over HTTPS (rc $rc)" test "$rc" = 0
EKMAN_URL=$URL EKMAN_USERNAME="https-$R" EKMAN_PASSWORD="Https-pass-$R" \
  XDG_CACHE_HOME=$TMP/cache2 "$EK" --ca-file "$TMP/other.pem" endpoint list > "$TMP/cli2.out" 2>&1
rc=$?
check "ekman with the wrong CA fails ($rc) and names --ca-file" \
  bash -c "[ $rc != 0 ] && grep -q -- '--ca-file' '$TMP/cli2.out'"
stop_all() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; PIDS=(); }
stop_all

# half a TLS configuration: refused at start, saying what to set
{ sed -e "s/^port = .*/port = $PORT/" -e '/^tls_\(cert\|key\)_file = /d' "$EKMAN_CONFIG"
  printf '\n[api]\ntls_cert_file = %s\n' "$TMP/api.pem"; } > "$TMP/half.conf"
timeout 60 "$BUILD/conductor/ekman-conductor" --config "$TMP/half.conf" > "$TMP/half.log" 2>&1
rc=$?
check "a certificate without a key: the conductor exits ($rc) saying both go together" \
  bash -c "[ $rc != 0 ] && grep -q 'together' '$TMP/half.log'"
{ sed -e "s/^port = .*/port = $PORT/" -e '/^tls_\(cert\|key\)_file = /d' "$EKMAN_CONFIG"
  printf '\n[api]\ntls_cert_file = %s\ntls_key_file = %s\n' "$TMP/api.key" "$TMP/api.key"; } > "$TMP/swap.conf"
timeout 60 "$BUILD/conductor/ekman-conductor" --config "$TMP/swap.conf" > "$TMP/swap.log" 2>&1
rc=$?
check "a key where the certificate belongs: refused ($rc), naming tls_cert_file" \
  bash -c "[ $rc != 0 ] && grep -q 'tls_cert_file' '$TMP/swap.log'"
check "no log holds the API's private key" bash -c "! grep -rq 'PRIVATE KEY' '$TMP'/*.log"
finish
