#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# ferry-basebackup from a PostgreSQL 15 hot standby (streaming from a primary that archives
# with ferry-wal-push into a file:// repository): the backup's last segment is archived by the
# primary only when it is switched, so with a short --wal-timeout the error says so (archive on
# the primary, archive_timeout); with a pg_switch_wal() on the primary during the wait, the
# backup completes, its entry is sane and pg_verifybackup passes.
. "$(dirname "$0")/lib.sh"
. "$HARNESS/pg.sh"
. "$(dirname "$0")/pg_basebackup_lib.sh"

mkdir -p "$PGT/repo"
chown postgres: "$PGT/repo"
CFG="$PGT/ferry.conf"
ferry_cfg "$CFG" "repo = file://$PGT/repo"

section "a primary archiving with ferry-wal-push and a streaming hot standby"
pg_new primary
P="$PGD"
pg_archive_to "$P" "$CFG"
pg_start "$P" || bail "the primary starts" "$(tail -5 "$P.log")"
pg_bench_init "$P" 2 || bail "pgbench -i -s 2" "$(tail -5 "$P.pgbench-init.log")"
pg_basebackup_to "$P" "$PGT/base" || bail "base backup for the standby" "$(tail -5 "$PGT/base.log")"
pg_copy "$PGT/base" standby
S="$PGD"
pg_conf "$S" "archive_mode = on" "archive_command = '/bin/true'" "hot_standby = on" \
    "primary_conninfo = 'host=127.0.0.1 port=$(pg_port "$P") user=postgres'"
runuser -u postgres -- touch "$S/standby.signal"
pg_start "$S" || bail "the standby starts" "$(tail -15 "$S.log")"
pg_wait_sql "$S" "select count(*) from pg_stat_wal_receiver where status = 'streaming'" 1 60 ||
    bail "the standby streams" "$(tail -10 "$S.log")"
pass "the standby streams from the primary"
pg_sql "$P" "insert into pgbench_history select 1, 1, 1, 1, now() from generate_series(1, 1000)" >/dev/null

section "without a switch on the primary, the WAL wait names the cause"
bb "$CFG" "$S" -c fast --wal-timeout 3
expect_bb_error "was not archived within 3 s: check archive_command (ferry-wal-push) and pg_stat_archiver on the primary (a backup from a standby ends in a segment the primary archives when it is full or switched: set archive_timeout there)" \
    "the WAL-timeout error says where to look"
expect_eq "$(catalog_ids "$CFG")" "" "no catalogue entry"

section "with a switch on the primary during the wait, the backup completes"
(sleep 3 && pg_switch "$P" >/dev/null) &
bb "$CFG" "$S" -c fast --wal-timeout 60 --json
expect_ok "ferry-basebackup of the standby"
wait
cp "$OUT" "$T/entry.json"
J="$T/entry.json"
bb_check_entry "$CFG" "$J" "$S"
bb_extract "$CFG" "$J" "$PGT/restored"
expect_eq "$?" 0 "extracted with ferry repo get + tar"
run_pg "$PG_VERIFYBACKUP" -n "$PGT/restored"
expect_ok "pg_verifybackup -n passes"
done_testing
