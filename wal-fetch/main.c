/* SPDX-License-Identifier: MIT */
/*
 * ferry-wal-fetch: PostgreSQL's restore_command. Fetches one WAL file (%f)
 * from the repository to %p, decoded and verified, atomically. Exit 0: the
 * file is there. Exit 1: the archive does not have it. A storage error or a
 * damaged object must not look like "not found" (PostgreSQL would end
 * recovery early and fork a timeline): outside standby mode it exits with
 * FETCH_EXIT_FATAL (> 125) so recovery stops with FATAL; in standby mode it
 * exits 1 so the standby retries. During recovery (%p is RECOVERYXLOG) it
 * also starts a background prefetch of the next segments into a spool
 * directory, so the next calls are a verified rename.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
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
#include "format/history.h"
#include "stream/stages.h"

#define FETCH_EXIT_FATAL 200

static const char usage[] =
    "usage: ferry-wal-fetch [OPTIONS] WALNAME DEST\n"
    "\n"
    "Fetch one WAL file from the repository; for postgresql.conf:\n"
    "  restore_command = 'ferry-wal-fetch %f %p'\n"
    "\n"
    "The file is decoded, its checksum verified (and, for segments, its page header\n"
    "checked against its name), written beside DEST, synced and renamed to DEST. A bad\n"
    "object never reaches DEST.\n"
    "\n"
    "Exit status:\n"
    "  0    the file is at DEST\n"
    "  1    the archive does not have it (normal at the end of recovery), or a storage\n"
    "       error in standby mode (standby.signal in the data directory): the standby retries\n"
    "  200  a storage error or a damaged object outside standby mode: PostgreSQL stops\n"
    "       recovery with FATAL instead of ending it early at the wrong point; fix the\n"
    "       cause and start the server again\n"
    "--on-storage-error fatal|retry overrides the choice between 200 and 1 (default auto).\n"
    "\n"
    "Prefetch: when DEST is PostgreSQL's RECOVERYXLOG, a background process fetches the\n"
    "next --prefetch segments (following timeline switches through the archive's history\n"
    "files) in parallel into --spool-path (default: DEST's directory/ferry-prefetch), so\n"
    "later calls only verify and rename. A stale or damaged spool file is fetched again.\n"
    "Prefetch is off for any other DEST (e.g. pg_rewind).";

static const struct opt_def fetch_opts[] = {
    {"prefetch", 0, OPT_INT, 0, "N", "segments to fetch ahead during recovery, 0-64 (default 8)"},
    {"prefetch-bytes", 0, OPT_SIZE, 0, "SIZE", "at most SIZE bytes in the spool (default 512M)"},
    {"spool-path", 0, OPT_STRING, 0, "DIR", "prefetch spool (default DEST's dir/ferry-prefetch)"},
    {"on-storage-error", 0, OPT_STRING, 0, "MODE",
     "auto (default: 1 in standby mode, else 200), fatal (200) or retry (1)"},
    OPT_END,
};

static int
fsync_dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? xstrndup(path, (size_t)(slash - path ? slash - path : 1)) : xstrdup(".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = -1;

    if (fd >= 0) {
        rc = fsync(fd);
        close(fd);
    }
    free(dir);
    return rc;
}

/* A spooled file with its note "sha256 size": true when it is whole and was moved to dest. */
static bool
spool_take(const char *spool, const char *name, const char *dest)
{
    char *file = xasprintf("%s/%s", spool, name);
    char *note = xasprintf("%s/%s.sha256", spool, name);
    char want[65], hex[65];
    unsigned long long want_size;
    unsigned char sha[32];
    uint64_t size;
    struct walname w;
    struct walheader h;
    bool has_header, ok = false;
    struct err err;
    FILE *f = fopen(note, "r");

    if (!f)
        goto out;
    if (fscanf(f, "%64s %llu", want, &want_size) != 2) {
        fclose(f);
        goto drop;
    }
    fclose(f);
    if (archive_file_sha256(file, sha, &size, &err) < 0)
        goto drop;
    archive_sha256_hex(hex, sha);
    if (size != want_size || strcmp(hex, want) != 0 ||
        archive_check_local(file, &w, &h, &has_header, &err) < 0) {
        log_warning("prefetched \"%s\" is damaged, fetching it again", name);
        goto drop;
    }
    if (rename(file, dest) < 0) {
        log_warning("could not move prefetched \"%s\" to \"%s\": %s", name, dest, strerror(errno));
        goto drop;
    }
    fsync_dir_of(dest);
    ok = true;
drop:
    unlink(file);
    unlink(note);
out:
    free(file);
    free(note);
    return ok;
}

/*
 * When the prefetcher is fetching this very file right now, wait for it
 * (bounded) rather than fetch it twice. True when its note appeared.
 */
static bool
spool_wait(const char *spool, const char *name)
{
    char *busy = xasprintf("%s/%s.fetching", spool, name);
    char *note = xasprintf("%s/%s.sha256", spool, name);
    char *lock = xasprintf("%s/.lock", spool);
    bool ready = false;
    int lfd = open(lock, O_RDONLY | O_CLOEXEC);

    /* no prefetcher holds the lock: a leftover marker is stale */
    if (lfd < 0 || flock(lfd, LOCK_SH | LOCK_NB) == 0) {
        unlink(busy);
        goto out;
    }
    for (int i = 0; i < 1500 && access(busy, F_OK) == 0; i++) {
        struct timespec ts = {0, 20 * 1000 * 1000};

        nanosleep(&ts, NULL);
    }
    ready = access(note, F_OK) == 0;
out:
    if (lfd >= 0)
        close(lfd);
    free(lock);
    free(busy);
    free(note);
    return ready;
}

/* ---- the background prefetcher ---- */

struct prefetch {
    struct cli *cli;
    const char *spool;
    const struct cluster_info *cluster; /* fetched segments must be from it */
    struct walname *todo;
    size_t n, next;
    bool stop; /* a file was missing: the archive ends there */
    pthread_mutex_t lock;
};

static void *
prefetch_worker(void *arg)
{
    struct prefetch *p = arg;
    struct repo *repo = NULL;
    struct err err;

    if (repo_open(&repo, opts_get(p->cli->opts, "repo"), &p->cli->ropts, &err) < 0)
        return NULL;
    struct archive ar = {repo, p->cli->oopts, p->cli->key};
    for (;;) {
        struct walname w;
        char name[WALNAME_MAX];

        pthread_mutex_lock(&p->lock);
        bool have = !p->stop && p->next < p->n;
        if (have)
            w = p->todo[p->next++];
        pthread_mutex_unlock(&p->lock);
        if (!have)
            break;
        walname_format(name, &w);
        char *file = xasprintf("%s/%s", p->spool, name);
        char *note = xasprintf("%s/%s.sha256", p->spool, name);
        struct object_info info;
        char *busy = xasprintf("%s/%s.fetching", p->spool, name);

        if (access(note, F_OK) != 0) {
            int bfd = open(busy, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);

            if (bfd >= 0)
                close(bfd);
            if (archive_fetch_file(&ar, &w, p->cluster, file, &info, &err) == 0) {
                char hex[65];
                char *tmp = xasprintf("%s.tmp", note);
                FILE *f = fopen(tmp, "w");

                archive_sha256_hex(hex, info.sha256);
                if (f && fprintf(f, "%s %llu\n", hex, (unsigned long long)info.plain_size) > 0 &&
                    fclose(f) == 0)
                    rename(tmp, note);
                else if (f)
                    fclose(f);
                unlink(tmp);
                free(tmp);
            } else {
                unlink(file);
                if (err.kind == ERR_NOT_FOUND) {
                    pthread_mutex_lock(&p->lock);
                    p->stop = true;
                    pthread_mutex_unlock(&p->lock);
                }
            }
        }
        unlink(busy);
        free(busy);
        free(file);
        free(note);
    }
    repo_close(repo);
    return NULL;
}

struct hist_scan {
    uint32_t best;
};

static int
hist_cb(const struct repo_entry *e, void *arg)
{
    struct hist_scan *s = arg;
    const char *base = strrchr(e->key, '/');
    struct walname w;
    struct err err;

    base = base ? base + 1 : e->key;
    if (walname_parse(&w, base, &err) == 0 && w.kind == WALNAME_HISTORY && w.tli > s->best)
        s->best = w.tli;
    return 0;
}

/*
 * Which timeline each next segment is read from: the newest timeline's
 * history, when the requested timeline is among its ancestors.
 */
static int
timeline_map(struct archive *ar, uint32_t tli, struct history *out, struct err *err)
{
    struct hist_scan scan = {0};
    struct history h = {NULL, 0};

    if (repo_list(ar->repo, ARCHIVE_HISTORY_PREFIX, NULL, hist_cb, &scan, err) < 0)
        return -1;
    if (scan.best > tli) {
        struct walname w = {WALNAME_HISTORY, scan.best, 0, 0, 0};
        struct buf key = BUF_INIT, text = BUF_INIT;
        struct sink *s;

        archive_wal_key(&key, &w);
        s = object_decode_sink_new(buf_sink_new(&text, 1 << 20), ar->key, NULL);
        if (repo_get(ar->repo, buf_str(&key), 0, 0, s, err) == 0 && sink_finish(s, err) == 0 &&
            history_parse(&h, scan.best, text.data ? text.data : "", text.len, err) == 0) {
            bool descends = false;

            for (size_t i = 0; i < h.n; i++)
                descends |= h.entries[i].tli == tli;
            if (descends) {
                *out = h;
                h.entries = NULL;
            }
        }
        history_free(&h);
        sink_free(s);
        buf_free(&key);
        buf_free(&text);
        if (out->entries)
            return 0;
    }
    out->entries = xcalloc(1, sizeof(*out->entries));
    out->entries[0].tli = tli;
    out->entries[0].end = UINT64_MAX;
    out->n = 1;
    return 0;
}

/* Remove spool files for segments before segno (consumed or stale) and leftovers. */
static void
spool_clean(const char *spool, uint64_t segno, uint32_t seg_size)
{
    DIR *d = opendir(spool);
    struct dirent *de;

    if (!d)
        return;
    while ((de = readdir(d))) {
        char name[WALNAME_SEGMENT_LEN + 1];
        struct walname w;
        struct err err;
        uint64_t s;

        if (de->d_name[0] == '.')
            continue;
        snprintf(name, sizeof(name), "%.24s", de->d_name);
        bool old = walname_parse(&w, name, &err) == 0 && walname_segno(&s, &w, seg_size) == 0 &&
                   s <= segno;
        if (old || strstr(de->d_name, ".tmp")) {
            char *p = xasprintf("%s/%s", spool, de->d_name);
            unlink(p);
            free(p);
        }
    }
    closedir(d);
}

static void
prefetch_run(struct cli *cli, const char *spool, const struct walname *cur, long count,
             unsigned long long max_bytes)
{
    struct err err;
    struct cluster_info ci;
    bool found;
    struct history hist = {NULL, 0};
    struct prefetch p;
    pthread_t threads[4];
    int n_threads = 0;
    char *lock = xasprintf("%s/.lock", spool);
    int lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    uint64_t segno;

    memset(&p, 0, sizeof(p));
    pthread_mutex_init(&p.lock, NULL);
    if (lfd < 0 || flock(lfd, LOCK_EX | LOCK_NB) < 0)
        goto out; /* another prefetcher is at work */
    if (cli_open_repo(cli, &err) < 0)
        goto out;
    struct archive ar = {cli->repo, cli->oopts, cli->key};
    if (archive_cluster_get(&ar, &ci, &found, &err) < 0 || !found)
        goto out;
    if (walname_segno(&segno, cur, ci.seg_size) < 0)
        goto out;
    spool_clean(spool, segno, ci.seg_size);
    if (timeline_map(&ar, cur->tli, &hist, &err) < 0)
        goto out;
    if ((unsigned long long)count * ci.seg_size > max_bytes)
        count = (long)(max_bytes / ci.seg_size);
    p.cli = cli;
    p.spool = spool;
    p.cluster = &ci;
    p.todo = xcalloc((size_t)count + 1, sizeof(*p.todo));
    for (long i = 1; i <= count; i++) {
        uint32_t tli = history_tli_for_segno(&hist, segno + (uint64_t)i, ci.seg_size);

        walname_from_segno(&p.todo[p.n++], tli, segno + (uint64_t)i, ci.seg_size);
    }
    for (int i = 0; i < 4 && (size_t)i < p.n; i++)
        if (pthread_create(&threads[n_threads], NULL, prefetch_worker, &p) == 0)
            n_threads++;
    for (int i = 0; i < n_threads; i++)
        pthread_join(threads[i], NULL);
out:
    free(p.todo);
    history_free(&hist);
    if (lfd >= 0)
        close(lfd);
    free(lock);
}

/* Fork a detached prefetcher; the caller returns to PostgreSQL at once. */
static void
prefetch_spawn(struct cli *cli, const char *spool, const struct walname *cur, long count,
               unsigned long long max_bytes)
{
    pid_t pid;

    if (mkdir(spool, 0700) < 0 && errno != EEXIST) {
        log_info("prefetch disabled: could not create \"%s\": %s", spool, strerror(errno));
        return;
    }
    fflush(NULL);
    pid = fork();
    if (pid > 0) {
        waitpid(pid, NULL, 0); /* the middle child exits at once */
        return;
    }
    if (pid < 0)
        return; /* no prefetch, no harm */
    /* child: detach from PostgreSQL's pipes and process group, then fork again */
    setsid();
    if (fork() != 0)
        _exit(0);
    int fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        if (fd > 2)
            close(fd);
    }
    alarm(600); /* never linger: a prefetch that takes this long is abandoned */
    prefetch_run(cli, spool, cur, count, max_bytes);
    _exit(0);
}

int
main(int argc, char **argv)
{
    struct cli cli;
    struct err err;
    struct walname w;
    long prefetch;
    unsigned long long prefetch_bytes;
    char *spool = NULL;
    int rc = FETCH_EXIT_FATAL;
    const char *mode;

    err_clear(&err);
    signal(SIGCHLD, SIG_DFL);
    if (cli_init(&cli, "ferry-wal-fetch", usage, fetch_opts, argc, argv, &err) < 0)
        goto fail;
    if (cli.done) {
        cli_free(&cli);
        return 0;
    }
    if (cli.n_args != 2) {
        err_set(&err, ERR_USAGE,
                "expected two arguments, the WAL file name (%%f) and the path (%%p)");
        goto fail;
    }
    if (opts_get_int(cli.opts, "prefetch", 8, 0, 64, &prefetch, &err) < 0 ||
        opts_get_size(cli.opts, "prefetch-bytes", 512ULL << 20, &prefetch_bytes, &err) < 0)
        goto fail;
    mode = opts_get(cli.opts, "on-storage-error");
    if (mode && strcmp(mode, "auto") != 0 && strcmp(mode, "fatal") != 0 &&
        strcmp(mode, "retry") != 0) {
        err_set(&err, ERR_USAGE, "invalid --on-storage-error \"%s\": use auto, fatal or retry",
                mode);
        goto fail;
    }
    const char *fname = cli.args[0], *dest = cli.args[1];
    if (walname_parse(&w, fname, &err) < 0) {
        /* not a WAL name: it cannot be in the archive */
        rc = 1;
        goto fail;
    }
    const char *base = strrchr(dest, '/');
    base = base ? base + 1 : dest;
    bool recovering = strcmp(base, "RECOVERYXLOG") == 0;
    if (opts_get(cli.opts, "spool-path"))
        spool = xstrdup(opts_get(cli.opts, "spool-path"));
    else
        spool = base == dest ? xstrdup("ferry-prefetch")
                             : xasprintf("%.*s/ferry-prefetch", (int)(base - dest - 1), dest);
    bool use_spool = recovering && prefetch > 0 && w.kind == WALNAME_SEGMENT;

    if (use_spool && (spool_take(spool, fname, dest) ||
                      (spool_wait(spool, fname) && spool_take(spool, fname, dest)))) {
        log_info("restored \"%s\" from the prefetch spool", fname);
        prefetch_spawn(&cli, spool, &w, prefetch, prefetch_bytes);
        rc = 0;
        goto done;
    }
    if (cli_open_repo(&cli, &err) < 0)
        goto fail;
    struct archive ar = {cli.repo, cli.oopts, cli.key};
    if (archive_fetch_file(&ar, &w, NULL, dest, NULL, &err) < 0) {
        if (err.kind == ERR_NOT_FOUND) {
            log_info("%s", err.msg);
            rc = 1;
            goto done;
        }
        goto fail;
    }
    log_info("restored \"%s\"", fname);
    rc = 0;
    if (use_spool) {
        repo_close(cli.repo);
        cli.repo = NULL;
        prefetch_spawn(&cli, spool, &w, prefetch, prefetch_bytes);
    }
    goto done;

fail:
    log_err(&err);
    if (rc != 1) {
        bool standby = access("standby.signal", F_OK) == 0;

        mode = cli.opts ? opts_get(cli.opts, "on-storage-error") : NULL;
        if (mode && strcmp(mode, "retry") == 0)
            rc = 1;
        else if (mode && strcmp(mode, "fatal") == 0)
            rc = FETCH_EXIT_FATAL;
        else
            rc = standby ? 1 : FETCH_EXIT_FATAL;
    }
done:
    free(spool);
    cli_free(&cli);
    return rc;
}
