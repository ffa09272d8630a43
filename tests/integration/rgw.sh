#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Ceph RGW 16 (strict S3: SigV4, payload hashes, SSE-C, SSE-KMS, If-None-Match on PUT), over
# http or https (argument). Round trips incl. a 40 MiB multipart stream; wrong secret; SSE-C,
# SSE-KMS, SSE-S3; conditional create (412) and the multipart HEAD fallback; TLS without the
# CA (https); bucket missing; credentials missing.
. "$(dirname "$0")/lib.sh"
SCHEME="${1:?usage: rgw.sh http|https}"
use_servers

export AWS_ACCESS_KEY_ID="$RGW_ACCESS_KEY_ID" AWS_SECRET_ACCESS_KEY="$RGW_SECRET_ACCESS_KEY"
if [ "$SCHEME" = https ]; then
    EP="$RGW_ENDPOINT_HTTPS"
    TLS_OPTS=(--s3-ca-file "$RGW_CA_FILE")
    awsr() { aws_rgw_https "$@"; }
else
    EP="$RGW_ENDPOINT"
    TLS_OPTS=()
    awsr() { aws_rgw "$@"; }
fi
unset SSL_CERT_FILE SSL_CERT_DIR CURL_CA_BUNDLE
URL="s3://$RGW_BUCKET/$PFX"
BASE_OPTS=(--s3-endpoint "$EP" --s3-region us-east-1 "${TLS_OPTS[@]}")
REPO_OPTS=(--repo "$URL" "${BASE_OPTS[@]}")
on_exit "aws_rgw s3 rm --recursive --quiet s3://$RGW_BUCKET/$PFX/"

rand_file "$T/zero" 0
rand_file "$T/one" 1
rand_file "$T/big" $((16 * 1024 * 1024))
rand_file "$T/m40" $((40 * 1024 * 1024))

section "round trips ($SCHEME)"
for f in zero one big; do
    ferry_run put "rt/$f" "$T/$f"
    expect_ok "put $f"
    rm -f "$T/got"
    ferry_run get "rt/$f" "$T/got"
    expect_same_file "$T/got" "$T/$f" "$f round-trips byte-identical"
done
ferry_in "$T/m40" put rt/m40 - --raw --s3-part-size 8M
expect_ok "put 40 MiB from stdin (multipart, 8 MiB parts)"
etag=$(awsr s3api head-object --bucket "$RGW_BUCKET" --key "$PFX/rt/m40" --query ETag --output text 2>&1)
expect_contains "$etag" "-5" "stored as a 5-part multipart object (ETag $etag)"
rm -f "$T/got"
ferry_run get rt/m40 "$T/got" --raw
expect_same_file "$T/got" "$T/m40" "40 MiB multipart round-trips"
awsr s3 cp "$URL/rt/m40" "$T/aws-got" --only-show-errors
expect_same_file "$T/aws-got" "$T/m40" "awscli reads the multipart object ferry wrote"
ferry_run ls rt/
expect_eq "$(cat "$OUT")" "$(printf 'rt/big\nrt/m40\nrt/one\nrt/zero')" "ls"
ferry_run rm rt/zero
expect_ok "rm"
ferry_run stat rt/zero
expect_error 3 "not found" "stat after rm: exit 3"

section "wrong secret"
WRONG="wrongSecretKey000000000000000000000000000"
AWS_SECRET_ACCESS_KEY="$WRONG" ferry_run ls rt/
expect_error 1 "SignatureDoesNotMatch" "ls with a wrong secret: exit 1, SignatureDoesNotMatch"
expect_no_secret "$WRONG" "the wrong secret is not printed"
AWS_SECRET_ACCESS_KEY="$WRONG" ferry_run put rt/wrong "$T/one" --log-level debug
expect_error 1 "SignatureDoesNotMatch" "put with a wrong secret: exit 1 (even at --log-level debug the error is one line)"
expect_no_secret "$WRONG" "the secret is not printed at --log-level debug"
expect_no_secret "$RGW_SECRET_ACCESS_KEY" "the real secret is not printed either"

section "SSE-C"
head -c 32 /dev/urandom >"$T/ssec.key"
chmod 600 "$T/ssec.key"
ferry_run put ssec/obj "$T/big" --raw --s3-sse-customer-key-file "$T/ssec.key"
expect_ok "put --raw with an SSE-C key"
ferry_in "$T/m40" put ssec/m40 - --raw --s3-part-size 8M --s3-sse-customer-key-file "$T/ssec.key"
expect_ok "multipart put with an SSE-C key"
rm -f "$T/got"
ferry_run get ssec/obj "$T/got" --raw
expect_error 5 "SSE-C" "ferry get without the SSE-C key fails: exit 5 (wrong or missing key), says SSE-C"
expect_file_absent "$T/got" "no output file without the SSE-C key"
awsr s3 cp "$URL/ssec/obj" "$T/aws-nokey" --only-show-errors >/dev/null 2>&1
expect_ne "$?" 0 "aws s3 cp without --sse-c fails"
ferry_run get ssec/obj "$T/got" --raw --s3-sse-customer-key-file "$T/ssec.key"
expect_ok "ferry get with the SSE-C key"
expect_same_file "$T/got" "$T/big" "SSE-C object byte-identical with the key"
ferry_run get ssec/m40 "$T/got" --raw --s3-sse-customer-key-file "$T/ssec.key"
expect_same_file "$T/got" "$T/m40" "SSE-C multipart object byte-identical with the key"
awsr s3 cp "$URL/ssec/obj" "$T/aws-got" --only-show-errors --sse-c AES256 --sse-c-key "fileb://$T/ssec.key"
expect_same_file "$T/aws-got" "$T/big" "aws s3 cp --sse-c with the key reads what ferry put"
awsr s3 cp "$T/one" "$URL/ssec/from-aws" --only-show-errors --sse-c AES256 --sse-c-key "fileb://$T/ssec.key"
ferry_run get ssec/from-aws - --raw --s3-sse-customer-key-file "$T/ssec.key"
expect_same_file "$OUT" "$T/one" "ferry reads an SSE-C object awscli put"
ferry_run stat ssec/obj --s3-sse-customer-key-file "$T/ssec.key" --json
expect_ok "stat of an SSE-C object with the key"

section "SSE-KMS"
ferry_run put kms/obj "$T/one" --raw --s3-sse aws:kms --s3-sse-kms-key-id "$RGW_KMS_KEY_ID"
expect_ok "put with --s3-sse aws:kms --s3-sse-kms-key-id $RGW_KMS_KEY_ID"
ferry_run stat kms/obj --json
got=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1])).get("sse"))' "$OUT" 2>&1)
expect_eq "$got" "aws:kms" "ferry stat reports aws:kms"
got=$(awsr s3api head-object --bucket "$RGW_BUCKET" --key "$PFX/kms/obj" --query ServerSideEncryption --output text 2>&1)
expect_eq "$got" "aws:kms" "aws s3api head-object reports aws:kms"
got=$(awsr s3api head-object --bucket "$RGW_BUCKET" --key "$PFX/kms/obj" --query SSEKMSKeyId --output text 2>&1)
expect_contains "$got" "$RGW_KMS_KEY_ID" "head-object reports the key id"
ferry_run get kms/obj - --raw
expect_same_file "$OUT" "$T/one" "SSE-KMS object reads back without extra options"

section "SSE-S3 (RGW 16 accepts AES256 but does not apply it: stored as plaintext, not echoed)"
ferry_run put sses3/obj "$T/one" --raw --s3-sse AES256
expect_ok "put with --s3-sse AES256 is accepted"
ferry_run get sses3/obj - --raw
expect_same_file "$OUT" "$T/one" "and reads back"

section "conditional create"
ferry_run put rt/one "$T/big" --raw
expect_error 4 "already exists" "put on an existing key: exit 4, already exists"
if [ "$SCHEME" = http ]; then
    # ferry checks with HEAD before it uploads; through the fault proxy every HEAD says 404,
    # so the PUT with If-None-Match: * reaches RGW, which must answer 412: that too
    # must be "already exists" (exit 4), not a generic failure
    start_proxy "$RGW_ENDPOINT"
    proxy_plan '[{"method": "HEAD", "path": "/rt/one$", "fault": "status", "status": 404, "code": "NoSuchKey", "times": -1}]'
    REPO_OPTS=(--repo "$URL" --s3-endpoint "$PROXY_URL" --s3-region us-east-1)
    ferry_run put rt/one "$T/zero" --raw
    expect_error 4 "already exists" "RGW's 412 to If-None-Match: * is exit 4, already exists"
    got=$(proxy_log | python3 -c '
import json, sys
print(" ".join("%s:%s" % (e["method"], e["status"]) for e in map(json.loads, sys.stdin)))')
    expect_contains "$got" "PUT:412" "the conditional PUT reached RGW and got 412 (requests: $got)"
    REPO_OPTS=(--repo "$URL" "${BASE_OPTS[@]}")
fi
ferry_run get rt/one - --raw
expect_ok "get after the refused put"
rand_file "$T/m40b" $((40 * 1024 * 1024))
ferry_in "$T/m40b" put rt/m40 - --raw --s3-part-size 8M
expect_error 4 "already exists" "multipart put on an existing key: exit 4 (RGW ignores If-None-Match on Complete: the HEAD check refuses)"
rm -f "$T/got"
ferry_run get rt/m40 "$T/got" --raw
expect_same_file "$T/got" "$T/m40" "the existing multipart object is unchanged"
n=$(awsr s3api list-multipart-uploads --bucket "$RGW_BUCKET" --prefix "$PFX/" --query 'length(Uploads || `[]`)' --output text 2>&1)
expect_eq "$n" 0 "no multipart upload left open"

section "errors"
if [ "$SCHEME" = https ]; then
    start=$(now)
    REPO_OPTS=(--repo "$URL" --s3-endpoint "$EP" --s3-region us-east-1)
    ferry_run ls rt/
    expect_error 1 "certificate" "https without the CA file: exit 1, TLS certificate verification error"
    expect_le "$(elapsed "$start")" 30 "the TLS failure is not retried for long"
    REPO_OPTS=(--repo "$URL" "${BASE_OPTS[@]}")
fi
REPO_OPTS=(--repo "s3://ferry-no-such-bucket-$$/x" "${BASE_OPTS[@]}")
ferry_run ls
expect_error 3 "does not exist" "ls in a missing bucket: exit 3 (not found), does not exist"
ferry_run put k "$T/one"
expect_error 3 "does not exist" "put into a missing bucket: exit 3 (not found), does not exist"
REPO_OPTS=(--repo "$URL" "${BASE_OPTS[@]}")
mkdir -p "$T/emptyhome"
start=$(now)
env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN -u AWS_PROFILE \
    HOME="$T/emptyhome" AWS_EC2_METADATA_DISABLED=true \
    timeout -k 5 60 "$FERRY" repo "${REPO_OPTS[@]}" --s3-no-imds ls rt/ >"$OUT" 2>"$ERR" </dev/null
RC=$?
expect_error 1 "credentials" "no credentials anywhere (env cleared, empty HOME, IMDS disabled): exit 1, says credentials"
expect_le "$(elapsed "$start")" 15 "and says so quickly"

done_testing
