#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# ferry-basebackup against real PostgreSQL 15 into a file:// repository: a base backup under
# pgbench load with a tablespace (stored as its own part); the catalogue entry (printed by
# --json) has sane values, its WAL range is archived, every part decodes to its recorded size
# and checksum; Debian's pg_verifybackup passes on a data directory built from the stored tars.
# Then the failures: kill -9 in mid-backup leaves no catalogue entry; a server of another
# cluster is refused naming both identifiers; broken archiving (archive_command = /bin/false)
# ends with the WAL-timeout error and no entry; no server, a role without REPLICATION, bad
# options: one error line each.
. "$(dirname "$0")/lib.sh"
. "$HARNESS/pg.sh"
. "$(dirname "$0")/pg_basebackup_lib.sh"

mkdir -p "$PGT/repo" "$PGT/repo2"
chown postgres: "$PGT/repo" "$PGT/repo2"
CFG="$PGT/ferry.conf"
ferry_cfg "$CFG" "repo = file://$PGT/repo"

section "a primary archiving with ferry-wal-push, with a tablespace, under pgbench load"
pg_new primary
P="$PGD"
pg_archive_to "$P" "$CFG"
pg_start "$P" || bail "the primary starts" "$(tail -5 "$P.log")"
pg_bench_init "$P" 5 || bail "pgbench -i -s 5" "$(tail -5 "$P.pgbench-init.log")"
mkdir -p "$PGT/ts1"
chown postgres: "$PGT/ts1"
pg_sql "$P" "create tablespace ts1 location '$PGT/ts1'" >/dev/null
got=$(pg_sql "$P" "create table in_ts (id int, pad text) tablespace ts1; insert into in_ts select g, repeat('x', 100) from generate_series(1, 20000) g; select oid from pg_tablespace where spcname = 'ts1'")
TSOID=$(tail -1 <<<"$got")
[[ "$TSOID" =~ ^[0-9]+$ ]] || bail "tablespace ts1 created" "$got"
pass "pgbench -i -s 5 and tablespace ts1 (oid $TSOID) with 20000 rows"

pg_bench_load "$P" 15 &
LOAD=$!
sleep 2
T0=$(now)
bb "$CFG" "$P" --checkpoint fast --label "nightly 'one'" --json
expect_ok "ferry-basebackup --checkpoint fast --json under pgbench load ($(elapsed "$T0") s)"
wait "$LOAD"
expect_eq "$?" 0 "pgbench ran during the backup"
expect_eq "$(cat "$ERR")" "" "nothing on stderr (not a terminal: no progress)"
cp "$OUT" "$T/entry.json"
J="$T/entry.json"
expect_eq "$(jget "$J" 'j["label"]')" "nightly 'one'" "entry: the label, quotes and all"
expect_eq "$(jget "$J" '" ".join(p["name"] for p in j["parts"])')" "$TSOID.tar base.tar backup_manifest" \
    "parts: the tablespace tar, base.tar, backup_manifest"
expect_eq "$(jget "$J" '[p.get("location") for p in j["parts"] if p["name"] == "'"$TSOID"'.tar"][0]')" "$PGT/ts1" \
    "the tablespace part records its location"
got=$(jget "$J" '[p["size"] for p in j["parts"] if p["name"] == "base.tar"][0]')
expect_ge "$got" 70000000 "base.tar holds the pgbench database ($got bytes)"
got=$(jget "$J" '[p["stored_size"] * 2 < p["size"] for p in j["parts"] if p["name"] == "base.tar"][0]')
expect_eq "$got" True "base.tar is stored compressed (zstd)"
bb_check_entry "$CFG" "$J" "$P"
timeout 300 "$FERRY" repo --config "$CFG" get "$(jget "$J" 'j["parts"][1]["key"]')" "$T/base.tar" >/dev/null 2>&1
expect_eq "$(tail -c 1024 "$T/base.tar" | tr -d '\0' | wc -c)" 0 "base.tar ends with the two zero blocks of a complete tar"
rm -f "$T/base.tar"

section "pg_verifybackup (Debian's 15) on a data directory built from the stored tars"
if bb_extract "$CFG" "$J" "$PGT/restored"; then pass "extracted with ferry repo get + tar"; else fail "extracted with ferry repo get + tar"; fi
expect_eq "$(head -c 1024 "$PGT/restored/backup_label" | grep -c "^LABEL: nightly 'one'$")" 1 "backup_label has the label"
expect_contains "$(cat "$PGT/restored/tablespace_map" 2>&1)" "$TSOID $PGT/ts1" "tablespace_map maps $TSOID to its directory"
run_pg "$PG_VERIFYBACKUP" -n "$PGT/restored"
expect_ok "pg_verifybackup -n passes"
expect_contains "$(cat "$OUT")" "backup successfully verified" "pg_verifybackup: backup successfully verified"
nfiles=$(grep -c '"Path": ' "$PGT/restored/backup_manifest")
expect_eq "$(grep -c '"Checksum-Algorithm": "CRC32C"' "$PGT/restored/backup_manifest")" "$nfiles" \
    "the manifest has CRC32C checksums (the default) for all $nfiles files"
# the check can fail: a changed byte in a relation file is found
f=$(cd "$PGT/restored" && find "pg_tblspc/$TSOID" -type f -size +8k | head -1)
printf 'X' | dd of="$PGT/restored/$f" bs=1 seek=100 conv=notrunc 2>/dev/null
run_pg "$PG_VERIFYBACKUP" -n "$PGT/restored"
expect_rc 1 "pg_verifybackup fails after a byte of $f changed (the check can fail)"

section "kill -9 in mid-backup leaves no catalogue entry"
before=$(catalog_ids "$CFG")
(cd "$PGT" && exec runuser -u postgres -- "$BASEBACKUP" --config "$CFG" -h 127.0.0.1 -p "$(pg_port "$P")" \
    -U postgres -c fast --max-rate 1M --log-level info >"$T/killed.out" 2>"$T/killed.err") &
KPID=$!
for _ in $(seq 1 100); do grep -qs 'storing' "$T/killed.err" && break; sleep 0.1; done
sleep 1
pkid=$(pgrep -P "$KPID" -x ferry-basebacku || true)
[ -n "$pkid" ] || pkid=$(pgrep -f "^$BASEBACKUP --config $CFG" | head -1)
if [ -n "$pkid" ] && grep -q storing "$T/killed.err"; then
    kill -9 "$pkid"
    pass "ferry-basebackup was streaming (pid $pkid), killed with SIGKILL"
else
    fail "ferry-basebackup was streaming" "$(cat "$T/killed.err")"
fi
wait "$KPID" 2>/dev/null
expect_eq "$(catalog_ids "$CFG")" "$before" "the catalogue lists no new backup"
pg_wait_sql "$P" "select count(*) from pg_stat_replication" 0 30
expect_eq "$?" 0 "the server ended the killed backup's walsender"
bb "$CFG" "$P" -c fast
expect_ok "a new backup after the killed one succeeds"
expect_eq "$(catalog_ids "$CFG" | wc -l)" 2 "the catalogue lists two complete backups"

section "SIGTERM in mid-backup: a clean stop, no catalogue entry, no temporary files"
before=$(catalog_ids "$CFG")
(cd "$PGT" && exec runuser -u postgres -- "$BASEBACKUP" --config "$CFG" -h 127.0.0.1 -p "$(pg_port "$P")" \
    -U postgres -c fast --max-rate 1M --log-level info >"$T/term.out" 2>"$T/term.err") &
KPID=$!
for _ in $(seq 1 100); do grep -qs 'storing' "$T/term.err" && break; sleep 0.1; done
sleep 1
expect_eq "$(pg_sql "$P" "select application_name || ' ' || state from pg_stat_replication")" "ferry-basebackup backup" \
    "pg_stat_replication shows application_name ferry-basebackup, state backup"
pkid=$(pgrep -P "$KPID" -x ferry-basebacku || true)
if [ -n "$pkid" ]; then kill -TERM "$pkid"; fi
wait "$KPID"
RC=$?
expect_eq "$RC" 1 "exit status 1 after SIGTERM"
expect_eq "$(grep -v ': info: ' "$T/term.err")" "ferry-basebackup: error: interrupted by SIGTERM: the backup is incomplete" \
    "one error line: interrupted by SIGTERM"
tid=$(sed -n 's|.*storing "pg/backups/\([^/]*\)/.*|\1|p' "$T/term.err" | head -1)
expect_eq "$(find "$PGT/repo/pg/backups/$tid" -type f 2>/dev/null | wc -l)" 0 "nothing left under pg/backups/$tid (the temporary file was removed)"
expect_eq "$(catalog_ids "$CFG")" "$before" "the catalogue lists no new backup"

section "the connection from -d CONNINFO, or from libpq's PG* environment"
run_pg "$BASEBACKUP" --config "$CFG" -d "host=127.0.0.1 port=$(pg_port "$P") user=postgres" -c fast --json
expect_ok "-d 'host=127.0.0.1 port=... user=postgres'"
expect_eq "$(jget "$OUT" 'j["system_identifier"]')" "$(pg_sql "$P" "select system_identifier from pg_control_system()")" "it backed up the primary"
run_pg env PGHOST=127.0.0.1 PGPORT="$(pg_port "$P")" PGUSER=postgres "$BASEBACKUP" --config "$CFG" -c fast
expect_ok "PGHOST, PGPORT, PGUSER"
run_pg "$BASEBACKUP" --config "$CFG" -d "postgresql://postgres@127.0.0.1:$(pg_port "$P")/postgres" -c fast \
    --manifest-checksums sha512 --json
expect_ok "-d with a URI, --manifest-checksums sha512"
cp "$OUT" "$T/entry512.json"
key=$(jget "$T/entry512.json" '[p["key"] for p in j["parts"] if p["name"] == "backup_manifest"][0]')
timeout 300 "$FERRY" repo --config "$CFG" get "$key" "$T/manifest512" >/dev/null 2>&1
nfiles=$(grep -c '"Path": ' "$T/manifest512")
expect_eq "$(grep -c '"Checksum-Algorithm": "SHA512"' "$T/manifest512")" "$nfiles" \
    "its manifest has SHA512 checksums for all $nfiles files"
expect_eq "$(catalog_ids "$CFG" | wc -l)" 5 "the catalogue lists five complete backups"

section "a server of another cluster is refused"
pg_new other
O="$PGD"
pg_start "$O" || bail "the other cluster starts" "$(tail -5 "$O.log")"
bb "$CFG" "$O" -c fast
sysid_p=$(pg_sql "$P" "select system_identifier from pg_control_system()")
sysid_o=$(pg_sql "$O" "select system_identifier from pg_control_system()")
expect_bb_error "the server is from cluster $sysid_o (PostgreSQL 15, 16777216-byte segments), but the repository belongs to cluster $sysid_p" \
    "refused: the message names both system identifiers"
expect_eq "$(catalog_ids "$CFG" | wc -l)" 5 "no catalogue entry added"

section "a server that archives nothing is refused before the backup starts"
CFG2="$PGT/ferry2.conf"
ferry_cfg "$CFG2" "repo = file://$PGT/repo2"
T0=$(now)
bb "$CFG2" "$O" -c fast
expect_bb_error "the server does not archive its WAL (archive_mode = off), and a backup needs the WAL from its start to its stop in the repository: set archive_mode = on (restart) and archive_command = 'ferry-wal-push %p'" \
    "archive_mode = off: refused, saying what to set"
expect_le "$(elapsed "$T0")" 30 "at once, without waiting for WAL"
expect_eq "$(repo_ls "$CFG2" pg/backups/)" "" "nothing stored"
pg_conf "$O" "archive_mode = on"
pg_stop "$O" && pg_start "$O" || bail "the other cluster restarts with archive_mode = on" "$(tail -5 "$O.log")"
bb "$CFG2" "$O" -c fast
expect_bb_error "the server archives nothing (archive_mode = on, archive_command is empty), and a backup needs the WAL from its start to its stop in the repository: set archive_command = 'ferry-wal-push %p' (reload)" \
    "archive_command empty: refused"
expect_eq "$(repo_ls "$CFG2" pg/backups/)" "" "nothing stored"

section "archiving broken: the WAL wait times out"
pg_conf "$O" "archive_command = '/bin/false'"
pg_stop "$O" && pg_start "$O" || bail "the other cluster restarts with archive_command = /bin/false" "$(tail -5 "$O.log")"
T0=$(now)
bb "$CFG2" "$O" -c fast --wal-timeout 3
t=$(elapsed "$T0")
expect_bb_error "was not archived within 3 s: check archive_command (ferry-wal-push) and pg_stat_archiver" \
    "WAL-timeout error after $t s"
expect_le "$t" 30 "it gives up in time"
expect_contains "$(cat "$ERR")" "error: WAL segment 00000001" "the message names the missing segment"
expect_eq "$(catalog_ids "$CFG2")" "" "no catalogue entry"
expect_contains "$(repo_ls "$CFG2" pg/backups/)" "/base.tar" "(the parts were stored before the wait)"

section "a storage error: pg/backups/ not writable"
mkdir -p "$PGT/repo3/pg/backups"
cp -a "$PGT/repo/pg/cluster.json" "$PGT/repo3/pg/"
chown postgres: "$PGT/repo3" "$PGT/repo3/pg"
chown root: "$PGT/repo3/pg/backups"
chmod 755 "$PGT/repo3/pg/backups"
CFG3="$PGT/ferry3.conf"
ferry_cfg "$CFG3" "repo = file://$PGT/repo3"
bb "$CFG3" "$P" -c fast
expect_bb_error "could not store \"pg/backups/" "the storage error is reported, naming the part"
expect_contains "$(cat "$ERR")" "could not create directory" "and what failed"
expect_contains "$(cat "$ERR")" "Permission denied" "and why"
expect_eq "$(catalog_ids "$CFG3")" "" "no catalogue entry"
pg_wait_sql "$P" "select count(*) from pg_stat_replication" 0 30
expect_eq "$?" 0 "the server ended the failed backup's walsender"

section "connection errors and bad options"
run_pg "$BASEBACKUP" --config "$CFG" -h 127.0.0.1 -p "$(free_port)" -U postgres
expect_bb_error "could not connect to the server: connection to server at \"127.0.0.1\"" "no server: could not connect"
expect_contains "$(cat "$ERR")" "Connection refused" "connection refused is said"
pg_sql "$P" "create role noreplication login" >/dev/null
bb "$CFG" "$P" -U noreplication
expect_bb_error "could not connect to the server" "a role without REPLICATION is refused"
expect_contains "$(cat "$ERR")" "replication" "the message says why (replication)"
bb "$CFG" "$P" --checkpoint soon
expect_bb_error 'invalid --checkpoint "soon": use fast or spread' "--checkpoint soon"
bb "$CFG" "$P" --wal-timeout -1
expect_bb_error '--wal-timeout' "--wal-timeout -1"
bb "$CFG" "$P" --manifest-checksums md5
expect_bb_error 'invalid --manifest-checksums "md5": use CRC32C, SHA224, SHA256, SHA384, SHA512 or NONE' \
    "--manifest-checksums md5"
run_pg "$BASEBACKUP" --config /dev/null -h 127.0.0.1 -p "$(pg_port "$P")" -U postgres
expect_bb_error 'no repository given: use --repo URL or FERRY_REPO' "no repository"
bb "$CFG" "$P" --server-compression sometimes
expect_bb_error 'invalid --server-compression "sometimes": use auto or off' "--server-compression sometimes"
bb "$CFG" "$P" --server-workers 17
expect_bb_error '--server-workers' "--server-workers 17"
run_pg "$BASEBACKUP" --help
expect_ok "--help"
for o in --dbname --host --port --username --label --checkpoint --wal-timeout --json --progress --max-rate \
    --manifest-checksums --server-compression --server-workers --repo; do
    grep -q -- "$o" "$OUT" || fail "--help documents $o"
done
pass "--help documents every option"

section "who compresses: the server (15 and zstd: the default), or ferry"
# The server's zstd frame is stored with the content checksum ferry adds; ferry repo get (the
# strict decoder: one frame, with its checksum) and the entry's size and SHA-256 vouch for it.
bb "$CFG" "$P" -c fast --json --log-level info
expect_ok "a backup with the defaults"
expect_contains "$(cat "$ERR")" "the server compresses: zstd level 1, 0 worker threads" \
    "the server compresses: zstd level 1, 0 worker threads"
cp "$OUT" "$T/server.json"
bb_check_entry "$CFG" "$T/server.json" "$P"
key=$(jget "$T/server.json" '[p["key"] for p in j["parts"] if p["name"] == "base.tar"][0]')
timeout 300 "$FERRY" repo --config "$CFG" get "$key" "$T/base.tar" >/dev/null 2>&1
expect_eq "$(tar -tf "$T/base.tar" | grep -c '^backup_label$')" 1 "its base.tar is a tar with backup_label"
expect_eq "$(stat -c %s "$T/base.tar")" "$(jget "$T/server.json" '[p["size"] for p in j["parts"] if p["name"] == "base.tar"][0]')" \
    "of the size in the entry"
rm -f "$T/base.tar"
bb "$CFG" "$P" -c fast --json --log-level info --server-workers 2
expect_ok "--server-workers 2"
expect_contains "$(cat "$ERR")" "the server compresses: zstd level 1, 2 worker threads" "two zstd threads beside the walsender"
cp "$OUT" "$T/server0.json"
bb_check_entry "$CFG" "$T/server0.json" "$P"
for opt in "--server-compression off" "--max-rate 1G"; do
    # shellcheck disable=SC2086
    bb "$CFG" "$P" -c fast --json --log-level info $opt
    expect_ok "a backup with $opt"
    expect_eq "$(grep -c 'the server compresses' "$ERR")" 0 "$opt: ferry compresses"
    cp "$OUT" "$T/client.json"
    bb_check_entry "$CFG" "$T/client.json" "$P"
done
done_testing
