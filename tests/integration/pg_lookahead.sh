#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# ferry-wal-push's look-ahead with real PostgreSQL 15 (1 MiB segments, file:// repository):
# segments pile up as .ready while archive_command fails, then archive_command becomes
# ferry-wal-push (reload). The first calls push further .ready files ahead in parallel,
# PostgreSQL's later calls for those return at once ("was already pushed ahead"); every
# segment ends up in the repository with the bytes of pg_wal, each pushed exactly once, no
# note (.ferry) is left in archive_status, and nothing was marked .done by ferry before
# PostgreSQL asked. Then the front programs: linked with libc alone, they hand every other
# call to their cores whole (secrets in flags included) and fail cleanly without them.
. "$(dirname "$0")/lib.sh"
. "$HARNESS/pg.sh"

mkdir -p "$PGT/repo"
chown postgres: "$PGT/repo"
CFG="$PGT/ferry.conf"
ferry_cfg "$CFG" "repo = file://$PGT/repo" "log-level = info"

section "segments pile up while archive_command fails"
pg_new primary --wal-segsize=1
P="$PGD"
pg_conf "$P" "archive_mode = on" "archive_command = 'false'"
pg_start "$P" || bail "the primary starts" "$(tail -5 "$P.log")"
pg_bench_init "$P" 1 || bail "pgbench -i" "$(tail -5 "$P.pgbench-init.log")"
LAST=$(pg_switch "$P")
ready=$(find "$P/pg_wal/archive_status" -name '*.ready' | sed 's|.*/||; s|\.ready$||' | sort)
n=$(grep -c . <<<"$ready")
expect_ge "$n" 10 "$n segments are .ready"

section "archive_command = ferry-wal-push (reload)"
pg_conf "$P" "archive_command = '$WAL_PUSH --config $CFG %p'"
pg_sql "$P" "select pg_reload_conf()" >/dev/null
if pg_wait_no_ready "$P" 90; then pass "PostgreSQL archived them all"; else fail "PostgreSQL archived them all" "$(tail -5 "$P.log")"; fi
# counted over the $n segments only: with 1 MiB segments the server's own activity may fill
# another one meanwhile, which the look-ahead pushes before PostgreSQL calls for it
log=$(pg_log "$P" | grep -F -f <(sed 's/.*/"&"/' <<<"$ready"))
ahead=$(grep -c 'ferry-wal-push: info: pushed ".*" ahead' <<<"$log")
quick=$(grep -c 'ferry-wal-push: info: ".*" was already pushed ahead' <<<"$log")
expect_ge "$ahead" 4 "files were pushed ahead ($ahead)"
expect_eq "$quick" "$ahead" "PostgreSQL's call for each of them returned at once ($quick)"
own=$(grep -c 'ferry-wal-push: info: archived ".*"' <<<"$log")
expect_eq "$((ahead + own))" "$n" "each segment was pushed exactly once ($ahead ahead + $own by their own call)"
expect_eq "$(grep -c 'already archived with the same contents' <<<"$log")" 0 "no segment was pushed twice"
# the look-ahead removes the notes of files PostgreSQL marked .done, then exits when idle
for _ in $(seq 1 100); do flock -n "$P/pg_wal/archive_status/ferry-lookahead.lock" true && break; sleep 0.1; done
expect_eq "$(find "$P/pg_wal/archive_status" -name '*.ferry*' | wc -l)" 0 "no look-ahead note is left in archive_status"
repo_names=$(repo_ls "$CFG" pg/wal/ | sed 's|.*/||' | sort)
expect_eq "$(comm -23 <(echo "$ready") <(echo "$repo_names"))" "" "every one of the $n segments is in the repository"
bad=""
for s in $ready; do
    [ -f "$P/pg_wal/$s" ] || continue
    rm -f "$T/got"
    timeout 60 "$FERRY" repo --config "$CFG" get "$(wal_key "$s")" "$T/got" >/dev/null 2>&1
    cmp -s "$T/got" "$P/pg_wal/$s" || bad="$bad $s"
done
expect_eq "$bad" "" "each stored segment decodes to the bytes in pg_wal"
expect_eq "$(pg_sql "$P" "select last_archived_wal from pg_stat_archiver")" "$LAST" "last_archived_wal is $LAST"

section "a file the look-ahead cannot push is left to PostgreSQL's call"
A=$(sed -n 1p <<<"$ready") B=$(sed -n 2p <<<"$ready")
mkdir -p "$T/bad/pg_wal/archive_status" "$PGT/repo3"
for s in "$A" "$B"; do
    timeout 60 "$FERRY" repo --config "$CFG" get "$(wal_key "$s")" "$T/bad/pg_wal/$s" >/dev/null 2>&1
    touch "$T/bad/pg_wal/archive_status/$s.ready"
done
truncate -s 100000 "$T/bad/pg_wal/$B"
chown -R postgres: "$T/bad" "$PGT/repo3"
t0=$(now)
run_pg "$WAL_PUSH" --repo "file://$PGT/repo3" "$T/bad/pg_wal/$A"
expect_rc 0 "$A is pushed (and a look-ahead starts for $B)"
for _ in $(seq 1 150); do
    [ -e "$T/bad/pg_wal/archive_status/ferry-lookahead.lock" ] &&
        flock -n "$T/bad/pg_wal/archive_status/ferry-lookahead.lock" true && break
    sleep 0.1
done
expect_le "$(elapsed "$t0")" 10 "the look-ahead gave up on the truncated $B and exited when idle ($(elapsed "$t0") s)"
expect_eq "$(ls -R "$PGT/repo3" | grep -c "^$B$")" 0 "$B is not in the repository"
run_pg "$WAL_PUSH" --repo "file://$PGT/repo3" "$T/bad/pg_wal/$B"
expect_tool_error 1 "refusing" "PostgreSQL's own call for $B is refused with a clear error"

section "the front programs"
for f in "$WAL_PUSH" "$WAL_FETCH"; do
    libs=$(ldd "$f" | grep -cE 'libcurl|libssl|libcrypto|libzstd|libxml2')
    expect_eq "$libs" 0 "$(basename "$f") does not load libcurl, OpenSSL, zstd or libxml2"
done
mkdir -p "$T/pd/pg_wal" "$T/fd/pg_wal" "$T/alone"
one=$(head -n 1 <<<"$ready")
cp "$P/pg_wal/$one" "$T/pd/pg_wal/$one" 2>/dev/null || cp "$T/got" "$T/pd/pg_wal/$one"
mkdir -p "$PGT/repo2"
chown -R postgres: "$T/pd" "$T/fd" "$PGT/repo2"
run_pg "$WAL_PUSH" --repo "file://$PGT/repo2" --encryption-passphrase 'front-secret-1' "$T/pd/pg_wal/$one"
expect_rc 0 "a push with the passphrase as a flag (through the front to the core)"
run_pg "$WAL_FETCH" --repo "file://$PGT/repo2" --encryption-passphrase 'front-secret-1' "$one" "$T/fd/pg_wal/RECOVERYXLOG"
expect_rc 0 "and a fetch with it"
expect_same_file "$T/fd/pg_wal/RECOVERYXLOG" "$T/pd/pg_wal/$one" "the same bytes come back: the core got the secret whole"
run_pg "$WAL_FETCH" --repo "file://$PGT/repo2" --encryption-passphrase 'wrong-secret' "$one" "$T/fd/pg_wal/X"
expect_rc 200 "a wrong passphrase is a fatal fetch error, not 'not found'"
run_pg "$WAL_PUSH" --help
expect_contains "$(cat "$OUT")" "usage: ferry-wal-push" "--help through the front prints the core's usage"
cp "$WAL_PUSH" "$WAL_FETCH" "$T/alone/"
chmod 755 "$T" "$T/alone"
run_pg "$T/alone/ferry-wal-push" --repo "file://$PGT/repo2" "$T/pd/pg_wal/$one"
expect_tool_error 1 "cannot run ferry-wal-push-core" "the front alone: push exits 1 naming the missing core"
# another spool: the prefetcher the fetches above started would answer this call itself
mkdir -p "$T/fd2/pg_wal"
chown -R postgres: "$T/fd2"
run_pg "$T/alone/ferry-wal-fetch" --repo "file://$PGT/repo2" "$one" "$T/fd2/pg_wal/RECOVERYXLOG"
expect_rc 200 "the front alone: fetch exits 200 (recovery stops, it does not end early)"
expect_contains "$(cat "$ERR")" "cannot run ferry-wal-fetch-core" "naming the missing core"
run_pg "$T/alone/ferry-wal-fetch" --repo "file://$PGT/repo2" 00000002.history "$T/fd2/pg_wal/RECOVERYHISTORY"
expect_rc 200 "and for a history probe: exit 200, not 'not found'"
rm -f "$T/fd/pg_wal/RECOVERYXLOG"
# a full fetch first: it leaves a prefetcher at work there, whoever answers it
run_pg "$WAL_FETCH" --repo "file://$PGT/repo2" --encryption-passphrase 'front-secret-1' "$one" "$T/fd/pg_wal/RECOVERYXLOG"
rm -f "$T/fd/pg_wal/RECOVERYXLOG"
for _ in $(seq 1 100); do [ -S "$T/fd/pg_wal/ferry-prefetch/.sock" ] && break; sleep 0.1; done
run_pg "$T/alone/ferry-wal-fetch" --repo "file://$PGT/repo2" --log-level info "$one" "$T/fd/pg_wal/RECOVERYXLOG"
expect_rc 0 "the front alone, where a prefetcher is at work: it answers ($one asked again)"
expect_contains "$(cat "$ERR")" "restored \"$one\" through the prefetcher" "the prefetcher fetched it"
expect_same_file "$T/fd/pg_wal/RECOVERYXLOG" "$T/pd/pg_wal/$one" "with the archived bytes"

section "the prefetcher's priority"
# the nice value of every thread of the prefetcher a call in data directory DIR left at work
prefetcher_nice() {
    local pid=""
    for _ in $(seq 1 100); do
        pid=$(pgrep -f "ferry-wal-fetch-core .*$1/pg_wal/RECOVERYXLOG" | head -n 1)
        [ -n "$pid" ] && [ -S "$1/pg_wal/ferry-prefetch/.sock" ] && break
        sleep 0.1
    done
    [ -n "$pid" ] && ps -L -o ni= -p "$pid" | tr -d ' ' | sort -u | tr '\n' ' '
}
base=$(ps -o ni= -p $$ | tr -d ' ')
low=$((base + 10 > 19 ? 19 : base + 10))
for mode in archive standby; do
    mkdir -p "$T/prio-$mode/pg_wal"
    [ "$mode" = standby ] && touch "$T/prio-$mode/standby.signal"
    chown -R postgres: "$T/prio-$mode"
    run_pg_in "$T/prio-$mode" "$WAL_FETCH" --repo "file://$PGT/repo2" \
        --encryption-passphrase 'front-secret-1' "$one" "$T/prio-$mode/pg_wal/RECOVERYXLOG"
    expect_rc 0 "a fetch in $mode mode"
    want=$([ "$mode" = standby ] && echo "$base" || echo "$low")
    expect_eq "$(prefetcher_nice "$T/prio-$mode")" "$want " \
        "its prefetcher's threads run at nice $want ($mode mode; the call at $base)"
done
done_testing
