#!/usr/bin/env bash
# run_fuzz.sh - runs fuzz_dataplane for a bounded time from fresh seeds.
# Usage: run_fuzz.sh FUZZER SEEDGEN WORKDIR SECONDS
# Exits non-zero when libFuzzer finds a crash, a leak or a timeout; the
# reproducer is left in WORKDIR (crash-*, leak-*, timeout-*).
set -euo pipefail
FUZZER=$1 SEEDGEN=$2 WORK=$3 SECONDS_MAX=$4
rm -rf "$WORK/corpus"
mkdir -p "$WORK/corpus"
"$SEEDGEN" "$WORK/corpus"
# libFuzzer keeps what it finds in the corpus directory of this run only.
exec "$FUZZER" -max_total_time="$SECONDS_MAX" -timeout=10 -rss_limit_mb=1024 \
    -max_len=70000 -print_final_stats=1 -artifact_prefix="$WORK/" "$WORK/corpus"
