/* SPDX-License-Identifier: MIT */
/*
 * The checks of a local WAL file that need no repository (archive.h), apart
 * from archive.c so that the small front programs (cli/front.h) link them
 * without the storage layer.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/hex.h"

#include "archive/archive.h"

int
archive_check_local(const char *path, struct walname *w, struct walheader *h, bool *has_header,
                    struct err *err)
{
    const char *base = strrchr(path, '/');
    unsigned char page[WALHEADER_SIZE];
    struct stat st;
    int fd = -1, rc = -1;
    ssize_t n;

    base = base ? base + 1 : path;
    *has_header = false;
    if (walname_parse(w, base, err) < 0)
        return -1;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        err_sys(err, ERR_IO, "could not open \"%s\"", path);
        goto out;
    }
    if (fstat(fd, &st) < 0) {
        err_sys(err, ERR_IO, "could not stat \"%s\"", path);
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        err_set(err, ERR_USAGE, "\"%s\" is not a regular file", path);
        goto out;
    }
    if (w->kind == WALNAME_SEGMENT || w->kind == WALNAME_PARTIAL) {
        n = pread(fd, page, sizeof(page), 0);
        if (n < 0) {
            err_sys(err, ERR_IO, "could not read \"%s\"", path);
            goto out;
        }
        if (walheader_parse(h, page, (size_t)n, err) < 0 || walheader_check_name(h, w, err) < 0) {
            err_prefix(err, "refusing \"%s\"", path);
            goto out;
        }
        if ((uint64_t)st.st_size != h->seg_size) {
            err_set(err, ERR_CORRUPT,
                    "refusing \"%s\": %lld bytes, but its header says segments are %" PRIu32
                    " bytes",
                    path, (long long)st.st_size, h->seg_size);
            goto out;
        }
        *has_header = true;
    }
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

void
archive_sha256_hex(char out[65], const unsigned char sha[32])
{
    hex_encode(out, sha, 32);
}
