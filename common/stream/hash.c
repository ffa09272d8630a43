/* SPDX-License-Identifier: MIT */
/*
 * SHA-256 of everything passing through (OpenSSL EVP). The digest is written
 * to the caller's array at finish, before the successor is finished, so a
 * caller reading it after sink_finish sees the complete value.
 */
#include "stream/stages.h"

#include <openssl/evp.h>
#include <stdlib.h>

#include "base/xmalloc.h"

struct hash_sink {
    struct sink base;
    EVP_MD_CTX *ctx;
    unsigned char *digest;
    int started;
};

static int
hash_start(struct hash_sink *h, struct err *err)
{
    if (h->started)
        return 0;
    h->ctx = EVP_MD_CTX_new();
    if (!h->ctx || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1)
        return err_set(err, ERR_INTERNAL, "could not start sha-256");
    h->started = 1;
    return 0;
}

static int
hash_write(struct sink *s, const void *buf, size_t len, struct err *err)
{
    struct hash_sink *h = (struct hash_sink *)s;

    if (hash_start(h, err) < 0)
        return -1;
    if (len && EVP_DigestUpdate(h->ctx, buf, len) != 1)
        return err_set(err, ERR_INTERNAL, "sha-256 update failed");
    return sink_next_write(s, buf, len, err);
}

static int
hash_finish(struct sink *s, struct err *err)
{
    struct hash_sink *h = (struct hash_sink *)s;
    unsigned int n = 0;

    if (hash_start(h, err) < 0)
        return -1;
    if (EVP_DigestFinal_ex(h->ctx, h->digest, &n) != 1 || n != 32)
        return err_set(err, ERR_INTERNAL, "sha-256 final failed");
    return sink_next_finish(s, err);
}

static void
hash_free(struct sink *s)
{
    struct hash_sink *h = (struct hash_sink *)s;

    EVP_MD_CTX_free(h->ctx);
    free(h);
}

static const struct sink_ops hash_ops = {"sha256", hash_write, hash_finish, hash_free};

struct sink *
hash_sink_new(struct sink *next, unsigned char digest[32])
{
    struct hash_sink *h = xcalloc(1, sizeof(*h));

    sink_init(&h->base, &hash_ops, next);
    h->digest = digest;
    return &h->base;
}
