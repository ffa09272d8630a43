#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Real PostgreSQL 15 archiving into a file:// repository with ferry-wal-push under pgbench
# load (1 MiB segments, so many of them and the look-ahead at work); every file PostgreSQL
# marked .done is in the repository; a base backup (pg_basebackup -X none); PITR with
# ferry-wal-fetch to a time between two known commits gives exactly the rows before it; a
# recovery to the end of the archive gives every committed row.
# With the argument "encrypted" (test pg_archive_encrypted): the same with client-side
# encryption (encryption-key-file in the config, gzip); the stored objects do not hold the
# WAL in clear, a fetch without the key fails, and pushing an archived segment again with
# the same bytes (exit 0) or other bytes (exit 1, both checksums) works on encrypted objects.
. "$(dirname "$0")/lib.sh"
. "$HARNESS/pg.sh"
MODE="${1:-plain}"

mkdir -p "$PGT/repo"
chown postgres: "$PGT/repo"
CFG="$PGT/ferry.conf"
if [ "$MODE" = encrypted ]; then
    head -c 32 /dev/urandom >"$PGT/key"
    chmod 600 "$PGT/key"
    chown postgres: "$PGT/key"
    ferry_cfg "$CFG" "repo = file://$PGT/repo" "encryption-key-file = $PGT/key" "compress = gzip"
else
    ferry_cfg "$CFG" "repo = file://$PGT/repo"
fi

pitr_roundtrip "$CFG" 1

if [ "$MODE" = encrypted ]; then
    section "encrypted objects"
    OBJ="$PGT/repo/$(wal_key "$LAST")"
    # 64 bytes of the segment from its middle (pgbench data) must not appear in the object
    needle=$(dd if="$P/pg_wal/$LAST" bs=1 skip=524288 count=64 2>/dev/null | od -An -tx1 | tr -d ' \n')
    hay=$(od -An -tx1 "$OBJ" | tr -d ' \n')
    expect_not_contains "${hay:0:4000000}" "$needle" "the stored object does not hold the segment's bytes in clear"
    ferry_cfg "$PGT/nokey.conf" "repo = file://$PGT/repo"
    mkdir -p "$PGT/nokey"
    chown postgres: "$PGT/nokey"
    run_pg "$WAL_FETCH" --config "$PGT/nokey.conf" "$LAST" "$PGT/nokey/RECOVERYXLOG"
    expect_tool_error 200 "object is encrypted: no key given" "ferry-wal-fetch without the key: exit 200, says no key was given"
    expect_file_absent "$PGT/nokey/RECOVERYXLOG" "and no file at %p"
    mkdir -p "$PGT/again"
    cp "$P/pg_wal/$LAST" "$PGT/again/$LAST"
    chown -R postgres: "$PGT/again"
    run_pg "$WAL_PUSH" --config "$CFG" "$PGT/again/$LAST"
    expect_rc 0 "the same bytes again: exit 0"
    expect_eq "$(cat "$ERR")" "ferry-wal-push: notice: \"$LAST\" was already archived with the same contents" "with a notice"
    sha_old=$(sha "$PGT/again/$LAST")
    printf '\x5a' | dd of="$PGT/again/$LAST" bs=1 seek=700000 conv=notrunc 2>/dev/null
    sha_new=$(sha "$PGT/again/$LAST")
    run_pg "$WAL_PUSH" --config "$CFG" "$PGT/again/$LAST"
    expect_tool_error 1 "archived sha256 $sha_old (1048576 bytes), local sha256 $sha_new (1048576 bytes)" \
        "other bytes: exit 1 naming both checksums"
fi
done_testing
