#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# ferry-restore with real PostgreSQL 15 and a file:// repository filled by ferry-basebackup and
# ferry-wal-push: a primary with a tablespace under pgbench load; --dry-run prints the plan and
# changes nothing; a PITR to a time between two known commits (tablespace remapped with
# --tablespace, --archive-mode off, run as root into a directory owned by postgres) gives exactly
# the rows before it; a restore to the end of the archive gives every committed row; Debian's
# pg_verifybackup passes on a restored directory; a non-empty directory is refused without
# --force; a target before the oldest backup is refused.
. "$(dirname "$0")/lib.sh"
. "$HARNESS/pg.sh"
. "$(dirname "$0")/pg_basebackup_lib.sh"
. "$(dirname "$0")/pg_restore_lib.sh"

mkdir -p "$PGT/repo"
chown postgres: "$PGT/repo"
CFG="$PGT/ferry.conf"
ferry_cfg "$CFG" "repo = file://$PGT/repo"

section "a primary with a tablespace, archiving with ferry-wal-push, base backup with ferry-basebackup"
pg_new primary
P="$PGD"
pg_archive_to "$P" "$CFG"
pg_start "$P" || bail "the primary starts" "$(tail -5 "$P.log")"
pg_bench_init "$P" 2 || bail "pgbench -i -s 2" "$(tail -5 "$P.pgbench-init.log")"
mkdir -p "$PGT/ts1"
chown postgres: "$PGT/ts1"
pg_sql "$P" "create tablespace ts1 location '$PGT/ts1'" >/dev/null
got=$(pg_sql "$P" "create table in_ts (id int, pad text) tablespace ts1; insert into in_ts select g, repeat('x', 100) from generate_series(1, 5000) g; select oid from pg_tablespace where spcname = 'ts1'")
TSOID=$(tail -1 <<<"$got")
[[ "$TSOID" =~ ^[0-9]+$ ]] || bail "tablespace ts1 created" "$got"
pg_marker_table "$P"
pass "pgbench -i -s 2, tablespace ts1 (oid $TSOID) with 5000 rows"
BEFORE_BACKUP=$(pg_sql "$P" "set timezone = 'UTC'; select now()")
sleep 1.2
pg_bench_load "$P" 6 &
LOAD=$!
sleep 1
bb "$CFG" "$P" -c fast --json
expect_ok "ferry-basebackup under pgbench load"
wait "$LOAD"
cp "$OUT" "$T/entry.json"
ID=$(jget "$T/entry.json" 'j["id"]')
diag "backup $ID"

section "marker rows around a target time"
pg_marker "$P" 1 before-1 && pg_marker "$P" 2 before-2 && pg_marker "$P" 3 before-3 &&
    pg_marker "$P" 4 after-1 && pg_marker "$P" 5 after-2 && pg_marker "$P" 6 after-3
expect_eq "$(pg_markers "$P")" "1:before-1,2:before-2,3:before-3,4:after-1,5:after-2,6:after-3" "six marker rows"
TARGET=$(pg_between "$P" 3 4)
diag "target time $TARGET"
pg_sql "$P" "insert into in_ts values (-1, 'after the target')" >/dev/null
LAST=$(pg_switch "$P")
pg_wait_archived "$P" "$LAST" 90 && pg_wait_no_ready "$P" 30
expect_eq "$?" 0 "every segment up to $LAST is archived"
STATE=$(pg_state "$P")

section "--dry-run"
D=$(pgdir dry)
T0=$(now)
rs --config "$CFG" -D "$D" --target-time "$TARGET" --dry-run
expect_rs_error "tablespace directory \"$PGT/ts1\" is not empty: use --tablespace OID=DIR" \
    "the tablespace's own location is in use: refused even in a dry run"
rs --config "$CFG" -D "$D" --target-time "$TARGET" --dry-run --tablespace "$TSOID=$PGT/ts-dry"
expect_ok "--dry-run exits 0 ($(elapsed "$T0") s)"
expect_contains "$(cat "$OUT")" "backup:      $ID" "the plan names the backup"
expect_contains "$(cat "$OUT")" "why:         the newest of 1 backups on timeline 1 that end before the target time" "and why it was chosen"
expect_contains "$(cat "$OUT")" "WAL needed:  from $(jget "$T/entry.json" 'j["start_wal"]') (consistent after $(jget "$T/entry.json" 'j["stop_wal"]')) to the target" "the WAL range"
expect_contains "$(cat "$OUT")" "to fetch:    3 objects, $(jget "$T/entry.json" 'j["stored_size"]') bytes stored" "the bytes to fetch"
expect_contains "$(cat "$OUT")" "tablespace:  $TSOID from $PGT/ts1 to $PGT/ts-dry" "the tablespace"
expect_eq "$(ls -A "$D")" "" "nothing was written"
expect_file_absent "$PGT/ts-dry" "no tablespace directory was made"
rs --config "$CFG" -D "$D" --dry-run --json --tablespace "$TSOID=$PGT/ts-new"
expect_ok "--dry-run --json"
expect_eq "$(jget "$OUT" 'j["backup"] + " " + j["wal_from"] + " " + str(j["bytes_to_fetch"]) + " " + j["tablespaces"][0]["restore_to"]')" \
    "$ID $(jget "$T/entry.json" 'j["start_wal"]') $(jget "$T/entry.json" 'j["stored_size"]') $PGT/ts-new" "the JSON plan: backup, WAL start, bytes, tablespace"
expect_file_absent "$PGT/ts-new" "no tablespace directory was made"

section "no backup before the target"
rs --config "$CFG" -D "$D" --target-time "$BEFORE_BACKUP" --dry-run --tablespace "$TSOID=$PGT/ts-dry"
expect_rs_error "no backup ends before the target: the oldest backup \"$ID\" ends at " "a target before the backup: refused"
expect_contains "$(cat "$ERR")" ", after the target time " "the message names both times"
rs --config "$CFG" -D "$D" --target-time "2026-01-01 00:00:00"
expect_rs_error "has no time zone" "a time without a zone is refused"

section "PITR to the target time; tablespace remapped; --archive-mode off; as root"
R=$(pgdir pitr)
T0=$(now)
rs --config "$CFG" -D "$R" --target-time "$TARGET" --target-action promote --archive-mode off \
    --tablespace "$TSOID=$PGT/ts-pitr"
expect_ok "ferry-restore --target-time ($(elapsed "$T0") s)"
expect_contains "$(tail -1 "$OUT")" "restored backup $ID into $R" "it says what it restored"
expect_eq "$(tree_owners "$R")$(tree_owners "$PGT/ts-pitr")" "" "everything is owned by postgres (the data directory's owner)"
expect_eq "$(tree_modes "$R")$(tree_modes "$PGT/ts-pitr")" "" "directories 0700, files 0600"
expect_eq "$(readlink "$R/pg_tblspc/$TSOID")" "$PGT/ts-pitr" "pg_tblspc/$TSOID points to the new location"
expect_eq "$(cat "$R/tablespace_map")" "$TSOID $PGT/ts-pitr" "tablespace_map has the new location"
auto=$(cat "$R/postgresql.auto.conf")
expect_contains "$auto" "restore_command = '$(readlink -f "$WAL_FETCH") --config=$CFG %f %p'" "restore_command runs ferry-wal-fetch with the same config"
expect_contains "$auto" "recovery_target_time = '$TARGET'" "recovery_target_time"
expect_contains "$auto" "recovery_target_action = 'promote'" "recovery_target_action"
expect_contains "$auto" "archive_mode = 'off'" "archive_mode = 'off'"
[ -f "$R/recovery.signal" ] && pass "recovery.signal" || fail "recovery.signal"
run_pg "$PG_VERIFYBACKUP" -n -i tablespace_map "$R"
expect_ok "pg_verifybackup -n passes on the restored directory (tablespace_map, rewritten, ignored)"
rs_adopt "$R"
if pg_start "$R" && pg_wait_promoted "$R"; then
    pass "the restored server recovers to the target and is promoted"
else
    fail "the restored server recovers to the target and is promoted" "$(tail -15 "$R.log")"
fi
expect_eq "$(pg_markers "$R")" "1:before-1,2:before-2,3:before-3" "exactly the rows committed before the target"
expect_eq "$(pg_sql "$R" "select count(*) from in_ts")" 5000 "the tablespace's table has its 5000 rows (not the later one)"
expect_eq "$(pg_sql "$R" "show archive_mode")" off "archive_mode is off"
expect_eq "$(pg_sql "$R" "select pg_tablespace_location($TSOID)")" "$PGT/ts-pitr" "the tablespace lives in the new location"
pg_stop "$R"

section "restore to the end of the archive; a non-empty directory needs --force"
E=$(pgdir end)
echo junk >"$E/junk"
rs --config "$CFG" -D "$E" --tablespace "$TSOID=$PGT/ts-end"
expect_rs_error "data directory \"$E\" is not empty: use --force to replace its contents" "a non-empty directory is refused"
expect_eq "$(cat "$E/junk")" junk "and left alone"
rs --config "$CFG" -D "$E" --tablespace "$TSOID=$PGT/ts-end" --force
expect_ok "--force restores into it"
expect_file_absent "$E/junk" "the old contents are gone"
run_pg "$PG_VERIFYBACKUP" -n -i tablespace_map "$E"
expect_ok "pg_verifybackup -n passes"
rs_adopt "$E"
if pg_start "$E" && pg_wait_promoted "$E"; then
    pass "recovery to the end of the archive ends and the server is promoted"
else
    fail "recovery to the end of the archive ends and the server is promoted" "$(tail -15 "$E.log")"
fi
expect_eq "$(pg_state "$E")" "$STATE" "every committed row: counts and checksums equal the primary's"
expect_eq "$(pg_sql "$E" "select count(*) from in_ts")" 5001 "the tablespace's table has every row"
expect_eq "$(pg_sql "$E" "show archive_mode")" on "archive_mode preserved (on)"
pg_stop "$E"

section "options"
rs --config "$CFG" -D "$PGT/x" --target-time "$TARGET" --target-lsn 0/1
expect_rs_error "give at most one recovery target" "two targets are refused"
rs --config "$CFG"
expect_rs_error "no data directory given: use -D DIR" "-D is required"
rs --config "$CFG" -D "$PGT/x" --tablespace 1=/tmp/x
expect_rs_error "--tablespace 1: backup \"$ID\" has no tablespace 1" "--tablespace of an unknown OID"
rs --config "$CFG" -D "$PGT/x" --dry-run --tablespace "$TSOID=$PGT/ts-a" --tablespace 77=/tmp/x
expect_rs_error "--tablespace 77: backup \"$ID\" has no tablespace 77" "--tablespace is repeatable (the second one counts)"
rs --config "$CFG" -D "$PGT/x" --dry-run --tablespace "$TSOID=$PGT/ts-a,78=/tmp/x"
expect_rs_error "--tablespace 78: backup \"$ID\" has no tablespace 78" "--tablespace takes a comma-separated list"
rs --config "$CFG" -D "$PGT/x" --dry-run --tablespace "$TSOID=relative"
expect_rs_error "invalid --tablespace \"$TSOID=relative\": use OID=/absolute/dir" "--tablespace needs an absolute directory"
rs --config "$CFG" -D "$PGT/x" --dry-run --force
expect_rs_error "tablespace directory \"$PGT/ts1\" is not empty: use --tablespace OID=DIR" "--force never empties a tablespace directory (the primary's own)"
rs --help
expect_ok "--help"
for o in --pgdata --target-time --target-lsn --target-xid --target-name --target --target-timeline \
    --target-action --target-exclusive --backup --force --tablespace --standby --dry-run \
    --archive-mode --json --repo; do
    grep -q -- "$o " "$OUT" || fail "--help documents $o"
done
pass "--help documents every option"
done_testing
