/* SPDX-License-Identifier: MIT */
/*
 * Adopting a zstd frame compressed elsewhere as an object body (what
 * ferry-basebackup does with PostgreSQL's server-side compression): frames
 * made by libzstd the way the server makes them (no content checksum, no
 * content size, one or more worker threads), fed in any pieces, become
 * objects that every decoder accepts, with the plaintext's exact size and
 * SHA-256; damaged, truncated or extended frames are refused. And the strict
 * decoding of object bodies: one frame, with its content checksum.
 */
#include <openssl/evp.h>
#include <zstd.h>

#include "check.h"
#include "helpers.h"

/* A frame as PostgreSQL's bbsink_zstd makes it: streamed, no checksum unless asked. */
static void
server_frame(struct buf *out, const void *data, size_t len, int workers, bool checksum)
{
    ZSTD_CCtx *c = ZSTD_createCCtx();
    size_t cap = ZSTD_compressBound(len) + 4096;
    ZSTD_inBuffer in = {data, 0, 0};
    size_t ret;

    buf_reset(out);
    buf_reserve(out, cap);
    ZSTD_outBuffer o = {out->data, cap, 0};
    if (ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, 1)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, checksum ? 1 : 0)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_nbWorkers, workers)))
        abort();
    /* in 32 KiB messages, as the walsender hands them on */
    while (in.size < len) {
        in.size = len - in.size > 32768 ? in.size + 32768 : len;
        do {
            ret = ZSTD_compressStream2(c, &o, &in, ZSTD_e_continue);
            if (ZSTD_isError(ret))
                abort();
        } while (in.pos < in.size);
    }
    do {
        ret = ZSTD_compressStream2(c, &o, &in, ZSTD_e_end);
        if (ZSTD_isError(ret))
            abort();
    } while (ret != 0);
    out->len = o.pos;
    ZSTD_freeCCtx(c);
}

static void
sha256(unsigned char out[32], const void *p, size_t n)
{
    EVP_Digest(p, n, out, NULL, EVP_sha256(), NULL);
}

/* Adopt frame into an object (out), written in pieces of chunk (0: random sizes). */
static int
adopt_to(struct buf *out, const struct buf *frame, const struct crypt_key *key, size_t chunk,
         struct zstd_adopt_result *res, struct object_info *info, struct err *err)
{
    struct object_opts o = {OBJECT_COMPRESS_ZSTD, 0, key};
    struct sink *s;
    int rc;

    buf_reset(out);
    s = object_encode_sink_new_precompressed(buf_sink_new(out, 0), &o, info, res->sha256,
                                             &res->plain_size);
    s = zstd_adopt_sink_new(s, res);
    rc = feed(s, frame->data, frame->len, chunk, 40000, err);
    sink_free(s);
    return rc;
}

/* Decode obj with the codec-checked decoder (the one restore uses) and the hashing one. */
static void
check_decodes(const struct buf *obj, const struct crypt_key *key, const unsigned char *data,
              size_t len)
{
    struct buf plain = BUF_INIT;
    struct object_info info;
    unsigned char want[32];
    struct err err;
    struct sink *s;

    sha256(want, data, len);
    CHECK_OK(decode_to(&plain, obj->data, obj->len, key, 0, &info, &err), &err);
    CHECK_INT(plain.len, len);
    CHECK(plain.len == len && (len == 0 || memcmp(plain.data, data, len) == 0));
    CHECK(memcmp(info.sha256, want, 32) == 0);
    CHECK_INT(info.plain_size, len);
    buf_reset(&plain);
    s = object_decode_sink_new_codec_checked(buf_sink_new(&plain, 0), key, &info);
    CHECK_OK(feed(s, obj->data, obj->len, 0, 70000, &err), &err);
    sink_free(s);
    CHECK(plain.len == len && (len == 0 || memcmp(plain.data, data, len) == 0));
    buf_free(&plain);
}

static void
test_adopt_round_trips(void)
{
    static const size_t sizes[] = {0, 1, 4, 5, 70000, 3 << 20};
    const size_t big = 3 << 20;
    unsigned char *data = xmalloc(big);
    struct crypt_key *key = raw_key(7);

    for (int kind = 0; kind < 2; kind++) {
        if (kind == 0)
            fill_text(data, big);
        else
            fill_random(data, big);
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            for (int workers = 0; workers <= 2; workers += 2) {
                for (int enc = 0; enc < 2; enc++) {
                    size_t n = sizes[i];
                    struct buf frame = BUF_INIT, obj = BUF_INIT;
                    struct zstd_adopt_result res;
                    struct object_info info;
                    unsigned char want[32];
                    struct err err;

                    server_frame(&frame, data, n, workers, false);
                    CHECK(frame.len >= 5 && !(frame.data[4] & 0x04));
                    /* one byte at a time for the small ones: the head spans writes */
                    CHECK_OK(adopt_to(&obj, &frame, enc ? key : NULL, n < 100000 ? 1 : 0, &res,
                                      &info, &err),
                             &err);
                    sha256(want, data, n);
                    CHECK_INT(res.plain_size, n);
                    CHECK(memcmp(res.sha256, want, 32) == 0);
                    CHECK_INT(info.plain_size, n);
                    CHECK(memcmp(info.sha256, want, 32) == 0);
                    CHECK_INT(info.stored_size, obj.len);
                    check_decodes(&obj, enc ? key : NULL, data, n);
                    buf_free(&frame);
                    buf_free(&obj);
                }
            }
        }
    }
    crypt_key_free(key);
    free(data);
}

/* A frame that has its checksum already is stored byte for byte: the object equals ferry's own. */
static void
test_adopt_frame_with_checksum(void)
{
    unsigned char data[100000];
    struct buf frame = BUF_INIT, obj = BUF_INIT, plain = BUF_INIT, body = BUF_INIT;
    struct zstd_adopt_result res;
    struct err err;
    struct sink *s;

    fill_text(data, sizeof(data));
    server_frame(&frame, data, sizeof(data), 0, true);
    CHECK_OK(adopt_to(&obj, &frame, NULL, 0, &res, NULL, &err), &err);
    check_decodes(&obj, NULL, data, sizeof(data));
    /* what the adopter passed on is the frame itself */
    s = zstd_adopt_sink_new(buf_sink_new(&body, 0), &res);
    CHECK_OK(feed(s, frame.data, frame.len, 0, 1000, &err), &err);
    sink_free(s);
    CHECK(body.len == frame.len && memcmp(body.data, frame.data, frame.len) == 0);
    /* and a frame without gets exactly its flag and 4 bytes more */
    server_frame(&frame, data, sizeof(data), 0, false);
    buf_reset(&body);
    s = zstd_adopt_sink_new(buf_sink_new(&body, 0), &res);
    CHECK_OK(feed(s, frame.data, frame.len, 0, 1000, &err), &err);
    sink_free(s);
    CHECK_INT(body.len, frame.len + 4);
    CHECK(body.len == frame.len + 4 && body.data[4] == (frame.data[4] | 0x04) &&
          memcmp(body.data + 5, frame.data + 5, frame.len - 5) == 0);
    buf_free(&frame);
    buf_free(&obj);
    buf_free(&plain);
    buf_free(&body);
}

static void
test_adopt_refuses_bad_frames(void)
{
    unsigned char data[200000];
    struct buf frame = BUF_INIT, bad = BUF_INIT, obj = BUF_INIT;
    struct zstd_adopt_result res;
    struct err err;

    fill_text(data, sizeof(data));
    server_frame(&frame, data, sizeof(data), 0, false);

    /* nothing, a part of the head, half, all but one byte */
    buf_reset(&bad);
    CHECK_FAIL(adopt_to(&obj, &bad, NULL, 0, &res, NULL, &err), &err, ERR_CORRUPT,
               "zstd data is truncated");
    buf_append(&bad, frame.data, 3);
    CHECK_FAIL(adopt_to(&obj, &bad, NULL, 1, &res, NULL, &err), &err, ERR_CORRUPT,
               "zstd data is truncated");
    buf_reset(&bad);
    buf_append(&bad, frame.data, frame.len / 2);
    CHECK_FAIL(adopt_to(&obj, &bad, NULL, 0, &res, NULL, &err), &err, ERR_CORRUPT,
               "zstd data is truncated");
    buf_reset(&bad);
    buf_append(&bad, frame.data, frame.len - 1);
    CHECK_FAIL(adopt_to(&obj, &bad, NULL, 0, &res, NULL, &err), &err, ERR_CORRUPT,
               "zstd data is truncated");

    /* anything after the frame: garbage, or a second frame */
    buf_reset(&bad);
    buf_append(&bad, frame.data, frame.len);
    buf_append(&bad, "x", 1);
    CHECK_FAIL(adopt_to(&obj, &bad, NULL, 0, &res, NULL, &err), &err, ERR_CORRUPT,
               "zstd data continues after the end of its frame");
    buf_reset(&bad);
    buf_append(&bad, frame.data, frame.len);
    buf_append(&bad, frame.data, frame.len);
    CHECK_FAIL(adopt_to(&obj, &bad, NULL, 1000, &res, NULL, &err), &err, ERR_CORRUPT,
               "zstd data continues after the end of its frame");

    /* not zstd at all; a skippable frame */
    CHECK_FAIL(adopt_to(&obj, &(struct buf){.data = (char *)"hello, world", .len = 12}, NULL, 0,
                        &res, NULL, &err),
               &err, ERR_CORRUPT, "zstd data is corrupt: not a zstd frame");
    {
        unsigned char skip[12] = {0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4};

        CHECK_FAIL(adopt_to(&obj, &(struct buf){.data = (char *)skip, .len = sizeof(skip)}, NULL, 0,
                            &res, NULL, &err),
                   &err, ERR_CORRUPT, "zstd data is corrupt: not a zstd frame");
    }

    /* damage inside the compressed blocks */
    buf_reset(&bad);
    buf_append(&bad, frame.data, frame.len);
    for (size_t i = 20; i < bad.len; i += bad.len / 7)
        bad.data[i] ^= 0x5a;
    CHECK_FAIL(adopt_to(&obj, &bad, NULL, 0, &res, NULL, &err), &err, ERR_CORRUPT, NULL);
    CHECK(strncmp(err.msg, "zstd data is corrupt: ", 22) == 0);
    buf_free(&frame);
    buf_free(&bad);
    buf_free(&obj);
}

/*
 * Object bodies are decoded strictly: a frame without a content checksum
 * (zstd could not vouch for the plaintext) or more than one frame is
 * corrupt, whichever decoder reads it.
 */
static void
test_strict_object_bodies(void)
{
    unsigned char data[50000], sha[32];
    uint64_t n = sizeof(data);
    struct buf frame = BUF_INIT, two = BUF_INIT, obj = BUF_INIT, plain = BUF_INIT;
    struct object_opts o = {OBJECT_COMPRESS_ZSTD, 0, NULL};
    struct object_info info;
    struct err err;
    struct sink *s;

    fill_text(data, sizeof(data));
    sha256(sha, data, sizeof(data));
    server_frame(&frame, data, sizeof(data), 0, false);
    s = object_encode_sink_new_precompressed(buf_sink_new(&obj, 0), &o, NULL, sha, &n);
    CHECK_OK(feed(s, frame.data, frame.len, 0, 1000, &err), &err);
    sink_free(s);
    CHECK_FAIL(decode_to(&plain, obj.data, obj.len, NULL, 0, &info, &err), &err, ERR_CORRUPT,
               "zstd frame has no content checksum");
    buf_reset(&plain);
    s = object_decode_sink_new_codec_checked(buf_sink_new(&plain, 0), NULL, &info);
    CHECK_FAIL(feed(s, obj.data, obj.len, 1, 0, &err), &err, ERR_CORRUPT,
               "zstd frame has no content checksum");
    sink_free(s);
    CHECK_INT(plain.len, 0);

    /* two frames (each checked) of half the data each */
    server_frame(&frame, data, sizeof(data) / 2, 0, true);
    buf_append(&two, frame.data, frame.len);
    server_frame(&frame, data + sizeof(data) / 2, sizeof(data) / 2, 0, true);
    buf_append(&two, frame.data, frame.len);
    buf_reset(&obj);
    s = object_encode_sink_new_precompressed(buf_sink_new(&obj, 0), &o, NULL, sha, &n);
    CHECK_OK(feed(s, two.data, two.len, 0, 1000, &err), &err);
    sink_free(s);
    CHECK_FAIL(decode_to(&plain, obj.data, obj.len, NULL, 0, &info, &err), &err, ERR_CORRUPT,
               "zstd data continues after the end of its frame");
    for (size_t chunk = 1; chunk <= 4096; chunk *= 64)
        CHECK_FAIL(decode_to(&plain, obj.data, obj.len, NULL, chunk, &info, &err), &err,
                   ERR_CORRUPT, "zstd data continues after the end of its frame");

    /* and only zstd may be given precompressed */
    o.compress = OBJECT_COMPRESS_GZIP;
    buf_reset(&obj);
    s = object_encode_sink_new_precompressed(buf_sink_new(&obj, 0), &o, NULL, sha, &n);
    CHECK_FAIL(feed(s, frame.data, frame.len, 0, 1000, &err), &err, ERR_USAGE,
               "a compressed object body must be zstd");
    sink_free(s);
    buf_free(&frame);
    buf_free(&two);
    buf_free(&obj);
    buf_free(&plain);
}

int
main(void)
{
    RUN(test_adopt_round_trips);
    RUN(test_adopt_frame_with_checksum);
    RUN(test_adopt_refuses_bad_frames);
    RUN(test_strict_object_bodies);
    return check_done();
}
