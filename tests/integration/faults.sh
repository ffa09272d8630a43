#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Retries and resumption, through tests/harness/faultproxy.py in front of s3rver:
# 503 twice then OK (3 attempts); SlowDown retried; 403 not retried (1 attempt); a reset
# request body retried; a GET reset or truncated mid-body resumed with a Range request,
# byte-identical, never a short file; a stall past --s3-timeout retried, and a clean timeout
# error in bounded time when it stalls forever; an unreachable endpoint fails quickly.
. "$(dirname "$0")/lib.sh"
use_servers

export AWS_ACCESS_KEY_ID="$S3RVER_ACCESS_KEY_ID" AWS_SECRET_ACCESS_KEY="$S3RVER_SECRET_ACCESS_KEY"
start_proxy "$S3RVER_ENDPOINT"
URL="s3://$S3RVER_BUCKET/$PFX"
REPO_OPTS=(--repo "$URL" --s3-endpoint "$PROXY_URL" --s3-region us-east-1)
on_exit "aws_s3rver s3 rm --recursive --quiet s3://$S3RVER_BUCKET/$PFX/"
P="/$S3RVER_BUCKET/$PFX"

rand_file "$T/small" 3000
rand_file "$T/big" $((8 * 1024 * 1024))

# ranges METHOD PATH_REGEX: the Range headers of the matching requests, space-separated
ranges() {
    proxy_log | python3 -c '
import json, re, sys
print(" ".join(str(e["range"]) for e in map(json.loads, sys.stdin)
               if e["method"] == sys.argv[1] and re.search(sys.argv[2], e["path"])))' "$@"
}

section "5xx on PUT"
proxy_plan '[{"method": "PUT", "path": "/put/503$", "fault": "status", "status": 503, "times": 2}]'
ferry_run put put/503 "$T/small" --raw
expect_ok "put succeeds after two 503 answers"
expect_eq "$(proxy_count PUT "/put/503$")" 3 "the proxy saw 3 PUT attempts"
aws_s3rver s3 cp "$URL/put/503" "$T/got" --only-show-errors
expect_same_file "$T/got" "$T/small" "the stored object is complete"

proxy_plan '[{"method": "PUT", "path": "/put/slowdown$", "fault": "status", "status": 503, "code": "SlowDown", "times": 1}]'
ferry_run put put/slowdown "$T/small" --raw
expect_ok "put succeeds after 503 SlowDown"
expect_eq "$(proxy_count PUT '/put/slowdown$')" 2 "SlowDown was retried once"

proxy_plan '[{"method": "PUT", "path": "/put/500$", "fault": "status", "status": 500, "times": 1}]'
ferry_run put put/500 "$T/small" --raw
expect_ok "put succeeds after 500 InternalError"
expect_eq "$(proxy_count PUT '/put/500$')" 2 "500 was retried once"

proxy_plan '[{"method": "PUT", "path": "/put/503-always$", "fault": "status", "status": 503, "times": -1}]'
ferry_run put put/503-always "$T/small" --raw --s3-retries 2
expect_error 1 "503" "put failing with 503 forever: exit 1 after the retries, names the status"
expect_eq "$(proxy_count PUT '/put/503-always$')" 3 "--s3-retries 2 means 3 attempts"
ferry_run stat put/503-always
expect_rc 3 "nothing stored"

section "4xx is not retried"
proxy_plan '[{"method": "PUT", "path": "/put/403$", "fault": "status", "status": 403, "code": "AccessDenied", "times": -1}]'
ferry_run put put/403 "$T/small" --raw
expect_error 1 "AccessDenied" "403 AccessDenied: exit 1, names the code"
expect_eq "$(proxy_count PUT '/put/403$')" 1 "403 was not retried (1 attempt)"
proxy_plan '[{"method": "GET", "path": "/put/503$", "fault": "status", "status": 403, "code": "AccessDenied", "times": -1}]'
ferry_run get put/503 "$T/got" --raw
expect_error 1 "AccessDenied" "GET 403: exit 1"
expect_eq "$(proxy_count GET '/put/503$')" 1 "GET 403 was not retried"

section "connection reset while sending a PUT body"
proxy_plan '[{"method": "PUT", "path": "/put/reset$", "fault": "reset_request", "times": 1}]'
ferry_run put put/reset "$T/big" --raw
expect_ok "put succeeds after a reset mid-body"
expect_eq "$(proxy_count PUT '/put/reset$')" 2 "2 PUT attempts"
aws_s3rver s3 cp "$URL/put/reset" "$T/got" --only-show-errors
expect_same_file "$T/got" "$T/big" "the stored object is complete and exact"

section "GET resumed with Range"
aws_s3rver s3 cp "$T/big" "$URL/get/big" --only-show-errors
proxy_plan '[{"method": "GET", "path": "/get/big$", "fault": "reset_response", "after_bytes": 3145728, "times": 1}]'
rm -f "$T/got"
ferry_run get get/big "$T/got" --raw
expect_ok "get succeeds after a reset mid-body"
expect_same_file "$T/got" "$T/big" "output byte-identical after the reset"
r=$(ranges GET '/get/big$')
expect_eq "$(proxy_count GET '/get/big$')" 2 "2 GET requests"
# a RST makes the client's kernel drop what it had not read yet: the resume point is at
# most the 3 MiB the proxy sent, and more than 0
from=$(echo "$r" | sed -n 's/^None bytes=\([0-9]*\)-$/\1/p')
expect_ge "${from:-0}" 1 "the second GET asks for the rest with a Range \"bytes=N-\" (seen: $r)"
expect_le "${from:-0}" 3145728 "N is not beyond the bytes sent before the reset"

proxy_plan '[{"method": "GET", "path": "/get/big$", "fault": "truncate", "after_bytes": 1000000, "times": 1}]'
rm -f "$T/got"
ferry_run get get/big "$T/got" --raw
expect_ok "get succeeds after a truncated body"
expect_same_file "$T/got" "$T/big" "output byte-identical after the truncation"
r=$(ranges GET '/get/big$')
expect_contains "$r" "bytes=1000000-" "resumed at the byte where the body stopped (seen: $r)"

proxy_plan '[{"method": "GET", "path": "/get/big$", "fault": "truncate", "after_bytes": 1000000, "times": -1}]'
rm -f "$T/got"
ferry_run get get/big "$T/got" --raw --s3-retries 2
expect_rc 1 "a body truncated on every attempt: exit 1"
expect_file_absent "$T/got" "never a short file"
ferry_run get get/big - --raw --s3-retries 2
expect_rc 1 "same to stdout: exit 1"

proxy_plan '[{"method": "GET", "path": "/get/big$", "fault": "truncate", "after_bytes": 1000000, "times": 1}]'
ferry_run get get/big - --raw
expect_same_file "$OUT" "$T/big" "resumed to stdout, byte-identical"

section "deadlines"
proxy_plan '[{"method": "GET", "path": "/get/big$", "fault": "stall", "seconds": 60, "times": 1}]'
rm -f "$T/got"
start=$(now)
ferry_run get get/big "$T/got" --raw --s3-timeout 2
took=$(elapsed "$start")
expect_ok "get succeeds when the first answer stalls past --s3-timeout 2"
expect_same_file "$T/got" "$T/big" "byte-identical"
expect_le "$took" 20 "retried after the deadline, not after the stall (took ${took}s)"
expect_eq "$(proxy_count GET '/get/big$')" 2 "2 GET attempts"

proxy_plan '[{"method": "GET", "path": "/get/big$", "fault": "stall", "phase": "body", "after_bytes": 2000000, "seconds": 60, "times": 1}]'
rm -f "$T/got"
start=$(now)
ferry_run get get/big "$T/got" --raw --s3-timeout 2
took=$(elapsed "$start")
expect_ok "get succeeds when the body stalls mid-way"
expect_same_file "$T/got" "$T/big" "byte-identical"
expect_contains "$(ranges GET '/get/big$')" "bytes=2000000-" "resumed with a Range after the stall"
expect_le "$took" 20 "within a bounded time (${took}s)"

proxy_plan '[{"method": "PUT", "path": "/put/stall$", "fault": "stall", "seconds": 60, "times": 1}]'
start=$(now)
ferry_run put put/stall "$T/small" --raw --s3-timeout 2
expect_ok "put succeeds when the first PUT stalls"
expect_le "$(elapsed "$start")" 20 "within a bounded time"

proxy_plan '[{"method": "GET", "path": "/get/big$", "fault": "stall", "times": -1}]'
rm -f "$T/got"
start=$(now)
ferry_run get get/big "$T/got" --raw --s3-timeout 2 --s3-retries 2
took=$(elapsed "$start")
expect_error 1 "no data moved for 2000 ms" "a server that stalls forever: exit 1, no data moved for 2000 ms"
expect_le "$took" 30 "the timeout comes in bounded time (${took}s for 3 attempts of 2 s)"
expect_ge "$took" 6 "after the 3 attempts"
expect_eq "$(proxy_count GET '/get/big$')" 3 "3 GET attempts"
expect_file_absent "$T/got" "no output file"

section "unreachable endpoint"
port=$(free_port)
start=$(now)
REPO_OPTS=(--repo "$URL" --s3-endpoint "http://127.0.0.1:$port" --s3-region us-east-1)
ferry_run ls --s3-retries 2
took=$(elapsed "$start")
expect_error 1 "could not connect" "closed port: exit 1, could not connect"
expect_le "$took" 30 "within a bounded time (${took}s)"

done_testing
