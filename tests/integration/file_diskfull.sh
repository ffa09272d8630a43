#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Disk full on file://: the repository lives on a 4 MiB tmpfs (mounted here, needs root);
# putting 8 MiB of random data fails with exit 1 and one line naming the cause (no space
# left on device), and leaves no partial object and no temp file; a small put still works.
. "$(dirname "$0")/lib.sh"

if [ "$(id -u)" != 0 ]; then
    bail "mount a 4 MiB tmpfs" "this test needs root (mount -t tmpfs); run it through tools/test as root"
fi
R="$T/mnt"
mkdir -p "$R"
if ! mount -t tmpfs -o size=4m,mode=0755 ferry-it-full "$R" 2>"$T/mount.err"; then
    bail "mount a 4 MiB tmpfs" "$(cat "$T/mount.err")"
fi
on_exit "umount -l '$R'"
REPO_OPTS=(--repo "file://$R")

rand_file "$T/big" $((8 * 1024 * 1024))
rand_file "$T/small" 1000

ferry_run put full/big "$T/big" --compress none
expect_error 1 "No space left on device" "put larger than the free space: exit 1, no space left on device"
ferry_run ls
expect_eq "$(cat "$OUT")" "" "no partial object listed"
expect_eq "$(find "$R" -type f | wc -l | tr -d ' ')" "0" "no file or temp file left on the full disk"
expect_le "$(df -k --output=used "$R" | tail -1 | tr -d ' ')" 64 "the space is given back"

ferry_in "$T/big" put full/stdin - --compress none
expect_error 1 "No space left on device" "streamed put larger than the free space: exit 1"
expect_eq "$(find "$R" -type f | wc -l | tr -d ' ')" "0" "no file left by the streamed put"

ferry_run put full/small "$T/small"
expect_ok "a small put still works once the failed ones are cleaned up"
ferry_run get full/small "$T/got"
expect_same_file "$T/got" "$T/small" "and round-trips"

section "get to a full disk"
mkdir -p "$T/repo2"
REPO_OPTS=(--repo "file://$T/repo2")
ferry_run put full/big "$T/big" --compress none
expect_ok "put into a second repository (not full)"

ferry_run get full/big "$R/out"
expect_error 1 "No space left on device" "get into a full disk: exit 1, no space left on device"
expect_file_absent "$R/out" "no partial output file"

done_testing
