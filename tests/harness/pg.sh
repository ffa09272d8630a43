# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# PostgreSQL helpers for the integration tests: sourced after tests/integration/lib.sh.
#
# Clusters run as the `postgres` user (PostgreSQL refuses root), listen on 127.0.0.1 on a
# free port, keep their sockets, data and logs under $T/pg (owned by postgres), and are
# stopped (immediate) when the test exits, even on failure. A cluster is named by its data
# directory; its port is in DIR.port and its log in DIR.log.
#
# Environment (tests/integration/meson.build):
#   FERRY_WAL_PUSH, FERRY_WAL_FETCH   the built ferry-wal-push and ferry-wal-fetch
#   PGBIN                             server binaries for pg_new (default PostgreSQL 15;
#                                     tests/harness/pg17.sh gives PostgreSQL 17's)
# Client tools (psql, pgbench, pg_basebackup) are always Debian's PostgreSQL 15 ($PGCLIENT).

PG15_BIN=/usr/lib/postgresql/15/bin
PGBIN="${PGBIN:-$PG15_BIN}"
PGCLIENT="$PG15_BIN"
WAL_PUSH="${FERRY_WAL_PUSH:-$BUILD/wal-push/ferry-wal-push}"
WAL_FETCH="${FERRY_WAL_FETCH:-$BUILD/wal-fetch/ferry-wal-fetch}"
PGT="$T/pg"
PG_TIMEOUT="${PG_TIMEOUT:-120}"

[ -x "$WAL_PUSH" ] || bail "ferry-wal-push is built" "$WAL_PUSH is missing"
[ -x "$WAL_FETCH" ] || bail "ferry-wal-fetch is built" "$WAL_FETCH is missing"
[ -x "$PG15_BIN/postgres" ] || bail "PostgreSQL 15 is installed" "$PG15_BIN/postgres is missing (tools/deps installs postgresql-15)"
id postgres >/dev/null 2>&1 || bail "the postgres user exists" "no user postgres (the postgresql-15 package creates it)"

mkdir -p "$PGT/sock"
chown postgres: "$PGT" "$PGT/sock"

# asu CMD...: run as postgres, from $PGT
asu() { (cd "$PGT" && runuser -u postgres -- "$@"); }

_pg_clusters=()
# _pg_kill_strays: postmasters whose data dir is in this test's scratch dir (left by a run
# that was killed, e.g. by meson's timeout) get an immediate shutdown (SIGQUIT), and ferry
# processes naming it (prefetchers) are killed: only processes of this test, by pid
_pg_kill_strays() {
    local p cmd
    for p in /proc/[0-9]*; do
        { cmd=$(tr '\0' ' ' <"$p/cmdline"); } 2>/dev/null || continue
        case "$cmd" in
        */postgres\ -D\ "$PGT/"*) kill -QUIT "${p#/proc/}" 2>/dev/null ;;
        *ferry-wal-*"$T/"*) kill -9 "${p#/proc/}" 2>/dev/null ;;
        esac
    done
}
# stop every cluster this test started, then the strays
_pg_cleanup() {
    local d
    for d in "${_pg_clusters[@]}"; do
        [ -f "$d/postmaster.pid" ] && runuser -u postgres -- "$(cat "$d.bin")/pg_ctl" -D "$d" -m immediate -w -t 30 stop >/dev/null 2>&1
    done
    _pg_kill_strays
}
_pg_kill_strays
on_exit _pg_cleanup

# ferry_cfg FILE LINE...: a ferry config file (name = value lines), mode 0600, owned by postgres
ferry_cfg() {
    local f="$1"
    shift
    printf '%s\n' "$@" >"$f"
    chmod 600 "$f"
    chown postgres: "$f"
}

# pg_port DIR / pg_log DIR
pg_port() { cat "$1.port"; }
pg_log() { cat "$1.log" 2>/dev/null; }

# pg_conf DIR LINE...: append settings to DIR/postgresql.conf (later lines win)
pg_conf() {
    local d="$1"
    shift
    printf '%s\n' "$@" >>"$d/postgresql.conf"
}

# _pg_adopt DIR: a data dir this test owns: a new port, stopped at exit
_pg_adopt() {
    local d="$1"
    free_port >"$d.port"
    echo "$PGBIN" >"$d.bin"
    chown postgres: "$d.port" "$d.bin"
    _pg_clusters+=("$d")
    pg_conf "$d" "" "# ferry tests" "port = $(pg_port "$d")"
}

# pg_new NAME [INITDB ARGS...]: initdb $PGT/NAME (as postgres) and configure it for the tests;
# prints nothing, sets PGD to the data dir
pg_new() {
    local name="$1"
    shift
    PGD="$PGT/$name"
    if ! asu "$PGBIN/initdb" -D "$PGD" -U postgres --auth=trust -E UTF8 --locale=C "$@" >"$PGD.initdb.log" 2>&1; then
        bail "initdb $name" "$(tail -5 "$PGD.initdb.log")"
    fi
    _pg_adopt "$PGD"
    pg_conf "$PGD" \
        "listen_addresses = '127.0.0.1'" \
        "unix_socket_directories = '$PGT/sock'" \
        "wal_level = replica" \
        "max_wal_senders = 4" \
        "track_commit_timestamp = on" \
        "fsync = off" \
        "wal_retrieve_retry_interval = 1s" \
        "log_line_prefix = '%m [%p] '" \
        "max_wal_size = 1GB" \
        "checkpoint_timeout = 30min"
}

# pg_archive_to DIR CONFIG: archive with ferry-wal-push --config CONFIG
pg_archive_to() {
    pg_conf "$1" "archive_mode = on" "archive_command = '$WAL_PUSH --config $2 %p'"
}

# pg_start DIR: start (waits until it accepts connections); 0 or 1
pg_start() {
    local d="$1"
    asu "$(cat "$d.bin")/pg_ctl" -D "$d" -l "$d.log" -w -t "$PG_TIMEOUT" start >"$d.ctl.log" 2>&1
}

# pg_stop DIR [MODE]: stop (fast by default)
pg_stop() {
    local d="$1"
    [ -f "$d/postmaster.pid" ] || return 0
    asu "$(cat "$d.bin")/pg_ctl" -D "$d" -m "${2:-fast}" -w -t "$PG_TIMEOUT" stop >>"$d.ctl.log" 2>&1
}

# pg_running DIR: the postmaster is alive
pg_running() {
    [ -f "$1/postmaster.pid" ] && kill -0 "$(head -1 "$1/postmaster.pid")" 2>/dev/null
}

# pg_sql DIR SQL: psql -qAt as postgres over TCP; output on stdout, 0 or not
pg_sql() {
    timeout -k 5 60 "$PGCLIENT/psql" -X -qAt -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$(pg_port "$1")" \
        -U postgres -d postgres -c "$2" 2>&1
}

# pg_wait_sql DIR SQL WANT SECONDS: poll until SQL prints WANT; 0 when it did
pg_wait_sql() {
    local d="$1" sql="$2" want="$3" secs="${4:-60}" i got
    for ((i = 0; i < secs * 5; i++)); do
        got=$(pg_sql "$d" "$sql" 2>/dev/null)
        [ "$got" = "$want" ] && return 0
        sleep 0.2
    done
    return 1
}

# pg_switch DIR: pg_switch_wal(); prints the name of the segment it completed
pg_switch() { pg_sql "$1" "select pg_walfile_name(pg_switch_wal())"; }

# pg_archived DIR NAME: PostgreSQL marked NAME .done (or it is gone: recycled after archiving)
pg_archived() {
    local s="$1/pg_wal/archive_status"
    [ ! -e "$s/$2.ready" ] && { [ -e "$s/$2.done" ] || [ ! -e "$1/pg_wal/$2" ]; }
}

# pg_wait_archived DIR NAME [SECONDS]: wait until NAME is archived; 0 when it is
pg_wait_archived() {
    local i
    for ((i = 0; i < ${3:-60} * 5; i++)); do
        pg_archived "$1" "$2" && return 0
        sleep 0.2
    done
    return 1
}

# pg_wait_no_ready DIR [SECONDS]: wait until no .ready file is left
pg_wait_no_ready() {
    local i
    for ((i = 0; i < ${2:-60} * 5; i++)); do
        ls "$1/pg_wal/archive_status" | grep -q '\.ready$' || return 0
        sleep 0.2
    done
    return 1
}

# pg_wait_promoted DIR [SECONDS]: wait until recovery ended (pg_is_in_recovery() false)
pg_wait_promoted() { pg_wait_sql "$1" "select pg_is_in_recovery()" f "${2:-$PG_TIMEOUT}"; }

# pg_basebackup_to SRC DEST: pg_basebackup -X none -c fast of SRC into DEST (as postgres); it
# waits until the backup's WAL is archived: bounded by PG_TIMEOUT
pg_basebackup_to() {
    asu timeout -k 5 "$PG_TIMEOUT" "$PGCLIENT/pg_basebackup" -h 127.0.0.1 -p "$(pg_port "$1")" -U postgres -D "$2" -X none -c fast \
        >"$2.log" 2>&1
}

# pg_copy BACKUP NAME: a copy of a base backup (or a stopped data dir) as a new cluster; sets PGD
pg_copy() {
    PGD="$PGT/$2"
    rm -rf "$PGD"
    cp -a "$1" "$PGD"
    chown -R postgres: "$PGD"
    chmod 700 "$PGD"
    rm -f "$PGD/postmaster.pid" "$PGD/postmaster.opts"
    _pg_adopt "$PGD"
}

# pg_recover DIR CONFIG [LINE...]: archive recovery from ferry-wal-fetch --config CONFIG:
# recovery.signal, restore_command, no archiving, promote at the target; extra settings after
pg_recover() {
    local d="$1" cfg="$2"
    shift 2
    pg_conf "$d" "archive_mode = off" "restore_command = '$WAL_FETCH --config $cfg %f %p'" \
        "recovery_target_action = 'promote'" "$@"
    runuser -u postgres -- touch "$d/recovery.signal"
}

# ---------------------------------------------------------------------------------------
# rows with known commit times

# pg_marker_table DIR: CREATE TABLE marker
pg_marker_table() { pg_sql "$1" "create table marker (id int primary key, note text not null)" >/dev/null; }

# pg_marker DIR ID NOTE: insert one row in its own transaction, then wait 0.3 s so that commit
# times are well apart
pg_marker() {
    pg_sql "$1" "insert into marker values ($2, '$3')" >/dev/null || return 1
    sleep 0.3
}

# pg_between DIR ID_A ID_B: a timestamp (UTC) halfway between the commits of rows A and B
pg_between() {
    pg_sql "$1" "set timezone = 'UTC'; select a + (b - a) / 2 from
        (select pg_xact_commit_timestamp(xmin) a from marker where id = $2) x,
        (select pg_xact_commit_timestamp(xmin) b from marker where id = $3) y"
}

# pg_markers DIR: the marker rows, "id:note" comma-separated in id order
pg_markers() { pg_sql "$1" "select coalesce(string_agg(id || ':' || note, ',' order by id), '') from marker"; }

# pg_state DIR: one line that changes with any committed pgbench or marker row: counts and sums
pg_state() {
    pg_sql "$1" "select (select count(*) || '/' || sum(abalance) from pgbench_accounts) || ' ' ||
        (select count(*) || '/' || coalesce(sum(delta), 0) || '/' || coalesce(md5(string_agg(tid || ',' || bid || ',' || aid || ',' || delta || ',' || mtime, ';' order by mtime, tid, aid, delta)), '') from pgbench_history) || ' ' ||
        (select sum(tbalance) from pgbench_tellers) || ' ' || (select sum(bbalance) from pgbench_branches) || ' ' ||
        (select count(*) || '/' || coalesce(md5(string_agg(id || ':' || note, ',' order by id)), '') from marker)"
}

# pg_bench_load DIR SECONDS: pgbench -T SECONDS -R 200 with 2 clients (rate-limited load)
pg_bench_load() {
    timeout -k 5 $(($2 + 60)) "$PGCLIENT/pgbench" -h 127.0.0.1 -p "$(pg_port "$1")" -U postgres \
        -c 2 -j 2 -T "$2" -R 200 -n postgres >"$1.pgbench.log" 2>&1
}

# pg_bench_init DIR [SCALE]
pg_bench_init() {
    timeout -k 5 300 "$PGCLIENT/pgbench" -h 127.0.0.1 -p "$(pg_port "$1")" -U postgres -i -q \
        -s "${2:-1}" postgres >"$1.pgbench-init.log" 2>&1
}

# ---------------------------------------------------------------------------------------
# WAL names

# seg_name TLI SEGNO SEGSIZE: the file name of segment SEGNO
seg_name() {
    local per=$((0x100000000 / $3))
    printf '%08X%08X%08X' "$1" $(($2 / per)) $(($2 % per))
}
# seg_no NAME SEGSIZE: the segment number in a segment file name
seg_no() {
    local per=$((0x100000000 / $2))
    echo $((16#${1:8:8} * per + 16#${1:16:8}))
}

# wal_key NAME: the repository key of a WAL file (common/archive/archive.h)
wal_key() {
    case "$1" in
    *.history) echo "pg/wal/history/$1" ;;
    *) echo "pg/wal/${1:0:16}/$1" ;;
    esac
}

# repo_ls CONFIG PREFIX: the keys under PREFIX, one a line (ferry repo ls)
repo_ls() { timeout -k 5 60 "$FERRY" repo --config "$1" ls "$2" 2>&1; }

# run_pg CMD...: run as postgres, stdout in $OUT, stderr in $ERR, status in $RC
run_pg() { run_pg_in "$PGT" "$@"; }

# run_pg_in DIR CMD...: the same, with DIR as the working directory
run_pg_in() {
    local dir="$1"
    shift
    (cd "$dir" && timeout -k 5 "$CMD_TIMEOUT" runuser -u postgres -- "$@") >"$OUT" 2>"$ERR" </dev/null
    RC=$?
    LAST_CMD="$*"
}

# expect_tool_error RC SUBSTRING DESC: exit status RC, stderr is one line
# "<tool>: error: ..." containing SUBSTRING (for ferry-wal-push / ferry-wal-fetch)
expect_tool_error() {
    local want_rc="$1" want="$2" desc="$3" lines first why=""
    lines=$(wc -l <"$ERR")
    first=$(head -n 1 "$ERR")
    [ "$RC" = "$want_rc" ] || why="exit status $RC, want $want_rc"
    [ -z "$why" ] && [ "$lines" != 1 ] && why="stderr has $lines lines, want exactly one"
    [ -z "$why" ] && [[ "$first" != ferry-wal-*": error: "* ]] && why="stderr does not start with 'ferry-wal-...: error: '"
    [ -z "$why" ] && [[ "$first" != *"$want"* ]] && why="stderr lacks \"$want\""
    if [ -z "$why" ]; then pass "$desc"; else fail "$desc" "$why" "$(_show_io)"; fi
}

# pg_lowlevel_backup SRC DEST: a base backup through pg_backup_start()/pg_backup_stop() in one
# psql session, the data dir copied with tar in between and backup_label written from
# pg_backup_stop's labelfile (for PostgreSQL 17, which Debian's pg_basebackup 15 refuses)
pg_lowlevel_backup() {
    local src="$1" dest="$2"
    mkdir -p "$dest"
    cat >"$dest.sql" <<SQL
\set ON_ERROR_STOP 1
select pg_backup_start('ferry-test', true);
\! tar -C '$src' --exclude='./pg_wal/*' --exclude=./postmaster.pid --exclude=./postmaster.opts --warning=no-file-changed --warning=no-file-removed --ignore-failed-read -cf - . | tar -C '$dest' -xf -
\pset format unaligned
\pset tuples_only on
select labelfile from pg_backup_stop(true) \g '$dest.label'
SQL
    timeout -k 5 300 "$PGCLIENT/psql" -X -q -h 127.0.0.1 -p "$(pg_port "$src")" -U postgres -d postgres \
        -f "$dest.sql" >"$dest.log" 2>&1 || return 1
    grep -q '^START WAL LOCATION' "$dest.label" || return 1
    cp "$dest.label" "$dest/backup_label"
    chown -R postgres: "$dest"
    chmod 700 "$dest"
}

# ---------------------------------------------------------------------------------------
# the archive and PITR round trip (pg_archive_file, pg_archive_s3rver, pg_rgw, pg17)

# pitr_roundtrip CONFIG SEGSIZE_MB [BACKUP_FN]: a primary archiving into the repository of
# CONFIG under pgbench load; a base backup (BACKUP_FN SRC DEST, default pg_basebackup_to);
# marker rows 1-3 before a target time and 4-6 after it; then checks that every archived
# segment is in the repository, a PITR to the target gives exactly rows 1-3, and a recovery
# to the end of the archive gives every committed row. Sets P (the primary, left running),
# LAST (the last segment switched to) and TARGET.
pitr_roundtrip() {
    local cfg="$1" segmb="$2" backup="${3:-pg_basebackup_to}" segsize=$(($2 * 1024 * 1024))
    local done_names repo_names missing n sysid got state i last_no first_no

    section "a primary archiving with ferry-wal-push ($segmb MiB segments)"
    pg_new primary --wal-segsize="$segmb"
    P="$PGD"
    pg_archive_to "$P" "$cfg"
    pg_start "$P" || bail "the primary starts" "$(tail -5 "$P.log")"
    pass "the primary starts with archive_command = ferry-wal-push"
    # segments before this one were written by initdb, before archiving was on
    FIRST=$(pg_sql "$P" "select pg_walfile_name(pg_current_wal_insert_lsn())")
    pg_bench_init "$P" 1 || bail "pgbench -i" "$(tail -5 "$P.pgbench-init.log")"
    pg_marker_table "$P"

    section "base backup ($backup)"
    if "$backup" "$P" "$PGT/base"; then pass "base backup"; else bail "base backup" "$(tail -5 "$PGT/base.log")"; fi

    section "pgbench load, marker rows around a target time"
    pg_bench_load "$P" 4
    expect_eq "$?" 0 "pgbench -T 4 -R 200 runs"
    pg_marker "$P" 1 before-1 && pg_marker "$P" 2 before-2 && pg_marker "$P" 3 before-3 &&
        pg_marker "$P" 4 after-1 && pg_marker "$P" 5 after-2 && pg_marker "$P" 6 after-3
    expect_eq "$(pg_markers "$P")" "1:before-1,2:before-2,3:before-3,4:after-1,5:after-2,6:after-3" \
        "six marker rows committed on the primary"
    TARGET=$(pg_between "$P" 3 4)
    diag "target time $TARGET (between the commits of rows 3 and 4)"
    pg_bench_load "$P" 2
    LAST=$(pg_switch "$P")
    if pg_wait_archived "$P" "$LAST" 90 && pg_wait_no_ready "$P" 30; then
        pass "every segment up to $LAST is archived (.done, no .ready left)"
    else
        fail "every segment up to $LAST is archived" "$(ls "$P/pg_wal/archive_status" | tail -5)" \
            "$(grep -i 'archive\|ferry' "$P.log" | tail -10)"
    fi
    state=$(pg_state "$P")
    PRIMARY_STATE="$state"

    section "the repository has every archived file"
    repo_names=$(repo_ls "$cfg" pg/wal/ | sed 's|.*/||' | sort)
    done_names=$(ls "$P/pg_wal/archive_status" | sed -n 's/\.done$//p' | sort)
    missing=$(comm -23 <(echo "$done_names") <(echo "$repo_names"))
    expect_eq "$missing" "" "every file PostgreSQL marked .done ($(echo "$done_names" | wc -l)) is in the repository"
    last_no=$(seg_no "$LAST" "$segsize")
    first_no=$(seg_no "$FIRST" "$segsize")
    missing=""
    for ((i = first_no; i <= last_no; i++)); do
        n=$(seg_name 1 "$i" "$segsize")
        grep -qx "$n" <<<"$repo_names" || missing="$missing $n"
    done
    expect_eq "$missing" "" "the repository has every segment from $FIRST (current at the first start) to $LAST ($((last_no - first_no + 1)) segments)"
    n=$(grep -c '\.backup$' <<<"$repo_names")
    expect_eq "$n" 1 "and the base backup's .backup file"
    got=$(pg_sql "$P" "select archived_count || ' ' || failed_count from pg_stat_archiver")
    expect_eq "$got" "$(grep -c . <<<"$repo_names") 0" "pg_stat_archiver: archived_count = the files in the repository, failed_count 0"
    sysid=$(pg_sql "$P" "select system_identifier from pg_control_system()")
    got=$(timeout 60 "$FERRY" repo --config "$cfg" get pg/cluster.json - 2>&1)
    expect_contains "$got" "\"system_identifier\": \"$sysid\"" "pg/cluster.json records the primary's system identifier"
    rm -f "$T/seg"
    timeout 60 "$FERRY" repo --config "$cfg" get "$(wal_key "$LAST")" "$T/seg" >/dev/null 2>&1
    expect_same_file "$T/seg" "$P/pg_wal/$LAST" "the stored $LAST decodes to the bytes in pg_wal"

    section "PITR to the target time with ferry-wal-fetch"
    pg_copy "$PGT/base" pitr
    R="$PGD"
    pg_recover "$R" "$cfg" "recovery_target_time = '$TARGET'"
    if pg_start "$R" && pg_wait_promoted "$R"; then
        pass "recovery to $TARGET ends and the server is promoted"
    else
        fail "recovery to $TARGET ends and the server is promoted" "$(tail -15 "$R.log")"
    fi
    expect_eq "$(pg_markers "$R")" "1:before-1,2:before-2,3:before-3" "exactly the rows committed before the target"
    got=$(pg_log "$R")
    expect_contains "$got" "recovery stopping before commit of transaction" "the log says recovery stopped before a commit"
    n=$(grep -c 'restored log file ".*" from archive' <<<"$got")
    expect_ge "$n" 2 "segments were restored from the archive ($n)"
    expect_contains "$(pg_sql "$R" "select pg_walfile_name(pg_current_wal_lsn())")" "00000002" "the restored server is on timeline 2"
    pg_stop "$R"

    section "recovery to the end of the archive"
    pg_copy "$PGT/base" end
    E="$PGD"
    pg_recover "$E" "$cfg"
    if pg_start "$E" && pg_wait_promoted "$E"; then
        pass "recovery to the end of the archive ends and the server is promoted"
    else
        fail "recovery to the end of the archive ends and the server is promoted" "$(tail -15 "$E.log")"
    fi
    expect_eq "$(pg_markers "$E")" "1:before-1,2:before-2,3:before-3,4:after-1,5:after-2,6:after-3" "all six marker rows"
    got=$(pg_state "$E")
    expect_eq "$got" "$state" "every committed row: counts and checksums equal the primary's after its last switch"
    expect_contains "$(pg_log "$E")" "restored log file \"$LAST\" from archive" "the last archived segment $LAST was replayed"
    pg_stop "$E"
}
