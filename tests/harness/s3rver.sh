#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# s3rver.sh start|stop|env|status : the lax fast S3 server for tests (npm s3rver@3.7.1,
# from the project's node_modules; `npm ci` at the project root installs it).
#
#   HARNESS_DIR   state dir (default: <project>/build/harness); data, log, pid, port live in
#                 $HARNESS_DIR/s3rver/
#   S3RVER_BUCKETS buckets created at start (default "ferry-it")
#
# Listens on 127.0.0.1, http, on a port found free at start. Credentials S3RVER/S3RVER
# (s3rver 3.7.1 checks no signature). `env` prints shell exports for the tests.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HARNESS_DIR="${HARNESS_DIR:-$ROOT/build/harness}"
DIR="$HARNESS_DIR/s3rver"
PIDF="$DIR/pid"
PORTF="$DIR/port"
LOG="$DIR/log"
BUCKETS="${S3RVER_BUCKETS:-ferry-it}"
BIN="$ROOT/node_modules/.bin/s3rver"

alive() { [ -f "$PIDF" ] && kill -0 "$(cat "$PIDF")" 2>/dev/null; }

free_port() {
    python3 "$ROOT/tests/harness/free_port.py"
}

start() {
    if alive; then
        echo "s3rver: already running, pid $(cat "$PIDF") port $(cat "$PORTF")" >&2
        return 0
    fi
    [ -x "$BIN" ] || { echo "s3rver: $BIN missing: run 'npm ci' in $ROOT" >&2; return 1; }
    mkdir -p "$DIR"
    rm -rf "$DIR/data"
    mkdir -p "$DIR/data"
    local attempt port pid b args=()
    for b in $BUCKETS; do args+=(--configure-bucket "$b"); done
    for attempt in 1 2 3; do
        port=$(free_port)
        # s3rver 3.7.1 makes ListObjectsV2 continuation tokens with DES, which OpenSSL 3
        # (node >= 17) only has in its legacy provider: without it every truncated list is a 500
        NODE_OPTIONS=--openssl-legacy-provider setsid "$BIN" -d "$DIR/data" -a 127.0.0.1 -p "$port" --silent --no-vhost-buckets \
            "${args[@]}" >"$LOG" 2>&1 </dev/null &
        pid=$!
        echo "$pid" >"$PIDF"
        for _ in $(seq 1 100); do
            if ! kill -0 "$pid" 2>/dev/null; then break; fi
            if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/"; then
                echo "$port" >"$PORTF"
                echo "s3rver: pid $pid on http://127.0.0.1:$port buckets: $BUCKETS" >&2
                return 0
            fi
            sleep 0.1
        done
        kill "$pid" 2>/dev/null || true
        echo "s3rver: start attempt $attempt on port $port failed:" >&2
        tail -5 "$LOG" >&2 || true
    done
    rm -f "$PIDF"
    return 1
}

stop() {
    if alive; then
        local pid
        pid=$(cat "$PIDF")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
        echo "s3rver: stopped pid $pid" >&2
    fi
    rm -f "$PIDF" "$PORTF"
}

env_out() {
    alive || { echo "s3rver: not running" >&2; return 1; }
    local port
    port=$(cat "$PORTF")
    echo "export S3RVER_ENDPOINT=http://127.0.0.1:$port"
    echo "export S3RVER_PORT=$port"
    echo "export S3RVER_BUCKET=${BUCKETS%% *}"
    echo "export S3RVER_ACCESS_KEY_ID=S3RVER"
    echo "export S3RVER_SECRET_ACCESS_KEY=S3RVER"
    echo "export S3RVER_DATA=$DIR/data"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
env) env_out ;;
status) if alive; then echo "running pid $(cat "$PIDF") port $(cat "$PORTF")"; else echo stopped; exit 1; fi ;;
*) echo "usage: $0 start|stop|env|status" >&2; exit 2 ;;
esac
