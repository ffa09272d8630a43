#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# ferry-restore on bad input: a corrupted, truncated or missing backup object makes the restore
# fail with one clear line and leaves no half-restored directory (no pg_control, nothing left,
# a tablespace directory it made removed); crafted backups with tar entries "../x", an absolute
# path, a symlink escaping the directory, a file written through a symlink placed by an earlier
# entry, a hard link to /etc/passwd, a device, or a file that does not match the manifest (SHA256
# or CRC32C) are refused and nothing is written outside the data directory; a crafted backup with
# CRC32C checksums is restored; an empty repository is reported.
. "$(dirname "$0")/lib.sh"
. "$HARNESS/pg.sh"
. "$(dirname "$0")/pg_basebackup_lib.sh"
. "$(dirname "$0")/pg_restore_lib.sh"

mkdir -p "$PGT/repo" "$PGT/empty"
chown postgres: "$PGT/repo" "$PGT/empty"
CFG="$PGT/ferry.conf"
ferry_cfg "$CFG" "repo = file://$PGT/repo"

section "an empty repository"
D=$(pgdir d0)
rs --repo "file://$PGT/empty" -D "$D"
expect_rs_error "no backup in the repository \"file://$PGT/empty\"" "no backup: said so"

section "a real backup (PostgreSQL 15, ferry-basebackup, with a tablespace)"
pg_new primary
P="$PGD"
pg_archive_to "$P" "$CFG"
pg_start "$P" || bail "the primary starts" "$(tail -5 "$P.log")"
pg_bench_init "$P" 1 || bail "pgbench -i" "$(tail -5 "$P.pgbench-init.log")"
mkdir -p "$PGT/ts1"
chown postgres: "$PGT/ts1"
pg_sql "$P" "create tablespace ts1 location '$PGT/ts1'" >/dev/null
TSOID=$(pg_sql "$P" "create table in_ts tablespace ts1 as select g from generate_series(1, 1000) g; select oid from pg_tablespace where spcname = 'ts1'" | tail -1)
bb "$CFG" "$P" -c fast --json
expect_ok "ferry-basebackup"
cp "$OUT" "$T/entry.json"
ID=$(jget "$T/entry.json" 'j["id"]')
pg_stop "$P"

# bad_copy NAME: a copy of the repository to damage; sets BAD (its URL)
bad_copy() {
    rm -rf "$PGT/$1"
    cp -a "$PGT/repo" "$PGT/$1"
    BAD="file://$PGT/$1"
}
# expect_clean DIR DESC: DIR exists and is empty
expect_clean() {
    if [ -d "$1" ] && [ -z "$(ls -A "$1")" ]; then pass "$2"; else fail "$2" "$(ls -A "$1" 2>&1 | head -5)"; fi
}

section "a corrupted base.tar object"
bad_copy corrupt
obj="$PGT/corrupt/pg/backups/$ID/base.tar"
size=$(stat -c %s "$obj")
printf '\xff' | dd of="$obj" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
D=$(pgdir d1)
rs --repo "$BAD" -D "$D" --tablespace "$TSOID=$PGT/ts-new1"
expect_rs_error "\"base.tar\"" "refused, naming the part"
expect_contains "$(cat "$ERR")" "(everything restored was removed again)" "it says what it did about it"
expect_clean "$D" "the data directory is empty again (no pg_control)"
expect_file_absent "$PGT/ts-new1" "the tablespace directory it made is gone"
diag "$(cat "$ERR")"

section "a truncated tablespace object"
bad_copy trunc
obj="$PGT/trunc/pg/backups/$ID/$TSOID.tar"
truncate -s $(($(stat -c %s "$obj") - 100)) "$obj"
D=$(pgdir d2)
rs --repo "$BAD" -D "$D" --tablespace "$TSOID=$PGT/ts-new2"
expect_rs_error "\"$TSOID.tar\"" "refused, naming the part"
expect_clean "$D" "the data directory is empty again"
expect_file_absent "$PGT/ts-new2" "the tablespace directory it made is gone"
diag "$(cat "$ERR")"

section "a missing base.tar object"
bad_copy missing
rm -f "$PGT/missing/pg/backups/$ID/base.tar"
D=$(pgdir d3)
rs --repo "$BAD" -D "$D" --tablespace "$TSOID=$PGT/ts-new3"
expect_rs_error "\"base.tar\"" "refused, naming the part"
expect_contains "$(cat "$ERR")" "pg/backups/$ID/base.tar" "and the key"
expect_clean "$D" "the data directory is empty again"
diag "$(cat "$ERR")"

section "a damaged backup_manifest"
bad_copy manifest
obj="$PGT/manifest/pg/backups/$ID/backup_manifest"
printf '\x00' | dd of="$obj" bs=1 seek=$(($(stat -c %s "$obj") / 2)) conv=notrunc 2>/dev/null
D=$(pgdir d4)
rs --repo "$BAD" -D "$D" --tablespace "$TSOID=$PGT/ts-new4"
expect_rs_error "backup_manifest" "refused, naming the manifest"
expect_clean "$D" "the data directory is empty again"

section "crafted backups"
CR="$PGT/crafted"
mkdir -p "$CR"
n=0
# crafted SPEC WANT DESC: a crafted backup with SPEC is refused with WANT; nothing outside
crafted() {
    local spec="$1" want="$2" desc="$3" id d
    n=$((n + 1))
    id=$(printf '20260101T0000%02dZ' "$n")
    crafted_backup "$CR" "$id" "$spec" || { fail "$desc: crafted backup stored" "$(cat "$T/craft-$id.log")"; return; }
    d=$(pgdir "c$n")
    rs --repo "file://$CR" -D "$d" --backup "$id"
    expect_rs_error "$want" "$desc"
    expect_clean "$d" "$desc: the data directory is empty again"
}
crafted "d:base,f:../x" 'tar entry "../x" has a ".." component' 'a tar entry "../x"'
expect_file_absent "$PGT/x" "../x was not written"
crafted "f:$T/abs-x" "tar entry \"$T/abs-x\" has an absolute path" 'an absolute path'
expect_file_absent "$T/abs-x" "the absolute path was not written"
crafted "f:base/../../y" 'has a ".." component' 'a ".." inside a path'
expect_file_absent "$PGT/y" "../y was not written"
mkdir -p "$T/outside"
crafted "l:esc>../../../outside,f:esc/z" 'symlink "esc" points outside the directory: "../../../outside"' 'a symlink escaping the directory'
expect_eq "$(ls -A "$T/outside")" "" "nothing was written through it"
crafted "l:esc2>$T/outside" "symlink \"esc2\" points outside the directory" 'an absolute symlink'
crafted "d:real,l:lnk>real,f:lnk/z" 'tar entry "lnk/z" lies below "lnk", which is not a directory' 'a file through a symlink placed by an earlier entry'
crafted "h:hl>/etc/passwd" 'hard link "hl": tar entry "/etc/passwd" has an absolute path' 'a hard link to /etc/passwd'
crafted "h:hl>../../etc/passwd" 'has a ".." component' 'a hard link climbing out'
crafted "c:dev" 'tar entry "dev" is a device, FIFO or socket' 'a device file'
crafted "m:base/1/1234" 'file "base/1/1234" does not match the manifest: SHA256 ' 'a file that does not match the manifest'
crafted "a:CRC32C,m:base/1/1234" 'file "base/1/1234" does not match the manifest: CRC32C df58d63a, the manifest says d9e8f28f' \
    'a file that does not match its CRC32C in the manifest'
crafted "f:PG_VERSION" 'tar entry "PG_VERSION" appears twice' 'the same file twice'
id=20260101T000099Z
crafted_backup "$CR" "$id" "d:base,f:base/ok"
d=$(pgdir cok)
rs --repo "file://$CR" -D "$d" --backup "$id"
expect_ok "a crafted backup without bad entries is restored (the checks above can pass)"
expect_eq "$(cat "$d/base/ok")" "crafted content" "its file is there"
id=20260101T000097Z
crafted_backup "$CR" "$id" "d:base,f:base/ok"
# stored uncompressed, one byte of the tar's final padding changed: no tar entry, no manifest
# check and no decompressor notices; only the object's SHA-256 (an object stored raw and
# unencrypted has no codec check, so restore hashes it)
timeout 60 "$FERRY" repo --config /dev/null --repo "file://$CR" put --compress none --force \
    "pg/backups/$id/base.tar" "$T/craft-$id/base.tar" >/dev/null 2>&1
obj="$CR/pg/backups/$id/base.tar"
size=$(stat -c %s "$obj")
printf 'Z' | dd of="$obj" bs=1 seek=$((size - 64 - 1)) conv=notrunc 2>/dev/null
d=$(pgdir cpad)
rs --repo "file://$CR" -D "$d" --backup "$id"
expect_rs_error "\"base.tar\": checksum mismatch: stored " \
    "a changed byte past the tar's end: the object's SHA-256 catches it"
expect_clean "$d" "the data directory is empty again"
id=20260101T000098Z
crafted_backup "$CR" "$id" "a:CRC32C,d:base,f:base/ok"
d=$(pgdir cokcrc)
rs --repo "file://$CR" -D "$d" --backup "$id"
expect_ok "a crafted backup with CRC32C checksums is restored (each file checked against its CRC32C)"
expect_eq "$(grep -c '"Checksum-Algorithm": "CRC32C"' "$d/backup_manifest")" 3 "(its manifest has three CRC32C entries)"
done_testing
