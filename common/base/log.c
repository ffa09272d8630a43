/* SPDX-License-Identifier: MIT */
/* Leveled one-line logging to stderr: see log.h. */
#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *log_progname = "ferry";
static enum log_level log_level = LOG_NOTICE;

static const char *const level_names[] = {"error", "warning", "notice", "info", "debug"};

void
log_init(const char *progname)
{
    const char *slash = strrchr(progname, '/');

    log_progname = slash ? slash + 1 : progname;
}

void
log_set_level(enum log_level level)
{
    log_level = level;
}

enum log_level
log_get_level(void)
{
    return log_level;
}

int
log_level_parse(const char *s, enum log_level *out)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    if (strcmp(s, "warn") == 0) {
        *out = LOG_WARNING;
        return 0;
    }
    return -1;
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    size_t n;

    if (level > log_level)
        return;
    n = (size_t)snprintf(line, sizeof(line), "%s: %s: ", log_progname, level_names[level]);
    if (n >= sizeof(line))
        n = sizeof(line) - 1;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    va_end(ap);
    /* one line, whatever the message held */
    for (char *p = line; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    fprintf(stderr, "%s\n", line);
}

void
log_err(const struct err *err)
{
    log_msg(LOG_ERROR, "%s", err->msg[0] ? err->msg : "unknown error");
}
