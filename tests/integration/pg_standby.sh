#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A PostgreSQL 15 standby fed only by restore_command = ferry-wal-fetch (standby.signal, no
# primary_conninfo) follows a primary that archives with ferry-wal-push into a file://
# repository: rows inserted on the primary after pg_switch_wal() appear on the standby
# within a bounded wait, three times over; while the archive has nothing new, the standby
# stays in recovery (ferry-wal-fetch's "not in the archive" is exit 1, never fatal).
. "$(dirname "$0")/lib.sh"
. "$HARNESS/pg.sh"

mkdir -p "$PGT/repo"
chown postgres: "$PGT/repo"
CFG="$PGT/ferry.conf"
ferry_cfg "$CFG" "repo = file://$PGT/repo"

section "primary and a standby fed from the archive"
pg_new primary --wal-segsize=1
P="$PGD"
pg_archive_to "$P" "$CFG"
pg_start "$P" || bail "the primary starts" "$(tail -5 "$P.log")"
pg_marker_table "$P"
pg_basebackup_to "$P" "$PGT/base" || bail "base backup" "$(tail -5 "$PGT/base.log")"
pg_copy "$PGT/base" standby
S="$PGD"
pg_conf "$S" "archive_mode = off" "restore_command = '$WAL_FETCH --config $CFG %f %p'" \
    "hot_standby = on" "primary_conninfo = ''"
runuser -u postgres -- touch "$S/standby.signal"
if pg_start "$S"; then pass "the standby starts (hot standby, accepts queries)"; else bail "the standby starts" "$(tail -15 "$S.log")"; fi
expect_eq "$(pg_sql "$S" "select pg_is_in_recovery()")" t "the standby is in recovery"
expect_eq "$(pg_markers "$S")" "" "no rows yet"

want=""
for round in 1 2 3; do
    section "round $round: rows on the primary, pg_switch_wal(), wait for the standby"
    for i in 1 2; do
        id=$((round * 10 + i))
        pg_marker "$P" "$id" "r$round-$i"
        want="${want:+$want,}$id:r$round-$i"
    done
    pg_switch "$P" >/dev/null
    t0=$(now)
    if pg_wait_sql "$S" "select coalesce(string_agg(id || ':' || note, ',' order by id), '') from marker" "$want" 45; then
        pass "the standby shows exactly the rows so far ($want) after $(elapsed "$t0") s"
    else
        fail "the standby shows the rows of round $round within 45 s" "got: $(pg_markers "$S")" \
            "want: $want" "$(tail -10 "$S.log")"
    fi
done

section "the standby waits while the archive has nothing new"
sleep 3
expect_eq "$(pg_sql "$S" "select pg_is_in_recovery()")" t "still in recovery after 3 s without new WAL"
log=$(pg_log "$S")
expect_not_contains "$log" "FATAL" "no FATAL in the standby's log"
n=$(grep -c 'restored log file ".*" from archive' <<<"$log")
expect_ge "$n" 3 "the standby restored segments from the archive ($n)"
expect_eq "$(pg_sql "$S" "select count(*) from marker")" 6 "six rows on the standby"
pg_stop "$S"
expect_eq "$?" 0 "the standby stops cleanly"
done_testing
