#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Real PostgreSQL 15 against Ceph RGW (strict S3: SigV4, payload hashes, If-None-Match) over
# https with its CA and SSE-KMS (--s3-sse aws:kms --s3-sse-kms-key-id testkey-1), settings and
# credentials in a config file: the archive/PITR round trip; aws s3api head-object reports
# aws:kms on a WAL object. Then the race, five times: two ferry-wal-push runs at once with
# different bytes for one WAL name (a real segment and a copy with one byte changed after the
# page header) -> exactly one exits 0, the other exits 1 naming both checksums, and the stored
# object decodes to the winner's bytes.
# With the argument "multipart" (test pg_rgw_race_multipart): only the race, eight times, with
# the segment pushed uncompressed and --s3-part-size 5M, which would make it a multipart
# upload, where RGW 16 ignores If-None-Match on CompleteMultipartUpload so that two writers
# could both win. ferry-wal-push must therefore store a WAL file with one PUT whatever the
# part size (checked in the proxy's log: no multipart request at all); over http through the
# fault proxy, which in the first four races would hold a first Complete 3 s and drop it.
. "$(dirname "$0")/lib.sh"
. "$HARNESS/pg.sh"
MODE="${1:-main}"
use_servers
on_exit "aws_rgw s3 rm --recursive --quiet s3://$RGW_BUCKET/$PFX/"
unset SSL_CERT_FILE SSL_CERT_DIR CURL_CA_BUNDLE

cp "$RGW_CA_FILE" "$PGT/ca.crt"
chmod 644 "$PGT/ca.crt"
RGW_EP="$RGW_ENDPOINT_HTTPS"
# rgw_cfg FILE PREFIX [LINE...]: a config file for the repository s3://bucket/PREFIX at $RGW_EP
rgw_cfg() {
    local f="$1" p="$2"
    shift 2
    ferry_cfg "$f" "repo = s3://$RGW_BUCKET/$p" "s3-endpoint = $RGW_EP" \
        "s3-ca-file = $PGT/ca.crt" "s3-region = us-east-1" \
        "s3-access-key-id = $RGW_ACCESS_KEY_ID" "s3-secret-access-key = $RGW_SECRET_ACCESS_KEY" \
        "s3-sse = aws:kms" "s3-sse-kms-key-id = $RGW_KMS_KEY_ID" "$@"
}
if [ "$MODE" = main ]; then
CFG="$PGT/ferry.conf"
rgw_cfg "$CFG" "$PFX/main"

pitr_roundtrip "$CFG" 16

section "SSE-KMS on the stored WAL objects"
got=$(aws_rgw_https s3api head-object --bucket "$RGW_BUCKET" --key "$PFX/main/$(wal_key "$LAST")" \
    --query '[ServerSideEncryption, SSEKMSKeyId]' --output text 2>&1)
expect_eq "$(awk '{print $1}' <<<"$got")" "aws:kms" "head-object on $LAST reports aws:kms"
expect_contains "$got" "$RGW_KMS_KEY_ID" "and the key id $RGW_KMS_KEY_ID"
got=$(aws_rgw_https s3api head-object --bucket "$RGW_BUCKET" --key "$PFX/main/pg/cluster.json" \
    --query ServerSideEncryption --output text 2>&1)
expect_eq "$got" "aws:kms" "head-object on pg/cluster.json reports aws:kms"

NAME="$LAST"
RACES="1 2 3 4 5"
RACE_OPTS=()
else # multipart: a real segment of a fresh cluster, uncompressed in 5 MiB parts, through
    # the fault proxy in front of RGW (http): in races 1-4 it holds the first
    # CompleteMultipartUpload 3 s and then drops it, so that the other push completes
    # meanwhile and the first one retries its Complete; races 5-8 are left to chance
start_proxy "$RGW_ENDPOINT"
RGW_EP="$PROXY_URL"
pg_new primary
P="$PGD"
pg_start "$P" || bail "the cluster starts" "$(tail -5 "$P.log")"
pg_bench_init "$P" 1 || bail "pgbench -i" "$(tail -5 "$P.pgbench-init.log")"
NAME=$(pg_switch "$P")
RACES="1 2 3 4 5 6 7 8"
RACE_OPTS=("compress = none" "s3-part-size = 5M")
fi

section "two pushes of different bytes for one WAL name at once ($MODE: ${RACE_OPTS[*]:-defaults})"
mkdir -p "$T/race/a" "$T/race/b"
cp "$P/pg_wal/$NAME" "$T/race/a/$NAME"
cp "$P/pg_wal/$NAME" "$T/race/b/$NAME"
# one byte changed 1 MiB into the segment: the page header still agrees with the name
python3 - "$T/race/b/$NAME" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(1 << 20)
    b = f.read(1)
    f.seek(1 << 20)
    f.write(bytes([b[0] ^ 0xFF]))
PY
expect_files_differ "$T/race/a/$NAME" "$T/race/b/$NAME" "the two candidates differ"
SHA_A=$(sha "$T/race/a/$NAME")
SHA_B=$(sha "$T/race/b/$NAME")
for i in $RACES; do
    rc_cfg="$PGT/race-$i.conf"
    rgw_cfg "$rc_cfg" "$PFX/race-$i" "${RACE_OPTS[@]}"
    if [ "$MODE" = multipart ]; then
        if [ "$i" -le 4 ]; then
            proxy_plan "[{\"method\": \"POST\", \"path\": \"/$NAME\$\", \"query\": \"uploadId=\", \"fault\": \"stall\", \"seconds\": 3, \"times\": 1}]"
        else
            proxy_plan '[]'
        fi
    fi
    pids=()
    for s in a b; do
        ( timeout -k 5 120 "$WAL_PUSH" --config "$rc_cfg" "$T/race/$s/$NAME" >"$T/race/$s.out" 2>"$T/race/$s.err"
          echo $? >"$T/race/$s.rc" ) &
        pids+=($!)
    done
    wait "${pids[@]}" # not the fault proxy, which runs in the background too
    ra=$(cat "$T/race/a.rc") rb=$(cat "$T/race/b.rc")
    if [ "$ra:$rb" = "0:1" ]; then
        win=a lose=b wsha=$SHA_A lsha=$SHA_B
    elif [ "$ra:$rb" = "1:0" ]; then
        win=b lose=a wsha=$SHA_B lsha=$SHA_A
    else
        rm -f "$T/race/got"
        timeout 60 "$FERRY" repo --config "$rc_cfg" get "$(wal_key "$NAME")" "$T/race/got" >/dev/null 2>&1
        stored=none
        cmp -s "$T/race/got" "$T/race/a/$NAME" && stored=a
        cmp -s "$T/race/got" "$T/race/b/$NAME" && stored=b
        fail "race $i: exactly one push exits 0, the other 1" "exit statuses a=$ra b=$rb; the stored object is $stored's bytes" \
            "a: $(cat "$T/race/a.err")" "b: $(cat "$T/race/b.err")"
        continue
    fi
    pass "race $i: exactly one push exits 0 ($win), the other 1"
    if [ "$MODE" = multipart ]; then
        n_mp=$(proxy_count POST "/$NAME\$" "uploads")
        expect_eq "$n_mp" 0 "race $i: no multipart upload for a WAL file (one conditional PUT)"
    fi
    RC=1 OUT="$T/race/$lose.out" ERR="$T/race/$lose.err" LAST_CMD="ferry-wal-push ($lose)"
    expect_tool_error 1 "archived sha256 $wsha" "race $i: the loser's one-line error names the archived (winner's) checksum"
    expect_contains "$(cat "$T/race/$lose.err")" "local sha256 $lsha" "race $i: and its own checksum"
    rm -f "$T/race/got"
    timeout 60 "$FERRY" repo --config "$rc_cfg" get "$(wal_key "$NAME")" "$T/race/got" >/dev/null 2>"$T/race/get.err"
    expect_same_file "$T/race/got" "$T/race/$win/$NAME" "race $i: the stored object decodes to the winner's bytes"
done
OUT="$T/out" ERR="$T/err"
done_testing
