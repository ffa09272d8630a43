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
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "archive/archive.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "cli/cli.h"
#include "cli/front.h"
#include "format/history.h"
#include "stream/stages.h"
#include "spool.h"

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
    "While it runs, the other calls of the recovery (history probes, the end of the archive)\n"
    "ask it over spool/.sock, on its open connection, instead of starting a core.\n"
    "Outside standby mode the background process runs at a lower priority (nice +10), so\n"
    "PostgreSQL's replay comes first; in standby mode it keeps the caller's priority.\n"
    "Prefetch is off for any other DEST (e.g. pg_rewind).";

/*
 * Notes beside spooled files: "SHA256 SIZE DEV INO MTIME_SEC MTIME_NSEC
 * BOOT_ID", written by the prefetcher after it decoded and verified the
 * file. The identity lets a later call trust the file without reading it
 * again.
 */
static void
note_write(const char *note, const char *file, const struct object_info *info, const char *boot)
{
    char hex[65];
    /* a dot file: spool_clean leaves it alone while it is being written */
    const char *base = strrchr(note, '/');
    char *tmp = base ? xasprintf("%.*s/.%s.tmp", (int)(base - note), note, base + 1)
                     : xasprintf(".%s.tmp", note);
    struct stat st;
    FILE *f;

    if (stat(file, &st) < 0 || (uint64_t)st.st_size != info->plain_size)
        goto out;
    archive_sha256_hex(hex, info->sha256);
    f = fopen(tmp, "w");
    if (f) {
        bool ok = fprintf(f, "%s %llu %llu %llu %lld %ld %s\n", hex,
                          (unsigned long long)info->plain_size, (unsigned long long)st.st_dev,
                          (unsigned long long)st.st_ino, (long long)st.st_mtim.tv_sec,
                          (long)st.st_mtim.tv_nsec, boot[0] ? boot : "-") > 0;

        if (fclose(f) == 0 && ok && rename(tmp, note) == 0)
            goto out;
    }
    unlink(tmp);
out:
    free(tmp);
}

/*
 * Fetch w into the spool as file, decoded and verified, and write its note;
 * nothing is left there on failure.
 */
static int
spool_fetch(struct archive *ar, const struct walname *w, const struct cluster_info *cluster,
            const char *file, const char *note, const char *boot, struct err *err)
{
    struct object_info info;

    /* without a boot id the spool cannot be trusted after a crash: fsync */
    unsigned flags = boot[0] ? ARCHIVE_FETCH_NOSYNC : 0;

    if (archive_fetch_file(ar, w, cluster, file, flags, &info, err) < 0) {
        unlink(file);
        return -1;
    }
    note_write(note, file, &info, boot);
    return 0;
}

/* ---- the background prefetcher ---- */

/*
 * One prefetcher per spool (it holds spool/.lock) stays alive while recovery
 * asks for segments: each call writes the name it was asked for to
 * spool/.position, and the prefetcher keeps the next --prefetch segments
 * (mapped to their timelines) fetched, verified and noted in the spool. It
 * exits after PREFETCH_IDLE_MS without progress (end of the archive, or
 * recovery over), and a later call starts a new one.
 */
#define PREFETCH_IDLE_MS 10000
#define PREFETCH_THREADS 4

/*
 * Outside standby mode the recovery is the server's only job, and its
 * startup process replays WAL on the CPUs the prefetch threads would take
 * while they run ahead: the prefetcher runs PREFETCH_NICE below the caller's
 * priority. A standby serves queries beside its recovery for as long as it
 * lives: there the prefetcher keeps the caller's priority, so that busy
 * backends do not starve the fetch its startup process waits for.
 */
#define PREFETCH_NICE 10

static void
prefetch_priority(void)
{
    int cur;

    if (standby_mode())
        return;
    errno = 0;
    cur = getpriority(PRIO_PROCESS, 0);
    if (cur == -1 && errno != 0)
        return;
    /* this thread only (Linux); the prefetch and server threads inherit it */
    if (setpriority(PRIO_PROCESS, 0, cur + PREFETCH_NICE > 19 ? 19 : cur + PREFETCH_NICE) < 0)
        log_debug("could not lower the prefetcher's priority: %s", strerror(errno));
}

struct prefetch {
    struct cli *cli;
    const char *spool;
    const struct cluster_info *cluster; /* fetched segments must be from it */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct walname queue[64];
    size_t qn, qnext;
    unsigned long fetched; /* successes so far */
    bool missing;          /* a file was not in the archive: its end, for now */
    bool quit;
    struct walname failed[16]; /* damaged or unreadable: left to the calls (newest 16) */
    size_t n_failed;
};

/* Failed in this prefetcher before (the lock is held). */
static bool
prefetch_failed(const struct prefetch *p, const struct walname *w)
{
    size_t n = p->n_failed < 16 ? p->n_failed : 16;
    char a[WALNAME_MAX], b[WALNAME_MAX];

    walname_format(a, w);
    for (size_t i = 0; i < n; i++) {
        walname_format(b, &p->failed[i]);
        if (strcmp(a, b) == 0)
            return true;
    }
    return false;
}

/* A prefetch thread's own connection to the repository, and this boot's id. */
static int
thread_repo(struct prefetch *p, struct repo **repo, char boot[64])
{
    struct err err;

    boot_id(boot);
    return repo_open(repo, opts_get(p->cli->opts, "repo"), &p->cli->ropts, &err);
}

static void *
prefetch_worker(void *arg)
{
    struct prefetch *p = arg;
    struct repo *repo = NULL;
    struct err err;
    char boot[64];

    if (thread_repo(p, &repo, boot) < 0)
        return NULL;
    struct archive ar = {repo, p->cli->oopts, p->cli->key};
    for (;;) {
        struct walname w;
        char name[WALNAME_MAX];

        pthread_mutex_lock(&p->lock);
        while (!p->quit && p->qnext == p->qn)
            pthread_cond_wait(&p->cond, &p->lock);
        if (p->quit) {
            pthread_mutex_unlock(&p->lock);
            break;
        }
        w = p->queue[p->qnext++];
        walname_format(name, &w);
        char *file = xasprintf("%s/%s", p->spool, name);
        char *note = xasprintf("%s/%s.sha256", p->spool, name);
        char *busy = xasprintf("%s/%s.fetching", p->spool, name);
        bool todo = access(note, F_OK) != 0;
        int bfd = -1;
        /*
         * Marked under the lock, so a refill of the queue does not take it
         * again; the marker's flock tells a waiting call the moment it is done.
         */
        if (todo) {
            bfd = open(busy, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
            if (bfd >= 0 && flock(bfd, LOCK_EX | LOCK_NB) < 0) {
                close(bfd);
                bfd = -1;
                todo = false; /* someone else has it */
            }
        }
        pthread_mutex_unlock(&p->lock);

        bool ok = false, missing = false;

        if (todo) {
            if (spool_fetch(&ar, &w, p->cluster, file, note, boot, &err) == 0) {
                ok = true;
            } else {
                missing = err.kind == ERR_NOT_FOUND;
                if (!missing)
                    log_info("prefetch of \"%s\" failed: %s", name, err.msg);
            }
            unlink(busy);
            if (bfd >= 0)
                close(bfd);
        }
        pthread_mutex_lock(&p->lock);
        if (todo && !ok && !missing)
            p->failed[p->n_failed++ % 16] = w; /* not again: the call reports it */
        if (ok)
            p->fetched++;
        if (missing) {
            p->missing = true;
            p->qnext = p->qn; /* nothing after the end of the archive */
        }
        pthread_mutex_unlock(&p->lock);
        free(file);
        free(note);
        free(busy);
    }
    repo_close(repo);
    return NULL;
}

/*
 * The calls the spool cannot answer (the end of the archive, a segment asked
 * again, timeline history probes) ask the prefetcher over spool/.sock, one
 * line with the file's name; it fetches the file into the spool with its
 * note on its own open connection and answers "ok", "missing MESSAGE" (the
 * archive does not have it), or "error" (the call asks the core, which
 * reports it). Each answer comes from a lookup made for that call: nothing
 * is remembered as missing.
 */
#define SERVE_IO_SECONDS 5

struct serve {
    struct prefetch *p;
    int lfd;
};

/* Fetch name into the spool for a call; the answer line (without newline) into ans. */
static void
serve_one(struct prefetch *p, struct archive *ar, const char *name, const char *boot, char *ans,
          size_t ans_size)
{
    struct walname w;
    struct err err;

    snprintf(ans, ans_size, "error");
    if (walname_parse(&w, name, &err) < 0 ||
        (w.kind != WALNAME_SEGMENT && w.kind != WALNAME_HISTORY))
        return;
    char *file = xasprintf("%s/%s", p->spool, name);
    char *note = xasprintf("%s/%s.sha256", p->spool, name);
    char *busy = xasprintf("%s/%s.fetching", p->spool, name);
    int bfd = -1;

    /* a worker fetching it right now: its result is the answer */
    for (int64_t until = clock_ms() + 60000;;) {
        if (access(note, F_OK) == 0) {
            snprintf(ans, ans_size, "ok");
            goto out;
        }
        bfd = open(busy, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (bfd < 0)
            goto out;
        if (flock(bfd, LOCK_EX | LOCK_NB) == 0)
            break;
        close(bfd);
        bfd = -1;
        if (clock_ms() > until)
            goto out;
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    /* taken between the worker's note and its unlink of the marker: look again */
    if (access(note, F_OK) == 0) {
        snprintf(ans, ans_size, "ok");
        unlink(busy);
        goto out;
    }
    if (spool_fetch(ar, &w, w.kind == WALNAME_SEGMENT ? p->cluster : NULL, file, note, boot,
                    &err) == 0) {
        snprintf(ans, ans_size, "ok");
        pthread_mutex_lock(&p->lock);
        p->fetched++;
        pthread_mutex_unlock(&p->lock);
    } else if (err.kind == ERR_NOT_FOUND) {
        snprintf(ans, ans_size, "missing %s", err.msg);
    } else {
        log_info("fetch of \"%s\" for a call failed: %s", name, err.msg);
    }
    unlink(busy);
out:
    if (bfd >= 0)
        close(bfd);
    free(file);
    free(note);
    free(busy);
}

static void *
prefetch_serve(void *arg)
{
    struct serve *sv = arg;
    struct prefetch *p = sv->p;
    struct repo *repo = NULL;
    char boot[64];
    /* without a connection every call is answered "error": it asks the core at once */
    bool have_repo = thread_repo(p, &repo, boot) == 0;
    struct archive ar = {repo, p->cli->oopts, p->cli->key};

    for (;;) {
        struct pollfd pfd = {sv->lfd, POLLIN, 0};

        pthread_mutex_lock(&p->lock);
        bool quit = p->quit;
        pthread_mutex_unlock(&p->lock);
        if (quit)
            break;
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        int cfd = accept4(sv->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (cfd < 0)
            continue;
        struct timeval to = {SERVE_IO_SECONDS, 0};
        char line[WALNAME_MAX + 2], ans[600];

        if (setsockopt(cfd, SOL_SOCKET, SO_RCVTIMEO, &to, sizeof(to)) == 0 &&
            setsockopt(cfd, SOL_SOCKET, SO_SNDTIMEO, &to, sizeof(to)) == 0 &&
            spool_read_line(cfd, line, sizeof(line))) {
            if (have_repo)
                serve_one(p, &ar, line, boot, ans, sizeof(ans) - 1);
            else
                snprintf(ans, sizeof(ans) - 1, "error");
            size_t n = strlen(ans);
            ans[n++] = '\n';
            if (write(cfd, ans, n) < 0) {
                /* the call gave up waiting: it asks the core; the spool keeps the file */
            }
        }
        close(cfd);
    }
    if (have_repo)
        repo_close(repo);
    return NULL;
}

/* spool/.sock bound and listening, or -1 (the calls then ask the core). */
static int
serve_listen(const char *spool)
{
    struct sockaddr_un sa;
    int dfd = spool_sock_addr(spool, &sa);
    int fd = dfd < 0 ? -1 : socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    /* a dead prefetcher's socket: this one holds the spool's lock */
    if (fd >= 0 && (unlink(sa.sun_path) == 0 || errno == ENOENT) &&
        bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(fd, 8) == 0) {
        close(dfd);
        return fd;
    }
    log_info("prefetch: calls will not be answered here: could not listen on \"%s/.sock\": %s",
             spool, strerror(errno));
    if (fd >= 0)
        close(fd);
    if (dfd >= 0)
        close(dfd);
    return -1;
}

/* Stop taking calls: from now on they ask the core at once. */
static void
serve_unlink(const char *spool)
{
    struct sockaddr_un sa;
    int dfd = spool_sock_addr(spool, &sa);

    if (dfd >= 0) {
        unlink(sa.sun_path);
        close(dfd);
    }
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

/* A .fetching marker whose flock is held (a leftover of a dead prefetcher is removed). */
static bool
marker_held(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    bool held = false;

    if (fd < 0)
        return false;
    if (flock(fd, LOCK_SH | LOCK_NB) < 0)
        held = true;
    else
        unlink(path);
    close(fd);
    return held;
}

/* Remove spool files for segments before segno (consumed or stale: not segno itself, which
 * the latest call may be taking right now) and leftovers. */
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
        bool old =
            walname_parse(&w, name, &err) == 0 && walname_segno(&s, &w, seg_size) == 0 && s < segno;
        if (old || strstr(de->d_name, ".tmp")) {
            char *p = xasprintf("%s/%s", spool, de->d_name);
            unlink(p);
            free(p);
        }
    }
    closedir(d);
}

/* The WAL name of the latest call, from spool/.position; false if none. */
static bool
position_read(const char *spool, struct walname *out)
{
    char *path = xasprintf("%s/.position", spool);
    char name[WALNAME_MAX] = "";
    struct err err;
    FILE *f = fopen(path, "r");
    bool ok = false;

    free(path);
    if (!f)
        return false;
    if (fgets(name, sizeof(name), f)) {
        name[strcspn(name, "\n")] = '\0';
        ok = walname_parse(out, name, &err) == 0 && out->kind == WALNAME_SEGMENT;
    }
    fclose(f);
    return ok;
}

static void
prefetch_run(struct cli *cli, const char *spool, long count, unsigned long long max_bytes)
{
    struct err err;
    struct cluster_info ci;
    bool found;
    struct history hist = {NULL, 0};
    uint32_t hist_tli = 0;
    struct prefetch p;
    pthread_t threads[PREFETCH_THREADS];
    int n_threads = 0;
    struct walname last = {0, 0, 0, 0, 0};
    unsigned long last_fetched = 0;
    int64_t last_progress = clock_ms(), last_fill = 0;
    struct serve sv = {NULL, -1};
    pthread_t server;
    bool serving = false;

    prefetch_priority();
    memset(&p, 0, sizeof(p));
    pthread_mutex_init(&p.lock, NULL);
    pthread_cond_init(&p.cond, NULL);
    /*
     * Listening before the repository is open: a call made while this
     * process starts waits in the backlog instead of starting a core.
     */
    sv.lfd = serve_listen(spool);
    if (cli_open_repo(cli, &err) < 0)
        goto out;
    struct archive ar = {cli->repo, cli->oopts, cli->key};
    if (archive_cluster_get(&ar, &ci, &found, &err) < 0 || !found)
        goto out;
    if ((unsigned long long)count * ci.seg_size > max_bytes)
        count = (long)(max_bytes / ci.seg_size);
    if (count > 64)
        count = 64;
    if (count < 1)
        goto out;
    p.cli = cli;
    p.spool = spool;
    p.cluster = &ci;
    for (int i = 0; i < PREFETCH_THREADS; i++)
        if (pthread_create(&threads[n_threads], NULL, prefetch_worker, &p) == 0)
            n_threads++;
    sv.p = &p;
    if (sv.lfd >= 0 && pthread_create(&server, NULL, prefetch_serve, &sv) == 0)
        serving = true;
    while (clock_ms() - last_progress < PREFETCH_IDLE_MS) {
        struct walname cur;
        uint64_t segno;
        bool moved;

        if (!position_read(spool, &cur) || walname_segno(&segno, &cur, ci.seg_size) < 0)
            break;
        moved = memcmp(&cur, &last, sizeof(cur)) != 0;
        if (moved) {
            last = cur;
            last_progress = clock_ms();
            spool_clean(spool, segno, ci.seg_size);
        }
        if (cur.tli != hist_tli) {
            history_free(&hist);
            if (timeline_map(&ar, cur.tli, &hist, &err) < 0)
                break;
            hist_tli = cur.tli;
        }
        pthread_mutex_lock(&p.lock);
        if (p.fetched != last_fetched) {
            last_fetched = p.fetched;
            last_progress = clock_ms();
        }
        bool drained = p.qnext == p.qn;
        /*
         * Refill when PostgreSQL moved on (the window slid) or the queue ran
         * dry; at the end of the archive, look again once a second (a
         * standby's archive grows).
         */
        if (moved || (drained && (!p.missing || clock_ms() - last_fill > 1000))) {
            last_fill = clock_ms();
            /* the next segments not yet in the spool nor being fetched */
            p.qn = p.qnext = 0;
            p.missing = false;
            for (long i = 1; i <= count; i++) {
                struct walname w;
                char name[WALNAME_MAX];
                uint32_t tli = history_tli_for_segno(&hist, segno + (uint64_t)i, ci.seg_size);

                walname_from_segno(&w, tli, segno + (uint64_t)i, ci.seg_size);
                walname_format(name, &w);
                char *note = xasprintf("%s/%s.sha256", spool, name);
                char *busy = xasprintf("%s/%s.fetching", spool, name);
                if (access(note, F_OK) != 0 && !marker_held(busy) && !prefetch_failed(&p, &w))
                    p.queue[p.qn++] = w;
                free(note);
                free(busy);
            }
            pthread_cond_broadcast(&p.cond);
        }
        pthread_mutex_unlock(&p.lock);
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
out:
    if (sv.lfd >= 0)
        serve_unlink(spool); /* first: a call now asks the core at once */
    pthread_mutex_lock(&p.lock);
    p.quit = true;
    pthread_cond_broadcast(&p.cond);
    pthread_mutex_unlock(&p.lock);
    for (int i = 0; i < n_threads; i++)
        pthread_join(threads[i], NULL);
    if (serving)
        pthread_join(server, NULL);
    if (sv.lfd >= 0)
        close(sv.lfd);
    history_free(&hist);
}

/* The spool's lock, taken: its descriptor, or -1 when a prefetcher holds it. */
static int
prefetch_lock(const char *spool)
{
    char *lock = xasprintf("%s/.lock", spool);
    int lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

    free(lock);
    if (lfd >= 0 && flock(lfd, LOCK_EX | LOCK_NB) < 0) {
        close(lfd); /* one is at work */
        lfd = -1;
    }
    return lfd;
}

/*
 * Make sure a prefetcher is at work: if none holds the spool's lock, take it
 * and fork a detached one that keeps it. The caller returns at once.
 */
static void
prefetch_spawn(struct cli *cli, const char *spool, long count, unsigned long long max_bytes)
{
    int lfd = prefetch_lock(spool);

    if (lfd < 0)
        return;
    if (!cli_detach()) {
        close(lfd); /* the detached process's copy of the descriptor keeps the lock */
        return;
    }
    alarm(3600); /* never linger */
    prefetch_run(cli, spool, count, max_bytes);
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

    const char *role = getenv(FRONT_ROLE_ENV);

    err_clear(&err);
    signal(SIGCHLD, SIG_DFL);
    if (role)
        unsetenv(FRONT_ROLE_ENV);
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
    if (opts_get_int(cli.opts, "prefetch", PREFETCH_DEFAULT, 0, 64, &prefetch, &err) < 0 ||
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
    spool = spool_for(cli.opts, &w, dest, prefetch);
    bool use_spool = spool != NULL;

    if (role && strcmp(role, ROLE_PREFETCH) == 0) {
        /* started detached by the front to keep the prefetch going */
        int lfd = use_spool ? prefetch_lock(spool) : -1;

        if (lfd >= 0 && cli_load(&cli, &err) == 0) {
            alarm(3600); /* never linger */
            prefetch_run(&cli, spool, prefetch, prefetch_bytes);
        }
        if (lfd >= 0)
            close(lfd);
        rc = 0;
        goto done;
    }
    if (use_spool)
        use_spool = spool_enter(spool, fname);
    if (use_spool &&
        (spool_take(spool, fname, dest, archive_file_sha256) ||
         (spool_wait(spool, fname) && spool_take(spool, fname, dest, archive_file_sha256)))) {
        log_info("restored \"%s\" from the prefetch spool", fname);
        prefetch_spawn(&cli, spool, prefetch, prefetch_bytes);
        rc = 0;
        goto done;
    }
    if (cli_open_repo(&cli, &err) < 0)
        goto fail;
    struct archive ar = {cli.repo, cli.oopts, cli.key};
    if (archive_fetch_file(&ar, &w, NULL, dest, 0, NULL, &err) < 0) {
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
        prefetch_spawn(&cli, spool, prefetch, prefetch_bytes);
    }
    goto done;

fail:
    log_err(&err);
    if (rc != 1) {
        bool standby = standby_mode();

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
