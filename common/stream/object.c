/* SPDX-License-Identifier: MIT */
/*
 * The self-describing object format; docs/FORMAT.md is its specification
 * and must change with this file. An object is
 *
 *   header | chunk... (the last one flagged) | trailer (64 bytes)
 *
 * Header (little-endian integers, L = header length):
 *
 *   off  len  field
 *     0    8  magic 89 46 45 52 52 59 0d 0a ("\x89FERRY\r\n")
 *     8    1  format version (1)
 *     9    1  compression: 0 none, 1 zstd, 2 gzip
 *    10    1  cipher: 0 none, 1 AES-256-GCM
 *    11    1  key source: 0 none, 1 raw key (key file), 2 scrypt (passphrase)
 *    12    2  L: 24 (no cipher), 88 (raw key), 108 (scrypt)
 *    14    1  log2 of the chunk size (16: 64 KiB; 12..20 accepted)
 *    15    1  reserved, 0
 *   cipher 1 only:
 *    16   32  object salt (random per object)
 *    48   32  key check: HKDF output beside the data key (wrong key detection)
 *   key source 2 only:
 *    80    1  scrypt log2(N)
 *    81    1  scrypt r
 *    82    1  scrypt p
 *    83    1  reserved, 0
 *    84   16  scrypt salt
 *   L-8    8  header check: first 8 bytes of SHA-256 of bytes 0..L-9
 *
 * Chunk: u32 (bit 31: last chunk; bits 0..30: n, at most the chunk size),
 * then n bytes of the compressed stream, or when encrypted n bytes of
 * AES-256-GCM ciphertext and a 16-byte tag.
 *
 * Trailer: u64 plaintext size, 32-byte plaintext SHA-256 (both encrypted
 * when cipher 1), 16 bytes of check (cipher 0: first 16 bytes of SHA-256 of
 * bytes 0..39; cipher 1: GCM tag), 8-byte end magic "FERRYEND".
 *
 * Encrypted records: key = first 32 bytes of HKDF-SHA256(master, object
 * salt, "ferry object v1"); nonce = u64 big-endian record index, one byte of
 * kind (0 chunk, 1 last chunk, 2 trailer), 3 zero bytes; AAD = the whole
 * header, then the nonce. The trailer's index is the number of chunks.
 */
#include "stream/object.h"

#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hex.h"
#include "base/xmalloc.h"
#include "stream/crypt.h"
#include "stream/stages.h"

#define OBJ_MAGIC                                                                                  \
    "\x89"                                                                                         \
    "FERRY\r\n"
#define OBJ_END_MAGIC "FERRYEND"
#define OBJ_VERSION 1
#define OBJ_FIXED 16
#define OBJ_CHECK_LEN 8
#define OBJ_LEN_PLAIN 24
#define OBJ_LEN_RAW 88
#define OBJ_LEN_SCRYPT 108
#define OBJ_CIPHER_NONE 0
#define OBJ_CIPHER_AES256GCM 1
#define OBJ_KDF_NONE 0
#define OBJ_KDF_RAW 1
#define OBJ_KDF_SCRYPT 2
#define OBJ_CHUNK_LOG2 16
#define OBJ_CHUNK_LOG2_MIN 12
#define OBJ_CHUNK_LOG2_MAX 20
#define OBJ_CHUNK_LAST 0x80000000u
#define OBJ_SALT_SIZE 32
#define OBJ_KEYCHECK_SIZE 32
#define OBJ_TRAILER_FIELDS 40
#define OBJ_HKDF_INFO "ferry object v1"

enum rec_kind { REC_CHUNK = 0, REC_LAST = 1, REC_TRAILER = 2 };

static void
put_u16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static void
put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void
put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint16_t
get_u16(const unsigned char *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t
get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t
get_u64(const unsigned char *p)
{
    uint64_t v = 0;

    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void
sha256(unsigned char out[32], const void *a, size_t alen, const void *b, size_t blen)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int n = 0;

    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(ctx, a, alen) != 1 || (blen && EVP_DigestUpdate(ctx, b, blen) != 1) ||
        EVP_DigestFinal_ex(ctx, out, &n) != 1)
        abort(); /* cannot fail short of a broken OpenSSL */
    EVP_MD_CTX_free(ctx);
}

static void
hex32(char out[65], const unsigned char d[32])
{
    hex_encode(out, d, 32);
}

void
object_sha256_hex(char out[65], const struct object_info *info)
{
    hex32(out, info->sha256);
}

int
object_compress_parse(const char *s, enum object_compress *out, struct err *err)
{
    if (strcmp(s, "zstd") == 0)
        *out = OBJECT_COMPRESS_ZSTD;
    else if (strcmp(s, "gzip") == 0)
        *out = OBJECT_COMPRESS_GZIP;
    else if (strcmp(s, "none") == 0)
        *out = OBJECT_COMPRESS_NONE;
    else
        return err_set(err, ERR_USAGE, "unknown compression \"%s\" (use zstd, gzip or none)", s);
    return 0;
}

const char *
object_compress_name(enum object_compress c)
{
    switch (c) {
    case OBJECT_COMPRESS_NONE:
        return "none";
    case OBJECT_COMPRESS_ZSTD:
        return "zstd";
    case OBJECT_COMPRESS_GZIP:
        return "gzip";
    }
    return "unknown";
}

bool
object_is_ferry(const void *head, size_t len)
{
    return len >= 8 && memcmp(head, OBJ_MAGIC, 8) == 0;
}

static void
make_nonce(unsigned char nonce[CRYPT_NONCE_SIZE], uint64_t index, enum rec_kind kind)
{
    for (int i = 0; i < 8; i++)
        nonce[i] = (unsigned char)(index >> (8 * (7 - i)));
    nonce[8] = (unsigned char)kind;
    nonce[9] = nonce[10] = nonce[11] = 0;
}

/* AAD = header, then nonce (index and kind): buf holds at least L + 12 bytes */
static size_t
make_aad(unsigned char *aad, const unsigned char *hdr, size_t hdr_len,
         const unsigned char nonce[CRYPT_NONCE_SIZE])
{
    memcpy(aad, hdr, hdr_len);
    memcpy(aad + hdr_len, nonce, CRYPT_NONCE_SIZE);
    return hdr_len + CRYPT_NONCE_SIZE;
}

/* Data key and key check for an object from its master key and salt. */
static int
object_keys(unsigned char data_key[CRYPT_KEY_SIZE], unsigned char check[OBJ_KEYCHECK_SIZE],
            const unsigned char master[CRYPT_KEY_SIZE], const unsigned char salt[OBJ_SALT_SIZE],
            struct err *err)
{
    unsigned char okm[CRYPT_KEY_SIZE + OBJ_KEYCHECK_SIZE];

    if (crypt_hkdf(okm, sizeof(okm), master, CRYPT_KEY_SIZE, salt, OBJ_SALT_SIZE, OBJ_HKDF_INFO,
                   err) < 0)
        return -1;
    memcpy(data_key, okm, CRYPT_KEY_SIZE);
    memcpy(check, okm + CRYPT_KEY_SIZE, OBJ_KEYCHECK_SIZE);
    OPENSSL_cleanse(okm, sizeof(okm));
    return 0;
}

static const char *
kdf_name(int kdf)
{
    switch (kdf) {
    case OBJ_KDF_RAW:
        return "raw-key";
    case OBJ_KDF_SCRYPT:
        return "scrypt";
    default:
        return "";
    }
}

/* Parsed header. */
struct obj_header {
    unsigned char bytes[OBJECT_HEAD_MAX];
    size_t len;
    int compress;
    int cipher;
    int kdf_kind;
    unsigned chunk_log2;
    unsigned char salt[OBJ_SALT_SIZE];
    unsigned char keycheck[OBJ_KEYCHECK_SIZE];
    struct crypt_kdf kdf;
};

static size_t
header_len_for(int cipher, int kdf)
{
    if (cipher == OBJ_CIPHER_NONE)
        return OBJ_LEN_PLAIN;
    return kdf == OBJ_KDF_SCRYPT ? OBJ_LEN_SCRYPT : OBJ_LEN_RAW;
}

/*
 * Check the first 16 bytes (magic, version, length): how many header bytes
 * to expect. n is how many bytes of p are there (at least 16).
 */
static int
header_prefix(size_t *len, const unsigned char *p, struct err *err)
{
    if (memcmp(p, OBJ_MAGIC, 8) != 0)
        return err_set(err, ERR_CORRUPT, "not a ferry object");
    if (p[8] != OBJ_VERSION)
        return err_set(err, ERR_CORRUPT,
                       "unsupported object format version %u (this ferry reads version %u)", p[8],
                       OBJ_VERSION);
    *len = get_u16(p + 12);
    if (*len < OBJ_LEN_PLAIN || *len > OBJECT_HEAD_MAX)
        return err_set(err, ERR_CORRUPT, "object header is corrupt: bad length %zu", *len);
    return 0;
}

/* Parse a complete header of h->len bytes held in h->bytes. */
static int
header_parse(struct obj_header *h, struct err *err)
{
    const unsigned char *p = h->bytes;
    unsigned char digest[32];

    sha256(digest, p, h->len - OBJ_CHECK_LEN, NULL, 0);
    if (CRYPTO_memcmp(digest, p + h->len - OBJ_CHECK_LEN, OBJ_CHECK_LEN) != 0)
        return err_set(err, ERR_CORRUPT, "object header checksum mismatch");
    h->compress = p[9];
    h->cipher = p[10];
    h->kdf_kind = p[11];
    h->chunk_log2 = p[14];
    if (h->compress > OBJECT_COMPRESS_GZIP)
        return err_set(err, ERR_CORRUPT, "object header is corrupt: unknown compression %d",
                       h->compress);
    if (h->cipher > OBJ_CIPHER_AES256GCM ||
        (h->cipher == OBJ_CIPHER_NONE) != (h->kdf_kind == OBJ_KDF_NONE) ||
        h->kdf_kind > OBJ_KDF_SCRYPT)
        return err_set(err, ERR_CORRUPT, "object header is corrupt: unknown cipher %d/%d",
                       h->cipher, h->kdf_kind);
    if (h->len != header_len_for(h->cipher, h->kdf_kind) || p[15] != 0)
        return err_set(err, ERR_CORRUPT, "object header is corrupt: bad length %zu", h->len);
    if (h->chunk_log2 < OBJ_CHUNK_LOG2_MIN || h->chunk_log2 > OBJ_CHUNK_LOG2_MAX)
        return err_set(err, ERR_CORRUPT, "object header is corrupt: chunk size 2^%u",
                       h->chunk_log2);
    if (h->cipher == OBJ_CIPHER_AES256GCM) {
        memcpy(h->salt, p + 16, OBJ_SALT_SIZE);
        memcpy(h->keycheck, p + 48, OBJ_KEYCHECK_SIZE);
    }
    if (h->kdf_kind == OBJ_KDF_SCRYPT) {
        h->kdf.log2_n = p[80];
        h->kdf.r = p[81];
        h->kdf.p = p[82];
        memcpy(h->kdf.salt, p + 84, CRYPT_KDF_SALT_SIZE);
        if (p[83] != 0 || !crypt_kdf_acceptable(&h->kdf))
            return err_set(err, ERR_CORRUPT,
                           "object header is corrupt: unsupported scrypt parameters N=2^%u r=%u "
                           "p=%u",
                           h->kdf.log2_n, h->kdf.r, h->kdf.p);
    }
    return 0;
}

static void
info_from_header(struct object_info *info, const struct obj_header *h)
{
    info->compress = (enum object_compress)h->compress;
    info->encrypted = h->cipher != OBJ_CIPHER_NONE;
    snprintf(info->kdf, sizeof(info->kdf), "%s", kdf_name(h->kdf_kind));
}

int
object_inspect(struct object_info *out, const void *head, size_t head_len, const void *tail,
               size_t tail_len, uint64_t stored_size, struct err *err)
{
    struct obj_header h;
    const unsigned char *t = tail;
    unsigned char digest[32];

    memset(out, 0, sizeof(*out));
    memset(&h, 0, sizeof(h));
    if (head_len < 8 || !object_is_ferry(head, head_len))
        return err_set(err, ERR_CORRUPT, "not a ferry object");
    if (head_len < OBJ_FIXED)
        return err_set(err, ERR_CORRUPT, "object is truncated");
    if (header_prefix(&h.len, head, err) < 0)
        return -1;
    if (head_len < h.len || stored_size < h.len + 4 + OBJECT_TAIL_SIZE)
        return err_set(err, ERR_CORRUPT, "object is truncated");
    memcpy(h.bytes, head, h.len);
    if (header_parse(&h, err) < 0)
        return -1;
    info_from_header(out, &h);
    out->stored_size = stored_size;
    if (tail_len < OBJECT_TAIL_SIZE)
        return err_set(err, ERR_CORRUPT, "object is truncated");
    t += tail_len - OBJECT_TAIL_SIZE;
    if (memcmp(t + 56, OBJ_END_MAGIC, 8) != 0)
        return err_set(err, ERR_CORRUPT, "object trailer is corrupt");
    if (h.cipher != OBJ_CIPHER_NONE)
        return 0; /* size and checksum are encrypted: unknown without the key */
    sha256(digest, t, OBJ_TRAILER_FIELDS, NULL, 0);
    if (CRYPTO_memcmp(digest, t + OBJ_TRAILER_FIELDS, 16) != 0)
        return err_set(err, ERR_CORRUPT, "object trailer checksum mismatch");
    out->plain_size = get_u64(t);
    memcpy(out->sha256, t + 8, 32);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Encoder */

struct obj_enc {
    struct sink base; /* next: the user's sink (receives the object) */
    struct object_opts opts;
    struct object_info *info;
    int opened;
    EVP_MD_CTX *md;
    const unsigned char *prehashed; /* the caller's SHA-256 (object_encode_sink_new_prehashed) */
    const uint64_t *plain_given;    /* the caller's plaintext size: precompressed */
    uint64_t plain;
    uint64_t stored;
    unsigned char sha[32];
    struct sink *chain; /* compressor (if any), then the framer */
    struct obj_header h;
    struct crypt_gcm *gcm;
    size_t chunk_size;
    unsigned char *chunk; /* one chunk of the compressed stream */
    size_t fill;
    unsigned char *out; /* length, ciphertext, tag */
    unsigned char aad[OBJECT_HEAD_MAX + CRYPT_NONCE_SIZE];
    uint64_t index;
};

struct framer {
    struct sink base;
    struct obj_enc *e;
};

static int
enc_emit(struct obj_enc *e, const void *buf, size_t len, struct err *err)
{
    e->stored += len;
    return sink_next_write(&e->base, buf, len, err);
}

static int
enc_chunk(struct obj_enc *e, int last, struct err *err)
{
    uint32_t word = (uint32_t)e->fill | (last ? OBJ_CHUNK_LAST : 0);

    put_u32(e->out, word);
    if (!e->gcm) {
        if (enc_emit(e, e->out, 4, err) < 0 || enc_emit(e, e->chunk, e->fill, err) < 0)
            return -1;
    } else {
        unsigned char nonce[CRYPT_NONCE_SIZE];
        size_t aadlen;

        make_nonce(nonce, e->index, last ? REC_LAST : REC_CHUNK);
        aadlen = make_aad(e->aad, e->h.bytes, e->h.len, nonce);
        if (crypt_gcm_seal(e->gcm, nonce, e->aad, aadlen, e->chunk, e->fill, e->out + 4,
                           e->out + 4 + e->fill, err) < 0)
            return -1;
        if (enc_emit(e, e->out, 4 + e->fill + CRYPT_TAG_SIZE, err) < 0)
            return -1;
    }
    e->index++;
    e->fill = 0;
    return 0;
}

static int
framer_write(struct sink *s, const void *buf, size_t len, struct err *err)
{
    struct obj_enc *e = ((struct framer *)s)->e;
    const unsigned char *p = buf;

    while (len) {
        size_t n = e->chunk_size - e->fill;

        if (n > len)
            n = len;
        memcpy(e->chunk + e->fill, p, n);
        e->fill += n;
        p += n;
        len -= n;
        /* a full chunk goes out only when more follows: the last may be full too */
        if (e->fill == e->chunk_size && len && enc_chunk(e, 0, err) < 0)
            return -1;
    }
    return 0;
}

static int
framer_finish(struct sink *s, struct err *err)
{
    struct obj_enc *e = ((struct framer *)s)->e;
    unsigned char t[OBJECT_TAIL_SIZE];

    if (enc_chunk(e, 1, err) < 0)
        return -1;
    put_u64(t, e->plain);
    memcpy(t + 8, e->sha, 32);
    memcpy(t + 56, OBJ_END_MAGIC, 8);
    if (!e->gcm) {
        unsigned char digest[32];

        sha256(digest, t, OBJ_TRAILER_FIELDS, NULL, 0);
        memcpy(t + OBJ_TRAILER_FIELDS, digest, 16);
    } else {
        unsigned char nonce[CRYPT_NONCE_SIZE], plain[OBJ_TRAILER_FIELDS];
        size_t aadlen;

        memcpy(plain, t, OBJ_TRAILER_FIELDS);
        make_nonce(nonce, e->index, REC_TRAILER);
        aadlen = make_aad(e->aad, e->h.bytes, e->h.len, nonce);
        if (crypt_gcm_seal(e->gcm, nonce, e->aad, aadlen, plain, OBJ_TRAILER_FIELDS, t,
                           t + OBJ_TRAILER_FIELDS, err) < 0)
            return -1;
    }
    return enc_emit(e, t, sizeof(t), err);
}

static void
framer_free(struct sink *s)
{
    free(s);
}

static const struct sink_ops framer_ops = {"object-framer", framer_write, framer_finish,
                                           framer_free};

/* Build and send the header, set up the cipher and the compressor. */
static int
enc_open(struct obj_enc *e, struct err *err)
{
    struct obj_header *h = &e->h;
    unsigned char *p = h->bytes;
    unsigned char master[CRYPT_KEY_SIZE], data_key[CRYPT_KEY_SIZE];
    struct framer *f;
    int rc = -1;

    if (e->opened)
        return 0;
    if (e->opts.compress > OBJECT_COMPRESS_GZIP)
        return err_set(err, ERR_USAGE, "unknown compression %d", (int)e->opts.compress);
    if (e->plain_given && e->opts.compress != OBJECT_COMPRESS_ZSTD)
        return err_set(err, ERR_USAGE, "a compressed object body must be zstd");
    e->md = EVP_MD_CTX_new();
    if (!e->md || EVP_DigestInit_ex(e->md, EVP_sha256(), NULL) != 1)
        return err_set(err, ERR_INTERNAL, "could not start sha-256");
    h->compress = e->opts.compress;
    h->cipher = e->opts.key ? OBJ_CIPHER_AES256GCM : OBJ_CIPHER_NONE;
    h->kdf_kind = !e->opts.key                           ? OBJ_KDF_NONE
                  : crypt_key_is_passphrase(e->opts.key) ? OBJ_KDF_SCRYPT
                                                         : OBJ_KDF_RAW;
    h->len = header_len_for(h->cipher, h->kdf_kind);
    h->chunk_log2 = OBJ_CHUNK_LOG2;
    memset(p, 0, sizeof(h->bytes));
    memcpy(p, OBJ_MAGIC, 8);
    p[8] = OBJ_VERSION;
    p[9] = (unsigned char)h->compress;
    p[10] = (unsigned char)h->cipher;
    p[11] = (unsigned char)h->kdf_kind;
    put_u16(p + 12, (uint16_t)h->len);
    p[14] = (unsigned char)h->chunk_log2;
    if (h->cipher != OBJ_CIPHER_NONE) {
        if (h->kdf_kind == OBJ_KDF_SCRYPT) {
            crypt_key_encode_kdf(e->opts.key, &h->kdf);
            p[80] = h->kdf.log2_n;
            p[81] = h->kdf.r;
            p[82] = h->kdf.p;
            memcpy(p + 84, h->kdf.salt, CRYPT_KDF_SALT_SIZE);
        }
        if (crypt_random(h->salt, OBJ_SALT_SIZE, err) < 0 ||
            crypt_key_master(master, e->opts.key, &h->kdf, err) < 0 ||
            object_keys(data_key, h->keycheck, master, h->salt, err) < 0)
            goto out;
        memcpy(p + 16, h->salt, OBJ_SALT_SIZE);
        memcpy(p + 48, h->keycheck, OBJ_KEYCHECK_SIZE);
        e->gcm = crypt_gcm_new(data_key, 1, err);
        if (!e->gcm)
            goto out;
    }
    {
        unsigned char digest[32];

        sha256(digest, p, h->len - OBJ_CHECK_LEN, NULL, 0);
        memcpy(p + h->len - OBJ_CHECK_LEN, digest, OBJ_CHECK_LEN);
    }
    e->chunk_size = (size_t)1 << h->chunk_log2;
    e->chunk = xmalloc(e->chunk_size);
    e->out = xmalloc(4 + e->chunk_size + CRYPT_TAG_SIZE);
    f = xcalloc(1, sizeof(*f));
    sink_init(&f->base, &framer_ops, NULL);
    f->e = e;
    e->chain = &f->base;
    if (e->plain_given)
        ; /* the caller writes the compressed stream */
    else if (h->compress == OBJECT_COMPRESS_ZSTD)
        e->chain = zstd_sink_new(e->chain, e->opts.level);
    else if (h->compress == OBJECT_COMPRESS_GZIP)
        e->chain = gzip_sink_new(e->chain, e->opts.level);
    e->opened = 1;
    rc = enc_emit(e, p, h->len, err);
out:
    OPENSSL_cleanse(master, sizeof(master));
    OPENSSL_cleanse(data_key, sizeof(data_key));
    return rc;
}

static int
enc_write(struct sink *s, const void *buf, size_t len, struct err *err)
{
    struct obj_enc *e = (struct obj_enc *)s;

    if (enc_open(e, err) < 0)
        return -1;
    if (len == 0)
        return 0;
    if (!e->prehashed && EVP_DigestUpdate(e->md, buf, len) != 1)
        return err_set(err, ERR_INTERNAL, "sha-256 update failed");
    if (!e->plain_given) /* else the caller says at finish */
        e->plain += len;
    return sink_write(e->chain, buf, len, err);
}

static int
enc_finish(struct sink *s, struct err *err)
{
    struct obj_enc *e = (struct obj_enc *)s;
    unsigned int n = 0;

    if (enc_open(e, err) < 0)
        return -1;
    if (e->plain_given)
        e->plain = *e->plain_given;
    if (e->prehashed)
        memcpy(e->sha, e->prehashed, 32);
    else if (EVP_DigestFinal_ex(e->md, e->sha, &n) != 1)
        return err_set(err, ERR_INTERNAL, "sha-256 final failed");
    if (sink_finish(e->chain, err) < 0)
        return -1;
    if (e->info) {
        memset(e->info, 0, sizeof(*e->info));
        info_from_header(e->info, &e->h);
        e->info->plain_size = e->plain;
        memcpy(e->info->sha256, e->sha, 32);
        e->info->stored_size = e->stored;
    }
    return sink_next_finish(s, err);
}

static void
enc_free(struct sink *s)
{
    struct obj_enc *e = (struct obj_enc *)s;

    sink_free(e->chain);
    crypt_gcm_free(e->gcm);
    EVP_MD_CTX_free(e->md);
    if (e->chunk)
        OPENSSL_cleanse(e->chunk, e->chunk_size);
    free(e->chunk);
    free(e->out);
    free(e);
}

static const struct sink_ops enc_ops = {"object-encode", enc_write, enc_finish, enc_free};

struct sink *
object_encode_sink_new(struct sink *next, const struct object_opts *o, struct object_info *info)
{
    struct obj_enc *e = xcalloc(1, sizeof(*e));

    sink_init(&e->base, &enc_ops, next);
    e->opts = *o;
    e->info = info;
    return &e->base;
}

struct sink *
object_encode_sink_new_prehashed(struct sink *next, const struct object_opts *o,
                                 struct object_info *info, const unsigned char *sha)
{
    struct sink *s = object_encode_sink_new(next, o, info);

    ((struct obj_enc *)s)->prehashed = sha;
    return s;
}

struct sink *
object_encode_sink_new_precompressed(struct sink *next, const struct object_opts *o,
                                     struct object_info *info, const unsigned char *sha,
                                     const uint64_t *plain_size)
{
    struct sink *s = object_encode_sink_new_prehashed(next, o, info, sha);

    ((struct obj_enc *)s)->plain_given = plain_size;
    return s;
}

/* ------------------------------------------------------------------ */
/* Decoder */

enum dec_state { DEC_HEADER, DEC_LEN, DEC_DATA, DEC_TRAILER, DEC_DONE };

struct obj_dec {
    struct sink base; /* next: the user's sink (receives the plaintext) */
    const struct crypt_key *key;
    struct object_info *info;
    enum dec_state state;
    struct obj_header h;
    size_t have; /* bytes of the current field (header, length, chunk, trailer) */
    unsigned char word[4];
    uint32_t chunk_len;
    int chunk_last;
    size_t chunk_size;
    unsigned char *chunk; /* encrypted: ciphertext and tag, then plaintext */
    unsigned char *plain;
    unsigned char trailer[OBJECT_TAIL_SIZE];
    unsigned char aad[OBJECT_HEAD_MAX + CRYPT_NONCE_SIZE];
    struct crypt_gcm *gcm;
    uint64_t index;
    struct sink *chain; /* decompressor (if any), then the verifier */
    EVP_MD_CTX *md;
    bool unhashed;      /* the caller hashes the plaintext (object_decode_sink_new_unhashed) */
    bool codec_checked; /* object_decode_sink_new_codec_checked */
    uint64_t plain_count;
    uint64_t stored;
};

struct verifier {
    struct sink base;
    struct obj_dec *d;
};

static int
verifier_write(struct sink *s, const void *buf, size_t len, struct err *err)
{
    struct obj_dec *d = ((struct verifier *)s)->d;

    if (len == 0)
        return 0;
    if (!d->unhashed && EVP_DigestUpdate(d->md, buf, len) != 1)
        return err_set(err, ERR_INTERNAL, "sha-256 update failed");
    d->plain_count += len;
    return sink_next_write(&d->base, buf, len, err);
}

static int
verifier_finish(struct sink *s, struct err *err)
{
    return 0;
}

static void
verifier_free(struct sink *s)
{
    free(s);
}

static const struct sink_ops verifier_ops = {"object-verify", verifier_write, verifier_finish,
                                             verifier_free};

/* The header is complete: check it and the key, set up the rest. */
static int
dec_open(struct obj_dec *d, struct err *err)
{
    struct obj_header *h = &d->h;
    unsigned char master[CRYPT_KEY_SIZE], data_key[CRYPT_KEY_SIZE], check[OBJ_KEYCHECK_SIZE];
    struct verifier *v;
    int rc = -1;

    if (header_parse(h, err) < 0)
        return -1;
    if (d->info)
        info_from_header(d->info, h);
    if (h->cipher != OBJ_CIPHER_NONE) {
        if (!d->key)
            return err_set(err, ERR_KEY, "object is encrypted: no key given");
        if (h->kdf_kind == OBJ_KDF_SCRYPT && !crypt_key_is_passphrase(d->key))
            return err_set(err, ERR_KEY,
                           "object is encrypted with a passphrase, not with a key file");
        if (h->kdf_kind == OBJ_KDF_RAW && crypt_key_is_passphrase(d->key))
            return err_set(err, ERR_KEY,
                           "object is encrypted with a key file, not with a passphrase");
        if (crypt_key_master(master, d->key, &h->kdf, err) < 0 ||
            object_keys(data_key, check, master, h->salt, err) < 0)
            goto out;
        if (CRYPTO_memcmp(check, h->keycheck, OBJ_KEYCHECK_SIZE) != 0) {
            err_set(err, ERR_KEY, "wrong encryption key");
            goto out;
        }
        d->gcm = crypt_gcm_new(data_key, 0, err);
        if (!d->gcm)
            goto out;
    }
    /* the plaintext is checked by the GCM tags, zstd's content checksum or gzip's CRC-32 */
    if (d->codec_checked && (h->cipher != OBJ_CIPHER_NONE || h->compress == OBJECT_COMPRESS_ZSTD ||
                             h->compress == OBJECT_COMPRESS_GZIP))
        d->unhashed = true;
    d->chunk_size = (size_t)1 << h->chunk_log2;
    if (d->gcm) {
        d->chunk = xmalloc(d->chunk_size + CRYPT_TAG_SIZE);
        d->plain = xmalloc(d->chunk_size + CRYPT_TAG_SIZE);
    }
    d->md = EVP_MD_CTX_new();
    if (!d->md || EVP_DigestInit_ex(d->md, EVP_sha256(), NULL) != 1) {
        err_set(err, ERR_INTERNAL, "could not start sha-256");
        goto out;
    }
    v = xcalloc(1, sizeof(*v));
    sink_init(&v->base, &verifier_ops, NULL);
    v->d = d;
    d->chain = &v->base;
    if (h->compress == OBJECT_COMPRESS_ZSTD)
        d->chain = unzstd_sink_new_strict(d->chain);
    else if (h->compress == OBJECT_COMPRESS_GZIP)
        d->chain = gunzip_sink_new(d->chain);
    rc = 0;
out:
    OPENSSL_cleanse(master, sizeof(master));
    OPENSSL_cleanse(data_key, sizeof(data_key));
    OPENSSL_cleanse(check, sizeof(check));
    return rc;
}

/* An encrypted chunk is complete in d->chunk: authenticate, then pass it on. */
static int
dec_chunk(struct obj_dec *d, struct err *err)
{
    unsigned char nonce[CRYPT_NONCE_SIZE];
    size_t aadlen;
    int ok;

    make_nonce(nonce, d->index, d->chunk_last ? REC_LAST : REC_CHUNK);
    aadlen = make_aad(d->aad, d->h.bytes, d->h.len, nonce);
    ok = crypt_gcm_open(d->gcm, nonce, d->aad, aadlen, d->chunk, d->chunk_len,
                        d->chunk + d->chunk_len, d->plain, err);
    if (ok < 0)
        return -1;
    if (!ok)
        return err_set(err, ERR_CORRUPT,
                       "object is corrupt: chunk %" PRIu64 " failed authentication", d->index);
    return sink_write(d->chain, d->plain, d->chunk_len, err);
}

/* The current chunk is complete. */
static int
dec_chunk_done(struct obj_dec *d, struct err *err)
{
    if (d->gcm && dec_chunk(d, err) < 0)
        return -1;
    d->index++;
    d->have = 0;
    d->state = d->chunk_last ? DEC_TRAILER : DEC_LEN;
    return 0;
}

static int
dec_write(struct sink *s, const void *buf, size_t len, struct err *err)
{
    struct obj_dec *d = (struct obj_dec *)s;
    const unsigned char *p = buf;

    d->stored += len;
    while (len) {
        size_t n;

        switch (d->state) {
        case DEC_HEADER: {
            size_t want = d->have < OBJ_FIXED ? OBJ_FIXED : d->h.len;

            n = want - d->have < len ? want - d->have : len;
            memcpy(d->h.bytes + d->have, p, n);
            d->have += n;
            if (memcmp(d->h.bytes, OBJ_MAGIC, d->have < 8 ? d->have : 8) != 0)
                return err_set(err, ERR_CORRUPT, "not a ferry object");
            if (d->have == OBJ_FIXED && want == OBJ_FIXED) {
                if (header_prefix(&d->h.len, d->h.bytes, err) < 0)
                    return -1;
            }
            if (d->have >= OBJ_FIXED && d->have == d->h.len) {
                if (dec_open(d, err) < 0)
                    return -1;
                d->state = DEC_LEN;
                d->have = 0;
            }
            break;
        }
        case DEC_LEN:
            n = 4 - d->have < len ? 4 - d->have : len;
            memcpy(d->word + d->have, p, n);
            d->have += n;
            if (d->have == 4) {
                uint32_t w = get_u32(d->word);

                d->chunk_last = (w & OBJ_CHUNK_LAST) != 0;
                d->chunk_len = w & ~OBJ_CHUNK_LAST;
                if (d->chunk_len > d->chunk_size)
                    return err_set(err, ERR_CORRUPT,
                                   "object is corrupt: chunk %" PRIu64 " claims %" PRIu32
                                   " bytes (chunk size %zu)",
                                   d->index, d->chunk_len, d->chunk_size);
                d->have = 0;
                d->state = DEC_DATA;
                /* an empty unencrypted chunk is complete already */
                if (!d->gcm && d->chunk_len == 0 && dec_chunk_done(d, err) < 0)
                    return -1;
            }
            break;
        case DEC_DATA: {
            size_t want = d->chunk_len + (d->gcm ? CRYPT_TAG_SIZE : 0);

            n = want - d->have < len ? want - d->have : len;
            if (d->gcm)
                memcpy(d->chunk + d->have, p, n);
            else if (n && sink_write(d->chain, p, n, err) < 0)
                return -1;
            d->have += n;
            if (d->have == want && dec_chunk_done(d, err) < 0)
                return -1;
            break;
        }
        case DEC_TRAILER:
            n = OBJECT_TAIL_SIZE - d->have < len ? OBJECT_TAIL_SIZE - d->have : len;
            memcpy(d->trailer + d->have, p, n);
            d->have += n;
            if (d->have == OBJECT_TAIL_SIZE)
                d->state = DEC_DONE;
            break;
        case DEC_DONE:
        default:
            return err_set(err, ERR_CORRUPT, "object has trailing data after its end");
        }
        p += n;
        len -= n;
    }
    return 0;
}

static int
dec_finish(struct sink *s, struct err *err)
{
    struct obj_dec *d = (struct obj_dec *)s;
    unsigned char fields[OBJ_TRAILER_FIELDS], digest[32];
    unsigned int n = 0;
    uint64_t size;

    if (d->state != DEC_DONE)
        return err_set(err, ERR_CORRUPT, "object is truncated");
    if (sink_finish(d->chain, err) < 0)
        return -1;
    if (memcmp(d->trailer + 56, OBJ_END_MAGIC, 8) != 0)
        return err_set(err, ERR_CORRUPT, "object trailer is corrupt");
    if (d->gcm) {
        unsigned char nonce[CRYPT_NONCE_SIZE];
        size_t aadlen;
        int ok;

        make_nonce(nonce, d->index, REC_TRAILER);
        aadlen = make_aad(d->aad, d->h.bytes, d->h.len, nonce);
        ok = crypt_gcm_open(d->gcm, nonce, d->aad, aadlen, d->trailer, OBJ_TRAILER_FIELDS,
                            d->trailer + OBJ_TRAILER_FIELDS, fields, err);
        if (ok < 0)
            return -1;
        if (!ok)
            return err_set(err, ERR_CORRUPT, "object trailer failed authentication");
    } else {
        sha256(digest, d->trailer, OBJ_TRAILER_FIELDS, NULL, 0);
        if (CRYPTO_memcmp(digest, d->trailer + OBJ_TRAILER_FIELDS, 16) != 0)
            return err_set(err, ERR_CORRUPT, "object trailer checksum mismatch");
        memcpy(fields, d->trailer, OBJ_TRAILER_FIELDS);
    }
    if (d->unhashed)
        memcpy(digest, fields + 8, 32); /* the caller compares its own hash with it */
    else if (EVP_DigestFinal_ex(d->md, digest, &n) != 1)
        return err_set(err, ERR_INTERNAL, "sha-256 final failed");
    size = get_u64(fields);
    if (size != d->plain_count)
        return err_set(err, ERR_CORRUPT,
                       "size mismatch: stored %" PRIu64 " bytes, decoded %" PRIu64, size,
                       d->plain_count);
    if (memcmp(digest, fields + 8, 32) != 0) {
        char stored[65], computed[65];

        hex32(stored, fields + 8);
        hex32(computed, digest);
        return err_set(err, ERR_CORRUPT, "checksum mismatch: stored %s computed %s", stored,
                       computed);
    }
    if (d->info) {
        info_from_header(d->info, &d->h);
        d->info->plain_size = size;
        memcpy(d->info->sha256, digest, 32);
        d->info->stored_size = d->stored;
    }
    return sink_next_finish(s, err);
}

static void
dec_free(struct sink *s)
{
    struct obj_dec *d = (struct obj_dec *)s;

    sink_free(d->chain);
    crypt_gcm_free(d->gcm);
    EVP_MD_CTX_free(d->md);
    if (d->plain)
        OPENSSL_cleanse(d->plain, d->chunk_size + CRYPT_TAG_SIZE);
    free(d->chunk);
    free(d->plain);
    free(d);
}

static const struct sink_ops dec_ops = {"object-decode", dec_write, dec_finish, dec_free};

struct sink *
object_decode_sink_new(struct sink *next, const struct crypt_key *key, struct object_info *info)
{
    struct obj_dec *d = xcalloc(1, sizeof(*d));

    sink_init(&d->base, &dec_ops, next);
    d->key = key;
    d->info = info;
    return &d->base;
}

struct sink *
object_decode_sink_new_unhashed(struct sink *next, const struct crypt_key *key,
                                struct object_info *info)
{
    struct sink *s = object_decode_sink_new(next, key, info);

    ((struct obj_dec *)s)->unhashed = true;
    return s;
}

struct sink *
object_decode_sink_new_codec_checked(struct sink *next, const struct crypt_key *key,
                                     struct object_info *info)
{
    struct sink *s = object_decode_sink_new(next, key, info);

    ((struct obj_dec *)s)->codec_checked = true;
    return s;
}
