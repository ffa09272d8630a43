/* SPDX-License-Identifier: MIT */
/* Download, unpack and verify the tar parts of a base backup: see extract.h. */
#include "extract.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/hex.h"
#include "base/xmalloc.h"
#include "format/tar.h"
#include "stream/stages.h"
#include "dwrite.h"

#define BLOCK_SIZE (512u << 10)
#define N_BLOCKS 8 /* 4 MiB of plaintext in flight per part */
#define SYNC_MIN (256u << 10)
#define DIRECT_MIN (256u << 10) /* smaller files are written through the page cache */
#define HELD_MAX (1u << 20)     /* tablespace_map; pg_control is 8 KiB */

struct run {
    const struct extract_opts *o;
    struct extract_held *held;
    atomic_int cancel;
    pthread_mutex_t lock;
    bool has_err;
    struct err first; /* the first failure of any thread */
    struct job *jobs;
    size_t n_jobs;
    atomic_bool direct_refused; /* the filesystem refused O_DIRECT once: stop asking */
};

/*
 * The decoded plaintext of one part goes from the download thread to the
 * extraction thread (libarchive reads the blocks in place, no pipe, no copy)
 * through a ring of N_BLOCKS blocks: block k is refilled only when the reader
 * is past it. One lock and one condition variable per part; a block is
 * 512 KiB, so they are taken rarely.
 */
struct block {
    unsigned char *data;
    size_t len;
};

struct queue {
    pthread_mutex_t lock;
    pthread_cond_t cv; /* broadcast on every change: published, released, end, cancel */
    struct block blocks[N_BLOCKS];
    uint64_t produced;  /* blocks published */
    uint64_t extracted; /* blocks the extraction released */
    bool end;           /* nothing more will be published */
};

struct job {
    struct run *run;
    struct extract_part *part;
    struct queue q;
    pthread_t dl, ex;
    bool dl_started, ex_started;
    int dl_rc, ex_rc;
    struct object_info info;
    bool holding; /* the extraction holds block q.extracted (libarchive reads it) */
    /* the directory of the last entry, kept open */
    char parent_path[TAR_PATH_MAX];
    int parent_fd;
    struct dwriter *dw; /* direct writes (NULL with --direct-io off) */
};

static bool
cancelled(struct run *r)
{
    return atomic_load(&r->cancel) != 0;
}

/* Wake every thread waiting on a queue (they check the cancel flag). */
static void
wake_all(struct run *r)
{
    for (size_t i = 0; i < r->n_jobs; i++) {
        pthread_mutex_lock(&r->jobs[i].q.lock);
        pthread_cond_broadcast(&r->jobs[i].q.cv);
        pthread_mutex_unlock(&r->jobs[i].q.lock);
    }
}

static void
record(struct run *r, struct job *j, struct err *err)
{
    pthread_mutex_lock(&r->lock);
    if (!r->has_err) {
        r->first = *err;
        err_prefix(&r->first, "\"%s\"", j->part->name);
        r->has_err = true;
    }
    atomic_store(&r->cancel, 1);
    pthread_mutex_unlock(&r->lock);
    wake_all(r);
}

static void
hex32(char out[65], const unsigned char sha[32])
{
    hex_encode(out, sha, 32);
}

/* ---- the queue ---------------------------------------------------------------------------- */

/*
 * A reader's next block (the one at *pos) into *out, waiting for it; *end at
 * the end of the stream. -1 when the restore is cancelled.
 */
static int
q_next(struct job *j, const uint64_t *pos, struct block *out, bool *end)
{
    struct queue *q = &j->q;
    int rc = 0;

    *end = false;
    pthread_mutex_lock(&q->lock);
    while (*pos == q->produced && !q->end && !cancelled(j->run))
        pthread_cond_wait(&q->cv, &q->lock);
    if (cancelled(j->run))
        rc = -1;
    else if (*pos == q->produced)
        *end = true;
    else
        *out = q->blocks[*pos % N_BLOCKS];
    pthread_mutex_unlock(&q->lock);
    return rc;
}

static void
q_release(struct job *j, uint64_t *pos)
{
    pthread_mutex_lock(&j->q.lock);
    (*pos)++;
    pthread_cond_broadcast(&j->q.cv);
    pthread_mutex_unlock(&j->q.lock);
}

static void
q_end(struct job *j)
{
    pthread_mutex_lock(&j->q.lock);
    j->q.end = true;
    pthread_cond_broadcast(&j->q.cv);
    pthread_mutex_unlock(&j->q.lock);
}

/* The download's last stage: plaintext into the ring, a block at a time. */
struct queue_sink {
    struct sink base;
    struct job *j;
    unsigned char *cur; /* the block being filled, or NULL */
    size_t fill;
};

static int
qs_publish(struct queue_sink *qs)
{
    struct queue *q = &qs->j->q;

    pthread_mutex_lock(&q->lock);
    q->blocks[q->produced % N_BLOCKS].len = qs->fill;
    q->produced++;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->lock);
    qs->cur = NULL;
    qs->fill = 0;
    return 0;
}

static int
qs_write(struct sink *s, const void *buf, size_t len, struct err *err)
{
    struct queue_sink *qs = (struct queue_sink *)s;
    struct queue *q = &qs->j->q;
    const unsigned char *p = buf;

    while (len) {
        size_t n;

        if (!qs->cur) {
            bool stop;

            pthread_mutex_lock(&q->lock);
            while (q->produced - q->extracted >= N_BLOCKS && !cancelled(qs->j->run))
                pthread_cond_wait(&q->cv, &q->lock);
            stop = cancelled(qs->j->run);
            if (!stop)
                qs->cur = q->blocks[q->produced % N_BLOCKS].data;
            pthread_mutex_unlock(&q->lock);
            if (stop)
                return err_set(err, ERR_INTERNAL, "cancelled");
        }
        n = BLOCK_SIZE - qs->fill < len ? BLOCK_SIZE - qs->fill : len;
        memcpy(qs->cur + qs->fill, p, n);
        qs->fill += n;
        p += n;
        len -= n;
        if (qs->fill == BLOCK_SIZE)
            qs_publish(qs);
    }
    return 0;
}

static int
qs_finish(struct sink *s, struct err *err)
{
    struct queue_sink *qs = (struct queue_sink *)s;

    if (qs->cur && qs->fill)
        qs_publish(qs);
    return 0;
}

static void
qs_free(struct sink *s)
{
    free(s);
}

static const struct sink_ops queue_sink_ops = {"restore-queue", qs_write, qs_finish, qs_free};

static struct sink *
queue_sink_new(struct job *j)
{
    struct queue_sink *qs = xcalloc(1, sizeof(*qs));

    sink_init(&qs->base, &queue_sink_ops, NULL);
    qs->j = j;
    return &qs->base;
}

/* ---- download thread ---------------------------------------------------------------------- */

/*
 * The plaintext is checked by the codec where there is one (zstd's content
 * checksum, gzip's CRC-32, the GCM tag of every chunk) instead of a second
 * SHA-256 pass, as wal-fetch does; a raw unencrypted object is hashed. Every
 * file is checked against the manifest besides, and the object's stored size
 * and SHA-256 against the catalogue. ferry-verify hashes every object.
 */
static void *
dl_main(void *arg)
{
    struct job *j = arg;
    struct extract_part *p = j->part;
    struct err err;
    struct sink *chain;
    char got[65];
    int rc = -1;

    err_clear(&err);
    chain = object_decode_sink_new_codec_checked(queue_sink_new(j), j->run->o->key, &j->info);
    if (repo_get(p->repo, p->key, 0, 0, chain, &err) < 0 || sink_finish(chain, &err) < 0)
        goto out;
    hex32(got, j->info.sha256);
    if (j->info.plain_size != p->size || strcmp(got, p->sha256) != 0) {
        err_set(&err, ERR_CORRUPT,
                "object \"%s\" does not match the catalogue: %" PRIu64 " bytes, sha256 %s; the "
                "catalogue says %" PRIu64 " bytes, sha256 %s",
                p->key, j->info.plain_size, got, p->size, p->sha256);
        goto out;
    }
    p->stored = j->info.stored_size;
    rc = 0;
out:
    sink_free(chain);
    if (rc < 0) {
        /* when the reader stopped first, its error is the one that counts */
        if (!(err.kind == ERR_INTERNAL && strcmp(err.msg, "cancelled") == 0 && cancelled(j->run)))
            record(j->run, j, &err);
        else
            atomic_store(&j->run->cancel, 1);
    }
    q_end(j);
    j->dl_rc = rc;
    return NULL;
}

/* ---- extraction --------------------------------------------------------------------------- */

/* libarchive's reader: the next block in place; the one before is released. */
static la_ssize_t
read_cb(struct archive *a, void *arg, const void **buf)
{
    struct job *j = arg;
    struct block b;
    bool end;

    if (j->holding) {
        j->holding = false;
        q_release(j, &j->q.extracted);
    }
    if (q_next(j, &j->q.extracted, &b, &end) < 0) {
        archive_set_error(a, ECANCELED, "cancelled");
        return -1;
    }
    if (end)
        return 0;
    j->holding = true;
    *buf = b.data;
    return (la_ssize_t)b.len;
}

static void
close_parent(struct job *j)
{
    if (j->parent_fd >= 0)
        close(j->parent_fd);
    j->parent_fd = -1;
    j->parent_path[0] = '\0';
}

static int
fix_owner(struct job *j, int dfd, const char *name, int fd, const char *path, struct err *err)
{
    const struct extract_opts *o = j->run->o;
    int rc;

    if (!o->do_chown)
        return 0;
    if (fd >= 0)
        rc = fchown(fd, o->uid, o->gid);
    else if (name)
        rc = fchownat(dfd, name, o->uid, o->gid, AT_SYMLINK_NOFOLLOW);
    else
        rc = fchown(dfd, o->uid, o->gid);
    if (rc < 0)
        return err_sys(err, ERR_IO, "could not change the owner of \"%s\"", path);
    return 0;
}

/*
 * Open the directory holding path (relative, normalised), creating missing
 * directories (0700), never following a symlink. *leaf points into path.
 * The result stays cached in j (do not close it).
 */
static int
open_parent(struct job *j, const char *path, const char **leaf, int *out, struct err *err)
{
    const char *slash = strrchr(path, '/');
    size_t plen = slash ? (size_t)(slash - path) : 0;
    const char *p = path;
    char comp[TAR_PATH_MAX];
    int cur;

    *leaf = slash ? slash + 1 : path;
    if (plen == 0) {
        *out = j->part->dir_fd;
        return 0;
    }
    if (j->parent_fd >= 0 && strlen(j->parent_path) == plen &&
        memcmp(j->parent_path, path, plen) == 0) {
        *out = j->parent_fd;
        return 0;
    }
    close_parent(j);
    cur = j->part->dir_fd;
    while (p < path + plen) {
        const char *s = memchr(p, '/', (size_t)(path + plen - p));
        size_t n = s ? (size_t)(s - p) : (size_t)(path + plen - p);
        int fd;

        memcpy(comp, p, n);
        comp[n] = '\0';
        fd = openat(cur, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT) {
            if (mkdirat(cur, comp, 0700) < 0 && errno != EEXIST) {
                err_sys(err, ERR_IO, "could not create directory \"%.*s\"", (int)(p + n - path),
                        path);
                goto fail;
            }
            fd = openat(cur, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (fd >= 0 && fix_owner(j, -1, NULL, fd, path, err) < 0) {
                close(fd);
                goto fail;
            }
        }
        if (fd < 0) {
            if (errno == ELOOP || errno == ENOTDIR)
                err_set(err, ERR_CORRUPT,
                        "tar entry \"%s\" lies below \"%.*s\", which is not a "
                        "directory",
                        path, (int)(p + n - path), path);
            else
                err_sys(err, ERR_IO, "could not open directory \"%.*s\"", (int)(p + n - path),
                        path);
            goto fail;
        }
        if (cur != j->part->dir_fd)
            close(cur);
        cur = fd;
        p += n + 1;
    }
    memcpy(j->parent_path, path, plen);
    j->parent_path[plen] = '\0';
    j->parent_fd = cur;
    *out = cur;
    return 0;
fail:
    if (cur != j->part->dir_fd)
        close(cur);
    return -1;
}

/* The manifest's name for an entry: tablespace files are under pg_tblspc/<oid>/. */
static void
manifest_name(char *out, size_t size, const struct job *j, const char *path)
{
    if (j->part->oid)
        snprintf(out, size, "pg_tblspc/%u/%s", j->part->oid, path);
    else
        snprintf(out, size, "%s", path);
}

/* Bytes of a file: into its checksum, then to disk (or the held buffer). */
static int
file_data(struct dfile *f, struct manifest_hash *h, struct buf *held, const void *data, size_t n,
          struct err *err)
{
    manifest_hash_update(h, data, n);
    if (held) {
        if (held->len + n > HELD_MAX)
            return err_set(err, ERR_CORRUPT, "\"%s\" is larger than %u bytes", f->path, HELD_MAX);
        buf_append(held, data, n);
        return 0;
    }
    return dfile_write(f, data, n, err);
}

static int
do_file(struct job *j, struct archive *a, struct archive_entry *ae, const char *path,
        struct err *err)
{
    char mname[TAR_PATH_MAX + 32];
    struct manifest_file *mf;
    struct manifest_hash *h = NULL;
    unsigned char digest[MANIFEST_DIGEST_MAX];
    struct buf *held = NULL;
    const char *leaf;
    int dfd, fd = -1, rc = -1;
    uint64_t size = 0;
    struct dfile f = {.path = path};

    manifest_name(mname, sizeof(mname), j, path);
    mf = manifest_find(j->run->o->manifest, mname);
    if (!mf)
        return err_set(err, ERR_CORRUPT, "file \"%s\" is in the backup but not in its manifest",
                       mname);
    if (j->part->oid == 0 && strcmp(path, "global/pg_control") == 0) {
        held = &j->run->held->pg_control;
        j->run->held->has_pg_control = true;
    } else if (j->part->oid == 0 && strcmp(path, "tablespace_map") == 0) {
        held = &j->run->held->tablespace_map;
        j->run->held->has_tablespace_map = true;
    }
    if (!held) {
        if (open_parent(j, path, &leaf, &dfd, err) < 0)
            return -1;
        fd = openat(dfd, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0) {
            if (errno == EEXIST)
                return err_set(err, ERR_CORRUPT, "tar entry \"%s\" appears twice", path);
            return err_sys(err, ERR_IO, "could not create \"%s\"", path);
        }
        la_int64_t esize = archive_entry_size(ae);

        dfile_begin(j->dw, &f, fd, esize > 0 ? (uint64_t)esize : 0, esize >= DIRECT_MIN, path);
    }
    h = manifest_hash_new(mf->algo);
    for (;;) {
        const void *blk;
        size_t n;
        la_int64_t off;
        int r = archive_read_data_block(a, &blk, &n, &off);

        if (r == ARCHIVE_EOF)
            break;
        if ((r != ARCHIVE_OK && r != ARCHIVE_WARN) || off < 0 || (uint64_t)off < size) {
            err_set(err, ERR_CORRUPT, "could not read \"%s\" from the tar stream: %s", path,
                    r != ARCHIVE_OK && r != ARCHIVE_WARN && archive_error_string(a)
                        ? archive_error_string(a)
                        : "bad data block");
            goto out;
        }
        /* a hole of a sparse entry (PostgreSQL writes none) reads as zeros */
        while ((uint64_t)off > size) {
            static const unsigned char zeros[65536];
            size_t z = (uint64_t)off - size < sizeof(zeros) ? (size_t)((uint64_t)off - size)
                                                            : sizeof(zeros);

            if (file_data(&f, h, held, zeros, z, err) < 0)
                goto out;
            size += z;
        }
        if (n && file_data(&f, h, held, blk, n, err) < 0)
            goto out;
        size += n;
        if (cancelled(j->run)) {
            err_set(err, ERR_INTERNAL, "cancelled");
            goto out;
        }
    }
    if (fd >= 0 && dfile_end(&f, err) < 0)
        goto out;
    manifest_hash_end(h, digest);
    if (manifest_file_check(mf, size, digest, err) < 0)
        goto out;
    if (fd >= 0 && fix_owner(j, -1, NULL, fd, path, err) < 0)
        goto out;
    /* start the write-back now, so the final syncfs has less to wait for */
    if (fd >= 0 && size >= SYNC_MIN)
        (void)sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
    if (fd >= 0 && close(fd) < 0) {
        fd = -1;
        err_sys(err, ERR_IO, "could not write \"%s\"", path);
        goto out;
    }
    fd = -1;
    mf->seen = true;
    j->part->files++;
    j->part->bytes += size;
    rc = 0;
out:
    if (fd >= 0) {
        dfile_abandon(&f); /* no write of this file may be in flight once fd is closed */
        close(fd);
    }
    manifest_hash_free(h);
    return rc;
}

static int
do_dir(struct job *j, const char *path, struct err *err)
{
    const char *leaf;
    int dfd;
    struct stat st;

    if (open_parent(j, path, &leaf, &dfd, err) < 0)
        return -1;
    if (mkdirat(dfd, leaf, 0700) < 0) {
        if (errno != EEXIST)
            return err_sys(err, ERR_IO, "could not create directory \"%s\"", path);
        if (fstatat(dfd, leaf, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
            return err_set(err, ERR_CORRUPT, "tar entry \"%s\" is a directory and something else",
                           path);
        if (fchmodat(dfd, leaf, 0700, 0) < 0)
            return err_sys(err, ERR_IO, "could not set the mode of \"%s\"", path);
    }
    return fix_owner(j, dfd, leaf, -1, path, err);
}

static int
do_symlink(struct job *j, const char *path, const char *target, struct err *err)
{
    const char *leaf;
    int dfd;

    if (open_parent(j, path, &leaf, &dfd, err) < 0)
        return -1;
    if (symlinkat(target, dfd, leaf) < 0) {
        if (errno == EEXIST)
            return err_set(err, ERR_CORRUPT, "tar entry \"%s\" appears twice", path);
        return err_sys(err, ERR_IO, "could not create symlink \"%s\"", path);
    }
    return fix_owner(j, dfd, leaf, -1, path, err);
}

static int
do_hardlink(struct job *j, const char *path, const char *target, struct err *err)
{
    char mname[TAR_PATH_MAX + 32], tname[TAR_PATH_MAX + 32];
    struct manifest_file *mf, *tf;
    const char *leaf, *tleaf;
    int dfd, tfd, rc;
    struct stat st;

    manifest_name(mname, sizeof(mname), j, path);
    manifest_name(tname, sizeof(tname), j, target);
    mf = manifest_find(j->run->o->manifest, mname);
    tf = manifest_find(j->run->o->manifest, tname);
    if (!mf)
        return err_set(err, ERR_CORRUPT, "file \"%s\" is in the backup but not in its manifest",
                       mname);
    if (!tf || !tf->seen ||
        (j->part->oid == 0 &&
         (strcmp(target, "global/pg_control") == 0 || strcmp(target, "tablespace_map") == 0)))
        return err_set(err, ERR_CORRUPT,
                       "hard link \"%s\" points to \"%s\", not a file restored "
                       "before it",
                       path, target);
    if (mf->size != tf->size || mf->algo != tf->algo ||
        memcmp(mf->checksum, tf->checksum, tf->checksum_len) != 0)
        return err_set(err, ERR_CORRUPT, "hard link \"%s\" does not match the manifest", mname);
    /* the target's directory first (it may be evicted from the cache by the second open) */
    if (open_parent(j, target, &tleaf, &tfd, err) < 0)
        return -1;
    tfd = dup(tfd);
    if (tfd < 0)
        return err_sys(err, ERR_IO, "could not open the directory of \"%s\"", target);
    if (fstatat(tfd, tleaf, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode)) {
        close(tfd);
        return err_set(err, ERR_CORRUPT, "hard link \"%s\" points to \"%s\", not a regular file",
                       path, target);
    }
    if (open_parent(j, path, &leaf, &dfd, err) < 0) {
        close(tfd);
        return -1;
    }
    rc = linkat(tfd, tleaf, dfd, leaf, 0);
    close(tfd);
    if (rc < 0) {
        if (errno == EEXIST)
            return err_set(err, ERR_CORRUPT, "tar entry \"%s\" appears twice", path);
        return err_sys(err, ERR_IO, "could not create hard link \"%s\"", path);
    }
    mf->seen = true;
    j->part->files++;
    return 0;
}

static int
extract_stream(struct job *j, struct archive *a, struct err *err)
{
    struct archive_entry *ae;
    char path[TAR_PATH_MAX], link[TAR_PATH_MAX];

    for (;;) {
        int r = archive_read_next_header(a, &ae);
        const char *name, *ltarget = NULL;
        enum tar_type type;

        if (r == ARCHIVE_EOF)
            return 0;
        if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
            if (cancelled(j->run))
                return err_set(err, ERR_INTERNAL, "cancelled");
            return err_set(err, ERR_CORRUPT, "bad tar stream: %s",
                           archive_error_string(a) ? archive_error_string(a) : "unknown error");
        }
        name = archive_entry_pathname(ae);
        if (!name)
            return err_set(err, ERR_CORRUPT, "tar entry with an unreadable name");
        type = tar_entry_type(ae, &ltarget);
        if (tar_entry_check(path, link, name, type, ltarget, err) < 0)
            return -1;
        /* with TABLESPACE_MAP the base tar has an empty pg_tblspc; tablespaces come apart */
        if (j->part->oid == 0 && strncmp(path, "pg_tblspc/", 10) == 0)
            return err_set(err, ERR_CORRUPT,
                           "tar entry \"%s\" is inside pg_tblspc (tablespaces come in their own "
                           "tar)",
                           path);
        switch (type) {
        case TAR_FILE:
            if (do_file(j, a, ae, path, err) < 0)
                return -1;
            break;
        case TAR_DIR:
            if (do_dir(j, path, err) < 0)
                return -1;
            break;
        case TAR_SYMLINK:
            if (do_symlink(j, path, ltarget, err) < 0)
                return -1;
            break;
        case TAR_HARDLINK:
            if (do_hardlink(j, path, link, err) < 0)
                return -1;
            break;
        case TAR_OTHER:
            break;
        }
    }
}

static void *
ex_main(void *arg)
{
    struct job *j = arg;
    struct archive *a = archive_read_new();
    struct err err;
    int rc = -1;

    err_clear(&err);
    j->parent_fd = -1;
    j->parent_path[0] = '\0';
    archive_read_support_format_tar(a);
    if (archive_read_open(a, j, NULL, read_cb, NULL) != ARCHIVE_OK) {
        err_set(&err, ERR_CORRUPT, "bad tar stream: %s",
                archive_error_string(a) ? archive_error_string(a) : "unknown error");
        goto out;
    }
    if (extract_stream(j, a, &err) < 0)
        goto out;
    /* release what follows the end-of-archive blocks so the download can finish */
    for (;;) {
        struct block b;
        bool end;

        if (j->holding) {
            j->holding = false;
            q_release(j, &j->q.extracted);
        }
        if (q_next(j, &j->q.extracted, &b, &end) < 0) {
            err_set(&err, ERR_INTERNAL, "cancelled");
            goto out;
        }
        if (end)
            break;
        j->holding = true;
    }
    rc = 0;
out:
    close_parent(j);
    archive_read_free(a);
    if (rc < 0 && !(err.kind == ERR_INTERNAL && strcmp(err.msg, "cancelled") == 0))
        record(j->run, j, &err);
    else if (rc < 0)
        atomic_store(&j->run->cancel, 1);
    if (rc < 0)
        wake_all(j->run); /* the download stops waiting for room */
    j->ex_rc = rc;
    return NULL;
}

int
extract_run(struct extract_part *parts, size_t n, const struct extract_opts *o,
            struct extract_held *held, struct err *err)
{
    struct run r;
    struct job *jobs = xcalloc(n ? n : 1, sizeof(*jobs));
    int rc = -1;
    bool ok = true;

    memset(&r, 0, sizeof(r));
    r.o = o;
    r.held = held;
    r.jobs = jobs;
    r.n_jobs = n;
    atomic_init(&r.cancel, 0);
    atomic_init(&r.direct_refused, false);
    pthread_mutex_init(&r.lock, NULL);
    for (size_t i = 0; i < n; i++) {
        jobs[i].run = &r;
        jobs[i].part = &parts[i];
        pthread_mutex_init(&jobs[i].q.lock, NULL);
        pthread_cond_init(&jobs[i].q.cv, NULL);
        for (size_t k = 0; k < N_BLOCKS; k++)
            jobs[i].q.blocks[k].data = xmalloc(BLOCK_SIZE);
        if (o->direct_io)
            jobs[i].dw = dwriter_new(&r.direct_refused);
    }
    for (size_t i = 0; ok && i < n; i++) {
        if (pthread_create(&jobs[i].ex, NULL, ex_main, &jobs[i]) != 0) {
            err_set(err, ERR_INTERNAL, "could not start a thread");
            ok = false;
            break;
        }
        jobs[i].ex_started = true;
        if (pthread_create(&jobs[i].dl, NULL, dl_main, &jobs[i]) != 0) {
            err_set(err, ERR_INTERNAL, "could not start a thread");
            ok = false;
            break;
        }
        jobs[i].dl_started = true;
    }
    if (!ok) {
        atomic_store(&r.cancel, 1);
        wake_all(&r);
    }
    for (size_t i = 0; i < n; i++) {
        if (jobs[i].dl_started)
            pthread_join(jobs[i].dl, NULL);
        if (jobs[i].ex_started)
            pthread_join(jobs[i].ex, NULL);
        if (!jobs[i].dl_started || !jobs[i].ex_started || jobs[i].dl_rc < 0 || jobs[i].ex_rc < 0)
            ok = false;
    }
    if (!ok) {
        if (r.has_err)
            *err = r.first;
        else if (err->kind == ERR_NONE)
            err_set(err, ERR_INTERNAL, "restore failed without a reason");
        goto out;
    }
    rc = 0;
out:
    for (size_t i = 0; i < n; i++) {
        pthread_mutex_destroy(&jobs[i].q.lock);
        pthread_cond_destroy(&jobs[i].q.cv);
        for (size_t k = 0; k < N_BLOCKS; k++)
            free(jobs[i].q.blocks[k].data);
        dwriter_free(jobs[i].dw);
    }
    pthread_mutex_destroy(&r.lock);
    free(jobs);
    return rc;
}

/* ---- clearing a directory ----------------------------------------------------------------- */

static int
clear_at(int dfd, const char *what, int depth, struct err *err)
{
    DIR *d;
    struct dirent *de;
    int fd = dup(dfd), rc = 0;

    if (depth > 200)
        return err_set(err, ERR_IO, "\"%s\" is nested too deeply to remove", what);
    if (fd < 0)
        return err_sys(err, ERR_IO, "could not read \"%s\"", what);
    d = fdopendir(fd);
    if (!d) {
        close(fd);
        return err_sys(err, ERR_IO, "could not read \"%s\"", what);
    }
    rewinddir(d);
    while ((de = readdir(d)) != NULL) {
        struct stat st;

        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno == ENOENT)
                continue;
            rc = err_sys(err, ERR_IO, "could not remove \"%s/%s\"", what, de->d_name);
            break;
        }
        if (S_ISDIR(st.st_mode)) {
            int sub = openat(dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

            if (sub < 0) {
                rc = err_sys(err, ERR_IO, "could not remove \"%s/%s\"", what, de->d_name);
                break;
            }
            rc = clear_at(sub, what, depth + 1, err);
            close(sub);
            if (rc < 0)
                break;
            if (unlinkat(dfd, de->d_name, AT_REMOVEDIR) < 0) {
                rc = err_sys(err, ERR_IO, "could not remove \"%s/%s\"", what, de->d_name);
                break;
            }
        } else if (unlinkat(dfd, de->d_name, 0) < 0 && errno != ENOENT) {
            rc = err_sys(err, ERR_IO, "could not remove \"%s/%s\"", what, de->d_name);
            break;
        }
    }
    closedir(d);
    return rc;
}

int
extract_clear_dir(int dir_fd, const char *what, struct err *err)
{
    return clear_at(dir_fd, what, 0, err);
}
