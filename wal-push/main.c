/* SPDX-License-Identifier: MIT */
/*
 * ferry-wal-push: PostgreSQL's archive_command. Archives one WAL file (%p)
 * into the repository, checked against its name and the repository's
 * cluster, never overwriting; pushes the next .ready files ahead in parallel
 * and leaves a note so that PostgreSQL's later calls for them return at once.
 * Exit 0 only when the file is durably stored; any failure is exit 1 with one
 * line on stderr (never 126-255: that would restart the archiver).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "archive/archive.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "cli/cli.h"

static const char usage[] =
    "usage: ferry-wal-push [OPTIONS] PATH\n"
    "\n"
    "Archive one WAL file into the repository; for postgresql.conf:\n"
    "  archive_command = 'ferry-wal-push %p'\n"
    "\n"
    "Segments and .partial files are checked (page header against the file name, size,\n"
    "system identifier against the repository) and refused when they do not agree. A file\n"
    "already archived with the same contents succeeds; with other contents it fails and\n"
    "names both checksums. Nothing is ever overwritten.\n"
    "\n"
    "Look-ahead: while PATH is pushed, up to --lookahead further files that PostgreSQL has\n"
    "marked .ready are pushed in parallel, and a note (archive_status/NAME.ferry) lets the\n"
    "later call for each return at once after checking the file's checksum. ferry never\n"
    "marks anything .done: PostgreSQL does.\n"
    "\n"
    "Exit status: 0 stored (or already stored with the same contents), 1 anything else.";

static const struct opt_def push_opts[] = {
    {"lookahead", 0, OPT_INT, 0, "N", "push up to N further .ready files in parallel (default 4)"},
    {"lookahead-bytes", 0, OPT_SIZE, 0, "SIZE",
     "at most SIZE bytes of look-ahead files at once (default 256M)"},
    OPT_END,
};

#define MARKER_SUFFIX ".ferry"
#define BUSY_SUFFIX ".ferry-busy"
#define LOOKAHEAD_LOCK "ferry-lookahead.lock"

/* The archive_status directory beside the WAL file, or NULL when there is none. */
static char *
status_dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? xasprintf("%.*s/archive_status", (int)(slash - path), path)
                      : xstrdup("archive_status");
    struct stat st;

    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        free(dir);
        return NULL;
    }
    return dir;
}

/*
 * Write the note that name was pushed with this checksum to this repository
 * (atomically; best effort). It also records the file's identity (device,
 * inode, size, modification time) so that PostgreSQL's later call can trust
 * it without reading the file again: a WAL file does not change once it is
 * .ready. Format: "SHA256 SIZE DEV INO MTIME_SEC MTIME_NSEC\nREPO-URL\n".
 */
static void
marker_write(const char *status_dir, const char *name, const char *path,
             const unsigned char sha[32], uint64_t size, const char *repo_url)
{
    char hex[65];
    char *mpath = xasprintf("%s/%s%s", status_dir, name, MARKER_SUFFIX);
    char *tmp = xasprintf("%s.tmp.%ld", mpath, (long)getpid());
    struct stat st;
    FILE *f;

    if (stat(path, &st) < 0 || (uint64_t)st.st_size != size)
        goto out;
    f = fopen(tmp, "w");
    archive_sha256_hex(hex, sha);
    if (f) {
        int ok = fprintf(f, "%s %llu %llu %llu %lld %ld\n%s\n", hex, (unsigned long long)size,
                         (unsigned long long)st.st_dev, (unsigned long long)st.st_ino,
                         (long long)st.st_mtim.tv_sec, (long)st.st_mtim.tv_nsec, repo_url) > 0;

        if (fclose(f) == 0 && ok && rename(tmp, mpath) == 0)
            tmp[0] = '\0';
    }
    if (tmp[0])
        unlink(tmp);
out:
    free(tmp);
    free(mpath);
}

/*
 * If an earlier look-ahead pushed this file to this same repository, its
 * note says so: true when the file is still the one noted (same identity, or
 * else same checksum). The note is removed either way (a note for another
 * repository or another file is stale).
 */
static bool
marker_matches(const char *status_dir, const char *name, const char *path, const char *repo_url)
{
    char *mpath = xasprintf("%s/%s%s", status_dir, name, MARKER_SUFFIX);
    char want[65], hex[65], url[4096];
    unsigned long long want_size, dev, ino;
    long long msec;
    long mnsec;
    unsigned char sha[32];
    uint64_t size;
    struct err err;
    struct stat st;
    bool match = false;
    FILE *f = fopen(mpath, "r");

    if (!f)
        goto out;
    if (fscanf(f, "%64s %llu %llu %llu %lld %ld\n", want, &want_size, &dev, &ino, &msec, &mnsec) !=
            6 ||
        !fgets(url, sizeof(url), f)) {
        fclose(f);
        unlink(mpath);
        goto out;
    }
    fclose(f);
    unlink(mpath);
    url[strcspn(url, "\n")] = '\0';
    if (strcmp(url, repo_url) != 0 || stat(path, &st) < 0)
        goto out;
    if ((unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino &&
        (unsigned long long)st.st_size == want_size && (long long)st.st_mtim.tv_sec == msec &&
        (long)st.st_mtim.tv_nsec == mnsec) {
        match = true;
        goto out;
    }
    if (archive_file_sha256(path, sha, &size, &err) < 0)
        goto out;
    archive_sha256_hex(hex, sha);
    match = size == want_size && strcmp(hex, want) == 0;
out:
    free(mpath);
    return match;
}

/*
 * While a detached look-ahead process is pushing this very file, wait for it
 * (bounded) instead of pushing it a second time. A busy note left by a dead
 * look-ahead (the lock is free) is stale and removed.
 */
static void
busy_wait(const char *status_dir, const char *name)
{
    char *busy = xasprintf("%s/%s%s", status_dir, name, BUSY_SUFFIX);
    char *lock = xasprintf("%s/%s", status_dir, LOOKAHEAD_LOCK);
    int lfd;

    if (access(busy, F_OK) != 0)
        goto out;
    lfd = open(lock, O_RDONLY | O_CLOEXEC);
    if (lfd < 0 || flock(lfd, LOCK_SH | LOCK_NB) == 0) {
        unlink(busy);
    } else {
        /* at most about two minutes: one segment's upload with its retries */
        for (int i = 0; i < 12000 && access(busy, F_OK) == 0; i++) {
            struct timespec ts = {0, 10 * 1000 * 1000};

            nanosleep(&ts, NULL);
        }
    }
    if (lfd >= 0)
        close(lfd);
out:
    free(busy);
    free(lock);
}

struct ahead {
    struct cli *cli;
    const char *status_dir;
    const char *wal_dir;
    const struct walheader *main_header; /* NULL when the main file is not a segment */
    char **names;
    size_t n, next;
    pthread_mutex_t lock;
};

static void *
ahead_worker(void *arg)
{
    struct ahead *a = arg;
    struct repo *repo = NULL;
    struct err err;

    if (repo_open(&repo, opts_get(a->cli->opts, "repo"), &a->cli->ropts, &err) < 0) {
        log_info("look-ahead disabled: %s", err.msg);
        return NULL;
    }
    struct archive ar = {repo, a->cli->oopts, a->cli->key};
    for (;;) {
        char *name;

        pthread_mutex_lock(&a->lock);
        name = a->next < a->n ? a->names[a->next++] : NULL;
        pthread_mutex_unlock(&a->lock);
        if (!name)
            break;
        char *path = xasprintf("%s/%s", a->wal_dir, name);
        struct walname w;
        struct walheader h;
        bool has_header;
        enum archive_push_result res;
        struct object_info info;

        if (archive_check_local(path, &w, &h, &has_header, &err) < 0 ||
            (has_header && a->main_header && h.sysid != a->main_header->sysid)) {
            /* left for PostgreSQL's own call, which reports it properly */
            free(path);
            continue;
        }
        char *busy = xasprintf("%s/%s%s", a->status_dir, name, BUSY_SUFFIX);
        int bfd = open(busy, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);

        if (bfd >= 0)
            close(bfd);
        if (archive_push_file(&ar, path, &w, &res, &info, &err) == 0) {
            marker_write(a->status_dir, name, path, info.sha256, info.plain_size,
                         opts_get(a->cli->opts, "repo"));
            log_info("pushed \"%s\" ahead", name);
        } else {
            log_info("look-ahead push of \"%s\" failed: %s", name, err.msg);
        }
        unlink(busy);
        free(busy);
        free(path);
    }
    repo_close(repo);
    return NULL;
}

/*
 * ferry-wal-fetch's prefetch spool (pg_wal/ferry-prefetch) outlives the
 * recovery that filled it. Once the server archives its own WAL and is no
 * longer recovering (no recovery.signal or standby.signal in the data
 * directory, our working directory), remove it, unless a prefetcher still
 * holds its lock.
 */
static void
spool_remove(const char *wal_dir)
{
    char *spool = xasprintf("%s/ferry-prefetch", wal_dir);
    char *lock = xasprintf("%s/.lock", spool);
    struct stat st;
    int lfd;
    DIR *d;
    struct dirent *de;

    if (stat(spool, &st) < 0 || !S_ISDIR(st.st_mode) || access("recovery.signal", F_OK) == 0 ||
        access("standby.signal", F_OK) == 0)
        goto out;
    lfd = open(lock, O_RDONLY | O_CLOEXEC);
    if (lfd >= 0 && flock(lfd, LOCK_EX | LOCK_NB) < 0) {
        close(lfd);
        goto out;
    }
    d = opendir(spool);
    while (d && (de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char *p = xasprintf("%s/%s", spool, de->d_name);
        unlink(p);
        free(p);
    }
    if (d)
        closedir(d);
    if (rmdir(spool) == 0)
        log_info("removed the prefetch spool \"%s\" left by recovery", spool);
    if (lfd >= 0)
        close(lfd);
out:
    free(lock);
    free(spool);
}

static int
cmp_names(const void *x, const void *y)
{
    const char *a = *(char *const *)x, *b = *(char *const *)y;
    bool ha = strstr(a, ".history") != NULL, hb = strstr(b, ".history") != NULL;

    /* PostgreSQL archives history files first, then the oldest segment */
    if (ha != hb)
        return ha ? -1 : 1;
    return strcmp(a, b);
}

/* The .ready files to push ahead: not name itself, not already noted, within the budget. */
static void
ahead_collect(struct ahead *a, const char *name, long max_files, unsigned long long max_bytes)
{
    DIR *d = opendir(a->status_dir);
    struct dirent *de;
    size_t cap = 0;

    if (!d)
        return;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        struct walname w;
        struct err err;

        if (len < 7 || strcmp(de->d_name + len - 6, ".ready") != 0)
            continue;
        char *n = xstrndup(de->d_name, len - 6);
        char *marker = xasprintf("%s/%s%s", a->status_dir, n, MARKER_SUFFIX);
        if (strcmp(n, name) == 0 || walname_parse(&w, n, &err) < 0 || access(marker, F_OK) == 0) {
            free(marker);
            free(n);
            continue;
        }
        free(marker);
        if (a->n == cap) {
            cap = cap ? cap * 2 : 16;
            a->names = xrealloc(a->names, cap * sizeof(*a->names));
        }
        a->names[a->n++] = n;
    }
    closedir(d);
    if (a->n > 1)
        qsort(a->names, a->n, sizeof(*a->names), cmp_names);
    /* keep the first ones within the count and byte budget */
    unsigned long long bytes = 0;
    size_t keep = 0;
    for (size_t i = 0; i < a->n; i++) {
        char *p = xasprintf("%s/%s", a->wal_dir, a->names[i]);
        struct stat st;

        if (keep < (size_t)max_files && stat(p, &st) == 0 &&
            bytes + (unsigned long long)st.st_size <= max_bytes) {
            bytes += (unsigned long long)st.st_size;
            a->names[keep++] = a->names[i];
        } else {
            free(a->names[i]);
        }
        free(p);
    }
    a->n = keep;
}

/*
 * Push the look-ahead files from a detached process, so that this call
 * returns as soon as its own file is stored. One look-ahead process at a
 * time (a lock in archive_status); the names are chosen before the fork.
 */
static void
ahead_spawn(struct ahead *a, const char *name, long max_files, unsigned long long max_bytes)
{
    char *lock = xasprintf("%s/%s", a->status_dir, LOOKAHEAD_LOCK);
    int lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

    free(lock);
    if (lfd < 0)
        return;
    if (flock(lfd, LOCK_EX | LOCK_NB) < 0) {
        close(lfd); /* another look-ahead is at work */
        return;
    }
    ahead_collect(a, name, max_files, max_bytes);
    if (a->n == 0) {
        close(lfd);
        return;
    }
    if (!cli_detach()) {
        close(lfd); /* the detached process's copy of the descriptor keeps the lock */
        return;
    }
    alarm(600); /* never linger */
    /*
     * The inherited repository (and its connections) belongs to the parent:
     * the workers open their own, and this process never closes it.
     */
    pthread_t threads[4];
    int n = 0;
    for (int i = 0; i < 4 && (size_t)i < a->n; i++)
        if (pthread_create(&threads[n], NULL, ahead_worker, a) == 0)
            n++;
    for (int i = 0; i < n; i++)
        pthread_join(threads[i], NULL);
    _exit(0);
}

int
main(int argc, char **argv)
{
    struct cli cli;
    struct err err;
    struct walname w;
    struct walheader h;
    bool has_header;
    long lookahead;
    unsigned long long lookahead_bytes;
    char name[WALNAME_MAX];
    char *status_dir = NULL, *wal_dir = NULL;
    struct ahead ahead;
    int rc = 1;

    err_clear(&err);
    memset(&ahead, 0, sizeof(ahead));
    pthread_mutex_init(&ahead.lock, NULL);
    if (cli_init(&cli, "ferry-wal-push", usage, push_opts, argc, argv, &err) < 0)
        goto out;
    if (cli.done) {
        rc = 0;
        goto out;
    }
    if (cli.n_args != 1) {
        err_set(&err, ERR_USAGE, "expected one argument, the WAL file path (%%p)");
        goto out;
    }
    if (opts_get_int(cli.opts, "lookahead", 4, 0, 16, &lookahead, &err) < 0 ||
        opts_get_size(cli.opts, "lookahead-bytes", 256ULL << 20, &lookahead_bytes, &err) < 0)
        goto out;
    const char *path = cli.args[0];
    if (archive_check_local(path, &w, &h, &has_header, &err) < 0)
        goto out;
    walname_format(name, &w);

    status_dir = status_dir_of(path);
    const char *repo_url = opts_get(cli.opts, "repo");
    if (status_dir)
        busy_wait(status_dir, name);
    if (status_dir && repo_url && marker_matches(status_dir, name, path, repo_url)) {
        log_info("\"%s\" was already pushed ahead", name);
        rc = 0;
        goto out;
    }
    if (cli_load(&cli, &err) < 0)
        goto out;
    /*
     * One PUT per WAL file, never multipart: conditional create is atomic on a
     * PUT, while some servers (Ceph RGW 16) ignore it on CompleteMultipartUpload,
     * where two different writers could then both win. An encoded segment
     * is at most a little larger than the segment.
     */
    if (has_header && cli.ropts.s3_part_size < (uint64_t)h.seg_size + (1u << 20))
        cli.ropts.s3_part_size = (uint64_t)h.seg_size + (1u << 20);
    if (cli_open_repo(&cli, &err) < 0)
        goto out;
    struct archive ar = {cli.repo, cli.oopts, cli.key};
    if (has_header) {
        struct cluster_info ci = {h.sysid, h.pg_version, h.seg_size, h.blcksz};
        char what[WALNAME_MAX + 16];

        snprintf(what, sizeof(what), "WAL file \"%s\"", name);
        if (archive_cluster_check(&ar, &ci, what, &err) < 0)
            goto out;
    }

    const char *slash = strrchr(path, '/');
    wal_dir = slash ? xstrndup(path, (size_t)(slash - path)) : xstrdup(".");
    if (status_dir && lookahead > 0) {
        ahead.cli = &cli;
        ahead.status_dir = status_dir;
        ahead.wal_dir = wal_dir;
        ahead.main_header = has_header ? &h : NULL;
        ahead_spawn(&ahead, name, lookahead, lookahead_bytes);
    }

    enum archive_push_result res;
    if (archive_push_file(&ar, path, &w, &res, NULL, &err) < 0)
        goto out;
    if (status_dir)
        spool_remove(wal_dir); /* only in a real pg_wal (it has archive_status) */
    if (res == ARCHIVE_PUSH_IDENTICAL)
        log_notice("\"%s\" was already archived with the same contents", name);
    else
        log_info("archived \"%s\"", name);
    rc = 0;
out:
    if (rc != 0)
        log_err(&err);
    for (size_t i = 0; i < ahead.n; i++)
        free(ahead.names[i]);
    free(ahead.names);
    free(status_dir);
    free(wal_dir);
    cli_free(&cli);
    return rc;
}
