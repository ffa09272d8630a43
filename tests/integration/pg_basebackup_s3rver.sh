#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# ferry-basebackup against real PostgreSQL 15 into s3rver (lax S3, http), under pgbench load,
# with client-side encryption and 5 MiB multipart parts (through the fault proxy: one part
# upload answered 503 and retried): the catalogue entry is sane, its WAL
# range is archived, every part decodes to its recorded size and checksum, and Debian's
# pg_verifybackup passes on a data directory built from the stored tars. --progress draws one
# line on stderr, rewritten in place.
. "$(dirname "$0")/lib.sh"
. "$HARNESS/pg.sh"
. "$(dirname "$0")/pg_basebackup_lib.sh"
use_servers
on_exit "aws_s3rver s3 rm --recursive --quiet s3://$S3RVER_BUCKET/$PFX/"

head -c 32 /dev/urandom | base64 >"$PGT/key"
chmod 600 "$PGT/key"
chown postgres: "$PGT/key"
CFG="$PGT/ferry.conf"
ferry_cfg "$CFG" "repo = s3://$S3RVER_BUCKET/$PFX" "s3-endpoint = $S3RVER_ENDPOINT" \
    "s3-region = us-east-1" "s3-access-key-id = $S3RVER_ACCESS_KEY_ID" \
    "s3-secret-access-key = $S3RVER_SECRET_ACCESS_KEY" "encryption-key-file = $PGT/key" \
    "s3-part-size = 5M"

section "a primary archiving with ferry-wal-push into s3rver, under pgbench load"
pg_new primary
P="$PGD"
pg_archive_to "$P" "$CFG"
pg_start "$P" || bail "the primary starts" "$(tail -5 "$P.log")"
pg_bench_init "$P" 5 || bail "pgbench -i -s 5" "$(tail -5 "$P.pgbench-init.log")"
pass "pgbench -i -s 5"

# through the fault proxy: the first upload of part 2 of base.tar gets a 503 (then retried)
start_proxy "$S3RVER_ENDPOINT"
proxy_plan '[{"method": "PUT", "path": "/base\\.tar$", "query": "partNumber=2(&|$)", "times": 1, "fault": "status", "status": 503, "code": "SlowDown"}]'
pg_bench_load "$P" 10 &
LOAD=$!
sleep 1
T0=$(now)
bb "$CFG" "$P" -c fast --json --progress --s3-endpoint "$PROXY_URL"
expect_ok "ferry-basebackup -c fast --json --progress to s3rver under load, one part answered 503 ($(elapsed "$T0") s)"
wait "$LOAD"
expect_eq "$?" 0 "pgbench ran during the backup"
cp "$OUT" "$T/entry.json"
J="$T/entry.json"
expect_eq "$(jget "$J" '" ".join(p["name"] for p in j["parts"])')" "base.tar backup_manifest" "parts: base.tar, backup_manifest"
bb_check_entry "$CFG" "$J" "$P"
got=$(tr '\r' '\n' <"$ERR" | grep -c '^ferry-basebackup: .* of ~.*/s')
expect_ge "$got" 1 "--progress: lines with bytes of the estimate and a rate ($got)"
expect_eq "$(tr -cd '\n' <"$ERR" | wc -c)" 1 "--progress: one line rewritten in place (one newline at the end)"
n=$(proxy_count PUT '/base\.tar$' 'partNumber=')
expect_ge "$n" 3 "base.tar went up as a multipart upload in 5 MiB parts ($n part uploads, one retried)"
expect_eq "$(proxy_count PUT '/base\.tar$' 'partNumber=2(&|$)')" 2 "the part answered 503 was sent again"
key=$(jget "$J" '[p["key"] for p in j["parts"] if p["name"] == "base.tar"][0]')
aws_s3rver s3api get-object --bucket "$S3RVER_BUCKET" --key "$PFX/$key" "$T/raw" >/dev/null 2>&1
expect_eq "$(grep -c 'PG_VERSION\|pgbench_accounts' "$T/raw")" 0 "the stored object is encrypted (no plaintext strings)"
rm -f "$T/raw"

section "S3 refuses the parts: a clear error, no catalogue entry"
proxy_plan '[{"method": "PUT", "path": "/base\\.tar$", "times": -1, "fault": "status", "status": 403, "code": "AccessDenied", "message": "Access Denied"}]'
before=$(catalog_ids "$CFG")
bb "$CFG" "$P" -c fast --s3-endpoint "$PROXY_URL"
expect_bb_error "base.tar\"" "the storage error names the part"
expect_contains "$(cat "$ERR")" "AccessDenied" "and the S3 error code"
expect_eq "$(catalog_ids "$CFG")" "$before" "no new catalogue entry"
proxy_plan '[]'

section "pg_verifybackup (Debian's 15) on a data directory built from the stored tars"
if bb_extract "$CFG" "$J" "$PGT/restored"; then pass "extracted with ferry repo get + tar"; else fail "extracted with ferry repo get + tar"; fi
run_pg "$PG_VERIFYBACKUP" -n "$PGT/restored"
expect_ok "pg_verifybackup -n passes"
expect_contains "$(cat "$OUT")" "backup successfully verified" "pg_verifybackup: backup successfully verified"
done_testing
