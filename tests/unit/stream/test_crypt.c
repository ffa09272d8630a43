/* SPDX-License-Identifier: MIT */
/*
 * Encryption keys: the three key file forms, rejected key files (format,
 * permissions, missing), passphrases through scrypt (parameters in the
 * object, one salt per key, derived keys cached per salt), and key mismatches.
 */
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "helpers.h"

#define HEX_KEY "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define B64_KEY "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

static char dir[64];

static const char *
write_key(const char *name, const void *data, size_t len, int mode)
{
    static char path[128];
    int fd;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    unlink(path);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, data, len) != (ssize_t)len)
        abort();
    fchmod(fd, (mode_t)mode);
    close(fd);
    return path;
}

static double
now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* An object encrypted with a decodes with b. */
static int
same_key(const struct crypt_key *a, const struct crypt_key *b, struct err *err)
{
    struct buf obj = BUF_INIT, out = BUF_INIT;
    int rc = encode_to(&obj, "secret", 6, OBJECT_COMPRESS_ZSTD, a, NULL, err);

    if (rc == 0)
        rc = decode_to(&out, obj.data, obj.len, b, 0, NULL, err);
    if (rc == 0 && strcmp(buf_str(&out), "secret") != 0)
        rc = err_set(err, ERR_INTERNAL, "decoded \"%s\"", buf_str(&out));
    buf_free(&obj);
    buf_free(&out);
    return rc;
}

static void
test_key_file_forms(void)
{
    unsigned char raw[32];
    struct crypt_key *k_raw = NULL, *k = NULL;
    struct err err;

    for (int i = 0; i < 32; i++)
        raw[i] = (unsigned char)i;
    CHECK_OK(crypt_key_from_file(&k_raw, write_key("raw", raw, 32, 0600), &err), &err);
    CHECK(k_raw != NULL);

    CHECK_OK(crypt_key_from_file(&k, write_key("hex", HEX_KEY, 64, 0600), &err), &err);
    CHECK_OK(same_key(k_raw, k, &err), &err);
    crypt_key_free(k);
    CHECK_OK(crypt_key_from_file(&k, write_key("hexws", "  \t" HEX_KEY "\n\n", 64 + 5, 0400), &err),
             &err);
    CHECK_OK(same_key(k_raw, k, &err), &err);
    crypt_key_free(k);
    CHECK_OK(crypt_key_from_file(&k,
                                 write_key("HEX",
                                           "000102030405060708090A0B0C0D0E0F101112131415"
                                           "161718191A1B1C1D1E1F\n",
                                           65, 0600),
                                 &err),
             &err);
    CHECK_OK(same_key(k_raw, k, &err), &err);
    crypt_key_free(k);
    CHECK_OK(crypt_key_from_file(&k, write_key("b64", B64_KEY "\n", 45, 0600), &err), &err);
    CHECK_OK(same_key(k_raw, k, &err), &err);
    crypt_key_free(k);
    CHECK_OK(crypt_key_from_file(&k, write_key("b64np", B64_KEY, 43, 0600), &err), &err);
    CHECK_OK(same_key(k_raw, k, &err), &err);
    crypt_key_free(k);
    /* raw bytes that look like whitespace are still the raw key */
    memset(raw, ' ', 32);
    CHECK_OK(crypt_key_from_file(&k, write_key("spaces", raw, 32, 0600), &err), &err);
    CHECK(same_key(k_raw, k, &err) == -1 && err.kind == ERR_KEY);
    crypt_key_free(k);
    crypt_key_free(k_raw);
}

static void
test_key_file_rejected(void)
{
    static const struct {
        const char *data;
        size_t len;
    } bad[] = {
        {"", 0},
        {"\n\n", 2},
        {HEX_KEY, 63},
        {HEX_KEY "00", 66},
        {"0g0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", 64},
        {B64_KEY, 42},
        {"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8==", 45},
        {"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9=", 44}, /* non-canonical last digit */
        {"0123456789012345678901234567890", 31},
        {"012345678901234567890123456789012", 33},
        {"000102030405060708090a0b0c0d0e0f 101112131415161718191a1b1c1d1e1f", 65},
    };
    struct crypt_key *k = NULL;
    struct err err;
    char want[256];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *path = write_key("bad", bad[i].data, bad[i].len, 0600);

        snprintf(want, sizeof(want),
                 "key file \"%s\" must hold 32 raw bytes, 64 hex digits or base64 of 32 bytes",
                 path);
        CHECK_FAIL(crypt_key_from_file(&k, path, &err), &err, ERR_CONFIG, want);
        CHECK(k == NULL);
    }
}

static void
test_key_file_permissions(void)
{
    static const int modes[] = {0644, 0640, 0604, 0444};
    struct crypt_key *k = NULL;
    struct err err;
    char want[256];

    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        const char *path = write_key("open", HEX_KEY, 64, modes[i]);

        snprintf(want, sizeof(want), "key file \"%s\" must not be readable by group or others",
                 path);
        CHECK_FAIL(crypt_key_from_file(&k, path, &err), &err, ERR_CONFIG, want);
        CHECK(k == NULL);
    }
    /* the check uses the open file: checked before reading, whatever its content */
    {
        const char *path = write_key("open", "junk", 4, 0644);

        snprintf(want, sizeof(want), "key file \"%s\" must not be readable by group or others",
                 path);
        CHECK_FAIL(crypt_key_from_file(&k, path, &err), &err, ERR_CONFIG, want);
    }
}

static void
test_key_file_missing(void)
{
    struct crypt_key *k = NULL;
    struct err err;
    char path[128], want[256];

    snprintf(path, sizeof(path), "%s/nope", dir);
    snprintf(want, sizeof(want), "could not open key file \"%s\": No such file or directory", path);
    CHECK_FAIL(crypt_key_from_file(&k, path, &err), &err, ERR_CONFIG, want);
    snprintf(want, sizeof(want), "key file \"%s\" is not a regular file", dir);
    chmod(dir, 0700);
    CHECK_FAIL(crypt_key_from_file(&k, dir, &err), &err, ERR_CONFIG, want);
}

static void
test_passphrase_empty(void)
{
    struct crypt_key *k = NULL;
    struct err err;

    CHECK_FAIL(crypt_key_from_passphrase(&k, "", &err), &err, ERR_CONFIG,
               "the encryption passphrase is empty");
    CHECK(k == NULL);
}

static void
test_passphrase_objects(void)
{
    struct crypt_key *enc = NULL, *dec = NULL, *wrong = NULL;
    struct buf a = BUF_INIT, b = BUF_INIT, out = BUF_INIT;
    struct object_info info;
    struct err err;
    double t0, t_enc, t_first, t_second;

    CHECK_OK(crypt_key_from_passphrase(&enc, "correct horse battery staple", &err), &err);
    t0 = now();
    CHECK_OK(encode_to(&a, "first", 5, OBJECT_COMPRESS_GZIP, enc, &info, &err), &err);
    t_enc = now() - t0;
    CHECK_STR(info.kdf, "scrypt");
    CHECK(info.encrypted);
    CHECK_OK(encode_to(&b, "second", 6, OBJECT_COMPRESS_NONE, enc, NULL, &err), &err);
    /* N = 2^14, r = 8, p = 1 in every header; one scrypt salt per key, one object salt each */
    CHECK(a.len > 108 && a.data[80] == 14 && a.data[81] == 8 && a.data[82] == 1);
    CHECK(memcmp(a.data + 84, b.data + 84, 16) == 0);
    CHECK(memcmp(a.data + 16, b.data + 16, 32) != 0);

    /* a fresh key from the same passphrase decodes both; the kdf runs once for the salt */
    CHECK_OK(crypt_key_from_passphrase(&dec, "correct horse battery staple", &err), &err);
    t0 = now();
    CHECK_OK(decode_to(&out, a.data, a.len, dec, 0, NULL, &err), &err);
    t_first = now() - t0;
    CHECK_STR(buf_str(&out), "first");
    buf_reset(&out);
    t0 = now();
    CHECK_OK(decode_to(&out, b.data, b.len, dec, 1, NULL, &err), &err);
    t_second = now() - t0;
    CHECK_STR(buf_str(&out), "second");
    printf("# scrypt N=2^14 r=8 p=1: encode %.1f ms, first decode %.1f ms, cached %.2f ms\n",
           t_enc * 1e3, t_first * 1e3, t_second * 1e3);
    CHECK(t_second < t_first / 4);

    CHECK_OK(crypt_key_from_passphrase(&wrong, "correct horse battery stapler", &err), &err);
    CHECK_FAIL(decode_to(&out, a.data, a.len, wrong, 0, NULL, &err), &err, ERR_KEY,
               "wrong encryption key");
    crypt_key_free(enc);
    crypt_key_free(dec);
    crypt_key_free(wrong);
    buf_free(&a);
    buf_free(&b);
    buf_free(&out);
}

static void
test_key_kind_mismatch(void)
{
    struct crypt_key *pass = NULL, *file = NULL;
    struct buf a = BUF_INIT, b = BUF_INIT, out = BUF_INIT;
    struct err err;

    CHECK_OK(crypt_key_from_passphrase(&pass, "pw", &err), &err);
    CHECK_OK(crypt_key_from_file(&file, write_key("k", HEX_KEY, 64, 0600), &err), &err);
    CHECK_OK(encode_to(&a, "x", 1, OBJECT_COMPRESS_ZSTD, pass, NULL, &err), &err);
    CHECK_OK(encode_to(&b, "x", 1, OBJECT_COMPRESS_ZSTD, file, NULL, &err), &err);
    CHECK_FAIL(decode_to(&out, a.data, a.len, file, 0, NULL, &err), &err, ERR_KEY,
               "object is encrypted with a passphrase, not with a key file");
    CHECK_FAIL(decode_to(&out, b.data, b.len, pass, 0, NULL, &err), &err, ERR_KEY,
               "object is encrypted with a key file, not with a passphrase");
    CHECK_FAIL(decode_to(&out, a.data, a.len, NULL, 0, NULL, &err), &err, ERR_KEY,
               "object is encrypted: no key given");
    crypt_key_free(pass);
    crypt_key_free(file);
    buf_free(&a);
    buf_free(&b);
    buf_free(&out);
}

static void
test_no_key_material_in_object(void)
{
    unsigned char raw[32];
    struct crypt_key *k = NULL;
    struct buf a = BUF_INIT;
    struct err err;

    for (int i = 0; i < 32; i++)
        raw[i] = (unsigned char)(0xa0 + i);
    CHECK_OK(crypt_key_from_file(&k, write_key("raw2", raw, 32, 0600), &err), &err);
    CHECK_OK(encode_to(&a, "plaintext plaintext", 19, OBJECT_COMPRESS_NONE, k, NULL, &err), &err);
    CHECK(memmem(a.data, a.len, raw, 8) == NULL);
    CHECK(memmem(a.data, a.len, "plaintext", 9) == NULL);
    crypt_key_free(k);
    buf_free(&a);
}

int
main(void)
{
    snprintf(dir, sizeof(dir), "/tmp/ferry-test-crypt-XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    RUN(test_key_file_forms);
    RUN(test_key_file_rejected);
    RUN(test_key_file_permissions);
    RUN(test_key_file_missing);
    RUN(test_passphrase_empty);
    RUN(test_passphrase_objects);
    RUN(test_key_kind_mismatch);
    RUN(test_no_key_material_in_object);
    {
        const char *names[] = {"raw",    "hex", "hexws", "HEX", "b64", "b64np",
                               "spaces", "bad", "open",  "k",   "raw2"};
        char p[128];

        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
            snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
            unlink(p);
        }
        rmdir(dir);
    }
    return check_done();
}
