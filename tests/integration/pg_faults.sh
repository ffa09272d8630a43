#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Faults around real PostgreSQL 15 with ferry-wal-push / ferry-wal-fetch:
#  (a) S3 (s3rver behind the fault proxy) answers 503 while archiving: archive_command fails,
#      PostgreSQL retries (pg_stat_archiver.failed_count grows), nothing is lost once it is back
#  (b) S3 answers 503 for a segment during archive recovery: recovery stops with FATAL
#      (ferry-wal-fetch exit 200; not promoted, no new timeline), and with S3 back a restart
#      finishes recovery with every row
#  (c) a corrupted and a truncated object in a file:// repository: ferry-wal-fetch exits 200
#      ("damaged") and creates nothing; recovery stops before it instead of consuming it, and
#      finishes once the object is good again
#  (d) WAL from another cluster pushed into the repository: exit 1 naming both identifiers
#  (e) a non-WAL file and a truncated segment: refused, exit 1
#  (f) kill -9 of ferry-wal-push in the middle of its upload (one PUT: WAL files are never
#      multipart, even with small parts): no object under the key, and the next call succeeds
#  (g) the same bytes again: exit 0 with a notice; other bytes: exit 1 naming both checksums
#  (h) ferry-wal-fetch with the storage down: exit 1 in standby mode (standby.signal in the
#      working directory), 200 outside it and with --on-storage-error fatal
#  (i) S3 stalls: ferry-wal-push exits 1 and ferry-wal-fetch 200 within their deadlines
#  (j) prefetch: a damaged spool file is fetched again, a good one is taken from the spool;
#      no spool for a destination other than RECOVERYXLOG
#  (k) a running prefetcher answers the calls its spool cannot (a segment asked again, the
#      end of the archive, history files) over its socket; a damaged object and a dead
#      prefetcher's socket leave the call to the core
. "$(dirname "$0")/lib.sh"
. "$HARNESS/pg.sh"
use_servers
on_exit "aws_s3rver s3 rm --recursive --quiet s3://$S3RVER_BUCKET/$PFX/"
start_proxy "$S3RVER_ENDPOINT"
proxy_plan '[]'

S3CREDS=("s3-region = us-east-1" "s3-access-key-id = $S3RVER_ACCESS_KEY_ID"
    "s3-secret-access-key = $S3RVER_SECRET_ACCESS_KEY")
CFG_PX="$PGT/proxy.conf" # through the fault proxy, few retries, short deadlines
ferry_cfg "$CFG_PX" "repo = s3://$S3RVER_BUCKET/$PFX/main" "s3-endpoint = $PROXY_URL" "${S3CREDS[@]}" \
    "s3-retries = 1" "s3-timeout = 5"
CFG_S3="$PGT/direct.conf" # the same repository, straight to s3rver
ferry_cfg "$CFG_S3" "repo = s3://$S3RVER_BUCKET/$PFX/main" "s3-endpoint = $S3RVER_ENDPOINT" "${S3CREDS[@]}"

# flip_middle_byte FILE: damage one bit in the middle of FILE
flip_middle_byte() {
    python3 - "$1" <<'PY'
import os, sys
with open(sys.argv[1], "r+b") as f:
    f.seek(os.path.getsize(sys.argv[1]) // 2)
    b = f.read(1)
    f.seek(-1, 1)
    f.write(bytes([b[0] ^ 0x01]))
PY
}
# push_pg CONFIG FILE [OPTIONS]: ferry-wal-push as postgres ($RC, $OUT, $ERR)
push_pg() { run_pg "$WAL_PUSH" --config "$@"; }

# ---------------------------------------------------------------------------------------
section "(a) S3 unavailable while archiving"
pg_new primary --wal-segsize=1
P="$PGD"
pg_archive_to "$P" "$CFG_PX"
pg_start "$P" || bail "the primary starts" "$(tail -5 "$P.log")"
FIRST=$(pg_sql "$P" "select pg_walfile_name(pg_current_wal_insert_lsn())")
pg_bench_init "$P" 1 || bail "pgbench -i" "$(tail -5 "$P.pgbench-init.log")"
pg_marker_table "$P"
pg_basebackup_to "$P" "$PGT/base" || bail "base backup" "$(tail -5 "$PGT/base.log")"
pg_marker "$P" 1 before-outage
s=$(pg_switch "$P")
pg_wait_archived "$P" "$s" 60 && pg_wait_no_ready "$P" 30
expect_eq "$?" 0 "archiving works through the proxy (up to $s)"

proxy_plan "[{\"path\": \"^/$S3RVER_BUCKET/\", \"fault\": \"status\", \"status\": 503, \"times\": -1}]"
f0=$(pg_sql "$P" "select failed_count from pg_stat_archiver")
pg_marker "$P" 2 during-outage
OUTAGE_SEG=$(pg_switch "$P")
if pg_wait_sql "$P" "select failed_count >= $f0 + 3 from pg_stat_archiver" t 60; then
    pass "archive_command fails and PostgreSQL retries (failed_count $f0 -> $(pg_sql "$P" "select failed_count from pg_stat_archiver"))"
else
    fail "archive_command fails and PostgreSQL retries" "$(pg_sql "$P" "select * from pg_stat_archiver")"
fi
expect_eq "$(pg_sql "$P" "select last_failed_wal from pg_stat_archiver")" "$OUTAGE_SEG" "last_failed_wal is $OUTAGE_SEG"
expect_eq "$(ls "$P/pg_wal/archive_status/" | grep -c "^$OUTAGE_SEG.ready$")" 1 "$OUTAGE_SEG stays .ready"
expect_not_contains "$(repo_ls "$CFG_S3" pg/wal/)" "$OUTAGE_SEG" "$OUTAGE_SEG is not in the repository"
log=$(grep 'ferry-wal-push: error:' "$P.log" | tail -1)
expect_contains "$log" "503" "the server log has ferry-wal-push's error naming the 503"
expect_contains "$(pg_log "$P")" "archive command failed with exit code 1" "PostgreSQL reports exit code 1 (never 126-255)"

proxy_plan '[]'
pg_marker "$P" 3 after-outage
pg_bench_load "$P" 3
LAST=$(pg_switch "$P") # a new .ready wakes the archiver up at once
if pg_wait_archived "$P" "$LAST" 90 && pg_wait_no_ready "$P" 30; then
    pass "once S3 is back, everything up to $LAST is archived"
else
    fail "once S3 is back, everything up to $LAST is archived" "$(ls "$P/pg_wal/archive_status" | tail -5)"
fi
repo_names=$(repo_ls "$CFG_S3" pg/wal/ | sed 's|.*/||')
missing=""
for ((i = $(seg_no "$FIRST" 1048576); i <= $(seg_no "$LAST" 1048576); i++)); do
    n=$(seg_name 1 "$i" 1048576)
    grep -qx "$n" <<<"$repo_names" || missing="$missing $n"
done
expect_eq "$missing" "" "no segment from $FIRST to $LAST is missing"
PRIMARY_STATE=$(pg_state "$P")

# ---------------------------------------------------------------------------------------
section "(b) S3 failing during archive recovery"
B=$(sed -n 's/^START WAL LOCATION: .* (file \([0-9A-F]*\))$/\1/p' "$PGT/base/backup_label")
BAD=$(seg_name 1 $(($(seg_no "$B" 1048576) + 2)) 1048576)
pg_copy "$PGT/base" rec
R="$PGD"
pg_recover "$R" "$CFG_PX"
proxy_plan "[{\"path\": \"/$BAD\$\", \"fault\": \"status\", \"status\": 503, \"times\": -1}]"
pg_start "$R"
for _ in $(seq 1 300); do pg_running "$R" || break; sleep 0.2; done
if pg_running "$R"; then
    fail "recovery stops when $BAD cannot be fetched (the server exits)" "$(tail -10 "$R.log")"
else
    pass "recovery stops when $BAD cannot be fetched (the server exits)"
fi
log=$(pg_log "$R")
expect_contains "$log" "FATAL:  could not restore file \"$BAD\" from archive: child process exited with exit code 200" \
    "FATAL: could not restore $BAD (ferry-wal-fetch exit status 200)"
expect_contains "$(grep 'ferry-wal-fetch: error:' <<<"$log" | tail -1)" "503" "the log has ferry-wal-fetch's error naming the 503"
expect_not_contains "$log" "selected new timeline ID" "no new timeline was selected"
expect_not_contains "$log" "archive recovery complete" "recovery did not complete"
expect_file_absent "$R/pg_wal/00000002.history" "no 00000002.history"
expect_contains "$("$PG15_BIN/pg_controldata" "$R" | grep 'cluster state')" "in archive recovery" \
    "pg_controldata: still in archive recovery"
expect_ge "$(proxy_count GET "/$BAD\$")" 2 "the fetch of $BAD was tried (and retried)"

proxy_plan '[]'
if pg_start "$R" && pg_wait_promoted "$R"; then
    pass "with S3 back, a restart finishes recovery and promotes"
else
    fail "with S3 back, a restart finishes recovery and promotes" "$(tail -15 "$R.log")"
fi
expect_eq "$(pg_markers "$R")" "1:before-outage,2:during-outage,3:after-outage" "all marker rows, including the one archived late"
expect_eq "$(pg_state "$R")" "$PRIMARY_STATE" "every committed row: counts and checksums equal the primary's"
pg_stop "$R"

# ---------------------------------------------------------------------------------------
section "(c) corrupted and truncated objects in a file:// repository"
mkdir -p "$PGT/frepo"
chown postgres: "$PGT/frepo"
CFG_F="$PGT/file.conf"
ferry_cfg "$CFG_F" "repo = file://$PGT/frepo"
pg_new q # a second cluster, 16 MiB segments, archiving into the file:// repository
Q="$PGD"
pg_archive_to "$Q" "$CFG_F"
pg_start "$Q" || bail "the second cluster starts" "$(tail -5 "$Q.log")"
pg_marker_table "$Q"
pg_basebackup_to "$Q" "$PGT/qbase" || bail "base backup of the second cluster" "$(tail -5 "$PGT/qbase.log")"
pg_bench_init "$Q" 1
pg_marker "$Q" 1 q-one
QB=$(sed -n 's/^START WAL LOCATION: .* (file \([0-9A-F]*\))$/\1/p' "$PGT/qbase/backup_label")
QBAD=$(seg_name 1 $(($(seg_no "$QB" 16777216) + 1)) 16777216)
QLAST=$(pg_switch "$Q")
pg_wait_archived "$Q" "$QLAST" 60 && pg_wait_no_ready "$Q" 30
expect_eq "$?" 0 "the second cluster archived up to $QLAST"
OBJ="$PGT/frepo/$(wal_key "$QBAD")"
[ -f "$OBJ" ] || bail "the object of $QBAD is a file in the repository" "$(find "$PGT/frepo" | head)"
cp -p "$OBJ" "$T/good-object"
size=$(stat -c %s "$OBJ")
flip_middle_byte "$OBJ"
mkdir -p "$PGT/fetch"
chown postgres: "$PGT/fetch"
run_pg "$WAL_FETCH" --config "$CFG_F" "$QBAD" "$PGT/fetch/RECOVERYXLOG"
expect_tool_error 200 "damaged" "a byte flipped in the middle of the object: exit 200, \"damaged\""
expect_file_absent "$PGT/fetch/RECOVERYXLOG" "no file at %p"
expect_eq "$(ls -A "$PGT/fetch" | grep -v '^ferry-prefetch$')" "" "and no temporary file beside it"
cp -p "$T/good-object" "$OBJ"
truncate -s $((size / 2)) "$OBJ"
run_pg "$WAL_FETCH" --config "$CFG_F" "$QBAD" "$PGT/fetch/RECOVERYXLOG"
expect_tool_error 200 "damaged" "the object truncated to half: exit 200, \"damaged\""
expect_file_absent "$PGT/fetch/RECOVERYXLOG" "no file at %p"
expect_eq "$(ls -A "$PGT/fetch" | grep -v '^ferry-prefetch$')" "" "and no temporary file beside it"

pg_copy "$PGT/qbase" qrec
QR="$PGD"
CFG_FI="$PGT/file-info.conf" # the same, saying what the prefetcher does
ferry_cfg "$CFG_FI" "repo = file://$PGT/frepo" "log-level = info"
pg_recover "$QR" "$CFG_FI"
pg_start "$QR"
for _ in $(seq 1 300); do pg_running "$QR" || break; sleep 0.2; done
expect_eq "$(pg_running "$QR" && echo running || echo stopped)" stopped "recovery meeting the truncated $QBAD stops"
sleep 3 # the prefetcher outlives the server by up to 10 s: it must not retry $QBAD meanwhile
expect_le "$(pg_log "$QR" | grep -c "prefetch of \"$QBAD\" failed")" 1 "the prefetcher tried the damaged $QBAD at most once"
log=$(pg_log "$QR")
expect_contains "$log" "FATAL:  could not restore file \"$QBAD\" from archive: child process exited with exit code 200" \
    "FATAL: could not restore $QBAD (exit status 200)"
expect_contains "$(grep 'ferry-wal-fetch: error:' <<<"$log" | tail -1)" "damaged" "the log says the object is damaged"
expect_file_absent "$QR/pg_wal/$QBAD" "the damaged segment was not consumed (not in pg_wal)"
expect_file_absent "$QR/pg_wal/RECOVERYXLOG" "no RECOVERYXLOG left"
expect_not_contains "$log" "selected new timeline ID" "no new timeline"
cp -p "$T/good-object" "$OBJ"
if pg_start "$QR" && pg_wait_promoted "$QR"; then
    pass "with the object whole again, a restart finishes recovery"
else
    fail "with the object whole again, a restart finishes recovery" "$(tail -15 "$QR.log")"
fi
expect_eq "$(pg_markers "$QR")" "1:q-one" "the second cluster's row is there"
pg_stop "$QR"

# ---------------------------------------------------------------------------------------
section "(d) WAL from another cluster"
SYS_P=$(pg_sql "$P" "select system_identifier from pg_control_system()")
SYS_Q=$(pg_sql "$Q" "select system_identifier from pg_control_system()")
mkdir -p "$PGT/other"
seg_p=$(ls "$P/pg_wal" | grep -E '^[0-9A-F]{24}$' | sort | head -1)
cp "$P/pg_wal/$seg_p" "$PGT/other/"
chown -R postgres: "$PGT/other"
push_pg "$CFG_F" "$PGT/other/$seg_p"
expect_tool_error 1 "from cluster $SYS_P" "a segment of the first cluster into the second's repository: exit 1, names its identifier"
expect_contains "$(cat "$ERR")" "belongs to cluster $SYS_Q" "and the repository's"
expect_not_contains "$(repo_ls "$CFG_F" pg/wal/)" "$seg_p" "nothing was stored"

# ---------------------------------------------------------------------------------------
section "(e) non-WAL files and a truncated segment"
mkdir -p "$PGT/bad"
head -c 16777216 /dev/urandom >"$PGT/bad/000000010000000000000077"
head -c 1000000 "$Q/pg_wal/$QLAST" >"$PGT/bad/$QLAST"
echo "not wal" >"$PGT/bad/notes.txt"
chown -R postgres: "$PGT/bad"
push_pg "$CFG_F" "$PGT/bad/000000010000000000000077"
expect_tool_error 1 "refusing \"$PGT/bad/000000010000000000000077\"" "random bytes under a segment name: exit 1, refused"
push_pg "$CFG_F" "$PGT/bad/$QLAST"
expect_tool_error 1 "1000000 bytes, but its header says segments are 16777216 bytes" "a truncated segment: exit 1, names both sizes"
push_pg "$CFG_F" "$PGT/bad/notes.txt"
expect_tool_error 1 "notes.txt" "a file whose name is not a WAL name: exit 1, names it"
names=$(repo_ls "$CFG_F" pg/wal/)
expect_not_contains "$names" "000000010000000000000077" "nothing stored for the random file"
expect_eq "$(timeout 60 "$FERRY" repo --config "$CFG_F" get "$(wal_key "$QLAST")" - 2>/dev/null | cmp - "$Q/pg_wal/$QLAST" && echo same)" same \
    "the archived $QLAST is still the whole segment"

# ---------------------------------------------------------------------------------------
section "(f) kill -9 of ferry-wal-push in the middle of its upload"
CFG_K="$PGT/kill.conf" # the second cluster's segment, uncompressed, 5 MiB parts, through the proxy
ferry_cfg "$CFG_K" "repo = s3://$S3RVER_BUCKET/$PFX/kill" "s3-endpoint = $PROXY_URL" "${S3CREDS[@]}" \
    "compress = none" "s3-part-size = 5M" "s3-timeout = 120"
CFG_KD="$PGT/kill-direct.conf"
ferry_cfg "$CFG_KD" "repo = s3://$S3RVER_BUCKET/$PFX/kill" "s3-endpoint = $S3RVER_ENDPOINT" "${S3CREDS[@]}"
mkdir -p "$PGT/kill"
cp "$Q/pg_wal/$QLAST" "$PGT/kill/$QLAST"
chown -R postgres: "$PGT/kill"
proxy_plan "[{\"method\": \"PUT\", \"path\": \"/$QLAST\$\", \"fault\": \"stall\", \"seconds\": 600}]"
("$WAL_PUSH" --config "$CFG_K" "$PGT/kill/$QLAST" >"$T/kill.out" 2>"$T/kill.err") &
kpid=$!
for _ in $(seq 1 150); do
    [ "$(proxy_count PUT "/$QLAST\$")" -ge 1 ] && break
    sleep 0.2
done
expect_ge "$(proxy_count PUT "/$QLAST\$")" 1 "the upload is under way (the proxy holds the PUT)"
expect_eq "$(proxy_count POST "/$QLAST\$" "uploads")" 0 "as one PUT, although the part size is 5 MiB"
kill -9 "$kpid"
wait "$kpid" 2>/dev/null
expect_eq "$?" 137 "ferry-wal-push killed with SIGKILL (pid $kpid)"
expect_eq "$(repo_ls "$CFG_KD" pg/wal/)" "" "no object is visible under the key (ferry repo ls pg/wal/)"
got=$(aws_s3rver s3api head-object --bucket "$S3RVER_BUCKET" --key "$PFX/kill/$(wal_key "$QLAST")" 2>&1)
expect_contains "$got" "Not Found" "head-object: Not Found"
proxy_plan '[]'
push_pg "$CFG_K" "$PGT/kill/$QLAST"
expect_rc 0 "the next call succeeds"
rm -f "$T/got"
timeout 60 "$FERRY" repo --config "$CFG_KD" get "$(wal_key "$QLAST")" "$T/got" >/dev/null 2>&1
expect_same_file "$T/got" "$PGT/kill/$QLAST" "and stores the whole segment"

# ---------------------------------------------------------------------------------------
section "(g) the same name again: same bytes, other bytes"
mkdir -p "$PGT/again"
cp "$Q/pg_wal/$QLAST" "$PGT/again/$QLAST"
chown -R postgres: "$PGT/again"
push_pg "$CFG_F" "$PGT/again/$QLAST"
expect_rc 0 "the same bytes again: exit 0"
expect_eq "$(cat "$ERR")" "ferry-wal-push: notice: \"$QLAST\" was already archived with the same contents" "with a notice"
sha_old=$(sha "$Q/pg_wal/$QLAST")
python3 - "$PGT/again/$QLAST" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(8192 + 100)
    b = f.read(1)
    f.seek(-1, 1)
    f.write(bytes([b[0] ^ 0x01]))
PY
sha_new=$(sha "$PGT/again/$QLAST")
push_pg "$CFG_F" "$PGT/again/$QLAST"
expect_tool_error 1 "\"$QLAST\" is already archived with different contents: archived sha256 $sha_old (16777216 bytes), local sha256 $sha_new (16777216 bytes)" \
    "other bytes: exit 1 naming both checksums"
rm -f "$T/got"
timeout 60 "$FERRY" repo --config "$CFG_F" get "$(wal_key "$QLAST")" "$T/got" >/dev/null 2>&1
expect_same_file "$T/got" "$Q/pg_wal/$QLAST" "the archived object was not overwritten"

# ---------------------------------------------------------------------------------------
section "(h) ferry-wal-fetch with the storage down: standby mode and --on-storage-error"
CFG_DOWN="$PGT/down.conf"
ferry_cfg "$CFG_DOWN" "repo = s3://$S3RVER_BUCKET/$PFX/main" "s3-endpoint = http://127.0.0.1:$(free_port)" \
    "${S3CREDS[@]}" "s3-retries = 1" "s3-connect-timeout = 2"
mkdir -p "$PGT/sb" "$PGT/nosb"
touch "$PGT/sb/standby.signal"
chown -R postgres: "$PGT/sb" "$PGT/nosb"
fetch_in() { # DIR ARGS...: ferry-wal-fetch as postgres with DIR as working directory
    local d="$1"
    shift
    (cd "$d" && timeout -k 5 120 runuser -u postgres -- "$WAL_FETCH" --config "$CFG_DOWN" "$@") >"$OUT" 2>"$ERR" </dev/null
    RC=$?
    LAST_CMD="(in $d) ferry-wal-fetch $*"
}
fetch_in "$PGT/sb" "$FIRST" "$PGT/sb/RECOVERYXLOG"
expect_tool_error 1 "" "standby mode (standby.signal in the working directory), storage down: exit 1"
expect_file_absent "$PGT/sb/RECOVERYXLOG" "no file at %p"
fetch_in "$PGT/sb" --on-storage-error fatal "$FIRST" "$PGT/sb/RECOVERYXLOG"
expect_tool_error 200 "" "standby mode with --on-storage-error fatal: exit 200"
fetch_in "$PGT/nosb" "$FIRST" "$PGT/nosb/RECOVERYXLOG"
expect_tool_error 200 "" "not in standby mode, storage down: exit 200"
fetch_in "$PGT/nosb" --on-storage-error retry "$FIRST" "$PGT/nosb/RECOVERYXLOG"
expect_tool_error 1 "" "not in standby mode with --on-storage-error retry: exit 1"
expect_file_absent "$PGT/nosb/RECOVERYXLOG" "no file at %p"
(cd "$PGT/sb" && runuser -u postgres -- "$WAL_FETCH" --config "$CFG_S3" 00000001000000FF000000FF "$PGT/sb/RECOVERYXLOG") >"$OUT" 2>"$ERR"
RC=$?
expect_rc 1 "storage up, a segment the archive lacks: exit 1"
# ---------------------------------------------------------------------------------------
section "(i) S3 stalls: both programs give up within their deadline"
CFG_ST="$PGT/stall.conf"
ferry_cfg "$CFG_ST" "repo = s3://$S3RVER_BUCKET/$PFX/main" "s3-endpoint = $PROXY_URL" "${S3CREDS[@]}" \
    "s3-timeout = 2" "s3-retries = 1"
proxy_plan '[{"fault": "stall", "seconds": 120, "times": -1}]'
mkdir -p "$PGT/stall"
cp "$P/pg_wal/$LAST" "$PGT/stall/$LAST" # archived already: exit 0 if S3 answered
chown -R postgres: "$PGT/stall"
t0=$(now)
push_pg "$CFG_ST" "$PGT/stall/$LAST"
took=$(elapsed "$t0")
expect_tool_error 1 "no data moved for 2000 ms" "ferry-wal-push against a stalled S3: exit 1, says no data moved"
expect_le "$took" 30 "within its deadline (${took}s with --s3-timeout 2, --s3-retries 1)"
t0=$(now)
run_pg "$WAL_FETCH" --config "$CFG_ST" "$LAST" "$PGT/stall/RECOVERYXLOG"
took=$(elapsed "$t0")
expect_tool_error 200 "no data moved for 2000 ms" "ferry-wal-fetch against a stalled S3: exit 200, says no data moved"
expect_le "$took" 30 "within its deadline (${took}s)"
expect_file_absent "$PGT/stall/RECOVERYXLOG" "no file at %p"
proxy_plan '[]'

# ---------------------------------------------------------------------------------------
section "(j) prefetch: a damaged spool file is fetched again; no prefetch for other destinations"
mkdir -p "$PGT/pf/pg_wal" "$PGT/pf2"
chown -R postgres: "$PGT/pf" "$PGT/pf2"
SPOOL="$PGT/pf/pg_wal/ferry-prefetch"
S1=$(seg_name 1 1 16777216) S2=$(seg_name 1 2 16777216) S3=$(seg_name 1 3 16777216)
for s in "$S1" "$S2" "$S3"; do
    timeout 60 "$FERRY" repo --config "$CFG_F" get "$(wal_key "$s")" "$T/want-$s" >/dev/null 2>&1
done
run_pg "$WAL_FETCH" --config "$CFG_F" "$S1" "$PGT/pf/pg_wal/RECOVERYXLOG"
expect_rc 0 "fetch $S1 to RECOVERYXLOG"
expect_same_file "$PGT/pf/pg_wal/RECOVERYXLOG" "$T/want-$S1" "it is the archived segment"
for _ in $(seq 1 150); do [ -e "$SPOOL/$S2.sha256" ] && [ -e "$SPOOL/$S3.sha256" ] && break; sleep 0.2; done
expect_eq "$(ls "$SPOOL" 2>/dev/null | grep -c '\.sha256$')" 2 "the prefetcher spooled $S2 and $S3"
python3 - "$SPOOL/$S2" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(5000000)
    b = f.read(1)
    f.seek(-1, 1)
    f.write(bytes([b[0] ^ 0x01]))
PY
rm -f "$PGT/pf/pg_wal/RECOVERYXLOG"
run_pg "$WAL_FETCH" --config "$CFG_F" "$S2" "$PGT/pf/pg_wal/RECOVERYXLOG"
expect_rc 0 "fetch $S2 with its spool copy damaged: exit 0"
expect_contains "$(cat "$ERR")" "prefetched \"$S2\" is damaged, fetching it again" "it says the spool copy is damaged"
expect_same_file "$PGT/pf/pg_wal/RECOVERYXLOG" "$T/want-$S2" "and delivers the archived bytes"
rm -f "$PGT/pf/pg_wal/RECOVERYXLOG"
run_pg "$WAL_FETCH" --config "$CFG_F" --log-level info "$S3" "$PGT/pf/pg_wal/RECOVERYXLOG"
expect_rc 0 "fetch $S3: exit 0"
expect_contains "$(cat "$ERR")" "restored \"$S3\" from the prefetch spool" "from the spool"
expect_same_file "$PGT/pf/pg_wal/RECOVERYXLOG" "$T/want-$S3" "with the archived bytes"
run_pg "$WAL_FETCH" --config "$CFG_F" "$S1" "$PGT/pf2/$S1"
expect_rc 0 "fetch to a destination that is not RECOVERYXLOG (as pg_rewind does)"
sleep 1
expect_file_absent "$PGT/pf2/ferry-prefetch" "no prefetch spool there"

# ---------------------------------------------------------------------------------------
section "(k) the prefetcher answers what its spool cannot; a damaged object or a dead one: the core"
PF="$PGT/pf/pg_wal"
# prefetcher_pid: the process holding the spool's lock
prefetcher_pid() {
    local p
    for p in /proc/[0-9]*; do
        ls -l "$p/fd" 2>/dev/null | grep -q " $SPOOL/.lock\$" && echo "${p#/proc/}"
    done
}
# wait_answering: until a prefetcher listens on the spool's socket
wait_answering() {
    for _ in $(seq 1 100); do
        [ -S "$SPOOL/.sock" ] && [ -n "$(prefetcher_pid)" ] && return 0
        sleep 0.1
    done
    return 1
}
rm -f "$PF/RECOVERYXLOG"
run_pg "$WAL_FETCH" --config "$CFG_F" "$S1" "$PF/RECOVERYXLOG"
expect_rc 0 "fetch $S1 (a prefetcher is at work afterwards)"
wait_answering
expect_eq "$?" 0 "the prefetcher listens on $SPOOL/.sock"
rm -f "$PF/RECOVERYXLOG"
run_pg "$WAL_FETCH" --config "$CFG_F" --log-level info "$S1" "$PF/RECOVERYXLOG"
expect_rc 0 "$S1 asked again (as at the end of recovery): exit 0"
expect_contains "$(cat "$ERR")" "restored \"$S1\" through the prefetcher" "the prefetcher fetched it"
expect_same_file "$PF/RECOVERYXLOG" "$T/want-$S1" "with the archived bytes"
BEYOND=$(seg_name 1 4000 16777216)
run_pg "$WAL_FETCH" --config "$CFG_F" --log-level info "$BEYOND" "$PF/RECOVERYXLOG"
expect_rc 1 "a segment after the end of the archive: exit 1"
expect_eq "$(cat "$ERR")" "ferry-wal-fetch: info: \"$BEYOND\" is not in the archive (asked through the prefetcher)" \
    "the prefetcher looked it up"
expect_same_file "$PF/RECOVERYXLOG" "$T/want-$S1" "and %p is left as it was"
run_pg "$WAL_FETCH" --config "$CFG_F" --log-level info 00000005.history "$PF/RECOVERYHISTORY"
expect_rc 1 "a history file the archive does not have: exit 1"
expect_eq "$(cat "$ERR")" "ferry-wal-fetch: info: \"00000005.history\" is not in the archive (asked through the prefetcher)" \
    "the prefetcher looked it up"
expect_file_absent "$PF/RECOVERYHISTORY" "nothing at %p"
mkdir -p "$PGT/hist/pg_wal"
printf '1\t0/9000000\tno recovery target specified\n' >"$PGT/hist/pg_wal/00000007.history"
chown -R postgres: "$PGT/hist"
run_pg "$WAL_PUSH" --config "$CFG_F" "$PGT/hist/pg_wal/00000007.history"
expect_rc 0 "a history file 00000007.history archived"
run_pg "$WAL_FETCH" --config "$CFG_F" --log-level info 00000007.history "$PF/RECOVERYHISTORY"
expect_rc 0 "fetch it to RECOVERYHISTORY: exit 0"
expect_contains "$(cat "$ERR")" "restored \"00000007.history\" through the prefetcher" "the prefetcher fetched it"
expect_same_file "$PF/RECOVERYHISTORY" "$PGT/hist/pg_wal/00000007.history" "with its bytes"
rm -f "$PF/RECOVERYHISTORY"
OBJ2="$PGT/frepo/$(wal_key "$S2")"
cp -p "$OBJ2" "$T/good-object-2"
flip_middle_byte "$OBJ2"
rm -f "$PF/RECOVERYXLOG"
run_pg "$WAL_FETCH" --config "$CFG_F" "$S2" "$PF/RECOVERYXLOG"
expect_tool_error 200 "damaged" "$S2 damaged in the archive: the core reports it, exit 200"
expect_file_absent "$PF/RECOVERYXLOG" "nothing at %p"
expect_file_absent "$SPOOL/$S2" "nor in the spool"
cp -p "$T/good-object-2" "$OBJ2"
pid=$(prefetcher_pid)
[ -n "$pid" ] && kill -9 $pid
for _ in $(seq 1 50); do [ -z "$(prefetcher_pid)" ] && break; sleep 0.1; done
expect_eq "$(prefetcher_pid)" "" "the prefetcher killed (-9)"
expect_eq "$([ -S "$SPOOL/.sock" ] && echo left)" left "its socket is left behind"
run_pg "$WAL_FETCH" --config "$CFG_F" --log-level info "$S1" "$PF/RECOVERYXLOG"
expect_rc 0 "with nobody behind the socket, $S1: exit 0"
expect_eq "$(cat "$ERR")" "ferry-wal-fetch: info: restored \"$S1\"" "the core fetched it"
expect_same_file "$PF/RECOVERYXLOG" "$T/want-$S1" "with the archived bytes"
wait_answering
expect_eq "$?" 0 "the new prefetcher listens on the socket again"
rm -f "$PF/RECOVERYXLOG"
run_pg "$WAL_FETCH" --config "$CFG_F" --log-level info "$S1" "$PF/RECOVERYXLOG"
expect_rc 0 "and $S1 again: exit 0"
expect_contains "$(cat "$ERR")" "restored \"$S1\" through the prefetcher" "answered by the new prefetcher"
pg_stop "$P"
pg_stop "$Q"
done_testing
