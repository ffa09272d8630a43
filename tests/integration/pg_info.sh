#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# ferry info on a real repository (PostgreSQL 15, file://, 1 MiB segments) built by the suite's
# own programs: backups B1-B3 on timeline 1, B4 on timeline 2 (a copy restored from B3 and
# promoted), an old and a fresh incomplete backup, two orphans (pg_expire_lib.sh). The table
# and --json show the cluster, the four complete and two incomplete backups in order with
# their catalogue values, both timelines with first/last segment and count as the listing has
# them, stored sizes as the directory has them, and the recovery point ages (newest backup by
# its catalogue stop time, newest WAL by object mtime: made 2 hours old with touch). The
# Prometheus file (written in the same run) parses as the textfile format, agrees with the
# JSON, is replaced atomically and left alone when it cannot be written. A deleted segment
# shows as a gap.
. "$(dirname "$0")/lib.sh"
. "$HARNESS/pg.sh"
. "$(dirname "$0")/pg_basebackup_lib.sh"
. "$(dirname "$0")/pg_restore_lib.sh"
. "$(dirname "$0")/pg_expire_lib.sh"

mkdir -p "$PGT/repo" "$PGT/prom"
chown postgres: "$PGT/repo" "$PGT/prom"
CFG="$PGT/ferry.conf"
ferry_cfg "$CFG" "repo = file://$PGT/repo"
T0=$(now)
build_repo "$CFG"
diag "repository built in $(elapsed "$T0") s"

# facts from the repository directory itself
seg_list() { (cd "$PGT/repo" && find "pg/wal/0000000${1}00000000" -type f -regextype posix-extended -regex '.*/[0-9A-F]{24}' -printf '%f\n' | sort); }
# pg_controldata_sysid DIR: the system identifier of a (stopped) data directory
pg_controldata_sysid() { "$PGCLIENT/pg_controldata" "$1" | sed -n 's/^Database system identifier: *//p'; }
SYSID=$(pg_controldata_sysid "$P")
dir_bytes() { (cd "$PGT/repo" && find "$1" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }'); }

section "the table"
fr info --config "$CFG"
expect_ok "ferry info"
cp "$OUT" "$T/table"
expect_contains "$(cat "$T/table")" "cluster     system identifier $SYSID, PostgreSQL 15, WAL segments of 1.0 MiB" "the cluster line"
expect_contains "$(cat "$T/table")" "backups: 4 complete, 2 incomplete (oldest first)" "4 complete, 2 incomplete"
got=$(awk '$2 == "complete" || $2 == "incomplete" { print $1, $2, $3 }' "$T/table" | tr '\n' ',')
expect_eq "$got" "$B1 complete 1,$B2 complete 1,$B3 complete 1,$B4 complete 2,$OLD_INC incomplete -,$NEW_INC incomplete -," \
    "backups in order: B1-B3 on timeline 1, B4 on timeline 2, then the incomplete ones"
expect_contains "$(grep "^$B4 " "$T/table")" " b4" "B4's row has its label"
tl1=$(seg_list 1)
tl2=$(seg_list 2)
expect_contains "$(cat "$T/table")" "  1  $(head -1 <<<"$tl1")  $(tail -1 <<<"$tl1")  $(printf '%8s' "$(wc -l <<<"$tl1")")     0" \
    "timeline 1: first, last segment and count as in the directory, no gap"
expect_eq "$(grep -c "^  2  $(head -1 <<<"$tl2")  $(tail -1 <<<"$tl2")  .* yes\$" "$T/table")" 1 \
    "timeline 2: first, last, and its history file"
expect_contains "$(cat "$T/table")" "  newest backup  $B4, ended" "the newest backup is B4"

section "--json and --prometheus in one run"
PROM="$PGT/prom/ferry.prom"
fr info --config "$CFG" --json --prometheus "$PROM"
expect_ok "ferry info --json --prometheus"
cp "$OUT" "$T/info.json"
J="$T/info.json"
expect_eq "$(jget "$J" 'j["cluster"]["system_identifier"]')" "$SYSID" "cluster: system identifier"
expect_eq "$(jget "$J" 'j["cluster"]["pg_version"]')" 15 "cluster: version 15"
expect_eq "$(jget "$J" 'j["cluster"]["wal_segment_size"]')" 1048576 "cluster: 1 MiB segments"
expect_eq "$(jget "$J" '" ".join(b["id"] + ":" + b["status"] for b in j["backups"])')" \
    "$B1:complete $B2:complete $B3:complete $B4:complete $OLD_INC:incomplete $NEW_INC:incomplete" "backups: ids and status"
expect_eq "$(jget "$J" '[b["timeline"] for b in j["backups"][:4]]')" "[1, 1, 1, 2]" "backups: timelines"
ok=""
for id in "$B1" "$B2" "$B3" "$B4"; do
    for f in start_lsn stop_lsn start_time stop_time start_wal stop_wal label size stored_size; do
        a=$(entry_field "$CFG" "$id" "j[\"$f\"]")
        b=$(jget "$J" "[b for b in j['backups'] if b['id'] == '$id'][0]['$f']")
        [ "$a" = "$b" ] || ok="$ok $id.$f($b != $a)"
    done
done
expect_eq "$ok" "" "every backup's LSNs, times, WAL names, label and sizes are the catalogue's"
expect_eq "$(jget "$J" '[b["objects"] for b in j["backups"][4:]]')" "[2, 1]" "incomplete backups: object counts"
expect_eq "$(jget "$J" '[t["timeline"] for t in j["wal"]["timelines"]]')" "[1, 2]" "WAL: timelines 1 and 2"
expect_eq "$(jget "$J" '"%s %s %d %s" % tuple(j["wal"]["timelines"][0][k] for k in ("first", "last", "segments", "gaps"))')" \
    "$(head -1 <<<"$tl1") $(tail -1 <<<"$tl1") $(wc -l <<<"$tl1") []" "timeline 1: first, last, count, no gaps"
expect_eq "$(jget "$J" '"%s %s %d %s" % tuple(j["wal"]["timelines"][1][k] for k in ("first", "last", "segments", "history"))')" \
    "$(head -1 <<<"$tl2") $(tail -1 <<<"$tl2") $(wc -l <<<"$tl2") True" "timeline 2: first, last, count, history"
expect_eq "$(jget "$J" 'j["stored"]["total"]')" "$(dir_bytes pg)" "stored total = the bytes of every file under pg/"
expect_eq "$(jget "$J" 'j["stored"]["wal"]')" "$(dir_bytes pg/wal)" "stored WAL = the bytes under pg/wal/"
expect_eq "$(jget "$J" 'j["stored"]["objects"]')" "$(cd "$PGT/repo" && find pg -type f | wc -l)" "object count"
stop4=$(date -u -d "$(entry_field "$CFG" "$B4" 'j["stop_time"]')" +%s)
expect_eq "$(jget "$J" 'j["recovery_point"]["backup_last_id"]')" "$B4" "recovery point: newest backup B4"
expect_eq "$(jget "$J" 'j["recovery_point"]["backup_last_age_seconds"]')" \
    "$(($(date -u -d "$(jget "$J" 'j["time"]')" +%s) - stop4))" "its age = the run's time - B4's catalogue stop time"
newest=$(cd "$PGT/repo" && find pg/wal -type f -regextype posix-extended -regex '.*/[0-9A-F]{24}(\.partial)?' -printf '%T@ %f\n' | sort -n | tail -1)
expect_eq "$(jget "$J" 'j["recovery_point"]["wal_last"]')" "${newest#* }" "newest WAL: the segment with the newest mtime"
age=$(jget "$J" 'j["recovery_point"]["wal_last_age_seconds"]')
expect_le "$age" 60 "newest WAL age is fresh ($age s)"

section "the Prometheus file"
python3 - "$PROM" "$J" >"$T/promcheck" 2>&1 <<'PY'
import json, re, sys
text = open(sys.argv[1]).read()
j = json.load(open(sys.argv[2]))
fams, errs, cur, vals = {}, [], None, {}
assert text.endswith("\n"), "no final newline"
for n, line in enumerate(text.split("\n")[:-1], 1):
    m = re.fullmatch(r"# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)", line)
    if m:
        if m.group(1) in fams: errs.append("line %d: family %s twice" % (n, m.group(1)))
        fams[m.group(1)] = {"help": True}; cur = m.group(1); continue
    m = re.fullmatch(r"# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (gauge|counter|untyped)", line)
    if m:
        if m.group(1) != cur or "type" in fams[cur]: errs.append("line %d: TYPE out of place" % n)
        fams[cur]["type"] = m.group(2); continue
    m = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)\{repo="((?:[^"\\\n]|\\["\\n])*)"\} (-?[0-9]+(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?)', line)
    if not m: errs.append("line %d: not a sample: %r" % (n, line)); continue
    if m.group(1) != cur or "type" not in fams[cur]: errs.append("line %d: sample without HELP/TYPE" % n)
    if m.group(2) != j["repository"]: errs.append("line %d: repo label %r" % (n, m.group(2)))
    vals[m.group(1)] = float(m.group(3))
want = {
    "ferry_backup_count": 4, "ferry_backup_incomplete_count": 2,
    "ferry_backup_last_age_seconds": j["recovery_point"]["backup_last_age_seconds"],
    "ferry_wal_last_age_seconds": j["recovery_point"]["wal_last_age_seconds"],
    "ferry_repo_stored_bytes": j["stored"]["total"], "ferry_wal_stored_bytes": j["wal"]["stored_size"],
    "ferry_wal_gap_count": 0, "ferry_repo_object_count": j["stored"]["objects"],
    "ferry_backup_stored_bytes": sum(b["stored_size"] for b in j["backups"][:4]),
    "ferry_wal_segment_count": sum(t["segments"] for t in j["wal"]["timelines"]),
}
for k, v in want.items():
    if vals.get(k) != v: errs.append("%s = %s, want %s" % (k, vals.get(k), v))
for k in ("ferry_backup_last_timestamp_seconds", "ferry_wal_last_timestamp_seconds", "ferry_info_timestamp_seconds",
          "ferry_backup_last_size_bytes", "ferry_backup_last_stored_bytes", "ferry_backup_last_duration_seconds"):
    if k not in vals: errs.append("%s missing" % k)
print("\n".join(errs) if errs else "ok %d families" % len(fams))
PY
expect_eq "$(cat "$T/promcheck")" "ok 16 families" "it parses: HELP and TYPE before each sample, one repo label, values equal the JSON's"
expect_eq "$(stat -c %a "$PROM")" 644 "mode 0644 (node_exporter reads it)"
expect_eq "$(ls -A "$PGT/prom")" "ferry.prom" "no temporary file left beside it"
cp "$PROM" "$T/prom1"
sleep 1.1
fr info --config "$CFG" --prometheus "$PROM"
expect_ok "a second run replaces it"
expect_eq "$(grep -c '^ferry_info_timestamp_seconds' "$PROM")" 1 "one sample per metric"
[ "$(grep '^ferry_info_timestamp_seconds' "$PROM")" != "$(grep '^ferry_info_timestamp_seconds' "$T/prom1")" ] &&
    pass "with a newer timestamp" || fail "with a newer timestamp" "$(cat "$PROM")"
chmod 500 "$PGT/prom"
cp "$PROM" "$T/prom2"
fr info --config "$CFG" --prometheus "$PROM"
chmod 700 "$PGT/prom"
expect_ne_rc=$RC
[ "$expect_ne_rc" = 1 ] && pass "an unwritable directory: exit 1" || fail "an unwritable directory: exit 1" "$(_show_io)"
expect_contains "$(cat "$ERR")" "ferry info: error: could not write \"$PROM\"" "naming the file"
expect_same_file "$PROM" "$T/prom2" "the old file is intact"

section "ages from object mtimes and the catalogue"
(cd "$PGT/repo" && find pg/wal -type f -exec touch -d '2 hours ago' {} +)
fr info --config "$CFG" --json
age=$(jget "$OUT" 'j["recovery_point"]["wal_last_age_seconds"]')
expect_ge "$age" 7200 "WAL stored 2 hours ago: age >= 7200 ($age)"
expect_le "$age" 7260 "and < 7260"
fr info --config "$CFG"
expect_contains "$(cat "$OUT")" "archived" "the table says when the newest WAL was archived"
expect_contains "$(grep 'newest WAL' "$OUT")" "(2 h 0 min ago)" "2 h 0 min ago"

section "a deleted segment is a gap"
mid=$(sed -n 5p <<<"$tl1")
run_pg "$FERRY" repo --config "$CFG" rm "$(wal_key "$mid")"
fr info --config "$CFG" --json
expect_eq "$(jget "$OUT" '[(g["first_missing"], g["last_missing"], g["segments"]) for g in j["wal"]["timelines"][0]["gaps"]]')" \
    "[('$mid', '$mid', 1)]" "timeline 1 has a one-segment gap at $mid"
expect_eq "$(jget "$OUT" 'j["wal"]["gaps"]')" 1 "one gap in all"
fr info --config "$CFG"
expect_contains "$(cat "$OUT")" "gap: timeline 1 misses $mid to $mid (1 segment)" "the table names it"

section "usage"
fr info --config "$CFG" extra
expect_cmd_error info 2 'unexpected argument "extra"' "an argument is refused"
fr info --repo "file://$PGT/nowhere"
expect_cmd_error info 1 "does not exist" "a missing repository: exit 1, one line"

diag "total $(elapsed "$T0") s"
done_testing
