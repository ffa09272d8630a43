/* SPDX-License-Identifier: MIT */
/*
 * The simple stream stages. Each constructor takes the successor (owned)
 * and cannot fail. Results of hash and count are valid after finish.
 */
#ifndef STREAM_STAGES_H
#define STREAM_STAGES_H

#include <stdint.h>

#include "base/buf.h"
#include "stream/sink.h"

/* SHA-256 of everything passing through; digest filled at finish. */
struct sink *hash_sink_new(struct sink *next, unsigned char digest[32]);
/* Counts bytes passing through (*count updated on every write). */
struct sink *count_sink_new(struct sink *next, uint64_t *count);
/*
 * zstd compress / decompress (level 0 = STREAM_ZSTD_LEVEL_DEFAULT: on real WAL and pgbench
 * tables level 1 compresses ~35% faster than 3 for ~13% more bytes, bench/README.md).
 */
#define STREAM_ZSTD_LEVEL_DEFAULT 1
struct sink *zstd_sink_new(struct sink *next, int level);
struct sink *unzstd_sink_new(struct sink *next);
/*
 * The decoder of object bodies (docs/FORMAT.md): exactly one frame, which
 * must announce a content checksum, so that zstd's check of the plaintext
 * can be relied on (ERR_CORRUPT otherwise).
 */
struct sink *unzstd_sink_new_strict(struct sink *next);
/*
 * Adopt one zstd frame compressed elsewhere (PostgreSQL's server-side
 * compression writes none) as an object body: the frame goes on unchanged,
 * except that a frame without a content checksum gets one (the descriptor's
 * flag set, the low 32 bits of XXH64 of the plaintext appended), so ferry's
 * decoders can trust it like their own. The frame is decoded on the way to
 * count and hash the plaintext, and checked: damaged, truncated, or followed
 * by anything is ERR_CORRUPT. res->plain_size grows as the plaintext is
 * decoded (read it with __atomic_load_n from another thread); res->sha256
 * is set at finish, before the successor is finished.
 */
struct zstd_adopt_result {
    uint64_t plain_size;
    unsigned char sha256[32];
};
struct sink *zstd_adopt_sink_new(struct sink *next, struct zstd_adopt_result *res);
/* gzip (RFC 1952) compress / decompress (level 0 = default 6). */
struct sink *gzip_sink_new(struct sink *next, int level);
struct sink *gunzip_sink_new(struct sink *next);
/* Terminal: write to an fd (not closed); what names it in errors. */
struct sink *fd_sink_new(int fd, const char *what);
/* Terminal: append to a buf (owned by the caller), failing beyond max bytes (0 = no limit). */
struct sink *buf_sink_new(struct buf *out, size_t max);
/*
 * Terminal: write to path atomically: a temp file beside it, fsync, rename,
 * fsync the directory at finish; unlinked if freed unfinished.
 */
struct sink *atomic_file_sink_new(const char *path, int mode);
/*
 * The same for a cache that is thrown away after a crash (e.g. the WAL
 * prefetch spool): temp file and rename, but no fsync.
 */
struct sink *atomic_file_sink_nosync_new(const char *path, int mode);
/* Terminal: discard everything. */
struct sink *null_sink_new(void);

#endif
