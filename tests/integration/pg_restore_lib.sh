# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# Helpers of the ferry-restore tests (pg_restore*.sh): sourced after lib.sh, tests/harness/pg.sh
# and pg_basebackup_lib.sh.

RESTORE="${FERRY_RESTORE:-$BUILD/restore/ferry-restore}"
[ -x "$RESTORE" ] || bail "ferry-restore is built" "$RESTORE is missing"

# rs ARGS...: ferry-restore as root (it chowns to the data directory's owner); stdout in $OUT,
# stderr in $ERR, status in $RC
rs() {
    timeout -k 5 "$CMD_TIMEOUT" "$RESTORE" "$@" >"$OUT" 2>"$ERR" </dev/null
    RC=$?
    LAST_CMD="ferry-restore $*"
}

# expect_rs_error SUBSTRING DESC: exit 1, one line "ferry-restore: error: ...", stdout empty
expect_rs_error() {
    local want="$1" desc="$2" lines first why=""
    lines=$(wc -l <"$ERR")
    first=$(head -n 1 "$ERR")
    [ "$RC" = 1 ] || why="exit status $RC, want 1"
    [ -z "$why" ] && [ "$lines" != 1 ] && why="stderr has $lines lines, want exactly one"
    [ -z "$why" ] && [[ "$first" != "ferry-restore: error: "* ]] && why="stderr does not start with 'ferry-restore: error: '"
    [ -z "$why" ] && [[ "$first" != *"$want"* ]] && why="stderr lacks \"$want\""
    if [ -z "$why" ]; then pass "$desc"; else fail "$desc" "$why" "$(_show_io)"; fi
}

# pgdir NAME: an empty directory for a data directory, made by the operator for postgres
# (owned by postgres, 0700); prints its path
pgdir() {
    rm -rf "${PGT:?}/$1"
    mkdir -p "$PGT/$1"
    chown postgres: "$PGT/$1"
    chmod 700 "$PGT/$1"
    echo "$PGT/$1"
}

# rs_adopt DIR: a restored data directory becomes a test cluster (own port, stopped at exit)
rs_adopt() {
    _pg_adopt "$1"
    pg_conf "$1" "unix_socket_directories = '$PGT/sock'"
}

# tree_owners DIR: the owners of everything below DIR that is not postgres (empty = all postgres)
tree_owners() { find "$1" ! -user postgres -printf '%u %p\n' 2>/dev/null | head -5; }
# tree_modes DIR: files not 0600 and directories not 0700 below DIR (empty = all right)
tree_modes() {
    find "$1" \( -type f ! -perm 600 \) -o \( -type d ! -perm 700 \) 2>/dev/null | head -5
}

# crafted_backup REPO_DIR ID SPEC: a fake backup in the file:// repository REPO_DIR (pg/ only):
# a base.tar built by python's tarfile from SPEC (see tests/integration/pg_restore_craft.py),
# a valid manifest for its files, a catalogue entry; stored with `ferry repo put`
crafted_backup() {
    local repo="$1" id="$2" spec="$3" d="$T/craft-$2" f
    rm -rf "$d"
    mkdir -p "$d"
    python3 "$(dirname "${BASH_SOURCE[0]}")/pg_restore_craft.py" "$d" "$id" "$spec" >"$d.log" 2>&1 || return 1
    for f in base.tar backup_manifest; do
        timeout 60 "$FERRY" repo --config /dev/null --repo "file://$repo" put "pg/backups/$id/$f" "$d/$f" \
            >>"$d.log" 2>&1 || return 1
    done
    timeout 60 "$FERRY" repo --config /dev/null --repo "file://$repo" put "pg/catalog/$id.json" "$d/entry.json" \
        >>"$d.log" 2>&1
}
