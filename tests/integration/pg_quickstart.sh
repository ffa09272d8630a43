#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# tools/quickstart, README command one, run as documented (with this build dir): exit 0; it
# used ferry-basebackup, ferry-verify, ferry-restore and ferry-wal-fetch; the restored orders
# are exactly the three committed before the target time; its scratch dir is gone and no
# PostgreSQL it started is left running. As a non-root user it refuses (exit 1) before doing
# anything.
. "$(dirname "$0")/lib.sh"

QS="$SRC/tools/quickstart"
t0=$(now)
QUICKSTART_BUILD="$BUILD" timeout -k 5 600 "$QS" >"$T/qs.out" 2>"$T/qs.err" </dev/null
rc=$?
diag "tools/quickstart took $(elapsed "$t0") s"
if [ "$rc" = 0 ]; then pass "tools/quickstart exits 0"; else fail "tools/quickstart exits 0" "exit status $rc" "$(tail -20 "$T/qs.out")" "$(tail -10 "$T/qs.err")"; fi
out=$(cat "$T/qs.out")
got=$(sed -n '/the restored orders/,/^$/p' "$T/qs.out" | grep '^  ' | tr -d ' ' | paste -sd ' ')
expect_eq "$got" "1|apples 2|bread 3|coffee" "it shows exactly the three orders committed before the target"
expect_contains "$out" "OK: the orders committed before" "and says so"
expect_contains "$out" "recovery stopping before commit of transaction" "recovery stopped at the target"
expect_contains "$out" "archive_command = '$BUILD/wal-push/ferry-wal-push --repo file://" "it archived with ferry-wal-push"
expect_contains "$out" "$BUILD/basebackup/ferry-basebackup --repo file://" "it took the base backup with ferry-basebackup"
expect_contains "$out" "  intact: checked 1 backup" "ferry-verify found the backup and the WAL whole"
expect_contains "$out" "  restored backup " "it restored the backup with ferry-restore"
expect_contains "$out" "restore_command = '$BUILD/wal-fetch/ferry-wal-fetch " "which set restore_command to ferry-wal-fetch"
expect_contains "$out" "recovery_target_time = '" "and the target time"
rt=$(grep -E '^recovery time: [0-9]+\.[0-9]{3} s \(ferry-restore [0-9]+\.[0-9]{3} s, then PostgreSQL until promoted [0-9]+\.[0-9]{3} s\)$' "$T/qs.out")
expect_ne "$rt" "" "it prints the recovery time, split between ferry-restore and PostgreSQL"
diag "$rt"
scratch=$(grep -o '/tmp/ferry-quickstart\.[A-Za-z0-9]*' "$T/qs.out" | head -1)
expect_ne "$scratch" "" "it names its scratch dir"
expect_file_absent "$scratch" "the scratch dir is removed"
left=$(for p in /proc/[0-9]*; do tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -F -- "$scratch/" | head -1; done)
expect_eq "$left" "" "no process of the quickstart is left running"

runuser -u postgres -- "$QS" >"$T/qs2.out" 2>"$T/qs2.err" </dev/null
rc=$?
expect_eq "$rc" 1 "as a non-root user: exit 1"
expect_eq "$(cat "$T/qs2.err")" "$(printf '\nquickstart: FAILED: run as root (it installs packages and runs PostgreSQL as the postgres user)')" \
    "with a message saying why"
done_testing
