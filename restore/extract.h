/* SPDX-License-Identifier: MIT */
/*
 * The data path of ferry-restore: every tar part of a backup is downloaded
 * (its own repository handle, decoded and checked by the object format and
 * its codec) into a ring of blocks that a second thread hands to libarchive
 * in place; each entry is checked (format/tar.h), written below its
 * directory without ever following a symlink, and its size and checksum are
 * compared with the backup manifest as it is written; large files are
 * written with O_DIRECT where the filesystem takes it (dwrite.h). Memory
 * stays bounded: the ring (4 MiB) and the staging buffers of direct writes
 * (6 MiB) per part. global/pg_control and tablespace_map are not written:
 * they are verified and handed back so the caller writes them last.
 */
#ifndef RESTORE_EXTRACT_H
#define RESTORE_EXTRACT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/buf.h"
#include "base/err.h"
#include "format/manifest.h"
#include "storage/repo.h"
#include "stream/object.h"

struct extract_part {
    const char *name;   /* "base.tar", "16385.tar" (for messages) */
    const char *key;    /* repository key */
    uint64_t size;      /* plaintext size from the catalogue */
    const char *sha256; /* hex, from the catalogue */
    uint32_t oid;       /* 0 for base.tar */
    int dir_fd;         /* extraction root (not closed) */
    struct repo *repo;  /* this part's own handle (not closed) */
    /* results */
    uint64_t files;
    uint64_t bytes;
    uint64_t stored;
};

struct extract_opts {
    const struct crypt_key *key;
    struct manifest *manifest; /* files[].seen set as they are verified */
    bool do_chown;
    bool direct_io; /* O_DIRECT for large files where the filesystem takes it */
    uid_t uid;
    gid_t gid;
};

struct extract_held {
    struct buf pg_control; /* global/pg_control, verified */
    bool has_pg_control;
    struct buf tablespace_map; /* verified, still to be rewritten */
    bool has_tablespace_map;
};

/*
 * Restore every part at once (two threads each). On failure the first error
 * is returned (prefixed with the part name) and the other parts are
 * cancelled. Does not check that every manifest file was seen.
 */
int extract_run(struct extract_part *parts, size_t n, const struct extract_opts *o,
                struct extract_held *held, struct err *err);

/* Remove everything inside the directory fd (never following symlinks). */
int extract_clear_dir(int dir_fd, const char *what, struct err *err);

#endif
