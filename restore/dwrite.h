/* SPDX-License-Identifier: MIT */
/*
 * Direct writes of restored files. Large files are written with O_DIRECT
 * where the filesystem takes it: the bytes go to the disk without a copy into
 * the page cache, which on many machines (virtual ones above all) is slower
 * than the disk, and the final sync has little left to do.
 *
 * Direct writes are fast only from page-aligned memory to block-aligned file
 * offsets (anything else is split into small pieces or a read-modify-write),
 * and file data sits at 512-byte offsets of a tar stream, so the bytes are
 * gathered into aligned staging buffers, which a few writer threads write
 * while the caller fills the next one. The tail of a file (less than a page)
 * is written through the page cache. An EINVAL from a direct write (a device
 * with coarser alignment) turns the file, and every later one, to buffered
 * writes: the bytes are the same either way.
 *
 * One dwriter per extraction thread; one file open at a time.
 */
#ifndef RESTORE_DWRITE_H
#define RESTORE_DWRITE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

struct dwriter;

/* refused: shared by every dwriter of a run, set when the filesystem refuses O_DIRECT. */
struct dwriter *dwriter_new(atomic_bool *refused);
/* Stops the threads; writes still queued are dropped (the restore failed). */
void dwriter_free(struct dwriter *w);

struct dfile {
    struct dwriter *w;
    int fd;
    bool direct;
    uint64_t off;       /* bytes handed to the disk or to a writer */
    unsigned char *cur; /* the staging buffer being filled, or NULL */
    size_t cur_buf;     /* its index in the dwriter */
    size_t fill;
    const char *path; /* for messages */
};

/*
 * Start writing fd (created empty, write-only; the caller closes it after
 * dfile_end). With direct (and w), O_DIRECT is tried; buffered writes
 * otherwise (w may be NULL then).
 */
void dfile_begin(struct dwriter *w, struct dfile *f, int fd, uint64_t size, bool direct,
                 const char *path);
int dfile_write(struct dfile *f, const void *data, size_t n, struct err *err);
/* Everything written (the writers waited for); the first writer error, if any. */
int dfile_end(struct dfile *f, struct err *err);
/* After a failure, before closing fd: wait for the writes in flight, drop the rest. */
void dfile_abandon(struct dfile *f);

#endif
