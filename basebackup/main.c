/* SPDX-License-Identifier: MIT */
/*
 * ferry-basebackup: a base backup of a PostgreSQL cluster streamed straight
 * into the repository. Connects in replication mode, runs BASE_BACKUP and
 * pushes each tablespace's tar (and the backup manifest) through the object
 * encoder into pg/backups/<ID>/ with no local copy; then waits until the WAL
 * from the start to the stop point is in the archive, and only then writes
 * the catalogue entry pg/catalog/<ID>.json, the mark of a complete backup.
 * Exit 0 on success, 1 with one line on stderr otherwise.
 */
#include <ctype.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "archive/archive.h"
#include "archive/catalog.h"
#include "base/buf.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "cli/cli.h"
#include "format/manifest.h"
#include "source/pg.h"
#include "storage/repo_config.h"
#include "stream/object_config.h"
#include "stream/stages.h"

static const char usage[] =
    "usage: ferry-basebackup [OPTIONS]\n"
    "\n"
    "Take a base backup of a PostgreSQL cluster (12 or later) over the replication protocol\n"
    "and stream it into the repository: each tablespace's tar and the backup manifest go\n"
    "through SHA-256, compression and optional encryption to pg/backups/<ID>/, with no local\n"
    "copy. The backup relies on the WAL archive (archive_command = 'ferry-wal-push %p' into\n"
    "the same repository): after the backup it waits until every WAL segment from the start\n"
    "to the stop point is archived, then writes the catalogue entry pg/catalog/<ID>.json.\n"
    "A server that archives nothing (archive_mode = off, or no archive_command) is refused\n"
    "before the backup starts. A backup without its catalogue entry (interrupted, or WAL\n"
    "not archived in time) is incomplete and is never used for a restore.\n"
    "\n"
    "The connection follows PostgreSQL's tools: -d takes a database name or a conninfo\n"
    "string, and libpq's environment (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGSSLMODE ...) and\n"
    "~/.pgpass apply. The role needs the REPLICATION attribute and pg_hba.conf a\n"
    "\"replication\" entry. The server must belong to the repository's cluster (same system\n"
    "identifier); an empty repository records it.\n"
    "\n"
    "Progress (bytes, rate, ETA) is shown on stderr when it is a terminal. --json prints the\n"
    "catalogue entry on stdout at the end.\n"
    "\n"
    "Compression: with PostgreSQL 15 or later and zstd (the default), the server compresses\n"
    "the tars (BASE_BACKUP's COMPRESSION, at --compress-level, with --server-workers threads)\n"
    "and ferry stores its zstd frames as they come, after decoding them to compute the\n"
    "SHA-256 and size of the plaintext and to add zstd's content checksum: far fewer bytes\n"
    "cross the connection and nothing is compressed twice. A server that cannot (built\n"
    "without zstd, or without threads for the workers) is asked again without; older\n"
    "servers, gzip, --max-rate (which the server applies to the bytes it sends) and\n"
    "--server-compression off compress here. The objects are the same.\n"
    "\n"
    "Memory stays bounded: (--s3-parallel + 1) x --s3-part-size of upload buffers; the\n"
    "defaults here are 3 parallel transfers of 8M parts.\n"
    "\n"
    "Exit status: 0 the backup is complete and catalogued, 1 anything else.";

static const struct opt_def bb_opts[] = {
    {"dbname", 'd', OPT_STRING, 0, "CONNINFO", "database name or libpq connection string"},
    {"host", 'h', OPT_STRING, 0, "HOST", "server host or socket directory (else PGHOST)"},
    {"port", 'p', OPT_STRING, 0, "PORT", "server port (else PGPORT)"},
    {"username", 'U', OPT_STRING, 0, "NAME", "user name, a role with REPLICATION (else PGUSER)"},
    {"label", 'l', OPT_STRING, 0, "LABEL", "backup label (default \"ferry-basebackup\")"},
    {"checkpoint", 'c', OPT_STRING, 0, "MODE", "fast or spread (default spread)"},
    {"wal-timeout", 0, OPT_INT, 0, "SECONDS",
     "wait at most this long for the backup's WAL to be archived (default 300)"},
    {"max-rate", 'r', OPT_SIZE, 0, "RATE",
     "limit the server's transfer rate, bytes per second, 32K to 1G (default no limit)"},
    {"manifest-checksums", 0, OPT_STRING, 0, "ALGO",
     "per-file checksums of the backup manifest: CRC32C (default), SHA224, SHA256, SHA384, "
     "SHA512 or NONE"},
    {"server-compression", 0, OPT_STRING, 0, "MODE",
     "auto (default): the server compresses when it can; off: compress here"},
    {"server-workers", 0, OPT_INT, 0, "N",
     "zstd threads the server compresses with beside the walsender, 0 to 16 (default 0: the "
     "walsender compresses)"},
    {"json", 0, OPT_BOOL, 0, NULL, "print the catalogue entry as JSON on stdout at the end"},
    {"progress", 0, OPT_BOOL, 0, NULL,
     "show progress on stderr (default: when stderr is a terminal)"},
    OPT_END,
};

static volatile sig_atomic_t got_signal;

static void
on_signal(int sig)
{
    got_signal = sig;
}

/* SIGINT, SIGTERM, SIGHUP end the backup cleanly: uploads aborted, no catalogue entry. */
static void
catch_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

static int
check_signal(struct err *err)
{
    int sig = got_signal;

    if (!sig)
        return 0;
    return err_set(err, ERR_IO, "interrupted by %s: the backup is incomplete",
                   sig == SIGINT    ? "SIGINT"
                   : sig == SIGTERM ? "SIGTERM"
                                    : "SIGHUP");
}

/*
 * S3 parts in flight cost (parallel + 1) x part size: basebackup's defaults
 * keep that at 32 MiB (whole RSS about 55 MiB even for incompressible data).
 * Past 2000 parts (16 GB stored per tar) the storage layer doubles the part
 * size to stay within S3's 10,000 parts, and memory grows with it.
 */
#define BB_PART_SIZE (8ULL << 20)
#define BB_PARALLEL 3

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
human(char *out, size_t n, double bytes)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;

    while (bytes >= 1024 && u < 4) {
        bytes /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(out, n, "%.0f %s", bytes, units[u]);
    else
        snprintf(out, n, "%.1f %s", bytes, units[u]);
}

struct progress {
    bool on;
    bool shown; /* a line is on the terminal */
    double start;
    double last;
    uint64_t done;
    uint64_t total; /* the server's estimate; 0 unknown */
};

/* One line, rewritten in place. */
static void
progress_show(struct progress *p, const char *what, bool force)
{
    char done[32], total[32], rate[32], eta[32] = "";
    double t = now_s(), el = t - p->start;

    if (!p->on || (!force && t - p->last < 0.5))
        return;
    p->last = t;
    human(done, sizeof(done), (double)p->done);
    human(rate, sizeof(rate), el > 0 ? (double)p->done / el : 0);
    if (p->total) {
        uint64_t total_b = p->total > p->done ? p->total : p->done;
        int pct = (int)((double)p->done * 100.0 / (double)total_b);

        human(total, sizeof(total), (double)total_b);
        if (p->done > 0 && el > 1) {
            double left = (double)(total_b - p->done) / ((double)p->done / el);
            snprintf(eta, sizeof(eta), ", ETA %d:%02d", (int)left / 60, (int)left % 60);
        }
        fprintf(stderr, "\r%s: %s of ~%s (%d%%), %s/s%s\033[K", what, done, total, pct, rate, eta);
    } else {
        fprintf(stderr, "\r%s: %s, %s/s\033[K", what, done, rate);
    }
    p->shown = true;
}

static void
progress_msg(struct progress *p, const char *msg)
{
    if (!p->on)
        return;
    fprintf(stderr, "\r%s\033[K", msg);
    p->shown = true;
}

static void
progress_end(struct progress *p)
{
    if (p->on && p->shown)
        fputc('\n', stderr);
    p->shown = false;
}

/*
 * The receiving thread (libpq, and the SHA-256 of the plaintext) and the
 * encoding (zstd, encryption, upload) run side by side: libpq's COPY buffers
 * are handed, without a copy, to an encoder thread, one per stored part,
 * through a bounded queue (at most BB_QUEUE_BYTES of received data waiting,
 * beside the upload buffers); the encoder pushes them into the part's chain
 * and frees them.
 */
#define BB_QUEUE_BYTES (4u << 20)
#define BB_QUEUE_MAX 512 /* entries (the server sends about 32 KiB a message) */

struct qent {
    void *mem; /* freed after the write: PQfreemem, or free when pq is false */
    const void *buf;
    size_t len;
    bool pq;
};

struct encoder {
    pthread_t thread;
    bool started;
    pthread_mutex_t lock;
    pthread_cond_t cv;
    struct qent q[BB_QUEUE_MAX];
    uint64_t produced; /* entries handed over */
    uint64_t consumed; /* entries written into the chain and freed */
    size_t queued;     /* bytes handed over and not yet written */
    bool end;          /* the stream is complete: finish the chain */
    bool stop;         /* give up (the receiving side failed) */
    bool failed;       /* the chain failed: err holds why */
    int rc;            /* the thread's result once joined */
    struct err err;
    struct sink *chain; /* the open part's encoder chain (the thread's while it runs) */
};

struct backup {
    struct cli *cli;
    struct archive *ar;
    struct catalog_entry *e;
    struct progress prog;
    struct encoder enc;
    EVP_MD_CTX *md;        /* SHA-256 of the open part, on the receiving thread */
    unsigned char sha[32]; /* its value, set before the encoder finishes the part */
    struct object_info info;
    bool part_zstd;                   /* the open part comes compressed by the server */
    struct zstd_adopt_result adopted; /* ... and the encoder's plaintext size and SHA-256 */
    uint64_t done_before;             /* plaintext bytes of the parts before it */
    size_t part;                      /* index in e->parts */
    bool standby; /* the server is a standby: its WAL is archived by the primary */
};

static void
qent_free(struct qent *q)
{
    if (q->pq)
        PQfreemem(q->mem);
    else
        free(q->mem);
    q->mem = NULL;
}

static void *
encoder_main(void *arg)
{
    struct encoder *en = arg;
    struct err err;
    int rc = -1;

    err_clear(&err);
    for (;;) {
        struct qent q;

        pthread_mutex_lock(&en->lock);
        while (en->consumed == en->produced && !en->end && !en->stop)
            pthread_cond_wait(&en->cv, &en->lock);
        if (en->stop) {
            pthread_mutex_unlock(&en->lock);
            err_set(&err, ERR_INTERNAL, "stopped");
            break;
        }
        if (en->consumed == en->produced) { /* the end: everything written */
            pthread_mutex_unlock(&en->lock);
            rc = sink_finish(en->chain, &err);
            break;
        }
        q = en->q[en->consumed % BB_QUEUE_MAX];
        pthread_mutex_unlock(&en->lock);
        if (sink_write(en->chain, q.buf, q.len, &err) < 0)
            break;
        qent_free(&q);
        pthread_mutex_lock(&en->lock);
        en->consumed++;
        en->queued -= q.len;
        pthread_cond_broadcast(&en->cv);
        pthread_mutex_unlock(&en->lock);
    }
    pthread_mutex_lock(&en->lock);
    if (rc < 0) {
        en->err = err;
        en->failed = true;
    }
    en->rc = rc;
    pthread_cond_broadcast(&en->cv);
    pthread_mutex_unlock(&en->lock);
    return NULL;
}

/* Start the encoder thread on chain (owned from now on); signals stay with the main thread. */
static int
encoder_start(struct encoder *en, struct sink *chain, struct err *err)
{
    sigset_t all, old;
    int r;

    en->chain = chain;
    en->produced = en->consumed = 0;
    en->queued = 0;
    en->end = en->stop = en->failed = false;
    en->rc = -1;
    err_clear(&en->err);
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    r = pthread_create(&en->thread, NULL, encoder_main, en);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r != 0)
        return err_set(err, ERR_INTERNAL, "could not start a thread");
    en->started = true;
    return 0;
}

/*
 * Hand an entry over (its memory is the encoder's from now on, also when
 * this fails), waiting for room; -1 with the encoder's error when it failed.
 */
static int
encoder_put(struct encoder *en, struct qent q, struct err *err)
{
    int rc = 0;

    pthread_mutex_lock(&en->lock);
    while ((en->produced - en->consumed >= BB_QUEUE_MAX ||
            (en->queued >= BB_QUEUE_BYTES && en->produced != en->consumed)) &&
           !en->failed)
        pthread_cond_wait(&en->cv, &en->lock);
    if (en->failed) {
        *err = en->err;
        rc = -1;
    } else {
        en->q[en->produced % BB_QUEUE_MAX] = q;
        en->produced++;
        en->queued += q.len;
        pthread_cond_broadcast(&en->cv);
    }
    pthread_mutex_unlock(&en->lock);
    if (rc < 0)
        qent_free(&q);
    return rc;
}

/*
 * End the stream: with ok, the thread finishes the chain once everything is
 * written (the result is returned); without, the thread is told to stop.
 * Either way the thread is joined, entries left are freed, and the chain is
 * the caller's again.
 */
static int
encoder_end(struct encoder *en, bool ok, struct err *err)
{
    if (!en->started)
        return ok ? 0 : -1;
    pthread_mutex_lock(&en->lock);
    if (ok)
        en->end = true;
    else
        en->stop = true;
    pthread_cond_broadcast(&en->cv);
    pthread_mutex_unlock(&en->lock);
    pthread_join(en->thread, NULL);
    en->started = false;
    for (; en->consumed < en->produced; en->consumed++)
        qent_free(&en->q[en->consumed % BB_QUEUE_MAX]);
    if (!ok)
        return -1;
    if (en->rc < 0) {
        *err = en->err;
        return -1;
    }
    return 0;
}

/* Names the server gives must be what catalog.h promises: they become repository keys. */
static bool
part_name_ok(const char *name, enum pg_stream_kind kind, uint32_t oid)
{
    char want[32];

    if (kind == PG_STREAM_MANIFEST)
        return strcmp(name, "backup_manifest") == 0;
    if (oid == 0)
        return strcmp(name, "base.tar") == 0;
    snprintf(want, sizeof(want), "%" PRIu32 ".tar", oid);
    return strcmp(name, want) == 0;
}

static int
cb_started(void *arg, const struct pg_tablespace *ts, size_t n_ts, uint64_t start_lsn,
           uint32_t start_tli, struct err *err)
{
    struct backup *b = arg;
    char lsn[18];

    for (size_t i = 0; i < n_ts; i++)
        b->prog.total += ts[i].size_estimate;
    walname_lsn_format(lsn, start_lsn);
    log_info("backup started at %s on timeline %" PRIu32 " (%zu tablespace%s)", lsn, start_tli,
             n_ts, n_ts == 1 ? "" : "s");
    b->prog.start = now_s();
    return 0;
}

static int
cb_begin(void *arg, enum pg_stream_kind kind, const char *name, uint32_t oid, const char *location,
         struct err *err)
{
    struct backup *b = arg;
    struct catalog_part *p;

    if (!part_name_ok(name, kind, oid))
        return err_set(err, ERR_REMOTE, "the server sent an archive named \"%.100s\"", name);
    for (size_t i = 0; i < b->e->n_parts; i++)
        if (strcmp(b->e->parts[i].name, name) == 0)
            return err_set(err, ERR_REMOTE, "the server sent \"%s\" twice", name);
    p = catalog_add_part(b->e, name, oid, location);
    b->part = b->e->n_parts - 1;
    memset(&b->info, 0, sizeof(b->info));
    log_info("storing \"%s\"", p->key);
    b->done_before = b->prog.done;
    b->part_zstd = kind == PG_STREAM_ARCHIVE_ZSTD;
    if (b->part_zstd) {
        /* the encoder decodes the server's frame for the SHA-256; the frame is stored */
        struct sink *obj = object_encode_sink_new_precompressed(
            repo_put_sink_new(b->ar->repo, p->key, REPO_PUT_IF_ABSENT), &b->ar->oopts, &b->info,
            b->adopted.sha256, &b->adopted.plain_size);
        return encoder_start(&b->enc, zstd_adopt_sink_new(obj, &b->adopted), err);
    }
    if (EVP_DigestInit_ex(b->md, EVP_sha256(), NULL) != 1)
        return err_set(err, ERR_INTERNAL, "could not start sha-256");
    return encoder_start(
        &b->enc,
        object_encode_sink_new_prehashed(repo_put_sink_new(b->ar->repo, p->key, REPO_PUT_IF_ABSENT),
                                         &b->ar->oopts, &b->info, b->sha),
        err);
}

static int
cb_tick(void *arg, struct err *err)
{
    struct backup *b = arg;

    if (b->prog.done)
        progress_show(&b->prog, "ferry-basebackup", false);
    return check_signal(err);
}

static int
stream_put(struct backup *b, struct qent q, struct err *err)
{
    size_t len = q.len;

    if (check_signal(err) < 0) {
        qent_free(&q);
        return -1;
    }
    if (!b->part_zstd && EVP_DigestUpdate(b->md, q.buf, q.len) != 1) {
        qent_free(&q);
        return err_set(err, ERR_INTERNAL, "sha-256 update failed");
    }
    if (encoder_put(&b->enc, q, err) < 0) {
        err_prefix(err, "could not store \"%s\"", b->e->parts[b->part].key);
        return -1;
    }
    if (b->part_zstd)
        b->prog.done = b->done_before + __atomic_load_n(&b->adopted.plain_size, __ATOMIC_RELAXED);
    else
        b->prog.done += len;
    progress_show(&b->prog, "ferry-basebackup", false);
    return 0;
}

/* What pg.c makes itself (the end of a 12-14 tar): copied. */
static int
cb_data(void *arg, const void *buf, size_t len, struct err *err)
{
    struct qent q = {xmalloc(len ? len : 1), NULL, len, false};

    memcpy(q.mem, buf, len);
    q.buf = q.mem;
    return stream_put(arg, q, err);
}

/* The server's data: libpq's buffer goes to the encoder as it is. */
static int
cb_data_owned(void *arg, void *mem, const void *buf, size_t len, struct err *err)
{
    struct qent q = {mem, buf, len, true};

    return stream_put(arg, q, err);
}

static int
cb_end(void *arg, struct err *err)
{
    struct backup *b = arg;
    struct catalog_part *p = &b->e->parts[b->part];
    unsigned int n = 0;
    int rc;

    if (!b->part_zstd && EVP_DigestFinal_ex(b->md, b->sha, &n) != 1) {
        encoder_end(&b->enc, false, err);
        rc = err_set(err, ERR_INTERNAL, "sha-256 final failed");
    } else {
        rc = encoder_end(&b->enc, true, err);
    }

    sink_free(b->enc.chain);
    b->enc.chain = NULL;
    if (rc < 0) {
        err_prefix(err, "could not store \"%s\"", p->key);
        return -1;
    }
    p->size = b->info.plain_size;
    p->stored_size = b->info.stored_size;
    b->prog.done = b->done_before + p->size;
    object_sha256_hex(p->sha256, &b->info);
    log_info("stored \"%s\": %" PRIu64 " bytes, %" PRIu64 " stored", p->key, p->size,
             p->stored_size);
    return 0;
}

/*
 * Wait until every segment of [first, last] on tli is in the repository,
 * polling with backoff; ERR_TIMEOUT naming the first missing one.
 */
static int
wait_wal(struct backup *b, uint32_t tli, uint64_t first, uint64_t last, long timeout_s,
         struct err *err)
{
    double deadline = now_s() + (double)timeout_s;
    double delay = 0.1;
    uint64_t seg = first;
    struct buf key = BUF_INIT;
    int rc = -1;

    while (seg <= last) {
        struct walname w;
        struct repo_stat st;
        char name[WALNAME_MAX];

        walname_from_segno(&w, tli, seg, b->e->seg_size);
        walname_format(name, &w);
        buf_reset(&key);
        archive_wal_key(&key, &w);
        if (repo_stat(b->ar->repo, buf_str(&key), &st, err) == 0) {
            seg++;
            delay = 0.1;
            continue;
        }
        if (err->kind != ERR_NOT_FOUND) {
            err_prefix(err, "could not check the archive for WAL segment \"%s\"", name);
            goto out;
        }
        if (check_signal(err) < 0)
            goto out;
        if (now_s() >= deadline) {
            err_set(err, ERR_TIMEOUT,
                    "WAL segment %s was not archived within %ld s: check archive_command "
                    "(ferry-wal-push) and pg_stat_archiver%s",
                    name, timeout_s,
                    b->standby ? " on the primary (a backup from a standby ends in a segment the "
                                 "primary archives when it is full or switched: set "
                                 "archive_timeout there)"
                               : "");
            goto out;
        }
        if (b->prog.on) {
            char msg[128];

            snprintf(msg, sizeof(msg), "ferry-basebackup: waiting for WAL segment %s", name);
            progress_msg(&b->prog, msg);
        }
        double left = deadline - now_s();
        double d = delay < left ? delay : left;
        if (d > 0) {
            struct timespec ts = {(time_t)d, (long)((d - (double)(time_t)d) * 1e9)};
            nanosleep(&ts, NULL);
        }
        delay = delay * 2 < 1 ? delay * 2 : 1; /* a HEAD a second is cheap */
    }
    rc = 0;
out:
    buf_free(&key);
    return rc;
}

/*
 * The backup is consistent only with the WAL from its start to its stop in
 * the repository: refuse at once a server that archives nothing, instead of
 * streaming the whole backup and then waiting --wal-timeout for WAL that
 * never comes (pgBackRest checks the same before a backup). A standby's own
 * settings say nothing of its primary's, which archives what it needs;
 * before PostgreSQL 14 a standby cannot be told from a primary here, so
 * archive_mode = off is only a notice there.
 */
static int
check_archiving(PGconn *conn, const struct pg_system *sys, struct err *err)
{
    char mode[32], command[64], library[64] = "";

    if (sys->standby)
        return 0;
    if (pg_show(conn, "archive_mode", mode, sizeof(mode), err) < 0)
        return -1;
    if (strcmp(mode, "off") == 0) {
        if (sys->version_num < 140000) {
            log_notice("archive_mode is off on the server: unless it is a standby whose "
                       "primary archives into the repository, the backup will wait "
                       "--wal-timeout for WAL that never comes");
            return 0;
        }
        return err_set(err, ERR_CONFIG,
                       "the server does not archive its WAL (archive_mode = off), and a backup "
                       "needs the WAL from its start to its stop in the repository: set "
                       "archive_mode = on (restart) and archive_command = 'ferry-wal-push %%p'");
    }
    /* only whether they are empty matters: a longer value is cut */
    if (pg_show(conn, "archive_command", command, sizeof(command), err) < 0 ||
        (sys->version_num >= 150000 &&
         pg_show(conn, "archive_library", library, sizeof(library), err) < 0))
        return -1;
    if (!command[0] && !library[0])
        return err_set(err, ERR_CONFIG,
                       "the server archives nothing (archive_mode = %s, archive_command is "
                       "empty), and a backup needs the WAL from its start to its stop in the "
                       "repository: set archive_command = 'ferry-wal-push %%p' (reload)",
                       mode);
    return 0;
}

/* True if anything is stored under the backup's prefix already (an ID taken in this second). */
static int
has_any(const struct repo_entry *ent, void *arg)
{
    *(bool *)arg = true;
    return 1;
}

static int
id_taken(struct repo *repo, const char *id, bool *taken, struct err *err)
{
    char *prefix = xasprintf("%s%s/", BACKUP_PREFIX, id);
    char *cat = xasprintf("%s%s.json", CATALOG_PREFIX, id);
    struct repo_stat st;
    int rc = -1;

    *taken = false;
    if (repo_list(repo, prefix, NULL, has_any, taken, err) < 0)
        goto out;
    if (!*taken) {
        if (repo_stat(repo, cat, &st, err) == 0)
            *taken = true;
        else if (err->kind != ERR_NOT_FOUND)
            goto out;
    }
    rc = 0;
out:
    free(prefix);
    free(cat);
    return rc;
}

int
main(int argc, char **argv)
{
    struct cli cli;
    struct err err;
    PGconn *conn = NULL;
    struct pg_system sys;
    struct catalog_entry e;
    struct backup b;
    struct pg_backup_result res;
    long wal_timeout;
    bool fast, json;
    char *text = NULL;
    int rc = 1;

    err_clear(&err);
    memset(&e, 0, sizeof(e));
    memset(&b, 0, sizeof(b));
    pthread_mutex_init(&b.enc.lock, NULL);
    pthread_cond_init(&b.enc.cv, NULL);
    b.md = EVP_MD_CTX_new();
    if (!b.md)
        abort(); /* out of memory */
    signal(SIGPIPE, SIG_IGN);
    if (cli_init(&cli, "ferry-basebackup", usage, bb_opts, argc, argv, &err) < 0)
        goto out;
    if (cli.done) {
        rc = 0;
        goto out;
    }
    if (cli.n_args != 0) {
        err_set(&err, ERR_USAGE, "unexpected argument \"%s\"", cli.args[0]);
        goto out;
    }
    const char *cp = opts_get(cli.opts, "checkpoint");
    if (!cp || strcmp(cp, "spread") == 0) {
        fast = false;
    } else if (strcmp(cp, "fast") == 0) {
        fast = true;
    } else {
        err_set(&err, ERR_USAGE, "invalid --checkpoint \"%s\": use fast or spread", cp);
        goto out;
    }
    if (opts_get_int(cli.opts, "wal-timeout", 300, 0, 7 * 24 * 3600, &wal_timeout, &err) < 0)
        goto out;
    const char *label = opts_get(cli.opts, "label");
    if (!label)
        label = "ferry-basebackup";
    if (strlen(label) > 1023) {
        err_set(&err, ERR_USAGE, "--label is longer than 1023 bytes");
        goto out;
    }
    for (const char *s = label; *s; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f) {
            err_set(&err, ERR_USAGE, "--label must not contain control characters");
            goto out;
        }
    }
    unsigned long long max_rate;
    if (opts_get_size(cli.opts, "max-rate", 0, &max_rate, &err) < 0)
        goto out;
    if (max_rate && (max_rate < (32ULL << 10) || max_rate > (1ULL << 30))) {
        err_set(&err, ERR_USAGE, "--max-rate must be between 32K and 1G bytes per second");
        goto out;
    }
    const char *sums_opt = opts_get(cli.opts, "manifest-checksums");
    char sums[16] = "CRC32C";
    if (sums_opt) {
        enum manifest_algo algo;
        size_t i;

        for (i = 0; sums_opt[i] && i + 1 < sizeof(sums); i++)
            sums[i] = (char)toupper((unsigned char)sums_opt[i]);
        sums[i] = '\0';
        if (sums_opt[i] || manifest_algo_parse(sums, &algo) < 0) {
            err_set(&err, ERR_USAGE,
                    "invalid --manifest-checksums \"%.32s\": use CRC32C, SHA224, SHA256, SHA384, "
                    "SHA512 or NONE",
                    sums_opt);
            goto out;
        }
    }
    const char *sc = opts_get(cli.opts, "server-compression");
    bool server_compress;
    if (!sc || strcmp(sc, "auto") == 0) {
        server_compress = true;
    } else if (strcmp(sc, "off") == 0) {
        server_compress = false;
    } else {
        err_set(&err, ERR_USAGE, "invalid --server-compression \"%.32s\": use auto or off", sc);
        goto out;
    }
    long server_workers;
    if (opts_get_int(cli.opts, "server-workers", 0, 0, 16, &server_workers, &err) < 0)
        goto out;
    json = opts_get_bool(cli.opts, "json", false);
    b.prog.on = opts_get_bool(cli.opts, "progress", isatty(STDERR_FILENO) == 1);
    if (!opts_get(cli.opts, "repo")) {
        err_set(&err, ERR_USAGE, "no repository given: use --repo URL or FERRY_REPO");
        goto out;
    }
    /* load the repository settings here to give basebackup its own part size default */
    if (repo_opts_load(&cli.ropts, cli.opts, &err) < 0 ||
        object_opts_load(&cli.oopts, &cli.key, cli.opts, &err) < 0)
        goto out;
    cli.loaded = true;
    if (!cli.ropts.s3_part_size)
        cli.ropts.s3_part_size = BB_PART_SIZE;
    if (!cli.ropts.parallel)
        cli.ropts.parallel = BB_PARALLEL;

    struct pg_conn_opts co = {
        opts_get(cli.opts, "dbname"),   opts_get(cli.opts, "host"), opts_get(cli.opts, "port"),
        opts_get(cli.opts, "username"), "ferry-basebackup",
    };
    if (pg_repl_connect(&conn, &co, &err) < 0 || pg_identify(conn, &sys, &err) < 0)
        goto out;
    if (sys.version_num < 120000) {
        err_set(&err, ERR_USAGE,
                "the server runs PostgreSQL %d.%d: ferry-basebackup needs 12 or later",
                sys.version_num / 10000, sys.version_num % 10000 / 100);
        goto out;
    }
    log_info("server: PostgreSQL %d, system identifier %" PRIu64 ", timeline %" PRIu32,
             sys.version_num, sys.sysid, sys.timeline);

    if (cli_open_repo(&cli, &err) < 0)
        goto out;
    struct archive ar = {cli.repo, cli.oopts, cli.key};
    struct cluster_info ci = {sys.sysid, sys.version_num / 10000, sys.seg_size, sys.blcksz};
    if (archive_cluster_check(&ar, &ci, "the server", &err) < 0)
        goto out;
    if (check_archiving(conn, &sys, &err) < 0)
        goto out;

    /* the ID is the start time; one backup per second and repository */
    for (int tries = 0;; tries++) {
        bool taken;

        e.start_time = time(NULL);
        catalog_id(e.id, e.start_time);
        if (id_taken(cli.repo, e.id, &taken, &err) < 0)
            goto out;
        if (!taken)
            break;
        if (tries == 3) {
            err_set(&err, ERR_EXISTS, "backup \"%s\" exists already in the repository", e.id);
            goto out;
        }
        sleep(1);
    }
    e.label = xstrdup(label);
    e.sysid = sys.sysid;
    e.pg_version_num = sys.version_num;
    e.seg_size = sys.seg_size;

    b.cli = &cli;
    b.standby = sys.standby;
    b.ar = &ar;
    b.e = &e;
    b.prog.start = now_s();
    progress_msg(&b.prog, fast ? "ferry-basebackup: waiting for a fast checkpoint"
                               : "ferry-basebackup: waiting for a spread checkpoint "
                                 "(--checkpoint fast to start at once)");
    catch_signals(); /* from here on, stop cleanly: abort the uploads */
    struct pg_backup_opts bo = {.label = label,
                                .fast_checkpoint = fast,
                                .manifest = true,
                                .max_rate = (uint32_t)(max_rate >> 10),
                                .manifest_checksums = sums};
    struct pg_backup_cb cb = {cb_started, cb_begin, cb_data, cb_end, cb_tick, &b, cb_data_owned};
    /*
     * The server's MAX_RATE counts what it sends: compressed, it would read
     * many times the rate from disk, and --max-rate is there to spare the disk.
     */
    bo.server_zstd = server_compress && sys.version_num >= 150000 &&
                     cli.oopts.compress == OBJECT_COMPRESS_ZSTD && !max_rate;
    bo.server_zstd_level = cli.oopts.level ? cli.oopts.level : STREAM_ZSTD_LEVEL_DEFAULT;
    bo.server_zstd_workers = (int)server_workers;
    for (;;) {
        if (bo.server_zstd)
            log_info("the server compresses: zstd level %d, %d worker thread%s",
                     bo.server_zstd_level, bo.server_zstd_workers,
                     bo.server_zstd_workers == 1 ? "" : "s");
        if (pg_base_backup(conn, sys.version_num, &bo, &cb, &res, &err) == 0)
            break;
        /*
         * A server built without zstd, or whose libzstd has no threads, fails
         * before anything started (nothing was stored): ask again without.
         */
        if (!bo.server_zstd || res.began || err.kind != ERR_REMOTE || check_signal(&err) < 0)
            goto out;
        /* 22023, invalid parameter value: the worker count (a libzstd without threads) */
        bool workers = bo.server_zstd_workers && strcmp(res.sqlstate, "22023") == 0;
        log_notice("the server cannot compress as asked (%s): %s", err.msg,
                   workers ? "asking again without worker threads" : "compressing here instead");
        if (workers)
            bo.server_zstd_workers = 0;
        else
            bo.server_zstd = false;
        err_clear(&err);
    }
    e.stop_time = time(NULL);
    progress_show(&b.prog, "ferry-basebackup", true);
    PQfinish(conn);
    conn = NULL;

    if (res.start_tli != res.stop_tli) {
        err_set(&err, ERR_REMOTE,
                "the timeline changed during the backup (%" PRIu32 " to %" PRIu32
                "): take it again",
                res.start_tli, res.stop_tli);
        goto out;
    }
    e.timeline = res.start_tli;
    e.start_lsn = res.start_lsn;
    e.stop_lsn = res.stop_lsn;
    uint64_t first = res.start_lsn / e.seg_size;
    /* the segment holding the last byte before the stop point, as PostgreSQL waits for */
    uint64_t last = res.stop_lsn > 0 ? (res.stop_lsn - 1) / e.seg_size : first;
    if (last < first)
        last = first;
    struct walname w;
    walname_from_segno(&w, e.timeline, first, e.seg_size);
    walname_format(e.start_wal, &w);
    walname_from_segno(&w, e.timeline, last, e.seg_size);
    walname_format(e.stop_wal, &w);

    if (wait_wal(&b, e.timeline, first, last, wal_timeout, &err) < 0)
        goto out;
    progress_end(&b.prog);
    if (catalog_write(&ar, &e, &err) < 0)
        goto out;
    text = catalog_to_json(&e);
    if (json) {
        fputs(text, stdout);
        if (!*text || text[strlen(text) - 1] != '\n')
            fputc('\n', stdout);
        if (fflush(stdout) != 0) {
            err_sys(&err, ERR_IO, "could not write to stdout");
            goto out;
        }
    }
    uint64_t total = 0, stored = 0;
    for (size_t i = 0; i < e.n_parts; i++) {
        total += e.parts[i].size;
        stored += e.parts[i].stored_size;
    }
    log_info("backup %s complete: %" PRIu64 " bytes, %" PRIu64 " stored, WAL %s to %s", e.id, total,
             stored, e.start_wal, e.stop_wal);
    rc = 0;
out:
    progress_end(&b.prog);
    encoder_end(&b.enc, false, &err);
    sink_free(b.enc.chain); /* an unfinished upload is aborted */
    pthread_cond_destroy(&b.enc.cv);
    pthread_mutex_destroy(&b.enc.lock);
    EVP_MD_CTX_free(b.md);
    PQfinish(conn);
    if (rc != 0)
        log_err(&err);
    free(text);
    catalog_entry_free(&e);
    cli_free(&cli);
    return rc;
}
