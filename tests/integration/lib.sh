# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# Sourced by every integration test. Gives TAP output (one test point per assertion,
# plan printed at the end), assertions that print what differed, a per-test scratch dir,
# `ferry repo` runners, awscli wrappers for s3rver and RGW, and the fault proxy.
#
# Environment (set by tests/integration/meson.build):
#   FERRY             the ferry executable
#   FERRY_BUILD_DIR   the build dir (servers' state, test-env.sh, scratch dirs)
#   FERRY_SOURCE_ROOT the project root
set -uo pipefail
export LC_ALL=C

FERRY="${FERRY:?FERRY (path of the ferry executable) is not set: run through meson test}"
BUILD="${FERRY_BUILD_DIR:?FERRY_BUILD_DIR is not set: run through meson test}"
SRC="${FERRY_SOURCE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
HARNESS="$SRC/tests/harness"
AWS=/usr/bin/aws # Debian's awscli; another aws may come first in PATH
TEST_NAME="${TEST_NAME:-$(basename "$0" .sh)}"
T="$BUILD/it-tmp/$TEST_NAME"
rm -rf "$T"
mkdir -p "$T/home"
# a private HOME: no ~/.aws of whoever runs the tests
export HOME="$T/home"
export AWS_EC2_METADATA_DISABLED=true AWS_PAGER="" AWS_REQUEST_CHECKSUM_CALCULATION=when_required
unset AWS_PROFILE AWS_CA_BUNDLE AWS_ENDPOINT_URL AWS_SESSION_TOKEN AWS_REGION AWS_DEFAULT_REGION \
    AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY 2>/dev/null || true

# no FERRY_* setting from the caller's environment (flags > environment > config file)
for _v in $(compgen -e | grep '^FERRY_'); do
    case "$_v" in FERRY_BUILD_DIR | FERRY_SOURCE_ROOT | FERRY_SHARED) ;; *) unset "$_v" ;; esac
done
export FERRY_CONFIG=/dev/null

# a command that hangs must not hang the test: every ferry/aws call is bounded
CMD_TIMEOUT="${CMD_TIMEOUT:-300}"

_tap_n=0
_tap_failed=0
_cleanups=()

diag() { local l; while IFS= read -r l; do printf '# %s\n' "$l"; done <<<"$*"; }
pass() { _tap_n=$((_tap_n + 1)); echo "ok $_tap_n - $*"; }
fail() {
    _tap_n=$((_tap_n + 1))
    _tap_failed=$((_tap_failed + 1))
    echo "not ok $_tap_n - $1"
    shift
    [ $# -gt 0 ] && diag "$*"
    return 0
}
# section NAME: a comment line in the TAP stream
section() { echo "# --- $* ---"; }

on_exit() { _cleanups+=("$*"); }
_run_cleanups() {
    local i
    for ((i = ${#_cleanups[@]} - 1; i >= 0; i--)); do eval "${_cleanups[$i]}" >/dev/null 2>&1 || true; done
}
trap '_run_cleanups' EXIT

# done_testing: print the plan, keep the scratch dir only when something failed
done_testing() {
    echo "1..$_tap_n"
    _run_cleanups
    _cleanups=()
    if [ "$_tap_failed" -gt 0 ]; then
        diag "$_tap_failed of $_tap_n failed; scratch kept in $T"
        exit 1
    fi
    rm -rf "$T"
    exit 0
}

# bail NAME MSG: a test point that failed and makes the rest meaningless
bail() {
    fail "$1" "${2:-}"
    echo "Bail out! $1"
    echo "1..$_tap_n"
    exit 1
}

# ---------------------------------------------------------------------------------------
# running ferry

# REPO_OPTS: options put after `ferry repo` on every call (repo URL, endpoint, ...)
REPO_OPTS=()
RC=0
OUT="$T/out"
ERR="$T/err"

# ferry_run ARGS...: `ferry repo REPO_OPTS... ARGS...`, stdout in $OUT, stderr in $ERR,
# exit status in $RC, stdin from /dev/null
ferry_run() {
    LAST_CMD="ferry repo ${REPO_OPTS[*]} $*"
    timeout -k 5 "$CMD_TIMEOUT" "$FERRY" repo "${REPO_OPTS[@]}" "$@" >"$OUT" 2>"$ERR" </dev/null
    RC=$?
}
# ferry_in FILE ARGS...: same, stdin from FILE
ferry_in() {
    local in="$1"
    shift
    LAST_CMD="ferry repo ${REPO_OPTS[*]} $* < $in"
    timeout -k 5 "$CMD_TIMEOUT" "$FERRY" repo "${REPO_OPTS[@]}" "$@" >"$OUT" 2>"$ERR" <"$in"
    RC=$?
}

_show_io() {
    echo "exit status: $RC"
    echo "command: ${LAST_CMD:-}"
    echo "stderr ($(wc -c <"$ERR") bytes):"
    head -c 2000 "$ERR"
    echo "stdout ($(wc -c <"$OUT") bytes):"
    head -c 600 "$OUT" | cat -v
}

# expect_ok DESC: the last ferry call exited 0
expect_ok() {
    if [ "$RC" = 0 ]; then pass "$1"; else fail "$1" "$(_show_io)"; fi
}

# expect_rc WANT DESC
expect_rc() {
    if [ "$RC" = "$1" ]; then pass "$2"; else fail "$2" "want exit status $1" "$(_show_io)"; fi
}

# expect_error RC SUBSTRING DESC: exit status RC, stderr is exactly one line
# "ferry: error: ..." containing SUBSTRING, stdout empty
expect_error() {
    local want_rc="$1" want="$2" desc="$3" lines first why=""
    lines=$(wc -l <"$ERR")
    first=$(head -n 1 "$ERR")
    [ "$RC" = "$want_rc" ] || why="exit status $RC, want $want_rc"
    [ -z "$why" ] && [ "$lines" != 1 ] && why="stderr has $lines lines, want exactly one"
    [ -z "$why" ] && [[ "$first" != "ferry: error: "* ]] && why="stderr does not start with 'ferry: error: '"
    [ -z "$why" ] && [[ "$first" != *"$want"* ]] && why="stderr lacks \"$want\""
    [ -z "$why" ] && [ -s "$OUT" ] && why="stdout is not empty"
    if [ -z "$why" ]; then pass "$desc"; else fail "$desc" "$why" "$(_show_io)"; fi
}

# expect_no_secret SECRET DESC: SECRET appears neither in stdout nor in stderr
expect_no_secret() {
    if grep -qF -- "$1" "$OUT" "$ERR"; then fail "$2" "the secret was printed" "$(_show_io)"; else pass "$2"; fi
}

# ---------------------------------------------------------------------------------------
# generic assertions

expect_eq() { # GOT WANT DESC
    if [ "$1" = "$2" ]; then pass "$3"; else fail "$3" "got:  $1" "want: $2"; fi
}
expect_ne() { # GOT NOT_WANT DESC
    if [ "$1" != "$2" ]; then pass "$3"; else fail "$3" "got \"$1\", which it must not be"; fi
}
expect_contains() { # HAYSTACK NEEDLE DESC
    if [[ "$1" == *"$2"* ]]; then pass "$3"; else fail "$3" "\"$2\" not found in:" "$1"; fi
}
expect_not_contains() { # HAYSTACK NEEDLE DESC
    if [[ "$1" != *"$2"* ]]; then pass "$3"; else fail "$3" "\"$2\" must not appear in:" "$1"; fi
}
expect_le() { # GOT MAX DESC (integers or decimals)
    if awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; then pass "$3"; else fail "$3" "got $1, want <= $2"; fi
}
expect_ge() { # GOT MIN DESC
    if awk -v a="$1" -v b="$2" 'BEGIN { exit !(a >= b) }'; then pass "$3"; else fail "$3" "got $1, want >= $2"; fi
}
expect_file_absent() { # PATH DESC
    if [ -e "$1" ]; then fail "$2" "$1 exists ($(stat -c %s "$1" 2>/dev/null) bytes)"; else pass "$2"; fi
}

# expect_same_file GOT WANT DESC: byte-identical; else sizes, sha256 and the first difference
expect_same_file() {
    local got="$1" want="$2" desc="$3"
    if [ -f "$got" ] && [ -f "$want" ] && cmp -s "$got" "$want"; then
        pass "$desc"
        return
    fi
    if [ ! -f "$got" ]; then
        fail "$desc" "$got does not exist"
        return
    fi
    fail "$desc" "$(
        echo "got:  $(stat -c %s "$got") bytes, sha256 $(sha256sum <"$got" | cut -c1-16)..."
        echo "want: $(stat -c %s "$want") bytes, sha256 $(sha256sum <"$want" | cut -c1-16)..."
        cmp "$got" "$want" 2>&1 | head -1
    )"
}

# expect_files_differ A B DESC
expect_files_differ() {
    if cmp -s "$1" "$2"; then fail "$3" "$1 and $2 are identical"; else pass "$3"; fi
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# rand_file PATH BYTES: random content
rand_file() { head -c "$2" /dev/urandom >"$1"; }

sha() { sha256sum <"$1" | cut -d' ' -f1; }

free_port() {
    python3 "$HARNESS/free_port.py"
}

# ---------------------------------------------------------------------------------------
# servers

# use_servers: load BUILD/test-env.sh, starting the servers first if needed
use_servers() {
    local envf="$BUILD/test-env.sh"
    if [ -f "$envf" ]; then
        # shellcheck disable=SC1090
        . "$envf"
    fi
    if [ ! -f "$envf" ] || ! curl -s -o /dev/null --max-time 5 "${S3RVER_ENDPOINT:-http://127.0.0.1:1}/" ||
        ! curl -s -o /dev/null --max-time 5 "${RGW_ENDPOINT:-http://127.0.0.1:1}/"; then
        echo "# starting the test servers (tests/harness/servers.sh start $BUILD)"
        if ! "$HARNESS/servers.sh" start "$BUILD" >"$T/servers.log" 2>&1; then
            bail "test servers start" "$(tail -20 "$T/servers.log")"
        fi
        # shellcheck disable=SC1090
        . "$envf"
    fi
}

# a unique prefix for this run of this test inside the shared buckets
PFX="$TEST_NAME-$$-$(date +%s)"

_aws_env() {
    env AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_DEFAULT_REGION=us-east-1 "$@"
}
# aws_s3rver ARGS...: /usr/bin/aws against s3rver
aws_s3rver() {
    _aws_env AWS_ACCESS_KEY_ID="$S3RVER_ACCESS_KEY_ID" AWS_SECRET_ACCESS_KEY="$S3RVER_SECRET_ACCESS_KEY" \
        timeout -k 5 "$CMD_TIMEOUT" "$AWS" --endpoint-url "$S3RVER_ENDPOINT" "$@"
}
# aws_rgw ARGS...: against RGW over http; aws_rgw_https over https with its CA
aws_rgw() {
    _aws_env AWS_ACCESS_KEY_ID="$RGW_ACCESS_KEY_ID" AWS_SECRET_ACCESS_KEY="$RGW_SECRET_ACCESS_KEY" \
        timeout -k 5 "$CMD_TIMEOUT" "$AWS" --endpoint-url "$RGW_ENDPOINT" "$@"
}
aws_rgw_https() {
    _aws_env AWS_ACCESS_KEY_ID="$RGW_ACCESS_KEY_ID" AWS_SECRET_ACCESS_KEY="$RGW_SECRET_ACCESS_KEY" \
        AWS_CA_BUNDLE="$RGW_CA_FILE" \
        timeout -k 5 "$CMD_TIMEOUT" "$AWS" --endpoint-url "$RGW_ENDPOINT_HTTPS" "$@"
}

# ---------------------------------------------------------------------------------------
# the fault proxy (tests/harness/faultproxy.py)

PROXY_URL=""
PROXY_LOG=""

# start_proxy UPSTREAM_URL: start a fault proxy (stops when this test exits); sets PROXY_URL
start_proxy() {
    local upstream="$1" pf="$T/proxy.$RANDOM.port" pid
    PROXY_LOG="$T/proxy.$RANDOM.log"
    python3 "$HARNESS/faultproxy.py" --upstream "$upstream" --port-file "$pf" --log "$PROXY_LOG" \
        --parent-pid $$ --max-seconds 1800 2>>"$T/proxy.stderr" &
    pid=$!
    on_exit "kill $pid"
    for _ in $(seq 1 100); do [ -s "$pf" ] && break; sleep 0.05; done
    [ -s "$pf" ] || bail "fault proxy starts" "$(cat "$T/proxy.stderr")"
    PROXY_URL="http://127.0.0.1:$(cat "$pf")"
}

# proxy_plan JSON: replace the plan (and clear the request log)
proxy_plan() {
    local r
    r=$(curl -s -X PUT --data-binary "$1" "$PROXY_URL/__faultproxy/plan")
    [ "$r" = ok ] || bail "fault proxy accepts the plan" "$r"
}

# proxy_log: the request log so far (JSON lines)
proxy_log() { curl -s "$PROXY_URL/__faultproxy/log"; }

# proxy_count METHOD PATH_REGEX [QUERY_REGEX]: requests seen since the plan was set
proxy_count() {
    proxy_log | python3 -c '
import json, re, sys
m, p = sys.argv[1], sys.argv[2]
q = sys.argv[3] if len(sys.argv) > 3 else None
n = 0
for line in sys.stdin:
    e = json.loads(line)
    if (m == "*" or e["method"] == m) and re.search(p, e["path"]) and (q is None or re.search(q, e["query"])):
        n += 1
print(n)' "$@"
}

# proxy_count_status METHOD PATH_REGEX QUERY_REGEX STATUS: those that got STATUS
proxy_count_status() {
    proxy_log | python3 -c '
import json, re, sys
m, p, q, st = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
print(sum(1 for e in map(json.loads, sys.stdin)
          if (m == "*" or e["method"] == m) and re.search(p, e["path"])
          and re.search(q, e["query"]) and e["status"] == st))' "$@"
}

# proxy_show: the log, for diagnostics
proxy_show() { proxy_log | cut -c1-220; }
