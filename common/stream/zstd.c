/* SPDX-License-Identifier: MIT */
/*
 * zstd compression and decompression stages (libzstd streaming API). Both
 * work through one fixed output buffer, so memory does not depend on the
 * size of the data. The decoder accepts concatenated frames, limits the
 * window a frame may ask for (ZSTD_WINDOWLOG_LIMIT_DEFAULT, 128 MiB, the
 * zstd tool's own limit) and reports damaged or incomplete input as
 * ERR_CORRUPT instead of passing anything made up on.
 */
#include "stream/stages.h"

#include <stdlib.h>
#include <zstd.h>

#include "base/xmalloc.h"

/*
 * Level 1 by default: on real WAL and pgbench tables it compresses ~35% faster
 * than level 3 for ~13% more bytes (bench/README.md), and compression is most
 * of the CPU of a WAL push. Levels above 19 need windows beyond what decoders
 * accept by default.
 */
#define ZSTD_LEVEL_DEFAULT 1
#define ZSTD_LEVEL_MAX 19
#define UNZSTD_WINDOW_LOG_MAX 27

struct zstd_sink {
    struct sink base;
    ZSTD_CCtx *cctx;
    ZSTD_DCtx *dctx;
    int level;
    unsigned char *out;
    size_t out_size;
    size_t last_ret; /* decoder: 0 when the last frame is complete */
    int started;
    int seen_input;
};

static int
zstd_start(struct zstd_sink *z, struct err *err)
{
    if (z->started)
        return 0;
    z->cctx = ZSTD_createCCtx();
    if (!z->cctx)
        return err_set(err, ERR_INTERNAL, "could not create a zstd compression context");
    if (ZSTD_isError(ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_compressionLevel, z->level)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_checksumFlag, 1)))
        return err_set(err, ERR_INTERNAL, "could not set zstd compression level %d", z->level);
    z->out_size = ZSTD_CStreamOutSize();
    z->out = xmalloc(z->out_size);
    z->started = 1;
    return 0;
}

static int
zstd_compress(struct sink *s, const void *buf, size_t len, ZSTD_EndDirective mode, struct err *err)
{
    struct zstd_sink *z = (struct zstd_sink *)s;
    ZSTD_inBuffer in = {buf, len, 0};

    if (zstd_start(z, err) < 0)
        return -1;
    for (;;) {
        ZSTD_outBuffer out = {z->out, z->out_size, 0};
        size_t ret = ZSTD_compressStream2(z->cctx, &out, &in, mode);

        if (ZSTD_isError(ret))
            return err_set(err, ERR_INTERNAL, "zstd compression failed: %s",
                           ZSTD_getErrorName(ret));
        if (out.pos && sink_next_write(s, z->out, out.pos, err) < 0)
            return -1;
        if (mode == ZSTD_e_end ? ret == 0 : in.pos == in.size)
            return 0;
    }
}

static int
zstd_write(struct sink *s, const void *buf, size_t len, struct err *err)
{
    if (len == 0)
        return 0;
    return zstd_compress(s, buf, len, ZSTD_e_continue, err);
}

static int
zstd_finish(struct sink *s, struct err *err)
{
    if (zstd_compress(s, NULL, 0, ZSTD_e_end, err) < 0)
        return -1;
    return sink_next_finish(s, err);
}

static void
zstd_free(struct sink *s)
{
    struct zstd_sink *z = (struct zstd_sink *)s;

    ZSTD_freeCCtx(z->cctx);
    ZSTD_freeDCtx(z->dctx);
    free(z->out);
    free(z);
}

static const struct sink_ops zstd_ops = {"zstd", zstd_write, zstd_finish, zstd_free};

struct sink *
zstd_sink_new(struct sink *next, int level)
{
    struct zstd_sink *z = xcalloc(1, sizeof(*z));

    sink_init(&z->base, &zstd_ops, next);
    if (level == 0)
        level = ZSTD_LEVEL_DEFAULT;
    if (level > ZSTD_LEVEL_MAX)
        level = ZSTD_LEVEL_MAX;
    if (level < ZSTD_minCLevel())
        level = ZSTD_minCLevel();
    z->level = level;
    return &z->base;
}

static int
unzstd_start(struct zstd_sink *z, struct err *err)
{
    if (z->started)
        return 0;
    z->dctx = ZSTD_createDCtx();
    if (!z->dctx)
        return err_set(err, ERR_INTERNAL, "could not create a zstd decompression context");
    if (ZSTD_isError(ZSTD_DCtx_setParameter(z->dctx, ZSTD_d_windowLogMax, UNZSTD_WINDOW_LOG_MAX)))
        return err_set(err, ERR_INTERNAL, "could not limit the zstd window");
    z->out_size = ZSTD_DStreamOutSize();
    z->out = xmalloc(z->out_size);
    z->started = 1;
    return 0;
}

static int
unzstd_write(struct sink *s, const void *buf, size_t len, struct err *err)
{
    struct zstd_sink *z = (struct zstd_sink *)s;
    ZSTD_inBuffer in = {buf, len, 0};

    if (unzstd_start(z, err) < 0)
        return -1;
    if (len)
        z->seen_input = 1;
    /*
     * Loop while input is left or the output buffer came back full (the
     * decoder may hold more output for the same input).
     */
    for (;;) {
        ZSTD_outBuffer out = {z->out, z->out_size, 0};
        size_t ret;

        if (in.pos == in.size)
            break;
        ret = ZSTD_decompressStream(z->dctx, &out, &in);
        if (ZSTD_isError(ret))
            return err_set(err, ERR_CORRUPT, "zstd data is corrupt: %s", ZSTD_getErrorName(ret));
        z->last_ret = ret;
        if (out.pos && sink_next_write(s, z->out, out.pos, err) < 0)
            return -1;
        /* ret 0: the frame is complete and flushed (calling again would start a new one) */
        while (out.pos == out.size && ret != 0) {
            out.pos = 0;
            ret = ZSTD_decompressStream(z->dctx, &out, &in);
            if (ZSTD_isError(ret))
                return err_set(err, ERR_CORRUPT, "zstd data is corrupt: %s",
                               ZSTD_getErrorName(ret));
            z->last_ret = ret;
            if (out.pos && sink_next_write(s, z->out, out.pos, err) < 0)
                return -1;
        }
    }
    return 0;
}

static int
unzstd_finish(struct sink *s, struct err *err)
{
    struct zstd_sink *z = (struct zstd_sink *)s;

    if (!z->seen_input || z->last_ret != 0)
        return err_set(err, ERR_CORRUPT, "zstd data is truncated");
    return sink_next_finish(s, err);
}

static const struct sink_ops unzstd_ops = {"unzstd", unzstd_write, unzstd_finish, zstd_free};

struct sink *
unzstd_sink_new(struct sink *next)
{
    struct zstd_sink *z = xcalloc(1, sizeof(*z));

    sink_init(&z->base, &unzstd_ops, next);
    return &z->base;
}
