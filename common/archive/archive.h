/* SPDX-License-Identifier: MIT */
/*
 * The PostgreSQL WAL archive inside a repository: key names, the cluster
 * record, pushing and fetching one WAL file with every check PostgreSQL's
 * archive_command / restore_command contract needs. Used by ferry-wal-push,
 * ferry-wal-fetch, and later basebackup, verify and expire.
 *
 * Layout (docs/REPOSITORY.md; if you change it, update verify and expire):
 *   pg/cluster.json                          system identifier, version, segment size
 *   pg/wal/TTTTTTTTLLLLLLLL/<segment>        segments, .partial and .backup files
 *   pg/wal/history/TTTTTTTT.history          timeline history files
 * Every object is in the ferry object format (stream/object.h).
 */
#ifndef ARCHIVE_ARCHIVE_H
#define ARCHIVE_ARCHIVE_H

#include <stdbool.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/err.h"
#include "format/walheader.h"
#include "format/walname.h"
#include "storage/repo.h"
#include "stream/object.h"

#define ARCHIVE_CLUSTER_KEY "pg/cluster.json"
#define ARCHIVE_WAL_PREFIX "pg/wal/"
#define ARCHIVE_HISTORY_PREFIX "pg/wal/history/"

struct archive {
    struct repo *repo;           /* not owned */
    struct object_opts oopts;    /* compression and encryption of what we write */
    const struct crypt_key *key; /* for reading; may be NULL */
};

struct cluster_info {
    uint64_t sysid;
    int pg_version;
    uint32_t seg_size;
    uint32_t blcksz;
};

/* Repository key of a WAL file (appended to out). */
void archive_wal_key(struct buf *out, const struct walname *w);

/* The cluster record: 0 with *found false when the repository has none yet. */
int archive_cluster_get(struct archive *a, struct cluster_info *out, bool *found, struct err *err);

/*
 * Make sure the repository belongs to the cluster described by local: record
 * it when the repository has no cluster yet (a race between two writers is
 * settled by conditional create), refuse with ERR_USAGE naming both system
 * identifiers when it belongs to another cluster, version or segment size.
 * what names the file being checked in the message.
 */
int archive_cluster_check(struct archive *a, const struct cluster_info *local, const char *what,
                          struct err *err);

enum archive_push_result { ARCHIVE_PUSH_STORED = 1, ARCHIVE_PUSH_IDENTICAL };

/*
 * Read and check a local WAL file: the name must parse; a segment or
 * .partial must be exactly one segment long and its page header must agree
 * with its name. Fills *w and, for segments and partials, *h. ERR_USAGE or
 * ERR_CORRUPT on a bad file, ERR_IO if it cannot be read.
 */
int archive_check_local(const char *path, struct walname *w, struct walheader *h, bool *has_header,
                        struct err *err);

/*
 * Store one local WAL file under its key, never overwriting: if the key
 * exists with the same plaintext (size and SHA-256) the result is
 * ARCHIVE_PUSH_IDENTICAL; with different bytes, ERR_EXISTS naming both
 * checksums. info (may be NULL) gets the local file's size and checksum.
 */
int archive_push_file(struct archive *a, const char *path, const struct walname *w,
                      enum archive_push_result *res, struct object_info *info, struct err *err);

/* archive_fetch_file flags */
#define ARCHIVE_FETCH_NOSYNC 1u /* dest is a cache: no fsync (a prefetch spool) */

/*
 * Fetch one WAL file into dest (atomically: temp file beside it, fsync,
 * rename), decoded and verified (checksum; for segments the page header
 * against the name and, if cluster is not NULL, the cluster). ERR_NOT_FOUND
 * when the archive does not have it. Nothing is left at dest on failure.
 * info (may be NULL) gets the verified size and checksum.
 */
int archive_fetch_file(struct archive *a, const struct walname *w,
                       const struct cluster_info *cluster, const char *dest, unsigned flags,
                       struct object_info *info, struct err *err);

/* Lower-case hex of a SHA-256 (65 bytes with NUL). */
void archive_sha256_hex(char out[65], const unsigned char sha[32]);

/* SHA-256 and size of a local file. */
int archive_file_sha256(const char *path, unsigned char out[32], uint64_t *size, struct err *err);

#endif
