/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: tar streams as ferry-restore reads them. The input is fed to
 * libarchive in chunks whose sizes come from the input itself (as the
 * download pipe delivers them); every entry goes through tar_entry_check.
 * Invariants of an accepted entry: its name is relative, has no "." or ".."
 * component and no empty one; an accepted symlink target is relative and
 * stays inside the root when resolved from the link's directory.
 */
#include <archive.h>
#include <archive_entry.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "format/tar.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct feed {
    const uint8_t *data;
    size_t size, off;
    unsigned seed;
};

static la_ssize_t
read_cb(struct archive *a, void *arg, const void **buf)
{
    struct feed *f = arg;
    size_t n;

    (void)a;
    f->seed = f->seed * 1103515245u + 12345u;
    n = 1 + (f->seed >> 16) % 700;
    if (n > f->size - f->off)
        n = f->size - f->off;
    *buf = f->data + f->off;
    f->off += n;
    return (la_ssize_t)n;
}

static void
check_name(const char *p)
{
    const char *s = p;

    if (!*p || *p == '/')
        abort();
    while (*s) {
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);

        if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
            abort();
        s += n;
        if (*s == '/')
            s++;
        else if (*s)
            abort();
    }
}

/* Lexical resolution of target from path's directory never goes above the root. */
static void
check_target(const char *path, const char *target)
{
    long depth = 0;
    const char *s;

    if (target[0] == '/')
        abort();
    for (s = path; *s; s++)
        if (*s == '/')
            depth++;
    for (s = target; *s;) {
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);

        if (n == 2 && s[0] == '.' && s[1] == '.')
            depth--;
        else if (n > 0 && !(n == 1 && s[0] == '.'))
            depth++;
        if (depth < 0)
            abort();
        s += n;
        if (*s == '/')
            s++;
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct feed f = {data, size, 0, (unsigned)size};
    struct archive *a = archive_read_new();
    struct archive_entry *ae;
    char out[TAR_PATH_MAX], link[TAR_PATH_MAX], buf[4096];
    int entries = 0;

    archive_read_support_format_tar(a);
    if (archive_read_open(a, &f, NULL, read_cb, NULL) != ARCHIVE_OK)
        goto out;
    while (entries++ < 10000) {
        int r = archive_read_next_header(a, &ae);
        const char *name, *target = NULL;
        enum tar_type type;
        struct err err;

        if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
            break;
        name = archive_entry_pathname(ae);
        if (!name)
            break;
        type = tar_entry_type(ae, &target);
        if (tar_entry_check(out, link, name, type, target, &err) == 0) {
            if (type == TAR_OTHER)
                abort();
            check_name(out);
            if (type == TAR_HARDLINK)
                check_name(link);
            if (type == TAR_SYMLINK)
                check_target(out, target);
        } else if (err.kind != ERR_CORRUPT) {
            abort();
        }
        while (archive_read_data(a, buf, sizeof(buf)) > 0)
            ;
    }
out:
    archive_read_free(a);
    return 0;
}
