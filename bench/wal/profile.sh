#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Where the time of one ferry-wal-push / ferry-wal-fetch call goes, against a
# private s3rver over http, with the WAL fixture of bench/wal_bench.py (run it
# once first). Prints: CPU vs wall per call (perf stat), CPU by library (perf
# record over 6 pushes), the request timeline of one push and one fetch
# (strace, only exec/open/connect/send/recv traced), and codec speeds.
#   bench/wal/profile.sh [BUILD_DIR]      (default build; run as root)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="$ROOT/${1:-build}"
PUSH="$BUILD/wal-push/ferry-wal-push"
FETCH="$BUILD/wal-fetch/ferry-wal-fetch"
FIX="${SCRATCH:-/tmp/ferry-wal-bench}/wal"
W="$(mktemp -d /tmp/ferry-wal-profile.XXXXXX)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
for t in perf strace zstd openssl; do command -v "$t" >/dev/null || { echo "profile: $t is missing" >&2; exit 1; }; done
[ -x "$PUSH" ] && [ -x "$FETCH" ] || { echo "profile: build $BUILD first" >&2; exit 1; }
mapfile -t SEGS < <(ls "$FIX" | grep -E '^[0-9A-F]{24}$' | head -16)
[ "${#SEGS[@]}" -ge 16 ] || { echo "profile: run bench/wal_bench.py once to make the WAL fixture" >&2; exit 1; }

node "$ROOT/node_modules/.bin/s3rver" -d "$W/s3" -a 127.0.0.1 -p "$PORT" --silent \
  --no-vhost-buckets --configure-bucket prof >/dev/null 2>&1 &
SRV=$!
trap 'kill $SRV 2>/dev/null; wait $SRV 2>/dev/null; rm -rf "$W"' EXIT
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break; sleep 0.1; done

export FERRY_REPO=s3://prof/p FERRY_S3_ENDPOINT="http://127.0.0.1:$PORT" FERRY_S3_NO_IMDS=1 \
  AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER FERRY_LOG_LEVEL=warning
mkdir -p "$W/pd/pg_wal/archive_status" "$W/fd/pg_wal"
for s in "${SEGS[@]}"; do ln "$FIX/$s" "$W/pd/pg_wal/$s" 2>/dev/null || cp "$FIX/$s" "$W/pd/pg_wal/$s"; done
cd "$W/pd"
"$PUSH" --lookahead 0 "pg_wal/${SEGS[0]}"   # records the cluster

timeline() { # strace file: milliseconds since exec of each request and file open
  python3 - "$1" <<'PY'
import re, sys
t0 = None
for line in open(sys.argv[1]):
    f = line.split(None, 2)
    if len(f) < 3:
        continue
    t, s = float(f[1]), f[2]
    t0 = t if t0 is None else t0
    m = None
    if 'execve(' in s: m = 'exec'
    elif 'openat' in s and 'pg_wal/' in s and 'ENOENT' not in s: m = 'open ' + re.search(r'"([^"]+)"', s).group(1)
    elif 'connect(' in s: m = 'connect'
    elif 'sendto' in s:
        r = re.search(r'"(GET|HEAD|PUT|POST|DELETE) (\S+)', s)
        m = r and 'send %s %s' % (r.group(1), r.group(2))
    elif 'recvfrom' in s:
        r = re.search(r'"HTTP/1.1 (\d+)', s)
        m = r and 'recv %s' % r.group(1)
    elif 'rename(' in s or 'fsync(' in s: m = s.split('(')[0]
    elif 'exit_group' in s: m = 'exit'
    if m:
        print('  +%7.1f ms  %s' % ((t - t0) * 1000, m))
PY
}
TRACE=(strace --seccomp-bpf -f -ttt -e trace=execve,openat,connect,sendto,recvfrom,rename,fsync,exit_group)

echo "== load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
echo "== process start of the core: ferry-wal-push --version (the front hands it over; perf stat, 20 runs)"
perf stat -r 20 "$PUSH" --version 2>&1 >/dev/null | grep -E 'task-clock|elapsed'
echo "== a look-ahead hit, answered by the front alone (perf stat)"
for s in "${SEGS[@]:12:4}"; do touch "pg_wal/archive_status/$s.ready"; done
"$PUSH" "pg_wal/${SEGS[12]}" # pushes it, and starts the look-ahead for the next three
sleep 3
perf stat "$PUSH" "pg_wal/${SEGS[13]}" 2>&1 | grep -E 'task-clock|elapsed' | tr -s ' ' | tr '\n' ';'
echo
rm -f pg_wal/archive_status/*
echo "== ferry-wal-push --lookahead 0, one new segment each (perf stat)"
for i in 1 2 3; do
  perf stat "$PUSH" --lookahead 0 "pg_wal/${SEGS[$i]}" 2>&1 | grep -E 'task-clock|elapsed|user|sys' | tr -s ' ' | tr '\n' ';'
  echo
done
echo "== CPU by library over 6 pushes (perf record)"
cat > "$W/six.sh" <<EOF
#!/bin/sh
for s in ${SEGS[*]:4:6}; do "$PUSH" --lookahead 0 pg_wal/\$s; done
EOF
chmod +x "$W/six.sh"
perf record -q -o "$W/perf.data" "$W/six.sh" >/dev/null 2>&1
perf report -i "$W/perf.data" --stdio --no-children --sort comm,dso 2>/dev/null \
  | grep -E '^ +[0-9].*ferry-wal-push' | head -8
echo "== request timeline of one push (strace; tracing slows it down)"
"${TRACE[@]}" -o "$W/push.st" "$PUSH" --lookahead 0 "pg_wal/${SEGS[11]}"
timeline "$W/push.st"
cd "$W/fd"
echo "== ferry-wal-fetch --prefetch 0 (perf stat)"
for i in 1 2 3; do
  perf stat "$FETCH" --prefetch 0 "${SEGS[$i]}" pg_wal/RECOVERYXLOG 2>&1 | grep -E 'task-clock|elapsed' | tr -s ' ' | tr '\n' ';'
  echo
done
echo "== request timeline of one fetch --prefetch 0"
"${TRACE[@]}" -o "$W/fetch.st" "$FETCH" --prefetch 0 "${SEGS[4]}" pg_wal/RECOVERYXLOG
timeline "$W/fetch.st"
echo "== prefetch: first call, then a spool hit 3 s later (perf stat of a hit, served by the front)"
"$FETCH" "${SEGS[1]}" pg_wal/RECOVERYXLOG && mv pg_wal/RECOVERYXLOG "pg_wal/${SEGS[1]}"
sleep 3
perf stat "$FETCH" "${SEGS[2]}" pg_wal/RECOVERYXLOG 2>&1 | grep -E 'task-clock|elapsed' | tr -s ' ' | tr '\n' ';'
echo
mv pg_wal/RECOVERYXLOG "pg_wal/${SEGS[2]}"
echo "== prefetch: a spool hit (timeline of the hit)"
"$FETCH" "${SEGS[5]}" pg_wal/RECOVERYXLOG && mv pg_wal/RECOVERYXLOG "pg_wal/${SEGS[5]}"
sleep 3
"${TRACE[@]}" -o "$W/hit.st" "$FETCH" "${SEGS[6]}" pg_wal/RECOVERYXLOG
sleep 2
timeline "$W/hit.st"
echo "== codecs on one segment (single thread)"
for l in 1 3; do echo "zstd -$l: $(zstd -b$l -i2 "$FIX/${SEGS[8]}" 2>&1 | tr '\r' '\n' | grep 'MB/s' | tail -1 | sed 's/^[^:]*: *//')"; done
openssl speed -evp sha256 -bytes 1048576 -seconds 1 2>/dev/null | tail -1
