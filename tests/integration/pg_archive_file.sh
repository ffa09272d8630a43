#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Real PostgreSQL 15 archiving into a file:// repository with ferry-wal-push under pgbench
# load (1 MiB segments, so many of them and the look-ahead at work); every file PostgreSQL
# marked .done is in the repository; a base backup (pg_basebackup -X none); PITR with
# ferry-wal-fetch to a time between two known commits gives exactly the rows before it; a
# recovery to the end of the archive gives every committed row.
. "$(dirname "$0")/lib.sh"
. "$HARNESS/pg.sh"

mkdir -p "$PGT/repo"
chown postgres: "$PGT/repo"
CFG="$PGT/ferry.conf"
ferry_cfg "$CFG" "repo = file://$PGT/repo"

pitr_roundtrip "$CFG" 1
done_testing
