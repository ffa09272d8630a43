#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# s3rver (lax S3: no signature, SSE or conditional checks): put/get/ls/stat/rm round trips
# (0 B, 1 B, 16 MiB), interop with awscli both ways (byte-identical), and the conditional
# create fallback: s3rver ignores If-None-Match, yet a second put of a key is refused (exit 4).
. "$(dirname "$0")/lib.sh"
use_servers

export AWS_ACCESS_KEY_ID="$S3RVER_ACCESS_KEY_ID" AWS_SECRET_ACCESS_KEY="$S3RVER_SECRET_ACCESS_KEY"
URL="s3://$S3RVER_BUCKET/$PFX"
REPO_OPTS=(--repo "$URL" --s3-endpoint "$S3RVER_ENDPOINT" --s3-region us-east-1)
on_exit "aws_s3rver s3 rm --recursive --quiet s3://$S3RVER_BUCKET/$PFX/"

rand_file "$T/zero" 0
rand_file "$T/one" 1
rand_file "$T/big" $((16 * 1024 * 1024))

section "round trips"
for f in zero one big; do
    ferry_run put "rt/$f" "$T/$f"
    expect_ok "put $f ($(stat -c %s "$T/$f") bytes)"
    rm -f "$T/got"
    ferry_run get "rt/$f" "$T/got"
    expect_ok "get $f"
    expect_same_file "$T/got" "$T/$f" "$f round-trips byte-identical"
    ferry_run put "raw/$f" "$T/$f" --raw
    expect_ok "put --raw $f"
    rm -f "$T/got"
    ferry_run get "raw/$f" "$T/got" --raw
    expect_same_file "$T/got" "$T/$f" "get --raw $f byte-identical"
done
ferry_in "$T/big" put rt/stdin -
expect_ok "put 16 MiB from stdin"
ferry_run get rt/stdin -
expect_same_file "$OUT" "$T/big" "stdin -> stdout round trip"

section "ls, stat, rm"
ferry_run ls raw/
expect_eq "$(cat "$OUT")" "$(printf 'raw/big\nraw/one\nraw/zero')" "ls lists the keys, sorted, relative to the repository"
ferry_run ls --delimiter /
expect_eq "$(cat "$OUT")" "$(printf 'raw/\nrt/')" "ls --delimiter / at the root"
ferry_run ls raw/ -l
expect_eq "$(awk '{print $1}' "$OUT" | tr '\n' ' ')" "16777216 1 0 " "ls -l sizes"
ferry_run stat raw/big --json
expect_ok "stat --json"
got=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["size"])' "$OUT" 2>&1)
expect_eq "$got" "16777216" "stat --json size"
ferry_run stat raw/none
expect_error 3 "not found" "stat of a missing key: exit 3"
rm -f "$T/got"
ferry_run get raw/none "$T/got"
expect_error 3 "not found" "get of a missing key: exit 3"
expect_file_absent "$T/got" "no output file for a missing key"
ferry_run rm raw/zero raw/one
expect_ok "rm two keys"
ferry_run ls raw/
expect_eq "$(cat "$OUT")" "raw/big" "rm removed exactly those keys"

section "interop with awscli"
ferry_run put interop/from-ferry "$T/big" --raw --compress none
expect_ok "ferry put --raw --compress none"
aws_s3rver s3 cp "$URL/interop/from-ferry" "$T/aws-got" --only-show-errors
expect_same_file "$T/aws-got" "$T/big" "aws s3 cp reads back exactly what ferry put --raw"
aws_s3rver s3 cp "$T/big" "$URL/interop/from-aws" --only-show-errors
rm -f "$T/got"
ferry_run get interop/from-aws "$T/got" --raw
expect_ok "ferry get --raw of an object written by awscli"
expect_same_file "$T/got" "$T/big" "ferry get --raw returns exactly what aws s3 cp put (multipart by awscli)"
aws_s3rver s3 cp "$T/one" "$URL/interop/small-from-aws" --only-show-errors
ferry_run get interop/small-from-aws - --raw
expect_same_file "$OUT" "$T/one" "1-byte object from awscli"
ferry_run get interop/from-aws "$T/got2"
expect_rc 5 "get without --raw of a foreign (non-ferry) object: exit 5"

section "conditional create fallback (s3rver ignores If-None-Match)"
rand_file "$T/other" 5000
ferry_run put cond/key "$T/one" --raw
expect_ok "first put"
ferry_run put cond/key "$T/other" --raw
expect_error 4 "already exists" "second put refused: exit 4, already exists"
aws_s3rver s3 cp "$URL/cond/key" "$T/aws-got" --only-show-errors
expect_same_file "$T/aws-got" "$T/one" "the first object is unchanged"
ferry_in "$T/other" put cond/key - --raw
expect_error 4 "already exists" "second put from stdin refused too"
ferry_run put cond/key "$T/other" --raw --force
expect_ok "put --force overwrites"
aws_s3rver s3 cp "$URL/cond/key" "$T/aws-got" --only-show-errors
expect_same_file "$T/aws-got" "$T/other" "after --force the new bytes are there"

done_testing
