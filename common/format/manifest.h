/* SPDX-License-Identifier: MIT */
/*
 * PostgreSQL's backup_manifest (BASE_BACKUP MANIFEST, docs "Backup Manifest
 * Format"): a JSON document listing every file of a base backup with its
 * size and checksum, the WAL ranges needed to make it consistent, and a
 * SHA-256 of all lines but the last (Manifest-Checksum). Versions 1 and 2
 * (PostgreSQL 17 adds System-Identifier). Pure parsing, no I/O; plus the
 * per-file checksum computation ferry-restore runs while it extracts.
 */
#ifndef FORMAT_MANIFEST_H
#define FORMAT_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

/* A manifest bigger than this is refused (about 1.5 million files). */
#define MANIFEST_MAX_BYTES (256u << 20)

enum manifest_algo {
    MANIFEST_NONE = 0,
    MANIFEST_CRC32C,
    MANIFEST_SHA224,
    MANIFEST_SHA256,
    MANIFEST_SHA384,
    MANIFEST_SHA512,
};

#define MANIFEST_DIGEST_MAX 64

struct manifest_file {
    char *path; /* relative to the data directory, '/'-separated (decoded Encoded-Path) */
    uint64_t size;
    enum manifest_algo algo;
    unsigned char checksum[MANIFEST_DIGEST_MAX];
    size_t checksum_len;
    char *last_modified; /* as written, "2026-11-25 14:30:00 GMT" */
    bool seen;           /* for the caller: set when the file was restored and checked */
};

struct manifest_wal_range {
    uint32_t tli;
    uint64_t start_lsn;
    uint64_t end_lsn;
};

struct manifest {
    int version; /* 1 or 2 */
    bool has_sysid;
    uint64_t sysid;              /* version 2 only */
    struct manifest_file *files; /* sorted by path (byte order), no duplicates */
    size_t n_files;
    struct manifest_wal_range *wal; /* as listed */
    size_t n_wal;
};

/*
 * Parse and check a whole manifest: the JSON, every field, no duplicate
 * path, and the Manifest-Checksum against the SHA-256 of the text before
 * the last line. ERR_CORRUPT naming the problem (and the file for per-file
 * errors) on bad input; *out is untouched then.
 */
int manifest_parse(struct manifest *out, const char *text, size_t len, struct err *err);
void manifest_free(struct manifest *m);

/* The entry for path, or NULL. */
struct manifest_file *manifest_find(const struct manifest *m, const char *path);

/* "SHA256" -> MANIFEST_SHA256 ...; -1 if unknown. Names as in the manifest. */
int manifest_algo_parse(const char *s, enum manifest_algo *out);
const char *manifest_algo_name(enum manifest_algo a);
/* Digest length in bytes (CRC32C: 4; NONE: 0). */
size_t manifest_algo_len(enum manifest_algo a);

/*
 * Incremental checksum of one file's bytes with the manifest's algorithm.
 * manifest_hash_end writes manifest_algo_len(algo) bytes to out (CRC32C in
 * the manifest's byte order: the hex of the little-endian 32-bit value as
 * PostgreSQL prints it, i.e. most significant byte first).
 */
struct manifest_hash;
struct manifest_hash *manifest_hash_new(enum manifest_algo algo);
void manifest_hash_update(struct manifest_hash *h, const void *data, size_t len);
void manifest_hash_end(struct manifest_hash *h, unsigned char out[MANIFEST_DIGEST_MAX]);
void manifest_hash_free(struct manifest_hash *h);

/*
 * Compare a restored file (size and digest from manifest_hash_end) with its
 * entry. ERR_CORRUPT "file \"base/1/1259\" has 8192 bytes, the manifest says
 * 16384" or "... checksum mismatch (SHA256 ...)".
 */
int manifest_file_check(const struct manifest_file *f, uint64_t size,
                        const unsigned char digest[MANIFEST_DIGEST_MAX], struct err *err);

#endif
