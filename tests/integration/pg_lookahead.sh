#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# ferry-wal-push's look-ahead with real PostgreSQL 15 (1 MiB segments, file:// repository):
# segments pile up as .ready while archive_command fails, then archive_command becomes
# ferry-wal-push (reload). The first calls push further .ready files ahead in parallel,
# PostgreSQL's later calls for those return at once ("was already pushed ahead"); every
# segment ends up in the repository with the bytes of pg_wal, no note (.ferry) is left in
# archive_status, and nothing was marked .done by ferry before PostgreSQL asked.
. "$(dirname "$0")/lib.sh"
. "$HARNESS/pg.sh"

mkdir -p "$PGT/repo"
chown postgres: "$PGT/repo"
CFG="$PGT/ferry.conf"
ferry_cfg "$CFG" "repo = file://$PGT/repo" "log-level = info"

section "segments pile up while archive_command fails"
pg_new primary --wal-segsize=1
P="$PGD"
pg_conf "$P" "archive_mode = on" "archive_command = 'false'"
pg_start "$P" || bail "the primary starts" "$(tail -5 "$P.log")"
pg_bench_init "$P" 1 || bail "pgbench -i" "$(tail -5 "$P.pgbench-init.log")"
LAST=$(pg_switch "$P")
ready=$(find "$P/pg_wal/archive_status" -name '*.ready' | sed 's|.*/||; s|\.ready$||' | sort)
n=$(grep -c . <<<"$ready")
expect_ge "$n" 10 "$n segments are .ready"

section "archive_command = ferry-wal-push (reload)"
pg_conf "$P" "archive_command = '$WAL_PUSH --config $CFG %p'"
pg_sql "$P" "select pg_reload_conf()" >/dev/null
if pg_wait_no_ready "$P" 90; then pass "PostgreSQL archived them all"; else fail "PostgreSQL archived them all" "$(tail -5 "$P.log")"; fi
log=$(pg_log "$P")
ahead=$(grep -c 'ferry-wal-push: info: pushed ".*" ahead' <<<"$log")
quick=$(grep -c 'ferry-wal-push: info: ".*" was already pushed ahead' <<<"$log")
expect_ge "$ahead" 4 "files were pushed ahead ($ahead)"
expect_eq "$quick" "$ahead" "PostgreSQL's call for each of them returned at once ($quick)"
expect_eq "$(find "$P/pg_wal/archive_status" -name '*.ferry*' | wc -l)" 0 "no look-ahead note is left in archive_status"
repo_names=$(repo_ls "$CFG" pg/wal/ | sed 's|.*/||' | sort)
expect_eq "$(comm -23 <(echo "$ready") <(echo "$repo_names"))" "" "every one of the $n segments is in the repository"
bad=""
for s in $ready; do
    [ -f "$P/pg_wal/$s" ] || continue
    rm -f "$T/got"
    timeout 60 "$FERRY" repo --config "$CFG" get "$(wal_key "$s")" "$T/got" >/dev/null 2>&1
    cmp -s "$T/got" "$P/pg_wal/$s" || bad="$bad $s"
done
expect_eq "$bad" "" "each stored segment decodes to the bytes in pg_wal"
expect_eq "$(pg_sql "$P" "select last_archived_wal from pg_stat_archiver")" "$LAST" "last_archived_wal is $LAST"
done_testing
