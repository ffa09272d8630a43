/* SPDX-License-Identifier: MIT */
/*
 * The small front programs of ferry-wal-push and ferry-wal-fetch.
 *
 * PostgreSQL starts one process per WAL file. With look-ahead or prefetch at
 * work, most of those calls only check a note and return (or rename a
 * spooled file). Those calls are answered by a front program linked with
 * nothing but libc: it starts in about a millisecond, where the full program
 * spends ~7 ms loading and relocating the ~40 libraries that libcurl and
 * OpenSSL pull in. Anything else (a miss, --help, a bad argument, an error to
 * report) is handed to the full program, the "core", by exec with the same
 * arguments, so there is one implementation of every check and message.
 *
 * The core is looked for beside the front's own executable (the build tree,
 * or an install with both in one directory), then in FERRY_LIBEXECDIR (the
 * configured libexecdir/ferry), then in ../libexec/ferry beside the front.
 */
#ifndef CLI_FRONT_H
#define CLI_FRONT_H

#include <stdbool.h>

#include "base/options.h"

/* The environment variable that tells a core started by a front what to be. */
#define FRONT_ROLE_ENV "FERRY_CORE_ROLE"

/*
 * Parse argv as cli_init would (common options plus own, flags > FERRY_*
 * environment > config file section), set the log level. NULL when the core
 * must answer: --help, --version, or anything it would report as an error.
 */
struct opts *front_parse(const char *progname, const struct opt_def *own, int argc, char **argv);

/*
 * Replace this process by the core (same arguments). Returns only when it
 * cannot be run, after one line on stderr saying why.
 */
void front_exec_core(const char *core, char **argv);

/*
 * Start the core detached from the caller (cli_detach), with FRONT_ROLE_ENV
 * set to role, and return at once.
 */
void front_spawn_core(const char *core, char **argv, const char *role);

/* true when no process holds the flock on path (it is created if missing). */
bool front_lock_free(const char *path);

/*
 * Wait until no process holds an exclusive flock on path (or path does not
 * exist), at most seconds: true if so, false on timeout. Wakes up as soon as
 * the holder lets go (a blocking flock, bounded by SIGALRM).
 */
bool front_lock_wait(const char *path, unsigned seconds);

#endif
