/* SPDX-License-Identifier: MIT */
/*
 * gzip (RFC 1952) compression and decompression stages (zlib). One fixed
 * output buffer each, so memory does not depend on the data. The decoder
 * takes exactly one gzip member: bytes after its end are trailing garbage,
 * and input that stops before the end (CRC-32 and size included) is
 * truncated; both are ERR_CORRUPT, as is anything zlib rejects.
 */
#include "stream/stages.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "base/xmalloc.h"

#define GZIP_LEVEL_DEFAULT 6
#define GZIP_OUT_SIZE (64 * 1024)
/* windowBits 15 (32 KiB) plus 16: gzip wrapper only, no zlib or raw deflate */
#define GZIP_WINDOW_BITS (15 + 16)

struct gzip_sink {
    struct sink base;
    z_stream zs;
    int level;
    int started; /* zs initialised */
    int ended;   /* decoder: the member is complete */
    unsigned char *out;
};

static int
gzip_start(struct gzip_sink *g, struct err *err)
{
    if (g->started)
        return 0;
    if (deflateInit2(&g->zs, g->level, Z_DEFLATED, GZIP_WINDOW_BITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return err_set(err, ERR_INTERNAL, "could not start gzip compression");
    g->out = xmalloc(GZIP_OUT_SIZE);
    g->started = 1;
    return 0;
}

static int
gzip_deflate(struct sink *s, const void *buf, size_t len, int flush, struct err *err)
{
    struct gzip_sink *g = (struct gzip_sink *)s;
    const unsigned char *p = buf;

    if (gzip_start(g, err) < 0)
        return -1;
    /* avail_in is a uInt: feed huge writes in slices */
    do {
        size_t slice = len > (1u << 30) ? (1u << 30) : len;
        int slice_flush = slice == len ? flush : Z_NO_FLUSH;

        g->zs.next_in = (unsigned char *)p;
        g->zs.avail_in = (uInt)slice;
        for (;;) {
            int ret;
            size_t have;

            g->zs.next_out = g->out;
            g->zs.avail_out = GZIP_OUT_SIZE;
            ret = deflate(&g->zs, slice_flush);
            if (ret == Z_STREAM_ERROR)
                return err_set(err, ERR_INTERNAL, "gzip compression failed");
            have = GZIP_OUT_SIZE - g->zs.avail_out;
            if (have && sink_next_write(s, g->out, have, err) < 0)
                return -1;
            if (slice_flush == Z_FINISH ? ret == Z_STREAM_END
                                        : g->zs.avail_in == 0 && g->zs.avail_out != 0)
                break;
        }
        p += slice;
        len -= slice;
    } while (len);
    return 0;
}

static int
gzip_write(struct sink *s, const void *buf, size_t len, struct err *err)
{
    if (len == 0)
        return 0;
    return gzip_deflate(s, buf, len, Z_NO_FLUSH, err);
}

static int
gzip_finish(struct sink *s, struct err *err)
{
    if (gzip_deflate(s, NULL, 0, Z_FINISH, err) < 0)
        return -1;
    return sink_next_finish(s, err);
}

static void
gzip_free(struct sink *s)
{
    struct gzip_sink *g = (struct gzip_sink *)s;

    if (g->started)
        deflateEnd(&g->zs);
    free(g->out);
    free(g);
}

static const struct sink_ops gzip_ops = {"gzip", gzip_write, gzip_finish, gzip_free};

struct sink *
gzip_sink_new(struct sink *next, int level)
{
    struct gzip_sink *g = xcalloc(1, sizeof(*g));

    sink_init(&g->base, &gzip_ops, next);
    if (level == 0)
        level = GZIP_LEVEL_DEFAULT;
    if (level < 1)
        level = 1;
    if (level > 9)
        level = 9;
    g->level = level;
    return &g->base;
}

static int
gunzip_start(struct gzip_sink *g, struct err *err)
{
    if (g->started)
        return 0;
    if (inflateInit2(&g->zs, GZIP_WINDOW_BITS) != Z_OK)
        return err_set(err, ERR_INTERNAL, "could not start gzip decompression");
    g->out = xmalloc(GZIP_OUT_SIZE);
    g->started = 1;
    return 0;
}

static int
gunzip_write(struct sink *s, const void *buf, size_t len, struct err *err)
{
    struct gzip_sink *g = (struct gzip_sink *)s;
    const unsigned char *p = buf;

    if (gunzip_start(g, err) < 0)
        return -1;
    while (len) {
        size_t slice = len > (1u << 30) ? (1u << 30) : len;

        if (g->ended)
            return err_set(err, ERR_CORRUPT, "gzip data has trailing garbage");
        g->zs.next_in = (unsigned char *)p;
        g->zs.avail_in = (uInt)slice;
        for (;;) {
            int ret;
            size_t have;

            g->zs.next_out = g->out;
            g->zs.avail_out = GZIP_OUT_SIZE;
            ret = inflate(&g->zs, Z_NO_FLUSH);
            switch (ret) {
            case Z_OK:
            case Z_BUF_ERROR: /* no progress possible: needs more input */
                break;
            case Z_STREAM_END:
                g->ended = 1;
                break;
            case Z_MEM_ERROR:
                return err_set(err, ERR_INTERNAL, "out of memory in gzip decompression");
            default:
                return err_set(err, ERR_CORRUPT, "gzip data is corrupt: %s",
                               g->zs.msg ? g->zs.msg : "invalid data");
            }
            have = GZIP_OUT_SIZE - g->zs.avail_out;
            if (have && sink_next_write(s, g->out, have, err) < 0)
                return -1;
            if (g->ended) {
                if (g->zs.avail_in)
                    return err_set(err, ERR_CORRUPT, "gzip data has trailing garbage");
                break;
            }
            if (g->zs.avail_out != 0) {
                if (g->zs.avail_in == 0)
                    break;
                if (ret == Z_BUF_ERROR)
                    return err_set(err, ERR_INTERNAL, "gzip decompression made no progress");
            }
        }
        p += slice;
        len -= slice;
    }
    return 0;
}

static int
gunzip_finish(struct sink *s, struct err *err)
{
    struct gzip_sink *g = (struct gzip_sink *)s;

    if (!g->ended)
        return err_set(err, ERR_CORRUPT, "gzip data is truncated");
    return sink_next_finish(s, err);
}

static void
gunzip_free(struct sink *s)
{
    struct gzip_sink *g = (struct gzip_sink *)s;

    if (g->started)
        inflateEnd(&g->zs);
    free(g->out);
    free(g);
}

static const struct sink_ops gunzip_ops = {"gunzip", gunzip_write, gunzip_finish, gunzip_free};

struct sink *
gunzip_sink_new(struct sink *next)
{
    struct gzip_sink *g = xcalloc(1, sizeof(*g));

    sink_init(&g->base, &gunzip_ops, next);
    return &g->base;
}
