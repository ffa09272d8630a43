/* SPDX-License-Identifier: MIT */
/* Tar entry safety checks: see tar.h. */
#include "format/tar.h"

#include <archive_entry.h>

#include <stdbool.h>
#include <string.h>

/* Quote at most this much of a hostile name in messages. */
#define SHOW "%.200s"

int
tar_path_check(char out[TAR_PATH_MAX], const char *name, struct err *err)
{
    const char *p = name;
    size_t o = 0;

    if (!name || !*name)
        return err_set(err, ERR_CORRUPT, "tar entry has an empty name");
    if (name[0] == '/')
        return err_set(err, ERR_CORRUPT, "tar entry \"" SHOW "\" has an absolute path", name);
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);

        if (n == 2 && p[0] == '.' && p[1] == '.')
            return err_set(err, ERR_CORRUPT, "tar entry \"" SHOW "\" has a \"..\" component", name);
        if (n > 0 && !(n == 1 && p[0] == '.')) {
            if (o + (o ? 1 : 0) + n >= TAR_PATH_MAX)
                return err_set(err, ERR_CORRUPT, "tar entry \"" SHOW "...\" has a name too long",
                               name);
            if (o)
                out[o++] = '/';
            memcpy(out + o, p, n);
            o += n;
        }
        p += n;
        if (*p == '/')
            p++;
    }
    if (o == 0)
        return err_set(err, ERR_CORRUPT, "tar entry \"" SHOW "\" names the top directory", name);
    out[o] = '\0';
    return 0;
}

int
tar_symlink_check(const char *path, const char *target, struct err *err)
{
    size_t depth = 0; /* directories above the link, from the root */
    size_t up = 0;
    bool named = false;
    const char *p;

    if (!target || !*target)
        return err_set(err, ERR_CORRUPT, "symlink \"" SHOW "\" has an empty target", path);
    if (target[0] == '/')
        return err_set(err, ERR_CORRUPT,
                       "symlink \"" SHOW "\" points outside the directory: \"" SHOW "\"", path,
                       target);
    for (p = path; *p; p++)
        if (*p == '/')
            depth++;
    for (p = target; *p;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);

        if (n == 2 && p[0] == '.' && p[1] == '.') {
            /* ".." after a name could climb out of a symlinked directory */
            if (named)
                return err_set(err, ERR_CORRUPT,
                               "symlink \"" SHOW "\" has \"..\" inside its target \"" SHOW "\"",
                               path, target);
            if (++up > depth)
                return err_set(err, ERR_CORRUPT,
                               "symlink \"" SHOW "\" points outside the directory: \"" SHOW "\"",
                               path, target);
        } else if (n > 0 && !(n == 1 && p[0] == '.')) {
            named = true;
        }
        p += n;
        if (*p == '/')
            p++;
    }
    return 0;
}

int
tar_entry_check(char out[TAR_PATH_MAX], char *link_out, const char *name, enum tar_type type,
                const char *link, struct err *err)
{
    char tmp[TAR_PATH_MAX];

    if (tar_path_check(out, name, err) < 0)
        return -1;
    switch (type) {
    case TAR_FILE:
    case TAR_DIR:
        return 0;
    case TAR_SYMLINK:
        return tar_symlink_check(out, link, err);
    case TAR_HARDLINK:
        if (!link || !*link)
            return err_set(err, ERR_CORRUPT, "hard link \"" SHOW "\" has an empty target", out);
        if (tar_path_check(link_out ? link_out : tmp, link, err) < 0) {
            err_prefix(err, "hard link \"" SHOW "\"", out);
            return -1;
        }
        return 0;
    case TAR_OTHER:
        break;
    }
    return err_set(err, ERR_CORRUPT, "tar entry \"" SHOW "\" is a device, FIFO or socket", out);
}

enum tar_type
tar_entry_type(struct archive_entry *ae, const char **target)
{
    *target = NULL;
    if (archive_entry_hardlink(ae)) {
        *target = archive_entry_hardlink(ae);
        return TAR_HARDLINK;
    }
    switch (archive_entry_filetype(ae)) {
    case AE_IFREG:
        return TAR_FILE;
    case AE_IFDIR:
        return TAR_DIR;
    case AE_IFLNK:
        *target = archive_entry_symlink(ae);
        return TAR_SYMLINK;
    default:
        return TAR_OTHER;
    }
}
