/* SPDX-License-Identifier: MIT */
/*
 * The config file parser: "name = value" lines, pure (text in, entries out),
 * used by options.c and fuzzed by tests/fuzz/fuzz_config.c. The syntax
 * (docs/configuration.md):
 *
 *   # a comment: a line whose first non-blank character is '#'
 *   repo = s3://bucket/prefix        value: the rest of the line, trimmed
 *   s3-region = "eu-west-1"          "..." allows \" and \\; '...' is literal
 *   compress = 'zstd'   # comment    after a quoted value only a comment may follow
 *
 * Names are [a-z0-9-] (upper case is refused so the file cannot disagree with
 * the --flag spelling). Setting one name twice in a section is an error (a
 * silent "last wins" hides mistakes in long files). A line "[wal-push]"
 * starts a section: the lines after it hold one program's own options
 * (ferry-wal-push's), which other programs ignore; lines before any section
 * are common to all programs.
 * Lines end with "\n" or "\r\n". A NUL byte anywhere is an error.
 */
#ifndef BASE_CONFIG_H
#define BASE_CONFIG_H

#include <stddef.h>
#include <sys/stat.h>

#include "base/err.h"

struct config_entry {
    char *name;
    char *value;
    int line;      /* 1-based */
    char *section; /* NULL before any "[section]" line */
};

struct config {
    struct config_entry *entries; /* in file order */
    size_t n;
    char *section; /* while parsing: the current section */
};

/*
 * Parse text (len bytes, need not be NUL-terminated). file names the source
 * in messages. ERR_CONFIG "<problem> in \"FILE\" line N" on a bad line.
 */
int config_parse(struct config **out, const char *text, size_t len, const char *file,
                 struct err *err);
void config_free(struct config *c);

/*
 * A file holding secrets must not be accessible by group or others (like ssh's
 * private keys). st describes it (fstat of the open file). what names its role
 * ("config file", "encryption key file"). 0, or -1 with ERR_CONFIG:
 * "WHAT \"PATH\" holds secrets and must not be accessible by group or others
 * (mode 0644): run chmod 600 \"PATH\"".
 */
int config_check_private(const struct stat *st, const char *path, const char *what,
                         struct err *err);

/*
 * Read a whole small file (at most max bytes) into a NUL-terminated malloc'd
 * buffer; *st_out (if not NULL) gets its fstat. what names it in messages.
 * ERR_NOT_FOUND if absent, ERR_CONFIG if larger than max, else ERR_IO.
 */
int config_read_file(char **out, size_t *out_len, struct stat *st_out, const char *path,
                     const char *what, size_t max, struct err *err);

/* The default config file, "/etc/ferry.conf"; a variable so tests can point it elsewhere. */
extern const char *config_default_path;

#endif
