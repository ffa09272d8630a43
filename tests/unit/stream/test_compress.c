/* SPDX-License-Identifier: MIT */
/*
 * zstd and gzip stages: round trips in any chunking, and damaged input
 * (truncated, corrupt, trailing garbage) reported as ERR_CORRUPT with an
 * exact message; decompression memory stays bounded.
 */
#include <sys/resource.h>

#include "check.h"
#include "helpers.h"

enum codec { ZSTD, GZIP };

static struct sink *
compressor(enum codec c, struct sink *next, int level)
{
    return c == ZSTD ? zstd_sink_new(next, level) : gzip_sink_new(next, level);
}

static struct sink *
decompressor(enum codec c, struct sink *next)
{
    return c == ZSTD ? unzstd_sink_new(next) : gunzip_sink_new(next);
}

static int
compress_to(struct buf *out, enum codec c, const void *data, size_t len, size_t chunk)
{
    struct err err;
    struct sink *s = compressor(c, buf_sink_new(out, 0), 0);
    int rc = feed(s, data, len, chunk, 100000, &err);

    if (rc < 0)
        printf("# compress: %s\n", err.msg);
    sink_free(s);
    return rc;
}

static int
decompress_to(struct buf *out, enum codec c, const void *data, size_t len, size_t chunk,
              struct err *err)
{
    struct sink *s = decompressor(c, buf_sink_new(out, 0));
    int rc = feed(s, data, len, chunk, 100000, err);

    sink_free(s);
    return rc;
}

static void
round_trips(enum codec c)
{
    static const size_t sizes[] = {0, 1, 65535, 65536, 65537, 5 << 20};
    unsigned char *data = xmalloc(5 << 20);

    for (int kind = 0; kind < 2; kind++) {
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            size_t n = sizes[i];
            struct buf z = BUF_INIT, out = BUF_INIT;
            struct err err;

            if (kind == 0)
                fill_random(data, n);
            else
                fill_text(data, n);
            CHECK_OK(compress_to(&z, c, data, n, n < 100000 ? 1 : 0), &err);
            for (size_t chunk = 0; chunk < 2; chunk++) {
                /* one byte at a time for all but the 5 MiB random case (slow, same code) */
                if (chunk == 1 && n == (5 << 20) && kind == 0)
                    continue;
                buf_reset(&out);
                CHECK_OK(decompress_to(&out, c, z.data, z.len, chunk, &err), &err);
                CHECK_INT(out.len, n);
                CHECK(out.len == n && (n == 0 || memcmp(out.data, data, n) == 0));
            }
            if (kind == 1 && n == (5 << 20))
                CHECK(z.len < n / 3);
            buf_free(&z);
            buf_free(&out);
        }
    }
    free(data);
}

static void
test_zstd_round_trips(void)
{
    round_trips(ZSTD);
}

static void
test_gzip_round_trips(void)
{
    round_trips(GZIP);
}

static void
test_levels(void)
{
    unsigned char data[100000];
    struct buf a = BUF_INIT, b = BUF_INIT, out = BUF_INIT;
    struct err err;

    fill_text(data, sizeof(data));
    for (enum codec c = ZSTD; c <= GZIP; c++) {
        struct sink *s1 = compressor(c, buf_sink_new(&a, 0), 1);
        struct sink *s9 = compressor(c, buf_sink_new(&b, 0), c == ZSTD ? 99 : 9);

        CHECK_OK(feed(s1, data, sizeof(data), 0, 5000, &err), &err);
        CHECK_OK(feed(s9, data, sizeof(data), 0, 5000, &err), &err);
        CHECK(b.len < a.len);
        CHECK_OK(decompress_to(&out, c, b.data, b.len, 0, &err), &err);
        CHECK(out.len == sizeof(data) && memcmp(out.data, data, sizeof(data)) == 0);
        sink_free(s1);
        sink_free(s9);
        buf_reset(&a);
        buf_reset(&b);
        buf_reset(&out);
    }
    buf_free(&a);
    buf_free(&b);
    buf_free(&out);
}

static void
test_gzip_is_rfc1952(void)
{
    /* "hello\n" compressed by another gzip implementation (mtime 0) */
    static const unsigned char hello[] = {0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
                                          0x03, 0xcb, 0x48, 0xcd, 0xc9, 0xc9, 0xe7, 0x02, 0x00,
                                          0x20, 0x30, 0x3a, 0x36, 0x06, 0x00, 0x00, 0x00};
    struct buf out = BUF_INIT, z = BUF_INIT;
    struct err err;

    CHECK_OK(decompress_to(&out, GZIP, hello, sizeof(hello), 1, &err), &err);
    CHECK_STR(buf_str(&out), "hello\n");
    CHECK_OK(compress_to(&z, GZIP, "hello\n", 6, 0), &err);
    CHECK(z.len > 18 && (unsigned char)z.data[0] == 0x1f && (unsigned char)z.data[1] == 0x8b &&
          z.data[2] == 8);
    buf_free(&out);
    buf_free(&z);
}

static void
test_zstd_concatenated_frames(void)
{
    struct buf z = BUF_INIT, out = BUF_INIT;
    struct err err;

    CHECK_OK(compress_to(&z, ZSTD, "one ", 4, 0), &err);
    CHECK_OK(compress_to(&z, ZSTD, "two", 3, 0), &err);
    CHECK_OK(decompress_to(&out, ZSTD, z.data, z.len, 1, &err), &err);
    CHECK_STR(buf_str(&out), "one two");
    buf_free(&z);
    buf_free(&out);
}

static void
damaged(enum codec c)
{
    const char *name = c == ZSTD ? "zstd" : "gzip";
    unsigned char data[200000];
    struct buf z = BUF_INIT, out = BUF_INIT, bad = BUF_INIT;
    struct err err;
    char want[128];

    fill_text(data, sizeof(data));
    CHECK_OK(compress_to(&z, c, data, sizeof(data), 0), &err);

    /* truncated anywhere: at the start, in the middle, one byte short */
    snprintf(want, sizeof(want), "%s data is truncated", name);
    CHECK_FAIL(decompress_to(&out, c, z.data, 0, 0, &err), &err, ERR_CORRUPT, want);
    CHECK_FAIL(decompress_to(&out, c, z.data, 5, 1, &err), &err, ERR_CORRUPT, want);
    CHECK_FAIL(decompress_to(&out, c, z.data, z.len / 2, 0, &err), &err, ERR_CORRUPT, want);
    CHECK_FAIL(decompress_to(&out, c, z.data, z.len - 1, 1, &err), &err, ERR_CORRUPT, want);

    /* trailing garbage */
    buf_append(&bad, z.data, z.len);
    buf_append(&bad, "garbage!", 8);
    CHECK_FAIL(decompress_to(&out, c, bad.data, bad.len, 0, &err), &err, ERR_CORRUPT,
               c == ZSTD ? "zstd data is corrupt: Unknown frame descriptor"
                         : "gzip data has trailing garbage");
    CHECK_FAIL(decompress_to(&out, c, bad.data, bad.len, 1, &err), &err, ERR_CORRUPT,
               c == ZSTD ? "zstd data is corrupt: Unknown frame descriptor"
                         : "gzip data has trailing garbage");

    /* wrong magic */
    buf_reset(&bad);
    buf_append(&bad, z.data, z.len);
    bad.data[0] ^= 0x40;
    CHECK_FAIL(decompress_to(&out, c, bad.data, bad.len, 0, &err), &err, ERR_CORRUPT,
               c == ZSTD ? "zstd data is corrupt: Unknown frame descriptor"
                         : "gzip data is corrupt: incorrect header check");

    /* a flipped bit in the checksum at the end */
    buf_reset(&bad);
    buf_append(&bad, z.data, z.len);
    bad.data[bad.len - (c == ZSTD ? 1 : 5)] ^= 0x01;
    CHECK_FAIL(decompress_to(&out, c, bad.data, bad.len, 0, &err), &err, ERR_CORRUPT,
               c == ZSTD ? "zstd data is corrupt: Restored data doesn't match checksum"
                         : "gzip data is corrupt: incorrect data check");

    /* flipped bits anywhere in the body: always ERR_CORRUPT, never success */
    for (size_t i = 20; i + 20 < z.len; i += z.len / 37) {
        buf_reset(&bad);
        buf_append(&bad, z.data, z.len);
        bad.data[i] ^= 0x10;
        buf_reset(&out);
        CHECK_FAIL(decompress_to(&out, c, bad.data, bad.len, 0, &err), &err, ERR_CORRUPT, NULL);
        CHECK(strncmp(err.msg, name, 4) == 0);
    }
    buf_free(&z);
    buf_free(&out);
    buf_free(&bad);
}

static void
test_zstd_damaged(void)
{
    damaged(ZSTD);
}

static void
test_gzip_damaged(void)
{
    damaged(GZIP);
}

static long
max_rss_kib(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* 256 MiB (zstd) / 64 MiB (gzip) of zeros decompressed from a tiny input: no growth. */
static void
test_decompression_memory_bounded(void)
{
    for (enum codec c = ZSTD; c <= GZIP; c++) {
        size_t total = c == ZSTD ? 256u << 20 : 64u << 20;
        unsigned char *zeros = xcalloc(1, 1 << 20);
        struct buf z = BUF_INIT;
        struct err err;
        uint64_t count = 0;
        struct sink *s = compressor(c, buf_sink_new(&z, 0), 1);
        long before;

        for (size_t i = 0; i < total >> 20; i++)
            CHECK_OK(sink_write(s, zeros, 1 << 20, &err), &err);
        CHECK_OK(sink_finish(s, &err), &err);
        sink_free(s);
        free(zeros);
        CHECK(z.len < total / 200);
        before = max_rss_kib();
        s = decompressor(c, count_sink_new(null_sink_new(), &count));
        CHECK_OK(feed(s, z.data, z.len, 4096, 0, &err), &err);
        sink_free(s);
        CHECK_INT(count, total);
        printf("# %s: %zu bytes of input, peak rss growth %ld KiB\n", c == ZSTD ? "zstd" : "gzip",
               z.len, max_rss_kib() - before);
        CHECK(max_rss_kib() - before < 16 * 1024);
        buf_free(&z);
    }
}

int
main(void)
{
    RUN(test_decompression_memory_bounded);
    RUN(test_zstd_round_trips);
    RUN(test_gzip_round_trips);
    RUN(test_levels);
    RUN(test_gzip_is_rfc1952);
    RUN(test_zstd_concatenated_frames);
    RUN(test_zstd_damaged);
    RUN(test_gzip_damaged);
    return check_done();
}
