#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# ferry-verify across a timeline switch: PostgreSQL 15 (1 MiB segments) archiving with
# ferry-wal-push, a backup by ferry-basebackup; ferry-restore restores a copy to a time between
# two commits, it is promoted (timeline 2) and archives into the same repository: the history
# file, timeline 2's segments, and a second backup taken from it. The repository verifies, and
# also when timeline 1 ends with the switch segment as .partial and nothing after it (as a
# promotion leaves it when the old primary died there): the .partial at the switch is no gap.
# A deleted timeline 2 segment after the switch is a gap on timeline 2; a deleted history file
# is missing_history; a damaged one is corrupt_object (and the WAL checks cannot run).
. "$(dirname "$0")/lib.sh"
. "$HARNESS/pg.sh"
. "$(dirname "$0")/pg_basebackup_lib.sh"
. "$(dirname "$0")/pg_restore_lib.sh"
. "$(dirname "$0")/pg_verify_lib.sh"

section "timeline 1: a primary and a backup"
vf_primary
vf_backup "$P"
B1="$BID"
sleep 1.1 # the catalogue's stop time has whole seconds: the target must come after it
pg_marker "$P" 1 one
pg_marker "$P" 2 two
TARGET=$(pg_between "$P" 1 2)
vf_switch "$P"
FORK="$SEG" # the segment holding the target: timeline 2 starts inside it
pg_marker "$P" 3 three
vf_switch "$P"
pass "backup $B1; target $TARGET inside $FORK"

section "a restored copy promoted at the target: timeline 2"
D=$(pgdir copy)
rs --config "$CFG" -D "$D" --target-time "$TARGET" --target-action promote
[ "$RC" = 0 ] || bail "ferry-restore" "$(_show_io)"
rs_adopt "$D"
C="$D"
if pg_start "$C" && pg_wait_promoted "$C"; then
    pass "the copy recovers to the target and is promoted"
else
    bail "the copy recovers to the target and is promoted" "$(tail -15 "$C.log")"
fi
cur=$(pg_sql "$C" "select pg_walfile_name(pg_current_wal_lsn())")
expect_eq "${cur:0:8}${cur:8:16}" "00000002${FORK:8:16}" "the copy writes timeline 2 from $FORK's position ($cur)"
T2=()
for i in 1 2 3; do
    pg_marker "$C" "1$i" "t2-$i"
    vf_switch "$C"
    T2+=("$SEG")
done
sleep 1.1
vf_backup "$C"
B2="$BID"
expect_eq "$(jget "$T/$B2.json" 'j["timeline"]')" 2 "backup $B2 of the copy is on timeline 2"
vf_switch "$C"
pg_wait_no_ready "$C" 30
pg_wait_no_ready "$P" 30
pg_stop "$C"
pg_stop "$P"
PARTIAL="00000001${FORK:8:16}.partial"
keys=$(repo_ls "$CFG" pg/wal/)
expect_contains "$keys" "pg/wal/history/00000002.history" "00000002.history is archived"
# no .partial here: the segment holding the switch point was restored from the archive (it is
# .done), so PostgreSQL does not archive a partial copy of it; the section below makes one
expect_not_contains "$keys" "$(wal_key "$PARTIAL")" "no $PARTIAL (the whole $FORK is archived)"
expect_contains "$keys" "$(wal_key "${T2[0]}")" "timeline 2 segments are archived (${T2[*]})"
REPO="file://$PGT/repo"
NWAL=$(wal_count "$PGT/repo")

section "the repository verifies"
t0=$(now)
vf --repo "$REPO" --json
expect_vf 0 "exit 0 ($(elapsed "$t0") s)"
expect_eq "$(vf_json 'j["status"]')-$(vf_json 'len(j["problems"])')" "intact-0" "intact, no problem"
expect_eq "$(vf_json 'j["checked"]["timelines"]')" 2 "two timelines"
expect_eq "$(vf_json 'j["checked"]["backups"]')" 2 "both backups"
expect_eq "$(vf_json 'j["checked"]["wal_files"]')" "$NWAL" "every WAL file ($NWAL), the .partial and the history file too"
vf --repo "$REPO" --backup "$B2"
expect_vf 0 "--backup $B2 (timeline 2): exit 0"

section "timeline 1 ends at the switch with a .partial (the old primary died there): intact"
# what a promotion leaves when the old primary never archived the segment holding the switch:
# timeline 1 ends with FORK.partial, the segments after it never existed
vf_copy died
fork_no=$(seg_no "$FORK" 1048576)
mv "$BADDIR/$(wal_key "$FORK")" "$BADDIR/$(wal_key "$PARTIAL")"
for f in "$BADDIR"/pg/wal/00000001*/00000001*; do
    n=$(basename "$f")
    [[ "$n" =~ ^[0-9A-F]{24}$ ]] || continue
    [ "$(seg_no "$n" 1048576)" -gt "$fork_no" ] && rm "$f"
done
[ -e "$BADDIR/$(wal_key "$FORK")" ] && bail "the copy lost $FORK" "still there"
vf --repo "$BAD"
expect_vf 0 "exit 0: timeline 1 ends with $PARTIAL, timeline 2 holds $FORK: no gap"
expect_contains "$(vf_summary)" "intact: " "intact"

section "a deleted timeline 2 segment after the switch: a gap on timeline 2"
vf_copy t2gap
rm "$BADDIR/$(wal_key "${T2[0]}")"
vf --repo "$BAD" --json
expect_vf 2 "exit 2"
expect_eq "$(vf_json '[(p["kind"], p["object"]) for p in j["problems"]]')" "[('gap', '$(wal_key "${T2[0]}")')]" "gap naming ${T2[0]}"
vf --repo "$BAD"
expect_problem "gap $(wal_key "${T2[0]}"): segment ${T2[0]} is not archived: the WAL chain is broken there" "the text report names it"

section "the first timeline 2 segment (the copy of $FORK) deleted"
vf_copy t2first
rm "$BADDIR/$(wal_key "00000002${FORK:8:16}")"
vf --repo "$BAD" --json
expect_vf 2 "exit 2"
expect_eq "$(vf_json '[(p["kind"], p["object"]) for p in j["problems"]]')" "[('gap', '$(wal_key "00000002${FORK:8:16}")')]" "gap naming 00000002${FORK:8:16} (the full $FORK on timeline 1 does not replace it)"

section "a deleted history file"
vf_copy nohistory
rm "$BADDIR/pg/wal/history/00000002.history"
vf --repo "$BAD"
expect_vf 2 "exit 2"
expect_problem "missing_history pg/wal/history/00000002.history: timeline 2 has WAL but no history file: recovery cannot follow it" "missing_history, named"
expect_eq "$(vf_problems | wc -l)" 1 "the only problem"

section "a damaged history file"
vf_copy badhistory
flip_byte "$BADDIR/pg/wal/history/00000002.history"
vf --repo "$BAD" --json
expect_vf 2 "exit 2"
expect_eq "$(vf_json '[(p["kind"], p["object"]) for p in j["problems"]]')" "[('corrupt_object', 'pg/wal/history/00000002.history')]" "corrupt_object naming it"
expect_contains "$(vf_json 'j["problems"][0]["detail"]')" "; the WAL archive was not checked" "and it says the WAL was not checked"
expect_eq "$(vf_json 'j["checked"]["backups"]')-$(vf_json 'j["checked"]["wal_files"]')" "2-0" "the backups still were"
done_testing
