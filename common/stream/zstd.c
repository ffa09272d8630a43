/* SPDX-License-Identifier: MIT */
/*
 * zstd compression and decompression stages (libzstd streaming API). Both
 * work through one fixed output buffer, so memory does not depend on the
 * size of the data. The decoder accepts concatenated frames (the strict one
 * of objects: exactly one frame, carrying its content checksum), limits the
 * window a frame may ask for (ZSTD_WINDOWLOG_LIMIT_DEFAULT, 128 MiB, the
 * zstd tool's own limit) and reports damaged or incomplete input as
 * ERR_CORRUPT instead of passing anything made up on. The adopter takes a
 * frame compressed elsewhere (PostgreSQL's server-side compression): see
 * stages.h.
 */
#include "stream/stages.h"

#include <openssl/evp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include <zstd.h>

#include "base/xmalloc.h"

/*
 * Level 1 by default (STREAM_ZSTD_LEVEL_DEFAULT, stages.h): compression is
 * most of the CPU of a WAL push. Levels above 19 need windows beyond what
 * decoders accept by default.
 */
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
    bool strict;           /* decoder: one frame, with a content checksum */
    bool frame_done;       /* decoder: the last call ended a frame */
    unsigned char head[5]; /* strict: the frame's magic and descriptor, as they arrive */
    size_t head_len;
};

/* RFC 8878: the frame magic, and the descriptor's Content_Checksum_flag. */
#define ZSTD_FRAME_MAGIC 0xFD2FB528u
#define ZSTD_FD_CHECKSUM 0x04
#define ZSTD_FRAME_HEAD 5

static uint32_t
le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/*
 * Take the first bytes of a frame into head (they may come split over
 * writes); once there are five, check them: ERR_CORRUPT unless it is a zstd
 * frame (not a skippable one) whose descriptor announces a content checksum
 * when that is required.
 */
static int
frame_head(unsigned char head[ZSTD_FRAME_HEAD], size_t *have, const unsigned char *buf, size_t len,
           bool need_checksum, struct err *err)
{
    size_t n = ZSTD_FRAME_HEAD - *have;

    if (*have >= ZSTD_FRAME_HEAD)
        return 0;
    if (n > len)
        n = len;
    memcpy(head + *have, buf, n);
    *have += n;
    if (*have < ZSTD_FRAME_HEAD)
        return 0;
    if (le32(head) != ZSTD_FRAME_MAGIC)
        return err_set(err, ERR_CORRUPT, "zstd data is corrupt: not a zstd frame");
    if (need_checksum && !(head[4] & ZSTD_FD_CHECKSUM))
        return err_set(err, ERR_CORRUPT, "zstd frame has no content checksum");
    return 0;
}

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
        level = STREAM_ZSTD_LEVEL_DEFAULT;
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
    if (len == 0)
        return 0;
    if (z->strict && frame_head(z->head, &z->head_len, buf, len, true, err) < 0)
        return -1;
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
        if (z->strict && z->frame_done)
            return err_set(err, ERR_CORRUPT, "zstd data continues after the end of its frame");
        ret = ZSTD_decompressStream(z->dctx, &out, &in);
        if (ZSTD_isError(ret))
            return err_set(err, ERR_CORRUPT, "zstd data is corrupt: %s", ZSTD_getErrorName(ret));
        z->last_ret = ret;
        z->frame_done = ret == 0;
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
            z->frame_done = ret == 0;
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

struct sink *
unzstd_sink_new_strict(struct sink *next)
{
    struct sink *s = unzstd_sink_new(next);

    ((struct zstd_sink *)s)->strict = true;
    return s;
}

/* ------------------------------------------------------------------ */
/* Adopting a frame compressed elsewhere */

struct zstd_adopt {
    struct sink base;
    struct zstd_adopt_result *res;
    ZSTD_DCtx *dctx;
    unsigned char *out;
    size_t out_size;
    XXH64_state_t *xxh;
    EVP_MD_CTX *md;
    unsigned char head[ZSTD_FRAME_HEAD];
    size_t head_len;
    bool has_checksum; /* the frame carries its own: passed on as it is, checked by zstd */
    bool seen_input;
    size_t last_ret; /* 0 once the frame is complete */
};

static int
adopt_start(struct zstd_adopt *a, struct err *err)
{
    if (a->dctx)
        return 0;
    a->dctx = ZSTD_createDCtx();
    a->xxh = XXH64_createState();
    a->md = EVP_MD_CTX_new();
    if (!a->dctx || !a->xxh || !a->md)
        return err_set(err, ERR_INTERNAL, "could not set up the zstd frame check");
    if (ZSTD_isError(ZSTD_DCtx_setParameter(a->dctx, ZSTD_d_windowLogMax, UNZSTD_WINDOW_LOG_MAX)))
        return err_set(err, ERR_INTERNAL, "could not limit the zstd window");
    if (XXH64_reset(a->xxh, 0) == XXH_ERROR || EVP_DigestInit_ex(a->md, EVP_sha256(), NULL) != 1)
        return err_set(err, ERR_INTERNAL, "could not start the plaintext checksums");
    a->out_size = ZSTD_DStreamOutSize();
    a->out = xmalloc(a->out_size);
    return 0;
}

/* Decode what came in, to count, hash and check the plaintext (which goes nowhere). */
static int
adopt_decode(struct zstd_adopt *a, const void *buf, size_t len, struct err *err)
{
    ZSTD_inBuffer in = {buf, len, 0};

    while (in.pos < in.size) {
        if (a->last_ret == 0 && a->seen_input)
            return err_set(err, ERR_CORRUPT, "zstd data continues after the end of its frame");
        a->seen_input = true;
        do {
            ZSTD_outBuffer out = {a->out, a->out_size, 0};
            size_t ret = ZSTD_decompressStream(a->dctx, &out, &in);

            if (ZSTD_isError(ret))
                return err_set(err, ERR_CORRUPT, "zstd data is corrupt: %s",
                               ZSTD_getErrorName(ret));
            a->last_ret = ret;
            if (out.pos) {
                if (XXH64_update(a->xxh, a->out, out.pos) == XXH_ERROR ||
                    EVP_DigestUpdate(a->md, a->out, out.pos) != 1)
                    return err_set(err, ERR_INTERNAL, "plaintext checksum update failed");
                __atomic_add_fetch(&a->res->plain_size, (uint64_t)out.pos, __ATOMIC_RELAXED);
            }
            if (out.pos < out.size)
                break;
        } while (a->last_ret != 0);
    }
    return 0;
}

static int
adopt_write(struct sink *s, const void *buf, size_t len, struct err *err)
{
    struct zstd_adopt *a = (struct zstd_adopt *)s;
    const unsigned char *p = buf;
    size_t had = a->head_len;

    if (len == 0)
        return 0;
    if (adopt_start(a, err) < 0)
        return -1;
    if (frame_head(a->head, &a->head_len, p, len, false, err) < 0)
        return -1;
    if (adopt_decode(a, p, len, err) < 0)
        return -1;
    if (had < ZSTD_FRAME_HEAD) {
        /* the head goes on once complete, with the checksum flag set */
        size_t took = a->head_len - had;

        if (a->head_len < ZSTD_FRAME_HEAD)
            return 0;
        a->has_checksum = (a->head[4] & ZSTD_FD_CHECKSUM) != 0;
        unsigned char patched[ZSTD_FRAME_HEAD];
        memcpy(patched, a->head, sizeof(patched));
        patched[4] |= ZSTD_FD_CHECKSUM;
        if (sink_next_write(s, patched, sizeof(patched), err) < 0)
            return -1;
        p += took;
        len -= took;
    }
    return len ? sink_next_write(s, p, len, err) : 0;
}

static int
adopt_finish(struct sink *s, struct err *err)
{
    struct zstd_adopt *a = (struct zstd_adopt *)s;
    unsigned int n = 0;

    if (adopt_start(a, err) < 0)
        return -1;
    if (!a->seen_input || a->head_len < ZSTD_FRAME_HEAD || a->last_ret != 0)
        return err_set(err, ERR_CORRUPT, "zstd data is truncated");
    if (!a->has_checksum) {
        /* Content_Checksum: the low 32 bits of XXH64 (seed 0), little-endian */
        uint64_t h = XXH64_digest(a->xxh);
        unsigned char sum[4] = {(unsigned char)h, (unsigned char)(h >> 8), (unsigned char)(h >> 16),
                                (unsigned char)(h >> 24)};

        if (sink_next_write(s, sum, sizeof(sum), err) < 0)
            return -1;
    }
    if (EVP_DigestFinal_ex(a->md, a->res->sha256, &n) != 1)
        return err_set(err, ERR_INTERNAL, "sha-256 final failed");
    return sink_next_finish(s, err);
}

static void
adopt_free(struct sink *s)
{
    struct zstd_adopt *a = (struct zstd_adopt *)s;

    ZSTD_freeDCtx(a->dctx);
    if (a->xxh)
        XXH64_freeState(a->xxh);
    EVP_MD_CTX_free(a->md);
    free(a->out);
    free(a);
}

static const struct sink_ops adopt_ops = {"zstd-adopt", adopt_write, adopt_finish, adopt_free};

struct sink *
zstd_adopt_sink_new(struct sink *next, struct zstd_adopt_result *res)
{
    struct zstd_adopt *a = xcalloc(1, sizeof(*a));

    sink_init(&a->base, &adopt_ops, next);
    a->res = res;
    memset(res, 0, sizeof(*res));
    a->last_ret = 1;
    return &a->base;
}
