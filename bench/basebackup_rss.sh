#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench/basebackup_rss.sh BUILD_DIR [SCALE]: peak RSS and throughput of one ferry-basebackup of
# a pgbench database (default scale 50, about 750 MiB) from PostgreSQL 15 into s3rver, with
# the default settings (zstd, 8 MiB parts, 3 parallel transfers). Uses the integration-test
# helpers (tests/integration/lib.sh, tests/harness/pg.sh): servers from BUILD_DIR/test-env.sh.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD_DIR="$(cd "${1:?usage: basebackup_rss.sh BUILD_DIR [SCALE]}" && pwd)"
SCALE="${2:-50}"
export FERRY="$BUILD_DIR/ferry/ferry" FERRY_BUILD_DIR="$BUILD_DIR" FERRY_SOURCE_ROOT="$ROOT"
export FERRY_WAL_PUSH="$BUILD_DIR/wal-push/ferry-wal-push" FERRY_WAL_FETCH="$BUILD_DIR/wal-fetch/ferry-wal-fetch"
export TEST_NAME=bench_basebackup
. "$ROOT/tests/integration/lib.sh"
. "$HARNESS/pg.sh"
. "$ROOT/tests/integration/pg_basebackup_lib.sh"
use_servers
on_exit "aws_s3rver s3 rm --recursive --quiet s3://$S3RVER_BUCKET/$PFX/"
CFG="$PGT/ferry.conf"
ferry_cfg "$CFG" "repo = s3://$S3RVER_BUCKET/$PFX" "s3-endpoint = $S3RVER_ENDPOINT" \
    "s3-region = us-east-1" "s3-access-key-id = $S3RVER_ACCESS_KEY_ID" \
    "s3-secret-access-key = $S3RVER_SECRET_ACCESS_KEY"
pg_new primary
P="$PGD"
pg_archive_to "$P" "$CFG"
pg_start "$P" || bail "the primary starts" "$(tail -5 "$P.log")"
pg_bench_init "$P" "$SCALE" || bail "pgbench -i -s $SCALE" "$(tail -5 "$P.pgbench-init.log")"
pg_sql "$P" "checkpoint" >/dev/null
diag "database: $(pg_sql "$P" "select pg_size_pretty(pg_database_size('postgres'))")"
# BENCH_ARGS: extra options; several variants separated by ";" run one after the other
IFS=';' read -r -a variants <<<"${BENCH_ARGS:-}"
[ ${#variants[@]} -gt 0 ] || variants=("")
for v in "${variants[@]}"; do
    # shellcheck disable=SC2086
    set -- $v
    section "ferry-basebackup -c fast $*"
    T0=$(now)
    run_pg /usr/bin/time -f 'maxrss_kb=%M elapsed=%e user=%U sys=%S' "$BASEBACKUP" --config "$CFG" -h 127.0.0.1 \
        -p "$(pg_port "$P")" -U postgres -c fast --json --progress "$@"
    diag "$(tr '\r' '\n' <"$ERR" | grep 'of ~' | tail -1)"
    diag "$(grep maxrss_kb "$ERR")"
    t=$(elapsed "$T0")
    expect_ok "ferry-basebackup of pgbench -s $SCALE to s3rver"
    size=$(jget "$OUT" 'j["size"]')
    stored=$(jget "$OUT" 'j["stored_size"]')
    rss=$(sed -n 's/.*maxrss_kb=\([0-9]*\).*/\1/p' "$ERR")
    diag "$(awk -v s="$size" -v st="$stored" -v t="$t" -v r="$rss" 'BEGIN {
        printf "backup %.0f MiB (stored %.0f MiB) in %.1f s: %.0f MiB/s; peak RSS %.1f MiB", s/1048576, st/1048576, t, s/1048576/t, r/1024 }')"
    expect_le "$rss" $((64 * 1024)) "peak RSS <= 64 MiB ($rss KiB)"
done
done_testing
