/* SPDX-License-Identifier: MIT */
/*
 * The object checks of ferry-verify: each reads one repository object
 * through the object decoder (checksum and size from its trailer) and
 * checks what it holds. A WAL file's first page must agree with its name
 * and the cluster; a backup part must match its catalogue entry, and a tar
 * part is read with libarchive while it streams (a download thread feeds a
 * pipe) so every file's size and checksum is compared with the backup
 * manifest without anything being written to disk. Problems go to a shared
 * report (thread-safe); a check goes on after a problem so every problem is
 * found. Memory per running check: one pipe and two buffers.
 */
#ifndef VERIFY_CHECK_H
#define VERIFY_CHECK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "archive/archive.h"
#include "archive/catalog.h"
#include "archive/walscan.h"
#include "format/manifest.h"

/* Problem kinds: if you add one, document it in docs/verify.md and --help. */
#define PK_MISSING_WAL "missing_wal"
#define PK_GAP "gap"
#define PK_MISSING_HISTORY "missing_history"
#define PK_CORRUPT_OBJECT "corrupt_object"
#define PK_MISSING_OBJECT "missing_object"
#define PK_MANIFEST_MISMATCH "manifest_mismatch"
#define PK_INCOMPLETE_BACKUP "incomplete_backup"
#define PK_CORRUPT_CATALOG "corrupt_catalog"
#define PK_MISSING_BACKUP "missing_backup"
#define PK_WRONG_CLUSTER "wrong_cluster"
#define PK_UNCHECKED "unchecked" /* could not be read: storage, credentials, key */

/* catalog_part.size of a part not in the repository's listing (reported there, never read) */
#define PART_MISSING UINT64_MAX

struct problem {
    const char *kind; /* one of PK_* (static) */
    char *object;
    char *detail;
};

struct report {
    pthread_mutex_t lock;
    struct problem *v;
    size_t n, cap;
    atomic_int stop; /* storage unreachable: skip what is left */
    /* counters (under lock) */
    uint64_t backups, backup_objects, backup_bytes, manifest_files;
    uint64_t wal_files, wal_bytes, skipped;
};

void report_init(struct report *r);
void report_free(struct report *r);
void report_add(struct report *r, const char *kind, const char *object, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Record a failed read of object: damage or "could not check", by the error's kind. */
void report_err(struct report *r, const char *object, const struct err *err);
/* True for errors that mean "could not check" rather than damage. */
bool check_err_is_unchecked(const struct err *err);

/* One backup being checked; its manifest is loaded by the first check that needs it. */
struct vbackup {
    struct catalog_entry e;
    pthread_mutex_t lock;
    bool loaded, has_manifest;
    bool tar_incomplete; /* a part was not read to its end: "missing from the backup" unknown */
    struct manifest m;
    size_t remaining; /* checks of this backup not finished */
};

enum vjob_type { VJOB_WAL = 1, VJOB_PART };

struct vjob {
    enum vjob_type type;
    struct vbackup *bk;              /* VJOB_PART */
    const struct catalog_part *part; /* VJOB_PART */
    const struct walscan_file *wal;  /* VJOB_WAL */
};

struct vctx {
    struct report *rep;
    const struct crypt_key *key;
    const struct cluster_info *cluster;
};

/* Run one check with the repository handle r (each thread has its own). */
void check_job(const struct vctx *c, struct repo *r, struct vjob *j);

#endif
