/* SPDX-License-Identifier: MIT */
/* Shared helpers for the stream tests: data generators and chunked feeding. */
#ifndef TESTS_UNIT_STREAM_HELPERS_H
#define TESTS_UNIT_STREAM_HELPERS_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/xmalloc.h"
#include "stream/object.h"
#include "stream/sink.h"
#include "stream/stages.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static inline uint64_t
rng_next(void)
{
    /* xorshift64*: reproducible, no libc rand */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

/* Random (incompressible) bytes. */
static inline void
fill_random(unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(rng_next() >> 32);
}

/* Compressible bytes: words from a small vocabulary. */
static inline void
fill_text(unsigned char *p, size_t n)
{
    static const char *words[] = {"ferry ",      "backup ", "wal ", "segment ", "0000000100000000 ",
                                  "checkpoint ", "redo ",   "\n",   "qdrant ",  "snapshot "};
    size_t i = 0;

    while (i < n) {
        const char *w = words[rng_next() % 10];
        size_t l = strlen(w);

        if (l > n - i)
            l = n - i;
        memcpy(p + i, w, l);
        i += l;
    }
}

/* A raw-key crypt_key of the bytes base, base+1, ... (through a key file, as users give it). */
static inline struct crypt_key *
raw_key(unsigned char base)
{
    char path[] = "/tmp/ferry-test-key-XXXXXX";
    unsigned char raw[32];
    struct crypt_key *k = NULL;
    struct err err;
    int fd = mkstemp(path);

    for (int i = 0; i < 32; i++)
        raw[i] = (unsigned char)(base + i);
    if (fd < 0 || write(fd, raw, 32) != 32 || crypt_key_from_file(&k, path, &err) < 0)
        abort();
    close(fd);
    unlink(path);
    return k;
}

/*
 * Write data to s in pieces: chunk 1 = one byte at a time, 0 = random sizes
 * (1..max), otherwise that size. Then finish. 0 or -1.
 */
static inline int
feed(struct sink *s, const void *data, size_t len, size_t chunk, size_t max, struct err *err)
{
    const unsigned char *p = data;

    while (len) {
        size_t n = chunk ? chunk : 1 + (size_t)(rng_next() % max);

        if (n > len)
            n = len;
        if (sink_write(s, p, n, err) < 0)
            return -1;
        p += n;
        len -= n;
    }
    return sink_finish(s, err);
}

/* Encode data into out (emptied first). */
static inline int
encode_to(struct buf *out, const void *data, size_t len, enum object_compress c,
          const struct crypt_key *key, struct object_info *info, struct err *err)
{
    struct object_opts o = {c, 0, key};
    struct sink *s;
    int rc;

    buf_reset(out);
    s = object_encode_sink_new(buf_sink_new(out, 0), &o, info);
    rc = feed(s, data, len, 0, 100000, err);

    sink_free(s);
    return rc;
}

/* Decode an object into out (emptied first), writing it in the given chunking. */
static inline int
decode_to(struct buf *out, const void *obj, size_t len, const struct crypt_key *key, size_t chunk,
          struct object_info *info, struct err *err)
{
    struct sink *s;
    int rc;

    buf_reset(out);
    s = object_decode_sink_new(buf_sink_new(out, 0), key, info);
    rc = feed(s, obj, len, chunk, 70000, err);

    sink_free(s);
    return rc;
}

#endif
