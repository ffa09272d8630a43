#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# ferry-verify on an S3 repository (s3rver, client-side encryption): PostgreSQL 15 (1 MiB
# segments) archiving with ferry-wal-push, a backup by ferry-basebackup. It verifies through
# S3 (exit 0); a deleted segment is a gap (exit 2). Through the fault proxy: a response cut
# short is resumed (still intact); while one read stalls the other threads go on (--parallel 4)
# and nothing does with --parallel 1; one segment the server keeps failing (HTTP 500, no retries)
# is "unchecked" and the rest is checked (exit 3); every backup read reset (connection
# failures) stops the run early with the objects left counted as not read (exit 3).
# (s3rver checks no signature: this is about reads, listings and failures, not SigV4.)
. "$(dirname "$0")/lib.sh"
. "$HARNESS/pg.sh"
. "$(dirname "$0")/pg_basebackup_lib.sh"
. "$(dirname "$0")/pg_restore_lib.sh"
. "$(dirname "$0")/pg_verify_lib.sh"
use_servers
on_exit "aws_s3rver s3 rm --recursive --quiet s3://$S3RVER_BUCKET/$PFX/"

head -c 32 /dev/urandom | base64 >"$PGT/key"
chmod 600 "$PGT/key"
chown postgres: "$PGT/key"
CFG="$PGT/ferry.conf"
ferry_cfg "$CFG" "repo = s3://$S3RVER_BUCKET/$PFX" "s3-endpoint = $S3RVER_ENDPOINT" \
    "s3-region = us-east-1" "s3-access-key-id = $S3RVER_ACCESS_KEY_ID" \
    "s3-secret-access-key = $S3RVER_SECRET_ACCESS_KEY" "encryption-key-file = $PGT/key"

section "a primary archiving into s3rver, a backup"
pg_new primary --wal-segsize=1
P="$PGD"
pg_archive_to "$P" "$CFG"
pg_start "$P" || bail "the primary starts" "$(tail -5 "$P.log")"
pg_bench_init "$P" 2 || bail "pgbench -i -s 2" "$(tail -5 "$P.pgbench-init.log")"
pg_marker_table "$P"
vf_backup "$P"
B1="$BID"
pg_marker "$P" 1 one
vf_switch "$P"
MID="$SEG"
pg_marker "$P" 2 two
vf_switch "$P"
pg_wait_no_ready "$P" 30
pg_stop "$P"
NWAL=$(repo_ls "$CFG" pg/wal/ | grep -c .)
pass "backup $B1, $NWAL WAL files"

section "verified through S3"
vf --config "$CFG" --json
expect_vf 0 "exit 0"
expect_eq "$(vf_json 'j["status"]')-$(vf_json 'j["checked"]["backups"]')-$(vf_json 'j["checked"]["wal_files"]')" "intact-1-$NWAL" "intact: the backup and every WAL file read"

section "through the fault proxy"
start_proxy "$S3RVER_ENDPOINT"
VIA=(--config "$CFG" --s3-endpoint "$PROXY_URL")
proxy_plan "[{\"method\": \"GET\", \"path\": \"pg/backups/$B1/base.tar\", \"fault\": \"truncate\", \"after_bytes\": 100000}]"
vf "${VIA[@]}"
expect_vf 0 "a base.tar response cut short is resumed: exit 0"
expect_ge "$(proxy_count GET "pg/backups/$B1/base.tar")" 2 "base.tar was asked for again"

# during_stall: WAL reads that started while the first base.tar read was stalled
during_stall() {
    proxy_log | python3 -c '
import json, sys
log = [json.loads(l) for l in sys.stdin]
b = sorted(e["t"] for e in log if e["path"].endswith("/base.tar"))
print(sum(1 for e in log if "/pg/wal/" in e["path"] and b[0] < e["t"] < b[1]) if len(b) > 1 else -1)'
}
stall="[{\"method\": \"GET\", \"path\": \"pg/backups/$B1/base.tar\", \"fault\": \"stall\", \"phase\": \"body\", \"after_bytes\": 65536, \"seconds\": 3}]"
proxy_plan "$stall"
vf "${VIA[@]}" --parallel 4
expect_vf 0 "base.tar stalled for 3 s (then resumed), --parallel 4: exit 0"
n=$(during_stall)
expect_ge "$n" $((NWAL / 2)) "the other threads read WAL meanwhile ($n of $NWAL files during the stall)"
proxy_plan "$stall"
vf "${VIA[@]}" --parallel 1
expect_vf 0 "the same with --parallel 1: exit 0"
expect_eq "$(during_stall)" 0 "--parallel 1: nothing else was read meanwhile"

proxy_plan "[{\"method\": \"GET\", \"path\": \"$(wal_key "$MID")\$\", \"fault\": \"status\", \"status\": 500, \"code\": \"InternalError\", \"times\": -1}]"
vf "${VIA[@]}" --s3-retries 0 --json
expect_vf 3 "one segment the server cannot serve: exit 3"
expect_eq "$(vf_json '[(p["kind"], p["object"]) for p in j["problems"]]')" "[('unchecked', '$(wal_key "$MID")')]" "that segment is unchecked, nothing else"
expect_eq "$(vf_json 'j["checked"]["wal_files"]')-$(vf_json 'j["checked"]["backups"]')-$(vf_json 'j["checked"]["skipped"]')" "$((NWAL - 1))-1-0" "every other object was checked"
diag "$(vf_json 'j["problems"][0]["detail"]')"

proxy_plan '[{"method": "GET", "path": "pg/(backups|wal)/", "fault": "reset_request", "times": -1}]'
vf "${VIA[@]}" --s3-retries 0 --parallel 1 --json
expect_vf 3 "storage failing: exit 3"
expect_eq "$(vf_json 'j["status"]')" unchecked "status unchecked"
expect_eq "$(vf_json 'len(j["problems"])')" 1 "one unchecked object, then it stopped"
expect_ge "$(vf_json 'j["checked"]["skipped"]')" "$NWAL" "the objects left were not read, and counted"
vf "${VIA[@]}" --s3-retries 0 --parallel 1
expect_contains "$(vf_summary)" " objects not read (storage failing) in " "the text summary says so"

section "damage on S3: a deleted segment"
aws_s3rver s3 rm --quiet "s3://$S3RVER_BUCKET/$PFX/$(wal_key "$MID")"
vf --config "$CFG"
expect_vf 2 "exit 2"
expect_problem "gap $(wal_key "$MID"): segment $MID is not archived: the WAL chain is broken there" "the gap is named"
done_testing
