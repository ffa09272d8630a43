/* SPDX-License-Identifier: MIT */
/*
 * The self-describing object format (docs/FORMAT.md): every object ferry
 * writes carries its compression, its encryption parameters, and a trailer
 * with the plaintext size and SHA-256, so it can be decoded and checked
 * from the object alone (given the key when encrypted). Truncated,
 * corrupted or wrongly keyed objects are reported (ERR_CORRUPT, ERR_KEY),
 * never returned as data: the decoder releases plaintext only after the
 * authentication of the chunk that holds it, and fails at finish unless the
 * trailer matched.
 */
#ifndef STREAM_OBJECT_H
#define STREAM_OBJECT_H

#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"
#include "stream/sink.h"

enum object_compress {
    OBJECT_COMPRESS_NONE = 0,
    OBJECT_COMPRESS_ZSTD = 1,
    OBJECT_COMPRESS_GZIP = 2
};

/* Parse "zstd", "gzip", "none". 0 or -1 (ERR_USAGE). */
int object_compress_parse(const char *s, enum object_compress *out, struct err *err);
const char *object_compress_name(enum object_compress c);

/*
 * Client-side encryption key material. Made from a key file (32 raw bytes,
 * 64 hex digits or base64 of 32 bytes, surrounding whitespace ignored) or a
 * passphrase run through a KDF (parameters and salt stored in each object).
 * Holds secrets: crypt_key_free wipes them.
 */
struct crypt_key;
int crypt_key_from_file(struct crypt_key **out, const char *path, struct err *err);
int crypt_key_from_passphrase(struct crypt_key **out, const char *passphrase, struct err *err);
void crypt_key_free(struct crypt_key *k);

struct object_opts {
    enum object_compress compress;
    int level;                   /* 0 = the codec's default */
    const struct crypt_key *key; /* NULL = not encrypted */
};

/* What an object says about itself; filled by the encoder at finish, or the decoder. */
struct object_info {
    enum object_compress compress;
    bool encrypted;
    char kdf[16];             /* "", "raw-key" or "scrypt" */
    uint64_t plain_size;      /* bytes before encoding */
    unsigned char sha256[32]; /* of the plaintext */
    uint64_t stored_size;     /* bytes of the encoded object */
};

/* Hex of info->sha256 (65 bytes with NUL). */
void object_sha256_hex(char out[65], const struct object_info *info);

/*
 * Encoder: bytes written are the plaintext; next receives the encoded
 * object. At finish, *info (if not NULL) holds size, checksum and stored size.
 */
struct sink *object_encode_sink_new(struct sink *next, const struct object_opts *o,
                                    struct object_info *info);

/*
 * The same encoder, except that it does not hash the plaintext: the caller
 * computes the SHA-256 of every byte it writes (e.g. on the thread that
 * receives the data, while this one compresses) and stores it in
 * sha[0..31] before calling sink_finish, which puts it in the trailer.
 */
struct sink *object_encode_sink_new_prehashed(struct sink *next, const struct object_opts *o,
                                              struct object_info *info, const unsigned char *sha);

/*
 * The same encoder for a compressed stream made elsewhere (zstd_adopt_sink_new
 * in stream/stages.h): bytes written are the body, one zstd frame with its
 * content checksum, put in chunks (and encrypted) as they are. o->compress
 * must be OBJECT_COMPRESS_ZSTD. The caller stores the plaintext's SHA-256 in
 * sha[0..31] and its size in *plain_size before calling sink_finish.
 */
struct sink *object_encode_sink_new_precompressed(struct sink *next, const struct object_opts *o,
                                                  struct object_info *info,
                                                  const unsigned char *sha,
                                                  const uint64_t *plain_size);

/*
 * Decoder: bytes written are the encoded object; next receives the
 * plaintext, verified chunk by chunk. key may be NULL (then an encrypted
 * object fails with ERR_KEY "object is encrypted: no key given"). finish
 * fails with ERR_CORRUPT if the object is truncated or the checksum or size
 * does not match. *info (if not NULL) is filled at finish.
 */
struct sink *object_decode_sink_new(struct sink *next, const struct crypt_key *key,
                                    struct object_info *info);

/*
 * The same decoder, except that it does not hash the plaintext: the caller
 * computes its SHA-256 (e.g. on another thread, to spread the work over two
 * cores) and must compare it with info->sha256, which holds the stored value
 * after a successful finish (size, trailer and, when encrypted, every chunk
 * are still checked here). info must not be NULL.
 */
struct sink *object_decode_sink_new_unhashed(struct sink *next, const struct crypt_key *key,
                                             struct object_info *info);

/*
 * The same decoder, trusting the codec's own check of the plaintext where
 * there is one: the GCM tag of every chunk (encrypted), zstd's content
 * checksum (XXH64 of the plaintext, always written by the encoder) or
 * gzip's CRC-32; only an object stored raw and unencrypted is hashed.
 * Saves the SHA-256 (about 9 ms per 16 MiB WAL segment here) where it would
 * check nothing more against damage; size and trailer are still checked,
 * and info->sha256 (if info is not NULL) holds the stored value.
 */
struct sink *object_decode_sink_new_codec_checked(struct sink *next, const struct crypt_key *key,
                                                  struct object_info *info);

/*
 * Read what an object says about itself from its stored bytes without
 * decoding the body: head = the first bytes (at least OBJECT_HEAD_MAX or the
 * whole object), tail = the last OBJECT_TAIL_SIZE bytes. For `ferry repo stat`.
 * Does not need the key. ERR_CORRUPT if it is not a ferry object.
 */
#define OBJECT_HEAD_MAX 256
#define OBJECT_TAIL_SIZE 64
int object_inspect(struct object_info *out, const void *head, size_t head_len, const void *tail,
                   size_t tail_len, uint64_t stored_size, struct err *err);

/* True if the bytes start with the ferry object magic. */
bool object_is_ferry(const void *head, size_t len);

#endif
