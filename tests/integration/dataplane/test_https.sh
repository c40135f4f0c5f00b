#!/usr/bin/env bash
# test_https.sh - a disk over HTTPS with mutual TLS: bit-identical copy, zero
# ranges that cost no data on the wire, compression, the HTTP face of the
# writer (health, 404, 405, 426), and refusals: a client without a
# certificate, a client of another transfer, a disk outside --allow-path.
# Usage: test_https.sh BUILD_DIR SOURCE_DIR
set -u
BUILD=$1 SRC=$2
. "$SRC/tests/integration/lib.sh"
T=$(mktemp -d /tmp/ekman-dp-https.XXXXXX)
. "$SRC/tests/integration/dataplane/lib_dp.sh"
W_PID=
cleanup() { [ -n "$W_PID" ] && stop_pid "$W_PID"; rm -rf "$T"; }
trap cleanup EXIT

mkdir -p "$T/pki" "$T/other"
check "per-transfer certificates are generated" "$EKT" --gen-pki "$T/pki"
"$EKT" --gen-pki "$T/other"
check "keys are private (0600)" test "$(stat -c %a "$T/pki/client.key")" = 600
check "the CA key is not kept" test ! -e "$T/pki/ca.key"
"$IMG" create "$T/src.img" 48M 11 > "$T/layout.json"

start_writer w
check "writer listens" test -n "$W_PORT"

transfer "$T/s1.json" --source "$T/src.img" --target "$T/dst.img" --create --verify full
check "transfer succeeds" test "$(jget "$T/s1.json" complete)" = true
check "target is bit-identical" cmp -s "$T/src.img" "$T/dst.img"
zero=$(jget "$T/s1.json" zero_bytes); payload=$(jget "$T/s1.json" payload_bytes)
wire=$(jget "$T/s1.json" wire_out); frames=$(jget "$T/s1.json" frames)
holes=$(jq -r '.hole + .zero_written' "$T/layout.json")
check "zero ranges were sent as zero ranges ($zero >= $holes bytes)" test "$zero" -ge "$holes"
# wire = payload + 48 bytes of frame per request + TLS records + handshakes
check "zero ranges cost no data on the wire ($wire <= $payload + overhead)" \
  test "$wire" -le $((payload + frames * 48 + payload / 100 + 65536))
check "every block was verified" test "$(jget "$T/s1.json" verified_blocks)" -eq 48

# compression (always): text compresses, the copy stays identical
"$IMG" text "$T/text.img" 8M
transfer "$T/s2.json" --source "$T/text.img" --target "$T/text-dst.img" --create \
  --level 1 --compress always
check "compressed transfer succeeds" test "$(jget "$T/s2.json" complete)" = true
check "text was compressed" test "$(jget "$T/s2.json" compressed_frames)" -gt 0
check "compressed payload is smaller" \
  test "$(jget "$T/s2.json" payload_bytes)" -lt $((8 * 1048576 * 3 / 4))
check "compressed copy is bit-identical" cmp -s "$T/text.img" "$T/text-dst.img"

# compression (auto) under a bandwidth limit: waiting for the budget is
# waiting for the network, so text gets compressed, and it pays (32 MiB at
# 8 MiB/s: the trial starts after a second and is kept)
"$IMG" text "$T/text2.img" 32M
transfer "$T/s3.json" --source "$T/text2.img" --target "$T/text2-dst.img" --create \
  --level 1 --compress auto --bandwidth 8
check "auto: transfer under a bandwidth limit succeeds" test "$(jget "$T/s3.json" complete)" = true
check "auto: text was compressed when the bandwidth was the limit" \
  test "$(jget "$T/s3.json" compressed_frames)" -gt 4
check "auto: fewer bytes went than the data" \
  test "$(jget "$T/s3.json" payload_bytes)" -lt "$(jget "$T/s3.json" data_bytes)"
check "auto: compressed copy is bit-identical" cmp -s "$T/text2.img" "$T/text2-dst.img"

# the HTTP face (curl with the client certificate)
CURL=(curl -s -o /dev/null -w '%{http_code}' --cacert "$T/pki/ca.pem" --cert "$T/pki/client.pem"
      --key "$T/pki/client.key" --resolve "ekman-writer:$W_PORT:127.0.0.1")
U="https://ekman-writer:$W_PORT"
check "GET /v1/health answers 200" test "$("${CURL[@]}" "$U/v1/health")" = 200
check "an unknown path answers 404" test "$("${CURL[@]}" "$U/nope")" = 404
check "GET /v1/stream answers 405" test "$("${CURL[@]}" "$U/v1/stream")" = 405
check "POST /v1/stream without Upgrade answers 426" \
  test "$("${CURL[@]}" -X POST "$U/v1/stream")" = 426
check "a client without a certificate is refused" \
  bash -c "! curl -s -o /dev/null --cacert '$T/pki/ca.pem' --resolve ekman-writer:$W_PORT:127.0.0.1 $U/v1/health"
check "TLS 1.2 is refused" \
  bash -c "! curl -s -o /dev/null --tls-max 1.2 --cacert '$T/pki/ca.pem' --cert '$T/pki/client.pem' --key '$T/pki/client.key' --resolve ekman-writer:$W_PORT:127.0.0.1 $U/v1/health"

# a client whose certificate another transfer's CA signed
cp "$T/dst.img" "$T/before.img"
"$EKT" --https "127.0.0.1:$W_PORT" --ca "$T/pki/ca.pem" --cert "$T/other/client.pem" \
  --key "$T/other/client.key" --source "$T/src.img" --target "$T/dst.img" \
  --retries 1 --stats "$T/s3.json" 2>>"$T/transfer.log"
check "a client of another transfer fails" test $? -ne 0
check "... and says why" grep -q -i "certificate\|TLS\|closed" "$T/s3.json"
check "... and wrote nothing" cmp -s "$T/before.img" "$T/dst.img"
check "the writer logged the refusal" grep -q "connection refused" "$T/w.log"

# a disk outside --allow-path
transfer "$T/s4.json" --source "$T/src.img" --target /var/tmp/ekman-not-allowed.img --create
check "a disk outside --allow-path is refused" grep -q "outside the paths" "$T/s4.json"
check "... and not created" test ! -e /var/tmp/ekman-not-allowed.img

stop_pid "$W_PID"; W_PID=
finish
