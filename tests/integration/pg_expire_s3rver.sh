#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# ferry info and ferry expire against S3 (s3rver) with client-side encryption (the catalogue
# is read through the key): PostgreSQL 15 with 1 MiB segments archiving with ferry-wal-push,
# three backups by ferry-basebackup, an orphan. info --json shows them; expire --retain-full 1
# --dry-run lists exactly what an independent computation expects, the real run deletes
# exactly that through batched DeleteObjects, a rerun deletes nothing, and a restore from the
# kept backup to the end of the archive has every row.
. "$(dirname "$0")/lib.sh"
. "$HARNESS/pg.sh"
. "$(dirname "$0")/pg_basebackup_lib.sh"
. "$(dirname "$0")/pg_restore_lib.sh"
. "$(dirname "$0")/pg_expire_lib.sh"
use_servers
on_exit "aws_s3rver s3 rm --recursive --quiet s3://$S3RVER_BUCKET/$PFX/"

head -c 32 /dev/urandom | base64 >"$PGT/key"
chmod 600 "$PGT/key"
chown postgres: "$PGT/key"
CFG="$PGT/ferry.conf"
ferry_cfg "$CFG" "repo = s3://$S3RVER_BUCKET/$PFX" "s3-endpoint = $S3RVER_ENDPOINT" \
    "s3-region = us-east-1" "s3-access-key-id = $S3RVER_ACCESS_KEY_ID" \
    "s3-secret-access-key = $S3RVER_SECRET_ACCESS_KEY" "encryption-key-file = $PGT/key"
SEGSIZE=1048576
T0=$(now)

section "a primary archiving into s3rver (1 MiB segments); backups B1, B2, B3; an orphan"
pg_new primary --wal-segsize=1
P="$PGD"
pg_archive_to "$P" "$CFG"
pg_start "$P" || bail "the primary starts" "$(tail -5 "$P.log")"
pg_bench_init "$P" 2 || bail "pgbench -i -s 2" "$(tail -5 "$P.pgbench-init.log")"
pg_marker_table "$P"
for i in 1 2 3; do
    bb "$CFG" "$P" -c fast --json
    [ "$RC" = 0 ] || bail "backup B$i" "$(_show_io)"
    eval "B$i=\$(jget \"\$OUT\" 'j[\"id\"]')"
    pg_marker "$P" "$i" "after-b$i"
    pg_switch "$P" >/dev/null
    pg_sql "$P" "select 1" >/dev/null
    last=$(pg_switch "$P")
    pg_wait_archived "$P" "$last" 60 || bail "archived after B$i" "$(tail -5 "$P.log")"
    sleep 1.1
done
pg_wait_no_ready "$P" 30
pass "backups $B1 $B2 $B3, archived up to $last"
MARKERS=$(pg_markers "$P")
pg_stop "$P"
echo x >"$PGT/small"
chown postgres: "$PGT/small"
run_pg "$FERRY" repo --config "$CFG" put pg/junk.txt "$PGT/small"
expect_ok "an orphan pg/junk.txt"

section "ferry info"
fr info --config "$CFG" --json
expect_ok "ferry info --json (the catalogue decrypted with the key)"
cp "$OUT" "$T/info.json"
expect_eq "$(jget "$T/info.json" '" ".join(b["id"] + ":" + b["status"] for b in j["backups"])')" \
    "$B1:complete $B2:complete $B3:complete" "three complete backups, in order"
expect_eq "$(jget "$T/info.json" 'j["recovery_point"]["backup_last_id"]')" "$B3" "the newest is B3"
expect_eq "$(jget "$T/info.json" '[t["timeline"] for t in j["wal"]["timelines"]]')" "[1]" "one timeline"
expect_eq "$(jget "$T/info.json" 'j["wal"]["timelines"][0]["last"]')" "$last" "its last segment is $last"
expect_eq "$(jget "$T/info.json" 'j["stored"]["objects"]')" "$(repo_keys "$CFG" | wc -l)" "object count = the listing's"

section "ferry expire --retain-full 1"
BEFORE=$(repo_keys "$CFG")
expected_expiry "$CFG" 24 "$B3" >"$T/expected"
fr expire --config "$CFG" --retain-full 1 --dry-run
expect_ok "--dry-run"
cp "$OUT" "$T/dry"
expect_eq "$(cat "$T/dry")" "$(cat "$T/expected")" "the list is the expected one ($(wc -l <"$T/expected") keys)"
expect_eq "$(repo_keys "$CFG")" "$BEFORE" "--dry-run deleted nothing"
T1=$(now)
fr expire --config "$CFG" --retain-full 1
expect_ok "the real run ($(elapsed "$T1") s)"
expect_eq "$(cat "$OUT")" "$(cat "$T/dry")" "it printed the dry run's list"
expect_eq "$(comm -23 <(echo "$BEFORE") <(repo_keys "$CFG"))" "$(LC_ALL=C sort "$T/dry")" "exactly those keys are gone"
expect_eq "$(catalog_ids "$CFG" | tr '\n' ' ')" "$B3 " "the catalogue holds B3"
fr expire --config "$CFG" --retain-full 1
expect_eq "$RC:$(cat "$OUT")" "0:" "a rerun deletes nothing"

section "restore from B3 to the end of the archive"
E=$(pgdir end)
rs --config "$CFG" -D "$E" --archive-mode off
expect_ok "ferry-restore (latest)"
rs_adopt "$E"
if pg_start "$E" && pg_wait_promoted "$E"; then
    pass "recovery to the end of the archive ends and the server is promoted"
else
    fail "recovery to the end of the archive ends and the server is promoted" "$(tail -15 "$E.log")"
fi
expect_eq "$(pg_markers "$E")" "$MARKERS" "every marker row"
pg_stop "$E"
diag "total $(elapsed "$T0") s"
done_testing
