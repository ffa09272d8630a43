/* SPDX-License-Identifier: MIT */
/*
 * Writes the seed corpus of tests/fuzz/fuzz_object.c: small valid objects of
 * every kind (compression x no key, key file, passphrase) and damaged
 * variants (truncated, a flipped bit, trailing data). Raw-key objects use
 * the fuzz target's test key (bytes 0x00..0x1f).
 *
 *   ninja -C build tests/unit/stream/gen_object_corpus
 *   build/tests/unit/stream/gen_object_corpus tests/fuzz/corpus/object
 */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "helpers.h"

static const char *outdir;
static size_t written;

static void
save(const char *name, const void *data, size_t len)
{
    char path[512];
    int fd;

    snprintf(path, sizeof(path), "%s/%s", outdir, name);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, data, len) != (ssize_t)len) {
        perror(path);
        exit(1);
    }
    close(fd);
    written += len;
}

int
main(int argc, char **argv)
{
    static const size_t sizes[] = {0,   1,   2,   3,    7,    16,   31,   64,   100,  200,
                                   333, 500, 700, 1000, 1234, 1500, 2000, 2500, 3000, 4000};
    static const char *key_names[] = {"plain", "rawkey", "passphrase"};
    struct crypt_key *keys[3] = {NULL, NULL, NULL};
    unsigned char *data = xmalloc(70000);
    struct buf obj = BUF_INIT;
    struct err err;
    char name[128];

    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    outdir = argv[1];
    keys[1] = raw_key(0);
    if (crypt_key_from_passphrase(&keys[2], "fuzz", &err) < 0)
        return 1;
    for (enum object_compress c = OBJECT_COMPRESS_NONE; c <= OBJECT_COMPRESS_GZIP; c++)
        for (int k = 0; k < 3; k++)
            for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
                size_t n = sizes[i];

                if (i % 2)
                    fill_text(data, n);
                else
                    fill_random(data, n);
                if (encode_to(&obj, data, n, c, keys[k], NULL, &err) < 0) {
                    fprintf(stderr, "%s\n", err.msg);
                    return 1;
                }
                snprintf(name, sizeof(name), "valid-%s-%s-%02zu", object_compress_name(c),
                         key_names[k], i);
                save(name, obj.data, obj.len);
                /* damaged variants of a few of them */
                if (i % 4 == 1) {
                    snprintf(name, sizeof(name), "trunc-%s-%s-%02zu", object_compress_name(c),
                             key_names[k], i);
                    save(name, obj.data, (size_t)(rng_next() % obj.len));
                }
                if (i % 4 == 2) {
                    size_t at = (size_t)(rng_next() % obj.len);

                    obj.data[at] ^= (char)(1 << (rng_next() % 8));
                    snprintf(name, sizeof(name), "flip-%s-%s-%02zu", object_compress_name(c),
                             key_names[k], i);
                    save(name, obj.data, obj.len);
                }
                if (i % 4 == 3) {
                    buf_append(&obj, "trailing", 8);
                    snprintf(name, sizeof(name), "trail-%s-%s-%02zu", object_compress_name(c),
                             key_names[k], i);
                    save(name, obj.data, obj.len);
                }
            }
    /* two chunks: the chunk boundary and the last-chunk flag */
    fill_random(data, 70000);
    for (int k = 0; k < 2; k++) {
        if (encode_to(&obj, data, 70000, OBJECT_COMPRESS_NONE, keys[k], NULL, &err) < 0)
            return 1;
        snprintf(name, sizeof(name), "valid-none-%s-2chunks", key_names[k]);
        save(name, obj.data, obj.len);
    }
    printf("%zu bytes written to %s\n", written, outdir);
    crypt_key_free(keys[1]);
    crypt_key_free(keys[2]);
    buf_free(&obj);
    free(data);
    return 0;
}
