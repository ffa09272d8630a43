# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# Helpers of the ferry info / ferry expire tests (pg_info*.sh, pg_expire*.sh): sourced after
# lib.sh, tests/harness/pg.sh, pg_basebackup_lib.sh and pg_restore_lib.sh.

# fr ARGS...: `ferry ARGS...` as postgres (who owns the repository); stdout in $OUT, stderr in
# $ERR, status in $RC
fr() { run_pg "$FERRY" "$@"; }

# expect_cmd_error CMD RC SUBSTRING DESC: exit status RC, stderr one line
# "ferry CMD: error: ..." containing SUBSTRING, stdout empty
expect_cmd_error() {
    local cmd="$1" want_rc="$2" want="$3" desc="$4" lines first why=""
    lines=$(wc -l <"$ERR")
    first=$(head -n 1 "$ERR")
    [ "$RC" = "$want_rc" ] || why="exit status $RC, want $want_rc"
    [ -z "$why" ] && [ "$lines" != 1 ] && why="stderr has $lines lines, want exactly one"
    [ -z "$why" ] && [[ "$first" != "ferry $cmd: error: "* ]] && why="stderr does not start with 'ferry $cmd: error: '"
    [ -z "$why" ] && [[ "$first" != *"$want"* ]] && why="stderr lacks \"$want\""
    [ -z "$why" ] && [ -s "$OUT" ] && why="stdout is not empty"
    if [ -z "$why" ]; then pass "$desc"; else fail "$desc" "$why" "$(_show_io)"; fi
}

# repo_keys CONFIG: every key under pg/, sorted
repo_keys() { timeout -k 5 60 runuser -u postgres -- "$FERRY" repo --config "$1" ls pg/ 2>&1 | LC_ALL=C sort; }

# build_repo CONFIG: a real repository, 1 MiB WAL segments, PostgreSQL 15:
#   timeline 1: a primary archiving with ferry-wal-push; backups B1, B2, B3 (ferry-basebackup),
#     segments switched between them; marker row 1 after B3; then the primary stops
#   timeline 2: a copy restored from B3 by ferry-restore (archiving on) is promoted; marker
#     rows 10 and 11 (TARGET between them), backup B4, marker row 12, all archived
#   extra objects: an old incomplete backup (OLD_INC, 3 days old), a fresh one (NEW_INC), and
#     two orphans (pg/junk.txt, pg/wal/0000000100000000/garbage)
# Sets P, C (the copy; both stopped), C_MARKERS (its rows), B1..B4, TARGET, SEGSIZE.
build_repo() {
    local cfg="$1" i last
    SEGSIZE=1048576
    section "timeline 1: a primary archiving with ferry-wal-push (1 MiB segments); backups B1, B2, B3"
    pg_new primary --wal-segsize=1
    P="$PGD"
    pg_archive_to "$P" "$cfg"
    pg_start "$P" || bail "the primary starts" "$(tail -5 "$P.log")"
    pg_bench_init "$P" 2 || bail "pgbench -i -s 2" "$(tail -5 "$P.pgbench-init.log")"
    pg_marker_table "$P"
    for i in 1 2 3; do
        bb "$cfg" "$P" -c fast --json --label "b$i"
        [ "$RC" = 0 ] || bail "backup B$i" "$(_show_io)"
        eval "B$i=\$(jget \"\$OUT\" 'j[\"id\"]')"
        pg_sql "$P" "insert into marker values (100 + $i, 'load-$i')" >/dev/null
        pg_switch "$P" >/dev/null
        pg_sql "$P" "select 1" >/dev/null
        last=$(pg_switch "$P")
        pg_wait_archived "$P" "$last" 60 || bail "segments archived after B$i" "$(tail -5 "$P.log")"
        sleep 1.1 # backup IDs are start times to the second
    done
    pass "backups B1 $B1, B2 $B2, B3 $B3 on timeline 1"
    pg_marker "$P" 1 tl1-after-b3
    last=$(pg_switch "$P")
    pg_wait_archived "$P" "$last" 60 && pg_wait_no_ready "$P" 30 || bail "timeline 1 archived" "$(tail -5 "$P.log")"
    pg_stop "$P"

    section "timeline 2: a copy restored from B3 and promoted; backup B4"
    C=$(pgdir copy)
    rs --config "$cfg" -D "$C"
    [ "$RC" = 0 ] || bail "a copy restored by ferry-restore" "$(_show_io)"
    rs_adopt "$C"
    if pg_start "$C" && pg_wait_promoted "$C"; then pass "the copy is promoted"; else bail "the copy is promoted" "$(tail -15 "$C.log")"; fi
    pg_marker "$C" 10 tl2-ten
    pg_marker "$C" 11 tl2-eleven
    TARGET=$(pg_between "$C" 10 11)
    last=$(pg_switch "$C")
    [ "${last:0:8}" = 00000002 ] || bail "the copy runs on timeline 2" "$last"
    pg_wait_archived "$C" "$last" 60 || bail "timeline 2 archived" "$(tail -5 "$C.log")"
    bb "$cfg" "$C" -c fast --json --label b4
    [ "$RC" = 0 ] || bail "backup B4" "$(_show_io)"
    B4=$(jget "$OUT" 'j["id"]')
    pg_marker "$C" 12 tl2-after-b4
    last=$(pg_switch "$C")
    pg_wait_archived "$C" "$last" 60 && pg_wait_no_ready "$C" 30 || bail "timeline 2 archived after B4" "$(tail -5 "$C.log")"
    pass "backup B4 $B4 on timeline 2, archived up to $last"
    C_MARKERS=$(pg_markers "$C")
    pg_stop "$C" # nothing archives while the tests look at the repository

    section "an old and a fresh incomplete backup, two orphans"
    OLD_INC=20200101T000000Z
    NEW_INC=20991231T000000Z
    echo x >"$PGT/small"
    chown postgres: "$PGT/small"
    for k in "pg/backups/$OLD_INC/base.tar" "pg/backups/$OLD_INC/backup_manifest" \
        "pg/backups/$NEW_INC/base.tar" pg/junk.txt pg/wal/0000000100000000/garbage; do
        run_pg "$FERRY" repo --config "$cfg" put "$k" "$PGT/small"
        [ "$RC" = 0 ] || bail "put $k" "$(_show_io)"
    done
    touch -d '3 days ago' "$PGT/repo/pg/backups/$OLD_INC/base.tar" "$PGT/repo/pg/backups/$OLD_INC/backup_manifest"
    pass "extra objects stored"
}

# entry_field CONFIG ID EXPR: a value of a catalogue entry (python expression on `j`)
entry_field() {
    timeout 60 "$FERRY" repo --config "$1" get "pg/catalog/$2.json" "$T/entry-$2.json" >/dev/null 2>&1
    jget "$T/entry-$2.json" "$3"
}

# expected_expiry CONFIG GRACE_HOURS KEPT_ID...: the keys a run keeping exactly these backups
# must delete, computed here from the listing and the catalogue, in ferry's deletion order
# (catalogue entries, parts, incomplete, orphans, WAL, history; keys sorted in each)
expected_expiry() {
    local cfg="$1" grace="$2"
    shift 2
    local id kept=""
    for id in "$@"; do
        kept="$kept $id:$(entry_field "$cfg" "$id" 'j["start_wal"]'):$(entry_field "$cfg" "$id" 'j["timeline"]')"
    done
    repo_keys "$cfg" >"$T/keys"
    # mtimes of the incomplete backups' objects, from the file:// directory (none on S3)
    (cd "$PGT/repo" 2>/dev/null && find pg/backups -type f -printf '%p %T@\n') >"$T/mtimes" 2>/dev/null
    python3 - "$T/keys" "$T/mtimes" "$grace" "$SEGSIZE" $kept <<'PY'
import re, sys, time
keys = open(sys.argv[1]).read().split()
mt = dict(l.split() for l in open(sys.argv[2]) if l.strip())
grace = float(sys.argv[3]) * 3600
per = 2**32 // int(sys.argv[4])
kept = [a.split(":") for a in sys.argv[5:]]
kept_ids = {k[0] for k in kept}
segno = lambda n: int(n[8:16], 16) * per + int(n[16:24], 16)
floor = min(segno(k[1]) for k in kept)
min_tli = min(int(k[2]) for k in kept)
cat = {k[len("pg/catalog/"):-5] for k in keys if re.fullmatch(r"pg/catalog/\d{8}T\d{6}Z\.json", k)}
out = {i: [] for i in range(6)}
newest = {}
for k in keys:
    m = re.fullmatch(r"pg/backups/([^/]+)/.+", k)
    if m and m.group(1) not in cat:
        newest[m.group(1)] = max(newest.get(m.group(1), 0), float(mt[k]))
wal_left = set()
walre = r"pg/wal/([0-9A-F]{16})/(\1[0-9A-F]{8})(\.partial|\.[0-9A-F]{8}\.backup)?"
for k in keys:
    m = re.fullmatch(walre, k)
    if m and segno(m.group(2)) >= floor:
        wal_left.add(int(m.group(1)[:8], 16))
for k in keys:
    if k == "pg/cluster.json":
        continue
    m = re.fullmatch(r"pg/catalog/(.+)\.json", k)
    if m and m.group(1) in cat:
        if m.group(1) not in kept_ids:
            out[0].append(k)
        continue
    m = re.fullmatch(r"pg/backups/([^/]+)/(base\.tar|backup_manifest|\d+\.tar)", k)
    if m and m.group(1) in cat:
        if m.group(1) not in kept_ids:
            out[1].append(k)
        continue
    m = re.fullmatch(r"pg/backups/([^/]+)/.+", k)
    if m and m.group(1) not in cat:
        if newest[m.group(1)] <= time.time() - grace:
            out[2].append(k)
        continue
    m = re.fullmatch(walre, k)
    if m:
        if segno(m.group(2)) < floor:
            out[4].append(k)
        continue
    m = re.fullmatch(r"pg/wal/history/([0-9A-F]{8})\.history", k)
    if m:
        t = int(m.group(1), 16)
        if t < min_tli and t not in wal_left:
            out[5].append(k)
        continue
    out[3].append(k)
for i in range(6):
    for k in sorted(out[i]):
        print(k)
PY
}
