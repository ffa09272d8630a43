/* SPDX-License-Identifier: MIT */
/*
 * Private to stream/: key material and AES-256-GCM primitives behind the
 * object format (object.c). The public part (crypt_key_from_file,
 * crypt_key_from_passphrase, crypt_key_free) is declared in stream/object.h.
 */
#ifndef STREAM_CRYPT_H
#define STREAM_CRYPT_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "stream/object.h"

#define CRYPT_KEY_SIZE 32
#define CRYPT_NONCE_SIZE 12
#define CRYPT_TAG_SIZE 16
#define CRYPT_KDF_SALT_SIZE 16

/* Passphrase KDF (scrypt) parameters as stored in an object header. */
struct crypt_kdf {
    uint8_t log2_n;
    uint8_t r;
    uint8_t p;
    unsigned char salt[CRYPT_KDF_SALT_SIZE];
};

/*
 * scrypt parameters for new objects: N = 2^14, r = 8, p = 1 (16 MiB, about
 * 50 ms here). Decoders accept up to the limits below, so that a forged
 * header cannot make a process spend minutes or gigabytes.
 */
#define CRYPT_SCRYPT_LOG2_N 14
#define CRYPT_SCRYPT_R 8
#define CRYPT_SCRYPT_P 1
#define CRYPT_SCRYPT_MAX_LOG2_N 20
#define CRYPT_SCRYPT_MAX_R 32
#define CRYPT_SCRYPT_MAX_P 16
#define CRYPT_SCRYPT_MAX_MEM (256u * 1024 * 1024) /* 128 * r * N bytes */

/* True when the key came from a passphrase (objects then carry scrypt parameters). */
int crypt_key_is_passphrase(const struct crypt_key *k);

/* The scrypt parameters and salt this key uses for new objects (passphrase keys only). */
void crypt_key_encode_kdf(const struct crypt_key *k, struct crypt_kdf *out);

/* True if the parameters are within the limits above. */
int crypt_kdf_acceptable(const struct crypt_kdf *kdf);

/*
 * The 32-byte master key: the raw key, or scrypt(passphrase, kdf) computed
 * once per salt and cached in k (k is logically const: the cache is guarded
 * by a mutex). kdf is ignored for raw keys.
 */
int crypt_key_master(unsigned char out[CRYPT_KEY_SIZE], const struct crypt_key *k,
                     const struct crypt_kdf *kdf, struct err *err);

/* HKDF-SHA256(ikm, salt, info) into out (outlen bytes). */
int crypt_hkdf(unsigned char *out, size_t outlen, const unsigned char *ikm, size_t ikmlen,
               const unsigned char *salt, size_t saltlen, const char *info, struct err *err);

/* Random bytes from the OpenSSL generator. */
int crypt_random(void *out, size_t len, struct err *err);

/*
 * AES-256-GCM with one key for many records: seal encrypts len bytes of in
 * to out (same length) and writes the tag; open decrypts and returns 1 if
 * the tag matched, 0 if not (out must then be discarded), -1 on a library
 * failure.
 */
struct crypt_gcm;
struct crypt_gcm *crypt_gcm_new(const unsigned char key[CRYPT_KEY_SIZE], int encrypt,
                                struct err *err);
void crypt_gcm_free(struct crypt_gcm *g);
int crypt_gcm_seal(struct crypt_gcm *g, const unsigned char nonce[CRYPT_NONCE_SIZE],
                   const unsigned char *aad, size_t aadlen, const unsigned char *in, size_t len,
                   unsigned char *out, unsigned char tag[CRYPT_TAG_SIZE], struct err *err);
int crypt_gcm_open(struct crypt_gcm *g, const unsigned char nonce[CRYPT_NONCE_SIZE],
                   const unsigned char *aad, size_t aadlen, const unsigned char *in, size_t len,
                   const unsigned char tag[CRYPT_TAG_SIZE], unsigned char *out, struct err *err);

#endif
