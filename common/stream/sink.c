/* SPDX-License-Identifier: MIT */
/* The common part of every stream stage: sticky errors, finish and free of a chain. */
#include "stream/sink.h"

#include <assert.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

void
sink_init(struct sink *s, const struct sink_ops *ops, struct sink *next)
{
    memset(s, 0, sizeof(*s));
    s->ops = ops;
    s->next = next;
}

int
sink_write(struct sink *s, const void *buf, size_t len, struct err *err)
{
    if (s->state < 0) {
        *err = s->failed;
        return -1;
    }
    assert(s->state == 0);
    if (s->ops->write(s, buf, len, err) < 0) {
        s->failed = *err;
        s->state = -1;
        return -1;
    }
    return 0;
}

int
sink_finish(struct sink *s, struct err *err)
{
    if (s->state < 0) {
        *err = s->failed;
        return -1;
    }
    assert(s->state == 0);
    if (s->ops->finish(s, err) < 0) {
        s->failed = *err;
        s->state = -1;
        return -1;
    }
    s->state = 1;
    return 0;
}

void
sink_free(struct sink *s)
{
    while (s) {
        struct sink *next = s->next;

        s->ops->free(s);
        s = next;
    }
}

int
sink_next_write(struct sink *s, const void *buf, size_t len, struct err *err)
{
    if (!s->next)
        return 0;
    return sink_write(s->next, buf, len, err);
}

int
sink_next_finish(struct sink *s, struct err *err)
{
    if (!s->next)
        return 0;
    return sink_finish(s->next, err);
}

int
sink_pump_fd(struct sink *s, int fd, const char *what, struct err *err)
{
    static _Thread_local char block[256 * 1024];

    for (;;) {
        ssize_t n = read(fd, block, sizeof(block));

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return err_sys(err, ERR_IO, "could not read \"%s\"", what);
        }
        if (n == 0)
            return 0;
        if (sink_write(s, block, (size_t)n, err) < 0)
            return -1;
    }
}
