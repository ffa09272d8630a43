# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# Helpers of the ferry-verify tests (pg_verify*.sh): sourced after lib.sh, tests/harness/pg.sh,
# pg_basebackup_lib.sh and pg_restore_lib.sh.

VERIFY="${FERRY_VERIFY:-$BUILD/verify/ferry-verify}"
[ -x "$VERIFY" ] || bail "ferry-verify is built" "$VERIFY is missing"

# vf ARGS...: ferry-verify (as root: it only reads); stdout in $OUT, stderr in $ERR, status in $RC
vf() {
    LAST_CMD="ferry-verify $*"
    timeout -k 5 "$CMD_TIMEOUT" "$VERIFY" "$@" >"$OUT" 2>"$ERR" </dev/null
    RC=$?
}

# vf_summary: the last line of the text report
vf_summary() { tail -n 1 "$OUT"; }
# vf_problems: the problem lines of the text report (all but the summary)
vf_problems() { sed '$d' "$OUT"; }
# vf_json EXPR: a value of the JSON report in $OUT (python expression on `j`)
vf_json() { jget "$OUT" "$1"; }

# expect_vf RC DESC: exit status RC, stderr empty
expect_vf() {
    local why=""
    [ "$RC" = "$1" ] || why="exit status $RC, want $1"
    [ -z "$why" ] && [ -s "$ERR" ] && why="stderr is not empty"
    if [ -z "$why" ]; then pass "$2"; else fail "$2" "$why" "$(_show_io)"; fi
}

# expect_problem LINE DESC: the text report has exactly this problem line
expect_problem() {
    if vf_problems | grep -qxF -- "$1"; then pass "$2"; else fail "$2" "no line: $1" "$(_show_io)"; fi
}

# expect_vf_error RC SUBSTRING DESC: exit RC, one line "ferry-verify: error: ..." on stderr
expect_vf_error() {
    local want_rc="$1" want="$2" desc="$3" lines first why=""
    lines=$(wc -l <"$ERR")
    first=$(head -n 1 "$ERR")
    [ "$RC" = "$want_rc" ] || why="exit status $RC, want $want_rc"
    [ -z "$why" ] && [ "$lines" != 1 ] && why="stderr has $lines lines, want exactly one"
    [ -z "$why" ] && [[ "$first" != "ferry-verify: error: "* ]] && why="stderr does not start with 'ferry-verify: error: '"
    [ -z "$why" ] && [[ "$first" != *"$want"* ]] && why="stderr lacks \"$want\""
    if [ -z "$why" ]; then pass "$desc"; else fail "$desc" "$why" "$(_show_io)"; fi
}

# vf_copy NAME: a copy of the repository $PGT/repo to damage; sets BAD (its URL) and BADDIR
vf_copy() {
    rm -rf "${PGT:?}/$1"
    cp -a "$PGT/repo" "$PGT/$1"
    BADDIR="$PGT/$1"
    BAD="file://$PGT/$1"
}

# flip_byte FILE [OFFSET]: invert one byte (default: the middle)
flip_byte() {
    python3 -c '
import os, sys
f, off = sys.argv[1], sys.argv[2]
off = int(off) if off else os.path.getsize(f) // 2
with open(f, "r+b") as h:
    h.seek(off)
    b = h.read(1)
    h.seek(off)
    h.write(bytes([b[0] ^ 0xFF]))' "$1" "${2:-}"
}

# vf_primary: a PostgreSQL 15 primary with 1 MiB WAL segments archiving into $PGT/repo through
# ferry-wal-push, pgbench -i -s 2; sets P and CFG
vf_primary() {
    mkdir -p "$PGT/repo"
    chown postgres: "$PGT/repo"
    CFG="$PGT/ferry.conf"
    ferry_cfg "$CFG" "repo = file://$PGT/repo"
    pg_new primary --wal-segsize=1
    P="$PGD"
    pg_archive_to "$P" "$CFG"
    pg_start "$P" || bail "the primary starts" "$(tail -5 "$P.log")"
    pg_bench_init "$P" 2 || bail "pgbench -i -s 2" "$(tail -5 "$P.pgbench-init.log")"
    pg_marker_table "$P"
}

# vf_backup DIR: ferry-basebackup of the cluster DIR; sets BID (its entry is in $T/BID.json)
vf_backup() {
    bb "$CFG" "$1" -c fast --json
    [ "$RC" = 0 ] || bail "ferry-basebackup" "$(_show_io)"
    BID=$(jget "$OUT" 'j["id"]')
    cp "$OUT" "$T/$BID.json"
}

# vf_switch DIR: complete the current segment and wait until it is archived; sets SEG (its name)
vf_switch() {
    SEG=$(pg_switch "$1")
    pg_wait_archived "$1" "$SEG" 60 || bail "$SEG is archived" "$(tail -5 "$1.log")"
}

# wal_count REPO_DIR: the number of WAL objects (segments, partials, backup and history files)
wal_count() { find "$1/pg/wal" -type f ! -name '.*' | wc -l; }

# vf_replace_part REPO_DIR ID NAME FILE: store FILE as part NAME of backup ID (ferry repo put)
# and update the catalogue entry to match (size, sha256, stored size): damage only the checks
# inside the part can see. The original entry is $T/ID.json.
vf_replace_part() {
    local dir="$1" id="$2" name="$3" file="$4"
    timeout 60 "$FERRY" repo --repo "file://$dir" put --force "pg/backups/$id/$name" "$file" >/dev/null 2>&1 || return 1
    python3 - "$T/$id.json" "$name" "$(sha "$file")" "$(stat -c %s "$file")" \
        "$(stat -c %s "$dir/pg/backups/$id/$name")" >"$T/entry-$id.json" <<'PY' || return 1
import json, sys
e = json.load(open(sys.argv[1]))
for p in e["parts"]:
    if p["name"] == sys.argv[2]:
        p["sha256"], p["size"], p["stored_size"] = sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
print(json.dumps(e))
PY
    timeout 60 "$FERRY" repo --repo "file://$dir" put --force "pg/catalog/$id.json" "$T/entry-$id.json" >/dev/null 2>&1
}
