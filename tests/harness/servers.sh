#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# servers.sh start|stop|status BUILD_DIR : the S3 servers the integration tests use.
#
#   start  s3rver (tests/harness/s3rver.sh, state in BUILD_DIR/harness) and Ceph RGW
#          (../shared/s3/rgw.sh start; it lives in /tmp/rgw-bench), create the test buckets,
#          write BUILD_DIR/test-env.sh (endpoints, credentials, CA, buckets) for the tests.
#          Idempotent; serialized with a lock so tests may call it themselves.
#   stop   stop s3rver, and RGW only if this script started it (an RGW that was already
#          running belongs to someone else).
#
# The tests read BUILD_DIR/test-env.sh (tests/integration/lib.sh calls `start` if it is
# missing or a server is gone).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SHARED="${FERRY_SHARED:-$ROOT/../shared}"
RGW_SH="$SHARED/s3/rgw.sh"
AWS=/usr/bin/aws
cmd="${1:-}"
BUILD="${2:-}"
[ -n "$BUILD" ] || { echo "usage: $0 start|stop|status BUILD_DIR" >&2; exit 2; }
mkdir -p "$BUILD"
BUILD="$(cd "$BUILD" && pwd)"
export HARNESS_DIR="$BUILD/harness"
mkdir -p "$HARNESS_DIR"
ENVF="$BUILD/test-env.sh"
RGW_OURS="$HARNESS_DIR/rgw.started-here"
RGW_BUCKET="${FERRY_RGW_BUCKET:-ferry-it}"

rgw_running() { [ "$("$RGW_SH" status 2>/dev/null | grep -c ' running pid ')" = 3 ]; }
rgw_up() { rgw_running && curl -s -o /dev/null --max-time 2 "$1/"; }

aws_rgw() {
    AWS_ACCESS_KEY_ID="$RGW_ACCESS_KEY_ID" AWS_SECRET_ACCESS_KEY="$RGW_SECRET_ACCESS_KEY" \
        AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true AWS_PAGER= \
        AWS_REQUEST_CHECKSUM_CALCULATION=when_required AWS_CONFIG_FILE=/dev/null \
        AWS_SHARED_CREDENTIALS_FILE=/dev/null "$AWS" --endpoint-url "$RGW_ENDPOINT" "$@"
}

start() {
    # children must not inherit the lock (fd 9): daemons would hold it forever
    "$ROOT/tests/harness/s3rver.sh" start 9>&-
    local s3env rgwenv RGW_ENDPOINT RGW_ENDPOINT_HTTPS RGW_ACCESS_KEY_ID RGW_SECRET_ACCESS_KEY RGW_CA_FILE
    s3env="$("$ROOT/tests/harness/s3rver.sh" env)"

    [ -x "$RGW_SH" ] || { echo "servers: $RGW_SH not found (../shared beside the project)" >&2; return 1; }
    if ! rgw_running; then
        "$RGW_SH" start >&2 9>&-
        touch "$RGW_OURS"
    fi
    rgwenv="$("$RGW_SH" env)"
    RGW_ENDPOINT=$(eval "$rgwenv"; echo "$S3_ENDPOINT")
    RGW_ENDPOINT_HTTPS=$(eval "$rgwenv"; echo "$S3_ENDPOINT_HTTPS")
    RGW_ACCESS_KEY_ID=$(eval "$rgwenv"; echo "$AWS_ACCESS_KEY_ID")
    RGW_SECRET_ACCESS_KEY=$(eval "$rgwenv"; echo "$AWS_SECRET_ACCESS_KEY")
    RGW_CA_FILE=$(eval "$rgwenv"; echo "$S3_CA_FILE")
    for _ in $(seq 1 100); do rgw_up "$RGW_ENDPOINT" && break; sleep 0.2; done
    rgw_up "$RGW_ENDPOINT" || { echo "servers: RGW at $RGW_ENDPOINT does not answer" >&2; return 1; }
    if ! aws_rgw s3api head-bucket --bucket "$RGW_BUCKET" >/dev/null 2>&1; then
        aws_rgw s3api create-bucket --bucket "$RGW_BUCKET" >/dev/null
    fi

    local tmp="$ENVF.tmp.$$"
    {
        echo "# written by tests/harness/servers.sh start $(date -u +%FT%TZ)"
        echo "$s3env"
        echo "export RGW_ENDPOINT=$RGW_ENDPOINT"
        echo "export RGW_ENDPOINT_HTTPS=$RGW_ENDPOINT_HTTPS"
        echo "export RGW_ACCESS_KEY_ID=$RGW_ACCESS_KEY_ID"
        echo "export RGW_SECRET_ACCESS_KEY=$RGW_SECRET_ACCESS_KEY"
        echo "export RGW_CA_FILE=$RGW_CA_FILE"
        echo "export RGW_BUCKET=$RGW_BUCKET"
        echo "export RGW_KMS_KEY_ID=testkey-1"
    } >"$tmp"
    mv "$tmp" "$ENVF"
    echo "servers: ready; environment in $ENVF" >&2
}

stop() {
    "$ROOT/tests/harness/s3rver.sh" stop 9>&- || true
    if [ -f "$RGW_OURS" ]; then
        "$RGW_SH" stop >&2 9>&- || true
        rm -f "$RGW_OURS"
    else
        echo "servers: RGW left running (not started here)" >&2
    fi
    rm -f "$ENVF"
}

status() {
    "$ROOT/tests/harness/s3rver.sh" status
    "$RGW_SH" status
}

exec 9>"$HARNESS_DIR/servers.lock"
flock -w 300 9 || { echo "servers: lock busy" >&2; exit 1; }
case "$cmd" in
start) start ;;
stop) stop ;;
status) status ;;
*) echo "usage: $0 start|stop|status BUILD_DIR" >&2; exit 2 ;;
esac
