/* SPDX-License-Identifier: MIT */
/*
 * Options: flags override environment variables, which override the config
 * file (/etc/ferry.conf, or --config / FERRY_CONFIG). One naming rule:
 * option --foo-bar is FERRY_FOO_BAR in the environment and "foo-bar = ..."
 * in the config file. Secret options are never printed; a config file that
 * holds one must not be readable by group or others; given as a flag, a
 * secret is scrubbed from argv (process title) after parsing.
 */
#ifndef BASE_OPTIONS_H
#define BASE_OPTIONS_H

#include <stdbool.h>
#include <stdio.h>

#include "base/err.h"

enum opt_type {
    OPT_STRING, /* --name VALUE or --name=VALUE */
    OPT_BOOL,   /* --name (true), --no-name (false); env/config: on/off, true/false, yes/no, 1/0 */
    OPT_INT,    /* decimal, range-checked by the caller */
    OPT_SIZE,   /* bytes with optional K/M/G/T suffix (binary) */
};

struct opt_def {
    const char *name; /* "s3-region" */
    char short_name;  /* 'D' or 0 */
    enum opt_type type;
    unsigned flags;       /* OPT_SECRET, OPT_NO_ENV ... */
    const char *arg_name; /* "URL" in --help; NULL for bools */
    const char *help;     /* one line */
};

#define OPT_SECRET 1u  /* never printed; config file must be private */
#define OPT_NO_FILE 2u /* not read from the config file (e.g. "config" itself) */
#define OPT_NO_ENV 4u  /* not read from the environment */
#define OPT_REPEAT 8u  /* a flag given again appends: values joined with "," */

/* Terminates an opt_def array. */
#define OPT_END                                                                                    \
    {                                                                                              \
        NULL, 0, OPT_STRING, 0, NULL, NULL                                                         \
    }

struct opts;

/*
 * Parse argv against the given tables (a NULL-terminated array of opt_def
 * arrays, so programs combine common and own tables), then the environment,
 * then the config file. Non-option arguments are returned in order
 * (opts_args returns pointers into argv). "--" ends options. Unknown options,
 * missing values, malformed numbers: ERR_USAGE naming the option. Config
 * file problems: ERR_CONFIG naming file and line. --help and --version are
 * reported through opts_is_help()/opts_is_version().
 */
int opts_parse(struct opts **out, const struct opt_def *const *tables, int argc, char **argv,
               struct err *err);
void opts_free(struct opts *o);

char **opts_args(const struct opts *o, int *n);

/* NULL if unset anywhere. */
const char *opts_get(const struct opts *o, const char *name);
bool opts_get_bool(const struct opts *o, const char *name, bool dflt);
/* 0 (with *out = dflt if unset) or -1 (ERR_USAGE, bad number or outside [min, max]). */
int opts_get_int(const struct opts *o, const char *name, long dflt, long min, long max, long *out,
                 struct err *err);
int opts_get_size(const struct opts *o, const char *name, unsigned long long dflt,
                  unsigned long long *out, struct err *err);
/* "command line", "environment (FERRY_X)", "config file (/etc/ferry.conf:12)" or "default". */
const char *opts_source(const struct opts *o, const char *name);

bool opts_is_help(const struct opts *o);
bool opts_is_version(const struct opts *o);

/* Print the options of the tables, one per line, for --help. */
void opts_print_help(FILE *f, const struct opt_def *const *tables);

/*
 * The config file section of this program ("wal-push" for ferry-wal-push):
 * its lines apply, other programs' sections are skipped. Call before
 * opts_parse; NULL (the default) reads only the common lines.
 */
void opts_set_section(const char *name);

/* The options every program shares: --repo, --config, --log-level, --s3-*, encryption. */
extern const struct opt_def opts_common[];

#endif
