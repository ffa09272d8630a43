#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# pg_basebackup_old.sh MAJOR: ferry-basebackup against PostgreSQL 12, 13 or 14 (npm
# @embedded-postgres, tests/harness/pg_bb.sh), the servers of the old BASE_BACKUP protocol (one
# COPY per tablespace, then one for the manifest; tars without their end blocks): a backup
# under pgbench load with a tablespace into a file:// repository; a sane catalogue entry; each
# stored tar is complete; pg_verifybackup (13+: 12 has no manifest) passes; a server started
# from the stored tars (tablespace moved through tablespace_map) and recovered with
# ferry-wal-fetch has every committed row.
. "$(dirname "$0")/lib.sh"
. "$HARNESS/pg.sh"
. "$(dirname "$0")/pg_basebackup_lib.sh"
MAJOR="${1:?usage: pg_basebackup_old.sh MAJOR}"

if PGOLD=$("$HARNESS/pg_bb.sh" "$MAJOR" "$BUILD/pgold" 2>"$T/pg-install.log"); then
    pass "PostgreSQL $MAJOR installed from npm ($("$PGOLD/postgres" --version))"
else
    bail "PostgreSQL $MAJOR installed from npm" "$(cat "$T/pg-install.log")"
fi
PGBIN="$PGOLD"

mkdir -p "$PGT/repo"
chown postgres: "$PGT/repo"
CFG="$PGT/ferry.conf"
ferry_cfg "$CFG" "repo = file://$PGT/repo"

section "a PostgreSQL $MAJOR primary archiving with ferry-wal-push, a tablespace, pgbench load"
pg_new primary
P="$PGD"
pg_archive_to "$P" "$CFG"
pg_start "$P" || bail "the primary starts" "$(tail -5 "$P.log")"
expect_eq "$(pg_sql "$P" "show server_version_num" | cut -c1-2)" "$MAJOR" "the primary runs PostgreSQL $MAJOR"
pg_bench_init "$P" 3 || bail "pgbench -i -s 3" "$(tail -5 "$P.pgbench-init.log")"
pg_marker_table "$P"
mkdir -p "$PGT/ts1"
chown postgres: "$PGT/ts1"
pg_sql "$P" "create tablespace ts1 location '$PGT/ts1'" >/dev/null
got=$(pg_sql "$P" "create table in_ts (id int, pad text) tablespace ts1; insert into in_ts select g, repeat('x', 100) from generate_series(1, 20000) g; select oid from pg_tablespace where spcname = 'ts1'")
TSOID=$(tail -1 <<<"$got")
[[ "$TSOID" =~ ^[0-9]+$ ]] || bail "tablespace ts1 created" "$got"

pg_bench_load "$P" 8 &
LOAD=$!
sleep 1
T0=$(now)
bb "$CFG" "$P" -c fast --json
expect_ok "ferry-basebackup -c fast --json of PostgreSQL $MAJOR under load ($(elapsed "$T0") s)"
wait "$LOAD"
expect_eq "$?" 0 "pgbench ran during the backup"
cp "$OUT" "$T/entry.json"
J="$T/entry.json"
want="$TSOID.tar base.tar backup_manifest"
[ "$MAJOR" = 12 ] && want="$TSOID.tar base.tar"
expect_eq "$(jget "$J" '" ".join(p["name"] for p in j["parts"])')" "$want" "parts: $want"
bb_check_entry "$CFG" "$J" "$P"
for k in $(jget "$J" '" ".join(p["key"] for p in j["parts"] if p["name"].endswith(".tar"))'); do
    if bb_tar_terminated "$CFG" "$k"; then pass "$k is a complete tar (end blocks added)"; else fail "$k is a complete tar (end blocks added)"; fi
done

if [ "$MAJOR" != 12 ]; then
    section "pg_verifybackup (Debian's 15) on the stored tars"
    bb_extract "$CFG" "$J" "$PGT/verify"
    expect_eq "$?" 0 "extracted with ferry repo get + tar"
    run_pg "$PG_VERIFYBACKUP" -n "$PGT/verify"
    expect_ok "pg_verifybackup -n passes"
fi

section "rows after the backup, archived"
pg_marker "$P" 1 after-backup-1 && pg_marker "$P" 2 after-backup-2
LAST=$(pg_switch "$P")
pg_wait_archived "$P" "$LAST" 90 && pg_wait_no_ready "$P" 30
expect_eq "$?" 0 "every segment up to $LAST is archived"
STATE=$(pg_state "$P")

section "a server recovered from the stored backup with ferry-wal-fetch"
bb_extract_remap "$CFG" "$J" "$PGT/restored"
expect_eq "$?" 0 "extracted, tablespace $TSOID moved to $PGT/restored.ts-$TSOID"
_pg_adopt "$PGT/restored"
R="$PGT/restored"
rm -f "$R/backup_manifest"
pg_recover "$R" "$CFG"
if pg_start "$R" && pg_wait_promoted "$R"; then
    pass "recovery from the ferry-basebackup backup ends and the server is promoted"
else
    fail "recovery from the ferry-basebackup backup ends and the server is promoted" "$(tail -15 "$R.log")"
fi
expect_eq "$(pg_state "$R")" "$STATE" "every committed row: counts and checksums equal the primary's"
expect_eq "$(pg_markers "$R")" "1:after-backup-1,2:after-backup-2" "the marker rows written after the backup"
expect_eq "$(pg_sql "$R" "select count(*) from in_ts")" 20000 "the table in the tablespace has its 20000 rows"
expect_eq "$(readlink "$R/pg_tblspc/$TSOID")" "$PGT/restored.ts-$TSOID" "its tablespace is the restored copy"
pg_stop "$R"
done_testing
