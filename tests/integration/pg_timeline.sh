#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Timelines with real PostgreSQL 15 and a file:// repository. The primary stops with its
# last segment half full (not archived); a copy of its data directory recovers from the
# archive and its own pg_wal, is promoted and archives into the same repository the new
# timeline's 00000002.history and the old timeline's last segment as .partial. The old
# primary restarts on timeline 1 and archives that segment whole under its own name. A
# PITR from the base backup with recovery_target_timeline = 2 then follows the history file
# across the switch and stops at a row committed on timeline 2 (and has none of timeline 1's
# rows after the fork).
. "$(dirname "$0")/lib.sh"
. "$HARNESS/pg.sh"

mkdir -p "$PGT/repo"
chown postgres: "$PGT/repo"
CFG="$PGT/ferry.conf"
ferry_cfg "$CFG" "repo = file://$PGT/repo"

section "timeline 1: a primary archiving with ferry-wal-push"
pg_new primary
P="$PGD"
pg_archive_to "$P" "$CFG"
pg_start "$P" || bail "the primary starts" "$(tail -5 "$P.log")"
pg_marker_table "$P"
pg_basebackup_to "$P" "$PGT/base" || bail "base backup" "$(tail -5 "$PGT/base.log")"
pass "primary and base backup"
pg_marker "$P" 1 tl1-1
last=$(pg_switch "$P")
pg_marker "$P" 2 tl1-2
pg_wait_archived "$P" "$last" 60
expect_eq "$?" 0 "timeline 1 archived up to $last"
pg_stop "$P"
expect_eq "$?" 0 "the primary stops (its last segment half full, not archived)"

section "a copy of the primary recovers, is promoted and archives into the same repository"
pg_copy "$P" tl2
C="$PGD"
pg_recover "$C" "$CFG"
pg_archive_to "$C" "$CFG"
if pg_start "$C" && pg_wait_promoted "$C"; then
    pass "the copy recovers to the end of WAL and is promoted"
else
    bail "the copy recovers to the end of WAL and is promoted" "$(tail -15 "$C.log")"
fi
expect_eq "$(pg_markers "$C")" "1:tl1-1,2:tl1-2" "the copy has every row of the primary"
cur=$(pg_sql "$C" "select pg_walfile_name(pg_current_wal_lsn())")
expect_eq "${cur:0:8}" 00000002 "the copy is on timeline 2 ($cur)"
PARTIAL="00000001${cur:8:16}.partial"
pg_marker "$C" 10 tl2-a
pg_marker "$C" 11 tl2-b
TARGET2=$(pg_between "$C" 10 11)
last2=$(pg_switch "$C")
pg_wait_archived "$C" "$last2" 60 && pg_wait_no_ready "$C" 30
expect_eq "$?" 0 "timeline 2 archived up to $last2"

section "the new timeline's history and the old timeline's .partial are archived"
keys=$(repo_ls "$CFG" pg/wal/)
expect_contains "$keys" "pg/wal/history/00000002.history" "00000002.history is in the repository"
expect_contains "$keys" "$(wal_key "$PARTIAL")" "$PARTIAL is in the repository"
expect_contains "$keys" "$(wal_key "$last2")" "$last2 (timeline 2) is in the repository"
rm -f "$T/got"
timeout 60 "$FERRY" repo --config "$CFG" get pg/wal/history/00000002.history "$T/got" >/dev/null 2>&1
expect_same_file "$T/got" "$C/pg_wal/00000002.history" "the stored history file is the copy's"
expect_contains "$(cat "$T/got" 2>/dev/null)" "no recovery target specified" "it says where timeline 1 ended"
rm -f "$T/got"
timeout 60 "$FERRY" repo --config "$CFG" get "$(wal_key "$PARTIAL")" "$T/got" >/dev/null 2>&1
expect_same_file "$T/got" "$C/pg_wal/$PARTIAL" "the stored .partial is the copy's file"
# the old primary goes on on timeline 1 and archives the whole segment: no conflict with the
# .partial, and its rows after the fork must not appear on timeline 2
pg_start "$P"
pg_marker "$P" 3 tl1-3
last=$(pg_switch "$P")
pg_wait_archived "$P" "$last" 60
expect_eq "$?" 0 "the old primary (timeline 1) archived up to $last"
expect_contains "$(repo_ls "$CFG" pg/wal/)" "$(wal_key "${PARTIAL%.partial}")" \
    "the whole ${PARTIAL%.partial} (timeline 1) is archived beside the .partial"

section "PITR across the timeline switch (recovery_target_timeline = 2)"
pg_copy "$PGT/base" tl3
R="$PGD"
pg_recover "$R" "$CFG" "recovery_target_timeline = '2'" "recovery_target_time = '$TARGET2'"
if pg_start "$R" && pg_wait_promoted "$R"; then
    pass "recovery along timeline 2 to $TARGET2 ends and the server is promoted"
else
    fail "recovery along timeline 2 to $TARGET2 ends and the server is promoted" "$(tail -15 "$R.log")"
fi
expect_eq "$(pg_markers "$R")" "1:tl1-1,2:tl1-2,10:tl2-a" \
    "exactly the timeline 1 rows before the fork and the timeline 2 row before the target"
log=$(pg_log "$R")
expect_contains "$log" 'restored log file "00000002.history" from archive' "00000002.history was fetched"
expect_contains "$log" "recovery stopping before commit of transaction" "recovery stopped at the target"
n=$(grep -c 'restored log file "00000002' <<<"$log")
expect_ge "$n" 2 "timeline 2 segments were replayed ($n files)"
cur=$(pg_sql "$R" "select pg_walfile_name(pg_current_wal_lsn())")
expect_eq "${cur:0:8}" 00000003 "the restored server is on timeline 3 ($cur)"
pg_stop "$R"
done_testing
