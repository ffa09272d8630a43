/* SPDX-License-Identifier: MIT */
/* Counts the bytes passing through; the caller's counter is current after every write. */
#include "stream/stages.h"

#include <stdlib.h>

#include "base/xmalloc.h"

struct count_sink {
    struct sink base;
    uint64_t *count;
};

static int
count_write(struct sink *s, const void *buf, size_t len, struct err *err)
{
    struct count_sink *c = (struct count_sink *)s;

    *c->count += len;
    return sink_next_write(s, buf, len, err);
}

static int
count_finish(struct sink *s, struct err *err)
{
    return sink_next_finish(s, err);
}

static void
count_free(struct sink *s)
{
    free(s);
}

static const struct sink_ops count_ops = {"count", count_write, count_finish, count_free};

struct sink *
count_sink_new(struct sink *next, uint64_t *count)
{
    struct count_sink *c = xcalloc(1, sizeof(*c));

    sink_init(&c->base, &count_ops, next);
    c->count = count;
    *count = 0;
    return &c->base;
}
