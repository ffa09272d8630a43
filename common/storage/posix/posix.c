/* SPDX-License-Identifier: MIT */
/*
 * The file:// backend: a key is a file below the repository directory.
 * Writes are atomic: bytes go to a temporary file beside the final name
 * (".ferry-tmp-<random>", never listed), which is fsynced, then renamed into
 * place (with RENAME_NOREPLACE, or link(2) where that is not supported, for
 * REPO_PUT_IF_ABSENT, so two racing writers cannot both win), and the
 * directory is fsynced. A reader sees the whole object or nothing. Freeing
 * an unfinished put removes its temporary file; a crash may leave one,
 * which is harmless (not listed; the names are random) and which
 * repo_list_incomplete finds (by walking the tree; its time is its mtime)
 * for `ferry expire` to remove once it is old.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/xmalloc.h"
#include "storage/posix/posix.h"
#include "storage/repo.h"

#define DIR_MODE 0750
#define FILE_MODE 0640
#define IO_BLOCK (256 * 1024)

void (*posix_test_tmp_fd_hook)(int fd);
bool posix_test_force_link;

struct posix_repo {
    struct repo base;
    char *root; /* absolute, without a trailing '/' ("" for the file system root) */
};

static char *
key_path(const struct posix_repo *r, const char *key)
{
    return xasprintf("%s/%s", r->root, key);
}

/* Temporary-file names are reserved: a key using one could be taken for a leftover. */
static int
check_reserved(const char *key, struct err *err)
{
    const char *seg = key;

    for (;;) {
        if (strncmp(seg, POSIX_TMP_PREFIX, strlen(POSIX_TMP_PREFIX)) == 0)
            return err_set(err, ERR_USAGE,
                           "invalid key \"%s\": path segments starting with \"%s\" are reserved",
                           key, POSIX_TMP_PREFIX);
        seg = strchr(seg, '/');
        if (!seg)
            return 0;
        seg++;
    }
}

static int
fsync_dir(const char *dir, struct err *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd < 0)
        return err_sys(err, ERR_IO, "could not open directory \"%s\"", dir);
    if (fsync(fd) < 0 && errno != EINVAL) {
        err_sys(err, ERR_IO, "could not fsync directory \"%s\"", dir);
        close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

/* Create the directories of key below root (mkdir -p of its parent). */
static int
make_parents(const struct posix_repo *r, const char *key, struct err *err)
{
    const char *p = key;

    while ((p = strchr(p, '/'))) {
        char *dir = xasprintf("%s/%.*s", r->root, (int)(p - key), key);

        if (mkdir(dir, DIR_MODE) < 0 && errno != EEXIST) {
            err_sys(err, ERR_IO, "could not create directory \"%s\"", dir);
            free(dir);
            return -1;
        }
        free(dir);
        p++;
    }
    return 0;
}

/* ---- put ---- */

struct posix_put {
    struct sink base;
    struct posix_repo *r;
    char *key;
    char *path;
    char *dir;
    char *tmp; /* set while a temporary file exists */
    int fd;
    unsigned flags;
};

static void
put_discard(struct posix_put *p)
{
    if (p->fd >= 0) {
        close(p->fd);
        p->fd = -1;
    }
    if (p->tmp) {
        unlink(p->tmp);
        free(p->tmp);
        p->tmp = NULL;
    }
}

static int
put_open(struct posix_put *p, struct err *err)
{
    if (check_reserved(p->key, err) < 0)
        return -1;
    /* a concurrent delete may remove an emptied directory between mkdir and open: retry */
    for (int attempt = 0;; attempt++) {
        unsigned char rnd[8];
        char hex[17];

        if (make_parents(p->r, p->key, err) < 0)
            return -1;
        if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
            return err_sys(err, ERR_INTERNAL, "could not get random bytes");
        for (size_t i = 0; i < sizeof(rnd); i++)
            snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
        p->tmp = xasprintf("%s/%s%s", p->dir, POSIX_TMP_PREFIX, hex);
        p->fd = open(p->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, FILE_MODE);
        if (p->fd >= 0)
            break;
        free(p->tmp);
        p->tmp = NULL;
        if ((errno == ENOENT || errno == EEXIST) && attempt < 3)
            continue;
        return err_sys(err, ERR_IO, "could not create a temporary file in \"%s\"", p->dir);
    }
    if (posix_test_tmp_fd_hook)
        posix_test_tmp_fd_hook(p->fd);
    return 0;
}

static int
put_write(struct sink *s, const void *data, size_t len, struct err *err)
{
    struct posix_put *p = (struct posix_put *)s;
    const char *c = data;

    if (!p->tmp && put_open(p, err) < 0)
        return -1;
    while (len > 0) {
        ssize_t n = write(p->fd, c, len);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            err_sys(err, ERR_IO, "could not write \"%s\"", p->path);
            put_discard(p);
            return -1;
        }
        c += n;
        len -= (size_t)n;
    }
    return 0;
}

static int
put_publish(struct posix_put *p, struct err *err)
{
    if (!(p->flags & REPO_PUT_IF_ABSENT)) {
        if (rename(p->tmp, p->path) < 0)
            return err_sys(err, ERR_IO, "could not rename into \"%s\"", p->path);
        return 0;
    }
    if (!posix_test_force_link) {
        if (renameat2(AT_FDCWD, p->tmp, AT_FDCWD, p->path, RENAME_NOREPLACE) == 0)
            return 0;
        if (errno == EEXIST)
            return err_set(err, ERR_EXISTS, "object \"%s\" already exists", p->key);
        if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
            return err_sys(err, ERR_IO, "could not rename into \"%s\"", p->path);
    }
    /* no RENAME_NOREPLACE here (e.g. NFS): link(2) also fails if the name exists */
    if (link(p->tmp, p->path) < 0) {
        if (errno == EEXIST)
            return err_set(err, ERR_EXISTS, "object \"%s\" already exists", p->key);
        return err_sys(err, ERR_IO, "could not link into \"%s\"", p->path);
    }
    unlink(p->tmp);
    return 0;
}

static int
put_finish(struct sink *s, struct err *err)
{
    struct posix_put *p = (struct posix_put *)s;

    if (!p->tmp && put_open(p, err) < 0)
        return -1;
    if (fsync(p->fd) < 0) {
        err_sys(err, ERR_IO, "could not write \"%s\"", p->path);
        put_discard(p);
        return -1;
    }
    if (close(p->fd) < 0) {
        p->fd = -1;
        err_sys(err, ERR_IO, "could not write \"%s\"", p->path);
        put_discard(p);
        return -1;
    }
    p->fd = -1;
    if (put_publish(p, err) < 0) {
        put_discard(p);
        return -1;
    }
    free(p->tmp);
    p->tmp = NULL; /* published: nothing to remove any more */
    return fsync_dir(p->dir, err);
}

static void
put_free(struct sink *s)
{
    struct posix_put *p = (struct posix_put *)s;

    put_discard(p);
    free(p->key);
    free(p->path);
    free(p->dir);
    free(p);
}

static const struct sink_ops put_ops = {"file put", put_write, put_finish, put_free};

static struct sink *
posix_put_sink_new(struct repo *repo, const char *key, unsigned flags)
{
    struct posix_put *p = xcalloc(1, sizeof(*p));
    char *slash;

    sink_init(&p->base, &put_ops, NULL);
    p->r = (struct posix_repo *)repo;
    p->key = xstrdup(key);
    p->path = key_path(p->r, key);
    p->dir = xstrdup(p->path);
    slash = strrchr(p->dir, '/');
    if (slash == p->dir)
        slash[1] = '\0';
    else
        *slash = '\0';
    p->fd = -1;
    p->flags = flags;
    return &p->base;
}

/* ---- get, stat ---- */

static int
open_object(const struct posix_repo *r, const char *key, struct stat *st, struct err *err)
{
    char *path;
    int fd;

    if (check_reserved(key, err) < 0)
        return -1;
    path = key_path(r, key);
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            err_set(err, ERR_NOT_FOUND, "object \"%s\" not found", key);
        else
            err_sys(err, ERR_IO, "could not open \"%s\"", path);
        free(path);
        return -1;
    }
    if (fstat(fd, st) < 0) {
        err_sys(err, ERR_IO, "could not stat \"%s\"", path);
        goto fail;
    }
    if (!S_ISREG(st->st_mode)) {
        err_set(err, ERR_NOT_FOUND, "object \"%s\" not found", key);
        goto fail;
    }
    free(path);
    return fd;
fail:
    free(path);
    close(fd);
    return -1;
}

static int
posix_get(struct repo *repo, const char *key, uint64_t offset, uint64_t len, struct sink *out,
          struct err *err)
{
    struct posix_repo *r = (struct posix_repo *)repo;
    struct stat st;
    uint64_t end, pos;
    char *block = NULL;
    int rc = -1;
    int fd = open_object(r, key, &st, err);

    if (fd < 0)
        return -1;
    if (offset > (uint64_t)st.st_size) {
        err_set(err, ERR_USAGE, "range starts at byte %llu, beyond the end of \"%s\" (%llu bytes)",
                (unsigned long long)offset, key, (unsigned long long)st.st_size);
        goto out;
    }
    end = (uint64_t)st.st_size;
    if (len && len < end - offset)
        end = offset + len;
    block = xmalloc(IO_BLOCK);
    for (pos = offset; pos < end;) {
        size_t want = end - pos < IO_BLOCK ? (size_t)(end - pos) : IO_BLOCK;
        ssize_t n = pread(fd, block, want, (off_t)pos);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            err_sys(err, ERR_IO, "could not read object \"%s\"", key);
            goto out;
        }
        if (n == 0) {
            err_set(err, ERR_IO, "could not read object \"%s\": it shrank while being read", key);
            goto out;
        }
        if (sink_write(out, block, (size_t)n, err) < 0)
            goto out;
        pos += (uint64_t)n;
    }
    rc = 0;
out:
    free(block);
    close(fd);
    return rc;
}

static int
posix_stat(struct repo *repo, const char *key, struct repo_stat *out, struct err *err)
{
    struct stat st;
    int fd = open_object((struct posix_repo *)repo, key, &st, err);

    if (fd < 0)
        return -1;
    close(fd);
    memset(out, 0, sizeof(*out));
    out->size = (uint64_t)st.st_size;
    out->mtime = (int64_t)st.st_mtime;
    return 0;
}

/* ---- list ---- */

struct listing {
    struct repo_entry *e;
    size_t n, cap;
};

static void
listing_add(struct listing *l, char *key, uint64_t size, int64_t mtime)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->e = xrealloc(l->e, l->cap * sizeof(*l->e));
    }
    l->e[l->n].key = key;
    l->e[l->n].size = size;
    l->e[l->n].mtime = mtime;
    l->e[l->n].is_prefix = false;
    l->n++;
}

static bool
starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Called with each file found (key owned by the callee). */
typedef void walk_fn(char *key, const struct stat *st, void *arg);

/*
 * Walk dir (absolute), whose keys start with rel ("" or ending in '/'), for
 * the regular files under prefix: the finished objects, or (tmp) only the
 * temporary files of interrupted writes.
 */
static int
walk(const char *dir, const char *rel, const char *prefix, bool tmp, walk_fn *fn, void *arg,
     struct err *err)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int rc = 0;

    if (!d) {
        if (errno == ENOENT || errno == ENOTDIR)
            return 0;
        return err_sys(err, ERR_IO, "could not open directory \"%s\"", dir);
    }
    for (;;) {
        struct stat st;
        char *key;

        errno = 0;
        de = readdir(d);
        if (!de) {
            if (errno)
                rc = err_sys(err, ERR_IO, "could not read directory \"%s\"", dir);
            break;
        }
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        bool is_tmp = starts_with(de->d_name, POSIX_TMP_PREFIX);
        if (is_tmp && !tmp)
            continue;
        /* looking for temporary files in a tree of finished objects: no stat for those */
        if (tmp && !is_tmp && de->d_type != DT_DIR && de->d_type != DT_UNKNOWN)
            continue;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno == ENOENT)
                continue; /* renamed or deleted meanwhile */
            rc = err_sys(err, ERR_IO, "could not stat \"%s/%s\"", dir, de->d_name);
            break;
        }
        key = xasprintf("%s%s", rel, de->d_name);
        if (S_ISDIR(st.st_mode) && !is_tmp) {
            char *sub_rel = xasprintf("%s/", key);

            /* descend only where keys under prefix can be */
            if (starts_with(sub_rel, prefix) || starts_with(prefix, sub_rel)) {
                char *sub = xasprintf("%s/%s", dir, de->d_name);

                rc = walk(sub, sub_rel, prefix, tmp, fn, arg, err);
                free(sub);
            }
            free(sub_rel);
            free(key);
            if (rc < 0)
                break;
        } else if (S_ISREG(st.st_mode) && is_tmp == tmp && starts_with(key, prefix)) {
            fn(key, &st, arg);
        } else {
            free(key);
        }
    }
    closedir(d);
    return rc;
}

static void
add_object(char *key, const struct stat *st, void *arg)
{
    listing_add(arg, key, (uint64_t)st->st_size, (int64_t)st->st_mtime);
}

static int
entry_cmp(const void *a, const void *b)
{
    return strcmp(((const struct repo_entry *)a)->key, ((const struct repo_entry *)b)->key);
}

static int
check_prefix(const char *prefix, struct err *err)
{
    const char *seg = prefix;

    if (prefix[0] == '/')
        return err_set(err, ERR_USAGE, "invalid prefix \"%s\": it must not start with \"/\"",
                       prefix);
    for (;;) {
        const char *end = strchr(seg, '/');

        if (!end)
            return 0; /* the last, partial segment may be anything */
        if (end == seg || (end - seg == 1 && seg[0] == '.') ||
            (end - seg == 2 && seg[0] == '.' && seg[1] == '.'))
            return err_set(err, ERR_USAGE,
                           "invalid prefix \"%s\": empty, \".\" and \"..\" path segments are not "
                           "allowed",
                           prefix);
        seg = end + 1;
    }
}

static int
posix_list(struct repo *repo, const char *prefix, const char *delimiter, repo_list_cb cb, void *arg,
           struct err *err)
{
    struct posix_repo *r = (struct posix_repo *)repo;
    struct listing l = {NULL, 0, 0};
    const char *last = strrchr(prefix, '/');
    char *rel, *dir;
    char *group = NULL;
    int rc = -1;

    if (check_prefix(prefix, err) < 0)
        return -1;
    rel = xstrndup(prefix, last ? (size_t)(last - prefix + 1) : 0);
    dir =
        *rel ? xasprintf("%s/%.*s", r->root, (int)strlen(rel) - 1, rel) : xasprintf("%s/", r->root);
    if (walk(dir, rel, prefix, false, add_object, &l, err) < 0)
        goto out;
    if (l.n > 1)
        qsort(l.e, l.n, sizeof(*l.e), entry_cmp);
    for (size_t i = 0; i < l.n; i++) {
        const char *d = delimiter ? strstr(l.e[i].key + strlen(prefix), delimiter) : NULL;

        if (d) {
            size_t glen = (size_t)(d - l.e[i].key) + strlen(delimiter);
            struct repo_entry pe = {NULL, 0, 0, true};

            /* keys sharing a group are adjacent in sorted order: report it once */
            if (group && strlen(group) == glen && strncmp(group, l.e[i].key, glen) == 0)
                continue;
            free(group);
            group = xstrndup(l.e[i].key, glen);
            pe.key = group;
            if (cb(&pe, arg))
                break;
            continue;
        }
        if (cb(&l.e[i], arg))
            break;
    }
    rc = 0;
out:
    for (size_t i = 0; i < l.n; i++)
        free((char *)l.e[i].key);
    free(l.e);
    free(group);
    free(rel);
    free(dir);
    return rc;
}

/* ---- delete ---- */

/* Remove the directories a delete of path emptied, up to (not including) the root. */
static void
prune_empty_dirs(const struct posix_repo *r, char *path)
{
    char *slash;

    while ((slash = strrchr(path, '/')) && (size_t)(slash - path) > strlen(r->root)) {
        *slash = '\0';
        if (rmdir(path) < 0)
            break;
    }
}

static int
posix_delete(struct repo *repo, const char *key, struct err *err)
{
    struct posix_repo *r = (struct posix_repo *)repo;
    char *path;

    if (check_reserved(key, err) < 0)
        return -1;
    path = key_path(r, key);
    if (unlink(path) < 0 && errno != ENOENT && errno != ENOTDIR && errno != EISDIR) {
        err_sys(err, ERR_IO, "could not delete \"%s\"", path);
        free(path);
        return -1;
    }
    prune_empty_dirs(r, path);
    free(path);
    return 0;
}

/* ---- incomplete writes: temporary files left by killed puts ---- */

struct tmp_listing {
    struct repo_incomplete *w;
    size_t n, cap;
};

static void
add_tmp(char *key, const struct stat *st, void *arg)
{
    struct tmp_listing *l = arg;

    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->w = xrealloc(l->w, l->cap * sizeof(*l->w));
    }
    l->w[l->n++] = (struct repo_incomplete){key, NULL, (int64_t)st->st_mtime};
}

static int
incomplete_cmp(const void *a, const void *b)
{
    return strcmp(((const struct repo_incomplete *)a)->key,
                  ((const struct repo_incomplete *)b)->key);
}

static int
posix_list_incomplete(struct repo *repo, const char *prefix, repo_incomplete_cb cb, void *arg,
                      struct err *err)
{
    struct posix_repo *r = (struct posix_repo *)repo;
    struct tmp_listing l = {NULL, 0, 0};
    const char *last = strrchr(prefix, '/');
    char *rel, *dir;
    int rc = -1;

    if (check_prefix(prefix, err) < 0)
        return -1;
    rel = xstrndup(prefix, last ? (size_t)(last - prefix + 1) : 0);
    dir =
        *rel ? xasprintf("%s/%.*s", r->root, (int)strlen(rel) - 1, rel) : xasprintf("%s/", r->root);
    if (walk(dir, rel, prefix, true, add_tmp, &l, err) < 0)
        goto out;
    if (l.n > 1)
        qsort(l.w, l.n, sizeof(*l.w), incomplete_cmp);
    for (size_t i = 0; i < l.n; i++)
        if (cb(&l.w[i], arg))
            break;
    rc = 0;
out:
    for (size_t i = 0; i < l.n; i++)
        free((char *)l.w[i].key);
    free(l.w);
    free(rel);
    free(dir);
    return rc;
}

static int
posix_abort_incomplete(struct repo *repo, const struct repo_incomplete *w, struct err *err)
{
    struct posix_repo *r = (struct posix_repo *)repo;
    const char *base = strrchr(w->key, '/');
    char *path;

    base = base ? base + 1 : w->key;
    if (w->key[0] == '/' || strstr(w->key, "/../") || strncmp(w->key, "../", 3) == 0 ||
        !starts_with(base, POSIX_TMP_PREFIX) || strlen(base) == strlen(POSIX_TMP_PREFIX))
        return err_set(err, ERR_USAGE, "\"%s\" is not a temporary file of an incomplete write",
                       w->key);
    path = key_path(r, w->key);
    if (unlink(path) < 0 && errno != ENOENT) {
        err_sys(err, ERR_IO, "could not delete \"%s\"", path);
        free(path);
        return -1;
    }
    prune_empty_dirs(r, path);
    free(path);
    return 0;
}

static void
posix_close(struct repo *repo)
{
    struct posix_repo *r = (struct posix_repo *)repo;

    free(r->root);
    free(r);
}

static const struct repo_ops posix_ops = {
    .scheme = "file",
    .put_sink_new = posix_put_sink_new,
    .get = posix_get,
    .stat = posix_stat,
    .list = posix_list,
    .delete_one = posix_delete,
    .delete_many = NULL,
    .close = posix_close,
    .list_incomplete = posix_list_incomplete,
    .abort_incomplete = posix_abort_incomplete,
};

int
posix_repo_open(struct repo **out, const char *path, const struct repo_opts *opts, struct err *err)
{
    struct posix_repo *r;
    struct stat st;
    size_t len = strlen(path);

    *out = NULL;
    if (path[0] != '/')
        return err_set(err, ERR_USAGE, "repository directory \"%s\" is not an absolute path", path);
    if (stat(path, &st) < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return err_set(err, ERR_NOT_FOUND, "repository directory \"%s\" does not exist", path);
        return err_sys(err, ERR_IO, "could not open repository directory \"%s\"", path);
    }
    if (!S_ISDIR(st.st_mode))
        return err_set(err, ERR_USAGE, "repository path \"%s\" is not a directory", path);
    while (len > 0 && path[len - 1] == '/')
        len--;
    r = xcalloc(1, sizeof(*r));
    r->base.ops = &posix_ops;
    r->root = xstrndup(path, len);
    *out = &r->base;
    return 0;
}
