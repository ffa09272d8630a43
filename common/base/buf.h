/* SPDX-License-Identifier: MIT */
/*
 * A growable byte buffer, always NUL-terminated for convenience. Used for
 * small things (headers, XML bodies, keys); bulk data flows through sinks.
 */
#ifndef BASE_BUF_H
#define BASE_BUF_H

#include <stddef.h>

struct buf {
    char *data; /* NULL until the first append; then NUL-terminated */
    size_t len;
    size_t cap;
};

#define BUF_INIT                                                                                   \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

void buf_append(struct buf *b, const void *data, size_t len);
void buf_puts(struct buf *b, const char *s);
void buf_putc(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Make sure at least n more bytes fit without reallocating. */
void buf_reserve(struct buf *b, size_t n);
/* Empty it, keeping the memory. */
void buf_reset(struct buf *b);
/* Return the string (never NULL: "" when empty). */
const char *buf_str(const struct buf *b);
/* Hand over the memory (caller frees); b becomes empty. Never NULL. */
char *buf_detach(struct buf *b);
void buf_free(struct buf *b);

#endif
