#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# ferry-restore picks a backup on the right timeline (PostgreSQL 15, file://): backup B1 on
# timeline 1; a copy restored from it (archiving on) is promoted to timeline 2 and archives its
# history file and new rows; the primary goes on on timeline 1 and takes backup B2, which ends
# after the switch point. Recovering along timeline 2 (the default, latest) must use B1 — B2's
# timeline left timeline 2's history before B2 ended — and gives timeline 2's rows; along
# timeline 1, B2 is the newest.
. "$(dirname "$0")/lib.sh"
. "$HARNESS/pg.sh"
. "$(dirname "$0")/pg_basebackup_lib.sh"
. "$(dirname "$0")/pg_restore_lib.sh"

mkdir -p "$PGT/repo"
chown postgres: "$PGT/repo"
CFG="$PGT/ferry.conf"
ferry_cfg "$CFG" "repo = file://$PGT/repo"

section "timeline 1: backup B1, then a copy promoted to timeline 2"
pg_new primary
P="$PGD"
pg_archive_to "$P" "$CFG"
pg_start "$P" || bail "the primary starts" "$(tail -5 "$P.log")"
pg_marker_table "$P"
bb "$CFG" "$P" -c fast --json
expect_ok "backup B1"
B1=$(jget "$OUT" 'j["id"]')
pg_marker "$P" 1 tl1-one
LAST=$(pg_switch "$P")
pg_wait_archived "$P" "$LAST" 90
C=$(pgdir copy)
rs --config "$CFG" -D "$C"
expect_ok "a copy restored from B1 (archiving preserved)"
rs_adopt "$C"
if pg_start "$C" && pg_wait_promoted "$C"; then pass "the copy is promoted"; else bail "the copy is promoted" "$(tail -15 "$C.log")"; fi
pg_sql "$C" "insert into marker values (10, 'tl2-ten')" >/dev/null
LASTC=$(pg_switch "$C")
expect_eq "${LASTC:0:8}" 00000002 "the copy runs on timeline 2"
pg_wait_archived "$C" "$LASTC" 90
expect_eq "$?" 0 "the copy archived $LASTC"
expect_contains "$(repo_ls "$CFG" pg/wal/history/)" "pg/wal/history/00000002.history" "and 00000002.history"
pg_stop "$C"

section "timeline 1 goes on: backup B2 ends after the switch"
pg_marker "$P" 2 tl1-two
sleep 1
bb "$CFG" "$P" -c fast --json
expect_ok "backup B2"
B2=$(jget "$OUT" 'j["id"]')
LAST=$(pg_switch "$P")
pg_wait_archived "$P" "$LAST" 90 && pg_wait_no_ready "$P" 30
expect_eq "$?" 0 "timeline 1 archived up to $LAST"

section "the choice"
D=$(pgdir plan)
rs --config "$CFG" -D "$D" --dry-run --json
expect_ok "--dry-run (timeline latest)"
expect_eq "$(jget "$OUT" 'j["backup"]')" "$B1" "along timeline 2 (latest), B1: B2 ends after timeline 2 left timeline 1"
expect_eq "$(jget "$OUT" 'j["why"]')" "the newest of 1 backups on timeline 2 (2 in the repository)" "and why"
rs --config "$CFG" -D "$D" --dry-run --json --target-timeline 1
expect_eq "$(jget "$OUT" 'j["backup"]')" "$B2" "along timeline 1, B2"
rs --config "$CFG" -D "$D" --dry-run --target-timeline 2 --backup "$B2"
expect_rs_error "backup \"$B2\" is on timeline 1, which timeline 2 does not descend from after the backup" "--backup B2 along timeline 2 is refused"
rs --config "$CFG" -D "$D" --dry-run --target-timeline 3
expect_rs_error "timeline 3 has no history file \"pg/wal/history/00000003.history\" in the repository" "an unknown timeline is refused"

section "restore along timeline 2"
R=$(pgdir tl2)
rs --config "$CFG" -D "$R" --archive-mode off
expect_ok "ferry-restore (latest timeline)"
rs_adopt "$R"
if pg_start "$R" && pg_wait_promoted "$R"; then pass "recovered and promoted"; else fail "recovered and promoted" "$(tail -15 "$R.log")"; fi
expect_eq "$(pg_markers "$R")" "1:tl1-one,10:tl2-ten" "timeline 2's rows, not timeline 1's later one"
pg_stop "$R"

section "restore along timeline 1"
R=$(pgdir tl1)
rs --config "$CFG" -D "$R" --archive-mode off --target-timeline 1
expect_ok "ferry-restore --target-timeline 1"
rs_adopt "$R"
if pg_start "$R" && pg_wait_promoted "$R"; then pass "recovered and promoted"; else fail "recovered and promoted" "$(tail -15 "$R.log")"; fi
expect_eq "$(pg_markers "$R")" "1:tl1-one,2:tl1-two" "timeline 1's rows"
pg_stop "$R"
done_testing
