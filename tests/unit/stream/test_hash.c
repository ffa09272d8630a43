/* SPDX-License-Identifier: MIT */
/* hash, count, null and buf stages: known SHA-256 vectors, any chunking, limits. */
#include "check.h"
#include "helpers.h"

static void
hex(char out[65], const unsigned char d[32])
{
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* SHA-256 of data fed with the given chunking, as hex. */
static void
sha_of(char out[65], const void *data, size_t len, size_t chunk)
{
    unsigned char d[32];
    struct err err;
    struct sink *s = hash_sink_new(null_sink_new(), d);

    memset(d, 0xaa, sizeof(d));
    CHECK_OK(feed(s, data, len, chunk, 1000, &err), &err);
    sink_free(s);
    hex(out, d);
}

static void
test_sha256_vectors(void)
{
    char h[65];
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";

    sha_of(h, "", 0, 0);
    CHECK_STR(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    sha_of(h, "abc", 3, 0);
    CHECK_STR(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    sha_of(h, two, strlen(two), 1);
    CHECK_STR(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void
test_sha256_million_a_any_chunking(void)
{
    size_t n = 1000000;
    char *a = xmalloc(n);
    char h[65];

    memset(a, 'a', n);
    sha_of(h, a, n, 0);
    CHECK_STR(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    sha_of(h, a, n, 1);
    CHECK_STR(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    sha_of(h, a, n, n);
    CHECK_STR(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    free(a);
}

static void
test_hash_passes_data_on(void)
{
    struct buf out = BUF_INIT;
    unsigned char d[32];
    uint64_t count = 99;
    struct err err;
    struct sink *s = count_sink_new(hash_sink_new(buf_sink_new(&out, 0), d), &count);

    CHECK_INT(count, 0);
    CHECK_OK(sink_write(s, "hello ", 6, &err), &err);
    CHECK_INT(count, 6);
    CHECK_OK(sink_write(s, "", 0, &err), &err);
    CHECK_OK(sink_write(s, "world", 5, &err), &err);
    CHECK_INT(count, 11);
    CHECK_OK(sink_finish(s, &err), &err);
    CHECK_STR(buf_str(&out), "hello world");
    sink_free(s);
    buf_free(&out);
}

static void
test_buf_sink_limit(void)
{
    struct buf out = BUF_INIT;
    struct err err;
    struct sink *s = buf_sink_new(&out, 10);

    CHECK_OK(sink_write(s, "0123456789", 10, &err), &err);
    CHECK_FAIL(sink_write(s, "x", 1, &err), &err, ERR_CORRUPT,
               "data exceeds the limit of 10 bytes");
    /* sticky: every later call fails the same way */
    CHECK_FAIL(sink_finish(s, &err), &err, ERR_CORRUPT, "data exceeds the limit of 10 bytes");
    CHECK_INT(out.len, 10);
    sink_free(s);
    buf_free(&out);
}

static void
test_buf_sink_limit_in_one_write(void)
{
    struct buf out = BUF_INIT;
    struct err err;
    struct sink *s = buf_sink_new(&out, 4);

    CHECK_FAIL(sink_write(s, "hello", 5, &err), &err, ERR_CORRUPT,
               "data exceeds the limit of 4 bytes");
    CHECK_INT(out.len, 0);
    sink_free(s);
    buf_free(&out);
}

static void
test_null_sink(void)
{
    struct err err;
    struct sink *s = null_sink_new();

    CHECK_OK(sink_write(s, "abc", 3, &err), &err);
    CHECK_OK(sink_finish(s, &err), &err);
    sink_free(s);
}

static void
test_free_unfinished_chain(void)
{
    unsigned char d[32];
    uint64_t c;
    struct err err;
    struct sink *s = count_sink_new(hash_sink_new(null_sink_new(), d), &c);

    CHECK_OK(sink_write(s, "abc", 3, &err), &err);
    sink_free(s); /* no leak under ASan */
}

int
main(void)
{
    RUN(test_sha256_vectors);
    RUN(test_sha256_million_a_any_chunking);
    RUN(test_hash_passes_data_on);
    RUN(test_buf_sink_limit);
    RUN(test_buf_sink_limit_in_one_write);
    RUN(test_null_sink);
    RUN(test_free_unfinished_chain);
    return check_done();
}
