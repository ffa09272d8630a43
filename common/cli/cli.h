/* SPDX-License-Identifier: MIT */
/*
 * What every ferry program does first: parse options (flags > environment >
 * config file), set the log level, answer --help and --version, and open
 * the repository with its compression and encryption settings. Programs
 * call this from main(); it never exits by itself.
 */
#ifndef CLI_CLI_H
#define CLI_CLI_H

#include <stdbool.h>

#include "base/err.h"
#include "base/options.h"
#include "storage/repo.h"
#include "stream/object.h"

struct cli {
    const char *progname;
    struct opts *opts;
    char **args;
    int n_args;
    struct repo_opts ropts;
    struct object_opts oopts;
    struct crypt_key *key;
    struct repo *repo;
    bool done;   /* --help or --version was answered: exit 0 */
    bool loaded; /* ropts, oopts and key are filled */
};

/*
 * Parse argv with the common options plus own (may be NULL). usage is the
 * synopsis and description printed by --help before the option list.
 */
int cli_init(struct cli *c, const char *progname, const char *usage, const struct opt_def *own,
             int argc, char **argv, struct err *err);

/*
 * Load the repository, compression and encryption settings into ropts,
 * oopts and key (once), so a program can adjust them before cli_open_repo.
 */
int cli_load(struct cli *c, struct err *err);

/*
 * Open the repository named by --repo / FERRY_REPO, with compression and
 * encryption settings (loaded once). A no-op when it is open already; after
 * repo_close(c->repo) and c->repo = NULL it opens again (e.g. after fork).
 */
int cli_open_repo(struct cli *c, struct err *err);

void cli_free(struct cli *c);

/*
 * Detach a background worker from the caller (PostgreSQL's archiver or
 * startup process): fork, leave the process group, fork again, stdin and
 * stdout to /dev/null (stderr stays, so the server log shows what it does).
 * Returns true in the detached process, which must end with _exit() and
 * never touch what the parent opened (its connections belong to the
 * parent); false in the caller, once the middle process is reaped (also
 * when fork fails: no worker then).
 */
bool cli_detach(void);

#endif
