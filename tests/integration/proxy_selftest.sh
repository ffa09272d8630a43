#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The fault proxy itself, with curl against s3rver: each fault does what the ferry tests rely
# on, for exactly the requests the plan names, and the log counts them. Without this a bug in
# the proxy could pass for a bug (or a fix) in ferry.
. "$(dirname "$0")/lib.sh"
use_servers
start_proxy "$S3RVER_ENDPOINT"
rand_file "$T/data" 1000000
U="$PROXY_URL/$S3RVER_BUCKET/$PFX/obj"
on_exit "aws_s3rver s3 rm --recursive --quiet s3://$S3RVER_BUCKET/$PFX/"

proxy_plan '[]'
code=$(curl -s -o /dev/null -w '%{http_code}' -T "$T/data" "$U")
expect_eq "$code" 200 "pass-through PUT"
code=$(curl -s -o "$T/got" -w '%{http_code}' "$U")
expect_same_file "$T/got" "$T/data" "pass-through GET byte-identical"
expect_eq "$(proxy_count '*' '/obj$')" 2 "2 requests logged"

proxy_plan '[{"method": "GET", "path": "/obj$", "fault": "status", "status": 503, "code": "SlowDown", "times": 2}]'
a=$(curl -s -o "$T/body" -w '%{http_code}' "$U")
b=$(curl -s -o /dev/null -w '%{http_code}' "$U")
c=$(curl -s -o /dev/null -w '%{http_code}' "$U")
expect_eq "$a $b $c" "503 503 200" "status fault for the first 2 requests only"
expect_contains "$(cat "$T/body")" "<Code>SlowDown</Code>" "S3 XML error body with the code"
curl -s -o /dev/null -w '%{http_code}' -I "$U" >/dev/null
expect_eq "$(proxy_count GET '/obj$')" 3 "method filter: the HEAD is not counted as GET"

proxy_plan '[{"method": "GET", "fault": "truncate", "after_bytes": 1000}]'
curl -s -o "$T/got" "$U"
rc=$?
expect_eq "$rc $(stat -c %s "$T/got")" "18 1000" "truncate: curl sees a partial transfer of 1000 bytes"

proxy_plan '[{"method": "GET", "fault": "reset_response", "after_bytes": 1000}]'
curl -s -o "$T/got" "$U"
expect_eq "$?" 56 "reset_response: curl sees a connection reset"

proxy_plan '[{"method": "PUT", "fault": "reset_request"}]'
curl -s -o /dev/null -T "$T/data" "$U"
rc=$?
# 55 (send failure) or 56 (receive failure): which one depends on when the RST lands
expect_contains " 55 56 " " $rc " "reset_request: curl sees a reset while sending (curl exit $rc)"

proxy_plan '[{"method": "GET", "fault": "stall", "seconds": 30}]'
start=$(now)
curl -s -o /dev/null -m 1 "$U"
rc=$?
expect_eq "$rc" 28 "stall: curl times out"
expect_le "$(elapsed "$start")" 3 "after its own deadline"
expect_eq "$(proxy_count GET '/obj$')" 1 "a stalled request is logged at once"

proxy_plan '[{"method": "POST", "query": "uploadId=", "fault": "error200", "times": -1}]'
code=$(curl -s -o "$T/body" -w '%{http_code}' -X POST --data '<x/>' "$U?uploadId=abc")
expect_eq "$code" 200 "error200: status 200"
expect_contains "$(cat "$T/body")" "<Error><Code>InternalError</Code>" "error200: with an Error body"

code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT --data 'not json' "$PROXY_URL/__faultproxy/plan")
expect_eq "$code" 400 "a malformed plan is refused"

done_testing
