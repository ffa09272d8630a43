/* SPDX-License-Identifier: MIT */
/*
 * Terminal stages: an fd, a bounded memory buffer, a file replaced
 * atomically, and nothing. The atomic file writes a temporary file beside
 * the target (same directory, so rename is atomic), fsyncs it, renames it
 * over the target and fsyncs the directory; until finish succeeded the
 * target is untouched, and the temporary file is removed on any failure
 * and when the sink is freed unfinished.
 */
#include "stream/stages.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/xmalloc.h"

/* Write all of buf to fd, across short writes and EINTR. */
static int
write_all(int fd, const void *buf, size_t len, const char *what, struct err *err)
{
    const char *p = buf;

    while (len) {
        ssize_t n = write(fd, p, len);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return err_sys(err, ERR_IO, "could not write to \"%s\"", what);
        }
        if (n == 0) {
            errno = EIO;
            return err_sys(err, ERR_IO, "could not write to \"%s\"", what);
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* fd */

struct fd_sink {
    struct sink base;
    int fd;
    char *what;
};

static int
fd_write(struct sink *s, const void *buf, size_t len, struct err *err)
{
    struct fd_sink *f = (struct fd_sink *)s;

    return write_all(f->fd, buf, len, f->what, err);
}

static int
fd_finish(struct sink *s, struct err *err)
{
    return 0;
}

static void
fd_free(struct sink *s)
{
    struct fd_sink *f = (struct fd_sink *)s;

    free(f->what);
    free(f);
}

static const struct sink_ops fd_ops = {"fd", fd_write, fd_finish, fd_free};

struct sink *
fd_sink_new(int fd, const char *what)
{
    struct fd_sink *f = xcalloc(1, sizeof(*f));

    sink_init(&f->base, &fd_ops, NULL);
    f->fd = fd;
    f->what = xstrdup(what ? what : "output");
    return &f->base;
}

/* buf */

struct buf_sink {
    struct sink base;
    struct buf *out;
    size_t max;
};

static int
bufs_write(struct sink *s, const void *buf, size_t len, struct err *err)
{
    struct buf_sink *b = (struct buf_sink *)s;

    if (b->max && (b->out->len > b->max || len > b->max - b->out->len))
        return err_set(err, ERR_CORRUPT, "data exceeds the limit of %zu bytes", b->max);
    buf_append(b->out, buf, len);
    return 0;
}

static int
bufs_finish(struct sink *s, struct err *err)
{
    return 0;
}

static void
bufs_free(struct sink *s)
{
    free(s);
}

static const struct sink_ops buf_ops = {"buf", bufs_write, bufs_finish, bufs_free};

struct sink *
buf_sink_new(struct buf *out, size_t max)
{
    struct buf_sink *b = xcalloc(1, sizeof(*b));

    sink_init(&b->base, &buf_ops, NULL);
    b->out = out;
    b->max = max;
    return &b->base;
}

/* atomic file */

struct atomic_sink {
    struct sink base;
    char *path;
    char *tmp; /* NULL until created, and again once renamed or removed */
    int fd;
    int mode;
    bool nosync; /* a cache file: no fsync, writeback only started */
};

/* The directory part of path ("." when there is none). */
static char *
dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');

    if (!slash)
        return xstrdup(".");
    if (slash == path)
        return xstrdup("/");
    return xstrndup(path, (size_t)(slash - path));
}

static void
atomic_discard(struct atomic_sink *a)
{
    if (a->fd >= 0) {
        close(a->fd);
        a->fd = -1;
    }
    if (a->tmp) {
        unlink(a->tmp);
        free(a->tmp);
        a->tmp = NULL;
    }
}

static int
atomic_open(struct atomic_sink *a, struct err *err)
{
    const char *slash = strrchr(a->path, '/');
    const char *base = slash ? slash + 1 : a->path;
    size_t dirlen = slash ? (size_t)(slash - a->path) + 1 : 0;

    if (a->fd >= 0)
        return 0;
    if (*base == '\0')
        return err_set(err, ERR_USAGE, "cannot write \"%s\": not a file name", a->path);
    /* O_EXCL with a random name: never follow or reuse anything already there */
    for (int attempt = 0; attempt < 16; attempt++) {
        unsigned char r[8];
        char hex[17];

        if (RAND_bytes(r, sizeof(r)) != 1)
            return err_set(err, ERR_INTERNAL, "could not get random bytes");
        for (size_t i = 0; i < sizeof(r); i++)
            snprintf(hex + 2 * i, 3, "%02x", r[i]);
        free(a->tmp);
        a->tmp = xasprintf("%.*s.%s.tmp.%ld.%s", (int)dirlen, a->path, base, (long)getpid(), hex);
        a->fd = open(a->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, a->mode);
        if (a->fd >= 0)
            break;
        if (errno != EEXIST) {
            err_sys(err, ERR_IO, "could not create a temporary file for \"%s\"", a->path);
            free(a->tmp);
            a->tmp = NULL;
            return -1;
        }
    }
    if (a->fd < 0) {
        free(a->tmp);
        a->tmp = NULL;
        return err_set(err, ERR_IO, "could not create a temporary file for \"%s\"", a->path);
    }
    /* the mode as given, whatever the umask */
    if (fchmod(a->fd, (mode_t)a->mode) < 0) {
        err_sys(err, ERR_IO, "could not set the mode of \"%s\"", a->tmp);
        atomic_discard(a);
        return -1;
    }
    return 0;
}

static int
atomic_write(struct sink *s, const void *buf, size_t len, struct err *err)
{
    struct atomic_sink *a = (struct atomic_sink *)s;

    if (atomic_open(a, err) < 0)
        return -1;
    if (write_all(a->fd, buf, len, a->path, err) < 0) {
        atomic_discard(a);
        return -1;
    }
    return 0;
}

static int
atomic_finish(struct sink *s, struct err *err)
{
    struct atomic_sink *a = (struct atomic_sink *)s;
    char *dir = NULL;
    int dfd = -1;
    int rc = -1;

    if (atomic_open(a, err) < 0)
        return -1;
    /* a cache file is left to the kernel's writeback (often deleted before it is due) */
    if (!a->nosync && fsync(a->fd) < 0) {
        err_sys(err, ERR_IO, "could not fsync \"%s\"", a->tmp);
        goto out;
    }
    if (close(a->fd) < 0) {
        a->fd = -1;
        err_sys(err, ERR_IO, "could not close \"%s\"", a->tmp);
        goto out;
    }
    a->fd = -1;
    if (rename(a->tmp, a->path) < 0) {
        err_sys(err, ERR_IO, "could not rename \"%s\" to \"%s\"", a->tmp, a->path);
        goto out;
    }
    free(a->tmp);
    a->tmp = NULL;
    if (a->nosync) {
        rc = 0;
        goto out;
    }
    /* the rename is durable only once the directory is on disk */
    dir = dir_of(a->path);
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        err_sys(err, ERR_IO, "could not open directory \"%s\"", dir);
        goto out;
    }
    if (fsync(dfd) < 0 && errno != EINVAL) {
        err_sys(err, ERR_IO, "could not fsync directory \"%s\"", dir);
        goto out;
    }
    rc = 0;
out:
    if (dfd >= 0)
        close(dfd);
    free(dir);
    if (rc < 0)
        atomic_discard(a);
    return rc;
}

static void
atomic_free(struct sink *s)
{
    struct atomic_sink *a = (struct atomic_sink *)s;

    atomic_discard(a);
    free(a->path);
    free(a);
}

static const struct sink_ops atomic_ops = {"file", atomic_write, atomic_finish, atomic_free};

struct sink *
atomic_file_sink_new(const char *path, int mode)
{
    struct atomic_sink *a = xcalloc(1, sizeof(*a));

    sink_init(&a->base, &atomic_ops, NULL);
    a->path = xstrdup(path);
    a->fd = -1;
    a->mode = mode & 07777;
    return &a->base;
}

struct sink *
atomic_file_sink_nosync_new(const char *path, int mode)
{
    struct sink *s = atomic_file_sink_new(path, mode);

    ((struct atomic_sink *)s)->nosync = true;
    return s;
}

/* null */

static int
null_write(struct sink *s, const void *buf, size_t len, struct err *err)
{
    return 0;
}

static int
null_finish(struct sink *s, struct err *err)
{
    return 0;
}

static void
null_free(struct sink *s)
{
    free(s);
}

static const struct sink_ops null_ops = {"null", null_write, null_finish, null_free};

struct sink *
null_sink_new(void)
{
    struct sink *s = xcalloc(1, sizeof(*s));

    sink_init(s, &null_ops, NULL);
    return s;
}
