#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# ferry-restore from s3rver (PostgreSQL 15, client-side encryption): two base backups by
# ferry-basebackup; the backup is chosen by the target (an LSN before the second backup picks the
# first, an LSN after it the second), --target-name with --backup, and the restored servers have
# exactly the rows before each target (with --archive-mode off: their new timelines stay out of
# the archive). Repository options given as flags are passed on to
# ferry-wal-fetch in restore_command; the secret key never is (it stays in the config file).
# (s3rver's key id and secret are both "S3RVER": the checks look for the option name.)
. "$(dirname "$0")/lib.sh"
. "$HARNESS/pg.sh"
. "$(dirname "$0")/pg_basebackup_lib.sh"
. "$(dirname "$0")/pg_restore_lib.sh"
use_servers
on_exit "aws_s3rver s3 rm --recursive --quiet s3://$S3RVER_BUCKET/$PFX/"

head -c 32 /dev/urandom | base64 >"$PGT/key"
chmod 600 "$PGT/key"
chown postgres: "$PGT/key"
CFG="$PGT/ferry.conf"
ferry_cfg "$CFG" "repo = s3://$S3RVER_BUCKET/$PFX" "s3-endpoint = $S3RVER_ENDPOINT" \
    "s3-region = us-east-1" "s3-access-key-id = $S3RVER_ACCESS_KEY_ID" \
    "s3-secret-access-key = $S3RVER_SECRET_ACCESS_KEY" "encryption-key-file = $PGT/key"
# only the secret in a config file; the rest given as flags to ferry-restore
SECRET_CFG="$PGT/creds.conf"
ferry_cfg "$SECRET_CFG" "s3-secret-access-key = $S3RVER_SECRET_ACCESS_KEY"
RS_OPTS=(--config "$SECRET_CFG" --repo "s3://$S3RVER_BUCKET/$PFX" --s3-endpoint "$S3RVER_ENDPOINT"
    --s3-region us-east-1 --s3-access-key-id "$S3RVER_ACCESS_KEY_ID" --encryption-key-file "$PGT/key")

section "a primary archiving into s3rver; two base backups; markers and targets between them"
pg_new primary
P="$PGD"
pg_archive_to "$P" "$CFG"
pg_start "$P" || bail "the primary starts" "$(tail -5 "$P.log")"
pg_bench_init "$P" 5 || bail "pgbench -i -s 5" "$(tail -5 "$P.pgbench-init.log")"
pg_marker_table "$P"
bb "$CFG" "$P" -c fast --json
expect_ok "first ferry-basebackup"
ID1=$(jget "$OUT" 'j["id"]')
pg_marker "$P" 1 one && pg_marker "$P" 2 two
LSN_A=$(pg_sql "$P" "select pg_current_wal_insert_lsn()")
pg_sql "$P" "select pg_create_restore_point('rp1')" >/dev/null
pg_marker "$P" 3 three && pg_marker "$P" 4 four
sleep 1
bb "$CFG" "$P" -c fast --json
expect_ok "second ferry-basebackup"
ID2=$(jget "$OUT" 'j["id"]')
pg_marker "$P" 5 five
LSN_B=$(pg_sql "$P" "select pg_current_wal_insert_lsn()")
pg_marker "$P" 6 six
LAST=$(pg_switch "$P")
pg_wait_archived "$P" "$LAST" 90 && pg_wait_no_ready "$P" 30
expect_eq "$?" 0 "every segment up to $LAST is archived"
diag "backups $ID1 $ID2, LSN A $LSN_A (before the second), LSN B $LSN_B (after it)"

section "the backup follows the target"
D=$(pgdir plan)
rs "${RS_OPTS[@]}" -D "$D" --target-lsn "$LSN_A" --dry-run --json
expect_ok "--dry-run --target-lsn A"
expect_eq "$(jget "$OUT" 'j["backup"]')" "$ID1" "an LSN before the second backup ends picks the first"
rs "${RS_OPTS[@]}" -D "$D" --target-lsn "$LSN_B" --dry-run --json
expect_eq "$(jget "$OUT" 'j["backup"]')" "$ID2" "an LSN after it picks the second"
expect_eq "$(jget "$OUT" 'j["why"]')" "the newest of 2 backups on timeline 1 that end before the target LSN $LSN_B (2 in the repository)" "and says why"
rs "${RS_OPTS[@]}" -D "$D" --dry-run --json
expect_eq "$(jget "$OUT" 'j["backup"]')" "$ID2" "latest picks the newest"
rs "${RS_OPTS[@]}" -D "$D" --target-lsn 0/1000 --dry-run
expect_rs_error "no backup ends before the target: the oldest backup \"$ID1\" ends at LSN " "an LSN before every backup is refused"
rs "${RS_OPTS[@]}" -D "$D" --backup 20200101T000000Z --dry-run
expect_rs_error 'no complete backup "20200101T000000Z" in the repository' "--backup of an unknown ID"

section "PITR to LSN B from s3rver"
R=$(pgdir lsn)
T0=$(now)
rs "${RS_OPTS[@]}" -D "$R" --target-lsn "$LSN_B" --target-action promote --archive-mode off
expect_ok "ferry-restore --target-lsn B ($(elapsed "$T0") s)"
auto=$(cat "$R/postgresql.auto.conf")
expect_contains "$auto" "--repo=s3://$S3RVER_BUCKET/$PFX --s3-endpoint=$S3RVER_ENDPOINT --s3-region=us-east-1 --s3-access-key-id=$S3RVER_ACCESS_KEY_ID --encryption-key-file=$PGT/key %f %p'" \
    "restore_command has the repository options given as flags"
expect_contains "$auto" "--config=$SECRET_CFG " "and the config file"
expect_not_contains "$auto" "secret" "but not the secret key"
rs_adopt "$R"
if pg_start "$R" && pg_wait_promoted "$R"; then pass "recovered and promoted"; else fail "recovered and promoted" "$(tail -15 "$R.log")"; fi
expect_eq "$(pg_markers "$R")" "1:one,2:two,3:three,4:four,5:five" "rows 1-5: everything up to LSN B"
pg_stop "$R"

section "PITR to restore point rp1 from the first backup"
R=$(pgdir name)
rs "${RS_OPTS[@]}" -D "$R" --target-name rp1 --backup "$ID1" --target-action promote --archive-mode off
expect_ok "ferry-restore --target-name rp1 --backup $ID1"
rs_adopt "$R"
if pg_start "$R" && pg_wait_promoted "$R"; then pass "recovered and promoted"; else fail "recovered and promoted" "$(tail -15 "$R.log")"; fi
expect_eq "$(pg_markers "$R")" "1:one,2:two" "rows 1-2: everything before the restore point"
pg_stop "$R"

section "a secret given in the environment is not written, and it says so"
R=$(pgdir envsecret)
FERRY_S3_SECRET_ACCESS_KEY="$S3RVER_SECRET_ACCESS_KEY" rs --config /dev/null "${RS_OPTS[@]:2}" -D "$R"
expect_ok "ferry-restore with the secret in FERRY_S3_SECRET_ACCESS_KEY"
expect_contains "$(cat "$ERR")" "warning: --s3-secret-access-key is not written into postgresql.auto.conf" "a warning says the secret is not passed on"
expect_not_contains "$(cat "$R/postgresql.auto.conf")" "secret" "postgresql.auto.conf lacks the secret"
done_testing
