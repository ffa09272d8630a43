/* SPDX-License-Identifier: MIT */
/*
 * Push-style stream stages. A stage receives bytes with write(), transforms
 * them and pushes the result to its successor (next), which it owns.
 * Chains are built back to front; constructors cannot fail (the first write
 * opens things). write() takes all bytes or fails; after a failure every
 * later call fails the same way (the stage keeps its error). finish() flushes
 * the stage, then finishes next. Freeing an unfinished chain abandons it
 * (an upload is aborted, a temporary file removed).
 */
#ifndef STREAM_SINK_H
#define STREAM_SINK_H

#include <stddef.h>

#include "base/err.h"

struct sink;

struct sink_ops {
    const char *name;
    int (*write)(struct sink *s, const void *buf, size_t len, struct err *err);
    int (*finish)(struct sink *s, struct err *err); /* flush, then finish next */
    void (*free)(struct sink *s);                   /* itself only */
};

struct sink {
    const struct sink_ops *ops;
    struct sink *next; /* owned; NULL for the last stage */
    /* sticky failure: once a call failed, all later calls fail with this */
    struct err failed;
    int state; /* 0 open, 1 finished, -1 failed */
};

/* Initialise the common part; stages call this in their constructors. */
void sink_init(struct sink *s, const struct sink_ops *ops, struct sink *next);

/* Write len bytes (len may be 0). 0 or -1. */
int sink_write(struct sink *s, const void *buf, size_t len, struct err *err);
/* Flush and finish the whole chain from s on. 0 or -1. Finishing twice is a bug. */
int sink_finish(struct sink *s, struct err *err);
/* Free the whole chain from s on (each stage, then its next). NULL is a no-op. */
void sink_free(struct sink *s);

/*
 * Helpers for stages: push to next (no-op success when next is NULL),
 * finish next (same).
 */
int sink_next_write(struct sink *s, const void *buf, size_t len, struct err *err);
int sink_next_finish(struct sink *s, struct err *err);

/* Read fd to EOF into the chain (does not finish it). 0 or -1. */
int sink_pump_fd(struct sink *s, int fd, const char *what, struct err *err);

#endif
