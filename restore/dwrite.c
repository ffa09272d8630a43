/* SPDX-License-Identifier: MIT */
/* Direct writes of restored files through staging buffers and writer threads: see dwrite.h. */
#include "dwrite.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/xmalloc.h"

#define DW_ALIGN 4096u         /* memory, offsets and lengths of direct writes: a page */
#define DW_BUF_SIZE (2u << 20) /* one staging buffer */
#define DW_BUFS 3              /* 6 MiB staged per extraction thread */
#define DW_THREADS 2           /* two writes in flight keep a disk queue busy */

struct djob {
    int fd;
    uint64_t off;
    size_t len;
    size_t buf; /* index in bufs */
    const char *path;
};

struct dwriter {
    pthread_mutex_t lock;
    pthread_cond_t cv; /* broadcast on every change */
    unsigned char *bufs[DW_BUFS];
    size_t free_bufs[DW_BUFS];
    size_t n_free;
    struct djob q[DW_BUFS]; /* submitted, not yet taken by a writer */
    uint64_t submitted, taken;
    size_t inflight; /* submitted and not finished */
    bool stop;
    bool failed;
    struct err err; /* the first failure */
    pthread_t th[DW_THREADS];
    size_t n_th;
    atomic_bool *refused;
};

/* Clear O_DIRECT on fd (the file goes on through the page cache). */
static int
to_buffered(int fd)
{
    int fl = fcntl(fd, F_GETFL);

    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl & ~O_DIRECT);
}

/* pwrite all of buf at off; an EINVAL of a direct write turns fd buffered and retries. */
static int
pwrite_all(int fd, const unsigned char *p, size_t len, uint64_t off, atomic_bool *refused,
           const char *path, struct err *err)
{
    while (len) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EINVAL && (fcntl(fd, F_GETFL) & O_DIRECT)) {
            if (refused)
                atomic_store(refused, true);
            if (to_buffered(fd) < 0)
                return err_sys(err, ERR_IO, "could not change the write mode of \"%s\"", path);
            continue;
        }
        if (n < 0)
            return err_sys(err, ERR_IO, "could not write \"%s\"", path);
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

static void *
writer_main(void *arg)
{
    struct dwriter *w = arg;

    for (;;) {
        struct djob j;
        struct err err;
        bool skip;
        int rc = 0;

        pthread_mutex_lock(&w->lock);
        while (w->taken == w->submitted && !w->stop)
            pthread_cond_wait(&w->cv, &w->lock);
        if (w->stop) {
            pthread_mutex_unlock(&w->lock);
            return NULL;
        }
        j = w->q[w->taken % DW_BUFS];
        w->taken++;
        skip = w->failed;
        pthread_mutex_unlock(&w->lock);

        err_clear(&err);
        if (!skip)
            rc = pwrite_all(j.fd, w->bufs[j.buf], j.len, j.off, w->refused, j.path, &err);

        pthread_mutex_lock(&w->lock);
        if (rc < 0 && !w->failed) {
            w->failed = true;
            w->err = err;
        }
        w->free_bufs[w->n_free++] = j.buf;
        w->inflight--;
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->lock);
    }
}

struct dwriter *
dwriter_new(atomic_bool *refused)
{
    struct dwriter *w = xcalloc(1, sizeof(*w));
    sigset_t all, old;

    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->refused = refused;
    for (size_t i = 0; i < DW_BUFS; i++) {
        w->bufs[i] = xmalloc_aligned(DW_ALIGN, DW_BUF_SIZE);
        w->free_bufs[w->n_free++] = i;
    }
    /* the writers take no signals: they stay with the main thread */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    for (size_t i = 0; i < DW_THREADS; i++) {
        if (pthread_create(&w->th[w->n_th], NULL, writer_main, w) != 0)
            break;
        w->n_th++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return w;
}

void
dwriter_free(struct dwriter *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->stop = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->lock);
    for (size_t i = 0; i < w->n_th; i++)
        pthread_join(w->th[i], NULL);
    for (size_t i = 0; i < DW_BUFS; i++)
        free(w->bufs[i]);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cv);
    free(w);
}

void
dfile_begin(struct dwriter *w, struct dfile *f, int fd, uint64_t size, bool direct,
            const char *path)
{
    memset(f, 0, sizeof(*f));
    f->w = w;
    f->fd = fd;
    f->path = path;
    /* set after the create: a filesystem without O_DIRECT refuses it here, with EINVAL */
    if (direct && w && w->n_th > 0 && !atomic_load(w->refused)) {
        int fl = fcntl(fd, F_GETFL);

        if (fl >= 0 && fcntl(fd, F_SETFL, fl | O_DIRECT) == 0) {
            f->direct = true;
            /* the whole file at once: writes then never extend it, and run side by side */
            if (size)
                (void)fallocate(fd, 0, 0, (off_t)size);
        } else
            atomic_store(w->refused, true);
    }
}

/* The writers' first error, under the lock. */
static int
failed_locked(struct dwriter *w, struct err *err)
{
    *err = w->err;
    return -1;
}

/* Give the staging buffer back unwritten. */
static void
release_cur(struct dfile *f)
{
    struct dwriter *w = f->w;

    if (!f->cur)
        return;
    pthread_mutex_lock(&w->lock);
    w->free_bufs[w->n_free++] = f->cur_buf;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->lock);
    f->cur = NULL;
    f->fill = 0;
}

/* Wait until no write is in flight; the writers' first error, if any. */
static int
drain(struct dwriter *w, struct err *err)
{
    int rc = 0;

    pthread_mutex_lock(&w->lock);
    while (w->inflight > 0)
        pthread_cond_wait(&w->cv, &w->lock);
    if (w->failed)
        rc = failed_locked(w, err);
    pthread_mutex_unlock(&w->lock);
    return rc;
}

/* Hand the staging buffer (its first len bytes) to the writers. */
static int
submit(struct dfile *f, size_t len, struct err *err)
{
    struct dwriter *w = f->w;

    pthread_mutex_lock(&w->lock);
    if (w->failed) {
        w->free_bufs[w->n_free++] = f->cur_buf;
        f->cur = NULL;
        pthread_mutex_unlock(&w->lock);
        return failed_locked(w, err);
    }
    w->q[w->submitted % DW_BUFS] = (struct djob){f->fd, f->off, len, f->cur_buf, f->path};
    w->submitted++;
    w->inflight++;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->lock);
    f->off += len;
    f->cur = NULL;
    f->fill = 0;
    return 0;
}

int
dfile_write(struct dfile *f, const void *data, size_t n, struct err *err)
{
    struct dwriter *w = f->w;
    const unsigned char *p = data;

    if (!f->direct) {
        if (pwrite_all(f->fd, p, n, f->off, w ? w->refused : NULL, f->path, err) < 0)
            return -1;
        f->off += n;
        return 0;
    }
    while (n) {
        size_t k;

        if (!f->cur) {
            int rc = 0;

            pthread_mutex_lock(&w->lock);
            while (w->n_free == 0 && !w->failed)
                pthread_cond_wait(&w->cv, &w->lock);
            if (w->failed)
                rc = failed_locked(w, err);
            else
                f->cur = w->bufs[f->cur_buf = w->free_bufs[--w->n_free]];
            pthread_mutex_unlock(&w->lock);
            if (rc < 0)
                return -1;
            f->fill = 0;
        }
        k = DW_BUF_SIZE - f->fill < n ? DW_BUF_SIZE - f->fill : n;
        memcpy(f->cur + f->fill, p, k);
        f->fill += k;
        p += k;
        n -= k;
        if (f->fill == DW_BUF_SIZE && submit(f, DW_BUF_SIZE, err) < 0)
            return -1;
    }
    return 0;
}

int
dfile_end(struct dfile *f, struct err *err)
{
    struct dwriter *w = f->w;
    unsigned char tail[DW_ALIGN];
    size_t ntail = 0;
    struct err dummy;
    int rc = 0;

    if (!f->direct)
        return 0;
    if (f->cur) {
        size_t whole = f->fill & ~(size_t)(DW_ALIGN - 1);

        ntail = f->fill - whole;
        memcpy(tail, f->cur + whole, ntail);
        if (whole)
            rc = submit(f, whole, err);
        else
            release_cur(f);
    }
    if (drain(w, rc < 0 ? &dummy : err) < 0 || rc < 0)
        return -1;
    f->direct = false;
    if (ntail) {
        if (to_buffered(f->fd) < 0)
            return err_sys(err, ERR_IO, "could not change the write mode of \"%s\"", f->path);
        if (pwrite_all(f->fd, tail, ntail, f->off, w->refused, f->path, err) < 0)
            return -1;
        f->off += ntail;
    }
    return 0;
}

void
dfile_abandon(struct dfile *f)
{
    struct err dummy;

    if (!f->direct)
        return;
    release_cur(f);
    (void)drain(f->w, &dummy);
    f->direct = false;
}
