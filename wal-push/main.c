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
#include "base/clock.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "cli/cli.h"
#include "cli/front.h"
#include "note.h"

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
    "Look-ahead: a detached process pushes the oldest files PostgreSQL has marked .ready,\n"
    "--lookahead-jobs at a time, among the --lookahead oldest (within --lookahead-bytes),\n"
    "and leaves a note (archive_status/NAME.ferry) for each, so that PostgreSQL's later call\n"
    "for it returns at once. It follows the archiver and exits when idle. ferry never\n"
    "marks anything .done: PostgreSQL does. Calls answered from a note are served by a\n"
    "small front program; everything else by ferry-wal-push-core (same options).\n"
    "\n"
    "Exit status: 0 stored (or already stored with the same contents), 1 anything else.";

/*
 * If an earlier look-ahead pushed this file to this same repository, its
 * note says so: true when the file is still the one noted (same identity, or
 * else same checksum). A matching note stays until PostgreSQL marks the file
 * .done (so the look-ahead does not push it again); a stale one is removed.
 */
static bool
note_matches(const char *status_dir, const char *name, const char *path, const char *repo_url)
{
    char want[65], hex[65];
    uint64_t want_size, size;
    unsigned char sha[32];
    struct err err;
    bool match = false;

    switch (note_read(status_dir, name, path, repo_url, want, &want_size)) {
    case NOTE_NONE:
        return false;
    case NOTE_SAME_FILE:
        return true;
    case NOTE_CHECK:
        if (archive_file_sha256(path, sha, &size, &err) == 0) {
            archive_sha256_hex(hex, sha);
            match = size == want_size && strcmp(hex, want) == 0;
        }
        break;
    }
    if (!match)
        note_remove(status_dir, name);
    return match;
}

/*
 * The look-ahead: one detached process per archive_status (it holds
 * LOOKAHEAD_LOCK) pushes the oldest .ready files that have no note yet,
 * --lookahead-jobs at a time, within the --lookahead / --lookahead-bytes
 * window, and leaves a note for each. It follows PostgreSQL as the window
 * slides and exits once nothing has been left to do for AHEAD_LINGER_MS (a
 * later call starts a new one), or after AHEAD_LIFETIME_S.
 */
#define AHEAD_LINGER_MS 3000
#define AHEAD_LIFETIME_S 600

struct ahead {
    struct cli *cli;
    const char *status_dir;
    const char *wal_dir;
    struct cluster_info cluster; /* what the repository records: files must agree */
    long files, jobs;
    unsigned long long bytes;
    pthread_mutex_t lock;
    char **names; /* the current candidates, taken in order */
    size_t n, next;
    char **given_up; /* refused or failed here: left to PostgreSQL's own calls */
    size_t n_given_up;
    int64_t last_work_ms;
    time_t deadline;
};

/* The next file to push ahead, with its busy lock taken; NULL when there is none now. */
static char *
ahead_next(struct ahead *a, int *busy_fd)
{
    char *name = NULL;

    pthread_mutex_lock(&a->lock);
    for (int scans = 0; !name && scans < 2; scans++) {
        if (a->next == a->n) {
            names_free(a->names, a->n);
            a->names = NULL;
            a->n = a->next = 0;
            if (scans > 0 || time(NULL) > a->deadline)
                break;
            a->n = ahead_candidates(a->status_dir, a->wal_dir, NULL, a->files, a->bytes, &a->names);
        }
        while (!name && a->next < a->n) {
            char *cand = a->names[a->next++];
            bool skip = false;

            for (size_t i = 0; i < a->n_given_up && !skip; i++)
                skip = strcmp(a->given_up[i], cand) == 0;
            if (skip)
                continue;
            char *note = xasprintf("%s/%s%s", a->status_dir, cand, NOTE_SUFFIX);
            int fd = access(note, F_OK) != 0 ? busy_take(a->status_dir, cand) : -1;

            free(note);
            if (fd < 0)
                continue; /* noted meanwhile, or another process is pushing it */
            /*
             * Noted between the check and the lock, or .done already (a scan
             * removes the notes of files no longer .ready: checked in this
             * order, "no note" and then ".ready" mean it was never stored).
             */
            note = xasprintf("%s/%s%s", a->status_dir, cand, NOTE_SUFFIX);
            char *ready = xasprintf("%s/%s.ready", a->status_dir, cand);
            bool done = access(note, F_OK) == 0 || access(ready, F_OK) != 0;
            free(ready);
            if (done) {
                busy_release(fd, a->status_dir, cand);
            } else {
                name = xstrdup(cand);
                *busy_fd = fd;
            }
            free(note);
        }
    }
    if (name)
        a->last_work_ms = clock_ms();
    pthread_mutex_unlock(&a->lock);
    return name;
}

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
        int bfd = -1;
        char *name = ahead_next(a, &bfd);

        if (!name) {
            struct timespec ts = {0, 20 * 1000 * 1000};
            int64_t idle;

            pthread_mutex_lock(&a->lock);
            idle = clock_ms() - a->last_work_ms;
            pthread_mutex_unlock(&a->lock);
            if (idle > AHEAD_LINGER_MS || time(NULL) > a->deadline)
                break;
            nanosleep(&ts, NULL);
            continue;
        }
        char *path = xasprintf("%s/%s", a->wal_dir, name);
        struct walname w;
        struct walheader h;
        bool has_header;
        enum archive_push_result res;
        struct object_info info;

        bool pushed = false;

        if (archive_check_local(path, &w, &h, &has_header, &err) < 0 ||
            (has_header && h.sysid != a->cluster.sysid)) {
            /* left for PostgreSQL's own call, which reports it properly */
        } else if (archive_push_file(&ar, path, &w, &res, &info, &err) == 0) {
            note_write(a->status_dir, name, path, info.sha256, info.plain_size,
                       opts_get(a->cli->opts, "repo"));
            log_info("pushed \"%s\" ahead", name);
            pushed = true;
        } else {
            log_info("look-ahead push of \"%s\" failed: %s", name, err.msg);
        }
        busy_release(bfd, a->status_dir, name);
        if (!pushed) {
            /* never again in this process: no busy loop on a file that cannot go */
            pthread_mutex_lock(&a->lock);
            a->given_up = xrealloc(a->given_up, (a->n_given_up + 1) * sizeof(*a->given_up));
            a->given_up[a->n_given_up++] = xstrdup(name);
            pthread_mutex_unlock(&a->lock);
        }
        free(path);
        free(name);
    }
    repo_close(repo);
    return NULL;
}

/*
 * Be the look-ahead process (already detached from PostgreSQL), unless
 * another one holds the lock. The options are loaded; the repository, if
 * open, belongs to the parent and is not touched.
 */
static void
ahead_run(struct cli *cli, const char *status_dir, const char *wal_dir,
          const struct cluster_info *known)
{
    char *lock = xasprintf("%s/%s", status_dir, LOOKAHEAD_LOCK);
    int lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    struct ahead a;
    struct repo *repo = NULL;
    struct err err;
    bool found = false;
    pthread_t threads[16];
    int n = 0;

    free(lock);
    if (lfd < 0 || flock(lfd, LOCK_EX | LOCK_NB) < 0)
        return;                    /* another look-ahead is at work */
    alarm(AHEAD_LIFETIME_S + 300); /* never linger, whatever happens */
    memset(&a, 0, sizeof(a));
    pthread_mutex_init(&a.lock, NULL);
    a.cli = cli;
    a.status_dir = status_dir;
    a.wal_dir = wal_dir;
    a.last_work_ms = clock_ms();
    a.deadline = time(NULL) + AHEAD_LIFETIME_S;
    if (opts_get_int(cli->opts, "lookahead", LOOKAHEAD_DEFAULT, 0, 64, &a.files, &err) < 0 ||
        opts_get_int(cli->opts, "lookahead-jobs", LOOKAHEAD_JOBS_DEFAULT, 1, 16, &a.jobs, &err) <
            0 ||
        opts_get_size(cli->opts, "lookahead-bytes", LOOKAHEAD_BYTES_DEFAULT, &a.bytes, &err) < 0 ||
        a.files == 0)
        return;
    /*
     * The repository's cluster, once (known when the caller just checked its
     * own segment against it): a file from another cluster is left to its own call.
     */
    if (known) {
        a.cluster = *known;
        found = true;
    } else if (repo_open(&repo, opts_get(cli->opts, "repo"), &cli->ropts, &err) == 0) {
        struct archive ar = {repo, cli->oopts, cli->key};

        if (archive_cluster_get(&ar, &a.cluster, &found, &err) < 0)
            found = false;
        repo_close(repo);
    }
    if (!found)
        return;
    /* one PUT per WAL file, as in main() */
    if (cli->ropts.s3_part_size < (uint64_t)a.cluster.seg_size + (1u << 20))
        cli->ropts.s3_part_size = (uint64_t)a.cluster.seg_size + (1u << 20);
    for (long i = 0; i < a.jobs; i++)
        if (pthread_create(&threads[n], NULL, ahead_worker, &a) == 0)
            n++;
    for (int i = 0; i < n; i++)
        pthread_join(threads[i], NULL);
    names_free(a.names, a.n);
    names_free(a.given_up, a.n_given_up);
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

/* Start the look-ahead in a detached process when none is at work and there is work. */
static void
ahead_spawn(struct cli *cli, const char *status_dir, const char *wal_dir, const char *except,
            const struct cluster_info *known)
{
    char *lock = xasprintf("%s/%s", status_dir, LOOKAHEAD_LOCK);
    long files;
    unsigned long long bytes;
    struct err err;
    char **names;
    size_t n;

    if (opts_get_int(cli->opts, "lookahead", LOOKAHEAD_DEFAULT, 0, 64, &files, &err) == 0 &&
        opts_get_size(cli->opts, "lookahead-bytes", LOOKAHEAD_BYTES_DEFAULT, &bytes, &err) == 0 &&
        files > 0 && front_lock_free(lock)) {
        n = ahead_candidates(status_dir, wal_dir, except, files, bytes, &names);
        names_free(names, n);
        if (n > 0 && cli_detach()) {
            ahead_run(cli, status_dir, wal_dir, known);
            _exit(0);
        }
    }
    free(lock);
}

int
main(int argc, char **argv)
{
    struct cli cli;
    struct err err;
    struct walname w;
    struct walheader h = {0};
    bool has_header;
    long lookahead, jobs;
    unsigned long long lookahead_bytes;
    char name[WALNAME_MAX];
    char *status_dir = NULL, *wal_dir = NULL;
    int bfd = -1, rc = 1;
    const char *role = getenv(FRONT_ROLE_ENV);
    bool as_lookahead = role && strcmp(role, ROLE_LOOKAHEAD) == 0;

    err_clear(&err);
    if (role)
        unsetenv(FRONT_ROLE_ENV);
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
    if (opts_get_int(cli.opts, "lookahead", LOOKAHEAD_DEFAULT, 0, 64, &lookahead, &err) < 0 ||
        opts_get_int(cli.opts, "lookahead-jobs", LOOKAHEAD_JOBS_DEFAULT, 1, 16, &jobs, &err) < 0 ||
        opts_get_size(cli.opts, "lookahead-bytes", LOOKAHEAD_BYTES_DEFAULT, &lookahead_bytes,
                      &err) < 0)
        goto out;
    const char *path = cli.args[0];
    const char *slash = strrchr(path, '/');
    wal_dir = slash ? xstrndup(path, (size_t)(slash - path)) : xstrdup(".");
    status_dir = status_dir_of(path);
    if (as_lookahead) {
        /* started detached by the front to keep the look-ahead going */
        if (status_dir && cli_load(&cli, &err) == 0)
            ahead_run(&cli, status_dir, wal_dir, NULL);
        rc = 0;
        goto out;
    }
    if (archive_check_local(path, &w, &h, &has_header, &err) < 0)
        goto out;
    walname_format(name, &w);

    const char *repo_url = opts_get(cli.opts, "repo");
    if (status_dir) {
        busy_wait(status_dir, name);
        if (repo_url && note_matches(status_dir, name, path, repo_url)) {
            log_info("\"%s\" was already pushed ahead", name);
            rc = 0;
            goto out;
        }
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
    if (status_dir && (bfd = busy_take(status_dir, name)) < 0) {
        /* the look-ahead took it meanwhile: its note, or else push it anyway */
        busy_wait(status_dir, name);
        if (repo_url && note_matches(status_dir, name, path, repo_url)) {
            log_info("\"%s\" was already pushed ahead", name);
            rc = 0;
            goto out;
        }
    }
    if (cli_open_repo(&cli, &err) < 0)
        goto out;
    struct archive ar = {cli.repo, cli.oopts, cli.key};
    struct cluster_info ci = {h.sysid, h.pg_version, h.seg_size, h.blcksz};
    if (has_header) {
        char what[WALNAME_MAX + 16];

        snprintf(what, sizeof(what), "WAL file \"%s\"", name);
        if (archive_cluster_check(&ar, &ci, what, &err) < 0)
            goto out;
    }
    if (status_dir)
        ahead_spawn(&cli, status_dir, wal_dir, name, has_header ? &ci : NULL);

    enum archive_push_result res;
    struct object_info info;
    if (archive_push_file(&ar, path, &w, &res, &info, &err) < 0)
        goto out;
    /*
     * Noted before the busy lock is released: the look-ahead, which may still
     * see NAME.ready until PostgreSQL renames it, must not push it again.
     */
    if (status_dir && repo_url)
        note_write(status_dir, name, path, info.sha256, info.plain_size, repo_url);
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
    if (bfd >= 0)
        busy_release(bfd, status_dir, name);
    free(status_dir);
    free(wal_dir);
    cli_free(&cli);
    return rc;
}
