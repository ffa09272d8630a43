#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# ferry expire on a real repository (PostgreSQL 15, file://, 1 MiB segments) built by the
# suite's own programs: backups B1-B3 on timeline 1, a copy restored from B3 and promoted to
# timeline 2 with backup B4, an old and a fresh incomplete backup, two orphans
# (pg_expire_lib.sh). --retain-full 2 keeps B3 and B4: --dry-run lists exactly the keys an
# independent computation expects (catalogue entries first) and deletes nothing; the real run
# deletes exactly that list, printing it the same way; a rerun deletes nothing; a PITR from B3
# across the timeline switch to a time on timeline 2 still works. --retain-min and a window
# keeping both delete no backup; a window ending after B4 keeps B4 only: a run that fails
# after deleting B3's catalogue entry (its directory read-only) leaves B3 incomplete, a rerun
# deletes the rest (B3's parts once the grace period allows), and recovery from B4 to the end
# of the archive still works. No policy is refused.
. "$(dirname "$0")/lib.sh"
. "$HARNESS/pg.sh"
. "$(dirname "$0")/pg_basebackup_lib.sh"
. "$(dirname "$0")/pg_restore_lib.sh"
. "$(dirname "$0")/pg_expire_lib.sh"

mkdir -p "$PGT/repo"
chown postgres: "$PGT/repo"
CFG="$PGT/ferry.conf"
ferry_cfg "$CFG" "repo = file://$PGT/repo"
T0=$(now)
build_repo "$CFG"
diag "repository built in $(elapsed "$T0") s"

section "usage"
fr expire --config "$CFG"
expect_cmd_error expire 2 "no retention policy given: use --retain-full N and/or --retain-days D" "no retention option: refused"
fr expire --config "$CFG" --retain-full 0
expect_cmd_error expire 2 "retain-full" "--retain-full 0 is refused"
fr expire --config "$CFG" --retain-days=-1
expect_cmd_error expire 2 'invalid --retain-days "-1": use a non-negative number' "--retain-days=-1 is refused"
fr expire --config "$CFG" --retain-full 2 extra
expect_cmd_error expire 2 'unexpected argument "extra"' "an argument is refused"

section "--retain-full 2 --dry-run lists exactly what goes and deletes nothing"
BEFORE=$(repo_keys "$CFG")
expected_expiry "$CFG" 24 "$B3" "$B4" >"$T/expected"
fr expire --config "$CFG" --retain-full 2 --dry-run
expect_ok "ferry expire --retain-full 2 --dry-run"
cp "$OUT" "$T/dry"
cp "$ERR" "$T/dry.err"
expect_eq "$(cat "$T/dry")" "$(cat "$T/expected")" "the list is the expected one, in deletion order ($(wc -l <"$T/expected") keys)"
expect_eq "$(head -2 "$T/dry")" "pg/catalog/$B1.json
pg/catalog/$B2.json" "the catalogue entries of B1 and B2 come first"
expect_contains "$(cat "$T/dry")" "pg/backups/$B1/base.tar" "B1's base.tar goes"
expect_contains "$(cat "$T/dry")" "pg/backups/$OLD_INC/base.tar" "the old incomplete backup goes"
expect_eq "$(grep -c "$NEW_INC" "$T/dry")" 0 "the fresh incomplete backup stays (grace period)"
expect_contains "$(cat "$T/dry")" "pg/junk.txt" "orphan pg/junk.txt goes"
expect_contains "$(cat "$T/dry")" "pg/wal/0000000100000000/garbage" "orphan pg/wal/0000000100000000/garbage goes"
b3start=$(entry_field "$CFG" "$B3" 'j["start_wal"]')
n=$(grep -c '^pg/wal/0000000100000000/0000000100000000000000' "$T/dry")
expect_ge "$n" 6 "WAL before B3's start $b3start goes ($n files)"
expect_eq "$(grep -c "pg/wal/0000000100000000/$b3start\$" "$T/dry")" 0 "B3's start segment stays"
expect_eq "$(grep -c history "$T/dry")" 0 "no history file goes (timeline 2 is reachable)"
expect_contains "$(cat "$T/dry.err")" "would delete $(wc -l <"$T/expected") of $(wc -l <"$T/expected") objects" "the summary says how many would go"
expect_contains "$(cat "$T/dry.err")" "2 expired backups (2 catalogue entries, 4 parts)" "two backups, two entries, four parts"
expect_contains "$(cat "$T/dry.err")" "keeping 2 backups ($B3 to $B4), WAL from segment" "and what stays"
expect_eq "$(repo_keys "$CFG")" "$BEFORE" "--dry-run deleted nothing"

section "the real run deletes exactly that list"
T1=$(now)
fr expire --config "$CFG" --retain-full 2
expect_ok "ferry expire --retain-full 2 ($(elapsed "$T1") s)"
expect_eq "$(cat "$OUT")" "$(cat "$T/dry")" "it printed the same keys in the same order"
expect_contains "$(cat "$ERR")" "deleted $(wc -l <"$T/expected") of $(wc -l <"$T/expected") objects" "summary: deleted"
AFTER=$(repo_keys "$CFG")
expect_eq "$(comm -23 <(echo "$BEFORE") <(echo "$AFTER"))" "$(sort "$T/dry")" "the keys gone are exactly the listed ones"
expect_eq "$(comm -13 <(echo "$BEFORE") <(echo "$AFTER"))" "" "and nothing appeared"
expect_eq "$(catalog_ids "$CFG" | tr '\n' ' ')" "$B3 $B4 " "the catalogue holds B3 and B4"
fr expire --config "$CFG" --retain-full 2
expect_ok "a rerun succeeds"
expect_eq "$(cat "$OUT")" "" "and deletes nothing"
expect_eq "$(repo_keys "$CFG")" "$AFTER" "the repository is unchanged"

section "PITR from B3 across the timeline switch still works"
R=$(pgdir pitr)
rs --config "$CFG" -D "$R" --backup "$B3" --target-time "$TARGET" --target-action promote --archive-mode off
expect_ok "ferry-restore --backup B3 --target-time (between rows 10 and 11, on timeline 2)"
rs_adopt "$R"
if pg_start "$R" && pg_wait_promoted "$R"; then
    pass "recovery from B3 to the target ends and the server is promoted"
else
    fail "recovery from B3 to the target ends and the server is promoted" "$(tail -15 "$R.log")"
fi
expect_eq "$(pg_markers "$R")" "1:tl1-after-b3,10:tl2-ten,101:load-1,102:load-2,103:load-3" \
    "exactly the rows before the target, across the switch to timeline 2"
expect_contains "$(pg_log "$R")" "restored log file \"00000002.history\" from archive" "00000002.history was fetched"
pg_stop "$R"

section "--retain-min, and a window that keeps both"
fr expire --config "$CFG" --retain-full 1 --retain-min 2 --dry-run
expect_ok "--retain-full 1 --retain-min 2 --dry-run"
expect_eq "$(grep -c '^pg/catalog/\|^pg/backups/' "$OUT")" 0 "no backup goes: the minimum keeps two"
b3stop=$(entry_field "$CFG" "$B3" 'j["stop_time"]')
b4stop=$(entry_field "$CFG" "$B4" 'j["stop_time"]')
s3=$(date -u -d "$b3stop" +%s)
s4=$(date -u -d "$b4stop" +%s)
expect_ge "$((s4 - s3))" 2 "B4 ended at least 2 s after B3"
days=$(python3 -c "import time; print('%.9f' % ((time.time() - ($s3 + $s4) / 2) / 86400))")
fr expire --config "$CFG" --retain-days "$days" --dry-run
expect_ok "--retain-days $days (the window starts between B3's and B4's stop) --dry-run"
expect_eq "$(grep -c '^pg/catalog/\|^pg/backups/' "$OUT")" 0 "no backup goes: B3 is the newest before the window"

section "a window ending after B4: B3 goes; a run interrupted after its catalogue entry, then rerun"
sleep 1
expected_expiry "$CFG" 24 "$B4" >"$T/expected2"
fr expire --config "$CFG" --retain-days 0.00001 --retain-min 0 --dry-run
expect_ok "--retain-days 0.00001 --retain-min 0 --dry-run"
expect_eq "$(cat "$OUT")" "$(cat "$T/expected2")" "the list is the expected one ($(wc -l <"$T/expected2") keys)"
cp "$OUT" "$T/dry2"
expect_eq "$(head -1 "$T/dry2")" "pg/catalog/$B3.json" "B3's catalogue entry first"
BEFORE=$(repo_keys "$CFG")
chmod 500 "$PGT/repo/pg/backups/$B3"
fr expire --config "$CFG" --retain-days 0.00001 --retain-min 0
chmod 700 "$PGT/repo/pg/backups/$B3"
expect_rc 1 "B3's parts cannot be deleted (directory read-only): exit 1"
expect_eq "$(wc -l <"$ERR")" 1 "one line on stderr"
expect_contains "$(cat "$ERR")" "ferry expire: error: could not delete backup part objects" "naming what failed"
expect_eq "$(cat "$OUT")" "pg/catalog/$B3.json" "only the catalogue entry went, and it was printed"
expect_eq "$(catalog_ids "$CFG" | tr '\n' ' ')" "$B4 " "B3 is no longer complete: nothing restores from it"
fr expire --config "$CFG" --retain-days 0.00001 --retain-min 0
expect_ok "the rerun succeeds"
cp "$OUT" "$T/rerun"
expect_eq "$(grep -c "pg/backups/$B3/" "$T/rerun")" 0 "B3's parts are now an incomplete backup in its grace period: kept"
expect_contains "$(cat "$ERR")" "2 incomplete backups in the grace period" "the summary counts it"
fr expire --config "$CFG" --retain-days 0.00001 --retain-min 0 --incomplete-grace 0
expect_ok "--incomplete-grace 0"
cp "$OUT" "$T/rerun2"
expect_eq "$(grep -c "pg/backups/$B3/" "$T/rerun2")" 2 "B3's two parts go"
expect_eq "$(cat "$T/dry2" | sed 1d | grep -v "pg/backups/$B3/")" "$(cat "$T/rerun")" \
    "the rerun deleted the rest of the dry run's list, in the same order"
expect_eq "$(comm -23 <(echo "$BEFORE") <(repo_keys "$CFG"))" \
    "$( (cat "$T/dry2"; echo "pg/backups/$NEW_INC/base.tar") | LC_ALL=C sort)" \
    "in all, exactly the dry run's list went (and, with grace 0, the fresh incomplete backup)"
expect_eq "$(catalog_ids "$CFG" | tr '\n' ' ')" "$B4 " "the catalogue holds B4 only"
b4start=$(entry_field "$CFG" "$B4" 'j["start_wal"]')
left=$(repo_keys "$CFG" | grep '^pg/wal/0000000[12]' | sed 's|.*/||' | sort | head -1)
expect_eq "${left:8:16}" "${b4start:8:16}" "the oldest WAL left is B4's start segment ($b4start)"
expect_contains "$(repo_keys "$CFG")" "pg/wal/history/00000002.history" "00000002.history stays"
E=$(pgdir end)
rs --config "$CFG" -D "$E" --archive-mode off
expect_ok "ferry-restore (latest) from B4"
rs_adopt "$E"
if pg_start "$E" && pg_wait_promoted "$E"; then
    pass "recovery to the end of the archive ends and the server is promoted"
else
    fail "recovery to the end of the archive ends and the server is promoted" "$(tail -15 "$E.log")"
fi
expect_eq "$(pg_markers "$E")" "$C_MARKERS" "every marker row of the copy (12 included)"
pg_stop "$E"

diag "total $(elapsed "$T0") s"
done_testing
