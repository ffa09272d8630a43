/* SPDX-License-Identifier: MIT */
/*
 * The config file: a parser for "name = value" lines that knows nothing of
 * the option tables (options.c checks the names), plus the two file helpers
 * every secret-bearing file needs: bounded reading and the private-mode check.
 */
#include "base/config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/xmalloc.h"

const char *config_default_path = "/etc/ferry.conf";

/* Far more than there are options; bounds the duplicate check (quadratic). */
#define CONFIG_MAX_ENTRIES 1000

static bool
is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static bool
is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

/* One line without its terminator: [p, end). Adds an entry or fails. */
static int
parse_line(struct config *c, const char *p, const char *end, const char *file, int lineno,
           struct err *err)
{
    const char *name, *name_end, *v, *v_end;
    struct buf value = BUF_INIT;

    while (p < end && is_blank(*p))
        p++;
    while (end > p && (is_blank(end[-1]) || end[-1] == '\r'))
        end--;
    if (p == end || *p == '#')
        return 0;
    if (*p == '[') {
        /* "[wal-push]": the lines below belong to one program */
        const char *sn = ++p;

        while (p < end && is_name_char(*p))
            p++;
        if (p == sn || p + 1 != end || *p != ']')
            return err_set(err, ERR_CONFIG,
                           "invalid section in \"%s\" line %d: expected \"[program]\", e.g. "
                           "\"[wal-push]\"",
                           file, lineno);
        free(c->section);
        c->section = xstrndup(sn, (size_t)(p - sn));
        return 0;
    }
    name = p;
    while (p < end && !is_blank(*p) && *p != '=')
        p++;
    name_end = p;
    while (p < end && is_blank(*p))
        p++;
    if (name_end == name || p == end || *p != '=')
        return err_set(err, ERR_CONFIG, "syntax error in \"%s\" line %d: expected \"name = value\"",
                       file, lineno);
    for (const char *q = name; q < name_end; q++)
        if (!is_name_char(*q))
            return err_set(err, ERR_CONFIG,
                           "invalid option name in \"%s\" line %d: use lower case letters, "
                           "digits and \"-\"",
                           file, lineno);
    p++;
    while (p < end && is_blank(*p))
        p++;
    v = p;
    v_end = end;
    if (p < end && (*p == '"' || *p == '\'')) {
        char q = *p++;
        bool closed = false;

        while (p < end) {
            if (*p == q) {
                closed = true;
                p++;
                break;
            }
            if (q == '"' && *p == '\\' && p + 1 < end && (p[1] == '"' || p[1] == '\\'))
                p++;
            buf_putc(&value, *p++);
        }
        if (!closed) {
            buf_free(&value);
            return err_set(err, ERR_CONFIG, "unterminated quote in \"%s\" line %d", file, lineno);
        }
        while (p < end && is_blank(*p))
            p++;
        if (p < end && *p != '#') {
            buf_free(&value);
            return err_set(err, ERR_CONFIG, "unexpected text after closing quote in \"%s\" line %d",
                           file, lineno);
        }
    } else {
        buf_append(&value, v, (size_t)(v_end - v));
    }

    for (size_t i = 0; i < c->n; i++) {
        const char *es = c->entries[i].section;
        bool same_section = es == c->section || (es && c->section && strcmp(es, c->section) == 0);

        if (same_section && strlen(c->entries[i].name) == (size_t)(name_end - name) &&
            memcmp(c->entries[i].name, name, (size_t)(name_end - name)) == 0) {
            err_set(err, ERR_CONFIG, "option \"%s\" is set twice in \"%s\" (lines %d and %d)",
                    c->entries[i].name, file, c->entries[i].line, lineno);
            buf_free(&value);
            return -1;
        }
    }
    if (c->n >= CONFIG_MAX_ENTRIES) {
        buf_free(&value);
        return err_set(err, ERR_CONFIG, "more than %d settings in \"%s\" (line %d)",
                       CONFIG_MAX_ENTRIES, file, lineno);
    }
    c->entries = xrealloc(c->entries, (c->n + 1) * sizeof(*c->entries));
    c->entries[c->n].name = xstrndup(name, (size_t)(name_end - name));
    c->entries[c->n].value = buf_detach(&value);
    c->entries[c->n].line = lineno;
    c->entries[c->n].section = c->section ? xstrdup(c->section) : NULL;
    c->n++;
    return 0;
}

int
config_parse(struct config **out, const char *text, size_t len, const char *file, struct err *err)
{
    struct config *c = xcalloc(1, sizeof(*c));
    const char *p = text, *end = text + len;
    int lineno = 0;

    *out = NULL;
    if (len > 0 && memchr(text, '\0', len)) {
        const char *nul = memchr(text, '\0', len);
        int line = 1;

        for (const char *q = text; q < nul; q++)
            line += *q == '\n';
        config_free(c);
        return err_set(err, ERR_CONFIG, "NUL byte in \"%s\" line %d", file, line);
    }
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = nl ? nl : end;

        lineno++;
        if (parse_line(c, p, line_end, file, lineno, err) < 0) {
            config_free(c);
            return -1;
        }
        p = nl ? nl + 1 : end;
    }
    *out = c;
    return 0;
}

void
config_free(struct config *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++) {
        free(c->entries[i].name);
        free(c->entries[i].section);
        if (c->entries[i].value) {
            /* values may be secrets: wipe before giving the memory back */
            size_t n = strlen(c->entries[i].value);
            volatile char *v = c->entries[i].value;

            for (size_t j = 0; j < n; j++)
                v[j] = 0;
        }
        free(c->entries[i].value);
    }
    free(c->entries);
    free(c->section);
    free(c);
}

int
config_check_private(const struct stat *st, const char *path, const char *what, struct err *err)
{
    if ((st->st_mode & 077) == 0)
        return 0;
    return err_set(err, ERR_CONFIG,
                   "%s \"%s\" holds secrets and must not be accessible by group or others "
                   "(mode %04o): run chmod 600 \"%s\"",
                   what, path, (unsigned)(st->st_mode & 07777), path);
}

int
config_read_file(char **out, size_t *out_len, struct stat *st_out, const char *path,
                 const char *what, size_t max, struct err *err)
{
    int fd;
    struct stat st;
    char *data = NULL;
    size_t len = 0;

    *out = NULL;
    *out_len = 0;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return err_sys(err, errno == ENOENT ? ERR_NOT_FOUND : ERR_IO, "could not open %s \"%s\"",
                       what, path);
    if (fstat(fd, &st) < 0) {
        err_sys(err, ERR_IO, "could not stat %s \"%s\"", what, path);
        goto fail;
    }
    /* character devices: so that --config /dev/null means "no config file" */
    if (!S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode)) {
        err_set(err, ERR_CONFIG, "%s \"%s\" is not a regular file", what, path);
        goto fail;
    }
    data = xmalloc(max + 2);
    for (;;) {
        ssize_t n = read(fd, data + len, max + 1 - len);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            err_sys(err, ERR_IO, "could not read %s \"%s\"", what, path);
            goto fail;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > max) {
            err_set(err, ERR_CONFIG, "%s \"%s\" is larger than %zu bytes", what, path, max);
            goto fail;
        }
    }
    data[len] = '\0';
    close(fd);
    if (st_out)
        *st_out = st;
    *out = data;
    *out_len = len;
    return 0;
fail:
    if (data) {
        volatile char *v = data;

        for (size_t i = 0; i < max + 2; i++)
            v[i] = 0;
    }
    free(data);
    close(fd);
    return -1;
}
