#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Multipart failures through the fault proxy, in front of s3rver and in front of RGW (s3rver
# 3.7.1 implements neither AbortMultipartUpload nor ListMultipartUploads, so only RGW can show
# that no upload is left open; on s3rver the proxy log shows the abort was sent):
# 500 on every UploadPart -> put fails, nothing visible, upload aborted;
# 200 with an <Error> body on CompleteMultipartUpload once -> retried, object exact;
# always -> put fails cleanly, nothing visible, upload aborted.
. "$(dirname "$0")/lib.sh"
use_servers

rand_file "$T/data" $((18 * 1024 * 1024))

for server in s3rver rgw; do
    if [ $server = s3rver ]; then
        export AWS_ACCESS_KEY_ID="$S3RVER_ACCESS_KEY_ID" AWS_SECRET_ACCESS_KEY="$S3RVER_SECRET_ACCESS_KEY"
        start_proxy "$S3RVER_ENDPOINT"
        B="$S3RVER_BUCKET"
        awss() { aws_s3rver "$@"; }
    else
        export AWS_ACCESS_KEY_ID="$RGW_ACCESS_KEY_ID" AWS_SECRET_ACCESS_KEY="$RGW_SECRET_ACCESS_KEY"
        start_proxy "$RGW_ENDPOINT"
        B="$RGW_BUCKET"
        awss() { aws_rgw "$@"; }
    fi
    URL="s3://$B/$PFX-$server"
    REPO_OPTS=(--repo "$URL" --s3-endpoint "$PROXY_URL" --s3-region us-east-1 --s3-part-size 5M)
    on_exit "aws_$server s3 rm --recursive --quiet s3://$B/$PFX-$server/"

    section "$server: 500 on every UploadPart"
    proxy_plan '[{"method": "PUT", "query": "partNumber=", "fault": "status", "status": 500, "times": -1}]'
    ferry_in "$T/data" put mp/parts500 - --raw --s3-retries 2
    expect_error 1 "500" "put fails: exit 1, names the status ($server)"
    ferry_run stat mp/parts500
    expect_rc 3 "nothing visible under the key ($server)"
    ferry_run ls mp/
    expect_eq "$(cat "$OUT")" "" "ls shows nothing ($server)"
    expect_ge "$(proxy_count DELETE '/mp/parts500$' 'uploadId=')" 1 "the upload was aborted (DELETE ?uploadId seen, $server)"
    expect_eq "$(proxy_count POST '/mp/parts500$' 'uploadId=')" 0 "no CompleteMultipartUpload was sent ($server)"
    # parts go up in parallel: once one part has used up its retries the put stops, so
    # the other parts may have had fewer attempts; none may have had more
    tries=$(proxy_log | python3 -c '
import collections, json, re, sys
c = collections.Counter(re.search(r"partNumber=(\d+)", e["query"]).group(1)
                        for e in map(json.loads, sys.stdin)
                        if e["method"] == "PUT" and "partNumber=" in e["query"])
print(max(c.values()) if c else 0, " ".join("%s:%d" % kv for kv in sorted(c.items())))')
    expect_eq "${tries%% *}" 3 "the most tried part had 1 + 2 attempts, no more (part:attempts ${tries#* }, $server)"
    if [ $server = rgw ]; then
        n=$(awss s3api list-multipart-uploads --bucket "$B" --prefix "$PFX-$server/" --query 'length(Uploads || `[]`)' --output text 2>&1)
        expect_eq "$n" 0 "no multipart upload left open (ListMultipartUploads, RGW)"
    fi

    section "$server: 200 with <Error> on CompleteMultipartUpload, once"
    proxy_plan '[{"method": "POST", "query": "uploadId=", "fault": "error200", "times": 1}]'
    ferry_in "$T/data" put mp/complete-once - --raw
    expect_ok "put succeeds after one 200-with-Error on Complete ($server)"
    expect_eq "$(proxy_count POST '/mp/complete-once$' 'uploadId=')" 2 "Complete was retried once ($server)"
    rm -f "$T/got"
    awss s3 cp "s3://$B/$PFX-$server/mp/complete-once" "$T/got" --only-show-errors
    expect_same_file "$T/got" "$T/data" "the object is exact ($server)"

    section "$server: 200 with <Error> on every CompleteMultipartUpload"
    proxy_plan '[{"method": "POST", "query": "uploadId=", "fault": "error200", "times": -1}]'
    ferry_in "$T/data" put mp/complete-never - --raw --s3-retries 2
    expect_error 1 "InternalError" "put fails: exit 1, names the error code ($server)"
    ferry_run stat mp/complete-never
    expect_rc 3 "nothing visible under the key ($server)"
    expect_ge "$(proxy_count DELETE '/mp/complete-never$' 'uploadId=')" 1 "the upload was aborted ($server)"
    if [ $server = rgw ]; then
        n=$(awss s3api list-multipart-uploads --bucket "$B" --prefix "$PFX-$server/" --query 'length(Uploads || `[]`)' --output text 2>&1)
        expect_eq "$n" 0 "no multipart upload left open (RGW)"
    fi

    section "$server: part upload reset mid-body, once"
    proxy_plan '[{"method": "PUT", "query": "partNumber=2", "fault": "reset_request", "times": 1}]'
    ferry_in "$T/data" put mp/reset - --raw
    expect_ok "put succeeds after a reset while sending part 2 ($server)"
    rm -f "$T/got"
    awss s3 cp "s3://$B/$PFX-$server/mp/reset" "$T/got" --only-show-errors
    expect_same_file "$T/got" "$T/data" "the object is exact ($server)"
done

done_testing
