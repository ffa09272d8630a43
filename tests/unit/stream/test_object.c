/* SPDX-License-Identifier: MIT */
/*
 * The object format: round trips for every compression and encryption in
 * any chunking, bounded memory, and the exact error for every kind of
 * damage: truncation in each region, flipped bits, reordered or dropped
 * chunks, trailing data, wrong or missing key, wrong magic or version.
 */
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "helpers.h"

/* Layout facts the tests rely on (docs/FORMAT.md). */
#define HDR_PLAIN 24
#define HDR_RAW 88
#define HDR_SCRYPT 108
#define CHUNK 65536
#define TAG 16
#define TAIL 64

static struct crypt_key *key_a, *key_b, *key_pass;

static void
sha(unsigned char out[32], const void *p, size_t n)
{
    EVP_Digest(p, n, out, NULL, EVP_sha256(), NULL);
}

static void
hex(char out[65], const unsigned char d[32])
{
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static double
now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long
max_rss_kib(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static size_t
header_len(const struct crypt_key *k)
{
    return !k ? HDR_PLAIN : k == key_pass ? HDR_SCRYPT : HDR_RAW;
}

/*
 * 256 MiB through encode (zstd, encrypted) and straight into decode: the
 * peak RSS must not grow by 32 MiB. Runs first, so earlier tests do not
 * hide growth in the peak.
 */
static void
test_memory_bounded_256mib(void)
{
    size_t pool_size = 4 << 20, block = 1 << 20, total = (size_t)256 << 20;
    unsigned char *pool = xmalloc(pool_size + block);
    struct object_info enc_info, dec_info;
    struct object_opts o = {OBJECT_COMPRESS_ZSTD, 0, key_a};
    struct sink *s;
    struct err err;
    long before;
    double t0, t;

    fill_text(pool, pool_size + block);
    before = max_rss_kib();
    t0 = now();
    s = object_encode_sink_new(object_decode_sink_new(null_sink_new(), key_a, &dec_info), &o,
                               &enc_info);
    for (size_t done = 0; done < total; done += block)
        CHECK_OK(sink_write(s, pool + (rng_next() % pool_size), block, &err), &err);
    CHECK_OK(sink_finish(s, &err), &err);
    sink_free(s);
    t = now() - t0;
    printf("# 256 MiB zstd+aes-256-gcm encode+decode: %.2f s (%.0f MB/s), peak rss growth %ld "
           "KiB\n",
           t, (double)total / t / 1e6, max_rss_kib() - before);
    CHECK(max_rss_kib() - before < 32 * 1024);
    CHECK_INT(enc_info.plain_size, total);
    CHECK_INT(dec_info.plain_size, total);
    CHECK_INT(dec_info.stored_size, enc_info.stored_size);
    CHECK(memcmp(enc_info.sha256, dec_info.sha256, 32) == 0);
    free(pool);
}

/* Encode and decode throughput, separately, for zstd and zstd + encryption (64 MiB text). */
static void
test_throughput(void)
{
    size_t total = 64 << 20;
    unsigned char *data = xmalloc(total);

    fill_text(data, total);
    for (int enc = 0; enc < 2; enc++) {
        struct object_opts o = {OBJECT_COMPRESS_ZSTD, 0, enc ? key_a : NULL};
        struct buf obj = BUF_INIT;
        struct object_info info;
        uint64_t count = 0;
        struct err err;
        struct sink *s = object_encode_sink_new(buf_sink_new(&obj, 0), &o, &info);
        double t0 = now(), te, td;

        buf_reserve(&obj, total / 2);
        for (size_t i = 0; i < total; i += 1 << 20)
            CHECK_OK(sink_write(s, data + i, 1 << 20, &err), &err);
        CHECK_OK(sink_finish(s, &err), &err);
        te = now() - t0;
        sink_free(s);
        s = object_decode_sink_new(count_sink_new(null_sink_new(), &count), o.key, NULL);
        t0 = now();
        CHECK_OK(feed(s, obj.data, obj.len, 1 << 20, 0, &err), &err);
        td = now() - t0;
        sink_free(s);
        CHECK_INT(count, total);
        printf("# %s: encode %.0f MB/s, decode %.0f MB/s (ratio %.2f)\n",
               enc ? "zstd+aes-256-gcm" : "zstd", (double)total / te / 1e6,
               (double)total / td / 1e6, (double)obj.len / (double)total);
        buf_free(&obj);
    }
    free(data);
}

static void
round_trip(const unsigned char *data, size_t n, enum object_compress c, const struct crypt_key *k,
           int one_byte)
{
    struct buf obj = BUF_INIT, out = BUF_INIT;
    struct object_info ei, di, ii;
    unsigned char digest[32];
    struct err err;
    struct object_opts o = {c, 0, k};
    struct sink *s = object_encode_sink_new(buf_sink_new(&obj, 0), &o, &ei);

    memset(&di, 0xff, sizeof(di));
    CHECK_OK(feed(s, data, n, one_byte && n <= 65537 ? 1 : 0, 200000, &err), &err);
    sink_free(s);
    sha(digest, data, n);
    CHECK_INT(ei.plain_size, n);
    CHECK_INT(ei.stored_size, obj.len);
    CHECK(memcmp(ei.sha256, digest, 32) == 0);
    CHECK(ei.compress == c && ei.encrypted == (k != NULL));
    CHECK(object_is_ferry(obj.data, obj.len));

    CHECK_OK(decode_to(&out, obj.data, obj.len, k, one_byte ? 1 : 0, &di, &err), &err);
    CHECK(out.len == n && (n == 0 || memcmp(out.data, data, n) == 0));
    CHECK_INT(di.plain_size, n);
    CHECK_INT(di.stored_size, obj.len);
    CHECK(memcmp(di.sha256, digest, 32) == 0);
    CHECK(di.compress == c && di.encrypted == (k != NULL));
    CHECK_STR(di.kdf, !k ? "" : k == key_pass ? "scrypt" : "raw-key");

    CHECK_OK(object_inspect(&ii, obj.data, obj.len < 256 ? obj.len : 256, obj.data + obj.len - TAIL,
                            TAIL, obj.len, &err),
             &err);
    CHECK(ii.compress == c && ii.encrypted == (k != NULL));
    CHECK_INT(ii.stored_size, obj.len);
    CHECK_INT(ii.plain_size, k ? 0 : n);
    if (!k)
        CHECK(memcmp(ii.sha256, digest, 32) == 0);
    buf_free(&obj);
    buf_free(&out);
}

static void
test_round_trips_all_combinations(void)
{
    static const size_t sizes[] = {0, 1, 65535, 65536, 65537, 5 << 20};
    const struct crypt_key *keys[] = {NULL, key_a, key_pass};
    unsigned char *data = xmalloc(5 << 20);

    for (int kind = 0; kind < 2; kind++) {
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            if (kind == 0)
                fill_random(data, sizes[i]);
            else
                fill_text(data, sizes[i]);
            for (enum object_compress c = OBJECT_COMPRESS_NONE; c <= OBJECT_COMPRESS_GZIP; c++)
                for (int k = 0; k < 3; k++) {
                    int before = check_cur_failed;

                    check_cur_failed = 0;
                    round_trip(data, sizes[i], c, keys[k], 0);
                    /* one byte at a time: everything but the 5 MiB cases (below) */
                    if (sizes[i] <= 65537)
                        round_trip(data, sizes[i], c, keys[k], 1);
                    if (check_cur_failed)
                        printf("# ^ %s data, size %zu, %s, key %d\n", kind ? "text" : "random",
                               sizes[i], object_compress_name(c), k);
                    check_cur_failed |= before;
                }
        }
    }
    free(data);
}

static void
test_round_trip_5mib_one_byte_at_a_time(void)
{
    unsigned char *data = xmalloc(5 << 20);

    fill_text(data, 5 << 20);
    round_trip(data, 5 << 20, OBJECT_COMPRESS_ZSTD, key_a, 1);
    fill_random(data, 5 << 20);
    round_trip(data, 5 << 20, OBJECT_COMPRESS_NONE, key_a, 1);
    free(data);
}

/* Encode n bytes of text into obj. */
static void
make_object(struct buf *obj, size_t n, enum object_compress c, const struct crypt_key *k)
{
    unsigned char *data = xmalloc(n ? n : 1);
    struct err err;

    buf_reset(obj);
    fill_random(data, n);
    CHECK_OK(encode_to(obj, data, n, c, k, NULL, &err), &err);
    free(data);
}

static void
test_truncated_in_every_region(void)
{
    const struct crypt_key *keys[] = {NULL, key_a, key_pass};
    struct buf obj = BUF_INIT, out = BUF_INIT;
    struct err err;

    for (enum object_compress c = OBJECT_COMPRESS_NONE; c <= OBJECT_COMPRESS_GZIP; c++)
        for (int k = 0; k < 3; k++) {
            size_t h = header_len(keys[k]);
            /* random data: compressed or not, three chunks */
            make_object(&obj, 150000, c, keys[k]);
            size_t cuts[] = {0,
                             1,
                             7,
                             8,
                             15,
                             16,
                             h - 1,
                             h,
                             h + 1,
                             h + 3,
                             h + 4,
                             h + 100,
                             h + 4 + CHUNK + (keys[k] ? TAG : 0),
                             h + 4 + CHUNK + (keys[k] ? TAG : 0) + 2,
                             obj.len - TAIL - 1,
                             obj.len - TAIL,
                             obj.len - TAIL + 1,
                             obj.len - 8,
                             obj.len - 1};

            for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
                buf_reset(&out);
                CHECK_FAIL(decode_to(&out, obj.data, cuts[i], keys[k], 0, NULL, &err), &err,
                           ERR_CORRUPT, "object is truncated");
                CHECK_FAIL(decode_to(&out, obj.data, cuts[i], keys[k], 1, NULL, &err), &err,
                           ERR_CORRUPT, "object is truncated");
                if (check_cur_failed)
                    printf("# ^ cut at %zu of %zu, %s, key %d\n", cuts[i], obj.len,
                           object_compress_name(c), k);
            }
        }
    buf_free(&obj);
    buf_free(&out);
}

/* Decode obj with byte i xor mask. */
static int
decode_flipped(const struct buf *obj, size_t i, unsigned char mask, const struct crypt_key *k,
               struct buf *out, struct err *err)
{
    struct buf bad = BUF_INIT;
    int rc;

    buf_append(&bad, obj->data, obj->len);
    bad.data[i] ^= (char)mask;
    buf_reset(out);
    rc = decode_to(out, bad.data, bad.len, k, 0, NULL, err);
    buf_free(&bad);
    return rc;
}

static void
test_flipped_bit_in_header(void)
{
    const struct crypt_key *keys[] = {NULL, key_a, key_pass};
    struct buf obj = BUF_INIT, out = BUF_INIT;
    struct err err;

    for (int k = 0; k < 3; k++) {
        size_t h = header_len(keys[k]);

        make_object(&obj, 1000, OBJECT_COMPRESS_ZSTD, keys[k]);
        CHECK_FAIL(decode_flipped(&obj, 0, 0x01, keys[k], &out, &err), &err, ERR_CORRUPT,
                   "not a ferry object");
        CHECK_FAIL(decode_flipped(&obj, 7, 0x80, keys[k], &out, &err), &err, ERR_CORRUPT,
                   "not a ferry object");
        CHECK_FAIL(decode_flipped(&obj, 8, 0x02, keys[k], &out, &err), &err, ERR_CORRUPT,
                   "unsupported object format version 3 (this ferry reads version 1)");
        /* every other header byte is covered by the header check */
        for (size_t i = 9; i < h; i++) {
            if (i == 12 || i == 13)
                continue; /* the length: see below */
            CHECK_FAIL(decode_flipped(&obj, i, 0x04, keys[k], &out, &err), &err, ERR_CORRUPT,
                       "object header checksum mismatch");
            CHECK_INT(out.len, 0);
        }
        CHECK_FAIL(decode_flipped(&obj, 12, 0x01, keys[k], &out, &err), &err, ERR_CORRUPT,
                   "object header checksum mismatch");
        {
            char want[64];

            snprintf(want, sizeof(want), "object header is corrupt: bad length %zu", h + 256);
            CHECK_FAIL(decode_flipped(&obj, 13, 0x01, keys[k], &out, &err), &err, ERR_CORRUPT,
                       want);
        }
    }
    buf_free(&obj);
    buf_free(&out);
}

static void
test_flipped_bit_in_body_encrypted(void)
{
    struct buf obj = BUF_INIT, out = BUF_INIT;
    struct err err;
    size_t h = HDR_RAW, rec = 4 + CHUNK + TAG;

    make_object(&obj, 3 * CHUNK + 10, OBJECT_COMPRESS_NONE, key_a);
    CHECK_INT(obj.len, h + 3 * rec + 4 + 10 + TAG + TAIL);
    /* ciphertext of chunk 0: nothing released */
    CHECK_FAIL(decode_flipped(&obj, h + 4 + 100, 0x01, key_a, &out, &err), &err, ERR_CORRUPT,
               "object is corrupt: chunk 0 failed authentication");
    CHECK_INT(out.len, 0);
    /* tag of chunk 1: chunk 0 released, nothing of chunk 1 */
    CHECK_FAIL(decode_flipped(&obj, h + 2 * rec - 1, 0x80, key_a, &out, &err), &err, ERR_CORRUPT,
               "object is corrupt: chunk 1 failed authentication");
    CHECK_INT(out.len, CHUNK);
    /* the last chunk */
    CHECK_FAIL(decode_flipped(&obj, h + 3 * rec + 6, 0x01, key_a, &out, &err), &err, ERR_CORRUPT,
               "object is corrupt: chunk 3 failed authentication");
    CHECK_INT(out.len, 3 * CHUNK);
    /* the length word: shorter, the last-chunk flag, beyond the chunk size */
    CHECK_FAIL(decode_flipped(&obj, h + rec + 2, 0x01, key_a, &out, &err), &err, ERR_CORRUPT,
               "object is corrupt: chunk 1 failed authentication");
    CHECK_FAIL(decode_flipped(&obj, h + rec + 3, 0x80, key_a, &out, &err), &err, ERR_CORRUPT,
               "object is corrupt: chunk 1 failed authentication");
    CHECK_FAIL(decode_flipped(&obj, h + rec, 0x01, key_a, &out, &err), &err, ERR_CORRUPT,
               "object is corrupt: chunk 1 claims 65537 bytes (chunk size 65536)");
    /* the last chunk's flag cleared: its record no longer authenticates */
    CHECK_FAIL(decode_flipped(&obj, h + 3 * rec + 3, 0x80, key_a, &out, &err), &err, ERR_CORRUPT,
               "object is corrupt: chunk 3 failed authentication");
    buf_free(&obj);
    buf_free(&out);
}

static void
test_flipped_bit_in_body_plain(void)
{
    struct buf obj = BUF_INIT, out = BUF_INIT;
    unsigned char *data = xmalloc(100000), good[32], bad[32];
    char want[256], hg[65], hb[65];
    struct err err;

    fill_text(data, 100000);
    CHECK_OK(encode_to(&obj, data, 100000, OBJECT_COMPRESS_NONE, NULL, NULL, &err), &err);
    /* no compression, no cipher: the checksum catches it at finish */
    sha(good, data, 100000);
    data[500] ^= 0x20;
    sha(bad, data, 100000);
    hex(hg, good);
    hex(hb, bad);
    snprintf(want, sizeof(want), "checksum mismatch: stored %s computed %s", hg, hb);
    CHECK_FAIL(decode_flipped(&obj, HDR_PLAIN + 4 + 500, 0x20, NULL, &out, &err), &err, ERR_CORRUPT,
               want);
    /* zstd: its own frame checksum fails first */
    CHECK_OK(encode_to(&obj, data, 100000, OBJECT_COMPRESS_ZSTD, NULL, NULL, &err), &err);
    CHECK_FAIL(decode_flipped(&obj, HDR_PLAIN + 4 + obj.len / 2, 0x20, NULL, &out, &err), &err,
               ERR_CORRUPT, NULL);
    CHECK(strncmp(err.msg, "zstd data is corrupt: ", 22) == 0);
    printf("# %s\n", err.msg);
    /* gzip: CRC-32 */
    make_object(&obj, 1000, OBJECT_COMPRESS_GZIP, NULL);
    CHECK_FAIL(decode_flipped(&obj, obj.len - TAIL - 6, 0x01, NULL, &out, &err), &err, ERR_CORRUPT,
               "gzip data is corrupt: incorrect data check");
    free(data);
    buf_free(&obj);
    buf_free(&out);
}

/* Decode obj with the unhashed decoder: the caller hashes, info gets the stored SHA-256. */
static int
decode_unhashed(const struct buf *obj, const struct crypt_key *k, struct buf *out,
                struct object_info *info, struct err *err)
{
    struct sink *s = object_decode_sink_new_unhashed(buf_sink_new(out, 0), k, info);
    int rc;

    buf_reset(out);
    rc = feed(s, obj->data, obj->len, 0, 100000, err);
    sink_free(s);
    return rc;
}

static void
test_unhashed_decoder(void)
{
    const struct crypt_key *keys[] = {NULL, key_a};
    struct buf obj = BUF_INIT, out = BUF_INIT;
    unsigned char *data = xmalloc(200000), want[32], got[32];
    struct object_info info;
    struct err err;

    fill_text(data, 200000);
    sha(want, data, 200000);
    for (enum object_compress c = OBJECT_COMPRESS_NONE; c <= OBJECT_COMPRESS_GZIP; c++) {
        for (int k = 0; k < 2; k++) {
            CHECK_OK(encode_to(&obj, data, 200000, c, keys[k], NULL, &err), &err);
            CHECK_OK(decode_unhashed(&obj, keys[k], &out, &info, &err), &err);
            CHECK_INT(out.len, 200000);
            CHECK(memcmp(out.data, data, 200000) == 0);
            CHECK_INT(info.plain_size, 200000);
            CHECK(memcmp(info.sha256, want, 32) == 0); /* the stored value */
            /* what is still checked: the size, the trailer, an encrypted chunk */
            obj.len -= TAIL;
            CHECK_FAIL(decode_unhashed(&obj, keys[k], &out, &info, &err), &err, ERR_CORRUPT,
                       "object is truncated");
        }
    }
    /* a changed byte of a plain object passes; the caller's hash differs from the stored one */
    CHECK_OK(encode_to(&obj, data, 200000, OBJECT_COMPRESS_NONE, NULL, NULL, &err), &err);
    obj.data[HDR_PLAIN + 4 + 500] ^= 0x20;
    CHECK_OK(decode_unhashed(&obj, NULL, &out, &info, &err), &err);
    sha(got, out.data, out.len);
    CHECK(memcmp(info.sha256, want, 32) == 0);
    CHECK(memcmp(got, want, 32) != 0);
    /* encrypted: the chunk fails its authentication as before */
    CHECK_OK(encode_to(&obj, data, 200000, OBJECT_COMPRESS_NONE, key_a, NULL, &err), &err);
    obj.data[HDR_RAW + 4 + 500] ^= 0x20;
    CHECK_FAIL(decode_unhashed(&obj, key_a, &out, &info, &err), &err, ERR_CORRUPT,
               "object is corrupt: chunk 0 failed authentication");
    free(data);
    buf_free(&obj);
    buf_free(&out);
}

static int
decode_codec_checked(const struct buf *obj, const struct crypt_key *k, struct buf *out,
                     struct object_info *info, struct err *err)
{
    struct sink *s = object_decode_sink_new_codec_checked(buf_sink_new(out, 0), k, info);
    int rc;

    buf_reset(out);
    rc = feed(s, obj->data, obj->len, 0, 100000, err);
    sink_free(s);
    return rc;
}

/*
 * The codec-checked decoder (WAL fetch): no SHA-256 where the codec checks
 * the plaintext, yet a changed byte anywhere in the body is still an error;
 * a raw object is still hashed.
 */
static void
test_codec_checked_decoder(void)
{
    const struct crypt_key *keys[] = {NULL, key_a};
    struct buf obj = BUF_INIT, out = BUF_INIT, bad = BUF_INIT;
    unsigned char *data = xmalloc(100000), want[32];
    struct object_info info;
    struct err err;
    int caught = 0, tried = 0;

    fill_text(data, 100000);
    sha(want, data, 100000);
    for (enum object_compress c = OBJECT_COMPRESS_NONE; c <= OBJECT_COMPRESS_GZIP; c++) {
        for (int k = 0; k < 2; k++) {
            CHECK_OK(encode_to(&obj, data, 100000, c, keys[k], NULL, &err), &err);
            CHECK_OK(decode_codec_checked(&obj, keys[k], &out, &info, &err), &err);
            CHECK_INT(out.len, 100000);
            CHECK(memcmp(out.data, data, 100000) == 0);
            CHECK(memcmp(info.sha256, want, 32) == 0);
        }
    }
    /*
     * zstd without a key: every 13th byte of the frame changed in turn: each
     * one is caught, or changes nothing in the plaintext (a few bits of a
     * frame are unused, e.g. padding of entropy tables): never other bytes
     */
    CHECK_OK(encode_to(&obj, data, 100000, OBJECT_COMPRESS_ZSTD, NULL, NULL, &err), &err);
    for (size_t at = HDR_PLAIN + 4; at < obj.len - TAIL; at += 13) {
        buf_reset(&bad);
        buf_append(&bad, obj.data, obj.len);
        bad.data[at] ^= 0x10;
        tried++;
        if (decode_codec_checked(&bad, NULL, &out, &info, &err) < 0)
            caught += err.kind == ERR_CORRUPT;
        else
            caught += out.len == 100000 && memcmp(out.data, data, 100000) == 0;
    }
    CHECK_INT(caught, tried);
    /* raw: hashed as before */
    CHECK_OK(encode_to(&obj, data, 100000, OBJECT_COMPRESS_NONE, NULL, NULL, &err), &err);
    obj.data[HDR_PLAIN + 4 + 500] ^= 0x20;
    CHECK(decode_codec_checked(&obj, NULL, &out, &info, &err) < 0 && err.kind == ERR_CORRUPT &&
          strncmp(err.msg, "checksum mismatch: stored ", 26) == 0);
    free(data);
    buf_free(&obj);
    buf_free(&out);
    buf_free(&bad);
}

static void
test_prehashed_encoder(void)
{
    const struct crypt_key *keys[] = {NULL, key_a};
    struct buf obj = BUF_INIT, out = BUF_INIT;
    unsigned char *data = xmalloc(200000), digest[32], wrong[32];
    char want[256], hg[65], hw[65];
    struct object_info info, dinfo;
    struct err err;

    fill_text(data, 200000);
    sha(digest, data, 200000);
    for (enum object_compress c = OBJECT_COMPRESS_NONE; c <= OBJECT_COMPRESS_GZIP; c++) {
        for (int k = 0; k < 2; k++) {
            struct object_opts o = {c, 0, keys[k]};
            struct sink *s;

            /* the caller's digest, set only just before finish, goes into the trailer */
            memset(wrong, 0, sizeof(wrong));
            buf_reset(&obj);
            s = object_encode_sink_new_prehashed(buf_sink_new(&obj, 0), &o, &info, wrong);
            CHECK_OK(sink_write(s, data, 100000, &err), &err);
            CHECK_OK(sink_write(s, data + 100000, 100000, &err), &err);
            memcpy(wrong, digest, 32);
            CHECK_OK(sink_finish(s, &err), &err);
            sink_free(s);
            CHECK_INT(info.plain_size, 200000);
            CHECK(memcmp(info.sha256, digest, 32) == 0);
            CHECK_OK(decode_to(&out, obj.data, obj.len, keys[k], 0, &dinfo, &err), &err);
            CHECK_INT(out.len, 200000);
            CHECK(memcmp(out.data, data, 200000) == 0);
        }
    }
    /* a wrong digest from the caller makes an object that fails its check */
    {
        struct object_opts o = {OBJECT_COMPRESS_ZSTD, 0, NULL};
        struct sink *s;

        memcpy(wrong, digest, 32);
        wrong[0] ^= 1;
        buf_reset(&obj);
        s = object_encode_sink_new_prehashed(buf_sink_new(&obj, 0), &o, NULL, wrong);
        CHECK_OK(sink_write(s, data, 200000, &err), &err);
        CHECK_OK(sink_finish(s, &err), &err);
        sink_free(s);
        hex(hg, digest);
        hex(hw, wrong);
        snprintf(want, sizeof(want), "checksum mismatch: stored %s computed %s", hw, hg);
        CHECK_FAIL(decode_to(&out, obj.data, obj.len, NULL, 0, NULL, &err), &err, ERR_CORRUPT,
                   want);
    }
    free(data);
    buf_free(&obj);
    buf_free(&out);
}

/* Rewrite an unencrypted trailer (size, checksum) with a valid trailer check. */
static void
forge_trailer(struct buf *obj, uint64_t size, const unsigned char digest[32])
{
    unsigned char *t = (unsigned char *)obj->data + obj->len - TAIL, check[32];

    for (int i = 0; i < 8; i++)
        t[i] = (unsigned char)(size >> (8 * i));
    memcpy(t + 8, digest, 32);
    sha(check, t, 40);
    memcpy(t + 40, check, 16);
}

static void
test_flipped_bit_in_trailer(void)
{
    const struct crypt_key *keys[] = {NULL, key_a, key_pass};
    struct buf obj = BUF_INIT, out = BUF_INIT;
    struct err err;

    for (int k = 0; k < 3; k++) {
        make_object(&obj, 70000, OBJECT_COMPRESS_GZIP, keys[k]);
        for (size_t i = obj.len - TAIL; i < obj.len - 8; i += 3)
            CHECK_FAIL(decode_flipped(&obj, i, 0x10, keys[k], &out, &err), &err, ERR_CORRUPT,
                       k ? "object trailer failed authentication"
                         : "object trailer checksum mismatch");
        for (size_t i = obj.len - 8; i < obj.len; i++)
            CHECK_FAIL(decode_flipped(&obj, i, 0x10, keys[k], &out, &err), &err, ERR_CORRUPT,
                       "object trailer is corrupt");
    }
    buf_free(&obj);
    buf_free(&out);
}

static void
test_forged_trailer_size_and_checksum(void)
{
    struct buf obj = BUF_INIT, out = BUF_INIT;
    unsigned char data[5000], digest[32], other[32];
    char want[256], h1[65], h2[65];
    struct err err;

    fill_random(data, sizeof(data));
    sha(digest, data, sizeof(data));
    CHECK_OK(encode_to(&obj, data, sizeof(data), OBJECT_COMPRESS_ZSTD, NULL, NULL, &err), &err);
    forge_trailer(&obj, 4999, digest);
    CHECK_FAIL(decode_to(&out, obj.data, obj.len, NULL, 0, NULL, &err), &err, ERR_CORRUPT,
               "size mismatch: stored 4999 bytes, decoded 5000");
    memset(other, 0x5a, sizeof(other));
    forge_trailer(&obj, 5000, other);
    hex(h1, other);
    hex(h2, digest);
    snprintf(want, sizeof(want), "checksum mismatch: stored %s computed %s", h1, h2);
    CHECK_FAIL(decode_to(&out, obj.data, obj.len, NULL, 1, NULL, &err), &err, ERR_CORRUPT, want);
    buf_free(&obj);
    buf_free(&out);
}

static void
test_reordered_and_dropped_chunks(void)
{
    struct buf obj = BUF_INIT, bad = BUF_INIT, out = BUF_INIT;
    struct err err;
    size_t h = HDR_RAW, rec = 4 + CHUNK + TAG;

    make_object(&obj, 3 * CHUNK + 10, OBJECT_COMPRESS_NONE, key_a);
    /* swap chunks 0 and 1 */
    buf_append(&bad, obj.data, h);
    buf_append(&bad, obj.data + h + rec, rec);
    buf_append(&bad, obj.data + h, rec);
    buf_append(&bad, obj.data + h + 2 * rec, obj.len - h - 2 * rec);
    CHECK_FAIL(decode_to(&out, bad.data, bad.len, key_a, 0, NULL, &err), &err, ERR_CORRUPT,
               "object is corrupt: chunk 0 failed authentication");
    CHECK_INT(out.len, 0);
    /* drop chunk 1 */
    buf_reset(&bad);
    buf_append(&bad, obj.data, h + rec);
    buf_append(&bad, obj.data + h + 2 * rec, obj.len - h - 2 * rec);
    CHECK_FAIL(decode_to(&out, bad.data, bad.len, key_a, 0, NULL, &err), &err, ERR_CORRUPT,
               "object is corrupt: chunk 1 failed authentication");
    /* drop the last chunk and the trailer: the chunk before is not flagged last */
    CHECK_FAIL(decode_to(&out, obj.data, h + 3 * rec, key_a, 0, NULL, &err), &err, ERR_CORRUPT,
               "object is truncated");
    CHECK_INT(out.len, 3 * CHUNK);
    /* drop the last chunk, keep the trailer: read as a chunk, it cannot authenticate */
    buf_reset(&bad);
    buf_append(&bad, obj.data, h + 3 * rec);
    buf_append(&bad, obj.data + obj.len - TAIL, TAIL);
    CHECK_FAIL(decode_to(&out, bad.data, bad.len, key_a, 0, NULL, &err), &err, ERR_CORRUPT, NULL);
    CHECK(strncmp(err.msg, "object is corrupt: chunk 3 ", 27) == 0 ||
          strcmp(err.msg, "object is truncated") == 0);
    CHECK_INT(out.len, 3 * CHUNK);
    /* a chunk from another object with the same key */
    {
        struct buf other = BUF_INIT;

        make_object(&other, 3 * CHUNK + 10, OBJECT_COMPRESS_NONE, key_a);
        buf_reset(&bad);
        buf_append(&bad, obj.data, h + rec);
        buf_append(&bad, other.data + h + rec, rec);
        buf_append(&bad, obj.data + h + 2 * rec, obj.len - h - 2 * rec);
        CHECK_FAIL(decode_to(&out, bad.data, bad.len, key_a, 0, NULL, &err), &err, ERR_CORRUPT,
                   "object is corrupt: chunk 1 failed authentication");
        buf_free(&other);
    }
    buf_free(&obj);
    buf_free(&bad);
    buf_free(&out);
}

static void
test_header_tampering_with_valid_check(void)
{
    struct buf obj = BUF_INIT, out = BUF_INIT;
    unsigned char digest[32];
    struct err err;

    make_object(&obj, 1000, OBJECT_COMPRESS_NONE, key_a);
    /* claim zstd and repair the (unkeyed) header check: the AAD still catches it */
    obj.data[9] = OBJECT_COMPRESS_ZSTD;
    sha(digest, obj.data, HDR_RAW - 8);
    memcpy(obj.data + HDR_RAW - 8, digest, 8);
    CHECK_FAIL(decode_to(&out, obj.data, obj.len, key_a, 0, NULL, &err), &err, ERR_CORRUPT,
               "object is corrupt: chunk 0 failed authentication");
    CHECK_INT(out.len, 0);
    buf_free(&obj);
    buf_free(&out);
}

static void
test_trailing_garbage(void)
{
    const struct crypt_key *keys[] = {NULL, key_a};
    struct buf obj = BUF_INIT, out = BUF_INIT;
    struct err err;

    for (int k = 0; k < 2; k++)
        for (enum object_compress c = OBJECT_COMPRESS_NONE; c <= OBJECT_COMPRESS_GZIP; c++) {
            make_object(&obj, 70000, c, keys[k]);
            buf_putc(&obj, '\n');
            CHECK_FAIL(decode_to(&out, obj.data, obj.len, keys[k], 0, NULL, &err), &err,
                       ERR_CORRUPT, "object has trailing data after its end");
            CHECK_FAIL(decode_to(&out, obj.data, obj.len, keys[k], 1, NULL, &err), &err,
                       ERR_CORRUPT, "object has trailing data after its end");
            /* a whole second object appended */
            {
                struct buf copy = BUF_INIT;

                obj.len--;
                buf_append(&copy, obj.data, obj.len);
                buf_append(&obj, copy.data, copy.len);
                buf_free(&copy);
            }
            CHECK_FAIL(decode_to(&out, obj.data, obj.len, keys[k], 0, NULL, &err), &err,
                       ERR_CORRUPT, "object has trailing data after its end");
        }
    buf_free(&obj);
    buf_free(&out);
}

static void
test_wrong_and_missing_key(void)
{
    struct buf obj = BUF_INIT, out = BUF_INIT;
    struct err err;

    make_object(&obj, 1000, OBJECT_COMPRESS_ZSTD, key_a);
    CHECK_FAIL(decode_to(&out, obj.data, obj.len, key_b, 0, NULL, &err), &err, ERR_KEY,
               "wrong encryption key");
    CHECK_FAIL(decode_to(&out, obj.data, obj.len, key_b, 1, NULL, &err), &err, ERR_KEY,
               "wrong encryption key");
    CHECK_FAIL(decode_to(&out, obj.data, obj.len, NULL, 0, NULL, &err), &err, ERR_KEY,
               "object is encrypted: no key given");
    CHECK_INT(out.len, 0);
    /* a key given for an unencrypted object is not needed, and not an error */
    make_object(&obj, 1000, OBJECT_COMPRESS_ZSTD, NULL);
    CHECK_OK(decode_to(&out, obj.data, obj.len, key_b, 0, NULL, &err), &err);
    buf_free(&obj);
    buf_free(&out);
}

static void
test_not_a_ferry_object(void)
{
    static const unsigned char gz[] = {0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
                                       0x03, 0xcb, 0x48, 0xcd, 0xc9, 0xc9, 0xe7, 0x02, 0x00,
                                       0x20, 0x30, 0x3a, 0x36, 0x06, 0x00, 0x00, 0x00};
    struct buf out = BUF_INIT;
    struct err err;

    CHECK_FAIL(decode_to(&out, gz, sizeof(gz), NULL, 0, NULL, &err), &err, ERR_CORRUPT,
               "not a ferry object");
    CHECK_FAIL(decode_to(&out, "abc", 3, NULL, 1, NULL, &err), &err, ERR_CORRUPT,
               "not a ferry object");
    CHECK_FAIL(decode_to(&out,
                         "\x89"
                         "FE",
                         3, NULL, 1, NULL, &err),
               &err, ERR_CORRUPT, "object is truncated");
    CHECK_FAIL(decode_to(&out, "", 0, NULL, 0, NULL, &err), &err, ERR_CORRUPT,
               "object is truncated");
    CHECK(!object_is_ferry(gz, sizeof(gz)));
    CHECK(!object_is_ferry("\x89"
                           "FERRY\r",
                           7));
    CHECK(object_is_ferry("\x89"
                          "FERRY\r\n",
                          8));
    buf_free(&out);
}

static void
test_unsupported_version(void)
{
    struct buf obj = BUF_INIT, out = BUF_INIT;
    struct object_info info;
    struct err err;

    make_object(&obj, 10, OBJECT_COMPRESS_NONE, NULL);
    obj.data[8] = 2;
    CHECK_FAIL(decode_to(&out, obj.data, obj.len, NULL, 0, NULL, &err), &err, ERR_CORRUPT,
               "unsupported object format version 2 (this ferry reads version 1)");
    CHECK_FAIL(
        object_inspect(&info, obj.data, obj.len, obj.data + obj.len - TAIL, TAIL, obj.len, &err),
        &err, ERR_CORRUPT, "unsupported object format version 2 (this ferry reads version 1)");
    buf_free(&obj);
    buf_free(&out);
}

static void
test_inspect(void)
{
    struct buf obj = BUF_INIT;
    struct object_info info;
    unsigned char data[3000], digest[32];
    char h[65], h2[65];
    struct err err;

    fill_text(data, sizeof(data));
    sha(digest, data, sizeof(data));
    CHECK_OK(encode_to(&obj, data, sizeof(data), OBJECT_COMPRESS_GZIP, NULL, NULL, &err), &err);
    /* what `ferry repo stat` does: HEAD, the first 256 bytes, the last 64 */
    CHECK_OK(object_inspect(&info, obj.data, OBJECT_HEAD_MAX, obj.data + obj.len - TAIL, TAIL,
                            obj.len, &err),
             &err);
    CHECK_INT(info.plain_size, sizeof(data));
    CHECK_INT(info.stored_size, obj.len);
    CHECK(info.compress == OBJECT_COMPRESS_GZIP && !info.encrypted);
    CHECK_STR(info.kdf, "");
    object_sha256_hex(h, &info);
    hex(h2, digest);
    CHECK_STR(h, h2);
    /* a longer tail read is fine: the last 64 bytes count */
    CHECK_OK(object_inspect(&info, obj.data, 30, obj.data + obj.len - 100, 100, obj.len, &err),
             &err);
    CHECK_INT(info.plain_size, sizeof(data));

    CHECK_FAIL(object_inspect(&info, "hello world", 11, "x", 1, 11, &err), &err, ERR_CORRUPT,
               "not a ferry object");
    CHECK_FAIL(object_inspect(&info, obj.data, 20, obj.data + obj.len - TAIL, TAIL, obj.len, &err),
               &err, ERR_CORRUPT, "object is truncated");
    CHECK_FAIL(object_inspect(&info, obj.data, obj.len, obj.data + obj.len - TAIL, TAIL, 80, &err),
               &err, ERR_CORRUPT, "object is truncated");
    CHECK_FAIL(object_inspect(&info, obj.data, obj.len, obj.data + obj.len - 63, 63, obj.len, &err),
               &err, ERR_CORRUPT, "object is truncated");
    CHECK_FAIL(object_inspect(&info, obj.data, obj.len, obj.data + obj.len - TAIL - 1, TAIL,
                              obj.len, &err),
               &err, ERR_CORRUPT, "object trailer is corrupt");
    obj.data[obj.len - 30] ^= 1;
    CHECK_FAIL(
        object_inspect(&info, obj.data, obj.len, obj.data + obj.len - TAIL, TAIL, obj.len, &err),
        &err, ERR_CORRUPT, "object trailer checksum mismatch");
    obj.data[10] ^= 1;
    CHECK_FAIL(
        object_inspect(&info, obj.data, obj.len, obj.data + obj.len - TAIL, TAIL, obj.len, &err),
        &err, ERR_CORRUPT, "object header checksum mismatch");

    make_object(&obj, 3000, OBJECT_COMPRESS_ZSTD, key_pass);
    CHECK_OK(object_inspect(&info, obj.data, OBJECT_HEAD_MAX, obj.data + obj.len - TAIL, TAIL,
                            obj.len, &err),
             &err);
    CHECK(info.encrypted && info.compress == OBJECT_COMPRESS_ZSTD);
    CHECK_STR(info.kdf, "scrypt");
    CHECK_INT(info.plain_size, 0);
    buf_free(&obj);
}

static void
test_compress_names(void)
{
    enum object_compress c = OBJECT_COMPRESS_NONE;
    struct err err;

    CHECK_OK(object_compress_parse("zstd", &c, &err), &err);
    CHECK_INT(c, OBJECT_COMPRESS_ZSTD);
    CHECK_OK(object_compress_parse("gzip", &c, &err), &err);
    CHECK_INT(c, OBJECT_COMPRESS_GZIP);
    CHECK_OK(object_compress_parse("none", &c, &err), &err);
    CHECK_INT(c, OBJECT_COMPRESS_NONE);
    CHECK_FAIL(object_compress_parse("lz4", &c, &err), &err, ERR_USAGE,
               "unknown compression \"lz4\" (use zstd, gzip or none)");
    CHECK_STR(object_compress_name(OBJECT_COMPRESS_ZSTD), "zstd");
    CHECK_STR(object_compress_name(OBJECT_COMPRESS_GZIP), "gzip");
    CHECK_STR(object_compress_name(OBJECT_COMPRESS_NONE), "none");
}

static void
test_errors_are_sticky(void)
{
    struct buf out = BUF_INIT;
    struct err err;
    struct sink *s = object_decode_sink_new(buf_sink_new(&out, 0), NULL, NULL);

    CHECK_FAIL(sink_write(s, "nope", 4, &err), &err, ERR_CORRUPT, "not a ferry object");
    CHECK_FAIL(sink_write(s, "\x89", 1, &err), &err, ERR_CORRUPT, "not a ferry object");
    CHECK_FAIL(sink_finish(s, &err), &err, ERR_CORRUPT, "not a ferry object");
    sink_free(s);
    buf_free(&out);
}

static void
test_encoder_reports_full_disk(void)
{
    int fd = open("/dev/full", O_WRONLY | O_CLOEXEC);
    unsigned char data[200000];
    struct object_opts o = {OBJECT_COMPRESS_NONE, 0, key_a};
    struct sink *s = object_encode_sink_new(fd_sink_new(fd, "/dev/full"), &o, NULL);
    struct err err;

    fill_random(data, sizeof(data));
    CHECK_FAIL(feed(s, data, sizeof(data), 0, 1000, &err), &err, ERR_NOSPACE,
               "could not write to \"/dev/full\": No space left on device");
    sink_free(s);
    close(fd);
}

static void
test_abandoned_encoder_and_decoder(void)
{
    struct buf obj = BUF_INIT, out = BUF_INIT;
    struct object_opts o = {OBJECT_COMPRESS_ZSTD, 0, key_a};
    struct err err;
    struct sink *s = object_encode_sink_new(buf_sink_new(&obj, 0), &o, NULL);

    CHECK_OK(sink_write(s, "abc", 3, &err), &err);
    sink_free(s);
    make_object(&obj, 100000, OBJECT_COMPRESS_GZIP, key_a);
    s = object_decode_sink_new(buf_sink_new(&out, 0), key_a, NULL);
    CHECK_OK(sink_write(s, obj.data, obj.len / 2, &err), &err);
    sink_free(s); /* no leak under ASan */
    buf_free(&obj);
    buf_free(&out);
}

int
main(void)
{
    struct err err;

    key_a = raw_key(0);
    key_b = raw_key(1);
    if (crypt_key_from_passphrase(&key_pass, "test passphrase", &err) < 0)
        return 1;
    RUN(test_memory_bounded_256mib);
    RUN(test_throughput);
    RUN(test_round_trips_all_combinations);
    RUN(test_round_trip_5mib_one_byte_at_a_time);
    RUN(test_truncated_in_every_region);
    RUN(test_flipped_bit_in_header);
    RUN(test_flipped_bit_in_body_encrypted);
    RUN(test_flipped_bit_in_body_plain);
    RUN(test_flipped_bit_in_trailer);
    RUN(test_unhashed_decoder);
    RUN(test_prehashed_encoder);
    RUN(test_codec_checked_decoder);
    RUN(test_forged_trailer_size_and_checksum);
    RUN(test_reordered_and_dropped_chunks);
    RUN(test_header_tampering_with_valid_check);
    RUN(test_trailing_garbage);
    RUN(test_wrong_and_missing_key);
    RUN(test_not_a_ferry_object);
    RUN(test_unsupported_version);
    RUN(test_inspect);
    RUN(test_compress_names);
    RUN(test_errors_are_sticky);
    RUN(test_encoder_reports_full_disk);
    RUN(test_abandoned_encoder_and_decoder);
    crypt_key_free(key_a);
    crypt_key_free(key_b);
    crypt_key_free(key_pass);
    return check_done();
}
