#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Real PostgreSQL 15 archiving into s3rver (lax S3, http) with ferry-wal-push under pgbench
# load (16 MiB segments); credentials in a config file (mode 0600, owned by postgres); every
# file PostgreSQL marked .done is in the repository; base backup (pg_basebackup -X none);
# PITR with ferry-wal-fetch to a time between two known commits gives exactly the rows
# before it; a recovery to the end of the archive gives every committed row.
. "$(dirname "$0")/lib.sh"
. "$HARNESS/pg.sh"
use_servers
on_exit "aws_s3rver s3 rm --recursive --quiet s3://$S3RVER_BUCKET/$PFX/"

CFG="$PGT/ferry.conf"
ferry_cfg "$CFG" "repo = s3://$S3RVER_BUCKET/$PFX" "s3-endpoint = $S3RVER_ENDPOINT" \
    "s3-region = us-east-1" "s3-access-key-id = $S3RVER_ACCESS_KEY_ID" \
    "s3-secret-access-key = $S3RVER_SECRET_ACCESS_KEY"

pitr_roundtrip "$CFG" 16
done_testing
