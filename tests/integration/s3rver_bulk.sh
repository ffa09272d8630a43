#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# s3rver, volume: a 100 MiB stream from stdin (multipart, several parts) round-trips with the
# same sha256; ls over 2500 keys pages with ListObjectsV2 continuation (3 pages of 1000);
# rm of 2500 keys uses DeleteObjects in batches (3 requests). Requests are counted through
# the fault proxy with an empty plan.
. "$(dirname "$0")/lib.sh"
use_servers

export AWS_ACCESS_KEY_ID="$S3RVER_ACCESS_KEY_ID" AWS_SECRET_ACCESS_KEY="$S3RVER_SECRET_ACCESS_KEY"
start_proxy "$S3RVER_ENDPOINT"
URL="s3://$S3RVER_BUCKET/$PFX"
REPO_OPTS=(--repo "$URL" --s3-endpoint "$PROXY_URL" --s3-region us-east-1)
on_exit "aws_s3rver s3 rm --recursive --quiet s3://$S3RVER_BUCKET/$PFX/"

section "100 MiB from stdin, multipart"
rand_file "$T/big" $((100 * 1024 * 1024))
want=$(sha "$T/big")
proxy_plan '[]'
start=$(now)
ferry_in "$T/big" put stream/100m - --compress none --s3-part-size 16M
expect_ok "put 100 MiB from stdin"
diag "put took $(elapsed "$start") s"
parts=$(proxy_count PUT "/stream/100m$" "partNumber=")
expect_ge "$parts" 7 "uploaded as multipart ($parts UploadPart requests for 100 MiB in 16 MiB parts)"
expect_eq "$(proxy_count POST "/stream/100m$" "uploadId=")" 1 "one CompleteMultipartUpload"
start=$(now)
timeout -k 5 "$CMD_TIMEOUT" "$FERRY" repo "${REPO_OPTS[@]}" get stream/100m - 2>"$ERR" | sha256sum | cut -d' ' -f1 >"$T/sum"
expect_eq "$(cat "$T/sum")" "$want" "get to stdout has the same sha256"
diag "get took $(elapsed "$start") s"
ferry_run stat stream/100m --json
got=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["size"])' "$OUT" 2>&1)
want=$(aws_s3rver s3api head-object --bucket "$S3RVER_BUCKET" --key "$PFX/stream/100m" --query ContentLength --output text 2>&1)
expect_eq "$got" "$want" "stat size is the stored size awscli reports"
expect_ge "$got" 104857600 "stored size is at least the 100 MiB streamed (--compress none)"
rm -f "$T/big"

section "2500 keys: ls pagination"
# created straight on s3rver with curl in parallel (s3rver checks no signature)
printf 'x' >"$T/x"
: >"$T/curl.cfg"
for i in $(seq -w 1 2500); do
    printf 'url = "%s/%s/%s/many/k%s"\nupload-file = "%s"\noutput = "/dev/null"\n' \
        "$S3RVER_ENDPOINT" "$S3RVER_BUCKET" "$PFX" "$i" "$T/x" >>"$T/curl.cfg"
done
curl -s -f --parallel --parallel-max 16 -K "$T/curl.cfg"
expect_eq "$?" 0 "2500 keys created"
proxy_plan '[]'
ferry_run ls many/
expect_ok "ls many/"
expect_eq "$(wc -l <"$OUT" | tr -d ' ')" 2500 "ls lists all 2500 keys"
expect_eq "$(head -1 "$OUT") $(tail -1 "$OUT")" "many/k0001 many/k2500" "first and last keys in order"
expect_eq "$(sort -c "$OUT" 2>&1 && echo sorted)" "sorted" "ls output is sorted"
expect_eq "$(sort -u "$OUT" | wc -l | tr -d ' ')" 2500 "no key listed twice"
lists=$(proxy_count GET "/$S3RVER_BUCKET/?$" "list-type=2")
expect_eq "$lists" 3 "ListObjectsV2 paged: 3 requests of up to 1000 keys"
expect_eq "$(proxy_count GET "/$S3RVER_BUCKET/?$" "continuation-token=")" 2 "two of them carry a continuation token"

section "2500 keys: rm in DeleteObjects batches"
proxy_plan '[]'
ferry_run rm $(cat "$OUT")
expect_ok "rm of 2500 keys in one command"
# s3rver answers 500 to some concurrent DeleteObjects (its file store races on shared
# directories); ferry retries them, so count the batches that succeeded
expect_eq "$(proxy_count_status POST "/$S3RVER_BUCKET/?$" "delete" 200)" 3 "DeleteObjects in 3 batches (1000 + 1000 + 500)"
diag "DeleteObjects requests in all (with retries of s3rver's 500s): $(proxy_count POST "/$S3RVER_BUCKET/?$" "delete")"
expect_eq "$(proxy_count DELETE ".")" 0 "no single DELETE requests"
n=$(aws_s3rver s3api list-objects-v2 --bucket "$S3RVER_BUCKET" --prefix "$PFX/many/" --query 'length(Contents || `[]`)' --output text)
expect_eq "$n" 0 "awscli sees no key left"

done_testing
