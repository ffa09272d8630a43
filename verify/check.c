/* SPDX-License-Identifier: MIT */
/* The object checks of ferry-verify: see check.h. */
#include "check.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/xmalloc.h"
#include "format/tar.h"
#include "format/walheader.h"
#include "stream/stages.h"

#define READ_BUF (1u << 20)
#define DATA_BUF (256u << 10)
#define PIPE_SIZE (1 << 20)

/* ---- the report -------------------------------------------------------------------------- */

void
report_init(struct report *r)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->lock, NULL);
    atomic_init(&r->stop, 0);
}

void
report_free(struct report *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->v[i].object);
        free(r->v[i].detail);
    }
    free(r->v);
    pthread_mutex_destroy(&r->lock);
}

static void
problems_push(struct problem **v, size_t *n, size_t *cap, const char *kind, const char *object,
              char *detail)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *v = xrealloc(*v, *cap * sizeof(**v));
    }
    (*v)[*n].kind = kind;
    (*v)[*n].object = xstrdup(object);
    (*v)[*n].detail = detail;
    (*n)++;
}

static char *
vformat(const char *fmt, va_list ap)
{
    struct buf b = BUF_INIT;
    char tmp[1024];

    vsnprintf(tmp, sizeof(tmp), fmt, ap);
    buf_puts(&b, tmp);
    return buf_detach(&b);
}

void
report_add(struct report *r, const char *kind, const char *object, const char *fmt, ...)
{
    va_list ap;
    char *detail;

    va_start(ap, fmt);
    detail = vformat(fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&r->lock);
    problems_push(&r->v, &r->n, &r->cap, kind, object, detail);
    pthread_mutex_unlock(&r->lock);
}

bool
check_err_is_unchecked(const struct err *err)
{
    return err->kind != ERR_CORRUPT && err->kind != ERR_NOT_FOUND;
}

void
report_err(struct report *r, const char *object, const struct err *err)
{
    if (err->kind == ERR_CORRUPT) {
        report_add(r, PK_CORRUPT_OBJECT, object, "%s", err->msg);
    } else if (err->kind == ERR_NOT_FOUND) {
        report_add(r, PK_MISSING_OBJECT, object, "%s", err->msg);
    } else {
        report_add(r, PK_UNCHECKED, object, "%s", err->msg);
        /* the storage itself fails: do not wait for every other object to fail too */
        if (err->kind == ERR_NET || err->kind == ERR_TIMEOUT || err->kind == ERR_TLS ||
            err->kind == ERR_AUTH)
            atomic_store(&r->stop, 1);
    }
}

static void
count(struct report *r, uint64_t *field, uint64_t n)
{
    pthread_mutex_lock(&r->lock);
    *field += n;
    pthread_mutex_unlock(&r->lock);
}

/* ---- WAL files --------------------------------------------------------------------------- */

/* Terminal stage: the first page of a segment against its name and the cluster; the size. */
struct walcheck {
    struct sink base;
    const struct walscan_file *f;
    const struct cluster_info *cluster;
    uint32_t seg_size;
    unsigned char page[WALHEADER_SIZE];
    uint64_t total;
};

static bool
is_segment(const struct walscan_file *f)
{
    return f->name.kind == WALNAME_SEGMENT || f->name.kind == WALNAME_PARTIAL;
}

static int
walcheck_write(struct sink *base, const void *buf, size_t len, struct err *err)
{
    struct walcheck *s = (struct walcheck *)base;

    (void)err;
    if (s->total < WALHEADER_SIZE) {
        size_t take =
            WALHEADER_SIZE - (size_t)s->total < len ? WALHEADER_SIZE - (size_t)s->total : len;

        memcpy(s->page + s->total, buf, take);
    }
    s->total += len;
    return 0;
}

static int
walcheck_finish(struct sink *base, struct err *err)
{
    struct walcheck *s = (struct walcheck *)base;
    struct walheader h;

    if (!is_segment(s->f))
        return 0;
    if (s->total != s->seg_size)
        return err_set(err, ERR_CORRUPT, "it has %" PRIu64 " bytes, a WAL segment has %u", s->total,
                       s->seg_size);
    if (walheader_parse(&h, s->page, WALHEADER_SIZE, err) < 0 ||
        walheader_check_name(&h, &s->f->name, err) < 0)
        return -1;
    if (s->cluster && h.sysid != s->cluster->sysid)
        return err_set(err, ERR_CORRUPT,
                       "it is from cluster %" PRIu64 ", the repository belongs to %" PRIu64,
                       h.sysid, s->cluster->sysid);
    if (h.seg_size != s->seg_size)
        return err_set(err, ERR_CORRUPT, "its page header says segment size %u, not %u", h.seg_size,
                       s->seg_size);
    return 0;
}

static void
walcheck_free(struct sink *base)
{
    free(base);
}

static const struct sink_ops walcheck_ops = {"walcheck", walcheck_write, walcheck_finish,
                                             walcheck_free};

static void
check_wal(const struct vctx *c, struct repo *r, const struct walscan_file *f)
{
    struct walcheck *w = xcalloc(1, sizeof(*w));
    struct object_info info;
    struct sink *chain;
    struct err err;

    err_clear(&err);
    sink_init(&w->base, &walcheck_ops, NULL);
    w->f = f;
    w->cluster = c->cluster;
    w->seg_size = c->cluster->seg_size;
    chain = object_decode_sink_new(&w->base, c->key, &info);
    if (repo_get(r, f->key, 0, 0, chain, &err) < 0 || sink_finish(chain, &err) < 0) {
        report_err(c->rep, f->key, &err);
    } else {
        pthread_mutex_lock(&c->rep->lock);
        c->rep->wal_files++;
        c->rep->wal_bytes += info.stored_size;
        pthread_mutex_unlock(&c->rep->lock);
    }
    sink_free(chain);
}

/* ---- backups ----------------------------------------------------------------------------- */

static void
hex32(char out[65], const unsigned char sha[32])
{
    archive_sha256_hex(out, sha);
}

/* The decoded object against its catalogue part; 0 or a problem reported. */
static int
match_catalogue(const struct vctx *c, const struct catalog_part *p, const struct object_info *info)
{
    char got[65];

    hex32(got, info->sha256);
    if (info->plain_size != p->size || strcmp(got, p->sha256) != 0) {
        report_add(c->rep, PK_CORRUPT_OBJECT, p->key,
                   "it does not match the catalogue: %" PRIu64 " bytes, sha256 %s; the catalogue "
                   "says %" PRIu64 " bytes, sha256 %s",
                   info->plain_size, got, p->size, p->sha256);
        return -1;
    }
    return 0;
}

/* Read, check and parse the backup's manifest (once; the caller holds bk->lock). */
static void
load_manifest(const struct vctx *c, struct repo *r, struct vbackup *bk)
{
    const struct catalog_part *mp = NULL;
    struct buf b = BUF_INIT;
    struct object_info info;
    struct sink *chain;
    struct err err;

    err_clear(&err);
    bk->loaded = true;
    for (size_t i = 0; i < bk->e.n_parts; i++)
        if (strcmp(bk->e.parts[i].name, "backup_manifest") == 0)
            mp = &bk->e.parts[i];
    if (!mp) {
        report_add(c->rep, PK_CORRUPT_CATALOG, bk->e.id, "the backup has no backup_manifest part");
        return;
    }
    if (mp->size == PART_MISSING)
        return;
    chain = object_decode_sink_new(buf_sink_new(&b, MANIFEST_MAX_BYTES), c->key, &info);
    if (repo_get(r, mp->key, 0, 0, chain, &err) < 0 || sink_finish(chain, &err) < 0) {
        report_err(c->rep, mp->key, &err);
        goto out;
    }
    pthread_mutex_lock(&c->rep->lock);
    c->rep->backup_objects++;
    c->rep->backup_bytes += info.stored_size;
    pthread_mutex_unlock(&c->rep->lock);
    if (match_catalogue(c, mp, &info) < 0)
        goto out;
    if (manifest_parse(&bk->m, b.data ? b.data : "", b.len, &err) < 0) {
        report_add(c->rep, PK_CORRUPT_OBJECT, mp->key, "%s", err.msg);
        goto out;
    }
    if (bk->m.has_sysid && bk->m.sysid != bk->e.sysid) {
        report_add(c->rep, PK_MANIFEST_MISMATCH, mp->key,
                   "the manifest has system identifier %" PRIu64 ", the catalogue %" PRIu64,
                   bk->m.sysid, bk->e.sysid);
        manifest_free(&bk->m);
        goto out;
    }
    bk->has_manifest = true;
out:
    sink_free(chain);
    buf_free(&b);
}

static void
ensure_manifest(const struct vctx *c, struct repo *r, struct vbackup *bk)
{
    pthread_mutex_lock(&bk->lock);
    if (!bk->loaded)
        load_manifest(c, r, bk);
    pthread_mutex_unlock(&bk->lock);
}

/* The key of the part a manifest path belongs to (pg_tblspc/<oid>/... or base.tar). */
static const char *
part_of_path(const struct vbackup *bk, const char *path)
{
    uint32_t oid = 0;

    if (strncmp(path, "pg_tblspc/", 10) == 0) {
        const char *p = path + 10;

        while (*p >= '0' && *p <= '9' && oid < 429496729u)
            oid = oid * 10 + (uint32_t)(*p++ - '0');
    }
    for (size_t i = 0; i < bk->e.n_parts; i++) {
        const struct catalog_part *p = &bk->e.parts[i];

        if (strcmp(p->name, "backup_manifest") != 0 && p->tablespace == oid)
            return p->key;
    }
    return bk->e.n_parts > 0 ? bk->e.parts[0].key : bk->e.id;
}

/* After the last check of a backup: every manifest file must have been seen. */
static void
finish_backup(const struct vctx *c, struct vbackup *bk)
{
    bool last;

    pthread_mutex_lock(&bk->lock);
    last = --bk->remaining == 0;
    pthread_mutex_unlock(&bk->lock);
    if (!last)
        return;
    if (bk->has_manifest && !bk->tar_incomplete && !atomic_load(&c->rep->stop)) {
        for (size_t i = 0; i < bk->m.n_files; i++) {
            if (!bk->m.files[i].seen)
                report_add(c->rep, PK_MANIFEST_MISMATCH, part_of_path(bk, bk->m.files[i].path),
                           "file \"%s\" of the manifest is missing from the backup",
                           bk->m.files[i].path);
        }
    }
    manifest_free(&bk->m);
    bk->has_manifest = false;
}

/* A tar part: download thread into a pipe, libarchive reading it here. */
struct tarjob {
    const struct vctx *c;
    struct repo *r;
    const struct catalog_part *p;
    struct vbackup *bk;
    int pipe_r, pipe_w;
    unsigned char *rbuf;
    /* download results */
    int dl_rc;
    struct err dl_err;
    struct object_info info;
    /* problems found in the stream, kept until the download is known to be good */
    struct problem *v;
    size_t n, cap;
    uint64_t files;
};

static void *
dl_main(void *arg)
{
    struct tarjob *t = arg;
    struct sink *chain =
        object_decode_sink_new(fd_sink_new(t->pipe_w, "the tar reader"), t->c->key, &t->info);

    err_clear(&t->dl_err);
    t->dl_rc = 0;
    if (repo_get(t->r, t->p->key, 0, 0, chain, &t->dl_err) < 0 ||
        sink_finish(chain, &t->dl_err) < 0)
        t->dl_rc = -1;
    sink_free(chain);
    close(t->pipe_w);
    t->pipe_w = -1;
    return NULL;
}

static la_ssize_t
read_cb(struct archive *a, void *arg, const void **buf)
{
    struct tarjob *t = arg;
    ssize_t n;

    do
        n = read(t->pipe_r, t->rbuf, READ_BUF);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        archive_set_error(a, errno, "could not read from the download");
        return -1;
    }
    *buf = t->rbuf;
    return n;
}

static void tar_problem(struct tarjob *t, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
tar_problem(struct tarjob *t, const char *kind, const char *fmt, ...)
{
    va_list ap;
    char *detail;

    va_start(ap, fmt);
    detail = vformat(fmt, ap);
    va_end(ap);
    problems_push(&t->v, &t->n, &t->cap, kind, t->p->key, detail);
}

static void
manifest_name(char *out, size_t size, const struct tarjob *t, const char *path)
{
    if (t->p->tablespace)
        snprintf(out, size, "pg_tblspc/%u/%s", t->p->tablespace, path);
    else
        snprintf(out, size, "%s", path);
}

/* A regular file's bytes against its manifest entry. -1 only when the stream is broken. */
static int
tar_file(struct tarjob *t, struct archive *a, const char *path, char *data)
{
    char mname[TAR_PATH_MAX + 32];
    struct manifest_file *mf = NULL;
    struct manifest_hash *h = NULL;
    unsigned char digest[MANIFEST_DIGEST_MAX];
    uint64_t size = 0;
    struct err err;
    int rc = -1;

    manifest_name(mname, sizeof(mname), t, path);
    if (t->bk->has_manifest) {
        mf = manifest_find(&t->bk->m, mname);
        if (!mf)
            tar_problem(t, PK_MANIFEST_MISMATCH,
                        "file \"%s\" is in the backup but not in its manifest", mname);
        else if (mf->seen)
            tar_problem(t, PK_MANIFEST_MISMATCH, "file \"%s\" appears twice in the backup", mname);
    }
    if (mf)
        h = manifest_hash_new(mf->algo);
    for (;;) {
        la_ssize_t n = archive_read_data(a, data, DATA_BUF);

        if (n < 0) {
            tar_problem(t, PK_CORRUPT_OBJECT, "could not read \"%s\" from the tar stream: %s", path,
                        archive_error_string(a) ? archive_error_string(a) : "unknown error");
            goto out;
        }
        if (n == 0)
            break;
        if (h)
            manifest_hash_update(h, data, (size_t)n);
        size += (uint64_t)n;
    }
    if (mf) {
        manifest_hash_end(h, digest);
        err_clear(&err);
        if (manifest_file_check(mf, size, digest, &err) < 0)
            tar_problem(t, PK_MANIFEST_MISMATCH, "%s", err.msg);
        mf->seen = true;
        t->files++;
    }
    rc = 0;
out:
    manifest_hash_free(h);
    return rc;
}

static void
tar_hardlink(struct tarjob *t, const char *path, const char *target)
{
    char mname[TAR_PATH_MAX + 32], tname[TAR_PATH_MAX + 32];
    struct manifest_file *mf, *tf;

    if (!t->bk->has_manifest)
        return;
    manifest_name(mname, sizeof(mname), t, path);
    manifest_name(tname, sizeof(tname), t, target);
    mf = manifest_find(&t->bk->m, mname);
    tf = manifest_find(&t->bk->m, tname);
    if (!mf) {
        tar_problem(t, PK_MANIFEST_MISMATCH, "file \"%s\" is in the backup but not in its manifest",
                    mname);
        return;
    }
    if (!tf || !tf->seen || mf->size != tf->size || mf->algo != tf->algo ||
        memcmp(mf->checksum, tf->checksum, tf->checksum_len) != 0)
        tar_problem(t, PK_MANIFEST_MISMATCH,
                    "hard link \"%s\" to \"%s\" does not match the manifest", mname, tname);
    mf->seen = true;
    t->files++;
}

/* Every entry of the stream; -1 when the stream itself is broken (reported). */
static int
tar_read(struct tarjob *t, struct archive *a)
{
    struct archive_entry *ae;
    char path[TAR_PATH_MAX], link[TAR_PATH_MAX];
    char *data = xmalloc(DATA_BUF);
    int rc = -1;

    for (;;) {
        int r = archive_read_next_header(a, &ae);
        const char *name, *ltarget = NULL;
        enum tar_type type;
        struct err err;

        if (r == ARCHIVE_EOF)
            break;
        if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
            tar_problem(t, PK_CORRUPT_OBJECT, "bad tar stream: %s",
                        archive_error_string(a) ? archive_error_string(a) : "unknown error");
            goto out;
        }
        name = archive_entry_pathname(ae);
        if (!name) {
            tar_problem(t, PK_CORRUPT_OBJECT, "tar entry with an unreadable name");
            continue;
        }
        type = tar_entry_type(ae, &ltarget);
        err_clear(&err);
        if (tar_entry_check(path, link, name, type, ltarget, &err) < 0) {
            tar_problem(t, PK_CORRUPT_OBJECT, "%s", err.msg);
            continue;
        }
        if (type == TAR_FILE && tar_file(t, a, path, data) < 0)
            goto out;
        if (type == TAR_HARDLINK)
            tar_hardlink(t, path, link);
    }
    rc = 0;
out:
    free(data);
    return rc;
}

static void
check_tar(const struct vctx *c, struct repo *r, struct vbackup *bk, const struct catalog_part *p)
{
    struct tarjob t;
    struct archive *a = NULL;
    pthread_t dl;
    bool dl_started = false, stream_ok = false;
    int fds[2];

    memset(&t, 0, sizeof(t));
    t.c = c;
    t.r = r;
    t.p = p;
    t.bk = bk;
    t.pipe_r = t.pipe_w = -1;
    if (pipe2(fds, O_CLOEXEC) < 0) {
        struct err err;

        err_sys(&err, ERR_IO, "could not create a pipe");
        report_err(c->rep, p->key, &err);
        goto out;
    }
    (void)fcntl(fds[1], F_SETPIPE_SZ, PIPE_SIZE); /* best effort: a bigger buffer */
    t.pipe_r = fds[0];
    t.pipe_w = fds[1];
    t.rbuf = xmalloc(READ_BUF);
    if (pthread_create(&dl, NULL, dl_main, &t) != 0) {
        struct err err;

        err_set(&err, ERR_INTERNAL, "could not start a thread");
        report_err(c->rep, p->key, &err);
        goto out;
    }
    dl_started = true;
    a = archive_read_new();
    archive_read_support_format_tar(a);
    if (archive_read_open(a, &t, NULL, read_cb, NULL) != ARCHIVE_OK)
        tar_problem(&t, PK_CORRUPT_OBJECT, "bad tar stream: %s",
                    archive_error_string(a) ? archive_error_string(a) : "unknown error");
    else
        stream_ok = tar_read(&t, a) == 0;
    /* read to the end so the download finishes and its checksum is known */
    for (;;) {
        ssize_t n = read(t.pipe_r, t.rbuf, READ_BUF);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
    }
    pthread_join(dl, NULL);
    dl_started = false;
    if (t.dl_rc < 0) {
        /* what the stream showed is not worth reporting: the object itself is bad */
        report_err(c->rep, p->key, &t.dl_err);
        stream_ok = false;
    } else {
        count(c->rep, &c->rep->backup_objects, 1);
        count(c->rep, &c->rep->backup_bytes, t.info.stored_size);
        count(c->rep, &c->rep->manifest_files, t.files);
        if (match_catalogue(c, p, &t.info) < 0)
            stream_ok = false;
        pthread_mutex_lock(&c->rep->lock);
        for (size_t i = 0; i < t.n; i++) {
            problems_push(&c->rep->v, &c->rep->n, &c->rep->cap, t.v[i].kind, t.v[i].object,
                          t.v[i].detail);
            t.v[i].detail = NULL;
        }
        pthread_mutex_unlock(&c->rep->lock);
    }
out:
    if (!stream_ok) {
        pthread_mutex_lock(&bk->lock);
        bk->tar_incomplete = true;
        pthread_mutex_unlock(&bk->lock);
    }
    if (dl_started)
        pthread_join(dl, NULL);
    if (a)
        archive_read_free(a);
    if (t.pipe_r >= 0)
        close(t.pipe_r);
    if (t.pipe_w >= 0)
        close(t.pipe_w);
    for (size_t i = 0; i < t.n; i++) {
        free(t.v[i].object);
        free(t.v[i].detail);
    }
    free(t.v);
    free(t.rbuf);
}

/* Any other part: decoded and matched with the catalogue. */
static void
check_plain(const struct vctx *c, struct repo *r, const struct catalog_part *p)
{
    struct object_info info;
    struct sink *chain = object_decode_sink_new(null_sink_new(), c->key, &info);
    struct err err;

    err_clear(&err);
    if (repo_get(r, p->key, 0, 0, chain, &err) < 0 || sink_finish(chain, &err) < 0) {
        report_err(c->rep, p->key, &err);
    } else {
        count(c->rep, &c->rep->backup_objects, 1);
        count(c->rep, &c->rep->backup_bytes, info.stored_size);
        match_catalogue(c, p, &info);
    }
    sink_free(chain);
}

static bool
ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);

    return n >= m && strcmp(s + n - m, suffix) == 0;
}

void
check_job(const struct vctx *c, struct repo *r, struct vjob *j)
{
    if (atomic_load(&c->rep->stop)) {
        count(c->rep, &c->rep->skipped, 1);
        if (j->type == VJOB_PART) {
            pthread_mutex_lock(&j->bk->lock);
            j->bk->tar_incomplete = true;
            pthread_mutex_unlock(&j->bk->lock);
            finish_backup(c, j->bk);
        }
        return;
    }
    if (j->type == VJOB_WAL) {
        check_wal(c, r, j->wal);
        return;
    }
    /* the manifest part is read here, by whichever check of the backup comes first */
    ensure_manifest(c, r, j->bk);
    if (atomic_load(&c->rep->stop)) {
        count(c->rep, &c->rep->skipped, 1);
        pthread_mutex_lock(&j->bk->lock);
        j->bk->tar_incomplete = true;
        pthread_mutex_unlock(&j->bk->lock);
    } else if (ends_with(j->part->name, ".tar"))
        check_tar(c, r, j->bk, j->part);
    else if (strcmp(j->part->name, "backup_manifest") != 0)
        check_plain(c, r, j->part);
    finish_backup(c, j->bk);
}
