/* SPDX-License-Identifier: MIT */
/*
 * Client-side encryption keys and the AES-256-GCM primitives the object
 * format (object.c, docs/FORMAT.md) is built on. A key is 32 raw bytes from
 * a key file, or a passphrase stretched with scrypt; the stretched key is
 * cached per salt so that decoding many objects costs one KDF run, and a key
 * uses one salt for all the objects it encodes. Secrets are wiped with
 * OPENSSL_cleanse before their memory is released.
 */
#include "stream/crypt.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/xmalloc.h"

#define KEY_FILE_MAX 4096
#define KDF_CACHE_SLOTS 8

enum key_kind { KEY_RAW, KEY_PASSPHRASE };

struct kdf_slot {
    int used;
    struct crypt_kdf kdf;
    unsigned char master[CRYPT_KEY_SIZE];
};

struct crypt_key {
    enum key_kind kind;
    unsigned char raw[CRYPT_KEY_SIZE];
    char *pass;
    size_t pass_len;
    struct crypt_kdf encode_kdf; /* salt and parameters for new objects */
    pthread_mutex_t lock;        /* guards the cache below */
    struct kdf_slot cache[KDF_CACHE_SLOTS];
    unsigned next_slot;
};

int
crypt_random(void *out, size_t len, struct err *err)
{
    if (RAND_bytes(out, (int)len) != 1)
        return err_set(err, ERR_INTERNAL, "could not get random bytes");
    return 0;
}

static int
hex_value(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int
b64_value(int c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Decode 64 hex digits into 32 bytes. */
static int
parse_hex_key(unsigned char out[CRYPT_KEY_SIZE], const char *s, size_t n)
{
    if (n != 2 * CRYPT_KEY_SIZE)
        return -1;
    for (size_t i = 0; i < CRYPT_KEY_SIZE; i++) {
        int hi = hex_value((unsigned char)s[2 * i]), lo = hex_value((unsigned char)s[2 * i + 1]);

        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

/* Decode base64 of exactly 32 bytes: 43 characters, or 44 ending in one '='. */
static int
parse_b64_key(unsigned char out[CRYPT_KEY_SIZE], const char *s, size_t n)
{
    uint32_t acc = 0;
    size_t bits = 0, o = 0;

    if (n == 44 && s[43] == '=')
        n = 43;
    if (n != 43)
        return -1;
    for (size_t i = 0; i < n; i++) {
        int v = b64_value((unsigned char)s[i]);

        if (v < 0)
            return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    /* 43 * 6 = 258 bits: 2 bits left over, which must be zero (canonical) */
    if (o != CRYPT_KEY_SIZE || (acc & ((1u << bits) - 1)) != 0)
        return -1;
    return 0;
}

static struct crypt_key *
key_alloc(enum key_kind kind)
{
    struct crypt_key *k = xcalloc(1, sizeof(*k));

    k->kind = kind;
    pthread_mutex_init(&k->lock, NULL);
    return k;
}

int
crypt_key_from_file(struct crypt_key **out, const char *path, struct err *err)
{
    unsigned char data[KEY_FILE_MAX + 1];
    unsigned char key[CRYPT_KEY_SIZE];
    struct stat st;
    size_t len = 0;
    int fd = -1, rc = -1;
    const char *s;
    size_t n;

    *out = NULL;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        err_sys(err, ERR_CONFIG, "could not open key file \"%s\"", path);
        goto out;
    }
    if (fstat(fd, &st) < 0) {
        err_sys(err, ERR_CONFIG, "could not stat key file \"%s\"", path);
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        err_set(err, ERR_CONFIG, "key file \"%s\" is not a regular file", path);
        goto out;
    }
    if (st.st_mode & (S_IRGRP | S_IROTH)) {
        err_set(err, ERR_CONFIG, "key file \"%s\" must not be readable by group or others", path);
        goto out;
    }
    while (len < sizeof(data)) {
        ssize_t r = read(fd, data + len, sizeof(data) - len);

        if (r < 0) {
            if (errno == EINTR)
                continue;
            err_sys(err, ERR_CONFIG, "could not read key file \"%s\"", path);
            goto out;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    /* exactly 32 bytes is a raw key, even if some of them look like spaces */
    if (len == CRYPT_KEY_SIZE) {
        memcpy(key, data, CRYPT_KEY_SIZE);
    } else {
        s = (const char *)data;
        n = len > KEY_FILE_MAX ? 0 : len;
        while (n && isspace((unsigned char)s[0])) {
            s++;
            n--;
        }
        while (n && isspace((unsigned char)s[n - 1]))
            n--;
        if (n == 0 || (parse_hex_key(key, s, n) < 0 && parse_b64_key(key, s, n) < 0)) {
            err_set(err, ERR_CONFIG,
                    "key file \"%s\" must hold 32 raw bytes, 64 hex digits or base64 of 32 bytes",
                    path);
            goto out;
        }
    }
    *out = key_alloc(KEY_RAW);
    memcpy((*out)->raw, key, CRYPT_KEY_SIZE);
    rc = 0;
out:
    OPENSSL_cleanse(data, sizeof(data));
    OPENSSL_cleanse(key, sizeof(key));
    if (fd >= 0)
        close(fd);
    return rc;
}

int
crypt_key_from_passphrase(struct crypt_key **out, const char *passphrase, struct err *err)
{
    struct crypt_key *k;

    *out = NULL;
    if (!passphrase || !*passphrase)
        return err_set(err, ERR_CONFIG, "the encryption passphrase is empty");
    k = key_alloc(KEY_PASSPHRASE);
    k->pass_len = strlen(passphrase);
    k->pass = xstrdup(passphrase);
    k->encode_kdf.log2_n = CRYPT_SCRYPT_LOG2_N;
    k->encode_kdf.r = CRYPT_SCRYPT_R;
    k->encode_kdf.p = CRYPT_SCRYPT_P;
    if (crypt_random(k->encode_kdf.salt, sizeof(k->encode_kdf.salt), err) < 0) {
        crypt_key_free(k);
        return -1;
    }
    *out = k;
    return 0;
}

void
crypt_key_free(struct crypt_key *k)
{
    if (!k)
        return;
    if (k->pass) {
        OPENSSL_cleanse(k->pass, k->pass_len);
        free(k->pass);
    }
    pthread_mutex_destroy(&k->lock);
    OPENSSL_cleanse(k, sizeof(*k));
    free(k);
}

int
crypt_key_is_passphrase(const struct crypt_key *k)
{
    return k->kind == KEY_PASSPHRASE;
}

void
crypt_key_encode_kdf(const struct crypt_key *k, struct crypt_kdf *out)
{
    *out = k->encode_kdf;
}

int
crypt_kdf_acceptable(const struct crypt_kdf *kdf)
{
    if (kdf->log2_n < 1 || kdf->log2_n > CRYPT_SCRYPT_MAX_LOG2_N)
        return 0;
    if (kdf->r < 1 || kdf->r > CRYPT_SCRYPT_MAX_R || kdf->p < 1 || kdf->p > CRYPT_SCRYPT_MAX_P)
        return 0;
    return (uint64_t)128 * kdf->r * ((uint64_t)1 << kdf->log2_n) <= CRYPT_SCRYPT_MAX_MEM;
}

static int
kdf_equal(const struct crypt_kdf *a, const struct crypt_kdf *b)
{
    return a->log2_n == b->log2_n && a->r == b->r && a->p == b->p &&
           memcmp(a->salt, b->salt, sizeof(a->salt)) == 0;
}

int
crypt_key_master(unsigned char out[CRYPT_KEY_SIZE], const struct crypt_key *ck,
                 const struct crypt_kdf *kdf, struct err *err)
{
    /* the cache is not part of the key's value: updating it through const is by design */
    struct crypt_key *k = (struct crypt_key *)ck;
    unsigned char derived[CRYPT_KEY_SIZE];
    uint64_t n;
    int rc = -1;

    if (k->kind == KEY_RAW) {
        memcpy(out, k->raw, CRYPT_KEY_SIZE);
        return 0;
    }
    if (!crypt_kdf_acceptable(kdf))
        return err_set(err, ERR_CORRUPT, "unsupported scrypt parameters: N=2^%u r=%u p=%u",
                       kdf->log2_n, kdf->r, kdf->p);
    pthread_mutex_lock(&k->lock);
    for (int i = 0; i < KDF_CACHE_SLOTS; i++) {
        if (k->cache[i].used && kdf_equal(&k->cache[i].kdf, kdf)) {
            memcpy(out, k->cache[i].master, CRYPT_KEY_SIZE);
            rc = 0;
            goto out;
        }
    }
    n = (uint64_t)1 << kdf->log2_n;
    /* maxmem: scrypt needs 128 * r * N for V plus 256 * r * p for B, leave room */
    if (EVP_PBE_scrypt(k->pass, k->pass_len, kdf->salt, sizeof(kdf->salt), n, kdf->r, kdf->p,
                       (uint64_t)128 * kdf->r * n + (uint64_t)256 * kdf->r * kdf->p + 65536,
                       derived, sizeof(derived)) != 1) {
        err_set(err, ERR_INTERNAL, "scrypt key derivation failed");
        goto out;
    }
    {
        struct kdf_slot *slot = &k->cache[k->next_slot++ % KDF_CACHE_SLOTS];

        slot->used = 1;
        slot->kdf = *kdf;
        memcpy(slot->master, derived, CRYPT_KEY_SIZE);
    }
    memcpy(out, derived, CRYPT_KEY_SIZE);
    rc = 0;
out:
    pthread_mutex_unlock(&k->lock);
    OPENSSL_cleanse(derived, sizeof(derived));
    return rc;
}

int
crypt_hkdf(unsigned char *out, size_t outlen, const unsigned char *ikm, size_t ikmlen,
           const unsigned char *salt, size_t saltlen, const char *info, struct err *err)
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    OSSL_PARAM params[5];
    int rc = -1;

    if (!ctx) {
        err_set(err, ERR_INTERNAL, "could not load hkdf");
        goto out;
    }
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
    params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikmlen);
    params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, saltlen);
    params[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, strlen(info));
    params[4] = OSSL_PARAM_construct_end();
    if (EVP_KDF_derive(ctx, out, outlen, params) != 1) {
        err_set(err, ERR_INTERNAL, "hkdf key derivation failed");
        goto out;
    }
    rc = 0;
out:
    EVP_KDF_CTX_free(ctx);
    EVP_KDF_free(kdf);
    return rc;
}

struct crypt_gcm {
    EVP_CIPHER_CTX *ctx;
};

struct crypt_gcm *
crypt_gcm_new(const unsigned char key[CRYPT_KEY_SIZE], int encrypt, struct err *err)
{
    struct crypt_gcm *g = xcalloc(1, sizeof(*g));

    g->ctx = EVP_CIPHER_CTX_new();
    if (!g->ctx || EVP_CipherInit_ex(g->ctx, EVP_aes_256_gcm(), NULL, key, NULL, encrypt) != 1) {
        crypt_gcm_free(g);
        err_set(err, ERR_INTERNAL, "could not set up aes-256-gcm");
        return NULL;
    }
    return g;
}

void
crypt_gcm_free(struct crypt_gcm *g)
{
    if (!g)
        return;
    EVP_CIPHER_CTX_free(g->ctx); /* wipes the key schedule */
    free(g);
}

/* EVP lengths are ints: records are at most a chunk (1 MiB), far below */
static int
gcm_update(EVP_CIPHER_CTX *ctx, unsigned char *out, const unsigned char *in, size_t len)
{
    int n = 0;

    if (len == 0)
        return 0;
    if (EVP_CipherUpdate(ctx, out, &n, in, (int)len) != 1 || (size_t)n != len)
        return -1;
    return 0;
}

int
crypt_gcm_seal(struct crypt_gcm *g, const unsigned char nonce[CRYPT_NONCE_SIZE],
               const unsigned char *aad, size_t aadlen, const unsigned char *in, size_t len,
               unsigned char *out, unsigned char tag[CRYPT_TAG_SIZE], struct err *err)
{
    int n = 0;

    if (EVP_CipherInit_ex(g->ctx, NULL, NULL, NULL, nonce, 1) != 1 ||
        (aadlen && EVP_CipherUpdate(g->ctx, NULL, &n, aad, (int)aadlen) != 1) ||
        gcm_update(g->ctx, out, in, len) < 0 || EVP_CipherFinal_ex(g->ctx, out + len, &n) != 1 ||
        EVP_CIPHER_CTX_ctrl(g->ctx, EVP_CTRL_GCM_GET_TAG, CRYPT_TAG_SIZE, tag) != 1)
        return err_set(err, ERR_INTERNAL, "aes-256-gcm encryption failed");
    return 0;
}

int
crypt_gcm_open(struct crypt_gcm *g, const unsigned char nonce[CRYPT_NONCE_SIZE],
               const unsigned char *aad, size_t aadlen, const unsigned char *in, size_t len,
               const unsigned char tag[CRYPT_TAG_SIZE], unsigned char *out, struct err *err)
{
    int n = 0;

    if (EVP_CipherInit_ex(g->ctx, NULL, NULL, NULL, nonce, 0) != 1 ||
        (aadlen && EVP_CipherUpdate(g->ctx, NULL, &n, aad, (int)aadlen) != 1) ||
        gcm_update(g->ctx, out, in, len) < 0 ||
        EVP_CIPHER_CTX_ctrl(g->ctx, EVP_CTRL_GCM_SET_TAG, CRYPT_TAG_SIZE, (void *)tag) != 1)
        return err_set(err, ERR_INTERNAL, "aes-256-gcm decryption failed");
    if (EVP_CipherFinal_ex(g->ctx, out + len, &n) != 1)
        return 0;
    return 1;
}
